//! API keys of one tenant (DESIGN.md section 11): create, list, read, change, rotate, revoke.
//! Owners only, never a key (the policy's `ManageApiKeys`). Secrets are generated here and
//! leave only through the one answer that shows them; the table holds their digests. Every
//! change is audited without the secret. The guard (`auth::guard`) authenticates with them.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::audit::{self, AuditEntry};
use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::AnyConnection;
use crate::db::models::ApiKeyRow;
use crate::db::schema::{api_keys::dsl as k, regions::dsl as r};
use crate::domain::api_key::{self, KeyKind};
use crate::domain::{ApiKeyId, RegionId, Role, now};
use crate::error::ApiError;

/// A key to create.
pub struct NewKey {
    pub name: String,
    pub kind: KeyKind,
    pub role: Role,
    pub regions: Vec<RegionId>,
    pub expires_at: Option<NaiveDateTime>,
}

/// Changes to a key; `None` leaves a field as it is.
pub struct KeyChanges {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub regions: Option<Vec<RegionId>>,
}

fn state(row: &ApiKeyRow) -> Value {
    json!({
        "name": row.name, "kind": row.kind, "role": row.role, "regions": row.region_ids(),
        "prefix": row.prefix, "expires_at": row.expires_at.map(|t| t.and_utc()),
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("API key not found")
}

/// 422 unless every region is one of this tenant's.
fn check_regions(conn: &mut AnyConnection, tenant: &str, regions: &[RegionId]) -> Result<(), ApiError> {
    let ids: Vec<String> = regions.iter().map(|r| r.as_text()).collect();
    let found: i64 = r::regions.filter(r::tenant_id.eq(tenant)).filter(r::id.eq_any(&ids)).count().get_result(conn)?;
    let distinct = ids.iter().collect::<std::collections::HashSet<_>>().len();
    if found as usize != distinct {
        return Err(ApiError::invalid("regions", "names a region this tenant does not have"));
    }
    Ok(())
}

fn load(conn: &mut AnyConnection, ctx: &TenantContext, id: ApiKeyId) -> Result<ApiKeyRow, ApiError> {
    k::api_keys
        .filter(k::tenant_id.eq(ctx.tenant_text()))
        .filter(k::id.eq(id.as_text()))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)
}

fn region_text(regions: &[RegionId]) -> String {
    serde_json::to_string(&regions.iter().map(|r| r.as_text()).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

/// An agent key's role is what the people it enrols get: operator or viewer, never more.
fn check_kind_role(kind: KeyKind, role: Role) -> Result<(), ApiError> {
    if kind == KeyKind::Agent && !role.is_below_admin() {
        return Err(ApiError::invalid(
            "role",
            format!(
                "an agent key's role is the role of the people it enrols: operator or viewer, not {}",
                role.as_str()
            ),
        ));
    }
    Ok(())
}

/// Creates a key and answers it with its secret (the only time the secret is seen).
pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    new: NewKey,
) -> Result<(ApiKeyRow, SecretString), ApiError> {
    ctx.actor().require(TenantAction::ManageApiKeys)?;
    ctx.actor().require_grant(new.role, &new.regions)?;
    check_kind_role(new.kind, new.role)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        check_regions(conn, &tenant, &new.regions)?;
        let secret = api_key::generate(new.kind);
        let at = now();
        let row = ApiKeyRow {
            tenant_id: tenant.clone(),
            id: ApiKeyId::new().as_text(),
            name: new.name,
            kind: new.kind.as_str().into(),
            role: new.role.as_str().into(),
            regions: region_text(&new.regions),
            prefix: secret.prefix,
            secret_digest: secret.digest,
            previous_digest: None,
            previous_expires_at: None,
            created_by: ctx.actor().user_id.as_text(),
            created_at: at,
            expires_at: new.expires_at,
            last_used_at: None,
            revoked_at: None,
            version: 1,
        };
        diesel::insert_into(k::api_keys).values(&row).execute(conn)?;
        let entry = AuditEntry {
            action: "api_key.created",
            target_type: "api_key",
            target_id: Some(row.id.clone()),
            before: None,
            after: Some(state(&row)),
        };
        audit::record(conn, ctx, entry)?;
        Ok((row, secret.secret))
    })
}

/// Newest first, keyset on the time-ordered id; with the total.
pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<ApiKeyRow>, Option<String>, i64), ApiError> {
    ctx.actor().require(TenantAction::ManageApiKeys)?;
    let tenant = ctx.tenant_text();
    let total: i64 = k::api_keys.filter(k::tenant_id.eq(&tenant)).count().get_result(conn)?;
    let mut query = k::api_keys.filter(k::tenant_id.eq(&tenant)).into_boxed();
    if let Some(cursor) = cursor {
        query = query.filter(k::id.lt(cursor.to_string()));
    }
    let rows: Vec<ApiKeyRow> = query.order(k::id.desc()).limit(limit + 1).select(ApiKeyRow::as_select()).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<ApiKeyRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| r.id.clone()) } else { None };
    Ok((page, next, total))
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: ApiKeyId) -> Result<ApiKeyRow, ApiError> {
    ctx.actor().require(TenantAction::ManageApiKeys)?;
    load(conn, ctx, id)
}

