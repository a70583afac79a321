//! Bulk actions on members: each item is its own change, checked against the policy on its
//! own and audited on its own; one item failing leaves the others done.

use secrecy::{ExposeSecret, SecretString};

use super::members::{self, MemberPatch, MemberRecord};
use crate::auth::TenantContext;
use crate::db::{AnyConnection, write_tx};
use crate::domain::password::{digest_generated, generate_secret};
use crate::domain::{MemberStatus, Role, UserId};
use crate::error::{ApiError, ProblemDetails};

/// Most items in one request.
pub const MAX_ITEMS: usize = 1000;

/// What to do to every member listed.
#[derive(Debug, Clone)]
pub enum BulkAction {
    Enable,
    Disable,
    Delete,
    /// Let in members a device agent enrolled.
    Approve,
    /// Turn away members a device agent enrolled.
    Reject,
    /// A new generated temporary password for each.
    ResetPassword,
    SetRole(Role),
    SetDepartment {
        department: Option<String>,
        section: Option<String>,
    },
}

/// How one item went.
pub struct Outcome {
    pub user_id: UserId,
    pub result: Result<Done, ProblemDetails>,
}

/// A done item: the member as it is now (none after a delete) and, for a reset, the new
/// temporary password (shown once).
pub struct Done {
    pub member: Option<MemberRecord>,
    pub temporary_password: Option<SecretString>,
}

fn one(conn: &mut AnyConnection, ctx: &TenantContext, action: &BulkAction, user: UserId) -> Result<Done, ApiError> {
    let member = |member| Done { member, temporary_password: None };
    match action {
        BulkAction::Enable => members::set_status(conn, ctx, user, MemberStatus::Active, None).map(|r| member(Some(r))),
        BulkAction::Disable => {
            members::set_status(conn, ctx, user, MemberStatus::Disabled, None).map(|r| member(Some(r)))
        }
        BulkAction::Delete => members::delete(conn, ctx, user, None).map(|()| member(None)),
        BulkAction::Approve => members::approve(conn, ctx, user, None).map(|r| member(Some(r))),
        BulkAction::Reject => members::reject(conn, ctx, user, None).map(|()| member(None)),
        BulkAction::ResetPassword => {
            let secret = generate_secret();
            let rec = members::reset_password(conn, ctx, user, digest_generated(&secret))?;
            Ok(Done { member: Some(rec), temporary_password: Some(secret) })
        }
        BulkAction::SetRole(role) => {
            let patch = MemberPatch { role: Some(*role), ..Default::default() };
            members::update(conn, ctx, user, patch, None).map(|r| member(Some(r)))
        }
        BulkAction::SetDepartment { department, section } => {
            let patch = MemberPatch {
                department: Some(department.clone()),
                section: Some(section.clone()),
                ..Default::default()
            };
            members::update(conn, ctx, user, patch, None).map(|r| member(Some(r)))
        }
    }
}

/// Runs `action` on each of `users`, in order, each in its own transaction.
pub fn run(conn: &mut AnyConnection, ctx: &TenantContext, action: &BulkAction, users: &[UserId]) -> Vec<Outcome> {
    users
        .iter()
        .map(|&user| {
            // Each item commits or rolls back alone (a savepoint inside a batch of writes).
            let result = write_tx(conn, |conn| one(conn, ctx, action, user)).map_err(|e| e.problem());
            Outcome { user_id: user, result }
        })
        .collect()
}

impl Done {
    pub fn password_text(&self) -> Option<String> {
        self.temporary_password.as_ref().map(|s| s.expose_secret().to_string())
    }
}
