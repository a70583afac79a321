//! Queries per aggregate. Every function on tenant data that the rest of the crate can call
//! takes the guard's `TenantContext`, so a handler cannot reach tenant data without the guard;
//! helpers that take a raw tenant id are private to `store/` (`pub(in crate::store)`). Platform
//! and sign-in paths are named for what they are and act on the person's own rows (sign-in
//! takes the typed `TenantId` of a membership the person holds). Every query on tenant data
//! filters by `tenant_id`; nothing here joins rows of different tenants. All functions are
//! synchronous: call them through `db::run`.

pub mod api_keys;
pub mod audit;
pub mod bulk;
pub mod cursor;
pub mod departments;
pub mod domains;
pub mod enrollments;
pub mod events;
pub mod groups;
pub mod housekeeping;
pub mod idempotency;
pub mod import;
pub mod invitations;
pub mod members;
pub mod outbox;
pub(crate) mod placement;
pub mod regions;
pub mod resets;
pub mod scim;
pub mod sessions;
pub mod sso;
pub mod sso_connections;
pub mod tenants;
pub mod webhooks;

use crate::auth::TenantContext;
use crate::db::{AnyConnection, write_tx};
use crate::error::ApiError;

/// A write to one tenant's data: a write transaction, the tenant locked (PostgreSQL), and the
/// caller's membership confirmed unchanged inside it (one statement for both).
pub(crate) fn tenant_write<T>(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    write_tx(conn, |conn| {
        ctx.lock_and_recheck(conn, crate::auth::guard::TenantLock::Exclusive)?;
        f(conn)
    })
}

/// `If-Match` against an object's current version: 412 when stale, nothing when absent.
pub(crate) fn check_version(what: &str, current: i32, if_match: Option<i32>) -> Result<(), ApiError> {
    match if_match {
        Some(v) if v != current => Err(ApiError::PreconditionFailed(format!(
            "the {what} changed since you read it (If-Match version {v}, now {current}); read it again"
        ))),
        _ => Ok(()),
    }
}
