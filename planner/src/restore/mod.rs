//! Restores, one declared restore at a time: replace a failed node on its own volumes (the seed's
//! instance-failure procedure), refill it blank, roll it back to a backup set, or restore the
//! whole cluster from one set (R12). Each node converges: a healthy node whose volumes already
//! are the wanted ones gets no steps.

pub(crate) mod consistency;
pub(crate) mod data;
mod elsewhere;
mod flow;
mod placement;
pub(crate) mod zone;

use crate::builder::Builder;
use crate::error::{PlanError, refuse};
use crate::nodes::{node_params, start_kind, start_params};
use crate::observe::{BackupSet, NodeHealth, NodeView, render};
use crate::params::{self, Params, Ref};
use crate::plan::{Action, StepKind};
use crate::world::{InstanceState, SnapshotState, Volume};
use crate::{Ctx, config, tags};
use asdr_specs::{Diagnostic, Method, Node, Restore, RestoreSource, Scope};
use serde_json::json;
use std::collections::BTreeMap;

use data::Data;
pub(crate) use data::encryption;
pub(crate) use data::{check_performance, from_snapshot};
use flow::NodeFlow;
pub(crate) use flow::{restore_smd_params, write_config};

/// Every step kind `restore` can need, whatever the world holds when it runs: its IAM role is
/// prepared in advance, for the day a node fails.
pub fn step_kinds(policy: &asdr_specs::Policy, restore: &Restore) -> Vec<StepKind> {
    use StepKind::*;
    if restore.region.is_some() {
        // A new cluster in another region: nothing that exists is stopped or removed.
        return vec![
            WaitSnapshot,
            ProvisionInstance,
            CreateVolume,
            WaitVolume,
            AttachVolume,
            WriteConfig,
            RestoreSmd,
            StartNode,
            WaitClusterStable,
            MarkRestoreComplete,
        ];
    }
    let mut kinds = vec![CheckClusterStable, WaitClusterStable];
    if restore.zone.is_some() {
        // A zone-loss restore marks its new instances once they stand.
        kinds.push(MarkRestoreComplete);
    }
    if policy.backup.method == Method::Asbackup && restore.source.uses_backup() {
        kinds.push(Asrestore);
        return kinds;
    }
    // A node that failed is replaced: stopped (its instance, if it runs), its volumes detached,
    // the instance terminated, a replacement launched, volumes attached, configured, started.
    kinds.extend([
        StopNode,
        StartNode,
        StopInstance,
        DetachVolume,
        AttachVolume,
        TerminateInstance,
        ProvisionInstance,
        WriteConfig,
    ]);
    match restore.source {
        RestoreSource::CurrentVolumes => {}
        RestoreSource::Empty => kinds.extend([CreateVolume, WaitVolume]),
        _ => kinds.extend([CreateVolume, WaitVolume, WaitSnapshot]),
    }
    if restore.scope == Scope::Cluster && restore.source.uses_backup() {
        kinds.extend([WaitNodesStopped, CheckSmdArchive, RestoreSmd]);
    }
    kinds
}

/// wait_cluster_stable's parameters: `size` nodes agree.
pub(crate) fn stable(size: usize) -> Params {
    Params::WaitClusterStable(params::Stable {
        size,
        nodes: Vec::new(),
        ignore_migrations: false,
    })
}

pub(crate) fn plan(ctx: &Ctx<'_, '_>, restore: &Restore, b: &mut Builder) -> Result<(), PlanError> {
    if let Some(target) = &restore.region {
        return elsewhere::elsewhere(ctx, restore, target, b);
    }
    // Zone loss: the restore's nodes planned where it moves them, each keeping its rack.
    if let Some(moved) = ctx.policy.zone_moved(restore) {
        let at = Ctx {
            policy: &moved,
            obs: ctx.obs,
            world: ctx.world,
            now: ctx.now,
            cluster_id: ctx.cluster_id,
        };
        return zone::plan(&at, ctx.policy, restore, b);
    }
    in_place(ctx, restore, b)
}

