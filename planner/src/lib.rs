//! asdr's planner: the observed `World`, the `Plan` model, and `plan(policy, world, now, op)`, a
//! pure and deterministic function that obeys the safety rules of docs/safety-rules.md.
//!
//! No I/O happens here: providers observe, the executor acts.

mod asbackup;
pub mod backup;
mod builder;
mod config;
pub mod copies;
pub mod drift;
pub mod drill;
mod error;
pub mod fast_restore;
pub mod graph;
pub mod identity;
mod learned;
pub mod locks;
pub mod manifest;
mod measured;
mod node_ids;
mod nodes;
mod observe;
pub mod params;
pub mod plan;
pub mod ports;
pub mod recycle_bin;
pub mod restore;
mod retained;
mod retention;
pub mod rto;
pub mod saved;
pub mod sets;
pub mod skeleton;
pub mod status;
pub mod tags;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod verify;
pub mod world;

use asdr_specs::{Diagnostic, NodeVars, Policy};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use error::PlanError;
pub use observe::{NodeHealth, set_id, set_time};
pub use plan::{Action, Change, FORMAT_VERSION, Plan, Step, StepKind, Summary, Warning};
pub use verify::{Violation, verify};
pub use world::World;

use crate::builder::Builder;
use crate::error::refuse;
use crate::graph::StepGraph;
use crate::observe::{Observed, render};

/// What to plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// The backup policy as desired state: a new set when due, retention.
    Backup,
    /// One of the policy's declared restores.
    Restore(String),
    /// A drill: its restore replayed into the drill's isolated target.
    Drill(String),
    /// Removing everything a drill created.
    Teardown(String),
}

impl Operation {
    /// The operation a plan's `operation` label names (`backup`, `restore:NAME`, …).
    pub fn from_label(label: &str) -> Option<Operation> {
        if label == "backup" {
            return Some(Operation::Backup);
        }
        let (kind, name) = label.split_once(':')?;
        match kind {
            "restore" => Some(Operation::Restore(name.into())),
            "drill" => Some(Operation::Drill(name.into())),
            "teardown" => Some(Operation::Teardown(name.into())),
            _ => None,
        }
    }

    pub fn label(&self) -> String {
        match self {
            Operation::Backup => "backup".into(),
            Operation::Restore(name) => format!("restore:{name}"),
            Operation::Drill(name) => format!("drill:{name}"),
            Operation::Teardown(name) => format!("teardown:{name}"),
        }
    }
}

/// Everything a step-building module reads.
pub(crate) struct Ctx<'a, 'w> {
    pub policy: &'a Policy,
    /// The cluster's own region.
    pub obs: &'a Observed<'w>,
    /// Everything observed, every region (copies, restores elsewhere).
    pub world: &'a World,
    pub now: OffsetDateTime,
    /// The cluster's id (`identity`): on everything asdr creates for it.
    pub cluster_id: &'a str,
}

impl Ctx<'_, '_> {
    /// Tags for every resource asdr creates: its own plus the policy's `backup.tags`.
    pub fn tags(&self, extra: &[(&str, &str)]) -> params::TagMap {
        let mut map: params::TagMap = self.policy.backup.tags.clone().into_iter().collect();
        map.insert(tags::CLUSTER.into(), self.policy.cluster.name.clone());
        map.insert(tags::CLUSTER_ID.into(), self.cluster_id.to_string());
        for (k, v) in extra {
            map.insert((*k).into(), (*v).into());
        }
        map
    }

    pub fn vars<'n>(&'n self, node: &'n asdr_specs::Node) -> NodeVars<'n> {
        NodeVars::new(&self.policy.cluster.name, node)
    }

    pub fn policy_node(&self, name: &str) -> &asdr_specs::Node {
        self.policy.node(name).expect("names come from the policy")
    }
}

