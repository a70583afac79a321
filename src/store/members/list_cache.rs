//! Member-list results kept in memory between requests, exact on every instance.
//!
//! A search (`q`) has to read every match to count them and to order them, which on a large
//! tenant costs milliseconds per request; paging through the results, re-running the same
//! search or counting an unfiltered list of 100,000 members would pay it again each time, and
//! the busiest page of an admin console (the first page of members, or of a search) would be
//! read and assembled afresh for every visitor. So a list keeps what it worked out under the
//! tenant's two member-list counters, which database triggers move in the same transaction as
//! the change (see the `member_list_versions` migration):
//!
//! - `version` moves with any change to which members a list holds or their order (a member
//!   added or removed, a listed field, regions, the region tree). Under it: a search's matches
//!   (sort key and id, in order) and other lists' totals.
//! - `content` moves with that and with any other change to a membership (a sign-in time, the
//!   version behind the ETag). Under both: whole pages as answered.
//!
//! Each request reads the counters first and computes from reads made after that, so once a
//! change has committed on any instance, no request is served an older result.
//!
//! Bounded by `ROSTER_LIST_CACHE_BYTES` (what the held results take in memory, estimated from
//! their strings and fixed parts; 0 turns it off). Old counters are never read again and age
//! out.

use std::sync::Arc;

use diesel::prelude::*;
use quick_cache::Weighter;
use quick_cache::sync::{Cache, GuardResult};

use super::list::Page;
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

/// The tenant's member-list counters as read at the start of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Versions {
    version: i64,
    content: i64,
}

/// Which result: the tenant, the counters it depends on (`content` only for pages), and the
/// rest of the question as text (the caller's visibility, every filter and the sort; for pages
/// also the position, direction and size).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    tenant: String,
    version: i64,
    content: Option<i64>,
    shape: String,
}

#[derive(Clone)]
enum Entry {
    Matches(OrderedMatches),
    Total(i64),
    Page(Arc<Page>),
}

/// What an entry takes in memory: its strings and fixed parts, plus the key's (an estimate that
/// errs high: allocator rounding and the map's own slots are counted in `SLOT`).
#[derive(Clone)]
struct ByBytes;

/// The map's slot, the `Arc`, the key's fixed part.
const SLOT: u64 = 160;
/// A match: the tuple, the string headers, the id (a UUID's 36 bytes).
const MATCH: u64 = 80;
/// A kept member: the record's fixed part and its optional strings' headers.
const MEMBER: u64 = 480;

fn text(s: &str) -> u64 {
    s.len() as u64
}
fn opt(s: &Option<String>) -> u64 {
    s.as_deref().map_or(0, text)
}

impl Weighter<ListKey, Entry> for ByBytes {
    fn weight(&self, key: &ListKey, entry: &Entry) -> u64 {
        let body = match entry {
            Entry::Matches(m) => m
                .iter()
                .map(|(sort, id)| {
                    MATCH
                        + text(id)
                        + match sort {
                            SortVal::Text(t) => text(t),
                            SortVal::Time(_) => 12,
                        }
                })
                .sum(),
            Entry::Total(_) => 8,
            Entry::Page(p) => {
                opt(&p.next_cursor)
                    + p.items
                        .iter()
                        .map(|r| {
                            let m = &r.membership;
                            MEMBER
                                + text(&r.email)
                                + opt(&r.username)
                                + text(&r.full_name)
                                + r.regions.iter().map(|g| 24 + text(g)).sum::<u64>()
                                + opt(&r.os_username)
                                + text(&m.tenant_id)
                                + text(&m.user_id)
                                + text(&m.role)
                                + text(&m.status)
                                + opt(&m.job_title)
                                + opt(&m.department)
                                + opt(&m.section)
                                + opt(&m.manager_id)
                                + text(&m.search_text)
                                + text(&m.sort_name)
                                + text(&m.sort_email)
                        })
                        .sum::<u64>()
            }
        };
        SLOT + text(&key.tenant) + text(&key.shape) + body
    }
}

/// The cache one instance shares across its workers; cheap to clone.
#[derive(Clone)]
pub struct ListCache {
    inner: Option<Arc<Cache<ListKey, Entry, ByBytes>>>,
    largest: u64,
}

impl ListCache {
    /// Holds results of at most `bytes` (estimated) in all; 0 turns the cache off.
    pub fn new(bytes: u64) -> Self {
        let inner = (bytes > 0).then(|| Arc::new(Cache::with_weighter(1024, bytes, ByBytes)));
        // One list may take an eighth of the room, so a single broad search cannot flush the rest.
        Self { inner, largest: (bytes / 8).max(1) }
    }

    /// The tenant's counters now, or `None` when the cache is off (then nothing is read).
    pub(super) fn versions(&self, conn: &mut AnyConnection, tenant: &str) -> Result<Option<Versions>, ApiError> {
        if self.inner.is_none() {
            return Ok(None);
        }
        let (version, content) = v::member_list_versions
            .filter(v::tenant_id.eq(tenant))
            .select((v::version, v::content))
            .first::<(i64, i64)>(conn)
            .optional()?
            .unwrap_or((0, 0));
        Ok(Some(Versions { version, content }))
    }

    /// The key of a result that depends on which members a list holds and their order.
    pub(super) fn key(versions: Option<Versions>, tenant: &str, shape: &str) -> Option<ListKey> {
        versions.map(|at| ListKey {
            tenant: tenant.to_string(),
            version: at.version,
            content: None,
            shape: shape.into(),
        })
    }

    /// The key of a whole page, which shows every field as well.
    pub(super) fn page_key(versions: Option<Versions>, tenant: &str, shape: String) -> Option<ListKey> {
        versions.map(|at| ListKey { tenant: tenant.to_string(), version: at.version, content: Some(at.content), shape })
    }

