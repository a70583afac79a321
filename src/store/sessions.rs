//! Sign-in support: identities by email, a person's active memberships, password changes.
//! These paths act for a person, not inside one tenant, so they take user ids, never a
//! tenant context; they only ever return the person's own data.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::SecretString;
use serde_json::json;

use super::audit;
use crate::auth::RequestMeta;
use crate::db::models::UserRow;
use crate::db::schema::{
    membership_regions::dsl as mr, memberships::dsl as m, rotated_refresh_tokens::dsl as rt, sessions::dsl as s,
    tenants::dsl as t, users::dsl as u,
};
use crate::db::{AnyConnection, write_tx};
use crate::domain::ids::parse_stored;
use crate::domain::password::{digest_generated, generate_secret};
use crate::domain::{MemberStatus, TenantId, UserId, now};
use crate::error::ApiError;

pub fn find_by_email(conn: &mut AnyConnection, email: &str) -> Result<Option<UserRow>, ApiError> {
    Ok(u::users.filter(u::email.eq(email)).select(UserRow::as_select()).first(conn).optional()?)
}

pub fn find_by_id(conn: &mut AnyConnection, user: UserId) -> Result<Option<UserRow>, ApiError> {
    Ok(u::users.filter(u::id.eq(user.as_text())).select(UserRow::as_select()).first(conn).optional()?)
}

/// One of the person's active memberships, as the login and `/me/tenants` answers show it.
#[derive(Debug, Clone)]
pub struct TenantMembership {
    pub tenant_id: String,
    pub tenant_name: String,
    pub role: String,
    pub regions: Vec<String>,
    pub auth_version: i32,
}

impl TenantMembership {
    /// The tenant's id, typed.
    pub fn tenant(&self) -> TenantId {
        parse_stored(&self.tenant_id)
    }
}

pub fn active_memberships(conn: &mut AnyConnection, user: UserId) -> Result<Vec<TenantMembership>, ApiError> {
    let uid = user.as_text();
    let rows = m::memberships
        .inner_join(t::tenants)
        .filter(m::user_id.eq(&uid))
        .filter(m::status.eq(MemberStatus::Active.as_str()))
        .order((t::name, t::id))
        .select((m::tenant_id, t::name, m::role, m::auth_version))
        .load::<(String, String, String, i32)>(conn)?;
    let mut out = Vec::with_capacity(rows.len());
    for (tenant_id, tenant_name, role, auth_version) in rows {
        let regions = mr::membership_regions
            .filter(mr::tenant_id.eq(&tenant_id))
            .filter(mr::user_id.eq(&uid))
            .select(mr::region_id)
            .order(mr::region_id)
            .load::<String>(conn)?;
        out.push(TenantMembership { tenant_id, tenant_name, role, regions, auth_version });
    }
    Ok(out)
}

