//! SCIM provisioning's storage (DESIGN.md section 12): users (`users`), groups (`groups`), the
//! roles directory groups give (`roles`), and filters as SQL (`sql`).

pub mod groups;
pub mod roles;
pub mod sql;
pub mod users;
