//! Webhook endpoints of one tenant (DESIGN.md section 14): create, list, read, change, delete,
//! rotate the signing secret, send a test event; their deliveries, and a manual retry. Owners
//! (and API keys with the owner role). Secrets are sealed with the master key (the worker signs
//! with them) and leave only through the answers to create and rotate. The delivery worker's
//! side is at the bottom: claim due deliveries, record how each attempt went.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::audit::{self, AuditEntry};
use super::events::{self, NewEvent};
use crate::auth::TenantContext;
use crate::auth::master_key::MasterKey;
use crate::auth::policy::TenantAction;
use crate::db::models::{DeliveryRow, WebhookRow};
use crate::db::schema::{
    event_counters::dsl as ec, events::dsl as ev, memberships::dsl as m, users::dsl as u, webhook_cursors::dsl as wc,
    webhook_deliveries::dsl as d, webhooks::dsl as w,
};
use crate::db::{AnyConnection, BackendKind, on_backend, write_tx};
use crate::domain::{MemberStatus, Role, now};
use crate::error::ApiError;
use crate::store::outbox::{self, Notice};

/// How long the previous secret keeps signing after a rotation.
pub const ROTATION_GRACE_HOURS: i64 = 24;
/// An endpoint failing every delivery for this long is turned off.
pub const DISABLE_AFTER_DAYS: i64 = 5;
/// How long a claimed delivery belongs to the worker that claimed it (an attempt takes at most
/// 10 seconds).
pub const LEASE_SECS: i64 = 30;
/// Deliveries one worker claims at a time.
const BATCH: i64 = 50;
/// Endpoints whose new events one worker takes at a time, and events per endpoint.
pub const FRESH_ENDPOINTS: i64 = 16;
pub const FRESH_EVENTS: i64 = 50;

/// An endpoint to create.
pub struct NewWebhook {
    pub url: String,
    pub description: Option<String>,
    pub event_types: Vec<String>,
}

/// Changes to an endpoint; `None` leaves a field as it is.
#[derive(Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub description: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

fn seal_context(tenant: &str, id: &str) -> String {
    format!("webhook:{tenant}:{id}")
}

fn state(row: &WebhookRow) -> Value {
    json!({
        "url": row.url, "description": row.description, "event_types": row.types(), "enabled": row.enabled,
    })
}

fn not_found() -> ApiError {
    ApiError::not_found("webhook not found")
}

fn load(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<WebhookRow, ApiError> {
    w::webhooks
        .filter(w::tenant_id.eq(ctx.tenant_text()))
        .filter(w::id.eq(id))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)
}

fn types_text(types: &[String]) -> String {
    serde_json::to_string(types).unwrap_or_else(|_| "[]".into())
}

fn audit_change(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    action: &str,
    id: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    let entry = AuditEntry { action, target_type: "webhook", target_id: Some(id.to_string()), before, after };
    audit::record(conn, ctx, entry)
}

/// Creates an endpoint and answers it with its signing secret (the only time it is seen).
pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    master: &MasterKey,
    new: NewWebhook,
) -> Result<(WebhookRow, SecretString), ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let id = uuid::Uuid::now_v7().to_string();
        let secret = crate::domain::webhook_secret::generate();
        let sealed =
            master.seal(secret.expose_secret().as_bytes(), &seal_context(&tenant, &id)).map_err(ApiError::internal)?;
        let at = now();
        let row = WebhookRow {
            tenant_id: tenant.clone(),
            id,
            url: new.url,
            description: new.description,
            event_types: types_text(&new.event_types),
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            sealed_secret: sealed,
            previous_sealed_secret: None,
            previous_expires_at: None,
            created_by: ctx.actor().user_id.as_text(),
            created_at: at,
            updated_at: at,
            version: 1,
        };
        diesel::insert_into(w::webhooks).values(&row).execute(conn)?;
        start_cursor(conn, &tenant, &row.id)?;
        audit_change(conn, ctx, "webhook.created", &row.id, None, Some(state(&row)))?;
        Ok((row, secret))
    })
}

