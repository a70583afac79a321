//! Password tokens sent by email (only their SHA-256 digests are stored): self-service and
//! admin-requested resets, good once within [`VALID_MINUTES`], and the link a member made
//! without a password uses to choose one ([`SET_PASSWORD_DAYS`]). Asking again voids the older
//! token. The email is queued as an outbox notice; `mail` words it.

use chrono::Duration;
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::audit;
use super::outbox::{self, Notice};
use super::sessions;
use crate::auth::RequestMeta;
use crate::auth::master_key::MasterKey;
use crate::db::models::UserRow;
use crate::db::schema::{password_resets::dsl as r, users::dsl as u};
use crate::db::{AnyConnection, write_tx};
use crate::domain::ids::parse_stored;
use crate::domain::now;
use crate::domain::password::{digest_generated, generate_secret};
use crate::error::ApiError;

/// How long a reset link works.
pub const VALID_MINUTES: i64 = 60;

/// Starts a reset for whoever has `email`, if anyone: voids their unused tokens, stores the
/// new one's digest and queues the email with the link (`<app_url>/reset-password?token=`).
/// Says whether an email was queued; the caller answers the same either way.
pub fn request(
    conn: &mut AnyConnection,
    master: &MasterKey,
    email: &str,
    app_url: &str,
    meta: &RequestMeta,
) -> Result<bool, ApiError> {
    write_tx(conn, |conn| {
        let Some(user) = sessions::find_by_email(conn, email)? else { return Ok(false) };
        if crate::domain::enrollment::is_provisional(&user.email) {
            // Nobody reads a provisional address: nothing to send, and the same answer.
            return Ok(false);
        }
        let why = "Someone (we hope you) asked to reset the password of your Roster account.";
        issue(conn, master, &user, app_url, why)?;
        audit::record_for_person(
            conn,
            parse_stored(&user.id),
            meta,
            "user.password_reset_requested",
            json!({"delivery": "email"}),
        )?;
        Ok(true)
    })
}

/// Voids `user`'s unused tokens, stores a new one's digest and queues the email with the link;
/// `why` opens the email. Inside the caller's write transaction.
pub(in crate::store) fn issue(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user: &UserRow,
    app_url: &str,
    why: &str,
) -> Result<(), ApiError> {
    let token = store_token(conn, &user.id, Duration::minutes(VALID_MINUTES))?;
    let link = format!("{app_url}/reset-password?token={}", token.expose_secret());
    let notice = Notice::PasswordReset {
        full_name: user.full_name.clone(),
        why: why.to_string(),
        link,
        valid_minutes: VALID_MINUTES,
    };
    outbox::enqueue(conn, master, None, &user.email, &notice)?;
    Ok(())
}

/// How long the link to choose a first password works.
pub const SET_PASSWORD_DAYS: i64 = 7;

/// For a member made without a password: queues the email with a link (good once, for
/// [`SET_PASSWORD_DAYS`]) to choose one. It is a reset token, so
/// `POST /auth/password-reset/confirm` takes it. Inside the caller's write transaction.
pub(in crate::store) fn issue_set_password(
    conn: &mut AnyConnection,
    master: &MasterKey,
    user: &UserRow,
    tenant: (&str, &str),
    creator: &str,
    app_url: &str,
) -> Result<(), ApiError> {
    let (tenant_id, tenant_name) = tenant;
    let token = store_token(conn, &user.id, Duration::days(SET_PASSWORD_DAYS))?;
    let link = format!("{app_url}/set-password?token={}", token.expose_secret());
    let notice = Notice::SetPassword {
        full_name: user.full_name.clone(),
        tenant: tenant_name.to_string(),
        creator: creator.to_string(),
        link,
        valid_days: SET_PASSWORD_DAYS,
    };
    outbox::enqueue(conn, master, Some(tenant_id), &user.email, &notice)?;
    Ok(())
}

/// Voids the person's unused tokens and stores a new one's digest, valid for `valid`.
fn store_token(conn: &mut AnyConnection, user_id: &str, valid: Duration) -> Result<SecretString, ApiError> {
    diesel::delete(r::password_resets.filter(r::user_id.eq(user_id)).filter(r::used_at.is_null())).execute(conn)?;
    let token = generate_secret();
    let at = now();
    diesel::insert_into(r::password_resets)
        .values((
            r::id.eq(uuid::Uuid::now_v7().to_string()),
            r::user_id.eq(user_id),
            r::token_digest.eq(digest_generated(&token)),
            r::expires_at.eq(at + valid),
            r::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok(token)
}

fn invalid_token() -> ApiError {
    ApiError::invalid("token", "is unknown, already used, replaced by a newer one or expired; ask for a new link")
}

/// The person a current, unused token belongs to.
pub fn holder(conn: &mut AnyConnection, token: &SecretString) -> Result<UserRow, ApiError> {
    let user_id: String = r::password_resets
        .filter(r::token_digest.eq(digest_generated(token)))
        .filter(r::used_at.is_null())
        .filter(r::expires_at.gt(now()))
        .select(r::user_id)
        .first(conn)
        .optional()?
        .ok_or_else(invalid_token)?;
    Ok(u::users.filter(u::id.eq(user_id)).select(UserRow::as_select()).first(conn)?)
}

/// Uses the token (once) to set `new_hash`; every token and session of the person ends.
pub fn complete(
    conn: &mut AnyConnection,
    token: &SecretString,
    new_hash: String,
    meta: &RequestMeta,
) -> Result<UserRow, ApiError> {
    write_tx(conn, |conn| {
        let user = holder(conn, token)?;
        // Used once: of two requests with one token, only the first finds it unused.
        let used = diesel::update(
            r::password_resets.filter(r::token_digest.eq(digest_generated(token))).filter(r::used_at.is_null()),
        )
        .set(r::used_at.eq(Some(now())))
        .execute(conn)?;
        if used != 1 {
            return Err(invalid_token());
        }
        sessions::set_password(conn, parse_stored(&user.id), new_hash, meta, "user.password_reset_completed")
    })
}
