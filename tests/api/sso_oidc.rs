//! Signing in with OpenID Connect against a real provider (`tools/oidc_provider.mjs`): the code
//! flow with state, nonce and PKCE, and each refusal of a bad answer.

use reqwest::Url;
use roster::AppState;
use roster::store::sso::ConnectionRow;
use secrecy::SecretString;

use crate::helpers::{self, Persona, TEST_MASTER_KEY, TestApp, spawn_app_with};
use crate::oidc_harness::{Browser, Login, OidcProvider, deliver, outcome, refused_reason};

struct Setup {
    app: TestApp,
    owner: Persona,
    provider: OidcProvider,
    state: AppState,
    connection: ConnectionRow,
}

async fn setup_with(provider: OidcProvider) -> Setup {
    let app = spawn_app_with(|c| c.sso_insecure_hosts = vec!["127.0.0.1".into()]).await;
    let owner = app.new_owner("plus").await;
    let id = uuid::Uuid::now_v7().to_string();
    let master =
        roster::auth::master_key::MasterKey::resolve(Some(&SecretString::from(TEST_MASTER_KEY)), app.data.path())
            .unwrap();
    let sealed = master
        .seal(provider.client_secret.as_bytes(), &roster::store::sso::secret_context(&owner.tenant_id, &id))
        .unwrap();
    let settings = serde_json::json!({
        "issuer": provider.issuer, "client_id": provider.client_id, "scopes": ["openid", "email", "profile"]
    });
    app.execute_sql(&format!(
        "INSERT INTO sso_connections (tenant_id, id, protocol, name, enabled, settings, sealed_secret, jit_enabled, \
         jit_role, jit_regions, created_by, created_at, updated_at, version) VALUES ('{}', '{id}', 'oidc', 'Test IdP', \
         TRUE, '{settings}', '{sealed}', FALSE, 'viewer', '[]', '{}', '2026-12-07 00:00:00', '2026-12-07 00:00:00', 1)",
        owner.tenant_id, owner.user_id
    ));
    let mut config = helpers::config(&app.db.url);
    config.sso_insecure_hosts = vec!["127.0.0.1".into()];
    config.data_dir = app.data.path().to_path_buf();
    let state = AppState::init(config).unwrap();
    let connection = roster::db::run(&state.pool, move |conn| roster::store::sso::find_connection(conn, &id))
        .await
        .unwrap()
        .unwrap();
    Setup { app, owner, provider, state, connection }
}

async fn setup() -> Setup {
    setup_with(OidcProvider::start()).await
}

impl Setup {
    /// The provider's authorization URL for a new sign-in.
    async fn start(&self) -> String {
        roster::sso::oidc::begin(&self.state, &self.connection).await.unwrap()
    }

    /// A whole sign-in as `login`: answers where Roster sends the browser in the end.
    async fn sign_in(&self, login: &Login) -> String {
        let url = self.start().await;
        let back = Browser::new().authorize(&url, login).await;
        deliver(&self.app, &back).await
    }
}