/// Starts (or starts again) an endpoint's cursor at its tenant's last event: it is sent the
/// events that follow (among them the audit of the change that started it).
fn start_cursor(conn: &mut AnyConnection, tenant: &str, webhook: &str) -> Result<(), ApiError> {
    let last: i64 =
        ec::event_counters.filter(ec::tenant_id.eq(tenant)).select(ec::last_seq).first(conn).optional()?.unwrap_or(0);
    diesel::delete(wc::webhook_cursors.filter(wc::tenant_id.eq(tenant)).filter(wc::webhook_id.eq(webhook)))
        .execute(conn)?;
    diesel::insert_into(wc::webhook_cursors)
        .values((
            wc::tenant_id.eq(tenant),
            wc::webhook_id.eq(webhook),
            wc::cursor_seq.eq(last),
            wc::locked_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Newest first, keyset on the time-ordered id; with the total.
pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<WebhookRow>, Option<String>, i64), ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    let total: i64 = w::webhooks.filter(w::tenant_id.eq(&tenant)).count().get_result(conn)?;
    let mut query = w::webhooks.filter(w::tenant_id.eq(&tenant)).into_boxed();
    if let Some(cursor) = cursor {
        query = query.filter(w::id.lt(cursor.to_string()));
    }
    let rows: Vec<WebhookRow> =
        query.order(w::id.desc()).limit(limit + 1).select(WebhookRow::as_select()).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<WebhookRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| r.id.clone()) } else { None };
    Ok((page, next, total))
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<WebhookRow, ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    load(conn, ctx, id)
}

/// Changes an endpoint. Enabling one the worker turned off starts its failure clock afresh.
pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    changes: WebhookChanges,
    if_match: Option<i32>,
) -> Result<WebhookRow, ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        super::check_version("webhook", before.version, if_match)?;
        let enabled = changes.enabled.unwrap_or(before.enabled);
        let reenabled = enabled && !before.enabled;
        let after = WebhookRow {
            url: changes.url.unwrap_or_else(|| before.url.clone()),
            description: changes.description.unwrap_or_else(|| before.description.clone()),
            event_types: changes.event_types.map(|t| types_text(&t)).unwrap_or_else(|| before.event_types.clone()),
            enabled,
            disabled_reason: if enabled { None } else { before.disabled_reason.clone() },
            failing_since: if reenabled { None } else { before.failing_since },
            updated_at: now(),
            version: before.version + 1,
            ..before.clone()
        };
        diesel::update(w::webhooks.filter(w::tenant_id.eq(&tenant)).filter(w::id.eq(id)))
            .set((
                w::url.eq(&after.url),
                w::description.eq(&after.description),
                w::event_types.eq(&after.event_types),
                w::enabled.eq(after.enabled),
                w::disabled_reason.eq(&after.disabled_reason),
                w::failing_since.eq(after.failing_since),
                w::updated_at.eq(after.updated_at),
                w::version.eq(after.version),
            ))
            .execute(conn)?;
        if reenabled {
            // What happened while it was off is not sent: it goes on from now.
            start_cursor(conn, &tenant, id)?;
        }
        audit_change(conn, ctx, "webhook.updated", id, Some(state(&before)), Some(state(&after)))?;
        Ok(after)
    })
}

/// Deletes an endpoint and the deliveries still waiting for it.
pub fn delete(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<(), ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        diesel::delete(d::webhook_deliveries.filter(d::tenant_id.eq(&tenant)).filter(d::webhook_id.eq(id)))
            .execute(conn)?;
        diesel::delete(wc::webhook_cursors.filter(wc::tenant_id.eq(&tenant)).filter(wc::webhook_id.eq(id)))
            .execute(conn)?;
        diesel::delete(w::webhooks.filter(w::tenant_id.eq(&tenant)).filter(w::id.eq(id))).execute(conn)?;
        audit_change(conn, ctx, "webhook.deleted", id, Some(state(&before)), None)
    })
}

/// A new signing secret; the previous one keeps signing beside it for
/// [`ROTATION_GRACE_HOURS`], so receivers can switch over.
pub fn rotate(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    master: &MasterKey,
    id: &str,
) -> Result<(WebhookRow, SecretString), ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        let secret = crate::domain::webhook_secret::generate();
        let sealed =
            master.seal(secret.expose_secret().as_bytes(), &seal_context(&tenant, id)).map_err(ApiError::internal)?;
        let at = now();
        let after = WebhookRow {
            sealed_secret: sealed,
            previous_sealed_secret: Some(before.sealed_secret.clone()),
            previous_expires_at: Some(at + Duration::hours(ROTATION_GRACE_HOURS)),
            updated_at: at,
            version: before.version + 1,
            ..before.clone()
        };
        diesel::update(w::webhooks.filter(w::tenant_id.eq(&tenant)).filter(w::id.eq(id)))
            .set((
                w::sealed_secret.eq(&after.sealed_secret),
                w::previous_sealed_secret.eq(&after.previous_sealed_secret),
                w::previous_expires_at.eq(after.previous_expires_at),
                w::updated_at.eq(at),
                w::version.eq(after.version),
            ))
            .execute(conn)?;
        let grace = json!({"previous_secret_signs_until": after.previous_expires_at.map(crate::domain::time::utc)});
        audit_change(conn, ctx, "webhook.secret_rotated", id, None, Some(grace))?;
        Ok((after, secret))
    })
}

