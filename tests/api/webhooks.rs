//! Webhooks and the event feed: endpoints (CRUD, the secret shown once, URL and type checks,
//! ETags, audit, policy, other tenants), and delivery to a real receiver process
//! (tools/webhook_receiver.py) that verifies every signature with the `standardwebhooks`
//! package from PyPI: every member event once, retries after a receiver was down, giving up,
//! manual retry, secret rotation, test events, address checks at delivery time, an endpoint
//! turned off after failing for 5 days, two instances, `kill -9`; and the feed paged by cursor.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app, spawn_app_with};

// ---------------------------------------------------------------- the receiver process

/// The venv's Python, once it is known to import `standardwebhooks`; fails (never skips)
/// saying how to get it.
fn receiver_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let venv = std::env::var_os("ROSTER_TOOLS_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/tools-venv"));
            let python = venv.join("bin/python");
            let how = "run the tests with ./test, which makes it (tools/deps.sh; see the README, \"Test it\")";
            assert!(
                python.exists(),
                "the webhook tests need the venv {} with the PyPI package standardwebhooks \
                 (tools/requirements.txt), and it is missing: {how}",
                venv.display()
            );
            let imports = Command::new(&python)
                .args(["-c", "import standardwebhooks"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                imports,
                "{} cannot import standardwebhooks (tools/requirements.txt changed since the venv \
                 was made?): {how}",
                python.display()
            );
            python
        })
        .clone()
}

/// `tools/webhook_receiver.py` on 127.0.0.1: verifies each delivery with every secret it
/// knows and keeps what it received.
struct Receiver {
    port: u16,
    child: Child,
    client: reqwest::Client,
}

impl Receiver {
    fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/webhook_receiver.py");
        let mut child = Command::new(receiver_python())
            .arg(script)
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tools/webhook_receiver.py");
        let mut line = String::new();
        let read = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let Some(port) = read.ok().and_then(|_| line.trim().parse().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tools/webhook_receiver.py did not print its port (got {line:?})");
        };
        Self { port, child, client: reqwest::Client::new() }
    }

    /// `http://127.0.0.1:<port><path>` (127.0.0.1 is on the tests' allow-list).
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn admin(&self, path: &str, body: Value) {
        let res = self.client.post(self.url(path)).json(&body).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "receiver {path}");
    }

    /// One more secret to verify with.
    async fn add_secret(&self, secret: &str) {
        self.admin("/secrets", json!({"secret": secret})).await;
    }

    /// Answers every delivery with `status` from now on.
    async fn answer(&self, status: u16) {
        self.admin("/mode", json!({"status": status})).await;
    }

    /// Every request received so far, oldest first.
    async fn received(&self) -> Vec<Value> {
        let body: Value = self.client.get(self.url("/received")).send().await.unwrap().json().await.unwrap();
        body["requests"].as_array().unwrap().clone()
    }

    /// Waits (up to 20 s) until what was received satisfies `done`; returns it.
    async fn wait_until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.received().await;
            if done(&got) {
                return got;
            }
            if Instant::now() > deadline {
                panic!("receiver: waited 20 s for {what}; received:\n{:#}", Value::Array(got));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests answered 2xx (the delivery succeeded there).
fn accepted(requests: &[Value]) -> Vec<&Value> {
    requests.iter().filter(|r| r["status"].as_u64().is_some_and(|s| (200..300).contains(&s))).collect()
}

/// Requests per `webhook-id`.
fn by_id(requests: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in requests {
        map.entry(r["webhook_id"].as_str().unwrap_or("").to_string()).or_default().push(r);
    }
    map
}

/// The event types among requests, sorted.
fn types_of(requests: &[&Value]) -> Vec<String> {
    let mut types: Vec<String> = requests.iter().map(|r| r["type"].as_str().unwrap_or("").to_string()).collect();
    types.sort();
    types
}

/// Asserts a request is a well-formed, verified Standard Webhooks delivery of one event.
fn assert_signed_event(r: &Value, tenant: &str) {
    assert_eq!(r["verified"], true, "not verified: {r:#}");
    let body = &r["body"];
    assert_eq!(body["id"], r["webhook_id"], "webhook-id is the event id: {r:#}");
    assert_eq!(body["tenant_id"], tenant, "{r:#}");
    assert!(body["occurred_at"].as_str().is_some_and(|t| t.ends_with('Z')), "occurred_at in UTC: {r:#}");
    assert!(r["content_type"].as_str().is_some_and(|c| c.starts_with("application/json")), "{r:#}");
    assert!(r["user_agent"].as_str().is_some_and(|u| u.starts_with("Roster-Webhooks/")), "{r:#}");
    // Signed at this attempt: the timestamp is the time it was sent.
    let ts: f64 = r["webhook_timestamp"].as_str().unwrap().parse().unwrap();
    let at = r["received_at"].as_f64().unwrap();
    assert!((at - ts).abs() < 3.0, "webhook-timestamp {ts} is not the time of sending ({at}): {r:#}");
}

// ---------------------------------------------------------------- routes

fn hooks(by: &Persona) -> String {
    format!("/api/v1/tenants/{}/webhooks", by.tenant_id)
}

fn hook(by: &Persona, id: &str) -> String {
    format!("{}/{id}", hooks(by))
}

fn events(by: &Persona) -> String {
    format!("/api/v1/tenants/{}/events", by.tenant_id)
}

/// Creates an endpoint as `by`, asserting 201; returns (webhook, secret).
async fn create_hook(app: &TestApp, by: &Persona, url: &str, types: &[&str]) -> (Value, String) {
    let res = app.send_json(Method::POST, &hooks(by), &by.token, json!({"url": url, "event_types": types})).await;
    assert_eq!(res.status(), StatusCode::CREATED, "create webhook {url}");
    let body: Value = res.json().await.unwrap();
    (body["webhook"].clone(), body["secret"].as_str().unwrap().to_string())
}

/// An endpoint at `path` of `receiver` for `types`, its secret known to the receiver; its id.
async fn hook_to(app: &TestApp, by: &Persona, receiver: &Receiver, path: &str, types: &[&str]) -> String {
    let (created, secret) = create_hook(app, by, &receiver.url(path), types).await;
    receiver.add_secret(&secret).await;
    created["id"].as_str().unwrap().to_string()
}

async fn deliveries(app: &TestApp, by: &Persona, id: &str) -> Vec<Value> {
    let res = app.get(&format!("{}/deliveries?limit=200", hook(by, id)), &by.token).await;
    assert_eq!(res.status(), StatusCode::OK, "deliveries");
    let body: Value = res.json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

/// Waits (up to 20 s) until the endpoint's deliveries satisfy `done`; returns them.
async fn wait_deliveries(
    app: &TestApp,
    by: &Persona,
    id: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = deliveries(app, by, id).await;
        if done(&got) {
            return got;
        }
        if Instant::now() > deadline {
            panic!("deliveries: waited 20 s for {what}; got:\n{:#}", Value::Array(got));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A persona acting with an API key of `role`, created by `owner`.
async fn key_persona(app: &TestApp, owner: &Persona, role: &str) -> Persona {
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/api-keys", owner.tenant_id),
            &owner.token,
            json!({"name": format!("{role} key"), "kind": "api", "role": role}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "create {role} key");
    let body: Value = res.json().await.unwrap();
    Persona { token: body["secret"].as_str().unwrap().to_string(), ..owner.clone() }
}

/// Every event of the feed from the start (`query` is `&type=...` or empty), paging by
/// `limit` and checking the paging on the way; with the cursor to poll from.
async fn whole_feed(app: &TestApp, by: &Persona, query: &str, limit: usize) -> (Vec<Value>, String) {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(c) => format!("{}?limit={limit}&after={c}{query}", events(by)),
            None => format!("{}?limit={limit}{query}", events(by)),
        };
        let res = app.get(&url, &by.token).await;
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        let page: Value = res.json().await.unwrap();
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit, "{url}: {} items", got.len());
        items.extend(got.iter().cloned());
        let next = page["next_cursor"].as_str().map(str::to_string);
        if page["has_more"] == true {
            assert_eq!(got.len(), limit, "a page that is not the last is full: {url}");
            after = Some(next.expect("next_cursor on a page with more"));
        } else {
            return (items, next.or(after).unwrap_or_default());
        }
    }
}

/// `POST .../users/import` of `csv` as `by`, asserting 201.
async fn import(app: &TestApp, by: &Persona, csv: String) {
    let res = app
        .request(Method::POST, &format!("/api/v1/tenants/{}/users/import", by.tenant_id), Some(&by.token))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED, "import");
}

