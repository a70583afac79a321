//! SAML 2.0 sign-in against a real identity provider (tools/saml_idp.py: pysaml2 signing with
//! xmlsec1, a process on 127.0.0.1): the response checks one by one on what the IdP really
//! sends (and on what an attacker makes of it: tampered, re-wrapped), Roster's SP metadata
//! route, and the ACS over HTTP (replay, unsolicited, another connection's request).

use chrono::Utc;
use reqwest::StatusCode;
use roster::sso::saml::{self, CheckedResponse, Expected};
use roster::sso::{Refused, SamlSettings};
use serde_json::Value;

use crate::helpers::{TestApp, assert_problem, spawn_app};
use crate::saml_harness::{IdpPost, SamlIdp, post_to_acs};

const PUBLIC_URL: &str = "http://roster.test";

/// An IdP that knows one SP (a connection id on `http://roster.test`), and what a response to
/// that SP is checked against.
struct Setup {
    idp: SamlIdp,
    idp_sso_url: String,
    expected: Expected,
}

impl Setup {
    async fn new(connection_id: &str) -> Self {
        let idp = SamlIdp::start();
        let metadata = saml::read_metadata(&idp.metadata().await).expect("the IdP's metadata");
        assert_eq!(metadata.entity_id, idp.metadata_url());
        let sp_entity_id = saml::sp_entity_id(PUBLIC_URL, connection_id);
        let acs_url = saml::acs_url(PUBLIC_URL, connection_id);
        idp.register_sp(&saml::sp_metadata(&sp_entity_id, &acs_url)).await;
        let expected =
            Expected { idp_entity_id: metadata.entity_id, idp_certs: metadata.signing_certs, sp_entity_id, acs_url };
        Self { idp, idp_sso_url: metadata.sso_redirect_url, expected }
    }

    /// A fresh AuthnRequest answered by the IdP for `login`, misbehaving as told.
    async fn respond(&self, login: &str, misbehave: &[&str]) -> (String, IdpPost) {
        let id = format!("_{}", uuid::Uuid::now_v7().simple());
        let url = saml::authn_request_url(
            &self.idp_sso_url,
            &self.expected.sp_entity_id,
            &self.expected.acs_url,
            &id,
            Utc::now(),
        )
        .unwrap();
        (id, self.idp.sign_in(&url, login, misbehave).await)
    }

    fn check(&self, post: &IdpPost) -> Result<CheckedResponse, Refused> {
        saml::check_response(&post.saml_response, &self.expected, Utc::now())
    }

    async fn refused(&self, misbehave: &[&str]) -> Refused {
        let (_, post) = self.respond("ann@corp.example", misbehave).await;
        self.check(&post).expect_err("refused")
    }
}

// ---------------------------------------------------------------- XML surgery for the attacks

/// The byte span of every element named `local` (any prefix), outermost first; no nesting of
/// the same name expected.
fn spans(xml: &str, local: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = xml[from..].find('<').map(|i| from + i) {
        let rest = &xml[i + 1..];
        let name_end = rest.find([' ', '>', '/']).unwrap_or(rest.len());
        let name = &rest[..name_end];
        if name.rsplit(':').next() == Some(local) && !name.starts_with('/') {
            let close = format!("</{name}>");
            let end = xml[i..].find(&close).map(|j| i + j + close.len()).expect("closing tag");
            out.push((i, end));
            from = end;
        } else {
            from = i + 1;
        }
    }
    out
}

fn only_span(xml: &str, local: &str) -> (usize, usize) {
    let all = spans(xml, local);
    assert_eq!(all.len(), 1, "one {local} in {xml}");
    all[0]
}

/// The assertion as the attacker rewrites it: another email, no signature, id `new_id`.
fn forged(assertion: &str, old_id: &str, new_id: &str) -> String {
    let mut evil = assertion.replace("ann@corp.example", "mallory@corp.example");
    for (s, e) in spans(&evil.clone(), "Signature").into_iter().rev() {
        evil.replace_range(s..e, "");
    }
    evil.replace(&format!("ID=\"{old_id}\""), &format!("ID=\"{new_id}\""))
}

fn assertion_id(assertion: &str) -> String {
    let i = assertion.find(" ID=\"").unwrap() + 5;
    assertion[i..i + assertion[i..].find('"').unwrap()].to_string()
}

// ---------------------------------------------------------------- the checks, on real responses

