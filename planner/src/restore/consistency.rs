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
    pending: &[&NodeView<'_>],
    full_cluster: bool,
    b: &mut Builder,
) -> Result<(), PlanError> {
    let sc = sc_namespaces(ctx);
    if sc.is_empty() {
        return Ok(());
    }
    // A running node is taken out only while every partition is available and every roster
    // member is in the cluster: one member missing plus one more out is replication factor 2
    // gone. (A full-cluster restore stops every node on purpose.)
    let takes_out: Vec<&str> = pending
        .iter()
        .filter(|v| v.health == NodeHealth::Healthy)
        .map(|v| v.name.as_str())
        .collect();
    if !full_cluster && !takes_out.is_empty() {
        let unavailable: u64 = ctx
            .obs
            .nodes
            .iter()
            .filter(|v| v.health == NodeHealth::Healthy)
            .flat_map(|v| v.observation.into_iter().flat_map(|o| &o.namespaces))
            .filter(|ns| sc.contains(&ns.name))
            .map(|ns| ns.unavailable_partitions)
            .max()
            .unwrap_or(0);
        let answering: Vec<String> = ctx
            .obs
            .nodes
            .iter()
            .filter_map(crate::node_ids::answering_id)
            .collect();
        let missing: Vec<String> = observed_roster(ctx.obs.world)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !answering.contains(r))
            .collect();
        // A down node the restore brings back first accounts for one missing member.
        let down = pending.len() - takes_out.len();
        if unavailable > 0 || missing.len() > down {
            let why = if unavailable > 0 {
                format!("{unavailable} partitions are unavailable")
            } else {
                format!(
                    "roster member(s) {} are not in the cluster",
                    missing.join(", ")
                )
            };
            return Err(refuse(
                Diagnostic::new(
                    restore.name_span,
                    format!(
                        "restore `{}` would take {} out of a strong-consistency cluster while {why}: more replicas would be gone than the namespace can lose",
                        restore.name,
                        takes_out.join(", ")
                    ),
                )
                .rule("R19")
                .help("bring the missing nodes back first (their own restores), or fix the roster by hand"),
            ));
        }
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
pub(crate) fn settle(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    node: Option<&str>,
    label: Option<&str>,
    rejoins_as_new: &[&str],
    after: String,
    b: &mut Builder,
) -> String {
    let sc = sc_namespaces(ctx);
    if sc.is_empty() {
        return after;
    }
    let suffix = node.or(label).map_or_else(String::new, |n| format!(":{n}"));
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

/// A re-roster while partitions are unavailable makes the lost members' data count for nothing
/// under the new ids (their partitions would come back dead): refused; the nodes must come back
/// as themselves.
pub(super) fn check_reroster(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    b: &Builder,
) -> Result<(), PlanError> {
    if !b.steps.iter().any(|s| s.kind() == StepKind::SetRoster) {
        return Ok(());
    }
    let unavailable = ctx
        .obs
        .nodes
        .iter()
        .filter(|v| v.health == NodeHealth::Healthy)
        .flat_map(|v| v.observation.into_iter().flat_map(|o| &o.namespaces))
        .filter(|ns| ns.strong_consistency)
        .map(|ns| ns.unavailable_partitions)
        .max()
        .unwrap_or(0);
    if unavailable == 0 {
        return Ok(());
    }
    Err(refuse(
        Diagnostic::new(
            restore.name_span,
            format!(
                "restore `{}` would set the roster to new node ids while {unavailable} partitions are unavailable: the data of the missing members would not count under new ids",
                restore.name
            ),
        )
        .rule("R19")
        .help("bring the nodes back as themselves: pin their ids (`cluster.nodes[].node_id`) or restore from a set that recorded them"),
    ))
}
