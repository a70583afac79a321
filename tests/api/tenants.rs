//! Tenants (platform creation, settings) and regions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PLATFORM_TOKEN, assert_problem, spawn_app};

#[tokio::test]
async fn platform_creates_tenants_only_with_its_token() {
    let app = spawn_app().await;
    let res = app
        .request(Method::POST, "/api/v1/tenants", Some("wrong"))
        .json(&json!({"name": "X", "owner_email": "x@example.test"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401).await;
    let res = app
        .request(Method::POST, "/api/v1/tenants", None)
        .json(&json!({"name": "X", "owner_email": "x@example.test"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401).await;
    let res = app
        .request(Method::POST, "/api/v1/tenants", Some(PLATFORM_TOKEN))
        .json(&json!({"name": "", "owner_email": "nope"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let res = app
        .request(Method::POST, "/api/v1/tenants", Some(PLATFORM_TOKEN))
        .json(&json!({"name": "Typed", "owner_email": "typed@example.test", "owner_password": "a chosen owner passphrase", "plan": "enterprise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    assert!(created.get("password").is_none());
    let login = app.login_ok("typed@example.test", "a chosen owner passphrase", None).await;
    let tenant: Value = app
        .get(
            &format!("/api/v1/tenants/{}", created["tenant_id"].as_str().unwrap()),
            login["access_token"].as_str().unwrap(),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(tenant["plan"], "enterprise");
    assert_eq!(tenant["seat_limit"], Value::Null);
    assert_eq!(tenant["slug"], "typed");
}

#[tokio::test]
async fn tenant_settings_plan_and_seats() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let path = format!("/api/v1/tenants/{}", owner.tenant_id);
    let res = app.get(&path, &owner.token).await;
    let etag = res.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let t: Value = res.json().await.unwrap();
    assert_eq!(
        (t["plan"].as_str(), t["seat_limit"].as_i64(), t["seats_used"].as_i64()),
        (Some("free"), Some(6), Some(1))
    );
    let res = app
        .request(Method::PATCH, &path, Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"plan": "plus", "name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let t: Value = res.json().await.unwrap();
    assert_eq!((t["seat_limit"].as_i64(), t["name"].as_str()), (Some(50), Some("Renamed")));
    let res = app
        .request(Method::PATCH, &path, Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"plan": "free"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    let res = app
        .send_json(Method::PATCH, &path, &owner.token, json!({"seat_limit": 0, "settings": {"password_min_length": 4}}))
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"plan": "platinum"})).await;
    assert_problem(res, 422).await;
    app.create_member(&owner, "viewer", &[]).await;
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"seat_limit": 1})).await;
    assert_problem(res, 409).await;
    let res = app
        .send_json(
            Method::PATCH,
            &path,
            &owner.token,
            json!({"seat_limit": 2, "settings": {"password_min_length": 16}}),
        )
        .await;
    let t: Value = res.json().await.unwrap();
    assert_eq!((t["seat_limit"].as_i64(), t["settings"]["password_min_length"].as_i64()), (Some(2), Some(16)));
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"seat_limit": null})).await;
    let t: Value = res.json().await.unwrap();
    assert_eq!(t["seat_limit"].as_i64(), Some(50));
    // Billing owner must be an active owner.
    let viewer = app.create_member(&owner, "viewer", &[]).await;
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"billing_owner_id": viewer["id"]})).await;
    assert_problem(res, 422).await;
    // The new minimum applies to typed temporary passwords.
    let res = app
        .send_json(Method::POST, &format!("{path}/users"), &owner.token, json!({"email": "m@example.test", "full_name": "M", "role": "viewer", "temporary_password": "only13letters"}))
        .await;
    assert_problem(res, 422).await;
}