#[tokio::test]
async fn a_signed_assertion_from_the_idp_is_accepted_with_its_email_and_names() {
    let setup = Setup::new("conn-ok").await;
    for how in [&[][..], &["sign-response"], &["sign-both"]] {
        let (request_id, post) = setup.respond("ann@corp.example", how).await;
        assert_eq!(post.action, setup.expected.acs_url);
        let checked = setup.check(&post).unwrap_or_else(|r| panic!("{how:?}: {r:?}"));
        assert_eq!(checked.in_response_to, request_id);
        assert_eq!(checked.asserted.email, "ann@corp.example");
        assert_eq!(checked.asserted.subject, "ann@corp.example");
        assert_eq!(checked.asserted.given_name.as_deref(), Some("Ann"));
        assert_eq!(checked.asserted.family_name.as_deref(), Some("Lee"));
        assert!(checked.usable_until > Utc::now());
    }
    // The email from an attribute when the NameID is transient.
    let (_, post) = setup.respond("bo@corp.example", &["attribute-email"]).await;
    let checked = setup.check(&post).unwrap();
    assert_eq!(checked.asserted.email, "bo@corp.example");
    assert_ne!(checked.asserted.subject, "bo@corp.example");
}

#[tokio::test]
async fn each_broken_rule_is_refused_with_its_own_reason() {
    let setup = Setup::new("conn-rules").await;
    for (misbehave, reason) in [
        ("unsigned", "unsigned"),
        ("other-key", "bad-signature"),
        ("expired", "expired"),
        ("not-yet-valid", "not-yet-valid"),
        ("wrong-audience", "wrong-audience"),
        ("wrong-recipient", "wrong-recipient"),
        ("wrong-destination", "wrong-destination"),
        ("wrong-issuer", "wrong-issuer"),
        ("wrong-assertion-issuer", "wrong-issuer"),
        ("expired-confirmation", "expired"),
        ("sha1", "bad-signature"),
        ("idp-error", "idp-error"),
        ("no-email", "no-email"),
    ] {
        let refused = setup.refused(&[misbehave]).await;
        assert_eq!(refused.reason, reason, "{misbehave}: {}", refused.detail);
    }
    // A response for the right connection but checked as another connection's: its audience
    // and recipient are not that connection's.
    let (_, post) = setup.respond("ann@corp.example", &[]).await;
    let other = Expected {
        sp_entity_id: saml::sp_entity_id(PUBLIC_URL, "conn-other"),
        acs_url: saml::acs_url(PUBLIC_URL, "conn-other"),
        ..setup.expected.clone()
    };
    let refused = saml::check_response(&post.saml_response, &other, Utc::now()).unwrap_err();
    assert_eq!(refused.reason, "wrong-destination", "{}", refused.detail);
    // Another IdP's certificate: the signature does not verify.
    let stranger = SamlIdp::start();
    let stranger_md = saml::read_metadata(&stranger.metadata().await).unwrap();
    let wrong_certs = Expected { idp_certs: stranger_md.signing_certs, ..setup.expected.clone() };
    let refused = saml::check_response(&post.saml_response, &wrong_certs, Utc::now()).unwrap_err();
    assert_eq!(refused.reason, "bad-signature");
    // The clock: two minutes of skew either way, no more.
    let late = Utc::now() + chrono::Duration::minutes(5) + chrono::Duration::seconds(saml::CLOCK_SKEW_SECS + 5);
    assert_eq!(saml::check_response(&post.saml_response, &setup.expected, late).unwrap_err().reason, "expired");
    let slightly_late =
        Utc::now() + chrono::Duration::minutes(5) + chrono::Duration::seconds(saml::CLOCK_SKEW_SECS - 20);
    assert!(saml::check_response(&post.saml_response, &setup.expected, slightly_late).is_ok());
}

