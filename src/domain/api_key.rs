//! API key kinds and secrets. A secret is `rk_<kind>_` followed by 32 random bytes from the OS
//! source in unpadded base64url (43 characters, 256 bits): `rk_` says it is a Roster key (not a
//! JWT), the kind says what it may reach, so secret scanners and people can tell them apart.
//! Only its SHA-256 digest is stored; the first [`PREFIX_LEN`] characters are kept to show.

use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every key secret starts with this.
pub const SECRET_MARK: &str = "rk_";

/// How many leading characters of a secret the key's view shows (not enough to use it).
pub const PREFIX_LEN: usize = 12;

/// What a key may reach: `api` the REST API (as a member with its role and regions would),
/// `agent` only device enrolment, `scim` only SCIM provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Api,
    Agent,
    Scim,
}

impl KeyKind {
    pub const ALL: [KeyKind; 3] = [KeyKind::Api, KeyKind::Agent, KeyKind::Scim];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Api => "api",
            KeyKind::Agent => "agent",
            KeyKind::Scim => "scim",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A new secret for a key of `kind`, with the prefix to show and the digest to store.
pub struct NewSecret {
    pub secret: SecretString,
    pub prefix: String,
    pub digest: String,
}

pub fn generate(kind: KeyKind) -> NewSecret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret =
        format!("{SECRET_MARK}{}_{}", kind.as_str(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let prefix = secret.chars().take(PREFIX_LEN).collect();
    let digest = digest(&secret);
    NewSecret { secret: SecretString::from(secret), prefix, digest }
}

/// The stored form of a secret (`sha256:<hex>`), as for every generated secret.
pub fn digest(secret: &str) -> String {
    super::password::digest_generated(&SecretString::from(secret.to_string()))
}

/// The secret text, for the one answer that shows it.
pub fn reveal(secret: &SecretString) -> String {
    secret.expose_secret().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_marked_long_and_distinct() {
        let a = generate(KeyKind::Api);
        let b = generate(KeyKind::Scim);
        assert!(reveal(&a.secret).starts_with("rk_api_"));
        assert!(reveal(&b.secret).starts_with("rk_scim_"));
        assert_eq!(reveal(&a.secret).len(), "rk_api_".len() + 43);
        assert_eq!(a.prefix.len(), PREFIX_LEN);
        assert_eq!(a.digest, digest(&reveal(&a.secret)));
        assert_ne!(a.digest, generate(KeyKind::Api).digest);
    }
}
