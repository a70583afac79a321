//! API keys: the owner-only routes, a key acting as its role on the REST API, what it never
//! reaches, revocation and rotation on every instance, audit, digests, last use and its limit.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app, spawn_app_with};

fn keys_path(owner: &Persona) -> String {
    format!("/api/v1/tenants/{}/api-keys", owner.tenant_id)
}

/// Creates a key as `owner` from `body`; returns the answer (key and secret), asserting 201.
async fn create_key(app: &TestApp, owner: &Persona, body: Value) -> Value {
    let res = app.send_json(Method::POST, &keys_path(owner), &owner.token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.unwrap()
}

fn secret(created: &Value) -> String {
    created["secret"].as_str().unwrap().to_string()
}

fn users(owner: &Persona) -> String {
    format!("/api/v1/tenants/{}/users", owner.tenant_id)
}

#[tokio::test]
async fn owners_create_list_read_change_rotate_and_revoke_keys() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let res = app
        .send_json(
            Method::POST,
            &keys_path(&owner),
            &owner.token,
            json!({"name": "CI", "kind": "api", "role": "operator"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    let key = &created["key"];
    let id = key["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("{}/{id}", keys_path(&owner)));
    let s = secret(&created);
    assert!(s.starts_with("rk_api_") && s.len() == "rk_api_".len() + 43, "{s}");
    assert_eq!(key["prefix"].as_str().unwrap(), &s[..12]);
    assert_eq!(
        (key["name"].as_str(), key["kind"].as_str(), key["role"].as_str()),
        (Some("CI"), Some("api"), Some("operator"))
    );
    assert_eq!(key["created_by"], owner.user_id.as_str());
    assert!(key["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!((key["last_used_at"].clone(), key["revoked_at"].clone()), (Value::Null, Value::Null));

    // Read and list: never the secret.
    let one = app.get(&format!("{}/{id}", keys_path(&owner)), &owner.token).await;
    assert_eq!(one.status(), StatusCode::OK);
    assert!(!one.text().await.unwrap().contains(&s));
    create_key(&app, &owner, json!({"name": "Second", "kind": "scim", "role": "viewer"})).await;
    let pages = app.all_pages(&format!("{}?limit=1", keys_path(&owner)), &owner.token).await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0]["total"], 2);
    assert!(!serde_json::to_string(&pages).unwrap().contains(&s));

    // Change: the key acts with its new role at its next request.
    assert_problem(
        app.post_member(
            &Persona { token: s.clone(), ..owner.clone() },
            json!({"email": "a@example.test", "full_name": "A", "role": "viewer"}),
        )
        .await,
        403,
    )
    .await;
    let res = app
        .send_json(
            Method::PATCH,
            &format!("{}/{id}", keys_path(&owner)),
            &owner.token,
            json!({"name": "CI admin", "role": "owner"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!((changed["name"].as_str(), changed["role"].as_str()), (Some("CI admin"), Some("owner")));
    let as_key = Persona { token: s.clone(), ..owner.clone() };
    let res = app.post_member(&as_key, json!({"email": "b@example.test", "full_name": "B", "role": "viewer"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);

    // Rotate with a grace period: both secrets work, until the grace ends.
    let res = app
        .send_json(
            Method::POST,
            &format!("{}/{id}/rotate", keys_path(&owner)),
            &owner.token,
            json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let s2 = secret(&rotated);
    assert_ne!(s, s2);
    assert_eq!(rotated["key"]["prefix"].as_str().unwrap(), &s2[..12]);
    assert_eq!(app.get(&users(&owner), &s).await.status(), StatusCode::OK);
    assert_eq!(app.get(&users(&owner), &s2).await.status(), StatusCode::OK);
    app.execute_sql(&format!("UPDATE api_keys SET previous_expires_at = '2000-01-01 00:00:00' WHERE id = '{id}'"));
    assert_problem(app.get(&users(&owner), &s).await, 401).await;
    assert_eq!(app.get(&users(&owner), &s2).await.status(), StatusCode::OK);
    // Without a grace period the old secret stops at once.
    let res = app
        .request(Method::POST, &format!("{}/{id}/rotate", keys_path(&owner)), Some(&owner.token))
        .send()
        .await
        .unwrap();
    let s3 = secret(&res.json::<Value>().await.unwrap());
    assert_problem(app.get(&users(&owner), &s2).await, 401).await;
    assert_problem(
        app.send_json(
            Method::POST,
            &format!("{}/{id}/rotate", keys_path(&owner)),
            &owner.token,
            json!({"grace_seconds": 86401}),
        )
        .await,
        422,
    )
    .await;

    // Revoke: refused at once, here and on another instance; listed with `revoked_at`.
    let other = app.second_instance().await;
    assert_eq!(other.get(&users(&owner), &s3).await.status(), StatusCode::OK);
    let res =
        app.request(Method::DELETE, &format!("{}/{id}", keys_path(&owner)), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&users(&owner), &s3).await, 401).await;
    assert_problem(other.get(&users(&owner), &s3).await, 401).await;
    let view: Value = app.get(&format!("{}/{id}", keys_path(&owner)), &owner.token).await.json().await.unwrap();
    assert!(view["revoked_at"].as_str().unwrap().ends_with('Z'));

    // Audited, without any secret.
    for action in ["api_key.created", "api_key.updated", "api_key.rotated", "api_key.revoked"] {
        let events = app.audit_events(&owner, action).await;
        assert!(!events.is_empty(), "{action}");
        let text = serde_json::to_string(&events).unwrap();
        for secret in [&s, &s2, &s3] {
            assert!(!text.contains(secret.as_str()), "{action}: {text}");
        }
    }
}

#[tokio::test]
async fn a_key_acts_as_its_role_and_regions_and_is_audited_as_itself() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let in_north = app.create_member(&owner, "viewer", &[&north]).await;
    let in_south = app.create_member(&owner, "viewer", &[&south]).await;
    let admin =
        create_key(&app, &owner, json!({"name": "North sync", "kind": "api", "role": "admin", "regions": [north]}))
            .await;
    let admin_key = Persona { token: secret(&admin), ..owner.clone() };
    let list = app.get(&format!("{}?limit=200", users(&owner)), &admin_key.token).await.text().await.unwrap();
    assert!(
        list.contains(in_north["id"].as_str().unwrap()) && !list.contains(in_south["id"].as_str().unwrap()),
        "{list}"
    );
    assert_problem(
        app.get(&format!("{}/{}", users(&owner), in_south["id"].as_str().unwrap()), &admin_key.token).await,
        404,
    )
    .await;
    // Within its regions it manages members below admin, and the audit names the key.
    let res = app
        .post_member(
            &admin_key,
            json!({"email": "n@example.test", "full_name": "N", "role": "viewer", "regions": [north]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_problem(
        app.post_member(&admin_key, json!({"email": "o@example.test", "full_name": "O", "role": "owner"})).await,
        403,
    )
    .await;
    let key_id = admin["key"]["id"].as_str().unwrap();
    let events = app.audit_events(&owner, "member.created").await;
    let by_key: Vec<&Value> = events.iter().filter(|e| e["actor_type"] == "api_key").collect();
    assert_eq!(by_key.len(), 1, "{events:?}");
    assert_eq!((by_key[0]["actor_id"].as_str(), by_key[0]["actor_name"].as_str()), (Some(key_id), Some("North sync")));
    let filtered: Value = app
        .get(&format!("/api/v1/tenants/{}/audit-events?actor_id={key_id}", owner.tenant_id), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["total"], 1, "{filtered}");
    // Its regions changed: it acts with the new ones from its next request.
    let res = app
        .send_json(Method::PATCH, &format!("{}/{key_id}", keys_path(&owner)), &owner.token, json!({"regions": [south]}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let list = app.get(&format!("{}?limit=200", users(&owner)), &admin_key.token).await.text().await.unwrap();
    assert!(
        !list.contains(in_north["id"].as_str().unwrap()) && list.contains(in_south["id"].as_str().unwrap()),
        "{list}"
    );
    // A viewer key reads but never writes members.
    let viewer = create_key(&app, &owner, json!({"name": "Reader", "kind": "api", "role": "viewer"})).await;
    let viewer_key = Persona { token: secret(&viewer), ..owner.clone() };
    assert_eq!(app.get(&users(&owner), &viewer_key.token).await.status(), StatusCode::OK);
    let body = assert_problem(
        app.post_member(&viewer_key, json!({"email": "v@example.test", "full_name": "V", "role": "viewer"})).await,
        403,
    )
    .await;
    assert_eq!(body["type"], "urn:roster:problem:forbidden");
    // An owner may not give a key regions the tenant does not have.
    let res = app
        .send_json(
            Method::POST,
            &keys_path(&owner),
            &owner.token,
            json!({"name": "X", "kind": "api", "role": "admin", "regions": [uuid::Uuid::now_v7()]}),
        )
        .await;
    assert_problem(res, 422).await;
}

#[tokio::test]
async fn keys_never_manage_keys_nor_reach_me_or_auth_and_other_kinds_are_refused() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = secret(&create_key(&app, &owner, json!({"name": "Owner key", "kind": "api", "role": "owner"})).await);
    let body = assert_problem(app.get(&keys_path(&owner), &key).await, 403).await;
    assert!(body["detail"].as_str().unwrap().contains("API keys cannot manage API keys"), "{body}");
    assert_problem(
        app.send_json(Method::POST, &keys_path(&owner), &key, json!({"name": "Y", "kind": "api", "role": "viewer"}))
            .await,
        403,
    )
    .await;
    for path in ["/api/v1/me", "/api/v1/me/tenants"] {
        let body = assert_problem(app.get(path, &key).await, 401).await;
        assert!(body["detail"].as_str().unwrap().contains("API keys work only on tenant routes"), "{body}");
    }
    let res = app.send_json(Method::POST, "/api/v1/auth/switch", &key, json!({"tenant_id": owner.tenant_id})).await;
    assert_problem(res, 401).await;
    for kind in ["agent", "scim"] {
        let created = create_key(&app, &owner, json!({"name": kind, "kind": kind, "role": "viewer"})).await;
        let s = secret(&created);
        assert!(s.starts_with(&format!("rk_{kind}_")), "{s}");
        let body = assert_problem(app.get(&users(&owner), &s).await, 403).await;
        assert_eq!(body["type"], "urn:roster:problem:key-kind-not-allowed");
    }
}

#[tokio::test]
async fn unknown_expired_revoked_and_foreign_keys_answer_like_bad_tokens_and_other_tenants() {
    let app = spawn_app().await;
    let a = app.new_owner("plus").await;
    let b = app.new_owner("plus").await;
    let a_key = create_key(&app, &a, json!({"name": "A", "kind": "api", "role": "owner"})).await;
    let a_secret = secret(&a_key);
    // Another tenant's key: 404, like another tenant's token.
    let b_member = app.create_member(&b, "viewer", &[]).await;
    let path = format!("{}/{}", users(&b), b_member["id"].as_str().unwrap());
    let token_answer = assert_problem(app.get(&path, &a.token).await, 404).await;
    let key_answer = assert_problem(app.get(&path, &a_secret).await, 404).await;
    assert_eq!(token_answer["type"], key_answer["type"]);
    // Unknown, expired and revoked keys: the same 401 as a token that is not valid.
    let bad_token = assert_problem(app.get(&users(&a), "eyJhbGciOiJFZERTQSJ9.e30.c2ln").await, 401).await;
    let unknown = format!("rk_api_{}", "A".repeat(43));
    let expiring = create_key(
        &app,
        &a,
        json!({"name": "E", "kind": "api", "role": "viewer", "expires_at": "2999-01-01T00:00:00Z"}),
    )
    .await;
    let expiring_id = expiring["key"]["id"].as_str().unwrap();
    assert_eq!(app.get(&users(&a), &secret(&expiring)).await.status(), StatusCode::OK);
    app.execute_sql(&format!("UPDATE api_keys SET expires_at = '2000-01-01 00:00:00' WHERE id = '{expiring_id}'"));
    let revoked = create_key(&app, &a, json!({"name": "R", "kind": "api", "role": "viewer"})).await;
    let revoked_id = revoked["key"]["id"].as_str().unwrap();
    app.request(Method::DELETE, &format!("{}/{revoked_id}", keys_path(&a)), Some(&a.token)).send().await.unwrap();
    let mut answers = Vec::new();
    for s in [unknown, secret(&expiring), secret(&revoked)] {
        answers.push(assert_problem(app.get(&users(&a), &s).await, 401).await);
    }
    for answer in &answers {
        assert_eq!((&answer["type"], &answer["title"]), (&bad_token["type"], &bad_token["title"]));
        assert_eq!(answer, &answers[0]);
    }
    // Keys expire only in the future.
    let res = app
        .send_json(
            Method::POST,
            &keys_path(&a),
            &a.token,
            json!({"name": "P", "kind": "api", "role": "viewer", "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_problem(res, 422).await;
}

#[tokio::test]
async fn secrets_are_stored_only_as_digests() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let created = create_key(&app, &owner, json!({"name": "D", "kind": "api", "role": "viewer"})).await;
    let s = secret(&created);
    let digest = roster::domain::api_key::digest(&s);
    let tail = &s[12..];
    assert_eq!(app.execute_sql(&format!("UPDATE api_keys SET name = name WHERE secret_digest = '{digest}'")), 1);
    let anywhere = format!(
        "UPDATE api_keys SET name = name WHERE name LIKE '%{tail}%' OR prefix LIKE '%{tail}%' OR secret_digest LIKE '%{tail}%' \
         OR regions LIKE '%{tail}%' OR kind LIKE '%{tail}%'"
    );
    assert_eq!(app.execute_sql(&anywhere), 0);
    assert_eq!(app.execute_sql(&format!("UPDATE audit_events SET ip = ip WHERE after_state LIKE '%{tail}%'")), 0);
}

#[tokio::test]
async fn last_use_is_written_at_most_once_a_minute() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let created = create_key(&app, &owner, json!({"name": "L", "kind": "api", "role": "viewer"})).await;
    let (s, id) = (secret(&created), created["key"]["id"].as_str().unwrap().to_string());
    let read = || async {
        let view: Value = app.get(&format!("{}/{id}", keys_path(&owner)), &owner.token).await.json().await.unwrap();
        view["last_used_at"].clone()
    };
    assert_eq!(app.get(&users(&owner), &s).await.status(), StatusCode::OK);
    let first = read().await;
    assert!(first.as_str().unwrap().ends_with('Z'), "{first}");
    assert_eq!(app.get(&users(&owner), &s).await.status(), StatusCode::OK);
    assert_eq!(read().await, first, "not rewritten within a minute");
    app.execute_sql(&format!("UPDATE api_keys SET last_used_at = '2000-01-01 00:00:00' WHERE id = '{id}'"));
    assert_eq!(app.get(&users(&owner), &s).await.status(), StatusCode::OK);
    let later = read().await;
    assert!(later.as_str().unwrap() > "2001", "{later}");
}

#[tokio::test]
async fn each_key_has_its_own_request_limit() {
    let app = spawn_app_with(|c| c.rate_api_key_per_minute = 2).await;
    let owner = app.new_owner("plus").await;
    let one = secret(&create_key(&app, &owner, json!({"name": "1", "kind": "api", "role": "viewer"})).await);
    let two = secret(&create_key(&app, &owner, json!({"name": "2", "kind": "api", "role": "viewer"})).await);
    for _ in 0..2 {
        assert_eq!(app.get(&users(&owner), &one).await.status(), StatusCode::OK);
    }
    let res = app.get(&users(&owner), &one).await;
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    assert!(retry.is_some_and(|s| s >= 1), "{retry:?}");
    assert_problem(res, 429).await;
    assert_eq!(app.get(&users(&owner), &two).await.status(), StatusCode::OK);
    // The owner's own token is not limited by its keys.
    assert_eq!(app.get(&users(&owner), &owner.token).await.status(), StatusCode::OK);
}

/// Get member reads the key with the member in one statement on PostgreSQL
/// (`TenantAccess::run_joined`): every check of the key holds there as on the other routes.
#[tokio::test]
async fn reading_one_member_checks_the_key_as_every_route_does() {
    let app = spawn_app_with(|c| c.rate_api_key_per_minute = 3).await;
    let (a, b) = (app.new_owner("plus").await, app.new_owner("plus").await);
    let north = app.create_region(&a, "North", None).await;
    let south = app.create_region(&a, "South", None).await;
    let in_north = app.create_member(&a, "viewer", &[&north]).await;
    let in_south = app.create_member(&a, "viewer", &[&south]).await;
    let member = |m: &Value| format!("{}/{}", users(&a), m["id"].as_str().unwrap());
    let b_member = app.create_member(&b, "viewer", &[]).await;
    let b_path = format!("{}/{}", users(&b), b_member["id"].as_str().unwrap());
    let missing = format!("{}/{}", users(&a), uuid::Uuid::now_v7());

    // A live key reads, within its regions, and its use is recorded.
    let admin = create_key(&app, &a, json!({"name": "N", "kind": "api", "role": "admin", "regions": [north]})).await;
    let (admin_secret, admin_id) = (secret(&admin), admin["key"]["id"].as_str().unwrap().to_string());
    let res = app.get(&member(&in_north), &admin_secret).await;
    assert_eq!(res.status(), StatusCode::OK);
    let read: Value = res.json().await.unwrap();
    assert_eq!((&read["id"], &read["regions"]), (&in_north["id"], &json!([north])));
    let view: Value = app.get(&format!("{}/{admin_id}", keys_path(&a)), &a.token).await.json().await.unwrap();
    assert!(view["last_used_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{view}");
    assert_problem(app.get(&member(&in_south), &admin_secret).await, 404).await;
    assert_problem(app.get(&missing, &admin_secret).await, 404).await;
    // Its limit counts these reads too (three a minute, one taken by each read above).
    let body = assert_problem(app.get(&member(&in_north), &admin_secret).await, 429).await;
    assert!(body["detail"].as_str().unwrap().contains("requests with this API key"), "{body}");

    // Another tenant's key: 404, as on every route, whether or not the member exists.
    let owner_key = secret(&create_key(&app, &a, json!({"name": "O", "kind": "api", "role": "owner"})).await);
    let foreign = assert_problem(app.get(&b_path, &owner_key).await, 404).await;
    assert!(foreign["detail"].as_str().unwrap().contains("your API key is for another tenant"), "{foreign}");
    // Other kinds are refused.
    let agent = secret(&create_key(&app, &a, json!({"name": "G", "kind": "agent", "role": "viewer"})).await);
    let body = assert_problem(app.get(&member(&in_north), &agent).await, 403).await;
    assert_eq!(body["type"], "urn:roster:problem:key-kind-not-allowed");

    // Expired, revoked, rotated past its grace period, unknown: 401 on a member that exists and
    // on one that does not.
    let expiring = create_key(&app, &a, json!({"name": "E", "kind": "api", "role": "owner"})).await;
    let revoked = create_key(&app, &a, json!({"name": "R", "kind": "api", "role": "owner"})).await;
    let rotated = create_key(&app, &a, json!({"name": "T", "kind": "api", "role": "owner"})).await;
    for key in [&expiring, &revoked] {
        assert_eq!(app.get(&member(&in_south), &secret(key)).await.status(), StatusCode::OK);
    }
    let id = |key: &Value| key["key"]["id"].as_str().unwrap().to_string();
    app.execute_sql(&format!("UPDATE api_keys SET expires_at = '2000-01-01 00:00:00' WHERE id = '{}'", id(&expiring)));
    let res = app.request(Method::DELETE, &format!("{}/{}", keys_path(&a), id(&revoked)), Some(&a.token)).send().await;
    assert_eq!(res.unwrap().status(), StatusCode::NO_CONTENT);
    let res = app
        .send_json(
            Method::POST,
            &format!("{}/{}/rotate", keys_path(&a), id(&rotated)),
            &a.token,
            json!({"grace_seconds": 3600}),
        )
        .await;
    let rotated_new = secret(&res.json::<Value>().await.unwrap());
    // In its grace period the previous secret still reads; after it, not.
    assert_eq!(app.get(&member(&in_south), &secret(&rotated)).await.status(), StatusCode::OK);
    assert_eq!(app.get(&member(&in_south), &rotated_new).await.status(), StatusCode::OK);
    app.execute_sql(&format!(
        "UPDATE api_keys SET previous_expires_at = '2000-01-01 00:00:00' WHERE id = '{}'",
        id(&rotated)
    ));
    let unknown = format!("rk_api_{}", "A".repeat(43));
    for s in [secret(&expiring), secret(&revoked), secret(&rotated), unknown] {
        for path in [member(&in_south), missing.clone()] {
            let body = assert_problem(app.get(&path, &s).await, 401).await;
            assert_eq!(body["detail"], "the access token is invalid", "{path}: {body}");
        }
    }
    assert_eq!(app.get(&member(&in_south), &rotated_new).await.status(), StatusCode::OK);
}

/// PostgreSQL: the statement behind the joined read joins the key itself, live and of the
/// tenant read, and no other (the guard's own lookup, run when nothing was joined, would hide a
/// join that never matched, or one that matched too much).
#[tokio::test]
async fn the_joined_member_read_joins_only_a_live_key_of_its_tenant() {
    use diesel::Connection;
    use roster::auth::guard::{Caller, CallerFacts};
    let app = spawn_app().await;
    if !app.db.url.starts_with("postgres") {
        return;
    }
    let (a, b) = (app.new_owner("plus").await, app.new_owner("plus").await);
    let member = app.create_member(&a, "viewer", &[]).await;
    let user: roster::domain::UserId = member["id"].as_str().unwrap().parse().unwrap();
    let joined = |secret: &str| {
        let url = app.db.url.clone();
        let (tenant, digest) = (a.tenant_id.clone(), roster::domain::api_key::digest(secret));
        let mut conn = roster::db::AnyConnection::Postgresql(diesel::PgConnection::establish(&url).unwrap());
        let caller = Caller::Key { digest: &digest, at: roster::domain::now() };
        let (facts, rec) = roster::store::members::load_for_get(&mut conn, &tenant, user, Some(caller)).unwrap();
        assert_eq!(rec.map(|r| r.membership.user_id), Some(user.as_text()));
        match facts {
            Some(CallerFacts::Key(key, _)) => Some(key.id),
            _ => None,
        }
    };
    let live = create_key(&app, &a, json!({"name": "L", "kind": "api", "role": "owner"})).await;
    assert_eq!(joined(&secret(&live)).as_deref(), live["key"]["id"].as_str());
    // Revoked, another tenant's, unknown: nothing joined.
    let revoked = create_key(&app, &a, json!({"name": "R", "kind": "api", "role": "owner"})).await;
    let revoked_id = revoked["key"]["id"].as_str().unwrap();
    app.request(Method::DELETE, &format!("{}/{revoked_id}", keys_path(&a)), Some(&a.token)).send().await.unwrap();
    let foreign = create_key(&app, &b, json!({"name": "F", "kind": "api", "role": "owner"})).await;
    for s in [secret(&revoked), secret(&foreign), format!("rk_api_{}", "A".repeat(43))] {
        assert_eq!(joined(&s), None, "{s}");
    }
    // A rotated key: both secrets join in the grace period, the old one not after it.
    let rotated = create_key(&app, &a, json!({"name": "T", "kind": "api", "role": "owner"})).await;
    let id = rotated["key"]["id"].as_str().unwrap();
    let res = app
        .send_json(Method::POST, &format!("{}/{id}/rotate", keys_path(&a)), &a.token, json!({"grace_seconds": 3600}))
        .await;
    let new_secret = secret(&res.json::<Value>().await.unwrap());
    assert_eq!(joined(&secret(&rotated)).as_deref(), Some(id));
    assert_eq!(joined(&new_secret).as_deref(), Some(id));
    app.execute_sql(&format!("UPDATE api_keys SET previous_expires_at = '2000-01-01 00:00:00' WHERE id = '{id}'"));
    assert_eq!(joined(&secret(&rotated)), None);
    assert_eq!(joined(&new_secret).as_deref(), Some(id));
}
