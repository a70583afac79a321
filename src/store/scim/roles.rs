//! Roles from directory groups (DESIGN.md section 12): a directory-managed member (one SCIM
//! has written; never an owner) has the highest role mapped to any group they are in and the
//! union of those groups' regions, or the tenant's SCIM default role and regions when they are
//! in no mapped group. Whatever changes a mapping, a group's members or the defaults calls
//! [`apply`] on the members it touches, in the same transaction; a changed role or region set
//! bumps the membership's auth version (their tokens stop working, as for any role change) and
//! is audited as `member.updated` (its event is `member.role_changed`).

use std::collections::{BTreeSet, HashMap};

use diesel::prelude::*;

use crate::auth::TenantContext;
use crate::db::AnyConnection;
use crate::db::among::among;
use crate::db::schema::{
    group_members::dsl as gm, group_role_mappings::dsl as grm, group_role_regions::dsl as grr,
    membership_regions::dsl as mr, memberships::dsl as m, scim_default_regions::dsl as sdr, scim_settings::dsl as ss,
    scim_users::dsl as su,
};
use crate::domain::ids::parse_stored;
use crate::domain::{RegionId, Role, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditEntry};

/// How many members one round of [`apply`] reads at a time.
const CHUNK: usize = 500;

/// The role and regions of a directory-managed member in no mapped group.
pub fn defaults(conn: &mut AnyConnection, tenant: &str) -> Result<(Role, Vec<String>), ApiError> {
    let role = ss::scim_settings
        .filter(ss::tenant_id.eq(tenant))
        .select(ss::default_role)
        .first::<String>(conn)
        .optional()?
        .and_then(|r| Role::parse(&r))
        .unwrap_or(Role::Viewer);
    let mut regions: Vec<String> =
        sdr::scim_default_regions.filter(sdr::tenant_id.eq(tenant)).select(sdr::region_id).load(conn)?;
    regions.sort();
    Ok((role, regions))
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Owner => 4,
        Role::Admin => 3,
        Role::Operator => 2,
        Role::Viewer => 1,
    }
}

/// What each of `users` should have, from their mapped groups or the defaults.
fn desired(
    conn: &mut AnyConnection,
    tenant: &str,
    users: &[String],
) -> Result<HashMap<String, (Role, Vec<String>)>, ApiError> {
    let defaults = defaults(conn, tenant)?;
    let mapped: Vec<(String, String, String)> = gm::group_members
        .inner_join(grm::group_role_mappings.on(grm::tenant_id.eq(gm::tenant_id).and(grm::group_id.eq(gm::group_id))))
        .filter(gm::tenant_id.eq(tenant))
        .filter(among(gm::user_id, users))
        .select((gm::user_id, gm::group_id, grm::role))
        .load(conn)?;
    let groups: BTreeSet<&str> = mapped.iter().map(|(_, g, _)| g.as_str()).collect();
    let groups: Vec<&str> = groups.into_iter().collect();
    let mut group_regions: HashMap<String, Vec<String>> = HashMap::new();
    if !groups.is_empty() {
        let rows: Vec<(String, String)> = grr::group_role_regions
            .filter(grr::tenant_id.eq(tenant))
            .filter(among(grr::group_id, &groups))
            .select((grr::group_id, grr::region_id))
            .load(conn)?;
        for (g, r) in rows {
            group_regions.entry(g).or_default().push(r);
        }
    }
    let mut out: HashMap<String, (Role, BTreeSet<String>)> = HashMap::new();
    for (user, group, role) in &mapped {
        let role = Role::parse(role).unwrap_or(Role::Viewer);
        let entry = out.entry(user.clone()).or_insert((role, BTreeSet::new()));
        if rank(role) > rank(entry.0) {
            entry.0 = role;
        }
        entry.1.extend(group_regions.get(group).into_iter().flatten().cloned());
    }
    Ok(users
        .iter()
        .map(|u| {
            let value = match out.remove(u) {
                Some((role, regions)) => (role, regions.into_iter().collect()),
                None => defaults.clone(),
            };
            (u.clone(), value)
        })
        .collect())
}

/// Brings the role and regions of the directory-managed members among `users` to what their
/// groups say; others (not directory-managed, or owners) are left alone. Returns how many
/// changed.
pub fn apply(conn: &mut AnyConnection, ctx: &TenantContext, users: &[String]) -> Result<usize, ApiError> {
    let tenant = ctx.tenant_text();
    let mut changed = 0;
    for chunk in users.chunks(CHUNK) {
        let managed: Vec<(String, String)> = m::memberships
            .inner_join(su::scim_users.on(su::tenant_id.eq(m::tenant_id).and(su::user_id.eq(m::user_id))))
            .filter(m::tenant_id.eq(&tenant))
            .filter(among(m::user_id, chunk))
            .filter(m::role.ne(Role::Owner.as_str()))
            .select((m::user_id, m::role))
            .load(conn)?;
        if managed.is_empty() {
            continue;
        }
        let ids: Vec<String> = managed.iter().map(|(u, _)| u.clone()).collect();
        let want = desired(conn, &tenant, &ids)?;
        let mut current: HashMap<String, Vec<String>> = HashMap::new();
        for (u, r) in mr::membership_regions
            .filter(mr::tenant_id.eq(&tenant))
            .filter(among(mr::user_id, &ids))
            .select((mr::user_id, mr::region_id))
            .load::<(String, String)>(conn)?
        {
            current.entry(u).or_default().push(r);
        }
        for (user, role) in managed {
            let Some((new_role, new_regions)) = want.get(&user) else { continue };
            let mut old_regions = current.remove(&user).unwrap_or_default();
            old_regions.sort();
            if role == new_role.as_str() && &old_regions == new_regions {
                continue;
            }
            let before = crate::store::members::event_object(conn, &tenant, &user)?;
            diesel::delete(mr::membership_regions.filter(mr::tenant_id.eq(&tenant)).filter(mr::user_id.eq(&user)))
                .execute(conn)?;
            let regions: Vec<RegionId> = new_regions.iter().map(|r| parse_stored(r)).collect();
            crate::store::members::insert_regions(conn, &tenant, &user, &regions)?;
            diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&user)))
                .set((
                    m::role.eq(new_role.as_str()),
                    m::version.eq(m::version + 1),
                    m::auth_version.eq(m::auth_version + 1),
                    m::updated_at.eq(now()),
                ))
                .execute(conn)?;
            let after = crate::store::members::event_object(conn, &tenant, &user)?;
            audit::record(
                conn,
                ctx,
                AuditEntry {
                    action: "member.updated",
                    target_type: "member",
                    target_id: Some(user.clone()),
                    before,
                    after,
                },
            )?;
            changed += 1;
        }
    }
    Ok(changed)
}
