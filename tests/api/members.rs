//! Member administration: create, read, list, filter, sort, page, edit, status, delete, reset.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

/// Every `sort` the member list takes.
const SORTS: [&str; 12] = [
    "name",
    "-name",
    "email",
    "-email",
    "role",
    "-role",
    "job_title",
    "-job_title",
    "department",
    "-department",
    "created_at",
    "-created_at",
];

#[tokio::test]
async fn create_read_and_temporary_password() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let region = app.create_region(&owner, "North", None).await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": " Ann@Example.Test ", "full_name": "Ann Smith", "username": "Ann.S", "role": "operator",
                   "regions": [region], "job_title": "Dispatcher", "department": "Ops", "section": "A",
                   "manager_id": owner.user_id}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let etag = res.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["email"], "ann@example.test");
    assert_eq!(created["username"], "ann.s");
    assert_eq!(created["regions"], json!([region]));
    assert_eq!(created["manager_id"], owner.user_id.as_str());
    let temp = created["temporary_password"].as_str().unwrap();
    assert!(temp.len() >= 22, "128 bits of randomness");
    let id = created["id"].as_str().unwrap();
    let res = app.get(&format!("{path}/{id}"), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("etag").unwrap().to_str().unwrap(), etag);
    let read: Value = res.json().await.unwrap();
    assert!(read.get("temporary_password").is_none(), "shown once only");
    assert_eq!(read["department"], "Ops");
    // A typed temporary password must meet the policy.
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": "bob@example.test", "full_name": "Bob", "role": "viewer", "temporary_password": "short"}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "temporary_password");
    let res = app
        .send_json(Method::POST, &path, &owner.token, json!({"email": "bob@example.test", "full_name": "Bob", "role": "viewer", "temporary_password": "Bob's first day pass"}))
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let login = app.login_ok("bob@example.test", "Bob's first day pass", None).await;
    assert_eq!(login["must_change_password"], true);
    // Same email again: already a member.
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": "BOB@example.test", "full_name": "Bob", "role": "viewer"}),
        )
        .await;
    let body = assert_problem(res, 409).await;
    assert_eq!(body["type"], "urn:roster:problem:already-member");
    // Username taken.
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": "c@example.test", "full_name": "C", "role": "viewer", "username": "ann.s"}),
        )
        .await;
    assert_problem(res, 409).await;
}

#[tokio::test]
async fn validation_lists_every_field_and_changes_nothing() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let before = (app.member_count(&owner).await, app.audit_count(&owner).await);
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": "not-an-email", "full_name": "  ", "role": "viewer", "username": "x", "regions": ["nope"], "manager_id": "bad"}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    for f in ["email", "full_name", "username", "regions[0]", "manager_id"] {
        assert!(fields.contains(&f), "{f} missing in {fields:?}");
    }
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": "a@example.test", "full_name": "A", "role": "boss"}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "role");
    let res = app
        .send_json(
            Method::POST,
            &path,
            &owner.token,
            json!({"email": "a@example.test", "full_name": "A", "role": "viewer", "regions": [uuid::Uuid::now_v7()]}),
        )
        .await;
    assert_problem(res, 422).await;
    assert_eq!((app.member_count(&owner).await, app.audit_count(&owner).await), before);
}

