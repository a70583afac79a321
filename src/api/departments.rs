//! Departments and sections: `/api/v1/tenants/{tenant_id}/departments[/{department_id}[/sections[/{section_id}]]]`.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::api::{etag, if_match};
use crate::auth::TenantAccess;
use crate::auth::guard::parse_path_id;
use crate::domain::TenantId;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::departments::{self, Department, Section};

/// A section of a department.
#[derive(Serialize, ToSchema)]
pub struct SectionView {
    #[schema(format = Uuid)]
    pub id: String,
    /// The department it belongs to.
    #[schema(format = Uuid)]
    pub department_id: String,
    #[schema(example = "Night shift")]
    pub name: String,
    /// Members in it (of those you can see).
    pub member_count: i64,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A department, its sections, and how many members are in each.
#[derive(Serialize, ToSchema)]
pub struct DepartmentView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "Operations")]
    pub name: String,
    /// Members in it (of those you can see).
    pub member_count: i64,
    pub sections: Vec<SectionView>,
    /// Changes on every rename; the `ETag` carries it for `If-Match`.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Section> for SectionView {
    fn from((s, n): Section) -> Self {
        Self {
            id: s.id,
            department_id: s.department_id,
            name: s.name,
            member_count: n,
            version: s.version,
            created_at: s.created_at.and_utc(),
            updated_at: s.updated_at.and_utc(),
        }
    }
}

impl From<Department> for DepartmentView {
    fn from(d: Department) -> Self {
        Self {
            id: d.row.id,
            name: d.row.name,
            member_count: d.members,
            sections: d.sections.into_iter().map(SectionView::from).collect(),
            version: d.row.version,
            created_at: d.row.created_at.and_utc(),
            updated_at: d.row.updated_at.and_utc(),
        }
    }
}

/// The tenant's departments, by name.
#[derive(Serialize, ToSchema)]
pub struct DepartmentList {
    pub items: Vec<DepartmentView>,
}

/// A name for a department or section.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Operations"}))]
pub struct NameRequest {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
}

impl NameRequest {
    fn name(self) -> Result<String, ApiError> {
        crate::api::validate(&self)?;
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(ApiError::invalid("name", "must not be blank"));
        }
        Ok(name)
    }
}

/// The path of one department (for the document; handlers read it with [`path_id`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct DepartmentPath {
    /// The tenant's id
    #[param(value_type = uuid::Uuid)]
    pub tenant_id: String,
    /// The department's id
    #[param(value_type = uuid::Uuid)]
    pub department_id: String,
}

/// The path of one section (for the document; handlers read it with [`path_id`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SectionPath {
    /// The tenant's id
    #[param(value_type = uuid::Uuid)]
    pub tenant_id: String,
    /// The department's id
    #[param(value_type = uuid::Uuid)]
    pub department_id: String,
    /// The section's id
    #[param(value_type = uuid::Uuid)]
    pub section_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeleteParams {
    /// Where the members in it go (another department's, or section's, id). Without it, a
    /// department or section with members is not deleted (409).
    #[param(schema_with = crate::api::params::uuid)]
    pub reassign_to: Option<String>,
}

fn path_id(req: &HttpRequest, name: &str) -> Result<String, ApiError> {
    parse_path_id::<uuid::Uuid>(req, name).map(|id| id.to_string())
}

fn reassign(params: DeleteParams) -> Result<Option<String>, ApiError> {
    params
        .reassign_to
        .map(|r| {
            r.parse::<uuid::Uuid>()
                .map(|id| id.to_string())
                .map_err(|_| ApiError::invalid("reassign_to", format!("must be an id (UUID), got {r:?}")))
        })
        .transpose()
}

fn department_response(status: actix_web::http::StatusCode, d: Department) -> HttpResponse {
    let version = d.row.version;
    HttpResponse::build(status).insert_header(etag(version)).json(DepartmentView::from(d))
}

fn section_response(status: actix_web::http::StatusCode, section: Section) -> HttpResponse {
    HttpResponse::build(status).insert_header(etag(section.0.version)).json(SectionView::from(section))
}

