//! Webhook signing secrets and signatures, as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com>): a secret is `whsec_` followed by the standard base64
//! (padded) of its key bytes; a signature is `v1,` followed by the base64 of
//! HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}"); the `webhook-signature` header carries one
//! signature per secret, separated by spaces, so that during a rotation the old and the new
//! secret both sign. Pure: no I/O, and the secrets never reach a log from here.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::SecretString;
use sha2::Sha256;

/// Every webhook secret starts with this.
pub const PREFIX: &str = "whsec_";

/// The version tag of a symmetric (HMAC-SHA256) signature.
const VERSION: &str = "v1";

/// How many random bytes a new secret holds (256 bits; the specification asks for 24 to 64).
const KEY_LEN: usize = 32;

/// A new secret: `whsec_` and 32 random bytes from the OS source in padded standard base64.
pub fn generate() -> SecretString {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    SecretString::from(format!("{PREFIX}{}", STANDARD.encode(key)))
}

/// The key bytes of a secret, or why it is not one.
fn key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(PREFIX).ok_or_else(|| format!("a webhook secret must start with {PREFIX}"))?;
    let key = STANDARD.decode(encoded).map_err(|_| format!("a webhook secret must be {PREFIX} and base64"))?;
    if key.is_empty() {
        return Err("a webhook secret must not be empty".to_string());
    }
    Ok(key)
}

/// The signature of one message with one secret: `v1,<base64 of the HMAC-SHA256>`.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| format!("unusable webhook secret: {e}"))?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("{VERSION},{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The value of the `webhook-signature` header: one signature per secret, space-separated, in
/// the order given (the current secret first, then one still valid during a rotation).
pub fn signature_header(secrets: &[&str], msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    if secrets.is_empty() {
        return Err("at least one webhook secret must sign".to_string());
    }
    let signatures =
        secrets.iter().map(|secret| sign(secret, msg_id, timestamp, body)).collect::<Result<Vec<_>, _>>()?;
    Ok(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// From the official Python library's test suite (`test_sign_function`).
    const PYTHON_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const PYTHON_MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const PYTHON_TIMESTAMP: i64 = 1614265330;
    const PYTHON_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const PYTHON_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    /// From the official Rust library's test suite (`test_sign`).
    const RUST_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const RUST_MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const RUST_TIMESTAMP: i64 = 1649367553;
    const RUST_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const RUST_SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn signatures_match_the_official_libraries() {
        assert_eq!(sign(PYTHON_SECRET, PYTHON_MSG_ID, PYTHON_TIMESTAMP, PYTHON_BODY).unwrap(), PYTHON_SIGNATURE);
        assert_eq!(sign(RUST_SECRET, RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).unwrap(), RUST_SIGNATURE);
    }

    #[test]
    fn every_part_of_the_message_is_signed() {
        let base = sign(RUST_SECRET, RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).unwrap();
        assert_ne!(sign(RUST_SECRET, "msg_other", RUST_TIMESTAMP, RUST_BODY).unwrap(), base);
        assert_ne!(sign(RUST_SECRET, RUST_MSG_ID, RUST_TIMESTAMP + 1, RUST_BODY).unwrap(), base);
        assert_ne!(sign(RUST_SECRET, RUST_MSG_ID, RUST_TIMESTAMP, b"{}").unwrap(), base);
        assert_ne!(sign(PYTHON_SECRET, RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).unwrap(), base);
    }

    #[test]
    fn the_header_carries_one_signature_per_secret_in_order() {
        let header = signature_header(&[RUST_SECRET, PYTHON_SECRET], RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).unwrap();
        let expected_second = sign(PYTHON_SECRET, RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).unwrap();
        assert_eq!(header, format!("{RUST_SIGNATURE} {expected_second}"));
        assert_eq!(
            signature_header(&[PYTHON_SECRET], PYTHON_MSG_ID, PYTHON_TIMESTAMP, PYTHON_BODY).unwrap(),
            PYTHON_SIGNATURE
        );
        assert!(signature_header(&[], RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).is_err());
        assert!(signature_header(&[RUST_SECRET, "whsec_!"], RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).is_err());
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for secret in [
            "",
            "whsec_",
            "C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsk_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "whsec_not base64!",
            "whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD",
        ] {
            assert!(sign(secret, RUST_MSG_ID, RUST_TIMESTAMP, RUST_BODY).is_err(), "{secret:?}");
        }
    }

    #[test]
    fn generated_secrets_are_prefixed_random_keys_that_sign() {
        let a = generate();
        let b = generate();
        let a = a.expose_secret();
        assert!(a.starts_with(PREFIX));
        let key = STANDARD.decode(&a[PREFIX.len()..]).unwrap();
        assert!((24..=32).contains(&key.len()));
        assert_ne!(a, b.expose_secret());
        assert!(sign(a, "msg_1", 1, b"{}").unwrap().starts_with("v1,"));
    }
}
