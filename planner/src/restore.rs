//! Restores, one declared restore at a time: replace a failed node on its own volumes (the seed's
//! instance-failure procedure), refill it blank, roll it back to a backup set, or restore the
//! whole cluster from one set (R12). Each node converges: a healthy node whose volumes already
//! are the wanted ones gets no steps.

use asdr_specs::{Diagnostic, Method, Node, Restore, RestoreSource, Scope};
use serde_json::{Value, json};

use crate::backup::node_params;
use crate::builder::Builder;
use crate::error::{PlanError, refuse};
use crate::observe::{BackupSet, NodeHealth, NodeView, render};
use crate::plan::{Action, StepKind};
use crate::world::{InstanceState, SnapshotState, Volume};
use crate::{Ctx, config, tags};

/// Where a device's data comes from on the restored node.
enum Data<'w> {
    /// The node's existing volume.
    Existing(&'w Volume),
    /// A new blank volume of this size and type.
    Blank {
        size_gib: u32,
        volume_type: String,
        iops: Option<u32>,
        throughput: Option<u32>,
    },
    /// A new volume from this snapshot.
    FromSnapshot(&'w crate::world::Snapshot, Option<&'w Volume>),
}

pub(crate) fn plan(ctx: &Ctx<'_, '_>, restore: &Restore, b: &mut Builder) -> Result<(), PlanError> {
    if ctx.policy.backup.method == Method::Asbackup && restore.source.uses_backup() {
        return crate::asbackup::restore(ctx, restore, b);
    }
    let targets: Vec<&str> = match restore.scope {
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
    }
    if restore.scope == Scope::Node {
        check_others_healthy(ctx, restore, &targets)?;
    }
    if restore.source == RestoreSource::Empty {
        check_refill_possible(ctx, restore)?;
    }

    let pending: Vec<&NodeView<'_>> = targets
        .iter()
        .map(|t| ctx.obs.node(t))
        .filter(|v| !converged(v, &restore.source, set))
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let full_cluster = restore.scope == Scope::Cluster && restore.source.uses_backup();
    warn_rules(ctx, restore, set, &pending, full_cluster, b);

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
        down_waits.push(wait_node_stable(b, &flow.node.name, start, size));
    }
    // R8: a healthy node is taken out only when the nodes before it in its lane are back and
    // stable, and only after every down node is back: at most `max_nodes_at_once` out at once.
    let lanes = ctx.policy.backup.max_nodes_at_once.max(1) as usize;
    let mut lane_tail: Vec<Vec<String>> = vec![down_waits; lanes];
    for (i, view) in up.into_iter().enumerate() {
        let lane = i % lanes;
        let mut flow = NodeFlow::prepare(
            ctx,
            restore,
            set,
            view,
            check.clone(),
            lane_tail[lane].clone(),
            b,
        )?;
        let start = flow.finish(ctx, set, false, &[], b);
        lane_tail[lane] = vec![wait_node_stable(b, &flow.node.name, start, size)];
    }
    Ok(())
}

