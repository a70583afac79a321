//! The contract, exact: times in RFC 3339 with `Z`, every bad field named at once, unknown
//! query parameters refused, 401 before anything else on protected routes, and 405 with
//! `Allow` for a method a documented path does not serve. The document itself drives the
//! route walks, so a new route is covered the day it is added.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

/// Every string in `v` that looks like a time, with the path to it.
fn times(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s)
            if s.len() >= 19 && s.as_bytes()[4] == b'-' && s.as_bytes().get(10).is_some_and(|b| *b == b'T') =>
        {
            out.push((path.to_string(), s.clone()))
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, x)| times(x, &format!("{path}[{i}]"), out)),
        Value::Object(fields) => fields.iter().for_each(|(k, x)| times(x, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

/// Asserts that every time in `v` is UTC with `Z` and reads back as the same instant; returns
/// how many there were.
fn assert_times_utc(v: &Value, what: &str) -> usize {
    let mut found = Vec::new();
    times(v, "", &mut found);
    for (path, t) in &found {
        assert!(t.ends_with('Z'), "{what}{path}: {t} has no Z");
        let parsed = chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{what}{path}: {t}: {e}"));
        assert_eq!(parsed.offset().local_minus_utc(), 0, "{what}{path}");
    }
    found.len()
}

#[tokio::test]
async fn every_time_in_every_answer_is_utc_with_z() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let t = &owner.tenant_id;
    let region = app.create_region(&owner, "North", None).await;
    let ann = app.create_member(&owner, "operator", &[&region]).await;
    let ann_id = ann["id"].as_str().unwrap().to_string();
    // A lock shows `locked_until`, and its audit event carries it in `after`.
    for _ in 0..5 {
        let res = app.login(json!({"email": ann["email"], "password": "not the password at all"})).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let dept = app
        .send_json(Method::POST, &format!("/api/v1/tenants/{t}/departments"), &owner.token, json!({"name": "Ops"}))
        .await;
    assert_eq!(dept.status(), StatusCode::CREATED);
    let dept: Value = dept.json().await.unwrap();
    let invite = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{t}/invitations"),
            &owner.token,
            json!({"email": "bo@example.test", "role": "viewer"}),
        )
        .await;
    assert_eq!(invite.status(), StatusCode::CREATED);
    let bulk = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{t}/users/bulk"),
            &owner.token,
            json!({"action": "disable", "user_ids": [ann_id]}),
        )
        .await;
    assert_eq!(bulk.status(), StatusCode::OK);

    let mut counted = 0;
    for path in [
        format!("/api/v1/tenants/{t}"),
        format!("/api/v1/tenants/{t}/users"),
        format!("/api/v1/tenants/{t}/users/{ann_id}"),
        format!("/api/v1/tenants/{t}/regions"),
        format!("/api/v1/tenants/{t}/departments/{}", dept["id"].as_str().unwrap()),
        format!("/api/v1/tenants/{t}/invitations"),
        format!("/api/v1/tenants/{t}/audit-events?limit=200"),
        "/api/v1/me/sessions".to_string(),
    ] {
        let res = app.get(&path, &owner.token).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        counted += assert_times_utc(&res.json().await.unwrap(), &path);
    }
    counted += assert_times_utc(&bulk.json().await.unwrap(), "bulk");
    assert!(counted > 20, "only {counted} times seen");

    // The lock event's snapshot holds a time too.
    let locked = app.audit_events(&owner, "user.locked").await;
    assert!(locked[0]["after"]["locked_until"].as_str().unwrap().ends_with('Z'), "{}", locked[0]);
    // The member's `locked_until`.
    let ann_now: Value =
        app.get(&format!("/api/v1/tenants/{t}/users/{ann_id}"), &owner.token).await.json().await.unwrap();
    assert!(ann_now["locked_until"].as_str().unwrap().ends_with('Z'), "{ann_now}");

    // CSV export: created_at and last_login_at columns.
    let res = app.get(&format!("/api/v1/tenants/{t}/users/export?format=csv"), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csv = res.text().await.unwrap();
    let mut rdr = csv::Reader::from_reader(csv.as_bytes());
    let headers = rdr.headers().unwrap().clone();
    let created = headers.iter().position(|h| h == "created_at").unwrap();
    for row in rdr.records() {
        let row = row.unwrap();
        assert!(row[created].ends_with('Z'), "{row:?}");
    }
}

#[tokio::test]
async fn time_filters_take_any_offset_or_a_date() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let me: Value = app.get(&format!("{users}/{}", owner.user_id), &owner.token).await.json().await.unwrap();
    let created = chrono::DateTime::parse_from_rfc3339(me["created_at"].as_str().unwrap()).unwrap();
    let count = |q: String| {
        let (app, owner) = (&app, &owner);
        async move {
            let res = app.get(&q, &owner.token).await;
            assert_eq!(res.status(), StatusCode::OK, "{q}");
            res.json::<Value>().await.unwrap()["total"].as_i64().unwrap()
        }
    };
    // The same instant a second earlier, written in +05:00 and in Z, both include the owner.
    let before = created - chrono::Duration::seconds(1);
    let in_plus5 = before.with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).unwrap()).to_rfc3339();
    assert_eq!(count(format!("{users}?created_after={}", urlencode(&in_plus5))).await, 1);
    assert_eq!(count(format!("{users}?created_after={}", urlencode(&before.to_rfc3339()))).await, 1);
    let after = created + chrono::Duration::seconds(1);
    let in_minus3 = after.with_timezone(&chrono::FixedOffset::west_opt(3 * 3600).unwrap()).to_rfc3339();
    assert_eq!(count(format!("{users}?created_after={}", urlencode(&in_minus3))).await, 0);
    assert_eq!(count(format!("{users}?created_before=2000-01-01")).await, 0);
    // A time without an offset is ambiguous: refused, naming the parameter.
    let res = app.get(&format!("{users}?created_after=2026-01-01T00:00:00"), &owner.token).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "created_after");
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn every_bad_field_is_named_at_once_and_nothing_changes() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let t = &owner.tenant_id;
    let before = (app.member_count(&owner).await, app.audit_count(&owner).await);
    let fields = |body: &Value| -> Vec<String> {
        body["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
    };

    // The example: three fields, three errors.
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{t}/users"),
            &owner.token,
            json!({"email": "bad", "full_name": "", "role": "god"}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(fields(&body), ["email", "full_name", "role"], "{body}");
    assert!(body["errors"].as_array().unwrap().iter().all(|e| !e["message"].as_str().unwrap().is_empty()));

    // Wrong types, an unknown enum value, a missing required field, an unknown field and
    // rule violations together, nested fields named by their path.
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{t}/users"),
            &owner.token,
            json!({"email": 7, "role": "god", "regions": ["x", "x"], "job_title": "j".repeat(201), "shoe_size": 44}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    let mut named = fields(&body);
    named.dedup();
    assert_eq!(named, ["email", "full_name", "job_title", "regions[0]", "regions[1]", "role", "shoe_size"], "{body}");
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{t}"),
            &owner.token,
            json!({"name": "", "seat_limit": "ten", "settings": {"password_min_length": 3, "admins_can_manage_users": "yes", "colour": "red"}}),
        )
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(
        fields(&body),
        ["name", "seat_limit", "settings.admins_can_manage_users", "settings.colour", "settings.password_min_length"],
        "{body}"
    );

    // Query strings: every bad parameter at once, unknown ones included.
    let res =
        app.get(&format!("/api/v1/tenants/{t}/users?limit=0&sort=shoe&region=nowhere&colour=red"), &owner.token).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(fields(&body), ["colour", "limit", "region", "sort"], "{body}");

    assert_eq!(
        (app.member_count(&owner).await, app.audit_count(&owner).await),
        before,
        "a rejected request changed something"
    );
}

#[tokio::test]
async fn a_typo_or_a_malformed_id_in_a_filter_is_refused_not_ignored() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let audit = format!("/api/v1/tenants/{}/audit-events", owner.tenant_id);
    // `actor=` is not a parameter (`actor_id` is): the whole log must not come back.
    let body = assert_problem(app.get(&format!("{audit}?actor={}", owner.user_id), &owner.token).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "actor");
    // A malformed id filter used to answer an empty 200.
    let body = assert_problem(app.get(&format!("{audit}?target_id=abc"), &owner.token).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "target_id");
    let body = assert_problem(app.get(&format!("{audit}?actor_id=abc"), &owner.token).await, 422).await;
    assert_eq!(body["errors"][0]["field"], "actor_id");
    // The right ones still work.
    let res = app.get(&format!("{audit}?actor_id={}", owner.user_id), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// The document's operations: (method, path template, secured).
async fn operations(app: &crate::helpers::TestApp) -> Vec<(String, String, bool)> {
    let doc: Value =
        app.client.get(format!("{}/api-docs/openapi.json", app.address)).send().await.unwrap().json().await.unwrap();
    let mut out = Vec::new();
    // `/scim/v2` answers in SCIM's own format: tests/api/scim.rs walks it.
    for (path, item) in doc["paths"].as_object().unwrap().iter().filter(|(p, _)| !p.starts_with("/scim/")) {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"]
                .as_array()
                .is_some_and(|reqs| reqs.iter().any(|r| r.as_object().is_some_and(|o| !o.is_empty())));
            out.push((method.to_uppercase(), path.clone(), secured));
        }
    }
    assert!(out.len() > 40, "the document lists {} operations", out.len());
    out
}

/// A template with every `{parameter}` filled with a fresh id.
fn fill(template: &str) -> String {
    template
        .split('/')
        .map(|seg| if seg.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { seg.to_string() })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_protected_route_answers_401_without_a_usable_authorization() {
    let app = spawn_app().await;
    let mut checked = 0;
    for (method, template, secured) in operations(&app).await {
        if !secured {
            continue;
        }
        let url = format!("{}{}?limit=0", app.address, fill(&template));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        // Missing, another scheme, an empty bearer, and garbage: each 401 problem+json, before
        // the body (here not even JSON) or the query is looked at.
        for auth in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer "), Some("Bearer not-a-token")] {
            let mut rb = app.client.request(method.clone(), &url).header("content-type", "text/plain").body("{");
            if let Some(a) = auth {
                rb = rb.header("authorization", a);
            }
            let res = rb.send().await.unwrap();
            assert!(res.headers().contains_key("www-authenticate"), "{method} {template} {auth:?}: {}", res.status());
            let body = assert_problem(res, 401).await;
            assert_eq!(body["type"], "urn:roster:problem:unauthorized", "{method} {template} {auth:?}");
        }
        checked += 1;
    }
    assert!(checked > 35, "{checked}");
}

#[tokio::test]
async fn a_method_a_path_does_not_serve_answers_405_with_allow() {
    let app = spawn_app().await;
    let ops = operations(&app).await;
    let mut by_path: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (method, template, _) in &ops {
        by_path.entry(template.clone()).or_default().push(method.clone());
    }
    for (template, documented) in by_path {
        let url = format!("{}{}", app.address, fill(&template));
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "TRACE", "OPTIONS"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let res = app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), &url).send().await.unwrap();
            let allow = res.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let mut allowed: Vec<String> = allow.split(',').map(|m| m.trim().to_string()).collect();
            allowed.sort();
            let mut expected = documented.clone();
            expected.sort();
            assert_eq!(allowed, expected, "{method} {template}");
            assert_problem(res, 405).await;
        }
    }
    // A path the document does not have is still 404.
    let res = app.client.delete(format!("{}/api/v1/nowhere", app.address)).send().await.unwrap();
    assert_problem(res, 404).await;
}

/// PostgreSQL text cannot hold the NUL character: it is refused wherever text comes in, as the
/// document says, instead of failing in the database.
#[tokio::test]
async fn the_nul_character_is_refused_in_bodies_and_queries() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let t = &owner.tenant_id;
    let res = app
        .send_json(Method::POST, &format!("/api/v1/tenants/{t}/departments"), &owner.token, json!({"name": "a\u{0}b"}))
        .await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "name", "{body}");
    let res = app.get(&format!("/api/v1/tenants/{t}/users?q=a%00b"), &owner.token).await;
    let body = assert_problem(res, 422).await;
    assert_eq!(body["errors"][0]["field"], "q", "{body}");
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{t}/users/{}", owner.user_id),
            &owner.token,
            json!({"job_title": "\u{0}"}),
        )
        .await;
    assert_problem(res, 422).await;
}
