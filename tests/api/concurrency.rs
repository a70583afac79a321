//! Invariants under real parallel requests.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, spawn_app};

/// The owner of a new tenant whose seat limit is `seats` (the owner holds one).
async fn owner_with_seats(app: &TestApp, seats: i64) -> Persona {
    let owner = app.new_owner("free").await;
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", owner.tenant_id),
            &owner.token,
            json!({"seat_limit": seats}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    owner
}

#[tokio::test]
async fn twenty_parallel_creates_fill_exactly_the_free_seats() {
    let app = spawn_app().await;
    let owner = owner_with_seats(&app, 4).await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        let token = owner.token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"email": format!("p{i}@example.test"), "full_name": format!("P {i}"), "role": "viewer"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, refused), (3, 17));
    assert_eq!(app.member_count(&owner).await, 4);
}

/// Creates hold the tenant's row shared and queue for its seats among themselves; invitations
/// lock the row outright. Mixed and in parallel, they still fill exactly the free seats.
#[tokio::test]
async fn parallel_creates_and_invitations_fill_exactly_the_free_seats() {
    let app = spawn_app().await;
    let owner = owner_with_seats(&app, 6).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let client = app.client.clone();
        let what = if i % 2 == 0 { "users" } else { "invitations" };
        let url = format!("{}/api/v1/tenants/{}/{what}", app.address, owner.tenant_id);
        let token = owner.token.clone();
        tasks.push(tokio::spawn(async move {
            let email = format!("m{i}@example.test");
            let body = if what == "users" {
                json!({"email": email, "full_name": format!("M {i}"), "role": "viewer"})
            } else {
                json!({"email": email, "role": "viewer"})
            };
            (what, client.post(url).bearer_auth(token).json(&body).send().await.unwrap().status())
        }));
    }
    let mut taken = 0;
    for t in tasks {
        match t.await.unwrap() {
            (_, StatusCode::CREATED) => taken += 1,
            (_, StatusCode::CONFLICT) => {}
            (what, other) => panic!("unexpected {other} from {what}"),
        }
    }
    // The owner holds one seat; five more were free.
    assert_eq!(taken, 5);
    let tenant: Value =
        app.get(&format!("/api/v1/tenants/{}", owner.tenant_id), &owner.token).await.json().await.unwrap();
    assert_eq!(tenant["seats_used"], 6, "{tenant}");
}

#[tokio::test]
async fn two_owners_demoting_each_other_never_leave_the_tenant_ownerless() {
    let app = spawn_app().await;
    for _ in 0..4 {
        let first = app.new_owner("plus").await;
        let second = app.new_member(&first, "owner", &[]).await;
        let demote = |by: &crate::helpers::Persona, whom: &str| {
            let client = app.client.clone();
            let url = format!("{}/api/v1/tenants/{}/users/{whom}", app.address, by.tenant_id);
            let token = by.token.clone();
            tokio::spawn(async move {
                client.patch(url).bearer_auth(token).json(&json!({"role": "admin"})).send().await.unwrap().status()
            })
        };
        let x = demote(&first, &second.user_id);
        let y = demote(&second, &first.user_id);
        let (x, y) = (x.await.unwrap(), y.await.unwrap());
        assert!(x != StatusCode::OK || y != StatusCode::OK, "both demotions succeeded");
        let login = app.login_ok(&first.email, &first.password, None).await;
        let token = login["access_token"].as_str().unwrap();
        let page: Value = app
            .get(&format!("/api/v1/tenants/{}/users?role=owner&status=active", first.tenant_id), token)
            .await
            .json()
            .await
            .unwrap();
        // Whoever is left may be an admin who sees no owner rows; ask with an owner token if needed.
        let owners = if login_role(&login) == "owner" { page["total"].as_i64().unwrap() } else { 1 };
        assert!(owners >= 1);
        let other = app.login_ok(&second.email, &second.password, None).await;
        assert!(login_role(&login) == "owner" || login_role(&other) == "owner", "no owner left");
    }
}

fn login_role(login: &Value) -> &str {
    login["tenants"][0]["role"].as_str().unwrap_or("")
}

/// Members created side by side naming the same new department and section: every create
/// succeeds and the tenant has each once (on PostgreSQL these creates run in parallel).
#[tokio::test]
async fn parallel_creates_naming_one_new_department_make_it_once() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let path = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let creates = (0..24).map(|i| {
        let body = json!({"email": format!("d{i}@example.test"), "full_name": format!("D {i}"), "role": "viewer",
                          "department": format!("Dept {}", i % 2), "section": "Shared"});
        app.send_json(Method::POST, &path, &owner.token, body)
    });
    for res in futures_util::future::join_all(creates).await {
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    let list: Value =
        app.get(&format!("/api/v1/tenants/{}/departments", owner.tenant_id), &owner.token).await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    for d in items {
        assert_eq!(d["member_count"], 12);
        assert_eq!(d["sections"].as_array().unwrap().len(), 1);
    }
}
