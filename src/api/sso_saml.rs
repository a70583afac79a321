//! SAML 2.0's public routes, per connection: Roster's SP metadata (what an IdP's admin pastes or
//! points the IdP at) and the assertion consumer service the browser posts the IdP's answer
//! to. No token: the connection id in the path names the connection; the ACS trusts nothing but
//! what `sso::saml` verified, and hands the outcome to `api::sso::finish`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, FieldError};
use crate::sso::{PROTOCOL_SAML, saml};
use crate::state::AppState;
use crate::store::sso::ConnectionRow;

/// The most an ACS post may weigh (a signed response with a few certificates is 10-30 KiB).
pub const ACS_BODY_LIMIT: usize = 1024 * 1024;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SamlConnectionPath {
    /// The SAML connection's id.
    #[param(max_length = 64, pattern = r"^[\x21-\x7E]+$")]
    pub connection_id: String,
}

/// The HTTP-POST binding's form, as the IdP's page posts it.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AcsForm {
    /// The IdP's `samlp:Response`, base64.
    #[schema(rename = "SAMLResponse", max_length = 1048576)]
    saml_response: String,
    /// Echoed from the sign-in's start; not relied on.
    #[schema(rename = "RelayState", max_length = 1024)]
    relay_state: Option<String>,
}

async fn saml_connection(state: &AppState, id: &str) -> Result<ConnectionRow, ApiError> {
    // Connection ids are UUIDs; anything else names none (and never reaches the database).
    let Ok(id) = id.parse::<uuid::Uuid>() else { return Err(ApiError::not_found("SAML connection")) };
    let id_owned = id.hyphenated().to_string();
    let found = crate::db::run(&state.pool, move |conn| crate::store::sso::find_connection(conn, &id_owned)).await?;
    found.filter(|c| c.protocol == PROTOCOL_SAML).ok_or_else(|| ApiError::not_found("SAML connection"))
}

/// Roster's SAML service-provider metadata for a connection.
///
/// The SP metadata document to give the identity provider: entity id (this URL), the assertion
/// consumer service (HTTP-POST), email NameIDs, assertions wanted signed, requests unsigned.
#[utoipa::path(
    tag = "sso",
    security(()),
    operation_id = "saml_metadata",
    params(SamlConnectionPath),
    responses(
        (status = 200, description = "The SP metadata (SAML 2.0 EntityDescriptor)", content_type = "application/samlmetadata+xml", body = String),
        (status = 404, description = "No SAML connection with this id"),
    )
)]
#[get("/api/v1/sso/saml/{connection_id}/metadata")]
pub async fn sp_metadata(
    state: web::Data<AppState>,
    path: web::Path<SamlConnectionPath>,
) -> Result<HttpResponse, ApiError> {
    let connection = saml_connection(&state, &path.connection_id).await?;
    let public_url = &state.config.public_url;
    let xml =
        saml::sp_metadata(&saml::sp_entity_id(public_url, &connection.id), &saml::acs_url(public_url, &connection.id));
    Ok(HttpResponse::Ok().content_type("application/samlmetadata+xml").body(xml))
}

/// The SAML assertion consumer service (the IdP's HTTP-POST answer).
///
/// The browser posts the IdP's `SAMLResponse` here. It is checked (signature with the IdP's
/// certificate over the element used, issuer, audience, destination and recipient, validity
/// window, `InResponseTo` naming a sign-in this server started, assertion used once), and the
/// browser is sent on with a 303 to `{ROSTER_APP_URL}/sso/callback` with a one-minute `code`, or
/// with `error` and `error_description` saying why the sign-in was refused.
#[utoipa::path(
    tag = "sso",
    security(()),
    operation_id = "saml_acs",
    params(SamlConnectionPath),
    request_body(content = AcsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "On to `{ROSTER_APP_URL}/sso/callback?code=...` (signed in) or `?error=...&error_description=...` (refused)",
            headers(("Location" = String, description = "The frontend's SSO callback"))),
        (status = 404, description = "No SAML connection with this id"),
        (status = 413, description = "The body is larger than 1 MiB"),
        (status = 415, description = "The body is not sent as application/x-www-form-urlencoded"),
        (status = 422, description = "`SAMLResponse` is missing"),
    )
)]
#[post("/api/v1/sso/saml/{connection_id}/acs")]
pub async fn acs(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<SamlConnectionPath>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let connection = saml_connection(&state, &path.connection_id).await?;
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(ApiError::UnsupportedMediaType(
            "the IdP's answer is posted as application/x-www-form-urlencoded".into(),
        ));
    }
    let body = read_body(payload).await?;
    let saml_response = form_urlencoded::parse(&body)
        .find(|(k, _)| k == "SAMLResponse")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::Validation(vec![FieldError::new("SAMLResponse", "is required")]))?;
    let outcome = if connection.enabled {
        saml::complete(&state, &connection, saml_response).await.unwrap_or_else(|e| {
            log::error!("SAML sign-in through connection {}: {e}", connection.id);
            Err(crate::sso::Refused::new("server-error", "the sign-in could not be completed; try again"))
        })
    } else {
        Err(crate::sso::Refused::new("connection-disabled", "this SSO connection is turned off"))
    };
    if let Err(refused) = &outcome {
        log::info!("SAML sign-in refused on connection {}: {} ({})", connection.id, refused.reason, refused.detail);
    }
    let (outcome, pending) = match outcome {
        Ok((asserted, pending)) => (Ok(asserted), Some(pending)),
        Err(refused) => (Err(refused), None),
    };
    Ok(crate::api::sso::finish(&state, &req, &connection, pending.as_ref(), outcome).await)
}

async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request("invalid-body", format!("the body could not be read: {e}")))?;
        if body.len() + chunk.len() > ACS_BODY_LIMIT {
            return Err(ApiError::PayloadTooLarge(format!("the body is larger than {ACS_BODY_LIMIT} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(sp_metadata).service(acs);
}