/// Queues a `webhook.test` event to this endpoint alone (not in the feed); answers the
/// delivery.
pub fn send_test(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<DeliveryRow, ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let hook = load(conn, ctx, id)?;
        let (actor_type, actor_id, actor_name) = ctx.actor().audit_identity();
        let at = now();
        let event_id = uuid::Uuid::now_v7().to_string();
        let payload = events::payload(
            &event_id,
            "webhook.test",
            &tenant,
            at,
            json!({"type": actor_type, "id": actor_id, "name": actor_name}),
            json!({"type": "webhook", "id": hook.id}),
            json!({"id": hook.id, "url": hook.url, "message": "A test event: your endpoint receives and verifies Roster's webhooks."}),
        );
        let event = NewEvent { id: event_id, event_type: "webhook.test".into(), occurred_at: at, payload };
        let row = events::queued(&tenant, &hook.id, &event);
        diesel::insert_into(d::webhook_deliveries).values(&row).execute(conn)?;
        let sent = json!({"event_id": row.event_id, "delivery_id": row.id});
        audit_change(conn, ctx, "webhook.tested", &hook.id, None, Some(sent))?;
        Ok(row)
    })
}

/// An endpoint's deliveries, newest first (keyset on the time-ordered id), optionally of one
/// status.
pub fn deliveries(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    status: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<DeliveryRow>, Option<String>), ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    load(conn, ctx, id)?;
    let mut query =
        d::webhook_deliveries.filter(d::tenant_id.eq(ctx.tenant_text())).filter(d::webhook_id.eq(id)).into_boxed();
    if let Some(status) = status {
        query = query.filter(d::status.eq(status.to_string()));
    }
    if let Some(cursor) = cursor {
        query = query.filter(d::id.lt(cursor.to_string()));
    }
    let rows: Vec<DeliveryRow> =
        query.order(d::id.desc()).limit(limit + 1).select(DeliveryRow::as_select()).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<DeliveryRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| r.id.clone()) } else { None };
    Ok((page, next))
}

/// Sends a delivery again now (whatever its state): its attempts go on counting.
pub fn retry(conn: &mut AnyConnection, ctx: &TenantContext, id: &str, delivery: &str) -> Result<DeliveryRow, ApiError> {
    ctx.actor().require(TenantAction::ManageWebhooks)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        load(conn, ctx, id)?;
        let target = d::webhook_deliveries
            .filter(d::tenant_id.eq(&tenant))
            .filter(d::webhook_id.eq(id))
            .filter(d::id.eq(delivery));
        let n = diesel::update(target)
            .set((
                d::status.eq("pending"),
                d::next_attempt_at.eq(Some(now())),
                d::locked_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)?;
        if n == 0 {
            return Err(ApiError::not_found("delivery not found"));
        }
        let row: DeliveryRow = d::webhook_deliveries
            .filter(d::tenant_id.eq(&tenant))
            .filter(d::webhook_id.eq(id))
            .filter(d::id.eq(delivery))
            .select(DeliveryRow::as_select())
            .first(conn)?;
        let retried = json!({"delivery_id": row.id, "event_id": row.event_id, "attempts": row.attempts});
        audit_change(conn, ctx, "webhook.delivery_retried", id, None, Some(retried))?;
        Ok(row)
    })
}

// ---------------------------------------------------------------- the worker's side

/// A delivery claimed for an attempt, with what sending it needs.
pub struct Claimed {
    pub delivery: DeliveryRow,
    pub url: String,
    /// What is sent: the event's payload.
    pub body: String,
    /// The current secret, then the previous one while it still signs.
    pub secrets: Vec<SecretString>,
}

/// `status = 'pending'` written out, not bound: the due index holds only pending deliveries,
/// and a planner uses such a partial index only when the query's condition is the index's own
/// (a bound `status = ?` could be anything when the statement is prepared).
fn pending() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>("webhook_deliveries.status = 'pending'")
}

