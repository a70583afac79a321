//! Webhook endpoints and the event feed of a tenant:
//! `GET|POST /webhooks`, `GET|PATCH|DELETE /webhooks/{webhook_id}`,
//! `POST /webhooks/{webhook_id}/rotate-secret`, `POST /webhooks/{webhook_id}/test`,
//! `GET /webhooks/{webhook_id}/deliveries`, `POST /webhooks/{webhook_id}/deliveries/{delivery_id}/retry`,
//! and `GET /events`. Owners, and API keys with the owner role.

use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::api::{Problems, double_option, page_limit};
use crate::auth::TenantAccess;
use crate::auth::guard::parse_path_id;
use crate::db::models::{DeliveryRow, WebhookRow};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::events::{self, EVENT_TYPES};
use crate::store::webhooks::{self, NewWebhook, WebhookChanges};

/// A webhook endpoint, without its secret.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1ea0", "url": "https://product.example/hooks/roster",
    "description": "Sync members", "event_types": ["member.*"], "enabled": true, "disabled_reason": null,
    "failing_since": null, "created_by": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30",
    "created_at": "2026-12-07T10:00:00Z", "updated_at": "2026-12-07T10:00:00Z", "version": 1
}))]
pub struct WebhookView {
    #[schema(format = Uuid)]
    pub id: String,
    pub url: String,
    pub description: Option<String>,
    /// Event types and patterns (`member.*`, `*`) the endpoint receives.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// `failing` when Roster turned the endpoint off after its deliveries failed for 5 days.
    pub disabled_reason: Option<String>,
    /// Since when every delivery has failed (null while they succeed).
    pub failing_since: Option<DateTime<Utc>>,
    /// Who created it (a user or an API key id).
    #[schema(format = Uuid)]
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Changes with every change; the `ETag`.
    pub version: i32,
}

impl From<WebhookRow> for WebhookView {
    fn from(r: WebhookRow) -> Self {
        let event_types = r.types();
        WebhookView {
            id: r.id,
            url: r.url,
            description: r.description,
            event_types,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason,
            failing_since: r.failing_since.map(|t| t.and_utc()),
            created_by: r.created_by,
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
            version: r.version,
        }
    }
}

/// An endpoint with its signing secret: shown once, in the answer to create or rotate.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookWithSecret {
    pub webhook: WebhookView,
    /// `whsec_` and the base64 of the key: verify `webhook-signature` with it (any Standard
    /// Webhooks library takes it as it is). Not shown again.
    #[schema(pattern = "^whsec_[A-Za-z0-9+/]+={0,2}$", example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct WebhookPage {
    pub items: Vec<WebhookView>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// What an endpoint may subscribe to: an event type, `<prefix>.*`, or `*`.
fn selector_schema() -> utoipa::openapi::schema::Object {
    let mut selectors: Vec<String> = vec!["*".into()];
    for t in EVENT_TYPES {
        if let Some((prefix, _)) = t.split_once('.') {
            let pattern = format!("{prefix}.*");
            if !selectors.contains(&pattern) {
                selectors.push(pattern);
            }
        }
    }
    selectors.extend(EVENT_TYPES.iter().map(|t| t.to_string()));
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(selectors))
        .examples(["member.*"])
        .build()
}

fn selectors() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(selector_schema())
        .min_items(Some(1))
        .max_items(Some(50))
        .unique_items(true)
        .build()
}

/// A new endpoint.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://product.example/hooks/roster", "description": "Sync members", "event_types": ["member.*", "invitation.accepted"]}))]
pub struct CreateWebhookRequest {
    /// `https://` (plain `http://` only for hosts in `ROSTER_WEBHOOK_ALLOWED_HOSTS`); never a
    /// private, loopback or link-local address.
    #[schema(min_length = 1, max_length = 2048, pattern = "^[hH][tT][tT][pP][sS]?://[^\\s]+$")]
    pub url: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(schema_with = selectors)]
    pub event_types: Vec<String>,
}

