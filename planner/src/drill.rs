//! Drills: a declared restore replayed into an isolated target, and its teardown. Production is
//! never touched: no stop, no detach, no terminate of a production resource. The drill's nodes are
//! named `<node>@<drill>` and its resources tagged `asdr:drill=<drill>` (and never
//! `asdr:node=<production node>`), so nothing can mistake them for production's.

use asdr_specs::{Diagnostic, Drill, NodeVars};
use serde_json::json;

use crate::builder::Builder;
use crate::error::{PlanError, refuse};
use crate::observe::render;
use crate::params::{self, Params, Ref};
use crate::plan::Action;
use crate::world::{InstanceState, SnapshotState, VolumeState};
use crate::{Ctx, tags};

pub const DRILL: &str = "asdr:drill";

/// The step kinds a drill's teardown uses (its IAM policy is prepared before anything exists).
pub const TEARDOWN_KINDS: [crate::StepKind; 2] = [
    crate::StepKind::TerminateInstance,
    crate::StepKind::DeleteVolume,
];

/// The name a drill gives a production node's stand-in.
pub fn drill_node(node: &str, drill: &str) -> String {
    format!("{node}@{drill}")
}

fn drill_of<'p>(ctx: &Ctx<'p, '_>, name: &str) -> Result<&'p Drill, PlanError> {
    ctx.policy
        .drill(name)
        .ok_or_else(|| PlanError::UnknownDrill {
            name: name.to_string(),
            known: ctx.policy.drills.iter().map(|d| d.name.clone()).collect(),
        })
}

pub(crate) fn plan(ctx: &Ctx<'_, '_>, name: &str, b: &mut Builder) -> Result<(), PlanError> {
    let drill = drill_of(ctx, name)?;
    let restore = ctx
        .policy
        .restore(&drill.restore)
        .expect("validation checked the drill's restore");
    let inst = &ctx.policy.cluster.instance;
    let (ami, instance_type) = match &restore.region {
        // A rehearsal of a restore into another region: that region's AMI and type.
        Some(t) => (
            t.ami.as_str(),
            t.instance_type.as_deref().unwrap_or(&inst.instance_type),
        ),
        None => (inst.ami.as_str(), inst.instance_type.as_str()),
    };
    let spec = NewCluster {
        label: name,
        what: format!("drill `{name}`"),
        restore,
        tag: DRILL,
        cluster_name: drill.cluster_name(&ctx.policy.cluster.name),
        ips: &drill.private_ips,
        subnets: &drill.subnets,
        security_groups: &drill.security_groups,
        ami,
        instance_type,
        region: restore.region(),
        span: drill.name_span,
    };
    new_cluster(ctx, &spec, b)?;
    b.warn("R6", format!(
        "drill `{name}` restores a backup set into an isolated target: the restored data may hold records deleted before the backup unless deletes are durable",
    ));
    Ok(())
}

/// A new cluster built from a backup set: a drill's isolated target, or a restore into another
/// region. Production is never touched: every resource is new, tagged `tag=<label>`, its nodes
/// named `<node>@<label>`.
pub(crate) struct NewCluster<'p> {
    pub label: &'p str,
    /// How the plan names it (`drill `quarterly``, `restore `dr-west``).
    pub what: String,
    pub restore: &'p asdr_specs::Restore,
    pub tag: &'static str,
    pub cluster_name: String,
    pub ips: &'p std::collections::BTreeMap<String, std::net::Ipv4Addr>,
    /// Subnets by availability zone (of `region` when set).
    pub subnets: &'p std::collections::BTreeMap<String, String>,
    pub security_groups: &'p [String],
    pub ami: &'p str,
    pub instance_type: &'p str,
    /// The region it is built in, from the copies there; none: the cluster's own.
    pub region: Option<&'p str>,
    pub span: asdr_specs::Span,
}

