//! Sign-in, tokens, revocation, tampering.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn login_wrong_password_and_unknown_email_answer_alike() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let wrong = app.login(json!({"email": owner.email, "password": "not the password at all"})).await;
    let wrong = assert_problem(wrong, 401).await;
    let unknown = app.login(json!({"email": "nobody@example.test", "password": "not the password at all"})).await;
    let unknown = assert_problem(unknown, 401).await;
    assert_eq!(wrong["detail"], unknown["detail"]);
    // Email is case-insensitive and trimmed.
    let ok =
        app.login(json!({"email": format!("  {}  ", owner.email.to_uppercase()), "password": owner.password})).await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn jwks_publishes_the_signing_key() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let jwks: Value =
        app.client.get(format!("{}/.well-known/jwks.json", app.address)).send().await.unwrap().json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(owner.token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(owner.token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    for claim in ["sub", "tid", "role", "regions", "ver", "iat", "exp", "jti"] {
        assert!(claims.get(claim).is_some(), "claim {claim} missing: {claims}");
    }
    assert_eq!(claims["tid"], owner.tenant_id.as_str());
    assert_eq!(claims["role"], "owner");
}

#[tokio::test]
async fn temporary_password_only_allows_changing_it() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let created = app.create_member(&owner, "viewer", &[]).await;
    let email = created["email"].as_str().unwrap();
    let temp = created["temporary_password"].as_str().unwrap();
    let login = app.login_ok(email, temp, None).await;
    assert_eq!(login["must_change_password"], true);
    let token = login["access_token"].as_str().unwrap();
    // Nothing else works with it.
    let me = app.get("/api/v1/me", token).await;
    let body = assert_problem(me, 403).await;
    assert_eq!(body["type"], "urn:roster:problem:password-change-required");
    let list = app.get(&format!("/api/v1/tenants/{}/users", owner.tenant_id), token).await;
    assert_problem(list, 403).await;
    // A weak new password is refused with reasons.
    let weak = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            token,
            json!({"current_password": temp, "new_password": "password1234"}),
        )
        .await;
    let body = assert_problem(weak, 422).await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    // Long enough, but among the 10,000 most common passwords (the 8,259th), in another case.
    let common = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            token,
            json!({"current_password": temp, "new_password": "DomainLock2005"}),
        )
        .await;
    let body = assert_problem(common, 422).await;
    assert_eq!(body["errors"][0]["field"], "new_password");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("most common passwords"), "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "only that reason: {body}");
    let short = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            token,
            json!({"current_password": temp, "new_password": "short"}),
        )
        .await;
    assert_problem(short, 422).await;
    let wrong = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            token,
            json!({"current_password": "nope", "new_password": "a fine long passphrase"}),
        )
        .await;
    assert_problem(wrong, 422).await;
    let ok = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            token,
            json!({"current_password": temp, "new_password": "a fine long passphrase"}),
        )
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    let fresh: Value = ok.json().await.unwrap();
    assert_eq!(fresh["must_change_password"], false);
    let me = app.get("/api/v1/me", fresh["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), StatusCode::OK);
    // The old token is revoked, and the temporary password no longer works.
    assert_problem(app.get("/api/v1/me", token).await, 401).await;
    assert_problem(app.login(json!({"email": email, "password": temp})).await, 401).await;
    app.login_ok(email, "a fine long passphrase", None).await;
}

#[tokio::test]
async fn several_tenants_login_then_switch() {
    let app = spawn_app().await;
    let a = app.new_owner("free").await;
    // The same person owns a second tenant.
    let b = app.create_tenant("Second", &a.email, "free").await;
    assert!(b.get("password").is_none(), "an existing identity keeps its password");
    let login = app.login_ok(&a.email, &a.password, None).await;
    assert!(login.get("tenant_id").is_none());
    assert_eq!(login["tenants"].as_array().unwrap().len(), 2);
    let identity_token = login["access_token"].as_str().unwrap();
    // An identity-only token reaches no tenant.
    assert_problem(app.get(&format!("/api/v1/tenants/{}/users", a.tenant_id), identity_token).await, 404).await;
    let tenants: Value = app.get("/api/v1/me/tenants", identity_token).await.json().await.unwrap();
    assert_eq!(tenants["items"].as_array().unwrap().len(), 2);
    let b_id = b["tenant_id"].as_str().unwrap();
    let switched = app.send_json(Method::POST, "/api/v1/auth/switch", identity_token, json!({"tenant_id": b_id})).await;
    assert_eq!(switched.status(), StatusCode::OK);
    let switched: Value = switched.json().await.unwrap();
    assert_eq!(switched["tenant_id"], b_id);
    let tb = switched["access_token"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/v1/tenants/{b_id}/users"), tb).await.status(), StatusCode::OK);
    // Straight in with tenant_id.
    let direct = app.login_ok(&a.email, &a.password, Some(b_id)).await;
    assert_eq!(direct["tenant_id"], b_id);
    // Not a member: 403.
    let stranger = app.new_owner("free").await;
    let res = app
        .send_json(Method::POST, "/api/v1/auth/switch", identity_token, json!({"tenant_id": stranger.tenant_id}))
        .await;
    assert_problem(res, 403).await;
    let me: Value = app.get("/api/v1/me", tb).await.json().await.unwrap();
    assert_eq!(me["tenant_id"], b_id);
    assert_eq!(me["role"], "owner");
}

#[tokio::test]
async fn disabling_revokes_tokens_on_every_instance() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let owner = app.new_owner("free").await;
    let member = app.new_member(&owner, "operator", &[]).await;
    let own_path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, member.user_id);
    assert_eq!(other.get(&own_path, &member.token).await.status(), StatusCode::OK, "token works on the other instance");
    assert_eq!(app.set_status(&owner, &member.user_id, "disabled").await.status(), StatusCode::OK);
    assert_problem(other.get(&own_path, &member.token).await, 401).await;
    assert_problem(app.get(&own_path, &member.token).await, 401).await;
    assert_problem(other.get("/api/v1/me", &member.token).await, 401).await;
    // Disabled members cannot sign in to the tenant.
    let res = app.login(json!({"email": member.email, "password": member.password})).await;
    assert_problem(res, 403).await;
}

