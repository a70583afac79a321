//! Bad input of every kind answers problem+json and changes nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn bad_requests_are_problems_and_change_nothing() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let before = (app.member_count(&owner).await, app.audit_count(&owner).await);
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let url = format!("{}{users}", app.address);

    // Malformed JSON.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 400).await;
    assert_eq!(body["type"], "urn:roster:problem:malformed-json");
    // Trailing garbage.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body(r#"{"email": "t@example.test", "full_name": "T", "role": "viewer"} x"#)
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;
    // Wrong content type, and none.
    let res = app
        .client
        .post(&url)
        .bearer_auth(&owner.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(res, 415).await;
    let res = app.client.post(&url).bearer_auth(&owner.token).body("{}").send().await.unwrap();
    assert_problem(res, 415).await;
    // Unknown field, missing field, wrong type: named.
    let res = app
        .send_json(
            Method::POST,
            &users,
            &owner.token,
            json!({"email": "a@example.test", "full_name": "A", "role": "viewer", "is_admin": true}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "is_admin");
    let res = app.send_json(Method::POST, &users, &owner.token, json!({"full_name": "A", "role": "viewer"})).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "email");
    let res = app
        .send_json(
            Method::POST,
            &users,
            &owner.token,
            json!({"email": "a@example.test", "full_name": "A", "role": "viewer", "regions": [1]}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "regions[0]");
    // Too large.
    let huge = "x".repeat(100 * 1024);
    let res = app
        .send_json(
            Method::POST,
            &users,
            &owner.token,
            json!({"email": "a@example.test", "full_name": huge, "role": "viewer"}),
        )
        .await;
    assert_problem(res, 413).await;
    // Bad path ids.
    let res = app.get(&format!("{users}/not-a-uuid"), &owner.token).await;
    let body = assert_problem(res, 400).await;
    assert_eq!(body["type"], "urn:roster:problem:invalid-id");
    let res = app.get("/api/v1/tenants/42/users", &owner.token).await;
    assert_problem(res, 400).await;
    let res = app.get(&format!("/api/v1/tenants/{}/regions/zzz", owner.tenant_id), &owner.token).await;
    assert_problem(res, 400).await;
    // Unknown routes and methods.
    let res = app.get("/api/v1/nothing-here", &owner.token).await;
    assert_problem(res, 404).await;
    let res = app.request(Method::PUT, &users, Some(&owner.token)).json(&json!({})).send().await.unwrap();
    assert!(res.status() == StatusCode::NOT_FOUND || res.status() == StatusCode::METHOD_NOT_ALLOWED);
    assert!(res.headers().get("content-type").unwrap().to_str().unwrap().starts_with("application/problem+json"));
    // Bad optional body on password reset.
    let me = app.create_member(&owner, "viewer", &[]).await;
    let reset = format!("{}{users}/{}/password-reset", app.address, me["id"].as_str().unwrap());
    let res = app
        .client
        .post(&reset)
        .bearer_auth(&owner.token)
        .header("content-type", "application/json")
        .body("{\"oops\": 1}")
        .send()
        .await
        .unwrap();
    assert_problem(res, 422).await;
    let after_member = app.member_count(&owner).await;
    assert_eq!(after_member, before.0 + 1);
    assert_eq!(app.audit_count(&owner).await, before.1 + 1, "only the one valid create was recorded");
    // Login with a malformed body.
    let res = app
        .client
        .post(format!("{}/api/v1/auth/login", app.address))
        .header("content-type", "application/json")
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_problem(res, 422).await;
}

#[tokio::test]
async fn request_ids_and_health() {
    let app = spawn_app().await;
    let res =
        app.client.get(format!("{}/healthz", app.address)).header("X-Request-Id", "abc-123").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("x-request-id").unwrap(), "abc-123");
    let res = app.client.get(format!("{}/readyz", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().get("x-request-id").unwrap().is_empty());
    let res = app.client.get(format!("{}/nope", app.address)).send().await.unwrap();
    assert!(res.headers().get("x-request-id").is_some(), "errors carry the request id too");
    let res = app.client.get(format!("{}/swagger-ui/", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.text().await.unwrap().contains("swagger"));
    let res = app.client.get(format!("{}/api-docs/openapi.json", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    app.get(&format!("/api/v1/tenants/{}/users", owner.tenant_id), &owner.token).await;
    let text = app.client.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(
            r#"roster_http_requests_total{method="GET",route="/api/v1/tenants/{tenant_id}/users",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("roster_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"roster_db_connections{pool="read",state="open"}"#));
    assert!(!text.contains(&owner.tenant_id), "no ids in metric labels");
}

/// PostgreSQL: connections the server dropped (a restart, a failover) answer 503 with
/// `Retry-After` and the problem document, never 500, and the pool replaces them: the service
/// recovers without a restart of its own.
#[tokio::test]
async fn lost_database_connections_answer_503_and_are_replaced() {
    let app = spawn_app().await;
    if !app.db.url.starts_with("postgres") {
        return;
    }
    let owner = app.new_owner("plus").await;
    let member = app.create_member(&owner, "viewer", &[]).await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, member["id"].as_str().unwrap());
    assert_eq!(app.get(&path, &owner.token).await.status(), StatusCode::OK);
    // Three times: how a dropped connection shows (the server's goodbye read, or a send that
    // fails) depends on timing, and each way must answer 503 and be replaced.
    for _ in 0..3 {
        app.execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        );
        let mut answers = Vec::new();
        for _ in 0..40 {
            let res = app.get(&path, &owner.token).await;
            let status = res.status();
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
                let body = assert_problem(res, 503).await;
                assert_eq!(body["type"], "urn:roster:problem:unavailable", "{body}");
            }
            answers.push(status.as_u16());
        }
        assert!(answers.iter().all(|s| [200, 503].contains(s)), "{answers:?}");
        assert!(answers.contains(&503), "no request met a dropped connection: {answers:?}");
        assert!(answers[30..].iter().all(|s| *s == 200), "not recovered: {answers:?}");
    }
}
