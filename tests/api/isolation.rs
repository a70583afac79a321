//! Tenant isolation: every tenant route from another tenant, and shared identities.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn every_tenant_route_from_another_tenant_is_404_and_leaks_nothing() {
    let app = spawn_app().await;
    let a = app.new_owner("plus").await;
    let b = app.new_owner("plus").await;
    let b_region = app.create_region(&b, "Secret region", None).await;
    let b_email = "secret-member@example.test";
    let created = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/users", b.tenant_id),
            &b.token,
            json!({"email": b_email, "full_name": "B", "role": "operator", "regions": [b_region],
                   "department": "Secret dept", "section": "Secret section"}),
        )
        .await;
    let b_member: Value = created.json().await.unwrap();
    let b_user = b_member["id"].as_str().unwrap();
    let bt = &b.tenant_id;
    let at = &a.tenant_id;
    let invited = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{bt}/invitations"),
            &b.token,
            json!({"email": "secret-invitee@example.test", "role": "viewer"}),
        )
        .await;
    let b_invitation = invited.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let departments: Value =
        app.get(&format!("/api/v1/tenants/{bt}/departments"), &b.token).await.json().await.unwrap();
    let b_dept = departments["items"][0]["id"].as_str().unwrap().to_string();
    let b_section = departments["items"][0]["sections"][0]["id"].as_str().unwrap().to_string();
    let created_key = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{bt}/api-keys"),
            &b.token,
            json!({"name": "Secret key", "kind": "api", "role": "owner"}),
        )
        .await;
    let b_key = created_key.json::<Value>().await.unwrap()["key"]["id"].as_str().unwrap().to_string();
    // A's owner's own API key walks the same routes.
    let a_key = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{at}/api-keys"),
            &a.token,
            json!({"name": "A key", "kind": "api", "role": "owner"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let name = json!({"name": "x"});
    let body = json!({"job_title": "x"});
    // (method, path, body): B's paths with A's token, then A's paths with B's object ids.
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/tenants/{bt}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{bt}"), Some(json!({"name": "Pwned"}))),
        (Method::GET, format!("/api/v1/tenants/{bt}/users"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{bt}/users"),
            Some(json!({"email": "x@example.test", "full_name": "X", "role": "owner"})),
        ),
        (Method::GET, format!("/api/v1/tenants/{bt}/users/{b_user}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{bt}/users/{b_user}"), Some(json!({"job_title": "x"}))),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/users/{b_user}"), None),
        (Method::PUT, format!("/api/v1/tenants/{bt}/users/{b_user}/status"), Some(json!({"status": "disabled"}))),
        (Method::POST, format!("/api/v1/tenants/{bt}/users/{b_user}/password-reset"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/regions"), None),
        (Method::POST, format!("/api/v1/tenants/{bt}/regions"), Some(json!({"name": "x"}))),
        (Method::GET, format!("/api/v1/tenants/{bt}/regions/{b_region}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{bt}/regions/{b_region}"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/regions/{b_region}"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/audit-events"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/users/facets"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/users/export"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{bt}/users/import"),
            Some(json!("email,full_name\nx@example.test,X\n")),
        ),
        (
            Method::POST,
            format!("/api/v1/tenants/{bt}/users/bulk"),
            Some(json!({"action": "disable", "user_ids": [b_user]})),
        ),
        (Method::GET, format!("/api/v1/tenants/{bt}/users/{b_user}/reports"), None),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/users/{b_user}/sessions"), None),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/users/{b_user}/lock"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/invitations"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{bt}/invitations"),
            Some(json!({"email": "y@example.test", "role": "viewer"})),
        ),
        (Method::GET, format!("/api/v1/tenants/{bt}/invitations/{b_invitation}"), None),
        (Method::POST, format!("/api/v1/tenants/{bt}/invitations/{b_invitation}/resend"), None),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/invitations/{b_invitation}"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/api-keys"), None),
        (
            Method::POST,
            format!("/api/v1/tenants/{bt}/api-keys"),
            Some(json!({"name": "x", "kind": "api", "role": "owner"})),
        ),
        (Method::GET, format!("/api/v1/tenants/{bt}/api-keys/{b_key}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{bt}/api-keys/{b_key}"), Some(json!({"role": "viewer"}))),
        (Method::POST, format!("/api/v1/tenants/{bt}/api-keys/{b_key}/rotate"), None),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/api-keys/{b_key}"), None),
        (Method::GET, format!("/api/v1/tenants/{at}/api-keys/{b_key}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{at}/api-keys/{b_key}"), Some(json!({"role": "viewer"}))),
        (Method::POST, format!("/api/v1/tenants/{at}/api-keys/{b_key}/rotate"), None),
        (Method::DELETE, format!("/api/v1/tenants/{at}/api-keys/{b_key}"), None),
        (Method::GET, format!("/api/v1/tenants/{bt}/departments"), None),
        (Method::POST, format!("/api/v1/tenants/{bt}/departments"), Some(name.clone())),
        (Method::GET, format!("/api/v1/tenants/{bt}/departments/{b_dept}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{bt}/departments/{b_dept}"), Some(name.clone())),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/departments/{b_dept}"), None),
        (Method::POST, format!("/api/v1/tenants/{bt}/departments/{b_dept}/sections"), Some(name.clone())),
        (Method::GET, format!("/api/v1/tenants/{bt}/departments/{b_dept}/sections/{b_section}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{bt}/departments/{b_dept}/sections/{b_section}"), Some(name.clone())),
        (Method::DELETE, format!("/api/v1/tenants/{bt}/departments/{b_dept}/sections/{b_section}"), None),
        (Method::GET, format!("/api/v1/tenants/{at}/users/{b_user}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{at}/users/{b_user}"), Some(body.clone())),
        (Method::DELETE, format!("/api/v1/tenants/{at}/users/{b_user}"), None),
        (Method::PUT, format!("/api/v1/tenants/{at}/users/{b_user}/status"), Some(json!({"status": "disabled"}))),
        (Method::POST, format!("/api/v1/tenants/{at}/users/{b_user}/password-reset"), None),
        (Method::GET, format!("/api/v1/tenants/{at}/regions/{b_region}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{at}/regions/{b_region}"), Some(json!({"name": "x"}))),
        (Method::DELETE, format!("/api/v1/tenants/{at}/regions/{b_region}"), None),
        (Method::GET, format!("/api/v1/tenants/{at}/users/{b_user}/reports"), None),
        (Method::DELETE, format!("/api/v1/tenants/{at}/users/{b_user}/sessions"), None),
        (Method::DELETE, format!("/api/v1/tenants/{at}/users/{b_user}/lock"), None),
        (Method::GET, format!("/api/v1/tenants/{at}/invitations/{b_invitation}"), None),
        (Method::POST, format!("/api/v1/tenants/{at}/invitations/{b_invitation}/resend"), None),
        (Method::DELETE, format!("/api/v1/tenants/{at}/invitations/{b_invitation}"), None),
        (Method::GET, format!("/api/v1/tenants/{at}/departments/{b_dept}"), None),
        (Method::PATCH, format!("/api/v1/tenants/{at}/departments/{b_dept}"), Some(name.clone())),
        (Method::DELETE, format!("/api/v1/tenants/{at}/departments/{b_dept}"), None),
        (Method::POST, format!("/api/v1/tenants/{at}/departments/{b_dept}/sections"), Some(name.clone())),
        (Method::GET, format!("/api/v1/tenants/{at}/departments/{b_dept}/sections/{b_section}"), None),
    ];
    // With A's token, then with A's API key (which never manages keys, even A's own: 403).
    for credential in [&a.token, &a_key] {
        for (method, path, body) in &routes {
            let mut rb = app.request(method.clone(), path, Some(credential));
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let res = rb.send().await.unwrap();
            let expected = if credential == &a_key && path.starts_with(&format!("/api/v1/tenants/{at}/api-keys")) {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::NOT_FOUND
            };
            assert_eq!(res.status(), expected, "{method} {path}");
            let text = res.text().await.unwrap();
            assert!(
                !text.contains(b_email)
                    && !text.contains("Secret region")
                    && !text.contains("Secret dept")
                    && !text.contains("Secret key"),
                "{method} {path} leaked: {text}"
            );
        }
    }
    // In A's own tenant, B's member is an item not found; A's lists and counts hold nothing of B.
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{at}/users/bulk"),
            &a.token,
            json!({"action": "disable", "user_ids": [b_user]}),
        )
        .await;
    let bulk: Value = res.json().await.unwrap();
    assert_eq!(bulk["results"][0]["status"], 404);
    for path in ["users/facets", "departments", "invitations", "users/export"] {
        let text = app.get(&format!("/api/v1/tenants/{at}/{path}"), &a.token).await.text().await.unwrap();
        assert!(
            !text.contains(b_email) && !text.contains("Secret dept") && !text.contains(&b_invitation),
            "{path}: {text}"
        );
    }
    // A's own lists never show B's objects.
    let list = app.get(&format!("/api/v1/tenants/{at}/users?limit=200"), &a.token).await.text().await.unwrap();
    assert!(!list.contains(b_user));
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{at}/users"),
            &a.token,
            json!({"email": "n@example.test", "full_name": "N", "role": "viewer", "regions": [b_region]}),
        )
        .await;
    assert_problem(res, 422).await;
    // B is untouched.
    let b_view: Value = app.get(&format!("/api/v1/tenants/{bt}/users/{b_user}"), &b.token).await.json().await.unwrap();
    assert_eq!(b_view["status"], "active");
    assert_eq!(b_view["job_title"], Value::Null);
    assert_eq!(
        app.audit_count(&b).await,
        5,
        "tenant.created, region.created, member.created, invitation.created, api_key.created only"
    );
    let b_key_view: Value =
        app.get(&format!("/api/v1/tenants/{bt}/api-keys/{b_key}"), &b.token).await.json().await.unwrap();
    assert_eq!((b_key_view["role"].as_str(), b_key_view["revoked_at"].clone()), (Some("owner"), Value::Null));
    let invitation: Value =
        app.get(&format!("/api/v1/tenants/{bt}/invitations/{b_invitation}"), &b.token).await.json().await.unwrap();
    assert_eq!((invitation["status"].as_str(), invitation["sent_count"].as_i64()), (Some("pending"), Some(1)));
    let departments: Value =
        app.get(&format!("/api/v1/tenants/{bt}/departments"), &b.token).await.json().await.unwrap();
    assert_eq!(departments["items"][0]["name"], "Secret dept");
}

