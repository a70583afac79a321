//! Directory groups as the REST API shows them (DESIGN.md section 12): list and read them
//! with their member counts and role mappings, list a group's members under the caller's
//! visibility, map a group to a role and regions, and set the tenant's SCIM default role and
//! regions. The directory writes the groups themselves over SCIM (`store::scim::groups`); this
//! module never adds or removes a group or a member of one.
//!
//! A mapping or a default changes the role of directory-managed members: the write and
//! `scim::roles::apply` on every member it touches run in one transaction, the members read in
//! chunks (a group of 10,000 is never one statement's worth of ids), and the change is audited.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::{Value, json};

use super::audit::{self, AuditEntry};
use super::scim::groups::GroupRow;
use super::scim::roles;
use crate::auth::TenantContext;
use crate::auth::policy::TenantAction;
use crate::db::among::among;
use crate::db::schema::{
    group_members::dsl as gm, group_role_mappings::dsl as grm, group_role_regions::dsl as grr, groups::dsl as g,
    memberships::dsl as m, scim_default_regions::dsl as sdr, scim_settings::dsl as ss, scim_users::dsl as su,
    users::dsl as u,
};
use crate::db::{AnyConnection, escape_like};
use crate::domain::{GroupId, RegionId, Role, now};
use crate::error::{ApiError, FieldError};

/// Members read per statement when a change reaches every member of a group or the tenant.
const CHUNK: i64 = 500;

/// The role (admin, operator or viewer, never owner) and regions a mapping or default gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleGrant {
    pub role: Role,
    /// Region ids in their stored form, sorted, without repeats.
    pub regions: Vec<String>,
}

impl RoleGrant {
    /// A grant to write; 422 for `owner` (the directory never makes owners) and repeats
    /// removed. Whether the regions exist is checked on write.
    pub fn new(role: Role, regions: &[RegionId]) -> Result<Self, ApiError> {
        if role == Role::Owner {
            return Err(ApiError::invalid("role", "the directory never makes owners: admin, operator or viewer"));
        }
        let regions: BTreeSet<String> = regions.iter().map(|r| r.as_text()).collect();
        Ok(RoleGrant { role, regions: regions.into_iter().collect() })
    }

    fn state(&self) -> Value {
        json!({"role": self.role.as_str(), "regions": self.regions})
    }
}

/// A group with what the REST API shows beside its row.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    pub row: GroupRow,
    /// All its members, whoever may see them.
    pub member_count: i64,
    pub role_mapping: Option<RoleGrant>,
}

/// A member of a group, as a group's member list shows it.
#[derive(Debug, Clone)]
pub struct GroupMember {
    pub user_id: String,
    pub email: String,
    pub full_name: String,
    pub role: String,
    pub status: String,
}

/// The tenant's SCIM settings: the grant of directory-managed members in no mapped group.
#[derive(Debug, Clone)]
pub struct ScimSettings {
    pub defaults: RoleGrant,
    /// 0 until an owner first sets them (the defaults are then viewer, no regions).
    pub version: i32,
    pub updated_at: Option<NaiveDateTime>,
}

fn not_found() -> ApiError {
    ApiError::not_found("group not found")
}

fn load_row(conn: &mut AnyConnection, tenant: &str, id: GroupId) -> Result<GroupRow, ApiError> {
    g::groups
        .filter(g::tenant_id.eq(tenant))
        .filter(g::id.eq(id.as_text()))
        .first::<GroupRow>(conn)
        .optional()?
        .ok_or_else(not_found)
}

