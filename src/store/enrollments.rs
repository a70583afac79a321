//! Device-agent enrolment (DESIGN.md section 11): an `agent` key enrols the person behind an OS
//! username on a device; an unknown username becomes a `pending_approval` member with a
//! provisional address, whom an owner or admin approves or rejects (`members::approve`,
//! `members::reject`). The person completes their profile with a one-time token, without
//! signing in; the address they give becomes theirs when they follow the link sent to it.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::auth::RequestMeta;
use crate::auth::guard::AgentContext;
use crate::db::AnyConnection;
use crate::db::models::{EnrollmentRow, search_text};
use crate::db::schema::{
    email_confirmations::dsl as ec, enrollments::dsl as e, member_os_usernames::dsl as os, memberships::dsl as m,
    profile_completions::dsl as pc, regions::dsl as r, tenants::dsl as t, users::dsl as u,
};
use crate::domain::enrollment::{
    COMPLETION_DAYS, EnrollmentStatus, ProfileState, is_provisional, provisional_email, username_key,
};
use crate::domain::ids::parse_stored;
use crate::domain::password::{digest_generated, generate_secret};
use crate::domain::{EmailAddress, MemberStatus, RegionId, TenantId, UserId, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditActor, AuditEntry};
use crate::store::members::{Joining, Person, SignIn, ensure_seat, insert_regions, new_member_rows};
use crate::store::outbox::{self, Mailer, Notice};

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Nullable<diesel::sql_types::Text>) -> diesel::sql_types::Nullable<diesel::sql_types::Text>);

/// What an agent reports: the OS username it saw and the device it runs on.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub username: String,
    pub agent_id: String,
    pub hostname: String,
    pub os: Option<String>,
}

/// An enrolment as the agent sees it.
#[derive(Debug, Clone)]
pub struct EnrollmentState {
    pub row: EnrollmentRow,
    pub status: EnrollmentStatus,
    pub profile: ProfileState,
    /// The member's name as it is now (their OS username until they complete the profile).
    pub full_name: String,
}

/// What an enrolment did: whether it made a new member, and the completion token it issued
/// (when the profile is not complete), shown once.
pub struct Enrolled {
    pub state: EnrollmentState,
    pub created: bool,
    pub token: Option<(SecretString, NaiveDateTime)>,
}

/// Enrols `who` in the key's tenant. The tenant is locked for the whole of it, so parallel
/// enrolments take seats one at a time and the same username is never made twice.
pub fn enrol(conn: &mut AnyConnection, agent: &AgentContext, who: Enrolment) -> Result<Enrolled, ApiError> {
    let ctx = &agent.ctx;
    let tenant = ctx.tenant_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let at = now();
        let key = username_key(&who.username);
        let by_os = os::member_os_usernames
            .filter(os::tenant_id.eq(&tenant))
            .filter(os::os_username_key.eq(&key))
            .select(os::user_id)
            .first::<String>(conn)
            .optional()?;
        let known = match by_os {
            Some(user) => Some(user),
            None => m::memberships
                .inner_join(u::users)
                .filter(m::tenant_id.eq(&tenant))
                .filter(lower(u::username).eq(&key))
                .select(m::user_id)
                .first::<String>(conn)
                .optional()?,
        };
        let created = known.is_none();
        let user_id = match known {
            Some(user) => user,
            None => create_pending(conn, agent, &who, at)?,
        };
        let existing = e::enrollments
            .filter(e::tenant_id.eq(&tenant))
            .filter(e::agent_id.eq(&who.agent_id))
            .filter(e::user_id.eq(&user_id))
            .select(EnrollmentRow::as_select())
            .first::<EnrollmentRow>(conn)
            .optional()?;
        let row = match existing {
            Some(row) => {
                diesel::update(e::enrollments.filter(e::id.eq(&row.id)))
                    .set((
                        e::api_key_id.eq(&agent.key_id),
                        e::hostname.eq(&who.hostname),
                        e::os.eq(&who.os),
                        e::updated_at.eq(at),
                    ))
                    .execute(conn)?;
                EnrollmentRow {
                    api_key_id: agent.key_id.clone(),
                    hostname: who.hostname.clone(),
                    os: who.os.clone(),
                    updated_at: at,
                    ..row
                }
            }
            None => {
                let row = EnrollmentRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    tenant_id: tenant.clone(),
                    user_id: user_id.clone(),
                    api_key_id: agent.key_id.clone(),
                    agent_id: who.agent_id.clone(),
                    hostname: who.hostname.clone(),
                    os: who.os.clone(),
                    os_username: who.username.trim().to_string(),
                    rejected_at: None,
                    created_at: at,
                    updated_at: at,
                };
                diesel::insert_into(e::enrollments).values(&row).execute(conn)?;
                row
            }
        };
        let state = state_of(conn, row)?;
        if !created {
            let entry = AuditEntry {
                action: "device.enrolled",
                target_type: "member",
                target_id: Some(user_id.clone()),
                before: None,
                after: Some(device_json(&state.row)),
            };
            audit::record(conn, ctx, entry)?;
        }
        let token = if state.profile == ProfileState::Complete || state.status == EnrollmentStatus::Removed {
            None
        } else {
            Some(issue_completion(conn, &tenant, &user_id, &state.row.id, at)?)
        };
        Ok(Enrolled { state, created, token })
    })
}

