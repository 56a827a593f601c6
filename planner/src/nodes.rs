//! What backups and restores share about the nodes themselves: the stability a backup set needs
//! (R14), and the parameters of node-service steps.

use asdr_specs::{Diagnostic, Edition};

use crate::Ctx;
use crate::error::{PlanError, refuse};
use crate::observe::{NodeHealth, render};
use crate::params::{NodeService, Params, StartKind};
use crate::plan::StepKind;
use crate::tags;
use crate::world::{Instance, InstanceState};

/// Why a node that answers is not stable enough to disturb, if it is not.
fn healthy_problem(o: &crate::world::NodeObservation, expected: u32) -> Option<String> {
    let unavailable = o
        .unavailable_partitions
        .max(o.namespaces.iter().map(|n| n.unavailable_partitions).sum());
    let dead = o
        .dead_partitions
        .max(o.namespaces.iter().map(|n| n.dead_partitions).sum());
    let ghost = o.namespaces.iter().find(|ns| {
        ns.strong_consistency
            && !ns.observed_nodes.is_empty()
            && ns.roster.iter().any(|r| !ns.observed_nodes.contains(r))
    });
    if o.cluster_size.is_some_and(|s| s != expected) {
        Some(format!(
            "sees a cluster of {} nodes, not {expected}",
            o.cluster_size.unwrap_or(0)
        ))
    } else if o.migrations_remaining > 0 {
        Some(format!(
            "has {} partition migrations remaining",
            o.migrations_remaining
        ))
    } else if o.quiesced {
        Some("is quiesced".to_string())
    } else if unavailable > 0 || dead > 0 {
        // A set taken now holds what the cluster cannot serve, and a node taken out for it
        // (stop-node, quiesce) takes more away (R19).
        Some(format!(
            "reports {unavailable} unavailable and {dead} dead partitions"
        ))
    } else {
        ghost.map(|ns| {
            format!(
                "holds a roster of namespace {} with a member that is not in the cluster",
                ns.name
            )
        })
    }
}

/// R14: a backup set needs every node, so the cluster must be whole and stable now.
pub(crate) fn require_stable_cluster(ctx: &Ctx<'_, '_>) -> Result<(), PlanError> {
    let expected = ctx.policy.cluster.nodes.len() as u32;
    for view in &ctx.obs.nodes {
        let node = ctx.policy_node(&view.name);
        let problem = match view.health {
            NodeHealth::Healthy => {
                let o = view.observation.expect("healthy means observed");
                healthy_problem(o, expected)
            }
            NodeHealth::Gone => {
                // An instance tagged for the node at another address is not the node; say so,
                // rather than "missing": the policy's address may be what changed.
                let elsewhere: Vec<String> = ctx
                    .world
                    .instances
                    .iter()
                    .filter(|i| {
                        i.state != InstanceState::Terminated
                            && i.tags.get(tags::NODE) == Some(&node.name)
                            && i.tags.get(tags::CLUSTER) == Some(&ctx.policy.cluster.name)
                    })
                    .filter_map(|i| Some(format!("{} at {}", i.id, i.private_ip.as_ref()?)))
                    .collect();
                Some(if elsewhere.is_empty() {
                    format!("is {}", view.health.describe())
                } else {
                    format!(
                        "has no instance at its address {} ({} tagged for it elsewhere is not taken for it: did the node's `private_ip` change?)",
                        node.private_ip,
                        elsewhere.join(", ")
                    )
                })
            }
            other => Some(format!("is {}", other.describe())),
        };
        if let Some(problem) = problem {
            let restores: Vec<&str> = ctx
                .policy
                .restores
                .iter()
                .filter(|r| r.nodes.contains(&view.name))
                .map(|r| r.name.as_str())
                .collect();
            let quiesced = view.observation.is_some_and(|o| o.quiesced);
            // More members than the policy declares: the policy is behind, not the node.
            let larger = view.health == NodeHealth::Healthy
                && view
                    .observation
                    .and_then(|o| o.cluster_size)
                    .is_some_and(|s| s > expected);
            let help = if larger {
                let found: Vec<String> = crate::drift::undeclared(ctx.policy, ctx.world)
                    .into_iter()
                    .filter(|d| d.active && !d.message.starts_with("node "))
                    .map(|d| d.message)
                    .collect();
                format!(
                    "the cluster has a member the policy does not name{}; declare every node in cluster.nodes (a set without it would miss its data), then plan again",
                    if found.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", found.join("; "))
                    }
                )
            } else if quiesced {
                // An apply stopped at once (a second signal) can leave its node quiesced: the
                // operator undoes it as asdr's unquiesce would.
                format!(
                    "if an interrupted apply left it quiesced, undo that on the node (`asinfo -h {} -p {} -v 'quiesce-undo:'`, then `asinfo -v 'recluster:'`) and plan again",
                    node.private_ip, ctx.policy.cluster.info_port
                )
            } else if restores.is_empty() || view.health == NodeHealth::Healthy {
                "wait until the cluster is stable at its full size, then plan again".to_string()
            } else {
                format!(
                    "restore the node first: asdr plan --restore {}",
                    restores.join(" | ")
                )
            };
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!("a backup is due, but node `{}` {problem}: a backup set must cover a stable cluster at its full size", view.name),
                )
                .rule("R14")
                .help(help),
            ));
        }
    }
    Ok(())
}

