//! The signed-in person: `GET /me`, `GET /me/tenants`, `GET /me/sessions`.

use actix_web::{HttpResponse, delete, get, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::auth::TenantChoice;
use crate::auth::Identity;
use crate::db;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions;

/// Your own profile, and the tenant your token acts in.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(example = "ann@example.com")]
    pub email: String,
    pub username: Option<String>,
    #[schema(example = "Ann Smith")]
    pub full_name: String,
    pub avatar_url: Option<String>,
    pub must_change_password: bool,
    /// The tenant your token acts in, if any.
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// Your role in that tenant.
    pub role: Option<String>,
    /// Your regions in that tenant.
    pub regions: Vec<String>,
}

/// Who am I: your profile and the tenant your token acts in.
///
/// Your identity (email, name) and, with a tenant token, your role and regions in that tenant. A
/// token good only for changing the password also reads it.
#[utoipa::path(tag = "me", security(("bearer_auth" = [])), responses((status = 200, body = MeResponse)))]
#[get("/api/v1/me")]
pub async fn me(state: web::Data<AppState>, who: Identity) -> Result<HttpResponse, ApiError> {
    let user_id = who.user_id;
    let tid = who.claims.tid.clone();
    let (user, memberships) = db::run(&state.pool, move |conn| {
        let user = sessions::find_by_id(conn, user_id)?
            .ok_or_else(|| ApiError::Unauthorized("the account no longer exists".into()))?;
        Ok((user, sessions::active_memberships(conn, user_id)?))
    })
    .await?;
    let current = tid.as_ref().and_then(|t| memberships.iter().find(|m| &m.tenant_id == t));
    Ok(HttpResponse::Ok().json(MeResponse {
        id: user.id,
        email: user.email,
        username: user.username,
        full_name: user.full_name,
        avatar_url: user.avatar_url,
        must_change_password: user.must_change_password,
        tenant_id: current.map(|m| m.tenant_id.clone()),
        role: current.map(|m| m.role.clone()),
        regions: current.map(|m| m.regions.clone()).unwrap_or_default(),
    }))
}

/// The tenants you can act in.
#[derive(Serialize, ToSchema)]
pub struct MyTenants {
    pub items: Vec<TenantChoice>,
}

/// The tenants you are an active member of, with your role in each.
///
/// Switch between them with `POST /api/v1/auth/switch`; disabled and pending memberships are not
/// listed.
#[utoipa::path(tag = "me", security(("bearer_auth" = [])), responses((status = 200, body = MyTenants)))]
#[get("/api/v1/me/tenants")]
pub async fn my_tenants(state: web::Data<AppState>, who: Identity) -> Result<HttpResponse, ApiError> {
    let user_id = who.user_id;
    let memberships = db::run(&state.pool, move |conn| sessions::active_memberships(conn, user_id)).await?;
    let items = memberships
        .into_iter()
        .map(|m| TenantChoice { tenant_id: m.tenant_id, name: m.tenant_name, role: m.role })
        .collect();
    Ok(HttpResponse::Ok().json(MyTenants { items }))
}

/// One of your sign-in sessions.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    #[schema(format = Uuid)]
    pub id: String,
    /// The tenant the session acts in; absent when it acts in none yet.
    #[schema(format = Uuid)]
    pub tenant_id: Option<String>,
    /// When you signed in.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The last sign-in or refresh.
    pub last_used_at: chrono::DateTime<chrono::Utc>,
    /// When it ends at the latest.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    #[schema(example = "203.0.113.7")]
    pub ip: Option<String>,
    #[schema(example = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")]
    pub user_agent: Option<String>,
    /// The session of the token you called with.
    pub current: bool,
    /// The SSO connection it came from (it is then for its tenant only); absent after a
    /// password sign-in.
    #[schema(format = Uuid)]
    pub sso_connection_id: Option<String>,
}

/// Your sessions that are still going.
#[derive(Serialize, ToSchema)]
pub struct MySessions {
    pub items: Vec<SessionView>,
}

/// Your sign-in sessions that are still going, newest first.
///
/// Every session you are signed in with (one per sign-in, across tenants), newest first, with the
/// one of the calling token marked `current`.
#[utoipa::path(tag = "me", security(("bearer_auth" = [])), responses((status = 200, body = MySessions)))]
#[get("/api/v1/me/sessions")]
pub async fn my_sessions(state: web::Data<AppState>, who: Identity) -> Result<HttpResponse, ApiError> {
    let user_id = who.user_id;
    let rows = db::run(&state.pool, move |conn| sessions::active(conn, user_id)).await?;
    let current = who.claims.sid.as_deref();
    let items = rows
        .into_iter()
        .map(|r| SessionView {
            current: Some(r.id.as_str()) == current,
            id: r.id,
            tenant_id: r.tenant_id,
            created_at: r.created_at.and_utc(),
            last_used_at: r.last_used_at.and_utc(),
            expires_at: r.expires_at.and_utc(),
            ip: r.ip,
            user_agent: r.user_agent,
            sso_connection_id: r.sso_connection_id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(MySessions { items }))
}

/// End one of your sessions (sign out another device).
///
/// Its access tokens stop working at once and its refresh token no longer refreshes.
#[utoipa::path(
    tag = "me",
    security(("bearer_auth" = [])),
    params(("session_id" = uuid::Uuid, Path, description = "The session's id, from GET /me/sessions")),
    responses((status = 204, description = "Ended"), (status = 404, description = "No such session of yours is going"))
)]
#[delete("/api/v1/me/sessions/{session_id}")]
pub async fn end_my_session(
    state: web::Data<AppState>,
    who: Identity,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user, meta, sid) = (who.user_id, who.meta.clone(), path.into_inner());
    let shown = sid.clone();
    let ended = db::run_write(&state.pool, move |conn| {
        sessions::end_own(conn, user, &sid, sessions::EndReason::EndedByUser, &meta)
    })
    .await?;
    if !ended {
        return Err(ApiError::not_found(format!("no session {shown:?} of yours is going")));
    }
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(me).service(my_tenants).service(my_sessions).service(end_my_session);
}
