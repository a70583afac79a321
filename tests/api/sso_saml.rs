//! SAML 2.0 sign-in against a real identity provider (tools/saml_idp.py: pysaml2 signing with
//! xmlsec1, a process on 127.0.0.1): the response checks one by one on what the IdP really
//! sends (and on what an attacker makes of it: tampered, re-wrapped), Roster's SP metadata
//! route, and the ACS over HTTP (replay, unsolicited, another connection's request).

use chrono::Utc;
use reqwest::Method;
use reqwest::StatusCode;
use roster::sso::Refused;
use roster::sso::saml::{self, CheckedResponse, Expected};
use serde_json::{Value, json};

use crate::dns_harness::{DnsServer, verify_domain};
use crate::helpers::{Persona, TestApp, assert_problem, spawn_app, spawn_app_with};
use crate::saml_harness::{AcsAnswer, IdpPost, SamlIdp, post_to_acs};

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
        Self { idp, idp_sso_url: metadata.sso_url, expected }
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

    // A DTD (entity expansion, external entities): refused before any XML library expands it.
    let body = xml.trim_start_matches(|c| c != '<');
    let body = if body.starts_with("<?xml") { &body[body.find("?>").unwrap() + 2..] } else { body };
    let with_dtd = format!("<!DOCTYPE r [<!ENTITY x \"ann@corp.example\">]>{body}");
    assert_eq!(setup.check(&post.with_xml(&with_dtd)).unwrap_err().reason, "invalid-response");

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

/// The app, with its DNS lookups going to a test DNS server (domain verification).
async fn spawn_with_dns() -> (TestApp, DnsServer) {
    let dns = DnsServer::start();
    let app = spawn_app_with(|c| dns.configure(c)).await;
    (app, dns)
}

/// A SAML connection of `owner`'s tenant for `idp`, made through the connection routes; the IdP
/// gets Roster's SP metadata from Roster's route, as its admin would. Answers the connection.
async fn connect(app: &TestApp, owner: &Persona, idp: &SamlIdp, just_in_time: bool) -> Value {
    let body = json!({"protocol": "saml", "name": "Test IdP",
        "saml": {"idp_metadata_xml": idp.metadata().await},
        "just_in_time": {"enabled": just_in_time, "role": "viewer"}});
    let url = format!("/api/v1/tenants/{}/sso/connections", owner.tenant_id);
    let res = app.send_json(Method::POST, &url, &owner.token, body).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap());
    let connection: Value = res.json().await.unwrap();
    assert_eq!(connection["saml"]["idp_entity_id"], idp.metadata_url());
    let id = connection["id"].as_str().unwrap();
    let res = app.client.get(format!("{}/api/v1/sso/saml/{id}/metadata", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    idp.register_sp(&res.text().await.unwrap()).await;
    connection
}

/// `POST /auth/sso/start`: the IdP URL the browser is sent to.
async fn start(app: &TestApp, body: Value) -> String {
    let res = app.request(Method::POST, "/api/v1/auth/sso/start", None).json(&body).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text().await.unwrap());
    let started: Value = res.json().await.unwrap();
    assert_eq!(started["protocol"], "saml");
    let secret = started["browser_secret"].as_str().unwrap().to_string();
    BROWSER_SECRETS.lock().unwrap().insert(app.address.clone(), secret);
    started["redirect_url"].as_str().unwrap().to_string()
}

/// The browser secret of each app's latest start: the one browser these tests drive keeps it.
static BROWSER_SECRETS: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

/// The whole browser round: start (by email), the IdP, the ACS.
async fn sign_in(app: &TestApp, idp: &SamlIdp, email: &str, misbehave: &[&str]) -> (IdpPost, AcsAnswer) {
    let redirect_url = start(app, json!({"email": email})).await;
    assert!(redirect_url.starts_with(&format!("{}/sso/redirect?SAMLRequest=", idp.base)), "{redirect_url}");
    let post = idp.sign_in(&redirect_url, email, misbehave).await;
    let answer = post_to_acs(app, &post).await;
    (post, answer)
}

