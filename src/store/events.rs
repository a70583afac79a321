//! Events (DESIGN.md section 14): every change the audit log records is also an event of a
//! documented type, numbered per tenant, kept for the feed (`GET .../events?after=`) and written,
//! in the same transaction, as a delivery for each enabled webhook whose types match.
//!
//! Numbering: `event_counters` holds each tenant's last number, and a number is handed out only
//! while its row is locked, until the transaction that took it ends: the next number only after
//! the previous event is committed (or rolled back and reused), so the feed never shows number 7
//! while 6 could still appear, and a cursor never skips an event. On SQLite (one writer at a
//! time) the numbers are taken with the event. On PostgreSQL the events are written unnumbered
//! and a deferred trigger numbers them as the transaction commits (migration
//! `events_numbered_at_commit`): the row is held only while PostgreSQL commits, not across the
//! rest of the transaction's round trips, so a tenant's writers run side by side.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Value, json};

use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::models::AuditRow;
use crate::db::schema::{event_counters::dsl as c, events::dsl as ev, webhooks::dsl as w};
use crate::db::{AnyConnection, escape_like, on_backend};
use crate::error::ApiError;

/// Every event type, as the OpenAPI document lists them. Patterns (`member.*`, `*`) select among
/// these.
pub const EVENT_TYPES: &[&str] = &[
    "member.created",
    "member.updated",
    "member.role_changed",
    "member.enabled",
    "member.disabled",
    "member.deleted",
    "member.password_reset",
    "member.unlocked",
    "member.sessions_ended",
    "member.enrolled",
    "member.approved",
    "member.rejected",
    "member.profile_completed",
    "member.email_confirmed",
    "members.imported",
    "device.enrolled",
    "invitation.created",
    "invitation.resent",
    "invitation.revoked",
    "invitation.accepted",
    "tenant.created",
    "tenant.updated",
    "region.created",
    "region.updated",
    "region.deleted",
    "department.created",
    "department.renamed",
    "department.deleted",
    "section.created",
    "section.renamed",
    "section.deleted",
    "api_key.created",
    "api_key.updated",
    "api_key.rotated",
    "api_key.revoked",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "webhook.secret_rotated",
    "user.password_changed",
    "user.password_reset_requested",
    "user.password_reset_completed",
    "user.locked",
    "user.signed_out",
    "session.ended",
    "session.refresh_token_reused",
    "webhook.test",
    "group.created",
    "group.updated",
    "group.deleted",
    "group.role_mapping_changed",
    "scim_settings.updated",
    "sso_connection.created",
    "sso_connection.updated",
    "sso_connection.deleted",
    "sso.sign_in_refused",
    "domain.added",
    "domain.verified",
    "domain.verification_failed",
    "domain.removed",
];