fn csv_of(n: usize, tag: &str) -> String {
    let mut csv = String::from("email,full_name\n");
    for i in 0..n {
        csv.push_str(&format!("{tag}{i}@hooks.test,Hooked {i}\n"));
    }
    csv
}

// ---------------------------------------------------------------- endpoints

#[tokio::test]
async fn owners_create_read_list_change_and_delete_endpoints_and_see_the_secret_once() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let body = json!({"url": "https://product.example/hooks/roster", "description": " Sync ", "event_types": ["member.*", "invitation.accepted"]});
    let res = app.send_json(Method::POST, &hooks(&owner), &owner.token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let created: Value = res.json().await.unwrap();
    let view = &created["webhook"];
    let id = view["id"].as_str().unwrap().to_string();
    assert_eq!(location, hook(&owner, &id));
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() >= "whsec_".len() + 32, "{secret}");
    assert_eq!(view["url"], "https://product.example/hooks/roster");
    assert_eq!(view["description"], "Sync");
    assert_eq!(view["event_types"], json!(["member.*", "invitation.accepted"]));
    assert_eq!((view["enabled"].clone(), view["disabled_reason"].clone()), (json!(true), Value::Null));
    assert_eq!(view["created_by"], owner.user_id.as_str());
    assert!(view["created_at"].as_str().unwrap().ends_with('Z'));

    // Read and list: never the secret again.
    let res = app.get(&hook(&owner, &id), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
    let text = res.text().await.unwrap();
    assert!(!text.contains(&secret) && !text.contains("whsec_"), "{text}");
    let res = app.get(&format!("{}?limit=10", hooks(&owner)), &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(!text.contains("whsec_"), "{text}");
    let list: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id.as_str());

    // PATCH with If-Match: the current ETag works, a stale one is 412, nonsense 412 or 400.
    let res = app
        .request(Method::PATCH, &hook(&owner, &id), Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"event_types": ["*"], "description": null, "url": "https://product.example/v2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let new_etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(new_etag, etag);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(changed["event_types"], json!(["*"]));
    assert_eq!(changed["description"], Value::Null);
    assert_eq!(changed["url"], "https://product.example/v2");
    assert_eq!(changed["version"], view["version"].as_i64().unwrap() + 1);
    let res = app
        .request(Method::PATCH, &hook(&owner, &id), Some(&owner.token))
        .header("If-Match", &etag)
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 412).await;
    let res = app.send_json(Method::PATCH, &hook(&owner, &id), &owner.token, json!({"enabled": false})).await;
    assert_eq!(res.status(), StatusCode::OK, "PATCH without If-Match");
    let off: Value = res.json().await.unwrap();
    assert_eq!((off["enabled"].clone(), off["disabled_reason"].clone()), (json!(false), Value::Null));
    let res = app.send_json(Method::PATCH, &hook(&owner, &id), &owner.token, json!({"secret": "x"})).await;
    assert_problem(res, 422).await;

    // Rotation answers a new secret, once.
    let res =
        app.request(Method::POST, &format!("{}/rotate-secret", hook(&owner, &id)), Some(&owner.token)).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let second = rotated["secret"].as_str().unwrap();
    assert!(second.starts_with("whsec_") && second != secret);
    assert_eq!(rotated["webhook"]["id"], id.as_str());

    // Every change is audited, secrets nowhere in the log.
    for action in ["webhook.created", "webhook.updated", "webhook.secret_rotated"] {
        let found = app.audit_events(&owner, action).await;
        assert!(found.iter().any(|e| e["target_id"] == id.as_str()), "{action} audited: {found:#?}");
    }
    let res = app.request(Method::DELETE, &hook(&owner, &id), Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let found = app.audit_events(&owner, "webhook.deleted").await;
    assert!(found.iter().any(|e| e["target_id"] == id.as_str()), "webhook.deleted audited: {found:#?}");
    let log = app.get(&format!("/api/v1/tenants/{}/audit-events?limit=200", owner.tenant_id), &owner.token).await;
    let log = log.text().await.unwrap();
    assert!(!log.contains(&secret) && !log.contains(second), "a secret in the audit log");
    assert_problem(app.get(&hook(&owner, &id), &owner.token).await, 404).await;
    let res = app.request(Method::DELETE, &hook(&owner, &id), Some(&owner.token)).send().await.unwrap();
    assert_problem(res, 404).await;
    let list: Value = app.get(&hooks(&owner), &owner.token).await.json().await.unwrap();
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn bad_urls_and_unknown_event_types_are_422_naming_the_field() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let port = crate::email::free_port();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({"url": "http://product.example/x", "event_types": ["*"]}), "url", "https"),
        (json!({"url": format!("http://localhost:{port}/"), "event_types": ["*"]}), "url", "https"),
        (json!({"url": "https://10.0.0.1/x", "event_types": ["*"]}), "url", "10.0.0.1"),
        (json!({"url": "https://169.254.169.254/latest/meta-data", "event_types": ["*"]}), "url", "169.254.169.254"),
        (json!({"url": "https://[::1]/x", "event_types": ["*"]}), "url", "not allowed"),
        (json!({"url": "not a url", "event_types": ["*"]}), "url", ""),
        (json!({"url": "ftp://product.example/x", "event_types": ["*"]}), "url", ""),
        (json!({"url": "https://user:pw@product.example/x", "event_types": ["*"]}), "url", "password"),
        (
            json!({"url": "https://product.example/x", "event_types": ["member.creatd"]}),
            "event_types[0]",
            "member.creatd",
        ),
        (
            json!({"url": "https://product.example/x", "event_types": ["member.*", "nope.*"]}),
            "event_types[1]",
            "nope.*",
        ),
        (
            json!({"url": "https://product.example/x", "event_types": ["member.*", "member.*"]}),
            "event_types[1]",
            "twice",
        ),
        (json!({"url": "https://product.example/x", "event_types": []}), "event_types", "1"),
    ];
    for (body, field, says) in cases {
        let res = app.send_json(Method::POST, &hooks(&owner), &owner.token, body.clone()).await;
        let problem = assert_problem(res, 422).await;
        let errors = problem["errors"].as_array().unwrap_or_else(|| panic!("{body}: {problem:#}"));
        let error = errors.iter().find(|e| e["field"] == field).unwrap_or_else(|| panic!("{body}: {problem:#}"));
        assert!(error["message"].as_str().unwrap().contains(says), "{body}: {problem:#}");
    }
    // Nothing was created, and PATCH checks the same way.
    let list: Value = app.get(&hooks(&owner), &owner.token).await.json().await.unwrap();
    assert_eq!(list["total"], 0);
    let (created, _) = create_hook(&app, &owner, "https://product.example/x", &["member.created"]).await;
    let path = hook(&owner, created["id"].as_str().unwrap());
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"url": "https://192.168.1.1/x"})).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "url");
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"event_types": ["member.nope"]})).await;
    assert_eq!(assert_problem(res, 422).await["errors"][0]["field"], "event_types[0]");
    let now: Value = app.get(&path, &owner.token).await.json().await.unwrap();
    assert_eq!((now["url"].as_str(), now["version"].as_i64()), (Some("https://product.example/x"), Some(1)));
    // The allowed host may use plain http (the receiver tests rely on it).
    create_hook(&app, &owner, &format!("http://127.0.0.1:{port}/hook"), &["member.*"]).await;
}

