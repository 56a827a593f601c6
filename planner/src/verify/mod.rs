//! An independent check of a plan against the safety rules. It knows nothing of how plans are
//! built: it reads the policy, the world and the plan's graph, and checks invariants that must
//! hold whatever the planner did. `plan` runs it on every plan it makes (a violation is a bug in
//! the planner and the plan is refused), `apply` runs it on every plan it is given.
//!
//! Every check reads the world for itself (which node is down, which sets are complete, which
//! volume is whose) instead of asking the planner's view, so one mistake cannot hide in both.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use asdr_specs::{Edition, Node, NodeVars, Policy, RestoreSource, Scope, Template, Transport};
use time::OffsetDateTime;

use crate::params::Params;
use crate::plan::{Plan, Step, StepKind};
use crate::tags;
use crate::world::{InstanceState, SnapshotState, Volume, VolumeState, World};

mod accounts;
mod consistency;
mod deletes;
mod drill;
mod fast_restore;
mod identity;
mod locks;
mod node_ids;
mod regions;
mod restores;
mod rules;
mod scope;
mod starts;
mod stores;
mod zone;

/// One broken invariant: the rule, the step it concerns, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub step: Option<String>,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(s) => write!(f, "[{}] {s}: {}", self.rule, self.message),
            None => write!(f, "[{}] {}", self.rule, self.message),
        }
    }
}

/// Checks `plan` against the safety invariants for `policy` and `world`. Empty means safe.
///
/// The steps in the cluster's own region are checked against that region's view of the world
/// (a copy elsewhere is never taken for the cluster's own snapshot); the steps in other regions
/// (copies, their retention, restores there) against those regions' views (R16).
pub fn verify(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    // Whose is what, read from everything observed; the rest reads only what is not another
    // cluster's (by its id).
    let mut out = identity::check(policy, world, plan);
    let ours = match plan.cluster_id.as_deref() {
        Some(id) => crate::identity::ours(world, id),
        None => std::borrow::Cow::Borrowed(world),
    };
    out.extend(verify_ours(policy, &ours, plan));
    out.extend(locks::check(policy, &ours, plan));
    out.extend(fast_restore::check(policy, &ours, plan));
    out
}

fn verify_ours(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    // A zone-loss restore is read against the policy it leaves (its nodes in the new zone).
    let moved = zone::moved_policy(policy, plan);
    let policy = moved.as_ref().unwrap_or(policy);
    let home = home_world(policy, world);
    let regional = plan.steps.iter().any(|s| s.region.is_some());
    if let Some(region) = regions::restore_region(policy, plan) {
        let mut out = regions::verify_region_restore(policy, world, plan, region);
        out.extend(stores::confined(policy, plan));
        out.extend(node_ids::node_ids(policy, world, plan));
        out.extend(consistency::whole_plan(policy, &home, plan));
        return out;
    }
    let mut out = if regional {
        let home_plan = regions::sub_plan(plan, None);
        Verifier::new(policy, &home, &home_plan, policy.backup.retain).run_all()
    } else {
        Verifier::new(policy, &home, plan, policy.backup.retain).run_all()
    };
    if regional || !policy.backup.copies.is_empty() {
        out.extend(regions::verify_copies(policy, world, &home, plan));
    }
    // Read over the whole plan, every region's steps at once.
    out.extend(stores::tool_args(plan));
    out.extend(stores::copy_stores(policy, plan));
    out.extend(stores::confined(policy, plan));
    out.extend(node_ids::node_ids(policy, world, plan));
    // A drill in another region: its steps there were left out of the home plan above.
    if regional && plan.operation.starts_with("drill:") {
        out.extend(consistency::whole_plan(policy, &home, plan));
    }
    out
}

/// The cluster's own region as the verifier reads it: only what is there, without the copies'
/// SMD stores, and never a snapshot that is a copy (the source tags a copy carries): in its own
/// region a cluster's backups are snapshots of its volumes; a copy there was made by a same-named
/// cluster elsewhere, and is never counted, restored from or deleted.
fn home_world<'w>(policy: &Policy, world: &'w World) -> std::borrow::Cow<'w, World> {
    let is_copy = |s: &crate::world::Snapshot| {
        s.tags.contains_key(tags::SOURCE_SNAPSHOT) || s.tags.contains_key(tags::SOURCE_REGION)
    };
    // The home store's archives and manifests only (a store the policy no longer names is
    // nobody's to read from).
    let home_store = |a: &str| {
        a.strip_prefix(policy.backup.smd_to.trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/'))
    };
    if policy.backup.copies.is_empty()
        && !world.has_other_regions()
        && !world.snapshots.iter().any(is_copy)
        && world.smd_archives.iter().all(|a| home_store(&a.uri))
        && world.set_manifests.iter().all(|m| home_store(&m.uri))
    {
        return std::borrow::Cow::Borrowed(world);
    }
    let home = &policy.cluster.region;
    let mut view = world.in_region(home, home, home_store);
    view.snapshots.retain(|s| !is_copy(s));
    std::borrow::Cow::Owned(view)
}

