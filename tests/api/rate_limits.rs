//! Per-client limits: who the client is (the peer, or behind a trusted proxy the client it
//! names: `ROSTER_TRUSTED_PROXIES`), and one allowance across instances on PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app_with};

/// The tests' peer (127.0.0.1) as the one trusted proxy.
fn trusting_the_tests() -> roster::auth::client_addr::TrustedProxies {
    roster::auth::client_addr::TrustedProxies::parse("127.0.0.1").unwrap()
}

/// A failed sign-in sent with `headers`: 401, or 429 once the client's allowance is spent.
async fn sign_in_from(app: &TestApp, headers: &[(&str, &str)]) -> StatusCode {
    let mut rb = app.request(Method::POST, "/api/v1/auth/login", None);
    for (name, value) in headers {
        rb = rb.header(*name, *value);
    }
    let res = rb.json(&json!({"email": "nobody@example.test", "password": "wrong password"})).send().await.unwrap();
    let status = res.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert!(res.headers().contains_key("retry-after"));
        assert_eq!(assert_problem(res, 429).await["type"], "urn:roster:problem:rate-limited");
    }
    status
}

const XFF: &str = "x-forwarded-for";
const LIMITED: StatusCode = StatusCode::TOO_MANY_REQUESTS;
const REFUSED: StatusCode = StatusCode::UNAUTHORIZED;

/// With no trusted proxy, `X-Forwarded-For` and `Forwarded` are anyone's to write: a client
/// that sends a new address each time still spends its own (the peer's) allowance.
#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(|c| c.rate_login_per_minute = 3).await;
    assert_eq!(sign_in_from(&app, &[(XFF, "203.0.113.1")]).await, REFUSED);
    assert_eq!(sign_in_from(&app, &[(XFF, "203.0.113.2")]).await, REFUSED);
    assert_eq!(sign_in_from(&app, &[("forwarded", "for=203.0.113.3")]).await, REFUSED);
    assert_eq!(sign_in_from(&app, &[(XFF, "203.0.113.4")]).await, LIMITED);
    assert_eq!(sign_in_from(&app, &[]).await, LIMITED);
}

