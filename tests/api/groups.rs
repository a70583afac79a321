//! Directory groups in the REST API: reading groups and their members under the caller's
//! scope, role mappings and the SCIM defaults giving directory-managed members their role and
//! regions (highest role, union of regions), what never changes (owners, members the
//! directory does not manage), who may map, isolation between tenants, and the audit.
//! Groups and members are provisioned through `/scim/v2` with a `scim` key.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

fn tenant_path(owner: &Persona, rest: &str) -> String {
    format!("/api/v1/tenants/{}/{rest}", owner.tenant_id)
}

fn group_path(owner: &Persona, group: &str) -> String {
    tenant_path(owner, &format!("groups/{group}"))
}

/// A new key of `kind` and `role` (and `regions`) made by `owner`; its secret.
async fn key(app: &TestApp, owner: &Persona, kind: &str, role: &str, regions: &[&str]) -> String {
    let body = json!({"name": format!("{kind} {role}"), "kind": kind, "role": role, "regions": regions});
    let res = app.send_json(Method::POST, &tenant_path(owner, "api-keys"), &owner.token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "create {kind} key");
    let created: Value = res.json().await.unwrap();
    created["secret"].as_str().unwrap().to_string()
}

/// Provisions a user over SCIM; their id.
async fn scim_user(app: &TestApp, scim: &str, name: &str) -> String {
    let email = format!("{name}-{}@example.test", uuid::Uuid::now_v7().simple());
    let body = json!({"schemas": [USER], "userName": email, "name": {"formatted": name}});
    let res = app.send_json(Method::POST, "/scim/v2/Users", scim, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "SCIM user {name}");
    let created: Value = res.json().await.unwrap();
    created["id"].as_str().unwrap().to_string()
}

fn group_body(name: &str, members: &[&str]) -> Value {
    let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
    json!({"schemas": [GROUP], "displayName": name, "members": members})
}

/// Creates a group over SCIM; its id.
async fn scim_group(app: &TestApp, scim: &str, name: &str, members: &[&str]) -> String {
    let res = app.send_json(Method::POST, "/scim/v2/Groups", scim, group_body(name, members)).await;
    assert_eq!(res.status(), StatusCode::CREATED, "SCIM group {name}");
    let created: Value = res.json().await.unwrap();
    created["id"].as_str().unwrap().to_string()
}

