//! Zone loss: a restore with `zone` rebuilds its nodes in another availability zone of the
//! region, at the addresses it declares, from a set's snapshots or from the replicas in the other
//! zones. Each node keeps its rack and its node id; its config is rendered with the cluster's new
//! addresses. Nothing in the zone it leaves is detached, terminated or waited for (it may not
//! answer): its old instance is only asked to stop, so it cannot rejoin with the same node id when
//! the zone comes back, and its volumes are kept.

use super::*;
use crate::world::Instance;

/// Plans `restore` with `ctx.policy` already moved ([`asdr_specs::Policy::zone_moved`]).
pub(super) fn plan(
    ctx: &Ctx<'_, '_>,
    home: &asdr_specs::Policy,
    restore: &Restore,
    b: &mut Builder,
) -> Result<(), PlanError> {
    let zone = restore
        .zone
        .as_ref()
        .expect("a moved policy comes from a zone");
    let moved: Vec<&Node> = ctx
        .policy
        .cluster
        .nodes
        .iter()
        .filter(|n| n.moved_from.is_some())
        .collect();
    if stands(ctx, restore, &moved, b)? {
        return Ok(());
    }
    for node in &moved {
        let view = ctx.obs.node(&node.name);
        if view.health == NodeHealth::Healthy {
            let from = node.moved_from.as_ref().expect("moved");
            return Err(refuse(
                Diagnostic::new(
                    restore.name_span,
                    format!(
                        "restore `{}` rebuilds {} in {}, but it answers in {}: that zone is not lost",
                        restore.name, node.name, zone.to, from.availability_zone
                    ),
                )
                .rule("R14")
                .help("a zone-loss restore moves only nodes that are down; restore a running node in place"),
            ));
        }
    }
    super::in_place(ctx, restore, b)?;
    if !b
        .steps
        .iter()
        .any(|s| s.kind() == StepKind::ProvisionInstance)
    {
        return Ok(());
    }
    // Once the cluster is whole again with them, their instances say the move stands.
    let waits: Vec<String> = b
        .steps
        .iter()
        .filter(|s| {
            matches!(
                s.kind(),
                StepKind::WaitClusterStable
                    | StepKind::WaitPartitionsAvailable
                    | StepKind::SetRoster
            )
        })
        .map(|s| s.id.clone())
        .collect();
    let launched: Vec<Ref> = b
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::ProvisionInstance)
        .map(|s| Ref::Learned {
            from_step: s.id.clone(),
        })
        .collect();
    b.step(
        format!("mark_restore_complete:{}", restore.name),
        None,
        waits,
        Params::MarkRestoreComplete(params::MarkRestoreComplete {
            restore: restore.name.clone(),
            instances: launched,
            tag: [(tags::RESTORE_COMPLETE.to_string(), "true".to_string())].into(),
        }),
    );
    warn(ctx, home, restore, &moved, b);
    Ok(())
}

/// The instances this restore launched for `node` in the target zone, at its new address.
fn built<'w>(ctx: &Ctx<'_, 'w>, restore: &Restore, node: &Node) -> Vec<&'w Instance> {
    let ip = node.private_ip.to_string();
    ctx.obs
        .world
        .instances
        .iter()
        .filter(|i| {
            i.tags.get(tags::CLUSTER) == Some(&ctx.policy.cluster.name)
                && i.tags.get(tags::NODE) == Some(&node.name)
                && i.tags.get(tags::RESTORE) == Some(&restore.name)
                && i.availability_zone == node.availability_zone
                && i.private_ip.as_deref() == Some(ip.as_str())
                && i.state != InstanceState::Terminated
        })
        .collect()
}

