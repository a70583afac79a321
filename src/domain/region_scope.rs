//! Region scope: the regions an admin acts in (its own and every descendant), and whether a
//! member lies within it. Pure: the region tree comes in as (id, parent) pairs.

use std::collections::{HashMap, HashSet};

use super::RegionId;
use super::ids::parse_stored;

/// The regions an admin acts in: its own regions and all their descendants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionScope {
    Tenant,
    Regions(HashSet<RegionId>),
}

impl RegionScope {
    pub fn contains(&self, region: &RegionId) -> bool {
        match self {
            RegionScope::Tenant => true,
            RegionScope::Regions(set) => set.contains(region),
        }
    }

    /// A member is within scope when it has at least one region and all lie in scope.
    pub fn covers_member(&self, member_regions: &[RegionId]) -> bool {
        match self {
            RegionScope::Tenant => true,
            RegionScope::Regions(set) => !member_regions.is_empty() && member_regions.iter().all(|r| set.contains(r)),
        }
    }
}

/// Expands regions to include all their descendants.
pub fn expand_regions(roots: &[RegionId], all: &[(String, Option<String>)]) -> HashSet<RegionId> {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, parent) in all {
        if let Some(p) = parent {
            children.entry(p.as_str()).or_default().push(id.as_str());
        }
    }
    let mut out: HashSet<RegionId> = HashSet::new();
    let mut stack: Vec<String> = roots.iter().map(|r| r.as_text()).collect();
    while let Some(id) = stack.pop() {
        if out.insert(parse_stored(&id))
            && let Some(kids) = children.get(id.as_str())
        {
            stack.extend(kids.iter().map(|k| k.to_string()));
        }
    }
    out
}
