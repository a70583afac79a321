//! Row types: what the tables hold, as diesel reads and writes them. JSON views live in
//! `api/*/dto.rs`; nothing here is serialised to clients directly.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub plan: String,
    pub seat_limit_override: Option<i32>,
    pub billing_owner_id: Option<String>,
    pub admins_can_manage_users: bool,
    pub password_min_length: i32,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Members whose email lies in a verified domain must sign in with SSO.
    pub sso_required: bool,
    /// ... owners too (otherwise owners keep their password).
    pub sso_required_for_owners: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub full_name: String,
    pub avatar_url: Option<String>,
    pub password_hash: Option<String>,
    pub must_change_password: bool,
    pub auth_version: i32,
    pub failed_logins: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub home_tenant_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = memberships, treat_none_as_default_value = false)]
pub struct MembershipRow {
    pub tenant_id: String,
    pub user_id: String,
    pub role: String,
    pub status: String,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub section: Option<String>,
    pub manager_id: Option<String>,
    pub search_text: String,
    pub sort_name: String,
    pub sort_email: String,
    pub auth_version: i32,
    pub version: i32,
    pub last_login_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = regions)]
pub struct RegionRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    pub version: i32,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events, treat_none_as_default_value = false)]
pub struct AuditRow {
    pub id: String,
    pub tenant_id: String,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub before_state: Option<String>,
    pub after_state: Option<String>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
    /// The key's (or person's) name when it acted; set for API keys.
    pub actor_name: Option<String>,
}

/// An API key of a tenant (its secret is only a digest here).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys, treat_none_as_default_value = false)]
pub struct ApiKeyRow {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub kind: String,
    pub role: String,
    /// JSON array of region ids.
    pub regions: String,
    pub prefix: String,
    pub secret_digest: String,
    pub previous_digest: Option<String>,
    pub previous_expires_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub version: i32,
}

impl ApiKeyRow {
    pub fn region_ids(&self) -> Vec<String> {
        serde_json::from_str(&self.regions).unwrap_or_default()
    }
}

/// A device agent's enrolment of one member on one device.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = enrollments, treat_none_as_default_value = false)]
pub struct EnrollmentRow {
    pub tenant_id: String,
    pub id: String,
    pub user_id: String,
    /// The agent key that enrolled (last).
    pub api_key_id: String,
    pub agent_id: String,
    pub hostname: String,
    pub os: Option<String>,
    pub os_username: String,
    /// Set when an admin rejected the member (the membership is gone).
    pub rejected_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// A webhook endpoint of a tenant (its secrets sealed with the master key).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks, treat_none_as_default_value = false)]
pub struct WebhookRow {
    pub tenant_id: String,
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// JSON array of event types and patterns (`member.*`, `*`).
    pub event_types: String,
    pub enabled: bool,
    /// `failing` when the worker turned it off after failing for days; null otherwise.
    pub disabled_reason: Option<String>,
    pub failing_since: Option<NaiveDateTime>,
    pub sealed_secret: String,
    pub previous_sealed_secret: Option<String>,
    pub previous_expires_at: Option<NaiveDateTime>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub version: i32,
}

impl WebhookRow {
    pub fn types(&self) -> Vec<String> {
        serde_json::from_str(&self.event_types).unwrap_or_default()
    }
}

/// One event for one endpoint, and how its attempts went.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries, treat_none_as_default_value = false)]
pub struct DeliveryRow {
    pub tenant_id: String,
    pub id: String,
    pub webhook_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The body of an event that is not in the feed (`webhook.test`); `None` for the others,
    /// whose payload is the `events` row with this tenant and `event_id`.
    pub body: Option<String>,
    /// `pending`, `succeeded` or `failed` (no attempt left).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub locked_until: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_duration_ms: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub delivered_at: Option<NaiveDateTime>,
}

impl DeliveryRow {
    /// A delivery of event `event_id` to `webhook`, due at `at`, no attempt yet; `body` only for
    /// an event that is not in the feed (otherwise the payload is the event's, in `events`).
    pub fn due(
        tenant: &str,
        webhook: &str,
        event_id: String,
        event_type: String,
        body: Option<String>,
        at: NaiveDateTime,
    ) -> Self {
        DeliveryRow {
            tenant_id: tenant.to_string(),
            id: uuid::Uuid::now_v7().to_string(),
            webhook_id: webhook.to_string(),
            event_id,
            event_type,
            body,
            status: "pending".into(),
            attempts: 0,
            next_attempt_at: Some(at),
            locked_until: None,
            last_status: None,
            last_duration_ms: None,
            last_error: None,
            created_at: at,
            delivered_at: None,
        }
    }
}

/// The lower-cased text the `q` filter searches: name, username and email.
pub fn search_text(full_name: &str, username: Option<&str>, email: &str) -> String {
    format!("{} {} {}", full_name.to_lowercase(), username.unwrap_or("").to_lowercase(), email.to_lowercase())
}
