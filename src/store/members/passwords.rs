//! An admin resetting a member's password: a new temporary password, or an email with a link;
//! only for an identity the tenant manages.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::invariants::is_managed;
use super::record::{MemberRecord, load_checked};
use crate::auth::TenantContext;
use crate::auth::master_key::MasterKey;
use crate::auth::policy::MemberAction;
use crate::db::AnyConnection;
use crate::db::models::UserRow;
use crate::db::schema::{tenants::dsl as t, users::dsl as u};
use crate::domain::{UserId, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditEntry};
use crate::store::sessions::{self, EndReason, Sessions};

/// Loads a member whose password the caller may reset (policy, and a sign-in this tenant manages).
fn load_resettable(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    let rec = load_checked(conn, ctx, user, MemberAction::ResetPassword)?;
    if !is_managed(conn, &ctx.tenant_text(), &user.as_text())? {
        return Err(ApiError::conflict(
            "identity-not-managed",
            "this person's sign-in is not managed by this tenant, so no admin here can set their password; send them a reset link instead (POST .../users/{user_id}/password-reset with `delivery: email`), or they reset it themselves by email",
        ));
    }
    Ok(rec)
}

fn audit_reset(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        action: "member.password_reset",
        target_type: "member",
        target_id: Some(user.as_text()),
        before: None,
        after: Some(after),
    };
    audit::record(conn, ctx, entry)
}

/// Emails the member a link to choose a new password (their current one keeps working until
/// they do). Also for a person this tenant does not manage: the link goes to them, and no
/// admin sees or sets their secret.
pub fn email_password_reset(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    master: &MasterKey,
    app_url: &str,
) -> Result<MemberRecord, ApiError> {
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let rec = load_checked(conn, ctx, user, MemberAction::ResetPassword)?;
        let row = u::users.filter(u::id.eq(&uid)).select(UserRow::as_select()).first(conn)?;
        if crate::domain::enrollment::is_provisional(&row.email) {
            return Err(ApiError::conflict(
                "no-email-yet",
                "this member has no address of their own yet (a device agent enrolled them): they choose a password when they complete their profile from the device, or send delivery: temporary_password",
            ));
        }
        let tenant: String = t::tenants.filter(t::id.eq(ctx.tenant_text())).select(t::name).first(conn)?;
        let why = format!("An administrator of {tenant} asked for a new password for your Roster account.");
        crate::store::resets::issue(conn, master, &row, app_url, &why)?;
        audit_reset(conn, ctx, user, json!({"delivery": "email"}))?;
        Ok(rec)
    })
}

/// Sets a new temporary password (stored form given) for a member whose identity this tenant
/// manages; revokes the member's tokens everywhere.
pub fn reset_password(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    password_hash: String,
) -> Result<MemberRecord, ApiError> {
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let rec = load_resettable(conn, ctx, user)?;
        diesel::update(u::users.filter(u::id.eq(&uid)))
            .set((
                u::password_hash.eq(Some(password_hash)),
                u::must_change_password.eq(true),
                u::auth_version.eq(u::auth_version + 1),
                u::failed_logins.eq(0),
                u::locked_until.eq(None::<NaiveDateTime>),
                u::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let ended = sessions::end_all(conn, user, Sessions::All, EndReason::PasswordChanged)?;
        let after = json!({"delivery": "temporary_password", "must_change_password": true, "sessions_ended": ended});
        audit_reset(conn, ctx, user, after)?;
        Ok(rec)
    })
}
