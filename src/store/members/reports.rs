//! A manager's reports, direct or all the way down, narrowed to what the caller may see.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::record::{MemberRecord, hydrate, load_checked};
use crate::auth::TenantContext;
use crate::auth::policy::{Decision, MemberAction, TargetFacts};
use crate::db::AnyConnection;
use crate::db::models::MembershipRow;
use crate::db::schema::memberships::dsl as m;
use crate::domain::UserId;
use crate::error::ApiError;

/// Whom `manager` manages: direct reports, or with `all` everyone below them, each with their
/// depth (1: direct), ordered by depth then name; only members the caller can see.
pub fn reports(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    manager: UserId,
    all: bool,
) -> Result<Vec<(MemberRecord, i32)>, ApiError> {
    let tenant = ctx.tenant_text();
    load_checked(conn, ctx, manager, MemberAction::Read)?;
    let mut seen: HashSet<String> = HashSet::from([manager.as_text()]);
    let mut frontier = vec![manager.as_text()];
    let mut found: Vec<(MembershipRow, i32)> = Vec::new();
    let mut depth = 1;
    while !frontier.is_empty() {
        let rows: Vec<MembershipRow> = m::memberships
            .filter(m::tenant_id.eq(&tenant))
            .filter(m::manager_id.eq_any(&frontier))
            .select(MembershipRow::as_select())
            .load(conn)?;
        frontier = Vec::new();
        for row in rows {
            if seen.insert(row.user_id.clone()) {
                frontier.push(row.user_id.clone());
                found.push((row, depth));
            }
        }
        if !all {
            break;
        }
        depth += 1;
    }
    let depths: HashMap<String, i32> = found.iter().map(|(r, d)| (r.user_id.clone(), *d)).collect();
    let records = hydrate(conn, &tenant, found.into_iter().map(|(r, _)| r).collect())?;
    let actor = ctx.actor();
    let mut out: Vec<(MemberRecord, i32)> = records
        .into_iter()
        .filter(|rec| {
            let regions = rec.region_ids();
            let facts = TargetFacts { user_id: rec.user_id(), role: rec.role(), regions: &regions };
            actor.can_member(MemberAction::Read, facts) == Decision::Allow
        })
        .map(|rec| {
            let d = depths.get(&rec.membership.user_id).copied().unwrap_or(1);
            (rec, d)
        })
        .collect();
    out.sort_by(|a, b| {
        (a.1, &a.0.membership.sort_name, &a.0.membership.user_id).cmp(&(
            b.1,
            &b.0.membership.sort_name,
            &b.0.membership.user_id,
        ))
    });
    Ok(out)
}
