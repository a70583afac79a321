//! Secrets at rest: the database holds only digests (generated secrets) and argon2id hashes
//! (typed passwords), never a password itself; logs of changes carry none either.

use diesel::prelude::*;
use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

fn stored_hash(app: &crate::helpers::TestApp, email: &str) -> String {
    use roster::db::schema::users::dsl as u;
    let pool = roster::db::build_pool(&app.db.url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    u::users.filter(u::email.eq(email)).select(u::password_hash).first::<Option<String>>(&mut *conn).unwrap().unwrap()
}

fn whole_database_text(app: &crate::helpers::TestApp) -> String {
    use roster::db::schema::{audit_events::dsl as a, idempotency_keys::dsl as ik, users::dsl as u};
    let pool = roster::db::build_pool(&app.db.url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let users: Vec<(String, Option<String>)> = u::users.select((u::email, u::password_hash)).load(&mut *conn).unwrap();
    let audit: Vec<(Option<String>, Option<String>)> =
        a::audit_events.select((a::before_state, a::after_state)).load(&mut *conn).unwrap();
    let replays: Vec<String> = ik::idempotency_keys.select(ik::body).load(&mut *conn).unwrap();
    format!("{users:?}{audit:?}{replays:?}")
}

#[tokio::test]
async fn only_digests_and_argon2_hashes_are_stored() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    // Generated temporary password: a SHA-256 digest of it, nothing else.
    let generated = app.create_member(&owner, "viewer", &[]).await;
    let temp = generated["temporary_password"].as_str().unwrap();
    let stored = stored_hash(&app, generated["email"].as_str().unwrap());
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(temp.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(stored, format!("sha256:{digest}"));
    // A typed temporary password and a chosen password: argon2id with OWASP parameters.
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let res = app
        .request(Method::POST, &path, Some(&owner.token))
        .header("Idempotency-Key", "secrets-test")
        .json(&json!({"email": "typed@example.test", "full_name": "Typed", "role": "viewer", "temporary_password": "typed temporary secret"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let stored = stored_hash(&app, "typed@example.test");
    assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
    let member = app.new_member(&owner, "operator", &[]).await;
    let stored = stored_hash(&app, &member.email);
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    // No secret appears anywhere in users, audit events or stored replays.
    let text = whole_database_text(&app);
    for secret in [temp, "typed temporary secret", member.password.as_str(), owner.password.as_str()] {
        assert!(!text.contains(secret), "a secret is stored in clear");
    }
}

#[tokio::test]
async fn the_signing_key_is_sealed_with_the_master_key() {
    use roster::db::schema::signing_keys::dsl as sk;
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let pool = roster::db::build_pool(&app.db.url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let (kid, stored): (String, String) =
        sk::signing_keys.select((sk::kid, sk::private_key)).first(&mut *conn).unwrap();
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    drop(conn);
    // Another instance with the same master key signs and verifies alike.
    let second = app.second_instance().await;
    assert_eq!(second.get("/api/v1/me", &owner.token).await.status(), 200);
    // With another master key the stored key cannot be opened, and start-up says why.
    let mut other = crate::helpers::config(&app.db.url);
    other.master_key = Some(secrecy::SecretString::from(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [9u8; 32],
    )));
    let err = roster::Application::build(other).await.err().expect("a wrong master key is refused");
    assert!(err.contains("same master key"), "{err}");
    // A key stored in clear by an older version is sealed at the next start.
    let mut conn = pool.get().unwrap();
    let seed = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [5u8; 32]);
    diesel::update(sk::signing_keys.filter(sk::kid.eq(&kid)))
        .set(sk::private_key.eq(&seed))
        .execute(&mut *conn)
        .unwrap();
    drop(conn);
    let _third = app.second_instance().await;
    let mut conn = pool.get().unwrap();
    let resealed: String = sk::signing_keys.filter(sk::kid.eq(&kid)).select(sk::private_key).first(&mut *conn).unwrap();
    assert!(resealed.starts_with("sealed:v1:"), "{resealed}");
}

fn sha256_hex(secret: &str) -> String {
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{digest}")
}

/// Refresh and invitation tokens are stored as SHA-256 digests only; queued email (which
/// carries links) is sealed; none of them appears in clear anywhere in those tables.
#[tokio::test]
async fn refresh_and_invitation_tokens_are_stored_as_digests() {
    use roster::db::schema::{
        invitations::dsl as i, outbox::dsl as o, rotated_refresh_tokens::dsl as rt, sessions::dsl as s,
    };
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let login = app.login_ok(&owner.email, &owner.password, None).await;
    let first = login["refresh_token"].as_str().unwrap().to_string();
    let res = app
        .request(Method::POST, "/api/v1/auth/refresh", None)
        .json(&json!({"refresh_token": first}))
        .send()
        .await
        .unwrap();
    let second: serde_json::Value = res.json().await.unwrap();
    let second = second["refresh_token"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tenants/{}/invitations", owner.tenant_id);
    let res =
        app.send_json(Method::POST, &path, &owner.token, json!({"email": "in@example.test", "role": "viewer"})).await;
    assert_eq!(res.status(), 201);
    let outbox = app.data.path().join("outbox");
    let files = crate::email::wait_for(1, || {
        std::fs::read_dir(&outbox)
            .map(|d| d.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect())
            .unwrap_or_default()
    })
    .await;
    let mail = crate::email::parse(&files[0]);
    let invitation = crate::invitations::link_token(&mail, "accept-invitation");

    let pool = roster::db::build_pool(&app.db.url, 1).unwrap();
    let mut conn = pool.get().unwrap();
    let sid = login["session_id"].as_str().unwrap();
    let current: String = s::sessions.filter(s::id.eq(sid)).select(s::refresh_digest).first(&mut *conn).unwrap();
    assert_eq!(current, sha256_hex(&second));
    let rotated: Vec<String> = rt::rotated_refresh_tokens.select(rt::token_digest).load(&mut *conn).unwrap();
    assert!(rotated.contains(&sha256_hex(&first)), "{rotated:?}");
    let digest: String = i::invitations.select(i::token_digest).first(&mut *conn).unwrap();
    assert_eq!(digest, sha256_hex(&invitation));
    let sessions: Vec<(String, Option<String>)> =
        s::sessions.select((s::refresh_digest, s::user_agent)).load(&mut *conn).unwrap();
    let invitations: Vec<(String, String)> =
        i::invitations.select((i::token_digest, i::regions)).load(&mut *conn).unwrap();
    let mail: Vec<Option<String>> = o::outbox.select(o::sealed_message).load(&mut *conn).unwrap();
    let text = format!("{sessions:?}{rotated:?}{invitations:?}{mail:?}{}", whole_database_text(&app));
    for secret in [&first, &second, &invitation] {
        assert!(!text.contains(secret.as_str()), "a token is stored in clear");
    }
}