impl NewCluster<'_> {
    /// The stand-in of production `node`: its name `<node>@<label>`, its address, and in another
    /// region the zone with its own zone's letter.
    fn stand_in(&self, node: &asdr_specs::Node) -> asdr_specs::Node {
        asdr_specs::Node {
            name: drill_node(&node.name, self.label),
            private_ip: self.ips.get(&node.name).copied().unwrap_or(node.private_ip),
            instance_id: None,
            availability_zone: match self.region {
                Some(r) => asdr_specs::zone_in(r, &node.availability_zone),
                None => node.availability_zone.clone(),
            },
            ..node.clone()
        }
    }
}

pub(crate) fn new_cluster(
    ctx: &Ctx<'_, '_>,
    spec: &NewCluster<'_>,
    b: &mut Builder,
) -> Result<(), PlanError> {
    // In another region, the sets are the copies there and the SMD archive the copy's store's.
    let view;
    let robs;
    let rctx;
    let at: &Ctx<'_, '_> = match spec.region {
        None => ctx,
        Some(region) => {
            if let Some(why) = ctx.world.unobserved_regions.get(region) {
                return Err(refuse(
                    Diagnostic::new(
                        spec.span,
                        format!(
                            "{}: {} could not be observed ({why})",
                            spec.what,
                            asdr_specs::place_text(region)
                        ),
                    )
                    .rule("R16"),
                ));
            }
            let copy = ctx
                .policy
                .backup
                .copies
                .iter()
                .find(|c| c.region == region)
                .expect("validation: a restore elsewhere is from a copy region");
            view = crate::copies::region_view(ctx.policy, ctx.world, copy);
            robs = crate::observe::Observed::new(ctx.policy, &view);
            rctx = Ctx {
                policy: ctx.policy,
                obs: &robs,
                world: ctx.world,
                now: ctx.now,
                cluster_id: ctx.cluster_id,
            };
            &rctx
        }
    };
    let restore = spec.restore;
    let what = &spec.what;
    let where_ = spec.region.map_or_else(String::new, |r| {
        format!(" in {}", asdr_specs::place_text(r))
    });
    let set = crate::restore::resolve_set(at, restore)?.ok_or_else(|| {
        refuse(Diagnostic::new(
            spec.span,
            format!("{what} replays no backup set"),
        ))
    })?;
    let nodes = ctx.policy.node_names();
    crate::restore::check_set_covers(at, restore, set, &nodes)?;
    let archive = set.smd_archive.ok_or_else(|| {
        refuse(
            Diagnostic::new(
                spec.span,
                format!("{what}: set {} has no SMD archive{where_}", set.id),
            )
            .rule("R2"),
        )
    })?;
    b.region = spec.region.map(str::to_string);
    let mut starts = Vec::new();
    let mut rejoin_new: Vec<String> = Vec::new();
    let new_nodes: Vec<String> = nodes.iter().map(|n| drill_node(n, spec.label)).collect();
    let label = spec.label;
    for node in &ctx.policy.cluster.nodes {
        // Every per-node template renders for the stand-in itself (its name, its address, the
        // new cluster's name): production's paths, commands and mesh are never named.
        let stand_in = spec.stand_in(node);
        let dn = stand_in.name.clone();
        let ip = stand_in.private_ip;
        let extra =
            |step: &str| ctx.tags(&[(spec.tag, label), (tags::NODE, &dn), (tags::STEP, step)]);
        let provision = format!("provision_instance:{dn}");
        let inst = &ctx.policy.cluster.instance;
        let subnet = spec.subnets.get(&stand_in.availability_zone).cloned();
        b.change(
            format!("instance.{dn}"),
            Action::Create,
            format!("{what}: {} at {ip}{where_}", node.name),
            None,
            Some(json!({"private_ip": ip.to_string(), "subnet_id": subnet, "availability_zone": stand_in.availability_zone})),
        );
        b.step(
            provision.clone(),
            Some(&dn),
            vec![],
            Params::ProvisionInstance(params::ProvisionInstance {
                private_ip: ip.to_string(),
                availability_zone: stand_in.availability_zone.clone(),
                subnet_id: subnet,
                instance_type: spec.instance_type.to_string(),
                ami: spec.ami.to_string(),
                security_groups: spec.security_groups.to_vec(),
                iam_instance_profile: inst.iam_instance_profile.clone(),
                key_name: inst.key_name.clone(),
                instance_store_volumes: inst.instance_store_volumes,
                client_token: provision.clone(),
                tags: extra(&provision),
                stopped_first: None,
            }),
        );
        let view = at.obs.node(&node.name);
        let mut attached = Vec::new();
        let mut device_checks = Vec::new();
        let stand_in_vars = NodeVars::new(&spec.cluster_name, &stand_in);
        let path_of = |ebs: &str| crate::nodes::config_path_of(ctx.policy, &stand_in_vars, ebs);
        let mut volumes: Vec<_> = view.volumes.iter().collect();
        volumes.sort_by_key(|d| crate::nodes::attach_rank(&path_of(&d.ebs).unwrap_or_default()));
        for d in volumes {
            let snap = set
                .snapshot_for(&node.name, &d.ebs)
                .expect("check_set_covers saw it");
            let create = format!("create_volume:{dn}:{}", d.ebs);
            let mut deps = Vec::new();
            if snap.state != SnapshotState::Completed {
                deps.push(b.step(
                    format!("wait_snapshot:{}@{label}", snap.id),
                    Some(&dn),
                    vec![],
                    Params::WaitSnapshot(params::WaitSnapshot {
                        cluster_id: Some(ctx.cluster_id.to_string()),
                        snapshot_id: Some(snap.id.clone()),
                        progress: Some(snap.progress),
                        within_minutes: None,
                        set: None,
                        node: None,
                        device: None,
                        volume_id: None,
                    }),
                ));
            }
            // The size and type of the volume the set was taken of (in the cluster's region).
            let old = ctx.obs.volume(&snap.volume_id);
            // The new copy of the data is protected as production's is.
            let current = d.volume.or_else(|| d.candidates.first().copied());
            let (encrypted, kms_key_id) =
                crate::restore::encryption(restore, node, &d.ebs, current, Some(snap))?;
            b.change(
                format!("volume.{dn}.{}", d.ebs),
                Action::Create,
                format!(
                    "{what}: from snapshot {} of set {}{where_}",
                    snap.id, set.id
                ),
                None,
                Some(json!({"snapshot_id": snap.id})),
            );
            let tags = ctx.tags(&[
                (spec.tag, label),
                (tags::NODE, &dn),
                (tags::DEVICE, &d.ebs),
                (tags::STEP, &create),
            ]);
            let volume = crate::restore::from_snapshot(
                &stand_in,
                snap,
                old,
                &restore.volume,
                (encrypted, kms_key_id),
                &create,
                tags,
            );
            crate::restore::check_performance(
                restore,
                &volume.volume_type,
                volume.iops,
                volume.throughput,
            )?;
            b.step(
                create.clone(),
                Some(&dn),
                deps,
                Params::CreateVolume(volume),
            );
            let learned = |from_step: &str| Ref::Learned {
                from_step: from_step.to_string(),
            };
            let ready = b.step(
                format!("wait_volume:{dn}:{}", d.ebs),
                Some(&dn),
                vec![create.clone()],
                Params::WaitVolume(params::WaitVolume {
                    volume_id: learned(&create),
                }),
            );
            if let Some(path) = path_of(&d.ebs) {
                device_checks.push(params::DeviceCheck {
                    path,
                    ebs: d.ebs.clone(),
                    volume_id: learned(&create),
                });
            }
            // One at a time, in the order the config's NVMe numbers expect.
            let mut deps = vec![ready, provision.clone()];
            deps.extend(attached.last().cloned());
            attached.push(b.step(
                format!("attach_volume:{dn}:{}", d.ebs),
                Some(&dn),
                deps,
                Params::AttachVolume(params::AttachVolume {
                    volume_id: learned(&create),
                    instance_id: Some(learned(&provision)),
                    device: d.ebs.clone(),
                }),
            ));
        }
        let peers: Vec<std::net::Ipv4Addr> = spec.ips.values().copied().collect();
        let known = crate::node_ids::node_id(ctx.policy, ctx.obs, node, Some(set), true);
        // The stand-in keeps the rack of the node it stands in for, whatever its zone.
        let rendered = crate::config::render_for(
            ctx.policy,
            &spec.cluster_name,
            &stand_in,
            &peers,
            &known.id,
            ctx.policy.cluster.rack_of(node),
        );
        let vars = NodeVars::new(&spec.cluster_name, &stand_in);
        let config_text = rendered.content.clone();
        crate::config::check_device_lines(ctx.policy, &stand_in, &vars, &config_text)?;
        // R19: a stand-in joining with an id the restored roster does not hold.
        let keeps = asdr_specs::config_node_ids(&config_text);
        if keeps != [known.id.clone()] || known.source == crate::node_ids::IdSource::Derived {
            rejoin_new.push(dn.clone());
        }
        let mut before_start = attached.clone();
        before_start.push(b.step(
            format!("write_config:{dn}"),
            Some(&dn),
            attached.clone(),
            crate::restore::write_config(rendered),
        ));
        let smd_dir = format!(
            "{}/smd",
            render(&ctx.policy.cluster.work_directory, &vars).trim_end_matches('/')
        );
        before_start.push(b.step(
            format!("restore_smd:{dn}"),
            Some(&dn),
            attached,
            crate::restore::restore_smd_params(
                &set.id,
                &archive.uri,
                &smd_dir,
                set.smd_sha256(&archive.node).or(archive.sha256.as_deref()),
            ),
        ));
        let address = format!("{ip}:{}", ctx.policy.cluster.info_port);
        let start = render(&ctx.policy.cluster.service_start, &vars);
        // A stand-in is an instance this plan launches: nothing in shared memory to reattach.
        starts.push(b.step(
            format!("start_node:{dn}"),
            Some(&dn),
            before_start,
            Params::StartNode(params::NodeService {
                address,
                command: Some(start),
                rolling: true,
                start: Some(crate::nodes::start_kind(ctx, true, true)),
                node_id: match asdr_specs::config_node_ids(&config_text).as_slice() {
                    [id] => Some(id.clone()),
                    _ => None,
                },
                instance_store: crate::nodes::primaries(ctx.policy, &stand_in_vars),
                devices: device_checks,
            }),
        ));
    }
    let wait = b.step(
        format!("wait_cluster_stable:{label}"),
        None,
        starts,
        Params::WaitClusterStable(params::Stable {
            size: nodes.len(),
            nodes: new_nodes,
            ignore_migrations: false,
        }),
    );
    // Strong consistency: the restored cluster's partitions available before it counts (R19).
    let new: Vec<&str> = rejoin_new.iter().map(String::as_str).collect();
    crate::restore::consistency::settle(ctx, restore, None, Some(label), &new, wait, b);
    b.region = None;
    Ok(())
}

