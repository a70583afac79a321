//! Directory groups and SCIM settings: `GET /groups`, `GET /groups/{group_id}`,
//! `GET /groups/{group_id}/members`, `PUT|DELETE /groups/{group_id}/role-mapping`,
//! `GET|PUT /scim-settings`. The directory (Okta, Entra ID) writes the groups over `/scim/v2`;
//! here owners and admins read them, and owners decide which role and regions a group gives.

use actix_web::{HttpRequest, HttpResponse, delete, get, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::api::{page_limit, validate};
use crate::auth::TenantAccess;
use crate::auth::guard::parse_path_id;
use crate::domain::{GroupId, MemberStatus, RegionId, Role};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::groups::{self, GroupMember, GroupRecord, RoleGrant, ScimSettings};

/// A role the directory may give: never `owner`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryRole {
    Admin,
    Operator,
    Viewer,
}

impl From<DirectoryRole> for Role {
    fn from(r: DirectoryRole) -> Role {
        match r {
            DirectoryRole::Admin => Role::Admin,
            DirectoryRole::Operator => Role::Operator,
            DirectoryRole::Viewer => Role::Viewer,
        }
    }
}

/// The role and regions a group gives its directory-managed members.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"role": "operator", "regions": ["01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50"]}))]
pub struct RoleMappingView {
    pub role: Role,
    /// Region ids, sorted.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub regions: Vec<String>,
}

impl From<RoleGrant> for RoleMappingView {
    fn from(g: RoleGrant) -> Self {
        RoleMappingView { role: g.role, regions: g.regions }
    }
}

/// A group, as the directory named it, with how many members it has and the role it gives.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e90", "display_name": "Engineering", "external_id": "00g1emaKYZTWRYYRRTSK",
    "member_count": 42, "role_mapping": {"role": "operator", "regions": []}, "version": 3,
    "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:05:00Z"
}))]
pub struct GroupView {
    #[schema(format = Uuid)]
    pub id: String,
    /// Unique in the tenant, compared without regard to case.
    pub display_name: String,
    /// The directory's own id for the group.
    pub external_id: Option<String>,
    /// All its members, including those outside the caller's regions.
    pub member_count: i64,
    /// The role and regions its directory-managed members get; `null` when it gives none.
    pub role_mapping: Option<RoleMappingView>,
    /// Changes when the directory or an owner changes the group or its mapping; the `ETag`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<GroupRecord> for GroupView {
    fn from(r: GroupRecord) -> Self {
        GroupView {
            id: r.row.id,
            display_name: r.row.display_name,
            external_id: r.row.external_id,
            member_count: r.member_count,
            role_mapping: r.role_mapping.map(RoleMappingView::from),
            version: r.row.version,
            created_at: r.row.created_at.and_utc(),
            updated_at: r.row.updated_at.and_utc(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct GroupPage {
    pub items: Vec<GroupView>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// A member of a group.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e2f", "email": "ada@example.com", "full_name": "Ada Lovelace",
    "role": "operator", "status": "active"
}))]
pub struct GroupMemberView {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub status: MemberStatus,
}

impl From<GroupMember> for GroupMemberView {
    fn from(m: GroupMember) -> Self {
        GroupMemberView {
            id: m.user_id,
            email: m.email,
            full_name: m.full_name,
            role: Role::parse(&m.role).unwrap_or(Role::Viewer),
            status: MemberStatus::parse(&m.status).unwrap_or(MemberStatus::Disabled),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct GroupMemberPage {
    pub items: Vec<GroupMemberView>,
    pub next_cursor: Option<String>,
    /// How many of the group's members you see.
    pub total: i64,
}

/// The role and regions a group gives its directory-managed members.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "operator", "regions": ["01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50"]}))]
pub struct RoleMappingRequest {
    pub role: DirectoryRole,
    /// Regions of this tenant; none by default.
    #[serde(default)]
    #[validate(length(max = 100))]
    #[schema(max_items = 100)]
    pub regions: Vec<RegionId>,
}

/// The tenant's SCIM settings.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "default_role": "viewer", "default_regions": [], "version": 2, "updated_at": "2026-12-07T10:00:00Z"
}))]
pub struct ScimSettingsView {
    /// The role of a directory-managed member in no mapped group.
    pub default_role: Role,
    /// Their regions, sorted.
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub default_regions: Vec<String>,
    /// 0 until an owner first sets them; the `ETag`.
    pub version: i32,
    /// When an owner last set them; `null` before.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<ScimSettings> for ScimSettingsView {
    fn from(s: ScimSettings) -> Self {
        ScimSettingsView {
            default_role: s.defaults.role,
            default_regions: s.defaults.regions,
            version: s.version,
            updated_at: s.updated_at.map(|t| t.and_utc()),
        }
    }
}

