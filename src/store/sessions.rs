//! Sign-in support: identities by email, a person's active memberships, password changes.
//! These paths act for a person, not inside one tenant, so they take user ids, never a
//! tenant context; they only ever return the person's own data.

use diesel::prelude::*;
use serde_json::json;

use super::audit;
use crate::auth::RequestMeta;
use crate::db::models::UserRow;
use crate::db::schema::{membership_regions::dsl as mr, memberships::dsl as m, tenants::dsl as t, users::dsl as u};
use crate::db::{AnyConnection, write_tx};
use crate::domain::{MemberStatus, UserId, now};
use crate::error::ApiError;

pub fn find_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<UserRow>, ApiError> {
    Ok(u::users.filter(u::email.eq(email)).select(UserRow::as_select()).first(conn).optional()?)
}

pub fn find_by_id(conn: &mut AnyConnection, user: UserId) -> Result<Option<UserRow>, ApiError> {
    Ok(u::users.filter(u::id.eq(user.as_text())).select(UserRow::as_select()).first(conn).optional()?)
}

/// One of the person's active memberships, as the login and `/me/tenants` answers show it.
#[derive(Debug, Clone)]
pub struct TenantMembership {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: String,
    pub regions: Vec<String>,
    pub auth_version: i32,
}

pub fn active_memberships(conn: &mut AnyConnection, user: UserId) -> Result<Vec<TenantMembership>, ApiError> {
    let uid = user.as_text();
    let rows = m::memberships
        .inner_join(t::tenants)
        .filter(m::user_id.eq(&uid))
        .filter(m::status.eq(MemberStatus::Active.as_str()))
        .order((t::name, t::id))
        .select((m::tenant_id, t::name, m::role, m::auth_version))
        .load::<(String, String, String, i32)>(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (tenant_id, tenant_name, role, auth_version) in rows {
        let regions = mr::membership_regions
            .filter(mr::tenant_id.eq(&tenant_id))
            .filter(mr::user_id.eq(&uid))
            .select(mr::region_id)
            .order(mr::region_id)
            .load::<String>(conn)?;
        out.push(TenantMembership { tenant_id, tenant_name, role, regions, auth_version });
    }
    Ok(out)
}

/// Notes a successful sign-in into a tenant.
pub fn record_login(conn: &mut AnyConnection, user: UserId, tenant: Option<&str>) -> Result<(), ApiError> {
    let uid = user.as_text();
    write_tx(conn, |conn| {
        diesel::update(u::users.filter(u::id.eq(&uid))).set(u::failed_logins.eq(0)).execute(conn)?;
        if let Some(tenant) = tenant {
            diesel::update(m::memberships.filter(m::tenant_id.eq(tenant)).filter(m::user_id.eq(&uid)))
                .set(m::last_login_at.eq(Some(now())))
                .execute(conn)?;
        }
        Ok(())
    })
}

pub fn record_failed_login(conn: &mut AnyConnection, user: UserId) -> Result<(), ApiError> {
    write_tx(conn, |conn| {
        diesel::update(u::users.filter(u::id.eq(user.as_text())))
            .set(u::failed_logins.eq(u::failed_logins + 1))
            .execute(conn)?;
        Ok(())
    })
}

/// Sets a password the person chose; revokes every token they hold, and records the change
/// in the audit log of each tenant they are a member of.
pub fn change_password(
    conn: &mut AnyConnection,
    user: UserId,
    new_hash: String,
    meta: &RequestMeta,
) -> Result<UserRow, ApiError> {
    set_password(conn, user, new_hash, meta, "user.password_changed")
}

/// [`change_password`], audited as `action` (a change, or a reset completed).
pub fn set_password(
    conn: &mut AnyConnection,
    user: UserId,
    new_hash: String,
    meta: &RequestMeta,
    action: &'static str,
) -> Result<UserRow, ApiError> {
    let uid = user.as_text();
    write_tx(conn, |conn| {
        diesel::update(u::users.filter(u::id.eq(&uid)))
            .set((
                u::password_hash.eq(Some(new_hash)),
                u::must_change_password.eq(false),
                u::auth_version.eq(u::auth_version + 1),
                u::updated_at.eq(now()),
            ))
            .execute(conn)?;
        audit::record_for_person(conn, user, meta, action, json!({"must_change_password": false}))?;
        Ok(u::users.filter(u::id.eq(&uid)).select(UserRow::as_select()).first(conn)?)
    })
}
