//! Authentication and authorisation: tokens, password hashing, the permission table and the
//! guards that turn a request into a checked caller.

pub mod client_addr;
pub mod guard;
pub mod jwt;
pub mod master_key;
pub mod passwords;
pub mod policy;
pub mod rate_limit;

pub use guard::{Identity, RequestMeta, TenantAccess, TenantContext};
