//! API keys of a tenant: `GET|POST /api-keys`, `GET|PATCH|DELETE /api-keys/{key_id}`,
//! `POST /api-keys/{key_id}/rotate`. Owners only, with a person's access token: a key never
//! manages keys. The secret is in the answer to create and rotate, and nowhere else.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::api::{Problems, page_limit, validate};
use crate::auth::TenantAccess;
use crate::auth::guard::parse_path_id;
use crate::db::models::ApiKeyRow;
use crate::domain::api_key::{KeyKind, reveal};
use crate::domain::{ApiKeyId, RegionId, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::api_keys::{self, KeyChanges, NewKey};

/// An API key, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e70", "name": "CI deploys", "kind": "api", "role": "operator",
    "regions": [], "prefix": "rk_api_Xb3k9", "created_by": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30",
    "created_at": "2026-12-07T10:00:00Z", "expires_at": null, "last_used_at": "2026-12-07T10:05:00Z",
    "revoked_at": null, "version": 1
}))]
pub struct ApiKeyView {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub kind: KeyKind,
    pub role: Role,
    /// Region ids; an `admin` key manages members within them, as an admin would.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub regions: Vec<String>,
    /// The first 12 characters of the secret: enough to recognise it, not to use it.
    pub prefix: String,
    /// The owner who created it.
    #[schema(format = Uuid)]
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Written at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Changes when the name, role or regions change or the key is revoked; the `ETag`.
    pub version: i32,
}

impl From<ApiKeyRow> for ApiKeyView {
    fn from(r: ApiKeyRow) -> Self {
        let regions = r.region_ids();
        ApiKeyView {
            id: r.id,
            name: r.name,
            kind: KeyKind::parse(&r.kind).unwrap_or(KeyKind::Api),
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            regions,
            prefix: r.prefix,
            created_by: r.created_by,
            created_at: r.created_at.and_utc(),
            expires_at: r.expires_at.map(|t| t.and_utc()),
            last_used_at: r.last_used_at.map(|t| t.and_utc()),
            revoked_at: r.revoked_at.map(|t| t.and_utc()),
            version: r.version,
        }
    }
}

/// A key with its secret: shown once, in the answer to create or rotate.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "key": {"id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e70", "name": "CI deploys", "kind": "api", "role": "operator",
        "regions": [], "prefix": "rk_api_Xb3k9", "created_by": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30",
        "created_at": "2026-12-07T10:00:00Z", "expires_at": null, "last_used_at": null, "revoked_at": null, "version": 1},
    "secret": "rk_api_Xb3k9QmZ0pW4v2sT8yLd1nR6cJh5gFe7aUoKiBq3xYw"
}))]
pub struct ApiKeyWithSecret {
    pub key: ApiKeyView,
    /// `rk_<kind>_` and 43 characters of unpadded base64url (256 random bits). Send it as
    /// `Authorization: Bearer <secret>`. Only its SHA-256 digest is kept: it cannot be shown again.
    #[schema(pattern = "^rk_(api|agent|scim)_[A-Za-z0-9_-]{43}$")]
    pub secret: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiKeyPage {
    pub items: Vec<ApiKeyView>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// A new key. `role` may be any role (only owners create keys); an `admin` key's `regions`
/// bound what it manages, as for an admin.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "CI deploys", "kind": "api", "role": "operator", "expires_at": "2027-12-31T00:00:00Z"}))]
pub struct CreateApiKeyRequest {
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    pub kind: KeyKind,
    pub role: Role,
    #[serde(default)]
    #[validate(length(max = 100))]
    #[schema(max_items = 100)]
    pub regions: Vec<RegionId>,
    /// When the key stops working; must be in the future. Never, when absent.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Changes to a key; absent fields stay. The key acts with them from its next request.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "viewer"}))]
pub struct UpdateApiKeyRequest {
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    pub role: Option<Role>,
    #[validate(length(max = 100))]
    #[schema(max_items = 100)]
    pub regions: Option<Vec<RegionId>>,
}

/// Optional: how long the old secret keeps working.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"grace_seconds": 3600}))]
pub struct RotateApiKeyRequest {
    /// 0 (the default: the old secret stops at once) to 86400 (24 hours).
    #[schema(minimum = 0, maximum = 86400)]
    #[serde(default, deserialize_with = "whole_seconds")]
    pub grace_seconds: i64,
}

/// A whole number of seconds, also when written as `3600.0` (JSON does not tell them apart).
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = f64::deserialize(d)?;
    if !v.is_finite() || v.fract() != 0.0 || v.abs() > 1e15 {
        return Err(serde::de::Error::custom("must be a whole number of seconds"));
    }
    Ok(v as i64)
}

/// Paging for the key list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApiKeyListParams {
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

fn key_id(req: &HttpRequest) -> Result<ApiKeyId, ApiError> {
    parse_path_id(req, "key_id")
}

fn blank_name(name: Option<&str>) -> Result<(), ApiError> {
    let mut p = Problems::default();
    if name.is_some_and(|n| n.trim().is_empty()) {
        p.add("name", "must not be blank");
    }
    p.finish()
}

fn key_response(status: actix_web::http::StatusCode, row: ApiKeyRow) -> HttpResponse {
    HttpResponse::build(status).insert_header(crate::api::etag(row.version)).json(ApiKeyView::from(row))
}

/// List the tenant's API keys (owners).
///
/// Newest first, revoked ones included (with `revoked_at`). Secrets are never shown here.
#[utoipa::path(tag = "api-keys", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ApiKeyListParams),
    responses((status = 200, body = ApiKeyPage), (status = 403, description = "Only owners manage API keys, and never with a key"),
        (status = 404, description = "No such tenant for you"), (status = 422, description = "A parameter is invalid")))]