/// Behind a trusted proxy (the tests' peer, 127.0.0.1) each client it names has its own
/// allowance, whether named by `X-Forwarded-For` or by `Forwarded` (quoted IPv6 with a port);
/// the proxy's own requests are a client of their own, and a malformed header counts as the
/// proxy's.
#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_allowance() {
    let app = spawn_app_with(|c| {
        c.rate_login_per_minute = 2;
        c.trusted_proxies = trusting_the_tests();
    })
    .await;
    let a = [(XFF, "203.0.113.1")];
    let b = [("forwarded", r#"for="[2001:db8:cafe::17]:4711";proto=https"#)];
    assert_eq!(sign_in_from(&app, &a).await, REFUSED);
    assert_eq!(sign_in_from(&app, &a).await, REFUSED);
    assert_eq!(sign_in_from(&app, &a).await, LIMITED);
    assert_eq!(sign_in_from(&app, &b).await, REFUSED);
    // The same IPv6 client, written as X-Forwarded-For without brackets.
    assert_eq!(sign_in_from(&app, &[(XFF, "2001:db8:cafe::17")]).await, REFUSED);
    assert_eq!(sign_in_from(&app, &b).await, LIMITED);
    assert_eq!(sign_in_from(&app, &[]).await, REFUSED, "the proxy itself");
    assert_eq!(sign_in_from(&app, &[(XFF, "not an address")]).await, REFUSED, "malformed: the proxy");
    assert_eq!(sign_in_from(&app, &[(XFF, "203.0.113.9, nonsense")]).await, LIMITED, "malformed: the proxy");
}

/// Through a chain of trusted proxies the client is the first untrusted hop from the right:
/// what the client wrote to the left of it is not believed.
#[tokio::test]
async fn chained_proxies_name_the_first_untrusted_hop() {
    let app = spawn_app_with(|c| {
        c.rate_login_per_minute = 2;
        c.trusted_proxies = roster::auth::client_addr::TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").unwrap();
    })
    .await;
    assert_eq!(sign_in_from(&app, &[(XFF, "198.51.100.7, 203.0.113.9, 10.1.2.3")]).await, REFUSED);
    assert_eq!(sign_in_from(&app, &[(XFF, "203.0.113.9"), (XFF, "10.9.9.9")]).await, REFUSED);
    let rfc7239 = [("forwarded", "for=6.6.6.6, for=203.0.113.9;proto=https, for=10.1.2.3;by=10.0.0.1")];
    assert_eq!(sign_in_from(&app, &rfc7239).await, LIMITED, "203.0.113.9 spent its allowance");
    assert_eq!(sign_in_from(&app, &[(XFF, "198.51.100.7, 10.1.2.3")]).await, REFUSED, "198.51.100.7 did not");
}

/// Signs `owner` in on `app` with `X-Forwarded-For: forwarded`: the `ip` its session shows.
async fn session_ip(app: &TestApp, owner: &Persona, forwarded: &str) -> Value {
    let res = app
        .request(Method::POST, "/api/v1/auth/login", None)
        .header(XFF, forwarded)
        .json(&json!({"email": owner.email, "password": owner.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let token = res.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let sessions: Value = app.get("/api/v1/me/sessions", &token).await.json().await.unwrap();
    let current = sessions["items"].as_array().unwrap().iter().find(|s| s["current"] == true).cloned();
    current.unwrap()["ip"].clone()
}

/// Sessions (like audit events) keep the same client address as the limits use: the
/// forwarded client behind a trusted proxy, the peer otherwise.
#[tokio::test]
async fn sessions_record_the_forwarded_client_only_through_a_trusted_proxy() {
    let app = spawn_app_with(|c| c.trusted_proxies = trusting_the_tests()).await;
    let untrusting = app.second_instance_with(|_| {}).await;
    let owner = app.new_owner("plus").await;
    assert_eq!(session_ip(&app, &owner, "203.0.113.50").await, "203.0.113.50");
    assert_eq!(session_ip(&untrusting, &owner, "203.0.113.60").await, "127.0.0.1");
}

/// A client spread over two instances gets the configured allowance in all on PostgreSQL (the
/// limit's state is in the database), also when its requests arrive at once; on SQLite (one
/// instance by design) each instance keeps its own, so two instances allow twice as many.
/// Housekeeping removes buckets that have run dry.
#[tokio::test]
async fn a_client_spread_over_two_instances_gets_one_allowance_on_postgres() {
    const LIMIT: u32 = 4;
    let adjust = |c: &mut roster::config::Config| {
        c.rate_login_per_minute = LIMIT;
        c.trusted_proxies = trusting_the_tests();
    };
    let app = spawn_app_with(adjust).await;
    let other = app.second_instance_with(adjust).await;
    let shared = app.db.url.starts_with("postgres");
    let expected = LIMIT as usize * if shared { 1 } else { 2 };
    // One after another, alternating.
    let (one, two) = ([(XFF, "203.0.113.76")], [(XFF, "203.0.113.77")]);
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(sign_in_from(if i % 2 == 0 { &app } else { &other }, &one).await);
    }
    let let_through = statuses.iter().filter(|s| **s == REFUSED).count();
    assert_eq!(let_through, expected, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == REFUSED || *s == LIMITED), "{statuses:?}");
    // Another client, its requests at once on both instances.
    let at_once = (0..16).map(|i| sign_in_from(if i % 2 == 0 { &app } else { &other }, &two));
    let statuses = futures_util::future::join_all(at_once).await;
    let let_through = statuses.iter().filter(|s| **s == REFUSED).count();
    assert_eq!(let_through, expected, "{statuses:?}");
    if shared {
        let pool = roster::db::build_pool(&app.db.url, 1).expect("pool");
        let mut conn = pool.get().expect("conn");
        let keep = roster::store::housekeeping::Retention {
            sessions: roster::store::sessions::SessionLimits {
                lifetime: chrono::Duration::days(30),
                idle: chrono::Duration::days(7),
            },
            event_days: 30,
        };
        let pruned = roster::store::housekeeping::prune(&mut conn, keep).unwrap();
        assert_eq!(pruned.rate_limits, 0, "both buckets are still filling");
        assert_eq!(app.execute_sql("UPDATE rate_limits SET tat_us = tat_us - 3600000000"), 2, "one row per client");
        let pruned = roster::store::housekeeping::prune(&mut conn, keep).unwrap();
        assert_eq!(pruned.rate_limits, 2);
        // A bucket gone is a full allowance again.
        assert_eq!(sign_in_from(&other, &one).await, REFUSED);
    }
}

/// A trusted-proxy list that is not addresses or CIDRs stops start-up, naming the variable.
#[test]
fn a_bad_trusted_proxy_list_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roster"))
        .arg("migrate")
        .env("DATABASE_URL", dir.path().join("roster.db"))
        .env("ROSTER_DATA_DIR", dir.path())
        .env("ROSTER_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")
        .output()
        .expect("roster runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ROSTER_TRUSTED_PROXIES") && err.contains("proxy.internal"), "{err}");
}

