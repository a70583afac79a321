//! Clearing out what nothing reads any more: sessions over for a week (their rotated refresh
//! tokens go with them), reset tokens a day past expiry, delivered or abandoned email after 30
//! days, and events and finished webhook deliveries past the feed's retention
//! (`ROSTER_EVENT_RETENTION_DAYS`), and single sign-on's pending sign-ins, one-minute codes
//! and seen assertion ids once they have expired, and on PostgreSQL rate-limit buckets that
//! have run dry (`auth::rate_limit`). Runs in the background on every instance; each pass is idempotent.

use chrono::Duration;
use diesel::prelude::*;

use crate::config::SessionLimits;
use crate::db::schema::{
    events::dsl as ev, outbox::dsl as o, password_resets::dsl as r, sessions::dsl as s, sso_assertions::dsl as sa,
    sso_codes::dsl as sc, sso_requests::dsl as sr, webhook_deliveries::dsl as d,
};
use crate::db::{AnyConnection, write_tx};
use crate::domain::now;
use crate::error::ApiError;

/// How many rows one pass removed, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub sessions: usize,
    pub reset_tokens: usize,
    pub emails: usize,
    pub events: usize,
    pub deliveries: usize,
    /// SSO's expired pending sign-ins, codes and assertion ids.
    pub sso: usize,
    /// Shared rate-limit buckets back to a full allowance (PostgreSQL).
    pub rate_limits: usize,
}

/// How long things are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub sessions: SessionLimits,
    /// Events and finished deliveries, in days.
    pub event_days: i64,
}

pub fn prune(conn: &mut AnyConnection, keep: Retention) -> Result<Pruned, ApiError> {
    let limits = keep.sessions;
    let at = now();
    let week_ago = at - Duration::days(7);
    write_tx(conn, |conn| {
        let over =
            s::ended_at.lt(week_ago).or(s::expires_at.lt(week_ago)).or(s::last_used_at.lt(week_ago - limits.idle));
        let sessions = diesel::delete(s::sessions.filter(over)).execute(conn)?;
        let reset_tokens =
            diesel::delete(r::password_resets.filter(r::expires_at.lt(at - Duration::days(1)))).execute(conn)?;
        let emails =
            diesel::delete(o::outbox.filter(o::status.ne("pending")).filter(o::created_at.lt(at - Duration::days(30))))
                .execute(conn)?;
        let events_before = at - Duration::days(keep.event_days);
        let events = diesel::delete(ev::events.filter(ev::occurred_at.lt(events_before))).execute(conn)?;
        let deliveries = diesel::delete(
            d::webhook_deliveries.filter(d::status.ne("pending")).filter(d::created_at.lt(events_before)),
        )
        .execute(conn)?;
        let sso = diesel::delete(sr::sso_requests.filter(sr::expires_at.lt(at))).execute(conn)?
            + diesel::delete(sc::sso_codes.filter(sc::expires_at.lt(at))).execute(conn)?
            + diesel::delete(sa::sso_assertions.filter(sa::expires_at.lt(at))).execute(conn)?;
        let rate_limits = crate::db::on_backend!(&mut *conn,
            postgres: |c| diesel::sql_query(
                "DELETE FROM rate_limits WHERE tat_us < (extract(epoch FROM now()) * 1000000)::bigint"
            )
            .execute(c)?,
            sqlite: |_| 0,
        );
        Ok(Pruned { sessions, reset_tokens, emails, events, deliveries, sso, rate_limits })
    })
}

/// Prunes now and then every `every` while the server runs.
pub async fn run(db: crate::db::Db, keep: Retention, every: std::time::Duration) {
    loop {
        match crate::db::run_write(&db, move |conn| prune(conn, keep)).await {
            Ok(p) if p != Pruned::default() => log::info!("housekeeping removed {p:?}"),
            Ok(_) => {}
            Err(e) => log::warn!("housekeeping failed: {e}"),
        }
        tokio::time::sleep(every).await;
    }
}
