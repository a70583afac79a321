//! CORS (issue 10): browsers on the origins of `ROSTER_CORS_ORIGINS` may call the API, others may
//! not, and with none configured no CORS header is sent at all. Checked over HTTP, then from a
//! real page on another origin in Debian's headless Chromium (`tools/cors_browser_check.mjs`).

use crate::helpers::{TestApp, assert_problem, spawn_app, spawn_app_with};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;

const ALLOWED: &str = "http://app.example.test";
const OTHER: &str = "http://evil.example.test";

/// A browser's preflight: may `origin` send `method` with these request headers?
async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    app.request(Method::OPTIONS, path, None)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", headers)
        .send()
        .await
        .unwrap()
}

/// The header's value, or "" when it is absent.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The comma-separated list in a header, lowercased.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    header(headers, name).split(',').map(|v| v.trim().to_ascii_lowercase()).filter(|v| !v.is_empty()).collect()
}

/// What a browser needs to hand an answer to a page on another origin is missing.
fn assert_not_shared(headers: &HeaderMap, what: &str) {
    for name in ["access-control-allow-origin", "access-control-allow-credentials"] {
        assert!(headers.get(name).is_none(), "{what}: {name} in {headers:?}");
    }
}

fn assert_no_cors_headers(headers: &HeaderMap, what: &str) {
    for (name, _) in headers {
        assert!(!name.as_str().starts_with("access-control-"), "{what}: {name} in {headers:?}");
    }
}

#[tokio::test]
async fn preflight_from_an_allowed_origin_allows_the_methods_and_headers_the_api_uses() {
    let app = spawn_app_with(|c| c.cors_origins = vec![ALLOWED.into()]).await;
    let owner = app.new_owner("plus").await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, owner.user_id);
    let res = preflight(&app, &path, ALLOWED, "PATCH", "authorization, if-match, idempotency-key, content-type").await;
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(header(h, "access-control-allow-origin"), ALLOWED, "{h:?}");
    let methods = list(h, "access-control-allow-methods");
    for method in ["get", "post", "put", "patch", "delete"] {
        assert!(methods.contains(&method.to_string()), "{method} not in {methods:?}");
    }
    let allowed = list(h, "access-control-allow-headers");
    for name in ["authorization", "if-match", "idempotency-key", "content-type"] {
        assert!(allowed.contains(&name.to_string()), "{name} not in {allowed:?}");
    }
    assert_eq!(header(h, "access-control-max-age"), "3600", "{h:?}");
    // Credentials (cookies) are not how the API authenticates: never allowed.
    assert_eq!(header(h, "access-control-allow-credentials"), "", "{h:?}");
    // Shared caches must key the answer on the origin.
    assert!(list(h, "vary").contains(&"origin".to_string()), "{h:?}");

    // Every header the API reads may be sent; one it does not know may not.
    let res = preflight(&app, &path, ALLOWED, "POST", "accept, x-request-id").await;
    assert_eq!(header(res.headers(), "access-control-allow-origin"), ALLOWED);
    let res = preflight(&app, &path, ALLOWED, "GET", "x-something-else").await;
    assert_eq!(header(res.headers(), "access-control-allow-headers"), "");
    let body = assert_problem(res, 400).await;
    assert_eq!(body["type"], "urn:roster:problem:cors-refused");
}

#[tokio::test]
async fn requests_from_an_allowed_origin_expose_the_headers_a_frontend_reads() {
    let app = spawn_app_with(|c| c.cors_origins = vec![ALLOWED.into(), "http://localhost:5173".into()]).await;
    let owner = app.new_owner("plus").await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, owner.user_id);
    let res = app.request(Method::GET, &path, Some(&owner.token)).header("Origin", ALLOWED).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(header(h, "access-control-allow-origin"), ALLOWED, "{h:?}");
    let exposed = list(h, "access-control-expose-headers");
    for name in ["etag", "location", "retry-after", "x-request-id", "www-authenticate", "idempotent-replayed"] {
        assert!(exposed.contains(&name.to_string()), "{name} not in {exposed:?}");
    }
    assert!(!header(h, "etag").is_empty() && !header(h, "x-request-id").is_empty(), "{h:?}");
    assert!(list(h, "vary").contains(&"origin".to_string()), "{h:?}");

    // Each configured origin is answered with itself, never a list or `*`.
    let res = app
        .request(Method::GET, &path, Some(&owner.token))
        .header("Origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(header(res.headers(), "access-control-allow-origin"), "http://localhost:5173");

    // Error answers carry the headers too, or a frontend could not read why it failed.
    let res = app.request(Method::GET, &path, None).header("Origin", ALLOWED).send().await.unwrap();
    let h = res.headers().clone();
    assert_eq!(header(&h, "access-control-allow-origin"), ALLOWED, "{h:?}");
    assert!(list(&h, "access-control-expose-headers").contains(&"www-authenticate".to_string()), "{h:?}");
    assert_problem(res, 401).await;
}

