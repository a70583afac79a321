//! Device agents: enrolment with an agent key (new people pending approval, devices attached to
//! known members), the agent's view of its enrolment, approval and rejection with their policy,
//! profile completion with email confirmation through a real SMTP server, seats under parallel
//! enrolments, and every bad enrolment request.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::email::{SmtpServer, parse, wait_for};
use crate::helpers::{Persona, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::invitations::link_token;

const ENROL: &str = "/api/v1/agent/enrollments";

fn users(by: &Persona) -> String {
    format!("/api/v1/tenants/{}/users", by.tenant_id)
}

fn member_path(by: &Persona, user_id: &str) -> String {
    format!("{}/{user_id}", users(by))
}

/// A username nobody has yet.
fn unique(tag: &str) -> String {
    format!("{tag}-{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// Creates an API key of `kind` as `owner`; returns its id and secret.
async fn create_key(app: &TestApp, owner: &Persona, kind: &str, role: &str, regions: &[&str]) -> (String, String) {
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/api-keys", owner.tenant_id),
            &owner.token,
            json!({"name": format!("{kind} {role}"), "kind": kind, "role": role, "regions": regions}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "create {kind} key");
    let created: Value = res.json().await.unwrap();
    (created["key"]["id"].as_str().unwrap().to_string(), created["secret"].as_str().unwrap().to_string())
}

/// The secret of a new agent key enrolling people as `role` in `regions`.
async fn agent_key(app: &TestApp, owner: &Persona, role: &str, regions: &[&str]) -> String {
    let (_, secret) = create_key(app, owner, "agent", role, regions).await;
    assert!(secret.starts_with("rk_agent_"), "{secret}");
    secret
}

/// `owner`'s tenant, acting through the API key `secret`.
fn as_key(owner: &Persona, secret: &str) -> Persona {
    Persona { token: secret.to_string(), ..owner.clone() }
}

fn device(agent_id: &str) -> Value {
    json!({"agent_id": agent_id, "hostname": "PC-042", "os": "Windows 11 Pro"})
}

async fn enrol(app: &TestApp, key: &str, username: &str, agent_id: &str) -> Response {
    app.send_json(Method::POST, ENROL, key, json!({"username": username, "device": device(agent_id)})).await
}

/// Enrols and returns the EnrollmentView, asserting `want`.
async fn enrol_as(app: &TestApp, key: &str, username: &str, agent_id: &str, want: StatusCode) -> Value {
    let res = enrol(app, key, username, agent_id).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, want, "enrol {username} from {agent_id}: {body}");
    body
}

/// A new pending member enrolled with `key`; returns its user id.
async fn pending(app: &TestApp, key: &str) -> String {
    let view = enrol_as(app, key, &unique("pending"), &unique("agent"), StatusCode::CREATED).await;
    view["member"]["id"].as_str().unwrap().to_string()
}

async fn enrolment(app: &TestApp, key: &str, id: &str) -> Response {
    app.get(&format!("{ENROL}/{id}"), key).await
}

async fn enrolment_ok(app: &TestApp, key: &str, id: &str) -> Value {
    let res = enrolment(app, key, id).await;
    assert_eq!(res.status(), StatusCode::OK, "GET enrolment {id}");
    res.json().await.unwrap()
}

async fn approve(app: &TestApp, by: &Persona, user_id: &str) -> Response {
    app.request(Method::POST, &format!("{}/approve", member_path(by, user_id)), Some(&by.token)).send().await.unwrap()
}

async fn reject(app: &TestApp, by: &Persona, user_id: &str) -> Response {
    app.request(Method::POST, &format!("{}/reject", member_path(by, user_id)), Some(&by.token)).send().await.unwrap()
}

async fn bulk(app: &TestApp, by: &Persona, action: &str, ids: &[&str]) -> Response {
    app.send_json(Method::POST, &format!("{}/bulk", users(by)), &by.token, json!({"action": action, "user_ids": ids}))
        .await
}

/// The member as the owner reads it, or `None` when it is gone (404).
async fn member(app: &TestApp, owner: &Persona, user_id: &str) -> Option<Value> {
    let res = app.get(&member_path(owner, user_id), &owner.token).await;
    match res.status() {
        StatusCode::OK => Some(res.json().await.unwrap()),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET member {user_id}: {other}"),
    }
}

/// Asserts a problem with this status and slug; returns the body.
async fn assert_slug(res: Response, status: u16, slug: &str) -> Value {
    let body = assert_problem(res, status).await;
    assert_eq!(body["type"], format!("urn:roster:problem:{slug}"), "{body}");
    body
}

fn fields(problem: &Value) -> Vec<String> {
    problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap().to_string()).collect()
}

async fn preview(app: &TestApp, token: &str) -> Response {
    app.request(Method::GET, &format!("/api/v1/profile-completions/{token}"), None).send().await.unwrap()
}

async fn complete(app: &TestApp, token: &str, body: Value) -> Response {
    app.request(Method::POST, &format!("/api/v1/profile-completions/{token}"), None).json(&body).send().await.unwrap()
}

async fn confirm_email(app: &TestApp, token: &str) -> Response {
    app.request(Method::POST, &format!("/api/v1/email-confirmations/{token}"), None).send().await.unwrap()
}

async fn facet_count(app: &TestApp, owner: &Persona, facet: &str, value: &str) -> i64 {
    let res = app.get(&format!("{}/facets", users(owner)), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body[facet]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"] == value)
        .map(|c| c["count"].as_i64().unwrap())
        .unwrap_or(0)
}

async fn pending_total(app: &TestApp, owner: &Persona) -> i64 {
    let res = app.get(&format!("{}?status=pending_approval", users(owner)), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    res.json::<Value>().await.unwrap()["total"].as_i64().unwrap()
}

async fn devices(app: &TestApp, by: &Persona, user_id: &str) -> Response {
    app.get(&format!("{}/devices", member_path(by, user_id)), &by.token).await
}

fn parse_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    let text = v.as_str().unwrap_or_else(|| panic!("a time, got {v}"));
    assert!(text.ends_with('Z'), "{text}");
    chrono::DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&chrono::Utc)
}

#[tokio::test]
async fn an_unknown_username_enrols_a_pending_member_with_the_keys_role_and_regions() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let north = app.create_region(&owner, "North", None).await;
    let (key_id, key) = create_key(&app, &owner, "agent", "operator", &[&north]).await;
    let before = app.member_count(&owner).await;
    let view = enrol_as(&app, &key, "jdoe", "agent-7f3a", StatusCode::CREATED).await;

    assert_eq!((view["status"].as_str(), view["profile"].as_str()), (Some("pending_approval"), Some("incomplete")));
    assert_eq!(view["device"], device("agent-7f3a"));
    assert_eq!(
        (view["member"]["username"].as_str(), view["member"]["full_name"].as_str()),
        (Some("jdoe"), Some("jdoe"))
    );
    let enrollment_id = view["enrollment_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(enrollment_id).is_ok(), "{view}");
    let uid = view["member"]["id"].as_str().unwrap();
    let token = view["completion_token"].as_str().unwrap();
    assert_eq!(view["completion_url"], format!("http://app.roster.test/complete-profile?token={token}"));
    let expires = parse_time(&view["completion_expires_at"]);
    let in_seven_days = chrono::Utc::now() + chrono::Duration::days(7);
    assert!((expires - in_seven_days).num_minutes().abs() <= 5, "seven days: {expires}");
    parse_time(&view["created_at"]);
    parse_time(&view["updated_at"]);

    // The member: pending, the key's role and regions, a placeholder identity, the OS username.
    assert_eq!(app.member_count(&owner).await, before + 1);
    let m = member(&app, &owner, uid).await.unwrap();
    assert_eq!((m["status"].as_str(), m["role"].as_str()), (Some("pending_approval"), Some("operator")), "{m}");
    assert_eq!(m["regions"], json!([north]));
    assert_eq!((m["full_name"].as_str(), m["os_username"].as_str()), (Some("jdoe"), Some("jdoe")));
    assert!(m["email"].as_str().unwrap().ends_with(".invalid"), "{m}");
    // Listed among the pending and counted by the facets; an active member has no OS username.
    let list: Value =
        app.get(&format!("{}?status=pending_approval", users(&owner)), &owner.token).await.json().await.unwrap();
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["items"][0]["id"], uid);
    assert_eq!(list["items"][0]["os_username"], "jdoe");
    assert_eq!(facet_count(&app, &owner, "statuses", "pending_approval").await, 1);
    let me: Value = app.get(&member_path(&owner, &owner.user_id), &owner.token).await.json().await.unwrap();
    assert!(me.get("os_username").is_some_and(Value::is_null), "os_username is null for others: {me}");

    // The device, as the member's devices.
    let res = devices(&app, &owner, uid).await;
    assert_eq!(res.status(), StatusCode::OK);
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["total"], 1, "{list}");
    let d = &list["items"][0];
    assert_eq!(d["id"], enrollment_id);
    assert_eq!(
        (d["agent_id"].as_str(), d["hostname"].as_str(), d["os"].as_str()),
        (Some("agent-7f3a"), Some("PC-042"), Some("Windows 11 Pro"))
    );
    assert_eq!((d["os_username"].as_str(), d["api_key_id"].as_str()), (Some("jdoe"), Some(key_id.as_str())));
    parse_time(&d["created_at"]);
    parse_time(&d["last_enrolled_at"]);
    // Who reads devices: an admin within the regions; not one outside them, nor a viewer.
    let south = app.create_region(&owner, "South", None).await;
    let admin_north = app.new_member(&owner, "admin", &[&north]).await;
    let admin_south = app.new_member(&owner, "admin", &[&south]).await;
    let viewer = app.new_member(&owner, "viewer", &[&north]).await;
    assert_eq!(devices(&app, &admin_north, uid).await.status(), StatusCode::OK);
    assert_problem(devices(&app, &admin_south, uid).await, 404).await;
    assert_problem(devices(&app, &viewer, uid).await, 404).await;
    let other = app.new_owner("plus").await;
    assert_problem(devices(&app, &other, uid).await, 404).await;
    assert_problem(app.get(&format!("{}/devices", member_path(&owner, uid)), &other.token).await, 404).await;

    // Audited as the key.
    let events = app.audit_events(&owner, "member.enrolled").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!((e["actor_type"].as_str(), e["actor_id"].as_str()), (Some("api_key"), Some(key_id.as_str())), "{e}");
    assert_eq!(e["actor_name"], "agent operator");
    assert_eq!(e["target_id"], uid);
    assert!(!e.to_string().contains(token), "no completion token in the audit: {e}");
}

