//! Member-list results kept in memory between requests, exact on every instance.
//!
//! A search (`q`) has to read every match to count them and to order them, which on a large
//! tenant costs milliseconds per request; paging through the results, re-running the same
//! search or counting an unfiltered list of 100,000 members would pay it again each time. So a
//! list keeps what it worked out (for a search: every match's sort key and id, in order; for
//! other lists: the total) under the tenant's member-list version, a counter that database
//! triggers move in the same transaction as any change a list could show (see the
//! `member_list_versions` migration). Each request reads the version first: after a change
//! committed by any instance, no request can be served an older result.
//!
//! Bounded by `ROSTER_LIST_CACHE_ITEMS` (match entries held at most; 0 turns it off). Old
//! versions are never read again and age out.

use std::sync::Arc;

use diesel::prelude::*;
use quick_cache::Weighter;
use quick_cache::sync::Cache;

use crate::db::AnyConnection;
use crate::db::schema::member_list_versions::dsl as v;
use crate::error::ApiError;

/// A sort key as read for ordering outside the database. One list only ever holds one variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SortVal {
    Text(String),
    Time(chrono::NaiveDateTime),
}

/// A list's matches in ascending order of (sort key, user id).
pub type OrderedMatches = Arc<Vec<(SortVal, String)>>;

/// Which list: the tenant, its version when read, and everything else that shapes the result
/// (the caller's visibility and every filter and the sort, as text).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    tenant: String,
    version: i64,
    shape: String,
}

#[derive(Clone)]
enum Entry {
    Matches(OrderedMatches),
    Total(i64),
}

#[derive(Clone)]
struct ByMatches;

impl Weighter<ListKey, Entry> for ByMatches {
    fn weight(&self, _key: &ListKey, entry: &Entry) -> u64 {
        match entry {
            Entry::Matches(m) => m.len() as u64 + 1,
            Entry::Total(_) => 1,
        }
    }
}

/// The cache one instance shares across its workers; cheap to clone.
#[derive(Clone)]
pub struct ListCache {
    inner: Option<Arc<Cache<ListKey, Entry, ByMatches>>>,
    largest: u64,
}

impl ListCache {
    /// Holds at most `items` match entries in all; 0 turns the cache off.
    pub fn new(items: u64) -> Self {
        let inner = (items > 0).then(|| Arc::new(Cache::with_weighter(1024, items, ByMatches)));
        // One list may take an eighth of the room, so a single broad search cannot flush the rest.
        Self { inner, largest: (items / 8).max(1) }
    }

    /// The key for `shape` in `tenant` as it is now, or `None` when the cache is off (no read).
    pub fn key(&self, conn: &mut AnyConnection, tenant: &str, shape: String) -> Result<Option<ListKey>, ApiError> {
        if self.inner.is_none() {
            return Ok(None);
        }
        let version = v::member_list_versions
            .filter(v::tenant_id.eq(tenant))
            .select(v::version)
            .first::<i64>(conn)
            .optional()?
            .unwrap_or(0);
        Ok(Some(ListKey { tenant: tenant.to_string(), version, shape }))
    }

    /// The ordered matches under `key`, computed by `load` when not held.
    pub fn matches(
        &self,
        key: Option<ListKey>,
        load: impl FnOnce() -> Result<Vec<(SortVal, String)>, ApiError>,
    ) -> Result<OrderedMatches, ApiError> {
        let (Some(cache), Some(key)) = (&self.inner, key) else {
            return Ok(Arc::new(load()?));
        };
        if let Some(Entry::Matches(m)) = cache.get(&key) {
            return Ok(m);
        }
        let m = Arc::new(load()?);
        if m.len() as u64 <= self.largest {
            cache.insert(key, Entry::Matches(m.clone()));
        }
        Ok(m)
    }

    /// The total under `key`, counted by `count` when not held.
    pub fn total(&self, key: Option<ListKey>, count: impl FnOnce() -> Result<i64, ApiError>) -> Result<i64, ApiError> {
        let (Some(cache), Some(key)) = (&self.inner, key) else {
            return count();
        };
        if let Some(Entry::Total(n)) = cache.get(&key) {
            return Ok(n);
        }
        let n = count()?;
        cache.insert(key, Entry::Total(n));
        Ok(n)
    }
}