#[tokio::test]
async fn other_origins_get_no_access_control_allow_origin() {
    let app = spawn_app_with(|c| c.cors_origins = vec![ALLOWED.into()]).await;
    let owner = app.new_owner("plus").await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, owner.user_id);

    // A page elsewhere: the API answers, the browser keeps the answer from the page (the
    // Access-Control-Expose-Headers actix-cors sends anyway have no effect without an allowed
    // origin).
    let res = app.request(Method::GET, &path, Some(&owner.token)).header("Origin", OTHER).send().await.unwrap();
    assert_not_shared(res.headers(), "GET from another origin");
    // Nor does it get permission to send anything but a simple request.
    let res = preflight(&app, &path, OTHER, "PATCH", "authorization, if-match, content-type").await;
    assert_not_shared(res.headers(), "preflight from another origin");
    assert_problem(res, 400).await;
    // An allowed origin with another scheme or port is another origin.
    let res = app
        .request(Method::GET, &path, Some(&owner.token))
        .header("Origin", "https://app.example.test")
        .send()
        .await
        .unwrap();
    assert_not_shared(res.headers(), "GET from https://app.example.test");

    // Server-to-server calls (no Origin) are answered as before.
    let res = app.get(&path, &owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_not_shared(res.headers(), "GET without Origin");
}

#[tokio::test]
async fn without_configured_origins_no_cors_headers_and_options_is_405_with_allow() {
    let app = spawn_app().await;
    let owner = app.new_owner("plus").await;
    let path = format!("/api/v1/tenants/{}/users/{}", owner.tenant_id, owner.user_id);
    let res = preflight(&app, &path, ALLOWED, "PATCH", "authorization, if-match, content-type").await;
    assert_no_cors_headers(res.headers(), "preflight without configured origins");
    let mut allow = list(res.headers(), "allow");
    allow.sort();
    assert_eq!(allow, ["delete", "get", "patch"], "{:?}", res.headers());
    let body = assert_problem(res, 405).await;
    assert_eq!(body["type"], "urn:roster:problem:method-not-allowed", "{body}");

    let res = app.request(Method::GET, &path, Some(&owner.token)).header("Origin", ALLOWED).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_no_cors_headers(res.headers(), "GET without configured origins");
}

/// A one-page HTTP server on 127.0.0.1, on a port (so an origin) of its own: `GET /` answers a
/// blank HTML page, anything else 404. Returns its origin; it serves until the test binary exits.
fn serve_page() -> String {
    const PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Roster CORS check</title>\
                        </head><body><h1>Roster CORS check</h1></body></html>";
    fn answer(mut stream: std::net::TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            request.extend_from_slice(&chunk[..n]);
        }
        let (status, body) = if request.starts_with(b"GET / ") { ("200 OK", PAGE) } else { ("404 Not Found", "") };
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the page server");
    let origin = format!("http://127.0.0.1:{}", listener.local_addr().expect("page server address").port());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    origin
}

/// `tools/`, after checking that what the browser check needs is installed: fails (never skips)
/// naming what is missing and how to get it.
fn browser_tools() -> PathBuf {
    let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools");
    let how = "or run the tests with ./test, which installs what they need (see the README, \"Test it\")";
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the CORS browser test needs Debian's Chromium at /usr/bin/chromium: `apt-get install chromium`, {how}"
    );
    match std::process::Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!("`node --version` failed ({}): the CORS browser test needs Node.js 20 or later", out.status),
        Err(e) => panic!("the CORS browser test needs Node.js (`node`: {e}): `apt-get install nodejs npm`, {how}"),
    }
    assert!(
        tools.join("node_modules/playwright-core/package.json").exists(),
        "the CORS browser test needs the npm package playwright-core in tools/node_modules: \
         `npm ci --prefix tools` (from the repository root), {how}"
    );
    tools
}

