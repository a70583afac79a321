//! Pages of the member list: keyset paging in the database for plain lists, and for searches
//! a page cut from the ordered matches; what is kept between requests goes through
//! `list_cache` (see there).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::list_cache::{ListCache, ListKey, SortVal, Versions};
use super::query::{ListFilter, SortKey, coalesce, expanded_region, filtered, needle};
use super::record::{MemberRecord, hydrate};
use crate::auth::TenantContext;
use crate::auth::policy::MemberVisibility;
use crate::db::AnyConnection;
use crate::db::among::among;
use crate::db::models::MembershipRow;
use crate::db::schema::memberships::dsl as m;
use crate::error::ApiError;
use crate::store::cursor;

/// Applies keyset position and order for one sort column expression.
macro_rules! keyset {
    ($q:expr, $col:expr, $after:expr, $desc:expr) => {{
        let mut q = $q;
        if let Some((key, id)) = $after {
            q = if $desc {
                q.filter($col.lt(key.clone()).or($col.eq(key).and(m::user_id.lt(id))))
            } else {
                q.filter($col.gt(key.clone()).or($col.eq(key).and(m::user_id.gt(id))))
            };
        }
        if $desc { q.order(($col.desc(), m::user_id.desc())) } else { q.order(($col.asc(), m::user_id.asc())) }
    }};
}

fn sort_value(row: &MembershipRow, key: SortKey) -> String {
    match key {
        SortKey::Name => row.sort_name.clone(),
        SortKey::Email => row.sort_email.clone(),
        SortKey::Role => row.role.clone(),
        SortKey::JobTitle => row.job_title.clone().unwrap_or_default(),
        SortKey::Department => row.department.clone().unwrap_or_default(),
        SortKey::CreatedAt => cursor_time_text(&row.created_at),
    }
}

pub struct Page {
    pub items: Vec<MemberRecord>,
    pub next_cursor: Option<String>,
    pub total: i64,
}

/// A page of the member list (see `list_cache` for what is kept between requests).
pub fn list(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: &ListFilter,
    cache: &ListCache,
) -> Result<Arc<Page>, ApiError> {
    let tenant = ctx.tenant_text();
    let versions = cache.versions(conn, &tenant)?;
    let shape = list_shape(ctx, f);
    let page_shape = format!("{shape} cursor={:?} desc={} limit={}", f.cursor, f.desc, f.limit);
    let key = matches_key(versions, &tenant, shape, f);
    cache.page(ListCache::page_key(versions, &tenant, page_shape), || assemble(conn, ctx, f, cache, key))
}

/// The key a list's matches (or total) are kept under. Sign-in times move only the `content`
/// counter, so matches filtered by them are kept under both counters.
fn matches_key(versions: Option<Versions>, tenant: &str, shape: String, f: &ListFilter) -> Option<ListKey> {
    if f.last_login == (None, None) {
        ListCache::key(versions, tenant, &shape)
    } else {
        ListCache::page_key(versions, tenant, shape)
    }
}

/// A page as [`list`] gives it, without keeping the page itself (an export reads each page
/// once: keeping them would fill the cache and push out what lists use). A search's matches
/// and a list's total are still kept, so each page costs one page read.
pub fn list_once(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: &ListFilter,
    cache: &ListCache,
) -> Result<Page, ApiError> {
    let tenant = ctx.tenant_text();
    let versions = cache.versions(conn, &tenant)?;
    let key = matches_key(versions, &tenant, list_shape(ctx, f), f);
    assemble(conn, ctx, f, cache, key)
}

/// Works a page out from the database (and the matches or total kept under `key`).
fn assemble(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: &ListFilter,
    cache: &ListCache,
    key: Option<ListKey>,
) -> Result<Page, ApiError> {
    let tenant = ctx.tenant_text();
    let region_set = expanded_region(conn, &tenant, f)?;
    let after = f.cursor.as_deref().map(cursor::decode).transpose()?;
    let (rows, next_cursor, total) = if needle(f).is_some() {
        let matches = cache.matches(key, || match_keys(conn, ctx, f, region_set))?;
        search_page(conn, ctx, f, &matches, after)?
    } else {
        let backend = conn.kind();
        let total =
            cache.total(key, || Ok(filtered(ctx, f, region_set.clone(), backend).count().get_result(conn)?))?;
        sql_page(conn, ctx, f, region_set, after, total)?
    };
    let items = hydrate(conn, &tenant, rows)?;
    Ok(Page { items, next_cursor, total })
}

type RawPage = (Vec<MembershipRow>, Option<String>, i64);

/// A `created_at` sort value as a cursor holds it (microseconds, so it orders as it compares).
fn cursor_time_text(t: &NaiveDateTime) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// The time in a `created_at` cursor (read back by [`cursor_time_text`]'s format).
fn cursor_time(key: &str) -> Result<NaiveDateTime, ApiError> {
    NaiveDateTime::parse_from_str(key, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| crate::store::cursor::not_handed_out())
}