/// Renames a key or changes its role or regions; the key feels it at its next request.
pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: ApiKeyId,
    changes: KeyChanges,
    if_match: Option<i32>,
) -> Result<ApiKeyRow, ApiError> {
    ctx.actor().require(TenantAction::ManageApiKeys)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("API key", before.version, if_match)?;
        if before.revoked_at.is_some() {
            return Err(ApiError::conflict("api-key-revoked", "the API key is revoked; create a new one"));
        }
        let role = match changes.role {
            Some(role) => role,
            None => Role::parse(&before.role).ok_or_else(|| ApiError::internal("stored role is invalid"))?,
        };
        let regions = match changes.regions {
            Some(regions) => regions,
            None => before.region_ids().iter().map(|s| crate::domain::ids::parse_stored(s)).collect(),
        };
        ctx.actor().require_grant(role, &regions)?;
        check_kind_role(KeyKind::parse(&before.kind).unwrap_or(KeyKind::Api), role)?;
        check_regions(conn, &tenant, &regions)?;
        let name = changes.name.unwrap_or_else(|| before.name.clone());
        diesel::update(k::api_keys.filter(k::tenant_id.eq(&tenant)).filter(k::id.eq(id.as_text())))
            .set((
                k::name.eq(&name),
                k::role.eq(role.as_str()),
                k::regions.eq(region_text(&regions)),
                k::version.eq(before.version + 1),
            ))
            .execute(conn)?;
        let after = load(conn, ctx, id)?;
        let entry = AuditEntry {
            action: "api_key.updated",
            target_type: "api_key",
            target_id: Some(id.as_text()),
            before: Some(state(&before)),
            after: Some(state(&after)),
        };
        audit::record(conn, ctx, entry)?;
        Ok(after)
    })
}

/// Gives a key a new secret; the old one keeps working for `grace_seconds` (0: stops now).
pub fn rotate(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: ApiKeyId,
    grace_seconds: i64,
) -> Result<(ApiKeyRow, SecretString), ApiError> {
    ctx.actor().require(TenantAction::ManageApiKeys)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        if before.revoked_at.is_some() {
            return Err(ApiError::conflict("api-key-revoked", "the API key is revoked; create a new one"));
        }
        let kind = KeyKind::parse(&before.kind).ok_or_else(|| ApiError::internal("stored key kind is invalid"))?;
        let secret = api_key::generate(kind);
        let at = now();
        let (previous, until) = if grace_seconds > 0 {
            (Some(before.secret_digest.clone()), Some(at + chrono::TimeDelta::seconds(grace_seconds)))
        } else {
            (None, None)
        };
        diesel::update(k::api_keys.filter(k::tenant_id.eq(&tenant)).filter(k::id.eq(id.as_text())))
            .set((
                k::secret_digest.eq(&secret.digest),
                k::prefix.eq(&secret.prefix),
                k::previous_digest.eq(previous),
                k::previous_expires_at.eq(until),
            ))
            .execute(conn)?;
        let after = load(conn, ctx, id)?;
        let entry = AuditEntry {
            action: "api_key.rotated",
            target_type: "api_key",
            target_id: Some(id.as_text()),
            before: Some(json!({"prefix": before.prefix})),
            after: Some(json!({"prefix": after.prefix, "grace_seconds": grace_seconds})),
        };
        audit::record(conn, ctx, entry)?;
        Ok((after, secret.secret))
    })
}

/// Revokes a key at once (the guard looks it up on every request, on every instance). The
/// row stays, so the audit log and the list still name it. Revoking again changes nothing.
pub fn revoke(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: ApiKeyId,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageApiKeys)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("API key", before.version, if_match)?;
        if before.revoked_at.is_some() {
            return Ok(());
        }
        diesel::update(k::api_keys.filter(k::tenant_id.eq(&tenant)).filter(k::id.eq(id.as_text())))
            .set((
                k::revoked_at.eq(now()),
                k::previous_digest.eq(None::<String>),
                k::previous_expires_at.eq(None::<NaiveDateTime>),
                k::version.eq(before.version + 1),
            ))
            .execute(conn)?;
        let entry = AuditEntry {
            action: "api_key.revoked",
            target_type: "api_key",
            target_id: Some(id.as_text()),
            before: Some(state(&before)),
            after: None,
        };
        audit::record(conn, ctx, entry)?;
        Ok(())
    })
}
