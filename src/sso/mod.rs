//! Single sign-on (DESIGN.md section 13): what both protocols share. `oidc` and `saml` each
//! start a sign-in (the URL to send the browser to) and check what the identity provider sends
//! back, ending in an [`Asserted`] person or a [`Refused`]; `dns` looks up a domain's
//! challenge record. What happens next (the email's domain against the tenant's verified ones,
//! the member, just-in-time creation, the one-minute code) is the same for both:
//! `api::sso::finish`.

pub mod dns;
pub mod http;
pub mod oidc;
pub mod saml;

use serde::{Deserialize, Serialize};

/// The protocols a connection speaks (`sso_connections.protocol`).
pub const PROTOCOL_OIDC: &str = "oidc";
pub const PROTOCOL_SAML: &str = "saml";

/// How long a browser may take at the identity provider (a pending sign-in's life).
pub const REQUEST_TTL_SECS: i64 = 600;
/// How long the code handed to the frontend is good for.
pub const CODE_TTL_SECS: i64 = 60;

/// What an identity provider asserted about the person, once every check of its answer passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asserted {
    /// The IdP's stable id for the person (OIDC `sub`, SAML `NameID`).
    pub subject: String,
    /// The email address, as asserted (checked against the verified domains later).
    pub email: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// A full display name when the IdP sends one.
    pub name: Option<String>,
}

/// Why an identity provider's answer (or the browser's return) was refused: `reason` is a
/// short kebab-case code the frontend gets as `error`, `detail` says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub reason: &'static str,
    pub detail: String,
}

impl Refused {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// An OIDC connection's settings as stored (`sso_connections.settings`); the client secret is
/// sealed apart (`sealed_secret`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    /// Always includes `openid` and `email`.
    pub scopes: Vec<String>,
}

/// A SAML connection's settings as stored: the IdP's metadata document as given (or as read
/// from its URL), and what was read from it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SamlSettings {
    pub idp_metadata_xml: String,
    /// Where the metadata came from, when it was given as a URL.
    pub idp_metadata_url: Option<String>,
    pub idp_entity_id: String,
    /// The IdP's SingleSignOnService for the HTTP-Redirect binding.
    pub idp_sso_url: String,
}

/// A new browser secret for `POST /auth/sso/start`'s answer, and the digest kept with the
/// pending sign-in: the code the sign-in ends in exchanges only together with the secret, so a
/// callback URL sent to someone else's browser signs nobody in (login CSRF).
pub fn browser_binding() -> (secrecy::SecretString, String) {
    let secret = crate::domain::password::generate_secret();
    let digest = crate::domain::password::digest_generated(&secret);
    (secret, digest)
}

/// The lower-case domain of an email address (`Ann@Example.COM` -> `example.com`).
pub fn email_domain(email: &str) -> Option<String> {
    let (_, domain) = email.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    (!domain.is_empty()).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_domain_is_lower_case_and_needs_an_at() {
        assert_eq!(email_domain("Ann@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(email_domain("a@b@c.example").as_deref(), Some("c.example"));
        assert_eq!(email_domain("no-at-sign"), None);
        assert_eq!(email_domain("a@"), None);
    }
}
