//! Pure domain types: ids, emails, roles, statuses, plans, passwords, region scope, webhook
//! secrets. No I/O here. Values of these types are valid by construction: parse, don't validate.

pub mod api_key;
pub mod email;
pub mod enrollment;
pub mod ids;
pub mod password;
pub mod region_scope;
pub mod role;
pub mod time;
pub mod webhook_secret;

pub use email::EmailAddress;
pub use ids::{ApiKeyId, GroupId, RegionId, TenantId, UserId};
pub use region_scope::RegionScope;
pub use role::{MemberStatus, Plan, Role};

/// Now, truncated to microseconds so both backends return exactly what was written.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::microseconds(1)).unwrap_or(now)
}
