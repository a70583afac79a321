//! SAML 2.0, Roster as the service provider: reads an IdP's metadata, writes Roster's SP
//! metadata for a connection, starts a sign-in with an HTTP-Redirect `AuthnRequest`, and checks
//! the HTTP-POST `Response` the browser brings back to the ACS.
//!
//! Signatures are verified by `samael` over libxmlsec1, never here: it checks every signature
//! in the document against the IdP's certificates (allowed algorithms only) and hands back
//! xmlsec's pre-digest output, the exact bytes that were hashed. Everything Roster believes
//! (issuer, audience, recipient, times, `InResponseTo`, the email) is read from those bytes,
//! so XML outside the signed element can only make a response fail, never feed it data: no
//! signature wrapping. A document with more than one assertion is refused outright.
//!
//! This module never decides who signs in: it ends in an [`Asserted`] or a [`Refused`], and
//! `api::sso::finish` does the rest.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use roxmltree::{Document, Node};
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, Crypto, CryptoProvider, ReduceMode};

use crate::error::ApiError;
use crate::sso::{Asserted, PROTOCOL_SAML, Refused};
use crate::state::AppState;
use crate::store::sso::{ConnectionRow, PendingRequest};

const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
const NAMEID_EMAIL: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const CONFIRMATION_BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// How far the IdP's clock may be from ours, either way.
pub const CLOCK_SKEW_SECS: i64 = 120;

/// Signature algorithms accepted (SHA-1 and MD5 are not).
const ALLOWED_ALGORITHMS: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

/// Attribute names that carry the email, the given and family names and a display name, as
/// the common IdPs send them (LDAP names, their OIDs, the WS-Federation claim URIs, Okta's).
const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "emailAddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];
const GIVEN_NAME_ATTRIBUTES: &[&str] = &[
    "givenName",
    "given_name",
    "firstName",
    "urn:oid:2.5.4.42",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
];
const FAMILY_NAME_ATTRIBUTES: &[&str] = &[
    "sn",
    "surname",
    "family_name",
    "lastName",
    "urn:oid:2.5.4.4",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
];
const NAME_ATTRIBUTES: &[&str] = &[
    "displayName",
    "name",
    "cn",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.microsoft.com/identity/claims/displayname",
];

/// What Roster needs of an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// The SingleSignOnService location for the HTTP-Redirect binding.
    pub sso_url: String,
    /// The signing certificates (DER), at least one.
    pub signing_certs: Vec<Vec<u8>>,
}

/// Reads an IdP's `EntityDescriptor` (alone, or the one in an `EntitiesDescriptor` that has an
/// `IDPSSODescriptor`). The message says what is missing.
pub fn read_metadata(xml: &str) -> Result<IdpMetadata, String> {
    let doc = Document::parse(xml).map_err(|e| format!("the IdP metadata is not well-formed XML: {e}"))?;
    let root = doc.root_element();
    let entity = if is(root, NS_MD, "EntityDescriptor") {
        root
    } else if is(root, NS_MD, "EntitiesDescriptor") {
        let with_idp: Vec<Node> = root
            .descendants()
            .filter(|n| is(*n, NS_MD, "EntityDescriptor") && child(*n, NS_MD, "IDPSSODescriptor").is_some())
            .collect();
        match with_idp.as_slice() {
            [one] => *one,
            [] => return Err("the metadata has no EntityDescriptor with an IDPSSODescriptor".into()),
            _ => return Err("the metadata describes several identity providers; paste the one to use".into()),
        }
    } else {
        return Err("the metadata's root is not an md:EntityDescriptor (SAML 2.0 metadata namespace)".into());
    };
    let entity_id = entity
        .attribute("entityID")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or("the EntityDescriptor has no entityID")?
        .to_string();
    let idp = child(entity, NS_MD, "IDPSSODescriptor").ok_or("the EntityDescriptor has no IDPSSODescriptor")?;
    if !idp.attribute("protocolSupportEnumeration").is_some_and(|p| p.split_whitespace().any(|p| p == NS_SAMLP)) {
        return Err("the IDPSSODescriptor does not list the SAML 2.0 protocol in protocolSupportEnumeration".into());
    }
    let sso_url = children(idp, NS_MD, "SingleSignOnService")
        .find(|s| s.attribute("Binding") == Some(BINDING_REDIRECT))
        .and_then(|s| s.attribute("Location"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or("the IDPSSODescriptor has no SingleSignOnService with the HTTP-Redirect binding")?;
    let sso_url = url_ok(sso_url).map_err(|e| format!("the HTTP-Redirect SingleSignOnService {e}"))?;
    let mut signing_certs = Vec::new();
    for key in children(idp, NS_MD, "KeyDescriptor") {
        // `use` absent means the key serves both signing and encryption.
        if key.attribute("use").is_some_and(|u| u != "signing") {
            continue;
        }
        for cert in key.descendants().filter(|n| is(*n, NS_DS, "X509Certificate")) {
            let text: String = cert.text().unwrap_or_default().chars().filter(|c| !c.is_whitespace()).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|_| "an X509Certificate of the IDPSSODescriptor is not base64".to_string())?;
            signing_certs.push(der);
        }
    }
    if signing_certs.is_empty() {
        return Err("the IDPSSODescriptor has no signing certificate (KeyDescriptor with an X509Certificate)".into());
    }
    Ok(IdpMetadata { entity_id, sso_url, signing_certs })
}

fn url_ok(raw: &str) -> Result<String, String> {
    let lower = raw.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://")) {
        return Err(format!("location {raw:?} is not an http(s) URL"));
    }
    Ok(raw.to_string())
}

