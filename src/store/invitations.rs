//! Invitations: an email with a link to join a tenant with a given role and regions. The token
//! is stored as its SHA-256 digest, works once and for [`VALID_DAYS`]; an open invitation
//! holds a seat. Accepting makes a new person (full name and password) or adds the tenant to
//! an existing person's account (they prove their password).

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::audit::{self, AuditActor, AuditEntry};
use super::idempotency::{self, IdempotencyKey, Render, Replay};
use super::members::{Joining, Person, SignIn, ensure_regions_exist, ensure_seat, insert_regions, new_member_rows};
use super::outbox::{self, Mailer, Notice};
use crate::auth::{RequestMeta, TenantContext};
use crate::db::models::UserRow;
use crate::db::schema::{
    invitations::dsl as i, memberships::dsl as m, regions::dsl as r, tenants::dsl as t, users::dsl as u,
};
use crate::db::{AnyConnection, lock_tenant, write_tx};
use crate::domain::ids::parse_stored;
use crate::domain::password::{digest_generated, generate_secret};
use crate::domain::{EmailAddress, MemberStatus, RegionId, Role, TenantId, UserId, now};
use crate::error::ApiError;

/// How long an invitation link works.
pub const VALID_DAYS: i64 = 7;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crate::db::schema::invitations)]
pub struct InvitationRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    pub regions: String,
    pub invited_by: Option<String>,
    pub status: String,
    pub expires_at: NaiveDateTime,
    pub sent_count: i32,
    pub last_sent_at: NaiveDateTime,
    pub accepted_by: Option<String>,
    pub accepted_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// Where an invitation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

impl InvitationState {
    pub const ALL: [InvitationState; 4] = [Self::Pending, Self::Accepted, Self::Revoked, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

const PENDING: &str = "pending";

impl InvitationRow {
    pub fn state(&self) -> InvitationState {
        match self.status.as_str() {
            "accepted" => InvitationState::Accepted,
            "revoked" => InvitationState::Revoked,
            _ if self.expires_at <= now() => InvitationState::Expired,
            _ => InvitationState::Pending,
        }
    }

    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Viewer)
    }

    pub fn region_ids(&self) -> Vec<RegionId> {
        serde_json::from_str::<Vec<String>>(&self.regions).unwrap_or_default().iter().map(|s| parse_stored(s)).collect()
    }

    fn audit_state(&self) -> serde_json::Value {
        json!({
            "email": self.email,
            "role": self.role,
            "regions": self.region_ids(),
            "status": self.state().as_str(),
            "expires_at": crate::domain::time::utc(self.expires_at),
        })
    }
}

/// A new invitation, parsed.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub email: EmailAddress,
    pub role: Role,
    pub regions: Vec<RegionId>,
}

fn not_found() -> ApiError {
    ApiError::not_found("invitation not found")
}

/// Queues the invitation email with a link carrying `token`.
fn send(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    row: &InvitationRow,
    token: &SecretString,
    mailer: &Mailer<'_>,
) -> Result<(), ApiError> {
    let tenant: String = t::tenants.filter(t::id.eq(&row.tenant_id)).select(t::name).first(conn)?;
    let (inviter, inviter_email) = match ctx.actor().audit_identity() {
        // An API key invites in its own name, with its creator's address to reply to.
        (_, key_id, Some(key_name)) => {
            use crate::db::schema::api_keys::dsl as k;
            let creator: String = k::api_keys
                .filter(k::tenant_id.eq(&row.tenant_id))
                .filter(k::id.eq(key_id))
                .select(k::created_by)
                .first(conn)?;
            let email = u::users.filter(u::id.eq(creator)).select(u::email).first::<String>(conn).optional()?;
            (key_name, email.unwrap_or_default())
        }
        _ => {
            u::users
                .filter(u::id.eq(ctx.actor().user_id.as_text()))
                .select((u::full_name, u::email))
                .first::<(String, String)>(conn)?
        }
    };
    let link = format!("{}/accept-invitation?token={}", mailer.app_url, token.expose_secret());
    let notice =
        Notice::Invitation { tenant, inviter, inviter_email, role: row.role.clone(), link, valid_days: VALID_DAYS };
    outbox::enqueue(conn, mailer.master, Some(&row.tenant_id), &row.email, &notice)?;
    Ok(())
}