/// What a drill has left in the world: its instances not yet terminated and its volumes not yet
/// deleted. A volume that is `deleting` is on its way out and is not counted; one rule for the
/// teardown plan and the drill report.
#[derive(Debug, Default)]
pub struct Leftovers<'w> {
    pub instances: Vec<&'w crate::world::Instance>,
    pub volumes: Vec<&'w crate::world::Volume>,
}

impl Leftovers<'_> {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.volumes.is_empty()
    }
}

/// How a drill's journal names a step it started and never recorded done (`drill_resources`).
pub fn in_flight(plan_id: &str, step: &str) -> String {
    format!("step:{plan_id}/{step}")
}

/// How a drill's journal names a resource its plan `plan_id` made (`drill_resources`): the id
/// with the plan, which the resource carries from its creation (`asdr:plan`). A journal naming
/// a resource some other plan made (production's) counts for nothing.
pub fn made_by(id: &str, plan_id: &str) -> String {
    format!("{id}@{plan_id}")
}

/// Whether the drill's applies recorded making the resource `id` tagged `t`: by its id, or by
/// the plan and step it was tagged with at creation when that step was in flight at a kill and
/// no other live resource claims the same step.
fn recorded(world: &crate::world::World, drill: &str, id: &str, t: &crate::world::Tags) -> bool {
    let Some(made) = world.drill_resources.get(drill) else {
        return false;
    };
    let Some(plan) = t.get(tags::PLAN) else {
        return false;
    };
    if made.contains(&made_by(id, plan)) {
        return true;
    }
    let Some(step) = t.get(tags::STEP) else {
        return false;
    };
    if !made.contains(&in_flight(plan, step)) {
        return false;
    }
    let claims =
        |o: &crate::world::Tags| o.get(tags::PLAN) == Some(plan) && o.get(tags::STEP) == Some(step);
    // One of its kind per step: a launch tags its instance and the instance's root volume alike.
    if id.starts_with("i-") {
        world
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated && claims(&i.tags))
            .count()
            == 1
    } else {
        world
            .volumes
            .iter()
            .filter(|v| {
                !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting) && claims(&v.tags)
            })
            .count()
            == 1
    }
}

