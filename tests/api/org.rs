//! Organisation structure and list tools: time filters, facets, departments and sections,
//! managers' reports.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app};

async fn page(app: &TestApp, by: &Persona, query: &str) -> Value {
    let res = app.get(&format!("/api/v1/tenants/{}/users?{query}", by.tenant_id), &by.token).await;
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    res.json().await.unwrap()
}

async fn facets(app: &TestApp, by: &Persona, query: &str) -> Value {
    let res = app.get(&format!("/api/v1/tenants/{}/users/facets?{query}", by.tenant_id), &by.token).await;
    assert_eq!(res.status(), StatusCode::OK, "{query}");
    res.json().await.unwrap()
}

fn count(list: &Value, value: &str) -> i64 {
    list.as_array().unwrap().iter().find(|c| c["value"] == value).map(|c| c["count"].as_i64().unwrap()).unwrap_or(0)
}

#[tokio::test]
async fn lists_filter_by_creation_and_sign_in_times() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let signed_in = app.new_member(&owner, "viewer", &[]).await;
    let old = app.create_member(&owner, "viewer", &[]).await;
    let old_id = old["id"].as_str().unwrap();
    let fresh = app.new_member(&owner, "viewer", &[]).await;
    let set_old = format!("UPDATE memberships SET created_at = '2020-06-01 12:00:00' WHERE user_id = '{old_id}'");
    assert_eq!(app.execute_sql(&set_old), 1);

    let before = page(&app, &owner, "created_before=2021-01-01").await;
    assert_eq!(before["total"], 1);
    assert_eq!(before["items"][0]["id"], old_id);
    assert_eq!(page(&app, &owner, "created_after=2021-01-01T00:00:00Z").await["total"], 3);
    assert_eq!(page(&app, &owner, "created_after=2020-06-01&created_before=2020-06-02").await["total"], 1);
    let bad =
        app.get(&format!("/api/v1/tenants/{}/users?created_after=yesterday", owner.tenant_id), &owner.token).await;
    assert_eq!(assert_problem(bad, 422).await["errors"][0]["field"], "created_after");

    // Sign-in times: never signed in is left out; a new sign-in shows at the next request,
    // although sign-ins move only the list cache's content counter.
    let since = page(&app, &owner, "last_login_after=2020-01-01").await;
    let ids: Vec<&str> = since["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&signed_in.user_id.as_str()) && !ids.contains(&old_id), "{since}");
    let n = since["total"].as_i64().unwrap();
    // Every viewer's email starts `viewer-`.
    let q = "last_login_after=2020-01-01&q=viewer-".to_string();
    let narrowed = page(&app, &owner, &q).await["total"].as_i64().unwrap();
    app.login_ok(&fresh.email, &fresh.password, None).await;
    app.login_ok(&fresh.email, &fresh.password, None).await;
    assert_eq!(page(&app, &owner, "last_login_after=2020-01-01").await["total"], n, "already counted");
    assert_eq!(page(&app, &owner, "last_login_before=2020-01-01").await["total"], 0);
    let temp_login =
        app.login_ok(old["email"].as_str().unwrap(), old["temporary_password"].as_str().unwrap(), None).await;
    assert!(temp_login["access_token"].is_string());
    assert_eq!(page(&app, &owner, "last_login_after=2020-01-01").await["total"], n + 1);
    // A search narrowed by sign-in time (its matches are kept) sees the new sign-in too.
    assert_eq!(page(&app, &owner, &q).await["total"].as_i64().unwrap(), narrowed + 1);
}