/// Changes to an endpoint; absent fields stay.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"enabled": true}))]
pub struct UpdateWebhookRequest {
    #[schema(min_length = 1, max_length = 2048, pattern = "^[hH][tT][tT][pP][sS]?://[^\\s]+$")]
    pub url: Option<String>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub description: Option<Option<String>>,
    #[schema(schema_with = selectors)]
    pub event_types: Option<Vec<String>>,
    /// `true` turns an endpoint Roster turned off back on (its failure clock starts afresh).
    pub enabled: Option<bool>,
}

/// One event for one endpoint, and how its attempts went.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1eb0", "event_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1ec0",
    "event_type": "member.created", "status": "pending", "attempts": 1, "last_status_code": 503,
    "last_duration_ms": 42, "last_error": "the endpoint answered 503", "next_attempt_at": "2026-12-07T10:05:00Z",
    "created_at": "2026-12-07T10:00:00Z", "delivered_at": null
}))]
pub struct DeliveryView {
    #[schema(format = Uuid)]
    pub id: String,
    /// The event's id: the `webhook-id` header, the same on every attempt.
    #[schema(format = Uuid)]
    pub event_id: String,
    pub event_type: String,
    /// `pending` (an attempt is due at `next_attempt_at`), `succeeded`, or `failed` (no attempt left).
    #[schema(pattern = "^(pending|succeeded|failed)$")]
    pub status: String,
    pub attempts: i32,
    /// The HTTP status of the last attempt, if it got an answer.
    pub last_status_code: Option<i32>,
    pub last_duration_ms: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(r: DeliveryRow) -> Self {
        DeliveryView {
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            status: r.status,
            attempts: r.attempts,
            last_status_code: r.last_status,
            last_duration_ms: r.last_duration_ms,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at.map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            delivered_at: r.delivered_at.map(|t| t.and_utc()),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct DeliveryPage {
    pub items: Vec<DeliveryView>,
    pub next_cursor: Option<String>,
}

/// Paging for endpoints and deliveries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookListParams {
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

/// Filters and paging for deliveries.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryListParams {
    /// `pending`, `succeeded` or `failed`; all when absent.
    #[param(schema_with = crate::api::params::delivery_status)]
    pub status: Option<String>,
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(schema_with = crate::api::params::cursor)]
    pub cursor: Option<String>,
}

/// Who did it.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EventActor {
    /// `user`, `api_key`, `sso_connection` or `platform`.
    #[serde(rename = "type")]
    pub actor_type: String,
    pub id: Option<String>,
    /// An API key's name.
    pub name: Option<String>,
}

/// What it was done to.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EventTarget {
    /// `member`, `invitation`, `region`, `department`, `section`, `api_key`, `webhook`, `tenant`, ...
    #[serde(rename = "type")]
    pub target_type: String,
    pub id: Option<String>,
}

/// An event: what a webhook receives as its body, and what the feed lists.
#[derive(Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1ec0", "type": "member.created",
    "tenant_id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e10", "occurred_at": "2026-12-07T10:00:00Z",
    "actor": {"type": "user", "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e30", "name": null},
    "target": {"type": "member", "id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e31"},
    "data": {"id": "01937a2e-8c1b-7c3e-9d4f-2a6b8c0d1e31", "email": "ann@acme.example", "full_name": "Ann Smith",
        "role": "operator", "status": "active", "regions": [], "version": 1}
}))]
pub struct Event {
    /// The same on every attempt (the `webhook-id` header): drop one you have seen.
    #[schema(format = Uuid)]
    pub id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = event_type_schema)]
    pub event_type: String,
    #[schema(format = Uuid)]
    pub tenant_id: String,
    pub occurred_at: DateTime<Utc>,
    pub actor: EventActor,
    pub target: EventTarget,
    /// The object after the change (before it, for a deletion), with its `version` where it has
    /// one: drop an event older than what you hold.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

fn event_type_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(EVENT_TYPES.iter().copied()))
        .build()
}

/// A page of the feed, oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `after` for the next page (also when this one is empty: events that happen later
    /// come after it).
    pub next_cursor: Option<String>,
    /// More events are there now.
    pub has_more: bool,
}