/// Resources tagged `asdr:drill=<drill>` and `asdr:cluster=<cluster>` that the drill's own
/// applies recorded making (R13: nothing else; a tag alone is anyone's to write).
pub fn leftovers<'w>(world: &'w crate::world::World, cluster: &str, drill: &str) -> Leftovers<'w> {
    let ours = |id: &str, t: &crate::world::Tags| {
        tagged(t, cluster, drill) && recorded(world, drill, id, t)
    };
    Leftovers {
        instances: world
            .instances
            .iter()
            .filter(|i| ours(&i.id, &i.tags) && i.state != InstanceState::Terminated)
            .collect(),
        volumes: world
            .volumes
            .iter()
            .filter(|v| {
                ours(&v.id, &v.tags)
                    && !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting)
            })
            .collect(),
    }
}

fn tagged(t: &crate::world::Tags, cluster: &str, drill: &str) -> bool {
    t.get(DRILL).map(String::as_str) == Some(drill)
        && t.get(tags::CLUSTER).map(String::as_str) == Some(cluster)
}

/// Live resources tagged for the drill that no apply of it recorded making: never torn down,
/// only said (someone else's tags, or what a drill killed before it recorded its launch made).
pub fn unrecorded(world: &crate::world::World, cluster: &str, drill: &str) -> Vec<String> {
    world
        .instances
        .iter()
        .filter(|i| i.state != InstanceState::Terminated && tagged(&i.tags, cluster, drill))
        .map(|i| (&i.id, &i.tags))
        .chain(
            world
                .volumes
                .iter()
                .filter(|v| {
                    !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting)
                        && tagged(&v.tags, cluster, drill)
                })
                .map(|v| (&v.id, &v.tags)),
        )
        .filter(|(id, t)| !recorded(world, drill, id, t))
        .map(|(id, _)| id.clone())
        .collect()
}