#[tokio::test]
async fn facets_count_what_the_caller_may_see() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    for (role, dept, region) in [
        ("viewer", "Ops", &north),
        ("viewer", "Ops", &south),
        ("operator", "Sales", &north),
        ("operator", "Ops", &south),
    ] {
        app.add_member(
            &owner,
            json!({"email": format!("{}@example.test", uuid::Uuid::now_v7().simple()), "full_name": "F",
                   "role": role, "department": dept, "regions": [region]}),
        )
        .await;
    }
    let all = facets(&app, &owner, "").await;
    assert_eq!(all["total"], 6);
    assert_eq!(count(&all["roles"], "viewer"), 2);
    assert_eq!(count(&all["roles"], "operator"), 2);
    assert_eq!(count(&all["roles"], "owner"), 1);
    assert_eq!(count(&all["statuses"], "active"), 6);
    assert_eq!(count(&all["departments"], "Ops"), 3);
    let none = all["departments"].as_array().unwrap().iter().find(|d| d["value"].is_null()).unwrap();
    assert_eq!(none["count"], 2, "the owner and the admin have no department");
    let regions = all["regions"].as_array().unwrap();
    assert_eq!(regions[0]["name"], "North");
    assert_eq!(regions[0]["count"], 3, "two members and the admin");
    assert_eq!(regions[1]["count"], 2);
    // Filters apply.
    let ops = facets(&app, &owner, "department=Ops&role=viewer").await;
    assert_eq!(ops["total"], 2);
    // An admin counts only members within its regions (and itself).
    let scoped = facets(&app, &admin, "").await;
    assert_eq!(scoped["total"], 3);
    assert_eq!(scoped["regions"].as_array().unwrap().len(), 1);
    assert_eq!(count(&scoped["departments"], "Ops"), 1);
    // The same totals as the list.
    assert_eq!(page(&app, &admin, "").await["total"], scoped["total"]);
    let bad = app.get(&format!("/api/v1/tenants/{}/users/facets?role=boss", owner.tenant_id), &owner.token).await;
    assert_problem(bad, 422).await;
    let res = app
        .send_json(Method::GET, &format!("/api/v1/tenants/{}/users/facets", admin.tenant_id), &admin.token, json!(null))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A region's facet counts what clicking it lists: its members and its sub-regions', each
/// once, under the caller's scope and the other filters.
#[tokio::test]
async fn region_facets_count_what_the_region_filter_lists() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let parent = app.create_region(&owner, "Parent", None).await;
    let child = app.create_region(&owner, "Child", Some(&parent)).await;
    let grandchild = app.create_region(&owner, "Grandchild", Some(&child)).await;
    let other = app.create_region(&owner, "Other", None).await;
    let admin = app.new_member(&owner, "admin", &[&child]).await;
    for (role, regions) in [
        ("viewer", vec![&child]),
        ("viewer", vec![&parent]),
        ("operator", vec![&grandchild]),
        ("viewer", vec![&child, &other]),
        ("operator", vec![&other]),
        ("viewer", vec![&child, &grandchild]),
    ] {
        app.add_member(
            &owner,
            json!({"email": format!("{}@example.test", uuid::Uuid::now_v7().simple()), "full_name": "R",
                   "role": role, "regions": regions}),
        )
        .await;
    }
    let region_count = |facets: &Value, id: &str| {
        facets["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region_id"] == id)
            .map_or(0, |r| r["count"].as_i64().unwrap())
    };
    let all = facets(&app, &owner, "").await;
    let counts: Vec<i64> = [&parent, &child, &grandchild, &other].iter().map(|r| region_count(&all, r)).collect();
    assert_eq!(counts, [6, 5, 2, 2], "parent: everyone but the one only in Other; child: with the admin");
    // Under every caller's scope and with other filters, each count is the filtered list's total.
    for (who, by, extra) in [("owner", &owner, ""), ("owner", &owner, "role=viewer&"), ("admin", &admin, "")] {
        let sidebar = facets(&app, by, extra).await;
        for region in [&parent, &child, &grandchild, &other] {
            let listed = page(&app, by, &format!("{extra}region={region}&limit=1")).await["total"].as_i64().unwrap();
            assert_eq!(region_count(&sidebar, region), listed, "{who} {extra} {region}: {sidebar}");
        }
    }
    // The admin (in Child) sees the members within Child and below, and itself.
    let scoped = facets(&app, &admin, "").await;
    assert_eq!((region_count(&scoped, &parent), region_count(&scoped, &other)), (4, 0), "{scoped}");
}

fn departments_path(by: &Persona) -> String {
    format!("/api/v1/tenants/{}/departments", by.tenant_id)
}

