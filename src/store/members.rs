//! Members: a membership (tenant, user) with the identity fields it shows. Reads narrow to
//! the caller's visibility; writes run in one write transaction with the tenant locked, check
//! the policy against rows read inside it, keep the invariants (seats, last owner, no manager
//! cycles) and write the audit event alongside.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::audit::{self, AuditEntry};
use super::cursor;
use super::idempotency::{self, IdempotencyKey, Replay};
use super::list_cache::{ListCache, ListKey, SortVal, Versions};
use super::sessions::{self, EndReason, Sessions};
use crate::auth::TenantContext;
use crate::auth::master_key::MasterKey;
use crate::auth::policy::{Decision, MemberAction, MemberVisibility, TargetFacts, TenantAction};
use crate::db::among::among;
use crate::db::models::{MembershipRow, UserRow, search_text};
use crate::db::schema::{
    membership_regions::dsl as mr, memberships::dsl as m, regions::dsl as r, tenants::dsl as t, users::dsl as u,
};
use crate::db::{AnyConnection, BackendKind, MultiBackend, lock_tenant, lock_tenant_shared};
use crate::domain::ids::parse_stored;
use crate::domain::{EmailAddress, MemberStatus, Plan, RegionId, Role, TenantId, UserId, now};
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

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn deny(decision: Decision) -> Result<(), ApiError> {
    match decision {
        Decision::Allow => Ok(()),
        Decision::NotFound => Err(ApiError::not_found("member not found")),
        Decision::Forbidden(why) => Err(ApiError::forbidden("forbidden", why)),
    }
}

