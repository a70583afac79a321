//! Signing in with OpenID Connect against a real provider (`tools/oidc_provider.mjs`, the
//! `oidc-provider` package under Node): the whole code flow with state, nonce and PKCE through
//! Roster's routes (connection, start, callback, exchange), and each refusal of a bad answer.

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::dns_harness::{DnsServer, add_domain, verify_domain};
use crate::helpers::{Persona, TestApp, assert_problem, spawn_app_with};
use crate::oidc_harness::{Browser, Login, OidcProvider, REDIRECT_URI, deliver, outcome, refused_reason};

/// The domain the tests' tenant has verified.
const DOMAIN: &str = "acme.test";

struct Setup {
    dns: DnsServer,
    app: TestApp,
    owner: Persona,
    provider: OidcProvider,
    connection_id: String,
}

fn connections(tenant: &str) -> String {
    format!("/api/v1/tenants/{tenant}/sso/connections")
}

/// Creates an OIDC connection to `provider` for the tenant of `owner`; answers its id.
async fn connect(app: &TestApp, owner: &Persona, provider: &OidcProvider, just_in_time: bool) -> String {
    let body = json!({
        "protocol": "oidc",
        "name": "Test IdP",
        "oidc": {"issuer": provider.issuer, "client_id": provider.client_id, "client_secret": provider.client_secret},
        "just_in_time": {"enabled": just_in_time, "role": "viewer"},
    });
    let res = app.send_json(Method::POST, &connections(&owner.tenant_id), &owner.token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "create connection: {}", res.text().await.unwrap());
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["oidc"]["redirect_uri"], REDIRECT_URI);
    created["id"].as_str().unwrap().to_string()
}

/// The app, allowed to reach the test providers on 127.0.0.1 and resolving with `dns`.
async fn spawn(dns: &DnsServer) -> TestApp {
    spawn_app_with(|c| {
        c.sso_insecure_hosts = vec!["127.0.0.1".into()];
        dns.configure(c);
    })
    .await
}

/// A tenant that verified `acme.test`, with a connection to a new provider.
async fn setup_with(provider: OidcProvider, just_in_time: bool) -> Setup {
    let dns = DnsServer::start();
    let app = spawn(&dns).await;
    let owner = app.new_owner("plus").await;
    verify_domain(&app, &dns, &owner, DOMAIN).await;
    let connection_id = connect(&app, &owner, &provider, just_in_time).await;
    Setup { dns, app, owner, provider, connection_id }
}

async fn setup() -> Setup {
    setup_with(OidcProvider::start(), true).await
}

/// Where a browser was sent (`url`, or where it ended up), and the secret it keeps for the
/// exchange; reads as the URL.
struct Kept {
    url: String,
    secret: String,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.url)
    }
}

impl std::ops::Deref for Kept {
    type Target = str;
    fn deref(&self) -> &str {
        &self.url
    }
}

/// `POST /auth/sso/start` with `body`: the provider's authorization URL and the browser secret.
async fn start_with(app: &TestApp, body: Value) -> Kept {
    let res = app.request(Method::POST, "/api/v1/auth/sso/start", None).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "start: {}", res.text().await.unwrap());
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["protocol"], "oidc");
    Kept {
        url: started["redirect_url"].as_str().unwrap().to_string(),
        secret: started["browser_secret"].as_str().unwrap().to_string(),
    }
}

/// Exchanges a code with the browser secret: the answer's status and body.
async fn exchange(app: &TestApp, code: &str, secret: &str) -> (StatusCode, Value) {
    let body = json!({"code": code, "browser_secret": secret});
    let res = app.request(Method::POST, "/api/v1/auth/sso/exchange", None).json(&body).send().await;
    let res = res.unwrap();
    (res.status(), res.json().await.unwrap())
}

impl Setup {
    /// The provider's authorization URL for a new sign-in at the connection.
    async fn start(&self) -> Kept {
        start_with(&self.app, json!({"connection_id": self.connection_id})).await
    }