/// Parameters of node-service steps: the address and, for stop/start, the rendered command.
pub(crate) fn node_params(ctx: &Ctx<'_, '_>, node: &asdr_specs::Node, kind: StepKind) -> Params {
    let vars = ctx.vars(node);
    let address = format!("{}:{}", node.private_ip, ctx.policy.cluster.info_port);
    let service = |command: Option<&asdr_specs::Template>| NodeService {
        address: address.clone(),
        command: command.map(|c| render(c, &vars)),
        rolling: true,
        start: None,
        node_id: None,
        devices: Vec::new(),
        instance_store: Vec::new(),
    };
    match kind {
        StepKind::StopNode => Params::StopNode(service(Some(&ctx.policy.cluster.service_stop))),
        StepKind::StartNode => start_params(ctx, node, start_kind(ctx, false, false)),
        StepKind::Unquiesce => Params::Unquiesce(service(None)),
        _ => Params::Quiesce(service(None)),
    }
}

/// R17: which start a node needs. `swapped`: the plan changed what is under the node on its own
/// instance (volumes attached, SMD restored); `new_instance`: the plan launched it.
pub(crate) fn start_kind(ctx: &Ctx<'_, '_>, swapped: bool, new_instance: bool) -> StartKind {
    if ctx.policy.cluster.edition == Edition::Community {
        StartKind::Community
    } else if new_instance {
        StartKind::NewInstance
    } else if swapped {
        StartKind::Cold
    } else {
        StartKind::Warm
    }
}

/// A start_node of `kind`: a cold start runs `service.cold_start` (validation requires it on
/// Enterprise wherever a restore can swap volumes; were it missing, the plain start is planned
/// and the verifier refuses the plan), every other start `service.start`.
pub(crate) fn start_params(ctx: &Ctx<'_, '_>, node: &asdr_specs::Node, kind: StartKind) -> Params {
    let c = &ctx.policy.cluster;
    let command = match (kind, &c.service_cold_start) {
        (StartKind::Cold, Some(cold)) => cold,
        _ => &c.service_start,
    };
    Params::StartNode(NodeService {
        address: format!("{}:{}", node.private_ip, c.info_port),
        command: Some(render(command, &ctx.vars(node))),
        rolling: true,
        start: Some(kind),
        node_id: None,
        devices: Vec::new(),
        instance_store: Vec::new(),
    })
}

/// What aerospike.conf names the EBS volume attached at `ebs`: its namespace device's shadow,
/// else the device, rendered for the node `vars` describe.
pub(crate) fn config_path_of(
    policy: &asdr_specs::Policy,
    vars: &asdr_specs::NodeVars,
    ebs: &str,
) -> Option<String> {
    policy
        .cluster
        .namespaces
        .iter()
        .flat_map(|ns| &ns.devices)
        .find(|d| render(&d.ebs, vars) == ebs)
        .map(|d| render(d.shadow.as_ref().unwrap_or(&d.device), vars))
}

