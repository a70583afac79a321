//! The OpenID Connect redirect URI, `GET /api/v1/sso/oidc/callback`: where every provider sends
//! the browser back with `code` and `state` (or `error`). It takes the pending sign-in named by
//! `state` once, checks the provider's answer (`sso::oidc::complete`) and hands the outcome to
//! `api::sso::finish`, which sends the browser on to the frontend.
//!
//! A `state` that is unknown, used or expired ties the answer to no connection (nor tenant): the
//! browser goes straight to `{ROSTER_APP_URL}/sso/callback?error=invalid-state`, and nothing in
//! the query is read or used.

use actix_web::{HttpRequest, HttpResponse, get, web};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::sso::{finish, refused_redirect};
use crate::db;
use crate::error::ApiError;
use crate::sso::{PROTOCOL_OIDC, Refused, oidc};
use crate::state::AppState;
use crate::store::sso::{find_connection, take_request};

/// What the provider appends to the redirect URI (OpenID Connect Core 3.1.2.5 and 3.1.2.6).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code, on success.
    pub code: Option<String>,
    /// The value Roster sent: names the pending sign-in (single use, ten minutes).
    pub state: Option<String>,
    /// The provider's error code (`access_denied`, ...), when it refused.
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub error_uri: Option<String>,
    /// The issuer that answered (RFC 9207); when present it must be the connection's issuer.
    pub iss: Option<String>,
    /// Sent by some providers (Keycloak, Entra ID, Google); ignored.
    pub session_state: Option<String>,
    pub scope: Option<String>,
    pub authuser: Option<String>,
    pub hd: Option<String>,
    pub prompt: Option<String>,
}

/// OpenID Connect redirect URI: the provider's answer to a sign-in.
///
/// Register `{ROSTER_PUBLIC_URL}/api/v1/sso/oidc/callback` as the redirect URI of every OIDC
/// connection's client. The browser arrives here from the provider; Roster exchanges the code,
/// checks the ID token and answers 303 to `{ROSTER_APP_URL}/sso/callback?code=...` (a one-minute
/// single-use code for `POST /api/v1/auth/sso/exchange`) or to
/// `{ROSTER_APP_URL}/sso/callback?error=<reason>&error_description=...`. The reasons of this
/// route: `invalid-state` (unknown, used or expired), `connection-not-found`,
/// `connection-disabled`, `idp-error` (the provider refused), `idp-unavailable`,
/// `token-exchange-failed`, `invalid-id-token` (signature, key or format), `wrong-issuer`,
/// `wrong-audience`, `wrong-nonce`, `token-expired`, `userinfo-failed`, `no-email`; then those of
/// the sign-in itself (`email-outside-verified-domains`, `not-a-member`, ...).
#[utoipa::path(
    tag = "sso",
    security(()),
    params(CallbackQuery),
    responses((status = 303, description = "On to the frontend's `/sso/callback` with `code` or `error`", headers(("Location" = String))))
)]
#[get("/api/v1/sso/oidc/callback")]
pub async fn oidc_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    // Roster's states are URL-safe base64; anything else was never issued (and a NUL byte, say,
    // must not reach the database).
    let issued_shape = |s: &str| {
        !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let Some(id) = query.state.filter(|s| issued_shape(s)) else {
        return Ok(refused_redirect(&state, &invalid_state("the answer has no state")));
    };
    let master = state.master.clone();
    let pending = db::run_write(&state.pool, move |conn| take_request(conn, &master, &id)).await?;
    let Some(pending) = pending.filter(|p| p.protocol == PROTOCOL_OIDC) else {
        return Ok(refused_redirect(
            &state,
            &invalid_state("the sign-in is unknown, was already completed, or has expired"),
        ));
    };
    let connection_id = pending.connection_id.clone();
    let connection = db::run(&state.pool, move |conn| find_connection(conn, &connection_id)).await?;
    let Some(connection) = connection.filter(|c| c.tenant_id == pending.tenant_id && c.protocol == PROTOCOL_OIDC)
    else {
        return Ok(refused_redirect(&state, &Refused::new("connection-not-found", "the connection was deleted")));
    };
    let issuer = connection.oidc_settings()?.issuer;
    let outcome = if !connection.enabled {
        Err(Refused::new("connection-disabled", "the connection was disabled"))
    } else if let Some(iss) = query.iss.filter(|iss| *iss != issuer) {
        Err(Refused::new("wrong-issuer", format!("the answer came from {}, not {issuer}", cut(&iss))))
    } else if let Some(error) = query.error {
        let description = query.error_description.map(|d| format!(": {d}")).unwrap_or_default();
        Err(Refused::new("idp-error", format!("the identity provider answered {}{}", cut(&error), cut(&description))))
    } else if let Some(code) = query.code.filter(|c| !c.is_empty()) {
        oidc::complete(&state, &connection, &pending, &code).await?
    } else {
        Err(Refused::new("idp-error", "the identity provider answered neither a code nor an error"))
    };
    Ok(finish(&state, &req, &connection, Some(&pending), outcome).await)
}

fn invalid_state(detail: &str) -> Refused {
    Refused::new("invalid-state", detail)
}

/// What the provider said, cut to a length fit for a URL and a log line.
fn cut(text: &str) -> &str {
    &text[..text.floor_char_boundary(200)]
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(oidc_callback);
}