/// Roster's SP entity id for a connection: the URL of its metadata document.
pub fn sp_entity_id(public_url: &str, connection_id: &str) -> String {
    format!("{}/api/v1/sso/saml/{connection_id}/metadata", public_url.trim_end_matches('/'))
}

/// Roster's assertion consumer service for a connection.
pub fn acs_url(public_url: &str, connection_id: &str) -> String {
    format!("{}/api/v1/sso/saml/{connection_id}/acs", public_url.trim_end_matches('/'))
}

/// Roster's SP metadata for one connection: requests unsigned, assertions wanted signed, email
/// NameIDs, the ACS with the HTTP-POST binding.
pub fn sp_metadata(sp_entity_id: &str, acs_url: &str) -> String {
    let esc = xml_escape;
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<md:EntityDescriptor xmlns:md="{NS_MD}" entityID="{entity}">
  <md:SPSSODescriptor AuthnRequestsSigned="false" WantAssertionsSigned="true" protocolSupportEnumeration="{NS_SAMLP}">
    <md:NameIDFormat>{NAMEID_EMAIL}</md:NameIDFormat>
    <md:AssertionConsumerService Binding="{BINDING_POST}" Location="{acs}" index="0" isDefault="true"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"#,
        entity = esc(sp_entity_id),
        acs = esc(acs_url),
    )
}

fn xml_escape(raw: &str) -> String {
    raw.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}