#[get("/api/v1/tenants/{tenant_id}/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<ApiKeyListParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let cursor = crate::store::cursor::decode_id(q.cursor.as_deref())?;
    let (rows, next_cursor, total) =
        access.run(&state.pool, move |conn, ctx| api_keys::list(conn, ctx, cursor.as_deref(), limit)).await?;
    Ok(HttpResponse::Ok().json(ApiKeyPage {
        items: rows.into_iter().map(ApiKeyView::from).collect(),
        next_cursor,
        total,
    }))
}

/// Create an API key (owners).
///
/// Answers the key and, once, its `secret` (`rk_<kind>_...`); only a digest is kept. An `api`
/// key acts on this tenant's routes as a member with its `role` and `regions` would; `agent`
/// and `scim` keys are refused by the REST API (they serve device enrolment and SCIM).
#[utoipa::path(tag = "api-keys", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = CreateApiKeyRequest,
    responses((status = 201, body = ApiKeyWithSecret, headers(("ETag" = String), ("Location" = String))),
        (status = 403, description = "Only owners manage API keys, and never with a key"),
        (status = 404, description = "No such tenant for you"), (status = 422, description = "Invalid fields or unknown regions")))]
#[post("/api/v1/tenants/{tenant_id}/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate(&body)?;
    blank_name(Some(&body.name))?;
    if body.expires_at.is_some_and(|e| e <= Utc::now()) {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    let new = NewKey {
        name: body.name.trim().to_string(),
        kind: body.kind,
        role: body.role,
        regions: body.regions,
        expires_at: body.expires_at.map(|e| e.naive_utc()),
    };
    let (row, secret) = access.run_write(&state.pool, move |conn, ctx| api_keys::create(conn, ctx, new)).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), row.id);
    Ok(HttpResponse::Created()
        .insert_header(crate::api::etag(row.version))
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(ApiKeyWithSecret { key: ApiKeyView::from(row), secret: reveal(&secret) }))
}

/// Read one API key (owners).
///
/// Its name, kind, role, regions, the secret's first characters, and when it was created, last
/// used, expires or was revoked; never the secret. The `ETag` carries its version for `If-Match`.
#[utoipa::path(tag = "api-keys", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("key_id" = uuid::Uuid, Path, description = "The key's id")),
    responses((status = 200, body = ApiKeyView, headers(("ETag" = String))),
        (status = 403, description = "Only owners manage API keys, and never with a key"),
        (status = 404, description = "No such key for you")))]