/// Notes a successful sign-in into a tenant: the failure count starts again.
pub fn record_login(conn: &mut AnyConnection, user: UserId, tenant: Option<TenantId>) -> Result<(), ApiError> {
    let uid = user.as_text();
    write_tx(conn, |conn| {
        diesel::update(u::users.filter(u::id.eq(&uid)).filter(u::failed_logins.ne(0)))
            .set(u::failed_logins.eq(0))
            .execute(conn)?;
        if diesel::update(u::users.filter(u::id.eq(&uid)).filter(u::locked_until.is_not_null()))
            .set(u::locked_until.eq(None::<NaiveDateTime>))
            .execute(conn)?
            > 0
        {
            lock_changed(conn, &uid)?;
        }
        if let Some(tenant) = tenant {
            diesel::update(m::memberships.filter(m::tenant_id.eq(tenant.as_text())).filter(m::user_id.eq(&uid)))
                .set(m::last_login_at.eq(Some(now())))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// A sign-in that passed: notes it ([`record_login`]) and starts its session.
pub fn signed_in(
    conn: &mut AnyConnection,
    user: UserId,
    tenant: Option<TenantId>,
    meta: &RequestMeta,
    limits: SessionLimits,
) -> Result<NewSession, ApiError> {
    write_tx(conn, |conn| {
        record_login(conn, user, tenant)?;
        start(conn, user, tenant, meta, limits)
    })
}

/// Whether sign-in to `user` is locked now.
pub fn is_locked(user: &UserRow) -> bool {
    user.locked_until.is_some_and(|until| until > now())
}

/// How failed sign-ins lock an account: from `threshold` failures in a row (0: never) for
/// `first_secs`, doubled with each further failure, at most an hour.
#[derive(Debug, Clone, Copy)]
pub struct Lockout {
    pub threshold: i32,
    pub first_secs: i64,
}

/// Longest lock.
const MAX_LOCK_SECS: i64 = 3600;

/// Counts a failed sign-in and locks the account when the count reaches the threshold;
/// returns the lock's end when this failure set one.
pub fn record_failed_login(
    conn: &mut AnyConnection,
    user: UserId,
    lockout: Lockout,
    meta: &RequestMeta,
) -> Result<Option<NaiveDateTime>, ApiError> {
    let uid = user.as_text();
    write_tx(conn, |conn| {
        diesel::update(u::users.filter(u::id.eq(&uid))).set(u::failed_logins.eq(u::failed_logins + 1)).execute(conn)?;
        let failures: i32 = u::users.filter(u::id.eq(&uid)).select(u::failed_logins).first(conn)?;
        if lockout.threshold <= 0 || failures < lockout.threshold {
            return Ok(None);
        }
        let doublings = (failures - lockout.threshold).clamp(0, 20) as u32;
        let secs = lockout.first_secs.saturating_mul(1_i64 << doublings).min(MAX_LOCK_SECS);
        let until = now() + Duration::seconds(secs);
        diesel::update(u::users.filter(u::id.eq(&uid))).set(u::locked_until.eq(Some(until))).execute(conn)?;
        lock_changed(conn, &uid)?;
        audit::record_for_person(
            conn,
            user,
            meta,
            "user.locked",
            json!({"failed_logins": failures, "locked_until": crate::domain::time::utc(until), "lock_seconds": secs}),
        )?;
        Ok(Some(until))
    })
}

/// Member lists show the lock: a lock set or cleared touches the person's memberships, which
/// moves the list counters of each of their tenants (`store::members::list_cache`).
pub fn lock_changed(conn: &mut AnyConnection, uid: &str) -> Result<(), ApiError> {
    diesel::update(m::memberships.filter(m::user_id.eq(uid))).set(m::updated_at.eq(m::updated_at)).execute(conn)?;
    Ok(())
}

/// Clears a lock and the failure count; says whether there was a lock.
pub fn unlock(conn: &mut AnyConnection, user: UserId) -> Result<bool, ApiError> {
    let uid = user.as_text();
    let was = u::users.filter(u::id.eq(&uid)).select(u::locked_until).first::<Option<NaiveDateTime>>(conn)?;
    diesel::update(u::users.filter(u::id.eq(&uid)))
        .set((u::failed_logins.eq(0), u::locked_until.eq(None::<NaiveDateTime>)))
        .execute(conn)?;
    if was.is_some() {
        lock_changed(conn, &uid)?;
    }
    Ok(was.is_some_and(|until| until > now()))
}

/// Sets a password the person chose; revokes every token they hold, and records the change
/// in the audit log of each tenant they are a member of.
pub fn change_password(
    conn: &mut AnyConnection,
    user: UserId,
    new_hash: String,
    meta: &RequestMeta,
) -> Result<UserRow, ApiError> {
    set_password(conn, user, new_hash, meta, "user.password_changed")
}

/// [`change_password`], audited as `action` (a change, or a reset completed).
pub fn set_password(
    conn: &mut AnyConnection,
    user: UserId,
    new_hash: String,
    meta: &RequestMeta,
    action: &'static str,
) -> Result<UserRow, ApiError> {
    let uid = user.as_text();
    write_tx(conn, |conn| {
        diesel::update(u::users.filter(u::id.eq(&uid)))
            .set((
                u::password_hash.eq(Some(new_hash)),
                u::must_change_password.eq(false),
                u::auth_version.eq(u::auth_version + 1),
                u::updated_at.eq(now()),
            ))
            .execute(conn)?;
        unlock(conn, user)?;
        let ended = end_all(conn, user, Sessions::All, EndReason::PasswordChanged)?;
        audit::record_for_person(
            conn,
            user,
            meta,
            action,
            json!({"must_change_password": false, "sessions_ended": ended}),
        )?;
        Ok(u::users.filter(u::id.eq(&uid)).select(UserRow::as_select()).first(conn)?)
    })
}

// ---------------------------------------------------------------- sessions and refresh tokens

/// Why a session ended, as stored and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// `POST /auth/logout`.
    Logout,
    /// Ended by the person from `DELETE /me/sessions/{id}`.
    EndedByUser,
    /// Ended by an owner or admin of the session's tenant.
    EndedByAdmin,
    /// The member was disabled in the session's tenant.
    MemberDisabled,
    /// The password was changed or reset.
    PasswordChanged,
    /// A refresh token of the session was presented again after it had been exchanged.
    RefreshTokenReused,
    /// A password session whose tenant has since required SSO for the person's domain.
    SsoRequired,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::EndedByUser => "ended_by_user",
            EndReason::EndedByAdmin => "ended_by_admin",
            EndReason::MemberDisabled => "member_disabled",
            EndReason::PasswordChanged => "password_changed",
            EndReason::RefreshTokenReused => "refresh_token_reused",
            EndReason::SsoRequired => "sso_required",
        }
    }
}

/// Kept at this path too, where tests name it.
pub use crate::config::SessionLimits;

/// A session as `GET /me/sessions` shows it.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::sessions)]
pub struct SessionRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub sso_connection_id: Option<String>,
}

