//! SCIM 2.0 (RFC 7643, RFC 7644), the protocol part that knows nothing of storage: the schemas
//! Roster publishes (`schema`), the filter and attribute-path grammar (`filter`), PATCH as Okta
//! and Microsoft Entra ID send it (`patch`), and the error objects of RFC 7644 section 3.12
//! (`error`). The HTTP handlers are in `api::scim`, the queries in `store::scim`.
//!
//! The private modules hold parts of those four, re-exported there: `discovery` (the
//! ServiceProviderConfig, ResourceTypes and Schemas documents, in `schema`), `resource` (the
//! canonical resource form, `attributes`/`excludedAttributes`, in `schema`) and `evaluate`
//! (`Filter::matches` and `validate`, in `filter`).

mod discovery;
pub mod error;
mod evaluate;
pub mod filter;
pub mod patch;
mod resource;
pub mod schema;