/// Whether a type or pattern names event types: an exact type, `prefix.*`, or `*`.
pub fn is_known_selector(selector: &str) -> bool {
    selector == "*"
        || EVENT_TYPES.contains(&selector)
        || selector.strip_suffix(".*").is_some_and(|prefix| {
            EVENT_TYPES.iter().any(|t| t.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')))
        })
}

/// Whether `event_type` is selected by `selector`.
pub fn matches(selector: &str, event_type: &str) -> bool {
    selector == "*"
        || selector == event_type
        || selector
            .strip_suffix(".*")
            .is_some_and(|prefix| event_type.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')))
}

/// The event an audited action becomes: its own name, but for reads (exports) and sends (a
/// test event, a manual retry), which change no object, and member updates that change the role or regions, which are `member.role_changed`
/// (one event per change, of its most specific type).
fn event_type(action: &str, before: Option<&Value>, after: Option<&Value>) -> Option<String> {
    match action {
        // Reads and sends are audited but change no object: no event.
        "members.exported" | "webhook.tested" | "webhook.delivery_retried" => None,
        "member.updated" => {
            let changed = |field: &str| before.and_then(|b| b.get(field)) != after.and_then(|a| a.get(field));
            Some(if changed("role") || changed("regions") { "member.role_changed" } else { action }.to_string())
        }
        _ if EVENT_TYPES.contains(&action) => Some(action.to_string()),
        _ => {
            log::debug!("audit action {action} has no event type");
            None
        }
    }
}

/// The object after the change: a member as it is now (with its version), else what the
/// audit entry recorded (before a deletion), with the target's id.
fn object(
    conn: &mut AnyConnection,
    audit: &AuditRow,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<Value, ApiError> {
    let mut data = after.or(before).cloned().unwrap_or_else(|| json!({}));
    // A new member's audited state is the whole object (an import writes thousands at once:
    // nothing to read back); any other change of a member is read as it is now.
    if audit.target_type == "member" && audit.action == "member.created" {
        if let Value::Object(map) = &mut data {
            map.insert("version".into(), json!(1));
        }
    } else if audit.target_type == "member"
        && let Some(id) = &audit.target_id
        && let Some(member) = crate::store::members::event_object(conn, &audit.tenant_id, id)?
    {
        return Ok(member);
    }
    if let (Value::Object(map), Some(id)) = (&mut data, &audit.target_id) {
        map.entry("id").or_insert_with(|| json!(id));
        if !map.contains_key("version")
            && let Some(version) = current_version(conn, &audit.tenant_id, &audit.target_type, id)?
        {
            map.insert("version".into(), json!(version));
        }
    }
    Ok(data)
}

/// The version an object of the tenant has now (`None` when it is gone, or has none).
fn current_version(
    conn: &mut AnyConnection,
    tenant: &str,
    target_type: &str,
    id: &str,
) -> Result<Option<i32>, ApiError> {
    use crate::db::schema::{
        api_keys::dsl as k, departments::dsl as dep, groups::dsl as g, regions::dsl as r, scim_settings::dsl as ss,
        sections::dsl as sec, tenants::dsl as t,
    };
    Ok(match target_type {
        "region" => {
            r::regions.filter(r::tenant_id.eq(tenant)).filter(r::id.eq(id)).select(r::version).first(conn).optional()?
        }
        "department" => dep::departments
            .filter(dep::tenant_id.eq(tenant))
            .filter(dep::id.eq(id))
            .select(dep::version)
            .first(conn)
            .optional()?,
        "section" => sec::sections
            .filter(sec::tenant_id.eq(tenant))
            .filter(sec::id.eq(id))
            .select(sec::version)
            .first(conn)
            .optional()?,
        "api_key" => k::api_keys
            .filter(k::tenant_id.eq(tenant))
            .filter(k::id.eq(id))
            .select(k::version)
            .first(conn)
            .optional()?,
        "webhook" => w::webhooks
            .filter(w::tenant_id.eq(tenant))
            .filter(w::id.eq(id))
            .select(w::version)
            .first(conn)
            .optional()?,
        "tenant" => t::tenants.filter(t::id.eq(tenant)).select(t::version).first(conn).optional()?,
        "group" => {
            g::groups.filter(g::tenant_id.eq(tenant)).filter(g::id.eq(id)).select(g::version).first(conn).optional()?
        }
        "scim_settings" => {
            ss::scim_settings.filter(ss::tenant_id.eq(tenant)).select(ss::version).first(conn).optional()?
        }
        _ => None,
    })
}

/// A new event, ready to number and write.
pub(in crate::store) struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub occurred_at: NaiveDateTime,
    pub payload: String,
}

/// The event payload: what the feed shows and a webhook receives.
pub(in crate::store) fn payload(
    id: &str,
    event_type: &str,
    tenant: &str,
    at: NaiveDateTime,
    actor: Value,
    target: Value,
    data: Value,
) -> String {
    json!({
        "id": id,
        "type": event_type,
        "tenant_id": tenant,
        "occurred_at": crate::domain::time::utc(at),
        "actor": actor,
        "target": target,
        "data": data,
    })
    .to_string()
}

fn from_audit(conn: &mut AnyConnection, audit: &AuditRow) -> Result<Option<NewEvent>, ApiError> {
    let parse = |s: &Option<String>| s.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok());
    let (before, after) = (parse(&audit.before_state), parse(&audit.after_state));
    let Some(event_type) = event_type(&audit.action, before.as_ref(), after.as_ref()) else { return Ok(None) };
    let data = object(conn, audit, before.as_ref(), after.as_ref())?;
    let id = uuid::Uuid::now_v7().to_string();
    let actor = json!({"type": audit.actor_type, "id": audit.actor_id, "name": audit.actor_name});
    let target = json!({"type": audit.target_type, "id": audit.target_id});
    let payload = payload(&id, &event_type, &audit.tenant_id, audit.created_at, actor, target, data);
    Ok(Some(NewEvent { id, event_type, occurred_at: audit.created_at, payload }))
}

/// Writes the events of these audit rows (one tenant's) and their deliveries; inside the
/// caller's transaction.
pub(in crate::store) fn emit(conn: &mut AnyConnection, tenant: &str, audits: &[AuditRow]) -> Result<(), ApiError> {
    let mut events = Vec::with_capacity(audits.len());
    for audit in audits {
        if let Some(event) = from_audit(conn, audit)? {
            events.push(event);
        }
    }
    write(conn, tenant, &events)
}

/// Numbers and writes `events`. Webhook endpoints follow them with their cursors (the worker
/// sends each endpoint what comes after its cursor and then writes the delivery rows), so a
/// change writes nothing per endpoint. After the counter, one statement per event (or per 500).
pub(in crate::store) fn write(conn: &mut AnyConnection, tenant: &str, events: &[NewEvent]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Ok(());
    }
    if conn.kind() == crate::db::BackendKind::Postgres {
        return write_unnumbered(conn, tenant, events);
    }
    let first = take_numbers(conn, tenant, events.len() as i64)?;
    // The row of event `$e` numbered `$seq`.
    macro_rules! row {
        ($e:expr, $seq:expr) => {
            (
                ev::tenant_id.eq(tenant),
                ev::seq.eq($seq),
                ev::id.eq(&$e.id),
                ev::event_type.eq(&$e.event_type),
                ev::occurred_at.eq($e.occurred_at),
                ev::payload.eq(&$e.payload),
            )
        };
    }
    if let [event] = events {
        // One event (every change but an import): a statement the connection keeps prepared.
        let one = row!(event, first);
        on_backend!(&mut *conn, |conn| diesel::insert_into(ev::events).values(one).execute(conn))?;
        return Ok(());
    }
    for chunk in events.iter().zip(first..).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<_> = chunk.iter().map(|&(e, seq)| row!(e, seq)).collect();
        on_backend!(&mut *conn, |conn| diesel::insert_into(ev::events).values(rows).execute(conn))?;
    }
    Ok(())
}