/// Everything besides the tenant and its version that decides a list's matches and their
/// order: the caller's visibility and every filter and the sort (the cache key's text).
fn list_shape(ctx: &TenantContext, f: &ListFilter) -> String {
    let visibility = match ctx.actor().member_visibility() {
        MemberVisibility::All => "all".to_string(),
        MemberVisibility::SelfOnly => format!("self {}", ctx.actor().user_id.as_text()),
        MemberVisibility::SelfAndRegions(set) => {
            let mut regions: Vec<String> = set.iter().map(|r| r.as_text()).collect();
            regions.sort_unstable();
            format!("self {} regions {regions:?}", ctx.actor().user_id.as_text())
        }
    };
    format!(
        "{visibility} q={:?} role={:?} status={:?} department={:?} section={:?} region={:?} manager={:?} sort={:?}",
        needle(f),
        f.role,
        f.status,
        f.department,
        f.section,
        f.region.map(|r| r.as_text()),
        f.manager.map(|m| m.as_text()),
        f.sort
    ) + &format!(" created={:?} last_login={:?}", f.created, f.last_login)
}

/// A page ordered by the database's index (lists without `q`), with the total known.
fn sql_page(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: &ListFilter,
    region_set: Option<Vec<String>>,
    after: Option<(String, String)>,
    total: i64,
) -> Result<RawPage, ApiError> {
    let backend = conn.kind();
    let q = filtered(ctx, f, region_set, backend);
    let q = match f.sort {
        SortKey::Name => keyset!(q, m::sort_name, after, f.desc),
        SortKey::Email => keyset!(q, m::sort_email, after, f.desc),
        SortKey::Role => keyset!(q, m::role, after, f.desc),
        SortKey::JobTitle => keyset!(q, coalesce(m::job_title, ""), after, f.desc),
        SortKey::Department => keyset!(q, coalesce(m::department, ""), after, f.desc),
        SortKey::CreatedAt => {
            let after = after.map(|(k, id)| cursor_time(&k).map(|t| (t, id))).transpose()?;
            keyset!(q, m::created_at, after, f.desc)
        }
    };
    let mut rows = q.limit(f.limit + 1).select(MembershipRow::as_select()).load(conn)?;
    let next_cursor = if rows.len() as i64 > f.limit {
        rows.truncate(f.limit as usize);
        rows.last().map(|last| cursor::encode(&sort_value(last, f.sort), &last.user_id))
    } else {
        None
    };
    Ok((rows, next_cursor, total))
}

fn cursor_text(key: &SortVal) -> String {
    match key {
        SortVal::Text(s) => s.clone(),
        SortVal::Time(t) => cursor_time_text(t),
    }
}

/// Every match of a search with its sort key, in ascending (key, id) order: byte order, as
/// SQLite's `BINARY` and the `C` collation of PostgreSQL's sort columns. One pass over the
/// matches gives the total, the order and any page of it.
fn match_keys(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: &ListFilter,
    region_set: Option<Vec<String>>,
) -> Result<Vec<(SortVal, String)>, ApiError> {
    let q = filtered(ctx, f, region_set, conn.kind());
    fn text(rows: Vec<(String, String)>) -> Vec<(SortVal, String)> {
        rows.into_iter().map(|(k, id)| (SortVal::Text(k), id)).collect()
    }
    let mut keys: Vec<(SortVal, String)> = match f.sort {
        SortKey::Name => text(q.select((m::sort_name, m::user_id)).load(conn)?),
        SortKey::Email => text(q.select((m::sort_email, m::user_id)).load(conn)?),
        SortKey::Role => text(q.select((m::role, m::user_id)).load(conn)?),
        SortKey::JobTitle => text(q.select((coalesce(m::job_title, ""), m::user_id)).load(conn)?),
        SortKey::Department => text(q.select((coalesce(m::department, ""), m::user_id)).load(conn)?),
        SortKey::CreatedAt => q
            .select((m::created_at, m::user_id))
            .load::<(NaiveDateTime, String)>(conn)?
            .into_iter()
            .map(|(t, id)| (SortVal::Time(t), id))
            .collect(),
    };
    keys.sort_unstable();
    Ok(keys)
}

/// A page of a search's ordered matches: the keyset position found by binary search, the page
/// read by id.
fn search_page(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    f: &ListFilter,
    matches: &[(SortVal, String)],
    after: Option<(String, String)>,
) -> Result<RawPage, ApiError> {
    let at = match after {
        None => None,
        Some((key, id)) if f.sort == SortKey::CreatedAt => Some((SortVal::Time(cursor_time(&key)?), id)),
        Some((key, id)) => Some((SortVal::Text(key), id)),
    };
    let want = f.limit as usize + 1;
    let mut page: Vec<&(SortVal, String)> = if f.desc {
        let end = at.map_or(matches.len(), |at| matches.partition_point(|k| *k < at));
        matches[..end].iter().rev().take(want).collect()
    } else {
        let start = at.map_or(0, |at| matches.partition_point(|k| *k <= at));
        matches[start..].iter().take(want).collect()
    };
    let next_cursor = if page.len() == want {
        page.truncate(f.limit as usize);
        page.last().map(|(k, id)| cursor::encode(&cursor_text(k), id))
    } else {
        None
    };
    let ids: Vec<&str> = page.iter().map(|(_, id)| id.as_str()).collect();
    let mut by_id: HashMap<String, MembershipRow> = m::memberships
        .filter(m::tenant_id.eq(ctx.tenant_text()))
        .filter(among(m::user_id, &ids))
        .select(MembershipRow::as_select())
        .load::<MembershipRow>(conn)?
        .into_iter()
        .map(|row| (row.user_id.clone(), row))
        .collect();
    // A member deleted since the matches were read is left out.
    let rows = ids.iter().filter_map(|id| by_id.remove(*id)).collect();
    Ok((rows, next_cursor, matches.len() as i64))
}
