//! The member record (a membership with the identity fields and regions it shows) and how
//! it is loaded: one member, checked against the policy for an action, or a page of them.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::auth::TenantContext;
use crate::auth::guard::{Caller, CallerFacts, key_digest_is};
use crate::auth::policy::{MemberAction, TargetFacts};
use crate::db::among::among;
use crate::db::models::{ApiKeyRow, MembershipRow};
use crate::db::schema::{
    api_keys::dsl as k, member_os_usernames::dsl as os, membership_regions::dsl as mr, memberships::dsl as m,
    sessions::dsl as s, tenants::dsl as t, users::dsl as u,
};
use crate::db::{AnyConnection, on_backend};
use crate::domain::ids::parse_stored;
use crate::domain::{RegionId, Role, UserId};
use crate::error::ApiError;
use diesel::dsl::exists;

/// A member as stored: membership, identity fields and regions.
#[derive(Debug, Clone)]
pub struct MemberRecord {
    pub membership: MembershipRow,
    pub email: String,
    pub username: Option<String>,
    pub full_name: String,
    pub regions: Vec<String>,
    /// Sign-in is locked until then after repeated failures (may be past).
    pub locked_until: Option<NaiveDateTime>,
    /// The OS username a device agent enrolled the member under.
    pub os_username: Option<String>,
}

impl MemberRecord {
    pub fn role(&self) -> Role {
        Role::parse(&self.membership.role).unwrap_or(Role::Viewer)
    }
    pub fn user_id(&self) -> UserId {
        parse_stored(&self.membership.user_id)
    }
    pub fn region_ids(&self) -> Vec<RegionId> {
        self.regions.iter().map(|s| parse_stored(s)).collect()
    }
    /// The state recorded in audit events (no secrets).
    pub fn audit_state(&self) -> serde_json::Value {
        json!({
            "email": self.email,
            "username": self.username,
            "full_name": self.full_name,
            "role": self.membership.role,
            "status": self.membership.status,
            "regions": self.regions,
            "job_title": self.membership.job_title,
            "department": self.membership.department,
            "section": self.membership.section,
            "manager_id": self.membership.manager_id,
        })
    }
}

impl MemberRecord {
    /// The member as events carry it: the audited fields, its id, OS username and version.
    pub fn event_object(&self) -> serde_json::Value {
        let mut object = self.audit_state();
        if let serde_json::Value::Object(map) = &mut object {
            map.insert("id".into(), json!(self.membership.user_id));
            map.insert("os_username".into(), json!(self.os_username));
            map.insert("version".into(), json!(self.membership.version));
            map.insert("updated_at".into(), json!(crate::domain::time::utc(self.membership.updated_at)));
        }
        object
    }
}

/// A member as events carry it, or `None` when the membership is gone.
pub(in crate::store) fn event_object(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    Ok(load_record(conn, tenant, user)?.map(|r| r.event_object()))
}

fn load_regions(
    conn: &mut AnyConnection,
    tenant: &str,
    users: &[String],
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let rows = mr::membership_regions
        .filter(mr::tenant_id.eq(tenant))
        .filter(among(mr::user_id, users))
        .select((mr::user_id, mr::region_id))
        .order((mr::user_id, mr::region_id))
        .load::<(String, String)>(conn)?;
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (user, region) in rows {
        map.entry(user).or_default().push(region);
    }
    Ok(map)
}

type OsUsernameHere = diesel::dsl::And<diesel::dsl::Eq<os::user_id, u::id>, diesel::dsl::Eq<os::tenant_id, String>>;

/// The OS username an enrolment recorded for the identity in `users`, in this tenant: joined to
/// the identity, so a member's row comes in one query.
fn os_username_here(tenant: &str) -> diesel::helper_types::On<os::member_os_usernames, OsUsernameHere> {
    os::member_os_usernames.on(os::user_id.eq(u::id).and(os::tenant_id.eq(tenant.to_string())))
}