/// A volume the plan changes by itself (snapshots alone, detaches, attaches) that does not carry
/// `asdr:cluster`: the IAM policy `asdr iam-policy` generates lets asdr change only volumes tagged
/// for the cluster, so under it the call is denied mid-apply, after the node was taken out of
/// service. Said in the plan, with the fix.
pub(crate) fn warn_untagged_volume(
    ctx: &Ctx<'_, '_>,
    b: &mut crate::builder::Builder,
    node: &str,
    volume: &crate::world::Volume,
    what: &str,
) {
    let cluster = &ctx.policy.cluster.name;
    if volume.tags.get(tags::CLUSTER) == Some(cluster) {
        return;
    }
    b.warn(
        "IAM",
        format!(
            "{node}'s volume {} carries no `{}={cluster}` tag: the IAM policy `asdr iam-policy` generates lets asdr {what} only volumes tagged for the cluster, so under it this is denied mid-apply, after {node} was taken out of service. Tag it first (`aws ec2 create-tags --resources {} --tags Key={},Value={cluster}`), or apply with a role that allows it",
            volume.id,
            tags::CLUSTER,
            volume.id,
            tags::CLUSTER
        ),
    );
}

/// The instance-store primaries aerospike.conf names (the `device` of every shadowed device),
/// rendered for the node `vars` describe.
pub(crate) fn primaries(policy: &asdr_specs::Policy, vars: &asdr_specs::NodeVars) -> Vec<String> {
    policy
        .cluster
        .namespaces
        .iter()
        .flat_map(|ns| &ns.devices)
        .filter(|d| d.shadow.is_some())
        .map(|d| render(&d.device, vars))
        .collect()
}

/// Where a volume whose config path is `path` goes in its instance's attach order. Volumes are
/// attached one at a time in the order of the NVMe numbers their paths name: a Nitro kernel
/// numbers devices as they arrive, so parallel attaches would hand out the numbers at random
/// (the start checks every path anyway). Other names (`/dev/sdf`, udev's stable links) sort
/// after, by name.
pub(crate) fn attach_rank(path: &str) -> (u32, String) {
    let name = path.rsplit('/').next().unwrap_or(path);
    let number = name
        .strip_prefix("nvme")
        .and_then(|rest| rest.split('n').next())
        .and_then(|n| n.parse::<u32>().ok());
    (number.unwrap_or(u32::MAX), path.to_string())
}

/// A backup not yet due, on a cluster with a node down: the plan says so (it has nothing to do
/// today, but the next set will be refused until the node is back), naming the restores that
/// bring it back.
pub(crate) fn warn_nodes_down(ctx: &Ctx<'_, '_>, b: &mut crate::builder::Builder) {
    for view in ctx
        .obs
        .nodes
        .iter()
        .filter(|v| v.health != NodeHealth::Healthy)
    {
        let restores: Vec<&str> = ctx
            .policy
            .restores
            .iter()
            .filter(|r| r.nodes.contains(&view.name))
            .map(|r| r.name.as_str())
            .collect();
        let how = if restores.is_empty() {
            "restore it".to_string()
        } else {
            format!("asdr plan --restore {}", restores.join(" | "))
        };
        b.warn(
            "R14",
            format!(
                "node {} is {}: no backup is due now, but the next set will be refused until it is back ({how})",
                view.name,
                view.health.describe()
            ),
        );
    }
}

