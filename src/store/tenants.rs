//! Tenants: creation by platform operators (with a first owner), reading and settings.

use diesel::prelude::*;
use serde_json::json;

use super::audit::{self, AuditActor, AuditEntry};
use super::idempotency::{self, IdempotencyKey, Replay};
use super::members::{Joining, Person, SignIn, new_member_rows, seats_used};
use crate::auth::policy::TenantAction;
use crate::auth::{RequestMeta, TenantContext};
use crate::db::models::{TenantRow, UserRow};
use crate::db::schema::{memberships::dsl as m, tenants::dsl as t, users::dsl as u};
use crate::db::{AnyConnection, on_backend, write_tx};
use crate::domain::{EmailAddress, MemberStatus, Plan, Role, TenantId, UserId, now};
use crate::error::ApiError;

/// What `POST /api/v1/tenants` and `roster bootstrap` need.
pub struct NewTenant {
    pub name: String,
    pub plan: Plan,
    pub owner_email: EmailAddress,
    pub owner_full_name: String,
    /// Stored form of the owner's password; ignored when the email already has an identity.
    pub owner_password_hash: String,
}

pub struct CreatedTenant {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    /// False when the owner already had an identity (its password is left alone).
    pub new_identity: bool,
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').chars().take(48).collect::<String>();
    if slug.is_empty() { "tenant".into() } else { slug }
}

/// Idempotency keys of platform calls are kept under this scope instead of a tenant id.
pub const PLATFORM_SCOPE: &str = "platform";

/// A creation, or the first answer to a retried `Idempotency-Key`.
pub enum Creation {
    New(CreatedTenant),
    Replayed(Replay),
}

/// Renders the answer kept for a retry (never with the generated password).
pub type RenderReplay<'a> = idempotency::Render<'a, CreatedTenant>;