/// The feed's filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// `next_cursor` of the previous page; absent: from the oldest event kept.
    #[param(schema_with = crate::api::params::event_cursor)]
    pub after: Option<String>,
    /// Types and patterns, comma-separated (`member.*,invitation.accepted`); all when absent.
    #[param(rename = "type", schema_with = crate::api::params::event_types)]
    #[serde(rename = "type")]
    pub types: Option<String>,
    /// 1 to 200; default 50.
    #[param(schema_with = crate::api::params::limit)]
    pub limit: Option<i64>,
}

fn webhook_id(req: &HttpRequest) -> Result<String, ApiError> {
    parse_path_id::<uuid::Uuid>(req, "webhook_id").map(|id| id.hyphenated().to_string())
}

/// The types and patterns an endpoint wants: known, without repeats.
fn check_selectors(field: &str, types: &[String], p: &mut Problems) {
    if types.is_empty() || types.len() > 50 {
        p.add(field, "must list 1 to 50 event types or patterns");
    }
    let mut seen = std::collections::HashSet::new();
    for (i, t) in types.iter().enumerate() {
        if !events::is_known_selector(t) {
            p.add(format!("{field}[{i}]"), format!("{t:?} is not an event type, a pattern such as member.* , or *"));
        } else if !seen.insert(t) {
            p.add(format!("{field}[{i}]"), format!("{t:?} is listed twice"));
        }
    }
}

fn check_description(description: Option<&str>, p: &mut Problems) -> Option<String> {
    let d = description.map(str::trim).filter(|d| !d.is_empty())?;
    if d.chars().count() > 500 {
        p.add("description", "must be at most 500 characters");
    }
    Some(d.to_string())
}

fn webhook_response(status: actix_web::http::StatusCode, row: WebhookRow) -> HttpResponse {
    HttpResponse::build(status).insert_header(crate::api::etag(row.version)).json(WebhookView::from(row))
}

fn with_secret(status: actix_web::http::StatusCode, row: WebhookRow, secret: &secrecy::SecretString) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(crate::api::etag(row.version))
        .json(WebhookWithSecret { webhook: WebhookView::from(row), secret: secret.expose_secret().to_string() })
}

/// List the tenant's webhook endpoints (owners).
///
/// Newest first, with their types, whether they are on, and since when they have been failing;
/// never their secrets.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), WebhookListParams),
    responses((status = 200, body = WebhookPage), (status = 403, description = "Only owners (and owner-role API keys) manage webhooks")))]
#[get("/api/v1/tenants/{tenant_id}/webhooks")]
pub async fn list_webhooks(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<WebhookListParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let cursor = crate::store::cursor::decode_id(q.cursor.as_deref())?;
    let (rows, next_cursor, total) =
        access.run(&state.pool, move |conn, ctx| webhooks::list(conn, ctx, cursor.as_deref(), limit)).await?;
    Ok(HttpResponse::Ok().json(WebhookPage {
        items: rows.into_iter().map(WebhookView::from).collect(),
        next_cursor,
        total,
    }))
}