/// The node's instance: the one the policy pins (`instance_id`) while it lives, whatever else
/// is tagged; otherwise a replacement asdr launched for it, recognised by its tags only where the
/// node is: its address and availability zone and, when the pinned instance is known, that
/// instance's subnet (where asdr launches a replacement, R4; and so its VPC). An instance that
/// merely carries the tags elsewhere is not the node (anyone who can tag can launch one). Among
/// what remains a live one wins over a terminated one, then the pinned one; among equals the
/// smallest id, so the choice is stable.
pub(crate) fn find_instance<'w>(
    cluster: &asdr_specs::Cluster,
    node: &asdr_specs::Node,
    instances: impl IntoIterator<Item = &'w Instance>,
) -> Option<&'w Instance> {
    let pinned = node.instance_id.as_deref();
    let all: Vec<&Instance> = instances.into_iter().collect();
    let pinned_subnet = all
        .iter()
        .find(|i| Some(i.id.as_str()) == pinned)
        .and_then(|i| i.subnet_id.as_deref());
    let candidates: Vec<&Instance> = all
        .iter()
        .copied()
        .filter(|i| {
            Some(i.id.as_str()) == pinned || is_replacement(cluster, node, i, pinned_subnet)
        })
        .collect();
    if let Some(live) = candidates
        .iter()
        .find(|i| Some(i.id.as_str()) == pinned && i.state != InstanceState::Terminated)
    {
        return Some(live);
    }
    candidates.into_iter().min_by_key(|i| {
        (
            i.state == InstanceState::Terminated,
            Some(i.id.as_str()) != pinned,
            i.id.as_str(),
        )
    })
}

/// Whether `i` is tagged as `node`'s replacement and stands where the node does: a live one
/// holds the node's address (a terminated one may have lost it), in the node's zone and, when
/// the pinned instance's subnet is known (`pinned_subnet`), in that subnet.
pub(crate) fn is_replacement(
    cluster: &asdr_specs::Cluster,
    node: &asdr_specs::Node,
    i: &Instance,
    pinned_subnet: Option<&str>,
) -> bool {
    let ip = node.private_ip.to_string();
    i.tags.get(tags::NODE) == Some(&node.name)
        && i.tags.get(tags::CLUSTER) == Some(&cluster.name)
        && match &i.private_ip {
            Some(a) => *a == ip,
            None => i.state == InstanceState::Terminated,
        }
        && i.availability_zone == node.availability_zone
        && match (pinned_subnet, i.subnet_id.as_deref()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        }
}

/// R8: what a node's out-of-service window waits for, and what it leaves for the next. With
/// `max_nodes_at_once: N`, N lanes of nodes one after another; with `rack`, one whole rack at a
/// time: every node of a rack waits for every node of the rack before it to be back.
pub(crate) enum Rolling {
    Lanes(Vec<Vec<String>>),
    Racks {
        rack: Option<u32>,
        before: Vec<String>,
        current: Vec<String>,
    },
}

impl Rolling {
    pub(crate) fn new(policy: &asdr_specs::Policy, first: Vec<String>) -> Rolling {
        if policy.backup.by_rack {
            Rolling::Racks {
                rack: None,
                before: first,
                current: Vec::new(),
            }
        } else {
            let lanes = policy.backup.max_nodes_at_once.max(1) as usize;
            Rolling::Lanes(vec![first; lanes])
        }
    }

    /// The order nodes (indices into `names`) are taken out in: racks in turn when rolling by
    /// rack, else as given.
    pub(crate) fn order(policy: &asdr_specs::Policy, names: &[&str]) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..names.len()).collect();
        if policy.backup.by_rack {
            idx.sort_by_key(|&i| {
                (
                    policy
                        .node(names[i])
                        .map_or(0, |n| policy.cluster.rack_of(n)),
                    i,
                )
            });
        }
        idx
    }

    /// What the `k`-th node taken out (of `node`) waits for.
    pub(crate) fn before(
        &mut self,
        policy: &asdr_specs::Policy,
        node: &str,
        k: usize,
    ) -> Vec<String> {
        match self {
            Rolling::Lanes(lanes) => {
                let n = lanes.len();
                lanes[k % n].clone()
            }
            Rolling::Racks {
                rack,
                before,
                current,
            } => {
                let r = policy.node(node).map_or(0, |n| policy.cluster.rack_of(n));
                if *rack != Some(r) {
                    if rack.is_some() {
                        *before = std::mem::take(current);
                    }
                    *rack = Some(r);
                }
                before.clone()
            }
        }
    }

    /// The `k`-th node's window closes at `stable`.
    pub(crate) fn after(&mut self, k: usize, stable: String) {
        match self {
            Rolling::Lanes(lanes) => {
                let n = lanes.len();
                lanes[k % n] = vec![stable];
            }
            Rolling::Racks { current, .. } => current.push(stable),
        }
    }
}
