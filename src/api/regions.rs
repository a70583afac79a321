//! Regions of a tenant: `GET|POST /regions`, `GET|PATCH|DELETE /regions/{region_id}`.
//! Every member reads them; owners manage them.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::api::{Problems, double_option, validate};
use crate::auth::TenantAccess;
use crate::auth::guard::parse_path_id;
use crate::db::models::RegionRow;
use crate::domain::RegionId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::regions;

/// A region; `parent_id` makes it a location inside another region.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegionView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "North")]
    pub name: String,
    #[schema(format = Uuid)]
    pub parent_id: Option<String>,
    /// Changes on every write; the `ETag` carries it for `If-Match`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<RegionRow> for RegionView {
    fn from(r: RegionRow) -> Self {
        RegionView {
            id: r.id,
            name: r.name,
            parent_id: r.parent_id,
            version: r.version,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct RegionList {
    pub items: Vec<RegionView>,
}

/// A new region.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "North", "parent_id": null}))]
pub struct CreateRegionRequest {
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    pub parent_id: Option<RegionId>,
}

/// Changes to a region; `parent_id: null` makes it top-level.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateRegionRequest {
    #[validate(length(min = 1, max = 100))]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<RegionId>)]
    pub parent_id: Option<Option<RegionId>>,
}

fn blank_name(name: Option<&str>) -> Result<(), ApiError> {
    let mut p = Problems::default();
    if name.is_some_and(|n| n.trim().is_empty()) {
        p.add("name", "must not be blank");
    }
    p.finish()
}

/// List the tenant's regions.
///
/// Every region with its parent (a location inside a region); access to a region includes its
/// sub-regions. Any member may read them.
#[utoipa::path(tag = "regions", security(("bearer_auth" = [])), params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses((status = 200, body = RegionList), (status = 404, description = "No such tenant for you")))]
#[get("/api/v1/tenants/{tenant_id}/regions")]
pub async fn list_regions(state: web::Data<AppState>, access: TenantAccess) -> Result<HttpResponse, ApiError> {
    let rows = access.run(&state.pool, regions::list).await?;
    Ok(HttpResponse::Ok().json(RegionList { items: rows.into_iter().map(RegionView::from).collect() }))
}

/// Create a region (owners).
///
/// With an `Idempotency-Key` header, a retry of the same request within 24 hours answers the
/// first result again (`Idempotent-Replayed: true`); the same key with another request is 409.
#[utoipa::path(tag = "regions", security(("bearer_auth" = [])), params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the first answer is replayed for 24 h")),
    request_body = CreateRegionRequest,
    responses((status = 201, body = RegionView, headers(("ETag" = String))), (status = 403, description = "Only owners manage regions"),
        (status = 404, description = "No such tenant for you"), (status = 409, description = "The name is taken"),
        (status = 422, description = "Invalid fields or unknown parent")))]
#[post("/api/v1/tenants/{tenant_id}/regions")]
pub async fn create_region(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<CreateRegionRequest>,
) -> Result<HttpResponse, ApiError> {
    let idem = crate::api::idempotency_key(&req)?;
    let body = body.into_inner();
    validate(&body)?;
    blank_name(Some(&body.name))?;
    let name = body.name.trim().to_string();
    let created = access
        .run_write(&state.pool, move |conn, ctx| {
            let render = |row: &RegionRow| serde_json::to_string(&RegionView::from(row.clone())).unwrap_or_default();
            let render: &dyn Fn(&RegionRow) -> String = &render;
            regions::create(conn, ctx, name, body.parent_id, idem.as_ref().map(|k| (k, render)))
        })
        .await?;
    match created {
        Ok(row) => Ok(region_response(actix_web::http::StatusCode::CREATED, row)),
        Err(replay) => Ok(crate::api::replayed(replay)),
    }
}

fn region_response(status: actix_web::http::StatusCode, row: RegionRow) -> HttpResponse {
    HttpResponse::build(status).insert_header(crate::api::etag(row.version)).json(RegionView::from(row))
}

fn region_id(req: &HttpRequest) -> Result<RegionId, ApiError> {
    parse_path_id(req, "region_id")
}

/// Read one region.
///
/// Any member may read it; the `ETag` carries its version for `If-Match`.
#[utoipa::path(tag = "regions", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("region_id" = uuid::Uuid, Path, description = "The region's id")),
    responses((status = 200, body = RegionView, headers(("ETag" = String))), (status = 404, description = "No such region for you")))]
#[get("/api/v1/tenants/{tenant_id}/regions/{region_id}")]
pub async fn get_region(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = region_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| regions::get(conn, ctx, id)).await?;
    Ok(region_response(actix_web::http::StatusCode::OK, row))
}

/// Rename or move a region (owners).
///
/// Absent fields stay; `parent_id: null` makes it top-level. A move under its own sub-region
/// answers 422. Send `If-Match` with the `ETag` to refuse lost updates.
#[utoipa::path(tag = "regions", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("region_id" = uuid::Uuid, Path, description = "The region's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    request_body = UpdateRegionRequest,
    responses((status = 200, body = RegionView, headers(("ETag" = String))), (status = 403, description = "Only owners manage regions"),
        (status = 404, description = "No such region for you"), (status = 409, description = "The name is taken"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "Invalid fields, unknown parent or a cycle")))]
#[patch("/api/v1/tenants/{tenant_id}/regions/{region_id}")]
pub async fn update_region(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<UpdateRegionRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = region_id(&req)?;
    let body = body.into_inner();
    validate(&body)?;
    blank_name(body.name.as_deref())?;
    let name = body.name.map(|n| n.trim().to_string());
    let version = crate::api::if_match(&req)?;
    let row = access
        .run_write(&state.pool, move |conn, ctx| regions::update(conn, ctx, id, name, body.parent_id, version))
        .await?;
    Ok(region_response(actix_web::http::StatusCode::OK, row))
}

/// Delete a region with no sub-regions and no members (owners).
///
/// A region that still has sub-regions or members answers 409. Send `If-Match` with the `ETag` to
/// refuse lost updates.
#[utoipa::path(tag = "regions", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("region_id" = uuid::Uuid, Path, description = "The region's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Only owners manage regions"),
        (status = 404, description = "No such region for you"), (status = 409, description = "The region has sub-regions or members"),
        (status = 412, description = "If-Match is stale")))]
#[delete("/api/v1/tenants/{tenant_id}/regions/{region_id}")]
pub async fn delete_region(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = region_id(&req)?;
    let version = crate::api::if_match(&req)?;
    access.run_write(&state.pool, move |conn, ctx| regions::delete(conn, ctx, id, version)).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_regions).service(create_region).service(get_region).service(update_region).service(delete_region);
}