/// A new session's id and its first refresh token (shown once).
pub struct NewSession {
    pub id: String,
    pub refresh_token: SecretString,
}

/// Starts a session for `user`, acting in `tenant` (or identity-only).
pub fn start(
    conn: &mut AnyConnection,
    user: UserId,
    tenant: Option<TenantId>,
    meta: &RequestMeta,
    limits: SessionLimits,
) -> Result<NewSession, ApiError> {
    let id = uuid::Uuid::now_v7().to_string();
    let token = generate_secret();
    let at = now();
    diesel::insert_into(s::sessions)
        .values((
            s::id.eq(&id),
            s::user_id.eq(user.as_text()),
            s::tenant_id.eq(tenant.map(|t| t.as_text())),
            s::refresh_digest.eq(digest_generated(&token)),
            s::user_agent.eq(meta.user_agent.as_deref()),
            s::ip.eq(meta.ip.as_deref()),
            s::created_at.eq(at),
            s::last_used_at.eq(at),
            s::expires_at.eq(at + limits.lifetime),
        ))
        .execute(conn)?;
    Ok(NewSession { id, refresh_token: token })
}

/// Moves a session to another tenant (`POST /auth/switch`); false when it has ended.
pub fn switch(conn: &mut AnyConnection, session: &str, user: UserId, tenant: TenantId) -> Result<bool, ApiError> {
    let moved = diesel::update(
        s::sessions.filter(s::id.eq(session)).filter(s::user_id.eq(user.as_text())).filter(s::ended_at.is_null()),
    )
    .set(s::tenant_id.eq(Some(tenant.as_text())))
    .execute(conn)?;
    Ok(moved == 1)
}

/// What a refresh token turned out to be.
pub enum Refreshed {
    /// Rotated: the session goes on with `refresh_token`, acting in `tenant_id`.
    Rotated { session_id: String, user_id: String, tenant_id: Option<String>, refresh_token: SecretString },
    /// Unknown, or its session has ended or expired.
    Invalid,
    /// Already exchanged once: its session is now ended.
    Reused,
}

/// Exchanges a refresh token for the next one. A token already exchanged ends its session
/// (the family), whoever presents it: a thief and the rightful client cannot both go on.
pub fn refresh(
    conn: &mut AnyConnection,
    token: &SecretString,
    limits: SessionLimits,
    meta: &RequestMeta,
) -> Result<Refreshed, ApiError> {
    let digest = digest_generated(token);
    write_tx(conn, |conn| {
        let at = now();
        let current = s::sessions
            .filter(s::refresh_digest.eq(&digest))
            .select((s::id, s::user_id, s::tenant_id, s::ended_at, s::expires_at, s::last_used_at))
            .first::<(String, String, Option<String>, Option<NaiveDateTime>, NaiveDateTime, NaiveDateTime)>(conn)
            .optional()?;
        let Some((id, user_id, tenant_id, ended, expires, last_used)) = current else {
            let family = rt::rotated_refresh_tokens
                .filter(rt::token_digest.eq(&digest))
                .select(rt::session_id)
                .first::<String>(conn)
                .optional()?;
            let Some(family) = family else { return Ok(Refreshed::Invalid) };
            return end_reused(conn, &family, meta);
        };
        if ended.is_some() || expires <= at || last_used + limits.idle <= at {
            return Ok(Refreshed::Invalid);
        }
        let next = generate_secret();
        // Compare-and-swap on the digest: of two requests with one token, one rotates it and
        // the other finds it rotated (and ends the family); a session ended meanwhile stays so.
        let live =
            s::sessions.filter(s::id.eq(&id)).filter(s::refresh_digest.eq(&digest)).filter(s::ended_at.is_null());
        let swapped = diesel::update(live)
            .set((s::refresh_digest.eq(digest_generated(&next)), s::last_used_at.eq(at)))
            .execute(conn)?;
        if swapped != 1 {
            // Exchanged (or ended) by a concurrent request since it was read (on PostgreSQL the
            // update waited for that one's commit): a second use of one token, like any other.
            return end_reused(conn, &id, meta);
        }
        diesel::insert_into(rt::rotated_refresh_tokens)
            .values((rt::token_digest.eq(&digest), rt::session_id.eq(&id), rt::rotated_at.eq(at)))
            .execute(conn)?;
        Ok(Refreshed::Rotated { session_id: id, user_id, tenant_id, refresh_token: next })
    })
}