pub fn require(ctx: &TenantContext, action: TenantAction) -> Result<(), ApiError> {
    deny(ctx.actor().can(action))
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

fn load_record(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<Option<MemberRecord>, ApiError> {
    let row = m::memberships
        .inner_join(u::users)
        .filter(m::tenant_id.eq(tenant))
        .filter(m::user_id.eq(user))
        .select((MembershipRow::as_select(), u::email, u::username, u::full_name, u::locked_until))
        .first::<(MembershipRow, String, Option<String>, String, Option<NaiveDateTime>)>(conn)
        .optional()?;
    let Some((membership, email, username, full_name, locked_until)) = row else { return Ok(None) };
    // One member: a fixed-shape query, so its prepared statement is cached.
    let regions = mr::membership_regions
        .filter(mr::tenant_id.eq(tenant))
        .filter(mr::user_id.eq(&membership.user_id))
        .select(mr::region_id)
        .order(mr::region_id)
        .load::<String>(conn)?;
    Ok(Some(MemberRecord { membership, email, username, full_name, regions, locked_until }))
}

/// Loads a member and checks `action` on it; 404 when the caller may not see it.
fn load_checked(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    action: MemberAction,
) -> Result<MemberRecord, ApiError> {
    if user != ctx.actor().user_id {
        deny(ctx.actor().can_ever(action))?;
    }
    let rec = load_record(conn, &ctx.tenant_text(), &user.as_text())?
        .ok_or_else(|| ApiError::not_found("member not found"))?;
    let regions = rec.region_ids();
    deny(ctx.actor().can_member(action, TargetFacts { user_id: user, role: rec.role(), regions: &regions }))?;
    Ok(rec)
}

pub fn get(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    load_checked(conn, ctx, user, MemberAction::Read)
}

/// Which `status` values a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    All,
    Inactive,
    Exact(MemberStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Email,
    Role,
    JobTitle,
    Department,
    CreatedAt,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<(Self, bool)> {
        let (desc, name) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let key = match name {
            "name" => SortKey::Name,
            "email" => SortKey::Email,
            "role" => SortKey::Role,
            "job_title" => SortKey::JobTitle,
            "department" => SortKey::Department,
            "created_at" => SortKey::CreatedAt,
            _ => return None,
        };
        Some((key, desc))
    }
}

#[derive(Debug, Clone)]
pub struct ListFilter {
    pub q: Option<String>,
    pub role: Option<Role>,
    pub status: StatusFilter,
    pub department: Option<String>,
    pub section: Option<String>,
    pub region: Option<RegionId>,
    pub manager: Option<UserId>,
    /// Created in `[from, until)`; either end open.
    pub created: (Option<NaiveDateTime>, Option<NaiveDateTime>),
    /// Last sign-in in `[from, until)`; either end open. Sign-in times move often, so a list
    /// filtered by them is kept under the `content` counter as well (see `list_cache`).
    pub last_login: (Option<NaiveDateTime>, Option<NaiveDateTime>),
    pub sort: SortKey,
    pub desc: bool,
    pub cursor: Option<String>,
    pub limit: i64,
}

impl ListFilter {
    /// Every member the caller can see, by name.
    pub fn everything() -> Self {
        Self {
            q: None,
            role: None,
            status: StatusFilter::All,
            department: None,
            section: None,
            region: None,
            manager: None,
            created: (None, None),
            last_login: (None, None),
            sort: SortKey::Name,
            desc: false,
            cursor: None,
            limit: 50,
        }
    }
}

/// A member's department and section.
pub type Placement = (Option<String>, Option<String>);

/// The department and section of every member the caller can see.
pub fn visible_departments(conn: &mut AnyConnection, ctx: &TenantContext) -> Result<Vec<Placement>, ApiError> {
    let backend = conn.kind();
    Ok(filtered(ctx, &ListFilter::everything(), None, backend).select((m::department, m::section)).load(conn)?)
}

type MemberQuery = crate::db::schema::memberships::BoxedQuery<'static, MultiBackend>;

diesel::define_sql_function!(fn coalesce(x: diesel::sql_types::Nullable<diesel::sql_types::Text>, y: diesel::sql_types::Text) -> diesel::sql_types::Text);

/// The `q` text as searched: trimmed and lower-cased like the stored search column.
fn needle(f: &ListFilter) -> Option<String> {
    f.q.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_lowercase)
}

/// On SQLite, 3+ characters go through the FTS5 trigram index.
fn uses_fts(f: &ListFilter, backend: BackendKind) -> bool {
    backend == BackendKind::Sqlite && needle(f).is_some_and(|n| n.chars().count() >= 3)
}

/// The starting query: this tenant's memberships, narrowed by `q`. Through the trigram index
/// on SQLite the full-text matches drive the lookup (`+tenant_id` keeps the planner from
/// walking the whole tenant instead); PostgreSQL's pg_trgm index serves a plain `LIKE`; short
/// text on SQLite is a `LIKE` scan.
fn base(tenant: &str, f: &ListFilter, backend: BackendKind) -> MemberQuery {
    let Some(text) = needle(f) else {
        return m::memberships.filter(m::tenant_id.eq(tenant.to_string())).into_boxed();
    };
    let pattern = format!("%{}%", escape_like(&text));
    if uses_fts(f, backend) {
        let phrase = format!("\"{}\"", text.replace('"', "\"\""));
        m::memberships
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>("(+memberships.tenant_id = ")
                    .bind::<diesel::sql_types::Text, _>(tenant.to_string())
                    .sql(" AND memberships.seq IN (SELECT rowid FROM memberships_fts WHERE memberships_fts MATCH ")
                    .bind::<diesel::sql_types::Text, _>(phrase)
                    .sql("))"),
            )
            .into_boxed()
    } else if backend == BackendKind::Sqlite {
        m::memberships
            .filter(m::tenant_id.eq(tenant.to_string()))
            .filter(m::search_text.like(pattern).escape('\\'))
            .into_boxed()
    } else {
        // Backslash is PostgreSQL's default LIKE escape; no ESCAPE clause keeps the index usable.
        m::memberships.filter(m::tenant_id.eq(tenant.to_string())).filter(m::search_text.like(pattern)).into_boxed()
    }
}