fn device_json(row: &EnrollmentRow) -> serde_json::Value {
    json!({
        "enrollment_id": row.id,
        "agent_id": row.agent_id,
        "hostname": row.hostname,
        "os": row.os,
        "os_username": row.os_username,
    })
}

/// A new identity with a provisional address and a `pending_approval` membership with the
/// key's role and regions (those that still exist); it takes a seat.
fn create_pending(
    conn: &mut AnyConnection,
    agent: &AgentContext,
    who: &Enrolment,
    at: NaiveDateTime,
) -> Result<String, ApiError> {
    let tenant = agent.ctx.tenant_text();
    ensure_seat(conn, &tenant)?;
    let wanted: Vec<String> = agent.regions.iter().map(RegionId::as_text).collect();
    let mut regions: Vec<String> =
        r::regions.filter(r::tenant_id.eq(&tenant)).filter(r::id.eq_any(&wanted)).select(r::id).load(conn)?;
    regions.sort();
    let id = UserId::new();
    let user_id = id.as_text();
    let username = who.username.trim();
    let email = provisional_email(username, &id.0);
    let person = Person {
        user_id: &user_id,
        email: &email,
        username: None,
        full_name: username,
        sign_in: SignIn::NoPasswordYet,
    };
    let (user, membership) = new_member_rows(person, Joining::pending(&tenant, agent.role), at);
    let user = user.ok_or_else(|| ApiError::internal("a new member without an identity"))?;
    diesel::insert_into(u::users).values(&user).execute(conn)?;
    diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
    diesel::insert_into(os::member_os_usernames)
        .values((
            os::tenant_id.eq(&tenant),
            os::user_id.eq(&user_id),
            os::os_username.eq(username),
            os::os_username_key.eq(username_key(username)),
        ))
        .execute(conn)?;
    let parsed: Vec<RegionId> = regions.iter().map(|s| parse_stored(s)).collect();
    insert_regions(conn, &tenant, &user_id, &parsed)?;
    let entry = AuditEntry {
        action: "member.enrolled",
        target_type: "member",
        target_id: Some(user_id.clone()),
        before: None,
        after: Some(json!({
            "email": email,
            "full_name": username,
            "os_username": username,
            "role": membership.role,
            "status": membership.status,
            "regions": regions,
            "device": {"agent_id": who.agent_id, "hostname": who.hostname, "os": who.os},
        })),
    };
    audit::record(conn, &agent.ctx, entry)?;
    Ok(user_id)
}

/// A fresh completion token for the member; any earlier unused one is void.
fn issue_completion(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    enrollment: &str,
    at: NaiveDateTime,
) -> Result<(SecretString, NaiveDateTime), ApiError> {
    diesel::delete(pc::profile_completions.filter(pc::user_id.eq(user)).filter(pc::used_at.is_null())).execute(conn)?;
    let token = generate_secret();
    let expires = at + Duration::days(COMPLETION_DAYS);
    diesel::insert_into(pc::profile_completions)
        .values((
            pc::token_digest.eq(digest_generated(&token)),
            pc::tenant_id.eq(tenant),
            pc::user_id.eq(user),
            pc::enrollment_id.eq(enrollment),
            pc::expires_at.eq(expires),
            pc::created_at.eq(at),
        ))
        .execute(conn)?;
    Ok((token, expires))
}

