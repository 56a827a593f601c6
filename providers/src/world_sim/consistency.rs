//! Strong consistency as the simulated nodes have it (R19): each reachable node's SC namespaces
//! carry the roster and the ids observed; a partition is unavailable while replication-factor
//! roster members are missing; dead partitions stay until revived.

use super::*;

/// The ids of the nodes that answer.
fn observed_ids(world: &World) -> Vec<String> {
    let mut ids: Vec<String> = world
        .nodes
        .iter()
        .filter(|n| n.reachable)
        .filter_map(|n| n.node_id.clone())
        .collect();
    ids.sort();
    ids
}

/// Recomputes what every reachable node reports for its SC namespaces.
pub(super) fn refresh(world: &mut World) {
    let ids = observed_ids(world);
    for n in world.nodes.iter_mut().filter(|n| n.reachable) {
        for ns in n.namespaces.iter_mut().filter(|ns| ns.strong_consistency) {
            ns.observed_nodes = ids.clone();
            let missing = ns.roster.iter().filter(|r| !ids.contains(r)).count() as u32;
            let rf = ns.replication_factor.unwrap_or(2).max(1);
            ns.unavailable_partitions = if missing >= rf { 4096 } else { 0 };
        }
    }
}

pub(super) fn set_roster(world: &mut World, p: &params::SetRoster) -> Result<Progress, StepError> {
    let ids = observed_ids(world);
    if ids.len() < p.size {
        return Progress::pending(
            format!("the namespaces observe {} of {} nodes", ids.len(), p.size),
            None,
        );
    }
    for n in world.nodes.iter_mut().filter(|n| n.reachable) {
        for ns in n
            .namespaces
            .iter_mut()
            .filter(|ns| ns.strong_consistency && p.namespaces.contains(&ns.name))
        {
            ns.roster = ids.clone();
        }
    }
    refresh(world);
    Progress::finished()
}

pub(super) fn partitions_available(
    world: &mut World,
    p: &params::WaitPartitionsAvailable,
) -> Result<Progress, StepError> {
    refresh(world);
    let mut waiting = Vec::new();
    for name in &p.namespaces {
        let of = |f: fn(&ObservedNamespace) -> u64| {
            world
                .nodes
                .iter()
                .filter(|n| n.reachable)
                .flat_map(|n| n.namespaces.iter().filter(|ns| ns.name == *name))
                .map(f)
                .max()
                .unwrap_or(0)
        };
        let (dead, unavailable) = (
            of(|ns| ns.dead_partitions),
            of(|ns| ns.unavailable_partitions),
        );
        if dead > 0 {
            if !p.revive {
                return Err(bad(
                    "R19",
                    format!(
                        "[R19] namespace {name} has {dead} dead partitions: their last writes may be lost; revived only for a restore that declares `accept_dead_partitions: true`"
                    ),
                ));
            }
            for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                for ns in n.namespaces.iter_mut().filter(|ns| ns.name == *name) {
                    ns.dead_partitions = 0;
                }
            }
            waiting.push(format!("{name}: {dead} dead partitions revived"));
        } else if unavailable > 0 {
            waiting.push(format!("{name}: {unavailable} partitions unavailable"));
        } else {
            let ids = observed_ids(world);
            let missing: Vec<String> = world
                .nodes
                .iter()
                .filter(|n| n.reachable)
                .flat_map(|n| n.namespaces.iter().filter(|ns| ns.name == *name))
                .flat_map(|ns| ns.roster.iter())
                .filter(|r| !ids.contains(r))
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !missing.is_empty() {
                waiting.push(format!(
                    "{name}: roster member {} not in the cluster",
                    missing.join(", ")
                ));
            }
        }
    }
    for n in world.nodes.iter_mut() {
        n.dead_partitions = n.namespaces.iter().map(|ns| ns.dead_partitions).sum();
        n.unavailable_partitions = n
            .namespaces
            .iter()
            .map(|ns| ns.unavailable_partitions)
            .sum();
    }
    if waiting.is_empty() {
        Progress::finished()
    } else {
        Progress::pending(waiting.join("; "), None)
    }
}