/// A member's role and sorted regions, as `owner` reads them.
async fn access_of(app: &TestApp, owner: &Persona, user: &str) -> (String, Vec<String>) {
    let res = app.get(&tenant_path(owner, &format!("users/{user}")), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let member: Value = res.json().await.unwrap();
    let mut regions: Vec<String> =
        member["regions"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
    regions.sort();
    (member["role"].as_str().unwrap().to_string(), regions)
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

async fn map(app: &TestApp, by: &str, owner: &Persona, group: &str, body: Value) -> reqwest::Response {
    app.send_json(Method::PUT, &format!("{}/role-mapping", group_path(owner, group)), by, body).await
}

async fn unmap(app: &TestApp, by: &str, owner: &Persona, group: &str) -> reqwest::Response {
    app.request(Method::DELETE, &format!("{}/role-mapping", group_path(owner, group)), Some(by)).send().await.unwrap()
}

#[tokio::test]
async fn mappings_give_the_highest_role_and_the_union_of_regions_and_defaults_the_rest() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (a, b) = (app.create_region(&owner, "North", None).await, app.create_region(&owner, "South", None).await);
    let scim = key(&app, &owner, "scim", "viewer", &[]).await;
    let (u1, u2, u3) =
        (scim_user(&app, &scim, "Ada").await, scim_user(&app, &scim, "Bob").await, scim_user(&app, &scim, "Cy").await);
    assert_eq!(access_of(&app, &owner, &u1).await, ("viewer".into(), vec![]), "the default before any setting");
    let eng = scim_group(&app, &scim, "Engineering", &[&u1, &u2]).await;
    let ops = scim_group(&app, &scim, "Ops", &[&u2]).await;

    // Read: the list by name with counts, search, pages, one group with its ETag.
    let list: Value =
        app.get(&format!("{}?limit=50", tenant_path(&owner, "groups")), &owner.token).await.json().await.unwrap();
    assert_eq!(list["total"], 2);
    let first = &list["items"][0];
    assert_eq!((first["display_name"].as_str(), first["member_count"].as_i64()), (Some("Engineering"), Some(2)));
    assert_eq!(first["role_mapping"], Value::Null);
    assert!(
        first["created_at"].as_str().unwrap().ends_with('Z') && first["updated_at"].as_str().unwrap().ends_with('Z')
    );
    let found: Value =
        app.get(&format!("{}?q=OP", tenant_path(&owner, "groups")), &owner.token).await.json().await.unwrap();
    assert_eq!((found["total"].as_i64(), found["items"][0]["id"].as_str()), (Some(1), Some(ops.as_str())));
    let pages = app.all_pages(&format!("{}?limit=1", tenant_path(&owner, "groups")), &owner.token).await;
    assert_eq!(
        pages.iter().map(|p| p["items"][0]["display_name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["Engineering", "Ops"]
    );
    let res = app.get(&group_path(&owner, &eng), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let group: Value = res.json().await.unwrap();
    assert_eq!(etag, format!("\"{}\"", group["version"]));
    let members = app.all_pages(&format!("{}/members?limit=1", group_path(&owner, &eng)), &owner.token).await;
    let ids: Vec<&str> = members.iter().map(|p| p["items"][0]["id"].as_str().unwrap()).collect();
    assert_eq!(sorted(&ids), sorted(&[&u1, &u2]));
    assert_eq!((members[0]["total"].as_i64(), members[0]["items"][0]["status"].as_str()), (Some(2), Some("active")));
    assert!(members[0]["items"][0]["email"].as_str().unwrap().contains("@example.test"));

    // A mapping gives its members the role and regions at once; If-Match guards it.
    let res = app
        .request(Method::PUT, &format!("{}/role-mapping", group_path(&owner, &eng)), Some(&owner.token))
        .header("if-match", &etag)
        .json(&json!({"role": "operator", "regions": [a]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mapped: Value = res.json().await.unwrap();
    assert_eq!(mapped["role_mapping"], json!({"role": "operator", "regions": [a]}));
    assert_eq!(mapped["version"], group["version"].as_i64().unwrap() + 1);
    let stale = app
        .request(Method::PUT, &format!("{}/role-mapping", group_path(&owner, &eng)), Some(&owner.token))
        .header("if-match", &etag)
        .json(&json!({"role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;
    assert_eq!(access_of(&app, &owner, &u1).await, ("operator".into(), vec![a.clone()]));
    assert_eq!(access_of(&app, &owner, &u3).await, ("viewer".into(), vec![]), "in no group: the default");

    // In two mapped groups: the highest role, the union of the regions.
    assert_eq!(map(&app, &owner.token, &owner, &ops, json!({"role": "admin", "regions": [b]})).await.status(), 200);
    assert_eq!(access_of(&app, &owner, &u2).await, ("admin".into(), sorted(&[&a, &b])));
    assert_eq!(access_of(&app, &owner, &u1).await, ("operator".into(), vec![a.clone()]));

    // The REST API does not change what the directory manages.
    let res = app
        .send_json(Method::PATCH, &tenant_path(&owner, &format!("users/{u1}")), &owner.token, json!({"role": "viewer"}))
        .await;
    let problem = assert_problem(res, 409).await;
    assert_eq!(problem["type"], "urn:roster:problem:role-managed-by-directory");

    // Removing a mapping: its members fall back to their other groups, or the default.
    let res = unmap(&app, &owner.token, &owner, &eng).await;
    assert_eq!(res.status(), StatusCode::OK);
    let unmapped: Value = res.json().await.unwrap();
    assert_eq!(unmapped["role_mapping"], Value::Null);
    assert_eq!(access_of(&app, &owner, &u1).await, ("viewer".into(), vec![]));
    assert_eq!(access_of(&app, &owner, &u2).await, ("admin".into(), vec![b.clone()]));
    let again: Value = unmap(&app, &owner.token, &owner, &eng).await.json().await.unwrap();
    assert_eq!(again["version"], unmapped["version"], "removing no mapping changes nothing");

    // The SCIM defaults: read by owners, and applied to every directory-managed member in no mapped group.
    let settings: Value = app.get(&tenant_path(&owner, "scim-settings"), &owner.token).await.json().await.unwrap();
    assert_eq!(settings, json!({"default_role": "viewer", "default_regions": [], "version": 0, "updated_at": null}));
    let res = app
        .send_json(
            Method::PUT,
            &tenant_path(&owner, "scim-settings"),
            &owner.token,
            json!({"default_role": "operator", "default_regions": [a]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let settings: Value = res.json().await.unwrap();
    assert_eq!((settings["default_role"].as_str(), settings["version"].as_i64()), (Some("operator"), Some(1)));
    assert!(settings["updated_at"].as_str().unwrap().ends_with('Z'));
    for u in [&u1, &u3] {
        assert_eq!(access_of(&app, &owner, u).await, ("operator".into(), vec![a.clone()]));
    }
    assert_eq!(access_of(&app, &owner, &u2).await, ("admin".into(), vec![b.clone()]), "a mapped group wins");
    let stale = app
        .request(Method::PUT, &tenant_path(&owner, "scim-settings"), Some(&owner.token))
        .header("if-match", "\"0\"")
        .json(&json!({"default_role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;

    // The directory changing a mapped group's members updates them at once.
    let res = app.send_json(Method::PUT, &format!("/scim/v2/Groups/{ops}"), &scim, group_body("Ops", &[&u1])).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(access_of(&app, &owner, &u1).await, ("admin".into(), vec![b.clone()]));
    assert_eq!(access_of(&app, &owner, &u2).await, ("operator".into(), vec![a.clone()]));

    // Audited with before and after, and in the event feed's types.
    let changes = app.audit_events(&owner, "group.role_mapping_changed").await;
    assert_eq!(changes.len(), 3);
    let last = &changes[0];
    assert_eq!(last["target_id"], eng.as_str());
    assert_eq!(last["before"]["role_mapping"], json!({"role": "operator", "regions": [a]}));
    assert_eq!(last["after"]["role_mapping"], Value::Null);
    let updated = app.audit_events(&owner, "scim_settings.updated").await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["after"]["role"], "operator");
    let feed: Value = app
        .get(&tenant_path(&owner, "events?type=group.role_mapping_changed,scim_settings.updated"), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    let types: Vec<&str> = feed["items"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.iter().filter(|t| **t == "group.role_mapping_changed").count(), 3, "{feed}");
    assert_eq!(types.iter().filter(|t| **t == "scim_settings.updated").count(), 1, "{feed}");
}

#[tokio::test]
async fn owners_and_members_the_directory_does_not_manage_keep_their_roles() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let scim = key(&app, &owner, "scim", "viewer", &[]).await;
    let manual = app.create_member(&owner, "viewer", &[]).await["id"].as_str().unwrap().to_string();
    let managed = scim_user(&app, &scim, "Dee").await;
    let group = scim_group(&app, &scim, "Admins", &[&owner.user_id, &manual, &managed]).await;
    // Even an owner the directory has written is never changed by it.
    app.execute_sql(&format!(
        "INSERT INTO scim_users (tenant_id, user_id, user_name, user_name_key, external_id, attributes) \
         VALUES ('{}', '{}', 'boss', 'boss', NULL, '{{}}')",
        owner.tenant_id, owner.user_id
    ));
    assert_eq!(map(&app, &owner.token, &owner, &group, json!({"role": "admin"})).await.status(), 200);
    assert_eq!(access_of(&app, &owner, &managed).await.0, "admin");
    assert_eq!(access_of(&app, &owner, &manual).await.0, "viewer");
    assert_eq!(access_of(&app, &owner, &owner.user_id).await.0, "owner");
    let res = app
        .send_json(
            Method::PUT,
            &tenant_path(&owner, "scim-settings"),
            &owner.token,
            json!({"default_role": "operator"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(unmap(&app, &owner.token, &owner, &group).await.status(), 200);
    assert_eq!(access_of(&app, &owner, &managed).await.0, "operator");
    assert_eq!(access_of(&app, &owner, &owner.user_id).await.0, "owner");
    // The owner still acts as one.
    assert_eq!(app.get(&tenant_path(&owner, "scim-settings"), &owner.token).await.status(), 200);
}

#[tokio::test]
async fn admins_read_within_their_regions_and_only_owners_map() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (a, b) = (app.create_region(&owner, "North", None).await, app.create_region(&owner, "South", None).await);
    let scim = key(&app, &owner, "scim", "viewer", &[]).await;
    let (in_a, in_b) = (scim_user(&app, &scim, "Eve").await, scim_user(&app, &scim, "Fay").await);
    let north = scim_group(&app, &scim, "North team", &[&in_a]).await;
    let south = scim_group(&app, &scim, "South team", &[&in_b]).await;
    let everyone = scim_group(&app, &scim, "Everyone", &[&in_a, &in_b]).await;
    assert_eq!(map(&app, &owner.token, &owner, &north, json!({"role": "viewer", "regions": [a]})).await.status(), 200);
    assert_eq!(map(&app, &owner.token, &owner, &south, json!({"role": "viewer", "regions": [b]})).await.status(), 200);

    // An admin of region A reads groups, and of a group's members those in A.
    let admin = app.new_member(&owner, "admin", &[&a]).await;
    let list = app.get(&tenant_path(&owner, "groups?limit=10"), &admin.token).await;
    assert_eq!(list.status(), StatusCode::OK);
    let seen: Value =
        app.get(&format!("{}/members", group_path(&owner, &everyone)), &admin.token).await.json().await.unwrap();
    assert_eq!((seen["total"].as_i64(), seen["items"][0]["id"].as_str()), (Some(1), Some(in_a.as_str())));
    assert_eq!(seen["items"].as_array().unwrap().len(), 1);
    let all: Value =
        app.get(&format!("{}/members", group_path(&owner, &everyone)), &owner.token).await.json().await.unwrap();
    assert_eq!(all["total"], 2);
    let group: Value = app.get(&group_path(&owner, &everyone), &admin.token).await.json().await.unwrap();
    assert_eq!(group["member_count"], 2);
    assert_eq!(app.get(&tenant_path(&owner, "scim-settings"), &admin.token).await.status(), 200);

    // Only owners (and keys with the owner role) map and set defaults.
    let owner_key = key(&app, &owner, "api", "owner", &[]).await;
    let admin_key = key(&app, &owner, "api", "admin", &[&a]).await;
    let operator = app.new_member(&owner, "operator", &[&a]).await;
    let mapping = json!({"role": "operator", "regions": [a]});
    let defaults = json!({"default_role": "viewer"});
    for (who, token) in [("admin", &admin.token), ("admin key", &admin_key), ("operator", &operator.token)] {
        assert_problem(map(&app, token, &owner, &everyone, mapping.clone()).await, 403).await;
        assert_problem(unmap(&app, token, &owner, &north).await, 403).await;
        let res = app.send_json(Method::PUT, &tenant_path(&owner, "scim-settings"), token, defaults.clone()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who}");
    }
    for path in [tenant_path(&owner, "groups"), group_path(&owner, &north), tenant_path(&owner, "scim-settings")] {
        assert_problem(app.get(&path, &operator.token).await, 403).await;
    }
    assert_eq!(app.get(&tenant_path(&owner, "groups"), &admin_key).await.status(), 200);
    assert_eq!(map(&app, &owner_key, &owner, &everyone, mapping).await.status(), 200);
    assert_eq!(
        app.send_json(Method::PUT, &tenant_path(&owner, "scim-settings"), &owner_key, defaults).await.status(),
        200
    );
    let actors = app.audit_events(&owner, "group.role_mapping_changed").await;
    assert_eq!(actors[0]["actor_type"], "api_key");

    // Administration switched off for admins: no groups either.
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", owner.tenant_id),
            &owner.token,
            json!({"settings": {"admins_can_manage_users": false}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(app.get(&tenant_path(&owner, "groups"), &admin.token).await, 403).await;
}

#[tokio::test]
async fn another_tenants_groups_are_not_there_and_bad_requests_are_refused() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let other = app.new_owner("plus").await;
    let scim = key(&app, &owner, "scim", "viewer", &[]).await;
    let group = scim_group(&app, &scim, "Eng", &[]).await;
    let foreign_region = app.create_region(&other, "Elsewhere", None).await;

    // Another tenant's owner: no such group, whatever the route.
    for path in [group_path(&other, &group), format!("{}/members", group_path(&other, &group))] {
        assert_problem(app.get(&path, &other.token).await, 404).await;
    }
    assert_problem(map(&app, &other.token, &other, &group, json!({"role": "viewer"})).await, 404).await;
    assert_problem(unmap(&app, &other.token, &other, &group).await, 404).await;
    let theirs: Value = app.get(&tenant_path(&other, "groups"), &other.token).await.json().await.unwrap();
    assert_eq!(theirs["total"], 0);
    // Another tenant's path with this tenant's token: no such tenant.
    assert_problem(app.get(&group_path(&other, &group), &owner.token).await, 404).await;
    // A missing group.
    let missing = uuid::Uuid::now_v7();
    assert_problem(app.get(&group_path(&owner, &missing.to_string()), &owner.token).await, 404).await;

    // Never owner; only this tenant's regions; no unknown fields.
    for body in [
        json!({"role": "owner"}),
        json!({"role": "viewer", "regions": [foreign_region]}),
        json!({"role": "viewer", "extra": true}),
        json!({"regions": []}),
    ] {
        assert_problem(map(&app, &owner.token, &owner, &group, body).await, 422).await;
    }
    let res = app
        .send_json(Method::PUT, &tenant_path(&owner, "scim-settings"), &owner.token, json!({"default_role": "owner"}))
        .await;
    assert_problem(res, 422).await;
    let res = app
        .send_json(
            Method::PUT,
            &tenant_path(&owner, "scim-settings"),
            &owner.token,
            json!({"default_role": "viewer", "default_regions": [foreign_region]}),
        )
        .await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "default_regions[0]");
    assert_problem(app.get(&group_path(&owner, "not-a-uuid"), &owner.token).await, 400).await;
    assert_problem(app.get(&tenant_path(&owner, "groups?cursor=nonsense"), &owner.token).await, 422).await;
    assert_problem(app.get(&tenant_path(&owner, "groups?limit=0"), &owner.token).await, 422).await;
    // Nothing was written.
    let group_now: Value = app.get(&group_path(&owner, &group), &owner.token).await.json().await.unwrap();
    assert_eq!((group_now["role_mapping"].clone(), group_now["version"].as_i64()), (Value::Null, Some(1)));
}
