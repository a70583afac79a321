//! What every write to members keeps true, checked inside its transaction: seats, regions
//! that exist, a manager chain without cycles, unique usernames, an identity managed by the
//! tenant before its credentials change, and at least one active owner.

use diesel::prelude::*;

use crate::db::AnyConnection;
use crate::db::schema::{
    invitations::dsl as i, membership_regions::dsl as mr, memberships::dsl as m, regions::dsl as r, tenants::dsl as t,
    users::dsl as u,
};
use crate::domain::{MemberStatus, Plan, RegionId, Role, now};
use crate::error::ApiError;

pub(in crate::store) fn seat_limit(conn: &mut AnyConnection, tenant: &str) -> Result<Option<i64>, ApiError> {
    let (plan, over) = t::tenants
        .filter(t::id.eq(tenant))
        .select((t::plan, t::seat_limit_override))
        .first::<(String, Option<i32>)>(conn)?;
    Ok(limit_of(&plan, over).map(i64::from))
}

/// The seat limit of a plan with the tenant's override, if any (`None`: no limit).
pub(in crate::store) fn limit_of(plan: &str, seat_limit_override: Option<i32>) -> Option<i32> {
    seat_limit_override.or_else(|| Plan::parse(plan).and_then(Plan::default_seats))
}

/// Seats taken: members whose status holds one, and invitations still open.
pub(in crate::store) fn seats_used(conn: &mut AnyConnection, tenant: &str) -> Result<i64, ApiError> {
    let taking: Vec<&str> = MemberStatus::ALL.iter().filter(|s| s.takes_seat()).map(|s| s.as_str()).collect();
    let members: i64 =
        m::memberships.filter(m::tenant_id.eq(tenant)).filter(m::status.eq_any(taking)).count().get_result(conn)?;
    // Invitations hold one each while pending and not run out.
    let invited: i64 = i::invitations
        .filter(i::tenant_id.eq(tenant))
        .filter(i::status.eq("pending"))
        .filter(i::expires_at.gt(now()))
        .count()
        .get_result(conn)?;
    Ok(members + invited)
}

pub(in crate::store) fn ensure_seat(conn: &mut AnyConnection, tenant: &str) -> Result<(), ApiError> {
    let limit = seat_limit(conn, tenant)?;
    ensure_seat_within(conn, tenant, limit)
}

/// [`ensure_seat`] with the tenant's seat limit already read (in this transaction, under its lock).
pub(in crate::store) fn ensure_seat_within(
    conn: &mut AnyConnection,
    tenant: &str,
    limit: Option<i64>,
) -> Result<(), ApiError> {
    if let Some(limit) = limit {
        let used = seats_used(conn, tenant)?;
        if used >= limit {
            return Err(ApiError::conflict(
                "seat-limit-reached",
                format!(
                    "all {limit} seats of this tenant's plan are taken (open invitations hold one each); disable or delete a member, revoke an invitation, or upgrade the plan"
                ),
            ));
        }
    }
    Ok(())
}

pub(in crate::store) fn ensure_regions_exist(
    conn: &mut AnyConnection,
    tenant: &str,
    regions: &[RegionId],
) -> Result<(), ApiError> {
    if regions.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = regions.iter().map(|r| r.as_text()).collect();
    let found: Vec<String> =
        r::regions.filter(r::tenant_id.eq(tenant)).filter(r::id.eq_any(&ids)).select(r::id).load(conn)?;
    if let Some((i, missing)) = ids.iter().enumerate().find(|(_, id)| !found.contains(id)) {
        return Err(ApiError::invalid(
            format!("regions[{i}]"),
            format!("region {missing} does not exist in this tenant"),
        ));
    }
    Ok(())
}

/// The manager must be another member of the tenant, and the chain above it must not reach
/// `member` (no cycles).
pub(in crate::store) fn ensure_manager(
    conn: &mut AnyConnection,
    tenant: &str,
    member: &str,
    manager: &str,
) -> Result<(), ApiError> {
    if manager == member {
        return Err(ApiError::invalid("manager_id", "a member cannot be their own manager"));
    }
    let mut current = Some(manager.to_string());
    let mut hops = 0;
    while let Some(id) = current {
        let row = m::memberships
            .filter(m::tenant_id.eq(tenant))
            .filter(m::user_id.eq(&id))
            .select(m::manager_id)
            .first::<Option<String>>(conn)
            .optional()?;
        let Some(next) = row else {
            return Err(ApiError::invalid("manager_id", format!("member {manager} does not exist in this tenant")));
        };
        if next.as_deref() == Some(member) {
            return Err(ApiError::invalid("manager_id", "this manager would create a reporting cycle"));
        }
        hops += 1;
        if hops > 10_000 {
            return Err(ApiError::invalid("manager_id", "the reporting chain is too deep"));
        }
        current = next;
    }
    Ok(())
}

pub(in crate::store) fn ensure_username_free(
    conn: &mut AnyConnection,
    username: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let holder = u::users.filter(u::username.eq(username)).select(u::id).first::<String>(conn).optional()?;
    match holder {
        Some(id) if Some(id.as_str()) != except => {
            Err(ApiError::conflict("username-taken", format!("the username {username:?} is already taken")))
        }
        _ => Ok(()),
    }
}

pub(in crate::store) fn insert_regions(
    conn: &mut AnyConnection,
    tenant: &str,
    user: &str,
    regions: &[RegionId],
) -> Result<(), ApiError> {
    for region in regions {
        diesel::insert_into(mr::membership_regions)
            .values((mr::tenant_id.eq(tenant), mr::user_id.eq(user), mr::region_id.eq(region.as_text())))
            .execute(conn)?;
    }
    Ok(())
}

/// Whether this tenant manages the identity: it created it and it belongs nowhere else.
pub(in crate::store) fn is_managed(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<bool, ApiError> {
    let home = u::users.filter(u::id.eq(user)).select(u::home_tenant_id).first::<Option<String>>(conn)?;
    if home.as_deref() != Some(tenant) {
        return Ok(false);
    }
    let elsewhere =
        m::memberships.filter(m::user_id.eq(user)).filter(m::tenant_id.ne(tenant)).count().get_result::<i64>(conn)?;
    Ok(elsewhere == 0)
}

/// Refuses a change that would leave the tenant without an active owner.
pub(super) fn ensure_other_owner(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<(), ApiError> {
    let others = m::memberships
        .filter(m::tenant_id.eq(tenant))
        .filter(m::role.eq(Role::Owner.as_str()))
        .filter(m::status.eq(MemberStatus::Active.as_str()))
        .filter(m::user_id.ne(user))
        .count()
        .get_result::<i64>(conn)?;
    if others == 0 {
        return Err(ApiError::conflict("last-owner", "the tenant must keep at least one active owner"));
    }
    Ok(())
}
