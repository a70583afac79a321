//! SAML 2.0: HTTP-Redirect AuthnRequest, HTTP-POST response at the ACS. (Stand-in until the
//! protocol lands.)

use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sso::ConnectionRow;

/// What Roster reads from an IdP's metadata.
pub struct IdpMetadata {
    pub entity_id: String,
    pub sso_url: String,
}

pub fn read_metadata(_xml: &str) -> Result<IdpMetadata, String> {
    Err("SAML is not available in this build".into())
}

/// The IdP URL (with the AuthnRequest) to send the browser to; the pending sign-in is saved.
pub async fn begin(_state: &AppState, _connection: &ConnectionRow, _binding: &str) -> Result<String, ApiError> {
    Err(ApiError::internal("SAML sign-in is not available in this build"))
}