fn filtered(ctx: &TenantContext, f: &ListFilter, region_set: Option<Vec<String>>, backend: BackendKind) -> MemberQuery {
    let tenant = ctx.tenant_text();
    let mut q = base(&tenant, f, backend);
    match ctx.actor().member_visibility() {
        MemberVisibility::All => {}
        MemberVisibility::SelfOnly => q = q.filter(m::user_id.eq(ctx.actor().user_id.as_text())),
        MemberVisibility::SelfAndRegions(set) => {
            let scope: Vec<String> = set.iter().map(|r| r.as_text()).collect();
            let inside = mr::membership_regions
                .filter(mr::tenant_id.eq(tenant.clone()))
                .filter(mr::region_id.eq_any(scope.clone()))
                .select(mr::user_id);
            let outside = mr::membership_regions
                .filter(mr::tenant_id.eq(tenant.clone()))
                .filter(mr::region_id.ne_all(scope))
                .select(mr::user_id);
            q = q.filter(
                m::user_id
                    .eq(ctx.actor().user_id.as_text())
                    .or(m::user_id.eq_any(inside).and(m::user_id.ne_all(outside))),
            );
        }
    }
    if let Some(role) = f.role {
        q = q.filter(m::role.eq(role.as_str()));
    }
    match f.status {
        StatusFilter::All => {}
        StatusFilter::Inactive => q = q.filter(m::status.ne(MemberStatus::Active.as_str())),
        StatusFilter::Exact(s) => q = q.filter(m::status.eq(s.as_str())),
    }
    if let Some(d) = &f.department {
        q = q.filter(m::department.eq(d.clone()));
    }
    if let Some(s) = &f.section {
        q = q.filter(m::section.eq(s.clone()));
    }
    if let Some(mgr) = f.manager {
        q = q.filter(m::manager_id.eq(mgr.as_text()));
    }
    if let Some(from) = f.created.0 {
        q = q.filter(m::created_at.ge(from));
    }
    if let Some(until) = f.created.1 {
        q = q.filter(m::created_at.lt(until));
    }
    if let Some(from) = f.last_login.0 {
        q = q.filter(m::last_login_at.ge(from));
    }
    if let Some(until) = f.last_login.1 {
        q = q.filter(m::last_login_at.lt(until));
    }
    if let Some(set) = region_set {
        let with_region = mr::membership_regions
            .filter(mr::tenant_id.eq(tenant))
            .filter(mr::region_id.eq_any(set))
            .select(mr::user_id);
        q = q.filter(m::user_id.eq_any(with_region));
    }
    q
}

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

/// The `region` filter with its sub-regions, as ids.
fn expanded_region(conn: &mut AnyConnection, tenant: &str, f: &ListFilter) -> Result<Option<Vec<String>>, ApiError> {
    let Some(root) = f.region else { return Ok(None) };
    let all = r::regions.filter(r::tenant_id.eq(tenant)).select((r::id, r::parent_id)).load(conn)?;
    Ok(Some(crate::auth::guard::expand_regions(&[root], &all).iter().map(|r| r.as_text()).collect()))
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
    NaiveDateTime::parse_from_str(key, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| {
        ApiError::invalid("cursor", "is not one this list handed out (`next_cursor`); start again without it")
    })
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

/// Adds identity fields and regions to a page of memberships, keeping its order.
fn hydrate(conn: &mut AnyConnection, tenant: &str, rows: Vec<MembershipRow>) -> Result<Vec<MemberRecord>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.user_id.clone()).collect();
    type Identity = (String, Option<String>, String, Option<NaiveDateTime>);
    let mut identities: HashMap<String, Identity> = u::users
        .filter(among(u::id, &ids))
        .select((u::id, u::email, u::username, u::full_name, u::locked_until))
        .load::<(String, String, Option<String>, String, Option<NaiveDateTime>)>(conn)?
        .into_iter()
        .map(|(id, e, un, n, l)| (id, (e, un, n, l)))
        .collect();
    let mut regions = load_regions(conn, tenant, &ids)?;
    Ok(rows
        .into_iter()
        .map(|membership| {
            let (email, username, full_name, locked_until) = identities.remove(&membership.user_id).unwrap_or_default();
            let regions = regions.remove(&membership.user_id).unwrap_or_default();
            MemberRecord { membership, email, username, full_name, regions, locked_until }
        })
        .collect())
}

// ---------------------------------------------------------------- writes

/// A new member, parsed and checked for shape.
#[derive(Debug, Clone)]
pub struct NewMember {
    pub email: EmailAddress,
    pub full_name: String,
    pub username: Option<String>,
    pub role: Role,
    pub regions: Vec<RegionId>,
    pub job_title: Option<String>,
    pub department: Option<String>,
    pub section: Option<String>,
    pub manager_id: Option<UserId>,
    pub status: MemberStatus,
}