/// Create a webhook endpoint (owners).
///
/// Every change of the types it names is sent to `url` as a signed `POST` (Standard Webhooks:
/// `webhook-id`, `webhook-timestamp`, `webhook-signature`), retried for about a day and a half.
/// The answer carries the signing `secret`, once.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id")),
    request_body = CreateWebhookRequest,
    responses((status = 201, body = WebhookWithSecret, headers(("ETag" = String), ("Location" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"),
        (status = 422, description = "The URL is not allowed, or an event type is unknown")))]
#[post("/api/v1/tenants/{tenant_id}/webhooks")]
pub async fn create_webhook(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut p = Problems::default();
    let url = match state.outbound_policy.check_url(body.url.trim()) {
        Ok(url) => url.to_string(),
        Err(why) => {
            p.add("url", why);
            String::new()
        }
    };
    check_selectors("event_types", &body.event_types, &mut p);
    let description = check_description(body.description.as_deref(), &mut p);
    p.finish()?;
    let new = NewWebhook { url, description, event_types: body.event_types };
    let master = state.master.clone();
    let (row, secret) =
        access.run_write(&state.pool, move |conn, ctx| webhooks::create(conn, ctx, &master, new)).await?;
    let location = format!("{}/{}", req.path().trim_end_matches('/'), row.id);
    let mut res = with_secret(actix_web::http::StatusCode::CREATED, row, &secret);
    res.headers_mut().insert(
        actix_web::http::header::LOCATION,
        actix_web::http::header::HeaderValue::from_str(&location).map_err(|e| ApiError::internal(e.to_string()))?,
    );
    Ok(res)
}

/// Read a webhook endpoint (owners).
///
/// Its URL, types, state and failure clock; the `ETag` carries its version for `If-Match`.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses((status = 200, body = WebhookView, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint")))]
#[get("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}")]
pub async fn get_webhook(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    let row = access.run(&state.pool, move |conn, ctx| webhooks::get(conn, ctx, &id)).await?;
    Ok(webhook_response(actix_web::http::StatusCode::OK, row))
}

/// Change a webhook endpoint (owners).
///
/// Its URL, description or types, or turn it on or off (`enabled: true` restarts one Roster
/// turned off after it failed for days). Send `If-Match` with the `ETag` to refuse lost updates.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag you read; 412 when stale")),
    request_body = UpdateWebhookRequest,
    responses((status = 200, body = WebhookView, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint"),
        (status = 412, description = "If-Match is stale"), (status = 422, description = "The URL is not allowed, or an event type is unknown")))]
#[patch("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}")]
pub async fn update_webhook(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    body: crate::api::json::Json<UpdateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    let body = body.into_inner();
    let mut p = Problems::default();
    let url = body.url.as_deref().map(|u| match state.outbound_policy.check_url(u.trim()) {
        Ok(url) => url.to_string(),
        Err(why) => {
            p.add("url", why);
            String::new()
        }
    });
    if let Some(types) = &body.event_types {
        check_selectors("event_types", types, &mut p);
    }
    let description = body.description.map(|d| check_description(d.as_deref(), &mut p));
    p.finish()?;
    let version = crate::api::if_match(&req)?;
    let changes = WebhookChanges { url, description, event_types: body.event_types, enabled: body.enabled };
    let row =
        access.run_write(&state.pool, move |conn, ctx| webhooks::update(conn, ctx, &id, changes, version)).await?;
    Ok(webhook_response(actix_web::http::StatusCode::OK, row))
}

