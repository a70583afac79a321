//! Sessions: refresh-token rotation and reuse detection, logout, `GET/DELETE /me/sessions`,
//! ending a member's sessions, and account lockout after failed sign-ins.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app, spawn_app_with};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/auth/refresh", None).json(&json!({"refresh_token": token})).send().await.unwrap()
}

/// Refreshes, asserting 200; returns (access token, refresh token).
async fn refresh_ok(app: &TestApp, token: &str) -> (String, String) {
    let res = refresh(app, token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    (body["access_token"].as_str().unwrap().into(), body["refresh_token"].as_str().unwrap().into())
}

/// Signs in, returning (access token, refresh token, session id).
async fn sign_in(app: &TestApp, who: &Persona) -> (String, String, String) {
    let body = app.login_ok(&who.email, &who.password, Some(&who.tenant_id)).await;
    let s = |k: &str| body[k].as_str().unwrap_or_else(|| panic!("{k} in {body}")).to_string();
    (s("access_token"), s("refresh_token"), s("session_id"))
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_ends_the_session() {
    let app = spawn_app().await;
    let other = app.second_instance().await;
    let owner = app.new_owner("plus").await;
    let (access, r1, session) = sign_in(&app, &owner).await;
    let (a2, r2) = refresh_ok(&app, &r1).await;
    assert_ne!(r1, r2);
    assert_ne!(access, a2);
    let me: Value = app.get("/api/v1/me", &a2).await.json().await.unwrap();
    assert_eq!(me["tenant_id"], owner.tenant_id, "the refreshed token acts in the session's tenant");
    let (a3, r3) = refresh_ok(&other, &r2).await;
    assert_eq!(app.get("/api/v1/me", &a3).await.status(), StatusCode::OK);
    // The first token again: refused, and the whole session ends, on every instance.
    let reused = assert_problem(refresh(&other, &r1).await, 401).await;
    assert!(reused["detail"].as_str().unwrap().contains("already used"), "{reused}");
    assert_problem(refresh(&app, &r3).await, 401).await;
    for token in [&access, &a2, &a3] {
        assert_problem(app.get("/api/v1/me", token).await, 401).await;
        assert_problem(other.get(&format!("/api/v1/tenants/{}/users", owner.tenant_id), token).await, 401).await;
    }
    let found = app.audit_events(&owner, "session.refresh_token_reused").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["after"]["session_id"], session);
    // Unknown and malformed tokens.
    assert_problem(refresh(&app, "made-up").await, 401).await;
    let res = app.request(Method::POST, "/api/v1/auth/refresh", None).json(&json!({})).send().await.unwrap();
    assert_problem(res, 422).await;
}

/// A refresh token that is not a live one answers 401 (problem+json, `WWW-Authenticate`)
/// whatever its shape, so "on 401, sign in again" is all a client needs; only a body without
/// the string is a client bug (422).
#[tokio::test]
async fn every_refresh_token_that_is_not_live_answers_401() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (access, live, _) = sign_in(&app, &owner).await;
    let (_, used, _) = sign_in(&app, &owner).await;
    let (_, rotated_to) = refresh_ok(&app, &used).await;
    let (_, expired, expired_session) = sign_in(&app, &owner).await;
    let run_out = format!("UPDATE sessions SET expires_at = created_at WHERE id = '{expired_session}'");
    assert_eq!(app.execute_sql(&run_out), 1);
    let (ended_access, ended, _) = sign_in(&app, &owner).await;
    let res = app.request(Method::POST, "/api/v1/auth/logout", Some(&ended_access)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let cut = &live[..live.len() - 1];
    let longer = format!("{live}A");
    let long = "A".repeat(201);
    let huge = "A".repeat(10_000);
    let padded = format!(" {live} ");
    for (what, token) in [
        ("empty", ""),
        ("blank", "   "),
        ("with a NUL character", "abc\u{0}def"),
        ("too short", "abc"),
        ("one character short", cut),
        ("one character long", &longer),
        ("longer than any token", &long),
        ("far longer", &huge),
        ("not base64", "!!!not*base64???###"),
        ("not ASCII", "ключ-обновления-токена"),
        ("padded with spaces", &padded),
        ("an access token", &access),
        ("unknown", "kq3V1x1nS2u8rYbqk0mZ7w"),
        ("expired", &expired),
        ("ended by logout", &ended),
        ("already used", &used),
    ] {
        let res = refresh(&app, token).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(res.headers().get("www-authenticate").map(|v| v.to_str().unwrap()), Some("Bearer"), "{what}");
        assert_eq!(assert_problem(res, 401).await["type"], "urn:roster:problem:unauthorized", "{what}");
    }
    // Reusing a token ended its session: the token it was rotated to is refused as well.
    assert_problem(refresh(&app, &rotated_to).await, 401).await;
    // The live one still refreshes: none of the above touched it.
    refresh_ok(&app, &live).await;
    // A body that is not an object with a string `refresh_token`: the client's bug, 422.
    for body in [json!({}), json!({"refresh_token": null}), json!({"refresh_token": 42}), json!("x"), json!(7)] {
        let res = app.request(Method::POST, "/api/v1/auth/refresh", None).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_problem(res, 422).await;
    }
    // Signing out with an access token that is not a live one: 401 too.
    for token in ["", "not-a-jwt", ended_access.as_str()] {
        let res = app.request(Method::POST, "/api/v1/auth/logout", None).bearer_auth(token).send().await.unwrap();
        assert!(res.headers().get("www-authenticate").is_some(), "logout with {token:?}");
        assert_problem(res, 401).await;
    }
}

/// Many requests with one refresh token at once: one gets through; the rest are reuse, which
/// ends the session, so nobody holding a copy can go on.
#[tokio::test]
async fn parallel_refreshes_with_one_token_let_one_through_then_end_the_session() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (_, r1, _) = sign_in(&app, &owner).await;
    let answers = futures_util::future::join_all((0..8).map(|_| refresh(&app, &r1))).await;
    let mut winners = Vec::new();
    for res in answers {
        if res.status() == StatusCode::OK {
            let body: Value = res.json().await.unwrap();
            winners.push(body["refresh_token"].as_str().unwrap().to_string());
        } else {
            assert_problem(res, 401).await;
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation");
    assert_problem(refresh(&app, &winners[0]).await, 401).await;
}

#[tokio::test]
async fn logout_and_ending_a_session_stop_its_tokens_at_once() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (a1, r1, s1) = sign_in(&app, &owner).await;
    let (a2, r2, s2) = sign_in(&app, &owner).await;
    let (a3, _, s3) = sign_in(&app, &owner).await;
    let list: Value = app.get("/api/v1/me/sessions", &a2).await.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    for s in [&s1, &s2, &s3] {
        assert!(ids.contains(&s.as_str()), "{list}");
    }
    let current: Vec<&Value> = items.iter().filter(|i| i["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], s2.as_str());
    assert_eq!(current[0]["tenant_id"], owner.tenant_id);

    // Logout ends only the caller's session.
    let res = app.request(Method::POST, "/api/v1/auth/logout", Some(&a1)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get("/api/v1/me", &a1).await, 401).await;
    assert_problem(refresh(&app, &r1).await, 401).await;
    assert_eq!(app.get("/api/v1/me", &a2).await.status(), StatusCode::OK);
    assert_problem(app.request(Method::POST, "/api/v1/auth/logout", Some(&a1)).send().await.unwrap(), 401).await;

    // Ending another of one's sessions.
    let res = app.request(Method::DELETE, &format!("/api/v1/me/sessions/{s3}"), Some(&a2)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(app.get(&format!("/api/v1/tenants/{}/users", owner.tenant_id), &a3).await, 401).await;
    let again = app.request(Method::DELETE, &format!("/api/v1/me/sessions/{s3}"), Some(&a2)).send().await.unwrap();
    assert_problem(again, 404).await;
    // Someone else's session is not found.
    let stranger = app.new_owner("plus").await;
    let theirs = app.request(Method::DELETE, &format!("/api/v1/me/sessions/{s2}"), Some(&stranger.token));
    assert_problem(theirs.send().await.unwrap(), 404).await;
    assert_eq!(app.get("/api/v1/me", &a2).await.status(), StatusCode::OK);
    let list: Value = app.get("/api/v1/me/sessions", &a2).await.json().await.unwrap();
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&s1.as_str()) && !ids.contains(&s3.as_str()) && ids.contains(&s2.as_str()));
    refresh_ok(&app, &r2).await;
    assert_eq!(app.audit_events(&owner, "user.signed_out").await.len(), 1);
    assert_eq!(app.audit_events(&owner, "session.ended").await.len(), 1);
}

#[tokio::test]
async fn owners_and_admins_end_a_members_sessions_in_their_tenant() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let member = app.new_member(&owner, "viewer", &[&north]).await;
    let elsewhere = app.new_member(&owner, "viewer", &[&south]).await;
    let operator = app.new_member(&owner, "operator", &[&north]).await;
    let (access, refresh_token, _) = sign_in(&app, &member).await;
    let path = |who: &Persona| format!("/api/v1/tenants/{}/users/{}/sessions", owner.tenant_id, who.user_id);

    let res = app.request(Method::DELETE, &path(&member), Some(&operator.token)).send().await.unwrap();
    assert_problem(res, 403).await;
    let res = app.request(Method::DELETE, &path(&elsewhere), Some(&admin.token)).send().await.unwrap();
    assert_problem(res, 404).await;
    let res = app.request(Method::DELETE, &path(&admin), Some(&admin.token)).send().await.unwrap();
    assert_problem(res, 403).await;
    assert_eq!(app.get("/api/v1/me", &access).await.status(), StatusCode::OK);

    let res = app.request(Method::DELETE, &path(&member), Some(&admin.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sessions_ended"], 2, "the one from creating the member's password, and this one");
    assert_problem(app.get("/api/v1/me", &access).await, 401).await;
    assert_problem(app.get("/api/v1/me", &member.token).await, 401).await;
    assert_problem(refresh(&app, &refresh_token).await, 401).await;
    // They can sign in again (disabling stops that).
    sign_in(&app, &member).await;
    assert_eq!(app.audit_events(&owner, "member.sessions_ended").await.len(), 1);
}

/// A person in two tenants: ending their sessions or disabling them in one leaves their
/// sessions in the other going.
#[tokio::test]
async fn disabling_ends_sessions_in_that_tenant_only() {
    let app = spawn_app().await;
    let a = app.new_owner("plus").await;
    let co_owner = app.new_member(&a, "owner", &[]).await;
    let b = app.create_tenant("Second", &a.email, "plus").await;
    let b_id = b["tenant_id"].as_str().unwrap().to_string();
    let in_b = Persona { tenant_id: b_id.clone(), ..a.clone() };
    let (b_access, b_refresh, _) = sign_in(&app, &in_b).await;
    let in_a = sign_in(&app, &a).await;

    let res = app.set_status(&co_owner, &a.user_id, "disabled").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(app.get("/api/v1/me", &in_a.0).await, 401).await;
    assert_problem(refresh(&app, &in_a.1).await, 401).await;
    // Tenant B's session goes on, refreshes, and works there.
    assert_eq!(app.get(&format!("/api/v1/tenants/{b_id}/users"), &b_access).await.status(), StatusCode::OK);
    let (b2, _) = refresh_ok(&app, &b_refresh).await;
    assert_eq!(app.get(&format!("/api/v1/tenants/{b_id}/users"), &b2).await.status(), StatusCode::OK);
    let disabled = app.audit_events(&co_owner, "member.disabled").await;
    assert!(disabled[0]["after"]["sessions_ended"].as_i64().unwrap() >= 1, "{disabled:?}");
}

/// Changing the password ends every other session; the answer starts a new one.
#[tokio::test]
async fn a_password_change_ends_every_session() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (a1, r1, _) = sign_in(&app, &owner).await;
    let (a2, _, _) = sign_in(&app, &owner).await;
    let res = app
        .send_json(
            Method::POST,
            "/api/v1/auth/password",
            &a2,
            json!({"current_password": owner.password, "new_password": "another long passphrase"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_problem(app.get("/api/v1/me", &a1).await, 401).await;
    assert_problem(app.get("/api/v1/me", &a2).await, 401).await;
    assert_problem(refresh(&app, &r1).await, 401).await;
    let (fresh, _) = refresh_ok(&app, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(app.get("/api/v1/me", &fresh).await.status(), StatusCode::OK);
}

/// A temporary-password sign-in gets no refresh token; it can only change the password.
#[tokio::test]
async fn a_password_change_only_sign_in_has_no_refresh_token() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let created = app.create_member(&owner, "viewer", &[]).await;
    let login =
        app.login_ok(created["email"].as_str().unwrap(), created["temporary_password"].as_str().unwrap(), None).await;
    assert_eq!(login["must_change_password"], true);
    assert!(login.get("refresh_token").is_none(), "{login}");
    assert!(login["session_id"].is_string());
}

#[tokio::test]
async fn repeated_failures_lock_the_account_until_an_admin_clears_it() {
    let app = spawn_app_with(|c| {
        c.lockout_threshold = 3;
        c.lockout_secs = 600;
    })
    .await;
    let owner = app.new_owner("plus").await;
    let member = app.new_member(&owner, "viewer", &[]).await;
    let wrong = json!({"email": member.email, "password": "not the password"});
    let first = assert_problem(app.login(wrong.clone()).await, 401).await;
    for _ in 0..2 {
        assert_problem(app.login(wrong.clone()).await, 401).await;
    }
    // Locked: even the right password gets the very same answer as a wrong one or an
    // unknown email.
    let right = json!({"email": member.email, "password": member.password});
    let locked = assert_problem(app.login(right.clone()).await, 401).await;
    let unknown = assert_problem(app.login(json!({"email": "nobody@example.test", "password": "x"})).await, 401).await;
    assert_eq!(locked["detail"], first["detail"]);
    assert_eq!(unknown["detail"], first["detail"]);
    assert_eq!(locked["type"], first["type"]);

    // Admins see the lock, in the member and in the list.
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, member.user_id);
    let seen: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert!(seen["locked_until"].is_string(), "{seen}");
    let list: Value = app
        .get(&format!("/api/v1/tenants/{}/users?q={}", owner.tenant_id, member.email), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["items"][0]["locked_until"].is_string(), "{list}");
    let audit = app.audit_events(&owner, "user.locked").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["after"]["lock_seconds"], 600);

    // A viewer cannot clear it; the owner can.
    let res = app.request(Method::DELETE, &format!("{path}/lock"), Some(&member.token)).send().await.unwrap();
    assert_problem(res, 403).await;
    let res = app.request(Method::DELETE, &format!("{path}/lock"), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert!(body.get("locked_until").is_none(), "{body}");
    let list: Value = app
        .get(&format!("/api/v1/tenants/{}/users?q={}", owner.tenant_id, member.email), &owner.token)
        .await
        .json()
        .await
        .unwrap();
    assert!(list["items"][0].get("locked_until").is_none(), "{list}");
    app.login_ok(&member.email, &member.password, None).await;
    assert_eq!(app.audit_events(&owner, "member.unlocked").await.len(), 1);
    // A success starts the count again: two more failures do not lock.
    for _ in 0..2 {
        assert_problem(app.login(wrong.clone()).await, 401).await;
    }
    app.login_ok(&member.email, &member.password, None).await;
}

/// Each failure after a lock has run out locks again, for twice as long.
#[tokio::test]
async fn the_lock_grows_with_each_further_failure() {
    let app = spawn_app_with(|c| {
        c.lockout_threshold = 2;
        c.lockout_secs = 1;
    })
    .await;
    let owner = app.new_owner("plus").await;
    let member = app.new_member(&owner, "viewer", &[]).await;
    let wrong = json!({"email": member.email, "password": "not the password"});
    for _ in 0..2 {
        assert_problem(app.login(wrong.clone()).await, 401).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_problem(app.login(wrong.clone()).await, 401).await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    assert_problem(app.login(wrong.clone()).await, 401).await;
    let secs: Vec<i64> = app
        .audit_events(&owner, "user.locked")
        .await
        .iter()
        .map(|e| e["after"]["lock_seconds"].as_i64().unwrap())
        .collect();
    assert_eq!(secs, vec![4, 2, 1], "newest first");
    // Failures while locked do not count: the lock stays 4 s and nothing new is recorded.
    assert_problem(app.login(wrong.clone()).await, 401).await;
    assert_eq!(app.audit_events(&owner, "user.locked").await.len(), 3);
    // A completed password change by an admin reset also clears it.
    let reset = format!("/api/v1/tenants/{}/users/{}/password-reset", owner.tenant_id, member.user_id);
    let res = app.request(Method::POST, &reset, Some(&owner.token)).send().await.unwrap();
    let temp: Value = res.json().await.unwrap();
    app.login_ok(&member.email, temp["temporary_password"].as_str().unwrap(), None).await;
}

/// An unknown email takes about as long as a wrong password (one argon2 verify either way).
#[tokio::test]
async fn unknown_emails_take_about_as_long_as_wrong_passwords() {
    let app = spawn_app_with(|c| c.lockout_threshold = 0).await;
    let owner = app.new_owner("plus").await;
    async fn median(app: &TestApp, email: &str) -> std::time::Duration {
        let mut times = Vec::new();
        for _ in 0..9 {
            let started = std::time::Instant::now();
            let res = app.login(json!({"email": email, "password": "not the password"})).await;
            times.push(started.elapsed());
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        }
        times.sort();
        times[4]
    }
    let known = median(&app, &owner.email).await;
    let unknown = median(&app, "nobody-at-all@example.test").await;
    // Generous bounds for a noisy machine; without the dummy verify an unknown email answers
    // in well under a tenth of the time.
    assert!(unknown * 3 > known && known * 3 > unknown, "known {known:?}, unknown {unknown:?}");
}

/// A session ends when its lifetime is over, and its refresh token stops when it sits idle.
#[tokio::test]
async fn sessions_end_when_they_run_out_or_sit_idle() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (a1, r1, s1) = sign_in(&app, &owner).await;
    let (a2, r2, s2) = sign_in(&app, &owner).await;
    assert_eq!(app.execute_sql(&format!("UPDATE sessions SET expires_at = created_at WHERE id = '{s1}'")), 1);
    assert_problem(app.get("/api/v1/me", &a1).await, 401).await;
    assert_problem(refresh(&app, &r1).await, 401).await;
    let list: Value = app.get("/api/v1/me/sessions", &a2).await.json().await.unwrap();
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(!ids.contains(&s1.as_str()) && ids.contains(&s2.as_str()), "{list}");
    // Idle past ROSTER_SESSION_IDLE_DAYS: the refresh token no longer refreshes.
    let idle = format!("UPDATE sessions SET last_used_at = '2000-01-01 00:00:00' WHERE id = '{s2}'");
    assert_eq!(app.execute_sql(&idle), 1);
    let res = assert_problem(refresh(&app, &r2).await, 401).await;
    assert!(res["detail"].as_str().unwrap().contains("session has ended"), "{res}");
}

/// Housekeeping removes sessions over for a week (with their rotated tokens) and keeps the rest.
#[tokio::test]
async fn housekeeping_removes_sessions_long_over() {
    use diesel::prelude::*;
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (_, r1, s1) = sign_in(&app, &owner).await;
    refresh_ok(&app, &r1).await;
    let (a2, _, s2) = sign_in(&app, &owner).await;
    let res = app.request(Method::DELETE, &format!("/api/v1/me/sessions/{s1}"), Some(&a2)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let pool = roster::db::build_pool(&app.db.url, 1).expect("pool");
    let mut conn = pool.get().expect("conn");
    let limits = roster::store::sessions::SessionLimits {
        lifetime: chrono::Duration::days(30),
        idle: chrono::Duration::days(7),
    };
    // Ended just now: kept.
    let kept = roster::store::housekeeping::prune(
        &mut conn,
        roster::store::housekeeping::Retention { sessions: limits, event_days: 30 },
    )
    .unwrap();
    assert_eq!(kept.sessions, 0);
    assert_eq!(app.execute_sql(&format!("UPDATE sessions SET ended_at = '2000-01-01 00:00:00' WHERE id = '{s1}'")), 1);
    let pruned = roster::store::housekeeping::prune(
        &mut conn,
        roster::store::housekeeping::Retention { sessions: limits, event_days: 30 },
    )
    .unwrap();
    assert_eq!(pruned.sessions, 1);
    use roster::db::schema::{rotated_refresh_tokens::dsl as rt, sessions::dsl as s};
    let left: Vec<String> = s::sessions.select(s::id).load(&mut *conn).unwrap();
    assert!(!left.contains(&s1) && left.contains(&s2), "{left:?}");
    let rotated: i64 =
        rt::rotated_refresh_tokens.filter(rt::session_id.eq(&s1)).count().get_result(&mut *conn).unwrap();
    assert_eq!(rotated, 0, "rotated tokens go with their session");
    // The remaining session still works.
    assert_eq!(app.get("/api/v1/me", &a2).await.status(), StatusCode::OK);
}

/// Reading one member checks the caller in the statement that reads the member on PostgreSQL
/// (`TenantAccess::run_joined`), and before it on SQLite: either way every refusal the guard
/// gives on other routes holds, and a refused caller learns nothing about the member.
#[tokio::test]
async fn reading_a_member_refuses_every_caller_the_guard_refuses() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let elsewhere = app.new_owner("plus").await;
    let north = app.create_region(&owner, "North", None).await;
    let south = app.create_region(&owner, "South", None).await;
    let admin = app.new_member(&owner, "admin", &[&north]).await;
    let viewer = app.new_member(&owner, "viewer", &[]).await;
    let in_north = app.create_member(&owner, "operator", &[&north]).await["id"].as_str().unwrap().to_string();
    let in_south = app.create_member(&owner, "operator", &[&south]).await["id"].as_str().unwrap().to_string();
    let path = |id: &str| format!("/api/v1/tenants/{}/users/{id}", owner.tenant_id);
    let read = |token: &str, id: &str| {
        let (app, url, token) = (&app, path(id), token.to_string());
        async move { app.get(&url, &token).await }
    };
    // Allowed: the owner reads anyone, the admin within North and themself, the viewer themself;
    // each answer is the member asked for, with its regions.
    for (who, id) in [(&owner, &in_south), (&admin, &in_north), (&admin, &admin.user_id), (&viewer, &viewer.user_id)] {
        let res = read(&who.token, id).await;
        assert_eq!(res.status(), StatusCode::OK, "{} reads {id}", who.email);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["id"], id.as_str());
    }
    let body: Value = read(&owner.token, &in_south).await.json().await.unwrap();
    assert_eq!(body["regions"], json!([south]));
    // Not for them, no such member, another tenant's member: 404 alike.
    for (who, id) in [
        (&admin, in_south.as_str()),
        (&viewer, in_north.as_str()),
        (&owner, "01900000-0000-7000-8000-000000000000"),
        (&owner, elsewhere.user_id.as_str()),
    ] {
        assert_problem(read(&who.token, id).await, 404).await;
    }
    // Another tenant's owner: their token sees no such tenant.
    assert_problem(app.get(&path(&owner.user_id), &elsewhere.token).await, 404).await;
    // A token that must change its password first reads nothing, not even its own member.
    let fresh = app.create_member(&owner, "viewer", &[]).await;
    let login = app
        .login_ok(
            fresh["email"].as_str().unwrap(),
            fresh["temporary_password"].as_str().unwrap(),
            Some(&owner.tenant_id),
        )
        .await;
    let temp_token = login["access_token"].as_str().unwrap();
    let res = assert_problem(read(temp_token, fresh["id"].as_str().unwrap()).await, 403).await;
    assert_eq!(res["type"], "urn:roster:problem:password-change-required");
    // The admin's session ended (logout): 401, for a member that exists and for one that does not.
    let (ended, _, _) = sign_in(&app, &admin).await;
    let res = app.request(Method::POST, "/api/v1/auth/logout", Some(&ended)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    for id in [in_north.as_str(), "01900000-0000-7000-8000-000000000000"] {
        let res = assert_problem(read(&ended, id).await, 401).await;
        assert!(res["detail"].as_str().unwrap().contains("session"), "{res}");
    }
    // The viewer disabled: their token is revoked at once.
    assert_eq!(app.set_status(&owner, &viewer.user_id, "disabled").await.status(), StatusCode::OK);
    assert_problem(read(&viewer.token, &viewer.user_id).await, 401).await;
    // The admin's role changed: the token carries the old version.
    let res = app.send_json(Method::PATCH, &path(&admin.user_id), &owner.token, json!({"role": "operator"})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_problem(read(&admin.token, &in_north).await, 401).await;
    // The admin removed from the tenant (disabled, then deleted): 401 (no membership).
    assert_eq!(app.set_status(&owner, &admin.user_id, "disabled").await.status(), StatusCode::OK);
    let res = app.request(Method::DELETE, &path(&admin.user_id), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(read(&admin.token, &in_south).await, 401).await;
}
