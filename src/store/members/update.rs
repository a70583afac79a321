//! Changing a member: identity fields (only for an identity the tenant manages), profile,
//! manager, department and section, role and regions.

use diesel::prelude::*;

use super::invariants::{
    ensure_manager, ensure_other_owner, ensure_regions_exist, ensure_username_free, insert_regions, is_managed,
};
use super::record::{MemberRecord, load_checked, load_record};
use crate::auth::TenantContext;
use crate::auth::policy::{MemberAction, TargetFacts};
use crate::db::AnyConnection;
use crate::db::models::search_text;
use crate::db::schema::{membership_regions::dsl as mr, memberships::dsl as m, users::dsl as u};
use crate::domain::ids::parse_stored;
use crate::domain::{EmailAddress, RegionId, Role, UserId, now};
use crate::error::ApiError;
use crate::store::audit::{self, AuditEntry};

/// Changes to a member; `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct MemberPatch {
    pub email: Option<EmailAddress>,
    pub username: Option<Option<String>>,
    pub full_name: Option<String>,
    pub job_title: Option<Option<String>>,
    pub department: Option<Option<String>>,
    pub section: Option<Option<String>>,
    pub manager_id: Option<Option<UserId>>,
    pub role: Option<Role>,
    pub regions: Option<Vec<RegionId>>,
}

impl MemberPatch {
    fn touches_identity(&self) -> bool {
        self.email.is_some() || self.username.is_some() || self.full_name.is_some()
    }
    fn touches_profile(&self) -> bool {
        self.job_title.is_some() || self.department.is_some() || self.section.is_some() || self.manager_id.is_some()
    }
    fn touches_access(&self) -> bool {
        self.role.is_some() || self.regions.is_some()
    }
}

pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    patch: MemberPatch,
    if_match: Option<i32>,
) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    crate::store::tenant_write(conn, ctx, |conn| {
        let before = if patch.touches_access() {
            load_checked(conn, ctx, user, MemberAction::ChangeRoleOrRegions)?
        } else {
            load_checked(conn, ctx, user, MemberAction::EditProfile)?
        };
        let facts_regions = before.region_ids();
        let facts = TargetFacts { user_id: user, role: before.role(), regions: &facts_regions };
        if patch.touches_identity() || patch.touches_profile() {
            ctx.actor().can_member(MemberAction::EditProfile, facts).or_refuse()?;
        }
        if patch.touches_access() {
            ctx.actor().can_member(MemberAction::ChangeRoleOrRegions, facts).or_refuse()?;
            if before.role() != Role::Owner && crate::store::scim::users::directory_managed(conn, &tenant, &uid)? {
                return Err(ApiError::conflict(
                    "role-managed-by-directory",
                    "this member's role and regions come from the directory (SCIM): change their groups in Okta or Entra, or the group's role mapping (PUT .../groups/{group_id}/role-mapping)",
                ));
            }
            let role = patch.role.unwrap_or(before.role());
            let regions = patch.regions.clone().unwrap_or_else(|| before.region_ids());
            ctx.actor().require_grant(role, &regions)?;
        }
        crate::store::check_version("member", before.membership.version, if_match)?;
        let now = now();
        if patch.touches_identity() {
            if !is_managed(conn, &tenant, &uid)? {
                return Err(ApiError::forbidden(
                    "identity-not-managed",
                    "this person's sign-in identity is not managed by this tenant: email, username and name can only be changed by them",
                ));
            }
            if let Some(email) = &patch.email {
                let taken = u::users
                    .filter(u::email.eq(email.as_str()))
                    .filter(u::id.ne(&uid))
                    .count()
                    .get_result::<i64>(conn)?;
                if taken > 0 {
                    return Err(ApiError::conflict(
                        "email-taken",
                        format!("{email} is already used by another account"),
                    ));
                }
            }
            if let Some(Some(name)) = &patch.username {
                ensure_username_free(conn, name, Some(&uid))?;
            }
            let email = patch.email.as_ref().map(|e| e.as_str().to_string()).unwrap_or_else(|| before.email.clone());
            let username = patch.username.clone().unwrap_or_else(|| before.username.clone());
            let full_name = patch.full_name.clone().unwrap_or_else(|| before.full_name.clone());
            diesel::update(u::users.filter(u::id.eq(&uid)))
                .set((
                    u::email.eq(&email),
                    u::username.eq(&username),
                    u::full_name.eq(&full_name),
                    u::updated_at.eq(now),
                ))
                .execute(conn)?;
            diesel::update(m::memberships.filter(m::user_id.eq(&uid)).filter(m::tenant_id.eq(&tenant)))
                .set((
                    m::search_text.eq(search_text(&full_name, username.as_deref(), &email)),
                    m::sort_name.eq(full_name.to_lowercase()),
                    m::sort_email.eq(&email),
                ))
                .execute(conn)?;
        }
        if let Some(Some(mgr)) = &patch.manager_id {
            ensure_manager(conn, &tenant, &uid, &mgr.as_text())?;
        }
        let mut access_changed = false;
        if let Some(role) = patch.role {
            if before.role() == Role::Owner && role != Role::Owner {
                ensure_other_owner(conn, &tenant, &uid)?;
            }
            access_changed |= role != before.role();
        }
        if let Some(regions) = &patch.regions {
            ensure_regions_exist(conn, &tenant, regions)?;
            let mut new_sorted: Vec<String> = regions.iter().map(|r| r.as_text()).collect();
            new_sorted.sort();
            new_sorted.dedup();
            if new_sorted != before.regions {
                access_changed = true;
                diesel::delete(mr::membership_regions.filter(mr::tenant_id.eq(&tenant)).filter(mr::user_id.eq(&uid)))
                    .execute(conn)?;
                let parsed: Vec<RegionId> = new_sorted.iter().map(|s| parse_stored(s)).collect();
                insert_regions(conn, &tenant, &uid, &parsed)?;
            }
        }
        let department = patch.department.clone().unwrap_or_else(|| before.membership.department.clone());
        // A section belongs to its department: moving department without naming a section
        // leaves the section behind.
        let section = match &patch.section {
            Some(section) => section.clone(),
            None if department != before.membership.department => None,
            None => before.membership.section.clone(),
        };
        if patch.department.is_some() || patch.section.is_some() {
            crate::store::placement::ensure_for_member(conn, &tenant, department.as_deref(), section.as_deref())?;
        }
        let target = m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid));
        diesel::update(target)
            .set((
                m::role.eq(patch.role.unwrap_or(before.role()).as_str()),
                m::job_title.eq(patch.job_title.clone().unwrap_or_else(|| before.membership.job_title.clone())),
                m::department.eq(department),
                m::section.eq(section),
                m::manager_id.eq(patch
                    .manager_id
                    .map(|o| o.map(|id| id.as_text()))
                    .unwrap_or_else(|| before.membership.manager_id.clone())),
                m::version.eq(m::version + 1),
                m::auth_version.eq(m::auth_version + i32::from(access_changed)),
                m::updated_at.eq(now),
            ))
            .execute(conn)?;
        let after = load_record(conn, &tenant, &uid)?.ok_or_else(|| ApiError::internal("member vanished"))?;
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.updated",
                target_type: "member",
                target_id: Some(uid.clone()),
                before: Some(before.audit_state()),
                after: Some(after.audit_state()),
            },
        )?;
        Ok(after)
    })
}