diesel::define_sql_function!(#[aggregate] fn array_agg<ST: diesel::sql_types::SingleValue>(x: ST) -> diesel::sql_types::Array<ST>);

/// PostgreSQL: a member's region ids as one array (`NULL` for none, in no order), for a
/// member's row to carry them. Bound, not correlated, so the statement is fixed-shape and stays
/// prepared.
macro_rules! regions_array {
    ($tenant:expr, $user:expr) => {
        mr::membership_regions
            .filter(mr::tenant_id.eq($tenant))
            .filter(mr::user_id.eq($user))
            .select(array_agg(mr::region_id))
            .single_value()
    };
}

/// The columns of a member's row on PostgreSQL: membership, identity fields, OS username, the
/// regions' array, and after them any columns of the caller's (diesel reads a selection nested
/// in a tuple only at its end).
macro_rules! member_columns {
    ($regions:expr $(, $facts:expr)?) => {
        (MembershipRow::as_select(), u::email, u::username, u::full_name, u::locked_until, os::os_username.nullable(), $regions $(, $facts)?)
    };
}

/// The columns of a member's row besides its regions: membership, identity fields, OS username.
type RecordRow = (MembershipRow, String, Option<String>, String, Option<NaiveDateTime>, Option<String>);

pub(in crate::store) fn load_record(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
) -> Result<Option<MemberRecord>, ApiError> {
    // One member: fixed-shape queries, so their prepared statements are cached. On PostgreSQL
    // the regions come in the same statement (an array of the member's region rows), as every
    // statement there is a round trip to the server; SQLite reads them with a second one.
    let member = m::memberships
        .inner_join(u::users)
        .left_join(os_username_here(tenant))
        .filter(m::tenant_id.eq(tenant))
        .filter(m::user_id.eq(user));
    let (row, regions) = on_backend!(conn,
        postgres: |c| {
            let found = member
                .select(member_columns!(regions_array!(tenant, user)))
                .first::<(MembershipRow, String, Option<String>, String, Option<NaiveDateTime>, Option<String>, Option<Vec<String>>)>(c)
                .optional()?;
            let Some((membership, email, username, full_name, locked_until, os_username, regions)) = found else {
                return Ok(None);
            };
            // `array_agg` of no rows is NULL, and its order is the scan's: sorted here.
            let mut regions = regions.unwrap_or_default();
            regions.sort_unstable();
            ((membership, email, username, full_name, locked_until, os_username), regions)
        },
        sqlite: |c| {
            let found = member
                .select((MembershipRow::as_select(), u::email, u::username, u::full_name, u::locked_until, os::os_username.nullable()))
                .first::<RecordRow>(c)
                .optional()?;
            let Some(row) = found else { return Ok(None) };
            let regions = mr::membership_regions
                .filter(mr::tenant_id.eq(tenant))
                .filter(mr::user_id.eq(&row.0.user_id))
                .select(mr::region_id)
                .order(mr::region_id)
                .load::<String>(c)?;
            (row, regions)
        },
    );
    let (membership, email, username, full_name, locked_until, os_username) = row;
    Ok(Some(MemberRecord { membership, email, username, full_name, regions, locked_until, os_username }))
}

/// Loads a member and checks `action` on it; 404 when the caller may not see it.
pub(super) fn load_checked(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    action: MemberAction,
) -> Result<MemberRecord, ApiError> {
    if user != ctx.actor().user_id {
        ctx.actor().can_ever(action).or_refuse()?;
    }
    let rec = load_record(conn, &ctx.tenant_text(), &user.as_text())?;
    check_loaded(ctx, user, action, rec)
}

/// [`load_checked`]'s check, on a member already loaded (`None`: no such member).
fn check_loaded(
    ctx: &TenantContext,
    user: UserId,
    action: MemberAction,
    rec: Option<MemberRecord>,
) -> Result<MemberRecord, ApiError> {
    if user != ctx.actor().user_id {
        ctx.actor().can_ever(action).or_refuse()?;
    }
    let rec = rec.ok_or_else(|| ApiError::not_found("member not found"))?;
    let regions = rec.region_ids();
    ctx.actor().can_member(action, TargetFacts { user_id: user, role: rec.role(), regions: &regions }).or_refuse()?;
    Ok(rec)
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    load_checked(conn, ctx, user, MemberAction::Read)
}

/// A member for [`TenantAccess::run_joined`](crate::auth::TenantAccess::run_joined): with a
/// [`Caller`], on PostgreSQL, the caller's facts come in the same statement as the member
/// (none when there is no such member: the guard then loads them).
pub fn load_for_get(
    conn: &mut AnyConnection,
    tenant: &str,
    user: UserId,
    caller: Option<Caller<'_>>,
) -> Result<(Option<CallerFacts>, Option<MemberRecord>), ApiError> {
    let user = user.as_text();
    match (caller, &mut *conn) {
        (Some(caller), AnyConnection::Postgresql(c)) => load_record_with_caller(c, tenant, &user, caller),
        _ => Ok((None, load_record(conn, tenant, &user)?)),
    }
}

/// The check of a member loaded by [`load_for_get`].
pub fn check_get(ctx: &TenantContext, user: UserId, rec: Option<MemberRecord>) -> Result<MemberRecord, ApiError> {
    check_loaded(ctx, user, MemberAction::Read, rec)
}

/// The member's row as one statement reads it with the caller's facts (`F`), on PostgreSQL:
/// membership, identity fields, OS username, the regions as an array.
type RowWith<F> =
    (MembershipRow, String, Option<String>, String, Option<NaiveDateTime>, Option<String>, Option<Vec<String>>, F);

/// PostgreSQL: the member (as [`load_record`] reads it) and the caller's facts (as the guard
/// reads them), in one statement. A person's facts are scalar subqueries on their rows; a key
/// is joined by its digest, within this tenant only (a key of another tenant joins nothing,
/// and the guard then finds it for its answer).
fn load_record_with_caller(
    c: &mut diesel::PgConnection,
    tenant: &str,
    user: &str,
    caller: Caller<'_>,
) -> Result<(Option<CallerFacts>, Option<MemberRecord>), ApiError> {
    let member = m::memberships
        .inner_join(u::users)
        .left_join(os_username_here(tenant))
        .filter(m::tenant_id.eq(tenant))
        .filter(m::user_id.eq(user));
    let found = match caller {
        Caller::Member { user: caller_user, session } => {
            // The caller's rows under other names: the statement reads memberships and users already.
            let (cm, cu) =
                diesel::alias!(crate::db::schema::memberships as caller_m, crate::db::schema::users as caller_u);
            let theirs = || cm.filter(cm.field(m::tenant_id).eq(tenant)).filter(cm.field(m::user_id).eq(caller_user));
            let live = s::sessions
                .filter(s::id.eq(session))
                .filter(s::user_id.eq(caller_user))
                .filter(s::ended_at.is_null())
                .filter(s::expires_at.gt(crate::domain::now()));
            let facts = (
                theirs().select(cm.field(m::role)).single_value(),
                theirs().select(cm.field(m::status)).single_value(),
                theirs().select(cm.field(m::auth_version)).single_value(),
                cu.filter(cu.field(u::id).eq(caller_user)).select(cu.field(u::auth_version)).single_value(),
                t::tenants.filter(t::id.eq(tenant)).select(t::admins_can_manage_users).single_value(),
                exists(live),
            );
            type Facts = (Option<String>, Option<String>, Option<i32>, Option<i32>, Option<bool>, bool);
            let found = member
                .select(member_columns!(regions_array!(tenant, user), facts))
                .first::<RowWith<Facts>>(c)
                .optional()?;
            found.map(split).map(|(row, facts)| match facts {
                (Some(role), Some(status), Some(mv), Some(uv), Some(acm), live) => {
                    (row, Some(CallerFacts::Member((role, status, mv, uv, acm, live))))
                }
                _ => (row, None),
            })
        }
        Caller::Key { digest, at } => {
            let key =
                k::api_keys.on(k::tenant_id.eq(tenant).and(key_digest_is(digest, at)).and(k::revoked_at.is_null()));
            let acm = t::tenants.filter(t::id.eq(tenant)).select(t::admins_can_manage_users).single_value();
            type Facts = (Option<ApiKeyRow>, Option<bool>);
            let found = member
                .left_join(key)
                .select(member_columns!(regions_array!(tenant, user), (Option::<ApiKeyRow>::as_select(), acm)))
                .first::<RowWith<Facts>>(c)
                .optional()?;
            found.map(split).map(|(row, facts)| match facts {
                (Some(key), Some(acm)) => (row, Some(CallerFacts::Key(Box::new(key), acm))),
                _ => (row, None),
            })
        }
    };
    let Some((row, facts)) = found else { return Ok((None, None)) };
    Ok((facts, Some(row)))
}

/// A [`RowWith`] as the member's record and the caller's facts.
fn split<F>(found: RowWith<F>) -> (MemberRecord, F) {
    let (membership, email, username, full_name, locked_until, os_username, regions, facts) = found;
    // `array_agg` of no rows is NULL, and its order is the scan's: sorted here.
    let mut regions = regions.unwrap_or_default();
    regions.sort_unstable();
    (MemberRecord { membership, email, username, full_name, regions, locked_until, os_username }, facts)
}

/// Adds identity fields and regions to a page of memberships, keeping its order.
pub(super) fn hydrate(
    conn: &mut AnyConnection,
    tenant: &str,
    rows: Vec<MembershipRow>,
) -> Result<Vec<MemberRecord>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    type Identity = (String, Option<String>, String, Option<NaiveDateTime>, Option<String>);
    let mut identities: HashMap<String, Identity> = u::users
        .left_join(os_username_here(tenant))
        .filter(among(u::id, &ids))
        .select((u::id, u::email, u::username, u::full_name, u::locked_until, os::os_username.nullable()))
        .load::<(String, String, Option<String>, String, Option<NaiveDateTime>, Option<String>)>(conn)?
        .into_iter()
        .map(|(id, e, un, n, l, o)| (id, (e, un, n, l, o)))
        .collect();
    let mut regions = load_regions(conn, tenant, &ids)?;
    Ok(rows
        .into_iter()
        .map(|membership| {
            let (email, username, full_name, locked_until, os_username) =
                identities.remove(&membership.user_id).unwrap_or_default();
            let regions = regions.remove(&membership.user_id).unwrap_or_default();
            MemberRecord { membership, email, username, full_name, regions, locked_until, os_username }
        })
        .collect())
}