impl<'a> Verifier<'a> {
    fn new(
        policy: &'a Policy,
        world: &'a World,
        plan: &'a Plan,
        retain: asdr_specs::Retain,
    ) -> Self {
        Verifier {
            policy,
            world,
            plan,
            retain,
            out: Vec::new(),
            graph: None,
            ix: Index::new(policy, world),
            seen: std::cell::RefCell::new((vec![0; plan.steps.len()], 0)),
            complete: std::cell::OnceCell::new(),
            manifests: std::cell::OnceCell::new(),
            ebs: policy
                .cluster
                .nodes
                .iter()
                .map(|n| {
                    let vars = NodeVars::new(&policy.cluster.name, n);
                    let devices = policy
                        .ebs_devices()
                        .into_iter()
                        .map(|t| t.render(&vars).unwrap_or_else(|_| t.source().to_string()))
                        .collect();
                    (n.name.clone(), devices)
                })
                .collect(),
        }
    }

    fn run_all(mut self) -> Vec<Violation> {
        self.run();
        self.out
    }
}

/// The plan's graph: positions, dependencies and dependents by index.
struct Graph {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

impl Graph {
    /// Steps reachable from `from` along `edges` (not including `from`).
    fn reach(edges: &[Vec<usize>], from: usize, seen: &mut [u32], stamp: u32) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            for &j in &edges[i] {
                if seen[j] != stamp {
                    seen[j] = stamp;
                    out.push(j);
                    stack.push(j);
                }
            }
        }
        out
    }
}

enum Op<'p> {
    Backup,
    Restore(&'p asdr_specs::Restore),
    Drill(&'p asdr_specs::Drill),
    Teardown(String),
    Unknown,
}

type ManifestsRead<'a> = HashMap<
    String,
    (
        &'a crate::manifest::ObservedManifest,
        Result<&'a crate::manifest::SetManifest, String>,
    ),
>;

struct Verifier<'a> {
    policy: &'a Policy,
    world: &'a World,
    plan: &'a Plan,
    /// The retention that applies where the plan acts (`backup.retain`, or a copy's).
    retain: asdr_specs::Retain,
    out: Vec<Violation>,
    graph: Option<Graph>,
    ix: Index<'a>,
    /// A reusable visited-mark buffer for graph searches, and its current stamp.
    seen: std::cell::RefCell<(Vec<u32>, u32)>,
    complete: std::cell::OnceCell<Vec<(String, OffsetDateTime)>>,
    /// Each set's manifest as read here, once: its checksum is a hash of the whole manifest,
    /// and restores and retention ask per step.
    manifests: std::cell::OnceCell<ManifestsRead<'a>>,
    /// Each policy node's rendered EBS device names.
    ebs: HashMap<String, Vec<String>>,
}

/// The world by id and by owner, built once: a 256-node world holds 60k snapshots.
struct Index<'a> {
    snap: HashMap<&'a str, &'a crate::world::Snapshot>,
    vol: HashMap<&'a str, &'a Volume>,
    /// This cluster's snapshots by (asdr:node, asdr:device) and by asdr:set.
    snaps_nd: HashMap<(&'a str, &'a str), Vec<&'a crate::world::Snapshot>>,
    snaps_set: BTreeMap<&'a str, Vec<&'a crate::world::Snapshot>>,
    /// This cluster's volumes by (asdr:node, asdr:device).
    vols_nd: HashMap<(&'a str, &'a str), Vec<&'a Volume>>,
}