#[tokio::test]
async fn regions_tree_crud() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let base = format!("/api/v1/tenants/{}/regions", owner.tenant_id);
    let north = app.create_region(&owner, "North", None).await;
    let city = app.create_region(&owner, "City", Some(&north)).await;
    let res = app.send_json(Method::POST, &base, &owner.token, json!({"name": "North"})).await;
    assert_problem(res, 409).await;
    let res = app.send_json(Method::POST, &base, &owner.token, json!({"name": "  "})).await;
    assert_problem(res, 422).await;
    let res =
        app.send_json(Method::POST, &base, &owner.token, json!({"name": "Z", "parent_id": uuid::Uuid::now_v7()})).await;
    assert_problem(res, 422).await;
    // No cycles.
    let res = app.send_json(Method::PATCH, &format!("{base}/{north}"), &owner.token, json!({"parent_id": city})).await;
    assert_problem(res, 422).await;
    let res = app.send_json(Method::PATCH, &format!("{base}/{north}"), &owner.token, json!({"parent_id": north})).await;
    assert_problem(res, 422).await;
    // Idempotent creation.
    let send = || {
        app.request(Method::POST, &base, Some(&owner.token))
            .header("Idempotency-Key", "r-1")
            .json(&json!({"name": "Once"}))
    };
    let first: Value = send().send().await.unwrap().json().await.unwrap();
    let again = send().send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    app.request(Method::DELETE, &format!("{base}/{}", first["id"].as_str().unwrap()), Some(&owner.token))
        .send()
        .await
        .unwrap();
    // ETags: a stale If-Match is refused for PATCH and DELETE.
    let res = app.get(&format!("{base}/{city}"), &owner.token).await;
    let etag = res.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let res = app
        .request(Method::PATCH, &format!("{base}/{city}"), Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"name": "Town0"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_ne!(res.headers().get("etag").unwrap().to_str().unwrap(), etag);
    let res = app
        .request(Method::PATCH, &format!("{base}/{city}"), Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"name": "Town1"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    let res = app
        .request(Method::DELETE, &format!("{base}/{city}"), Some(&owner.token))
        .header("If-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    // Rename and move to top level.
    let res = app
        .send_json(Method::PATCH, &format!("{base}/{city}"), &owner.token, json!({"name": "Town", "parent_id": null}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let r: Value = res.json().await.unwrap();
    assert_eq!((r["name"].as_str(), r["parent_id"].clone()), (Some("Town"), Value::Null));
    // In use: 409; free: 204.
    app.create_member(&owner, "viewer", &[&north]).await;
    assert_problem(
        app.request(Method::DELETE, &format!("{base}/{north}"), Some(&owner.token)).send().await.unwrap(),
        409,
    )
    .await;
    let res = app.request(Method::DELETE, &format!("{base}/{city}"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let list: Value = app.get(&base, &owner.token).await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn platform_creation_is_idempotent_with_a_key() {
    let app = spawn_app().await;
    let body = json!({"name": "Keyed", "owner_email": "keyed@example.test", "plan": "plus"});
    let send = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.request(Method::POST, "/api/v1/tenants", Some(PLATFORM_TOKEN))
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // Parallel first attempts with one key create one tenant; every answer names it.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let (client, url, body) = (app.client.clone(), format!("{}/api/v1/tenants", app.address), body.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(PLATFORM_TOKEN)
                .header("Idempotency-Key", "tenant-key-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = res.headers().get("Idempotent-Replayed").is_some();
            (res.status(), replayed, res.json::<Value>().await.unwrap())
        }));
    }
    let mut tenant_ids = Vec::new();
    let mut passwords = 0;
    for task in tasks {
        let (status, replayed, v) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED);
        if replayed {
            assert!(v.get("password").is_none(), "a replay never carries the password");
        } else {
            passwords += usize::from(v["password"].is_string());
        }
        tenant_ids.push(v["tenant_id"].as_str().unwrap().to_string());
    }
    tenant_ids.dedup();
    assert_eq!(tenant_ids.len(), 1, "one tenant for one key");
    assert_eq!(passwords, 1, "the generated password is shown once");
    // The same key with a different request is refused and creates nothing.
    let res = send("tenant-key-1", json!({"name": "Other", "owner_email": "other@example.test"})).await;
    let problem = assert_problem(res, 409).await;
    assert!(problem["type"].as_str().unwrap().ends_with("idempotency-key-reused"));
    let res = app.login(json!({"email": "other@example.test", "password": "whatever it is"})).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A bad key is a clear 400.
    let res = send("  ", body.clone()).await;
    assert_problem(res, 400).await;
}