fn query(url: &str, name: &str) -> Option<String> {
    Url::parse(url).unwrap().query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn the_authorization_url_carries_state_nonce_and_pkce_s256() {
    let s = setup().await;
    let url = s.start().await;
    assert!(url.starts_with(&format!("{}/auth?", s.provider.issuer)), "{url}");
    assert_eq!(query(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(&url, "client_id").as_deref(), Some(s.provider.client_id.as_str()));
    assert_eq!(query(&url, "redirect_uri").as_deref(), Some(crate::oidc_harness::REDIRECT_URI));
    assert_eq!(query(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert!(query(&url, "code_challenge").is_some_and(|c| c.len() == 43));
    assert!(query(&url, "state").is_some_and(|c| c.len() >= 22));
    assert!(query(&url, "nonce").is_some_and(|c| c.len() >= 22));
    let scope = query(&url, "scope").unwrap();
    assert_eq!(scope.split(' ').filter(|s| *s == "openid").count(), 1, "{scope}");
    assert!(scope.contains("email"), "{scope}");
    let other = s.start().await;
    assert_ne!(query(&url, "state"), query(&other, "state"));
    assert_ne!(query(&url, "nonce"), query(&other, "nonce"));
    assert_ne!(query(&url, "code_challenge"), query(&other, "code_challenge"));
    let _ = &s.owner;
}

/// The email a sign-in asserted (while `api::sso::finish` is the stand-in that refuses with
/// `not-finished` and the email as its description).
fn asserted_email(location: &str) -> String {
    match outcome(location) {
        Err((reason, email)) if reason == "not-finished" => email,
        other => panic!("the sign-in was not asserted: {other:?} ({location})"),
    }
}

#[tokio::test]
async fn a_sign_in_at_the_provider_asserts_the_email() {
    let s = setup().await;
    let location = s.sign_in(&Login::email("ann@acme.test")).await;
    assert_eq!(asserted_email(&location), "ann@acme.test");
}

#[tokio::test]
async fn client_secret_post_is_used_when_the_provider_takes_only_that() {
    let s = setup_with(OidcProvider::start_with("client_secret_post")).await;
    let location = s.sign_in(&Login::email("ann@acme.test")).await;
    assert_eq!(asserted_email(&location), "ann@acme.test");
}

#[tokio::test]
async fn the_email_comes_from_user_info_when_the_id_token_has_none() {
    let s = setup().await;
    s.provider.tamper("strip-email").await;
    let location = s.sign_in(&Login::email("bob@acme.test")).await;
    assert_eq!(asserted_email(&location), "bob@acme.test");
}

#[tokio::test]
async fn each_bad_id_token_is_refused_with_its_reason() {
    let s = setup().await;
    for (mode, reason) in [
        ("payload", "invalid-id-token"),
        ("resign", "invalid-id-token"),
        ("new-kid", "invalid-id-token"),
        ("iss", "wrong-issuer"),
        ("aud", "wrong-audience"),
        ("azp", "wrong-audience"),
        ("nonce", "wrong-nonce"),
        ("expired", "token-expired"),
        ("future-iat", "invalid-id-token"),
    ] {
        s.provider.tamper(mode).await;
        let location = s.sign_in(&Login::email("ann@acme.test")).await;
        assert_eq!(refused_reason(&location), reason, "{mode}: {location}");
    }
    // The same provider, untampered, still works.
    s.provider.tamper("none").await;
    assert_eq!(asserted_email(&s.sign_in(&Login::email("ann@acme.test")).await), "ann@acme.test");
}

#[tokio::test]
async fn a_replayed_state_is_refused() {
    let s = setup().await;
    let url = s.start().await;
    let back = Browser::new().authorize(&url, &Login::email("ann@acme.test")).await;
    assert_eq!(asserted_email(&deliver(&s.app, &back).await), "ann@acme.test");
    let again = deliver(&s.app, &back).await;
    assert_eq!(refused_reason(&again), "invalid-state");
}

#[tokio::test]
async fn an_unknown_or_missing_state_is_refused() {
    let s = setup().await;
    let base = crate::oidc_harness::REDIRECT_URI;
    for query in ["code=abc&state=never-issued", "code=abc", "error=access_denied"] {
        let location = deliver(&s.app, &format!("{base}?{query}")).await;
        assert_eq!(refused_reason(&location), "invalid-state", "{query}");
    }
}

#[tokio::test]
async fn the_providers_error_is_refused_as_idp_error() {
    let s = setup().await;
    let url = s.start().await;
    let state = query(&url, "state").unwrap();
    let back = format!(
        "{}?error=access_denied&error_description=the+user+said+no&state={state}",
        crate::oidc_harness::REDIRECT_URI
    );
    let location = deliver(&s.app, &back).await;
    let (reason, description) = outcome(&location).unwrap_err();
    assert_eq!(reason, "idp-error");
    assert!(description.contains("access_denied: the user said no"), "{description}");
    // The state was used up by the error.
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}

#[tokio::test]
async fn a_code_from_another_sign_in_is_refused_by_the_provider() {
    // The code of one sign-in delivered with the state of another: PKCE and the code binding
    // make the token endpoint refuse.
    let s = setup().await;
    let first = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    let second = s.start().await;
    let code = query(&first, "code").unwrap();
    let state = query(&second, "state").unwrap();
    let mixed = format!("{}?code={code}&state={state}", crate::oidc_harness::REDIRECT_URI);
    assert_eq!(refused_reason(&deliver(&s.app, &mixed).await), "token-exchange-failed");
}

#[tokio::test]
async fn discovery_and_keys_are_cached_and_the_keys_refetched_on_an_unknown_kid() {
    let s = setup().await;
    assert_eq!(asserted_email(&s.sign_in(&Login::email("ann@acme.test")).await), "ann@acme.test");
    let (discovery, keys) = s.provider.fetches().await;
    assert_eq!(asserted_email(&s.sign_in(&Login::email("ann@acme.test")).await), "ann@acme.test");
    assert_eq!(s.provider.fetches().await, (discovery, keys), "the second sign-in fetched nothing");
    // The provider rotates to a key Roster has not seen: fetched once more, then accepted.
    s.provider.tamper("rotated").await;
    assert_eq!(asserted_email(&s.sign_in(&Login::email("ann@acme.test")).await), "ann@acme.test");
    assert_eq!(s.provider.fetches().await, (discovery, keys + 1));
    // A kid the keys never list: fetched once more, then refused.
    s.provider.tamper("new-kid").await;
    assert_eq!(refused_reason(&s.sign_in(&Login::email("ann@acme.test")).await), "invalid-id-token");
    assert_eq!(s.provider.fetches().await, (discovery, keys + 2));
}

#[tokio::test]
async fn check_issuer_validates_a_new_connections_provider() {
    let s = setup().await;
    let issuer = s.provider.issuer.clone();
    roster::sso::oidc::check_issuer(&s.state, &issuer).await.unwrap();
    // The document must name the issuer exactly.
    let error = roster::sso::oidc::check_issuer(&s.state, &format!("{issuer}/")).await.unwrap_err();
    assert!(error.contains("unexpected issuer"), "{error}");
    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let error = roster::sso::oidc::check_issuer(&s.state, &format!("http://127.0.0.1:{closed}")).await.unwrap_err();
    assert!(error.contains("could not connect"), "{error}");

    // Without the allow-list: http and loopback are refused before anything is sent.
    let mut config = helpers::config(&s.app.db.url);
    config.data_dir = s.app.data.path().to_path_buf();
    let strict = AppState::init(config).unwrap();
    let (discovery, _) = s.provider.fetches().await;
    for issuer in [issuer.clone(), issuer.replace("http://", "https://")] {
        let error = roster::sso::oidc::check_issuer(&strict, &issuer).await.unwrap_err();
        assert!(error.starts_with("the issuer URL must not point to 127.0.0.1"), "{error}");
    }
    let error = roster::sso::oidc::check_issuer(&strict, "http://idp.example").await.unwrap_err();
    assert_eq!(error, "the issuer URL must use https");
    assert_eq!(s.provider.fetches().await.0, discovery, "nothing reached the provider");
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
    s.app.execute_sql(&format!("UPDATE sso_connections SET enabled = FALSE WHERE id = '{}'", s.connection.id));
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "connection-disabled");
}

#[tokio::test]
async fn a_saml_request_id_is_not_an_oidc_state() {
    let s = setup().await;
    s.app.execute_sql(&format!(
        "INSERT INTO sso_requests (id, tenant_id, connection_id, protocol, created_at, expires_at) VALUES \
         ('saml-request-1', '{}', '{}', 'saml', '2026-01-01 00:00:00', '2999-01-01 00:00:00')",
        s.owner.tenant_id, s.connection.id
    ));
    let back = format!("{}?code=abc&state=saml-request-1", crate::oidc_harness::REDIRECT_URI);
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}

#[tokio::test]
async fn an_expired_state_is_refused() {
    let s = setup().await;
    let back = Browser::new().authorize(&s.start().await, &Login::email("ann@acme.test")).await;
    s.app.execute_sql("UPDATE sso_requests SET expires_at = '2000-01-01 00:00:00'");
    assert_eq!(refused_reason(&deliver(&s.app, &back).await), "invalid-state");
}
