//! Fast Snapshot Restore, read from the plan alone: only a restore that asks for it enables it,
//! only for the snapshots and zones its own volumes are made from (R13); each such volume is made
//! only once its snapshot is enabled, and every pair enabled is disabled again after the volumes
//! are made (R3: volumes as the restore says they load; EBS bills every hour a pair stays on).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use asdr_specs::Policy;

use super::Violation;
use crate::params::Params;
use crate::plan::{Plan, Step};

fn bad(rule: &'static str, step: &Step, message: String) -> Violation {
    Violation {
        rule,
        step: Some(step.id.clone()),
        message,
    }
}

/// Every step `id` depends on, directly or not.
fn ancestors<'p>(by_id: &HashMap<&str, &'p Step>, id: &str) -> HashSet<&'p str> {
    let mut seen = HashSet::new();
    let mut stack: Vec<&str> = by_id
        .get(id)
        .map(|s| s.depends_on.iter().map(String::as_str).collect())
        .unwrap_or_default();
    while let Some(d) = stack.pop() {
        if let Some(s) = by_id.get(d)
            && seen.insert(s.id.as_str())
        {
            stack.extend(s.depends_on.iter().map(String::as_str));
        }
    }
    seen
}

pub(super) fn check(policy: &Policy, world: &crate::World, plan: &Plan) -> Vec<Violation> {
    let mut out = Vec::new();
    let fsr: Vec<(&Step, &crate::params::FastSnapshotRestore)> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::FastSnapshotRestore(p) => Some((s, p)),
            _ => None,
        })
        .collect();
    let label = plan.operation.as_str();
    let restore = if let Some(name) = label.strip_prefix("restore:") {
        policy.restore(name)
    } else if let Some(name) = label.strip_prefix("drill:") {
        policy.drill(name).and_then(|d| policy.restore(&d.restore))
    } else {
        None
    };
    let asked = restore.filter(|r| r.volume.fast_snapshot_restore);
    if fsr.is_empty() && asked.is_none() {
        return out;
    }
    // (zone, snapshot) → the create_volume steps making a volume from it.
    let mut creates: BTreeMap<(&str, &str), Vec<&Step>> = BTreeMap::new();
    for s in &plan.steps {
        if let Params::CreateVolume(p) = &s.params
            && let Some(id) = &p.snapshot_id
        {
            creates
                .entry((p.availability_zone.as_str(), id.as_str()))
                .or_default()
                .push(s);
        }
    }
    let by_id: HashMap<&str, &Step> = plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    // Pairs on before the plan (a lifecycle rule's, an operator's): waited for, never turned off.
    let on_before: BTreeSet<(&str, &str, Option<&str>)> = world
        .snapshots
        .iter()
        .flat_map(|s| {
            s.fast_restore
                .iter()
                .filter(|(_, st)| matches!(st.as_str(), "enabling" | "optimizing" | "enabled"))
                .map(move |(z, _)| (z.as_str(), s.id.as_str(), s.region.as_deref()))
        })
        .collect();
    let mut enabled: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut disabled: BTreeSet<(&str, &str)> = BTreeSet::new();
    // `backup.fast_restore`: a backup turns FSR on for the newest set and off for older ones,
    // only ever on the cluster's own snapshots (R13).
    if label == "backup" && policy.backup.fast_restore.is_some() {
        for (s, p) in &fsr {
            for (zone, ids) in &p.snapshots {
                for id in ids {
                    let ours = world.snapshots.iter().any(|x| {
                        &x.id == id
                            && x.region.is_none()
                            && x.tags.get(crate::tags::CLUSTER) == Some(&policy.cluster.name)
                            && crate::tags::of_id(&x.tags, p.cluster_id.as_deref())
                    });
                    if !ours {
                        out.push(bad("R13", s, format!("touches Fast Snapshot Restore of {id} in {zone}, which is not a snapshot of this cluster")));
                    }
                }
            }
        }
        return out;
    }
    for (s, p) in &fsr {
        let Some(r) = asked else {
            out.push(bad("R13", s, format!("{} fast_snapshot_restore: only a restore that declares volume.fast_snapshot_restore enables or disables it", plan.operation)));
            continue;
        };
        if p.restore != r.name {
            out.push(bad(
                "R13",
                s,
                format!(
                    "names restore `{}`, and this plan carries out `{}`",
                    p.restore, r.name
                ),
            ));
        }
        for (zone, ids) in &p.snapshots {
            for id in ids {
                let pair = (zone.as_str(), id.as_str());
                let Some(made) = creates.get(&pair) else {
                    out.push(bad("R13", s, format!("touches Fast Snapshot Restore of {id} in {zone}, from which this plan makes no volume")));
                    continue;
                };
                let ancestors = ancestors(&by_id, &s.id);
                if p.enable {
                    enabled.insert(pair);
                    for c in made {
                        if !self::ancestors(&by_id, &c.id).contains(s.id.as_str()) {
                            out.push(bad("R3", c, format!("makes a volume from {id} in {zone} without waiting for Fast Snapshot Restore to be enabled there (`{}`): it would load lazily", s.id)));
                        }
                    }
                } else {
                    if on_before.contains(&(zone.as_str(), id.as_str(), s.region.as_deref())) {
                        out.push(bad("R13", s, format!("disables Fast Snapshot Restore of {id} in {zone}, which was on before this plan: not this restore's to turn off")));
                    }
                    disabled.insert(pair);
                    for c in made {
                        if !ancestors.contains(c.id.as_str()) {
                            out.push(bad("R3", s, format!("disables Fast Snapshot Restore of {id} in {zone} before `{}` made its volume", c.id)));
                        }
                    }
                }
            }
        }
    }
    if let Some(&(s, _)) = fsr.iter().find(|(_, p)| p.enable) {
        let left: Vec<String> = enabled
            .difference(&disabled)
            .filter(|(z, id)| !on_before.contains(&(*z, *id, s.region.as_deref())))
            .map(|(z, id)| format!("{id} in {z}"))
            .collect();
        if !left.is_empty() {
            out.push(bad("R3", s, format!("enables Fast Snapshot Restore and never disables it for {}: EBS would bill every hour it stays on", left.join(", "))));
        }
    }
    if let Some(r) = asked {
        let missing: Vec<String> = creates
            .keys()
            .filter(|pair| !enabled.contains(*pair))
            .map(|(z, id)| format!("{id} in {z}"))
            .collect();
        // Named on the first volume made without it.
        if let Some(s) = creates
            .iter()
            .find(|(pair, _)| !enabled.contains(*pair))
            .map(|(_, made)| made[0])
        {
            let mut missing = missing;
            missing.sort();
            out.push(bad("R3", s, format!("restore `{}` declares fast_snapshot_restore, and volumes from {} are made without it", r.name, missing.join(", "))));
        }
    }
    out
}