/// A restore in the cluster's own region (its nodes where the policy places them).
fn in_place(ctx: &Ctx<'_, '_>, restore: &Restore, b: &mut Builder) -> Result<(), PlanError> {
    if ctx.policy.backup.method == Method::Asbackup && restore.source.uses_backup() {
        return crate::asbackup::restore(ctx, restore, b);
    }
    let targets: Vec<&str> = match restore.scope {
        // A zone-loss restore whose nodes the policy already places in the zone it moves them
        // to (the move was made): only a node that is down there is restored; a healthy one is
        // never rolled back to a set.
        Scope::Node if restore.zone.is_some() => restore
            .nodes
            .iter()
            .map(String::as_str)
            .filter(|n| ctx.obs.node(n).health != NodeHealth::Healthy)
            .collect(),
        Scope::Node => restore.nodes.iter().map(String::as_str).collect(),
        Scope::Cluster => ctx
            .policy
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect(),
    };
    let set = resolve_set(ctx, restore)?;
    if let Some(set) = set {
        check_set_covers(ctx, restore, set, &targets)?;
        // Only a restore that names its set takes one that is not complete: said, as `sets` and
        // `status` do not count it.
        if !set.is_complete() {
            b.warn(
                "R2",
                format!(
                    "set {} is not complete ({}): restored only because restore `{}` names it; `asdr sets` and `status` do not count it as a recovery point",
                    set.id,
                    set.manifest_problem.as_deref().unwrap_or(
                        "not marked complete: a snapshot, its completion or its SMD archive may be missing"
                    ),
                    restore.name
                ),
            );
        }
    }
    if restore.scope == Scope::Node {
        check_others_healthy(ctx, restore, &targets)?;
    }
    if restore.source == RestoreSource::Empty {
        check_refill_possible(ctx, restore)?;
    }

    let full_cluster = restore.scope == Scope::Cluster && restore.source.uses_backup();
    let mut pending: Vec<&NodeView<'_>> = targets
        .iter()
        .map(|t| ctx.obs.node(t))
        .filter(|v| !converged(v, &restore.source, set))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    // R12: a full-cluster restore brings every node to the set's moment. A node already running
    // on the set's volumes while others are not (restored alone earlier, or started before the
    // rest) has taken writes since: it is restored with the others, never left running while
    // they stop (the wait for every node to stop would never end).
    if full_cluster {
        pending = targets.iter().map(|t| ctx.obs.node(t)).collect();
    }
    warn_rules(ctx, restore, set, &pending, full_cluster, b);
    let names: Vec<&str> = pending.iter().map(|v| v.name.as_str()).collect();
    zone::warn_rack_refill(ctx, restore, &names, b);
    consistency::check(ctx, restore, &pending, full_cluster, b)?;
    crate::node_ids::check(
        ctx,
        &names,
        set,
        full_cluster && set.is_some_and(|s| s.smd_archive.is_some()),
        b,
    )?;

    // R14: disturb a cluster only once it is stable at the size it has now. A full-cluster restore
    // replaces every node's data, so the state before does not matter and is not checked.
    let check = if full_cluster {
        None
    } else {
        let up = ctx.obs.healthy_names();
        (!up.is_empty()).then(|| b.check_cluster_stable(up))
    };

    if full_cluster {
        full_cluster_flows(ctx, restore, set, &pending, b)?;
        return Ok(());
    }
    let size = ctx.policy.cluster.nodes.len();
    // Nodes that are down are out of service already: nothing more is taken out by restoring
    // them side by side, and each one's wait expects the whole cluster, which every one of them
    // (started independently of the others' waits) can reach.
    let (down, up): (Vec<&NodeView<'_>>, Vec<&NodeView<'_>>) = pending
        .iter()
        .copied()
        .partition(|v| v.health != NodeHealth::Healthy);
    let mut down_waits = Vec::new();
    for view in down {
        let mut flow = NodeFlow::prepare(ctx, restore, set, view, check.clone(), Vec::new(), b)?;
        let start = flow.finish(ctx, set, false, &[], b);
        let wait = wait_node_stable(b, &flow.node.name, start, size);
        down_waits.push(flow.settle(ctx, restore, wait, b));
    }
    // R8: a healthy node is taken out only when the nodes before it in its lane are back and
    // stable, and only after every down node is back: at most `max_nodes_at_once` out at once.
    let mut rolling = crate::nodes::Rolling::new(ctx.policy, down_waits);
    let names: Vec<&str> = up.iter().map(|v| v.name.as_str()).collect();
    for (k, &i) in crate::nodes::Rolling::order(ctx.policy, &names)
        .iter()
        .enumerate()
    {
        let view = up[i];
        let lane = rolling.before(ctx.policy, &view.name, k);
        let mut flow = NodeFlow::prepare(ctx, restore, set, view, check.clone(), lane, b)?;
        let start = flow.finish(ctx, set, false, &[], b);
        let wait = wait_node_stable(b, &flow.node.name, start, size);
        rolling.after(k, flow.settle(ctx, restore, wait, b));
    }
    consistency::check_reroster(ctx, restore, b)
}

fn wait_node_stable(b: &mut Builder, node: &str, after: String, size: usize) -> String {
    b.step(
        format!("wait_cluster_stable:{node}"),
        Some(node),
        vec![after],
        stable(size),
    )
}