pub(crate) fn seat_limit(conn: &mut AnyConnection, tenant: &str) -> Result<Option<i64>, ApiError> {
    let (plan, over) = t::tenants
        .filter(t::id.eq(tenant))
        .select((t::plan, t::seat_limit_override))
        .first::<(String, Option<i32>)>(conn)?;
    Ok(over.or_else(|| Plan::parse(&plan).and_then(Plan::default_seats)).map(i64::from))
}

/// Seats taken: members whose status holds one, and invitations still open.
pub fn seats_used(conn: &mut AnyConnection, tenant: &str) -> Result<i64, ApiError> {
    let taking: Vec<&str> = MemberStatus::ALL.iter().filter(|s| s.takes_seat()).map(|s| s.as_str()).collect();
    let members: i64 =
        m::memberships.filter(m::tenant_id.eq(tenant)).filter(m::status.eq_any(taking)).count().get_result(conn)?;
    Ok(members + super::invitations::open_count(conn, tenant)?)
}

pub(crate) fn ensure_seat(conn: &mut AnyConnection, tenant: &str) -> Result<(), ApiError> {
    if let Some(limit) = seat_limit(conn, tenant)? {
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

pub(crate) fn ensure_regions_exist(
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
fn ensure_manager(conn: &mut AnyConnection, tenant: &str, member: &str, manager: &str) -> Result<(), ApiError> {
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

pub(crate) fn ensure_username_free(
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

pub(crate) fn insert_regions(
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

/// What a create did: made the member, found the first answer for the same
/// `Idempotency-Key`, or found that the email already has an account (a member of other
/// tenants only), so nothing was written: the caller invites that person instead.
pub enum Created {
    New(Box<MemberRecord>),
    Replayed(Replay),
    HasAccount,
}

/// Renders the answer kept for an idempotent retry (never with secrets).
pub type RenderReplay<'a> = idempotency::Render<'a, MemberRecord>;

/// How a new member gets in.
pub enum Credential<'a> {
    /// The stored form of a temporary password; the member must change it at first sign-in.
    Temporary(String),
    /// No password yet: an email with a link to choose one.
    EmailLink(&'a super::invitations::Mailer<'a>),
}

/// Creates a member with a new identity. With an idempotency key, the first answer is stored
/// in the same transaction. An email that already has an account writes nothing and answers
/// [`Created::HasAccount`].
pub fn create(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    new: NewMember,
    credential: Credential<'_>,
    idem: Option<(&IdempotencyKey, RenderReplay<'_>)>,
) -> Result<Created, ApiError> {
    require(ctx, TenantAction::CreateMember)?;
    if let Err((field, why)) = ctx.actor().can_grant(new.role, &new.regions) {
        return Err(ApiError::forbidden("grant-exceeds-own", format!("{field}: {why}")));
    }
    let tenant = ctx.tenant_text();
    let actor = ctx.actor().user_id.as_text();
    crate::db::write_tx(conn, |conn| {
        // A seat limit (or an idempotency key) needs this tenant's creates in single file;
        // otherwise they run side by side and only keep the tenant's settings from changing.
        // Decide the lock before taking any: upgrading a shared lock deadlocks.
        let exclusive = idem.is_some() || (new.status.takes_seat() && seat_limit(conn, &tenant)?.is_some());
        if exclusive {
            lock_tenant(conn, &tenant)?;
        } else {
            lock_tenant_shared(conn, &tenant)?;
            if new.status.takes_seat() && seat_limit(conn, &tenant)?.is_some() {
                return Err(ApiError::conflict(
                    "tenant-changed",
                    "the tenant's plan changed during this request; try again",
                ));
            }
        }
        ctx.recheck(conn)?;
        if let Some(replay) = idem.map(|(key, _)| idempotency::find(conn, &tenant, &actor, key)).transpose()?.flatten()
        {
            return Ok(Created::Replayed(replay));
        }
        let existing =
            u::users.filter(u::email.eq(new.email.as_str())).select(u::id).first::<String>(conn).optional()?;
        if let Some(existing) = existing {
            let here = m::memberships
                .filter(m::tenant_id.eq(&tenant))
                .filter(m::user_id.eq(&existing))
                .count()
                .get_result::<i64>(conn)?;
            if here > 0 {
                return Err(ApiError::conflict(
                    "already-member",
                    format!("{} is already a member of this tenant", new.email),
                ));
            }
            // Never changed or shown here: the person is invited and joins with their own
            // credentials.
            return Ok(Created::HasAccount);
        }
        if let Some(name) = &new.username {
            ensure_username_free(conn, name, None)?;
        }
        ensure_regions_exist(conn, &tenant, &new.regions)?;
        super::departments::ensure_for_member(conn, &tenant, new.department.as_deref(), new.section.as_deref())?;
        if new.status.takes_seat() {
            ensure_seat(conn, &tenant)?;
        }
        let user_id = UserId::new().as_text();
        if let Some(mgr) = new.manager_id {
            ensure_manager(conn, &tenant, &user_id, &mgr.as_text())?;
        }
        let now = now();
        let user = UserRow {
            id: user_id.clone(),
            email: new.email.as_str().to_string(),
            username: new.username.clone(),
            full_name: new.full_name.clone(),
            avatar_url: None,
            password_hash: match &credential {
                Credential::Temporary(hash) => Some(hash.clone()),
                Credential::EmailLink(_) => None,
            },
            must_change_password: matches!(credential, Credential::Temporary(_)),
            auth_version: 1,
            failed_logins: 0,
            locked_until: None,
            home_tenant_id: Some(tenant.clone()),
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(u::users).values(&user).execute(conn)?;
        if let Credential::EmailLink(mailer) = credential {
            let tenant_name: String = t::tenants.filter(t::id.eq(&tenant)).select(t::name).first(conn)?;
            let creator: String = u::users.filter(u::id.eq(&actor)).select(u::full_name).first(conn)?;
            super::resets::issue_set_password(
                conn,
                mailer.master,
                &user,
                (&tenant, &tenant_name),
                &creator,
                mailer.app_url,
            )?;
        }
        let membership = MembershipRow {
            tenant_id: tenant.clone(),
            user_id: user_id.clone(),
            role: new.role.as_str().into(),
            status: new.status.as_str().into(),
            job_title: new.job_title.clone(),
            department: new.department.clone(),
            section: new.section.clone(),
            manager_id: new.manager_id.map(|m| m.as_text()),
            search_text: search_text(&new.full_name, new.username.as_deref(), new.email.as_str()),
            sort_name: new.full_name.to_lowercase(),
            sort_email: new.email.as_str().to_string(),
            auth_version: 1,
            version: 1,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        };
        diesel::insert_into(m::memberships).values(&membership).execute(conn)?;
        insert_regions(conn, &tenant, &user_id, &new.regions)?;
        let rec = MemberRecord {
            membership,
            email: user.email,
            username: user.username,
            full_name: user.full_name,
            regions: new.regions.iter().map(|r| r.as_text()).collect(),
            locked_until: None,
        };
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.created",
                target_type: "member",
                target_id: Some(user_id),
                before: None,
                after: Some(rec.audit_state()),
            },
        )?;
        if let Some((key, render)) = idem {
            idempotency::save(conn, &tenant, &actor, key, 201, &render(&rec))?;
        }
        Ok(Created::New(Box::new(rec)))
    })
}

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

/// Whether this tenant manages the identity: it created it and it belongs nowhere else.
fn is_managed(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<bool, ApiError> {
    let home = u::users.filter(u::id.eq(user)).select(u::home_tenant_id).first::<Option<String>>(conn)?;
    if home.as_deref() != Some(tenant) {
        return Ok(false);
    }
    let elsewhere =
        m::memberships.filter(m::user_id.eq(user)).filter(m::tenant_id.ne(tenant)).count().get_result::<i64>(conn)?;
    Ok(elsewhere == 0)
}

/// Refuses a change that would leave the tenant without an active owner.
fn ensure_other_owner(conn: &mut AnyConnection, tenant: &str, user: &str) -> Result<(), ApiError> {
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

pub fn update(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    patch: MemberPatch,
    if_match: Option<i32>,
) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = if patch.touches_access() {
            load_checked(conn, ctx, user, MemberAction::ChangeRoleOrRegions)?
        } else {
            load_checked(conn, ctx, user, MemberAction::EditProfile)?
        };
        let facts_regions = before.region_ids();
        let facts = TargetFacts { user_id: user, role: before.role(), regions: &facts_regions };
        if patch.touches_identity() || patch.touches_profile() {
            deny(ctx.actor().can_member(MemberAction::EditProfile, facts))?;
        }
        if patch.touches_access() {
            deny(ctx.actor().can_member(MemberAction::ChangeRoleOrRegions, facts))?;
            let role = patch.role.unwrap_or(before.role());
            let regions = patch.regions.clone().unwrap_or_else(|| before.region_ids());
            if let Err((field, why)) = ctx.actor().can_grant(role, &regions) {
                return Err(ApiError::forbidden("grant-exceeds-own", format!("{field}: {why}")));
            }
        }
        super::check_version("member", before.membership.version, if_match)?;
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
            super::departments::ensure_for_member(conn, &tenant, department.as_deref(), section.as_deref())?;
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

pub fn set_status(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    status: MemberStatus,
    if_match: Option<i32>,
) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::ChangeStatus)?;
        super::check_version("member", before.membership.version, if_match)?;
        let current = MemberStatus::parse(&before.membership.status).unwrap_or(MemberStatus::Disabled);
        if current == status {
            return Ok(before);
        }
        if status == MemberStatus::Active && !current.takes_seat() {
            ensure_seat(conn, &tenant)?;
        }
        if status != MemberStatus::Active && before.role() == Role::Owner {
            ensure_other_owner(conn, &tenant, &uid)?;
        }
        diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid)))
            .set((
                m::status.eq(status.as_str()),
                m::version.eq(m::version + 1),
                m::auth_version.eq(m::auth_version + 1),
                m::updated_at.eq(now()),
            ))
            .execute(conn)?;
        // Disabled: their sessions in this tenant end now (and those not in any tenant, which
        // could switch into it).
        let ended = if status == MemberStatus::Active {
            0
        } else {
            sessions::end_all(conn, user, Sessions::InTenant(&tenant), EndReason::MemberDisabled)?
        };
        let after = load_record(conn, &tenant, &uid)?.ok_or_else(|| ApiError::internal("member vanished"))?;
        let action = if status == MemberStatus::Active { "member.enabled" } else { "member.disabled" };
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action,
                target_type: "member",
                target_id: Some(uid.clone()),
                before: Some(json!({"status": before.membership.status})),
                after: Some(json!({"status": after.membership.status, "sessions_ended": ended})),
            },
        )?;
        Ok(after)
    })
}