/// An API key's request limit is one allowance across instances on PostgreSQL too (taken on
/// the connection the guard checks the key on); on SQLite each instance keeps its own.
#[tokio::test]
async fn an_api_key_spread_over_two_instances_gets_one_allowance_on_postgres() {
    const LIMIT: u32 = 3;
    let app = spawn_app_with(|c| c.rate_api_key_per_minute = LIMIT).await;
    let other = app.second_instance_with(|c| c.rate_api_key_per_minute = LIMIT).await;
    let expected = LIMIT as usize * if app.db.url.starts_with("postgres") { 1 } else { 2 };
    let owner = app.new_owner("plus").await;
    let keys = format!("/api/v1/tenants/{}/api-keys", owner.tenant_id);
    let created =
        app.send_json(Method::POST, &keys, &owner.token, json!({"name": "K", "kind": "api", "role": "viewer"}));
    let created: Value = created.await.json().await.unwrap();
    let key = created["secret"].as_str().unwrap();
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let mut statuses = Vec::new();
    for i in 0..10 {
        let res = (if i % 2 == 0 { &app } else { &other }).get(&users, key).await;
        if res.status() == LIMITED {
            assert!(res.headers().contains_key("retry-after"));
            assert_problem(res, 429).await;
            statuses.push(LIMITED);
        } else {
            statuses.push(res.status());
        }
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), expected, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == LIMITED), "{statuses:?}");
}

/// A larger allowance is taken from the shared state a lease (1%) at a time: across two
/// instances the key still gets no more than the allowance, and no less than the allowance
/// less one lease per instance.
#[tokio::test]
async fn leased_allowances_hold_across_two_instances() {
    const LIMIT: u32 = 200;
    let app = spawn_app_with(|c| c.rate_api_key_per_minute = LIMIT).await;
    if !app.db.url.starts_with("postgres") {
        return;
    }
    let other = app.second_instance_with(|c| c.rate_api_key_per_minute = LIMIT).await;
    let owner = app.new_owner("plus").await;
    let keys = format!("/api/v1/tenants/{}/api-keys", owner.tenant_id);
    let created =
        app.send_json(Method::POST, &keys, &owner.token, json!({"name": "K", "kind": "api", "role": "viewer"}));
    let created: Value = created.await.json().await.unwrap();
    let key = created["secret"].as_str().unwrap().to_string();
    let users = format!("/api/v1/tenants/{}/users", owner.tenant_id);
    let started = std::time::Instant::now();
    let (mut ok, mut limited) = (0, 0);
    for round in 0..30 {
        // Ten at once, split over the two instances.
        let answers = futures_util::future::join_all((0..10).map(|i| {
            let target = if (round + i) % 2 == 0 { &app } else { &other };
            target.get(&users, &key)
        }))
        .await;
        for res in answers {
            match res.status() {
                StatusCode::OK => ok += 1,
                LIMITED => limited += 1,
                other => panic!("unexpected {other}"),
            }
        }
    }
    // One more request each 60/LIMIT seconds while the test ran.
    let refilled = (started.elapsed().as_secs_f64() * f64::from(LIMIT) / 60.0).ceil() as usize;
    let lease = (LIMIT / 100) as usize;
    let (least, most) = (LIMIT as usize - 2 * lease, LIMIT as usize + refilled);
    assert!(ok >= least && ok <= most, "{ok} allowed (expected {least}..={most}), {limited} limited");
}