/// Member counts and role mappings of `rows`, in three statements whatever their number.
fn records(conn: &mut AnyConnection, tenant: &str, rows: Vec<GroupRow>) -> Result<Vec<GroupRecord>, ApiError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let counts: HashMap<String, i64> = gm::group_members
        .filter(gm::tenant_id.eq(tenant))
        .filter(among(gm::group_id, &ids))
        .group_by(gm::group_id)
        .select((gm::group_id, diesel::dsl::count_star()))
        .load::<(String, i64)>(conn)?
        .into_iter()
        .collect();
    let roles: Vec<(String, String)> = grm::group_role_mappings
        .filter(grm::tenant_id.eq(tenant))
        .filter(among(grm::group_id, &ids))
        .select((grm::group_id, grm::role))
        .load(conn)?;
    let mut regions: HashMap<String, Vec<String>> = HashMap::new();
    if !roles.is_empty() {
        let rows: Vec<(String, String)> = grr::group_role_regions
            .filter(grr::tenant_id.eq(tenant))
            .filter(among(grr::group_id, &ids))
            .order(grr::region_id)
            .select((grr::group_id, grr::region_id))
            .load(conn)?;
        for (group, region) in rows {
            regions.entry(group).or_default().push(region);
        }
    }
    let mut mappings: HashMap<String, RoleGrant> = roles
        .into_iter()
        .map(|(group, role)| {
            let grant = RoleGrant {
                role: Role::parse(&role).unwrap_or(Role::Viewer),
                regions: regions.remove(&group).unwrap_or_default(),
            };
            (group, grant)
        })
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| GroupRecord {
            member_count: counts.get(&row.id).copied().unwrap_or(0),
            role_mapping: mappings.remove(&row.id),
            row,
        })
        .collect())
}

fn record(conn: &mut AnyConnection, tenant: &str, id: GroupId) -> Result<GroupRecord, ApiError> {
    let row = load_row(conn, tenant, id)?;
    records(conn, tenant, vec![row])?.pop().ok_or_else(not_found)
}

/// A page of the tenant's groups by display name (case-insensitive), optionally those whose
/// name contains `q`; with the total. The cursor is the last group's `(name key, id)`.
pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    q: Option<&str>,
    after: Option<(String, String)>,
    limit: i64,
) -> Result<(Vec<GroupRecord>, Option<String>, i64), ApiError> {
    ctx.actor().require(TenantAction::ReadGroups)?;
    let tenant = ctx.tenant_text();
    let pattern = q.map(str::trim).filter(|q| !q.is_empty()).map(|q| format!("%{}%", escape_like(&q.to_lowercase())));
    let build = || {
        let mut query = g::groups.filter(g::tenant_id.eq(tenant.clone())).into_boxed();
        if let Some(p) = &pattern {
            query = query.filter(g::display_name_key.like(p.clone()).escape('\\'));
        }
        query
    };
    let total: i64 = build().count().get_result(conn)?;
    let mut query = build();
    if let Some((key, id)) = after {
        query = query.filter(g::display_name_key.gt(key.clone()).or(g::display_name_key.eq(key).and(g::id.gt(id))));
    }
    let rows: Vec<GroupRow> = query.order((g::display_name_key, g::id)).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<GroupRow> = rows.into_iter().take(limit as usize).collect();
    let next = if more { page.last().map(|r| super::cursor::encode(&r.display_name_key, &r.id)) } else { None };
    Ok((records(conn, &tenant, page)?, next, total))
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, id: GroupId) -> Result<GroupRecord, ApiError> {
    ctx.actor().require(TenantAction::ReadGroups)?;
    record(conn, &ctx.tenant_text(), id)
}

/// A page of a group's members that the caller sees (an admin limited to regions: those in
/// their regions, as in the member list), by id; with how many the caller sees in all.
pub fn members(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: GroupId,
    after: Option<String>,
    limit: i64,
) -> Result<(Vec<GroupMember>, Option<String>, i64), ApiError> {
    ctx.actor().require(TenantAction::ReadGroups)?;
    let tenant = ctx.tenant_text();
    load_row(conn, &tenant, id)?;
    let build = || {
        let in_group = gm::group_members
            .filter(gm::tenant_id.eq(tenant.clone()))
            .filter(gm::group_id.eq(id.as_text()))
            .select(gm::user_id);
        let all = m::memberships.filter(m::tenant_id.eq(tenant.clone())).filter(m::user_id.eq_any(in_group));
        super::members::visible_only(ctx, all.into_boxed())
    };
    let total: i64 = build().count().get_result(conn)?;
    let mut query = build();
    if let Some(after) = after {
        query = query.filter(m::user_id.gt(after));
    }
    let rows: Vec<(String, String, String)> =
        query.order(m::user_id).limit(limit + 1).select((m::user_id, m::role, m::status)).load(conn)?;
    let more = rows.len() as i64 > limit;
    let page: Vec<(String, String, String)> = rows.into_iter().take(limit as usize).collect();
    let ids: Vec<&str> = page.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut people: HashMap<String, (String, String)> = u::users
        .filter(among(u::id, &ids))
        .select((u::id, u::email, u::full_name))
        .load::<(String, String, String)>(conn)?
        .into_iter()
        .map(|(id, email, name)| (id, (email, name)))
        .collect();
    let next = if more { page.last().map(|(id, _, _)| id.clone()) } else { None };
    let items = page
        .into_iter()
        .map(|(user_id, role, status)| {
            let (email, full_name) = people.remove(&user_id).unwrap_or_default();
            GroupMember { user_id, email, full_name, role, status }
        })
        .collect();
    Ok((items, next, total))
}

