//! Invitations: create, list, resend, revoke, accept (new and existing people), seats, policy
//! and limits; and members created with an email to choose their password. Email goes
//! through a real SMTP server process.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::email::{Mail, SmtpServer, parse, wait_for};
use crate::helpers::{Persona, TestApp, assert_problem, spawn_app, spawn_app_with};

async fn with_smtp() -> (SmtpServer, TestApp) {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
    (smtp, app)
}

fn invitations(by: &Persona) -> String {
    format!("/api/v1/tenants/{}/invitations", by.tenant_id)
}

async fn invite(app: &TestApp, by: &Persona, body: Value) -> reqwest::Response {
    app.send_json(Method::POST, &invitations(by), &by.token, body).await
}

/// Invites `email` as `role`, asserting 201; returns the invitation.
async fn invite_ok(app: &TestApp, by: &Persona, email: &str, role: &str, regions: &[&str]) -> Value {
    let res = invite(app, by, json!({"email": email, "role": role, "regions": regions})).await;
    assert_eq!(res.status(), StatusCode::CREATED, "invite {email}");
    res.json().await.unwrap()
}

/// The token in a link `…/<path>?token=…` in a message.
pub fn link_token(mail: &Mail, path: &str) -> String {
    let marker = format!("/{path}?token=");
    let at = mail.text.find(&marker).unwrap_or_else(|| panic!("a {path} link in {}", mail.text)) + marker.len();
    mail.text[at..].split_whitespace().next().unwrap().to_string()
}

/// The invitation token in the `n`-th message (waiting for it).
async fn nth_token(smtp: &SmtpServer, n: usize) -> String {
    let mails = wait_for(n, || smtp.messages()).await;
    link_token(&parse(&mails[n - 1]), "accept-invitation")
}

async fn preview(app: &TestApp, token: &str) -> reqwest::Response {
    app.request(Method::GET, &format!("/api/v1/invitations/{token}"), None).send().await.unwrap()
}

async fn accept(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, &format!("/api/v1/invitations/{token}/accept"), None).json(&body).send().await.unwrap()
}

fn unique_email(tag: &str) -> String {
    format!("{tag}-{}@example.test", uuid::Uuid::now_v7().simple())
}

