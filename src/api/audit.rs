//! The audit log: `GET /api/v1/tenants/{tenant_id}/audit-events` (owners). Read-only.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::{Problems, clean, page_limit};
use crate::auth::TenantAccess;
use crate::auth::policy::TenantAction;
use crate::db::models::AuditRow;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::audit::{self, AuditFilter};

/// One recorded change.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e50", "actor_type": "user", "actor_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30", "actor_name": null,
    "action": "member.disabled", "target_type": "member", "target_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e31",
    "before": {"status": "active"}, "after": {"status": "disabled"}, "request_id": "0193...", "ip": "127.0.0.1",
    "created_at": "2026-11-22T10:00:00Z"
}))]
pub struct AuditEventView {
    #[schema(format = Uuid)]
    pub id: String,
    /// `user`, `api_key`, `sso_connection` or `platform`.
    pub actor_type: String,
    /// The user's or the API key's id.
    #[schema(format = Uuid)]
    pub actor_id: Option<String>,
    /// The API key's name when a key acted.
    pub actor_name: Option<String>,
    /// `member.created`, `member.updated`, `member.enabled`, `member.disabled`,
    /// `member.deleted`, `member.password_reset`, `user.password_changed`, `tenant.created`,
    /// `tenant.updated`, `region.created`, `region.updated`, `region.deleted`, `api_key.created`,
    /// `api_key.updated`, `api_key.rotated`, `api_key.revoked`.
    pub action: String,
    pub target_type: String,
    #[schema(format = Uuid)]
    pub target_id: Option<String>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<AuditRow> for AuditEventView {
    fn from(r: AuditRow) -> Self {
        let parse = |s: Option<String>| {
            s.and_then(|s| serde_json::from_str(&s).ok()).map(|mut v| {
                crate::domain::time::mark_legacy_times_utc(&mut v);
                v
            })
        };
        AuditEventView {
            id: r.id,
            actor_type: r.actor_type,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            before: parse(r.before_state),
            after: parse(r.after_state),
            request_id: r.request_id,
            ip: r.ip,
            created_at: r.created_at.and_utc(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEventView>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// Filters for the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// An action (`member.disabled`) or a family (`member.*`).
    #[param(schema_with = crate::api::params::audit_action)]
    pub action: Option<String>,
    /// The acting user's id.
    #[param(schema_with = crate::api::params::uuid)]
    pub actor_id: Option<String>,
    /// The target's id.
    #[param(schema_with = crate::api::params::uuid)]
    pub target_id: Option<String>,
    /// Events at or after this time: RFC 3339 with any offset (`2026-11-22T10:00:00Z`) or a
    /// date (`2026-11-22`, midnight UTC).
    #[param(schema_with = crate::api::params::instant)]
    pub from: Option<String>,
    /// Events before this time (same forms).
    #[param(schema_with = crate::api::params::instant)]
    pub to: Option<String>,
    /// Page size, 1 to 200 (default 50).
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

fn parse_time(p: &mut Problems, field: &str, v: Option<String>) -> Option<NaiveDateTime> {
    clean(v).and_then(|v| p.check(field, crate::domain::time::parse_instant(&v)))
}

/// The audit log, newest first (owners).
///
/// Every change in the tenant, newest first: who (user, platform), what (`action`), on what
/// (`target_type`, `target_id`), the state before and after, the request id and the address. Filter
/// by action or family (`member.*`), actor, target and time.
#[utoipa::path(tag = "audit", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), AuditParams),
    responses((status = 200, body = AuditPage), (status = 403, description = "Only owners read the audit log"),
        (status = 404, description = "No such tenant for you"), (status = 422, description = "A filter is invalid")))]
#[get("/api/v1/tenants/{tenant_id}/audit-events")]
pub async fn list_audit_events(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<AuditParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let after = parse_time(&mut p, "from", q.from);
    let before = parse_time(&mut p, "to", q.to);
    let limit = page_limit(q.limit).unwrap_or_else(|_| {
        p.add("limit", "must be between 1 and 200");
        50
    });
    p.finish()?;
    let cursor = match clean(q.cursor) {
        Some(c) => Some(crate::store::cursor::decode(&c)?.1),
        None => None,
    };
    let filter = AuditFilter {
        action: clean(q.action),
        actor_id: clean(q.actor_id),
        target_id: clean(q.target_id),
        after,
        before,
        cursor,
        limit,
    };
    let (mut rows, total) = access
        .run(&state.pool, move |conn, ctx| {
            ctx.actor().require(TenantAction::ReadAudit)?;
            audit::list(conn, ctx, &filter)
        })
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| crate::store::cursor::encode("", &r.id))
    } else {
        None
    };
    Ok(HttpResponse::Ok().json(AuditPage {
        items: rows.into_iter().map(AuditEventView::from).collect(),
        next_cursor,
        total,
    }))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_audit_events);
}
