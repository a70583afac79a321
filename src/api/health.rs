//! Probes and public keys: `/healthz`, `/readyz`, `/.well-known/jwks.json`.

use actix_web::{HttpResponse, get, web};
use diesel::connection::SimpleConnection;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::jwt::Jwks;
use crate::db;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// Liveness: the process is up and serving.
///
/// Answers 200 while the process serves requests; it does not touch the database (see `/readyz`).
#[utoipa::path(tag = "health", security(()), responses((status = 200, body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".into() })
}

/// Readiness: the database answers.
///
/// Answers 200 when a database connection answers, 503 otherwise: take the instance out of a load
/// balancer while it fails.
#[utoipa::path(tag = "health", security(()), responses((status = 200, body = Health), (status = 503, description = "The database is unreachable")))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    db::run(&state.pool, |conn| conn.batch_execute("SELECT 1").map_err(|e| ApiError::Unavailable(e.to_string())))
        .await?;
    Ok(HttpResponse::Ok().json(Health { status: "ready".into() }))
}

/// The public keys that verify Roster's access tokens (JWKS, RFC 7517).
///
/// The public keys that verify access tokens (JSON Web Key Set, RFC 7517), keyed by `kid`. Token
/// consumers (a product backend) cache it and fetch it again on an unknown `kid`.
#[utoipa::path(tag = "health", security(()), responses((status = 200, body = Jwks)))]
#[get("/.well-known/jwks.json")]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(state.keys.jwks())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(healthz).service(readyz).service(jwks);
}