/// Deletes a disabled member's membership; the identity goes with its last membership.
pub fn delete(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    if_match: Option<i32>,
) -> Result<(), ApiError> {
    let tenant = ctx.tenant_text();
    let uid = user.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::Delete)?;
        super::check_version("member", before.membership.version, if_match)?;
        if before.membership.status != MemberStatus::Disabled.as_str() {
            return Err(ApiError::conflict(
                "member-not-disabled",
                "only a disabled member can be deleted: PUT .../status {\"status\": \"disabled\"} first",
            ));
        }
        diesel::update(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::manager_id.eq(&uid)))
            .set(m::manager_id.eq(None::<String>))
            .execute(conn)?;
        diesel::delete(mr::membership_regions.filter(mr::tenant_id.eq(&tenant)).filter(mr::user_id.eq(&uid)))
            .execute(conn)?;
        diesel::delete(m::memberships.filter(m::tenant_id.eq(&tenant)).filter(m::user_id.eq(&uid))).execute(conn)?;
        let remaining = m::memberships.filter(m::user_id.eq(&uid)).count().get_result::<i64>(conn)?;
        if remaining == 0 {
            diesel::update(t::tenants.filter(t::billing_owner_id.eq(&uid)))
                .set(t::billing_owner_id.eq(None::<String>))
                .execute(conn)?;
            diesel::delete(u::users.filter(u::id.eq(&uid))).execute(conn)?;
        }
        audit::record(
            conn,
            ctx,
            AuditEntry {
                action: "member.deleted",
                target_type: "member",
                target_id: Some(uid.clone()),
                before: Some(before.audit_state()),
                after: None,
            },
        )?;
        Ok(())
    })
}