/// 422 naming `field[i]` unless every region of `grant` is one of this tenant's.
fn check_regions(conn: &mut AnyConnection, tenant: &str, grant: &RoleGrant, field: &str) -> Result<(), ApiError> {
    let regions: Vec<RegionId> = grant.regions.iter().map(|r| crate::domain::ids::parse_stored(r)).collect();
    super::members::ensure_regions_exist(conn, tenant, &regions).map_err(|e| match e {
        ApiError::Validation(errors) => ApiError::Validation(
            errors.into_iter().map(|e| FieldError::new(e.field.replacen("regions", field, 1), e.message)).collect(),
        ),
        other => other,
    })
}

/// Calls `roles::apply` on the ids `next_chunk(after)` hands out, chunk after chunk, until
/// it hands out none; returns how many members changed.
fn apply_in_chunks(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    mut next_chunk: impl FnMut(&mut AnyConnection, &str) -> Result<Vec<String>, ApiError>,
) -> Result<usize, ApiError> {
    let mut after = String::new();
    let mut changed = 0;
    loop {
        let chunk = next_chunk(conn, &after)?;
        let Some(last) = chunk.last() else { return Ok(changed) };
        after = last.clone();
        changed += roles::apply(conn, ctx, &chunk)?;
        if (chunk.len() as i64) < CHUNK {
            return Ok(changed);
        }
    }
}

/// Sets (`Some`) or removes (`None`) a group's role mapping, and gives its directory-managed
/// members the role and regions their groups now say, in one transaction. The group's
/// version counts the change; writing the mapping it already has changes nothing.
pub fn set_role_mapping(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    id: GroupId,
    mapping: Option<RoleGrant>,
    if_match: Option<i32>,
) -> Result<GroupRecord, ApiError> {
    ctx.actor().require(TenantAction::MapGroupRoles)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = record(conn, &tenant, id)?;
        super::check_version("group", before.row.version, if_match)?;
        if let Some(grant) = &mapping {
            check_regions(conn, &tenant, grant, "regions")?;
        }
        if before.role_mapping == mapping {
            return Ok(before);
        }
        let group = id.as_text();
        diesel::delete(grr::group_role_regions.filter(grr::tenant_id.eq(&tenant)).filter(grr::group_id.eq(&group)))
            .execute(conn)?;
        diesel::delete(grm::group_role_mappings.filter(grm::tenant_id.eq(&tenant)).filter(grm::group_id.eq(&group)))
            .execute(conn)?;
        if let Some(grant) = &mapping {
            diesel::insert_into(grm::group_role_mappings)
                .values((grm::tenant_id.eq(&tenant), grm::group_id.eq(&group), grm::role.eq(grant.role.as_str())))
                .execute(conn)?;
            for region in &grant.regions {
                diesel::insert_into(grr::group_role_regions)
                    .values((grr::tenant_id.eq(&tenant), grr::group_id.eq(&group), grr::region_id.eq(region)))
                    .execute(conn)?;
            }
        }
        diesel::update(g::groups.filter(g::tenant_id.eq(&tenant)).filter(g::id.eq(&group)))
            .set((g::version.eq(g::version + 1), g::updated_at.eq(now())))
            .execute(conn)?;
        let changed = apply_in_chunks(conn, ctx, |conn, after| {
            Ok(gm::group_members
                .filter(gm::tenant_id.eq(&tenant))
                .filter(gm::group_id.eq(&group))
                .filter(gm::user_id.gt(after))
                .order(gm::user_id)
                .limit(CHUNK)
                .select(gm::user_id)
                .load(conn)?)
        })?;
        let state = |grant: &Option<RoleGrant>| json!({"display_name": before.row.display_name, "role_mapping": grant.as_ref().map(RoleGrant::state)});
        let mut after = state(&mapping);
        after["members_changed"] = json!(changed);
        let entry = AuditEntry {
            action: "group.role_mapping_changed",
            target_type: "group",
            target_id: Some(group),
            before: Some(state(&before.role_mapping)),
            after: Some(after),
        };
        audit::record(conn, ctx, entry)?;
        record(conn, &tenant, id)
    })
}

