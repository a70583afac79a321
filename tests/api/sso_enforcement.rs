//! The SSO requirement (issue 13 item 4): `sso_required` and `sso_required_for_owners` in the
//! tenant settings; password sign-ins, switches and refreshes into an enforcing tenant refused
//! with 403 `sso-required` for addresses in its verified domains (owners exempt unless told);
//! a person's other tenants keep their password; self-service resets refused on the domain
//! alone.
//!
//! The enabled connection that `sso_required` needs is inserted with SQL until the connection
//! routes exist (`enable_connection`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::dns_harness::{DnsServer, verify_domain};
use crate::helpers::{Persona, TestApp, assert_problem, spawn_app_with};

fn unique_domain() -> String {
    format!("corp-{}.test", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// An enabled OIDC connection row for `tenant`; its id.
fn enable_connection(app: &TestApp, tenant: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    app.execute_sql(&format!(
        "INSERT INTO sso_connections (tenant_id, id, protocol, name, enabled, settings, sealed_secret, jit_enabled, \
         jit_role, jit_regions, created_by, created_at, updated_at, version) VALUES ('{tenant}', '{id}', 'oidc', \
         'Test IdP', true, '{{\"issuer\":\"https://idp.example\",\"client_id\":\"roster\",\"scopes\":[\"openid\",\"email\"]}}', \
         NULL, false, 'viewer', '[]', 'test', '2026-12-07 10:00:00', '2026-12-07 10:00:00', 1)"
    ));
    id
}

/// A tenant whose owner's address is `owner@<domain>`, signed in.
async fn tenant_at(app: &TestApp, domain: &str) -> Persona {
    let email = format!("owner@{domain}");
    let created = app.create_tenant("Corp", &email, "plus").await;
    let password = created["password"].as_str().unwrap().to_string();
    let login = app.login_ok(&email, &password, None).await;
    Persona {
        tenant_id: created["tenant_id"].as_str().unwrap().to_string(),
        user_id: created["user_id"].as_str().unwrap().to_string(),
        email,
        password,
        token: login["access_token"].as_str().unwrap().to_string(),
    }
}

/// A member of `owner`'s tenant with `email` and `role`, who has set their own password.
async fn member_with_email(app: &TestApp, owner: &Persona, email: &str, role: &str) -> Persona {
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", owner.tenant_id),
            &owner.token,
            json!({"email": email, "full_name": "Ann Member", "role": role, "regions": []}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let temp = created["temporary_password"].as_str().unwrap();
    let login = app.login_ok(email, temp, Some(&owner.tenant_id)).await;
    let password = format!("a long passphrase {}", uuid::Uuid::now_v7().simple());
    let res = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            login["access_token"].as_str().unwrap(),
            json!({"current_password": temp, "new_password": password}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    Persona {
        tenant_id: owner.tenant_id.clone(),
        user_id: created["id"].as_str().unwrap().to_string(),
        email: email.to_string(),
        password,
        token: body["access_token"].as_str().unwrap().to_string(),
    }
}

async fn set_sso(app: &TestApp, owner: &Persona, settings: Value) -> reqwest::Response {
    app.send_json(
        Method::PATCH,
        &format!("/api/v1/tenants/{}", owner.tenant_id),
        &owner.token,
        json!({"settings": settings}),
    )
    .await
}

/// A tenant with a verified domain, an enabled connection and `sso_required` on.
async fn enforcing_tenant(app: &TestApp, dns: &DnsServer) -> (Persona, String) {
    let domain = unique_domain();
    let owner = tenant_at(app, &domain).await;
    verify_domain(app, dns, &owner, &domain).await;
    enable_connection(app, &owner.tenant_id);
    (owner, domain)
}

async fn enforce(app: &TestApp, owner: &Persona) {
    let res = set_sso(app, owner, json!({"sso_required": true})).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
}

async fn assert_sso_required(res: reqwest::Response) -> Value {
    let p = assert_problem(res, 403).await;
    assert_eq!(p["type"], "urn:roster:problem:sso-required", "{p}");
    assert!(p["detail"].as_str().unwrap().contains("/api/v1/auth/sso/start"), "{p}");
    p
}

async fn app_with_dns() -> (TestApp, DnsServer) {
    let dns = DnsServer::start();
    let app = spawn_app_with(|c| dns.configure(c)).await;
    (app, dns)
}

#[tokio::test]
async fn requiring_sso_needs_a_verified_domain_and_an_enabled_connection() {
    let (app, dns) = app_with_dns().await;
    let domain = unique_domain();
    let owner = tenant_at(&app, &domain).await;
    let tenant: Value =
        app.get(&format!("/api/v1/tenants/{}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(tenant["settings"]["sso_required"], false);
    assert_eq!(tenant["settings"]["sso_required_for_owners"], false);

    // Nothing yet: both named.
    let p = assert_problem(set_sso(&app, &owner, json!({"sso_required": true})).await, 409).await;
    assert_eq!(p["type"], "urn:roster:problem:sso-not-ready");
    let detail = p["detail"].as_str().unwrap();
    assert!(detail.contains("verified domain") && detail.contains("enabled SSO connection"), "{detail}");

    // A pending domain is not enough; a verified one is half.
    verify_domain(&app, &dns, &owner, &domain).await;
    let p = assert_problem(set_sso(&app, &owner, json!({"sso_required": true})).await, 409).await;
    let detail = p["detail"].as_str().unwrap();
    assert!(!detail.contains("verified domain") && detail.contains("enabled SSO connection"), "{detail}");

    // A disabled connection does not count.
    let connection = enable_connection(&app, &owner.tenant_id);
    app.execute_sql(&format!("UPDATE sso_connections SET enabled = false WHERE id = '{connection}'"));
    assert_problem(set_sso(&app, &owner, json!({"sso_required": true})).await, 409).await;
    app.execute_sql(&format!("UPDATE sso_connections SET enabled = true WHERE id = '{connection}'"));

    // Admins never touch it, even with everything in place.
    let admin = app.new_member(&owner, "admin", &[]).await;
    let res = set_sso(&app, &admin, json!({"sso_required": true})).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = set_sso(&app, &owner, json!({"sso_required": true, "sso_required_for_owners": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["settings"]["sso_required"], true);
    assert_eq!(body["settings"]["sso_required_for_owners"], true);

    // Audited with before and after.
    let audits = app.audit_events(&owner, "tenant.updated").await;
    let last = &audits[0];
    let text = last.to_string();
    assert!(text.contains("sso_required"), "{last}");

    // The last verified domain stays while SSO is required.
    let list: Value =
        app.get(&format!("/api/v1/tenants/{}/domains", owner.tenant_id), &owner.token).await.json().await.unwrap();
    let domain_path =
        format!("/api/v1/tenants/{}/domains/{}", owner.tenant_id, list["items"][0]["id"].as_str().unwrap());
    let res = app.request(Method::DELETE, &domain_path, Some(&owner.token)).send().await.unwrap();
    let p = assert_problem(res, 409).await;
    assert_eq!(p["type"], "urn:roster:problem:sso-required-needs-domain");

    // Turning it off needs nothing; then the domain may go.
    let res = set_sso(&app, &owner, json!({"sso_required": false})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.request(Method::DELETE, &domain_path, Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn password_sign_in_into_an_enforcing_tenant_is_refused_after_the_password() {
    let (app, dns) = app_with_dns().await;
    let (owner, domain) = enforcing_tenant(&app, &dns).await;
    let ann = member_with_email(&app, &owner, &format!("ann@{domain}"), "operator").await;
    let outsider =
        member_with_email(&app, &owner, &format!("contractor-{}@elsewhere.test", &domain[..8]), "operator").await;
    // Before the requirement: everyone signs in.
    app.login_ok(&ann.email, &ann.password, None).await;
    enforce(&app, &owner).await;

    // The right password: 403 sso-required naming SSO. A wrong one: the usual 401.
    let p = assert_sso_required(app.login(json!({"email": ann.email, "password": ann.password})).await).await;
    assert!(p["detail"].as_str().unwrap().contains("single sign-on"), "{p}");
    assert_sso_required(
        app.login(json!({"email": ann.email.to_uppercase(), "password": ann.password, "tenant_id": owner.tenant_id}))
            .await,
    )
    .await;
    let res = app.login(json!({"email": ann.email, "password": "not the password at all"})).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // An address outside the verified domains keeps its password.
    app.login_ok(&outsider.email, &outsider.password, None).await;
    // Owners keep theirs...
    app.login_ok(&owner.email, &owner.password, None).await;
    // ...until the second setting takes it away.
    let res = set_sso(&app, &owner, json!({"sso_required_for_owners": true})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_sso_required(app.login(json!({"email": owner.email, "password": owner.password})).await).await;
    // Off again: both sign in with their passwords.
    let res = set_sso(&app, &owner, json!({"sso_required": false})).await;
    assert_eq!(res.status(), StatusCode::OK);
    app.login_ok(&owner.email, &owner.password, None).await;
    app.login_ok(&ann.email, &ann.password, None).await;
}

#[tokio::test]
async fn a_person_in_two_tenants_keeps_the_password_for_the_one_without_enforcement() {
    let (app, dns) = app_with_dns().await;
    let (owner, domain) = enforcing_tenant(&app, &dns).await;
    let ann = member_with_email(&app, &owner, &format!("ann@{domain}"), "operator").await;
    // Ann also owns another tenant (same identity, same password).
    let other = app.create_tenant("Side project", &ann.email, "plus").await;
    let other_id = other["tenant_id"].as_str().unwrap().to_string();
    assert!(other.get("password").is_none());
    enforce(&app, &owner).await;

    // Without a tenant: straight into the other one; the enforcing one is not offered.
    let login = app.login_ok(&ann.email, &ann.password, None).await;
    assert_eq!(login["tenant_id"], other_id.as_str());
    let tenants: Vec<&str> =
        login["tenants"].as_array().unwrap().iter().map(|t| t["tenant_id"].as_str().unwrap()).collect();
    assert_eq!(tenants, vec![other_id.as_str()]);
    // Asking for the enforcing tenant: 403 sso-required; for the other: fine.
    assert_sso_required(
        app.login(json!({"email": ann.email, "password": ann.password, "tenant_id": owner.tenant_id})).await,
    )
    .await;
    app.login_ok(&ann.email, &ann.password, Some(&other_id)).await;

    // Switching from the password session into the enforcing tenant: refused.
    let token = login["access_token"].as_str().unwrap();
    let res = app.send_json(Method::POST, "/api/v1/auth/switch", token, json!({"tenant_id": owner.tenant_id})).await;
    assert_sso_required(res).await;
    let res = app.send_json(Method::POST, "/api/v1/auth/switch", token, json!({"tenant_id": other_id})).await;
    assert_eq!(res.status(), StatusCode::OK);

    // A session that came from the enforcing tenant's SSO connection acts there, and only there.
    let rows = app.execute_sql(&format!(
        "UPDATE sessions SET sso_connection_id = (SELECT id FROM sso_connections WHERE tenant_id = '{0}'), tenant_id = '{0}' WHERE id = '{1}'",
        owner.tenant_id,
        login["session_id"].as_str().unwrap()
    ));
    assert_eq!(rows, 1);
    let res = app.send_json(Method::POST, "/api/v1/auth/switch", token, json!({"tenant_id": owner.tenant_id})).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let sso_token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let res = app.send_json(Method::POST, "/api/v1/auth/switch", &sso_token, json!({"tenant_id": other_id})).await;
    let p = assert_problem(res, 403).await;
    assert!(p["type"].as_str().unwrap().ends_with(":sso-session"), "{p}");

    // Owner exemption applies per tenant: Ann is only an operator in the enforcing one.
    let p = assert_sso_required(
        app.login(json!({"email": ann.email, "password": ann.password, "tenant_id": owner.tenant_id})).await,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("Corp"), "names the tenant: {p}");
}

#[tokio::test]
async fn a_password_session_ends_at_refresh_once_its_tenant_requires_sso() {
    let (app, dns) = app_with_dns().await;
    let (owner, domain) = enforcing_tenant(&app, &dns).await;
    let ann = member_with_email(&app, &owner, &format!("ann@{domain}"), "viewer").await;
    let bob = member_with_email(&app, &owner, &format!("bob@{domain}"), "viewer").await;
    let ann_login = app.login_ok(&ann.email, &ann.password, None).await;
    let bob_login = app.login_ok(&bob.email, &bob.password, None).await;
    // Bob's session came from the tenant's SSO connection.
    app.execute_sql(&format!(
        "UPDATE sessions SET sso_connection_id = (SELECT id FROM sso_connections WHERE tenant_id = '{}') WHERE id = '{}'",
        owner.tenant_id,
        bob_login["session_id"].as_str().unwrap()
    ));
    enforce(&app, &owner).await;

    let refresh = |token: &str| {
        app.request(Method::POST, "/api/v1/auth/refresh", None).json(&json!({"refresh_token": token})).send()
    };
    assert_sso_required(refresh(ann_login["refresh_token"].as_str().unwrap()).await.unwrap()).await;
    // The session is over: its token is no longer live.
    let res = refresh(ann_login["refresh_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Bob's SSO session goes on.
    let res = refresh(bob_login["refresh_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // Changing the password with a token from before does not open a new session there either.
    let res = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            &ann.token,
            json!({"current_password": ann.password, "new_password": "another long passphrase 42"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed.get("tenant_id"), None, "{changed}");
    assert_eq!(changed["tenants"], json!([]), "{changed}");
    let ended = app.audit_events(&owner, "session.ended").await;
    assert!(ended.iter().any(|e| e.to_string().contains("sso_required")), "{ended:#?}");
}

#[tokio::test]
async fn a_self_service_reset_in_an_enforced_domain_is_refused_whoever_asks() {
    let (app, dns) = app_with_dns().await;
    let (owner, domain) = enforcing_tenant(&app, &dns).await;
    let ann = member_with_email(&app, &owner, &format!("ann@{domain}"), "operator").await;
    let reset = |email: String| {
        app.request(Method::POST, "/api/v1/auth/password-reset", None).json(&json!({"email": email})).send()
    };
    // Before the requirement: the usual 202.
    assert_eq!(reset(ann.email.clone()).await.unwrap().status(), StatusCode::ACCEPTED);
    enforce(&app, &owner).await;

    let existing = assert_sso_required(reset(ann.email.to_uppercase()).await.unwrap()).await;
    let unknown = assert_sso_required(reset(format!("nobody@{domain}")).await.unwrap()).await;
    assert_eq!(existing, unknown, "the same answer whether the account exists");
    // The owner too (decided by the domain alone).
    assert_sso_required(reset(owner.email.clone()).await.unwrap()).await;
    // Other domains: 202 as ever.
    assert_eq!(reset("someone@elsewhere.test".into()).await.unwrap().status(), StatusCode::ACCEPTED);
    // A subdomain is not the verified domain.
    assert_eq!(reset(format!("x@eu.{domain}")).await.unwrap().status(), StatusCode::ACCEPTED);
}