fn load(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<InvitationRow, ApiError> {
    let row = i::invitations
        .filter(i::tenant_id.eq(ctx.tenant_text()))
        .filter(i::id.eq(id))
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()?
        .ok_or_else(not_found)?;
    // An admin sees only invitations it could have sent.
    if ctx.actor().can_grant(row.role(), &row.region_ids()).is_err() {
        return Err(not_found());
    }
    Ok(row)
}

fn audit_invitation(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    action: &str,
    row: &InvitationRow,
    before: Option<serde_json::Value>,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        action,
        target_type: "invitation",
        target_id: Some(row.id.clone()),
        before,
        after: Some(row.audit_state()),
    };
    audit::record(conn, ctx, entry)
}

/// What an invite did: sent a new invitation, or found the first answer for the same
/// `Idempotency-Key`.
pub enum Invited {
    New(Box<InvitationRow>),
    Replayed(Replay),
}

/// Invites `new.email`: policy as for creating members; takes a seat. With an idempotency key
/// (`status` is the answer's), the first answer is stored in the same transaction.
pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    new: NewInvitation,
    mailer: &Mailer<'_>,
    idem: Option<(&IdempotencyKey, u16, Render<'_, InvitationRow>)>,
) -> Result<Invited, ApiError> {
    ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
    ctx.actor().require_grant(new.role, &new.regions)?;
    let tenant = ctx.tenant_text();
    let actor = ctx.actor().user_id.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        if let Some((key, _, _)) = idem
            && let Some(replay) = idempotency::find(conn, &tenant, &actor, key)?
        {
            return Ok(Invited::Replayed(replay));
        }
        let email = new.email.as_str();
        let member = m::memberships
            .inner_join(u::users)
            .filter(m::tenant_id.eq(&tenant))
            .filter(u::email.eq(email))
            .count()
            .get_result::<i64>(conn)?;
        if member > 0 {
            return Err(ApiError::conflict("already-member", format!("{email} is already a member of this tenant")));
        }
        let open = i::invitations
            .filter(i::tenant_id.eq(&tenant))
            .filter(i::email.eq(email))
            .filter(i::status.eq(PENDING))
            .filter(i::expires_at.gt(now()))
            .select(i::id)
            .first::<String>(conn)
            .optional()?;
        if let Some(open) = open {
            return Err(ApiError::conflict(
                "invitation-pending",
                format!(
                    "{email} already has an open invitation ({open}); resend it: POST .../invitations/{open}/resend"
                ),
            ));
        }
        ensure_regions_exist(conn, &tenant, &new.regions)?;
        ensure_seat(conn, &tenant)?;
        let token = generate_secret();
        let at = now();
        let row = InvitationRow {
            id: uuid::Uuid::now_v7().to_string(),
            tenant_id: tenant.clone(),
            email: email.to_string(),
            role: new.role.as_str().into(),
            regions: serde_json::to_string(&new.regions.iter().map(|r| r.as_text()).collect::<Vec<_>>())
                .map_err(|e| ApiError::internal(e.to_string()))?,
            invited_by: Some(ctx.actor().user_id.as_text()),
            status: PENDING.into(),
            expires_at: at + Duration::days(VALID_DAYS),
            sent_count: 1,
            last_sent_at: at,
            accepted_by: None,
            accepted_at: None,
            revoked_at: None,
            created_at: at,
        };
        diesel::insert_into(i::invitations)
            .values((
                i::id.eq(&row.id),
                i::tenant_id.eq(&row.tenant_id),
                i::email.eq(&row.email),
                i::role.eq(&row.role),
                i::regions.eq(&row.regions),
                i::token_digest.eq(digest_generated(&token)),
                i::invited_by.eq(&row.invited_by),
                i::status.eq(&row.status),
                i::expires_at.eq(row.expires_at),
                i::sent_count.eq(row.sent_count),
                i::last_sent_at.eq(row.last_sent_at),
                i::created_at.eq(row.created_at),
            ))
            .execute(conn)?;
        send(conn, ctx, &row, &token, mailer)?;
        audit_invitation(conn, ctx, "invitation.created", &row, None)?;
        if let Some((key, status, render)) = idem {
            idempotency::save(conn, &tenant, &actor, key, status, &render(&row))?;
        }
        Ok(Invited::New(Box::new(row)))
    })
}