/// List departments with their sections and member counts.
///
/// Owners and admins (counts are of the members you can see); operators and viewers see only
/// themselves here (403).
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses(
        (status = 200, body = DepartmentList),
        (status = 403, description = "Your role cannot read departments"),
        (status = 404, description = "No such tenant for you"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/departments")]
pub async fn list_departments(state: web::Data<AppState>, access: TenantAccess) -> Result<HttpResponse, ApiError> {
    let items = access.run(&state.pool, departments::list).await?;
    Ok(HttpResponse::Ok().json(DepartmentList { items: items.into_iter().map(DepartmentView::from).collect() }))
}

/// Create a department.
///
/// Owners and admins. Naming a new department on a member creates it too.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = NameRequest,
    responses(
        (status = 201, body = DepartmentView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot manage departments"),
        (status = 404, description = "No such tenant for you"),
        (status = 409, description = "A department with this name exists"),
        (status = 422, description = "The name is missing or too long"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/departments")]
pub async fn create_department(
    state: web::Data<AppState>,
    access: TenantAccess,
    body: crate::api::json::Json<NameRequest>,
) -> Result<HttpResponse, ApiError> {
    let name = body.into_inner().name()?;
    let d = access.run_write(&state.pool, move |conn, ctx| departments::create(conn, ctx, &name)).await?;
    Ok(department_response(actix_web::http::StatusCode::CREATED, d))
}

/// Read a department.
///
/// Owners and admins.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(DepartmentPath),
    responses(
        (status = 200, body = DepartmentView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot read departments"),
        (status = 404, description = "No such department"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/departments/{department_id}")]
pub async fn get_department(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "department_id")?;
    let d = access.run(&state.pool, move |conn, ctx| departments::get(conn, ctx, &id)).await?;
    Ok(department_response(actix_web::http::StatusCode::OK, d))
}

/// Rename a department: every member in it shows the new name.
///
/// Send `If-Match` with the `ETag` to refuse lost updates. A name another department has answers
/// 409.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(
        DepartmentPath,
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
    ),
    request_body = NameRequest,
    responses(
        (status = 200, body = DepartmentView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot manage departments"),
        (status = 404, description = "No such department"),
        (status = 409, description = "Another department has this name"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "The name is missing or too long"),
    )
)]
#[patch("/api/v1/tenants/{tenant_id}/departments/{department_id}")]
pub async fn rename_department(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<NameRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "department_id")?;
    let name = body.into_inner().name()?;
    let version = if_match(&req)?;
    let d = access.run_write(&state.pool, move |conn, ctx| departments::rename(conn, ctx, &id, &name, version)).await?;
    Ok(department_response(actix_web::http::StatusCode::OK, d))
}

/// Delete a department and its sections.
///
/// With members in it, give `reassign_to` (another department's id) to move them there (they
/// leave their section); otherwise 409.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(
        DepartmentPath,
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale"),
        DeleteParams,
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Your role cannot manage departments"),
        (status = 404, description = "No such department"),
        (status = 409, description = "Members are in it and no `reassign_to` was given"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "`reassign_to` is not another department of this tenant"),
    )
)]
#[delete("/api/v1/tenants/{tenant_id}/departments/{department_id}")]
pub async fn delete_department(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    query: web::Query<DeleteParams>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&req, "department_id")?;
    let target = reassign(query.into_inner())?;
    let version = if_match(&req)?;
    access
        .run_write(&state.pool, move |conn, ctx| departments::delete(conn, ctx, &id, target.as_deref(), version))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Add a section to a department.
///
/// Answers the new section, with its address in `Location`.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(DepartmentPath),
    request_body = NameRequest,
    responses(
        (status = 201, description = "The new section", body = SectionView, headers(("ETag" = String), ("Location" = String, description = "The section's address"))),
        (status = 403, description = "Your role cannot manage departments"),
        (status = 404, description = "No such department"),
        (status = 409, description = "The department has a section with this name"),
        (status = 422, description = "The name is missing or too long"),
    )
)]
#[post("/api/v1/tenants/{tenant_id}/departments/{department_id}/sections")]
pub async fn create_section(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<NameRequest>,
) -> Result<HttpResponse, ApiError> {
    let tenant: TenantId = parse_path_id(&req, "tenant_id")?;
    let id = path_id(&req, "department_id")?;
    let name = body.into_inner().name()?;
    let dept = id.clone();
    let section =
        access.run_write(&state.pool, move |conn, ctx| departments::create_section(conn, ctx, &dept, &name)).await?;
    let location = format!("/api/v1/tenants/{}/departments/{id}/sections/{}", tenant.as_text(), section.0.id);
    Ok(HttpResponse::Created()
        .insert_header(etag(section.0.version))
        .insert_header((actix_web::http::header::LOCATION, location))
        .json(SectionView::from(section)))
}

