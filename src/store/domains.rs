//! Verified domains (DESIGN.md section 13): a tenant adds a domain, publishes the DNS TXT record
//! it is given, and a check that finds it verifies the domain and claims it in `domain_claims`
//! (one tenant per domain, the primary key decides between two racing tenants). Owners (and
//! owner-role API keys). The DNS lookup itself happens outside the transaction (`sso::dns`);
//! this records what it found.
//!
//! Also the sign-in side, which has no tenant context yet: which tenant holds an email's
//! domain, and whether that tenant requires SSO (`sso_required`, `sso_required_for_owners`).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use rand::RngCore;
use serde_json::{Value, json};

use super::audit::{self, AuditEntry};
use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::schema::{
    domain_claims::dsl as dc, sso_connections::dsl as sc, tenant_domains::dsl as td, tenants::dsl as t,
};
use crate::db::{AnyConnection, on_backend};
use crate::domain::{Role, now};
use crate::error::ApiError;
use crate::store::sessions::TenantMembership;

/// A tenant's domain as stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::tenant_domains)]
pub struct DomainRow {
    pub tenant_id: String,
    pub id: String,
    /// Lower-case ASCII (IDNA), without a trailing dot.
    pub domain: String,
    /// The random part of the challenge record's value.
    pub challenge_token: String,
    pub verified_at: Option<NaiveDateTime>,
    pub last_checked_at: Option<NaiveDateTime>,
    /// What the last failed check found (cleared by a successful one).
    pub last_check_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
}

impl DomainRow {
    pub fn is_verified(&self) -> bool {
        self.verified_at.is_some()
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("domain not found")
}

fn claimed_elsewhere(domain: &str) -> ApiError {
    ApiError::conflict(
        "domain-claimed",
        format!("{domain} is verified by another tenant; a domain belongs to one tenant only"),
    )
}

fn state(row: &DomainRow) -> Value {
    json!({
        "domain": row.domain,
        "status": if row.is_verified() { "verified" } else { "pending" },
        "verified_at": row.verified_at.map(crate::domain::time::utc),
        "last_check_error": row.last_check_error,
    })
}

fn audit_change(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    action: &str,
    id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    audit::record(
        conn,
        ctx,
        AuditEntry { action, target_type: "domain", target_id: Some(id.to_string()), before, after },
    )
}

fn load(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<DomainRow, ApiError> {
    td::tenant_domains
        .filter(td::tenant_id.eq(ctx.tenant_text()))
        .filter(td::id.eq(id))
        .select(DomainRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)
}

/// Which tenant holds `domain`'s claim.
fn claim_holder(conn: &mut AnyConnection, domain: &str) -> Result<Option<String>, ApiError> {
    Ok(dc::domain_claims.filter(dc::domain.eq(domain)).select(dc::tenant_id).first(conn).optional()?)
}

/// 128 bits from the OS, as 32 lower-case hex digits (safe in any DNS console).
fn challenge_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Adds `domain` (already normalised and checked) as pending, with a fresh challenge token.
/// 409 when the tenant has it already, or another tenant has verified it.
pub fn add(conn: &mut AnyConnection, ctx: &TenantContext, domain: &str) -> Result<DomainRow, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let existing: i64 = td::tenant_domains
            .filter(td::tenant_id.eq(&tenant))
            .filter(td::domain.eq(domain))
            .count()
            .get_result(conn)?;
        if existing > 0 {
            return Err(ApiError::conflict("domain-exists", format!("this tenant already has {domain}")));
        }
        if claim_holder(conn, domain)?.is_some_and(|holder| holder != tenant) {
            return Err(claimed_elsewhere(domain));
        }
        let at = now();
        let row = DomainRow {
            tenant_id: tenant.clone(),
            id: uuid::Uuid::now_v7().to_string(),
            domain: domain.to_string(),
            challenge_token: challenge_token(),
            verified_at: None,
            last_checked_at: None,
            last_check_error: None,
            created_at: at,
            updated_at: at,
            version: 1,
        };
        diesel::insert_into(td::tenant_domains).values(&row).execute(conn)?;
        audit_change(conn, ctx, "domain.added", &row.id, None, Some(state(&row)))?;
        Ok(row)
    })
}

/// Newest first, keyset on the time-ordered id; with the total.
pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<DomainRow>, Option<String>, i64), ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    let total: i64 = td::tenant_domains.filter(td::tenant_id.eq(&tenant)).count().get_result(conn)?;
    let mut query = td::tenant_domains.filter(td::tenant_id.eq(&tenant)).into_boxed();
    if let Some(cursor) = cursor {
        query = query.filter(td::id.lt(cursor.to_string()));
    }
    let rows: Vec<DomainRow> = query.order(td::id.desc()).limit(limit + 1).select(DomainRow::as_select()).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<DomainRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| r.id.clone()) } else { None };
    Ok((page, next, total))
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<DomainRow, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    load(conn, ctx, id)
}