/// Plans `op` for `policy` against `world` at `now`. Same inputs, same plan, byte for byte.
pub fn plan(
    policy: &Policy,
    world: &World,
    now: OffsetDateTime,
    op: &Operation,
) -> Result<Plan, PlanError> {
    // Whose is what: what carries another cluster's id is not in the world this plan sees.
    let identity = identity::resolve(policy, world)?;
    let seen = world;
    let world: &World = &identity::ours(seen, &identity.id);
    let home = copies::home_view(policy, world);
    let obs = Observed::new(policy, &home);
    restore::zone::check_placements(policy, world, op)?;
    match world.unobserved_regions.get(&policy.cluster.region) {
        // The cluster's region lost: only what acts elsewhere can be planned.
        Some(why) => check_elsewhere(policy, op, why)?,
        None => {
            check_cluster_present(policy, &home, &obs)?;
            check_edition(policy, &obs)?;
            check_devices(policy, &obs)?;
        }
    }
    let ctx = Ctx {
        policy,
        obs: &obs,
        world,
        now,
        cluster_id: &identity.id,
    };
    let mut b = Builder::default();
    match op {
        // Snapshot sets and asbackup sets are planned apart; neither knows the other.
        Operation::Backup if policy.backup.method == asdr_specs::Method::Asbackup => {
            asbackup::plan(&ctx, &mut b)?
        }
        Operation::Backup => backup::plan(&ctx, &mut b)?,
        Operation::Restore(name) => {
            let restore = policy
                .restore(name)
                .ok_or_else(|| PlanError::UnknownRestore {
                    name: name.clone(),
                    known: policy.restores.iter().map(|r| r.name.clone()).collect(),
                })?;
            restore::plan(&ctx, restore, &mut b)?;
        }
        Operation::Drill(name) => {
            // A drill in another region tags its stand-ins with the cluster's id but claims
            // nothing at home: on a cluster whose instances do not carry the id yet, every later
            // plan would find the id on the stand-ins only and refuse (R13).
            if let Some(d) = policy.drill(name)
                && policy
                    .restore(&d.restore)
                    .is_some_and(|r| r.region.is_some())
                && !identity.unclaimed.is_empty()
            {
                return Err(error::refuse(
                    asdr_specs::Diagnostic::new(
                        d.name_span,
                        format!(
                            "drill `{name}` rehearses a restore in another region, and {} instance(s) of the cluster do not carry its id ({}) yet",
                            identity.unclaimed.len(),
                            tags::CLUSTER_ID
                        ),
                    )
                    .rule("R13")
                    .help("apply a backup first (`asdr apply`): it tags the cluster's instances with its id, which the drill's stand-ins carry"),
                ));
            }
            drill::plan(&ctx, name, &mut b)?
        }
        Operation::Teardown(name) => drill::teardown(&ctx, name, &mut b)?,
    }
    // Only what acts in the cluster's region claims it: a restore elsewhere acts only there
    // (what it makes carries the id all the same).
    let at_home = match op {
        Operation::Backup => true,
        Operation::Restore(name) => policy.restore(name).is_some_and(|r| r.region.is_none()),
        // A drill of a restore at home claims the id too: its stand-ins carry it, and an id
        // that changed before the next apply (an instance replaced by hand) would leave them
        // another cluster's to its teardown.
        Operation::Drill(name) => policy
            .drill(name)
            .and_then(|d| policy.restore(&d.restore))
            .is_some_and(|r| r.region.is_none()),
        Operation::Teardown(_) => false,
    };
    claim(&ctx, &identity, seen, at_home, &mut b);
    for d in drift::undeclared(policy, world) {
        b.warn("drift", d.message);
    }
    if let Some(restore) = rto::restore_of(policy, op) {
        fast_restore::add(restore, world, &identity.id, &mut b);
    } else if *op == Operation::Backup && policy.backup.method == asdr_specs::Method::EbsSnapshot {
        fast_restore::keep_newest(&ctx, &mut b);
    }
    let rto = rto::restore_rto(policy, world, op, &mut b);
    let mut plan = finish(policy, seen, now, op, &identity.id, b)?;
    plan.rto = rto;
    // The planner's own output is checked by the independent verifier: a violation here is a
    // bug in the planner, and the plan is refused rather than shown or applied.
    let violations = verify(policy, seen, &plan);
    if !violations.is_empty() {
        return Err(PlanError::Unsafe(violations));
    }
    Ok(plan)
}

