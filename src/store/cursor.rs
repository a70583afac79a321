//! Opaque keyset cursors: base64url of `[sort value, id]`. Never OFFSET.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

pub fn encode(key: &str, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::json!([key, id]).to_string())
}

pub fn decode(cursor: &str) -> Result<(String, String), ApiError> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| not_handed_out())?;
    let (key, id): (String, String) = serde_json::from_slice(&bytes).map_err(|_| not_handed_out())?;
    Ok((key, id))
}

/// A list keyed by id alone takes the last id it handed out as its cursor: the id, in its
/// stored form, or a 422 naming `cursor`.
pub fn decode_id(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    cursor
        .map(|c| c.parse::<uuid::Uuid>().map(|id| id.hyphenated().to_string()).map_err(|_| not_handed_out()))
        .transpose()
}

/// A cursor no list handed out: 422 naming `cursor`.
pub fn not_handed_out() -> ApiError {
    ApiError::invalid("cursor", "is not one this list handed out (`next_cursor`); start again without it")
}
