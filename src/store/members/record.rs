//! The member record (a membership with the identity fields and regions it shows) and how
//! it is loaded: one member, checked against the policy for an action, or a page of them.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use crate::auth::TenantContext;
use crate::auth::policy::{MemberAction, TargetFacts};
use crate::db::AnyConnection;
use crate::db::among::among;
use crate::db::models::MembershipRow;
use crate::db::schema::{
    member_os_usernames::dsl as os, membership_regions::dsl as mr, memberships::dsl as m, users::dsl as u,
};
use crate::domain::ids::parse_stored;
use crate::domain::{RegionId, Role, UserId};
use crate::error::ApiError;

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

pub(in crate::store) fn load_record(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
) -> Result<Option<MemberRecord>, ApiError> {
    let row = m::memberships
        .inner_join(u::users)
        .left_join(os_username_here(tenant))
        .filter(m::tenant_id.eq(tenant))
        .filter(m::user_id.eq(user))
        .select((
            MembershipRow::as_select(),
            u::email,
            u::username,
            u::full_name,
            u::locked_until,
            os::os_username.nullable(),
        ))
        .first::<(MembershipRow, String, Option<String>, String, Option<NaiveDateTime>, Option<String>)>(conn)
        .optional()?;
    let Some((membership, email, username, full_name, locked_until, os_username)) = row else { return Ok(None) };
    // One member: a fixed-shape query, so its prepared statement is cached.
    let regions = mr::membership_regions
        .filter(mr::tenant_id.eq(tenant))
        .filter(mr::user_id.eq(&membership.user_id))
        .select(mr::region_id)
        .order(mr::region_id)
        .load::<String>(conn)?;
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
    let rec = load_record(conn, &ctx.tenant_text(), &user.as_text())?
        .ok_or_else(|| ApiError::not_found("member not found"))?;
    let regions = rec.region_ids();
    ctx.actor().can_member(action, TargetFacts { user_id: user, role: rec.role(), regions: &regions }).or_refuse()?;
    Ok(rec)
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    load_checked(conn, ctx, user, MemberAction::Read)
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