#[tokio::test]
async fn re_enrolment_reuses_the_enrolment_and_voids_the_old_completion_token() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = agent_key(&app, &owner, "viewer", &[]).await;
    let first = enrol_as(&app, &key, "jdoe", "agent-7f3a", StatusCode::CREATED).await;
    let old_token = first["completion_token"].as_str().unwrap().to_string();
    assert_eq!(preview(&app, &old_token).await.status(), StatusCode::OK);
    let count = app.member_count(&owner).await;

    let again = enrol_as(&app, &key, "jdoe", "agent-7f3a", StatusCode::OK).await;
    assert_eq!(again["enrollment_id"], first["enrollment_id"]);
    assert_eq!(again["member"]["id"], first["member"]["id"]);
    let new_token = again["completion_token"].as_str().unwrap().to_string();
    assert_ne!(new_token, old_token);
    assert_eq!(app.member_count(&owner).await, count, "no new member");
    assert_problem(preview(&app, &old_token).await, 404).await;
    assert_eq!(preview(&app, &new_token).await.status(), StatusCode::OK);
    assert!(app.audit_events(&owner, "member.enrolled").await.len() == 1);

    // The OS username matches whatever its case; the same agent keeps its enrolment.
    let upper = enrol_as(&app, &key, "JDOE", "agent-7f3a", StatusCode::OK).await;
    assert_eq!(upper["enrollment_id"], first["enrollment_id"]);
    assert_eq!(upper["member"]["id"], first["member"]["id"]);
    assert_problem(preview(&app, &new_token).await, 404).await;
    // Another agent of the same person: the same member, a second device.
    let laptop = enrol_as(&app, &key, "JDoe", "agent-laptop", StatusCode::OK).await;
    assert_eq!(laptop["member"]["id"], first["member"]["id"]);
    assert_ne!(laptop["enrollment_id"], first["enrollment_id"]);
    assert_eq!(app.member_count(&owner).await, count, "still no new member");
    let list: Value = devices(&app, &owner, first["member"]["id"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(list["total"], 2, "{list}");
    assert_eq!(pending_total(&app, &owner).await, 1);
    // The newest link works for seven days, then no longer.
    let newest = laptop["completion_token"].as_str().unwrap();
    assert_eq!(preview(&app, newest).await.status(), StatusCode::OK);
    app.execute_sql("UPDATE profile_completions SET expires_at = created_at");
    assert_problem(preview(&app, newest).await, 404).await;
    let body = json!({"full_name": "John Doe", "email": "late@example.test", "password": "a long enough passphrase"});
    assert_problem(complete(&app, newest, body).await, 404).await;
}

#[tokio::test]
async fn a_roster_username_attaches_the_device_to_the_existing_member() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = agent_key(&app, &owner, "viewer", &[]).await;
    let ann = app
        .add_member(
            &owner,
            json!({"email": "ann@example.test", "full_name": "Ann Smith", "username": "ann.s", "role": "operator"}),
        )
        .await;
    let count = app.member_count(&owner).await;
    let view = enrol_as(&app, &key, "ANN.S", "agent-ann", StatusCode::OK).await;
    assert_eq!(view["member"]["id"], ann.as_str());
    assert_eq!(view["member"]["full_name"], "Ann Smith");
    assert_eq!((view["status"].as_str(), view["profile"].as_str()), (Some("active"), Some("complete")), "{view}");
    for field in ["completion_token", "completion_url", "completion_expires_at"] {
        assert!(view[field].is_null(), "{field} for a complete profile: {view}");
    }
    assert_eq!(app.member_count(&owner).await, count);
    let m = member(&app, &owner, &ann).await.unwrap();
    assert_eq!((m["status"].as_str(), m["role"].as_str()), (Some("active"), Some("operator")), "unchanged: {m}");
    assert_eq!(m["email"], "ann@example.test");
    let list: Value = devices(&app, &owner, &ann).await.json().await.unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], view["enrollment_id"]);
    let events = app.audit_events(&owner, "device.enrolled").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["actor_type"].as_str(), events[0]["target_id"].as_str()),
        (Some("api_key"), Some(ann.as_str()))
    );
    assert!(app.audit_events(&owner, "member.enrolled").await.is_empty());
    // Again from the same agent: the same enrolment.
    let again = enrol_as(&app, &key, "ann.s", "agent-ann", StatusCode::OK).await;
    assert_eq!(again["enrollment_id"], view["enrollment_id"]);
    assert!(again["completion_token"].is_null());
    assert_eq!(pending_total(&app, &owner).await, 0);
}