impl<'a> Index<'a> {
    fn new(policy: &Policy, world: &'a World) -> Self {
        let own = |t: &BTreeMap<String, String>| t.get(tags::CLUSTER) == Some(&policy.cluster.name);
        let mut ix = Index {
            snap: HashMap::with_capacity(world.snapshots.len()),
            vol: HashMap::with_capacity(world.volumes.len()),
            snaps_nd: HashMap::new(),
            snaps_set: BTreeMap::new(),
            vols_nd: HashMap::new(),
        };
        for s in &world.snapshots {
            ix.snap.insert(s.id.as_str(), s);
            if !own(&s.tags) {
                continue;
            }
            if let (Some(n), Some(d)) = (s.tags.get(tags::NODE), s.tags.get(tags::DEVICE)) {
                ix.snaps_nd
                    .entry((n.as_str(), d.as_str()))
                    .or_default()
                    .push(s);
            }
            if let Some(set) = s.tags.get(tags::SET) {
                ix.snaps_set.entry(set.as_str()).or_default().push(s);
            }
        }
        for v in &world.volumes {
            ix.vol.insert(v.id.as_str(), v);
            if own(&v.tags)
                && let (Some(n), Some(d)) = (v.tags.get(tags::NODE), v.tags.get(tags::DEVICE))
            {
                ix.vols_nd
                    .entry((n.as_str(), d.as_str()))
                    .or_default()
                    .push(v);
            }
        }
        ix
    }
}

/// A node's out-of-service window: opened by a step (or before the plan, for a node that is
/// already down) and closed by its `wait_cluster_stable`.
struct Window {
    node: String,
    open: Option<usize>,
    close: usize,
}

impl<'a> Verifier<'a> {
    fn bad(&mut self, rule: &'static str, step: Option<&Step>, message: impl Into<String>) {
        self.out.push(Violation {
            rule,
            step: step.map(|s| s.id.clone()),
            message: message.into(),
        });
    }