/// The IdP URL a browser is sent to with an `AuthnRequest` (HTTP-Redirect binding: deflated,
/// base64, in `SAMLRequest`; `RelayState` carries the request id back).
pub fn authn_request_url(
    idp_sso_url: &str,
    sp_entity_id: &str,
    acs_url: &str,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<String, String> {
    use samael::schema::{AuthnRequest, Issuer, NameIdPolicy};
    let request = AuthnRequest {
        id: request_id.to_string(),
        version: "2.0".into(),
        issue_instant: now,
        destination: Some(idp_sso_url.to_string()),
        issuer: Some(Issuer { value: Some(sp_entity_id.to_string()), ..Issuer::default() }),
        name_id_policy: Some(NameIdPolicy {
            format: Some(NAMEID_EMAIL.to_string()),
            allow_create: Some(true),
            ..NameIdPolicy::default()
        }),
        assertion_consumer_service_url: Some(acs_url.to_string()),
        protocol_binding: Some(BINDING_POST.to_string()),
        ..AuthnRequest::default()
    };
    match request.redirect(request_id) {
        Ok(Some(url)) => Ok(url.to_string()),
        Ok(None) => Err("the AuthnRequest has no destination".into()),
        Err(e) => Err(format!("AuthnRequest: {e}")),
    }
}

/// Starts a sign-in on a SAML connection: records the pending request (its id is the
/// `AuthnRequest`'s `ID`, which the response's `InResponseTo` must name) and answers the IdP
/// URL to send the browser to.
pub async fn begin(state: &AppState, connection: &ConnectionRow, binding: &str) -> Result<String, ApiError> {
    let settings = connection.saml_settings()?;
    let public_url = &state.config.public_url;
    let id = format!("_{}", uuid::Uuid::now_v7().simple());
    let url = authn_request_url(
        &settings.idp_sso_url,
        &sp_entity_id(public_url, &connection.id),
        &acs_url(public_url, &connection.id),
        &id,
        Utc::now(),
    )
    .map_err(ApiError::internal)?;
    let pending = PendingRequest {
        id,
        tenant_id: connection.tenant_id.clone(),
        connection_id: connection.id.clone(),
        protocol: PROTOCOL_SAML.to_string(),
        nonce: None,
        verifier: None,
        binding: binding.to_string(),
    };
    let master = state.master.clone();
    crate::db::run_write(&state.pool, move |conn| crate::store::sso::save_request(conn, &master, &pending)).await?;
    Ok(url)
}

/// What a response is checked against.
#[derive(Debug, Clone)]
pub struct Expected {
    pub idp_entity_id: String,
    pub idp_certs: Vec<Vec<u8>>,
    pub sp_entity_id: String,
    pub acs_url: String,
}

/// A response whose signature and contents passed: what is left to check against the
/// database (the request it answers, the assertion id's first use).
#[derive(Debug, Clone)]
pub struct CheckedResponse {
    pub in_response_to: String,
    pub assertion_id: String,
    /// The earliest `NotOnOrAfter` (plus the skew): the assertion id is remembered until then.
    pub usable_until: DateTime<Utc>,
    pub asserted: Asserted,
}

/// Checks the ACS's `SAMLResponse` (base64 of the XML; the signed parts read only from what
/// xmlsec verified). Pure apart from libxmlsec1: no database, no clock but `now`.
pub fn check_response(
    saml_response: &str,
    expected: &Expected,
    now: DateTime<Utc>,
) -> Result<CheckedResponse, Refused> {
    let invalid = |detail: &str| Refused::new("invalid-response", detail.to_string());
    let compact: String = saml_response.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| invalid("SAMLResponse is not base64"))?;
    let xml = String::from_utf8(bytes).map_err(|_| invalid("SAMLResponse is not UTF-8 XML"))?;
    let raw = Document::parse(&xml).map_err(|e| invalid(&format!("SAMLResponse is not well-formed XML: {e}")))?;
    let raw_response = raw.root_element();
    if !is(raw_response, NS_SAMLP, "Response") {
        return Err(invalid("the document is not a samlp:Response"));
    }
    // The status is read before the signature: an IdP's error answer is usually unsigned.
    let status = raw_response
        .children()
        .find(|n| is(*n, NS_SAMLP, "Status"))
        .and_then(|s| child(s, NS_SAMLP, "StatusCode"))
        .and_then(|c| c.attribute("Value"));
    if status != Some(STATUS_SUCCESS) {
        let message =
            raw_response.descendants().find(|n| is(*n, NS_SAMLP, "StatusMessage")).and_then(|m| m.text()).unwrap_or("");
        return Err(Refused::new(
            "idp-error",
            format!("the identity provider answered {}{}", status.unwrap_or("no status"), suffix(message)),
        ));
    }
    let raw_assertions: Vec<Node> = raw.descendants().filter(|n| is(*n, NS_SAML, "Assertion")).collect();
    if raw.descendants().any(|n| is(n, NS_SAML, "EncryptedAssertion")) {
        return Err(invalid("encrypted assertions are not supported: turn assertion encryption off at the IdP"));
    }
    let raw_assertion = match raw_assertions.as_slice() {
        [one] => *one,
        [] => return Err(invalid("the response has no assertion")),
        _ => return Err(invalid("the response holds more than one assertion")),
    };
    if !raw.descendants().any(|n| is(n, NS_DS, "Signature")) {
        return Err(Refused::new("unsigned", "neither the response nor the assertion is signed"));
    }
    let certs: Vec<CertificateDer> = expected.idp_certs.iter().cloned().map(CertificateDer::from).collect();
    let signed_xml = Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &xml,
        &certs,
        ReduceMode::PreDigest,
        Some(ALLOWED_ALGORITHMS),
    )
    .map_err(|_| {
        Refused::new(
            "bad-signature",
            "a signature does not verify with the IdP's certificate from its metadata (or uses a weak algorithm)",
        )
    })?;
    let signed = Document::parse(&signed_xml).map_err(|_| invalid("the signed element is not well-formed XML"))?;
    let signed_root = signed.root_element();
    // The response element the envelope checks read: the signed one when the response is signed.
    let (response, assertion, response_signed) = if is(signed_root, NS_SAMLP, "Response") {
        let assertions: Vec<Node> = signed_root.children().filter(|n| is(*n, NS_SAML, "Assertion")).collect();
        match assertions.as_slice() {
            [one] => (signed_root, *one, true),
            _ => return Err(invalid("the signed response does not hold exactly one assertion")),
        }
    } else if is(signed_root, NS_SAML, "Assertion") {
        (raw_response, signed_root, false)
    } else {
        return Err(Refused::new("unsigned", "the signature covers neither the response nor its assertion"));
    };
    let assertion_id =
        assertion.attribute("ID").filter(|v| !v.is_empty()).ok_or_else(|| invalid("the assertion has no ID"))?;
    if raw_assertion.attribute("ID") != Some(assertion_id) {
        return Err(Refused::new("unsigned", "the assertion in the response is not the one that is signed"));
    }

    // The envelope.
    match response.attribute("Destination") {
        Some(d) if d == expected.acs_url => {}
        Some(d) => {
            return Err(Refused::new(
                "wrong-destination",
                format!("the response is for {d}, not {}", expected.acs_url),
            ));
        }
        None if response_signed => {
            return Err(Refused::new("wrong-destination", "the signed response names no Destination"));
        }
        None => {}
    }
    if let Some(issuer) = child(response, NS_SAML, "Issuer").and_then(|i| i.text())
        && issuer.trim() != expected.idp_entity_id
    {
        return Err(Refused::new(
            "wrong-issuer",
            format!("the response is issued by {}, not {}", issuer.trim(), expected.idp_entity_id),
        ));
    }

    // The assertion, from the signed bytes only.
    let issuer = child(assertion, NS_SAML, "Issuer").and_then(|i| i.text()).map(str::trim).unwrap_or("");
    if issuer != expected.idp_entity_id {
        return Err(Refused::new(
            "wrong-issuer",
            format!("the assertion is issued by {issuer:?}, not {}", expected.idp_entity_id),
        ));
    }
    let skew = Duration::seconds(CLOCK_SKEW_SECS);
    let conditions =
        child(assertion, NS_SAML, "Conditions").ok_or_else(|| invalid("the assertion has no Conditions"))?;
    let mut usable_until: Option<DateTime<Utc>> = None;
    window(conditions, now, skew, "the assertion's Conditions", &mut usable_until)?;
    let restrictions: Vec<Node> = children(conditions, NS_SAML, "AudienceRestriction").collect();
    if restrictions.is_empty() {
        return Err(Refused::new("wrong-audience", "the assertion names no audience"));
    }
    for restriction in restrictions {
        let audiences: Vec<&str> =
            children(restriction, NS_SAML, "Audience").filter_map(|a| a.text()).map(str::trim).collect();
        if !audiences.contains(&expected.sp_entity_id.as_str()) {
            return Err(Refused::new(
                "wrong-audience",
                format!("the assertion is meant for {}, not {}", audiences.join(", "), expected.sp_entity_id),
            ));
        }
    }
    let subject = child(assertion, NS_SAML, "Subject").ok_or_else(|| invalid("the assertion has no Subject"))?;
    let in_response_to = bearer_confirmation(subject, expected, now, skew, &mut usable_until)?;
    if let Some(outer) = response.attribute("InResponseTo")
        && outer != in_response_to
    {
        return Err(Refused::new("unsolicited", "the response and its assertion answer different requests"));
    }
    let usable_until = usable_until.ok_or_else(|| invalid("the assertion has no NotOnOrAfter"))?;

    // The person.
    let name_id = child(subject, NS_SAML, "NameID");
    let name_id_text = name_id.and_then(|n| n.text()).map(str::trim).filter(|t| !t.is_empty());
    let attributes = Attributes::of(assertion);
    let email = match (name_id.and_then(|n| n.attribute("Format")), name_id_text) {
        (Some(NAMEID_EMAIL), Some(text)) => Some(text.to_string()),
        _ => attributes.first(EMAIL_ATTRIBUTES),
    };
    let email = email
        .filter(|e| crate::sso::email_domain(e).is_some() && !e.chars().any(char::is_whitespace))
        .ok_or_else(|| {
            Refused::new(
                "no-email",
                "the assertion carries no email address (an emailAddress NameID or an email/mail attribute)",
            )
        })?;
    let asserted = Asserted {
        subject: name_id_text.map(str::to_string).unwrap_or_else(|| email.clone()),
        email,
        given_name: attributes.first(GIVEN_NAME_ATTRIBUTES),
        family_name: attributes.first(FAMILY_NAME_ATTRIBUTES),
        name: attributes.first(NAME_ATTRIBUTES),
    };
    Ok(CheckedResponse { in_response_to, assertion_id: assertion_id.to_string(), usable_until, asserted })
}