#[tokio::test]
async fn a_username_known_only_in_another_tenant_is_new_here() {
    let app = spawn_app().await;
    let here = app.new_owner("plus").await;
    let there = app.new_owner("plus").await;
    let there_region = app.create_region(&there, "Hidden region", None).await;
    let there_member = app
        .add_member(
            &there,
            json!({"email": "secret.person@elsewhere.test", "full_name": "Secret Person", "username": "shared.name",
                   "role": "operator", "regions": [there_region]}),
        )
        .await;
    let there_key = agent_key(&app, &there, "viewer", &[]).await;
    let there_enrolled = enrol_as(&app, &there_key, "os.only", "agent-there", StatusCode::CREATED).await;
    let key = agent_key(&app, &here, "viewer", &[]).await;
    for username in ["shared.name", "OS.ONLY"] {
        let res = enrol(&app, &key, username, &unique("agent")).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{username}");
        let text = res.text().await.unwrap();
        for secret in [
            there.tenant_id.as_str(),
            there_member.as_str(),
            there_region.as_str(),
            "secret.person",
            "Secret Person",
            there_enrolled["member"]["id"].as_str().unwrap(),
            there_enrolled["enrollment_id"].as_str().unwrap(),
        ] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        let view: Value = serde_json::from_str(&text).unwrap();
        assert_eq!((view["status"].as_str(), view["profile"].as_str()), (Some("pending_approval"), Some("incomplete")));
        let m = member(&app, &here, view["member"]["id"].as_str().unwrap()).await.unwrap();
        assert!(m["email"].as_str().unwrap().ends_with(".invalid"), "{m}");
        assert!(!m.to_string().contains("secret.person"), "{m}");
    }
    assert_eq!(pending_total(&app, &here).await, 2);
    // The other tenant is as it was.
    let theirs = member(&app, &there, &there_member).await.unwrap();
    assert_eq!((theirs["status"].as_str(), theirs["full_name"].as_str()), (Some("active"), Some("Secret Person")));
    assert_eq!(pending_total(&app, &there).await, 1);
    assert_eq!(devices(&app, &there, &there_member).await.json::<Value>().await.unwrap()["total"], 0);
}