/// Whether any delivery is due: a read, so an idle system never takes SQLite's writer.
pub fn any_due(conn: &mut AnyConnection) -> Result<bool, ApiError> {
    let at = now();
    let due = d::webhook_deliveries
        .filter(pending())
        .filter(d::next_attempt_at.le(at))
        .filter(d::locked_until.is_null().or(d::locked_until.lt(at)))
        .select(d::id);
    Ok(diesel::select(diesel::dsl::exists(due)).get_result(conn)?)
}

/// Claims due deliveries of enabled endpoints, with their endpoints' secrets opened and their
/// events' payloads: at most `room` in all, and for each endpoint no more than `per_endpoint`
/// less those of it `busy` (in flight here) already. A few statements for the whole batch, not
/// a few per delivery. On PostgreSQL each is leased for [`LEASE_SECS`], so another instance
/// skips it. SQLite has one instance, which knows what it holds: the deliveries in `held`
/// (claimed and not yet recorded) are passed over and nothing is written, so claiming never
/// queues in the one writer.
pub fn claim(
    conn: &mut AnyConnection,
    master: &MasterKey,
    busy: &HashMap<String, usize>,
    held: &HashSet<String>,
    per_endpoint: usize,
    room: usize,
) -> Result<Vec<Claimed>, ApiError> {
    let leased = conn.kind() == BackendKind::Postgres;
    let (rows, hooks, payloads) = write_tx(conn, |conn| {
        let at = now();
        // Deliveries of enabled endpoints only; rows another instance is claiming right now
        // are skipped, not waited for.
        let enabled = w::webhooks
            .filter(w::tenant_id.eq(d::tenant_id))
            .filter(w::id.eq(d::webhook_id))
            .filter(w::enabled.eq(true))
            .select(w::id);
        let due = d::webhook_deliveries
            .filter(pending())
            .filter(d::next_attempt_at.le(at))
            .filter(d::locked_until.is_null().or(d::locked_until.lt(at)))
            .filter(diesel::dsl::exists(enabled))
            .order(d::next_attempt_at)
            .limit(BATCH + held.len() as i64);
        // All columns, in the table's order (`DeliveryRow` follows it): one query for both backends.
        let deliveries: Vec<DeliveryRow> = on_backend!(&mut *conn,
            postgres: |c| due.for_update().skip_locked().load::<DeliveryRow>(c)?,
            sqlite: |c| due.load::<DeliveryRow>(c)?,
        );
        let mut taken: HashMap<String, usize> = busy.clone();
        let mut rows = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            if held.contains(&delivery.id) {
                continue;
            }
            let n = taken.entry(delivery.webhook_id.clone()).or_default();
            if *n >= per_endpoint || rows.len() >= room {
                continue;
            }
            *n += 1;
            rows.push(delivery);
        }
        // Per tenant (a batch is nearly always one): the lease, the endpoints, the payloads.
        let mut tenants: BTreeMap<&str, Vec<&DeliveryRow>> = BTreeMap::new();
        for row in &rows {
            tenants.entry(row.tenant_id.as_str()).or_default().push(row);
        }
        let mut hooks: HashMap<(String, String), WebhookRow> = HashMap::new();
        let mut payloads: HashMap<(String, String), String> = HashMap::new();
        for (tenant, batch) in tenants {
            if leased {
                let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
                diesel::update(d::webhook_deliveries.filter(d::tenant_id.eq(tenant)).filter(d::id.eq_any(&ids)))
                    .set(d::locked_until.eq(Some(at + Duration::seconds(LEASE_SECS))))
                    .execute(conn)?;
            }
            let mut endpoints: Vec<&str> = batch.iter().map(|r| r.webhook_id.as_str()).collect();
            endpoints.sort_unstable();
            endpoints.dedup();
            let rows: Vec<WebhookRow> = w::webhooks
                .filter(w::tenant_id.eq(tenant))
                .filter(w::id.eq_any(&endpoints))
                .select(WebhookRow::as_select())
                .load(conn)?;
            hooks.extend(rows.into_iter().map(|h| ((h.tenant_id.clone(), h.id.clone()), h)));
            let events: Vec<&str> = batch.iter().filter(|r| r.body.is_none()).map(|r| r.event_id.as_str()).collect();
            if !events.is_empty() {
                let found: Vec<(String, String)> = ev::events
                    .filter(ev::tenant_id.eq(tenant))
                    .filter(ev::id.eq_any(&events))
                    .select((ev::id, ev::payload))
                    .load(conn)?;
                payloads.extend(found.into_iter().map(|(id, payload)| ((tenant.to_string(), id), payload)));
            }
        }
        Ok((rows, hooks, payloads))
    })?;
    let at = now();
    let mut claimed = Vec::with_capacity(rows.len());
    let mut unsendable = Vec::new();
    for delivery in rows {
        let key = (delivery.tenant_id.clone(), delivery.webhook_id.clone());
        // Claimed under the lease, so the endpoint is there (deleting it deletes its deliveries).
        let Some(hook) = hooks.get(&key) else { continue };
        let body = match &delivery.body {
            Some(body) => body.clone(),
            // Several endpoints' deliveries of one event share its payload.
            None => match payloads.get(&(delivery.tenant_id.clone(), delivery.event_id.clone())) {
                Some(payload) => payload.clone(),
                None => {
                    let gone = "the event is no longer kept (past the event feed's retention)".to_string();
                    unsendable.push((delivery, Attempt::failed(None, 0, gone)));
                    continue;
                }
            },
        };
        let secrets = match open_secrets(master, hook, at) {
            Ok(secrets) => secrets,
            Err(e) => {
                let failed = Attempt::failed(None, 0, format!("cannot open the endpoint's secret: {e}"));
                unsendable.push((delivery, failed));
                continue;
            }
        };
        claimed.push(Claimed { delivery, url: hook.url.clone(), body, secrets });
    }
    if !unsendable.is_empty() {
        // No attempt can succeed: given up at once (no retry schedule).
        record_all(conn, unsendable, &[])?;
    }
    Ok(claimed)
}