    fn op(&self) -> Op<'a> {
        let label = self.plan.operation.as_str();
        if label == "backup" {
            return Op::Backup;
        }
        if let Some(name) = label.strip_prefix("restore:") {
            return self.policy.restore(name).map_or(Op::Unknown, Op::Restore);
        }
        if let Some(name) = label.strip_prefix("drill:") {
            return self.policy.drill(name).map_or(Op::Unknown, Op::Drill);
        }
        if let Some(name) = label.strip_prefix("teardown:") {
            return Op::Teardown(name.to_string());
        }
        Op::Unknown
    }

    fn run(&mut self) {
        if !self.check_graph() {
            return;
        }
        let op = self.op();
        if matches!(op, Op::Unknown) {
            let op = self.plan.operation.clone();
            self.bad(
                "R13",
                None,
                format!("operation `{op}` is not one the policy declares"),
            );
            return;
        }
        if self.plan.cluster != self.policy.cluster.name {
            let c = self.plan.cluster.clone();
            self.bad(
                "R13",
                None,
                format!(
                    "the plan is for cluster `{c}`, the policy for `{}`",
                    self.policy.cluster.name
                ),
            );
        }
        self.check_kinds_allowed(&op);
        self.check_r14_first();
        self.check_r8_windows();
        self.check_r11();
        self.check_r13_deletes(&op);
        self.check_r13_backup_deletes();
        self.check_r13_detach_terminate(&op);
        match &op {
            Op::Backup => {
                self.check_r1();
                self.check_r1_drained();
                self.check_r2_backup();
                self.check_r6_backup();
            }
            Op::Restore(r) => {
                self.check_restore_data(r, None);
                self.check_r4(r);
                self.check_zone(r);
                self.check_r6_restore(r);
                self.check_r12(r);
                self.check_wait_sizes();
                self.check_refill(r);
                self.check_asrestore_window(r);
                self.check_r19(r);
            }
            Op::Drill(d) => {
                if let Some(r) = self.policy.restore(&d.restore) {
                    self.check_restore_data(r, Some(d.name.as_str()));
                }
                self.check_drill(d);
                if let Some(r) = self.policy.restore(&d.restore) {
                    self.check_r19(r);
                }
            }
            Op::Teardown(_) | Op::Unknown => {}
        }
        self.check_encryption(&op);
        self.check_r17_starts();
        self.check_r5_devices();
        self.check_asrestore_chains();
    }

    // ---- the graph ------------------------------------------------------------------------

    fn check_graph(&mut self) -> bool {
        let mut pos = HashMap::with_capacity(self.plan.steps.len());
        for (i, s) in self.plan.steps.iter().enumerate() {
            if pos.insert(s.id.as_str(), i).is_some() {
                self.bad("graph", Some(s), "the step id is used twice");
                return false;
            }
        }
        let mut deps = vec![Vec::new(); self.plan.steps.len()];
        let mut dependents = vec![Vec::new(); self.plan.steps.len()];
        for (i, s) in self.plan.steps.iter().enumerate() {
            for d in &s.depends_on {
                match pos.get(d.as_str()) {
                    None => {
                        self.bad(
                            "graph",
                            Some(s),
                            format!("depends on `{d}`, which is not in the plan"),
                        );
                        return false;
                    }
                    Some(&j) if j >= i => {
                        self.bad(
                            "graph",
                            Some(s),
                            format!("is listed before its dependency `{d}`"),
                        );
                        return false;
                    }
                    Some(&j) => {
                        deps[i].push(j);
                        dependents[j].push(i);
                    }
                }
            }
        }
        self.graph = Some(Graph { deps, dependents });
        true
    }

    fn graph(&self) -> &Graph {
        self.graph.as_ref().expect("checked first")
    }

    fn ancestors(&self, i: usize) -> HashSet<usize> {
        let mut seen = vec![0u32; self.plan.steps.len()];
        Graph::reach(&self.graph().deps, i, &mut seen, 1)
            .into_iter()
            .collect()
    }

    fn steps(&self, kind: StepKind) -> impl Iterator<Item = (usize, &'a Step)> + '_ {
        let plan: &'a Plan = self.plan;
        plan.steps
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.kind() == kind)
    }

    fn has_ancestor(&self, i: usize, pred: impl Fn(&Step) -> bool) -> bool {
        self.find_ancestor(i, pred).is_some()
    }

    /// The first ancestor of `i` found (nearest first) for which `pred` holds.
    fn find_ancestor(&self, i: usize, pred: impl Fn(&Step) -> bool) -> Option<usize> {
        let mut guard = self.seen.borrow_mut();
        let (seen, stamp) = &mut *guard;
        *stamp += 1;
        let deps = &self.graph().deps;
        let mut frontier = vec![i];
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for x in frontier {
                for &d in &deps[x] {
                    if seen[d] != *stamp {
                        seen[d] = *stamp;
                        if pred(&self.plan.steps[d]) {
                            return Some(d);
                        }
                        next.push(d);
                    }
                }
            }
            frontier = next;
        }
        None
    }

    // ---- facts about the world, read independently of the planner -------------------------

    fn vars<'n>(&'n self, node: &'n Node) -> NodeVars<'n> {
        NodeVars::new(&self.policy.cluster.name, node)
    }

    fn render(&self, t: &Template, node: &Node) -> String {
        t.render(self.vars(node))
            .unwrap_or_else(|_| t.source().to_string())
    }

    fn ebs_of(&self, node: &Node) -> Vec<String> {
        self.ebs.get(&node.name).cloned().unwrap_or_default()
    }

    fn own_tags(&self, t: &BTreeMap<String, String>) -> bool {
        t.get(tags::CLUSTER) == Some(&self.policy.cluster.name)
    }

    /// The instance of a node: the one the policy pins, else one tagged for it at the node's
    /// address (an instance carrying its tags elsewhere is not the node); a live one wins, then
    /// the pinned one.
    fn is_down(&self, node: &Node) -> bool {
        let running = self
            .instance_of(node)
            .is_some_and(|i| matches!(i.state, InstanceState::Running | InstanceState::Pending));
        let answers = self
            .world
            .nodes
            .iter()
            .any(|o| o.name == node.name && o.reachable);
        !(running && answers)
    }

    fn step_node(&self, s: &Step) -> Option<&'a Node> {
        s.node.as_deref().and_then(|n| self.policy.node(n))
    }

    /// Complete sets, oldest first, computed from the snapshots and archives themselves: marked,
    /// every member the mark recorded still there and completed, and the SMD archive.
    fn complete_sets(&self) -> &[(String, OffsetDateTime)] {
        self.complete.get_or_init(|| self.compute_complete_sets())
    }

    /// The set's manifest in the world, read here (not the planner's reading): `None` when the
    /// store holds none; `Some(Err)` when it is altered, another cluster's or another set's.
    fn manifest_of(&self, set: &str) -> Option<Result<&'a crate::manifest::SetManifest, String>> {
        let world: &'a World = self.world;
        let read = self.manifests.get_or_init(|| {
            let mut out = HashMap::new();
            for m in &world.set_manifests {
                out.entry(m.set.clone())
                    .or_insert_with(|| (m, m.usable(&self.policy.cluster.name)));
            }
            out
        });
        read.get(set).map(|(_, r)| r.clone())
    }

    /// A set with a manifest is whole when every member it lists is there as listed, completed
    /// and marked, and every SMD archive it lists is in the store.
    fn whole_by_manifest(&self, m: &crate::manifest::SetManifest) -> bool {
        !m.members.is_empty()
            && m.members.iter().all(|mb| {
                self.ix.snap.get(mb.snapshot_id.as_str()).is_some_and(|s| {
                    self.own_tags(&s.tags)
                        && s.state == SnapshotState::Completed
                        && s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")
                        && match &mb.source_snapshot_id {
                            Some(src) => s.tags.get(tags::SOURCE_SNAPSHOT) == Some(src),
                            None => s.volume_id == mb.volume_id,
                        }
                })
            })
            // Each SMD archive it lists, of that node in this store, with the checksum it
            // recorded where one was read.
            && m.smd.iter().all(|e| {
                self.world.smd_archives.iter().any(|a| {
                    a.set == m.set
                        && (a.node == e.node || a.uri == e.uri)
                        && a.sha256.as_deref().is_none_or(|h| h == e.sha256)
                })
            })
            && !m.smd.is_empty()
    }

    fn compute_complete_sets(&self) -> Vec<(String, OffsetDateTime)> {
        let mut out = Vec::new();
        for (set, snaps) in &self.ix.snaps_set {
            // A set with a manifest is complete by it alone; a set whose mark names a manifest
            // that is missing or altered is not complete (R2).
            let named = snaps.iter().any(|s| s.tags.contains_key(tags::MANIFEST));
            // Marked before manifests: judged as it was marked, whatever manifest appears.
            let marked_without = !named
                && snaps
                    .iter()
                    .any(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"));
            match self.manifest_of(set).filter(|_| !marked_without) {
                Some(Ok(m)) => {
                    if self.whole_by_manifest(m) {
                        let time =
                            crate::observe::set_time(set).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                        out.push((set.to_string(), time));
                    }
                    continue;
                }
                Some(Err(_)) if named => continue,
                None if named => continue,
                _ => {}
            }
            let marked = snaps
                .iter()
                .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"));
            let completed = snaps.iter().all(|s| s.state == SnapshotState::Completed);
            let have: HashSet<(&str, &str)> = snaps
                .iter()
                .filter_map(|s| {
                    Some((
                        s.tags.get(tags::NODE)?.as_str(),
                        s.tags.get(tags::DEVICE)?.as_str(),
                    ))
                })
                .collect();
            // Whole by the set's own members (the count its mark recorded; before that tag, as
            // many devices for every node present), never by today's policy.
            let recorded = snaps
                .iter()
                .filter_map(|s| s.tags.get(tags::MEMBERS)?.parse::<usize>().ok())
                .max();
            let covers = !have.is_empty()
                && match recorded {
                    Some(n) => have.len() >= n,
                    None => {
                        let mut per_node: HashMap<&str, usize> = HashMap::new();
                        for (n, _) in &have {
                            *per_node.entry(n).or_default() += 1;
                        }
                        let first = per_node.values().next().copied();
                        per_node.values().all(|c| Some(*c) == first)
                    }
                };
            let smd = self.world.smd_archives.iter().any(|a| a.set == *set);
            if marked && completed && covers && smd {
                let time = crate::observe::set_time(set).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                out.push((set.to_string(), time));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

fn not_rolling(s: &Step) -> bool {
    !s.params.rolling()
}

/// The largest set of pairwise unordered elements of `items` under the strict order `lt`
/// (Dilworth: |items| minus a maximum matching of the comparability graph). A greedy chain cover
/// answers first when it is already small enough, which it is for plans built in lanes.
fn max_antichain(items: &[usize], lt: &dyn Fn(usize, usize) -> bool, bound: usize) -> usize {
    let n = items.len();
    // Greedy chain cover in the given (topological) order: its size bounds the antichain.
    let mut tails: Vec<usize> = Vec::new();
    for &x in items {
        match tails.iter_mut().find(|t| lt(**t, x)) {
            Some(t) => *t = x,
            None => tails.push(x),
        }
    }
    if tails.len() <= bound {
        return tails.len();
    }
    // Maximum bipartite matching (Kuhn): left a matched to right b when a < b.
    let adj: Vec<Vec<usize>> = (0..n)
        .map(|a| {
            (0..n)
                .filter(|&b| a != b && lt(items[a], items[b]))
                .collect()
        })
        .collect();
    let mut match_right: Vec<Option<usize>> = vec![None; n];
    fn augment(
        a: usize,
        adj: &[Vec<usize>],
        seen: &mut [bool],
        match_right: &mut [Option<usize>],
    ) -> bool {
        for &b in &adj[a] {
            if seen[b] {
                continue;
            }
            seen[b] = true;
            if match_right[b].is_none_or(|a2| augment(a2, adj, seen, match_right)) {
                match_right[b] = Some(a);
                return true;
            }
        }
        false
    }
    let mut matched = 0;
    for a in 0..n {
        let mut seen = vec![false; n];
        if augment(a, &adj, &mut seen, &mut match_right) {
            matched += 1;
        }
    }
    n - matched
}
