//! A real OpenID Provider for the SSO tests (`tools/oidc_provider.mjs`, the `oidc-provider`
//! package under Node), one process a test on 127.0.0.1, killed when dropped; and the browser's
//! steps over plain HTTP: from the authorization URL through login and consent to the redirect
//! URI, which is not followed (the test hands its query to Roster's callback instead).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// Roster's redirect URI as the tests configure it (`ROSTER_PUBLIC_URL` is http://roster.test).
pub const REDIRECT_URI: &str = "http://roster.test/api/v1/sso/oidc/callback";

/// The OpenID Provider process.
pub struct OidcProvider {
    child: Child,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
}

impl OidcProvider {
    /// A provider with one client (`client_secret_basic`) whose redirect URI is Roster's.
    pub fn start() -> Self {
        Self::start_with("client_secret_basic")
    }

    /// A provider whose client authenticates with `auth_method` at the token endpoint.
    pub fn start_with(auth_method: &str) -> Self {
        Self::start_configured(auth_method, "S256")
    }

    /// A provider that also does PKCE only with `pkce_methods` (comma-separated).
    pub fn start_configured(auth_method: &str, pkce_methods: &str) -> Self {
        let tools = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools");
        assert!(
            tools.join("node_modules/oidc-provider").is_dir(),
            "tools/node_modules/oidc-provider is missing: run `npm ci` in tools/ (tools/deps.sh does)"
        );
        let client_id = format!("roster-{}", uuid::Uuid::now_v7().simple());
        let client_secret = format!("secret-{}", uuid::Uuid::now_v7().simple());
        let mut child = Command::new("node")
            .arg(tools.join("oidc_provider.mjs"))
            .env("OIDC_CLIENT_ID", &client_id)
            .env("OIDC_CLIENT_SECRET", &client_secret)
            .env("OIDC_REDIRECT_URI", REDIRECT_URI)
            .env("OIDC_AUTH_METHOD", auth_method)
            .env("OIDC_PKCE_METHODS", pkce_methods)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start node tools/oidc_provider.mjs (is Node installed? tools/deps.sh)");
        let mut line = String::new();
        // Kept open while the process runs: it may write more (a closed pipe would kill it).
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let read = stdout.read_line(&mut line);
        let started: Option<Value> = read.ok().and_then(|_| serde_json::from_str(&line).ok());
        let Some(issuer) = started.as_ref().and_then(|v| v["issuer"].as_str()).map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tools/oidc_provider.mjs did not print its issuer (got {line:?})");
        };
        Self { child, _stdout: stdout, issuer, client_id, client_secret }
    }

    /// Makes the token endpoint change every ID token from now on (see the script's header).
    pub async fn tamper(&self, mode: &str) {
        let res = reqwest::Client::new()
            .post(format!("{}/__test/tamper", self.issuer))
            .json(&json!({ "mode": mode }))
            .send()
            .await
            .expect("tamper request");
        assert_eq!(res.status(), StatusCode::OK, "tamper {mode}");
    }
}

impl OidcProvider {
    /// How often discovery and the keys were fetched: (discovery, jwks).
    pub async fn fetches(&self) -> (u64, u64) {
        let stats: Value = reqwest::get(format!("{}/__test/stats", self.issuer)).await.unwrap().json().await.unwrap();
        (stats["discovery"].as_u64().unwrap(), stats["jwks"].as_u64().unwrap())
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the person types into the provider's login form.
#[derive(Clone, Debug, Default)]
pub struct Login {
    pub email: String,
    pub sub: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
}

impl Login {
    pub fn email(email: &str) -> Self {
        Self { email: email.to_string(), ..Self::default() }
    }

    fn form(&self) -> Vec<(&'static str, String)> {
        let mut form = vec![("email", self.email.clone())];
        if let Some(sub) = &self.sub {
            form.push(("sub", sub.clone()));
        }
        if let Some(verified) = self.email_verified {
            form.push(("email_verified", verified.to_string()));
        }
        if let Some(name) = &self.name {
            form.push(("name", name.clone()));
        }
        form
    }
}

/// A browser without script: follows redirects by hand, keeps cookies, fills the provider's
/// login and consent forms.
pub struct Browser {
    client: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { client, cookies: BTreeMap::new() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let request = if cookie.is_empty() { request } else { request.header(COOKIE, cookie) };
        let res = request.send().await.expect("browser request");
        for value in res.headers().get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let gone = value.is_empty() || text.to_ascii_lowercase().contains("max-age=0");
            if gone {
                self.cookies.remove(name.trim());
            } else {
                self.cookies.insert(name.trim().to_string(), value.to_string());
            }
        }
        res
    }

    /// From the authorization URL through the provider's login (as `login`) and consent, up
    /// to the redirect back to Roster: answers that URL (with `code`, `state`, or `error`),
    /// not followed.
    pub async fn authorize(&mut self, authorization_url: &str, login: &Login) -> String {
        let mut url = Url::parse(authorization_url).unwrap();
        let mut form: Option<Vec<(&'static str, String)>> = None;
        for _ in 0..20 {
            let request = match form.take() {
                Some(fields) => self.client.post(url.clone()).form(&fields),
                None => self.client.get(url.clone()),
            };
            let res = self.send(request).await;
            if res.status().is_redirection() {
                let location = res.headers().get(LOCATION).unwrap().to_str().unwrap().to_string();
                let next = url.join(&location).unwrap();
                if next.as_str().starts_with(REDIRECT_URI) {
                    return next.to_string();
                }
                url = next;
                continue;
            }
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_eq!(status, StatusCode::OK, "the provider answered {status} at {url}: {body}");
            let prompt = between(&body, "data-prompt=\"", "\"").unwrap_or_else(|| panic!("no form at {url}: {body}"));
            let action = between(&body, "action=\"", "\"").unwrap();
            url = url.join(action).unwrap();
            form = Some(match prompt {
                "login" => login.form(),
                _ => Vec::new(),
            });
        }
        panic!("the provider never sent the browser back to Roster");
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(&text[from..to])
}

/// Delivers the provider's redirect (the URL `authorize` answered) to Roster's callback, as the
/// browser would, and answers where Roster sends the browser next (its 303 `Location`).
pub async fn deliver(app: &TestApp, redirect: &str) -> String {
    let url = Url::parse(redirect).unwrap();
    let target = format!("{}{}?{}", app.address, url.path(), url.query().unwrap_or_default());
    let res = Browser::new().client.get(target).send().await.expect("callback request");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the callback answers 303");
    res.headers().get(LOCATION).expect("Location").to_str().unwrap().to_string()
}

/// Where Roster sent the browser: `Ok(code)` or `Err((error, error_description))`, after
/// checking that it is the frontend's `/sso/callback`.
pub fn outcome(location: &str) -> Result<String, (String, String)> {
    let url = Url::parse(location).unwrap();
    assert_eq!(format!("{}{}", url.origin().ascii_serialization(), url.path()), "http://app.roster.test/sso/callback");
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    match (query.get("code"), query.get("error")) {
        (Some(code), None) => Ok(code.clone()),
        (None, Some(error)) => Err((error.clone(), query.get("error_description").cloned().unwrap_or_default())),
        _ => panic!("neither a code nor an error: {location}"),
    }
}

/// The refusal reason Roster redirected with, failing when it handed out a code.
pub fn refused_reason(location: &str) -> String {
    match outcome(location) {
        Ok(_) => panic!("a code was issued: {location}"),
        Err((reason, _)) => reason,
    }
}
