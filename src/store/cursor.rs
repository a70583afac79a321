//! Opaque keyset cursors: base64url of `[sort value, id]`. Never OFFSET.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

pub fn encode(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!([key, id]).to_string())
}

pub fn decode(cursor: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::invalid("cursor", "is not one this list handed out (`next_cursor`); start again without it");
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    let (key, id): (String, String) = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    Ok((key, id))
}