/// Events an endpoint is to be sent for the first time: those after its cursor that its types
/// select, in order.
pub struct Fresh {
    pub tenant_id: String,
    pub webhook_id: String,
    pub url: String,
    /// The current secret, then the previous one while it still signs.
    pub secrets: Vec<SecretString>,
    /// Where the cursor stood, and where it moves once the attempts are recorded (the last
    /// event read, sent or not).
    pub from: i64,
    pub upto: i64,
    /// A delivery to be (its attempt not yet made) and its payload, for each selected event.
    pub deliveries: Vec<(DeliveryRow, String)>,
}

/// Up to `limit` cursors of enabled endpoints behind their tenant's events and not leased:
/// `(tenant, endpoint, cursor)`.
fn behind(conn: &mut AnyConnection, at: NaiveDateTime, limit: i64) -> Result<Vec<(String, String, i64)>, ApiError> {
    let enabled = w::webhooks
        .filter(w::tenant_id.eq(wc::tenant_id))
        .filter(w::id.eq(wc::webhook_id))
        .filter(w::enabled.eq(true))
        .select(w::id);
    let newer = ec::event_counters
        .filter(ec::tenant_id.eq(wc::tenant_id))
        .filter(ec::last_seq.gt(wc::cursor_seq))
        .select(ec::tenant_id);
    Ok(wc::webhook_cursors
        .filter(wc::locked_until.is_null().or(wc::locked_until.lt(at)))
        .filter(diesel::dsl::exists(enabled))
        .filter(diesel::dsl::exists(newer))
        .select((wc::tenant_id, wc::webhook_id, wc::cursor_seq))
        .limit(limit)
        .load(conn)?)
}

/// Whether an endpoint not in `held` has events to be sent: a read, so an idle system never
/// takes SQLite's writer.
pub fn any_fresh(conn: &mut AnyConnection, held: &HashSet<(String, String)>) -> Result<bool, ApiError> {
    let found = behind(conn, now(), held.len() as i64 + 1)?;
    Ok(found.into_iter().any(|(t, w, _)| !held.contains(&(t, w))))
}

