//! Strong-consistency namespaces in a restore (R19): dead partitions are never revived unless the
//! restore says so; a node that joins with an id the roster does not hold is re-rostered in a
//! planned step; every restore ends waiting until no partition is unavailable.

use super::*;

/// The policy's strong-consistency namespaces.
pub(crate) fn sc_namespaces(ctx: &Ctx<'_, '_>) -> Vec<String> {
    ctx.policy
        .cluster
        .namespaces
        .iter()
        .filter(|n| n.strong_consistency)
        .map(|n| n.name.clone())
        .collect()
}

/// The roster the strong-consistency namespaces hold, as the nodes that answer report it; None
/// when none reports one (not strong consistency, or a world observed before rosters were).
pub(crate) fn observed_roster(
    world: &crate::world::World,
) -> Option<std::collections::BTreeSet<String>> {
    let ids: std::collections::BTreeSet<String> = world
        .nodes
        .iter()
        .filter(|n| n.reachable)
        .flat_map(|n| &n.namespaces)
        .filter(|ns| ns.strong_consistency)
        .flat_map(|ns| ns.roster.iter().cloned())
        .collect();
    (!ids.is_empty()).then_some(ids)
}

/// Refuses a restore while a node reports dead partitions in a strong-consistency namespace,
/// unless it declares `accept_dead_partitions`; warns where dead partitions are to be expected.
pub(super) fn check(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    full_cluster: bool,
    b: &mut Builder,
) -> Result<(), PlanError> {
    let sc = sc_namespaces(ctx);
    if sc.is_empty() {
        return Ok(());
    }
    let mut dead: BTreeMap<&str, u64> = BTreeMap::new();
    for view in ctx
        .obs
        .nodes
        .iter()
        .filter(|v| v.health == NodeHealth::Healthy)
    {
        for ns in view.observation.iter().flat_map(|o| &o.namespaces) {
            if sc.contains(&ns.name) && ns.dead_partitions > 0 {
                let d = dead.entry(ns.name.as_str()).or_default();
                *d = (*d).max(ns.dead_partitions);
            }
        }
    }
    if !dead.is_empty() && !restore.accept_dead_partitions {
        let list = dead
            .iter()
            .map(|(ns, n)| format!("{ns} ({n})"))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{}`: the nodes report dead partitions in strong-consistency namespace {list}; reviving them accepts that their last writes may be lost",
                    restore.name
                ),
            )
            .rule("R19")
            .help("declare `accept_dead_partitions: true` on this restore to revive them, or revive them by hand after deciding so"),
        ));
    }
    if full_cluster
        && restore.source.uses_backup()
        && ctx.policy.backup.consistency != asdr_specs::Consistency::StopNode
        && !restore.accept_dead_partitions
    {
        b.warn(
            "R19",
            format!(
                "every node of strong-consistency namespace {} comes back from snapshots of a running node, which strong consistency counts as an unclean shutdown: without `commit-to-device` its partitions come back dead, and `accept_dead_partitions: true` is needed to revive them (the restore stops at wait_partitions_available otherwise)",
                sc.join(", ")
            ),
        );
    }
    Ok(())
}

/// After `after` (a node's or the cluster's wait for stability): the roster set again when a
/// restored node joins with an id the roster does not hold, then the wait until no partition is
/// unavailable. Returns the last step (`after` when no namespace is strong-consistency).
pub(super) fn settle(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    node: Option<&str>,
    rejoins_as_new: &[&str],
    after: String,
    b: &mut Builder,
) -> String {
    let sc = sc_namespaces(ctx);
    if sc.is_empty() {
        return after;
    }
    let suffix = node.map_or_else(String::new, |n| format!(":{n}"));
    let mut last = after;
    if !rejoins_as_new.is_empty() {
        b.warn(
            "R19",
            format!(
                "{} joins with a node id the roster does not hold: set_roster sets the roster of {} to the nodes observed once all {} are there, which drops the id it had",
                rejoins_as_new.join(", "),
                sc.join(", "),
                ctx.policy.cluster.nodes.len()
            ),
        );
        last = b.step(
            format!("set_roster{suffix}"),
            node,
            vec![last],
            Params::SetRoster(params::SetRoster {
                namespaces: sc.clone(),
                size: ctx.policy.cluster.nodes.len(),
            }),
        );
    }
    b.step(
        format!("wait_partitions_available{suffix}"),
        node,
        vec![last],
        Params::WaitPartitionsAvailable(params::WaitPartitionsAvailable {
            namespaces: sc,
            revive: restore.accept_dead_partitions,
        }),
    )
}
