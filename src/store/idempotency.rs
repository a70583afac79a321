//! `Idempotency-Key` on creating POSTs: the first answer is kept (without secrets) for 24
//! hours, keyed by tenant and key, written in the same transaction as the creation; a retry
//! with the same key and request gets it back, a different request with the same key is refused.

use chrono::TimeDelta;
use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::idempotency_keys::dsl as ik;
use crate::domain::now;
use crate::error::ApiError;

/// How long a key is remembered.
pub const KEY_LIFETIME_HOURS: i64 = 24;

/// A key from the request and a digest of what was asked with it.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_digest: String,
}

/// Renders the answer kept for a retry (never with secrets).
pub type Render<'a, T> = &'a dyn Fn(&T) -> String;

/// A stored first answer.
#[derive(Debug, Clone)]
pub struct Replay {
    pub status: u16,
    pub body: String,
}

/// Inside the write transaction, after the tenant lock: the stored answer for this key, if any.
pub(in crate::store) fn find(
    conn: &mut AnyConnection,
    tenant: &str,
    actor: &str,
    key: &IdempotencyKey,
) -> Result<Option<Replay>, ApiError> {
    let cutoff = now() - TimeDelta::hours(KEY_LIFETIME_HOURS);
    diesel::delete(ik::idempotency_keys.filter(ik::tenant_id.eq(tenant)).filter(ik::created_at.lt(cutoff)))
        .execute(conn)?;
    let row = ik::idempotency_keys
        .filter(ik::tenant_id.eq(tenant))
        .filter(ik::idem_key.eq(&key.key))
        .select((ik::actor_id, ik::request_hash, ik::status, ik::body))
        .first::<(String, String, i32, String)>(conn)
        .optional()?;
    match row {
        None => Ok(None),
        Some((a, digest, status, body)) if a == actor && digest == key.request_digest => {
            Ok(Some(Replay { status: u16::try_from(status).unwrap_or(200), body }))
        }
        Some(_) => Err(ApiError::conflict(
            "idempotency-key-reused",
            "this Idempotency-Key was already used for a different request; use a new key for a new request",
        )),
    }
}

pub(in crate::store) fn save(
    conn: &mut AnyConnection,
    tenant: &str,
    actor: &str,
    key: &IdempotencyKey,
    status: u16,
    body: &str,
) -> Result<(), ApiError> {
    diesel::insert_into(ik::idempotency_keys)
        .values((
            ik::tenant_id.eq(tenant),
            ik::idem_key.eq(&key.key),
            ik::actor_id.eq(actor),
            ik::request_hash.eq(&key.request_digest),
            ik::status.eq(i32::from(status)),
            ik::body.eq(body),
            ik::created_at.eq(now()),
        ))
        .execute(conn)?;
    Ok(())
}
