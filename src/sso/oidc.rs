//! OpenID Connect: the authorization code flow with state, nonce and PKCE S256. (Stand-in until
//! the protocol lands.)

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sso::ConnectionRow;

/// The authorization URL to send the browser to; the pending sign-in is saved.
pub async fn begin(_state: &AppState, _connection: &ConnectionRow) -> Result<String, ApiError> {
    Err(ApiError::internal("OIDC sign-in is not available in this build"))
}

/// Whether an issuer's discovery document works for Roster.
pub async fn check_issuer(_state: &AppState, _issuer: &str) -> Result<(), String> {
    Ok(())
}