/// A move that stood (its instances marked once the cluster was whole with them) is not made
/// again: the policy still places the nodes in the zone they left, so they look down from there.
/// A move that stopped halfway is refused: its journal resumes it.
fn stands(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    moved: &[&Node],
    b: &mut Builder,
) -> Result<bool, PlanError> {
    let name = &restore.name;
    let built: Vec<(&Node, Vec<&Instance>)> = moved
        .iter()
        .map(|n| (*n, built(ctx, restore, n)))
        .filter(|(_, i)| !i.is_empty())
        .collect();
    if built.is_empty() {
        return Ok(false);
    }
    // A replacement that stood and was terminated since: the move is not partly built, and
    // building it again here would be a second move; the node is restored where it now is.
    let gone: Vec<&str> = moved
        .iter()
        .filter(|n| !built.iter().any(|(b, _)| b.name == n.name))
        .filter(|n| {
            ctx.obs.world.instances.iter().any(|i| {
                i.state == InstanceState::Terminated
                    && i.tags.get(tags::NODE) == Some(&n.name)
                    && i.tags.get(tags::RESTORE) == Some(name)
                    && i.tags.contains_key(tags::RESTORE_COMPLETE)
            })
        })
        .map(|n| n.name.as_str())
        .collect();
    if !gone.is_empty() {
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{name}` moved its nodes and they stood, but the replacement of {} was terminated since",
                    gone.join(", ")
                ),
            )
            .rule("R16")
            .help(format!(
                "update the policy's cluster.nodes ({}), then restore {} where it is placed now (a replace restore of it)",
                placement(moved),
                gone.join(", ")
            )),
        ));
    }
    let marked = built.len() == moved.len()
        && built.iter().all(|(_, is)| {
            is.iter()
                .any(|i| i.tags.contains_key(tags::RESTORE_COMPLETE))
        });
    let stood = marked
        && built.iter().all(|(_, is)| {
            is.iter().any(|i| {
                i.tags.contains_key(tags::RESTORE_COMPLETE) && i.state == InstanceState::Running
            })
        });
    let list: Vec<String> = built
        .iter()
        .flat_map(|(n, is)| {
            is.iter().map(move |i| {
                format!(
                    "{} {} at {} ({:?})",
                    n.name,
                    i.id,
                    i.private_ip.as_deref().unwrap_or("?"),
                    i.state
                )
                .to_lowercase()
            })
        })
        .collect();
    if stood {
        // The lost zone came back and an old instance runs again, with its node's id beside the
        // replacement: it is stopped now, and waited for (the zone answers again).
        for node in moved {
            let view = ctx.obs.node(&node.name);
            if let Some(old) = view.instance.filter(|i| {
                matches!(i.state, InstanceState::Running | InstanceState::Pending)
                    && i.availability_zone != node.availability_zone
            }) {
                stop_twin(node, old, b);
            }
        }
        b.warn(
            "R4",
            format!(
                "restore `{name}` moved {} and they stand: {}; nothing to do. Update the policy's cluster.nodes: {}",
                moved
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                list.join(", "),
                placement(moved)
            ),
        );
        return Ok(true);
    }
    if marked {
        return Err(refuse(
            Diagnostic::new(
                restore.name_span,
                format!(
                    "restore `{name}` moved its nodes and they stood, but not all of them run now: {}",
                    list.join(", ")
                ),
            )
            .rule("R16")
            .help(format!(
                "start them (aws ec2 start-instances); to rebuild one instead, first update the policy's cluster.nodes ({}) and restore it there",
                placement(moved)
            )),
        ));
    }
    Err(refuse(
        Diagnostic::new(
            restore.name_span,
            format!(
                "restore `{name}` is partly built: {}, not all of them marked as standing ({})",
                list.join(", "),
                tags::RESTORE_COMPLETE
            ),
        )
        .rule("R16")
        .help(format!("run `asdr apply --yes --restore {name}` from the directory whose journal (.asdr/journal) built them: an interrupted or failed move is resumed. An instance that joined the cluster holds data: never terminate it to start over")),
    ))
}

/// What each moved node's entry in `cluster.nodes` becomes.
fn placement(moved: &[&Node]) -> String {
    moved
        .iter()
        .map(|n| {
            let from = n.moved_from.as_ref().expect("moved");
            let rack = if from.rack > 0 {
                format!(", rack: {}", from.rack)
            } else {
                String::new()
            };
            format!(
                "{{name: {}, private_ip: {}, availability_zone: {}{rack}}}",
                n.name, n.private_ip, n.availability_zone
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The old instance of a moved node, asked to stop without waiting: in a lost zone the stop
/// completes only when the zone comes back, and then the instance must not start Aerospike with
/// the node id the replacement has. Its volumes stay attached to it, kept.
pub(super) fn stop_left_behind(
    node: &Node,
    old: &Instance,
    view: &NodeView<'_>,
    base: &[String],
    b: &mut Builder,
) -> String {
    let from = node.moved_from.as_ref().expect("moved");
    b.change(
        format!("instance.{}.state", node.name),
        Action::Update,
        format!(
            "node {} is {} in {}: its instance there is asked to stop (not waited for), so it never rejoins as {} when the zone comes back; its volumes stay attached and kept",
            node.name,
            view.health.describe(),
            from.availability_zone,
            node.name
        ),
        Some(json!({"instance_id": old.id, "state": old.state})),
        Some(json!({"instance_id": old.id, "state": "stopping"})),
    );
    b.step(
        format!("stop_instance:{}", node.name),
        Some(&node.name),
        base.to_vec(),
        Params::StopInstance(params::StopInstance {
            instance_id: old.id.clone(),
            // Not forced: its volumes are kept as they are, and nothing waits on it anyway.
            force: false,
            wait_until: params::STOP_REQUESTED.into(),
            terminating: false,
        }),
    )
}

/// An old instance of a moved node running again: stopped and waited for.
fn stop_twin(node: &Node, old: &Instance, b: &mut Builder) {
    let from = node.moved_from.as_ref().expect("moved");
    b.change(
        format!("instance.{}.state", node.name),
        Action::Update,
        format!(
            "{}'s old instance in {} runs again, with {}'s node id, beside its replacement in {}: it is stopped (its volumes kept)",
            node.name, from.availability_zone, node.name, node.availability_zone
        ),
        Some(json!({"instance_id": old.id, "state": old.state})),
        Some(json!({"instance_id": old.id, "state": "stopped"})),
    );
    b.step(
        format!("stop_instance:{}", node.name),
        Some(&node.name),
        Vec::new(),
        Params::StopInstance(params::StopInstance {
            instance_id: old.id.clone(),
            // Not forced: its volumes are kept as they are.
            force: false,
            wait_until: "stopped".into(),
            terminating: false,
        }),
    );
}

fn warn(
    ctx: &Ctx<'_, '_>,
    home: &asdr_specs::Policy,
    restore: &Restore,
    moved: &[&Node],
    b: &mut Builder,
) {
    let zone = restore.zone.as_ref().expect("zone");
    let names: Vec<&str> = moved.iter().map(|n| n.name.as_str()).collect();
    b.warn(
        "R4",
        format!(
            "{} move to {} at new addresses: once they stand, update the policy's cluster.nodes ({}); until then asdr looks for them where they were",
            names.join(", "),
            zone.to,
            placement(moved)
        ),
    );
    // Two racks in one zone: a record's copies in them share the zone until the rack goes home.
    if let Some(there) = ctx.policy.cluster.racks.get(&zone.to)
        && moved
            .iter()
            .any(|n| n.moved_from.as_ref().is_some_and(|f| f.rack != *there))
    {
        let racks: BTreeMap<u32, ()> = moved
            .iter()
            .filter_map(|n| n.moved_from.as_ref().map(|f| (f.rack, ())))
            .collect();
        b.warn(
            "R4",
            format!(
                "{} now holds rack {there} and rack {}: a record whose copies are in those racks has them in one zone until the rack is back in a zone of its own",
                zone.to,
                racks.keys().map(u32::to_string).collect::<Vec<_>>().join(", ")
            ),
        );
    }
    let stay: Vec<&str> = home
        .cluster
        .nodes
        .iter()
        .filter(|n| !names.contains(&n.name.as_str()))
        .map(|n| n.name.as_str())
        .collect();
    if !stay.is_empty() {
        b.warn(
            "R4",
            format!(
                "the aerospike.conf of {} still lists the old addresses of {} as mesh seeds: the running cluster learns the new ones through the mesh; after the move, drop the old addresses from their heartbeat (`asinfo -v 'tip-clear:host-port-list=<old address>:3002'`, then `services-alumni-reset`) and re-render their configs from the updated policy",
                stay.join(", "),
                names.join(", ")
            ),
        );
    }
}

/// The cluster's instances in its own region tagged for `node` (never a drill's), not terminated.
fn tagged_for<'w>(
    policy: &asdr_specs::Policy,
    world: &'w crate::World,
    node: &str,
) -> impl Iterator<Item = &'w Instance> {
    let cluster = policy.cluster.name.clone();
    let node = node.to_string();
    world.instances.iter().filter(move |i| {
        i.region.is_none()
            && i.tags.get(tags::CLUSTER) == Some(&cluster)
            && i.tags.get(tags::NODE) == Some(&node)
            && !i.tags.contains_key(crate::drill::DRILL)
            && i.state != InstanceState::Terminated
    })
}

/// Nodes two instances run as (a zone-loss restore's replacement and the old instance the lost
/// zone gave back, or any other pair): both have the node's id. What `status` cries out.
pub(crate) fn twins(policy: &asdr_specs::Policy, world: &crate::World) -> Vec<String> {
    let mut out = Vec::new();
    for n in &policy.cluster.nodes {
        let running: Vec<&Instance> = tagged_for(policy, world, &n.name)
            .filter(|i| matches!(i.state, InstanceState::Running | InstanceState::Pending))
            .collect();
        if running.len() < 2 {
            continue;
        }
        let list: Vec<String> = running
            .iter()
            .map(|i| {
                format!(
                    "{} ({}, {})",
                    i.id,
                    i.availability_zone,
                    i.private_ip.as_deref().unwrap_or("no address")
                )
            })
            .collect();
        out.push(format!(
            "{} instances run as node {}: {}; they have its node id: stop the one that is not {} (aws ec2 stop-instances), then terminate it once nothing on it is needed",
            running.len(),
            n.name,
            list.join(", "),
            n.name
        ));
    }
    out
}

/// A whole rack refilled from empty at once relies on every partition having had a full copy in
/// another rack when the rack was lost: true in a whole cluster at rest, not while migrations
/// were still filling replicas, and asdr sees only the world after the loss.
pub(super) fn warn_rack_refill(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    names: &[&str],
    b: &mut Builder,
) {
    if restore.source != RestoreSource::Empty
        || (names.len() as u32) < ctx.policy.min_replication_factor()
    {
        return;
    }
    b.warn(
        "R8",
        format!(
            "{} rejoin empty together, refilled from the other racks: safe only if the cluster was whole with no migrations when they were lost (a partition still migrating then may have had its only full copy on them; asdr sees the cluster only as it is now). Check `migrate_partitions_remaining` before the loss in your metrics, or restore from a set",
            names.join(", ")
        ),
    );
}

/// Nodes a zone-loss restore rebuilt elsewhere while the policy still places them where they
/// were: (node, restore, instance, what its entry in `cluster.nodes` becomes). Read from what
/// runs (instances tagged `asdr:restore` away from the policy's placement), not from the restores
/// declared now: an edited or removed declaration must not hide them. Until the policy is
/// updated asdr looks for them at their old place: any other plan would take them for lost and
/// build a second node with the same id there, or back up an old twin in their stead.
pub(crate) fn stale_placements<'w>(
    policy: &asdr_specs::Policy,
    world: &'w crate::World,
) -> Vec<(String, String, &'w Instance, String)> {
    let mut out = Vec::new();
    for n in &policy.cluster.nodes {
        let ip = n.private_ip.to_string();
        for i in tagged_for(policy, world, &n.name) {
            let Some(restore) = i.tags.get(tags::RESTORE) else {
                continue;
            };
            if i.availability_zone == n.availability_zone
                && i.private_ip.as_deref() == Some(ip.as_str())
            {
                continue;
            }
            let rack = policy.cluster.rack_of(n);
            let rack = if rack > 0 {
                format!(", rack: {rack}")
            } else {
                String::new()
            };
            let entry = format!(
                "{{name: {}, private_ip: {}, availability_zone: {}{rack}}}",
                n.name,
                i.private_ip.as_deref().unwrap_or("?"),
                i.availability_zone
            );
            out.push((n.name.clone(), restore.clone(), i, entry));
        }
    }
    out
}

/// Refuses every plan but the zone-loss restore's own while a node it moved is placed by the
/// policy where it was.
pub(crate) fn check_placements(
    policy: &asdr_specs::Policy,
    world: &crate::World,
    op: &crate::Operation,
) -> Result<(), PlanError> {
    // A pinned instance elsewhere than the policy places its node: left in an updated entry,
    // it would be taken for the node (and rebuilt in the wrong zone).
    for n in &policy.cluster.nodes {
        let Some(pinned) = n.instance_id.as_deref() else {
            continue;
        };
        if let Some(i) = world.instances.iter().find(|i| {
            i.id == pinned
                && i.region.is_none()
                && i.state != InstanceState::Terminated
                && i.availability_zone != n.availability_zone
        }) {
            return Err(refuse(
                Diagnostic::new(
                    n.name_span,
                    format!(
                        "node `{}` pins instance {pinned}, which is in {}, but the policy places `{}` in {}",
                        n.name, i.availability_zone, n.name, n.availability_zone
                    ),
                )
                .rule("R4")
                .help("remove its `instance_id` (a node moved to another zone runs on a new instance, found by its tags and address)"),
            ));
        }
    }
    let stale = stale_placements(policy, world);
    // The restore that moved them may go on (resume, or stop a twin) while its declaration still
    // says what runs; nothing else may.
    let matches = |r: &str, node: &str, i: &Instance| {
        policy
            .restore(r)
            .and_then(|r| r.zone.as_ref())
            .is_some_and(|z| {
                z.to == i.availability_zone
                    && z.private_ips.get(node).map(|ip| ip.to_string()) == i.private_ip
            })
    };
    let Some((node, restore, i, entry)) = stale.iter().find(|(node, r, i, _)| {
        *op != crate::Operation::Restore(r.clone()) || !matches(r, node, i)
    }) else {
        return Ok(());
    };
    let n = policy.node(node).expect("named by the policy");
    Err(refuse(
        Diagnostic::new(
            n.name_span,
            format!(
                "node `{node}` runs in {} at {} ({}), moved there by restore `{restore}`, but the policy places it in {} at {}: asdr would take it for lost",
                i.availability_zone,
                i.private_ip.as_deref().unwrap_or("?"),
                i.id,
                n.availability_zone,
                n.private_ip
            ),
        )
        .rule("R4")
        .help(format!(
            "update its entry in cluster.nodes to {entry} (and every other node the restore moved), then plan again"
        )),
    ))
}
