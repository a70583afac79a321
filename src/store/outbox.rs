//! The email outbox: a message is queued as a [`Notice`] (which template, filled with what) in
//! the transaction that causes it, sealed with the master key, and rendered and delivered later
//! by `mail::run_worker`, which claims due messages for a while (a lease), so several
//! instances share the work (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite's single writer
//! serialises the claims) and a worker that dies frees its messages when the lease ends.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::auth::master_key::MasterKey;
use crate::db::schema::outbox::dsl as o;
use crate::db::{AnyConnection, on_backend, write_tx};
use crate::domain::now;
use crate::error::ApiError;

/// How long a claimed message belongs to the worker that claimed it.
pub const LEASE_SECS: i64 = 60;
/// Attempts before a message is given up (the last wait is an hour).
pub const MAX_ATTEMPTS: i32 = 10;
/// Messages one worker claims at a time.
const BATCH: i64 = 20;

/// What an email says, as queued: its template and what fills it. `mail` renders it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "template", rename_all = "snake_case")]
pub enum Notice {
    /// A link to choose a new password, working once within `valid_minutes`; `why` opens it.
    PasswordReset { full_name: String, why: String, link: String, valid_minutes: i64 },
    /// An invitation to join `tenant` as `role`, with a link working once within `valid_days`.
    Invitation { tenant: String, inviter: String, inviter_email: String, role: String, link: String, valid_days: i64 },
    /// An account made for the person, with a link to choose its password.
    SetPassword { full_name: String, tenant: String, creator: String, link: String, valid_days: i64 },
    /// A link confirming the address a person gave when completing their profile.
    ConfirmEmail { full_name: String, tenant: String, link: String, valid_days: i64 },
    /// The person's existing account was added to `tenant` by its directory (SCIM).
    AddedToTenant { full_name: String, tenant: String, role: String, link: String },
    /// A webhook endpoint was turned off after failing for `days` days.
    WebhookDisabled { full_name: String, url: String, days: i64, link: String },
    /// Queued already rendered (by versions before notices): sent as it is.
    #[serde(untagged)]
    Rendered { subject: String, text: String, html: String },
}

impl Notice {
    /// The outbox row's `kind`.
    fn kind(&self) -> &'static str {
        match self {
            Notice::PasswordReset { .. } => "password_reset",
            Notice::Invitation { .. } => "invitation",
            Notice::SetPassword { .. } => "set_password",
            Notice::ConfirmEmail { .. } => "confirm_email",
            Notice::AddedToTenant { .. } => "added_to_tenant",
            Notice::WebhookDisabled { .. } => "webhook_disabled",
            Notice::Rendered { .. } => "rendered",
        }
    }
}

/// What queueing an email with a link needs: the master key (queued mail is sealed) and the
/// front end's URL the links point at.
pub struct Mailer<'a> {
    pub master: &'a MasterKey,
    pub app_url: &'a str,
}

/// A message claimed for delivery.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: String,
    pub recipient: String,
    pub notice: Notice,
    pub attempts: i32,
}

/// What the seal of a message is bound to, so a sealed body cannot be moved to another row.
fn context(id: &str) -> String {
    format!("outbox:{id}")
}