    /// A whole sign-in as `login`: answers where Roster sends the browser in the end.
    async fn sign_in(&self, login: &Login) -> Kept {
        let started = self.start().await;
        let back = Browser::new().authorize(&started, login).await;
        Kept { url: deliver(&self.app, &back).await, secret: started.secret }
    }

    /// A sign-in as `login` that must succeed: the token answer of the exchanged code.
    async fn signed_in(&self, login: &Login) -> Value {
        let location = self.sign_in(login).await;
        let code = outcome(&location).unwrap_or_else(|e| panic!("refused: {e:?}"));
        let (status, body) = exchange(&self.app, &code, &location.secret).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn query(url: &str, name: &str) -> Option<String> {
    Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// Who a token answer signed in, and to which tenant: (email, tenant id) from `GET /me`.
async fn who(app: &TestApp, tokens: &Value) -> (String, String) {
    let me: Value = app.get("/api/v1/me", tokens["access_token"].as_str().unwrap()).await.json().await.unwrap();
    (me["email"].as_str().unwrap().to_string(), tokens["tenant_id"].as_str().unwrap().to_string())
}

impl Setup {
    /// Signs in as `email` (must succeed): the email `GET /me` then shows.
    async fn email_signed_in(&self, login: &Login) -> String {
        let tokens = self.signed_in(login).await;
        let (email, tenant) = who(&self.app, &tokens).await;
        assert_eq!(tenant, self.owner.tenant_id);
        email
    }
}

#[tokio::test]
async fn the_authorization_url_carries_state_nonce_and_pkce_s256() {
    let s = setup().await;
    let url = s.start().await;
    assert!(url.starts_with(&format!("{}/auth?", s.provider.issuer)), "{url}");
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&url, "client_id").as_deref(), Some(s.provider.client_id.as_str()));
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(REDIRECT_URI));
    assert_eq!(query(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert!(query(&url, "code_challenge").is_some_and(|c| c.len() == 43));
    assert!(query(&url, "state").is_some_and(|c| c.len() >= 22));
    assert!(query(&url, "nonce").is_some_and(|c| c.len() >= 22));
    let scope = query(&url, "scope").unwrap();
    assert_eq!(scope.split(' ').filter(|s| *s == "openid").count(), 1, "{scope}");
    assert!(scope.contains("email"), "{scope}");
    // By the email's verified domain: the same connection.
    let other = start_with(&s.app, json!({"email": "someone@ACME.test"})).await;
    assert!(other.starts_with(&format!("{}/auth?", s.provider.issuer)), "{other}");
    assert_ne!(query(&url, "state"), query(&other, "state"));
    assert_ne!(query(&url, "nonce"), query(&other, "nonce"));
    assert_ne!(query(&url, "code_challenge"), query(&other, "code_challenge"));
}

#[tokio::test]
async fn a_member_signs_in_at_the_provider_and_the_code_exchanges_once() {
    let s = setup_with(OidcProvider::start(), false).await;
    let ann =
        s.app.add_member(&s.owner, json!({"email": "ann@acme.test", "full_name": "Ann", "role": "operator"})).await;
    let location = s.sign_in(&Login { email_verified: Some(true), ..Login::email("Ann@Acme.test") }).await;
    let code = outcome(&location).unwrap();
    // Another browser (another secret) gets nothing for it, and spends it.
    let other = s.start().await;
    let (status, _) = exchange(&s.app, &code, &other.secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let location = s.sign_in(&Login { email_verified: Some(true), ..Login::email("Ann@Acme.test") }).await;
    let code = outcome(&location).unwrap();
    let (status, tokens) = exchange(&s.app, &code, &location.secret).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let me: Value = s.app.get("/api/v1/me", tokens["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["id"], ann.as_str());
    assert_eq!(tokens["tenant_id"], s.owner.tenant_id.as_str());
    // The session records the connection it came from.
    let res = s.app.get("/api/v1/me/sessions", tokens["access_token"].as_str().unwrap()).await;
    let sessions: Value = res.json().await.unwrap();
    let current = sessions["items"].as_array().unwrap().iter().find(|x| x["id"] == tokens["session_id"]).unwrap();
    assert_eq!(current["sso_connection_id"], s.connection_id.as_str(), "{sessions}");
    // The code works once.
    let (status, _) = exchange(&s.app, &code, &location.secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Without just in time, a person who is not a member is refused.
    assert_eq!(refused_reason(&s.sign_in(&Login::email("newcomer@acme.test")).await), "not-a-member");
}

#[tokio::test]
async fn a_newcomer_of_the_verified_domain_joins_just_in_time() {
    let s = setup().await;
    let login = Login { name: Some("Nina Newcomer".into()), ..Login::email("nina@acme.test") };
    assert_eq!(s.email_signed_in(&login).await, "nina@acme.test");
    // The second time, the same member.
    assert_eq!(s.email_signed_in(&login).await, "nina@acme.test");
}

#[tokio::test]
async fn client_secret_post_is_used_when_the_provider_takes_only_that() {
    let s = setup_with(OidcProvider::start_with("client_secret_post"), true).await;
    assert_eq!(s.email_signed_in(&Login::email("ann@acme.test")).await, "ann@acme.test");
}

#[tokio::test]
async fn the_email_comes_from_user_info_when_the_id_token_has_none() {
    let s = setup().await;
    s.provider.tamper("strip-email").await;
    assert_eq!(s.email_signed_in(&Login::email("bob@acme.test")).await, "bob@acme.test");
}

#[tokio::test]
async fn each_bad_id_token_is_refused_with_its_reason_and_audited() {
    let s = setup().await;
    let members = s.app.member_count(&s.owner).await;
    let cases = [
        ("payload", "invalid-id-token"),
        ("resign", "invalid-id-token"),
        ("new-kid", "invalid-id-token"),
        ("hs256", "invalid-id-token"),
        ("iss", "wrong-issuer"),
        ("aud", "wrong-audience"),
        ("azp", "wrong-audience"),
        ("nonce", "wrong-nonce"),
        ("expired", "token-expired"),
        ("future-iat", "invalid-id-token"),
    ];
    for (mode, reason) in cases {
        s.provider.tamper(mode).await;
        let location = s.sign_in(&Login::email("ann@acme.test")).await;
        assert_eq!(refused_reason(&location), reason, "{mode}: {location}");
    }
    assert_eq!(s.app.audit_events(&s.owner, "sso.sign_in_refused").await.len(), cases.len());
    // Nobody joined just in time from a refused token.
    assert_eq!(s.app.member_count(&s.owner).await, members);
    // The same provider, untampered, still works (and Ann joins).
    s.provider.tamper("none").await;
    assert_eq!(s.email_signed_in(&Login::email("ann@acme.test")).await, "ann@acme.test");
    assert_eq!(s.app.member_count(&s.owner).await, members + 1);
}

#[tokio::test]
async fn a_replayed_state_is_refused() {
    let s = setup().await;
    let back = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    assert!(outcome(&deliver(&s.app, &back).await).is_ok());
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}

#[tokio::test]
async fn an_unknown_missing_or_expired_state_is_refused() {
    let s = setup().await;
    // A parameter a provider adds that Roster does not know is no reason for a problem: the
    // browser still gets its redirect.
    // A state that was never issued, of any shape (a NUL byte must not reach the database).
    for query in [
        "code=abc&state=never-issued",
        "code=abc",
        "error=access_denied",
        "code=abc&state=x&client_info=eyJ",
        "code=abc&state=%C3%BEm%00%C3%91",
    ] {
        let location = deliver(&s.app, &format!("{REDIRECT_URI}?{query}")).await;
        assert_eq!(refused_reason(&location), "invalid-state", "{query}");
    }
    let back = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    s.app.execute_sql("UPDATE sso_requests SET expires_at = '2000-01-01 00:00:00'");
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}

#[tokio::test]
async fn a_saml_request_id_is_not_an_oidc_state() {
    let s = setup().await;
    s.app.execute_sql(&format!(
        "INSERT INTO sso_requests (id, tenant_id, connection_id, protocol, binding_digest, created_at, expires_at) VALUES \
         ('saml-request-1', '{}', '{}', 'saml', 'x', '2026-01-01 00:00:00', '2999-01-01 00:00:00')",
        s.owner.tenant_id, s.connection_id
    ));
    let back = format!("{REDIRECT_URI}?code=abc&state=saml-request-1");
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}

#[tokio::test]
async fn the_providers_error_is_refused_as_idp_error() {
    let s = setup().await;
    let url = s.start().await;
    let state = query(&url, "state").unwrap();
    let back = format!("{REDIRECT_URI}?error=access_denied&error_description=the+user+said+no&state={state}");
    let (reason, description) = outcome(&deliver(&s.app, &back).await).unwrap_err();
    assert_eq!(reason, "idp-error");
    assert!(description.contains("access_denied: the user said no"), "{description}");
    // The state was used up by the error.
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}

#[tokio::test]
async fn a_code_from_another_sign_in_is_refused_by_the_provider() {
    // The code of one sign-in delivered with the state of another: PKCE makes the token
    // endpoint refuse.
    let s = setup().await;
    let first = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    let second = s.start().await;
    let code = query(&first, "code").unwrap();
    let state = query(&second, "state").unwrap();
    let mixed = format!("{REDIRECT_URI}?code={code}&state={state}");
    assert_eq!(refused_reason(&deliver(&s.app, &mixed).await), "token-exchange-failed");
}

#[tokio::test]
async fn an_answer_naming_another_issuer_is_refused() {
    // RFC 9207: the provider names itself in `iss`; an answer from a mixed-up provider differs.
    let s = setup().await;
    let back = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    assert_eq!(query(&back, "iss").as_deref(), Some(s.provider.issuer.as_str()));
    let mut url = Url::parse(&back).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" { "https://evil.example".to_string() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    assert_eq!(refused_reason(&deliver(&s.app, url.as_str()).await), "wrong-issuer");
}

#[tokio::test]
async fn a_disabled_connection_refuses_the_answer() {
    let s = setup().await;
    let back = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    s.app.execute_sql(&format!("UPDATE sso_connections SET enabled = FALSE WHERE id = '{}'", s.connection_id));
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "connection-disabled");
}

#[tokio::test]
async fn discovery_and_keys_are_cached_and_the_keys_refetched_on_an_unknown_kid() {
    let s = setup().await;
    assert_eq!(s.email_signed_in(&Login::email("ann@acme.test")).await, "ann@acme.test");
    let (discovery, keys) = s.provider.fetches().await;
    assert_eq!(s.email_signed_in(&Login::email("ann@acme.test")).await, "ann@acme.test");
    assert_eq!(s.provider.fetches().await, (discovery, keys), "the second sign-in fetched nothing");
    // The provider rotates to a key Roster has not seen: fetched once more, then accepted.
    s.provider.tamper("rotated").await;
    assert_eq!(s.email_signed_in(&Login::email("ann@acme.test")).await, "ann@acme.test");
    assert_eq!(s.provider.fetches().await, (discovery, keys + 1));
    // A kid the keys never list: fetched once more, then refused.
    s.provider.tamper("new-kid").await;
    assert_eq!(refused_reason(&s.sign_in(&Login::email("ann@acme.test")).await), "invalid-id-token");
    assert_eq!(s.provider.fetches().await, (discovery, keys + 2));
}

#[tokio::test]
async fn a_connection_is_checked_against_the_providers_discovery() {
    let dns = DnsServer::start();
    let app = spawn(&dns).await;
    let owner = app.new_owner("plus").await;
    let provider = OidcProvider::start();
    let url = connections(&owner.tenant_id);
    let body = |issuer: &str| {
        json!({"protocol": "oidc", "name": "x",
            "oidc": {"issuer": issuer, "client_id": "c", "client_secret": "s"}})
    };
    // The document names another issuer.
    let other = format!("{}/other", provider.issuer);
    let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body(&other)).await, 422).await;
    assert!(problem.to_string().contains("discovery failed"), "{problem}");
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{closed}");
    let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body(&issuer)).await, 422).await;
    assert!(problem.to_string().contains("could not connect"), "{problem}");
    // A provider without PKCE S256.
    let plain = OidcProvider::start_configured("client_secret_basic", "plain");
    let problem = assert_problem(app.send_json(Method::POST, &url, &owner.token, body(&plain.issuer)).await, 422).await;
    assert!(problem.to_string().contains("PKCE with S256 (code_challenge_methods_supported: plain)"), "{problem}");
    // The real one is accepted.
    let res = app.send_json(Method::POST, &url, &owner.token, body(&provider.issuer)).await;
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_email_outside_the_verified_domains_is_refused_and_audited() {
    let s = setup().await;
    for email in ["eve@elsewhere.test", "eve@sub.acme.test", "eve@acme.test.evil.test"] {
        let login = Login { email_verified: Some(true), ..Login::email(email) };
        assert_eq!(refused_reason(&s.sign_in(&login).await), "email-outside-verified-domains", "{email}");
    }
    let refused = s.app.audit_events(&s.owner, "sso.sign_in_refused").await;
    assert_eq!(refused.len(), 3, "{refused:?}");
}

#[tokio::test]
async fn an_unverified_domain_admits_nobody_whatever_email_verified_says() {
    let dns = DnsServer::start();
    let app = spawn(&dns).await;
    let owner = app.new_owner("plus").await;
    // Added, and its record published under another value: never verified.
    let res = add_domain(&app, &owner, "pending.test").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let added: Value = res.json().await.unwrap();
    dns.set_txt(added["verification"]["name"].as_str().unwrap(), &["roster-domain-verification=wrong"]);
    let provider = OidcProvider::start();
    let connection_id = connect(&app, &owner, &provider, true).await;
    let s = Setup { dns, app, owner, provider, connection_id };
    for verified in [Some(true), Some(false), None] {
        let login = Login { email_verified: verified, ..Login::email("pat@pending.test") };
        assert_eq!(refused_reason(&s.sign_in(&login).await), "email-outside-verified-domains", "{verified:?}");
    }
    // And `email_verified: false` does not refuse an address of a verified domain.
    verify_domain(&s.app, &s.dns, &s.owner, "pending-now.test").await;
    let login = Login { email_verified: Some(false), ..Login::email("pat@pending-now.test") };
    assert_eq!(s.email_signed_in(&login).await, "pat@pending-now.test");
}

#[tokio::test]
async fn the_idp_of_tenant_a_cannot_sign_in_a_member_of_tenant_b() {
    let s = setup().await; // tenant A: acme.test, just in time on
    let b = s.app.new_owner("plus").await;
    verify_domain(&s.app, &s.dns, &b, "beta.test").await;
    let bob = s.app.add_member(&b, json!({"email": "bob@beta.test", "full_name": "Bob", "role": "admin"})).await;
    // B's owner is also known to A's IdP: same person, by email.
    for email in ["bob@beta.test", b.email.as_str()] {
        let login = Login { email_verified: Some(true), ..Login::email(email) };
        assert_eq!(refused_reason(&s.sign_in(&login).await), "email-outside-verified-domains", "{email}");
    }
    // No session anywhere for Bob, and nothing changed in B.
    let sessions = s.app.execute_sql(&format!("UPDATE sessions SET user_id = user_id WHERE user_id = '{bob}'"));
    assert_eq!(sessions, 0, "no session for bob");
    let res = s.app.get(&format!("/api/v1/tenants/{}/users", s.owner.tenant_id), &s.owner.token).await;
    let a_users: Value = res.json().await.unwrap();
    assert!(!a_users.to_string().contains("beta.test"), "bob did not join A: {a_users}");
    assert_eq!(s.app.audit_events(&b, "sso.sign_in_refused").await.len(), 0, "refusals are A's");
}

#[tokio::test]
async fn a_connection_is_read_changed_and_deleted_without_its_secret_ever_leaving() {
    let s = setup().await;
    let url = format!("{}/{}", connections(&s.owner.tenant_id), s.connection_id);
    let secret = s.provider.client_secret.clone();
    let shows_no_secret = |text: &str| assert!(!text.contains(&secret), "the client secret leaked: {text}");

    let res = s.app.get(&url, &s.owner.token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    let text = res.text().await.unwrap();
    shows_no_secret(&text);
    let read: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(read["oidc"]["client_secret_set"], true);
    assert_eq!(read["just_in_time"], json!({"enabled": true, "role": "viewer", "region_ids": []}));
    let list = s.app.get(&connections(&s.owner.tenant_id), &s.owner.token).await.text().await.unwrap();
    shows_no_secret(&list);
    // At rest it is sealed too.
    let stored = s.app.execute_sql(&format!(
        "UPDATE sso_connections SET name = name WHERE id = '{}' AND sealed_secret LIKE '%{secret}%'",
        s.connection_id
    ));
    assert_eq!(stored, 0, "the secret is stored in the clear");

    // Rename, turn just in time off, a new secret: answered without it, audited before and after.
    let body = json!({"name": "Okta (prod)", "oidc": {"client_secret": "a-new-secret-value"},
        "just_in_time": {"enabled": false}});
    let res =
        s.app.request(Method::PATCH, &url, Some(&s.owner.token)).header("if-match", &etag).json(&body).send().await;
    let res = res.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(!text.contains("a-new-secret-value"), "{text}");
    let changed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(changed["name"], "Okta (prod)");
    assert_eq!(changed["version"], 2);
    assert_eq!(changed["just_in_time"]["enabled"], false);
    // The new secret is the one used: the provider refuses it, so the sign-in fails at the token step.
    assert_eq!(refused_reason(&s.sign_in(&Login::email("ann@acme.test")).await), "token-exchange-failed");
    // A stale If-Match: 412, nothing changed.
    let res = s
        .app
        .request(Method::PATCH, &url, Some(&s.owner.token))
        .header("if-match", &etag)
        .json(&json!({"enabled": false}));
    assert_problem(res.send().await.unwrap(), 412).await;
    let updates = s.app.audit_events(&s.owner, "sso_connection.updated").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["before"]["name"], "Test IdP");
    assert_eq!(updates[0]["after"]["name"], "Okta (prod)");
    let audit = serde_json::to_string(&s.app.audit_events(&s.owner, "sso_connection.created").await).unwrap();
    shows_no_secret(&audit);

    // Turned off: start finds no SSO for the domain.
    let res = s.app.send_json(Method::PATCH, &url, &s.owner.token, json!({"enabled": false})).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = s.app.request(Method::POST, "/api/v1/auth/sso/start", None).json(&json!({"email": "ann@acme.test"}));
    assert_problem(res.send().await.unwrap(), 404).await;

    // Deleted: gone, audited.
    let res = s.app.request(Method::DELETE, &url, Some(&s.owner.token)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_problem(s.app.get(&url, &s.owner.token).await, 404).await;
    assert_eq!(s.app.audit_events(&s.owner, "sso_connection.deleted").await.len(), 1);
}

#[tokio::test]
async fn a_tenant_that_requires_sso_keeps_an_enabled_connection() {
    let s = setup().await;
    let tenant = format!("/api/v1/tenants/{}", s.owner.tenant_id);
    let res =
        s.app.send_json(Method::PATCH, &tenant, &s.owner.token, json!({"settings": {"sso_required": true}})).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let url = format!("{}/{}", connections(&s.owner.tenant_id), s.connection_id);
    let problem =
        assert_problem(s.app.send_json(Method::PATCH, &url, &s.owner.token, json!({"enabled": false})).await, 409)
            .await;
    assert!(problem["detail"].as_str().unwrap().contains("sso_required"), "{problem}");
    let res = s.app.request(Method::DELETE, &url, Some(&s.owner.token)).send().await.unwrap();
    assert_problem(res, 409).await;
    let read: Value = s.app.get(&url, &s.owner.token).await.json().await.unwrap();
    assert_eq!(read["enabled"], true);
    assert_eq!(read["version"], 1);
}

#[tokio::test]
async fn just_in_time_stops_at_the_seat_limit() {
    let s = setup().await;
    let tenant = format!("/api/v1/tenants/{}", s.owner.tenant_id);
    let res = s.app.send_json(Method::PATCH, &tenant, &s.owner.token, json!({"seat_limit": 1})).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let before = s.app.member_count(&s.owner).await;
    assert_eq!(refused_reason(&s.sign_in(&Login::email("nina@acme.test")).await), "seat-limit");
    assert_eq!(s.app.member_count(&s.owner).await, before, "nobody was added");
    let refused = s.app.audit_events(&s.owner, "sso.sign_in_refused").await;
    assert_eq!(refused[0]["after"]["reason"], "seat-limit", "{refused:?}");
    assert_eq!(refused[0]["actor_type"], "sso_connection", "{refused:?}");
}

#[tokio::test]
async fn an_identity_of_another_tenant_joins_just_in_time_and_keeps_everything_it_had() {
    let s = setup().await;
    // Bo belongs to another tenant, with his own name and password.
    let other = s.app.new_owner("plus").await;
    let created =
        s.app.post_member(&other, json!({"email": "bo@acme.test", "full_name": "Bo Original", "role": "admin"})).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let password = created["temporary_password"].as_str().unwrap().to_string();

    // Tenant A's provider vouches for him under another name: he joins A as a viewer.
    let login = Login { name: Some("Mallory Renamed".into()), ..Login::email("bo@acme.test") };
    let tokens = s.signed_in(&login).await;
    assert_eq!(tokens["tenant_id"], s.owner.tenant_id.as_str());
    assert_eq!(tokens["tenants"].as_array().unwrap().len(), 1, "the SSO session is for A only: {tokens}");
    assert_eq!(tokens["tenants"][0]["role"], "viewer");
    let me: Value = s.app.get("/api/v1/me", tokens["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["full_name"], "Bo Original", "nothing of the identity changes");

    // The session is A's only: no switching into B with it.
    let res = s
        .app
        .send_json(
            Method::POST,
            "/api/v1/auth/switch",
            tokens["access_token"].as_str().unwrap(),
            json!({"tenant_id": other.tenant_id}),
        )
        .await;
    let problem = assert_problem(res, 403).await;
    assert!(problem["type"].as_str().unwrap().ends_with(":sso-session"), "{problem}");

    // His password and his place in B are as they were.
    let signed = s.app.login_ok("bo@acme.test", &password, Some(&other.tenant_id)).await;
    assert_eq!(signed["tenants"].as_array().unwrap().len(), 2, "{signed}");
    let in_b: Value = s
        .app
        .get(&format!("/api/v1/tenants/{}/users/{}", other.tenant_id, created["id"].as_str().unwrap()), &other.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!((in_b["role"].as_str(), in_b["full_name"].as_str()), (Some("admin"), Some("Bo Original")), "{in_b}");
}

#[tokio::test]
async fn a_disabled_member_is_refused() {
    let s = setup().await;
    let ann =
        s.app.add_member(&s.owner, json!({"email": "ann@acme.test", "full_name": "Ann", "role": "operator"})).await;
    assert_eq!(s.app.set_status(&s.owner, &ann, "disabled").await.status(), StatusCode::OK);
    assert_eq!(refused_reason(&s.sign_in(&Login::email("ann@acme.test")).await), "member-not-active");
    let refused = s.app.audit_events(&s.owner, "sso.sign_in_refused").await;
    assert_eq!(refused[0]["after"]["email"], "ann@acme.test");
}