#[tokio::test]
async fn a_real_browser_calls_the_api_from_an_allowed_origin_and_not_from_another() {
    let tools = browser_tools();
    let allowed = serve_page();
    let blocked = serve_page();
    let app = spawn_app_with(|c| c.cors_origins = vec![allowed.clone()]).await;
    let owner = app.new_owner("plus").await;
    let member = app.create_member(&owner, "viewer", &[]).await;
    let member_id = member["id"].as_str().unwrap().to_string();

    let mut command = std::process::Command::new("node");
    command
        .arg(tools.join("cors_browser_check.mjs"))
        .current_dir(&tools)
        .env("API", &app.address)
        .env("ALLOWED", format!("{allowed}/"))
        .env("BLOCKED", format!("{blocked}/"))
        .env("EMAIL", &owner.email)
        .env("PASSWORD", &owner.password)
        .env("MEMBER", &member_id);
    let out = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tools/cors_browser_check.mjs: {}\n{stdout}\n{stderr}", out.status);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no JSON from tools/cors_browser_check.mjs:\n{stdout}\n{stderr}"));

    // The page on the allowed origin did what a frontend does, reading the headers it needs.
    let a = &report["allowed"];
    assert_eq!(a["origin"], allowed.as_str(), "{report:#}");
    assert_eq!(a["error"], Value::Null, "{report:#}");
    assert_eq!(a["login"]["status"], 200, "{report:#}");
    assert_eq!(a["login"]["has_access_token"], true, "{report:#}");
    assert_eq!(a["login"]["tenant_id"], owner.tenant_id.as_str(), "{report:#}");
    assert_eq!(a["get"]["status"], 200, "{report:#}");
    assert_eq!(a["get"]["id"], member_id.as_str(), "{report:#}");
    let etag = a["get"]["etag"].as_str().unwrap_or_else(|| panic!("ETag unreadable from JavaScript: {report:#}"));
    assert!(etag.starts_with('"') || etag.starts_with("W/\""), "{report:#}");
    assert!(a["get"]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "X-Request-Id unreadable: {report:#}");
    assert_eq!(a["patch"]["status"], 200, "{report:#}");
    assert_eq!(a["patch"]["job_title"], "Set from a browser", "{report:#}");
    assert_eq!(a["patch"]["request_id"], a["patch"]["sent_request_id"], "{report:#}");
    let new_etag = a["patch"]["etag"].as_str().unwrap_or_else(|| panic!("no ETag after PATCH: {report:#}"));
    assert_ne!(new_etag, etag, "{report:#}");
    assert_eq!(a["stale"]["status"], 412, "{report:#}");
    assert!(a["stale"]["content_type"].as_str().is_some_and(|ct| ct.starts_with("application/problem+json")));
    assert_eq!(a["stale"]["type"], "urn:roster:problem:precondition-failed", "{report:#}");
    assert_eq!(a["unauthenticated"]["status"], 401, "{report:#}");
    assert_eq!(a["unauthenticated"]["www_authenticate"], "Bearer", "{report:#}");
    // The change is really there, with the ETag the page read.
    let res = app.get(&format!("/api/v1/tenants/{}/users/{member_id}", owner.tenant_id), &owner.token).await;
    assert_eq!(header(res.headers(), "etag"), new_etag);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["job_title"], "Set from a browser");

    // The page on another origin reads nothing: fetch rejects with TypeError, for the sign-in
    // (refused at its preflight) and for a simple GET alike.
    let b = &report["blocked"];
    assert_eq!(b["origin"], blocked.as_str(), "{report:#}");
    // Chromium says why on the console: CORS, not a network failure.
    let console: Vec<&str> = b["console"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    for (step, path) in [("login", "/api/v1/auth/login"), ("simple_get", "/healthz")] {
        assert_eq!(b[step]["read"], false, "{step}: {report:#}");
        assert_eq!(b[step]["error_name"], "TypeError", "{step}: {report:#}");
        let url = format!("{}{path}", app.address);
        assert!(
            console.iter().any(|m| m.contains(&url) && m.contains("blocked by CORS policy")),
            "{step}: no CORS error for {url} on the console: {report:#}"
        );
    }
}