async fn departments(app: &TestApp, by: &Persona) -> Vec<Value> {
    let res = app.get(&departments_path(by), &by.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

fn named<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter().find(|d| d["name"] == name).unwrap_or_else(|| panic!("{name} in {list:?}"))
}

#[tokio::test]
async fn departments_and_sections_are_resources_members_name() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let viewer = app.new_member(&owner, "viewer", &[]).await;
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let member = |dept: &str, section: Option<&str>| {
        let mut body = json!({"email": format!("{}@example.test", uuid::Uuid::now_v7().simple()), "full_name": "D",
                              "role": "viewer", "department": dept});
        if let Some(s) = section {
            body["section"] = json!(s);
        }
        body
    };
    // Naming a department (or a section of it) on a member creates it.
    let night = app.add_member(&owner, member("Ops", Some("Night"))).await;
    app.add_member(&owner, member("Ops", None)).await;
    let seller = app.add_member(&owner, member("Sales", None)).await;
    let list = departments(&app, &owner).await;
    assert_eq!(named(&list, "Ops")["member_count"], 2);
    assert_eq!(named(&list, "Ops")["sections"][0]["name"], "Night");
    assert_eq!(named(&list, "Ops")["sections"][0]["member_count"], 1);
    assert_eq!(named(&list, "Sales")["member_count"], 1);
    let orphan = json!({"email": "orphan@example.test", "full_name": "O", "role": "viewer", "section": "Night"});
    let res = app.send_json(Method::POST, &users, &owner.token, orphan).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "section");

    // Create: owners and admins only; names are unique.
    let res = app.send_json(Method::POST, &departments_path(&owner), &owner.token, json!({"name": "Support"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().get("etag").is_some());
    let support: Value = res.json().await.unwrap();
    let res = app.send_json(Method::POST, &departments_path(&owner), &owner.token, json!({"name": "Support"})).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:name-taken");
    let res = app.send_json(Method::POST, &departments_path(&viewer), &viewer.token, json!({"name": "Mine"})).await;
    assert_problem(res, 403).await;
    let res = app.send_json(Method::POST, &departments_path(&owner), &owner.token, json!({"name": "  "})).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "name");
    assert_eq!(departments(&app, &owner).await.len(), 3);
    // Operators and viewers see only themselves here.
    assert_problem(app.get(&departments_path(&viewer), &viewer.token).await, 403).await;
    let viewers_support = format!("{}/{}", departments_path(&viewer), support["id"].as_str().unwrap());
    assert_problem(app.get(&viewers_support, &viewer.token).await, 403).await;

    // Rename: every member shows the new name; If-Match guards it.
    let ops = named(&list, "Ops").clone();
    let ops_path = format!("{}/{}", departments_path(&owner), ops["id"].as_str().unwrap());
    let stale = app
        .request(Method::PATCH, &ops_path, Some(&owner.token))
        .header("If-Match", "\"99\"")
        .json(&json!({"name": "Operations"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;
    let res = app
        .request(Method::PATCH, &ops_path, Some(&owner.token))
        .header("If-Match", format!("\"{}\"", ops["version"]))
        .json(&json!({"name": "Operations"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(page(&app, &owner, "department=Operations").await["total"], 2);
    assert_eq!(page(&app, &owner, "department=Ops").await["total"], 0);
    let read: Value = app.get(&format!("{users}/{night}"), &owner.token).await.json().await.unwrap();
    assert_eq!((read["department"].as_str(), read["section"].as_str()), (Some("Operations"), Some("Night")));
    let res = app.send_json(Method::PATCH, &ops_path, &owner.token, json!({"name": "Sales"})).await;
    assert_problem(res, 409).await;

    // Sections rename too.
    let section_id = ops["sections"][0]["id"].as_str().unwrap();
    let res = app
        .send_json(Method::PATCH, &format!("{ops_path}/sections/{section_id}"), &owner.token, json!({"name": "Nights"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let read: Value = app.get(&format!("{users}/{night}"), &owner.token).await.json().await.unwrap();
    assert_eq!(read["section"], "Nights");

    // Moving a member to another department leaves the section behind.
    let res =
        app.send_json(Method::PATCH, &format!("{users}/{night}"), &owner.token, json!({"department": "Sales"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let moved: Value = res.json().await.unwrap();
    assert!(moved["section"].is_null(), "{moved}");

    // Delete: refused while in use, unless the members go somewhere.
    let res = app.request(Method::DELETE, &ops_path, Some(&owner.token)).send().await.unwrap();
    let problem = assert_problem(res, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("reassign_to"), "{problem}");
    let bad =
        app.request(Method::DELETE, &format!("{ops_path}?reassign_to=nope"), Some(&owner.token)).send().await.unwrap();
    assert_problem(bad, 422).await;
    let sales_id = named(&list, "Sales")["id"].as_str().unwrap().to_string();
    let res = app
        .request(Method::DELETE, &format!("{ops_path}?reassign_to={sales_id}"), Some(&owner.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let list = departments(&app, &owner).await;
    assert_eq!(named(&list, "Sales")["member_count"], 3);
    assert!(list.iter().all(|d| d["name"] != "Operations"));
    assert_problem(app.get(&ops_path, &owner.token).await, 404).await;

    // Sections in use likewise.
    let sales_path = format!("{}/{sales_id}", departments_path(&owner));
    for name in ["A", "B"] {
        let res =
            app.send_json(Method::POST, &format!("{sales_path}/sections"), &owner.token, json!({"name": name})).await;
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let res = app.send_json(Method::PATCH, &format!("{users}/{seller}"), &owner.token, json!({"section": "A"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let sales: Value = app.get(&sales_path, &owner.token).await.json().await.unwrap();
    let a = sales["sections"].as_array().unwrap().iter().find(|s| s["name"] == "A").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = sales["sections"].as_array().unwrap().iter().find(|s| s["name"] == "B").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res =
        app.request(Method::DELETE, &format!("{sales_path}/sections/{a}"), Some(&owner.token)).send().await.unwrap();
    assert_problem(res, 409).await;
    let res = app
        .request(Method::DELETE, &format!("{sales_path}/sections/{a}?reassign_to={b}"), Some(&owner.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let read: Value = app.get(&format!("{users}/{seller}"), &owner.token).await.json().await.unwrap();
    assert_eq!(read["section"], "B");
    // An empty department goes at once.
    let support_path = format!("{}/{}", departments_path(&owner), support["id"].as_str().unwrap());
    let res = app.request(Method::DELETE, &support_path, Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    // Audited; another tenant sees none of it.
    let audit: Value =
        app.get(&format!("/api/v1/tenants/{}/audit-events", owner.tenant_id), &owner.token).await.json().await.unwrap();
    let actions: Vec<&str> = audit["items"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for action in
        ["department.created", "department.renamed", "department.deleted", "section.renamed", "section.deleted"]
    {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let stranger = app.new_owner("plus").await;
    assert_problem(app.get(&format!("/api/v1/tenants/{}/departments", owner.tenant_id), &stranger.token).await, 404)
        .await;
    assert_problem(app.get(&format!("{}/{sales_id}", departments_path(&stranger)), &stranger.token).await, 404).await;
}

#[tokio::test]
async fn a_section_is_a_resource_of_its_own() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let viewer = app.new_member(&owner, "viewer", &[]).await;
    let res = app.send_json(Method::POST, &departments_path(&owner), &owner.token, json!({"name": "Ops"})).await;
    let ops: Value = res.json().await.unwrap();
    let ops_id = ops["id"].as_str().unwrap();
    let sections = format!("{}/{ops_id}/sections", departments_path(&owner));

    // Creating answers the section, with its address.
    let res = app.send_json(Method::POST, &sections, &owner.token, json!({"name": "Night"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers().get("location").unwrap().to_str().unwrap().to_string();
    assert_eq!(res.headers().get("etag").unwrap(), "\"1\"");
    let night: Value = res.json().await.unwrap();
    assert_eq!(location, format!("{sections}/{}", night["id"].as_str().unwrap()));
    assert_eq!((night["name"].as_str(), night["department_id"].as_str()), (Some("Night"), Some(ops_id)));
    assert_eq!((night["member_count"].as_i64(), night["version"].as_i64()), (Some(0), Some(1)));
    assert!(night.get("sections").is_none(), "the section, not its department: {night}");

    // Read on its own, with the members in it.
    app.add_member(
        &owner,
        json!({"email": "night@example.test", "full_name": "N", "role": "viewer", "department": "Ops", "section": "Night"}),
    )
    .await;
    let res = app.get(&location, &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("etag").unwrap(), "\"1\"");
    let read: Value = res.json().await.unwrap();
    assert_eq!((read["id"].as_str(), read["member_count"].as_i64()), (night["id"].as_str(), Some(1)));

    // Renaming answers the section, guarded by its ETag.
    let rename = |version: &str, name: &str| {
        app.request(Method::PATCH, &location, Some(&owner.token))
            .header("If-Match", version)
            .json(&json!({"name": name}))
            .send()
    };
    assert_problem(rename("\"7\"", "Nights").await.unwrap(), 412).await;
    let res = rename("\"1\"", "Nights").await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers().get("etag").unwrap(), "\"2\"");
    let renamed: Value = res.json().await.unwrap();
    assert_eq!((renamed["name"].as_str(), renamed["version"].as_i64()), (Some("Nights"), Some(2)));
    assert_eq!(renamed["member_count"], 1);

    // Only under its own department, and only for owners and admins.
    let res = app.send_json(Method::POST, &departments_path(&owner), &owner.token, json!({"name": "Sales"})).await;
    let sales_id = res.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let elsewhere = location.replace(ops_id, &sales_id);
    assert_problem(app.get(&elsewhere, &owner.token).await, 404).await;
    assert_problem(app.get(&format!("{sections}/{}", uuid::Uuid::now_v7()), &owner.token).await, 404).await;
    assert_problem(app.get(&location, &viewer.token).await, 403).await;

    // Audited with the section as the target, the department's events with the department.
    let events = app.audit_events(&owner, "section.*").await;
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["target_type"].as_str().unwrap(), e["target_id"].as_str().unwrap()))
        .collect();
    let id = night["id"].as_str().unwrap();
    assert_eq!(seen, [("section.renamed", "section", id), ("section.created", "section", id)]);
    for event in app.audit_events(&owner, "department.*").await {
        assert_eq!(event["target_type"], "department", "{event}");
    }
}

async fn bulk(app: &TestApp, by: &Persona, body: Value) -> reqwest::Response {
    app.send_json(Method::POST, &format!("/api/v1/tenants/{}/users/bulk", by.tenant_id), &by.token, body).await
}

fn outcome<'a>(body: &'a Value, id: &str) -> &'a Value {
    body["results"].as_array().unwrap().iter().find(|r| r["user_id"] == id).unwrap_or_else(|| panic!("{id} in {body}"))
}

#[tokio::test]
async fn bulk_actions_check_each_item_on_its_own() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let other_admin = app.new_member(&owner, "admin", &[&north]).await;
    let v1 = app.new_member(&owner, "viewer", &[&north]).await;
    let v2 = app.new_member(&owner, "viewer", &[&north]).await;
    let far = app.new_member(&owner, "viewer", &[&south]).await;
    let nobody = uuid::Uuid::now_v7().to_string();
    let ids = [&v1.user_id, &v2.user_id, &far.user_id, &other_admin.user_id, &nobody];

    let res = bulk(&app, &admin, json!({"action": "disable", "user_ids": ids})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["succeeded"].as_i64(), body["failed"].as_i64()), (Some(2), Some(3)));
    assert_eq!(outcome(&body, &v1.user_id)["member"]["status"], "disabled");
    assert_eq!(outcome(&body, &far.user_id)["status"], 404, "outside the admin's regions");
    assert_eq!(outcome(&body, &other_admin.user_id)["status"], 403);
    assert_eq!(outcome(&body, &other_admin.user_id)["problem"]["type"], "urn:roster:problem:forbidden");
    assert_eq!(outcome(&body, &nobody)["status"], 404);
    assert_eq!(body["results"][0]["user_id"], v1.user_id, "in the order sent");
    assert_problem(app.get("/api/v1/me", &v1.token).await, 401).await;
    assert_eq!(app.get("/api/v1/me", &far.token).await.status(), StatusCode::OK, "the refused item is untouched");
    let audit: Value = app
        .get(&format!("/api/v1/tenants/{}/audit-events?action=member.disabled", owner.tenant_id), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["total"], 2, "one event per item done");

    // Enable, then new temporary passwords for both, shown once.
    let res = bulk(&app, &admin, json!({"action": "enable", "user_ids": [v1.user_id, v2.user_id]})).await;
    assert_eq!(res.json::<Value>().await.unwrap()["succeeded"], 2);
    let res = bulk(&app, &admin, json!({"action": "reset_password", "user_ids": [v1.user_id, v2.user_id]})).await;
    let body: Value = res.json().await.unwrap();
    let temp = outcome(&body, &v1.user_id)["temporary_password"].as_str().unwrap().to_string();
    let login = app.login_ok(&v1.email, &temp, None).await;
    assert_eq!(login["must_change_password"], true);
    assert_problem(app.login(json!({"email": v2.email, "password": v2.password})).await, 401).await;

    // Roles: an admin grants operator, never admin.
    let res = bulk(&app, &admin, json!({"action": "set_role", "role": "operator", "user_ids": [v1.user_id]})).await;
    assert_eq!(outcome(&res.json().await.unwrap(), &v1.user_id)["member"]["role"], "operator");
    let res = bulk(&app, &admin, json!({"action": "set_role", "role": "admin", "user_ids": [v2.user_id]})).await;
    assert_eq!(outcome(&res.json().await.unwrap(), &v2.user_id)["status"], 403);
    // Departments (a new one is made).
    let body = json!({"action": "set_department", "department": "Field", "section": "East", "user_ids": [v1.user_id, v2.user_id]});
    let res: Value = bulk(&app, &owner, body).await.json().await.unwrap();
    assert_eq!(res["succeeded"], 2);
    assert_eq!(outcome(&res, &v2.user_id)["member"]["section"], "East");
    // Delete: only disabled members.
    let res: Value =
        bulk(&app, &owner, json!({"action": "delete", "user_ids": [v1.user_id]})).await.json().await.unwrap();
    assert_eq!(outcome(&res, &v1.user_id)["status"], 409);
    bulk(&app, &owner, json!({"action": "disable", "user_ids": [v1.user_id]})).await;
    let res: Value =
        bulk(&app, &owner, json!({"action": "delete", "user_ids": [v1.user_id]})).await.json().await.unwrap();
    assert_eq!(outcome(&res, &v1.user_id)["status"], 204);
    assert!(outcome(&res, &v1.user_id).get("member").is_none());

    // Bad requests change nothing.
    for (body, field) in [
        (json!({"action": "disable", "user_ids": []}), "user_ids"),
        (json!({"action": "disable", "user_ids": [v2.user_id, v2.user_id]}), "user_ids[1]"),
        (json!({"action": "disable", "user_ids": ["nope"]}), "user_ids[0]"),
        (json!({"action": "set_role", "user_ids": [v2.user_id]}), "role"),
        (json!({"action": "disable", "role": "viewer", "user_ids": [v2.user_id]}), "role"),
        (json!({"action": "set_department", "user_ids": [v2.user_id]}), "department"),
    ] {
        let problem = assert_problem(bulk(&app, &owner, body.clone()).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let many: Vec<String> = (0..1001).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_problem(bulk(&app, &owner, json!({"action": "disable", "user_ids": many})).await, 422).await;
    assert_problem(bulk(&app, &owner, json!({"action": "explode", "user_ids": [v2.user_id]})).await, 422).await;
    assert_problem(bulk(&app, &far, json!({"action": "disable", "user_ids": [v2.user_id]})).await, 403).await;
    assert_eq!(app.get("/api/v1/me", &far.token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn managers_see_their_reports_direct_and_all_the_way_down() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let add = |name: &str, manager: Option<&str>, region: &str| {
        json!({"email": format!("{}@example.test", uuid::Uuid::now_v7().simple()), "full_name": name,
               "role": "viewer", "regions": [region], "manager_id": manager})
    };
    let boss = app.add_member(&owner, add("Boss", None, &north)).await;
    let bea = app.add_member(&owner, add("Bea", Some(&boss), &north)).await;
    let carl = app.add_member(&owner, add("Carl", Some(&boss), &south)).await;
    let dan = app.add_member(&owner, add("Dan", Some(&bea), &north)).await;
    let eve = app.add_member(&owner, add("Eve", Some(&dan), &north)).await;
    let path = format!("/api/v1/tenants/{}/users/{boss}/reports", owner.tenant_id);
    let direct: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    let names = |v: &Value| -> Vec<(String, i64)> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["full_name"].as_str().unwrap().to_string(), m["depth"].as_i64().unwrap()))
            .collect()
    };
    assert_eq!(names(&direct), vec![("Bea".to_string(), 1), ("Carl".to_string(), 1)]);
    let all: Value = app.get(&format!("{path}?depth=all"), &owner.token).await.json().await.unwrap();
    assert_eq!(names(&all), vec![("Bea".into(), 1), ("Carl".into(), 1), ("Dan".into(), 2), ("Eve".into(), 3)]);
    assert_eq!(all["total"], 4);
    // The list's manager filter agrees with the direct reports.
    assert_eq!(page(&app, &owner, &format!("manager={boss}")).await["total"], 2);
    // An admin sees only reports within its regions.
    let scoped: Value = app.get(&format!("{path}?depth=all"), &admin.token).await.json().await.unwrap();
    assert_eq!(names(&scoped).len(), 3, "Carl is in the South");
    assert_problem(app.get(&format!("{path}?depth=deep"), &owner.token).await, 422).await;
    let unknown = format!("/api/v1/tenants/{}/users/{}/reports", owner.tenant_id, uuid::Uuid::now_v7());
    assert_problem(app.get(&unknown, &owner.token).await, 404).await;
    // No cycles: Boss cannot report to Eve.
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}/users/{boss}", owner.tenant_id),
            &owner.token,
            json!({"manager_id": eve}),
        )
        .await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "manager_id");
    let _ = carl;
}
