//! SCIM 2.0 over HTTP: discovery, users and groups as Okta and Microsoft Entra ID send them,
//! filters, errors in SCIM's format, owners left alone, shared identities, isolation between
//! tenants, and the audit trail with the key as actor.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, spawn_app, spawn_app_with};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A `scim` key for `owner`'s tenant.
async fn scim_key(app: &TestApp, owner: &Persona) -> String {
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/api-keys", owner.tenant_id),
            &owner.token,
            json!({"name": "Okta", "kind": "scim", "role": "viewer"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let v: Value = res.json().await.unwrap();
    v["secret"].as_str().unwrap().to_string()
}

async fn scim(app: &TestApp, method: Method, path: &str, key: &str, body: Option<Value>) -> Response {
    let mut rb = app.request(method, &format!("/scim/v2{path}"), Some(key));
    if let Some(b) = body {
        rb = rb.header("content-type", "application/scim+json").body(b.to_string());
    }
    rb.send().await.unwrap()
}

async fn ok_json(res: Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status, "{:?}", res.text().await);
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/scim+json"), "{ct}");
    res.json().await.unwrap()
}

/// Asserts a SCIM error with `status` (and `scim_type` when given); returns it.
async fn scim_error(res: Response, status: u16, scim_type: Option<&str>) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/scim+json"));
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["schemas"], json!([ERROR]), "{v}");
    assert_eq!(v["status"], json!(status.to_string()), "{v}");
    if let Some(t) = scim_type {
        assert_eq!(v["scimType"], t, "{v}");
    }
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    v
}

fn new_user(user_name: &str) -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "userName": user_name,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": user_name, "type": "work", "primary": true}],
        "title": "Engineer",
        "active": true,
        "externalId": format!("ext-{user_name}"),
        ENTERPRISE: {"department": "R&D", "employeeNumber": "42"},
    })
}