#[tokio::test]
async fn role_change_and_password_reset_revoke_tokens() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let owner = app.new_owner("free").await;
    let member = app.new_member(&owner, "operator", &[]).await;
    let me = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, member.user_id);
    let res = app.send_json(Method::PATCH, &me, &owner.token, json!({"role": "viewer"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(other.get(&me, &member.token).await, 401).await;
    let again = app.login_ok(&member.email, &member.password, None).await;
    let token = again["access_token"].as_str().unwrap().to_string();
    assert_eq!(other.get(&me, &token).await.status(), StatusCode::OK);
    // Editing a profile field does not revoke.
    let res = app.send_json(Method::PATCH, &me, &owner.token, json!({"job_title": "Clerk"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(other.get(&me, &token).await.status(), StatusCode::OK);
    let res = app.request(Method::POST, &format!("{me}/password-reset"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let reset: Value = res.json().await.unwrap();
    assert_problem(other.get(&me, &token).await, 401).await;
    assert_problem(app.login(json!({"email": member.email, "password": member.password})).await, 401).await;
    let login = app.login_ok(&member.email, reset["temporary_password"].as_str().unwrap(), None).await;
    assert_eq!(login["must_change_password"], true);
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn tampered_tokens_are_refused() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let victim = app.new_owner("free").await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let parts: Vec<&str> = owner.token.split('.').collect();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

    // Bad signature.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let bad_sig = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert_problem(app.get(&path, &bad_sig).await, 401).await;

    // alg: none.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), parts[1]);
    assert_problem(app.get(&path, &none).await, 401).await;

    // HS256 keyed with the public key.
    let jwks: Value =
        app.client.get(format!("{}/.well-known/jwks.json", app.address)).send().await.unwrap().json().await.unwrap();
    let public = URL_SAFE_NO_PAD.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = header["kid"].as_str().map(str::to_string);
    let hs = jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
    assert_problem(app.get(&path, &hs).await, 401).await;

    // Edited role claim and edited tenant, signature kept.
    let mut edited = claims.clone();
    edited["role"] = json!("owner");
    edited["regions"] = json!([]);
    edited["ver"] = json!(99);
    assert_problem(app.get(&path, &format!("{}.{}.{}", parts[0], b64(&edited), parts[2])).await, 401).await;
    let mut other_tenant = claims.clone();
    other_tenant["tid"] = json!(victim.tenant_id);
    let forged = format!("{}.{}.{}", parts[0], b64(&other_tenant), parts[2]);
    assert_problem(app.get(&format!("/api/v1/tenants/{}/users", victim.tenant_id), &forged).await, 401).await;

    // Expired, but correctly signed with the service's own key.
    let expired = crate::helpers::sign_with_service_key(&app, {
        let mut c = claims.clone();
        c["iat"] = json!(1_700_000_000);
        c["exp"] = json!(1_700_000_900);
        c
    });
    assert_problem(app.get(&path, &expired).await, 401).await;
    // The same key with a current expiry works, so the expired case is really about expiry.
    let fresh = crate::helpers::sign_with_service_key(&app, claims.clone());
    assert_eq!(app.get(&path, &fresh).await.status(), StatusCode::OK);

    // Garbage, and a missing or wrong scheme.
    assert_problem(app.get(&path, "not-a-token").await, 401).await;
    let res = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
    assert_problem(res, 401).await;
    let res = app
        .client
        .get(format!("{}{path}", app.address))
        .header("Authorization", format!("Basic {}", owner.token))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401).await;
}

/// Sign-in and reset requests are limited per client address: 429 with `Retry-After`, and
/// past the per-recipient allowance a reset request is answered alike but sends nothing.
#[tokio::test]
async fn sign_in_and_reset_requests_are_rate_limited() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.rate_login_per_minute = 3;
        c.rate_reset_per_hour = 4;
        c.rate_emails_per_recipient_per_hour = 2;
    })
    .await;
    let owner = app.new_owner("plus").await; // one sign-in
    for _ in 0..2 {
        let res = app.login(json!({"email": owner.email, "password": "wrong password"})).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = app.login(json!({"email": owner.email, "password": owner.password})).await;
    let retry: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = assert_problem(res, 429).await;
    assert_eq!(body["type"], "urn:roster:problem:rate-limited");
    // Resets: two emails to one address, then the same answer and no email; 429 for the client.
    let ask = |email: String| {
        let app = &app;
        async move {
            app.request(Method::POST, "/api/v1/auth/password-reset", None)
                .json(&json!({"email": email}))
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(ask(owner.email.clone()).await.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(ask("nobody@example.test".into()).await.status(), StatusCode::ACCEPTED);
    let res = ask("nobody@example.test".into()).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_problem(res, 429).await;
    let outbox = app.data.path().join("outbox");
    let count = || std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    for _ in 0..50 {
        if count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(count(), 2, "two emails to the owner, the third request sent none");
}