/// Where the enrolment stands now: the membership's status (or rejected or removed when it is
/// gone), and how far the person got with their profile.
fn state_of(conn: &mut AnyConnection, row: EnrollmentRow) -> Result<EnrollmentState, ApiError> {
    let member = m::memberships
        .inner_join(u::users)
        .filter(m::tenant_id.eq(&row.tenant_id))
        .filter(m::user_id.eq(&row.user_id))
        .select((m::status, u::email, u::full_name))
        .first::<(String, String, String)>(conn)
        .optional()?;
    let Some((status, email, full_name)) = member else {
        let status = if row.rejected_at.is_some() { EnrollmentStatus::Rejected } else { EnrollmentStatus::Removed };
        let full_name = row.os_username.clone();
        return Ok(EnrollmentState { row, status, profile: ProfileState::Incomplete, full_name });
    };
    let status = match MemberStatus::parse(&status) {
        Some(MemberStatus::Active) => EnrollmentStatus::Active,
        Some(MemberStatus::PendingApproval) => EnrollmentStatus::PendingApproval,
        Some(MemberStatus::Invited) => EnrollmentStatus::Invited,
        Some(MemberStatus::Disabled) | None => EnrollmentStatus::Disabled,
    };
    let profile = if !is_provisional(&email) {
        ProfileState::Complete
    } else if pending_confirmation(conn, &row.user_id)? {
        ProfileState::AwaitingEmailConfirmation
    } else {
        ProfileState::Incomplete
    };
    Ok(EnrollmentState { row, status, profile, full_name })
}

fn pending_confirmation(conn: &mut AnyConnection, user: &str) -> Result<bool, ApiError> {
    let n = ec::email_confirmations
        .filter(ec::user_id.eq(user))
        .filter(ec::used_at.is_null())
        .filter(ec::expires_at.gt(now()))
        .count()
        .get_result::<i64>(conn)?;
    Ok(n > 0)
}

/// An enrolment of the agent key's tenant (another tenant's answers 404).
pub fn get(conn: &mut AnyConnection, agent: &AgentContext, id: &str) -> Result<EnrollmentState, ApiError> {
    let row = e::enrollments
        .filter(e::tenant_id.eq(agent.ctx.tenant_text()))
        .filter(e::id.eq(id))
        .select(EnrollmentRow::as_select())
        .first::<EnrollmentRow>(conn)
        .optional()?
        .ok_or_else(|| ApiError::not_found(format!("enrollment {id} not found")))?;
    state_of(conn, row)
}

/// The devices a member was enrolled on (not those of a rejection), oldest first. The caller
/// has checked that it may read the member.
pub(in crate::store) fn devices_of(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
) -> Result<Vec<EnrollmentRow>, ApiError> {
    Ok(e::enrollments
        .filter(e::tenant_id.eq(tenant))
        .filter(e::user_id.eq(user))
        .filter(e::rejected_at.is_null())
        .order((e::created_at, e::id))
        .select(EnrollmentRow::as_select())
        .load(conn)?)
}