#[tokio::test]
async fn only_owners_and_owner_keys_manage_webhooks_and_read_the_feed_and_other_tenants_get_404() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (created, _) = create_hook(&app, &owner, "https://product.example/a", &["member.*"]).await;
    let id = created["id"].as_str().unwrap().to_string();
    let test = app.request(Method::POST, &format!("{}/test", hook(&owner, &id)), Some(&owner.token)).send().await;
    let test: Value = test.unwrap().json().await.unwrap();
    let delivery = test["id"].as_str().unwrap().to_string();

    // Every route, as (method, path, body).
    let routes = |by: &Persona, id: &str| -> Vec<(Method, String, Option<Value>)> {
        let h = format!("/api/v1/tenants/{}/webhooks", by.tenant_id);
        vec![
            (Method::GET, h.clone(), None),
            (Method::POST, h.clone(), Some(json!({"url": "https://product.example/b", "event_types": ["*"]}))),
            (Method::GET, format!("{h}/{id}"), None),
            (Method::PATCH, format!("{h}/{id}"), Some(json!({"description": "x"}))),
            (Method::POST, format!("{h}/{id}/rotate-secret"), None),
            (Method::POST, format!("{h}/{id}/test"), None),
            (Method::GET, format!("{h}/{id}/deliveries"), None),
            (Method::POST, format!("{h}/{id}/deliveries/{delivery}/retry"), None),
            (Method::GET, format!("/api/v1/tenants/{}/events", by.tenant_id), None),
            (Method::DELETE, format!("{h}/{id}"), None),
        ]
    };
    let call = |by: Persona, method: Method, path: String, body: Option<Value>| {
        let app = &app;
        async move {
            let rb = app.request(method, &path, Some(&by.token));
            let rb = match body {
                Some(b) => rb.json(&b),
                None => rb,
            };
            rb.send().await.unwrap()
        }
    };

    let admin = app.new_member(&owner, "admin", &[]).await;
    let operator = app.new_member(&owner, "operator", &[]).await;
    let viewer = app.new_member(&owner, "viewer", &[]).await;
    let admin_key = key_persona(&app, &owner, "admin").await;
    for (who, by) in [("admin", &admin), ("operator", &operator), ("viewer", &viewer), ("admin key", &admin_key)] {
        for (method, path, body) in routes(by, &id) {
            let res = call(by.clone(), method.clone(), path.clone(), body).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{who}: {method} {path}");
        }
    }

    // Another tenant's owner and owner key, on this tenant's paths: 404. On their own
    // tenant's paths with this tenant's ids: 404 too.
    let stranger = app.new_owner("plus").await;
    let stranger_key = key_persona(&app, &stranger, "owner").await;
    for (who, by) in [("other owner", &stranger), ("other owner key", &stranger_key)] {
        let here = Persona { tenant_id: owner.tenant_id.clone(), ..by.clone() };
        for (method, path, body) in routes(&here, &id) {
            let res = call(by.clone(), method.clone(), path.clone(), body).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who}: {method} {path}");
        }
        for (method, path, body) in routes(by, &id) {
            if path.ends_with("/webhooks") || path.ends_with("/events") {
                continue;
            }
            let res = call(by.clone(), method.clone(), path.clone(), body).await;
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{who}, own tenant, other id: {method} {path}");
        }
    }
    // Still there, unchanged.
    let now: Value = app.get(&hook(&owner, &id), &owner.token).await.json().await.unwrap();
    assert_eq!(now["version"], created["version"]);

    // An owner-role API key may do everything, and is audited as itself.
    let owner_key = key_persona(&app, &owner, "owner").await;
    let expected = [200, 201, 200, 200, 200, 202, 200, 202, 200, 204];
    for ((method, path, body), status) in routes(&owner_key, &id).into_iter().zip(expected) {
        let res = call(owner_key.clone(), method.clone(), path.clone(), body).await;
        assert_eq!(res.status().as_u16(), status, "owner key: {method} {path}");
    }
    let created_by_key = app.audit_events(&owner, "webhook.created").await;
    assert!(created_by_key.iter().any(|e| e["actor_type"] == "api_key"), "{created_by_key:#?}");
}

// ---------------------------------------------------------------- delivery