fn settings(conn: &mut AnyConnection, tenant: &str) -> Result<ScimSettings, ApiError> {
    let (role, regions) = roles::defaults(conn, tenant)?;
    let row: Option<(i32, NaiveDateTime)> = ss::scim_settings
        .filter(ss::tenant_id.eq(tenant))
        .select((ss::version, ss::updated_at))
        .first(conn)
        .optional()?;
    Ok(ScimSettings {
        defaults: RoleGrant { role, regions },
        version: row.map_or(0, |(v, _)| v),
        updated_at: row.map(|(_, at)| at),
    })
}

pub fn scim_settings(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<ScimSettings, ApiError> {
    ctx.actor().require(TenantAction::ReadGroups)?;
    settings(conn, &ctx.tenant_text())
}

/// Sets the role and regions of directory-managed members in no mapped group, and gives every
/// directory-managed member what their groups or the new defaults say, in one transaction.
pub fn update_scim_settings(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    defaults: RoleGrant,
    if_match: Option<i32>,
) -> Result<ScimSettings, ApiError> {
    ctx.actor().require(TenantAction::MapGroupRoles)?;
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = settings(conn, &tenant)?;
        super::check_version("SCIM settings", before.version, if_match)?;
        check_regions(conn, &tenant, &defaults, "default_regions")?;
        if before.defaults == defaults && before.version > 0 {
            return Ok(before);
        }
        let at = now();
        if before.version == 0 {
            diesel::insert_into(ss::scim_settings)
                .values((
                    ss::tenant_id.eq(&tenant),
                    ss::default_role.eq(defaults.role.as_str()),
                    ss::version.eq(1),
                    ss::updated_at.eq(at),
                ))
                .execute(conn)?;
        } else {
            diesel::update(ss::scim_settings.filter(ss::tenant_id.eq(&tenant)))
                .set((
                    ss::default_role.eq(defaults.role.as_str()),
                    ss::version.eq(ss::version + 1),
                    ss::updated_at.eq(at),
                ))
                .execute(conn)?;
        }
        diesel::delete(sdr::scim_default_regions.filter(sdr::tenant_id.eq(&tenant))).execute(conn)?;
        for region in &defaults.regions {
            diesel::insert_into(sdr::scim_default_regions)
                .values((sdr::tenant_id.eq(&tenant), sdr::region_id.eq(region)))
                .execute(conn)?;
        }
        let changed = apply_in_chunks(conn, ctx, |conn, after| {
            Ok(su::scim_users
                .filter(su::tenant_id.eq(&tenant))
                .filter(su::user_id.gt(after))
                .order(su::user_id)
                .limit(CHUNK)
                .select(su::user_id)
                .load(conn)?)
        })?;
        let mut after = defaults.state();
        after["members_changed"] = json!(changed);
        let entry = AuditEntry {
            action: "scim_settings.updated",
            target_type: "scim_settings",
            target_id: Some(tenant.clone()),
            before: Some(before.defaults.state()),
            after: Some(after),
        };
        audit::record(conn, ctx, entry)?;
        settings(conn, &tenant)
    })
}