/// Read a section.
///
/// Owners and admins.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(SectionPath),
    responses(
        (status = 200, body = SectionView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot read departments"),
        (status = 404, description = "No such department or section"),
    )
)]
#[get("/api/v1/tenants/{tenant_id}/departments/{department_id}/sections/{section_id}")]
pub async fn get_section(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (dept, id) = (path_id(&req, "department_id")?, path_id(&req, "section_id")?);
    let section = access.run(&state.pool, move |conn, ctx| departments::get_section(conn, ctx, &dept, &id)).await?;
    Ok(section_response(actix_web::http::StatusCode::OK, section))
}

/// Rename a section: every member in it shows the new name.
///
/// Answers the section. Send `If-Match` with the `ETag` to refuse lost updates.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(
        SectionPath,
        ("If-Match" = Option<String>, Header, description = "The section's version you read; 412 when stale"),
    ),
    request_body = NameRequest,
    responses(
        (status = 200, description = "The renamed section", body = SectionView, headers(("ETag" = String))),
        (status = 403, description = "Your role cannot manage departments"),
        (status = 404, description = "No such department or section"),
        (status = 409, description = "The department has another section with this name"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "The name is missing or too long"),
    )
)]
#[patch("/api/v1/tenants/{tenant_id}/departments/{department_id}/sections/{section_id}")]
pub async fn rename_section(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<NameRequest>,
) -> Result<HttpResponse, ApiError> {
    let (dept, id) = (path_id(&req, "department_id")?, path_id(&req, "section_id")?);
    let name = body.into_inner().name()?;
    let version = if_match(&req)?;
    let section = access
        .run_write(&state.pool, move |conn, ctx| departments::rename_section(conn, ctx, &dept, &id, &name, version))
        .await?;
    Ok(section_response(actix_web::http::StatusCode::OK, section))
}

/// Delete a section.
///
/// With members in it, give `reassign_to` (another section of the same department) to move
/// them there; otherwise 409.
#[utoipa::path(
    tag = "departments",
    security(("bearer_auth" = [])),
    params(
        SectionPath,
        ("If-Match" = Option<String>, Header, description = "The section's version you read; 412 when stale"),
        DeleteParams,
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Your role cannot manage departments"),
        (status = 404, description = "No such department or section"),
        (status = 409, description = "Members are in it and no `reassign_to` was given"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "`reassign_to` is not another section of this department"),
    )
)]
#[delete("/api/v1/tenants/{tenant_id}/departments/{department_id}/sections/{section_id}")]
pub async fn delete_section(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    query: web::Query<DeleteParams>,
) -> Result<HttpResponse, ApiError> {
    let (dept, id) = (path_id(&req, "department_id")?, path_id(&req, "section_id")?);
    let target = reassign(query.into_inner())?;
    let version = if_match(&req)?;
    access
        .run_write(&state.pool, move |conn, ctx| {
            departments::delete_section(conn, ctx, &dept, &id, target.as_deref(), version)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_departments)
        .service(create_department)
        .service(get_department)
        .service(rename_department)
        .service(delete_department)
        .service(create_section)
        .service(get_section)
        .service(rename_section)
        .service(delete_section);
}