    /// The page under `key`, assembled by `load` when not held.
    pub(super) fn page(
        &self,
        key: Option<ListKey>,
        load: impl FnOnce() -> Result<Page, ApiError>,
    ) -> Result<Arc<Page>, ApiError> {
        self.held_or_load(
            key,
            |e| if let Entry::Page(p) = e { Some(p.clone()) } else { None },
            || Ok(Arc::new(load()?)),
            |p| (Entry::Page(p.clone()), true),
        )
    }

    /// The ordered matches under `key`, computed by `load` when not held.
    pub(super) fn matches(
        &self,
        key: Option<ListKey>,
        load: impl FnOnce() -> Result<Vec<(SortVal, String)>, ApiError>,
    ) -> Result<OrderedMatches, ApiError> {
        let largest = self.largest;
        self.held_or_load(
            key,
            |e| if let Entry::Matches(m) = e { Some(m.clone()) } else { None },
            || Ok(Arc::new(load()?)),
            |m| (Entry::Matches(m.clone()), m.len() as u64 * (MATCH + 60) <= largest),
        )
    }

    /// The total under `key`, counted by `count` when not held.
    pub(super) fn total(
        &self,
        key: Option<ListKey>,
        count: impl FnOnce() -> Result<i64, ApiError>,
    ) -> Result<i64, ApiError> {
        self.held_or_load(
            key,
            |e| if let Entry::Total(n) = e { Some(*n) } else { None },
            count,
            |n| (Entry::Total(*n), true),
        )
    }

    /// The value held under `key`, or `load`'s. Requests that miss the same key together wait
    /// for one of them to load it (up to [`LOAD_WAIT`]) instead of each doing the same work: the
    /// first page of a large tenant's search costs milliseconds, and a burst of visitors would
    /// otherwise compute it once each, queued behind one another. `entry` says what to keep and
    /// whether to keep it (a result too large to keep is still handed to those waiting).
    fn held_or_load<T>(
        &self,
        key: Option<ListKey>,
        pick: impl Fn(&Entry) -> Option<T>,
        load: impl FnOnce() -> Result<T, ApiError>,
        entry: impl FnOnce(&T) -> (Entry, bool),
    ) -> Result<T, ApiError> {
        let (Some(cache), Some(key)) = (&self.inner, key) else {
            return load();
        };
        match cache.get_value_or_guard(&key, Some(LOAD_WAIT)) {
            GuardResult::Value(held) => match pick(&held) {
                Some(value) => Ok(value),
                None => load(),
            },
            // Waited too long for another request's load: do it here, keep nothing.
            GuardResult::Timeout => load(),
            // Ours to load; an error drops the guard, and the next waiter loads instead.
            GuardResult::Guard(guard) => {
                let value = load()?;
                let (held, keep) = entry(&value);
                // Err: the key was replaced meanwhile, which leaves nothing to do.
                if guard.insert(held).is_ok() && !keep {
                    cache.remove(&key);
                }
                Ok(value)
            }
        }
    }
}

/// How long a request waits for another request loading the same list before loading it itself.
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(n: usize) -> Vec<(SortVal, String)> {
        (0..n).map(|i| (SortVal::Text(format!("member {i:05}")), uuid::Uuid::now_v7().to_string())).collect()
    }

    fn key(shape: &str) -> Option<ListKey> {
        ListCache::key(Some(Versions { version: 1, content: 1 }), "tenant", shape)
    }

    #[test]
    fn holds_what_fits_in_its_bytes_and_never_one_list_over_an_eighth() {
        let cache = ListCache::new(64 * 1024);
        // 40 matches (about 5.3 KB) fit an eighth (8 KiB): kept, so the second read loads nothing.
        let mut loads = 0;
        for _ in 0..2 {
            cache
                .matches(key("small"), || {
                    loads += 1;
                    Ok(matches(40))
                })
                .unwrap();
        }
        assert_eq!(loads, 1);
        // 100 matches (about 13 KB) are more than an eighth: answered, not kept.
        let mut loads = 0;
        for _ in 0..2 {
            cache
                .matches(key("broad"), || {
                    loads += 1;
                    Ok(matches(100))
                })
                .unwrap();
        }
        assert_eq!(loads, 2);
        // Many lists: the held total stays within the bytes, whatever their count.
        for i in 0..200 {
            cache.matches(key(&format!("list {i}")), || Ok(matches(40))).unwrap();
        }
        let held = cache.inner.as_ref().unwrap().weight();
        assert!(held <= 64 * 1024, "{held}");
        assert!(held > 32 * 1024, "{held}");
    }

    #[test]
    fn off_at_zero() {
        let cache = ListCache::new(0);
        let mut loads = 0;
        for _ in 0..2 {
            cache
                .matches(key("x"), || {
                    loads += 1;
                    Ok(matches(3))
                })
                .unwrap();
        }
        assert_eq!(loads, 2);
    }

    #[test]
    fn requests_missing_together_load_once() {
        let cache = ListCache::new(1024 * 1024);
        let loads = std::sync::atomic::AtomicUsize::new(0);
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    let got = cache
                        .matches(key("burst"), || {
                            loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(200));
                            Ok(matches(10))
                        })
                        .unwrap();
                    assert_eq!(got.len(), 10);
                });
            }
        });
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
        // A failed load keeps nothing: the next request loads again.
        assert!(cache.total(key("failing"), || Err(ApiError::internal("boom"))).is_err());
        assert_eq!(cache.total(key("failing"), || Ok(7)).unwrap(), 7);
    }
}