/// A plan that changes anything claims the cluster's id first: the instances of its nodes that do
/// not carry it yet are tagged, and everything the plan creates (it carries the id) waits for
/// that, so no resource is ever tagged with an id the cluster does not hold. Resources of another
/// same-named cluster (another id) are left out of the plan, and said.
fn claim(
    ctx: &Ctx<'_, '_>,
    identity: &identity::Identity,
    seen: &World,
    at_home: bool,
    b: &mut Builder,
) {
    let foreign = identity::foreign_count(seen, &ctx.policy.cluster.name, &identity.id);
    if foreign > 0 {
        b.warn(
            "R13",
            format!(
                "{foreign} resource(s) tagged {}={} carry another {} than this cluster's ({}): another cluster of the same name; asdr leaves them alone",
                tags::CLUSTER,
                ctx.policy.cluster.name,
                tags::CLUSTER_ID,
                identity.id
            ),
        );
    }
    // The cluster's own history under another id is among those resources: looked for only
    // when there are any (a pass over every snapshot).
    let own_under_others = if foreign > 0 {
        identity::own_history_under_other_ids(ctx.policy, seen, &identity.id)
    } else {
        Default::default()
    };
    for (other, n) in own_under_others {
        b.warn(
            "R13",
            format!(
                "{n} snapshot(s) of this cluster's node volumes carry cluster id {other}, not {}: were the instances' {} tags changed? They are left alone and not counted",
                identity.id,
                tags::CLUSTER_ID
            ),
        );
    }
    // Only instances where the policy places their node are claimed: a zone-loss restore sends
    // nothing to the lost zone but a stop, and an old twin there is nobody's to tag.
    let mut left_behind: Vec<&str> = ctx
        .policy
        .restores
        .iter()
        .filter(|r| {
            b.steps
                .iter()
                .any(|s| s.id == format!("mark_restore_complete:{}", r.name))
        })
        .flat_map(|r| ctx.policy.moved_nodes(r))
        .filter_map(|n| ctx.obs.node(&n.name).instance.map(|i| i.id.as_str()))
        .collect();
    left_behind.extend(
        ctx.world
            .instances
            .iter()
            .filter(|i| {
                i.tags
                    .get(tags::NODE)
                    .and_then(|n| ctx.policy.node(n))
                    .is_some_and(|n| i.availability_zone != n.availability_zone)
            })
            .map(|i| i.id.as_str()),
    );
    let unclaimed: Vec<String> = identity
        .unclaimed
        .iter()
        .filter(|i| !left_behind.contains(&i.as_str()))
        .cloned()
        .collect();
    if !at_home || b.steps.is_empty() || unclaimed.is_empty() {
        return;
    }
    let id = b.step(
        "claim_cluster".into(),
        None,
        vec![],
        params::Params::ClaimCluster(params::ClaimCluster {
            cluster: ctx.policy.cluster.name.clone(),
            cluster_id: identity.id.clone(),
            instances: unclaimed.clone(),
        }),
    );
    b.change(
        format!("cluster_id.{}", ctx.policy.cluster.name),
        Action::Update,
        format!(
            "the cluster id ({}) tagged on its instances: a name is not an identity, and everything asdr makes carries the id (R13)",
            identity.how.short()
        ),
        None,
        Some(serde_json::json!({
            "tag": format!("{}={}", tags::CLUSTER_ID, identity.id),
            "instances": unclaimed,
        })),
    );
    let n = b.steps.len();
    for s in &mut b.steps[..n - 1] {
        // What creates something tagged, and asbackup runs (their manifests name the id).
        if s.params.tags().is_some() || matches!(s.params, params::Params::Asbackup(_)) {
            s.depends_on.push(id.clone());
            s.depends_on.sort();
        }
    }
}