#[get("/api/v1/tenants/{tenant_id}/api-keys/{key_id}")]
pub async fn get_api_key(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = key_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| api_keys::get(conn, ctx, id)).await?;
    Ok(key_response(actix_web::http::StatusCode::OK, row))
}

/// Rename an API key or change its role or regions (owners).
///
/// The key acts with the change from its next request, on every instance. A revoked key
/// answers 409. Send `If-Match` with the `ETag` to refuse lost updates.
#[utoipa::path(tag = "api-keys", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("key_id" = uuid::Uuid, Path, description = "The key's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    request_body = UpdateApiKeyRequest,
    responses((status = 200, body = ApiKeyView, headers(("ETag" = String))),
        (status = 403, description = "Only owners manage API keys, and never with a key"),
        (status = 404, description = "No such key for you"), (status = 409, description = "The key is revoked"),
        (status = 412, description = "If-Match is stale"), (status = 422, description = "Invalid fields or unknown regions")))]
#[patch("/api/v1/tenants/{tenant_id}/api-keys/{key_id}")]
pub async fn update_api_key(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<UpdateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = key_id(&req)?;
    let body = body.into_inner();
    validate(&body)?;
    blank_name(body.name.as_deref())?;
    let version = crate::api::if_match(&req)?;
    let changes = KeyChanges { name: body.name.map(|n| n.trim().to_string()), role: body.role, regions: body.regions };
    let row = access.run_write(&state.pool, move |conn, ctx| api_keys::update(conn, ctx, id, changes, version)).await?;
    Ok(key_response(actix_web::http::StatusCode::OK, row))
}

/// Give an API key a new secret (owners).
///
/// Answers the key and, once, the new `secret`. The old secret keeps working for
/// `grace_seconds` (0 by default, at most 86400), so deployments can switch over. A revoked
/// key answers 409.
#[utoipa::path(tag = "api-keys", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("key_id" = uuid::Uuid, Path, description = "The key's id")),
    request_body(content = Option<RotateApiKeyRequest>, description = "Optional"),
    responses((status = 200, body = ApiKeyWithSecret, headers(("ETag" = String))),
        (status = 403, description = "Only owners manage API keys, and never with a key"),
        (status = 404, description = "No such key for you"), (status = 409, description = "The key is revoked"),
        (status = 422, description = "`grace_seconds` is out of range")))]
#[post("/api/v1/tenants/{tenant_id}/api-keys/{key_id}/rotate")]
pub async fn rotate_api_key(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let id = key_id(&req)?;
    let body = body.map_err(crate::api::json::payload_error)?;
    let body: RotateApiKeyRequest = crate::api::json_or_empty(&req, &body)?;
    if !(0..=86_400).contains(&body.grace_seconds) {
        return Err(ApiError::invalid("grace_seconds", "must be between 0 and 86400"));
    }
    let grace = body.grace_seconds;
    let (row, secret) = access.run_write(&state.pool, move |conn, ctx| api_keys::rotate(conn, ctx, id, grace)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(crate::api::etag(row.version))
        .json(ApiKeyWithSecret { key: ApiKeyView::from(row), secret: reveal(&secret) }))
}

/// Revoke an API key (owners).
///
/// It stops working at once, on every instance; it stays in the list with `revoked_at`.
/// Revoking it again answers 204 and changes nothing.
#[utoipa::path(tag = "api-keys", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("key_id" = uuid::Uuid, Path, description = "The key's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    responses((status = 204, description = "Revoked"), (status = 403, description = "Only owners manage API keys, and never with a key"),
        (status = 404, description = "No such key for you"), (status = 412, description = "If-Match is stale")))]
#[delete("/api/v1/tenants/{tenant_id}/api-keys/{key_id}")]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = key_id(&req)?;
    let version = crate::api::if_match(&req)?;
    access.run_write(&state.pool, move |conn, ctx| api_keys::revoke(conn, ctx, id, version)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_api_keys)
        .service(create_api_key)
        .service(get_api_key)
        .service(update_api_key)
        .service(rotate_api_key)
        .service(revoke_api_key);
}