/// Events written for the trigger that numbers them at commit (PostgreSQL only; its migration
/// `events_numbered_at_commit` says why). Never holds a committed row.
mod pending {
    diesel::table! {
        events_unnumbered (tenant_id, pos) {
            tenant_id -> Text,
            pos -> BigInt,
            id -> Text,
            event_type -> Text,
            occurred_at -> Timestamp,
            payload -> Text,
        }
    }
}

/// [`write`] on PostgreSQL: the events in the order given, numbered when the transaction
/// commits. One statement per event (or per 500), each one the connection keeps prepared.
fn write_unnumbered(conn: &mut AnyConnection, tenant: &str, events: &[NewEvent]) -> Result<(), ApiError> {
    use pending::events_unnumbered::dsl as p;
    let crate::db::AnyConnection::Postgresql(conn) = conn else {
        return Err(ApiError::internal("unnumbered events are PostgreSQL's"));
    };
    let row = |e: &NewEvent| {
        (
            p::tenant_id.eq(tenant.to_string()),
            p::id.eq(e.id.clone()),
            p::event_type.eq(e.event_type.clone()),
            p::occurred_at.eq(e.occurred_at),
            p::payload.eq(e.payload.clone()),
        )
    };
    if let [event] = events {
        diesel::insert_into(p::events_unnumbered).values(row(event)).execute(conn)?;
        return Ok(());
    }
    for chunk in events.chunks(500) {
        let rows: Vec<_> = chunk.iter().map(row).collect();
        diesel::insert_into(p::events_unnumbered).values(rows).execute(conn)?;
    }
    Ok(())
}

/// Takes the next `n` numbers of the tenant's events and answers the first (SQLite, where the
/// writer's lock already holds the counter until the transaction ends). Only a tenant's first
/// event inserts the row.
fn take_numbers(conn: &mut AnyConnection, tenant: &str, n: i64) -> Result<i64, ApiError> {
    let bump = |conn: &mut AnyConnection| -> Result<Option<i64>, ApiError> {
        let counter = c::event_counters.filter(c::tenant_id.eq(tenant));
        // Two statements the connection keeps prepared cost less than one it prepares anew each
        // time (Diesel does not keep `RETURNING` statements on SQLite).
        Ok(on_backend!(
            conn,
            |conn| match diesel::update(counter).set(c::last_seq.eq(c::last_seq + n)).execute(conn)? {
                0 => None,
                _ => Some(counter.select(c::last_seq).first::<i64>(conn)?),
            }
        ))
    };
    if let Some(last) = bump(conn)? {
        return Ok(last - n + 1);
    }
    on_backend!(&mut *conn, |conn| diesel::insert_into(c::event_counters)
        .values((c::tenant_id.eq(tenant), c::last_seq.eq(0_i64)))
        .on_conflict_do_nothing()
        .execute(conn))?;
    let last = bump(conn)?.ok_or_else(|| ApiError::internal("the tenant's event counter is missing"))?;
    Ok(last - n + 1)
}