#[tokio::test]
async fn every_member_change_arrives_once_signed_with_its_type_and_version() {
    let receiver = Receiver::start();
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let members_hook = hook_to(&app, &owner, &receiver, "/members", &["member.*"]).await;
    let invitations_hook = hook_to(&app, &owner, &receiver, "/invitations", &["invitation.*"]).await;

    let member = app.create_member(&owner, "viewer", &[]).await;
    let member_id = member["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/tenants/{}/users/{member_id}", owner.tenant_id);
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"full_name": "Renamed Member"})).await;
    assert_eq!(res.status(), StatusCode::OK, "profile");
    let res = app.send_json(Method::PATCH, &path, &owner.token, json!({"role": "admin"})).await;
    assert_eq!(res.status(), StatusCode::OK, "role");
    assert_eq!(app.set_status(&owner, &member_id, "disabled").await.status(), StatusCode::OK, "disable");
    assert_eq!(app.set_status(&owner, &member_id, "active").await.status(), StatusCode::OK, "enable");
    // Only a disabled member can be deleted.
    assert_eq!(app.set_status(&owner, &member_id, "disabled").await.status(), StatusCode::OK, "disable again");
    let res = app.request(Method::DELETE, &path, Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT, "delete");
    let res = app
        .send_json(
            Method::POST,
            &format!("/api/v1/tenants/{}/invitations", owner.tenant_id),
            &owner.token,
            json!({"email": "invited@hooks.test", "role": "viewer", "regions": []}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "invite");

    // In the order they happened.
    let member_types = [
        "member.created",
        "member.updated",
        "member.role_changed",
        "member.disabled",
        "member.enabled",
        "member.disabled",
        "member.deleted",
    ];
    let got = receiver
        .wait_until("7 member events and 1 invitation", |r| {
            let ok = accepted(r);
            ok.iter().filter(|x| x["path"] == "/members").count() >= 7 && ok.iter().any(|x| x["path"] == "/invitations")
        })
        .await;
    // Nothing more comes (a second member.updated, say, or a repeat).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = {
        let later = receiver.received().await;
        assert_eq!(later.len(), got.len(), "more requests arrived: {:#}", Value::Array(later.clone()));
        later
    };
    for r in &got {
        assert_signed_event(r, &owner.tenant_id);
        assert!(r["status"].as_u64().is_some_and(|s| s == 200), "every request accepted at once: {r:#}");
    }
    for (id, requests) in by_id(&got) {
        assert_eq!(requests.len(), 1, "event {id} arrived {} times", requests.len());
    }
    let to_members: Vec<&Value> = got.iter().filter(|r| r["path"] == "/members").collect();
    let to_invitations: Vec<&Value> = got.iter().filter(|r| r["path"] == "/invitations").collect();
    let mut sorted = member_types.to_vec();
    sorted.sort();
    assert_eq!(types_of(&to_members), sorted, "one event per change, of its most specific type");
    assert_eq!(types_of(&to_invitations), ["invitation.created"], "member.* gets no invitation, and vice versa");

    // Each member event carries the member after the change (before it, for the deletion),
    // with a version that grows with each change: ordered by version, they are the changes
    // in the order they were made.
    for r in &to_members {
        let body = &r["body"];
        let t = body["type"].as_str().unwrap();
        assert_eq!(body["target"], json!({"type": "member", "id": member_id}), "{t}: {body:#}");
        assert_eq!(body["actor"]["type"], "user", "{t}: {body:#}");
        assert_eq!(body["actor"]["id"], owner.user_id.as_str(), "{t}: {body:#}");
        assert_eq!(body["data"]["id"], member_id.as_str(), "{t}: {body:#}");
        assert!(body["data"]["version"].is_i64(), "{t} carries data.version: {body:#}");
    }
    let mut by_version: Vec<(i64, &str)> = to_members
        .iter()
        .map(|r| (r["body"]["data"]["version"].as_i64().unwrap(), r["type"].as_str().unwrap()))
        .collect();
    by_version.sort();
    let deleted = by_version.iter().position(|(_, t)| *t == "member.deleted").unwrap();
    let last = by_version.remove(deleted);
    assert_eq!(by_version.iter().map(|(_, t)| *t).collect::<Vec<_>>(), member_types[..6], "{by_version:?}");
    assert!(by_version.windows(2).all(|w| w[0].0 < w[1].0), "each change a new version: {by_version:?}");
    assert!(last.0 >= by_version[5].0, "the deletion carries the last version: {last:?} {by_version:?}");
    let body_of = |t: &str| &to_members.iter().find(|r| r["type"] == t).unwrap()["body"]["data"];
    assert_eq!(body_of("member.created")["version"], 1);
    assert_eq!(body_of("member.updated")["full_name"], "Renamed Member");
    assert_eq!(body_of("member.role_changed")["role"], "admin");
    assert_eq!(body_of("member.disabled")["status"], "disabled");
    assert_eq!(body_of("member.enabled")["status"], "active");
    let invitation = &to_invitations[0]["body"];
    assert_eq!(invitation["data"]["email"], "invited@hooks.test", "{invitation:#}");

    // The feed holds the same events, with the same ids and bodies.
    let (feed, _) = whole_feed(&app, &owner, "&type=member.*,invitation.*", 50).await;
    let feed_ids: Vec<&str> = feed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let delivered: HashMap<&str, &Value> =
        got.iter().map(|r| (r["webhook_id"].as_str().unwrap(), &r["body"])).collect();
    assert_eq!(feed.len(), 8, "{feed:#?}");
    for event in &feed {
        let id = event["id"].as_str().unwrap();
        assert_eq!(delivered.get(id), Some(&event), "the feed and the webhook carry the same event {id}");
    }
    assert_eq!(feed_ids.iter().collect::<HashSet<_>>().len(), 8);
    // And the endpoints' delivery logs agree.
    for (id, n) in [(&members_hook, 7), (&invitations_hook, 1)] {
        let log = deliveries(&app, &owner, id).await;
        assert_eq!(log.len(), n, "{log:#?}");
        for d in &log {
            assert_eq!((d["status"].as_str(), d["attempts"].as_i64()), (Some("succeeded"), Some(1)), "{d:#}");
            assert_eq!(d["last_status_code"], 200, "{d:#}");
            assert!(d["delivered_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{d:#}");
            assert_eq!(d["next_attempt_at"], Value::Null, "{d:#}");
        }
    }
}

