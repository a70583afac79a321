//! Roster: multi-tenant user and role management as a JSON REST API.
//!
//! `startup` builds the application that both `main` and the tests run, around the shared
//! `state`; `api` holds the HTTP handlers, `store` the queries, `auth` the tokens, guards and
//! the permission table, `db` the two-backend storage, `domain` the pure types, `mail` the
//! email templates and delivery, `webhooks` the webhook delivery worker, `outbound` safe
//! outbound HTTP, `config` the settings.

#![recursion_limit = "256"]

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod mail;
pub mod outbound;
pub mod scim;
pub mod sso;
pub mod startup;
pub mod state;
pub mod store;
pub mod webhooks;

pub use startup::Application;
pub use state::AppState;