#[tokio::test]
async fn a_tampered_or_wrapped_response_never_yields_the_attackers_email() {
    let setup = Setup::new("conn-xsw").await;
    let (_, post) = setup.respond("ann@corp.example", &[]).await;
    let xml = post.xml();
    assert!(setup.check(&post).is_ok());
    let (a_start, a_end) = only_span(&xml, "Assertion");
    let signed = &xml[a_start..a_end];
    let id = assertion_id(signed);

    // Tampered: the email changed inside the signed assertion.
    let tampered = xml.replace("ann@corp.example", "mallory@corp.example");
    assert_eq!(setup.check(&post.with_xml(&tampered)).unwrap_err().reason, "bad-signature");

    // Signature removed: nothing is signed any more.
    let mut stripped = xml.clone();
    for (s, e) in spans(&xml, "Signature").into_iter().rev() {
        stripped.replace_range(s..e, "");
    }
    assert_eq!(setup.check(&post.with_xml(&stripped)).unwrap_err().reason, "unsigned");

    // XSW 1: a second, unsigned assertion injected before the signed one.
    let evil = forged(signed, &id, "_evil1");
    let injected = format!("{}{evil}{}", &xml[..a_start], &xml[a_start..]);
    let refused = setup.check(&post.with_xml(&injected)).unwrap_err();
    assert_eq!(refused.reason, "invalid-response", "{}", refused.detail);

    // XSW 2: the forged assertion takes the signed one's place (and its ID); the signed one
    // moves into the response's Extensions (after its Issuer), where a lax verifier still
    // finds it by ID.
    let evil = forged(signed, &id, &id);
    let swapped = format!("{}{evil}{}", &xml[..a_start], &xml[a_end..]);
    let (_, issuer_end) = spans(&xml, "Issuer")[0];
    assert!(issuer_end < a_start, "the response's Issuer comes first");
    let p = prefix_of(&xml, "Response");
    let moved =
        format!("{}<{p}:Extensions>{signed}</{p}:Extensions>{}", &swapped[..issuer_end], &swapped[issuer_end..]);
    let refused = setup.check(&post.with_xml(&moved)).unwrap_err();
    assert_eq!(refused.reason, "invalid-response", "{}", refused.detail);

    // XSW 3: the forged assertion (new ID) at the top, the signed one hidden inside it.
    let evil = forged(signed, &id, "_evil3");
    let (e_start, e_end) = only_span(&evil, "Assertion");
    let inner_close = evil[e_start..e_end].rfind("</").unwrap() + e_start;
    let nested = format!("{}{}{}", &evil[..inner_close], signed, &evil[inner_close..]);
    let hidden = format!("{}{nested}{}", &xml[..a_start], &xml[a_end..]);
    let refused = setup.check(&post.with_xml(&hidden)).unwrap_err();
    assert_eq!(refused.reason, "invalid-response", "{}", refused.detail);
}

/// The namespace prefix the element `local` is written with.
fn prefix_of(xml: &str, local: &str) -> String {
    let (s, _) = spans(xml, local)[0];
    let name = &xml[s + 1..s + 1 + xml[s + 1..].find([' ', '>']).unwrap()];
    name.split_once(':').map(|(p, _)| p.to_string()).expect("a prefixed element")
}

#[tokio::test]
async fn metadata_is_read_with_what_is_missing_named() {
    let setup = Setup::new("conn-md").await;
    let xml = setup.idp.metadata().await;
    assert!(saml::read_metadata(&xml).is_ok());
    let err = saml::read_metadata("<x/>").unwrap_err();
    assert!(err.contains("EntityDescriptor"), "{err}");
    let err = saml::read_metadata("not xml").unwrap_err();
    assert!(err.contains("well-formed"), "{err}");
    let no_redirect = xml.replace("HTTP-Redirect", "HTTP-Artifact");
    let err = saml::read_metadata(&no_redirect).unwrap_err();
    assert!(err.contains("HTTP-Redirect"), "{err}");
    let (s, e) = only_span(&xml, "KeyDescriptor");
    let err = saml::read_metadata(&format!("{}{}", &xml[..s], &xml[e..])).unwrap_err();
    assert!(err.contains("signing certificate"), "{err}");
    let err = saml::read_metadata(&xml.replace("entityID=", "entityId=")).unwrap_err();
    assert!(err.contains("entityID"), "{err}");
}

// ---------------------------------------------------------------- the routes

/// A SAML connection on `tenant` for `idp`, written directly (the connection routes are the
/// lead's; this keeps the ACS tests independent of them).
async fn saml_connection(app: &TestApp, tenant: &str, id: &str, idp: &SamlIdp, enabled: bool) {
    let xml = idp.metadata().await;
    let md = saml::read_metadata(&xml).unwrap();
    let settings = SamlSettings {
        idp_metadata_xml: xml,
        idp_metadata_url: Some(idp.metadata_url()),
        idp_entity_id: md.entity_id,
        idp_sso_url: md.sso_redirect_url,
    };
    let settings = serde_json::to_string(&settings).unwrap().replace('\'', "''");
    app.execute_sql(&format!(
        "INSERT INTO sso_connections (tenant_id, id, protocol, name, enabled, settings, jit_enabled, jit_role, \
         jit_regions, created_by, created_at, updated_at) VALUES ('{tenant}', '{id}', 'saml', 'Test IdP', {enabled}, \
         '{settings}', false, 'viewer', '[]', 'test', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
    ));
}