fn suffix(message: &str) -> String {
    let message = message.trim();
    if message.is_empty() { String::new() } else { format!(": {message}") }
}

/// `NotBefore` / `NotOnOrAfter` of an element against `now`, with the skew; the earliest end
/// seen is kept in `until`.
fn window(
    node: Node,
    now: DateTime<Utc>,
    skew: Duration,
    what: &str,
    until: &mut Option<DateTime<Utc>>,
) -> Result<(), Refused> {
    if let Some(raw) = node.attribute("NotBefore") {
        let at = time(raw, what)?;
        if now + skew < at {
            return Err(Refused::new("not-yet-valid", format!("{what} start at {raw}")));
        }
    }
    if let Some(raw) = node.attribute("NotOnOrAfter") {
        let at = time(raw, what)?;
        if now - skew >= at {
            return Err(Refused::new("expired", format!("{what} ended at {raw}")));
        }
        let end = at + skew;
        *until = Some(until.map_or(end, |u| u.min(end)));
    }
    Ok(())
}

fn time(raw: &str, what: &str) -> Result<DateTime<Utc>, Refused> {
    DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Refused::new("invalid-response", format!("{what} have a time that is not xs:dateTime: {raw:?}")))
}

/// The bearer `SubjectConfirmation` whose data fits (recipient = the ACS, within its window,
/// answering a request): its `InResponseTo`. With none, the first reason one failed.
fn bearer_confirmation(
    subject: Node,
    expected: &Expected,
    now: DateTime<Utc>,
    skew: Duration,
    until: &mut Option<DateTime<Utc>>,
) -> Result<String, Refused> {
    let mut first_error = None;
    for confirmation in children(subject, NS_SAML, "SubjectConfirmation") {
        if confirmation.attribute("Method") != Some(CONFIRMATION_BEARER) {
            continue;
        }
        let attempt = (|| {
            let data = child(confirmation, NS_SAML, "SubjectConfirmationData")
                .ok_or_else(|| Refused::new("invalid-response", "the bearer confirmation has no data"))?;
            match data.attribute("Recipient") {
                Some(r) if r == expected.acs_url => {}
                other => {
                    return Err(Refused::new(
                        "wrong-recipient",
                        format!("the assertion's Recipient is {:?}, not {}", other.unwrap_or(""), expected.acs_url),
                    ));
                }
            }
            if data.attribute("NotOnOrAfter").is_none() {
                return Err(Refused::new("invalid-response", "the bearer confirmation has no NotOnOrAfter"));
            }
            let mut end = *until;
            window(data, now, skew, "the assertion's SubjectConfirmationData", &mut end)?;
            let in_response_to = data.attribute("InResponseTo").filter(|v| !v.is_empty()).ok_or_else(|| {
                Refused::new("unsolicited", "the assertion answers no request (IdP-initiated sign-in is not accepted)")
            })?;
            Ok((in_response_to.to_string(), end))
        })();
        match attempt {
            Ok((in_response_to, end)) => {
                *until = end;
                return Ok(in_response_to);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error
        .unwrap_or_else(|| Refused::new("invalid-response", "the assertion has no bearer SubjectConfirmation")))
}

/// An assertion's attributes by name (and FriendlyName).
struct Attributes(Vec<(String, Option<String>, String)>);

impl Attributes {
    fn of(assertion: Node) -> Self {
        let mut all = Vec::new();
        for statement in children(assertion, NS_SAML, "AttributeStatement") {
            for attribute in children(statement, NS_SAML, "Attribute") {
                let name = attribute.attribute("Name").unwrap_or("").to_string();
                let friendly = attribute.attribute("FriendlyName").map(str::to_string);
                if let Some(value) = children(attribute, NS_SAML, "AttributeValue")
                    .filter_map(|v| v.text())
                    .map(str::trim)
                    .find(|v| !v.is_empty())
                {
                    all.push((name, friendly, value.to_string()));
                }
            }
        }
        Self(all)
    }

    fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|wanted| {
            self.0
                .iter()
                .find(|(name, friendly, _)| name == wanted || friendly.as_deref() == Some(wanted))
                .map(|(_, _, value)| value.clone())
        })
    }
}

