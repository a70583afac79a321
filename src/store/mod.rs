//! Queries per aggregate. Every function on tenant data takes the guard's `TenantContext`
//! (or, for platform and login paths, is named for what it is) and filters by `tenant_id`.
//! Nothing here joins rows of different tenants. All functions are synchronous: call them
//! through `db::run`.

pub mod audit;
pub mod cursor;
pub mod idempotency;
pub mod members;
pub mod regions;
pub mod sessions;
pub mod tenants;
