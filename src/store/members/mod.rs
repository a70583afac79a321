//! Members: a membership (tenant, user) with the identity fields it shows. Reads narrow to
//! the caller's visibility; writes run in one write transaction with the tenant locked, check
//! the policy against rows read inside it, keep the invariants (seats, last owner, no manager
//! cycles) and write the audit event alongside.
//!
//! - `record`: the member record and its loading (one, checked for an action, or a page).
//! - `query`, `list`, `list_cache`: the list's filters and the SQL they become (with each
//!   backend's text search), its pages, and what is kept of them between requests.
//! - `facets`: counts over what the caller sees.
//! - `create`, `update`, `lifecycle`, `passwords`: the writes; `invariants`: what they keep;
//!   `joining`: the rows of a new member, whichever way they come in.
//! - `approval`: approving and rejecting members a device agent enrolled, and their devices.
//! - `reports`: a manager's reports.

mod approval;
mod create;
mod facets;
mod invariants;
mod joining;
mod lifecycle;
mod list;
mod list_cache;
mod passwords;
mod query;
mod record;
mod reports;
mod update;

pub use approval::{approve, devices, reject};
pub use create::{Created, Credential, NewMember, RenderReplay, create};
pub use facets::{Facets, facets, visible_departments};
pub(in crate::store) use invariants::{
    ensure_manager, ensure_regions_exist, ensure_seat, ensure_username_free, insert_regions, is_managed, limit_of,
    seat_limit, seats_used,
};
pub(in crate::store) use joining::{Joining, Person, SignIn, new_member_rows};
pub(in crate::store) use lifecycle::remove_membership;
pub use lifecycle::{delete, end_sessions, set_status, unlock};
pub use list::{Page, list, list_once};
pub use list_cache::ListCache;
pub use passwords::{email_password_reset, reset_password};
pub(in crate::store) use query::visible_only;
pub use query::{ListFilter, SortKey, StatusFilter};
pub use record::{MemberRecord, check_get, get, load_for_get};
pub(in crate::store) use record::{event_object, load_record};
pub use reports::reports;
pub use update::{MemberPatch, update};