/// Everything tagged for the drill goes: instances first, then their volumes (R13: only what
/// carries `asdr:drill=<name>` for this cluster).
pub(crate) fn teardown(ctx: &Ctx<'_, '_>, name: &str, b: &mut Builder) -> Result<(), PlanError> {
    drill_of(ctx, name)?;
    // Every region: a drill of a restore into another region left its resources there.
    let left = leftovers(ctx.world, &ctx.policy.cluster.name, name);
    let strangers = unrecorded(ctx.world, &ctx.policy.cluster.name, name);
    if !strangers.is_empty() {
        b.warn(
            "R13",
            format!(
                "{} carr{} asdr:drill={name} but no apply of drill `{name}` recorded making {}: not torn down. A tag is anyone's to write; if a drill was killed before it recorded its launch, remove {} by hand once you know {} the drill's",
                strangers.join(", "),
                if strangers.len() == 1 { "ies" } else { "y" },
                if strangers.len() == 1 { "it" } else { "them" },
                if strangers.len() == 1 { "it" } else { "them" },
                if strangers.len() == 1 { "it is" } else { "they are" },
            ),
        );
    }
    let mut terminated = Vec::new();
    for i in &left.instances {
        b.region = i.region.clone();
        let node = i.tags.get(tags::NODE).cloned();
        b.change(
            format!("instance.{}", i.id),
            Action::Delete,
            format!("drill `{name}` teardown"),
            Some(json!({"instance_id": i.id, "node": node})),
            None,
        );
        terminated.push(b.step(
            format!("terminate_instance:{}", i.id),
            node.as_deref(),
            vec![],
            Params::TerminateInstance(params::TerminateInstance {
                instance_id: i.id.clone(),
                wait_until: "terminated".into(),
                reason: format!("drill {name} teardown"),
            }),
        ));
    }
    for v in &left.volumes {
        b.region = v.region.clone();
        b.change(
            format!("volume.{}", v.id),
            Action::Delete,
            format!("drill `{name}` teardown"),
            Some(json!({"volume_id": v.id})),
            None,
        );
        b.step(
            format!("delete_volume:{}", v.id),
            v.tags.get(tags::NODE).map(String::as_str),
            terminated.clone(),
            Params::DeleteVolume(params::DeleteVolume {
                volume_id: v.id.clone(),
                drill: name.to_string(),
                cluster_id: Some(ctx.cluster_id.to_string()),
            }),
        );
    }
    b.region = None;
    Ok(())
}

