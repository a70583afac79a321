//! DESIGN.md section 3, cell by cell: each role x each action x in scope / out of scope /
//! other tenant, over HTTP. Every cell uses fresh targets so cells do not influence each other.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, spawn_app};

#[derive(Clone, Copy, Debug)]
enum Act {
    Read,
    EditProfile,
    ChangeRole,
    ChangeRegions,
    Disable,
    ResetPassword,
    Delete,
    /// Disable through `POST .../users/bulk`: the item's status, or the request's when refused.
    BulkDisable,
}

const ACTS: [Act; 8] = [
    Act::Read,
    Act::EditProfile,
    Act::ChangeRole,
    Act::ChangeRegions,
    Act::Disable,
    Act::ResetPassword,
    Act::Delete,
    Act::BulkDisable,
];

struct World {
    region_a: String,
    region_a_child: String,
    region_b: String,
    other_owner: Persona,
}

/// Performs `act` by `actor` on `target` (a user id in `actor`'s tenant path) and returns the status.
async fn perform(app: &TestApp, world: &World, actor: &Persona, target: &str, act: Act) -> u16 {
    let path = format!("/api/v1/tenants/{}/users/{target}", actor.tenant_id);
    let res = match act {
        Act::Read => app.get(&path, &actor.token).await,
        Act::EditProfile => app.send_json(Method::PATCH, &path, &actor.token, json!({"job_title": "Changed"})).await,
        Act::ChangeRole => app.send_json(Method::PATCH, &path, &actor.token, json!({"role": "viewer"})).await,
        Act::ChangeRegions => {
            app.send_json(Method::PATCH, &path, &actor.token, json!({"regions": [world.region_a_child]})).await
        }
        Act::Disable => {
            app.send_json(Method::PUT, &format!("{path}/status"), &actor.token, json!({"status": "disabled"})).await
        }
        Act::ResetPassword => {
            app.request(Method::POST, &format!("{path}/password-reset"), Some(&actor.token)).send().await.unwrap()
        }
        Act::Delete => app.request(Method::DELETE, &path, Some(&actor.token)).send().await.unwrap(),
        Act::BulkDisable => {
            let bulk = format!("/api/v1/tenants/{}/users/bulk", actor.tenant_id);
            let res = app
                .send_json(Method::POST, &bulk, &actor.token, json!({"action": "disable", "user_ids": [target]}))
                .await;
            if res.status() == StatusCode::OK {
                let body: Value = res.json().await.unwrap();
                assert_eq!(body["results"][0]["user_id"], target, "{body}");
                return body["results"][0]["status"].as_u64().unwrap() as u16;
            }
            res
        }
    };
    let status = res.status().as_u16();
    if status >= 400 {
        let ct = res.headers().get("content-type").unwrap().to_str().unwrap().to_string();
        assert!(ct.starts_with("application/problem+json"), "{act:?}: {ct}");
    }
    status
}

fn ok(act: Act) -> u16 {
    match act {
        Act::Delete => 204,
        _ => 200,
    }
}

/// A fresh target; disabled first when the action is a delete (only disabled members go).
async fn target(app: &TestApp, world: &World, owner: &Persona, role: &str, regions: &[&str], act: Act) -> String {
    let _ = world;
    let created = app.create_member(owner, role, regions).await;
    let id = created["id"].as_str().unwrap().to_string();
    if matches!(act, Act::Delete) {
        assert_eq!(app.set_status(owner, &id, "disabled").await.status(), StatusCode::OK);
    }
    id
}