pub fn create(
    conn: &mut AnyConnection,
    new: NewTenant,
    meta: &RequestMeta,
    idem: Option<(&IdempotencyKey, RenderReplay<'_>)>,
) -> Result<Creation, ApiError> {
    write_tx(conn, |conn| {
        if let Some((key, _)) = idem {
            // One platform creation at a time per key: a parallel retry waits, then replays.
            lock_idempotency_scope(conn)?;
            if let Some(replay) = idempotency::find(conn, PLATFORM_SCOPE, PLATFORM_SCOPE, key)? {
                return Ok(Creation::Replayed(replay));
            }
        }
        let created = insert(conn, &new, meta)?;
        if let Some((key, render)) = idem {
            idempotency::save(conn, PLATFORM_SCOPE, PLATFORM_SCOPE, key, 201, &render(&created))?;
        }
        Ok(Creation::New(created))
    })
}

/// Serialises keyed platform creations: a transaction-scoped advisory lock on PostgreSQL; on
/// SQLite the immediate write transaction already does.
fn lock_idempotency_scope(conn: &mut AnyConnection) -> Result<(), ApiError> {
    use diesel::connection::SimpleConnection;
    on_backend!(conn, postgres: |c| c.batch_execute("SELECT pg_advisory_xact_lock(72010502)")?, sqlite: |_| {});
    Ok(())
}

fn insert(conn: &mut AnyConnection, new: &NewTenant, meta: &RequestMeta) -> Result<CreatedTenant, ApiError> {
    {
        let now = now();
        let tenant_id = TenantId::new();
        let base = slugify(&new.name);
        let mut slug = base.clone();
        let mut n = 1;
        while t::tenants.filter(t::slug.eq(&slug)).count().get_result::<i64>(conn)? > 0 {
            n += 1;
            slug = format!("{base}-{n}");
        }
        let existing = u::users
            .filter(u::email.eq(new.owner_email.as_str()))
            .select(UserRow::as_select())
            .first(conn)
            .optional()?;
        let (user_id, full_name, username, sign_in) = match existing {
            Some(user) => (user.id, user.full_name, user.username, SignIn::Existing),
            None => (
                UserId::new().as_text(),
                new.owner_full_name.clone(),
                None,
                SignIn::Password(new.owner_password_hash.clone()),
            ),
        };
        let person = Person {
            user_id: &user_id,
            email: new.owner_email.as_str(),
            username: username.as_deref(),
            full_name: &full_name,
            sign_in,
        };
        let (user, membership) = new_member_rows(person, Joining::active(&tenant_id.as_text(), Role::Owner), now);
        let new_identity = user.is_some();
        if let Some(user) = &user {
            diesel::insert_into(u::users).values(user).execute(conn)?;
        }
        let tenant = TenantRow {
            id: tenant_id.as_text(),
            name: new.name.clone(),
            slug,
            plan: new.plan.as_str().into(),
            seat_limit_override: None,
            billing_owner_id: Some(user_id.clone()),
            admins_can_manage_users: true,
            password_min_length: crate::domain::password::DEFAULT_MIN_LENGTH,
            version: 1,
            created_at: now,
            updated_at: now,
            sso_required: false,
            sso_required_for_owners: false,
        };
        diesel::insert_into(t::tenants).values(&tenant).execute(conn)?;
        diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
        audit::record_raw(
            conn,
            tenant_id,
            AuditActor::Platform,
            meta,
            AuditEntry {
                action: "tenant.created",
                target_type: "tenant",
                target_id: Some(tenant_id.as_text()),
                before: None,
                after: Some(json!({"name": new.name, "plan": new.plan.as_str(), "owner_id": user_id})),
            },
        )?;
        Ok(CreatedTenant { tenant_id, user_id: user_id.parse().unwrap_or_default(), new_identity })
    }
}

/// A tenant with its seat usage.
pub struct TenantRecord {
    pub row: TenantRow,
    pub seats_used: i64,
}

impl TenantRecord {
    pub fn seat_limit(&self) -> Option<i32> {
        super::members::limit_of(&self.row.plan, self.row.seat_limit_override)
    }
}

fn load(conn: &mut AnyConnection, tenant: &str) -> Result<TenantRecord, ApiError> {
    let row = t::tenants.filter(t::id.eq(tenant)).select(TenantRow::as_select()).first(conn)?;
    let seats_used = seats_used(conn, tenant)?;
    Ok(TenantRecord { row, seats_used })
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<TenantRecord, ApiError> {
    ctx.actor().require(TenantAction::ReadTenant)?;
    load(conn, &ctx.tenant_text())
}

#[derive(Debug, Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub plan: Option<Plan>,
    pub seat_limit: Option<Option<i32>>,
    pub billing_owner_id: Option<UserId>,
    pub admins_can_manage_users: Option<bool>,
    pub password_min_length: Option<i32>,
    /// Members whose email is in a verified domain must sign in with SSO (`ManageSso`).
    pub sso_required: Option<bool>,
    /// ... owners too (`ManageSso`).
    pub sso_required_for_owners: Option<bool>,
}

pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    patch: TenantPatch,
    if_match: Option<i32>,
) -> Result<TenantRecord, ApiError> {
    ctx.actor().require(TenantAction::ManageTenant)?;
    if patch.sso_required.is_some() || patch.sso_required_for_owners.is_some() {
        ctx.actor().require(TenantAction::ManageSso)?;
    }
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, &tenant)?;
        super::check_version("tenant", before.row.version, if_match)?;
        if patch.sso_required == Some(true) && !before.row.sso_required {
            let missing = super::domains::missing_for_sso_required(conn, &tenant)?;
            if !missing.is_empty() {
                return Err(ApiError::conflict(
                    "sso-not-ready",
                    format!("requiring SSO needs {} first", missing.join(" and ")),
                ));
            }
        }
        if let Some(owner) = patch.billing_owner_id {
            let is_owner = m::memberships
                .filter(m::tenant_id.eq(&tenant))
                .filter(m::user_id.eq(owner.as_text()))
                .filter(m::role.eq(Role::Owner.as_str()))
                .filter(m::status.eq(MemberStatus::Active.as_str()))
                .count()
                .get_result::<i64>(conn)?;
            if is_owner == 0 {
                return Err(ApiError::invalid("billing_owner_id", "must be an active owner of this tenant"));
            }
        }
        let mut row = before.row.clone();
        if let Some(v) = &patch.name {
            row.name = v.clone();
        }
        if let Some(v) = patch.plan {
            row.plan = v.as_str().into();
        }
        if let Some(v) = patch.seat_limit {
            row.seat_limit_override = v;
        }
        if let Some(v) = patch.billing_owner_id {
            row.billing_owner_id = Some(v.as_text());
        }
        if let Some(v) = patch.admins_can_manage_users {
            row.admins_can_manage_users = v;
        }
        if let Some(v) = patch.password_min_length {
            row.password_min_length = v;
        }
        if let Some(v) = patch.sso_required {
            row.sso_required = v;
        }
        if let Some(v) = patch.sso_required_for_owners {
            row.sso_required_for_owners = v;
        }
        let after = TenantRecord { row, seats_used: before.seats_used };
        if let Some(limit) = after.seat_limit().map(i64::from).filter(|l| *l < before.seats_used) {
            return Err(ApiError::conflict(
                "seat-limit-below-usage",
                format!(
                    "{} seats are in use, more than the new limit of {limit}; disable members first",
                    before.seats_used
                ),
            ));
        }
        diesel::update(t::tenants.filter(t::id.eq(&tenant)))
            .set((
                t::name.eq(&after.row.name),
                t::plan.eq(&after.row.plan),
                t::seat_limit_override.eq(after.row.seat_limit_override),
                t::billing_owner_id.eq(&after.row.billing_owner_id),
                t::admins_can_manage_users.eq(after.row.admins_can_manage_users),
                t::password_min_length.eq(after.row.password_min_length),
                t::sso_required.eq(after.row.sso_required),
                t::sso_required_for_owners.eq(after.row.sso_required_for_owners),
                t::version.eq(t::version + 1),
                t::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let state = |r: &TenantRow| {
            json!({"name": r.name, "plan": r.plan, "seat_limit_override": r.seat_limit_override,
                   "billing_owner_id": r.billing_owner_id, "admins_can_manage_users": r.admins_can_manage_users,
                   "password_min_length": r.password_min_length, "sso_required": r.sso_required,
                   "sso_required_for_owners": r.sso_required_for_owners})
        };
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "tenant.updated",
                target_type: "tenant",
                target_id: Some(tenant.clone()),
                before: Some(state(&before.row)),
                after: Some(state(&after.row)),
            },
        )?;
        load(conn, &tenant)
    })
}

/// Whether the database has no tenant yet (for seeding the demo tenant).
pub fn is_empty(conn: &mut AnyConnection) -> Result<bool, ApiError> {
    Ok(t::tenants.count().get_result::<i64>(conn)? == 0)
}

/// The strictest minimum password length among the tenants the person belongs to.
pub fn strictest_min_length(conn: &mut AnyConnection, user: UserId) -> Result<i32, ApiError> {
    let lengths = m::memberships
        .inner_join(t::tenants)
        .filter(m::user_id.eq(user.as_text()))
        .select(t::password_min_length)
        .load::<i32>(conn)?;
    Ok(lengths.into_iter().max().unwrap_or(crate::domain::password::DEFAULT_MIN_LENGTH))
}

/// The tenant's minimum password length.
pub fn min_password_length(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<i32, ApiError> {
    Ok(t::tenants.filter(t::id.eq(ctx.tenant_text())).select(t::password_min_length).first(conn)?)
}
