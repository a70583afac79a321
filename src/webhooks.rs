//! The webhook delivery worker (DESIGN.md section 14). New events reach an endpoint through its
//! cursor: the worker takes the events after it that the endpoint's types select, makes their
//! first attempts (at most [`PER_ENDPOINT`] at once), then writes the deliveries with how they
//! went and moves the cursor past them, in one transaction (a change itself writes only its
//! event, so endpoints cost it nothing). Deliveries to try again are rows: the worker claims due
//! deliveries (on PostgreSQL
//! a lease, so several instances share them and each attempt is made once; on SQLite, one
//! instance, the worker's own list of what it holds, so claiming writes nothing), sends each as its own task with
//! Standard Webhooks headers, signed at this attempt with the endpoint's current secret (and the
//! previous one during a rotation), and records how it went: delivered, or retried after the
//! next wait of the schedule, or given up. At most [`PER_ENDPOINT`] attempts per endpoint and
//! [`IN_FLIGHT`] in all run at once, so one slow receiver never holds up the others. Claims and
//! records are batched: the attempts that ended while the last batch was being written are
//! recorded together, in one transaction, so the worker takes the database (SQLite's one
//! writer) a few times per batch rather than per delivery.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::ExposeSecret;

use crate::db;
use crate::db::models::DeliveryRow;
use crate::outbound::Outbound;
use crate::state::AppState;
use crate::store::webhooks::{self, Attempt, Claimed};

/// A receiver has this long to answer with a 2xx.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts in flight at once, per endpoint and in all.
pub const PER_ENDPOINT: usize = 4;
pub const IN_FLIGHT: usize = 64;

/// Attempts in flight, per endpoint.
#[derive(Default)]
struct Busy(Mutex<HashMap<String, usize>>);

impl Busy {
    fn snapshot(&self) -> HashMap<String, usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn add(&self, endpoint: &str) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()).entry(endpoint.to_string()).or_default() += 1;
    }
    fn done(&self, endpoint: &str) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(endpoint);
            }
        }
    }
}

/// What the worker holds and has not recorded yet, so that its next claims pass it over:
/// deliveries claimed for an attempt (on SQLite nothing else marks them; on PostgreSQL their
/// lease does too), and endpoints with a batch of fresh events in flight.
struct Held<K>(Mutex<HashSet<K>>);

impl<K> Default for Held<K> {
    fn default() -> Self {
        Self(Mutex::new(HashSet::new()))
    }
}

impl<K: Clone + Eq + std::hash::Hash> Held<K> {
    fn snapshot(&self) -> HashSet<K> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn hold(&self, keys: impl IntoIterator<Item = K>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend(keys);
    }
    fn release<'a>(&self, keys: impl IntoIterator<Item = &'a K>)
    where
        K: 'a,
    {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            held.remove(key);
        }
    }
}

/// The headers of one attempt: the event's id (the same on every attempt), now, and the
/// signatures over `id.timestamp.body` with each secret.
fn headers(claimed: &Claimed, timestamp: i64) -> Result<Vec<(String, String)>, String> {
    let d = &claimed.delivery;
    let secrets: Vec<&str> = claimed.secrets.iter().map(|s| s.expose_secret()).collect();
    let signature =
        crate::domain::webhook_secret::signature_header(&secrets, &d.event_id, timestamp, claimed.body.as_bytes())?;
    Ok(vec![
        ("webhook-id".into(), d.event_id.clone()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), signature),
    ])
}

async fn attempt(outbound: &Outbound, claimed: &Claimed) -> Attempt {
    let headers = match headers(claimed, chrono::Utc::now().timestamp()) {
        Ok(h) => h,
        Err(e) => return Attempt::failed(None, 0, format!("cannot sign: {e}")),
    };
    let body = claimed.body.clone().into_bytes();
    match outbound.post(&claimed.url, headers, body, TIMEOUT).await {
        Ok(done) => {
            Attempt { ok: true, status: Some(done.status), duration_ms: done.duration.as_millis() as i64, error: None }
        }
        Err(failed) => Attempt::failed(failed.status, failed.duration.as_millis() as i64, failed.error),
    }
}