/// What a drill needs ready before it runs, read from its plan and the world: the snapshots it
/// restores (and those not completed yet), the SMD archive it puts back, and the largest volume
/// (which bounds the restore time when volumes initialise in parallel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub snapshots: Vec<String>,
    pub pending: Vec<String>,
    pub archive: Option<String>,
    pub largest_gib: u64,
}

pub fn readiness(plan: &crate::Plan, world: &crate::World) -> Readiness {
    let creates: Vec<&params::CreateVolume> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::CreateVolume(p) => Some(p),
            _ => None,
        })
        .collect();
    let snapshots: Vec<String> = creates
        .iter()
        .filter_map(|p| p.snapshot_id.clone())
        .collect();
    let pending = snapshots
        .iter()
        .filter(|id| {
            world
                .snapshots
                .iter()
                .any(|s| &s.id == *id && s.state != SnapshotState::Completed)
        })
        .cloned()
        .collect();
    Readiness {
        snapshots,
        pending,
        archive: plan.steps.iter().find_map(|s| match &s.params {
            Params::RestoreSmd(p) => Some(p.from.clone()),
            _ => None,
        }),
        largest_gib: creates
            .iter()
            .map(|p| u64::from(p.size_gib))
            .max()
            .unwrap_or(0),
    }
}

/// Whether a drill's resources go once it ran: `always`, `never`, or `on-success` — a drill that
/// passed within its deadline (a failed one is kept for inspection).
pub fn tears_down(teardown: asdr_specs::Teardown, passed: bool, overdue: bool) -> bool {
    match teardown {
        asdr_specs::Teardown::Always => true,
        asdr_specs::Teardown::OnSuccess => passed && !overdue,
        asdr_specs::Teardown::Never => false,
    }
}

/// A drill passes when its restore completed and validated within the deadline and, when it was
/// torn down, nothing tagged for it remains.
pub fn drill_passed(
    restored_and_validated: bool,
    overdue: bool,
    torn_down: bool,
    remaining: usize,
) -> bool {
    restored_and_validated && !overdue && (!torn_down || remaining == 0)
}

/// Every step kind a drill can take: a new cluster built from a set, then torn down.
pub fn step_kinds() -> Vec<crate::StepKind> {
    use crate::StepKind::*;
    let mut kinds = vec![
        WaitSnapshot,
        CreateVolume,
        WaitVolume,
        ProvisionInstance,
        AttachVolume,
        WriteConfig,
        RestoreSmd,
        StartNode,
        WaitClusterStable,
        SetRoster,
        WaitPartitionsAvailable,
    ];
    kinds.extend(TEARDOWN_KINDS);
    kinds
}