/// A pending sign-in as `saml::begin` records it (the start route is the lead's).
fn pending_request(app: &TestApp, tenant: &str, connection: &str, request_id: &str) {
    app.execute_sql(&format!(
        "INSERT INTO sso_requests (id, tenant_id, connection_id, protocol, created_at, expires_at) VALUES \
         ('{request_id}', '{tenant}', '{connection}', 'saml', '2026-01-01 00:00:00', '2099-01-01 00:00:00')"
    ));
}

async fn tenant(app: &TestApp, owner: &str) -> String {
    let created: Value = app.create_tenant("SAML Co", owner, "enterprise").await;
    created["tenant_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn sp_metadata_route_serves_the_connections_entity_and_acs() {
    let app = spawn_app().await;
    let idp = SamlIdp::start();
    let t = tenant(&app, "owner@corp.example").await;
    saml_connection(&app, &t, "conn-md-route", &idp, true).await;
    let res = app.client.get(format!("{}/api/v1/sso/saml/conn-md-route/metadata", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/samlmetadata+xml");
    let xml = res.text().await.unwrap();
    assert!(xml.contains(r#"entityID="http://roster.test/api/v1/sso/saml/conn-md-route/metadata""#), "{xml}");
    assert!(xml.contains(r#"Location="http://roster.test/api/v1/sso/saml/conn-md-route/acs""#), "{xml}");
    assert!(xml.contains(r#"WantAssertionsSigned="true""#) && xml.contains(r#"AuthnRequestsSigned="false""#));
    // The IdP takes it as an SP's metadata.
    idp.register_sp(&xml).await;

    let res = app.client.get(format!("{}/api/v1/sso/saml/no-such/metadata", app.address)).send().await.unwrap();
    assert_problem(res, 404).await;
    let res = app
        .client
        .post(format!("{}/api/v1/sso/saml/no-such/acs", app.address))
        .form(&[("SAMLResponse", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(res, 404).await;
    let acs = format!("{}/api/v1/sso/saml/conn-md-route/acs", app.address);
    let res = app.client.post(&acs).form(&[("RelayState", "x")]).send().await.unwrap();
    let problem = assert_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "SAMLResponse");
    let res = app.client.post(&acs).json(&serde_json::json!({"SAMLResponse": "x"})).send().await.unwrap();
    assert_problem(res, 415).await;
    let big = "A".repeat(1024 * 1024 + 10);
    let res = app.client.post(&acs).form(&[("SAMLResponse", big.as_str())]).send().await.unwrap();
    assert_problem(res, 413).await;
}

/// The ACS over HTTP: the first post of an answer to a request this server made goes through;
/// the same response again is a replay; an answer to a request never made, or made for another
/// connection, is unsolicited; a disabled connection refuses.
#[tokio::test]
async fn acs_takes_each_request_and_assertion_once_and_only_for_its_connection() {
    let app = spawn_app().await;
    let t = tenant(&app, "owner@corp.example").await;
    let setup = Setup::new("conn-acs").await;
    saml_connection(&app, &t, "conn-acs", &setup.idp, true).await;

    let (request_id, post) = setup.respond("ann@corp.example", &[]).await;
    pending_request(&app, &t, "conn-acs", &request_id);
    let first = post_to_acs(&app, &post).await;
    first.code();
    let again = post_to_acs(&app, &post).await;
    assert_eq!(again.error(), "replayed-assertion");

    // Never requested: the IdP answers an id this server never made.
    let (_, post) = setup.respond("ann@corp.example", &["wrong-in-response-to"]).await;
    assert_eq!(post_to_acs(&app, &post).await.error(), "unsolicited");
    // A request made for another connection of the same tenant.
    let other = SamlIdp::start();
    saml_connection(&app, &t, "conn-acs-other", &other, true).await;
    let (request_id, post) = setup.respond("ann@corp.example", &[]).await;
    pending_request(&app, &t, "conn-acs-other", &request_id);
    assert_eq!(post_to_acs(&app, &post).await.error(), "unsolicited");

    // Refusals reach the browser as `error` and `error_description`.
    let (request_id, post) = setup.respond("ann@corp.example", &["expired"]).await;
    pending_request(&app, &t, "conn-acs", &request_id);
    let answer = post_to_acs(&app, &post).await;
    assert_eq!(answer.error(), "expired");
    assert!(answer.location.as_deref().unwrap().contains("/sso/callback?"));
    assert!(answer.param("error_description").is_some());

    app.execute_sql("UPDATE sso_connections SET enabled = false WHERE id = 'conn-acs'");
    let (request_id, post) = setup.respond("ann@corp.example", &[]).await;
    pending_request(&app, &t, "conn-acs", &request_id);
    assert_eq!(post_to_acs(&app, &post).await.error(), "connection-disabled");
}