/// Takes, for up to [`FRESH_ENDPOINTS`] enabled endpoints behind their tenant's events (and not
/// in `held`, those with a batch in flight here), the next [`FRESH_EVENTS`] events. On
/// PostgreSQL each cursor is leased for [`LEASE_SECS`], so another instance passes it over; an
/// endpoint none of whose events are selected just moves its cursor on.
pub fn claim_fresh(
    conn: &mut AnyConnection,
    master: &MasterKey,
    held: &HashSet<(String, String)>,
) -> Result<Vec<Fresh>, ApiError> {
    let leased = conn.kind() == BackendKind::Postgres;
    write_tx(conn, |conn| {
        let at = now();
        let candidates = behind(conn, at, FRESH_ENDPOINTS + held.len() as i64)?;
        let mut fresh = Vec::new();
        for (tenant, webhook, from) in candidates {
            if fresh.len() as i64 >= FRESH_ENDPOINTS || held.contains(&(tenant.clone(), webhook.clone())) {
                continue;
            }
            let cursor = wc::webhook_cursors
                .filter(wc::tenant_id.eq(&tenant))
                .filter(wc::webhook_id.eq(&webhook))
                .filter(wc::cursor_seq.eq(from));
            if leased {
                // Taken only if no other instance took it meanwhile.
                let lease = Some(at + Duration::seconds(LEASE_SECS));
                let taken = diesel::update(cursor.filter(wc::locked_until.is_null().or(wc::locked_until.lt(at))))
                    .set(wc::locked_until.eq(lease))
                    .execute(conn)?;
                if taken != 1 {
                    continue;
                }
            }
            let Some(hook) = w::webhooks
                .filter(w::tenant_id.eq(&tenant))
                .filter(w::id.eq(&webhook))
                .select(WebhookRow::as_select())
                .first(conn)
                .optional()?
            else {
                continue;
            };
            let read: Vec<(i64, String, String, String)> = ev::events
                .filter(ev::tenant_id.eq(&tenant))
                .filter(ev::seq.gt(from))
                .order(ev::seq.asc())
                .limit(FRESH_EVENTS)
                .select((ev::seq, ev::id, ev::event_type, ev::payload))
                .load(conn)?;
            let Some(upto) = read.last().map(|e| e.0) else { continue };
            let types = hook.types();
            let deliveries: Vec<(DeliveryRow, String)> = read
                .into_iter()
                .filter(|(_, _, event_type, _)| types.iter().any(|t| events::matches(t, event_type)))
                .map(|(_, event_id, event_type, payload)| {
                    (DeliveryRow::due(&tenant, &webhook, event_id, event_type, None, at), payload)
                })
                .collect();
            if deliveries.is_empty() {
                diesel::update(cursor)
                    .set((wc::cursor_seq.eq(upto), wc::locked_until.eq(None::<NaiveDateTime>)))
                    .execute(conn)?;
                continue;
            }
            let secrets = match open_secrets(master, &hook, at) {
                Ok(secrets) => secrets,
                Err(e) => {
                    log::warn!("webhook endpoint {webhook}: cannot open its secret: {e}");
                    continue;
                }
            };
            fresh.push(Fresh {
                tenant_id: tenant,
                webhook_id: webhook,
                url: hook.url,
                secrets,
                from,
                upto,
                deliveries,
            });
        }
        Ok(fresh)
    })
}

/// The endpoint's secrets that sign now: the current one, then the previous one during a
/// rotation.
fn open_secrets(master: &MasterKey, hook: &WebhookRow, at: NaiveDateTime) -> Result<Vec<SecretString>, String> {
    let context = seal_context(&hook.tenant_id, &hook.id);
    let open = |sealed: &str| {
        master
            .open(sealed, &context)
            .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()))
            .map(SecretString::from)
    };
    let mut secrets = vec![open(&hook.sealed_secret)?];
    if let (Some(previous), Some(until)) = (&hook.previous_sealed_secret, hook.previous_expires_at)
        && until > at
        && let Ok(secret) = open(previous)
    {
        secrets.push(secret);
    }
    Ok(secrets)
}

