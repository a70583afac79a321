//! A member's standing: enable and disable (ending their sessions here), delete, end their
//! sessions, clear a sign-in lock.

use diesel::prelude::*;
use serde_json::json;

use super::invariants::{ensure_other_owner, ensure_seat};
use super::record::{MemberRecord, load_checked, load_record};
use crate::auth::TenantContext;
use crate::auth::policy::MemberAction;
use crate::db::AnyConnection;
use crate::db::schema::{membership_regions::dsl as mr, memberships::dsl as m, tenants::dsl as t, users::dsl as u};
use crate::domain::{MemberStatus, Role, UserId, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditEntry};
use crate::store::sessions::{self, EndReason, Sessions};

pub fn set_status(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    status: MemberStatus,
    if_match: Option<i32>,
) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::ChangeStatus)?;
        crate::store::check_version("member", before.membership.version, if_match)?;
        let current = MemberStatus::parse(&before.membership.status).unwrap_or(MemberStatus::Disabled);
        if current == MemberStatus::PendingApproval {
            return Err(pending_approval());
        }
        if current == status {
            return Ok(before);
        }
        if status == MemberStatus::Active && !current.takes_seat() {
            ensure_seat(conn, &tenant)?;
        }
        if status != MemberStatus::Active && before.role() == Role::Owner {
            ensure_other_owner(conn, &tenant, &uid)?;
        }
        diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid)))
            .set((
                m::status.eq(status.as_str()),
                m::version.eq(m::version + 1),
                m::auth_version.eq(m::auth_version + 1),
                m::updated_at.eq(now()),
            ))
            .execute(conn)?;
        // Disabled: their sessions in this tenant end now (and those not in any tenant, which
        // could switch into it).
        let ended = if status == MemberStatus::Active {
            0
        } else {
            sessions::end_all(conn, user, Sessions::InTenant(&tenant), EndReason::MemberDisabled)?
        };
        let after = load_record(conn, &tenant, &uid)?.ok_or_else(|| ApiError::internal("member vanished"))?;
        let action = if status == MemberStatus::Active { "member.enabled" } else { "member.disabled" };
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action,
                target_type: "member",
                target_id: Some(uid.clone()),
                before: Some(json!({"status": before.membership.status})),
                after: Some(json!({"status": after.membership.status, "sessions_ended": ended})),
            },
        )?;
        Ok(after)
    })
}

/// Deletes a disabled member's membership; the identity goes with its last membership.
pub fn delete(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::Delete)?;
        crate::store::check_version("member", before.membership.version, if_match)?;
        if before.membership.status == MemberStatus::PendingApproval.as_str() {
            return Err(pending_approval());
        }
        if before.membership.status != MemberStatus::Disabled.as_str() {
            return Err(ApiError::conflict(
                "member-not-disabled",
                "only a disabled member can be deleted: PUT .../status {\"status\": \"disabled\"} first",
            ));
        }
        remove_membership(conn, &tenant, &uid)?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.deleted",
                target_type: "member",
                target_id: Some(uid.clone()),
                before: Some(before.event_object()),
                after: None,
            },
        )?;
        Ok(())
    })
}

/// The refusal for enabling, disabling or deleting a member a device agent enrolled.
fn pending_approval() -> ApiError {
    ApiError::conflict(
        "member-pending-approval",
        "this member is waiting for approval: POST .../approve to let them in, or POST .../reject to turn them away",
    )
}

/// Removes the membership (its regions, and the member as anyone's manager); the identity goes
/// with its last membership.
pub(in crate::store) fn remove_membership(conn: &mut AnyConnection, tenant: &str, uid: &str) -> Result<(), ApiError> {
    diesel::update(m::memberships.filter(m::tenant_id.eq(tenant)).filter(m::manager_id.eq(uid)))
        .set(m::manager_id.eq(None::<String>))
        .execute(conn)?;
    diesel::delete(mr::membership_regions.filter(mr::tenant_id.eq(tenant)).filter(mr::user_id.eq(uid)))
        .execute(conn)?;
    diesel::delete(m::memberships.filter(m::tenant_id.eq(tenant)).filter(m::user_id.eq(uid))).execute(conn)?;
    let remaining = m::memberships.filter(m::user_id.eq(uid)).count().get_result::<i64>(conn)?;
    if remaining == 0 {
        diesel::update(t::tenants.filter(t::billing_owner_id.eq(uid)))
            .set(t::billing_owner_id.eq(None::<String>))
            .execute(conn)?;
        diesel::delete(u::users.filter(u::id.eq(uid))).execute(conn)?;
    }
    Ok(())
}

/// Ends the member's sessions in this tenant (and those not in any tenant); returns how many.
pub fn end_sessions(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<usize, ApiError> {
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        load_checked(conn, ctx, user, MemberAction::ChangeStatus)?;
        let ended = sessions::end_all(conn, user, Sessions::InTenant(&tenant), EndReason::EndedByAdmin)?;
        let entry = AuditEntry {
            action: "member.sessions_ended",
            target_type: "member",
            target_id: Some(user.as_text()),
            before: None,
            after: Some(json!({"sessions_ended": ended})),
        };
        audit::record(conn, ctx, entry)?;
        Ok(ended)
    })
}

/// Clears a sign-in lock (and the failure count) on the member's account.
pub fn unlock(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::ChangeStatus)?;
        let was_locked = sessions::unlock(conn, user)?;
        let entry = AuditEntry {
            action: "member.unlocked",
            target_type: "member",
            target_id: Some(user.as_text()),
            before: Some(json!({"locked_until": before.locked_until.map(crate::domain::time::utc)})),
            after: Some(json!({"locked_until": null, "was_locked": was_locked})),
        };
        audit::record(conn, ctx, entry)?;
        load_record(conn, &tenant, &user.as_text())?.ok_or_else(|| ApiError::internal("member vanished"))
    })
}
