//! Single sign-on's protocol-free parts: connection checks and policy, starting a sign-in with
//! no SSO set up, and codes that do not exchange. The whole flows against real identity
//! providers are in sso_oidc.rs and sso_saml.rs.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

fn connections(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/sso/connections")
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|e| e.iter().map(|f| f["field"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_connection_names_every_missing_or_wrong_setting_and_writes_nothing() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let url = connections(&owner.tenant_id);

    let res = app.send_json(Method::POST, &url, &owner.token, json!({"protocol": "ldap", "name": "x"})).await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(fields(&problem), ["protocol"], "{problem}");

    let res =
        app.send_json(Method::POST, &url, &owner.token, json!({"protocol": "oidc", "name": " ", "oidc": {}})).await;
    let problem = assert_problem(res, 422).await;
    let named = fields(&problem);
    for field in ["name", "oidc.issuer", "oidc.client_id", "oidc.client_secret"] {
        assert!(named.contains(&field.to_string()), "{field} named in {problem}");
    }

    // Plain http to a host that is not listed, and a private address: refused before any call.
    for issuer in ["http://idp.example.com", "https://10.0.0.1", "https://169.254.169.254"] {
        let body = json!({"protocol": "oidc", "name": "Okta",
            "oidc": {"issuer": issuer, "client_id": "c", "client_secret": "s"}});
        let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body).await, 422).await;
        assert_eq!(fields(&problem), ["oidc.issuer"], "{issuer}: {problem}");
    }

    // Just in time never makes admins or owners, and its regions must exist.
    let body = json!({"protocol": "oidc", "name": "Okta",
        "oidc": {"issuer": "http://idp.example.com", "client_id": "c", "client_secret": "s"},
        "just_in_time": {"enabled": true, "role": "admin"}});
    let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body).await, 422).await;
    assert_eq!(fields(&problem), ["just_in_time.role"], "{problem}");
    let body = json!({"protocol": "oidc", "name": "Okta",
        "oidc": {"issuer": "http://idp.example.com", "client_id": "c", "client_secret": "s"},
        "just_in_time": {"enabled": true, "role": "viewer", "region_ids": ["nope"]}});
    let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body).await, 422).await;
    let named = fields(&problem);
    for field in ["just_in_time.region_ids[0]", "oidc.issuer"] {
        assert!(named.contains(&field.to_string()), "{field} named in {problem}");
    }

    let body = json!({"protocol": "saml", "name": "Entra", "saml": {}});
    let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body).await, 422).await;
    assert_eq!(fields(&problem), ["saml"], "{problem}");

    let res = app.get(&url, &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["items"], json!([]), "nothing was written");
    assert_eq!(app.audit_events(&owner, "sso_connection.created").await.len(), 0);
}

#[tokio::test]
async fn only_owners_manage_connections_and_other_tenants_see_none() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let other = app.new_owner("plus").await;
    let admin = app.new_member(&owner, "admin", &[]).await;
    let url = connections(&owner.tenant_id);
    assert_problem(app.get(&url, &admin.token).await, 403).await;
    let body = json!({"protocol": "saml", "name": "Entra", "saml": {"idp_metadata_xml": "<x/>"}});
    assert_problem(app.send_json(Method::POST, &url, &admin.token, body.clone()).await, 403).await;
    assert_problem(app.get(&url, &other.token).await, 404).await;
    let one = format!("{url}/{}", uuid::Uuid::now_v7());
    assert_problem(app.get(&one, &owner.token).await, 404).await;
    assert_problem(app.send_json(Method::PATCH, &one, &owner.token, json!({"enabled": false})).await, 404).await;
    assert_problem(app.request(Method::DELETE, &one, Some(&owner.token)).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn starting_without_sso_answers_a_problem_the_login_page_can_act_on() {
    let app = spawn_app().await;
    let start = |body: Value| app.request(Method::POST, "/api/v1/auth/sso/start", None).json(&body).send();

    let problem = assert_problem(start(json!({"email": "ann@nobody-set-this-up.example"})).await.unwrap(), 404).await;
    assert!(problem["type"].as_str().unwrap().ends_with(":sso-not-configured"), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("password"), "{problem}");

    let problem =
        assert_problem(start(json!({"connection_id": uuid::Uuid::now_v7().to_string()})).await.unwrap(), 404).await;
    assert!(problem["type"].as_str().unwrap().ends_with(":sso-not-configured"), "{problem}");

    for body in [json!({}), json!({"email": "a@b.example", "connection_id": uuid::Uuid::now_v7().to_string()})] {
        let problem = assert_problem(start(body.clone()).await.unwrap(), 422).await;
        assert_eq!(fields(&problem), ["email"], "{body}: {problem}");
    }
    let problem = assert_problem(start(json!({"email": "not an email"})).await.unwrap(), 422).await;
    assert_eq!(fields(&problem), ["email"], "{problem}");
    let problem = assert_problem(start(json!({"connection_id": "nope"})).await.unwrap(), 422).await;
    assert_eq!(fields(&problem), ["connection_id"], "{problem}");
}

#[tokio::test]
async fn a_code_that_was_never_handed_out_exchanges_for_nothing() {
    let app = spawn_app().await;
    let exchange = |code: &str| {
        app.request(Method::POST, "/api/v1/auth/sso/exchange", None)
            .json(&json!({"code": code, "browser_secret": "x"}))
            .send()
    };
    let problem = assert_problem(exchange("kq3V1x1nS2u8rYbqk0mZ7w").await.unwrap(), 401).await;
    assert!(problem["detail"].as_str().unwrap().contains("once"), "{problem}");
    assert_problem(exchange("").await.unwrap(), 422).await;
}