/// New SCIM settings; both fields are replaced.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"default_role": "viewer", "default_regions": []}))]
pub struct ScimSettingsRequest {
    pub default_role: DirectoryRole,
    /// Regions of this tenant; none by default.
    #[serde(default)]
    #[validate(length(max = 100))]
    #[schema(max_items = 100)]
    pub default_regions: Vec<RegionId>,
}

/// Paging and search for the group list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupListParams {
    /// Only groups whose display name contains this (case-insensitive).
    #[param(schema_with = crate::api::params::text200)]
    pub q: Option<String>,
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

/// Paging for a group's members.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupMemberListParams {
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

/// The path of one group (for the document; handlers read it with [`group_id`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupPath {
    /// The tenant's id
    pub tenant_id: uuid::Uuid,
    /// The group's id
    pub group_id: uuid::Uuid,
}

fn group_id(req: &HttpRequest) -> Result<GroupId, ApiError> {
    parse_path_id(req, "group_id")
}

fn group_response(row: GroupRecord) -> HttpResponse {
    HttpResponse::Ok().insert_header(crate::api::etag(row.row.version)).json(GroupView::from(row))
}

fn settings_response(s: ScimSettings) -> HttpResponse {
    HttpResponse::Ok().insert_header(crate::api::etag(s.version)).json(ScimSettingsView::from(s))
}

/// List the tenant's directory groups (owners and admins).
///
/// By display name. Each shows its member count and its role mapping. The directory creates,
/// renames and deletes groups over SCIM (`/scim/v2/Groups`).
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), GroupListParams),
    responses((status = 200, body = GroupPage), (status = 403, description = "Only owners and admins read groups"),
        (status = 404, description = "No such tenant for you"), (status = 422, description = "A parameter is invalid")))]
#[get("/api/v1/tenants/{tenant_id}/groups")]
pub async fn list_groups(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<GroupListParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let after = q.cursor.as_deref().map(crate::store::cursor::decode).transpose()?;
    if let Some(text) = &q.q
        && text.chars().count() > 200
    {
        return Err(ApiError::invalid("q", "must be at most 200 characters"));
    }
    let search = q.q;
    let (rows, next_cursor, total) =
        access.run(&state.pool, move |conn, ctx| groups::list(conn, ctx, search.as_deref(), after, limit)).await?;
    Ok(HttpResponse::Ok().json(GroupPage {
        items: rows.into_iter().map(GroupView::from).collect(),
        next_cursor,
        total,
    }))
}

/// Read one directory group (owners and admins).
///
/// The `ETag` carries its version, for `If-Match` on its role mapping.
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])), params(GroupPath),
    responses((status = 200, body = GroupView, headers(("ETag" = String))),
        (status = 403, description = "Only owners and admins read groups"), (status = 404, description = "No such group for you")))]
#[get("/api/v1/tenants/{tenant_id}/groups/{group_id}")]
pub async fn get_group(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| groups::get(conn, ctx, id)).await?;
    Ok(group_response(row))
}

/// List a group's members (owners and admins).
///
/// As the member list shows them: an admin limited to regions sees the members whose regions
/// all lie within theirs. By id; `total` counts the members you see.
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])), params(GroupPath, GroupMemberListParams),
    responses((status = 200, body = GroupMemberPage), (status = 403, description = "Only owners and admins read groups"),
        (status = 404, description = "No such group for you"), (status = 422, description = "A parameter is invalid")))]
#[get("/api/v1/tenants/{tenant_id}/groups/{group_id}/members")]
pub async fn list_group_members(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    query: web::Query<GroupMemberListParams>,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&req)?;
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let after = crate::store::cursor::decode_id(q.cursor.as_deref())?;
    let (rows, next_cursor, total) =
        access.run(&state.pool, move |conn, ctx| groups::members(conn, ctx, id, after, limit)).await?;
    Ok(HttpResponse::Ok().json(GroupMemberPage {
        items: rows.into_iter().map(GroupMemberView::from).collect(),
        next_cursor,
        total,
    }))
}