/// Orders the steps for execution and stamps digests and the plan id.
fn finish(
    policy: &Policy,
    world: &World,
    now: OffsetDateTime,
    op: &Operation,
    cluster_id: &str,
    b: Builder,
) -> Result<Plan, PlanError> {
    let order = StepGraph::new(&b.steps)?.order();
    let mut position = vec![0usize; b.steps.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let index: std::collections::HashMap<&str, usize> = b
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut slots: Vec<Option<Step>> = b.steps.iter().cloned().map(Some).collect();
    let steps: Vec<Step> = order
        .iter()
        .map(|&i| {
            let mut s = slots[i].take().expect("each step once");
            s.depends_on.sort_by_key(|d| position[index[d.as_str()]]);
            s
        })
        .collect();
    let spec_digest = spec_digest(policy);
    let world_digest = world_digest(world);
    let label = op.label();
    let mut h = Sha256::new();
    h.update(spec_digest.as_bytes());
    h.update(world_digest.as_bytes());
    h.update(label.as_bytes());
    let short: String = hex(&h.finalize())[..4].to_string();
    let summary = Summary::of(&b.changes, steps.len());
    Ok(Plan {
        format_version: FORMAT_VERSION,
        plan_id: format!("p-{}-{short}", &set_id(now)[3..]),
        cluster: policy.cluster.name.clone(),
        cluster_id: Some(cluster_id.to_string()),
        operation: label,
        now: now.format(&Rfc3339).expect("formats"),
        spec_digest,
        world_digest,
        changes: b.changes,
        steps,
        warnings: b.warnings,
        summary,
        rto: None,
    })
}

/// sha256 of the policy text and the config template it renders: a changed template is a changed spec.
pub fn spec_digest(policy: &Policy) -> String {
    let mut h = Sha256::new();
    h.update(policy.text.as_bytes());
    h.update([0]);
    h.update(policy.cluster.config.template.source().as_bytes());
    format!("sha256:{}", hex(&h.finalize()))
}

/// sha256 of the world's canonical JSON (struct field order, sorted maps), streamed into the
/// hash: a large world is tens of megabytes of JSON that need not exist in memory.
pub fn world_digest(world: &World) -> String {
    struct HashWriter(Sha256);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // What asdr's own journals recorded (added to the world as it observes) is not the world
    // observed: a plan made from the same observation keeps its id whatever ran since.
    let world: std::borrow::Cow<'_, World> =
        if world.drill_resources.is_empty() && world.recorded_snapshots.is_empty() {
            std::borrow::Cow::Borrowed(world)
        } else {
            let mut w = world.clone();
            w.drill_resources.clear();
            w.recorded_snapshots.clear();
            std::borrow::Cow::Owned(w)
        };
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
    serde_json::to_writer(&mut w, world.as_ref()).expect("a world serializes");
    let hasher = w
        .into_inner()
        .unwrap_or_else(|_| unreachable!("hashing never fails"));
    format!("sha256:{}", hex(&hasher.0.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refused as `plan` refuses it when the world holds nothing of the policy's cluster (`status`
/// reads the same world and must not report on the wrong one).
pub fn cluster_present(policy: &Policy, world: &World) -> Result<(), PlanError> {
    let obs = Observed::new(policy, world);
    check_cluster_present(policy, world, &obs)
}

/// R9: a node whose `edition` reply contradicts the policy stops the plan.
/// A world with nothing of this cluster in it is the wrong world (another cluster's file, another
/// region or account), not a cluster whose every node is gone: say so, rather than plan restores
/// of "gone" nodes or refuse a backup node by node.
fn check_cluster_present(
    policy: &Policy,
    world: &World,
    obs: &Observed<'_>,
) -> Result<(), PlanError> {
    let cluster = &policy.cluster.name;
    let ours =
        |t: &std::collections::BTreeMap<String, String>| t.get(tags::CLUSTER) == Some(cluster);
    let present = obs
        .nodes
        .iter()
        .any(|n| n.instance.is_some() || n.observation.is_some())
        || world.volumes.iter().any(|v| ours(&v.tags))
        || world.snapshots.iter().any(|s| ours(&s.tags))
        // Archives count when they are in this policy's own stores.
        || world
            .smd_archives
            .iter()
            .any(|a| a.uri.starts_with(policy.backup.smd_to.trim_end_matches('/')))
        || policy.backup.asbackup.as_ref().is_some_and(|b| {
            world
                .asbackup_archives
                .iter()
                .any(|a| a.uri.starts_with(b.to.trim_end_matches('/')))
        });
    if present {
        return Ok(());
    }
    let others: std::collections::BTreeSet<&str> = world
        .instances
        .iter()
        .map(|i| &i.tags)
        .chain(world.volumes.iter().map(|v| &v.tags))
        .chain(world.snapshots.iter().map(|s| &s.tags))
        .filter_map(|t| t.get(tags::CLUSTER).map(String::as_str))
        .collect();
    let held = if others.is_empty() {
        String::new()
    } else {
        format!(
            "; it holds resources of cluster {}",
            others
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let first = &policy.cluster.nodes[0];
    Err(refuse(
        Diagnostic::new(
            first.name_span,
            format!(
                "the world holds nothing of cluster `{cluster}`: no instance at its nodes' addresses or tagged asdr:cluster={cluster}, no node answering, no volume, snapshot or SMD archive of it{held}"
            ),
        )
        .help("check that the world file, the region (--region) and the account are this cluster's, and the policy's `cluster.name`"),
    ))
}

/// With the cluster's own region unobserved (a region outage), only a restore into another
/// region, or a drill or teardown of one, can be planned: everything else needs that region.
fn check_elsewhere(policy: &Policy, op: &Operation, why: &str) -> Result<(), PlanError> {
    let restore = match op {
        Operation::Restore(name) => policy.restore(name),
        Operation::Drill(name) | Operation::Teardown(name) => {
            policy.drill(name).and_then(|d| policy.restore(&d.restore))
        }
        Operation::Backup => None,
    };
    if restore.is_some_and(|r| r.region.is_some()) {
        return Ok(());
    }
    let elsewhere: Vec<&str> = policy
        .restores
        .iter()
        .filter(|r| r.region.is_some())
        .map(|r| r.name.as_str())
        .collect();
    Err(refuse(
        Diagnostic::new(
            policy.cluster.nodes[0].name_span,
            format!(
                "the cluster's region {} could not be observed ({why}): nothing that acts there can be planned",
                policy.cluster.region
            ),
        )
        .help(if elsewhere.is_empty() {
            "check the endpoint, the credentials and the region's health; backup.copies and a restore with `region:` make a region outage recoverable".to_string()
        } else {
            format!(
                "restores into another region can be planned: {}",
                elsewhere.join(", ")
            )
        }),
    ))
}

fn check_edition(policy: &Policy, obs: &Observed<'_>) -> Result<(), PlanError> {
    let expected = policy.cluster.edition;
    if let Some((node, reply)) = obs.edition_mismatch(expected) {
        return Err(refuse(
            Diagnostic::new(
                policy.cluster.edition_span,
                format!(
                    "node `{}` reports `{reply}`, but the policy says `edition: {expected}`",
                    node.name
                ),
            )
            .rule("R9")
            .help("correct `cluster.edition`, or check that asdr is looking at the right cluster"),
        ));
    }
    Ok(())
}

/// What every plan checks of the nodes before planning (edition, devices, racks, consistency):
/// `status` reports a refusal here as a problem, since every plan would refuse.
pub(crate) fn preflight(policy: &Policy, obs: &Observed<'_>) -> Result<(), PlanError> {
    check_edition(policy, obs)?;
    check_devices(policy, obs)
}

/// The devices each live node reports must be the policy's: a mismatch means the policy would
/// back up or restore the wrong volumes.
fn check_devices(policy: &Policy, obs: &Observed<'_>) -> Result<(), PlanError> {
    for view in &obs.nodes {
        let Some(o) = view
            .observation
            .filter(|o| o.reachable && !o.namespaces.is_empty())
        else {
            continue;
        };
        let node = policy.node(&view.name).expect("viewed from the policy");
        let vars = NodeVars::new(&policy.cluster.name, node);
        for ns in &policy.cluster.namespaces {
            let want: Vec<(String, Option<String>)> = ns
                .devices
                .iter()
                .map(|d| {
                    (
                        render(&d.device, &vars),
                        d.shadow.as_ref().map(|s| render(s, &vars)),
                    )
                })
                .collect();
            let seen = o.namespaces.iter().find(|n| n.name == ns.name);
            let rack = policy.cluster.rack_of(node);
            if let Some(r) = seen
                .and_then(|s| s.rack_id)
                .filter(|r| !policy.cluster.racks.is_empty() && *r != rack)
            {
                return Err(refuse(
                    Diagnostic::new(
                        ns.name_span,
                        format!(
                            "node `{}` ({}) runs namespace `{}` in rack {r}, but `racks` puts it in rack {rack}",
                            view.name, node.availability_zone, ns.name
                        ),
                    )
                    .rule("R4")
                    .help("make `cluster.racks` say each zone's rack as aerospike.conf has it on the nodes"),
                ));
            }
            if let Some(s) = seen
                && s.strong_consistency != ns.strong_consistency
            {
                let says = |sc: bool| {
                    if sc {
                        "strong consistency"
                    } else {
                        "AP (no strong consistency)"
                    }
                };
                return Err(refuse(
                    Diagnostic::new(
                        ns.name_span,
                        format!(
                            "node `{}` runs namespace `{}` with {}, but the policy says {}",
                            view.name,
                            ns.name,
                            says(s.strong_consistency),
                            says(ns.strong_consistency)
                        ),
                    )
                    .rule("R19")
                    .help("set the namespace's `strong_consistency` as aerospike.conf has it on the nodes"),
                ));
            }
            // Every rule that keeps a copy while a node is out (R6's `source: empty`, R8's
            // rolling limit) counts the policy's replication factor: a node running fewer copies
            // than that is refused. More copies than counted is safe (a rolling increase).
            if let Some(rf) = seen
                .and_then(|s| s.replication_factor)
                .filter(|rf| *rf < ns.replication_factor)
            {
                return Err(refuse(
                    Diagnostic::new(
                        ns.name_span,
                        format!(
                            "node `{}` runs namespace `{}` with replication-factor {rf}, but the policy says {}: the rules that keep a copy while a node is out (R6, R8) would count copies that are not there",
                            view.name, ns.name, ns.replication_factor
                        ),
                    )
                    .rule("R8")
                    .help("set the namespace's `replication_factor` to the lowest the nodes run (a rolling change: the lowest until every node has the new one)"),
                ));
            }
            let got: Option<Vec<(String, Option<String>)>> = seen.map(|n| {
                n.devices
                    .iter()
                    .map(|d| (d.device.clone(), d.shadow.clone()))
                    .collect()
            });
            if got.as_ref() != Some(&want) {
                let show = |v: &[(String, Option<String>)]| {
                    v.iter()
                        .map(|(d, s)| {
                            s.as_ref()
                                .map_or_else(|| d.clone(), |s| format!("{d} (shadow {s})"))
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let reported = got.map_or_else(|| "no such namespace".to_string(), |g| show(&g));
                return Err(refuse(
                    Diagnostic::new(
                        ns.name_span,
                        format!(
                            "node `{}` reports devices [{reported}] for namespace `{}`, but the policy says [{}]",
                            view.name,
                            ns.name,
                            show(&want)
                        ),
                    )
                    .help("make the policy's `devices` match aerospike.conf on the nodes"),
                ));
            }
        }
    }
    Ok(())
}
