//! Members a device agent enrolled (`pending_approval`): approve (they become `active`),
//! reject (the membership goes, and the identity with its last one), and the devices a member
//! was enrolled on. Approving follows the policy of enabling, rejecting that of deleting.

use diesel::prelude::*;
use serde_json::json;

use super::lifecycle::remove_membership;
use super::record::{MemberRecord, load_checked, load_record};
use crate::auth::TenantContext;
use crate::auth::policy::MemberAction;
use crate::db::AnyConnection;
use crate::db::models::EnrollmentRow;
use crate::db::schema::memberships::dsl as m;
use crate::domain::{MemberStatus, UserId, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditEntry};
use crate::store::enrollments;

fn not_pending(status: &str) -> ApiError {
    ApiError::conflict(
        "member-not-pending",
        format!(
            "this member is {status}, not waiting for approval: only a pending_approval member can be approved or rejected"
        ),
    )
}

/// Lets in a member waiting for approval: `active` (their seat is already held).
pub fn approve(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    if_match: Option<i32>,
) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::Approve)?;
        crate::store::check_version("member", before.membership.version, if_match)?;
        if before.membership.status != MemberStatus::PendingApproval.as_str() {
            return Err(not_pending(&before.membership.status));
        }
        diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid)))
            .set((
                m::status.eq(MemberStatus::Active.as_str()),
                m::version.eq(m::version + 1),
                m::auth_version.eq(m::auth_version + 1),
                m::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let after = load_record(conn, &tenant, &uid)?.ok_or_else(|| ApiError::internal("member vanished"))?;
        let entry = AuditEntry {
            action: "member.approved",
            target_type: "member",
            target_id: Some(uid.clone()),
            before: Some(json!({"status": before.membership.status})),
            after: Some(json!({"status": after.membership.status})),
        };
        audit::record(conn, ctx, entry)?;
        Ok(after)
    })
}

/// Turns away a member waiting for approval: the membership is removed (the identity too, as it
/// has no other), and their enrolments answer `rejected`.
pub fn reject(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::Reject)?;
        crate::store::check_version("member", before.membership.version, if_match)?;
        if before.membership.status != MemberStatus::PendingApproval.as_str() {
            return Err(not_pending(&before.membership.status));
        }
        enrollments::mark_rejected(conn, &tenant, &uid)?;
        remove_membership(conn, &tenant, &uid)?;
        let entry = AuditEntry {
            action: "member.rejected",
            target_type: "member",
            target_id: Some(uid.clone()),
            before: Some(before.event_object()),
            after: None,
        };
        audit::record(conn, ctx, entry)
    })
}

/// The devices a member you may see was enrolled on, oldest first.
pub fn devices(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<Vec<EnrollmentRow>, ApiError> {
    load_checked(conn, ctx, user, MemberAction::Read)?;
    enrollments::devices_of(conn, &ctx.tenant_text(), &user.as_text())
}
