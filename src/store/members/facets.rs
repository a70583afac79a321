//! Counts over the members a caller can see: the filter sidebar's facets, and the
//! departments and sections in use (for the departments list).

use std::collections::{BTreeMap, HashMap, HashSet};

use diesel::prelude::*;

use super::query::{ListFilter, expanded_region, filtered};
use crate::auth::TenantContext;
use crate::db::AnyConnection;
use crate::db::schema::{membership_regions::dsl as mr, memberships::dsl as m, regions::dsl as r};
use crate::error::ApiError;

/// A member's department and section.
pub type Placement = (Option<String>, Option<String>);

/// The department and section of every member the caller can see.
pub fn visible_departments(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<Vec<Placement>, ApiError> {
    let backend = conn.kind();
    Ok(filtered(ctx, &ListFilter::everything(), None, backend).select((m::department, m::section)).load(conn)?)
}

/// Counts for a filter sidebar: the members `f` matches under the caller's scope, by role,
/// status, department and region (sort, cursor and limit are ignored).
#[derive(Debug, Default)]
pub struct Facets {
    pub total: i64,
    pub roles: Vec<(String, i64)>,
    pub statuses: Vec<(String, i64)>,
    pub departments: Vec<(Option<String>, i64)>,
    /// Region id, name, members in it or its sub-regions (what `region=<id>` lists).
    pub regions: Vec<(String, String, i64)>,
}

pub fn facets(conn: &mut AnyConnection, ctx: &TenantContext, f: &ListFilter) -> Result<Facets, ApiError> {
    let tenant = ctx.tenant_text();
    let backend = conn.kind();
    let region_set = expanded_region(conn, &tenant, f)?;
    // One pass over the matches (a boxed query cannot be grouped on every backend), counted here.
    let rows: Vec<(String, String, String, Option<String>)> =
        filtered(ctx, f, region_set, backend).select((m::user_id, m::role, m::status, m::department)).load(conn)?;
    let mut roles: BTreeMap<String, i64> = BTreeMap::new();
    let mut statuses: BTreeMap<String, i64> = BTreeMap::new();
    let mut departments: BTreeMap<Option<String>, i64> = BTreeMap::new();
    let mut ids: HashSet<String> = HashSet::with_capacity(rows.len());
    for (id, role, status, department) in rows {
        *roles.entry(role).or_default() += 1;
        *statuses.entry(status).or_default() += 1;
        *departments.entry(department).or_default() += 1;
        ids.insert(id);
    }
    let links: Vec<(String, String)> =
        mr::membership_regions.filter(mr::tenant_id.eq(&tenant)).select((mr::user_id, mr::region_id)).load(conn)?;
    let tree: Vec<(String, String, Option<String>)> =
        r::regions.filter(r::tenant_id.eq(&tenant)).select((r::id, r::name, r::parent_id)).load(conn)?;
    let regions = region_counts(&links, &tree, &ids);
    Ok(Facets {
        total: ids.len() as i64,
        roles: roles.into_iter().collect(),
        statuses: statuses.into_iter().collect(),
        departments: departments.into_iter().collect(),
        regions,
    })
}

/// Members of `ids` per region (id, name, count; by name), counted as the `region` filter
/// lists them: a region counts the members in it or in any region below it, each once.
/// `links` are (member, region) pairs, `tree` the tenant's regions as (id, name, parent).
fn region_counts(
    links: &[(String, String)],
    tree: &[(String, String, Option<String>)],
    ids: &HashSet<String>,
) -> Vec<(String, String, i64)> {
    let parents: HashMap<&str, &str> =
        tree.iter().filter_map(|(id, _, parent)| parent.as_deref().map(|p| (id.as_str(), p))).collect();
    // Every member's regions and all the regions above them.
    let mut reached: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (user, region) in links.iter().filter(|(user, _)| ids.contains(user)) {
        let seen = reached.entry(user.as_str()).or_default();
        let mut at = Some(region.as_str());
        while let Some(id) = at.filter(|id| seen.insert(id)) {
            at = parents.get(id).copied();
        }
    }
    let mut per_region: HashMap<&str, i64> = HashMap::new();
    for region in reached.into_values().flatten() {
        *per_region.entry(region).or_default() += 1;
    }
    let mut out: Vec<(String, String, i64)> = tree
        .iter()
        .filter_map(|(id, name, _)| per_region.get(id.as_str()).map(|n| (id.clone(), name.clone(), *n)))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    out
}