/// Inside a reject: the member's enrolments say so, and their unused tokens are void.
pub(in crate::store) fn mark_rejected(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<(), ApiError> {
    let at = now();
    diesel::update(e::enrollments.filter(e::tenant_id.eq(tenant)).filter(e::user_id.eq(user)))
        .set((e::rejected_at.eq(at), e::updated_at.eq(at)))
        .execute(conn)?;
    diesel::delete(pc::profile_completions.filter(pc::tenant_id.eq(tenant)).filter(pc::user_id.eq(user)))
        .execute(conn)?;
    diesel::delete(ec::email_confirmations.filter(ec::tenant_id.eq(tenant)).filter(ec::user_id.eq(user)))
        .execute(conn)?;
    Ok(())
}

fn os_username_of(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<Option<String>, ApiError> {
    Ok(os::member_os_usernames
        .filter(os::tenant_id.eq(tenant))
        .filter(os::user_id.eq(user))
        .select(os::os_username)
        .first::<String>(conn)
        .optional()?)
}

// ---------------------------------------------------------------- completing the profile

fn no_such_link() -> ApiError {
    ApiError::not_found(
        "this link is unknown, already used, replaced by a newer one or expired; open the link your device shows now",
    )
}

/// What a completion link shows before it is used.
pub struct Completion {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub user_id: String,
    pub os_username: String,
    pub device: EnrollmentRow,
    pub password_min_length: i32,
    pub expires_at: NaiveDateTime,
}

/// The current, unused completion `token` and what it is for.
pub fn open_completion(conn: &mut AnyConnection, token: &SecretString) -> Result<Completion, ApiError> {
    let (tenant, user, enrollment, expires_at) = pc::profile_completions
        .filter(pc::token_digest.eq(digest_generated(token)))
        .filter(pc::used_at.is_null())
        .filter(pc::expires_at.gt(now()))
        .select((pc::tenant_id, pc::user_id, pc::enrollment_id, pc::expires_at))
        .first::<(String, String, String, NaiveDateTime)>(conn)
        .optional()?
        .ok_or_else(no_such_link)?;
    let member = m::memberships
        .inner_join(t::tenants)
        .filter(m::tenant_id.eq(&tenant))
        .filter(m::user_id.eq(&user))
        .select((t::name, t::password_min_length))
        .first::<(String, i32)>(conn)
        .optional()?
        .ok_or_else(no_such_link)?;
    let os_username = os_username_of(conn, &tenant, &user)?;
    let device = e::enrollments
        .filter(e::id.eq(&enrollment))
        .select(EnrollmentRow::as_select())
        .first::<EnrollmentRow>(conn)
        .optional()?
        .ok_or_else(no_such_link)?;
    let (tenant_name, password_min_length) = member;
    Ok(Completion {
        tenant_id: parse_stored(&tenant),
        tenant_name,
        user_id: user,
        os_username: os_username.unwrap_or_else(|| device.os_username.clone()),
        device,
        password_min_length,
        expires_at,
    })
}

/// The refusal for an address that belongs to someone: it says nothing about them.
fn email_has_account(email: &str) -> ApiError {
    ApiError::conflict(
        "email-has-account",
        format!(
            "{email} already belongs to a Roster account; ask an admin of this tenant to invite that address instead, or give another one"
        ),
    )
}

fn address_taken(conn: &mut AnyConnection, email: &str) -> Result<bool, ApiError> {
    Ok(u::users.filter(u::email.eq(email)).count().get_result::<i64>(conn)? > 0)
}

/// What the person gives to complete their profile (the password already hashed).
pub struct ProfileInput {
    pub full_name: String,
    pub email: EmailAddress,
    pub password_hash: String,
}

/// Uses the completion `token`: the name shows at once; the address and password wait for the
/// confirmation link, queued to the address. Single use.
pub fn complete_profile(
    conn: &mut AnyConnection,
    mailer: &Mailer<'_>,
    token: &SecretString,
    input: ProfileInput,
    meta: &RequestMeta,
) -> Result<(), ApiError> {
    crate::db::write_tx(conn, |conn| {
        let opened = open_completion(conn, token)?;
        let email = input.email.as_str();
        if address_taken(conn, email)? {
            return Err(email_has_account(email));
        }
        let at = now();
        let used = diesel::update(
            pc::profile_completions.filter(pc::token_digest.eq(digest_generated(token))).filter(pc::used_at.is_null()),
        )
        .set(pc::used_at.eq(at))
        .execute(conn)?;
        if used != 1 {
            return Err(no_such_link());
        }
        let user = opened.user_id.as_str();
        let current_email: String = u::users.filter(u::id.eq(user)).select(u::email).first(conn)?;
        diesel::update(u::users.filter(u::id.eq(user)))
            .set((u::full_name.eq(&input.full_name), u::updated_at.eq(at)))
            .execute(conn)?;
        diesel::update(m::memberships.filter(m::user_id.eq(user)))
            .set((
                m::search_text.eq(search_text(&input.full_name, Some(&opened.os_username), &current_email)),
                m::sort_name.eq(input.full_name.to_lowercase()),
                m::version.eq(m::version + 1),
                m::updated_at.eq(at),
            ))
            .execute(conn)?;
        // One address waits at a time: a new completion replaces an unconfirmed one.
        diesel::delete(ec::email_confirmations.filter(ec::user_id.eq(user)).filter(ec::used_at.is_null()))
            .execute(conn)?;
        let confirmation = generate_secret();
        diesel::insert_into(ec::email_confirmations)
            .values((
                ec::token_digest.eq(digest_generated(&confirmation)),
                ec::tenant_id.eq(opened.tenant_id.as_text()),
                ec::user_id.eq(user),
                ec::email.eq(email),
                ec::full_name.eq(&input.full_name),
                ec::password_hash.eq(&input.password_hash),
                ec::expires_at.eq(at + Duration::days(COMPLETION_DAYS)),
                ec::created_at.eq(at),
            ))
            .execute(conn)?;
        let notice = Notice::ConfirmEmail {
            full_name: input.full_name.clone(),
            tenant: opened.tenant_name.clone(),
            link: format!("{}/confirm-email?token={}", mailer.app_url, confirmation.expose_secret()),
            valid_days: COMPLETION_DAYS,
        };
        outbox::enqueue(conn, mailer.master, Some(&opened.tenant_id.as_text()), email, &notice)?;
        let entry = AuditEntry {
            action: "member.profile_completed",
            target_type: "member",
            target_id: Some(opened.user_id.clone()),
            before: None,
            after: Some(json!({"full_name": input.full_name, "email_to_confirm": email})),
        };
        audit::record_raw(conn, opened.tenant_id, AuditActor::User(parse_stored(user)), meta, entry)
    })
}

/// What following a confirmation link did.
pub struct Confirmed {
    pub email: String,
    /// The membership is active: the person can sign in now.
    pub can_sign_in: bool,
}

/// Uses a confirmation `token`: the address and password given with the profile become the
/// identity's. Single use; an address someone took in the meantime is refused.
pub fn confirm_email(
    conn: &mut AnyConnection,
    token: &SecretString,
    meta: &RequestMeta,
) -> Result<Confirmed, ApiError> {
    let gone = || ApiError::not_found("this confirmation link is unknown, already used, replaced or expired");
    crate::db::write_tx(conn, |conn| {
        let digest = digest_generated(token);
        let (tenant, user, email, full_name, password_hash) = ec::email_confirmations
            .filter(ec::token_digest.eq(&digest))
            .filter(ec::used_at.is_null())
            .filter(ec::expires_at.gt(now()))
            .select((ec::tenant_id, ec::user_id, ec::email, ec::full_name, ec::password_hash))
            .first::<(String, String, String, String, String)>(conn)
            .optional()?
            .ok_or_else(gone)?;
        let status = m::memberships
            .filter(m::tenant_id.eq(&tenant))
            .filter(m::user_id.eq(&user))
            .select(m::status)
            .first::<String>(conn)
            .optional()?
            .ok_or_else(gone)?;
        let os_username = os_username_of(conn, &tenant, &user)?;
        if address_taken(conn, &email)? {
            return Err(email_has_account(&email));
        }
        let at = now();
        diesel::update(ec::email_confirmations.filter(ec::token_digest.eq(&digest)))
            .set(ec::used_at.eq(at))
            .execute(conn)?;
        diesel::update(u::users.filter(u::id.eq(&user)))
            .set((
                u::email.eq(&email),
                u::full_name.eq(&full_name),
                u::password_hash.eq(Some(&password_hash)),
                u::must_change_password.eq(false),
                u::auth_version.eq(u::auth_version + 1),
                u::updated_at.eq(at),
            ))
            .execute(conn)?;
        diesel::update(m::memberships.filter(m::user_id.eq(&user)))
            .set((
                m::search_text.eq(search_text(&full_name, os_username.as_deref(), &email)),
                m::sort_name.eq(full_name.to_lowercase()),
                m::sort_email.eq(&email),
                m::version.eq(m::version + 1),
                m::updated_at.eq(at),
            ))
            .execute(conn)?;
        let entry = AuditEntry {
            action: "member.email_confirmed",
            target_type: "member",
            target_id: Some(user.clone()),
            before: None,
            after: Some(json!({"email": email})),
        };
        audit::record_raw(conn, parse_stored(&tenant), AuditActor::User(parse_stored(&user)), meta, entry)?;
        Ok(Confirmed { email, can_sign_in: status == MemberStatus::Active.as_str() })
    })
}