/// Attempts that ended and are not recorded yet.
#[derive(Default)]
struct Ended {
    attempts: Mutex<Vec<(DeliveryRow, Attempt)>>,
    added: tokio::sync::Notify,
}

impl Ended {
    fn push(&self, delivery: DeliveryRow, attempt: Attempt) {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner()).push((delivery, attempt));
        self.added.notify_one();
    }
    fn take(&self) -> Vec<(DeliveryRow, Attempt)> {
        std::mem::take(&mut *self.attempts.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Sends one claimed delivery; its attempt is recorded by [`record_ended`].
async fn deliver(outbound: Arc<Outbound>, claimed: Claimed, ended: Arc<Ended>) {
    let result = attempt(&outbound, &claimed).await;
    if !result.ok {
        log::info!(
            "webhook delivery {} to {} failed (attempt {}): {}",
            claimed.delivery.id,
            claimed.url,
            claimed.delivery.attempts + 1,
            result.error.as_deref().unwrap_or("")
        );
    }
    ended.push(claimed.delivery, result);
}

/// Records ended attempts, all those waiting in one transaction, while the server runs; tells
/// the owners of an endpoint it turned off. A delivery stays held (and on PostgreSQL leased)
/// until its attempt is recorded, so no other claim takes it meanwhile.
async fn record_ended(state: actix_web::web::Data<AppState>, ended: Arc<Ended>, held: Arc<Held<String>>) {
    loop {
        ended.added.notified().await;
        loop {
            let batch = ended.take();
            if batch.is_empty() {
                break;
            }
            let ids: Vec<String> = batch.iter().map(|(d, _)| d.id.clone()).collect();
            let schedule = state.config.webhook_retry_secs.clone();
            let recorded = db::run_write(&state.pool, move |conn| webhooks::record_all(conn, batch, &schedule)).await;
            // Recorded, or not (then they are due again, to be sent again with the same id).
            held.release(&ids);
            match recorded {
                Ok(disabled) => {
                    for disabled in disabled {
                        tell_owners(&state, disabled).await;
                    }
                }
                Err(e) => log::warn!("cannot record webhook deliveries {}: {e}", ids.join(", ")),
            }
        }
    }
}

async fn tell_owners(state: &actix_web::web::Data<AppState>, disabled: webhooks::Disabled) {
    log::warn!("webhook endpoint {} turned off: every delivery failed for days", disabled.row.url);
    let (master, app_url) = (state.master.clone(), state.config.app_url.clone());
    match db::run_write(&state.pool, move |conn| webhooks::tell_owners(conn, &master, &app_url, &disabled)).await {
        Ok(()) => state.mail_queued.notify_one(),
        Err(e) => log::warn!("cannot tell the owners about a disabled webhook: {e}"),
    }
}

/// Takes the endpoints that have new events and sends each its batch as a task of its own.
async fn take_fresh(
    state: &actix_web::web::Data<AppState>,
    outbound: &Arc<Outbound>,
    held: &Arc<Held<(String, String)>>,
    busy: &Arc<Busy>,
    finished: &Arc<tokio::sync::Notify>,
) {
    let holding = held.snapshot();
    let probe = holding.clone();
    match db::run(&state.pool, move |conn| webhooks::any_fresh(conn, &probe)).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => return log::warn!("cannot read the webhook cursors: {e}"),
    }
    let master = state.master.clone();
    let batches = match db::run_write(&state.pool, move |conn| webhooks::claim_fresh(conn, &master, &holding)).await {
        Ok(batches) => batches,
        Err(e) => return log::warn!("cannot read the new events for webhooks: {e}"),
    };
    for fresh in batches {
        let key = (fresh.tenant_id.clone(), fresh.webhook_id.clone());
        held.hold([key.clone()]);
        let (state, outbound, held, busy, finished) =
            (state.clone(), outbound.clone(), held.clone(), busy.clone(), finished.clone());
        tokio::spawn(async move {
            send_fresh(&state, &outbound, &busy, fresh).await;
            held.release([&key]);
            finished.notify_one();
        });
    }
}

/// Makes the first attempts at an endpoint's fresh events, [`PER_ENDPOINT`] at a time, then
/// records them all and moves its cursor on.
async fn send_fresh(
    state: &actix_web::web::Data<AppState>,
    outbound: &Arc<Outbound>,
    busy: &Arc<Busy>,
    mut fresh: webhooks::Fresh,
) {
    use futures_util::StreamExt;
    let deliveries = std::mem::take(&mut fresh.deliveries);
    let (url, secrets) = (fresh.url.clone(), fresh.secrets.clone());
    let attempts: Vec<(DeliveryRow, Attempt)> = futures_util::stream::iter(deliveries)
        .map(|(delivery, body)| {
            let claimed = Claimed { delivery, url: url.clone(), body, secrets: secrets.clone() };
            async move {
                busy.add(&claimed.delivery.webhook_id);
                let result = attempt(outbound, &claimed).await;
                busy.done(&claimed.delivery.webhook_id);
                if !result.ok {
                    log::info!(
                        "webhook delivery of event {} to {} failed (attempt 1): {}",
                        claimed.delivery.event_id,
                        claimed.url,
                        result.error.as_deref().unwrap_or("")
                    );
                }
                (claimed.delivery, result)
            }
        })
        .buffer_unordered(PER_ENDPOINT)
        .collect()
        .await;
    let schedule = state.config.webhook_retry_secs.clone();
    let batch = vec![(fresh, attempts)];
    match db::run_write(&state.pool, move |conn| webhooks::record_fresh(conn, batch, &schedule)).await {
        Ok(disabled) => {
            for disabled in disabled {
                tell_owners(state, disabled).await;
            }
        }
        // Not recorded: the cursor stays, and the events are sent again (with the same ids).
        Err(e) => log::warn!("cannot record webhook deliveries: {e}"),
    }
}

/// Delivers webhooks while the server runs.
pub async fn run_worker(state: actix_web::web::Data<AppState>, outbound: Arc<Outbound>) {
    let busy = Arc::new(Busy::default());
    let finished = Arc::new(tokio::sync::Notify::new());
    let ended = Arc::new(Ended::default());
    let held = Arc::new(Held::<String>::default());
    let fresh_held = Arc::new(Held::<(String, String)>::default());
    tokio::spawn(record_ended(state.clone(), ended.clone(), held.clone()));
    loop {
        let in_flight = busy.snapshot();
        let total: usize = in_flight.values().sum();
        if total < IN_FLIGHT {
            let master = state.master.clone();
            let room = IN_FLIGHT - total;
            let holding = held.snapshot();
            let claimed = match db::run(&state.pool, webhooks::any_due).await {
                Ok(true) => {
                    db::run_write(&state.pool, move |conn| {
                        webhooks::claim(conn, &master, &in_flight, &holding, PER_ENDPOINT, room)
                    })
                    .await
                }
                Ok(false) => Ok(Vec::new()),
                Err(e) => Err(e),
            };
            match claimed {
                Ok(batch) => {
                    held.hold(batch.iter().map(|c| c.delivery.id.clone()));
                    for claimed in batch {
                        let endpoint = claimed.delivery.webhook_id.clone();
                        busy.add(&endpoint);
                        let (outbound, busy, finished, ended) =
                            (outbound.clone(), busy.clone(), finished.clone(), ended.clone());
                        tokio::spawn(async move {
                            deliver(outbound, claimed, ended).await;
                            busy.done(&endpoint);
                            finished.notify_one();
                        });
                    }
                }
                Err(e) => log::warn!("cannot read the webhook deliveries: {e}"),
            }
        }
        take_fresh(&state, &outbound, &fresh_held, &busy, &finished).await;
        tokio::select! {
            _ = state.webhook_queued.notified() => {}
            _ = finished.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
