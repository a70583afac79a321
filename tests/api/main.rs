//! Integration tests: HTTP against the real application, one binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod api_keys;
mod auth;
mod cli;
mod concurrency;
mod contract;
mod cors;
mod email;
mod errors;
mod groups;
mod helpers;
mod import;
mod invitations;
mod isolation;
mod members;
mod openapi;
mod org;
mod policy;
mod saml_harness;
mod scim;
mod secrets;
mod sessions;
mod sso_saml;
mod tenants;
mod webhooks;