/// A delivery of `event` to `webhook` alone, due now, carrying its body (an event that is not
/// in the feed: `webhook.test`).
pub(in crate::store) fn queued(tenant: &str, webhook: &str, event: &NewEvent) -> crate::db::models::DeliveryRow {
    let (id, event_type, payload) = (event.id.clone(), event.event_type.clone(), Some(event.payload.clone()));
    crate::db::models::DeliveryRow::due(tenant, webhook, id, event_type, payload, crate::domain::now())
}

/// A page of the feed: events after `after`, oldest first, of the selected types.
pub struct FeedPage {
    /// `(number, payload)`.
    pub events: Vec<(i64, String)>,
    /// The last number handed out (or `after` when none): where the next call starts.
    pub next: Option<i64>,
    pub has_more: bool,
}

/// The feed, for owners (and owner keys).
pub fn feed(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    after: Option<i64>,
    selectors: &[String],
    limit: i64,
) -> Result<FeedPage, ApiError> {
    ctx.actor().require(TenantAction::ReadEvents)?;
    let mut q = ev::events.filter(ev::tenant_id.eq(ctx.tenant_text())).into_boxed();
    if let Some(after) = after {
        q = q.filter(ev::seq.gt(after));
    }
    if !selectors.iter().any(|s| s == "*") && !selectors.is_empty() {
        let exact: Vec<String> = selectors.iter().filter(|s| !s.ends_with(".*")).cloned().collect();
        let mut cond: Box<dyn BoxableExpression<ev::events, _, SqlType = diesel::sql_types::Bool>> =
            Box::new(ev::event_type.eq_any(exact));
        for prefix in selectors.iter().filter_map(|s| s.strip_suffix(".*")) {
            cond = Box::new(cond.or(ev::event_type.like(format!("{}.%", escape_like(prefix))).escape('\\')));
        }
        q = q.filter(cond);
    }
    let mut rows: Vec<(i64, String)> =
        q.order(ev::seq.asc()).limit(limit + 1).select((ev::seq, ev::payload)).load(conn)?;
    let has_more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = rows.last().map(|(seq, _)| *seq).or(after);
    Ok(FeedPage { events: rows, next, has_more })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_types_and_prefixes() {
        assert!(matches("*", "member.created"));
        assert!(matches("member.*", "member.created"));
        assert!(!matches("member.*", "members.imported"));
        assert!(!matches("member.created", "member.deleted"));
        assert!(is_known_selector("member.*") && is_known_selector("invitation.accepted") && is_known_selector("*"));
        assert!(!is_known_selector("mem.*") && !is_known_selector("member.creatd") && !is_known_selector("member"));
    }

    #[test]
    fn a_role_change_is_its_own_type_and_exports_are_no_change() {
        let before = json!({"role": "viewer", "regions": [], "full_name": "A"});
        let renamed = json!({"role": "viewer", "regions": [], "full_name": "B"});
        let promoted = json!({"role": "admin", "regions": [], "full_name": "B"});
        let moved = json!({"role": "viewer", "regions": ["r"], "full_name": "A"});
        assert_eq!(event_type("member.updated", Some(&before), Some(&renamed)).as_deref(), Some("member.updated"));
        assert_eq!(
            event_type("member.updated", Some(&before), Some(&promoted)).as_deref(),
            Some("member.role_changed")
        );
        assert_eq!(event_type("member.updated", Some(&before), Some(&moved)).as_deref(), Some("member.role_changed"));
        assert_eq!(event_type("members.exported", None, None), None);
        assert_eq!(event_type("webhook.tested", None, None), None);
        assert_eq!(event_type("webhook.delivery_retried", None, None), None);
        assert_eq!(event_type("member.created", None, None).as_deref(), Some("member.created"));
    }
}