/// A refresh token presented again: ends its session (`family`) and records why.
fn end_reused(conn: &mut AnyConnection, family: &str, meta: &RequestMeta) -> Result<Refreshed, ApiError> {
    if let Some(user) = end(conn, family, EndReason::RefreshTokenReused)? {
        audit::record_for_person(
            conn,
            crate::domain::ids::parse_stored(&user),
            meta,
            "session.refresh_token_reused",
            json!({"session_id": family, "ended": true}),
        )?;
    }
    Ok(Refreshed::Reused)
}

/// Ends one session; returns its person when it was still going.
pub fn end(conn: &mut AnyConnection, session: &str, reason: EndReason) -> Result<Option<String>, ApiError> {
    let user = s::sessions
        .filter(s::id.eq(session))
        .filter(s::ended_at.is_null())
        .select(s::user_id)
        .first::<String>(conn)
        .optional()?;
    if user.is_some() {
        diesel::update(s::sessions.filter(s::id.eq(session)).filter(s::ended_at.is_null()))
            .set((s::ended_at.eq(Some(now())), s::end_reason.eq(Some(reason.as_str()))))
            .execute(conn)?;
    }
    Ok(user)
}

/// Which of a person's sessions to end.
#[derive(Debug, Clone, Copy)]
pub enum Sessions<'a> {
    /// Every one.
    All,
    /// Those acting in this tenant, and identity-only ones (which could switch into it).
    InTenant(&'a str),
}

/// Ends a person's sessions; returns how many were going.
pub(in crate::store) fn end_all(
    conn: &mut AnyConnection,
    user: UserId,
    which: Sessions<'_>,
    reason: EndReason,
) -> Result<usize, ApiError> {
    let going = s::sessions.filter(s::user_id.eq(user.as_text())).filter(s::ended_at.is_null());
    let set = (s::ended_at.eq(Some(now())), s::end_reason.eq(Some(reason.as_str())));
    Ok(match which {
        Sessions::All => diesel::update(going).set(set).execute(conn)?,
        Sessions::InTenant(tenant) => {
            diesel::update(going.filter(s::tenant_id.eq(tenant).or(s::tenant_id.is_null()))).set(set).execute(conn)?
        }
    })
}

/// A person's sessions that are still going, newest first.
pub fn active(conn: &mut AnyConnection, user: UserId) -> Result<Vec<SessionRow>, ApiError> {
    Ok(s::sessions
        .filter(s::user_id.eq(user.as_text()))
        .filter(s::ended_at.is_null())
        .filter(s::expires_at.gt(now()))
        .order(s::created_at.desc())
        .select(SessionRow::as_select())
        .load(conn)?)
}

/// Ends one of the person's own sessions and records it; false when no such session of
/// theirs is going.
pub fn end_own(
    conn: &mut AnyConnection,
    user: UserId,
    session: &str,
    reason: EndReason,
    meta: &RequestMeta,
) -> Result<bool, ApiError> {
    write_tx(conn, |conn| {
        let mine = s::sessions
            .filter(s::id.eq(session))
            .filter(s::user_id.eq(user.as_text()))
            .filter(s::ended_at.is_null())
            .count()
            .get_result::<i64>(conn)?;
        if mine == 0 {
            return Ok(false);
        }
        end(conn, session, reason)?;
        let action = if reason == EndReason::Logout { "user.signed_out" } else { "session.ended" };
        audit::record_for_person(conn, user, meta, action, json!({"session_id": session, "reason": reason.as_str()}))?;
        Ok(true)
    })
}