#[tokio::test]
async fn a_receiver_that_is_down_then_up_gets_everything_signed_afresh() {
    let receiver = Receiver::start();
    receiver.answer(503).await;
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let id = hook_to(&app, &owner, &receiver, "/down", &["member.created"]).await;
    for _ in 0..3 {
        app.create_member(&owner, "viewer", &[]).await;
    }
    // The log shows the failed attempts and when the next one is due.
    let log = wait_deliveries(&app, &owner, &id, "3 failed attempts", |d| {
        d.len() == 3 && d.iter().all(|d| d["attempts"].as_i64() >= Some(1))
    })
    .await;
    for d in &log {
        assert_eq!(d["status"], "pending", "{d:#}");
        assert_eq!(d["last_status_code"], 503, "{d:#}");
        assert!(d["last_error"].as_str().is_some_and(|e| e.contains("503")), "{d:#}");
        assert!(d["next_attempt_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{d:#}");
        assert!(d["last_duration_ms"].is_i64(), "{d:#}");
        assert_eq!(d["delivered_at"], Value::Null, "{d:#}");
    }
    receiver.answer(200).await;
    let got = receiver.wait_until("3 events accepted", |r| accepted(r).len() >= 3).await;
    let log = wait_deliveries(&app, &owner, &id, "3 succeeded", |d| d.iter().all(|d| d["status"] == "succeeded")).await;
    assert_eq!(log.len(), 3);
    let ids = by_id(&got);
    assert_eq!(ids.len(), 3, "only these events' ids: {ids:#?}");
    for (event, requests) in &ids {
        // Every attempt carries the same id and a signature over that attempt's timestamp.
        assert!(requests.len() >= 2, "event {event} was retried: {requests:#?}");
        for r in requests {
            assert_signed_event(r, &owner.tenant_id);
        }
        assert_eq!(requests.iter().filter(|r| r["status"] == 200).count(), 1, "{requests:#?}");
        let first = requests.first().unwrap();
        let last = requests.last().unwrap();
        assert_eq!(first["status"], 503);
        assert_eq!(last["status"], 200);
        assert_ne!(first["webhook_timestamp"], last["webhook_timestamp"], "the retry is signed anew");
        assert_ne!(first["webhook_signature"], last["webhook_signature"], "the retry is signed anew");
        assert_eq!(first["body"], last["body"], "the same event");
        let d = log.iter().find(|d| d["event_id"] == event.as_str()).unwrap();
        assert_eq!(d["attempts"].as_u64(), Some(requests.len() as u64), "{d:#}");
        assert_eq!(d["last_status_code"], 200, "{d:#}");
        assert_eq!(d["last_error"], Value::Null, "{d:#}");
    }
}

#[tokio::test]
async fn a_receiver_that_stays_down_fails_after_four_attempts_and_a_manual_retry_sends_it() {
    let receiver = Receiver::start();
    receiver.answer(500).await;
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let id = hook_to(&app, &owner, &receiver, "/broken", &["member.created"]).await;
    app.create_member(&owner, "viewer", &[]).await;
    // Schedule [1, 1, 1]: the first attempt and three retries, then no more.
    let log = wait_deliveries(&app, &owner, &id, "failed", |d| d.len() == 1 && d[0]["status"] == "failed").await;
    let d = &log[0];
    assert_eq!(d["attempts"], 4, "{d:#}");
    assert_eq!(d["next_attempt_at"], Value::Null, "{d:#}");
    assert_eq!(d["last_status_code"], 500, "{d:#}");
    let failed: Value =
        app.get(&format!("{}/deliveries?status=failed", hook(&owner, &id)), &owner.token).await.json().await.unwrap();
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    let pending: Value =
        app.get(&format!("{}/deliveries?status=pending", hook(&owner, &id)), &owner.token).await.json().await.unwrap();
    assert_eq!(pending["items"].as_array().unwrap().len(), 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = receiver.received().await;
    assert_eq!(got.len(), 4, "no fifth attempt: {:#}", Value::Array(got.clone()));
    assert!(got.iter().all(|r| r["webhook_id"] == d["event_id"] && r["verified"] == true), "{got:#?}");

    // A manual retry sends it again now.
    receiver.answer(204).await;
    let delivery = d["id"].as_str().unwrap();
    let retry = format!("{}/deliveries/{delivery}/retry", hook(&owner, &id));
    let res = app.request(Method::POST, &retry, Some(&owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let queued: Value = res.json().await.unwrap();
    assert_eq!(queued["status"], "pending", "{queued:#}");
    let got = receiver.wait_until("the retried delivery", |r| accepted(r).len() == 1).await;
    assert_eq!(got.len(), 5);
    assert_signed_event(&got[4], &owner.tenant_id);
    assert_eq!(got[4]["webhook_id"], d["event_id"]);
    let log = wait_deliveries(&app, &owner, &id, "succeeded", |d| d[0]["status"] == "succeeded").await;
    assert_eq!((log[0]["attempts"].as_i64(), log[0]["last_status_code"].as_i64()), (Some(5), Some(204)));
    // The retry is audited (by whom, which delivery); it is no event.
    let audited = app.audit_events(&owner, "webhook.delivery_retried").await;
    assert_eq!(audited.len(), 1, "{audited:#?}");
    assert_eq!(
        (audited[0]["target_id"].as_str(), audited[0]["actor_id"].as_str()),
        (Some(id.as_str()), Some(owner.user_id.as_str()))
    );
    assert_eq!(audited[0]["after"]["delivery_id"], d["id"]);

    // A delivery that is not there, or not this endpoint's: 404.
    let other = format!("{}/deliveries/{}/retry", hook(&owner, &id), uuid::Uuid::now_v7());
    assert_problem(app.request(Method::POST, &other, Some(&owner.token)).send().await.unwrap(), 404).await;
    let (second, _) = create_hook(&app, &owner, &receiver.url("/other"), &["member.created"]).await;
    let wrong = format!("{}/deliveries/{delivery}/retry", hook(&owner, second["id"].as_str().unwrap()));
    assert_problem(app.request(Method::POST, &wrong, Some(&owner.token)).send().await.unwrap(), 404).await;
}

#[tokio::test]
async fn after_a_rotation_the_old_and_the_new_secret_each_verify_alone() {
    let receiver = Receiver::start();
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let (created, old) = create_hook(&app, &owner, &receiver.url("/rotating"), &["member.*"]).await;
    let id = created["id"].as_str().unwrap().to_string();
    receiver.add_secret(&old).await;
    app.create_member(&owner, "viewer", &[]).await;
    let got = receiver.wait_until("one event", |r| !r.is_empty()).await;
    assert_eq!(got[0]["verified_by"], json!([old]), "{:#}", got[0]);
    assert_eq!(got[0]["webhook_signature"].as_str().unwrap().split(' ').count(), 1, "one signature before rotating");

    let res = app.request(Method::POST, &format!("{}/rotate-secret", hook(&owner, &id)), Some(&owner.token)).send();
    let rotated: Value = res.await.unwrap().json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    receiver.add_secret(&new).await;
    app.create_member(&owner, "viewer", &[]).await;
    let got = receiver.wait_until("a second event", |r| r.len() >= 2).await;
    let after = &got[1];
    assert_signed_event(after, &owner.tenant_id);
    let signatures: Vec<&str> = after["webhook_signature"].as_str().unwrap().split(' ').collect();
    assert_eq!(signatures.len(), 2, "both secrets sign during the grace period: {after:#}");
    assert!(signatures.iter().all(|s| s.starts_with("v1,")), "{after:#}");
    let mut verified_by: Vec<&str> =
        after["verified_by"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    verified_by.sort();
    let mut both = vec![old.as_str(), new.as_str()];
    both.sort();
    assert_eq!(verified_by, both, "a receiver holding only the old, or only the new, secret verifies it");

    // Once the grace period is over, only the new secret signs.
    app.execute_sql(&format!(
        "UPDATE webhooks SET previous_expires_at = '{}' WHERE id = '{id}'",
        sql_time(chrono::Utc::now() - chrono::Duration::minutes(1))
    ));
    app.create_member(&owner, "viewer", &[]).await;
    let got = receiver.wait_until("a third event", |r| r.len() >= 3).await;
    assert_eq!(got[2]["verified_by"], json!([new]), "{:#}", got[2]);
    assert_eq!(got[2]["webhook_signature"].as_str().unwrap().split(' ').count(), 1);
}

/// A time as both backends store it (UTC, without zone).
fn sql_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

#[tokio::test]
async fn a_test_event_is_delivered_and_is_not_in_the_feed() {
    let receiver = Receiver::start();
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    // Subscribed to other types: a test event goes anyway.
    let id = hook_to(&app, &owner, &receiver, "/test", &["invitation.accepted"]).await;
    let res = app.request(Method::POST, &format!("{}/test", hook(&owner, &id)), Some(&owner.token)).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let queued: Value = res.json().await.unwrap();
    assert_eq!((queued["event_type"].as_str(), queued["status"].as_str()), (Some("webhook.test"), Some("pending")));
    let got = receiver.wait_until("the test event", |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_signed_event(r, &owner.tenant_id);
    assert_eq!(r["type"], "webhook.test");
    assert_eq!(r["webhook_id"], queued["event_id"]);
    assert_eq!(r["body"]["target"], json!({"type": "webhook", "id": id}));
    let log = wait_deliveries(&app, &owner, &id, "succeeded", |d| d.len() == 1 && d[0]["status"] == "succeeded").await;
    assert_eq!(log[0]["id"], queued["id"]);
    let (feed, _) = whole_feed(&app, &owner, "", 200).await;
    assert!(!feed.is_empty(), "the feed has the tenant's events");
    assert!(
        feed.iter().all(|e| e["type"] != "webhook.test" && e["id"] != queued["event_id"]),
        "a test event is not in the feed: {feed:#?}"
    );
    // Sending it is audited, and is no event either.
    let audited = app.audit_events(&owner, "webhook.tested").await;
    assert_eq!(audited.len(), 1, "{audited:#?}");
    assert_eq!(audited[0]["target_id"].as_str(), Some(id.as_str()));
    assert_eq!(audited[0]["after"]["delivery_id"], queued["id"]);
    assert!(feed.iter().all(|e| e["type"] != "webhook.tested"), "{feed:#?}");
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_delivery_and_reaches_nothing() {
    let receiver = Receiver::start();
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    // 127.0.0.1 is on the allow-list: delivered.
    let allowed = hook_to(&app, &owner, &receiver, "/allowed", &["member.created"]).await;
    // localhost is not (the list allows hosts as written): plain http is refused at once, and
    // https is accepted for a name but refused when it resolves to 127.0.0.1 / ::1.
    let plain = format!("http://localhost:{}/local", receiver.port);
    let res =
        app.send_json(Method::POST, &hooks(&owner), &owner.token, json!({"url": plain, "event_types": ["*"]})).await;
    let problem = assert_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "url", "{problem:#}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("https"), "{problem:#}");
    let (local, _) =
        create_hook(&app, &owner, &format!("https://localhost:{}/local", receiver.port), &["member.created"]).await;
    let local = local["id"].as_str().unwrap().to_string();

    app.create_member(&owner, "viewer", &[]).await;
    receiver.wait_until("the allowed delivery", |r| !r.is_empty()).await;
    let log =
        wait_deliveries(&app, &owner, &local, "a refused attempt", |d| d.len() == 1 && d[0]["attempts"] != 0).await;
    let d = &log[0];
    let error = d["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("not allowed") && error.contains("127.0.0.1"), "names the refused address: {d:#}");
    assert_eq!(d["last_status_code"], Value::Null, "{d:#}");
    assert_ne!(d["status"], "succeeded", "{d:#}");
    // Attempts are recorded in batches: the allowed one's may land just after the refused one's.
    let ok = wait_deliveries(&app, &owner, &allowed, "the allowed delivery recorded", |d| {
        d.len() == 1 && d[0]["status"] != "pending"
    })
    .await;
    assert_eq!(ok[0]["status"], "succeeded", "{ok:#?}");
    let got = receiver.received().await;
    assert!(got.iter().all(|r| r["path"] == "/allowed"), "nothing reached the refused endpoint: {got:#?}");
    assert_eq!(got.len(), 1);

    // A redirect is a failure, and is not followed.
    receiver.admin("/mode", json!({"status": 307, "location": "http://127.0.0.1:9/elsewhere"})).await;
    app.create_member(&owner, "viewer", &[]).await;
    let log = wait_deliveries(&app, &owner, &allowed, "a redirected attempt", |d| {
        d.iter().any(|d| d["last_status_code"] == 307)
    })
    .await;
    let d = log.iter().find(|d| d["last_status_code"] == 307).unwrap();
    assert_eq!(d["status"], "pending", "{d:#}");
    assert!(d["last_error"].as_str().is_some_and(|e| e.contains("redirect")), "{d:#}");
    assert_eq!(receiver.received().await.len(), 2, "one request per attempt, the redirect not followed");
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_turned_off_its_owners_told_and_it_can_be_turned_on() {
    let smtp = crate::email::SmtpServer::start();
    let receiver = Receiver::start();
    receiver.answer(503).await;
    let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
    let owner = app.new_owner("plus").await;
    let url = receiver.url("/failing");
    let id = hook_to(&app, &owner, &receiver, "/failing", &["member.created"]).await;
    // Failing since six days ago; one more failure turns it off.
    let since = sql_time(chrono::Utc::now() - chrono::Duration::days(6));
    assert_eq!(app.execute_sql(&format!("UPDATE webhooks SET failing_since = '{since}' WHERE id = '{id}'")), 1);
    app.create_member(&owner, "viewer", &[]).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let off = loop {
        let now: Value = app.get(&hook(&owner, &id), &owner.token).await.json().await.unwrap();
        if now["enabled"] == false {
            break now;
        }
        assert!(Instant::now() < deadline, "never turned off: {now:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(off["disabled_reason"], "failing", "{off:#}");
    assert!(off["failing_since"].as_str().is_some(), "{off:#}");
    let mails = crate::email::wait_for(1, || smtp.messages()).await;
    let mail = crate::email::parse(&mails[0]);
    assert!(mail.to.contains(&owner.email), "to the owner: {}", mail.to);
    assert!(mail.text.contains(&url), "names the endpoint: {}", mail.text);
    let audited = app.audit_events(&owner, "webhook.updated").await;
    assert!(
        audited.iter().any(|e| e["target_id"] == id.as_str() && e["after"]["disabled_reason"] == "failing"),
        "turning it off is audited: {audited:#?}"
    );
    // While off, nothing is sent.
    let before = receiver.received().await.len();
    app.create_member(&owner, "viewer", &[]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().await.len(), before, "an endpoint that is off gets nothing");

    // Turned on again, with a fresh failure clock; it delivers again.
    receiver.answer(200).await;
    let res = app
        .request(Method::PATCH, &hook(&owner, &id), Some(&owner.token))
        .header("If-Match", format!("\"{}\"", off["version"]))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let on: Value = res.json().await.unwrap();
    assert_eq!((on["enabled"].clone(), on["disabled_reason"].clone()), (json!(true), Value::Null), "{on:#}");
    assert_eq!(on["failing_since"], Value::Null, "{on:#}");
    app.create_member(&owner, "viewer", &[]).await;
    receiver.wait_until("a delivery after turning it on", |r| !accepted(r).is_empty()).await;
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_every_event_and_on_postgres_once() {
    let receiver = Receiver::start();
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let owner = app.new_owner("enterprise").await;
    let id = hook_to(&app, &owner, &receiver, "/pair", &["member.created"]).await;
    // Changes on both instances, and a batch that both workers find due at once.
    let mut created = 0;
    for i in 0..6 {
        let on = if i % 2 == 0 { &app } else { &second };
        on.create_member(&owner, "viewer", &[]).await;
        created += 1;
    }
    import(&second, &owner, csv_of(120, "pair")).await;
    created += 120;
    let got = receiver.wait_until("every event", |r| by_id(r).len() >= created).await;
    // Wait a few worker rounds (well within a lease) for a duplicate to show.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = {
        let later = receiver.received().await;
        assert!(later.len() >= got.len());
        later
    };
    let ids = by_id(&got);
    assert_eq!(ids.len(), created);
    // SQLite runs one instance (README): its worker claims without a lease, so a second
    // process on the same file may send an event again (with the same id, never another).
    if app.db.url.starts_with("postgres") {
        let repeated: Vec<(&String, usize)> =
            ids.iter().filter(|(_, r)| r.len() > 1).map(|(id, r)| (id, r.len())).collect();
        assert!(repeated.is_empty(), "delivered more than once: {repeated:?}");
    }
    assert!(got.iter().all(|r| r["verified"] == true && r["status"] == 200));
    let log = deliveries(&app, &owner, &id).await;
    assert!(log.iter().all(|d| d["status"] == "succeeded" && d["attempts"] == 1), "{log:#?}");
}

#[tokio::test]
async fn a_slow_receiver_does_not_hold_up_the_others() {
    let receiver = Receiver::start();
    receiver.admin("/mode", json!({"path": "/slow", "status": 200, "delay_ms": 8000})).await;
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    hook_to(&app, &owner, &receiver, "/slow", &["member.created"]).await;
    hook_to(&app, &owner, &receiver, "/fast", &["member.created"]).await;
    let started = Instant::now();
    import(&app, &owner, csv_of(20, "slow")).await;
    let got = receiver
        .wait_until("the fast endpoint's 20 events", |r| {
            accepted(r).iter().filter(|r| r["path"] == "/fast").count() >= 20
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the fast endpoint waited for the slow one: {:?}",
        started.elapsed()
    );
    let slow = got.iter().filter(|r| r["path"] == "/slow").count();
    assert!(slow <= 4, "a few attempts at a time per endpoint, not all 20: {slow} in flight");
}

/// `roster serve` killed (`kill -9`) with deliveries queued and in flight: after a restart
/// every event arrives; an id may arrive twice, never an unknown one.
#[tokio::test]
async fn a_killed_server_loses_no_delivery() {
    use crate::helpers::{ServeProcess, sign_in_on, tenant_on};
    let receiver = Receiver::start();
    receiver.admin("/mode", json!({"status": 200, "delay_ms": 150})).await;
    let db = crate::helpers::TestDb::shared();
    let data = tempfile::tempdir().unwrap();
    let port = crate::email::free_port();
    let env = [("ROSTER_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1"), ("ROSTER_WEBHOOK_RETRY_SECONDS", "1,1,1")];
    let start = || ServeProcess::start(&db.url, data.path(), port, &env, Stdio::null());
    let server = start().await;
    let base = server.base.clone();
    let (tenant, password, token) = tenant_on(&base, "boss@hooks-kill.test", "enterprise").await;
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{base}/api/v1/tenants/{tenant}/webhooks"))
        .bearer_auth(&token)
        .json(&json!({"url": receiver.url("/killed"), "event_types": ["member.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    receiver.add_secret(created["secret"].as_str().unwrap()).await;
    let res = client
        .post(format!("{base}/api/v1/tenants/{tenant}/users/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(csv_of(60, "killed"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    receiver.wait_until("some deliveries", |r| r.len() >= 4).await;
    server.kill();
    // The leases of what was in flight run out (made to have passed, not waited for).
    db_sql(&db.url, "UPDATE webhook_deliveries SET locked_until = NULL WHERE status = 'pending'");
    db_sql(&db.url, "UPDATE webhook_cursors SET locked_until = NULL");
    let _restarted = start().await;
    let got = receiver
        .wait_until("all 60 events", |r| by_id(&accepted(r).into_iter().cloned().collect::<Vec<_>>()).len() >= 60)
        .await;
    let token = sign_in_on(&base, "boss@hooks-kill.test", &password).await;
    let feed: Value = client
        .get(format!("{base}/api/v1/tenants/{tenant}/events?type=member.created&limit=200"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let known: HashSet<&str> = feed["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(known.len(), 60);
    let ids = by_id(&got);
    assert!(ids.keys().all(|id| known.contains(id.as_str())), "only the feed's events arrived");
    assert!(got.iter().all(|r| r["verified"] == true), "{got:#?}");
}

/// Runs SQL on a test database without an app.
fn db_sql(url: &str, sql: &str) {
    use diesel::{Connection, RunQueryDsl};
    if url.starts_with("postgres") {
        diesel::sql_query(sql).execute(&mut diesel::PgConnection::establish(url).unwrap()).unwrap();
    } else {
        diesel::sql_query(sql).execute(&mut diesel::SqliteConnection::establish(url).unwrap()).unwrap();
    }
}

// ---------------------------------------------------------------- the feed

/// Pages through `n` imported events plus the tenant's own with `after=next_cursor`.
async fn feed_pages_through(n: usize, limit: usize) {
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    import(&app, &owner, csv_of(n, "feed")).await;
    let (all, cursor) = whole_feed(&app, &owner, "", limit).await;
    let ids: HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "no event repeated");
    let created: Vec<&Value> = all.iter().filter(|e| e["type"] == "member.created").collect();
    assert_eq!(created.len(), n, "no event missing");
    // In the order they happened: the file's order.
    for (i, e) in created.iter().enumerate() {
        assert_eq!(e["data"]["email"], format!("feed{i}@hooks.test"), "event {i} in order");
    }
    assert!(all.windows(2).all(|w| w[0]["occurred_at"].as_str() <= w[1]["occurred_at"].as_str()), "oldest first");
    assert_eq!(all.iter().filter(|e| e["type"] == "members.imported").count(), 1);
    // Polling from the last cursor: nothing, then only what happened since.
    let url = format!("{}?after={cursor}", events(&owner));
    let page: Value = app.get(&url, &owner.token).await.json().await.unwrap();
    assert_eq!((page["items"].as_array().unwrap().len(), page["has_more"].clone()), (0, json!(false)), "{page:#}");
    assert_eq!(page["next_cursor"], cursor.as_str(), "an empty page keeps the cursor");
    app.create_member(&owner, "viewer", &[]).await;
    let page: Value = app.get(&url, &owner.token).await.json().await.unwrap();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page:#}");
    assert_eq!(items[0]["type"], "member.created");
    assert!(!ids.contains(items[0]["id"].as_str().unwrap()));
}

/// The figure: 10,000 events (one import: about 4 s on SQLite, 10 s on PostgreSQL),
/// in pages of a size that does not divide it.
#[tokio::test]
async fn the_feed_pages_through_ten_thousand_events_in_order_without_gap_or_repeat() {
    feed_pages_through(10_000, 199).await;
}

#[tokio::test]
async fn the_feed_filters_by_type_refuses_bad_cursors_and_types_and_is_for_owners() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let member = app.create_member(&owner, "viewer", &[]).await;
    let member_id = member["id"].as_str().unwrap();
    assert_eq!(app.set_status(&owner, member_id, "disabled").await.status(), StatusCode::OK);
    create_hook(&app, &owner, "https://product.example/feed", &["*"]).await;

    let (all, _) = whole_feed(&app, &owner, "", 50).await;
    let (members, _) = whole_feed(&app, &owner, "&type=member.*", 50).await;
    assert_eq!(types_of(&members.iter().collect::<Vec<_>>()), ["member.created", "member.disabled"]);
    let (two, _) = whole_feed(&app, &owner, "&type=member.disabled,webhook.created", 1).await;
    assert_eq!(types_of(&two.iter().collect::<Vec<_>>()), ["member.disabled", "webhook.created"]);
    let (star, _) = whole_feed(&app, &owner, "&type=*", 50).await;
    assert_eq!(star, all);
    assert!(all.len() > members.len(), "other types are in the whole feed: {all:#?}");
    for e in &all {
        assert_eq!(e["tenant_id"], owner.tenant_id.as_str());
        for field in ["id", "type", "occurred_at", "actor", "target", "data"] {
            assert!(!e[field].is_null(), "{field} in {e:#}");
        }
    }

    for (query, field) in [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("after=1.5", "after"),
        ("type=member.creatd", "type"),
        ("type=nope.*", "type"),
        ("type=member", "type"),
    ] {
        let problem = assert_problem(app.get(&format!("{}?{query}", events(&owner)), &owner.token).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem:#}");
    }
    assert_problem(app.get(&format!("{}?limit=0", events(&owner)), &owner.token).await, 422).await;

    let admin = app.new_member(&owner, "admin", &[]).await;
    assert_problem(app.get(&events(&owner), &admin.token).await, 403).await;
    let stranger = app.new_owner("plus").await;
    assert_problem(app.get(&events(&owner), &stranger.token).await, 404).await;
    // Another tenant's feed has its own events only.
    let (theirs, _) = whole_feed(&app, &stranger, "", 50).await;
    assert!(theirs.iter().all(|e| e["tenant_id"] == stranger.tenant_id.as_str()), "{theirs:#?}");
    let mine: HashSet<&str> = all.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert!(theirs.iter().all(|e| !mine.contains(e["id"].as_str().unwrap())));
}

/// Events of other objects carry their version too (as it is after the change), so a consumer
/// can order them: a region created at 1 and renamed at 2.
#[tokio::test]
async fn events_of_other_objects_carry_their_version() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let region = app.create_region(&owner, "North", None).await;
    let res = app
        .send_json(
            Method::PATCH,
            &format!("/api/v1/tenants/{}/regions/{region}", owner.tenant_id),
            &owner.token,
            json!({"name": "North-East"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let (items, _) = whole_feed(&app, &owner, "&type=region.*", 50).await;
    let seen: Vec<(String, Value, Value)> = items
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["data"]["id"].clone(), e["data"]["version"].clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("region.created".to_string(), json!(region), json!(1)),
            ("region.updated".to_string(), json!(region), json!(2)),
        ]
    );
}

/// Endpoints deleted while the worker is sending their events and recording the attempts:
/// each delete answers 204 (on PostgreSQL a delete and a record once took the tenant and the
/// endpoint's cursor in opposite orders and deadlocked), and nothing of them is left.
#[tokio::test]
async fn endpoints_deleted_while_their_events_are_sent_are_deleted_cleanly() {
    let receiver = Receiver::start();
    receiver.admin("/mode", json!({"status": 200, "delay_ms": 5})).await;
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    for round in 0..3 {
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(hook_to(&app, &owner, &receiver, &format!("/gone{round}-{i}"), &["member.*"]).await);
        }
        import(&app, &owner, csv_of(600, &format!("gone{round}-"))).await;
        let before = receiver.received().await.len();
        receiver.wait_until("some deliveries", |r| r.len() >= before + 400).await;
        for id in &ids {
            let res = app.request(Method::DELETE, &hook(&owner, id), Some(&owner.token)).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NO_CONTENT, "{}", res.text().await.unwrap());
            assert_problem(app.get(&format!("{}/deliveries", hook(&owner, id)), &owner.token).await, 404).await;
        }
    }
    let left = app.execute_sql("UPDATE webhook_deliveries SET status = status");
    assert_eq!(left, 0, "deliveries of deleted endpoints are left");
}

/// Events are numbered as their transactions commit: a reader following the feed while many
/// writers of one tenant commit side by side never passes a number that appears later. (Were a
/// number taken before an earlier one committed, the cursor would skip that event and the
/// reader would come up short.)
#[tokio::test]
async fn a_reader_following_the_feed_during_parallel_changes_misses_none() {
    const WRITERS: usize = 8;
    const EACH: usize = 15;
    let app = spawn_app().await;
    let owner = app.new_owner("enterprise").await;
    let done = std::sync::atomic::AtomicBool::new(false);
    let writers = async {
        let creates = (0..WRITERS).map(|_| async {
            for _ in 0..EACH {
                app.create_member(&owner, "viewer", &[]).await;
            }
        });
        futures_util::future::join_all(creates).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
    };
    let reader = async {
        let mut seen: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst);
            let url = match &cursor {
                Some(c) => format!("{}?limit=7&after={c}", events(&owner)),
                None => format!("{}?limit=7", events(&owner)),
            };
            let page: Value = app.get(&url, &owner.token).await.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            seen.extend(items.iter().cloned());
            cursor = page["next_cursor"].as_str().map(str::to_string).or(cursor);
            // Everything committed before this page was read is in it or before it.
            if finished && page["has_more"] == false {
                return seen;
            }
        }
    };
    let ((), seen) = tokio::join!(writers, reader);
    let ids: HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len(), "no event repeated");
    let created = seen.iter().filter(|e| e["type"] == "member.created").count();
    assert_eq!(created, WRITERS * EACH, "every creation read once while following the feed");
}