/// Invitations the caller may see (owners: all; admins: those they could send), newest first,
/// `limit` from after `cursor` (an invitation id).
pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    state: Option<InvitationState>,
    cursor: Option<&str>,
    limit: i64,
) -> Result<(Vec<InvitationRow>, Option<String>), ApiError> {
    ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
    let mut query = i::invitations.filter(i::tenant_id.eq(ctx.tenant_text())).into_boxed();
    let at = now();
    query = match state {
        None => query,
        Some(InvitationState::Pending) => query.filter(i::status.eq(PENDING)).filter(i::expires_at.gt(at)),
        Some(InvitationState::Expired) => query.filter(i::status.eq(PENDING)).filter(i::expires_at.le(at)),
        Some(other) => query.filter(i::status.eq(other.as_str())),
    };
    if let Some(cursor) = cursor {
        query = query.filter(i::id.lt(cursor.to_string()));
    }
    let rows: Vec<InvitationRow> =
        query.order(i::id.desc()).limit(limit + 1).select(InvitationRow::as_select()).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<InvitationRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| r.id.clone()) } else { None };
    let actor = ctx.actor();
    Ok((page.into_iter().filter(|r| actor.can_grant(r.role(), &r.region_ids()).is_ok()).collect(), next))
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<InvitationRow, ApiError> {
    ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
    load(conn, ctx, id)
}

fn closed(row: &InvitationRow) -> ApiError {
    ApiError::conflict("invitation-closed", format!("the invitation is {}; invite again", row.state().as_str()))
}

/// Sends the invitation again with a new link (the old one stops working) and a fresh
/// [`VALID_DAYS`]. An expired invitation comes back to life if a seat is free.
pub fn resend(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: &str,
    mailer: &Mailer<'_>,
) -> Result<InvitationRow, ApiError> {
    ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        match before.state() {
            InvitationState::Accepted | InvitationState::Revoked => return Err(closed(&before)),
            InvitationState::Expired => ensure_seat(conn, &ctx.tenant_text())?,
            InvitationState::Pending => {}
        }
        let token = generate_secret();
        let at = now();
        diesel::update(i::invitations.filter(i::tenant_id.eq(ctx.tenant_text())).filter(i::id.eq(id)))
            .set((
                i::token_digest.eq(digest_generated(&token)),
                i::expires_at.eq(at + Duration::days(VALID_DAYS)),
                i::sent_count.eq(i::sent_count + 1),
                i::last_sent_at.eq(at),
            ))
            .execute(conn)?;
        let row = load(conn, ctx, id)?;
        send(conn, ctx, &row, &token, mailer)?;
        audit_invitation(conn, ctx, "invitation.resent", &row, Some(before.audit_state()))?;
        Ok(row)
    })
}

/// Withdraws an invitation: its link stops working and its seat is free.
pub fn revoke(conn: &mut AnyConnection, ctx: &TenantContext, id: &str) -> Result<(), ApiError> {
    ctx.actor().require(crate::auth::policy::TenantAction::CreateMember)?;
    super::tenant_write(conn, ctx, |conn| {
        let before = load(conn, ctx, id)?;
        match before.state() {
            InvitationState::Accepted => return Err(closed(&before)),
            InvitationState::Revoked => return Ok(()),
            InvitationState::Pending | InvitationState::Expired => {}
        }
        diesel::update(i::invitations.filter(i::tenant_id.eq(ctx.tenant_text())).filter(i::id.eq(id)))
            .set((i::status.eq(InvitationState::Revoked.as_str()), i::revoked_at.eq(Some(now()))))
            .execute(conn)?;
        let row = load(conn, ctx, id)?;
        audit_invitation(conn, ctx, "invitation.revoked", &row, Some(before.audit_state()))
    })
}

// ---------------------------------------------------------------- the invited person

/// An open invitation, as its link shows it.
pub struct Opened {
    pub invitation: InvitationRow,
    pub tenant_name: String,
    pub inviter_name: Option<String>,
    /// The person already has a Roster account (they accept with its password).
    pub account: Option<UserRow>,
    /// The tenant's minimum password length (for a new account).
    pub min_password_length: i32,
}

fn invalid_link() -> ApiError {
    ApiError::not_found(
        "invitation not found: the link is wrong, already used, revoked, replaced by a newer one or expired",
    )
}

/// The open invitation `token` belongs to.
pub fn open(conn: &mut AnyConnection, token: &SecretString) -> Result<Opened, ApiError> {
    let invitation = i::invitations
        .filter(i::token_digest.eq(digest_generated(token)))
        .select(InvitationRow::as_select())
        .first(conn)
        .optional()?
        .filter(|row| row.state() == InvitationState::Pending)
        .ok_or_else(invalid_link)?;
    let (tenant_name, min_password_length) = t::tenants
        .filter(t::id.eq(&invitation.tenant_id))
        .select((t::name, t::password_min_length))
        .first::<(String, i32)>(conn)?;
    let inviter_name = match &invitation.invited_by {
        Some(id) => u::users.filter(u::id.eq(id)).select(u::full_name).first::<String>(conn).optional()?,
        None => None,
    };
    let account =
        u::users.filter(u::email.eq(&invitation.email)).select(UserRow::as_select()).first(conn).optional()?;
    Ok(Opened { invitation, tenant_name, inviter_name, account, min_password_length })
}