#[tokio::test]
async fn a_shared_person_gives_no_way_into_the_other_tenant() {
    let app = spawn_app().await;
    let a = app.new_owner("plus").await;
    // P is created by A, then also becomes the owner of tenant B.
    let p = app.new_member(&a, "operator", &[]).await;
    let b = app.create_tenant("Tenant B private", &p.email, "plus").await;
    let bt = b["tenant_id"].as_str().unwrap();
    let p_in_a = format!("/api/v1/tenants/{}/users/{}", a.tenant_id, p.user_id);

    // A's owner can no longer reset P's password, nor change P's identity fields.
    let res = app.request(Method::POST, &format!("{p_in_a}/password-reset"), Some(&a.token)).send().await.unwrap();
    let body = assert_problem(res, 409).await;
    assert_eq!(body["type"], "urn:roster:problem:identity-not-managed");
    for change in
        [json!({"email": "attacker@example.test"}), json!({"full_name": "X"}), json!({"username": "taken-over"})]
    {
        let res = app.send_json(Method::PATCH, &p_in_a, &a.token, change).await;
        assert_problem(res, 403).await;
    }
    // Membership fields stay A's to manage.
    let res = app.send_json(Method::PATCH, &p_in_a, &a.token, json!({"job_title": "Driver"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Nothing about B shows in A.
    let text = app.get(&p_in_a, &a.token).await.text().await.unwrap();
    assert!(!text.contains(bt) && !text.contains("Tenant B private"), "{text}");
    // A's owner reaches nothing of B.
    assert_problem(app.get(&format!("/api/v1/tenants/{bt}/users"), &a.token).await, 404).await;
    // Creating P again in A: already a member. Creating P in a third tenant: an invitation,
    // which shows nothing of P.
    let p_again = json!({"email": p.email, "full_name": "P", "role": "viewer"});
    let res = app.post_member(&a, p_again.clone()).await;
    assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:already-member");
    let c = app.new_owner("plus").await;
    let res = app.post_member(&c, p_again).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let text = res.text().await.unwrap();
    assert!(!text.contains(&p.user_id) && !text.contains(bt) && !text.contains(&a.tenant_id), "{text}");
    // P still signs in to B with their own password; deleting P from A keeps the identity.
    app.set_status(&a, &p.user_id, "disabled").await.error_for_status().unwrap();
    let res = app.request(Method::DELETE, &p_in_a, Some(&a.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let login = app.login_ok(&p.email, &p.password, None).await;
    assert_eq!(login["tenant_id"], bt);
    assert_eq!(login["tenants"].as_array().unwrap().len(), 1);
}