#[tokio::test]
async fn the_agent_follows_its_enrolment_status() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = agent_key(&app, &owner, "viewer", &[]).await;
    let view = enrol_as(&app, &key, "jdoe", "agent-1", StatusCode::CREATED).await;
    let id = view["enrollment_id"].as_str().unwrap();
    let uid = view["member"]["id"].as_str().unwrap();
    let seen = enrolment_ok(&app, &key, id).await;
    assert_eq!((seen["status"].as_str(), seen["profile"].as_str()), (Some("pending_approval"), Some("incomplete")));
    assert_eq!(
        (&seen["enrollment_id"], &seen["member"]["id"], &seen["device"]),
        (&view["enrollment_id"], &view["member"]["id"], &view["device"])
    );
    for field in ["completion_token", "completion_url", "completion_expires_at"] {
        assert!(seen[field].is_null(), "{field} only in the POST answer: {seen}");
    }
    // Another agent key of the same tenant reads it too; another tenant's does not.
    let second = agent_key(&app, &owner, "operator", &[]).await;
    assert_eq!(enrolment(&app, &second, id).await.status(), StatusCode::OK);
    let other = app.new_owner("plus").await;
    let foreign = agent_key(&app, &other, "viewer", &[]).await;
    let res = enrolment(&app, &foreign, id).await;
    let text = assert_problem(res, 404).await.to_string();
    assert!(!text.contains(uid) && !text.contains("jdoe"), "{text}");
    assert_problem(enrolment(&app, &key, &uuid::Uuid::now_v7().to_string()).await, 404).await;
    let res = enrolment(&app, &key, "not-a-uuid").await;
    let status = res.status();
    assert!(status.is_client_error(), "{status}");
    assert_problem(res, status.as_u16()).await;

    // Approved: active.
    assert_eq!(approve(&app, &owner, uid).await.status(), StatusCode::OK);
    assert_eq!(enrolment_ok(&app, &key, id).await["status"], "active");
    // Another one rejected: rejected, although the member is gone.
    let other_view = enrol_as(&app, &key, "mallory", "agent-2", StatusCode::CREATED).await;
    let other_id = other_view["enrollment_id"].as_str().unwrap();
    assert_eq!(
        reject(&app, &owner, other_view["member"]["id"].as_str().unwrap()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(enrolment_ok(&app, &key, other_id).await["status"], "rejected");
    // Turned away, the same person enrolling again is someone new to approve.
    let back = enrol_as(&app, &key, "mallory", "agent-2", StatusCode::CREATED).await;
    assert_ne!(back["member"]["id"], other_view["member"]["id"]);
    assert_ne!(back["enrollment_id"], other_view["enrollment_id"]);
    assert_eq!(back["status"], "pending_approval");
    assert_eq!(enrolment_ok(&app, &key, other_id).await["status"], "rejected");
    // Disabled afterwards, then deleted: the agent sees it.
    assert_eq!(app.set_status(&owner, uid, "disabled").await.status(), StatusCode::OK);
    assert_eq!(enrolment_ok(&app, &key, id).await["status"], "disabled");
    let res = app.request(Method::DELETE, &member_path(&owner, uid), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let gone = enrolment_ok(&app, &key, id).await;
    assert_eq!(gone["status"], "removed", "{gone}");
    assert!(gone["completion_token"].is_null());
    let anew = enrol_as(&app, &key, "jdoe", "agent-1", StatusCode::CREATED).await;
    assert_ne!(anew["member"]["id"], view["member"]["id"]);
}

#[tokio::test]
async fn approve_and_reject_answer_and_audit() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = agent_key(&app, &owner, "operator", &[]).await;
    let uid = pending(&app, &key).await;

    // A pending member's status is not set directly.
    let body = assert_slug(app.set_status(&owner, &uid, "active").await, 409, "member-pending-approval").await;
    assert!(body["detail"].as_str().unwrap().contains("approve"), "{body}");
    assert_slug(app.set_status(&owner, &uid, "disabled").await, 409, "member-pending-approval").await;
    assert_eq!(member(&app, &owner, &uid).await.unwrap()["status"], "pending_approval");

    // If-Match: a stale version is refused, the current one is taken.
    let res = app.get(&member_path(&owner, &uid), &owner.token).await;
    let etag = res.headers().get("etag").unwrap().to_str().unwrap().to_string();
    let version = res.json::<Value>().await.unwrap()["version"].as_i64().unwrap();
    let approve_path = format!("{}/approve", member_path(&owner, &uid));
    let res = app
        .request(Method::POST, &approve_path, Some(&owner.token))
        .header("If-Match", format!("\"{}\"", version + 1))
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    assert_eq!(member(&app, &owner, &uid).await.unwrap()["status"], "pending_approval");
    let res =
        app.request(Method::POST, &approve_path, Some(&owner.token)).header("If-Match", &etag).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let approved: Value = res.json().await.unwrap();
    assert_eq!((approved["id"].as_str(), approved["status"].as_str()), (Some(uid.as_str()), Some("active")));
    assert_eq!(approved["role"], "operator");
    assert_eq!(member(&app, &owner, &uid).await.unwrap()["status"], "active");
    assert_eq!(pending_total(&app, &owner).await, 0);
    // No longer pending: neither approved nor rejected again; its status is set as usual.
    assert_slug(approve(&app, &owner, &uid).await, 409, "member-not-pending").await;
    assert_slug(reject(&app, &owner, &uid).await, 409, "member-not-pending").await;
    assert!(member(&app, &owner, &uid).await.is_some());
    assert_eq!(app.set_status(&owner, &uid, "disabled").await.status(), StatusCode::OK);
    assert_slug(approve(&app, &owner, &uid).await, 409, "member-not-pending").await;
    let events = app.audit_events(&owner, "member.approved").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["actor_id"].as_str(), events[0]["target_id"].as_str()),
        (Some(owner.user_id.as_str()), Some(uid.as_str()))
    );

    // Reject: 204, the membership and the placeholder identity are gone.
    let rejected = pending(&app, &key).await;
    let count = app.member_count(&owner).await;
    let res = reject(&app, &owner, &rejected).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(res.text().await.unwrap().is_empty());
    assert!(member(&app, &owner, &rejected).await.is_none());
    assert_eq!(app.member_count(&owner).await, count - 1);
    assert_eq!(
        app.execute_sql(&format!("UPDATE users SET email = email WHERE id = '{rejected}'")),
        0,
        "identity removed"
    );
    assert_problem(approve(&app, &owner, &rejected).await, 404).await;
    assert_problem(reject(&app, &owner, &rejected).await, 404).await;
    let events = app.audit_events(&owner, "member.rejected").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["target_id"], rejected.as_str());

    // Bulk: each item on its own.
    let (a, b, c) = (pending(&app, &key).await, pending(&app, &key).await, pending(&app, &key).await);
    let active = app.create_member(&owner, "viewer", &[]).await["id"].as_str().unwrap().to_string();
    let res = bulk(&app, &owner, "approve", &[&a, &b, &active]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["succeeded"].as_i64(), body["failed"].as_i64()), (Some(2), Some(1)), "{body}");
    assert_eq!(body["results"][0]["member"]["status"], "active");
    assert_eq!(body["results"][2]["status"], 409);
    assert_eq!(body["results"][2]["problem"]["type"], "urn:roster:problem:member-not-pending");
    assert_eq!(member(&app, &owner, &b).await.unwrap()["status"], "active");
    let res = bulk(&app, &owner, "reject", &[&c, &a]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["succeeded"].as_i64(), body["failed"].as_i64()), (Some(1), Some(1)), "{body}");
    assert_eq!(body["results"][1]["status"], 409);
    assert!(member(&app, &owner, &c).await.is_none());
    assert_eq!(member(&app, &owner, &a).await.unwrap()["status"], "active");
    assert_eq!(app.audit_events(&owner, "member.approved").await.len(), 3);
    assert_eq!(app.audit_events(&owner, "member.rejected").await.len(), 2);
    assert_eq!(pending_total(&app, &owner).await, 0);
    assert_eq!(
        app.execute_sql("UPDATE outbox SET attempts = attempts WHERE recipient LIKE '%.invalid%'"),
        0,
        "no mail to provisional addresses"
    );
}

#[derive(Clone, Copy, Debug)]
enum Act {
    Approve,
    Reject,
    BulkApprove,
    BulkReject,
}

const ACTS: [Act; 4] = [Act::Approve, Act::Reject, Act::BulkApprove, Act::BulkReject];

