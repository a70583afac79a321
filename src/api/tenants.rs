//! Tenants: `POST /api/v1/tenants` (platform operators), `GET|PATCH /api/v1/tenants/{tenant_id}`.

use actix_web::{HttpRequest, HttpResponse, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use validator::Validate;

use crate::api::{Problems, double_option, etag, if_match, validate};
use crate::auth::{RequestMeta, TenantAccess};
use crate::db;
use crate::domain::password::{DEFAULT_MIN_LENGTH, MIN_LENGTH_FLOOR, check_policy, digest_generated, generate_secret};
use crate::domain::{EmailAddress, Plan, TenantId, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::tenants::{self, NewTenant, TenantPatch, TenantRecord};

/// A new tenant and its first owner.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme", "owner_email": "owner@acme.example", "owner_full_name": "Olive Owner", "plan": "plus"}))]
pub struct CreateTenantRequest {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[schema(format = Email, max_length = 254)]
    pub owner_email: String,
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub owner_full_name: Option<String>,
    /// The owner's password; generated (and returned once) when absent.
    #[schema(min_length = 12, max_length = 256)]
    pub owner_password: Option<String>,
    /// Default `free`.
    pub plan: Option<Plan>,
}

/// The created tenant and owner. `password` only when it was generated.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tenant_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e2f", "user_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30", "email": "owner@acme.example", "password": "q3Vt0b1Yx9J2mWcK4hN7sA"}))]
pub struct CreateTenantResponse {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Creates a tenant and its owner (shared by `roster bootstrap` and the demo seed).
pub async fn create_tenant_with_owner(
    state: &AppState,
    body: CreateTenantRequest,
    meta: RequestMeta,
) -> Result<CreateTenantResponse, ApiError> {
    match create_tenant_keyed(state, body, meta, None).await? {
        Answer::New(created) => Ok(created),
        Answer::Replayed(_) => Err(ApiError::internal("a creation without a key was replayed")),
    }
}

/// A new tenant, or the first answer to a retried `Idempotency-Key`.
pub enum Answer {
    New(CreateTenantResponse),
    Replayed(crate::store::idempotency::Replay),
}

async fn create_tenant_keyed(
    state: &AppState,
    body: CreateTenantRequest,
    meta: RequestMeta,
    idem: Option<crate::store::idempotency::IdempotencyKey>,
) -> Result<Answer, ApiError> {
    let mut problems = Problems::validated(&body);
    let email = problems.check("owner_email", EmailAddress::parse(&body.owner_email));
    if body.name.trim().is_empty() && !problems.0.iter().any(|e| e.field == "name") {
        problems.add("name", "must not be blank");
    }
    if let (Some(pw), Some(email)) = (&body.owner_password, &email) {
        for why in check_policy(pw, DEFAULT_MIN_LENGTH, Some(email.as_str()), None).err().unwrap_or_default() {
            problems.add("owner_password", why);
        }
    }
    problems.finish()?;
    let email = email.ok_or_else(|| ApiError::internal("email parsed"))?;
    let (hash, generated) = match body.owner_password {
        Some(pw) => (state.hashers.hash(&SecretString::from(pw)).await?, None),
        None => {
            let secret = generate_secret();
            (digest_generated(&secret), Some(secret))
        }
    };
    let full_name = crate::api::clean(body.owner_full_name)
        .unwrap_or_else(|| email.as_str().split('@').next().unwrap_or("Owner").to_string());
    let new = NewTenant {
        name: body.name.trim().to_string(),
        plan: body.plan.unwrap_or(Plan::Free),
        owner_email: email.clone(),
        owner_full_name: full_name,
        owner_password_hash: hash,
    };
    let shown = email.as_str().to_string();
    let creation = db::run_write(&state.pool, move |conn| {
        // The kept answer never holds the generated password.
        let render = |c: &tenants::CreatedTenant| {
            let kept = CreateTenantResponse {
                tenant_id: c.tenant_id,
                user_id: c.user_id,
                email: shown.clone(),
                password: None,
            };
            serde_json::to_string(&kept).unwrap_or_default()
        };
        tenants::create(conn, new, &meta, idem.as_ref().map(|k| (k, &render as tenants::RenderReplay<'_>)))
    })
    .await?;
    let created = match creation {
        tenants::Creation::New(created) => created,
        tenants::Creation::Replayed(replay) => return Ok(Answer::Replayed(replay)),
    };
    Ok(Answer::New(CreateTenantResponse {
        tenant_id: created.tenant_id,
        user_id: created.user_id,
        email: email.into_string(),
        // An existing identity keeps its own password: nothing was generated for it.
        password: generated.filter(|_| created.new_identity).map(|s| s.expose_secret().to_string()),
    }))
}

fn check_platform_token(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(expected) = &state.config.platform_token else {
        return Err(ApiError::not_found("tenant creation over HTTP is disabled: set ROSTER_PLATFORM_TOKEN"));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .unwrap_or("");
    let same = crate::auth::passwords::constant_time_eq(given.trim().as_bytes(), expected.expose_secret().as_bytes());
    if same {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("send the platform token: Authorization: Bearer <ROSTER_PLATFORM_TOKEN>".into()))
    }
}

/// Create a tenant with its first owner (platform operators).
///
/// Authorized by the platform token (`ROSTER_PLATFORM_TOKEN`); the route answers 404 when
/// that is not set. When `owner_email` already has an identity, that person becomes the owner
/// with their existing credentials and no password is returned.
///
/// With an `Idempotency-Key` header, a retry of the same request within 24 hours answers the
/// first response again (marked `Idempotent-Replayed: true`, without the generated password)
/// and creates nothing; the same key with a different request answers 409.
#[utoipa::path(
    tag = "tenants",
    security(("platform_token" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the first answer is replayed for 24 h")),
    request_body = CreateTenantRequest,
    responses(
        (status = 201, description = "Created", body = CreateTenantResponse),
        (status = 401, description = "Missing or wrong platform token"),
        (status = 404, description = "Tenant creation over HTTP is disabled"),
        (status = 409, description = "Idempotency-Key already used for a different request"),
        (status = 422, description = "Invalid fields"),
    )
)]
#[post("/api/v1/tenants")]
pub async fn create_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: crate::api::json::RawBody,
) -> Result<HttpResponse, ApiError> {
    // The token first: a caller without it learns nothing from the body's problems.
    check_platform_token(&state, &req)?;
    crate::error::deferred_problem(&req)?;
    let body: CreateTenantRequest = crate::api::json::parse_body(&req, &body.0)?;
    let idem = crate::api::idempotency_key(&req)?;
    match create_tenant_keyed(&state, body, RequestMeta::from_request(&req), idem).await? {
        Answer::New(created) => Ok(HttpResponse::Created().insert_header(("Cache-Control", "no-store")).json(created)),
        Answer::Replayed(replay) => Ok(crate::api::replayed(replay)),
    }
}

/// Tenant settings.
#[derive(Serialize, ToSchema)]
pub struct TenantSettings {
    /// When false, admins keep only their own row (owners run user administration).
    pub admins_can_manage_users: bool,
    /// Minimum password length for members (8 or more).
    #[schema(example = 12)]
    pub password_min_length: i32,
    /// Members whose email lies in one of the tenant's verified domains sign in with SSO only:
    /// their password sign-in into this tenant, and a self-service reset for such an address,
    /// answer 403 `sso-required`.
    pub sso_required: bool,
    /// With `sso_required`, owners too (otherwise owners keep their password).
    pub sso_required_for_owners: bool,
}

/// A tenant.
#[derive(Serialize, ToSchema)]
pub struct TenantView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "Acme")]
    pub name: String,
    #[schema(example = "acme")]
    pub slug: String,
    pub plan: Plan,
    /// Seats in force (the override, else the plan's); null is unlimited.
    pub seat_limit: Option<i32>,
    /// A per-tenant override of the plan's seats.
    pub seat_limit_override: Option<i32>,
    /// Members holding a seat (active, invited, pending approval).
    pub seats_used: i64,
    #[schema(format = Uuid)]
    pub billing_owner_id: Option<String>,
    pub settings: TenantSettings,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<TenantRecord> for TenantView {
    fn from(rec: TenantRecord) -> Self {
        let seat_limit = rec.seat_limit();
        let r = rec.row;
        TenantView {
            id: r.id,
            name: r.name,
            slug: r.slug,
            plan: Plan::parse(&r.plan).unwrap_or(Plan::Free),
            seat_limit,
            seat_limit_override: r.seat_limit_override,
            seats_used: rec.seats_used,
            billing_owner_id: r.billing_owner_id,
            settings: TenantSettings {
                admins_can_manage_users: r.admins_can_manage_users,
                password_min_length: r.password_min_length,
                sso_required: r.sso_required,
                sso_required_for_owners: r.sso_required_for_owners,
            },
            version: r.version,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

fn tenant_response(rec: TenantRecord) -> HttpResponse {
    let version = rec.row.version;
    HttpResponse::Ok().insert_header(etag(version)).json(TenantView::from(rec))
}

/// Read the tenant: name, plan, seats and settings. Any member may read it.
///
/// Shows the plan, the seat limit (the plan's or an override), seats used (active and pending
/// members plus open invitations) and the settings every member lives under.
#[utoipa::path(
    tag = "tenants",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    responses((status = 200, body = TenantView, headers(("ETag" = String))), (status = 404, description = "No such tenant for you"))
)]
#[get("/api/v1/tenants/{tenant_id}")]
pub async fn get_tenant(state: web::Data<AppState>, access: TenantAccess) -> Result<HttpResponse, ApiError> {
    Ok(tenant_response(access.run(&state.pool, tenants::get).await?))
}

/// Settings to change.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct TenantSettingsPatch {
    pub admins_can_manage_users: Option<bool>,
    #[schema(minimum = 8, maximum = 128)]
    pub password_min_length: Option<i32>,
    /// Turning it on needs a verified domain and an enabled SSO connection (409 `sso-not-ready`
    /// otherwise). Owners only, like every SSO setting.
    pub sso_required: Option<bool>,
    pub sso_required_for_owners: Option<bool>,
}

/// Fields to change; absent fields stay as they are.
#[derive(Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan": "plus", "settings": {"admins_can_manage_users": false}}))]
pub struct TenantPatchRequest {
    #[validate(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    pub plan: Option<Plan>,
    /// Override the plan's seats; `null` returns to the plan's.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 1000000)]
    pub seat_limit: Option<Option<i32>>,
    /// Must be an active owner.
    pub billing_owner_id: Option<UserId>,
    pub settings: Option<TenantSettingsPatch>,
}

/// Change the tenant's name, plan, seats, billing owner or settings (owners only).
///
/// Absent fields stay. Send `If-Match` with the `ETag` of your last read to refuse lost updates
/// (412). Lowering the seat limit below the seats used is refused (409).
#[utoipa::path(
    tag = "tenants",
    security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    request_body = TenantPatchRequest,
    responses(
        (status = 200, body = TenantView, headers(("ETag" = String))),
        (status = 403, description = "Only owners change the tenant"),
        (status = 404, description = "No such tenant for you"),
        (status = 409, description = "The new seat limit is below the seats in use, or SSO cannot be required yet (`sso-not-ready`: no verified domain or no enabled connection)"),
        (status = 412, description = "If-Match is stale"),
        (status = 422, description = "Invalid fields"),
    )
)]
#[patch("/api/v1/tenants/{tenant_id}")]
pub async fn update_tenant(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<TenantPatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    validate(&body)?;
    let mut problems = Problems::default();
    if let Some(Some(n)) = body.seat_limit
        && !(1..=1_000_000).contains(&n)
    {
        problems.add("seat_limit", "must be between 1 and 1000000, or null for the plan's");
    }
    let settings = body.settings.unwrap_or_default();
    if let Some(n) = settings.password_min_length
        && !(MIN_LENGTH_FLOOR..=128).contains(&n)
    {
        problems.add("settings.password_min_length", format!("must be between {MIN_LENGTH_FLOOR} and 128"));
    }
    if body.name.as_deref().is_some_and(|n| n.trim().is_empty()) {
        problems.add("name", "must not be blank");
    }
    problems.finish()?;
    let version = if_match(&req)?;
    let patch = TenantPatch {
        name: body.name.map(|n| n.trim().to_string()),
        plan: body.plan,
        seat_limit: body.seat_limit,
        billing_owner_id: body.billing_owner_id,
        admins_can_manage_users: settings.admins_can_manage_users,
        password_min_length: settings.password_min_length,
        sso_required: settings.sso_required,
        sso_required_for_owners: settings.sso_required_for_owners,
    };
    Ok(tenant_response(
        access.run_write(&state.pool, move |conn, ctx| tenants::update(conn, ctx, patch, version)).await?,
    ))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_tenant).service(get_tenant).service(update_tenant);
}
