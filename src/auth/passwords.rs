//! Password hashing: argon2id with OWASP parameters for anything a person typed, SHA-256 for
//! secrets the service generated. Hashing runs on the blocking pool, at most
//! `hash_concurrency` at once (each argon2 hash holds 19 MiB).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::domain::password::digest_generated;
use crate::error::ApiError;

#[derive(Clone)]
pub struct PasswordHashers {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
}

fn argon2() -> Argon2<'static> {
    // OWASP: 19 MiB, 2 iterations, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Argon2id PHC string for a typed password (synchronous; call through `PasswordHashers`).
pub fn hash_typed_sync(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::internal(format!("argon2: {e}")))
}

/// Checks a password against a stored hash of either kind, in constant time for the digest.
pub fn verify_sync(password: &str, stored: &str) -> bool {
    if let Some(hex) = stored.strip_prefix("sha256:") {
        let got = digest_generated(&SecretString::from(password.to_string()));
        return constant_time_eq(got.as_bytes(), format!("sha256:{hex}").as_bytes());
    }
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl PasswordHashers {
    pub fn new(concurrency: usize) -> Self {
        let dummy = hash_typed_sync("roster-dummy-password-for-timing").unwrap_or_default();
        Self { permits: Arc::new(Semaphore::new(concurrency.max(1))), dummy_hash: Arc::new(dummy) }
    }

    async fn bounded<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| ApiError::internal("hash semaphore closed"))?;
        actix_web::web::block(f).await.map_err(|e| ApiError::internal(format!("hash task: {e}")))
    }

    /// Argon2id hash of a typed password.
    pub async fn hash(&self, password: &SecretString) -> Result<String, ApiError> {
        let pw = password.expose_secret().to_string();
        self.bounded(move || hash_typed_sync(&pw)).await?
    }

    /// Verifies against `stored`; with no stored hash, verifies against a dummy so unknown
    /// accounts take as long as wrong passwords.
    pub async fn verify(&self, password: &SecretString, stored: Option<String>) -> Result<bool, ApiError> {
        let pw = password.expose_secret().to_string();
        match stored {
            Some(h) if h.starts_with("sha256:") => {
                // A digest check is instant; pay the argon2 price anyway so response time
                // says nothing about which kind of password an account has.
                let ok = verify_sync(&pw, &h);
                let dummy = self.dummy_hash.clone();
                self.bounded(move || verify_sync("", &dummy)).await?;
                Ok(ok)
            }
            Some(h) => self.bounded(move || verify_sync(&pw, &h)).await,
            None => {
                let dummy = self.dummy_hash.clone();
                self.bounded(move || verify_sync(&pw, &dummy)).await?;
                Ok(false)
            }
        }
    }
}