/// Map a group to a role and regions (owners).
///
/// Its directory-managed members (never owners) get, at once, the highest role of their
/// mapped groups and the union of those groups' regions; their tokens stop working as for any
/// role change. A member in no mapped group has the SCIM default (`/scim-settings`). Answers
/// the group.
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])),
    params(GroupPath, ("If-Match" = Option<String>, Header, description = "The group's ETag; 412 when stale")),
    request_body = RoleMappingRequest,
    responses((status = 200, body = GroupView, headers(("ETag" = String))),
        (status = 403, description = "Only owners map groups to roles"), (status = 404, description = "No such group for you"),
        (status = 412, description = "If-Match is stale"), (status = 422, description = "Invalid fields or unknown regions")))]
#[put("/api/v1/tenants/{tenant_id}/groups/{group_id}/role-mapping")]
pub async fn put_role_mapping(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<RoleMappingRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&req)?;
    let body = body.into_inner();
    validate(&body)?;
    let grant = RoleGrant::new(body.role.into(), &body.regions)?;
    let version = crate::api::if_match(&req)?;
    let row = access
        .run_write(&state.pool, move |conn, ctx| groups::set_role_mapping(conn, ctx, id, Some(grant), version))
        .await?;
    Ok(group_response(row))
}

/// Remove a group's role mapping (owners).
///
/// Its directory-managed members keep the roles of their other mapped groups, or get the SCIM
/// default. Removing a mapping the group does not have changes nothing. Answers the group.
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])),
    params(GroupPath, ("If-Match" = Option<String>, Header, description = "The group's ETag; 412 when stale")),
    responses((status = 200, body = GroupView, headers(("ETag" = String))),
        (status = 403, description = "Only owners map groups to roles"), (status = 404, description = "No such group for you"),
        (status = 412, description = "If-Match is stale")))]
#[delete("/api/v1/tenants/{tenant_id}/groups/{group_id}/role-mapping")]
pub async fn delete_role_mapping(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = group_id(&req)?;
    let version = crate::api::if_match(&req)?;
    let row =
        access.run_write(&state.pool, move |conn, ctx| groups::set_role_mapping(conn, ctx, id, None, version)).await?;
    Ok(group_response(row))
}

/// Read the SCIM settings (owners and admins).
///
/// The role and regions of a directory-managed member in no mapped group: viewer and no
/// regions until an owner sets them.
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses((status = 200, body = ScimSettingsView, headers(("ETag" = String))),
        (status = 403, description = "Only owners and admins read the SCIM settings"), (status = 404, description = "No such tenant for you")))]
#[get("/api/v1/tenants/{tenant_id}/scim-settings")]
pub async fn get_scim_settings(state: web::Data<AppState>, access: TenantAccess) -> Result<HttpResponse, ApiError> {
    let settings = access.run(&state.pool, groups::scim_settings).await?;
    Ok(settings_response(settings))
}

/// Set the SCIM default role and regions (owners).
///
/// Every directory-managed member in no mapped group gets them at once (their tokens stop
/// working as for any role change). `default_role` is never `owner`.
#[utoipa::path(tag = "groups", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"),
        ("If-Match" = Option<String>, Header, description = "The settings' ETag; 412 when stale")),
    request_body = ScimSettingsRequest,
    responses((status = 200, body = ScimSettingsView, headers(("ETag" = String))),
        (status = 403, description = "Only owners set the SCIM defaults"), (status = 404, description = "No such tenant for you"),
        (status = 412, description = "If-Match is stale"), (status = 422, description = "Invalid fields or unknown regions")))]
#[put("/api/v1/tenants/{tenant_id}/scim-settings")]
pub async fn put_scim_settings(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<ScimSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate(&body)?;
    let defaults = RoleGrant::new(body.default_role.into(), &body.default_regions)?;
    let version = crate::api::if_match(&req)?;
    let settings = access
        .run_write(&state.pool, move |conn, ctx| groups::update_scim_settings(conn, ctx, defaults, version))
        .await?;
    Ok(settings_response(settings))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_groups)
        .service(get_group)
        .service(list_group_members)
        .service(put_role_mapping)
        .service(delete_role_mapping)
        .service(get_scim_settings)
        .service(put_scim_settings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_never_grants_owner() {
        assert!(serde_json::from_value::<DirectoryRole>(serde_json::json!("owner")).is_err());
        for r in ["admin", "operator", "viewer"] {
            let role: Role = serde_json::from_value::<DirectoryRole>(serde_json::json!(r)).unwrap().into();
            assert_eq!(role.as_str(), r);
        }
    }
}