/// Records the first attempts at an endpoint's fresh events and moves its cursor past them, in
/// one transaction; nothing when the endpoint is gone or its cursor was taken over meanwhile
/// (its lease ran out and another instance sent them). A delivery row is written here, for the
/// first time, with how its attempt went.
pub fn record_fresh(
    conn: &mut AnyConnection,
    batches: Vec<(Fresh, Vec<(DeliveryRow, Attempt)>)>,
    schedule: &[i64],
) -> Result<Vec<Disabled>, ApiError> {
    write_tx(conn, |conn| {
        let at = now();
        let mut disabled = Vec::new();
        for (fresh, attempts) in batches {
            // The tenant first, as every writer of the tenant's endpoints takes it: deleting an
            // endpoint holds it while it deletes the cursor this would hold (PostgreSQL).
            crate::db::lock_tenant_shared(conn, &fresh.tenant_id)?;
            let moved = diesel::update(
                wc::webhook_cursors
                    .filter(wc::tenant_id.eq(&fresh.tenant_id))
                    .filter(wc::webhook_id.eq(&fresh.webhook_id))
                    .filter(wc::cursor_seq.eq(fresh.from)),
            )
            .set((wc::cursor_seq.eq(fresh.upto), wc::locked_until.eq(None::<NaiveDateTime>)))
            .execute(conn)?;
            if moved != 1 {
                continue;
            }
            let mut rows = Vec::with_capacity(attempts.len());
            let (mut delivered, mut failed) = (false, false);
            for (delivery, attempt) in &attempts {
                let mut row = delivery.clone();
                row.attempts = 1;
                row.last_status = attempt.status.map(i32::from);
                row.last_duration_ms = Some(duration_ms(attempt));
                row.created_at = at;
                if attempt.ok {
                    row.status = "succeeded".into();
                    row.next_attempt_at = None;
                    row.delivered_at = Some(at);
                    delivered = true;
                } else {
                    let wait = schedule.first().copied();
                    row.status = if wait.is_some() { "pending" } else { "failed" }.into();
                    row.next_attempt_at = wait.map(|s| at + Duration::seconds(s));
                    row.last_error = attempt.error.as_deref().map(|e| e.chars().take(500).collect());
                    failed = true;
                }
                rows.push(row);
            }
            on_backend!(&mut *conn, |c| {
                for chunk in rows.chunks(200) {
                    diesel::insert_into(d::webhook_deliveries).values(chunk).execute(c)?;
                }
            });
            if delivered {
                let hook = w::webhooks.filter(w::tenant_id.eq(&fresh.tenant_id)).filter(w::id.eq(&fresh.webhook_id));
                diesel::update(hook.filter(w::failing_since.is_not_null()))
                    .set(w::failing_since.eq(None::<NaiveDateTime>))
                    .execute(conn)?;
            } else if failed {
                disabled.extend(endpoint_failed(conn, &fresh.tenant_id, &fresh.webhook_id, at)?);
            }
        }
        Ok(disabled)
    })
}

/// How one attempt went.
pub struct Attempt {
    pub ok: bool,
    pub status: Option<u16>,
    pub duration_ms: i64,
    pub error: Option<String>,
}

impl Attempt {
    pub fn failed(status: Option<u16>, duration_ms: i64, error: String) -> Self {
        Attempt { ok: false, status, duration_ms, error: Some(error) }
    }
}

/// Records attempts, in one transaction: each delivered; or tried again after the next wait of
/// `schedule` (seconds after each failed attempt), or given up when it is used up. An endpoint
/// that delivered in this batch is no longer failing; one whose deliveries have all failed for
/// [`DISABLE_AFTER_DAYS`] is turned off (answered, so that its tenant's owners are told).
pub fn record_all(
    conn: &mut AnyConnection,
    attempts: Vec<(DeliveryRow, Attempt)>,
    schedule: &[i64],
) -> Result<Vec<Disabled>, ApiError> {
    write_tx(conn, |conn| {
        let at = now();
        let (succeeded, failed): (Vec<_>, Vec<_>) = attempts.into_iter().partition(|(_, a)| a.ok);
        let mut delivered_to: Vec<(&str, &str)> = Vec::new();
        for (delivery, attempt) in &succeeded {
            let target = d::webhook_deliveries
                .filter(d::tenant_id.eq(&delivery.tenant_id))
                .filter(d::webhook_id.eq(&delivery.webhook_id))
                .filter(d::id.eq(&delivery.id));
            diesel::update(target)
                .set((
                    d::status.eq("succeeded"),
                    d::attempts.eq(delivery.attempts + 1),
                    d::next_attempt_at.eq(None::<NaiveDateTime>),
                    d::locked_until.eq(None::<NaiveDateTime>),
                    d::last_status.eq(attempt.status.map(i32::from)),
                    d::last_duration_ms.eq(Some(duration_ms(attempt))),
                    d::last_error.eq(None::<String>),
                    d::delivered_at.eq(Some(at)),
                ))
                .execute(conn)?;
            delivered_to.push((&delivery.tenant_id, &delivery.webhook_id));
        }
        delivered_to.sort_unstable();
        delivered_to.dedup();
        for (tenant, webhook) in delivered_to {
            // A write only when the endpoint was failing: the usual success costs nothing here.
            let hook = w::webhooks.filter(w::tenant_id.eq(tenant)).filter(w::id.eq(webhook));
            diesel::update(hook.filter(w::failing_since.is_not_null()))
                .set(w::failing_since.eq(None::<NaiveDateTime>))
                .execute(conn)?;
        }
        let mut disabled = Vec::new();
        for (delivery, attempt) in &failed {
            disabled.extend(record_failure(conn, delivery, attempt, schedule, at)?);
        }
        Ok(disabled)
    })
}