/// Delete a webhook endpoint (owners).
///
/// Nothing more is sent to it: its waiting deliveries go too. The feed keeps the events.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses((status = 204, description = "Deleted"),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint")))]
#[delete("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}")]
pub async fn delete_webhook(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    access.run_write(&state.pool, move |conn, ctx| webhooks::delete(conn, ctx, &id)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Give a webhook endpoint a new signing secret (owners).
///
/// For 24 hours both secrets sign every delivery (two signatures in `webhook-signature`), so
/// the receiver can switch over; then only the new one. The answer carries it, once.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses((status = 200, body = WebhookWithSecret, headers(("ETag" = String))),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint")))]
#[post("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret")]
pub async fn rotate_webhook_secret(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    let master = state.master.clone();
    let (row, secret) =
        access.run_write(&state.pool, move |conn, ctx| webhooks::rotate(conn, ctx, &master, &id)).await?;
    Ok(with_secret(actix_web::http::StatusCode::OK, row, &secret))
}

/// Send a test event to an endpoint (owners).
///
/// A `webhook.test` event, signed and retried like any other, to this endpoint only (it is not
/// in the feed); follow it in the endpoint's deliveries.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id")),
    responses((status = 202, description = "Queued", body = DeliveryView),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint")))]
#[post("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/test")]
pub async fn test_webhook(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    let row = access.run_write(&state.pool, move |conn, ctx| webhooks::send_test(conn, ctx, &id)).await?;
    state.webhook_queued.notify_one();
    Ok(HttpResponse::Accepted().json(DeliveryView::from(row)))
}

/// An endpoint's deliveries (owners).
///
/// Newest first: each event, its attempts, the last status code, duration and error, and when
/// the next attempt is due.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id"), DeliveryListParams),
    responses((status = 200, body = DeliveryPage),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint")))]
#[get("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries")]
pub async fn list_deliveries(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
    query: web::Query<DeliveryListParams>,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    let q = query.into_inner();
    let limit = page_limit(q.limit)?;
    let cursor = crate::store::cursor::decode_id(q.cursor.as_deref())?;
    let status = q.status;
    let (rows, next_cursor) = access
        .run(&state.pool, move |conn, ctx| {
            webhooks::deliveries(conn, ctx, &id, status.as_deref(), cursor.as_deref(), limit)
        })
        .await?;
    Ok(HttpResponse::Ok().json(DeliveryPage { items: rows.into_iter().map(DeliveryView::from).collect(), next_cursor }))
}

/// Send a delivery again (owners).
///
/// Now, whatever became of it (a `failed` one too); its attempts go on counting and it is signed
/// afresh.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), ("webhook_id" = uuid::Uuid, Path, description = "The endpoint's id"),
        ("delivery_id" = uuid::Uuid, Path, description = "The delivery's id")),
    responses((status = 202, description = "Queued", body = DeliveryView),
        (status = 403, description = "Only owners (and owner-role API keys) manage webhooks"), (status = 404, description = "No such endpoint or delivery")))]
#[post("/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")]
pub async fn retry_delivery(
    state: web::Data<AppState>,
    access: TenantAccess,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = webhook_id(&req)?;
    let delivery = parse_path_id::<uuid::Uuid>(&req, "delivery_id")?.hyphenated().to_string();
    let row = access.run_write(&state.pool, move |conn, ctx| webhooks::retry(conn, ctx, &id, &delivery)).await?;
    state.webhook_queued.notify_one();
    Ok(HttpResponse::Accepted().json(DeliveryView::from(row)))
}

/// The event feed (owners): every change, oldest first, from a cursor.
///
/// The same events the webhooks receive, kept for `ROSTER_EVENT_RETENTION_DAYS` (30). Start
/// without `after`, then pass each page's `next_cursor`: no event is skipped or repeated, and
/// polling with the last cursor returns only what happened since.
#[utoipa::path(tag = "webhooks", security(("bearer_auth" = [])),
    params(("tenant_id" = uuid::Uuid, Path, description = "The tenant's id"), EventParams),
    responses((status = 200, body = EventPage), (status = 403, description = "Only owners (and owner-role API keys) read the feed")))]
#[get("/api/v1/tenants/{tenant_id}/events")]
pub async fn list_events(
    state: web::Data<AppState>,
    access: TenantAccess,
    query: web::Query<EventParams>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let mut p = Problems::default();
    let limit = page_limit(q.limit)?;
    let after = match q.after.as_deref().map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => {
            p.add("after", "is not a cursor this feed handed out (`next_cursor`); start again without it");
            None
        }
    };
    let selectors: Vec<String> = q
        .types
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for (i, s) in selectors.iter().enumerate() {
        if !events::is_known_selector(s) {
            p.add("type", format!("item {} ({s:?}) is not an event type, a pattern such as member.* , or *", i + 1));
        }
    }
    p.finish()?;
    let page = access.run(&state.pool, move |conn, ctx| events::feed(conn, ctx, after, &selectors, limit)).await?;
    let mut items = Vec::with_capacity(page.events.len());
    for (_, payload) in &page.events {
        items.push(
            serde_json::from_str::<Event>(payload).map_err(|e| ApiError::internal(format!("stored event: {e}")))?,
        );
    }
    Ok(HttpResponse::Ok().json(EventPage {
        items,
        next_cursor: page.next.map(|n| n.to_string()),
        has_more: page.has_more,
    }))
}

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_webhooks)
        .service(create_webhook)
        .service(get_webhook)
        .service(update_webhook)
        .service(delete_webhook)
        .service(rotate_webhook_secret)
        .service(test_webhook)
        .service(list_deliveries)
        .service(retry_delivery)
        .service(list_events);
}