/// Exchanges `code` with the browser secret of the app's latest start.
async fn exchange(app: &TestApp, code: &str) -> reqwest::Response {
    let secret = BROWSER_SECRETS.lock().unwrap().get(&app.address).cloned().unwrap_or_default();
    let body = json!({"code": code, "browser_secret": secret});
    app.request(Method::POST, "/api/v1/auth/sso/exchange", None).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn sp_metadata_route_serves_the_connections_entity_and_acs() {
    let app = spawn_app().await;
    let idp = SamlIdp::start();
    let owner = app.new_owner("plus").await;
    let connection = connect(&app, &owner, &idp, false).await;
    let id = connection["id"].as_str().unwrap();
    let res = app.client.get(format!("{}/api/v1/sso/saml/{id}/metadata", app.address)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/samlmetadata+xml");
    let xml = res.text().await.unwrap();
    assert!(xml.contains(&format!(r#"entityID="{}""#, connection["saml"]["sp_entity_id"].as_str().unwrap())), "{xml}");
    assert!(xml.contains(&format!(r#"Location="{}""#, connection["saml"]["acs_url"].as_str().unwrap())), "{xml}");
    assert!(xml.contains(r#"WantAssertionsSigned="true""#) && xml.contains(r#"AuthnRequestsSigned="false""#));

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
    let acs = format!("{}/api/v1/sso/saml/{id}/acs", app.address);
    let res = app.client.post(&acs).form(&[("RelayState", "x")]).send().await.unwrap();
    let problem = assert_problem(res, 422).await;
    assert_eq!(problem["errors"][0]["field"], "SAMLResponse");
    let res = app.client.post(&acs).json(&json!({"SAMLResponse": "x"})).send().await.unwrap();
    assert_problem(res, 415).await;
    let big = "A".repeat(1024 * 1024 + 10);
    let res = app.client.post(&acs).form(&[("SAMLResponse", big.as_str())]).send().await.unwrap();
    assert_problem(res, 413).await;
    // Not base64, not a response: refused back to the frontend, not a server error.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = browser.post(&acs).form(&[("SAMLResponse", "%%%")]).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(res.headers()["location"].to_str().unwrap().contains("error=invalid-response"));
}

/// The whole flow: start by email, the IdP's sign-in, the ACS, the code exchanged for the same
/// token answer as a password sign-in, for the connection's tenant; a newcomer just in time.
#[tokio::test]
async fn a_member_and_a_newcomer_sign_in_through_the_idp_and_exchange_the_code() {
    let (app, _dns, idp, owner) = corp_with_idp().await;
    let member =
        app.add_member(&owner, json!({"email": "ann@corp.example", "full_name": "Ann Lee", "role": "operator"})).await;

    let (_, answer) = sign_in(&app, &idp, "ann@corp.example", &[]).await;
    let location = answer.location.clone().unwrap();
    assert!(location.starts_with(&format!("{}/sso/callback?code=", app_url(&app))), "{location}");
    let res = exchange(&app, &answer.code()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(tokens["tenant_id"], owner.tenant_id.as_str());
    let me: Value = app.get("/api/v1/me", tokens["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["id"], member.as_str(), "{me}");
    // The code works once.
    assert_problem(exchange(&app, &answer.code()).await, 401).await;

    // Signed the other way round (the response signed, not the assertion): the same.
    let (_, answer) = sign_in(&app, &idp, "ann@corp.example", &["sign-response"]).await;
    assert_eq!(exchange(&app, &answer.code()).await.status(), StatusCode::OK);

    // A newcomer of the verified domain becomes a viewer just in time.
    let before = app.member_count(&owner).await;
    let (_, answer) = sign_in(&app, &idp, "new.person@corp.example", &[]).await;
    assert_eq!(exchange(&app, &answer.code()).await.status(), StatusCode::OK);
    assert_eq!(app.member_count(&owner).await, before + 1);
}

/// A tenant that verified corp.example, with a SAML connection (just in time on) to its IdP.
async fn corp_with_idp() -> (TestApp, DnsServer, SamlIdp, Persona) {
    let (app, dns) = spawn_with_dns().await;
    let idp = SamlIdp::start();
    let owner = app.new_owner("plus").await;
    verify_domain(&app, &dns, &owner, "corp.example").await;
    connect(&app, &owner, &idp, true).await;
    (app, dns, idp, owner)
}

/// The IdP's answer, for `login`, to an AuthnRequest with `request_id` made as if by
/// `connection_id`, but never through Roster's start route.
async fn answer_outside_roster(idp: &SamlIdp, connection_id: &str, request_id: &str, login: &str) -> IdpPost {
    let url = saml::authn_request_url(
        &format!("{}/sso/redirect", idp.base),
        &saml::sp_entity_id(PUBLIC_URL, connection_id),
        &saml::acs_url(PUBLIC_URL, connection_id),
        request_id,
        Utc::now(),
    )
    .unwrap();
    idp.sign_in(&url, login, &[]).await
}

/// `ROSTER_APP_URL` in the tests' configuration (tests/api/helpers.rs).
fn app_url(_app: &TestApp) -> &'static str {
    "http://app.roster.test"
}

/// Every refusal the issue names, end to end: what the browser is told, and that no code was
/// given.
#[tokio::test]
async fn refusals_through_the_acs_give_no_code() {
    let (app, _dns, idp, owner) = corp_with_idp().await;

    for (misbehave, reason) in [
        ("expired", "expired"),
        ("unsigned", "unsigned"),
        ("wrong-audience", "wrong-audience"),
        ("wrong-in-response-to", "unsolicited"),
    ] {
        let (_, answer) = sign_in(&app, &idp, "ann@corp.example", &[misbehave]).await;
        assert_eq!(answer.error(), reason, "{misbehave}: {:?}", answer.param("error_description"));
        assert!(answer.param("code").is_none());
    }

    // Replayed: the same response posted twice.
    let (post, answer) = sign_in(&app, &idp, "ann@corp.example", &[]).await;
    answer.code();
    assert_eq!(post_to_acs(&app, &post).await.error(), "replayed-assertion");

    // Wrapped: a second, unsigned assertion for someone else beside the signed one.
    let (post, _) = {
        let redirect_url = start(&app, json!({"email": "ann@corp.example"})).await;
        let post = idp.sign_in(&redirect_url, "ann@corp.example", &[]).await;
        (post, ())
    };
    let xml = post.xml();
    let (s, e) = only_span(&xml, "Assertion");
    let evil = forged(&xml[s..e], &assertion_id(&xml[s..e]), "_evil");
    let wrapped = format!("{}{evil}{}", &xml[..s], &xml[s..]);
    assert_eq!(post_to_acs(&app, &post.with_xml(&wrapped)).await.error(), "invalid-response");
    // ... and the untouched response still signs Ann in: the request was not used up.
    post_to_acs(&app, &post).await.code();

    // A response to a request never made: the IdP's answer to another SP's request id.
    let id = format!("_{}", uuid::Uuid::now_v7().simple());
    let connection_id = app
        .get(&format!("/api/v1/tenants/{}/sso/connections", owner.tenant_id), &owner.token)
        .await
        .json::<Value>()
        .await
        .unwrap()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let post = answer_outside_roster(&idp, &connection_id, &id, "ann@corp.example").await;
    assert_eq!(post_to_acs(&app, &post).await.error(), "unsolicited");

    // An email outside the tenant's verified domains.
    let idp_post = {
        let redirect_url = start(&app, json!({"email": "ann@corp.example"})).await;
        idp.sign_in(&redirect_url, "eve@elsewhere.example", &[]).await
    };
    let answer = post_to_acs(&app, &idp_post).await;
    assert_eq!(answer.error(), "email-outside-verified-domains");
    // A connection turned off while the browser was at the IdP.
    let redirect_url = start(&app, json!({"email": "ann@corp.example"})).await;
    let post = idp.sign_in(&redirect_url, "ann@corp.example", &[]).await;
    app.execute_sql(&format!("UPDATE sso_connections SET enabled = false WHERE tenant_id = '{}'", owner.tenant_id));
    assert_eq!(post_to_acs(&app, &post).await.error(), "connection-disabled");
}

/// A request made for one connection cannot be answered through another: tenant B's IdP
/// answers (correctly signed, for B's ACS) the request id Roster made for tenant A's connection.
#[tokio::test]
async fn a_request_is_answered_only_through_the_connection_that_made_it() {
    let (app, dns) = spawn_with_dns().await;
    let (idp_a, idp_b) = (SamlIdp::start(), SamlIdp::start());
    let a = app.new_owner("plus").await;
    let b = app.new_owner("plus").await;
    verify_domain(&app, &dns, &a, "corp.example").await;
    verify_domain(&app, &dns, &b, "other.example").await;
    connect(&app, &a, &idp_a, true).await;
    let connection_b = connect(&app, &b, &idp_b, true).await;
    let redirect_url = start(&app, json!({"email": "ann@corp.example"})).await;
    let request_id = form_urlencoded::parse(redirect_url.split_once('?').unwrap().1.as_bytes())
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .expect("RelayState carries the request id");
    let b_id = connection_b["id"].as_str().unwrap();
    let post = answer_outside_roster(&idp_b, b_id, &request_id, "bo@other.example").await;
    assert_eq!(post_to_acs(&app, &post).await.error(), "unsolicited");
    // The same IdP and person, through B's own request: signed in.
    let redirect_url = start(&app, json!({"email": "bo@other.example"})).await;
    let post = idp_b.sign_in(&redirect_url, "bo@other.example", &[]).await;
    post_to_acs(&app, &post).await.code();
}

/// Tenant A's IdP asserts the email of a member of tenant B (B verified that domain): refused,
/// and nothing in B signs in.
#[tokio::test]
async fn an_idp_of_one_tenant_cannot_sign_in_another_tenants_member() {
    let (app, dns) = spawn_with_dns().await;
    let idp_a = SamlIdp::start();
    let a = app.new_owner("plus").await;
    let b = app.new_owner("plus").await;
    verify_domain(&app, &dns, &a, "corp.example").await;
    verify_domain(&app, &dns, &b, "other.example").await;
    connect(&app, &a, &idp_a, true).await;
    app.add_member(&b, json!({"email": "bob@other.example", "full_name": "Bob Roe", "role": "operator"})).await;

    let redirect_url = start(&app, json!({"email": "someone@corp.example"})).await;
    let post = idp_a.sign_in(&redirect_url, "bob@other.example", &[]).await;
    let answer = post_to_acs(&app, &post).await;
    assert_eq!(answer.error(), "email-outside-verified-domains");
    assert!(answer.param("code").is_none());
    assert_eq!(app.member_count(&a).await, 1, "nobody joined A");
    // B's member did not come by a session either: B has no SSO connection to have used.
    let refusals = app.audit_events(&a, "sso.*").await;
    assert!(refusals.iter().any(|e| e.to_string().contains("email-outside-verified-domains")), "{refusals:?}");
}
