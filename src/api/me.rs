//! The signed-in person: `GET /me`, `GET /me/tenants`.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::AppState;
use crate::api::auth::TenantChoice;
use crate::auth::Identity;
use crate::db;
use crate::error::ApiError;
use crate::store::sessions;

/// Your own profile, and the tenant your token acts in.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    pub id: String,
    #[schema(example = "ann@example.com")]
    pub email: String,
    pub username: Option<String>,
    #[schema(example = "Ann Smith")]
    pub full_name: String,
    pub avatar_url: Option<String>,
    pub must_change_password: bool,
    /// The tenant your token acts in, if any.
    pub tenant_id: Option<String>,
    /// Your role in that tenant.
    pub role: Option<String>,
    /// Your regions in that tenant.
    pub regions: Vec<String>,
}

/// Who am I: your profile and the tenant your token acts in.
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

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(me).service(my_tenants);
}