/// What a check came to.
pub enum Checked {
    /// The record was there: the domain is verified and claimed by this tenant.
    Verified(DomainRow),
    /// It was not; `detail` says what was found (also kept as `last_check_error`).
    Failed { row: DomainRow, detail: String },
}

/// Records a check of domain `id` whose DNS lookup came to `found` (`Err`: what was found
/// instead). Success claims the domain for this tenant; when another tenant holds the claim,
/// 409 `domain-claimed` and nothing changes. A failed check of a verified domain leaves it
/// verified (the record may be removed once it has done its work) and notes the failure.
pub fn record_check(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    found: Result<(), String>,
) -> Result<Checked, ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        let at = now();
        match found {
            Ok(()) => {
                if !before.is_verified() {
                    // The primary key on the domain decides between tenants verifying at once:
                    // the loser's insert does nothing (PostgreSQL waits for the winner's commit).
                    let inserted = on_backend!(conn, |conn| diesel::insert_into(dc::domain_claims)
                        .values((
                            dc::domain.eq(&before.domain),
                            dc::tenant_id.eq(&tenant),
                            dc::domain_id.eq(&before.id),
                            dc::claimed_at.eq(at),
                        ))
                        .on_conflict_do_nothing()
                        .execute(conn))?;
                    if inserted == 0 && claim_holder(conn, &before.domain)?.as_deref() != Some(tenant.as_str()) {
                        return Err(claimed_elsewhere(&before.domain));
                    }
                }
                let after = DomainRow {
                    verified_at: before.verified_at.or(Some(at)),
                    last_checked_at: Some(at),
                    last_check_error: None,
                    updated_at: at,
                    version: before.version + 1,
                    ..before.clone()
                };
                write_check(conn, &tenant, &after)?;
                if !before.is_verified() {
                    audit_change(conn, ctx, "domain.verified", id, Some(state(&before)), Some(state(&after)))?;
                }
                Ok(Checked::Verified(after))
            }
            Err(detail) => {
                let after = DomainRow {
                    last_checked_at: Some(at),
                    last_check_error: Some(detail.clone()),
                    updated_at: at,
                    version: before.version + 1,
                    ..before.clone()
                };
                write_check(conn, &tenant, &after)?;
                audit_change(conn, ctx, "domain.verification_failed", id, Some(state(&before)), Some(state(&after)))?;
                Ok(Checked::Failed { row: after, detail })
            }
        }
    })
}

fn write_check(conn: &mut AnyConnection, tenant: &str, row: &DomainRow) -> Result<(), ApiError> {
    diesel::update(td::tenant_domains.filter(td::tenant_id.eq(tenant)).filter(td::id.eq(&row.id)))
        .set((
            td::verified_at.eq(row.verified_at),
            td::last_checked_at.eq(row.last_checked_at),
            td::last_check_error.eq(&row.last_check_error),
            td::updated_at.eq(row.updated_at),
            td::version.eq(row.version),
        ))
        .execute(conn)?;
    Ok(())
}

/// Removes domain `id` and this tenant's claim on it; not the last verified domain while the
/// tenant requires SSO (409).
pub fn remove(conn: &mut AnyConnection, ctx: &TenantContext, id: &str, if_match: Option<i32>) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageSso)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("domain", before.version, if_match)?;
        if before.is_verified() {
            let required: bool = t::tenants.filter(t::id.eq(&tenant)).select(t::sso_required).first(conn)?;
            let claims: i64 = dc::domain_claims.filter(dc::tenant_id.eq(&tenant)).count().get_result(conn)?;
            if required && claims <= 1 {
                return Err(ApiError::conflict(
                    "sso-required-needs-domain",
                    format!(
                        "{} is the tenant's last verified domain and the tenant requires SSO; turn sso_required off first",
                        before.domain
                    ),
                ));
            }
        }
        diesel::delete(dc::domain_claims.filter(dc::domain.eq(&before.domain)).filter(dc::tenant_id.eq(&tenant)))
            .execute(conn)?;
        diesel::delete(td::tenant_domains.filter(td::tenant_id.eq(&tenant)).filter(td::id.eq(id))).execute(conn)?;
        audit_change(conn, ctx, "domain.removed", id, Some(state(&before)), None)
    })
}

/// The tenant that has verified `domain` (lower case, as `sso::email_domain` gives it), and
/// its domain's id. For sign-in, which has no tenant context yet.
pub fn verified_tenant_for_domain(
    conn: &mut AnyConnection,
    domain: &str,
) -> Result<Option<(String, String)>, ApiError> {
    Ok(dc::domain_claims.filter(dc::domain.eq(domain)).select((dc::tenant_id, dc::domain_id)).first(conn).optional()?)
}