/// Sets a new temporary password (stored form given) for a member whose identity this tenant
/// manages; revokes the member's tokens everywhere.
/// Loads a member whose password the caller may reset (policy, and a sign-in this tenant manages).
fn load_resettable(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    let rec = load_checked(conn, ctx, user, MemberAction::ResetPassword)?;
    if !is_managed(conn, &ctx.tenant_text(), &user.as_text())? {
        return Err(ApiError::conflict(
            "identity-not-managed",
            "this person's sign-in is not managed by this tenant, so no admin here can set their password; send them a reset link instead (POST .../users/{user_id}/password-reset with `delivery: email`), or they reset it themselves by email",
        ));
    }
    Ok(rec)
}

fn audit_reset(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let entry = AuditEntry {
        action: "member.password_reset",
        target_type: "member",
        target_id: Some(user.as_text()),
        before: None,
        after: Some(after),
    };
    audit::record(conn, ctx, entry)
}

/// Emails the member a link to choose a new password (their current one keeps working until
/// they do). Also for a person this tenant does not manage: the link goes to them, and no
/// admin sees or sets their secret.
pub fn email_password_reset(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    master: &MasterKey,
    app_url: &str,
) -> Result<MemberRecord, ApiError> {
    let uid = user.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let rec = load_checked(conn, ctx, user, MemberAction::ResetPassword)?;
        let row = u::users.filter(u::id.eq(&uid)).select(UserRow::as_select()).first(conn)?;
        let tenant: String = t::tenants.filter(t::id.eq(ctx.tenant_text())).select(t::name).first(conn)?;
        let why = format!("An administrator of {tenant} asked for a new password for your Roster account.");
        super::resets::issue(conn, master, &row, app_url, &why)?;
        audit_reset(conn, ctx, user, json!({"delivery": "email"}))?;
        Ok(rec)
    })
}