/// Queues `notice` to `recipient` inside the caller's write transaction.
pub(in crate::store) fn enqueue(
    conn: &mut AnyConnection,
    master: &MasterKey,
    tenant: Option<&str>,
    recipient: &str,
    notice: &Notice,
) -> Result<String, ApiError> {
    let id = uuid::Uuid::now_v7().to_string();
    let kind = notice.kind();
    let json = serde_json::to_vec(notice).map_err(|e| ApiError::internal(e.to_string()))?;
    let sealed = master.seal(&json, &context(&id)).map_err(ApiError::internal)?;
    let at = now();
    diesel::insert_into(o::outbox)
        .values((
            o::id.eq(&id),
            o::tenant_id.eq(tenant),
            o::kind.eq(kind),
            o::recipient.eq(recipient),
            o::sealed_message.eq(Some(sealed)),
            o::status.eq("pending"),
            o::attempts.eq(0),
            o::next_attempt_at.eq(at),
            o::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(id)
}

/// Whether any message is due: a read, so an idle outbox never takes SQLite's writer.
pub fn any_due(conn: &mut AnyConnection) -> Result<bool, ApiError> {
    let at = now();
    let due = o::outbox
        .filter(o::status.eq("pending"))
        .filter(o::next_attempt_at.le(at))
        .filter(o::locked_until.is_null().or(o::locked_until.lt(at)))
        .select(o::id);
    Ok(diesel::select(diesel::dsl::exists(due)).get_result(conn)?)
}

/// Claims up to a batch of due messages for [`LEASE_SECS`] and opens them.
pub fn claim(conn: &mut AnyConnection, master: &MasterKey) -> Result<Vec<Claimed>, ApiError> {
    let rows = write_tx(conn, |conn| {
        let at = now();
        let due = o::outbox
            .filter(o::status.eq("pending"))
            .filter(o::next_attempt_at.le(at))
            .filter(o::locked_until.is_null().or(o::locked_until.lt(at)))
            .order(o::created_at)
            .limit(BATCH)
            .select((o::id, o::recipient, o::sealed_message, o::attempts));
        let rows: Vec<(String, String, Option<String>, i32)> = on_backend!(&mut *conn,
            // Rows another instance is claiming right now are skipped, not waited for.
            postgres: |c| due.for_update().skip_locked().load(c)?,
            sqlite: |c| due.load(c)?,
        );
        let ids: Vec<&String> = rows.iter().map(|r| &r.0).collect();
        diesel::update(o::outbox.filter(o::id.eq_any(ids)))
            .set(o::locked_until.eq(Some(at + Duration::seconds(LEASE_SECS))))
            .execute(conn)?;
        Ok(rows)
    })?;
    let mut claimed = Vec::with_capacity(rows.len());
    for (id, recipient, sealed, attempts) in rows {
        let opened = sealed
            .ok_or_else(|| "the message body is gone".to_string())
            .and_then(|s| master.open(&s, &context(&id)))
            .and_then(|bytes| serde_json::from_slice::<Notice>(&bytes).map_err(|e| e.to_string()));
        match opened {
            Ok(notice) => claimed.push(Claimed { id, recipient, notice, attempts }),
            // Nothing to retry: record why and stop.
            Err(e) => give_up(conn, &id, &format!("cannot open the stored message: {e}"))?,
        }
    }
    Ok(claimed)
}

/// Marks a message sent and drops its body.
pub fn sent(conn: &mut AnyConnection, id: &str) -> Result<(), ApiError> {
    write_tx(conn, |conn| {
        diesel::update(o::outbox.filter(o::id.eq(id)))
            .set((
                o::status.eq("sent"),
                o::sealed_message.eq(None::<String>),
                o::sent_at.eq(Some(now())),
                o::locked_until.eq(None::<NaiveDateTime>),
                o::last_error.eq(None::<String>),
            ))
            .execute(conn)?;
        Ok(())
    })
}

/// Records a failed attempt: another try after a growing wait, or, after [`MAX_ATTEMPTS`], none.
pub fn failed(conn: &mut AnyConnection, id: &str, attempts_before: i32, error: &str) -> Result<(), ApiError> {
    let attempts = attempts_before + 1;
    if attempts >= MAX_ATTEMPTS {
        return give_up(conn, id, error);
    }
    let wait = Duration::seconds((5_i64 << (attempts - 1).min(10)).min(3600));
    write_tx(conn, |conn| {
        diesel::update(o::outbox.filter(o::id.eq(id)))
            .set((
                o::attempts.eq(attempts),
                o::next_attempt_at.eq(now() + wait),
                o::locked_until.eq(None::<NaiveDateTime>),
                o::last_error.eq(Some(error)),
            ))
            .execute(conn)?;
        Ok(())
    })
}

fn give_up(conn: &mut AnyConnection, id: &str, error: &str) -> Result<(), ApiError> {
    write_tx(conn, |conn| {
        diesel::update(o::outbox.filter(o::id.eq(id)))
            .set((
                o::status.eq("failed"),
                o::attempts.eq(o::attempts + 1),
                o::sealed_message.eq(None::<String>),
                o::locked_until.eq(None::<NaiveDateTime>),
                o::last_error.eq(Some(error)),
            ))
            .execute(conn)?;
        Ok(())
    })
}
