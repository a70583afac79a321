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