fn is(node: Node, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| is(*n, ns, name))
}

fn children<'a, 'i: 'a>(node: Node<'a, 'i>, ns: &'a str, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children().filter(move |n| is(*n, ns, name))
}

/// The ACS's whole check for a connection: the response itself ([`check_response`], on the
/// blocking pool: xmlsec is CPU work), then the assertion id's first use and the request it
/// answers, taken once and only when this connection made it. `Err` is a server failure
/// (database); `Ok(Err)` a refusal.
pub async fn complete(
    state: &AppState,
    connection: &ConnectionRow,
    saml_response: String,
) -> Result<Result<(Asserted, PendingRequest), Refused>, ApiError> {
    let settings = connection.saml_settings()?;
    let metadata = read_metadata(&settings.idp_metadata_xml)
        .map_err(|e| ApiError::internal(format!("stored IdP metadata of connection {}: {e}", connection.id)))?;
    let public_url = &state.config.public_url;
    let expected = Expected {
        idp_entity_id: settings.idp_entity_id.clone(),
        idp_certs: metadata.signing_certs,
        sp_entity_id: sp_entity_id(public_url, &connection.id),
        acs_url: acs_url(public_url, &connection.id),
    };
    let checked = actix_web::web::block(move || check_response(&saml_response, &expected, Utc::now()))
        .await
        .map_err(|e| ApiError::internal(format!("SAML check: {e}")))?;
    let checked = match checked {
        Ok(c) => c,
        Err(refused) => return Ok(Err(refused)),
    };
    let (tenant, id) = (connection.tenant_id.clone(), connection.id.clone());
    let master = state.master.clone();
    let outcome = crate::db::run_write(&state.pool, move |conn| {
        let until = crate::domain::now().max(checked.usable_until.naive_utc());
        if !crate::store::sso::first_use_of_assertion(conn, &tenant, &id, &checked.assertion_id, until)? {
            return Ok(Err(Refused::new("replayed-assertion", "this assertion was already used to sign in")));
        }
        let request = crate::store::sso::take_request(conn, &master, &checked.in_response_to)?;
        match request {
            Some(r) if r.connection_id == id && r.tenant_id == tenant && r.protocol == PROTOCOL_SAML => {
                Ok(Ok((checked.asserted, r)))
            }
            _ => Ok(Err(Refused::new(
                "unsolicited",
                "the response answers no sign-in this server started for this connection (or it expired or was used)",
            ))),
        }
    })
    .await?;
    Ok(outcome)
}