/// The last attempt's duration as stored.
fn duration_ms(attempt: &Attempt) -> i32 {
    attempt.duration_ms.clamp(0, i64::from(i32::MAX)) as i32
}

/// Records a failed attempt (inside [`record_all`]'s transaction).
fn record_failure(
    conn: &mut AnyConnection,
    delivery: &DeliveryRow,
    attempt: &Attempt,
    schedule: &[i64],
    at: NaiveDateTime,
) -> Result<Option<Disabled>, ApiError> {
    let attempts = delivery.attempts + 1;
    let target = d::webhook_deliveries
        .filter(d::tenant_id.eq(&delivery.tenant_id))
        .filter(d::webhook_id.eq(&delivery.webhook_id))
        .filter(d::id.eq(&delivery.id));
    let wait = schedule.get((attempts - 1) as usize).copied();
    diesel::update(target)
        .set((
            d::status.eq(if wait.is_some() { "pending" } else { "failed" }),
            d::attempts.eq(attempts),
            d::next_attempt_at.eq(wait.map(|s| at + Duration::seconds(s))),
            d::locked_until.eq(None::<NaiveDateTime>),
            d::last_status.eq(attempt.status.map(i32::from)),
            d::last_duration_ms.eq(Some(duration_ms(attempt))),
            d::last_error.eq(attempt.error.as_deref().map(|e| e.chars().take(500).collect::<String>())),
        ))
        .execute(conn)?;
    endpoint_failed(conn, &delivery.tenant_id, &delivery.webhook_id, at)
}

/// An endpoint's attempt failed: it is failing since now, unless it already was; one failing
/// for [`DISABLE_AFTER_DAYS`] is turned off (answered, so that its tenant's owners are told).
fn endpoint_failed(
    conn: &mut AnyConnection,
    tenant: &str,
    webhook: &str,
    at: NaiveDateTime,
) -> Result<Option<Disabled>, ApiError> {
    let hook = w::webhooks.filter(w::tenant_id.eq(tenant)).filter(w::id.eq(webhook));
    diesel::update(hook.filter(w::failing_since.is_null())).set(w::failing_since.eq(Some(at))).execute(conn)?;
    let row: Option<WebhookRow> = w::webhooks
        .filter(w::tenant_id.eq(tenant))
        .filter(w::id.eq(webhook))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?;
    let Some(row) = row else { return Ok(None) };
    let failing_for = row.failing_since.map(|since| at - since);
    if row.enabled && failing_for.is_some_and(|f| f >= Duration::days(DISABLE_AFTER_DAYS)) {
        diesel::update(hook)
            .set((
                w::enabled.eq(false),
                w::disabled_reason.eq(Some("failing")),
                w::updated_at.eq(at),
                w::version.eq(w::version + 1),
            ))
            .execute(conn)?;
        return Ok(Some(Disabled { row }));
    }
    Ok(None)
}

/// An endpoint the worker turned off.
pub struct Disabled {
    pub row: WebhookRow,
}

/// Emails the tenant's active owners that `disabled` was turned off, and audits it; inside a
/// write transaction of the worker.
pub fn tell_owners(
    conn: &mut AnyConnection,
    master: &MasterKey,
    app_url: &str,
    disabled: &Disabled,
) -> Result<(), ApiError> {
    write_tx(conn, |conn| {
        let row = &disabled.row;
        let owners: Vec<(String, String)> = m::memberships
            .inner_join(u::users)
            .filter(m::tenant_id.eq(&row.tenant_id))
            .filter(m::role.eq(Role::Owner.as_str()))
            .filter(m::status.eq(MemberStatus::Active.as_str()))
            .select((u::email, u::full_name))
            .load(conn)?;
        for (email, full_name) in owners {
            let notice = Notice::WebhookDisabled {
                full_name,
                url: row.url.clone(),
                days: DISABLE_AFTER_DAYS,
                link: format!("{app_url}/settings/webhooks/{}", row.id),
            };
            outbox::enqueue(conn, master, Some(&row.tenant_id), &email, &notice)?;
        }
        let entry = AuditEntry {
            action: "webhook.updated",
            target_type: "webhook",
            target_id: Some(row.id.clone()),
            before: Some(json!({"enabled": true})),
            after: Some(
                json!({"enabled": false, "disabled_reason": "failing", "failing_since": row.failing_since.map(crate::domain::time::utc)}),
            ),
        };
        let tenant = crate::domain::ids::parse_stored(&row.tenant_id);
        audit::record_raw(conn, tenant, audit::AuditActor::Platform, &Default::default(), entry)
    })
}