/// Performs `act` as `actor` on `target` (in `actor`'s tenant path); returns the status (a bulk
/// item's own, or the request's when it is refused as a whole).
async fn perform(app: &TestApp, actor: &Persona, target: &str, act: Act) -> u16 {
    let res = match act {
        Act::Approve => approve(app, actor, target).await,
        Act::Reject => reject(app, actor, target).await,
        Act::BulkApprove | Act::BulkReject => {
            let action = if matches!(act, Act::BulkApprove) { "approve" } else { "reject" };
            let res = bulk(app, actor, action, &[target]).await;
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
        assert_problem(res, status).await;
    }
    status
}

fn done(act: Act) -> u16 {
    match act {
        Act::Approve | Act::BulkApprove => 200,
        Act::Reject | Act::BulkReject => 204,
    }
}

#[tokio::test]
async fn approve_and_reject_policy_cell_by_cell() {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let region_a = app.create_region(&owner, "A", None).await;
    let region_a_child = app.create_region(&owner, "A child", Some(&region_a)).await;
    let region_b = app.create_region(&owner, "B", None).await;
    let other = app.new_owner("enterprise").await;

    let second_owner = app.new_member(&owner, "owner", &[]).await;
    let admin = app.new_member(&owner, "admin", &[&region_a]).await;
    let operator = app.new_member(&owner, "operator", &[&region_a]).await;
    let viewer = app.new_member(&owner, "viewer", &[&region_a]).await;
    let owner_key = as_key(&owner, &create_key(&app, &owner, "api", "owner", &[]).await.1);
    let admin_key = as_key(&owner, &create_key(&app, &owner, "api", "admin", &[&region_a]).await.1);
    let viewer_key = as_key(&owner, &create_key(&app, &owner, "api", "viewer", &[]).await.1);
    let other_key = as_key(&other, &create_key(&app, &other, "api", "owner", &[]).await.1);
    // The other tenant's token and key on this tenant's path.
    let other_here = Persona { tenant_id: owner.tenant_id.clone(), ..other.clone() };
    let other_key_here = Persona { tenant_id: owner.tenant_id.clone(), ..other_key.clone() };

    // Agent keys making the targets: operators and viewers in A (or A's child), in B, nowhere.
    let in_operator = agent_key(&app, &owner, "operator", &[&region_a]).await;
    let in_viewer = agent_key(&app, &owner, "viewer", &[&region_a_child]).await;
    let out = agent_key(&app, &owner, "operator", &[&region_b]).await;
    let mixed = agent_key(&app, &owner, "viewer", &[&region_a, &region_b]).await;
    let nowhere = agent_key(&app, &owner, "viewer", &[]).await;

    let all = |s: u16| [s; 4];
    let ok = ACTS.map(done);
    let table: Vec<(&Persona, &str, &str, [u16; 4])> = vec![
        (&owner, "owner", "in_operator", ok),
        (&owner, "owner", "out", ok),
        (&second_owner, "second owner", "nowhere", ok),
        (&second_owner, "second owner", "in_viewer", ok),
        (&admin, "admin", "in_operator", ok),
        (&admin, "admin", "in_viewer", ok),
        (&admin, "admin", "out", all(404)),
        (&admin, "admin", "mixed", all(404)),
        (&admin, "admin", "nowhere", all(404)),
        (&operator, "operator", "in_operator", all(403)),
        (&operator, "operator", "out", all(403)),
        (&viewer, "viewer", "in_viewer", all(403)),
        (&viewer, "viewer", "out", all(403)),
        (&owner_key, "owner key", "out", ok),
        (&owner_key, "owner key", "nowhere", ok),
        (&admin_key, "admin key", "in_operator", ok),
        (&admin_key, "admin key", "in_viewer", ok),
        (&admin_key, "admin key", "out", all(404)),
        (&viewer_key, "viewer key", "in_viewer", all(403)),
        (&other, "other tenant's owner", "in_operator", all(404)),
        (&other_key, "other tenant's key", "in_operator", all(404)),
        (&other_here, "other tenant's owner on this path", "in_operator", all(404)),
        (&other_key_here, "other tenant's key on this path", "in_operator", all(404)),
    ];
    let mut failures = Vec::new();
    for (actor, actor_name, kind, expected) in &table {
        for (i, act) in ACTS.iter().enumerate() {
            let key = match *kind {
                "in_operator" => &in_operator,
                "in_viewer" => &in_viewer,
                "out" => &out,
                "mixed" => &mixed,
                "nowhere" => &nowhere,
                _ => unreachable!(),
            };
            let target = pending(&app, key).await;
            let got = perform(&app, actor, &target, *act).await;
            let after = member(&app, &owner, &target).await.map(|m| m["status"].as_str().unwrap().to_string());
            let want_after = match (got, act) {
                (200, _) => Some("active".to_string()),
                (204, _) => None,
                _ => Some("pending_approval".to_string()),
            };
            if got != expected[i] || after != want_after {
                failures.push(format!(
                    "{actor_name} {act:?} {kind}: got {got}, want {}; member afterwards {after:?}",
                    expected[i]
                ));
            }
        }
    }

    // User administration switched off: admins (and admin keys) are refused.
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", owner.tenant_id),
            &owner.token,
            json!({"settings": {"admins_can_manage_users": false}}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    for (actor, actor_name) in [(&admin, "admin, administration off"), (&admin_key, "admin key, administration off")] {
        for act in ACTS {
            let target = pending(&app, &in_operator).await;
            let got = perform(&app, actor, &target, act).await;
            let still = member(&app, &owner, &target).await.map(|m| m["status"] == "pending_approval");
            if got != 403 || still != Some(true) {
                failures.push(format!("{actor_name} {act:?} in_operator: got {got}, want 403; pending {still:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "policy cells failed:\n{}", failures.join("\n"));
}

#[tokio::test]
async fn agent_routes_take_only_agent_keys() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let agent = agent_key(&app, &owner, "viewer", &[]).await;
    let view = enrol_as(&app, &agent, "jdoe", "agent-1", StatusCode::CREATED).await;
    let get = format!("{ENROL}/{}", view["enrollment_id"].as_str().unwrap());
    let body = json!({"username": "someone", "device": device("agent-2")});
    let count = app.member_count(&owner).await;

    let post = |token: Option<String>| {
        let app = &app;
        let body = body.clone();
        async move { app.request(Method::POST, ENROL, token.as_deref()).json(&body).send().await.unwrap() }
    };
    let read = |token: Option<String>| {
        let app = &app;
        let get = get.clone();
        async move { app.request(Method::GET, &get, token.as_deref()).send().await.unwrap() }
    };
    // No Authorization, an unknown key, a revoked or expired agent key: 401, like a bad token.
    let (revoked_id, revoked) = create_key(&app, &owner, "agent", "viewer", &[]).await;
    assert_eq!(enrol(&app, &revoked, &unique("before"), "agent-r").await.status(), StatusCode::CREATED);
    let res = app
        .request(
            Method::DELETE,
            &format!("/api/v1/tenants/{}/api-keys/{revoked_id}", owner.tenant_id),
            Some(&owner.token),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (expired_id, expired) = create_key(&app, &owner, "agent", "viewer", &[]).await;
    app.execute_sql(&format!("UPDATE api_keys SET expires_at = '2000-01-01 00:00:00' WHERE id = '{expired_id}'"));
    let count = count + 1;
    for token in [
        None,
        Some(format!("rk_agent_{}", "A".repeat(43))),
        Some(revoked.clone()),
        Some(expired.clone()),
        Some("not-a-token".to_string()),
    ] {
        assert_problem(post(token.clone()).await, 401).await;
        assert_problem(read(token.clone()).await, 401).await;
    }
    // A person's token: an agent key is required. API and SCIM keys: not this kind.
    assert_slug(post(Some(owner.token.clone())).await, 403, "agent-key-required").await;
    assert_slug(read(Some(owner.token.clone())).await, 403, "agent-key-required").await;
    for kind in ["api", "scim"] {
        let (_, secret) = create_key(&app, &owner, kind, "owner", &[]).await;
        assert_slug(post(Some(secret.clone())).await, 403, "key-kind-not-allowed").await;
        assert_slug(read(Some(secret)).await, 403, "key-kind-not-allowed").await;
    }
    assert_eq!(app.member_count(&owner).await, count, "nothing enrolled by refused callers");
    // Agent keys enrol operators and viewers only.
    for role in ["admin", "owner"] {
        let res = app
            .send_json(
                Method::POST,
                &format!("/api/v1/tenants/{}/api-keys", owner.tenant_id),
                &owner.token,
                json!({"name": "Agent", "kind": "agent", "role": role}),
            )
            .await;
        assert_eq!(fields(&assert_problem(res, 422).await), ["role"], "{role}");
    }
    // An agent key reaches nothing else.
    let body = assert_problem(app.get(&users(&owner), &agent).await, 403).await;
    assert_eq!(body["type"], "urn:roster:problem:key-kind-not-allowed");
    assert_problem(approve(&app, &as_key(&owner, &agent), view["member"]["id"].as_str().unwrap()).await, 403).await;
    let res = app.get("/api/v1/me", &agent).await;
    assert!(res.status() == StatusCode::UNAUTHORIZED || res.status() == StatusCode::FORBIDDEN, "{}", res.status());
    assert_eq!(
        member(&app, &owner, view["member"]["id"].as_str().unwrap()).await.unwrap()["status"],
        "pending_approval"
    );
}

/// A test app with a real SMTP server, a tenant with a pending enrolled member, and the agent key.
struct Completion {
    smtp: SmtpServer,
    app: TestApp,
    owner: Persona,
    key: String,
    enrolled: Value,
}

impl Completion {
    async fn start() -> Self {
        let smtp = SmtpServer::start();
        let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
        let owner = app.new_owner("plus").await;
        let key = agent_key(&app, &owner, "operator", &[]).await;
        let enrolled = enrol_as(&app, &key, "jdoe", "agent-7f3a", StatusCode::CREATED).await;
        Self { smtp, app, owner, key, enrolled }
    }

    fn uid(&self) -> &str {
        self.enrolled["member"]["id"].as_str().unwrap()
    }

    fn token(&self) -> &str {
        self.enrolled["completion_token"].as_str().unwrap()
    }

    async fn profile(&self) -> String {
        let id = self.enrolled["enrollment_id"].as_str().unwrap();
        enrolment_ok(&self.app, &self.key, id).await["profile"].as_str().unwrap().to_string()
    }

    /// Completes the profile with `email` and `password` (asserting 202) and returns the
    /// confirmation token from the `n`-th message the SMTP server received.
    async fn complete_ok(&self, email: &str, password: &str, n: usize) -> String {
        let res =
            complete(&self.app, self.token(), json!({"full_name": "John Doe", "email": email, "password": password}))
                .await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["email"], email);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        let mails = wait_for(n, || self.smtp.messages()).await;
        let mail = parse(&mails[n - 1]);
        assert!(mail.to.contains(email), "{}", mail.to);
        assert!(mail.text.contains("http://app.roster.test/confirm-email?token="), "{}", mail.text);
        let token = link_token(&mail, "confirm-email");
        assert!(mail.html.contains(&token), "{}", mail.html);
        token
    }
}

#[tokio::test]
async fn profile_completion_then_confirmation_then_approval() {
    let t = Completion::start().await;
    let (app, owner) = (&t.app, &t.owner);
    let res = preview(app, t.token()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let seen: Value = res.json().await.unwrap();
    assert_eq!(
        (seen["tenant_id"].as_str(), seen["tenant_name"].as_str()),
        (Some(owner.tenant_id.as_str()), Some("Tenant"))
    );
    assert_eq!(seen["username"], "jdoe");
    assert_eq!(seen["device"], device("agent-7f3a"));
    assert!(seen["password_min_length"].as_i64().unwrap() >= 8, "{seen}");
    parse_time(&seen["expires_at"]);
    assert_problem(preview(app, "made-up-token").await, 404).await;

    // A password the policy refuses: 422 naming it; the token stays usable.
    let email = format!("jdoe-{}@example.test", uuid::Uuid::now_v7().simple());
    let res = complete(app, t.token(), json!({"full_name": "John Doe", "email": email, "password": "short"})).await;
    let body = assert_problem(res, 422).await;
    assert!(fields(&body).contains(&"password".to_string()), "{body}");
    // Someone else's address (a person of another tenant): refused, and that person is untouched.
    let elsewhere = app.new_owner("plus").await;
    for taken in [elsewhere.email.clone(), elsewhere.email.to_uppercase()] {
        let res = complete(
            app,
            t.token(),
            json!({"full_name": "Imposter", "email": taken, "password": "a long enough passphrase"}),
        )
        .await;
        let body = assert_slug(res, 409, "email-has-account").await;
        assert!(body["detail"].as_str().unwrap().contains("invite"), "{body}");
        assert!(!body.to_string().contains(&elsewhere.tenant_id), "{body}");
    }
    let login = app.login_ok(&elsewhere.email, &elsewhere.password, None).await;
    assert_eq!(login["tenants"].as_array().unwrap().len(), 1, "{login}");
    let me: Value = app.get("/api/v1/me", login["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_ne!(me["full_name"], "Imposter");
    assert_problem(app.login(json!({"email": elsewhere.email, "password": "a long enough passphrase"})).await, 401)
        .await;
    assert!(t.smtp.messages().is_empty(), "no mail for refused completions");
    assert_eq!(preview(app, t.token()).await.status(), StatusCode::OK);
    assert_eq!(t.profile().await, "incomplete");

    // Done: single use; the mail goes to the new address.
    let password = "John's own passphrase";
    let confirmation = t.complete_ok(&email, password, 1).await;
    assert_problem(
        complete(app, t.token(), json!({"full_name": "John Doe", "email": email, "password": password})).await,
        404,
    )
    .await;
    assert_problem(preview(app, t.token()).await, 404).await;
    assert_eq!(t.profile().await, "awaiting_email_confirmation");
    assert_eq!(app.audit_events(owner, "member.profile_completed").await.len(), 1);
    // Before the address is confirmed there is no password to sign in with.
    assert_problem(app.login(json!({"email": email, "password": password})).await, 401).await;

    // Confirmed, not yet approved: no membership to sign in to.
    let res = confirm_email(app, &confirmation).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!((body["email"].as_str(), body["can_sign_in"].as_bool()), (Some(email.as_str()), Some(false)), "{body}");
    assert_problem(confirm_email(app, &confirmation).await, 404).await;
    assert_problem(confirm_email(app, "made-up-token").await, 404).await;
    assert_eq!(t.profile().await, "complete");
    assert_eq!(app.audit_events(owner, "member.email_confirmed").await.len(), 1);
    assert_slug(app.login(json!({"email": email, "password": password})).await, 403, "no-membership").await;
    let m = member(app, owner, t.uid()).await.unwrap();
    assert_eq!((m["email"].as_str(), m["full_name"].as_str()), (Some(email.as_str()), Some("John Doe")), "{m}");
    assert_eq!(m["status"], "pending_approval");

    // Approved: signs in.
    assert_eq!(approve(app, owner, t.uid()).await.status(), StatusCode::OK);
    let login = app.login_ok(&email, password, None).await;
    assert_eq!(login["tenants"][0]["tenant_id"], owner.tenant_id.as_str(), "{login}");
    // The member now reads their own devices.
    let me = Persona {
        tenant_id: owner.tenant_id.clone(),
        user_id: t.uid().to_string(),
        email: email.clone(),
        password: password.to_string(),
        token: login["access_token"].as_str().unwrap().to_string(),
    };
    assert_eq!(devices(app, &me, t.uid()).await.status(), StatusCode::OK);
    // Enrolling again now finds a complete profile: no token.
    let again = enrol_as(app, &t.key, "jdoe", "agent-7f3a", StatusCode::OK).await;
    assert_eq!((again["status"].as_str(), again["profile"].as_str()), (Some("active"), Some("complete")));
    assert!(again["completion_token"].is_null(), "{again}");
}

#[tokio::test]
async fn approval_then_profile_completion_then_confirmation() {
    let t = Completion::start().await;
    let (app, owner) = (&t.app, &t.owner);
    assert_eq!(approve(app, owner, t.uid()).await.status(), StatusCode::OK);
    let email = format!("jdoe-{}@example.test", uuid::Uuid::now_v7().simple());
    let password = "John's own passphrase";
    // Approved but without a profile: nobody can sign in as them, and no reset link goes to
    // the provisional address (self-service answers as for an unknown address).
    assert_problem(app.login(json!({"email": email, "password": password})).await, 401).await;
    let provisional = member(app, owner, t.uid()).await.unwrap()["email"].as_str().unwrap().to_string();
    let path = format!("{}/password-reset", member_path(owner, t.uid()));
    let res = app.send_json(Method::POST, &path, &owner.token, json!({"delivery": "email"})).await;
    assert_slug(res, 409, "no-email-yet").await;
    let res = app
        .request(Method::POST, "/api/v1/auth/password-reset", None)
        .json(&json!({"email": provisional}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let confirmation = t.complete_ok(&email, password, 1).await;
    assert_eq!(t.profile().await, "awaiting_email_confirmation");
    assert_problem(app.login(json!({"email": email, "password": password})).await, 401).await;
    let res = confirm_email(app, &confirmation).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap()["can_sign_in"], true);
    assert_eq!(t.profile().await, "complete");
    let login = app.login_ok(&email, password, None).await;
    assert_eq!(login["tenants"][0]["tenant_id"], owner.tenant_id.as_str(), "{login}");
    assert_problem(app.login(json!({"email": email, "password": "a wrong passphrase"})).await, 401).await;
}

#[tokio::test]
async fn a_confirmation_for_an_address_taken_meanwhile_is_refused() {
    let t = Completion::start().await;
    let app = &t.app;
    let email = format!("jdoe-{}@example.test", uuid::Uuid::now_v7().simple());
    let confirmation = t.complete_ok(&email, "John's own passphrase", 1).await;
    // Meanwhile the address becomes someone's account (a new tenant's owner).
    let created = app.create_tenant("Quick", &email, "plus").await;
    let owner_password = created["password"].as_str().unwrap();
    assert_slug(confirm_email(app, &confirmation).await, 409, "email-has-account").await;
    app.login_ok(&email, owner_password, None).await;
    assert_problem(app.login(json!({"email": email, "password": "John's own passphrase"})).await, 401).await;
    assert_ne!(t.profile().await, "complete");
}

#[tokio::test]
async fn ten_parallel_enrolments_fill_exactly_the_free_seats() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}", owner.tenant_id),
            &owner.token,
            json!({"seat_limit": 4}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let key = agent_key(&app, &owner, "viewer", &[]).await;
    let before = app.member_count(&owner).await;
    assert_eq!(before, 1);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = app.client.clone();
        let url = format!("{}{ENROL}", app.address);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .json(&json!({"username": format!("racer{i}"), "device": device(&format!("agent-{i}"))}))
                .send()
                .await
                .unwrap();
            let status = res.status();
            (format!("racer{i}"), status, res.json::<Value>().await.unwrap())
        }));
    }
    let (mut created, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (username, status, body) = t.await.unwrap();
        match status {
            StatusCode::CREATED => created.push((username, body)),
            StatusCode::CONFLICT => {
                assert_eq!(body["type"], "urn:roster:problem:seat-limit-reached", "{body}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created.len(), refused), (3, 7));
    assert_eq!(app.member_count(&owner).await, before + 3);
    assert_eq!(pending_total(&app, &owner).await, 3);
    assert_eq!(app.audit_events(&owner, "member.enrolled").await.len(), 3);
    // Full: a new person is refused and nothing is created; a known one still gets a device.
    assert_slug(enrol(&app, &key, "racer-late", "agent-late").await, 409, "seat-limit-reached").await;
    assert_eq!(app.member_count(&owner).await, before + 3);
    let (known, first) = &created[0];
    let again = enrol_as(&app, &key, &known.to_uppercase(), "agent-second", StatusCode::OK).await;
    assert_eq!(again["member"]["id"], first["member"]["id"]);
    // A rejection frees its seat.
    assert_eq!(reject(&app, &owner, first["member"]["id"].as_str().unwrap()).await.status(), StatusCode::NO_CONTENT);
    assert_eq!(enrol(&app, &key, "racer-late", "agent-late").await.status(), StatusCode::CREATED);
    assert_slug(enrol(&app, &key, "racer-later", "agent-later").await, 409, "seat-limit-reached").await;
}

#[tokio::test]
async fn parallel_enrolments_of_one_agent_and_username_make_one_member() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = agent_key(&app, &owner, "viewer", &[]).await;
    for round in 0..5 {
        let username = format!("twin{round}");
        let agent_id = format!("agent-twin-{round}");
        let before = app.member_count(&owner).await;
        let (a, b) = tokio::join!(enrol(&app, &key, &username, &agent_id), enrol(&app, &key, &username, &agent_id));
        let (sa, sb) = (a.status(), b.status());
        let (va, vb): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
        let mut statuses = [sa.as_u16(), sb.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "round {round}: {va} {vb}");
        assert_eq!(va["enrollment_id"], vb["enrollment_id"], "round {round}");
        assert_eq!(va["member"]["id"], vb["member"]["id"], "round {round}");
        assert_eq!(app.member_count(&owner).await, before + 1, "round {round}");
        let list: Value = devices(&app, &owner, va["member"]["id"].as_str().unwrap()).await.json().await.unwrap();
        assert_eq!(list["total"], 1, "round {round}: {list}");
    }
    assert_eq!(app.audit_events(&owner, "member.enrolled").await.len(), 5);
}

#[tokio::test]
async fn every_bad_enrolment_is_a_422_naming_its_field_and_creates_nothing() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let key = agent_key(&app, &owner, "viewer", &[]).await;
    let before = (app.member_count(&owner).await, app.audit_count(&owner).await);
    let good = device("agent-ok");
    let with_device = |changes: Value| {
        let mut d = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                d.as_object_mut().unwrap().remove(k);
            } else {
                d[k] = v.clone();
            }
        }
        json!({"username": "valid.user", "device": d})
    };
    let cases: Vec<(Value, &str)> = vec![
        (json!({"device": good}), "username"),
        (json!({"username": "", "device": good}), "username"),
        (json!({"username": "   ", "device": good}), "username"),
        (json!({"username": "a".repeat(105), "device": good}), "username"),
        (json!({"username": "jd\u{7}oe", "device": good}), "username"),
        (json!({"username": "jd\noe", "device": good}), "username"),
        (json!({"username": 7, "device": good}), "username"),
        (json!({"username": "valid.user"}), "device"),
        (json!({"username": "valid.user", "device": "PC-042"}), "device"),
        (with_device(json!({"agent_id": null})), "device.agent_id"),
        (with_device(json!({"agent_id": ""})), "device.agent_id"),
        (with_device(json!({"agent_id": "agent 7f3a"})), "device.agent_id"),
        (with_device(json!({"agent_id": "agent-ä"})), "device.agent_id"),
        (with_device(json!({"agent_id": "agent-\u{1}"})), "device.agent_id"),
        (with_device(json!({"agent_id": "a".repeat(201)})), "device.agent_id"),
        (with_device(json!({"hostname": null})), "device.hostname"),
        (with_device(json!({"hostname": ""})), "device.hostname"),
        (with_device(json!({"hostname": "h".repeat(256)})), "device.hostname"),
        (with_device(json!({"os": "o".repeat(201)})), "device.os"),
    ];
    let mut failures = Vec::new();
    for (body, field) in &cases {
        let res = app.send_json(Method::POST, ENROL, &key, body.clone()).await;
        let status = res.status().as_u16();
        if status != 422 {
            failures.push(format!("{field}: {status} for {body}"));
            continue;
        }
        let problem = assert_problem(res, 422).await;
        if !fields(&problem).iter().any(|f| f == field) {
            failures.push(format!("{field} not named for {body}: {problem}"));
        }
    }
    // All at once: each named.
    let res = app
        .send_json(
            Method::POST,
            ENROL,
            &key,
            json!({"username": " ", "device": {"agent_id": "bad id", "hostname": "", "os": "o".repeat(201)}}),
        )
        .await;
    let problem = assert_problem(res, 422).await;
    let named = fields(&problem);
    for field in ["username", "device.agent_id", "device.hostname", "device.os"] {
        if !named.iter().any(|f| f == field) {
            failures.push(format!("{field} not named when all are bad: {problem}"));
        }
    }
    assert!(failures.is_empty(), "bad enrolments:\n{}", failures.join("\n"));
    assert_eq!((app.member_count(&owner).await, app.audit_count(&owner).await), before, "nothing created");
    assert_eq!(pending_total(&app, &owner).await, 0);

    // The limits themselves are taken: 104 characters, 200-character agent ids, 255-character
    // host names, no os at all.
    let long = "u".repeat(104);
    let body = json!({"username": long, "device": {"agent_id": "a".repeat(200), "hostname": "h".repeat(255)}});
    let res = app.send_json(Method::POST, ENROL, &key, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let view: Value = res.json().await.unwrap();
    assert_eq!(view["member"]["full_name"], long.as_str());
    assert!(view["device"]["os"].is_null(), "{view}");
    let body = json!({"username": "DOMAIN\\J.Doe Jr", "device": device("agent-~!#$%")});
    assert_eq!(app.send_json(Method::POST, ENROL, &key, body).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_confirmation_link_works_for_seven_days() {
    let t = Completion::start().await;
    let app = &t.app;
    let email = format!("jdoe-{}@example.test", uuid::Uuid::now_v7().simple());
    let confirmation = t.complete_ok(&email, "John's own passphrase", 1).await;
    assert_eq!(app.execute_sql("UPDATE email_confirmations SET expires_at = created_at"), 1);
    assert_problem(confirm_email(app, &confirmation).await, 404).await;
    assert_ne!(t.profile().await, "complete");
    assert_eq!(approve(app, &t.owner, t.uid()).await.status(), StatusCode::OK);
    assert_problem(app.login(json!({"email": email, "password": "John's own passphrase"})).await, 401).await;
    let m = member(app, &t.owner, t.uid()).await.unwrap();
    assert!(m["email"].as_str().unwrap().ends_with(".invalid"), "the address was never confirmed: {m}");
    // The agent enrolling again hands out a new link to start over.
    let again = enrol_as(app, &t.key, "jdoe", "agent-7f3a", StatusCode::OK).await;
    assert_eq!(preview(app, again["completion_token"].as_str().unwrap()).await.status(), StatusCode::OK);
}
