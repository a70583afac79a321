//! The audit log: written in the same transaction as the change it records, never updated or
//! deleted.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::Value;

use crate::auth::{RequestMeta, TenantContext};
use crate::db::AnyConnection;
use crate::db::models::AuditRow;
use crate::db::schema::audit_events::dsl as a;
use crate::domain::{TenantId, UserId, now};
use crate::error::ApiError;

/// Who did it.
pub enum AuditActor {
    User(UserId),
    /// An API key: its id and name.
    ApiKey(String, String),
    Platform,
    /// An SSO connection (a just-in-time member, a refused sign-in): its id and name.
    SsoConnection(String, String),
}

pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Records an action a person took on their own account (a password change or reset) in the
/// audit log of every tenant they belong to.
pub(in crate::store) fn record_for_person(
    conn: &mut AnyConnection,
    user: UserId,
    meta: &RequestMeta,
    action: &str,
    after: Value,
) -> Result<(), ApiError> {
    use crate::db::schema::memberships::dsl as m;
    let tenants = m::memberships.filter(m::user_id.eq(user.as_text())).select(m::tenant_id).load::<String>(conn)?;
    for tenant in tenants {
        let entry = AuditEntry {
            action,
            target_type: "member",
            target_id: Some(user.as_text()),
            before: None,
            after: Some(after.clone()),
        };
        record_raw(conn, crate::domain::ids::parse_stored(&tenant), AuditActor::User(user), meta, entry)?;
    }
    Ok(())
}

pub(in crate::store) fn record_raw(
    conn: &mut AnyConnection,
    tenant: TenantId,
    actor: AuditActor,
    meta: &RequestMeta,
    entry: AuditEntry<'_>,
) -> Result<(), ApiError> {
    let (actor_type, actor_id, actor_name) = match actor {
        AuditActor::User(u) => ("user", Some(u.as_text()), None),
        AuditActor::ApiKey(id, name) => ("api_key", Some(id), Some(name)),
        AuditActor::Platform => ("platform", None, None),
        AuditActor::SsoConnection(id, name) => ("sso_connection", Some(id), Some(name)),
    };
    let row = AuditRow {
        id: uuid::Uuid::now_v7().hyphenated().to_string(),
        tenant_id: tenant.as_text(),
        actor_type: actor_type.into(),
        actor_id,
        action: entry.action.into(),
        target_type: entry.target_type.into(),
        target_id: entry.target_id,
        before_state: entry.before.map(|v| v.to_string()),
        after_state: entry.after.map(|v| v.to_string()),
        request_id: meta.request_id.clone(),
        ip: meta.ip.clone(),
        created_at: now(),
        actor_name,
    };
    diesel::insert_into(a::audit_events).values(&row).execute(conn)?;
    // Every change is also an event, for the feed and the webhooks.
    crate::store::events::emit(conn, &row.tenant_id, std::slice::from_ref(&row))
}

/// Records an event by the context's caller in its tenant.
pub fn record(conn: &mut AnyConnection, ctx: &TenantContext, entry: AuditEntry<'_>) -> Result<(), ApiError> {
    let actor = match ctx.actor().audit_identity() {
        (_, id, Some(name)) => AuditActor::ApiKey(id, name),
        _ => AuditActor::User(ctx.actor().user_id),
    };
    record_raw(conn, ctx.tenant_id(), actor, ctx.meta(), entry)
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub after: Option<NaiveDateTime>,
    pub before: Option<NaiveDateTime>,
    pub cursor: Option<String>,
    pub limit: i64,
}

/// Newest first, keyset on the time-ordered id.
pub fn list(conn: &mut AnyConnection, ctx: &TenantContext, f: &AuditFilter) -> Result<(Vec<AuditRow>, i64), ApiError> {
    let tenant = ctx.tenant_text();
    let build = || {
        let mut q = a::audit_events.filter(a::tenant_id.eq(tenant.clone())).into_boxed();
        if let Some(v) = &f.action {
            q = if let Some(prefix) = v.strip_suffix(".*") {
                q.filter(a::action.like(format!("{}.%", crate::db::escape_like(prefix))).escape('\\'))
            } else {
                q.filter(a::action.eq(v.clone()))
            };
        }
        if let Some(v) = &f.actor_id {
            q = q.filter(a::actor_id.eq(v.clone()));
        }
        if let Some(v) = &f.target_id {
            q = q.filter(a::target_id.eq(v.clone()));
        }
        if let Some(v) = f.after {
            q = q.filter(a::created_at.ge(v));
        }
        if let Some(v) = f.before {
            q = q.filter(a::created_at.lt(v));
        }
        q
    };
    let total = build().count().get_result::<i64>(conn)?;
    let mut q = build();
    if let Some(c) = &f.cursor {
        q = q.filter(a::id.lt(c.clone()));
    }
    let rows = q.order(a::id.desc()).limit(f.limit + 1).select(AuditRow::as_select()).load(conn)?;
    Ok((rows, total))
}