/// Whether `tenant` has verified `domain`.
pub fn tenant_has_verified_domain(conn: &mut AnyConnection, tenant: &str, domain: &str) -> Result<bool, ApiError> {
    Ok(verified_tenant_for_domain(conn, domain)?.is_some_and(|(holder, _)| holder == tenant))
}

/// A tenant that requires SSO for the addresses of one of its verified domains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enforcement {
    pub tenant_id: String,
    /// Owners must use SSO too (otherwise they keep their password).
    pub for_owners: bool,
}

impl Enforcement {
    /// Whether a member of the enforcing tenant with `role` must sign in there with SSO.
    pub fn applies_to(&self, tenant_id: &str, role: &str) -> bool {
        self.tenant_id == tenant_id && (self.for_owners || role != Role::Owner.as_str())
    }
}

/// The tenant requiring SSO for `email`'s domain, if any: decided by the domain alone.
pub fn enforcement_for_email(conn: &mut AnyConnection, email: &str) -> Result<Option<Enforcement>, ApiError> {
    let Some(domain) = crate::sso::email_domain(email) else { return Ok(None) };
    let Some((tenant_id, _)) = verified_tenant_for_domain(conn, &domain)? else { return Ok(None) };
    let flags: Option<(bool, bool)> = t::tenants
        .filter(t::id.eq(&tenant_id))
        .select((t::sso_required, t::sso_required_for_owners))
        .first(conn)
        .optional()?;
    Ok(match flags {
        Some((true, for_owners)) => Some(Enforcement { tenant_id, for_owners }),
        _ => None,
    })
}

/// What turning `sso_required` on still needs in `tenant`, in words (empty when nothing).
pub(in crate::store) fn missing_for_sso_required(
    conn: &mut AnyConnection,
    tenant: &str,
) -> Result<Vec<&'static str>, ApiError> {
    let mut missing = Vec::new();
    let domains: i64 = dc::domain_claims.filter(dc::tenant_id.eq(tenant)).count().get_result(conn)?;
    if domains == 0 {
        missing.push("a verified domain (POST /api/v1/tenants/{tenant_id}/domains, then .../verify)");
    }
    let connections: i64 =
        sc::sso_connections.filter(sc::tenant_id.eq(tenant)).filter(sc::enabled.eq(true)).count().get_result(conn)?;
    if connections == 0 {
        missing.push("an enabled SSO connection (/api/v1/tenants/{tenant_id}/sso/connections)");
    }
    Ok(missing)
}

/// Whether session `session` came from an SSO connection of `tenant`.
pub fn session_is_sso_for(conn: &mut AnyConnection, session: &str, tenant: &str) -> Result<bool, ApiError> {
    use crate::db::schema::sessions::dsl as s;
    let connection: Option<Option<String>> =
        s::sessions.filter(s::id.eq(session)).select(s::sso_connection_id).first(conn).optional()?;
    let Some(Some(connection)) = connection else { return Ok(false) };
    let found: i64 =
        sc::sso_connections.filter(sc::tenant_id.eq(tenant)).filter(sc::id.eq(&connection)).count().get_result(conn)?;
    Ok(found > 0)
}

/// A person's active memberships split by the SSO requirement of their email's domain:
/// `(usable, refused)`. A membership is refused when its tenant requires SSO for that domain
/// and the person's role (owners only with `sso_required_for_owners`), unless `session` came
/// from one of that tenant's SSO connections. Everything else stays usable with a password.
pub fn split_by_sso_requirement(
    conn: &mut AnyConnection,
    email: &str,
    memberships: Vec<TenantMembership>,
    session: Option<&str>,
) -> Result<(Vec<TenantMembership>, Vec<TenantMembership>), ApiError> {
    let Some(enforcement) = enforcement_for_email(conn, email)? else { return Ok((memberships, Vec::new())) };
    let mut usable = Vec::with_capacity(memberships.len());
    let mut refused = Vec::new();
    for m in memberships {
        let exempt_by_session = match session {
            Some(sid) if enforcement.applies_to(&m.tenant_id, &m.role) => session_is_sso_for(conn, sid, &m.tenant_id)?,
            _ => false,
        };
        if enforcement.applies_to(&m.tenant_id, &m.role) && !exempt_by_session {
            refused.push(m);
        } else {
            usable.push(m);
        }
    }
    Ok((usable, refused))
}

/// The answer to a password sign-in (or a switch, refresh or reset) that the SSO requirement
/// refuses.
pub fn sso_required(detail: impl Into<String>) -> ApiError {
    ApiError::forbidden("sso-required", detail)
}
