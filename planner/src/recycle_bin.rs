//! Recycle Bin coverage: whether the region's retention rules keep asdr's deleted snapshots, and
//! for how long. asdr creates no rule (`asdr recycle-bin-rule` prints one); it reports what the
//! rules in place do for the cluster's snapshots, in plans that delete and in `status`.

use std::collections::BTreeMap;

use asdr_specs::Policy;
use serde::Serialize;

use crate::world::{RecycleRule, World};

/// What the Recycle Bin does for the cluster's snapshots in one region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Coverage {
    /// Kept `days` after a delete by `rule` (the longest-keeping rule that matches).
    Covered {
        rule: String,
        days: u32,
        /// Whether that rule is locked (it cannot be removed before its unlock delay).
        locked: bool,
        /// What a locked matching rule keeps them for, whatever is removed (0: none is locked).
        locked_days: u32,
    },
    /// No rule matches: a deleted snapshot is gone at once.
    NotCovered,
    /// The rules were not observed.
    Unobserved,
}

/// The tags every snapshot asdr makes for the cluster carries (a rule matching one of them keeps
/// them all).
fn snapshot_tags(policy: &Policy) -> BTreeMap<String, String> {
    let mut t = policy.backup.tags.clone();
    t.insert(crate::tags::CLUSTER.into(), policy.cluster.name.clone());
    t
}

fn matches(rule: &RecycleRule, tags: &BTreeMap<String, String>) -> bool {
    let any = |of: &BTreeMap<String, String>| {
        of.iter()
            .any(|(k, v)| tags.get(k).is_some_and(|t| v.is_empty() || t == v))
    };
    if rule.tags.is_empty() {
        !any(&rule.exclude_tags)
    } else {
        any(&rule.tags)
    }
}

/// The Recycle Bin's coverage of the cluster's snapshots in `region`.
pub fn coverage(policy: &Policy, world: &World, region: &str) -> Coverage {
    let Some(rules) = world.recycle_bin.get(region) else {
        return Coverage::Unobserved;
    };
    let tags = snapshot_tags(policy);
    let matching: Vec<&RecycleRule> = rules.iter().filter(|r| matches(r, &tags)).collect();
    match matching.iter().max_by_key(|r| (r.retention_days, r.locked)) {
        Some(r) => Coverage::Covered {
            rule: r.id.clone(),
            days: r.retention_days,
            locked: r.locked,
            locked_days: matching
                .iter()
                .filter(|m| m.locked)
                .map(|m| m.retention_days)
                .max()
                .unwrap_or(0),
        },
        None => Coverage::NotCovered,
    }
}

/// Every region the policy keeps snapshots in, with its coverage.
pub fn all(policy: &Policy, world: &World) -> BTreeMap<String, Coverage> {
    std::iter::once(policy.cluster.region.as_str())
        .chain(policy.backup.copies.iter().map(|c| c.region.as_str()))
        .map(|r| (r.to_string(), coverage(policy, world, r)))
        .collect()
}

/// What a plan that deletes snapshots in `region` says of where they go.
pub(crate) fn on_delete(policy: &Policy, world: &World, region: &str) -> Option<String> {
    let said = asdr_specs::place_text(region);
    match coverage(policy, world, region) {
        Coverage::Covered {
            rule,
            days,
            locked,
            locked_days,
        } => Some(format!(
            "the snapshots deleted in {said} are kept {days} days in the Recycle Bin (rule {rule}{}), and can be restored from it until then",
            locked_note(locked, locked_days)
        )),
        Coverage::NotCovered => Some(format!(
            "no Recycle Bin rule in {said} keeps asdr's snapshots: the snapshots deleted there are gone at once (`asdr recycle-bin-rule` prints a rule)"
        )),
        Coverage::Unobserved => None,
    }
}

/// How much of the Recycle Bin's keeping no one can remove: the rule's own lock, else a locked
/// rule keeping them for less.
pub fn locked_note(locked: bool, locked_days: u32) -> String {
    match (locked, locked_days) {
        (true, _) => ", locked".to_string(),
        (false, 0) => ", not locked: whoever may delete rules can remove it".to_string(),
        (false, d) => format!(", not locked; a locked rule keeps them {d} days"),
    }
}