#[tokio::test]
async fn a_new_person_accepts_and_is_signed_in() {
    let (smtp, app) = with_smtp().await;
    let owner = app.new_owner("plus").await;
    let north = app.create_region(&owner, "North", None).await;
    let email = unique_email("bo");
    let created = invite_ok(&app, &owner, &email, "operator", &[&north]).await;
    assert_eq!(created["status"], "pending");
    assert_eq!(created["sent_count"], 1);
    assert!(created.get("token").is_none());

    let mails = wait_for(1, || smtp.messages()).await;
    let mail = parse(&mails[0]);
    assert!(mail.to.contains(&email));
    assert!(mail.subject.contains("invited you to Tenant"), "{}", mail.subject);
    assert!(mail.text.contains(&owner.email), "the inviter: {}", mail.text);
    assert!(mail.text.contains("as operator"), "{}", mail.text);
    let token = link_token(&mail, "accept-invitation");
    assert!(mail.text.contains("http://app.roster.test/accept-invitation?token="));
    assert!(mail.html.contains(&token));

    let seen: Value = preview(&app, &token).await.json().await.unwrap();
    assert_eq!(seen["tenant_name"], "Tenant");
    assert_eq!(seen["email"], email.as_str());
    assert_eq!(seen["role"], "operator");
    assert_eq!(seen["account_exists"], false);
    assert_eq!(seen["password_min_length"], 12);

    let res = accept(&app, &token, json!({"password": "a long passphrase of mine"})).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "full_name");
    let res = accept(&app, &token, json!({"full_name": "Bo Berg", "password": "password1234"})).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "password");
    let res = accept(&app, &token, json!({"full_name": "Bo Berg", "password": "a long passphrase of mine"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let signed_in: Value = res.json().await.unwrap();
    assert_eq!(signed_in["tenant_id"], owner.tenant_id);
    assert!(signed_in["refresh_token"].is_string());
    let me: Value = app.get("/api/v1/me", signed_in["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!((me["full_name"].as_str(), me["role"].as_str()), (Some("Bo Berg"), Some("operator")));
    assert_eq!(me["regions"], json!([north]));
    app.login_ok(&email, "a long passphrase of mine", None).await;

    // Used once.
    assert_problem(preview(&app, &token).await, 404).await;
    let again = accept(&app, &token, json!({"full_name": "Bo", "password": "a long passphrase of mine"})).await;
    assert_problem(again, 404).await;
    let listed: Value =
        app.get(&format!("{}?status=accepted", invitations(&owner)), &owner.token).await.json().await.unwrap();
    assert_eq!(listed["items"][0]["id"], created["id"]);
    assert_eq!(listed["items"][0]["accepted_by"], me["id"]);
    // Audited, never with the token.
    let all: Value =
        app.get(&format!("/api/v1/tenants/{}/audit-events", owner.tenant_id), &owner.token).await.json().await.unwrap();
    let actions: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"invitation.created") && actions.contains(&"invitation.accepted"), "{actions:?}");
    assert!(!all.to_string().contains(&token));
}

#[tokio::test]
async fn a_person_with_an_account_joins_with_their_password() {
    let (smtp, app) = with_smtp().await;
    let owner = app.new_owner("plus").await;
    let elsewhere = app.new_owner("plus").await;
    invite_ok(&app, &owner, &elsewhere.email.to_uppercase(), "viewer", &[]).await;
    let token = nth_token(&smtp, 1).await;
    let seen: Value = preview(&app, &token).await.json().await.unwrap();
    assert_eq!(seen["account_exists"], true);
    let wrong = accept(&app, &token, json!({"password": "not my password"})).await;
    let problem = assert_problem(wrong, 422).await;
    assert_eq!(problem["errors"][0]["field"], "password");
    let res = accept(&app, &token, json!({"full_name": "ignored", "password": elsewhere.password})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["tenant_id"], owner.tenant_id);
    let token_here = body["access_token"].as_str().unwrap();
    let tenants: Value = app.get("/api/v1/me/tenants", token_here).await.json().await.unwrap();
    let ids: Vec<&str> =
        tenants["items"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
    assert!(ids.contains(&owner.tenant_id.as_str()) && ids.contains(&elsewhere.tenant_id.as_str()), "{tenants}");
    let me: Value = app.get("/api/v1/me", token_here).await.json().await.unwrap();
    assert_eq!(me["role"], "viewer");
    assert_ne!(me["full_name"], "ignored");
    // Their sign-in now offers both tenants; their password is unchanged.
    let login = app.login_ok(&elsewhere.email, &elsewhere.password, None).await;
    assert_eq!(login["tenants"].as_array().unwrap().len(), 2);
    // Inviting a member again: 409.
    let res = invite(&app, &owner, json!({"email": elsewhere.email, "role": "viewer"})).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:already-member");
}

#[tokio::test]
async fn invitations_hold_seats_and_follow_the_policy() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await; // 6 seats: the owner and 5 more
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let operator = app.new_member(&owner, "operator", &[&north]).await;
    // Admins invite operators and viewers within their regions only.
    let viewer_north = invite_ok(&app, &admin, &unique_email("v"), "viewer", &[&north]).await;
    let res = invite(&app, &admin, json!({"email": unique_email("a"), "role": "admin", "regions": [north]})).await;
    assert_problem(res, 403).await;
    let res = invite(&app, &admin, json!({"email": unique_email("s"), "role": "viewer", "regions": [south]})).await;
    assert_problem(res, 403).await;
    let res = invite(&app, &operator, json!({"email": unique_email("o"), "role": "viewer", "regions": [north]})).await;
    assert_problem(res, 403).await;
    assert_problem(app.get(&invitations(&operator), &operator.token).await, 403).await;
    let res = invite(&app, &owner, json!({"email": "not an email", "role": "viewer"})).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "email");
    let res = invite(&app, &owner, json!({"email": unique_email("x"), "role": "boss"})).await;
    assert_problem(res, 422).await;

    // One open invitation per address.
    let dup = viewer_north["email"].as_str().unwrap();
    let res = invite(&app, &owner, json!({"email": dup, "role": "viewer"})).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:invitation-pending");

    // Seats: owner, admin, operator and this invitation hold 4; two more fit.
    let by_owner = invite_ok(&app, &owner, &unique_email("w"), "viewer", &[]).await;
    invite_ok(&app, &owner, &unique_email("x"), "viewer", &[]).await;
    let full = invite(&app, &owner, json!({"email": unique_email("y"), "role": "viewer"})).await;
    assert_eq!(assert_problem(full, 409).await["type"], "urn:roster:problem:seat-limit-reached");
    let tenant: Value =
        app.get(&format!("/api/v1/tenants/{}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(tenant["seats_used"], 6, "{tenant}");
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", owner.tenant_id),
            &owner.token,
            json!({"email": unique_email("m"), "full_name": "M", "role": "viewer"}),
        )
        .await;
    assert_problem(res, 409).await;
    // Revoking frees the seat.
    let id = by_owner["id"].as_str().unwrap();
    let res =
        app.request(Method::DELETE, &format!("{}/{id}", invitations(&owner)), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    invite_ok(&app, &owner, &unique_email("z"), "viewer", &[]).await;

    // The admin sees only invitations it could have sent.
    let theirs: Value = app.get(&invitations(&admin), &admin.token).await.json().await.unwrap();
    let ids: Vec<&str> = theirs["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![viewer_north["id"].as_str().unwrap()]);
    let res = app.get(&format!("{}/{id}", invitations(&admin)), &admin.token).await;
    assert_problem(res, 404).await;
    let all: Value = app.get(&invitations(&owner), &owner.token).await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
    let bad = app.get(&format!("{}?status=open", invitations(&owner)), &owner.token).await;
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "status");
    let paged: Value = app.get(&format!("{}?limit=3", invitations(&owner)), &owner.token).await.json().await.unwrap();
    let rest: Value = app
        .get(
            &format!("{}?limit=3&cursor={}", invitations(&owner), paged["next_cursor"].as_str().unwrap()),
            &owner.token,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((paged["items"].as_array().unwrap().len(), rest["items"].as_array().unwrap().len()), (3, 1));
    assert!(rest["next_cursor"].is_null());
    // Another tenant's owner sees none of it.
    let stranger = app.new_owner("plus").await;
    let res = app.get(&format!("/api/v1/tenants/{}/invitations", owner.tenant_id), &stranger.token).await;
    assert_problem(res, 404).await;
    let res = app.get(&format!("{}/{id}", invitations(&stranger)), &stranger.token).await;
    assert_problem(res, 404).await;
}

#[tokio::test]
async fn resending_replaces_the_link_and_expired_or_revoked_links_stop_working() {
    let (smtp, app) = with_smtp().await;
    let owner = app.new_owner("plus").await;
    let created = invite_ok(&app, &owner, &unique_email("r"), "viewer", &[]).await;
    let path = format!("{}/{}", invitations(&owner), created["id"].as_str().unwrap());
    let first = nth_token(&smtp, 1).await;
    let res = app.request(Method::POST, &format!("{path}/resend"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let resent: Value = res.json().await.unwrap();
    assert_eq!(resent["sent_count"], 2);
    let second = nth_token(&smtp, 2).await;
    assert_ne!(first, second);
    assert_problem(preview(&app, &first).await, 404).await;
    assert_eq!(preview(&app, &second).await.status(), StatusCode::OK);

    // Seven days later the link no longer works; the list says expired; resending revives it.
    assert_eq!(app.execute_sql("UPDATE invitations SET expires_at = created_at"), 1);
    assert_problem(preview(&app, &second).await, 404).await;
    let res = accept(&app, &second, json!({"full_name": "R", "password": "a long passphrase of mine"})).await;
    assert_problem(res, 404).await;
    let expired: Value =
        app.get(&format!("{}?status=expired", invitations(&owner)), &owner.token).await.json().await.unwrap();
    assert_eq!(expired["items"][0]["status"], "expired");
    let res = app.request(Method::POST, &format!("{path}/resend"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let third = nth_token(&smtp, 3).await;
    assert_eq!(preview(&app, &third).await.status(), StatusCode::OK);

    // Revoked: the link stops working, and it cannot be resent.
    let res = app.request(Method::DELETE, &path, Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(preview(&app, &third).await, 404).await;
    let res = app.request(Method::POST, &format!("{path}/resend"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:invitation-closed");
    let seen: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!(seen["status"], "revoked");
    let bad = app.get(&format!("{}/not-a-uuid", invitations(&owner)), &owner.token).await;
    assert_problem(bad, 400).await;

    // An accepted invitation cannot be revoked.
    invite_ok(&app, &owner, &unique_email("t"), "viewer", &[]).await;
    let token = nth_token(&smtp, 4).await;
    let res = accept(&app, &token, json!({"full_name": "T", "password": "a long passphrase of mine"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let accepted: Value =
        app.get(&format!("{}?status=accepted", invitations(&owner)), &owner.token).await.json().await.unwrap();
    let id = accepted["items"][0]["id"].as_str().unwrap();
    let res =
        app.request(Method::DELETE, &format!("{}/{id}", invitations(&owner)), Some(&owner.token)).send().await.unwrap();
    assert_problem(res, 409).await;
}

/// One link, many accepts at once: one account, one membership.
#[tokio::test]
async fn parallel_accepts_let_one_through() {
    let (smtp, app) = with_smtp().await;
    let owner = app.new_owner("plus").await;
    let email = unique_email("p");
    invite_ok(&app, &owner, &email, "viewer", &[]).await;
    let token = nth_token(&smtp, 1).await;
    let body = json!({"full_name": "P", "password": "a long passphrase of mine"});
    let answers = futures_util::future::join_all((0..6).map(|_| accept(&app, &token, body.clone()))).await;
    let mut ok = 0;
    for res in answers {
        match res.status() {
            StatusCode::OK => ok += 1,
            status @ (StatusCode::NOT_FOUND | StatusCode::CONFLICT) => {
                assert_problem(res, status.as_u16()).await;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);
    let members: Value = app
        .get(&format!("/api/v1/tenants/{}/users?q={email}", owner.tenant_id), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["total"], 1);
}

#[tokio::test]
async fn a_member_created_with_an_email_chooses_their_password() {
    let (smtp, app) = with_smtp().await;
    let owner = app.new_owner("plus").await;
    let email = unique_email("e");
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let both = json!({"email": email, "full_name": "Eve", "role": "viewer", "delivery": "email", "temporary_password": "a typed one here"});
    let res = app.send_json(Method::POST, &users, &owner.token, both).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "temporary_password");
    let body = json!({"email": email, "full_name": "Eve", "role": "viewer", "delivery": "email"});
    let res = app.send_json(Method::POST, &users, &owner.token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert!(created.get("temporary_password").is_none(), "{created}");
    assert_eq!(created["delivery"], "email");
    let mail = parse(&wait_for(1, || smtp.messages()).await[0]);
    assert!(mail.to.contains(&email));
    assert!(mail.subject.contains("Tenant"), "{}", mail.subject);
    assert!(mail.text.contains("Hello Eve,") && mail.text.contains("member of Tenant"), "{}", mail.text);
    let token = link_token(&mail, "set-password");
    // No password until they choose one.
    assert_problem(app.login(json!({"email": email, "password": "anything at all"})).await, 401).await;
    let res = app
        .request(Method::POST, "/api/v1/auth/password-reset/confirm", None)
        .json(&json!({"token": token, "new_password": "my very own passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let login = app.login_ok(&email, "my very own passphrase", None).await;
    assert_eq!(login["must_change_password"], false);
    assert!(login["refresh_token"].is_string());
}

/// "Add user" with the email of someone who already has an account (elsewhere): they are
/// invited, under the invitation rules, and nothing of their account shows.
#[tokio::test]
async fn creating_a_member_whose_email_has_an_account_invites_them() {
    let (smtp, app) = with_smtp().await;
    let home = app.new_owner("plus").await;
    let person = app.new_member(&home, "operator", &[]).await;
    let other = app.new_member(&home, "viewer", &[]).await;
    let owner = app.new_owner("free").await; // 6 seats
    let north = app.create_region(&owner, "North", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let send = |by: &Persona, key: Option<&str>, body: Value| {
        let mut rb = app.request(Method::POST, &users, Some(&by.token)).json(&body);
        if let Some(key) = key {
            rb = rb.header("Idempotency-Key", key);
        }
        async move { rb.send().await.unwrap() }
    };
    let body = json!({
        "email": person.email.to_uppercase(), "full_name": "Someone Else", "username": "taken-over",
        "role": "viewer", "regions": [north], "job_title": "Driver"
    });
    let res = send(&owner, Some("add-person"), body.clone()).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let invitation: Value = res.json().await.unwrap();
    assert_eq!(invitation["status"], "pending");
    assert_eq!(invitation["email"], person.email.as_str());
    assert_eq!((invitation["role"].as_str(), &invitation["regions"]), (Some("viewer"), &json!([north])));
    // Nothing of the person beyond what was sent: no id, name, status or other tenant.
    let text = invitation.to_string();
    for secret in [&person.user_id, &home.tenant_id, "Test operator", "active", "temporary_password"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(app.member_count(&owner).await, 2, "not a member until they accept");
    // A retry with the key replays the answer; without it, the open invitation is in the way.
    let again = send(&owner, Some("add-person"), body.clone()).await;
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.json::<Value>().await.unwrap()["id"], invitation["id"]);
    let res = send(&owner, None, body.clone()).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:invitation-pending");
    let listed: Value = app.get(&invitations(&owner), &owner.token).await.json().await.unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // The invitation email; they join with their own password, keeping their name.
    let mail = parse(&wait_for(1, || smtp.messages()).await[0]);
    assert!(mail.to.contains(&person.email) && mail.subject.contains("invited you to Tenant"), "{}", mail.subject);
    let res = accept(&app, &link_token(&mail, "accept-invitation"), json!({"password": person.password})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let joined: Value = res.json().await.unwrap();
    let me: Value = app.get("/api/v1/me", joined["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!((me["full_name"].as_str(), me["role"].as_str()), (Some("Test operator"), Some("viewer")));
    assert_eq!(me["regions"], json!([north]));
    assert_eq!(app.login_ok(&person.email, &person.password, None).await["tenants"].as_array().unwrap().len(), 2);
    // Audited as invitations are.
    let events = app.audit_events(&owner, "invitation.*").await;
    let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["invitation.accepted", "invitation.created"]);
    let created = &events[1];
    assert_eq!((created["target_type"].as_str(), &created["target_id"]), (Some("invitation"), &invitation["id"]));
    // Now a member: 409 as before.
    let res = send(&owner, None, body).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:already-member");

    // The invitation policy: an admin invites operators and viewers within its regions.
    let other_body = |role: &str, regions: Value| json!({"email": other.email, "full_name": "O", "role": role, "regions": regions, "delivery": "email"});
    assert_problem(send(&admin, None, other_body("admin", json!([north]))).await, 403).await;
    assert_problem(send(&admin, None, other_body("viewer", json!([]))).await, 403).await;
    let res = send(&admin, None, other_body("viewer", json!([north]))).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let mails = wait_for(2, || smtp.messages()).await;
    assert!(parse(&mails[1]).to.contains(&other.email));
    // Seats: the owner, the admin, the person and the open invitation hold 4 of 6.
    app.create_member(&owner, "viewer", &[]).await;
    app.create_member(&owner, "viewer", &[]).await;
    let res = send(&owner, None, json!({"email": home.email, "full_name": "H", "role": "viewer"})).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:seat-limit-reached");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 2);
}

#[tokio::test]
async fn invitation_emails_and_lookups_are_rate_limited() {
    let app = spawn_app_with(|c| {
        c.rate_tenant_emails_per_hour = 2;
        c.rate_invite_per_hour = 3;
    })
    .await;
    let owner = app.new_owner("plus").await;
    invite_ok(&app, &owner, &unique_email("a"), "viewer", &[]).await;
    invite_ok(&app, &owner, &unique_email("b"), "viewer", &[]).await;
    let res = invite(&app, &owner, json!({"email": unique_email("c"), "role": "viewer"})).await;
    assert!(res.headers().get("retry-after").is_some());
    let problem = assert_problem(res, 429).await;
    assert!(problem["detail"].as_str().unwrap().contains("emails from this tenant"), "{problem}");
    // Nothing was made.
    let all: Value = app.get(&invitations(&owner), &owner.token).await.json().await.unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    // Creating a member whose email has an account sends an invitation: limited alike.
    let elsewhere = app.new_owner("plus").await;
    let res = app.post_member(&owner, json!({"email": elsewhere.email, "full_name": "E", "role": "viewer"})).await;
    assert_problem(res, 429).await;
    // Guessing links: per client address.
    for _ in 0..3 {
        assert_problem(preview(&app, "guess").await, 404).await;
    }
    let res = preview(&app, "guess").await;
    assert!(res.headers().get("retry-after").is_some());
    assert_problem(res, 429).await;
}