#[tokio::test]
async fn policy_table_cell_by_cell() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let region_a = app.create_region(&owner, "A", None).await;
    let region_a_child = app.create_region(&owner, "A child", Some(&region_a)).await;
    let region_b = app.create_region(&owner, "B", None).await;
    let other_owner = app.new_owner("enterprise").await;
    let world = World { region_a, region_a_child, region_b, other_owner };

    let second_owner = app.new_member(&owner, "owner", &[]).await;
    let admin = app.new_member(&owner, "admin", &[&world.region_a]).await;
    let operator = app.new_member(&owner, "operator", &[&world.region_a]).await;
    let viewer = app.new_member(&owner, "viewer", &[&world.region_a]).await;

    // (actor, actor name, target kind) -> expected per action, in ACTS order.
    // Target kinds: "in" = operator in region A (child region for admins' descendants),
    // "out" = operator in region B, "mixed" = operator in A and B, "none" = operator without
    // regions, "peer_admin" = admin in A, "owner" = an owner, "other" = a member of another tenant.
    let table: Vec<(&Persona, &str, &str, [u16; 8])> = vec![
        (&second_owner, "owner", "in", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&second_owner, "owner", "out", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&second_owner, "owner", "none", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&second_owner, "owner", "peer_admin", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&second_owner, "owner", "owner", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&second_owner, "owner", "other", [404; 8]),
        (&admin, "admin", "in", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&admin, "admin", "in_child", [200, 200, 200, 200, 200, 200, 204, 200]),
        (&admin, "admin", "out", [404; 8]),
        (&admin, "admin", "mixed", [404; 8]),
        (&admin, "admin", "none", [404; 8]),
        (&admin, "admin", "peer_admin", [200, 403, 403, 403, 403, 403, 403, 403]),
        (&admin, "admin", "owner", [404; 8]),
        (&admin, "admin", "other", [404; 8]),
        (&operator, "operator", "in", [404, 403, 403, 403, 403, 403, 403, 403]),
        (&operator, "operator", "other", [404, 403, 403, 403, 403, 403, 403, 403]),
        (&viewer, "viewer", "in", [404, 403, 403, 403, 403, 403, 403, 403]),
        (&viewer, "viewer", "out", [404, 403, 403, 403, 403, 403, 403, 403]),
    ];
    let mut failures = Vec::new();
    for (actor, actor_name, kind, expected) in &table {
        for (i, act) in ACTS.iter().enumerate() {
            let t = match *kind {
                "in" => target(&app, &world, &owner, "operator", &[&world.region_a], *act).await,
                "in_child" => target(&app, &world, &owner, "operator", &[&world.region_a_child], *act).await,
                "out" => target(&app, &world, &owner, "operator", &[&world.region_b], *act).await,
                "mixed" => target(&app, &world, &owner, "operator", &[&world.region_a, &world.region_b], *act).await,
                "none" => target(&app, &world, &owner, "operator", &[], *act).await,
                "peer_admin" => target(&app, &world, &owner, "admin", &[&world.region_a], *act).await,
                "owner" => target(&app, &world, &owner, "owner", &[], *act).await,
                "other" => target(&app, &world, &world.other_owner, "operator", &[], *act).await,
                _ => unreachable!(),
            };
            let got = perform(&app, &world, actor, &t, *act).await;
            let want = if expected[i] == 200 { ok(*act) } else { expected[i] };
            if got != want {
                failures.push(format!("{actor_name} {act:?} {kind}: got {got}, want {want}"));
            }
        }
    }
    assert!(failures.is_empty(), "policy cells failed:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn self_rows_and_tenant_wide_actions() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let a = app.create_region(&owner, "A", None).await;
    let b = app.create_region(&owner, "B", None).await;
    let admin = app.new_member(&owner, "admin", &[&a]).await;
    let operator = app.new_member(&owner, "operator", &[&a]).await;
    let viewer = app.new_member(&owner, "viewer", &[]).await;
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);

    // Everyone reads themselves; nobody changes their own role or status or deletes themselves.
    for p in [&owner, &admin, &operator, &viewer] {
        let me = format!("{users}/{}", p.user_id);
        assert_eq!(app.get(&me, &p.token).await.status(), StatusCode::OK);
        assert_eq!(
            app.send_json(Method::PATCH, &me, &p.token, json!({"role": "viewer"})).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.send_json(Method::PUT, &format!("{me}/status"), &p.token, json!({"status": "disabled"})).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.request(Method::DELETE, &me, Some(&p.token)).send().await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
    }

    // Lists: owners all, admins their scope plus self, operators and viewers only self.
    let out_of_scope = app.create_member(&owner, "viewer", &[&b]).await;
    let total = |p: &Persona| {
        let app = &app;
        let users = users.clone();
        let token = p.token.clone();
        async move { app.get(&format!("{users}?limit=200"), &token).await.json::<Value>().await.unwrap() }
    };
    assert_eq!(total(&owner).await["total"], 5);
    let admin_sees = total(&admin).await;
    let seen: Vec<&str> = admin_sees["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(admin_sees["total"], 2, "admin sees self and the operator in A: {seen:?}");
    assert!(seen.contains(&operator.user_id.as_str()) && seen.contains(&admin.user_id.as_str()));
    assert!(!seen.contains(&out_of_scope["id"].as_str().unwrap()));
    for p in [&operator, &viewer] {
        let page = total(p).await;
        assert_eq!(page["total"], 1);
        assert_eq!(page["items"][0]["id"], p.user_id.as_str());
    }

    // Creating: admins only operators/viewers within their regions; operators and viewers never.
    let create = |p: &Persona, body: Value| {
        let app = &app;
        let users = users.clone();
        let token = p.token.clone();
        async move { app.send_json(Method::POST, &users, &token, body).await.status().as_u16() }
    };
    let email = || format!("n{}@example.test", uuid::Uuid::now_v7().simple());
    assert_eq!(
        create(&admin, json!({"email": email(), "full_name": "N", "role": "operator", "regions": [a]})).await,
        201
    );
    assert_eq!(create(&admin, json!({"email": email(), "full_name": "N", "role": "admin", "regions": [a]})).await, 403);
    assert_eq!(create(&admin, json!({"email": email(), "full_name": "N", "role": "owner", "regions": [a]})).await, 403);
    assert_eq!(
        create(&admin, json!({"email": email(), "full_name": "N", "role": "viewer", "regions": [b]})).await,
        403
    );
    assert_eq!(create(&admin, json!({"email": email(), "full_name": "N", "role": "viewer", "regions": []})).await, 403);
    assert_eq!(
        create(&operator, json!({"email": email(), "full_name": "N", "role": "viewer", "regions": [a]})).await,
        403
    );
    assert_eq!(create(&viewer, json!({"email": email(), "full_name": "N", "role": "viewer"})).await, 403);
    assert_eq!(create(&owner, json!({"email": email(), "full_name": "N", "role": "owner"})).await, 201);
    // An admin cannot grant beyond itself by editing either.
    let in_a = app.create_member(&owner, "viewer", &[&a]).await;
    let in_a_path = format!("{users}/{}", in_a["id"].as_str().unwrap());
    assert_eq!(
        app.send_json(Method::PATCH, &in_a_path, &admin.token, json!({"role": "admin"})).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.send_json(Method::PATCH, &in_a_path, &admin.token, json!({"regions": [a, b]})).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.send_json(Method::PATCH, &in_a_path, &admin.token, json!({"role": "operator"})).await.status(),
        StatusCode::OK
    );

    // Tenant settings, regions, audit, export: owners only.
    let tenant = format!("/api/v1/tenants/{}", owner.tenant_id);
    // Departments: owners and admins read them; operators and viewers see only themselves.
    let res = app.send_json(Method::POST, &format!("{tenant}/departments"), &owner.token, json!({"name": "Ops"})).await;
    let department = format!("{tenant}/departments/{}", res.json::<Value>().await.unwrap()["id"].as_str().unwrap());
    for (p, want) in [(&owner, StatusCode::OK), (&admin, StatusCode::OK), (&operator, StatusCode::FORBIDDEN)] {
        assert_eq!(app.get(&format!("{tenant}/departments"), &p.token).await.status(), want);
        assert_eq!(app.get(&department, &p.token).await.status(), want);
    }
    assert_eq!(app.get(&format!("{tenant}/departments"), &viewer.token).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&department, &viewer.token).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get(&format!("{users}/export"), &owner.token).await.status(), StatusCode::OK);
    for p in [&admin, &operator, &viewer] {
        assert_eq!(app.get(&format!("{users}/export"), &p.token).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.get(&tenant, &p.token).await.status(), StatusCode::OK, "any member reads the tenant");
        assert_eq!(app.get(&format!("{tenant}/regions"), &p.token).await.status(), StatusCode::OK);
        assert_eq!(
            app.send_json(Method::PATCH, &tenant, &p.token, json!({"name": "Mine"})).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.send_json(Method::POST, &format!("{tenant}/regions"), &p.token, json!({"name": "Z"})).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.send_json(Method::PATCH, &format!("{tenant}/regions/{a}"), &p.token, json!({"name": "Z"}))
                .await
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.request(Method::DELETE, &format!("{tenant}/regions/{b}"), Some(&p.token))
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.get(&format!("{tenant}/audit-events"), &p.token).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.get(&format!("{tenant}/api-keys"), &p.token).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            app.send_json(
                Method::POST,
                &format!("{tenant}/api-keys"),
                &p.token,
                json!({"name": "K", "kind": "api", "role": "viewer"})
            )
            .await
            .status(),
            StatusCode::FORBIDDEN
        );
    }
    // API keys: owners only.
    assert_eq!(app.get(&format!("{tenant}/api-keys"), &owner.token).await.status(), StatusCode::OK);

    // Switching admins off leaves them only their own row (their token stays valid).
    let res = app
        .send_json(Method::PATCH, &tenant, &owner.token, json!({"settings": {"admins_can_manage_users": false}}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = total(&admin).await;
    assert_eq!(page["total"], 1);
    assert_eq!(app.get(&format!("{users}/{}", operator.user_id), &admin.token).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("{tenant}/departments"), &admin.token).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        create(&admin, json!({"email": email(), "full_name": "N", "role": "operator", "regions": [a]})).await,
        403
    );
    assert_eq!(
        app.send_json(
            Method::PUT,
            &format!("{users}/{}/status", operator.user_id),
            &admin.token,
            json!({"status": "disabled"})
        )
        .await
        .status(),
        StatusCode::FORBIDDEN
    );
    let bulk = json!({"action": "disable", "user_ids": [operator.user_id]});
    assert_eq!(
        app.send_json(Method::POST, &format!("{users}/bulk"), &admin.token, bulk).await.status(),
        StatusCode::FORBIDDEN
    );
}