pub fn reset_password(
    conn: &mut AnyConnection,
    ctx: &TenantContext,
    user: UserId,
    password_hash: String,
) -> Result<MemberRecord, ApiError> {
    let uid = user.as_text();
    super::tenant_write(conn, ctx, |conn| {
        let rec = load_resettable(conn, ctx, user)?;
        diesel::update(u::users.filter(u::id.eq(&uid)))
            .set((
                u::password_hash.eq(Some(password_hash)),
                u::must_change_password.eq(true),
                u::auth_version.eq(u::auth_version + 1),
                u::failed_logins.eq(0),
                u::locked_until.eq(None::<NaiveDateTime>),
                u::updated_at.eq(now()),
            ))
            .execute(conn)?;
        let ended = sessions::end_all(conn, user, Sessions::All, EndReason::PasswordChanged)?;
        let after = json!({"delivery": "temporary_password", "must_change_password": true, "sessions_ended": ended});
        audit_reset(conn, ctx, user, after)?;
        Ok(rec)
    })
}

/// Ends the member's sessions in this tenant (and those not in any tenant); returns how many.
pub fn end_sessions(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<usize, ApiError> {
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        load_checked(conn, ctx, user, MemberAction::ChangeStatus)?;
        let ended = sessions::end_all(conn, user, Sessions::InTenant(&tenant), EndReason::EndedByAdmin)?;
        let entry = AuditEntry {
            action: "member.sessions_ended",
            target_type: "member",
            target_id: Some(user.as_text()),
            before: None,
            after: Some(json!({"sessions_ended": ended})),
        };
        audit::record(conn, ctx, entry)?;
        Ok(ended)
    })
}

/// Clears a sign-in lock (and the failure count) on the member's account.
pub fn unlock(conn: &mut AnyConnection, ctx: &TenantContext, user: UserId) -> Result<MemberRecord, ApiError> {
    let tenant = ctx.tenant_text();
    super::tenant_write(conn, ctx, |conn| {
        let before = load_checked(conn, ctx, user, MemberAction::ChangeStatus)?;
        let was_locked = sessions::unlock(conn, user)?;
        let entry = AuditEntry {
            action: "member.unlocked",
            target_type: "member",
            target_id: Some(user.as_text()),
            before: Some(json!({"locked_until": before.locked_until.map(crate::domain::time::utc)})),
            after: Some(json!({"locked_until": null, "was_locked": was_locked})),
        };
        audit::record(conn, ctx, entry)?;
        load_record(conn, &tenant, &user.as_text())?.ok_or_else(|| ApiError::internal("member vanished"))
    })
}

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

/// Whether `tenant` exists (for platform paths).
pub fn tenant_exists(conn: &mut AnyConnection, tenant: TenantId) -> Result<bool, ApiError> {
    Ok(t::tenants.filter(t::id.eq(tenant.as_text())).count().get_result::<i64>(conn)? > 0)
}