/// R12: in a full-cluster restore every node is stopped before any volume is swapped. One step
/// waits for all of them and confirms no node answers any more; every swap depends on it, which
/// keeps the graph linear in the number of nodes (256 × 256 direct edges otherwise).
fn full_cluster_flows(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    set: Option<&BackupSet<'_>>,
    pending: &[&NodeView<'_>],
    b: &mut Builder,
) -> Result<(), PlanError> {
    if let Some(s) = set.filter(|s| restore.source.uses_backup() && s.manifest.is_none()) {
        b.warn(
            "R13",
            format!(
                "set {} was made before manifests: its SMD archive is checked only against the checksum beside it in the store, which whoever can write the store can replace (docs/security.md); sets made from now on have manifests, and retain retires this one once they exist",
                s.id
            ),
        );
    }
    // The SMD archive is read and checked before anything is stopped: a corrupt archive found
    // at restore_smd would leave the whole cluster down with its volumes swapped (R2).
    let smd_check: Vec<String> = set
        .filter(|_| restore.source.uses_backup())
        .and_then(|s| s.smd_archive.map(|a| (s, a)))
        .map(|(s, a)| {
            b.step(
                format!("check_smd_archive:{}", s.id),
                None,
                Vec::new(),
                Params::CheckSmdArchive(params::CheckSmdArchive {
                    set: s.id.clone(),
                    uri: a.uri.clone(),
                    sha256: s
                        .smd_sha256(&a.node)
                        .or(a.sha256.as_deref())
                        .map(str::to_string),
                }),
            )
        })
        .into_iter()
        .collect();
    let mut flows = Vec::new();
    for view in pending {
        flows.push(NodeFlow::prepare(
            ctx,
            restore,
            set,
            view,
            None,
            smd_check.clone(),
            b,
        )?);
    }
    let stops: Vec<String> = flows.iter().filter_map(|f| f.stop.clone()).collect();
    let nodes = ctx.policy.node_names();
    let all_stops = vec![b.step(
        "wait_nodes_stopped".into(),
        None,
        stops,
        Params::WaitNodesStopped(params::WaitNodesStopped {
            nodes: nodes.iter().map(|n| n.to_string()).collect(),
        }),
    )];
    let starts: Vec<String> = flows
        .iter_mut()
        .map(|flow| flow.finish(ctx, set, true, &all_stops, b))
        .collect();
    let wait = b.step(
        "wait_cluster_stable".into(),
        None,
        starts,
        stable(ctx.policy.cluster.nodes.len()),
    );
    let new: Vec<&str> = flows
        .iter()
        .filter(|f| f.rejoins_as_new)
        .map(|f| f.node.name.as_str())
        .collect();
    consistency::settle(ctx, restore, None, None, &new, wait, b);
    consistency::check_reroster(ctx, restore, b)
}

/// A node is done when it is healthy and, for restores from a set, runs on volumes made from
/// that set's snapshots.
fn converged(view: &NodeView<'_>, source: &RestoreSource, set: Option<&BackupSet<'_>>) -> bool {
    if view.health != NodeHealth::Healthy {
        return false;
    }
    match set {
        None => true,
        Some(set) => {
            view.volumes.iter().all(|d| {
                let want = set.snapshot_for(&view.name, &d.ebs).map(|s| s.id.as_str());
                d.attached && d.volume.and_then(|v| v.snapshot_id.as_deref()) == want
            }) || !source.uses_backup()
        }
    }
}

pub(crate) fn resolve_set<'a, 'w>(
    ctx: &'a Ctx<'_, 'w>,
    restore: &Restore,
) -> Result<Option<&'a BackupSet<'w>>, PlanError> {
    let at = restore.source_span;
    let set = match &restore.source {
        RestoreSource::CurrentVolumes | RestoreSource::Empty => return Ok(None),
        RestoreSource::LatestBackup => ctx.obs.newest_complete_set().ok_or_else(|| {
            refuse(
                Diagnostic::new(
                    at,
                    format!(
                        "restore `{}`: cluster `{}` has no complete backup set",
                        restore.name, ctx.policy.cluster.name
                    ),
                )
                .rule("R2"),
            )
        })?,
        RestoreSource::Set(id) => ctx.obs.set(id).ok_or_else(|| {
            let known: Vec<&str> = ctx
                .obs
                .sets
                .iter()
                .rev()
                .take(5)
                .map(|s| s.id.as_str())
                .collect();
            refuse(Diagnostic::new(
                at,
                format!(
                    "restore `{}`: no backup set {id} (newest: {})",
                    restore.name,
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ))
        })?,
        RestoreSource::Before(t) => ctx.obs.complete_set_before(*t).ok_or_else(|| {
            refuse(
                Diagnostic::new(
                    at,
                    format!(
                        "restore `{}`: no complete backup set was taken before {}",
                        restore.name,
                        restore.source.to_string().trim_start_matches("before:")
                    ),
                )
                .rule("R2"),
            )
        })?,
    };
    Ok(Some(set))
}

pub(crate) fn check_set_covers(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    set: &BackupSet<'_>,
    targets: &[&str],
) -> Result<(), PlanError> {
    for t in targets {
        for d in &ctx.obs.node(t).volumes {
            match set.snapshot_for(t, &d.ebs) {
                None => {
                    return Err(refuse(Diagnostic::new(
                        restore.source_span,
                        format!(
                            "restore `{}`: set {} has no snapshot of {t} {}",
                            restore.name, set.id, d.ebs
                        ),
                    )));
                }
                Some(s) if matches!(s.state, SnapshotState::Error) => {
                    return Err(refuse(
                        Diagnostic::new(restore.source_span, format!("restore `{}`: snapshot {} of {t} {} in set {} failed (state error)", restore.name, s.id, d.ebs, set.id))
                            .rule("R3"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    if restore.scope == Scope::Cluster && set.smd_archive.is_none() {
        return Err(refuse(
            Diagnostic::new(restore.source_span, format!("restore `{}`: set {} has no SMD archive, and a whole cluster started without SMD loses its secondary indexes, UDFs and truncate marks", restore.name, set.id))
                .rule("R2"),
        ));
    }
    Ok(())
}

/// A node-scope restore runs inside a cluster that must otherwise be whole (R14).
fn check_others_healthy(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    targets: &[&str],
) -> Result<(), PlanError> {
    for view in &ctx.obs.nodes {
        if targets.contains(&view.name.as_str()) || view.health == NodeHealth::Healthy {
            continue;
        }
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{}`: node `{}`, which this restore does not cover, is {}",
                    restore.name,
                    view.name,
                    view.health.describe()
                ),
            )
            .rule("R14")
            .help(format!(
                "add `{}` to this restore's nodes, or restore it first",
                view.name
            )),
        ));
    }
    Ok(())
}

/// `source: empty` refills from replicas: every partition must have a live copy elsewhere.
fn check_refill_possible(ctx: &Ctx<'_, '_>, restore: &Restore) -> Result<(), PlanError> {
    for view in ctx
        .obs
        .nodes
        .iter()
        .filter(|n| n.health == NodeHealth::Healthy)
    {
        let o = view.observation.expect("healthy nodes are observed");
        if o.dead_partitions > 0 || o.unavailable_partitions > 0 {
            return Err(refuse(
                Diagnostic::new(
                    restore.source_span,
                    format!(
                        "restore `{}` refills from the other replicas, but node `{}` reports {} dead and {} unavailable partitions: data would be lost",
                        restore.name, view.name, o.dead_partitions, o.unavailable_partitions
                    ),
                )
                .help("restore from current volumes or a backup set instead"),
            ));
        }
    }
    Ok(())
}

fn warn_rules(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    set: Option<&BackupSet<'_>>,
    pending: &[&NodeView<'_>],
    full_cluster: bool,
    b: &mut Builder,
) {
    let names: Vec<&str> = pending.iter().map(|v| v.name.as_str()).collect();
    let names = names.join(", ");
    let durable = ctx.policy.cluster.durable_deletes;
    if full_cluster {
        b.warn("R6", format!(
            "the whole cluster goes back to set {}: records deleted before that backup may reappear{}",
            set.map_or("", |s| s.id.as_str()),
            if durable { " only where deletes were not durable" } else { " unless deletes are durable (on a test cluster, a full-cluster cold restart brought back all 700 of 700 deleted records)" }
        ));
        b.warn(
            "R2",
            format!(
                "SMD of set {} is put back on every node before Aerospike starts",
                set.map_or("", |s| s.id.as_str())
            ),
        );
    } else {
        if restore.source.brings_data() {
            let how = match &restore.source {
                RestoreSource::CurrentVolumes => {
                    "its own volumes, which missed every delete made while it was down (on a test cluster, 192 of 300 deleted records came back)"
                }
                _ => {
                    "volumes from a backup, which hold records deleted since (on a test cluster, 196 of 300 deleted records came back)"
                }
            };
            let alt = if ctx.policy.min_replication_factor() >= 2 {
                "; `source: empty` (rejoin blank, refill by migration) brings none back"
            } else {
                ""
            };
            b.warn(
                "R6",
                format!(
                    "{names} cold-start on {how}; {}{alt}",
                    if durable {
                        "the policy declares durable deletes"
                    } else {
                        "accepted by accept_zombie_records"
                    }
                ),
            );
        }
        b.warn("R2", format!("SMD is not restored on {names}: a node that joins a running cluster receives SMD from its peers"));
    }
    if ctx
        .policy
        .cluster
        .namespaces
        .iter()
        .any(|ns| ns.devices.iter().any(|d| d.shadow.is_some()))
    {
        b.warn("R5", "the EBS shadow devices are authoritative on cold start: instance-store primaries start blank and are rebuilt from them");
    }
}