/// Who accepts: a new person, or the existing account (whose password the caller proved).
pub enum Acceptor {
    New { full_name: String, password_hash: String },
    Existing { user: UserId },
}

/// Accepts the invitation once: makes the membership (and for a new person, the account).
/// Returns the person's id and the tenant's.
pub fn accept(
    conn: &mut AnyConnection,
    token: &SecretString,
    acceptor: Acceptor,
    meta: &RequestMeta,
) -> Result<(UserId, TenantId), ApiError> {
    let digest = digest_generated(token);
    write_tx(conn, |conn| {
        let row = i::invitations
            .filter(i::token_digest.eq(&digest))
            .select(InvitationRow::as_select())
            .first(conn)
            .optional()?
            .filter(|row| row.state() == InvitationState::Pending)
            .ok_or_else(invalid_link)?;
        let tenant = row.tenant_id.clone();
        lock_tenant(conn, &tenant)?;
        let at = now();
        let existing = u::users.filter(u::email.eq(&row.email)).select(u::id).first::<String>(conn).optional()?;
        let user_id = match (&acceptor, existing) {
            (Acceptor::Existing { user }, Some(found)) if found == user.as_text() => *user,
            (Acceptor::New { .. }, None) => UserId::new(),
            _ => {
                return Err(ApiError::conflict(
                    "invitation-account-changed",
                    "whether an account uses this email changed while you accepted; open the invitation again",
                ));
            }
        };
        let uid = user_id.as_text();
        let here = m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid)).count();
        if here.get_result::<i64>(conn)? > 0 {
            return Err(ApiError::conflict("already-member", "you are already a member of this tenant"));
        }
        // Used once: of two requests with one token, only the first finds it pending.
        let taken = diesel::update(
            i::invitations
                .filter(i::tenant_id.eq(&tenant))
                .filter(i::id.eq(&row.id))
                .filter(i::status.eq(PENDING))
                .filter(i::expires_at.gt(at)),
        )
        .set((
            i::status.eq(InvitationState::Accepted.as_str()),
            i::accepted_by.eq(Some(&uid)),
            i::accepted_at.eq(Some(at)),
        ))
        .execute(conn)?;
        if taken != 1 {
            return Err(invalid_link());
        }
        let (email, full_name, username, sign_in) = match acceptor {
            Acceptor::New { full_name, password_hash } => {
                (row.email.clone(), full_name, None, SignIn::Password(password_hash))
            }
            Acceptor::Existing { .. } => {
                let (email, full_name, username) = u::users
                    .filter(u::id.eq(&uid))
                    .select((u::email, u::full_name, u::username))
                    .first::<(String, String, Option<String>)>(conn)?;
                (email, full_name, username, SignIn::Existing)
            }
        };
        // Regions deleted since the invitation was sent are left out.
        let wanted: Vec<String> = row.region_ids().iter().map(|r| r.as_text()).collect();
        let regions: Vec<RegionId> = r::regions
            .filter(r::tenant_id.eq(&tenant))
            .filter(r::id.eq_any(&wanted))
            .select(r::id)
            .load::<String>(conn)?
            .iter()
            .map(|s| parse_stored(s))
            .collect();
        let person =
            Person { user_id: &uid, email: &email, username: username.as_deref(), full_name: &full_name, sign_in };
        let (user, membership) = new_member_rows(person, Joining::active(&tenant, row.role()), at);
        if let Some(user) = &user {
            diesel::insert_into(u::users).values(user).execute(conn)?;
        }
        diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
        insert_regions(conn, &tenant, &uid, &regions)?;
        let entry = AuditEntry {
            action: "invitation.accepted",
            target_type: "member",
            target_id: Some(uid.clone()),
            before: None,
            after: Some(json!({
                "invitation_id": row.id,
                "email": email,
                "full_name": full_name,
                "role": row.role,
                "regions": regions,
                "status": MemberStatus::Active.as_str(),
            })),
        };
        audit::record_raw(conn, parse_stored(&tenant), AuditActor::User(user_id), meta, entry)?;
        Ok((user_id, parse_stored(&tenant)))
    })
}