#[tokio::test]
async fn list_filters_sorts_and_pages() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let north = app.create_region(&owner, "North", None).await;
    let city = app.create_region(&owner, "North City", Some(&north)).await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let people = [
        ("zoe@example.test", "Zoë Adams", "viewer", "Sales", vec![north.clone()]),
        ("yann@example.test", "Yann Baker", "operator", "Ops", vec![city.clone()]),
        ("xena@example.test", "Xena 100% Clark", "admin", "Ops", vec![north.clone()]),
        ("will@example.test", "Will_Davis", "viewer", "Sales", vec![]),
    ];
    for (email, name, role, dept, regions) in &people {
        let res = app
            .send_json(
                Method::POST,
                &path,
                &owner.token,
                json!({"email": email, "full_name": name, "role": role, "department": dept, "regions": regions}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let ids = |v: &Value| -> Vec<String> {
        v["items"].as_array().unwrap().iter().map(|m| m["email"].as_str().unwrap().to_string()).collect()
    };
    let q = |query: &str| {
        let app = &app;
        let path = path.clone();
        let token = owner.token.clone();
        let query = query.to_string();
        async move {
            let res = app.get(&format!("{path}?{query}"), &token).await;
            assert_eq!(res.status(), StatusCode::OK, "{query}");
            res.json::<Value>().await.unwrap()
        }
    };
    // Case-insensitive search including non-ASCII, and LIKE wildcards taken literally.
    assert_eq!(ids(&q("q=ZOË").await), vec!["zoe@example.test"]);
    assert_eq!(ids(&q("q=100%25").await), vec!["xena@example.test"]);
    assert_eq!(ids(&q("q=n_b").await), Vec::<String>::new(), "_ is not a wildcard");
    assert_eq!(ids(&q("q=will_").await), vec!["will@example.test"]);
    assert_eq!(q("role=viewer").await["total"], 2);
    assert_eq!(q("department=Ops").await["total"], 2);
    // Region filter includes sub-regions.
    assert_eq!(q(&format!("region={north}")).await["total"], 3);
    assert_eq!(q(&format!("region={city}")).await["total"], 1);
    // Sorting.
    assert_eq!(ids(&q("sort=email&department=Sales").await), vec!["will@example.test", "zoe@example.test"]);
    assert_eq!(ids(&q("sort=-email&department=Sales").await), vec!["zoe@example.test", "will@example.test"]);
    // Status filters.
    let will = q("q=will").await["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(app.set_status(&owner, &will, "disabled").await.status(), StatusCode::OK);
    assert_eq!(q("status=inactive").await["total"], 1);
    assert_eq!(q("status=disabled").await["total"], 1);
    assert_eq!(q("status=active").await["total"], 4);
    assert_eq!(q("status=all").await["total"], 5);
    // Keyset pages cover everything once, for every sort.
    for sort in SORTS {
        let walk = |filter: &'static str| {
            let (app, path, token, ids) = (&app, &path, &owner.token, &ids);
            async move {
                let pages = app.all_pages(&format!("{path}?limit=2&sort={sort}{filter}"), token).await;
                let totals: Vec<i64> = pages.iter().map(|p| p["total"].as_i64().unwrap()).collect();
                (totals, pages.iter().flat_map(ids).collect::<Vec<_>>())
            }
        };
        let (totals, seen) = walk("").await;
        assert!(totals.iter().all(|t| *t == 5), "sort {sort}: {totals:?}");
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "sort {sort}: {seen:?}");
        assert_eq!(seen.len(), 5, "sort {sort}: {seen:?}");
        // A search (through the trigram index on SQLite) pages in exactly the same order.
        let (totals, found) = walk("&q=example.test").await;
        let expected: Vec<String> = seen.iter().filter(|e| e.contains("example.test")).cloned().collect();
        assert_eq!(found, expected, "sort {sort} with q");
        assert!(totals.iter().all(|t| *t == expected.len() as i64), "sort {sort} with q: {totals:?}");
    }
    // Bad filters are named.
    for (query, field) in [
        ("sort=age", "sort"),
        ("status=gone", "status"),
        ("role=boss", "role"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("region=x", "region"),
    ] {
        let res = app.get(&format!("{path}?{query}"), &owner.token).await;
        let body = assert_problem(res, 422).await;
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
    let res = app.get(&format!("{path}?cursor=garbage"), &owner.token).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "cursor");
    let res = app.get(&format!("{path}?limit=abc"), &owner.token).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn patch_with_etags_managers_and_cycles() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let a = app.create_member(&owner, "operator", &[]).await;
    let b = app.create_member(&owner, "viewer", &[]).await;
    let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let path = |id: &str| format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id);
    let res = app.get(&path(a_id), &owner.token).await;
    let etag = res.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let res = app
        .request(Method::PATCH, &path(a_id), Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"job_title": "Lead", "department": "Ops", "full_name": "Alice Renamed", "email": "alice@example.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let new_etag = res.headers().get("etag").unwrap().to_str().unwrap().to_string();
    assert_ne!(etag, new_etag);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"], "alice@example.test");
    assert_eq!(body["job_title"], "Lead");
    // Stale If-Match.
    let res = app
        .request(Method::PATCH, &path(a_id), Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"job_title": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    let res = app
        .request(Method::PATCH, &path(a_id), Some(&owner.token))
        .header("If-Match", "nonsense")
        .json(&json!({"job_title": "X"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400).await;
    // Clearing with null.
    let res = app.send_json(Method::PATCH, &path(a_id), &owner.token, json!({"job_title": null})).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["job_title"], Value::Null);
    assert_eq!(body["department"], "Ops");
    // Managers: b reports to a; a reporting to b would be a cycle; nobody manages themselves.
    let res = app.send_json(Method::PATCH, &path(b_id), &owner.token, json!({"manager_id": a_id})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.send_json(Method::PATCH, &path(a_id), &owner.token, json!({"manager_id": b_id})).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "manager_id");
    let res = app.send_json(Method::PATCH, &path(a_id), &owner.token, json!({"manager_id": a_id})).await;
    assert_problem(res, 422).await;
    let res =
        app.send_json(Method::PATCH, &path(a_id), &owner.token, json!({"manager_id": uuid::Uuid::now_v7()})).await;
    assert_problem(res, 422).await;
    let res = app.get(&format!("/api/v1/tenants/{}/users?manager={a_id}", owner.tenant_id), &owner.token).await;
    let page: Value = res.json().await.unwrap();
    assert_eq!(page["total"], 1);
}

#[tokio::test]
async fn status_delete_and_last_owner() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let m = app.create_member(&owner, "operator", &[]).await;
    let id = m["id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id);
    // Only disabled members can be deleted.
    let res = app.request(Method::DELETE, &path, Some(&owner.token)).send().await.unwrap();
    let body = assert_problem(res, 409).await;
    assert_eq!(body["type"], "urn:roster:problem:member-not-disabled");
    let res = app.set_status(&owner, id, "invited").await;
    assert_problem(res, 422).await;
    assert_eq!(app.set_status(&owner, id, "disabled").await.status(), StatusCode::OK);
    let res = app.request(Method::DELETE, &path, Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&path, &owner.token).await, 404).await;
    // The deleted identity is gone: the email can be created again.
    app.send_json(
        Method::POST,
        &format!("/api/v1/tenants/{}/users", owner.tenant_id),
        &owner.token,
        json!({"email": m["email"], "full_name": "Again", "role": "viewer"}),
    )
    .await
    .error_for_status()
    .unwrap();
    // The last owner cannot be demoted or disabled, and nobody changes themselves.
    let own = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, owner.user_id);
    let res = app.send_json(Method::PATCH, &own, &owner.token, json!({"role": "admin"})).await;
    assert_problem(res, 403).await;
    let res = app.set_status(&owner, &owner.user_id, "disabled").await;
    assert_problem(res, 403).await;
    let second = app.new_member(&owner, "owner", &[]).await;
    let res = app.send_json(Method::PATCH, &own, &second.token, json!({"role": "admin"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let second_path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, second.user_id);
    let again = app.login_ok(&owner.email, &owner.password, None).await;
    let res = app
        .send_json(Method::PATCH, &second_path, again["access_token"].as_str().unwrap(), json!({"role": "viewer"}))
        .await;
    assert_problem(res, 404).await; // owners (no regions) lie outside every admin's scope
}

#[tokio::test]
async fn seat_limits_hold_for_create_and_enable() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await; // 6 seats, owner holds one
    let mut last = Value::Null;
    for _ in 0..5 {
        last = app.create_member(&owner, "viewer", &[]).await;
    }
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", owner.tenant_id),
            &owner.token,
            json!({"email": "seven@example.test", "full_name": "Seven", "role": "viewer"}),
        )
        .await;
    let body = assert_problem(res, 409).await;
    assert_eq!(body["type"], "urn:roster:problem:seat-limit-reached");
    // A disabled member frees a seat; enabling needs one.
    let id = last["id"].as_str().unwrap();
    assert_eq!(app.set_status(&owner, id, "disabled").await.status(), StatusCode::OK);
    app.create_member(&owner, "viewer", &[]).await;
    let res = app.set_status(&owner, id, "active").await;
    assert_problem(res, 409).await;
    // Creating a disabled member takes no seat.
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", owner.tenant_id),
            &owner.token,
            json!({"email": "off@example.test", "full_name": "Off", "role": "viewer", "status": "disabled"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let tenant: Value =
        app.get(&format!("/api/v1/tenants/{}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(tenant["seats_used"], 6);
    assert_eq!(tenant["seat_limit"], 6);
}

#[tokio::test]
async fn audit_log_records_every_change_with_filters() {
    let app = spawn_app().await;
    let owner = app.new_owner("free").await;
    let m = app.create_member(&owner, "viewer", &[]).await;
    let id = m["id"].as_str().unwrap();
    app.set_status(&owner, id, "disabled").await.error_for_status().unwrap();
    app.request(Method::DELETE, &format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id), Some(&owner.token))
        .header("X-Request-Id", "trace-me-42")
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    let path = format!("/api/v1/tenants/{}/audit-events", owner.tenant_id);
    let all: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    let actions: Vec<&str> = all["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["member.deleted", "member.disabled", "member.created", "tenant.created"]);
    let deleted = &all["items"][0];
    assert_eq!(deleted["actor_id"], owner.user_id.as_str());
    assert_eq!(deleted["target_id"], id);
    assert_eq!(deleted["request_id"], "trace-me-42");
    assert_eq!(deleted["ip"], "127.0.0.1");
    assert_eq!(deleted["before"]["email"], m["email"]);
    let text = all.to_string();
    assert!(!text.contains(m["temporary_password"].as_str().unwrap()), "no secret in the audit log");
    let filtered: Value = app.get(&format!("{path}?action=member.disabled"), &owner.token).await.json().await.unwrap();
    assert_eq!(filtered["total"], 1);
    let family: Value = app.get(&format!("{path}?action=member.*"), &owner.token).await.json().await.unwrap();
    assert_eq!(family["total"], 3);
    let by_target: Value = app.get(&format!("{path}?target_id={id}"), &owner.token).await.json().await.unwrap();
    assert_eq!(by_target["total"], 3);
    let by_actor: Value =
        app.get(&format!("{path}?actor_id={}", owner.user_id), &owner.token).await.json().await.unwrap();
    assert_eq!(by_actor["total"], 3);
    let future: Value = app.get(&format!("{path}?from=2999-01-01T00:00:00Z"), &owner.token).await.json().await.unwrap();
    assert_eq!(future["total"], 0);
    let past: Value = app.get(&format!("{path}?to=2999-01-01T00:00:00Z"), &owner.token).await.json().await.unwrap();
    assert_eq!(past["total"], 4);
    let page1: Value = app.get(&format!("{path}?limit=3"), &owner.token).await.json().await.unwrap();
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = app.get(&format!("{path}?limit=3&cursor={cursor}"), &owner.token).await.json().await.unwrap();
    assert_eq!(page2["items"][0]["action"], "tenant.created");
    assert_eq!(page2["next_cursor"], Value::Null);
    assert_problem(app.get(&format!("{path}?from=yesterday"), &owner.token).await, 422).await;
    // No route changes audit events.
    let some = all["items"][0]["id"].as_str().unwrap();
    for method in [Method::DELETE, Method::PATCH, Method::PUT] {
        let res = app.request(method, &format!("{path}/{some}"), Some(&owner.token)).send().await.unwrap();
        assert!(res.status() == StatusCode::NOT_FOUND || res.status() == StatusCode::METHOD_NOT_ALLOWED);
    }
}

#[tokio::test]
async fn idempotency_key_replays_the_first_answer() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let body = json!({"email": "idem@example.test", "full_name": "Idem", "role": "viewer"});
    let send = |key: &str, body: Value| {
        let rb = app.request(Method::POST, &path, Some(&owner.token)).header("Idempotency-Key", key).json(&body);
        async move { rb.send().await.unwrap() }
    };
    let first = send("key-1", body.clone()).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    assert!(first["temporary_password"].is_string());
    let again = send("key-1", body.clone()).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert!(again.get("temporary_password").is_none(), "secrets are never stored for replay");
    assert_eq!(again["delivery"], "temporary_password", "a replay has the shape of the first answer");
    // Same key, different request: refused. A new key: a real create (here, already a member).
    let other = send("key-1", json!({"email": "other@example.test", "full_name": "O", "role": "viewer"})).await;
    let problem = assert_problem(other, 409).await;
    assert_eq!(problem["type"], "urn:roster:problem:idempotency-key-reused");
    assert_problem(send("key-2", body.clone()).await, 409).await;
    assert_problem(send("", body).await, 400).await;
    assert_eq!(app.member_count(&owner).await, 2);
    // Parallel retries create one member.
    let body = json!({"email": "race@example.test", "full_name": "Race", "role": "viewer"});
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let rb = app.request(Method::POST, &path, Some(&owner.token)).header("Idempotency-Key", "race").json(&body);
            tokio::spawn(async move { rb.send().await.unwrap().status() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(app.member_count(&owner).await, 3);
}

#[tokio::test]
async fn a_failed_write_leaves_no_trace_even_among_parallel_writes() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let m = app.create_member(&owner, "viewer", &[]).await;
    let id = m["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id);
    // The identity change is written before the manager check fails: it must roll back.
    let bad = app
        .send_json(Method::PATCH, &path, &owner.token, json!({"email": "changed@example.test", "manager_id": id}))
        .await;
    assert_problem(bad, 422).await;
    // The same among parallel writes that succeed (they may share one commit).
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let rb = if i % 4 == 0 {
            app.request(Method::PATCH, &path, Some(&owner.token))
                .json(&json!({"email": format!("bad{i}@example.test"), "manager_id": id}))
        } else {
            app.request(Method::POST, &users, Some(&owner.token))
                .json(&json!({"email": format!("ok{i}@example.test"), "full_name": "Ok", "role": "viewer"}))
        };
        tasks.push(tokio::spawn(async move { rb.send().await.unwrap().status().as_u16() }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 12, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 422).count(), 4, "{statuses:?}");
    let read: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!(read["email"], m["email"]);
    assert_eq!(read["version"], 1);
    assert_eq!(app.member_count(&owner).await, 14);
}

#[tokio::test]
async fn search_follows_renames_and_deletes_at_once() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let found = |q: &'static str| {
        let (app, path, token) = (&app, path.clone(), owner.token.clone());
        async move {
            let res = app.get(&format!("{path}?q={q}"), &token).await;
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Value>().await.unwrap()["total"].as_i64().unwrap()
        }
    };
    let id = app
        .add_member(&owner, json!({"email": "quentin@example.test", "full_name": "Quentin Quarry", "role": "viewer"}))
        .await;
    assert_eq!(found("quarry").await, 1);
    let res = app
        .send_json(Method::PATCH, &format!("{path}/{id}"), &owner.token, json!({"full_name": "Quentin Stone"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!((found("quarry").await, found("stone").await), (0, 1), "a rename is searchable at once");
    // A write that fails leaves the index as it was.
    let res = app.send_json(Method::PATCH, &format!("{path}/{id}"), &owner.token, json!({"full_name": ""})).await;
    assert_problem(res, 422).await;
    assert_eq!(found("stone").await, 1);
    assert_eq!(app.set_status(&owner, &id, "disabled").await.status(), StatusCode::OK);
    let res = app.request(Method::DELETE, &format!("{path}/{id}"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(found("stone").await, 0, "a deleted member is gone from search");
}

/// SQLite: the search index's segments (one per write batch) are merged while the writer idles.
#[tokio::test]
async fn the_idle_writer_merges_the_search_index() {
    use diesel::prelude::*;
    let app = spawn_app().await;
    if app.db.url.starts_with("postgres") {
        return; // pg_trgm's GIN index needs no such upkeep
    }
    let segments = || {
        let pool = roster::db::build_pool(&app.db.url, 1).unwrap();
        let mut conn = pool.get().unwrap();
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(DISTINCT segid) FROM memberships_fts_idx)",
        ))
        .get_result::<i64>(&mut *conn)
        .unwrap()
    };
    let owner = app.new_owner("enterprise").await;
    for _ in 0..40 {
        app.create_member(&owner, "viewer", &[]).await;
    }
    assert!(segments() > 1, "one segment per write batch before the upkeep");
    let mut merged = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if segments() == 1 {
            merged = true;
            break;
        }
    }
    assert!(merged, "still {} segments after 10 s idle", segments());
    let res = app.get(&format!("/api/v1/tenants/{}/users?q=example.test", owner.tenant_id), &owner.token).await;
    assert_eq!(res.json::<Value>().await.unwrap()["total"], 41, "every member is still found");
}

/// Lists keep results in memory under the tenant's member-list version; a write committed
/// through another instance moves it, so no instance answers from an older result.
#[tokio::test]
async fn lists_follow_writes_made_on_another_instance() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let owner = app.new_owner("enterprise").await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let listed = |instance: &'static str, query: String| {
        let (app, other, path, token) = (&app, &other, path.clone(), owner.token.clone());
        async move {
            let on = if instance == "other" { other } else { app };
            let res = on.get(&format!("{path}?{query}"), &token).await;
            assert_eq!(res.status(), StatusCode::OK, "{query}");
            let body: Value = res.json().await.unwrap();
            let names: Vec<String> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["full_name"].as_str().unwrap().to_string())
                .collect();
            (body["total"].as_i64().unwrap(), names)
        }
    };
    let north = app.create_region(&owner, "North", None).await;
    let city = app.create_region(&owner, "North City", Some(&north)).await;
    let zed = app
        .add_member(
            &owner,
            json!({"email": "quasar@example.test", "full_name": "Zed Quasar", "role": "viewer", "regions": [city]}),
        )
        .await;
    let everyone = listed("other", "status=all".into()).await.0;
    assert_eq!(listed("other", "q=quasar".into()).await, (1, vec!["Zed Quasar".to_string()]));
    assert_eq!(listed("other", format!("q=zed&region={north}")).await.0, 1);

    // A rename on this instance: the other one's search sees it at once.
    let res =
        app.send_json(Method::PATCH, &format!("{path}/{zed}"), &owner.token, json!({"full_name": "Zed Nebula"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(listed("other", "q=quasar".into()).await, (1, vec!["Zed Nebula".to_string()]), "email still matches");
    assert_eq!(listed("other", "q=nebula".into()).await, (1, vec!["Zed Nebula".to_string()]));
    assert_eq!(listed("other", "q=zed&sort=name".into()).await.1, vec!["Zed Nebula".to_string()]);

    // A new member, a status change and a deletion move searches and plain totals alike.
    let two = app
        .add_member(&owner, json!({"email": "second@example.test", "full_name": "Quasar Two", "role": "viewer"}))
        .await;
    assert_eq!(listed("other", "status=all".into()).await.0, everyone + 1);
    assert_eq!(listed("other", "q=quasar&sort=name".into()).await.1, vec!["Quasar Two", "Zed Nebula"]);
    assert_eq!(app.set_status(&owner, &two, "disabled").await.status(), StatusCode::OK);
    assert_eq!(listed("other", "q=quasar&status=active".into()).await.1, vec!["Zed Nebula"]);
    assert_eq!(listed("other", "q=quasar&status=disabled".into()).await.1, vec!["Quasar Two"]);
    let res = app.request(Method::DELETE, &format!("{path}/{two}"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(listed("other", "q=quasar&status=all".into()).await.1, vec!["Zed Nebula"]);
    assert_eq!(listed("other", "status=all".into()).await.0, everyone);

    // Regions: the member's own, then the region tree.
    let res = app.send_json(Method::PATCH, &format!("{path}/{zed}"), &owner.token, json!({"regions": [north]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(listed("other", format!("q=zed&region={city}")).await.0, 0);
    assert_eq!(listed("other", format!("q=zed&region={north}")).await.0, 1);
    let res = app.send_json(Method::PATCH, &format!("{path}/{zed}"), &owner.token, json!({"regions": [city]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(listed("other", format!("q=zed&region={north}")).await.0, 1);
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}/regions/{city}", owner.tenant_id),
            &owner.token,
            json!({"parent_id": null}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(listed("other", format!("q=zed&region={north}")).await.0, 0, "North City is no longer under North");
    assert_eq!(listed("other", format!("region={north}&status=all")).await.0, 0);
    // A change no list is ordered by still shows on the page: a sign-in time.
    let created = app.create_member(&owner, "viewer", &[]).await;
    let (email, temp) = (created["email"].as_str().unwrap(), created["temporary_password"].as_str().unwrap());
    let page_url = format!("{path}?q={}", email.split('@').next().unwrap());
    let last_login = |page: Value| page["items"][0]["last_login_at"].clone();
    assert!(last_login(other.get(&page_url, &owner.token).await.json().await.unwrap()).is_null());
    app.login_ok(email, temp, Some(&owner.tenant_id)).await;
    assert!(last_login(other.get(&page_url, &owner.token).await.json().await.unwrap()).is_string(), "signed in");
    // And back on the first instance, which has held none of these results.
    assert_eq!(listed("app", "q=nebula".into()).await.0, 1);
}

/// The in-memory results change speed, never answers: an instance without them pages every
/// sort, with and without a search, exactly alike, and so does a repeat of the same walk.
#[tokio::test]
async fn lists_page_alike_with_and_without_the_result_cache() {
    let app = spawn_app().await;
    let uncached = app.second_instance_with(|c| c.list_cache_bytes = 0).await;
    let owner = app.new_owner("enterprise").await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    for (i, (name, dept, title)) in [
        ("Émile Zola", Some("Ops"), Some("Writer")),
        ("anne Smith", Some("ops"), None),
        ("Bob Smith", None, Some("writer")),
        ("bob smith", Some("Sales"), Some("Writer")),
        ("Zoë Smith", Some("Ops"), None),
        ("Al", None, None),
        ("Smithers", Some("Ops"), Some("Aide")),
    ]
    .into_iter()
    .enumerate()
    {
        let res = app
            .send_json(
                Method::POST,
                &path,
                &owner.token,
                json!({"email": format!("p{i}@example.test"), "full_name": name, "department": dept, "job_title": title, "role": "viewer"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let walk = |on: &'static str, query: String| {
        let (on, path, token) = (if on == "uncached" { &uncached } else { &app }, &path, &owner.token);
        async move {
            let pages = on.all_pages(&format!("{path}?limit=2&{query}"), token).await;
            pages
                .iter()
                .map(|p| {
                    let ids: Vec<String> =
                        p["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect();
                    (p["total"].as_i64().unwrap(), ids)
                })
                .collect::<Vec<_>>()
        }
    };
    for sort in SORTS {
        for filter in ["", "&q=smith", "&q=SMITH&department=Ops", "&q=mi"] {
            let query = format!("sort={sort}{filter}");
            let plain = walk("uncached", query.clone()).await;
            assert!(!plain.is_empty() && plain[0].0 > 0, "{query}: {plain:?}");
            assert_eq!(walk("app", query.clone()).await, plain, "{query}, first walk");
            assert_eq!(walk("app", query.clone()).await, plain, "{query}, repeated");
        }
    }
}
