//! Access tokens: EdDSA (Ed25519) JWTs with a key id, verified against our own key only.
//! The signing key is kept in the database (so every instance signs and verifies alike),
//! generated on first start when none exists.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use diesel::prelude::*;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::master_key::MasterKey;
use crate::db::{AnyConnection, schema::signing_keys::dsl as sk, write_tx};
use crate::domain::now;
use crate::error::ApiError;

/// How many verified tokens are remembered.
const VERIFIED_CACHE_SIZE: usize = 50_000;

/// Token purpose for a user who must change their password first.
pub const SCOPE_PASSWORD_CHANGE: &str = "password_change";

/// The claims of a Roster access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The tenant the token acts in; absent on an identity-only token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// The member's role in `tid` when issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The member's regions in `tid` when issued.
    #[serde(default)]
    pub regions: Vec<String>,
    /// Auth version: user's plus membership's; any change revokes older tokens.
    pub ver: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The sign-in session the token belongs to: ending the session ends the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// `password_change` on a token that may only change the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// One public key in JWKS form.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    pub kid: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
}

/// The JSON Web Key Set served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

pub struct TokenKeys {
    /// Tokens whose signature was already verified, by SHA-256 of the token: a signature check
    /// is deterministic, so a repeat skips it (expiry is still checked; revocation is checked
    /// against the database on every request regardless).
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], Claims>>,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
    issuer: String,
    validation: Validation,
}

/// PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410): a fixed prefix and the 32 bytes.
fn pkcs8_from_seed(seed: &[u8; 32]) -> Vec<u8> {
    let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    der.extend_from_slice(seed);
    der
}

impl TokenKeys {
    fn from_seed(kid: String, seed: [u8; 32], issuer: &str) -> Self {
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 5;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        validation.validate_aud = false;
        Self {
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
            kid,
            encoding: EncodingKey::from_ed_der(&pkcs8_from_seed(&seed)),
            decoding: DecodingKey::from_ed_der(&public),
            public_x: URL_SAFE_NO_PAD.encode(public),
            issuer: issuer.to_string(),
            validation,
        }
    }

    /// Loads the signing key from the database, creating it on first start. The key is stored
    /// sealed with the master key (bound to its key id); a key an older version stored in clear
    /// is sealed in place.
    pub fn load_or_create(conn: &mut AnyConnection, issuer: &str, master: &MasterKey) -> Result<Self, String> {
        let (kid, seed) = write_tx(conn, |conn| {
            let existing = sk::signing_keys
                .select((sk::kid, sk::private_key))
                .order(sk::created_at.desc())
                .first::<(String, String)>(conn)
                .optional()?;
            if let Some((kid, stored)) = existing {
                if MasterKey::is_sealed(&stored) {
                    let seed = master.open(&stored, &kid).map_err(ApiError::internal)?;
                    return Ok((kid, seed));
                }
                let seed =
                    STANDARD.decode(stored).map_err(|_| ApiError::internal("the stored signing key is malformed"))?;
                let sealed = master.seal(&seed, &kid).map_err(ApiError::internal)?;
                diesel::update(sk::signing_keys.filter(sk::kid.eq(&kid)))
                    .set(sk::private_key.eq(sealed))
                    .execute(conn)?;
                log::info!("sealed the signing key {kid} with the master key");
                return Ok((kid, seed));
            }
            let mut seed = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut seed);
            let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
            let kid = format!("ed25519-{}", &crate::domain::password::hex_lower(&public)[..16]);
            diesel::insert_into(sk::signing_keys)
                .values((
                    sk::kid.eq(&kid),
                    sk::private_key.eq(master.seal(&seed, &kid).map_err(ApiError::internal)?),
                    sk::public_key.eq(URL_SAFE_NO_PAD.encode(public)),
                    sk::created_at.eq(now()),
                ))
                .execute(conn)?;
            log::info!("generated a new Ed25519 signing key {kid}");
            Ok((kid, seed.to_vec()))
        })
        .map_err(|e| e.to_string())?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| "the stored signing key is malformed".to_string())?;
        Ok(Self::from_seed(kid, seed, issuer))
    }

    pub fn sign(&self, claims: &Claims) -> Result<String, ApiError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        #[derive(Serialize)]
        struct WithIssuer<'a> {
            iss: &'a str,
            #[serde(flatten)]
            claims: &'a Claims,
        }
        jsonwebtoken::encode(&header, &WithIssuer { iss: &self.issuer, claims }, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))
    }

    /// Verifies signature (EdDSA only, our key id only), expiry and issuer.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = chrono::Utc::now().timestamp();
        if let Some(claims) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&digest)
            && claims.exp > now
        {
            return Ok(claims.clone());
        }
        let claims = self.verify_signature(token)?;
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= VERIFIED_CACHE_SIZE {
            cache.retain(|_, c| c.exp > now);
            if cache.len() >= VERIFIED_CACHE_SIZE {
                cache.clear();
            }
        }
        cache.insert(digest, claims.clone());
        Ok(claims)
    }

    fn verify_signature(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::Unauthorized("the access token is malformed".into()))?;
        if header.alg != Algorithm::EdDSA || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(ApiError::Unauthorized("the access token was not signed by this service".into()));
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("the access token has expired; sign in again".into())
                }
                _ => ApiError::Unauthorized("the access token is invalid".into()),
            }
        })
    }

    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                x: self.public_x.clone(),
                kid: self.kid.clone(),
                key_use: "sig".into(),
                alg: "EdDSA".into(),
            }],
        }
    }
}