fn wait_node_stable(b: &mut Builder, node: &str, after: String, size: usize) -> String {
    b.step(
        StepKind::WaitClusterStable,
        format!("wait_cluster_stable:{node}"),
        Some(node),
        vec![after],
        json!({"size": size, "ignore_migrations": false}),
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
    let mut flows = Vec::new();
    for view in pending {
        flows.push(NodeFlow::prepare(
            ctx,
            restore,
            set,
            view,
            None,
            Vec::new(),
            b,
        )?);
    }
    let stops: Vec<String> = flows.iter().filter_map(|f| f.stop.clone()).collect();
    let nodes: Vec<&str> = ctx
        .policy
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    let all_stops = vec![b.step(
        StepKind::WaitNodesStopped,
        "wait_nodes_stopped".into(),
        None,
        stops,
        json!({"nodes": nodes}),
    )];
    let starts: Vec<String> = flows
        .iter_mut()
        .map(|flow| flow.finish(ctx, set, true, &all_stops, b))
        .collect();
    b.step(
        StepKind::WaitClusterStable,
        "wait_cluster_stable".into(),
        None,
        starts,
        json!({"size": ctx.policy.cluster.nodes.len(), "ignore_migrations": false}),
    );
    Ok(())
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
        RestoreSource::Before(t) => ctx
            .obs
            .sets
            .iter()
            .rev()
            .find(|s| s.is_complete() && s.data_time() < *t)
            .ok_or_else(|| {
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
            if durable { " only where deletes were not durable" } else { " unless deletes are durable (measured: a full-cluster cold restart brought back all 700 of 700 deletes)" }
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
                    "its own volumes, which missed every delete made while it was down (measured: 192 of 300 came back)"
                }
                _ => {
                    "volumes from a backup, which hold records deleted since (measured: 196 of 300 came back)"
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

/// One data device of a restored node.
struct DeviceFlow {
    ebs: String,
    /// The volume to attach: an id, or `{"from_step": …}` for one this plan creates.
    volume: Value,
    /// The steps that make that volume ready.
    ready: Vec<String>,
    /// The attachment to remove first.
    old: Option<OldAttachment>,
}

struct OldAttachment {
    volume_id: String,
    instance_id: String,
    delete_on_termination: bool,
    /// The volume leaves the node for good (another takes its place): mark it superseded so
    /// `source: current-volumes` never reattaches it.
    superseded: bool,
}

/// The steps of one node, built in two halves: `prepare` (volumes ready, the node out of service)
/// and `finish` (swap, configure, start), so a full-cluster restore can put every stop before
/// every swap (R12).
struct NodeFlow<'n> {
    node: &'n Node,
    /// The step that took a healthy node out (stop_node), if any.
    stop: Option<String>,
    /// The step that stopped a running instance whose Aerospike does not answer, so its volumes
    /// are never detached from a running machine.
    stop_instance: Option<String>,
    /// The instance volumes attach to: the live one, or a replacement from this step.
    instance: Value,
    replaced: bool,
    /// The old instance to terminate (id, why), when it still exists.
    old_instance: Option<(String, String)>,
    devices: Vec<DeviceFlow>,
    check: Option<String>,
    subnet: Option<String>,
}

impl<'n> NodeFlow<'n> {
    /// `lane`: the steps this node's stop waits for (R8: the nodes before it are back).
    fn prepare(
        ctx: &'n Ctx<'_, '_>,
        restore: &Restore,
        set: Option<&BackupSet<'_>>,
        view: &NodeView<'_>,
        check: Option<String>,
        lane: Vec<String>,
        b: &mut Builder,
    ) -> Result<Self, PlanError> {
        let node = ctx.policy_node(&view.name);
        let replaced = view.health != NodeHealth::Healthy;
        let base: Vec<String> = check.clone().into_iter().collect();
        let live_old = view
            .instance
            .filter(|i| i.state != InstanceState::Terminated && replaced);
        if view.health == NodeHealth::Unreachable {
            check_not_a_member(ctx, restore, view)?;
        }
        let subnet = if replaced {
            Some(replacement_subnet(ctx, node, view, b)?)
        } else {
            None
        };
        let mut devices = Vec::new();
        for d in &view.volumes {
            let data = data_for(ctx, restore, set, view, node, d)?;
            let (volume_ref, ready): (Value, Vec<String>) = match data {
                Data::Existing(v) => {
                    if replaced {
                        // The reviewer sees exactly which volume goes back on the node.
                        b.change(
                            format!("volume.{}.{}", node.name, d.ebs),
                            Action::Update,
                            format!(
                                "{} is reattached to the replacement at {} (the volume the node last ran on)",
                                v.id, d.ebs
                            ),
                            Some(json!({"volume_id": v.id, "state": v.state, "attached_to": v.attachments.first().map(|a| a.instance_id.clone())})),
                            Some(json!({"volume_id": v.id, "device": d.ebs, "attached_to": format!("provision_instance:{}", node.name)})),
                        );
                    }
                    (json!(v.id), Vec::new())
                }
                other => {
                    let (id, params, change) =
                        create_volume(ctx, restore, node, &d.ebs, &other, set, d)?;
                    let mut deps = base.clone();
                    if let Data::FromSnapshot(s, _) = &other
                        && s.state != SnapshotState::Completed
                    {
                        // R3: volumes come only from completed snapshots.
                        deps.push(b.step(
                            StepKind::WaitSnapshot,
                            format!("wait_snapshot:{}", s.id),
                            Some(&node.name),
                            base.clone(),
                            json!({"snapshot_id": s.id, "progress": s.progress}),
                        ));
                    }
                    b.change(
                        format!("volume.{}.{}", node.name, d.ebs),
                        Action::Create,
                        change,
                        None,
                        Some(params.clone()),
                    );
                    let created = b.step(
                        StepKind::CreateVolume,
                        id.clone(),
                        Some(&node.name),
                        deps,
                        params,
                    );
                    let ready = b.step(
                        StepKind::WaitVolume,
                        format!("wait_volume:{}:{}", node.name, d.ebs),
                        Some(&node.name),
                        vec![created],
                        json!({"volume_id": {"from_step": id}}),
                    );
                    (json!({"from_step": id}), vec![ready])
                }
            };
            let same = matches!(data_kind(&volume_ref, d.volume), Same::Yes);
            // The old attachment goes when the volume changes, or when the old instance goes (R7).
            let swapping = !same || live_old.is_some();
            let old = match (d.attached, d.volume, view.instance) {
                (true, Some(old), Some(inst))
                    if swapping && inst.state != InstanceState::ShuttingDown =>
                {
                    Some(OldAttachment {
                        volume_id: old.id.clone(),
                        instance_id: inst.id.clone(),
                        delete_on_termination: d.delete_on_termination,
                        superseded: !same,
                    })
                }
                _ => None,
            };
            devices.push(DeviceFlow {
                ebs: d.ebs.clone(),
                volume: volume_ref,
                ready,
                old,
            });
        }
        // Stop a healthy node only when its new volumes are ready (the write-stop window stays
        // short) and its lane's previous node is back (R8).
        let stop = (!replaced).then(|| {
            let mut deps = base.clone();
            deps.extend(lane.iter().cloned());
            for d in &devices {
                deps.extend(d.ready.iter().cloned());
            }
            let mut params = node_params(ctx, node, StepKind::StopNode);
            if restore.scope == Scope::Cluster && restore.source.uses_backup() {
                // R12 takes every node down: the rolling limit does not count these stops.
                params["rolling"] = json!(false);
            }
            b.step(
                StepKind::StopNode,
                format!("stop_node:{}", node.name),
                Some(&node.name),
                deps,
                params,
            )
        });
        // An instance that runs while its Aerospike does not answer is stopped (and waited for)
        // before any volume is taken from it: detaching from a running machine can tear writes.
        let stop_instance = match live_old {
            Some(old)
                if matches!(old.state, InstanceState::Running | InstanceState::Pending)
                    && devices.iter().any(|d| d.old.is_some()) =>
            {
                b.change(
                    format!("instance.{}.state", node.name),
                    Action::Update,
                    format!(
                        "node {} is {}: its instance is stopped before its volumes are detached",
                        node.name,
                        view.health.describe()
                    ),
                    Some(json!({"instance_id": old.id, "state": old.state})),
                    Some(json!({"instance_id": old.id, "state": "stopped"})),
                );
                Some(b.step(
                    StepKind::StopInstance,
                    format!("stop_instance:{}", node.name),
                    Some(&node.name),
                    base.clone(),
                    json!({"instance_id": old.id, "force": true, "wait_until": "stopped"}),
                ))
            }
            _ => None,
        };
        let old_instance = live_old.map(|old| {
            if view.volumes.iter().any(|d| d.attached && d.delete_on_termination) {
                b.warn("R7", format!(
                    "{}'s data volumes are attached with DeleteOnTermination=true: they are detached before instance {} is terminated, and kept",
                    node.name, old.id
                ));
            }
            (old.id.clone(), format!("node {} is {}", node.name, view.health.describe()))
        });
        let instance = if replaced {
            json!({"from_step": format!("provision_instance:{}", node.name)})
        } else {
            json!(view.instance.map(|i| i.id.clone()))
        };
        if replaced {
            let after = provision_params(ctx, node, subnet.as_deref(), None);
            let (action, before) = match live_old {
                Some(old) => (
                    Action::Replace,
                    Some(json!({"instance_id": old.id, "state": old.state})),
                ),
                None => (
                    Action::Create,
                    view.instance
                        .map(|old| json!({"instance_id": old.id, "state": old.state})),
                ),
            };
            b.change(
                format!("instance.{}", node.name),
                action,
                format!(
                    "node {} is {}: a replacement with the same private IP, AZ and subnet (R4)",
                    node.name,
                    view.health.describe()
                ),
                before,
                Some(after),
            );
            check_instance_type(ctx, b)?;
        }
        Ok(NodeFlow {
            node,
            stop,
            stop_instance,
            instance,
            replaced,
            old_instance,
            devices,
            check,
            subnet,
        })
    }

    /// Attach, configure, (SMD), start. Returns the start step.
    fn finish(
        &mut self,
        ctx: &Ctx<'_, '_>,
        set: Option<&BackupSet<'_>>,
        full_cluster: bool,
        all_stops: &[String],
        b: &mut Builder,
    ) -> String {
        let node = self.node;
        let base: Vec<String> = self.check.clone().into_iter().collect();
        // Detach after this node's stop (of Aerospike, or of its instance) and, in a full-cluster
        // restore, after every stop (R12).
        let mut detaches = Vec::new();
        let mut detach_of = Vec::new();
        for DeviceFlow { ebs, old, .. } in &self.devices {
            detach_of.push(old.as_ref().map(|old| {
                let deps: Vec<String> = self
                    .stop
                    .iter()
                    .chain(&self.stop_instance)
                    .chain(&base)
                    .chain(all_stops)
                    .cloned()
                    .collect();
                let id = b.step(
                    StepKind::DetachVolume,
                    format!("detach_volume:{}:{ebs}", node.name),
                    Some(&node.name),
                    deps,
                    json!({
                        "volume_id": old.volume_id,
                        "instance_id": old.instance_id,
                        "device": ebs,
                        "delete_on_termination": old.delete_on_termination,
                        "supersede": old.superseded,
                    }),
                );
                detaches.push(id.clone());
                id
            }));
        }
        // R7: the old instance goes only once its data volumes are detached.
        let old_terminate = self.old_instance.as_ref().map(|(instance_id, why)| {
            let deps: Vec<String> = detaches
                .iter()
                .chain(&self.stop_instance)
                .chain(&base)
                .chain(all_stops)
                .cloned()
                .collect();
            b.step(
                StepKind::TerminateInstance,
                format!("terminate_instance:{}", node.name),
                Some(&node.name),
                deps,
                json!({"instance_id": instance_id, "wait_until": "terminated", "reason": why}),
            )
        });
        let provision = self.replaced.then(|| {
            // IP reuse: the replacement may launch only once the old instance is terminated.
            let deps: Vec<String> = base.iter().cloned().chain(old_terminate.clone()).collect();
            let id = format!("provision_instance:{}", node.name);
            b.step(
                StepKind::ProvisionInstance,
                id.clone(),
                Some(&node.name),
                deps,
                provision_params(ctx, node, self.subnet.as_deref(), Some(&id)),
            )
        });
        let mut before_start = Vec::new();
        for (
            DeviceFlow {
                ebs,
                volume: volume_ref,
                ready,
                ..
            },
            detach,
        ) in self.devices.iter().zip(&detach_of)
        {
            let unchanged = detach.is_none() && ready.is_empty() && !self.replaced;
            if unchanged {
                continue;
            }
            let mut deps: Vec<String> = ready.clone();
            deps.extend(detach.iter().cloned());
            deps.extend(provision.iter().cloned());
            deps.extend(self.stop.iter().cloned());
            deps.extend(all_stops.iter().cloned());
            before_start.push(b.step(
                StepKind::AttachVolume,
                format!("attach_volume:{}:{ebs}", node.name),
                Some(&node.name),
                deps,
                json!({"volume_id": volume_ref, "instance_id": self.instance, "device": ebs}),
            ));
        }
        let out_of_service: Vec<String> =
            provision.iter().chain(self.stop.iter()).cloned().collect();
        let rendered = config::render(ctx.policy, node);
        let current = ctx
            .obs
            .node(&node.name)
            .observation
            .and_then(|o| o.config.as_deref());
        let diff = config::diff(current, &rendered.content, &rendered.path);
        if self.replaced || diff.is_some() {
            let action = if current.is_some() {
                Action::Update
            } else {
                Action::Create
            };
            let reason = if self.replaced {
                "a replacement is configured exactly as the node it replaces (R4)"
            } else {
                "the node's aerospike.conf differs from the policy's template"
            };
            let change = b.change(
                format!("config.{}", node.name),
                action,
                reason,
                None,
                Some(json!({"path": rendered.path})),
            );
            change.diff = diff.or_else(|| {
                Some(format!(
                    "(no difference from the current {})\n",
                    rendered.path
                ))
            });
            // After the volumes are attached, as the seed's procedure has it: attach, then restore
            // the config, then restart.
            let mut deps = out_of_service.clone();
            deps.extend(base.iter().cloned());
            deps.extend(before_start.iter().cloned());
            before_start.push(b.step(
                StepKind::WriteConfig,
                format!("write_config:{}", node.name),
                Some(&node.name),
                deps,
                json!({"path": rendered.path, "content": rendered.content, "keep_previous": ".asdr-prev"}),
            ));
        }
        if full_cluster && let Some(set) = set {
            let archive = set.smd_archive.expect("check_set_covers requires it");
            let vars = ctx.vars(node);
            let smd_dir = format!(
                "{}/smd",
                render(&ctx.policy.cluster.work_directory, &vars).trim_end_matches('/')
            );
            let mut deps = out_of_service.clone();
            deps.extend(all_stops.iter().cloned());
            before_start.push(b.step(
                StepKind::RestoreSmd,
                format!("restore_smd:{}", node.name),
                Some(&node.name),
                deps,
                restore_smd_params(&set.id, &archive.uri, &smd_dir, archive.sha256.as_deref()),
            ));
        }
        before_start.extend(out_of_service);
        b.step(
            StepKind::StartNode,
            format!("start_node:{}", node.name),
            Some(&node.name),
            before_start,
            node_params(ctx, node, StepKind::StartNode),
        )
    }
}

/// restore_smd replaces the SMD directory with exactly the archive's content; what was there is
/// kept aside as `smd.asdr-prev` (R2: merging would keep truncates and dropped indexes issued
/// after the backup).
pub(crate) fn restore_smd_params(set: &str, from: &str, to: &str, sha256: Option<&str>) -> Value {
    json!({"set": set, "from": from, "to": to, "sha256": sha256, "replace": true, "keep_previous": format!("{}.asdr-prev", to.trim_end_matches('/'))})
}

/// An unreachable node whose peers still count it as a member is not failed: something between
/// asdr and it is. Replacing it would put two nodes on one address.
fn check_not_a_member(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    view: &NodeView<'_>,
) -> Result<(), PlanError> {
    let healthy = ctx.obs.healthy_names().len() as u32;
    let counted = ctx
        .obs
        .nodes
        .iter()
        .filter(|n| n.health == NodeHealth::Healthy)
        .filter_map(|n| n.observation.and_then(|o| o.cluster_size).map(|s| (n, s)))
        .find(|(_, size)| *size > healthy);
    if let Some((peer, size)) = counted {
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{}`: node `{}` does not answer asdr, but `{}` reports a cluster of {size} nodes ({healthy} answer): its peers still count it as a member",
                    restore.name, view.name, peer.name
                ),
            )
            .rule("R14")
            .help("check the network path from asdr to the node (security groups, the info port); replace it only once its peers have dropped it"),
        ));
    }
    Ok(())
}

/// R4: the replacement goes into the failed instance's subnet when it is known, else the
/// policy's subnet for the AZ; a private IP outside the chosen subnet's range is refused before
/// anything is stopped or terminated.
fn replacement_subnet(
    ctx: &Ctx<'_, '_>,
    node: &Node,
    view: &NodeView<'_>,
    b: &mut Builder,
) -> Result<String, PlanError> {
    let policy_subnet = ctx
        .policy
        .cluster
        .instance
        .subnets
        .get(&node.availability_zone)
        .cloned()
        .unwrap_or_default();
    let old_subnet = view.instance.and_then(|i| i.subnet_id.clone());
    let chosen = old_subnet.clone().unwrap_or_else(|| policy_subnet.clone());
    if let Some(old) = &old_subnet
        && *old != policy_subnet
    {
        b.warn("R4", format!(
            "node {}'s instance was in subnet {old}, not the policy's {policy_subnet} for {}: the replacement goes into {old}, as the node it replaces",
            node.name, node.availability_zone
        ));
    }
    if let Some(subnet) = ctx.obs.world.subnets.iter().find(|s| s.id == chosen) {
        if !subnet.contains(node.private_ip) {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "node `{}`'s address {} is not in subnet {chosen} ({}): a replacement there cannot keep it",
                        node.name, node.private_ip, subnet.cidr
                    ),
                )
                .rule("R4")
                .help("correct `cluster.instance.subnets` or the node's private_ip"),
            ));
        }
        if subnet.availability_zone != node.availability_zone {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "subnet {chosen} is in {}, but node `{}` is in {}",
                        subnet.availability_zone, node.name, node.availability_zone
                    ),
                )
                .rule("R4"),
            ));
        }
    }
    Ok(chosen)
}

enum Same {
    Yes,
    No,
}

fn data_kind(volume_ref: &Value, old: Option<&Volume>) -> Same {
    match (volume_ref.as_str(), old) {
        (Some(id), Some(v)) if v.id == id => Same::Yes,
        _ => Same::No,
    }
}

fn data_for<'w>(
    ctx: &Ctx<'_, 'w>,
    restore: &Restore,
    set: Option<&BackupSet<'w>>,
    view: &NodeView<'w>,
    node: &Node,
    d: &crate::observe::DeviceView<'w>,
) -> Result<Data<'w>, PlanError> {
    match &restore.source {
        RestoreSource::CurrentVolumes => {
            if d.volume.is_none() && d.candidates.len() > 1 {
                let list: Vec<String> = d
                    .candidates
                    .iter()
                    .map(|v| {
                        format!(
                            "{} ({:?}, snapshot {})",
                            v.id,
                            v.state,
                            v.snapshot_id.as_deref().unwrap_or("none")
                        )
                        .to_lowercase()
                    })
                    .collect();
                return Err(refuse(
                    Diagnostic::new(restore.source_span, format!(
                        "restore `{}`: {} {} has {} candidate volumes and asdr cannot tell which the node last ran on: {}",
                        restore.name, view.name, d.ebs, d.candidates.len(), list.join(", ")
                    ))
                    .rule("R4")
                    .help(format!("tag the stale ones `{}=<reason>` (asdr then never reattaches them) or delete them, and plan again", tags::SUPERSEDED)),
                ));
            }
            let v = d.volume.ok_or_else(|| {
                refuse(
                    Diagnostic::new(restore.source_span, format!("restore `{}`: no EBS volume of {} {} was found (not attached, not tagged asdr:node/asdr:device, not in a backup set)", restore.name, view.name, d.ebs))
                        .help("restore from a backup set (`latest-backup`) or refill it (`empty`)"),
                )
            })?;
            if v.availability_zone != node.availability_zone {
                return Err(refuse(Diagnostic::new(node.name_span, format!("volume {} of {} {} is in {}, but the node is in {}: EBS attaches only within one AZ", v.id, view.name, d.ebs, v.availability_zone, node.availability_zone)).rule("R4")));
            }
            if let Some(a) = v.attachments.first()
                && Some(a.instance_id.as_str()) != view.instance.map(|i| i.id.as_str())
            {
                return Err(refuse(Diagnostic::new(restore.source_span, format!("volume {} of {} {} is attached to {}, which is not this node's instance", v.id, view.name, d.ebs, a.instance_id)).rule("R13")));
            }
            Ok(Data::Existing(v))
        }
        RestoreSource::Empty => {
            let (size, vtype, iops, throughput) = match d.volume {
                Some(v) => (v.size_gib, v.volume_type.clone(), v.iops, v.throughput),
                None => {
                    let snap = ctx.obs.sets.iter().rev().find_map(|s| s.snapshot_for(&view.name, &d.ebs)).filter(|s| s.volume_size_gib > 0).ok_or_else(|| {
                        refuse(Diagnostic::new(restore.source_span, format!("restore `{}`: the size of {} {} is unknown (no volume and no snapshot of it found)", restore.name, view.name, d.ebs)))
                    })?;
                    (snap.volume_size_gib, "gp3".to_string(), None, None)
                }
            };
            Ok(Data::Blank {
                size_gib: size,
                volume_type: restore.volume.volume_type.clone().unwrap_or(vtype),
                iops: restore.volume.iops.or(iops),
                throughput: restore.volume.throughput.or(throughput),
            })
        }
        _ => {
            let set = set.expect("sources that use a backup resolve a set");
            let snap = set
                .snapshot_for(&view.name, &d.ebs)
                .expect("check_set_covers saw every snapshot");
            Ok(Data::FromSnapshot(snap, ctx.obs.volume(&snap.volume_id)))
        }
    }
}

/// The create_volume step for `data`: id, params (with a deterministic client token seed) and the
/// reason shown on the change. A new volume is encrypted at least as the data it replaces: with
/// the key of the node's volume at that device, else the snapshot's.
fn create_volume(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    node: &Node,
    ebs: &str,
    data: &Data<'_>,
    set: Option<&BackupSet<'_>>,
    device: &crate::observe::DeviceView<'_>,
) -> Result<(String, Value, String), PlanError> {
    let id = format!("create_volume:{}:{ebs}", node.name);
    let tags = ctx.tags(&[
        (tags::NODE, &node.name),
        (tags::DEVICE, ebs),
        (tags::STEP, &id),
    ]);
    let current = device.volume.or_else(|| device.candidates.first().copied());
    let snapshot = match data {
        Data::FromSnapshot(s, _) => Some(*s),
        _ => None,
    };
    let (encrypted, kms_key_id) = encryption(restore, node, ebs, current, snapshot)?;
    let shown = match (&kms_key_id, encrypted) {
        (Some(k), _) => format!(", encrypted with {k}"),
        (None, true) => ", encrypted".to_string(),
        (None, false) => String::new(),
    };
    Ok(match data {
        Data::Blank {
            size_gib,
            volume_type,
            iops,
            throughput,
        } => (
            id.clone(),
            json!({"availability_zone": node.availability_zone, "size_gib": size_gib, "type": volume_type, "iops": iops, "throughput": throughput, "snapshot_id": null, "encrypted": encrypted, "kms_key_id": kms_key_id, "client_token": id, "tags": tags}),
            format!(
                "blank volume for {} {ebs}, refilled by migrations (`source: empty`){shown}",
                node.name
            ),
        ),
        Data::FromSnapshot(s, old) => {
            let v = &restore.volume;
            let size = if s.volume_size_gib > 0 {
                s.volume_size_gib
            } else {
                old.map_or(0, |o| o.size_gib)
            };
            (
                id.clone(),
                json!({
                    "availability_zone": node.availability_zone,
                    "snapshot_id": s.id,
                    "size_gib": size,
                    "type": v.volume_type.clone().or_else(|| old.map(|o| o.volume_type.clone())).unwrap_or_else(|| "gp3".into()),
                    "iops": v.iops.or_else(|| old.and_then(|o| o.iops)),
                    "throughput": v.throughput.or_else(|| old.and_then(|o| o.throughput)),
                    "initialization_rate": v.initialization_rate,
                    "encrypted": encrypted,
                    "kms_key_id": kms_key_id,
                    "client_token": id,
                    "tags": tags,
                }),
                format!(
                    "from snapshot {} of set {} in {}{shown}",
                    s.id,
                    set.map_or("", |s| s.id.as_str()),
                    node.availability_zone
                ),
            )
        }
        Data::Existing(_) => unreachable!("existing volumes are not created"),
    })
}

/// Encryption of a new volume: never less than the node's current volume at that device, nor
/// than the snapshot it comes from. An encrypted volume whose key was not observed is refused
/// rather than re-encrypted with the account's default key.
pub(crate) fn encryption(
    restore: &Restore,
    node: &Node,
    ebs: &str,
    current: Option<&Volume>,
    snapshot: Option<&crate::world::Snapshot>,
) -> Result<(bool, Option<String>), PlanError> {
    let encrypted = current.is_some_and(|v| v.encrypted) || snapshot.is_some_and(|s| s.encrypted);
    let key = current
        .filter(|v| v.encrypted)
        .and_then(|v| v.kms_key_id.clone())
        .or_else(|| {
            snapshot
                .filter(|s| s.encrypted)
                .and_then(|s| s.kms_key_id.clone())
        });
    if encrypted && key.is_none() {
        return Err(refuse(Diagnostic::new(
            restore.source_span,
            format!(
                "restore `{}`: the data of {} {ebs} is encrypted, but its KMS key was not observed: a new volume could be encrypted with another key",
                restore.name, node.name
            ),
        )));
    }
    Ok((encrypted, key))
}

fn provision_params(
    ctx: &Ctx<'_, '_>,
    node: &Node,
    subnet: Option<&str>,
    step: Option<&str>,
) -> Value {
    let inst = &ctx.policy.cluster.instance;
    let id = format!("provision_instance:{}", node.name);
    let mut extra = vec![(tags::NODE, node.name.as_str())];
    if step.is_some() {
        extra.push((tags::STEP, id.as_str()));
    }
    json!({
        "private_ip": node.private_ip.to_string(),
        "availability_zone": node.availability_zone,
        "subnet_id": subnet.map(str::to_string).or_else(|| inst.subnets.get(&node.availability_zone).cloned()),
        "instance_type": inst.instance_type,
        "ami": inst.ami,
        "security_groups": inst.security_groups,
        "iam_instance_profile": inst.iam_instance_profile,
        "key_name": inst.key_name,
        "instance_store_volumes": inst.instance_store_volumes,
        "client_token": id,
        "tags": ctx.tags(&extra),
    })
}

/// R4: the replacement type must offer the instance-store drives the namespaces expect.
fn check_instance_type(ctx: &Ctx<'_, '_>, b: &mut Builder) -> Result<(), PlanError> {
    let inst = &ctx.policy.cluster.instance;
    match ctx.obs.world.instance_types.get(&inst.instance_type) {
        Some(t) if t.instance_store_drives < inst.instance_store_volumes => Err(refuse(
            Diagnostic::new(
                inst.instance_store_volumes_span,
                format!(
                    "instance type {} offers {} instance-store drives, fewer than the {} required",
                    inst.instance_type, t.instance_store_drives, inst.instance_store_volumes
                ),
            )
            .rule("R4"),
        )),
        Some(_) => Ok(()),
        None if inst.instance_store_volumes > 0 => {
            b.warn(
                "R4",
                format!(
                    "the instance-store drive count of {} was not observed: check it offers {}",
                    inst.instance_type, inst.instance_store_volumes
                ),
            );
            Ok(())
        }
        None => Ok(()),
    }
}