async fn create_user(app: &TestApp, key: &str, user_name: &str) -> Value {
    ok_json(scim(app, Method::POST, "/Users", key, Some(new_user(user_name))).await, StatusCode::CREATED).await
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

async fn member(app: &TestApp, owner: &Persona, id: &str) -> Value {
    let res = app.get(&format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

#[tokio::test]
async fn discovery_answers_with_a_scim_key_only() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let spc = ok_json(scim(&app, Method::GET, "/ServiceProviderConfig", &key, None).await, StatusCode::OK).await;
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["bulk"]["supported"], false);
    assert_eq!(spc["etag"]["supported"], true);
    let types = ok_json(scim(&app, Method::GET, "/ResourceTypes", &key, None).await, StatusCode::OK).await;
    assert_eq!(types["totalResults"], 2);
    let schemas = ok_json(scim(&app, Method::GET, "/Schemas", &key, None).await, StatusCode::OK).await;
    let ids: Vec<&str> = schemas["Resources"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&USER) && ids.contains(&ENTERPRISE) && ids.contains(&GROUP), "{ids:?}");
    let one = ok_json(scim(&app, Method::GET, &format!("/Schemas/{USER}"), &key, None).await, StatusCode::OK).await;
    assert_eq!(one["id"], USER);

    // Without a key, with a person's token, with a REST key: refused in SCIM's words.
    let res = app.request(Method::GET, "/scim/v2/Users", None).send().await.unwrap();
    scim_error(res, 401, None).await;
    scim_error(scim(&app, Method::GET, "/Users", &owner.token, None).await, 403, None).await;
    let api = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/api-keys", owner.tenant_id),
            &owner.token,
            json!({"name": "CI", "kind": "api", "role": "owner"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    scim_error(scim(&app, Method::GET, "/Users", &api, None).await, 403, None).await;
    let agent = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/api-keys", owner.tenant_id),
            &owner.token,
            json!({"name": "Agent", "kind": "agent", "role": "viewer"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    scim_error(scim(&app, Method::GET, "/Users", &agent, None).await, 403, None).await;
    // A scim key is not an agent key either.
    let res = app
        .send_json(
            Method::POST,
            "/api/v1/agent/enrollments",
            &key,
            json!({"username": "x", "device": {"agent_id": "a", "hostname": "h"}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    scim_error(
        scim(&app, Method::GET, "/Users", "rk_scim_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", None).await,
        401,
        None,
    )
    .await;
    // A scim key reaches nothing else.
    let res = app.get(&format!("/api/v1/tenants/{}/users", owner.tenant_id), &key).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Unknown SCIM routes and methods.
    scim_error(scim(&app, Method::GET, "/Nothing", &key, None).await, 404, None).await;
    scim_error(scim(&app, Method::DELETE, "/Users", &key, None).await, 405, None).await;
}

#[tokio::test]
async fn okta_creates_finds_deactivates_reactivates_replaces_and_deletes_a_user() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;

    // Okta looks the user up first, then creates them.
    let none = ok_json(
        scim(
            &app,
            Method::GET,
            "/Users?filter=userName%20eq%20%22ada%40example.test%22&startIndex=1&count=100",
            &key,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["totalResults"], 0);
    let res = scim(&app, Method::POST, "/Users", &key, Some(new_user("ada@example.test"))).await;
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let created = ok_json(res, StatusCode::CREATED).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(location, created["meta"]["location"].as_str().unwrap());
    assert!(location.ends_with(&format!("/scim/v2/Users/{id}")));
    assert_eq!(etag, created["meta"]["version"].as_str().unwrap());
    assert_eq!(created["userName"], "ada@example.test");
    assert_eq!(created["active"], true);
    assert_eq!(created["externalId"], "ext-ada@example.test");
    assert_eq!(created[ENTERPRISE]["department"], "R&D");
    assert_eq!(created[ENTERPRISE]["employeeNumber"], "42");
    assert!(created["meta"]["created"].as_str().unwrap().ends_with('Z'));
    assert!(created.get("password").is_none());

    // The member, in the REST API: mapped fields, the SCIM default role.
    let m = member(&app, &owner, &id).await;
    assert_eq!(m["email"], "ada@example.test");
    assert_eq!(m["full_name"], "Ada Lovelace");
    assert_eq!(m["job_title"], "Engineer");
    assert_eq!(m["department"], "R&D");
    assert_eq!(m["role"], "viewer");
    assert_eq!(m["status"], "active");

    // Found by userName (any case), and by externalId.
    let found = ok_json(
        scim(&app, Method::GET, "/Users?filter=userName%20eq%20%22ADA%40example.test%22", &key, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["totalResults"], 1);
    assert_eq!(found["Resources"][0]["id"], id.as_str());

    // Okta's deactivation.
    let off = ok_json(
        scim(
            &app,
            Method::PATCH,
            &format!("/Users/{id}"),
            &key,
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(off["active"], false);
    assert_eq!(member(&app, &owner, &id).await["status"], "disabled");
    // Inactive members stay readable and filterable.
    let inactive =
        ok_json(scim(&app, Method::GET, "/Users?filter=active%20eq%20false", &key, None).await, StatusCode::OK).await;
    assert_eq!(inactive["totalResults"], 1);
    let on = ok_json(
        scim(
            &app,
            Method::PATCH,
            &format!("/Users/{id}"),
            &key,
            Some(patch(json!([{"op": "replace", "value": {"active": true}}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(on["active"], true);

    // Okta's PUT: the whole user.
    let mut replaced = new_user("ada@example.test");
    replaced["title"] = json!("Countess");
    replaced["name"] = json!({"givenName": "Augusta", "familyName": "King"});
    let put =
        ok_json(scim(&app, Method::PUT, &format!("/Users/{id}"), &key, Some(replaced)).await, StatusCode::OK).await;
    assert_eq!(put["title"], "Countess");
    let m = member(&app, &owner, &id).await;
    assert_eq!((m["full_name"].as_str(), m["job_title"].as_str()), (Some("Augusta King"), Some("Countess")));

    // A stale If-Match: 412, nothing changed.
    let res = app
        .request(Method::PATCH, &format!("/scim/v2/Users/{id}"), Some(&key))
        .header("content-type", "application/scim+json")
        .header("if-match", etag)
        .body(patch(json!([{"op": "replace", "path": "title", "value": "X"}])).to_string())
        .send()
        .await
        .unwrap();
    scim_error(res, 412, None).await;
    assert_eq!(member(&app, &owner, &id).await["job_title"], "Countess");

    // Audited with the key as actor.
    let audit: Value = app
        .get(&format!("/api/v1/tenants/{}/audit-events?target_id={id}", owner.tenant_id), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    let events = audit["items"].as_array().unwrap();
    assert!(events.len() >= 4, "{audit}");
    assert!(events.iter().all(|e| e["actor_type"] == "api_key" && e["actor_name"] == "Okta"), "{audit}");

    // Delete: the membership goes.
    let res = scim(&app, Method::DELETE, &format!("/Users/{id}"), &key, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    scim_error(scim(&app, Method::GET, &format!("/Users/{id}"), &key, None).await, 404, None).await;
    let res = app.get(&format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id), &owner.token).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn entra_patches_are_taken_as_sent_before_and_after_its_fix() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let boss = create_user(&app, &key, "boss@example.test").await["id"].as_str().unwrap().to_string();
    let id = create_user(&app, &key, "grace@example.test").await["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");

    // Before aadOptscim062020: capitalised ops, booleans as strings.
    let v = ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "Replace", "path": "active", "value": "False"}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["active"], false);
    assert_eq!(member(&app, &owner, &id).await["status"], "disabled");
    // After the fix: a real boolean.
    let v = ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "replace", "path": "active", "value": true}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["active"], true);

    // Several operations at once: a filtered email path, URN-qualified attributes, a bare
    // manager id.
    let ops = json!([
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "grace.hopper@example.test"},
        {"op": "Replace", "path": "displayName", "value": "Grace Hopper"},
        {"op": "Replace", "path": format!("{ENTERPRISE}:department"), "value": "Navy"},
        {"op": "Replace", "path": format!("{ENTERPRISE}:manager"), "value": boss},
        {"op": "Add", "path": "title", "value": "Rear Admiral"},
    ]);
    let v = ok_json(scim(&app, Method::PATCH, &path, &key, Some(patch(ops))).await, StatusCode::OK).await;
    assert_eq!(v[ENTERPRISE]["manager"]["value"], boss.as_str());
    let m = member(&app, &owner, &id).await;
    assert_eq!(m["email"], "grace.hopper@example.test");
    assert_eq!(m["full_name"], "Grace Hopper");
    assert_eq!(m["department"], "Navy");
    assert_eq!(m["manager_id"], boss.as_str());
    assert_eq!(m["job_title"], "Rear Admiral");

    // Entra's other manager form: the plain attribute name and a one-element array.
    ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "Add", "path": "manager", "value": [{"value": boss}]}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(member(&app, &owner, &id).await["manager_id"], boss.as_str());
    let managed = ok_json(
        scim(&app, Method::GET, &format!("/Users?filter={}", urlencode(&format!("manager eq \"{boss}\""))), &key, None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(managed["totalResults"], 1);

    // Entra removes the manager.
    ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "Remove", "path": format!("{ENTERPRISE}:manager")}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(member(&app, &owner, &id).await["manager_id"], Value::Null);

    // All or none: a good operation with a bad one changes nothing.
    let ops = json!([
        {"op": "replace", "path": "title", "value": "Changed"},
        {"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"},
    ]);
    scim_error(scim(&app, Method::PATCH, &path, &key, Some(patch(ops))).await, 400, Some("mutability")).await;
    assert_eq!(member(&app, &owner, &id).await["job_title"], "Rear Admiral");

    // Path-less replace with dotted and URN-qualified keys (Okta and Entra both send these).
    let ops = json!([{"op": "replace", "value": {"name.givenName": "Amazing", format!("{ENTERPRISE}:department"): "Computing"}}]);
    let v = ok_json(scim(&app, Method::PATCH, &path, &key, Some(patch(ops))).await, StatusCode::OK).await;
    assert_eq!(v["name"]["givenName"], "Amazing");
    assert_eq!(member(&app, &owner, &id).await["department"], "Computing");
}

#[tokio::test]
async fn filters_sorting_and_pages_follow_rfc_7644() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    for n in ["ann", "bob", "cat", "dan", "eve"] {
        let mut u = new_user(&format!("{n}@dir.test"));
        u["name"] = json!({"givenName": n.to_uppercase(), "familyName": format!("{n}son")});
        u["emails"] = json!([
            {"value": format!("{n}@dir.test"), "type": "work", "primary": true},
            {"value": format!("{n}@home.test"), "type": "home"},
        ]);
        ok_json(scim(&app, Method::POST, "/Users", &key, Some(u)).await, StatusCode::CREATED).await;
    }
    let count = |v: &Value| v["totalResults"].as_i64().unwrap();
    let q = |f: &str| format!("/Users?filter={}", urlencode(f));
    let run = |f: &str| {
        let path = q(f);
        let app = &app;
        let key = &key;
        async move { ok_json(scim(app, Method::GET, &path, key, None).await, StatusCode::OK).await }
    };
    // The owner (not written by the directory) is a user too: six in all.
    assert_eq!(count(&run("userName pr").await), 6);
    assert_eq!(count(&run("userName sw \"a\"").await), 1);
    assert_eq!(count(&run("userName co \"@DIR.test\"").await), 5);
    assert_eq!(count(&run("userName ew \"n@dir.test\"").await), 2);
    assert_eq!(count(&run("name.familyName eq \"BOBSON\"").await), 1);
    assert_eq!(count(&run("emails[type eq \"home\" and value co \"cat\"]").await), 1);
    assert_eq!(count(&run("emails.value eq \"dan@home.test\"").await), 1);
    assert_eq!(count(&run("emails[type eq \"home\"].value co \"cat\"").await), 1);
    assert_eq!(count(&run("emails[type eq \"work\"].value co \"cat@home\"").await), 0);
    assert_eq!(
        count(&run("(userName eq \"ann@dir.test\" or userName eq \"bob@dir.test\") and active eq true").await),
        2
    );
    assert_eq!(count(&run("not (userName sw \"a\") and title eq \"engineer\"").await), 4);
    assert_eq!(count(&run("meta.lastModified gt \"2000-01-01T00:00:00Z\"").await), 6);
    assert_eq!(count(&run(&format!("{ENTERPRISE}:employeeNumber eq \"42\"")).await), 5);
    assert_eq!(count(&run("externalId eq \"ext-eve@dir.test\"").await), 1);

    // Bad filters: 400 invalidFilter, never a 500.
    for bad in ["userName eq", "userName zz \"a\"", "nosuch eq \"a\"", "(userName eq \"a\"", "active gt true"] {
        scim_error(scim(&app, Method::GET, &q(bad), &key, None).await, 400, Some("invalidFilter")).await;
    }

    // Sorting and pages: exact totals, a stable order.
    let page = |start: i64| {
        format!(
            "/Users?filter={}&sortBy=userName&sortOrder=descending&startIndex={start}&count=2",
            urlencode("userName co \"dir\"")
        )
    };
    let mut seen = Vec::new();
    for start in [1, 3, 5] {
        let v = ok_json(scim(&app, Method::GET, &page(start), &key, None).await, StatusCode::OK).await;
        assert_eq!(v["totalResults"], 5);
        assert_eq!(v["startIndex"], start);
        for r in v["Resources"].as_array().unwrap() {
            seen.push(r["userName"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ["eve@dir.test", "dan@dir.test", "cat@dir.test", "bob@dir.test", "ann@dir.test"]);

    // attributes and excludedAttributes.
    let v =
        ok_json(scim(&app, Method::GET, "/Users?attributes=userName&count=1", &key, None).await, StatusCode::OK).await;
    let r = &v["Resources"][0];
    assert!(r.get("userName").is_some() && r.get("id").is_some() && r.get("emails").is_none(), "{r}");
    let v =
        ok_json(scim(&app, Method::GET, "/Users?excludedAttributes=emails&count=1", &key, None).await, StatusCode::OK)
            .await;
    assert!(v["Resources"][0].get("emails").is_none());

    // POST .search does the same.
    let v = ok_json(
        scim(&app, Method::POST, "/Users/.search", &key, Some(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"b\""}))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["totalResults"], 1);
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn bad_input_is_a_scim_error_and_changes_nothing() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let before = app.member_count(&owner).await;
    // Not JSON, not an object, no userName, a userName that is neither address nor username,
    // no email when userName is not an address, a bad email, a refused password.
    let raw = app
        .request(Method::POST, "/scim/v2/Users", Some(&key))
        .header("content-type", "application/scim+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    scim_error(raw, 400, Some("invalidSyntax")).await;
    scim_error(
        scim(&app, Method::POST, "/Users", &key, Some(json!({"schemas": [USER]}))).await,
        400,
        Some("invalidValue"),
    )
    .await;
    let v = scim_error(
        scim(
            &app,
            Method::POST,
            "/Users",
            &key,
            Some(json!({"schemas": [USER], "userName": "no spaces allowed", "emails": [{"value": "ns@example.test"}]})),
        )
        .await,
        400,
        Some("invalidValue"),
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("userName"), "{v}");
    let v = scim_error(
        scim(&app, Method::POST, "/Users", &key, Some(json!({"schemas": [USER], "userName": "jdoe"}))).await,
        400,
        Some("invalidValue"),
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("emails"), "{v}");
    let v = scim_error(
        scim(
            &app,
            Method::POST,
            "/Users",
            &key,
            Some(json!({"schemas": [USER], "userName": "jdoe", "emails": [{"value": "nope", "primary": true}]})),
        )
        .await,
        400,
        Some("invalidValue"),
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("emails[0].value"), "{v}");
    let v = scim_error(
        scim(
            &app,
            Method::POST,
            "/Users",
            &key,
            Some(json!({"schemas": [USER], "userName": "pw@example.test", "password": "password"})),
        )
        .await,
        400,
        Some("invalidValue"),
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("password"), "{v}");
    assert_eq!(app.member_count(&owner).await, before);

    // A username is a username: with an email, and the password policy met, it works; twice is
    // a uniqueness conflict.
    let body = json!({"schemas": [USER], "userName": "JDoe", "emails": [{"value": "jdoe@example.test", "type": "work"}], "password": "correct horse battery staple 7"});
    let created =
        ok_json(scim(&app, Method::POST, "/Users", &key, Some(body.clone())).await, StatusCode::CREATED).await;
    assert_eq!(created["userName"], "JDoe");
    let m = member(&app, &owner, created["id"].as_str().unwrap()).await;
    assert_eq!(m["username"], "jdoe");
    app.login_ok("jdoe@example.test", "correct horse battery staple 7", Some(&owner.tenant_id)).await;
    scim_error(scim(&app, Method::POST, "/Users", &key, Some(body)).await, 409, Some("uniqueness")).await;

    // PATCH: no schemas, an unknown op, remove without a path.
    let id = created["id"].as_str().unwrap();
    let path = format!("/Users/{id}");
    scim_error(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(json!({"Operations": [{"op": "replace", "path": "title", "value": "x"}]})),
        )
        .await,
        400,
        None,
    )
    .await;
    scim_error(
        scim(&app, Method::PATCH, &path, &key, Some(patch(json!([{"op": "jump", "path": "title", "value": "x"}]))))
            .await,
        400,
        None,
    )
    .await;
    scim_error(
        scim(&app, Method::PATCH, &path, &key, Some(patch(json!([{"op": "remove"}])))).await,
        400,
        Some("noTarget"),
    )
    .await;
    scim_error(
        scim(&app, Method::PATCH, &path, &key, Some(patch(json!([{"op": "replace", "path": "nosuch", "value": "x"}]))))
            .await,
        400,
        Some("invalidPath"),
    )
    .await;
    // Unknown and malformed ids are 404.
    scim_error(scim(&app, Method::GET, "/Users/not-a-uuid", &key, None).await, 404, None).await;
    scim_error(scim(&app, Method::GET, "/Users/0193e6a2-7f1e-7c2b-9d4f-2a6b8c0d1e30", &key, None).await, 404, None)
        .await;
    // Another media type is 415.
    let res = app
        .request(Method::POST, "/scim/v2/Users", Some(&key))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    scim_error(res, 415, None).await;
}

#[tokio::test]
async fn owners_are_read_but_never_changed_and_shared_identities_are_left_alone() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let path = format!("/Users/{}", owner.user_id);
    let me = ok_json(scim(&app, Method::GET, &path, &key, None).await, StatusCode::OK).await;
    assert_eq!(me["userName"], owner.email.as_str());
    scim_error(
        scim(&app, Method::PATCH, &path, &key, Some(patch(json!([{"op": "replace", "value": {"active": false}}]))))
            .await,
        403,
        None,
    )
    .await;
    scim_error(scim(&app, Method::DELETE, &path, &key, None).await, 403, None).await;
    let mut body = me.clone();
    body["title"] = json!("Puppet");
    scim_error(scim(&app, Method::PUT, &path, &key, Some(body)).await, 403, None).await;
    assert_eq!(member(&app, &owner, &owner.user_id).await["status"], "active");

    // Someone with an account elsewhere: a membership here, their identity untouched.
    let other = app.new_owner("enterprise").await;
    let mut body = new_user(&other.email);
    body["name"] = json!({"givenName": "Someone", "familyName": "Else"});
    body["password"] = json!("an entirely different password 9");
    let created = ok_json(scim(&app, Method::POST, "/Users", &key, Some(body)).await, StatusCode::CREATED).await;
    assert_eq!(created["id"], other.user_id.as_str());
    // Their own password still works, the directory's does not; their other tenant is invisible.
    app.login_ok(&other.email, &other.password, Some(&other.tenant_id)).await;
    let res = app.login(json!({"email": other.email, "password": "an entirely different password 9"})).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let text = scim(&app, Method::GET, &format!("/Users/{}", other.user_id), &key, None).await.text().await.unwrap();
    assert!(!text.contains(&other.tenant_id), "{text}");
    // They are told, by email, that they were added.
    let outbox = app.data.path().join("outbox");
    let mut told = false;
    for _ in 0..150 {
        told = std::fs::read_dir(&outbox)
            .map(|d| {
                d.flatten().any(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    text.contains(&other.email) && text.contains("You now have access")
                })
            })
            .unwrap_or(false);
        if told {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(told, "no notice email to {}", other.email);
}

#[tokio::test]
async fn deactivating_ends_the_members_sessions_at_once() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let mut body = new_user("sam@example.test");
    body["password"] = json!("a long and unusual passphrase 4");
    let id = ok_json(scim(&app, Method::POST, "/Users", &key, Some(body)).await, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let login = app.login_ok("sam@example.test", "a long and unusual passphrase 4", Some(&owner.tenant_id)).await;
    let token = login["access_token"].as_str().unwrap().to_string();
    let me = format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id);
    assert_eq!(app.get(&me, &token).await.status(), StatusCode::OK);
    ok_json(
        scim(
            &app,
            Method::PATCH,
            &format!("/Users/{id}"),
            &key,
            Some(patch(json!([{"op": "replace", "value": {"active": false}}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.get(&me, &token).await.status(), StatusCode::UNAUTHORIZED);
    let res = app.login(json!({"email": "sam@example.test", "password": "a long and unusual passphrase 4", "tenant_id": owner.tenant_id})).await;
    assert_ne!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn parallel_creates_of_one_user_name_make_one_member() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let before = app.member_count(&owner).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = app.client.clone();
        let url = format!("{}/scim/v2/Users", app.address);
        let key = key.clone();
        // The same userName, and (half of them) the same address too.
        let email = if i % 2 == 0 { "twin@example.test".to_string() } else { format!("twin{i}@example.test") };
        let body = json!({"schemas": [USER], "userName": "Twin", "emails": [{"value": email, "primary": true}]});
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/scim+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut codes: Vec<u16> = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, [201, 409, 409, 409, 409, 409, 409, 409], "{codes:?}");
    assert_eq!(app.member_count(&owner).await, before + 1);
}

#[tokio::test]
async fn a_group_of_ten_thousand_members_is_patched_and_read() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    // 10,000 members, written straight to the database (creating them over HTTP is not what
    // this test is about).
    let ids: Vec<String> = (0..10_000).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for chunk in ids.chunks(1000) {
        let users: Vec<String> = chunk
            .iter()
            .map(|id| {
                format!(
                    "('{id}', 'm-{id}@bulk.test', 'Member {id}', 1, 0, 0, '2026-12-07 00:00:00', '2026-12-07 00:00:00')"
                )
            })
            .collect();
        app.execute_sql(&format!(
            "INSERT INTO users (id, email, full_name, auth_version, failed_logins, must_change_password, created_at, updated_at) VALUES {}",
            users.join(",")
        ).replace(", 0, '2026", if app.db.url.starts_with("postgres") { ", FALSE, '2026" } else { ", 0, '2026" }));
        let members: Vec<String> = chunk
            .iter()
            .map(|id| format!("('{}', '{id}', 'viewer', 'active', 'member {id}', 'member {id}', 'm-{id}@bulk.test', '2026-12-07 00:00:00', '2026-12-07 00:00:00')", owner.tenant_id))
            .collect();
        app.execute_sql(&format!(
            "INSERT INTO memberships (tenant_id, user_id, role, status, search_text, sort_name, sort_email, created_at, updated_at) VALUES {}",
            members.join(",")
        ));
    }
    let g = ok_json(
        scim(&app, Method::POST, "/Groups", &key, Some(json!({"schemas": [GROUP], "displayName": "Everyone"}))).await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/Groups/{}", g["id"].as_str().unwrap());
    let all: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let v = ok_json(
        scim(
            &app,
            Method::PATCH,
            &format!("{path}?excludedAttributes=members"),
            &key,
            Some(patch(json!([{"op": "add", "path": "members", "value": all}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(v.get("members").is_none());
    let read = ok_json(scim(&app, Method::GET, &path, &key, None).await, StatusCode::OK).await;
    assert_eq!(read["members"].as_array().unwrap().len(), 10_000);
    // Remove one by filter, then replace them all with two.
    ok_json(
        scim(
            &app,
            Method::PATCH,
            &format!("{path}?excludedAttributes=members"),
            &key,
            Some(patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", ids[0])}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let read = ok_json(scim(&app, Method::GET, &path, &key, None).await, StatusCode::OK).await;
    assert_eq!(read["members"].as_array().unwrap().len(), 9_999);
    let two = json!([{"value": ids[1]}, {"value": ids[2]}]);
    let v = ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "replace", "path": "members", "value": two}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["members"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn groups_as_okta_and_entra_send_them() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let a = create_user(&app, &key, "a@example.test").await["id"].as_str().unwrap().to_string();
    let b = create_user(&app, &key, "b@example.test").await["id"].as_str().unwrap().to_string();
    let c = create_user(&app, &key, "c@example.test").await["id"].as_str().unwrap().to_string();

    let res = scim(&app, Method::POST, "/Groups", &key, Some(json!({"schemas": [GROUP], "displayName": "Engineering", "externalId": "okta-eng", "members": [{"value": a}]}))).await;
    let g = ok_json(res, StatusCode::CREATED).await;
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["members"].as_array().unwrap().len(), 1);
    let path = format!("/Groups/{gid}");
    // Unique names (any case).
    scim_error(
        scim(&app, Method::POST, "/Groups", &key, Some(json!({"schemas": [GROUP], "displayName": "ENGINEERING"})))
            .await,
        409,
        Some("uniqueness"),
    )
    .await;

    // Okta: add members, rename with a path-less replace carrying the id.
    ok_json(scim(&app, Method::PATCH, &path, &key, Some(patch(json!([{"op": "add", "path": "members", "value": [{"value": b}, {"value": c}, {"value": "0193e6a2-7f1e-7c2b-9d4f-2a6b8c0d1e30"}]}])))).await, StatusCode::OK).await;
    ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "replace", "value": {"id": gid, "displayName": "Eng"}}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    // Okta removes by filter, Entra by value array.
    ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "remove", "path": format!("members[value eq \"{a}\"]")}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let v = ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "Remove", "path": "members", "value": [{"value": b}]}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["displayName"], "Eng");
    let ids: Vec<&str> = v["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert_eq!(ids, [c.as_str()]);

    // Filter by displayName and externalId; excludedAttributes=members.
    let v = ok_json(
        scim(
            &app,
            Method::GET,
            &format!("/Groups?filter={}&excludedAttributes=members", urlencode("displayName eq \"eng\"")),
            &key,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["totalResults"], 1);
    assert!(v["Resources"][0].get("members").is_none());
    let v = ok_json(
        scim(&app, Method::GET, &format!("/Groups?filter={}", urlencode("externalId eq \"okta-eng\"")), &key, None)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["totalResults"], 1);
    // A user shows their groups.
    let u = ok_json(scim(&app, Method::GET, &format!("/Users/{c}"), &key, None).await, StatusCode::OK).await;
    assert_eq!(u["groups"][0]["value"], gid.as_str());

    // Replace the members wholesale, then delete.
    let v = ok_json(
        scim(
            &app,
            Method::PATCH,
            &path,
            &key,
            Some(patch(json!([{"op": "replace", "path": "members", "value": [{"value": a}, {"value": b}]}]))),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["members"].as_array().unwrap().len(), 2);
    let res = scim(&app, Method::DELETE, &path, &key, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    scim_error(scim(&app, Method::GET, &path, &key, None).await, 404, None).await;
}

#[tokio::test]
async fn a_tenants_scim_sees_only_its_own_members_and_groups() {
    let app = spawn_app().await;
    let one = app.new_owner("enterprise").await;
    let two = app.new_owner("enterprise").await;
    let key_one = scim_key(&app, &one).await;
    let key_two = scim_key(&app, &two).await;
    let u1 = create_user(&app, &key_one, "mine@example.test").await["id"].as_str().unwrap().to_string();
    let g1 = ok_json(
        scim(&app, Method::POST, "/Groups", &key_one, Some(json!({"schemas": [GROUP], "displayName": "Ops"}))).await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    for path in [format!("/Users/{u1}"), format!("/Groups/{g1}")] {
        scim_error(scim(&app, Method::GET, &path, &key_two, None).await, 404, None).await;
        scim_error(
            scim(
                &app,
                Method::PATCH,
                &path,
                &key_two,
                Some(patch(json!([{"op": "replace", "path": "displayName", "value": "x"}]))),
            )
            .await,
            404,
            None,
        )
        .await;
        scim_error(
            scim(
                &app,
                Method::PUT,
                &path,
                &key_two,
                Some(json!({"schemas": [USER, GROUP], "userName": "x@example.test", "emails": [{"value": "x@example.test"}], "displayName": "x"})),
            )
            .await,
            404,
            None,
        )
        .await;
        scim_error(scim(&app, Method::DELETE, &path, &key_two, None).await, 404, None).await;
    }
    let list = ok_json(scim(&app, Method::GET, "/Users", &key_two, None).await, StatusCode::OK).await;
    assert!(!list.to_string().contains(&u1));
    let list = ok_json(scim(&app, Method::GET, "/Groups", &key_two, None).await, StatusCode::OK).await;
    assert_eq!(list["totalResults"], 0);
    // Another tenant's user in a group of mine is not added.
    let g2 = ok_json(
        scim(
            &app,
            Method::POST,
            "/Groups",
            &key_two,
            Some(json!({"schemas": [GROUP], "displayName": "Mine", "members": [{"value": u1}]})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(g2.get("members").is_none(), "{g2}");
    // Nor do the searches, the discovery documents or the groups list.
    for path in ["/.search", "/Users/.search", "/Groups/.search"] {
        let found =
            ok_json(scim(&app, Method::POST, path, &key_two, Some(json!({"filter": "id pr"}))).await, StatusCode::OK)
                .await;
        assert!(!found.to_string().contains(&u1) && !found.to_string().contains(&g1), "{path}: {found}");
    }
    // Searching by userName does not reach the other tenant.
    let found = ok_json(
        scim(
            &app,
            Method::GET,
            &format!("/Users?filter={}", urlencode("userName eq \"mine@example.test\"")),
            &key_two,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(found["totalResults"], 0);
}

#[tokio::test]
async fn every_scim_operation_in_the_document_refuses_a_missing_key_and_other_methods_in_scims_words() {
    let app = spawn_app().await;
    let doc: Value =
        app.client.get(format!("{}/api-docs/openapi.json", app.address)).send().await.unwrap().json().await.unwrap();
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap().iter().filter(|(p, _)| p.starts_with("/scim/")) {
        let url = format!(
            "{}{}",
            app.address,
            template
                .replace("{id}", "0193e6a2-7f1e-7c2b-9d4f-2a6b8c0d1e30")
                .replace("{name}", "User")
                .replace("{schema_id}", USER)
        );
        let documented: Vec<String> = item.as_object().unwrap().keys().map(|m| m.to_uppercase()).collect();
        for method in &documented {
            assert_eq!(item[method.to_lowercase()]["tags"], json!(["SCIM"]), "{method} {template}");
            let res = app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), &url).send().await.unwrap();
            assert!(res.headers().contains_key("www-authenticate"), "{method} {template}");
            scim_error(res, 401, None).await;
            checked += 1;
        }
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let res = app.client.request(Method::from_bytes(method.as_bytes()).unwrap(), &url).send().await.unwrap();
            let status = res.status();
            let allow = res.headers().get("allow").unwrap_or_else(|| panic!("{method} {template}: {status}, no Allow"));
            let mut allowed: Vec<String> = allow.to_str().unwrap().split(',').map(|m| m.trim().to_string()).collect();
            allowed.sort();
            let mut expected = documented.clone();
            expected.sort();
            assert_eq!(allowed, expected, "{method} {template}");
            scim_error(res, 405, None).await;
        }
    }
    assert!(checked >= 18, "{checked}");
}

#[tokio::test]
async fn too_large_and_too_many_are_scim_errors() {
    let app = spawn_app_with(|c| c.rate_api_key_per_minute = 3).await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let huge = format!("{{\"schemas\":[\"{USER}\"],\"userName\":\"{}\"}}", "x".repeat(4 * 1024 * 1024));
    let res = app
        .request(Method::POST, "/scim/v2/Users", Some(&key))
        .header("content-type", "application/scim+json")
        .body(huge)
        .send()
        .await
        .unwrap();
    scim_error(res, 413, None).await;
    // The key's request limit (3 a minute; the refused body never reached the key check).
    for _ in 0..3 {
        assert_eq!(scim(&app, Method::GET, "/Users", &key, None).await.status(), StatusCode::OK);
    }
    let res = scim(&app, Method::GET, "/Users", &key, None).await;
    assert!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()).is_some_and(|v| v.parse::<u64>().is_ok()));
    scim_error(res, 429, None).await;
}

#[tokio::test]
async fn a_mapping_or_a_group_change_revokes_the_members_tokens_at_once() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let key = scim_key(&app, &owner).await;
    let mut body = new_user("rae@example.test");
    body["password"] = json!("another fairly long passphrase 5");
    let id = ok_json(scim(&app, Method::POST, "/Users", &key, Some(body)).await, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sign_in = || app.login_ok("rae@example.test", "another fairly long passphrase 5", Some(&owner.tenant_id));
    let token = sign_in().await["access_token"].as_str().unwrap().to_string();
    let tenant_read = format!("/api/v1/tenants/{}", owner.tenant_id);
    assert_eq!(app.get(&tenant_read, &token).await.status(), StatusCode::OK);
    let gid = ok_json(
        scim(
            &app,
            Method::POST,
            "/Groups",
            &key,
            Some(json!({"schemas": [GROUP], "displayName": "Admins", "members": [{"value": id}]})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The owner maps the group: Rae is an admin now, and her old token is refused.
    let res = app
        .send_json(
            Method::PUT,
            &format!("/api/v1/tenants/{}/groups/{gid}/role-mapping", owner.tenant_id),
            &owner.token,
            json!({"role": "admin", "regions": []}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(member(&app, &owner, &id).await["role"], "admin");
    assert_eq!(app.get(&tenant_read, &token).await.status(), StatusCode::UNAUTHORIZED);
    // The directory takes her out of the group: back to the default role, the new token refused.
    let token = sign_in().await["access_token"].as_str().unwrap().to_string();
    assert_eq!(app.get(&tenant_read, &token).await.status(), StatusCode::OK);
    let ops = json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]);
    ok_json(scim(&app, Method::PATCH, &format!("/Groups/{gid}"), &key, Some(patch(ops))).await, StatusCode::OK).await;
    assert_eq!(member(&app, &owner, &id).await["role"], "viewer");
    assert_eq!(app.get(&tenant_read, &token).await.status(), StatusCode::UNAUTHORIZED);
}
