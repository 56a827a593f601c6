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
use serde_json::Value;
use time::OffsetDateTime;

use crate::plan::{Plan, Step, StepKind};
use crate::tags;
use crate::world::{Instance, InstanceState, SnapshotState, Volume, VolumeState, World};

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
pub fn verify(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    let mut v = Verifier {
        policy,
        world,
        plan,
        out: Vec::new(),
        graph: None,
        ix: Index::new(policy, world),
        seen: std::cell::RefCell::new((vec![0; plan.steps.len()], 0)),
        complete: std::cell::OnceCell::new(),
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
    };
    v.run();
    v.out
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

struct Verifier<'a> {
    policy: &'a Policy,
    world: &'a World,
    plan: &'a Plan,
    out: Vec<Violation>,
    graph: Option<Graph>,
    ix: Index<'a>,
    /// A reusable visited-mark buffer for graph searches, and its current stamp.
    seen: std::cell::RefCell<(Vec<u32>, u32)>,
    complete: std::cell::OnceCell<Vec<(String, OffsetDateTime)>>,
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
                self.check_r2_backup();
                self.check_r6_backup();
            }
            Op::Restore(r) => {
                self.check_restore_data(r, None);
                self.check_r4(r);
                self.check_r6_restore(r);
                self.check_r12(r);
                self.check_wait_sizes();
                self.check_refill(r);
            }
            Op::Drill(d) => {
                if let Some(r) = self.policy.restore(&d.restore) {
                    self.check_restore_data(r, Some(d.name.as_str()));
                }
                self.check_drill(d);
            }
            Op::Teardown(_) | Op::Unknown => {}
        }
        self.check_encryption(&op);
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
            .filter(move |(_, s)| s.kind == kind)
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

    /// The instance of a node: the one the policy pins, else one tagged for it; a live one wins.
    fn instance_of(&self, node: &Node) -> Option<&'a Instance> {
        let mut found: Vec<&Instance> = self
            .world
            .instances
            .iter()
            .filter(|i| {
                Some(i.id.as_str()) == node.instance_id.as_deref()
                    || (self.own_tags(&i.tags)
                        && i.tags.get(tags::NODE) == Some(&node.name)
                        && !i.tags.contains_key(crate::drill::DRILL))
            })
            .collect();
        found.sort_by_key(|i| (i.state == InstanceState::Terminated, i.id.clone()));
        found.first().copied()
    }

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
    /// a completed snapshot of every node's every EBS device, and the SMD archive.
    fn complete_sets(&self) -> Vec<(String, OffsetDateTime)> {
        self.complete
            .get_or_init(|| self.compute_complete_sets())
            .clone()
    }

    fn compute_complete_sets(&self) -> Vec<(String, OffsetDateTime)> {
        let expected: Vec<(String, String)> = self
            .policy
            .cluster
            .nodes
            .iter()
            .flat_map(|n| self.ebs_of(n).into_iter().map(move |d| (n.name.clone(), d)))
            .collect();
        let mut out = Vec::new();
        for (set, snaps) in &self.ix.snaps_set {
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
            let covers = !expected.is_empty()
                && expected
                    .iter()
                    .all(|(n, d)| have.contains(&(n.as_str(), d.as_str())));
            let smd = self.world.smd_archives.iter().any(|a| a.set == *set);
            if marked && completed && covers && smd {
                let time = crate::observe::set_time(set).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                out.push((set.to_string(), time));
            }
        }
        out.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        out
    }

    // ---- the checks -----------------------------------------------------------------------

    /// What a kind of operation may do at all: restores and drills never delete data (R7),
    /// drills never touch a production node.
    fn check_kinds_allowed(&mut self, op: &Op<'_>) {
        for s in &self.plan.steps {
            let why = match (op, s.kind) {
                (
                    Op::Restore(_) | Op::Drill(_),
                    StepKind::DeleteSnapshot | StepKind::DeleteVolume | StepKind::DeleteBackup,
                ) => Some(("R7", "a restore never deletes data")),
                (
                    Op::Backup,
                    StepKind::DeleteVolume
                    | StepKind::TerminateInstance
                    | StepKind::DetachVolume
                    | StepKind::ProvisionInstance
                    | StepKind::StopInstance,
                ) => Some((
                    "R13",
                    "a backup only snapshots and deletes expired snapshots",
                )),
                (
                    Op::Drill(_),
                    StepKind::StopNode
                    | StepKind::Quiesce
                    | StepKind::DetachVolume
                    | StepKind::TerminateInstance
                    | StepKind::StopInstance,
                ) => Some((
                    "drill",
                    "a drill never stops, detaches or terminates anything",
                )),
                (Op::Teardown(_), k)
                    if !matches!(k, StepKind::TerminateInstance | StepKind::DeleteVolume) =>
                {
                    Some((
                        "drill",
                        "a teardown only terminates and deletes what the drill created",
                    ))
                }
                _ => None,
            };
            if let Some((rule, why)) = why {
                self.bad(rule, Some(s), format!("{} step: {why}", s.kind));
            }
        }
    }

    /// R14: a step that takes a node out comes after `check_cluster_stable`.
    fn check_r14_first(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.plan.steps.iter().enumerate() {
            if s.kind.takes_node_out()
                && !self.has_ancestor(i, |a| a.kind == StepKind::CheckClusterStable)
                && !(s.kind == StepKind::StopNode && not_rolling(s))
            {
                bad.push(s);
            }
        }
        for s in bad {
            self.bad(
                "R14",
                Some(s),
                "takes a node out without checking first that the cluster is stable",
            );
        }
    }

    /// R8: no more than `max_nodes_at_once` nodes' out-of-service windows pairwise unordered.
    /// A window opens at the node's quiesce or stop (or before the plan, for a node already down)
    /// and closes at its `wait_cluster_stable`. Windows already open when the plan starts are
    /// not the plan's doing; every window the plan opens is counted against all others.
    fn check_r8_windows(&mut self) {
        let max = self.policy.backup.max_nodes_at_once.max(1) as usize;
        let n = self.plan.steps.len();
        let mut windows: Vec<Window> = Vec::new();
        let mut unclosed = Vec::new();
        let mut seen = vec![0u32; n];
        let mut stamp = 0;
        for (i, s) in self.plan.steps.iter().enumerate() {
            if !s.kind.takes_node_out() || not_rolling(s) {
                continue;
            }
            let Some(node) = &s.node else { continue };
            stamp += 1;
            let close = Graph::reach(&self.graph().dependents, i, &mut seen, stamp)
                .into_iter()
                .filter(|&j| {
                    let c = &self.plan.steps[j];
                    c.kind == StepKind::WaitClusterStable && c.node.as_ref() == Some(node)
                })
                .min();
            match close {
                Some(close) => windows.push(Window {
                    node: node.clone(),
                    open: Some(i),
                    close,
                }),
                None => unclosed.push(s),
            }
        }
        for s in unclosed {
            self.bad(
                "R8",
                Some(s),
                "takes a node out, but nothing waits for the cluster to be stable with it back",
            );
        }
        // Nodes already down: their window is open from the start until their wait.
        for node in &self.policy.cluster.nodes {
            if !self.is_down(node) || windows.iter().any(|w| w.node == node.name) {
                continue;
            }
            if let Some(close) = self.plan.steps.iter().position(|c| {
                c.kind == StepKind::WaitClusterStable && c.node.as_deref() == Some(&node.name)
            }) {
                windows.push(Window {
                    node: node.name.clone(),
                    open: None,
                    close,
                });
            }
        }
        if windows.iter().all(|w| w.open.is_none()) {
            return;
        }
        // before[a] holds b when a's window closes before b's opens.
        let mut before: Vec<HashSet<usize>> = vec![HashSet::new(); windows.len()];
        let opens: HashMap<usize, Vec<usize>> =
            windows
                .iter()
                .enumerate()
                .fold(HashMap::new(), |mut m, (k, w)| {
                    if let Some(o) = w.open {
                        m.entry(o).or_insert_with(Vec::new).push(k);
                    }
                    m
                });
        for (k, w) in windows.iter().enumerate() {
            stamp += 1;
            for j in Graph::reach(&self.graph().dependents, w.close, &mut seen, stamp) {
                if let Some(ks) = opens.get(&j) {
                    before[k].extend(ks.iter().copied());
                }
            }
        }
        let ordered = |a: usize, b: usize| before[a].contains(&b) || before[b].contains(&a);
        let mut reported = BTreeSet::new();
        for (k, w) in windows.iter().enumerate() {
            let Some(open) = w.open else { continue };
            let others: Vec<usize> = (0..windows.len())
                .filter(|&o| o != k && windows[o].node != w.node && !ordered(k, o))
                .collect();
            if others.len() < max {
                continue;
            }
            let mut others = others;
            others.sort_by_key(|&o| windows[o].open.map_or(0, |p| p + 1));
            let widest = max_antichain(&others, &|a, b| before[a].contains(&b), max - 1);
            if widest + 1 > max && reported.insert(w.node.clone()) {
                let with: Vec<&str> = others.iter().map(|&o| windows[o].node.as_str()).collect();
                let s = &self.plan.steps[open];
                self.bad("R8", Some(s), format!(
                    "node {} can be out of service together with {} other node(s) ({}), but max_nodes_at_once is {max}",
                    w.node, widest, with.join(", ")
                ));
            }
        }
    }

    /// R11: bringing a node back never waits for a snapshot to complete.
    fn check_r11(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.plan.steps.iter().enumerate() {
            if s.kind.brings_node_back()
                && s.cleanup
                && self.graph().deps[i]
                    .iter()
                    .any(|&d| self.plan.steps[d].kind == StepKind::WaitSnapshot)
            {
                bad.push(s);
            }
        }
        for s in bad {
            self.bad("R11", Some(s), "writes resume only after a snapshot completes: the write-stop window is longer than it must be");
        }
    }

    /// R1: every device of a node's namespace comes from one window (one CreateSnapshots call,
    /// or snapshots taken under the same quiesce or stop), never half from an earlier run.
    fn check_r1(&mut self) {
        let mut bad: Vec<(usize, String)> = Vec::new();
        for node in &self.policy.cluster.nodes {
            let snaps: Vec<(usize, &Step)> = self
                .plan
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    matches!(s.kind, StepKind::Snapshot | StepKind::SnapshotInstance)
                        && s.node.as_deref() == Some(&node.name)
                })
                .collect();
            if snaps.is_empty() {
                continue;
            }
            for ns in &self.policy.cluster.namespaces {
                let devices: Vec<String> = ns
                    .devices
                    .iter()
                    .map(|d| self.render(&d.ebs, node))
                    .collect();
                if devices.len() < 2 {
                    continue;
                }
                // Which step snapshots each device in this plan, and under which window.
                let mut windows = BTreeSet::new();
                let mut covered = 0;
                let mut set_of = None;
                for dev in &devices {
                    let by = snaps.iter().find(|(_, s)| match s.kind {
                        StepKind::SnapshotInstance => s.params["volumes"]
                            .as_array()
                            .is_some_and(|v| v.iter().any(|x| x["device"] == dev.as_str())),
                        _ => s.params["device"] == dev.as_str(),
                    });
                    let Some((i, s)) = by else { continue };
                    covered += 1;
                    set_of = s.params["set"].as_str();
                    let window = if s.kind == StepKind::SnapshotInstance {
                        format!("call:{}", s.id)
                    } else {
                        self.find_ancestor(*i, |st| {
                            st.kind.takes_node_out() && st.node.as_deref() == Some(&node.name)
                        })
                        .map_or_else(|| format!("none:{}", s.id), |a| format!("window:{a}"))
                    };
                    windows.insert(window);
                }
                if covered == 0 {
                    continue;
                }
                let first = snaps[0].0;
                if windows.len() > 1 || windows.iter().any(|w| w.starts_with("none:")) {
                    bad.push((first, format!("the devices of namespace {} on {} are snapshotted in more than one window (or with writes running)", ns.name, node.name)));
                }
                if covered < devices.len() {
                    bad.push((first, format!(
                        "only {covered} of the {} devices of namespace {} on {} are snapshotted into set {}: the others would come from another window",
                        devices.len(), ns.name, node.name, set_of.unwrap_or("?")
                    )));
                }
            }
        }
        for (i, m) in bad {
            let s = &self.plan.steps[i];
            self.bad("R1", Some(s), m);
        }
    }

    /// R2: a set is marked complete only after its SMD archive is copied and its snapshots
    /// complete.
    fn check_r2_backup(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.steps(StepKind::MarkSetComplete) {
            let set = s.params["set"].as_str().unwrap_or_default();
            let archived = self.world.smd_archives.iter().any(|a| a.set == set);
            let anc = self.ancestors(i);
            let copies = anc
                .iter()
                .any(|&a| self.plan.steps[a].kind == StepKind::CopySmd);
            if !archived && !copies {
                bad.push((s, "set is marked complete without its SMD archive"));
            }
            let snapshots_here = self.plan.steps.iter().enumerate().filter(|(_, x)| {
                matches!(x.kind, StepKind::Snapshot | StepKind::SnapshotInstance)
                    && x.params["set"].as_str() == Some(set)
            });
            for (j, _) in snapshots_here {
                let waited = anc.iter().any(|&a| {
                    self.plan.steps[a].kind == StepKind::WaitSnapshot
                        && self.graph().deps[a].contains(&j)
                });
                if !waited {
                    bad.push((s, "set is marked complete before its snapshots completed"));
                    break;
                }
            }
        }
        for (s, m) in bad {
            self.bad("R2", Some(s), m);
        }
    }

    /// R6 for `stop-node` backups: a cold start with data is accepted or deletes are durable.
    fn check_r6_backup(&mut self) {
        let accepted = self.policy.backup.accept_zombie_records || self.durable();
        if accepted {
            return;
        }
        let bad: Vec<&Step> = self.steps(StepKind::StartNode).map(|(_, s)| s).collect();
        for s in bad {
            self.bad("R6", Some(s), "cold-starts a node with data, and neither accept_zombie_records nor durable deletes cover it");
        }
    }

    fn durable(&self) -> bool {
        // Durable deletes exist only in Enterprise Edition; a Community policy claiming them
        // covers nothing.
        self.policy.cluster.durable_deletes && self.policy.cluster.edition == Edition::Enterprise
    }

    /// Where a restore's (or a drill's) data comes from: one set, the right one, complete, with
    /// snapshots waited for (R3) and started before a `before:` time.
    fn check_restore_data(&mut self, r: &asdr_specs::Restore, drill: Option<&str>) {
        let creates: Vec<(usize, &Step)> = self
            .steps(StepKind::CreateVolume)
            .filter(|(_, s)| s.params["snapshot_id"].is_string())
            .collect();
        let mut bad: Vec<(&'static str, &Step, String)> = Vec::new();
        let mut sets = BTreeSet::new();
        let complete = self.complete_sets();
        for (i, s) in &creates {
            let id = s.params["snapshot_id"].as_str().unwrap_or_default();
            let Some(snap) = self.ix.snap.get(id).copied() else {
                bad.push(("R3", s, format!("snapshot {id} does not exist")));
                continue;
            };
            if !self.own_tags(&snap.tags) {
                bad.push((
                    "R13",
                    s,
                    format!("snapshot {id} is not one of this cluster's backups"),
                ));
            }
            let set = snap.tags.get(tags::SET).cloned().unwrap_or_default();
            sets.insert(set.clone());
            // The snapshot must be of the node (and device) the volume is for.
            let node = s.node.as_deref().map(|n| n.split('@').next().unwrap_or(n));
            if snap.tags.get(tags::NODE).map(String::as_str) != node {
                bad.push((
                    "R4",
                    s,
                    format!(
                        "snapshot {id} is of node {}, not {}",
                        snap.tags.get(tags::NODE).map_or("?", |x| x.as_str()),
                        node.unwrap_or("?")
                    ),
                ));
            }
            if snap.state != SnapshotState::Completed
                && !self.has_ancestor(*i, |a| {
                    a.kind == StepKind::WaitSnapshot && a.params["snapshot_id"] == id
                })
            {
                bad.push(("R3", s, format!("creates a volume from snapshot {id}, which is {:?}, without waiting for it to complete", snap.state)));
            }
            if let RestoreSource::Before(t) = &r.source
                && snap.start_time >= *t
            {
                bad.push((
                    "R3",
                    s,
                    format!(
                        "snapshot {id} started at {}, not before the restore's time",
                        snap.start_time
                    ),
                ));
            }
        }
        if sets.len() > 1 {
            let list: Vec<String> = sets.iter().cloned().collect();
            if let Some((_, s)) = creates.first() {
                bad.push((
                    "R12",
                    s,
                    format!(
                        "volumes come from more than one backup set: {}",
                        list.join(", ")
                    ),
                ));
            }
        }
        if let Some(set) = sets.iter().next() {
            let expect = match &r.source {
                RestoreSource::LatestBackup => complete.last().map(|c| c.0.clone()),
                RestoreSource::Set(id) => Some(id.clone()),
                RestoreSource::Before(t) => {
                    // The newest complete set all of whose snapshots started before t.
                    complete
                        .iter()
                        .rev()
                        .find(|(id, _)| {
                            self.ix
                                .snaps_set
                                .get(id.as_str())
                                .is_none_or(|v| v.iter().all(|x| x.start_time < *t))
                        })
                        .map(|c| c.0.clone())
                }
                _ => None,
            };
            if let Some((_, s)) = creates.first() {
                if !matches!(r.source, RestoreSource::Set(_))
                    && !complete.iter().any(|c| &c.0 == set)
                {
                    bad.push(("R2", s, format!("set {set} is not complete (a snapshot, its completion or its SMD archive is missing)")));
                }
                if expect.as_ref().is_some_and(|e| e != set) {
                    bad.push((
                        "R3",
                        s,
                        format!(
                            "restore `{}` ({}) should use set {}, not {set}",
                            r.name,
                            r.source,
                            expect.unwrap_or_default()
                        ),
                    ));
                }
            }
        }
        // R2: a whole-cluster restore (and a drill) puts SMD back on every node before it
        // starts, replacing the directory.
        let full = r.scope == Scope::Cluster && r.source.uses_backup() || drill.is_some();
        if full {
            for (i, s) in self.steps(StepKind::StartNode) {
                let smd =
                    self.find_ancestor(i, |x| x.kind == StepKind::RestoreSmd && x.node == s.node);
                match smd {
                    None => bad.push(("R2", s, "starts a node of a full restore before its SMD is restored".into())),
                    Some(a) if self.plan.steps[a].params["replace"] != true => bad.push((
                        "R2",
                        &self.plan.steps[a],
                        "restores SMD into the existing directory instead of replacing it: truncates and dropped indexes issued since the backup would survive".into(),
                    )),
                    Some(_) => {}
                }
            }
        }
        for (rule, s, m) in bad {
            self.bad(rule, Some(s), m);
        }
    }

    /// R4: a replacement has the node's IP, AZ and subnet, offers its instance-store drives, has
    /// every EBS device attached at the same name and is configured before it starts.
    fn check_r4(&mut self, r: &asdr_specs::Restore) {
        let mut bad: Vec<(&Step, String)> = Vec::new();
        let shadowed = self
            .policy
            .cluster
            .namespaces
            .iter()
            .flat_map(|ns| &ns.devices)
            .filter(|d| d.shadow.is_some())
            .map(|d| d.device.source())
            .collect::<BTreeSet<_>>()
            .len() as u32;
        for (i, s) in self.steps(StepKind::ProvisionInstance) {
            let Some(node) = self.step_node(s) else {
                bad.push((s, "provisions an instance for no node of the policy".into()));
                continue;
            };
            let p = &s.params;
            if p["private_ip"] != node.private_ip.to_string().as_str() {
                bad.push((
                    s,
                    format!(
                        "private_ip {} is not node {}'s {}",
                        p["private_ip"], node.name, node.private_ip
                    ),
                ));
            }
            if p["availability_zone"] != node.availability_zone.as_str() {
                bad.push((
                    s,
                    format!(
                        "availability zone {} is not node {}'s {}",
                        p["availability_zone"], node.name, node.availability_zone
                    ),
                ));
            }
            let old_subnet = self.instance_of(node).and_then(|i| i.subnet_id.clone());
            let want = old_subnet.or_else(|| {
                self.policy
                    .cluster
                    .instance
                    .subnets
                    .get(&node.availability_zone)
                    .cloned()
            });
            let subnet = p["subnet_id"].as_str().unwrap_or_default();
            if want.as_deref().is_some_and(|w| w != subnet) {
                bad.push((
                    s,
                    format!(
                        "subnet {subnet} is not the subnet node {} ran in ({})",
                        node.name,
                        want.unwrap_or_default()
                    ),
                ));
            }
            if let Some(sn) = self.world.subnets.iter().find(|x| x.id == subnet)
                && !sn.contains(node.private_ip)
            {
                bad.push((
                    s,
                    format!(
                        "address {} is not in subnet {subnet} ({})",
                        node.private_ip, sn.cidr
                    ),
                ));
            }
            let itype = p["instance_type"].as_str().unwrap_or_default();
            if let Some(t) = self.world.instance_types.get(itype)
                && t.instance_store_drives < shadowed
            {
                bad.push((s, format!("instance type {itype} offers {} instance-store drives; the namespaces use {shadowed}", t.instance_store_drives)));
            }
            // Every EBS device attached to the replacement at its own name, then configured.
            let after: Vec<usize> = {
                let mut seen = vec![0u32; self.plan.steps.len()];
                Graph::reach(&self.graph().dependents, i, &mut seen, 1)
            };
            let attached: BTreeSet<String> = after
                .iter()
                .map(|&j| &self.plan.steps[j])
                .filter(|x| x.kind == StepKind::AttachVolume && x.node == s.node)
                .filter_map(|x| x.params["device"].as_str().map(str::to_string))
                .collect();
            let want: BTreeSet<String> = self.ebs_of(node).into_iter().collect();
            if attached != want {
                bad.push((
                    s,
                    format!(
                        "the replacement gets devices {attached:?}, node {} has {want:?}",
                        node.name
                    ),
                ));
            }
            let configured = after.iter().any(|&j| {
                let x = &self.plan.steps[j];
                x.kind == StepKind::WriteConfig && x.node == s.node
            });
            if !configured {
                bad.push((
                    s,
                    "the replacement is never configured (aerospike.conf) before it starts".into(),
                ));
            }
        }
        // Volumes reattached as they are must be the node's, and the only candidates.
        if r.source == RestoreSource::CurrentVolumes {
            for (_, s) in self.steps(StepKind::AttachVolume) {
                let Some(id) = s.params["volume_id"].as_str() else {
                    continue;
                };
                let Some(node) = self.step_node(s) else {
                    continue;
                };
                let device = s.params["device"].as_str().unwrap_or_default();
                match self.ix.vol.get(id).copied() {
                    None => bad.push((s, format!("volume {id} does not exist"))),
                    Some(v) => {
                        if v.tags.contains_key(tags::SUPERSEDED) {
                            bad.push((s, format!("volume {id} was superseded by an earlier restore: it is not the node's data")));
                        }
                        if v.availability_zone != node.availability_zone {
                            bad.push((
                                s,
                                format!(
                                    "volume {id} is in {}, node {} in {}",
                                    v.availability_zone, node.name, node.availability_zone
                                ),
                            ));
                        }
                        let others: Vec<&str> = self
                            .candidates(node, device)
                            .into_iter()
                            .filter(|c| c.id != id)
                            .map(|c| c.id.as_str())
                            .collect();
                        if !others.is_empty() && !self.attached_to_node(node, id) {
                            bad.push((s, format!("volume {id} is one of several candidates for {} {device} ({}): which one the node last ran on is unknown", node.name, others.join(", "))));
                        }
                    }
                }
            }
        }
        for (s, m) in bad {
            self.bad("R4", Some(s), m);
        }
    }

    fn attached_to_node(&self, node: &Node, volume: &str) -> bool {
        self.instance_of(node)
            .filter(|i| i.state != InstanceState::Terminated)
            .is_some_and(|i| i.block_devices.iter().any(|b| b.volume_id == volume))
    }

    /// Volumes that may hold a node's data at a device: tagged for it, or snapshotted as it,
    /// not superseded, not deleted.
    fn candidates(&self, node: &Node, device: &str) -> Vec<&'a Volume> {
        let key = (node.name.as_str(), device);
        let newest_snapshotted: Option<&str> = self
            .ix
            .snaps_nd
            .get(&key)
            .and_then(|v| {
                v.iter()
                    .max_by_key(|s| (s.tags.get(tags::SET), s.start_time))
            })
            .map(|s| s.volume_id.as_str());
        let usable = |v: &&Volume| {
            !v.tags.contains_key(tags::SUPERSEDED)
                && !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted)
        };
        let mut out: Vec<&'a Volume> = self
            .ix
            .vols_nd
            .get(&key)
            .map(|v| v.iter().copied().filter(usable).collect())
            .unwrap_or_default();
        if let Some(v) = newest_snapshotted.and_then(|id| self.ix.vol.get(id).copied())
            && usable(&v)
            && !out.iter().any(|o| o.id == v.id)
        {
            out.push(v);
        }
        out
    }

    /// R6: a node that cold-starts holding data does so only when accepted or deletes are durable.
    fn check_r6_restore(&mut self, r: &asdr_specs::Restore) {
        let cold_with_data = r.source.brings_data()
            && (r.scope == Scope::Node || r.source == RestoreSource::CurrentVolumes);
        if !cold_with_data || r.accept_zombie_records || self.durable() {
            return;
        }
        let bad: Vec<&Step> = self.steps(StepKind::StartNode).map(|(_, s)| s).collect();
        for s in bad {
            self.bad("R6", Some(s), format!("cold-starts a node with data from `{}` without accept_zombie_records or durable deletes", r.source));
        }
    }

    /// R12: a full-cluster restore stops every node before any volume is swapped, and ends
    /// waiting for the whole cluster.
    fn check_r12(&mut self, r: &asdr_specs::Restore) {
        // asrestore writes into the running cluster: nothing is stopped or swapped.
        if !(r.scope == Scope::Cluster && r.source.uses_backup())
            || self.plan.steps.is_empty()
            || self.policy.backup.method == asdr_specs::Method::Asbackup
        {
            return;
        }
        let n = self.plan.steps.len();
        let stops: Vec<usize> = self.steps(StepKind::StopNode).map(|(i, _)| i).collect();
        let mut count = vec![0usize; n];
        let mut seen = vec![0u32; n];
        for (k, &st) in stops.iter().enumerate() {
            for j in Graph::reach(&self.graph().dependents, st, &mut seen, k as u32 + 1) {
                count[j] += 1;
            }
        }
        let mut bad = Vec::new();
        for (i, s) in self.plan.steps.iter().enumerate() {
            if matches!(s.kind, StepKind::DetachVolume | StepKind::AttachVolume)
                && count[i] < stops.len()
            {
                bad.push(s);
            }
        }
        for s in bad {
            self.bad(
                "R12",
                Some(s),
                "swaps a volume before every node of the cluster is stopped",
            );
        }
        let size = self.policy.cluster.nodes.len() as u64;
        let last_wait = self
            .plan
            .steps
            .iter()
            .rev()
            .find(|s| s.kind == StepKind::WaitClusterStable);
        match last_wait {
            Some(w) if w.params["size"].as_u64() == Some(size) => {}
            _ => self.bad(
                "R12",
                None,
                format!(
                    "a full-cluster restore must end waiting for cluster-stable at size {size}"
                ),
            ),
        }
    }

    /// A `wait_cluster_stable` expects no more nodes than can be up at that point: a node that
    /// is down and whose start comes only after the wait (or never) cannot be counted, or the wait
    /// never ends.
    fn check_wait_sizes(&mut self) {
        let total = self.policy.cluster.nodes.len() as u64;
        let down: Vec<&Node> = self
            .policy
            .cluster
            .nodes
            .iter()
            .filter(|n| self.is_down(n))
            .collect();
        let mut bad = Vec::new();
        for (i, s) in self.steps(StepKind::WaitClusterStable) {
            let mut seen = vec![0u32; self.plan.steps.len()];
            let after: HashSet<usize> = Graph::reach(&self.graph().dependents, i, &mut seen, 1)
                .into_iter()
                .collect();
            let still_down = down
                .iter()
                .filter(|n| {
                    !self.plan.steps.iter().enumerate().any(|(j, x)| {
                        x.kind == StepKind::StartNode
                            && x.node.as_deref() == Some(&n.name)
                            && !after.contains(&j)
                    })
                })
                .count() as u64;
            let size = s.params["size"].as_u64().unwrap_or(0);
            if size > total - still_down {
                bad.push((s, size, total - still_down));
            }
        }
        for (s, size, can) in bad {
            self.bad("R8", Some(s), format!("waits for a cluster of {size} nodes where at most {can} can be up: the wait never ends"));
        }
    }

    /// R8: refilling as many nodes as there are replicas loses the partitions whose every copy
    /// is on them.
    fn check_refill(&mut self, _r: &asdr_specs::Restore) {
        let blank: BTreeSet<&str> = self
            .steps(StepKind::CreateVolume)
            .filter(|(_, s)| s.params["snapshot_id"].is_null())
            .filter_map(|(_, s)| s.node.as_deref())
            .collect();
        let rf = self.policy.min_replication_factor() as usize;
        if blank.len() >= rf && !blank.is_empty() {
            let list: Vec<&str> = blank.into_iter().collect();
            self.bad("R8", None, format!("{} nodes ({}) rejoin empty at once with replication factor {rf}: partitions whose every copy was on them are lost", list.len(), list.join(", ")));
        }
    }

    /// R13 for asbackup sets: only sets whose every namespace has asdr's manifest, never a set of
    /// the newest complete chain (the full set the newest complete set belongs to).
    fn check_r13_backup_deletes(&mut self) {
        let deletes: Vec<&Step> = self.steps(StepKind::DeleteBackup).map(|(_, s)| s).collect();
        if deletes.is_empty() {
            return;
        }
        let namespaces: Vec<&str> = self
            .policy
            .cluster
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        let mut by_set: BTreeMap<&str, Vec<&crate::world::AsbackupArchive>> = BTreeMap::new();
        for a in &self.world.asbackup_archives {
            by_set.entry(a.set.as_str()).or_default().push(a);
        }
        let complete = |set: &str| {
            by_set.get(set).is_some_and(|v| {
                namespaces
                    .iter()
                    .all(|ns| v.iter().any(|a| a.namespace == *ns))
            })
        };
        let chain_of = |set: &str| {
            by_set
                .get(set)
                .and_then(|v| v.iter().find_map(|a| a.incremental_of.clone()))
                .unwrap_or_else(|| set.to_string())
        };
        let newest_chain = by_set
            .keys()
            .filter(|s| complete(s))
            .max_by_key(|s| crate::observe::set_time(s))
            .map(|s| chain_of(s));
        let mut bad = Vec::new();
        for s in deletes {
            let set = s.params["set"].as_str().unwrap_or_default();
            if !complete(set) {
                bad.push((s, format!("set {set} is not a finished asbackup set with asdr's manifest in every namespace")));
            } else if newest_chain.as_deref() == Some(chain_of(set).as_str()) {
                bad.push((s, format!("set {set} belongs to the newest complete chain")));
            }
        }
        for (s, m) in bad {
            self.bad("R13", Some(s), m);
        }
    }

    /// R13: only this cluster's snapshots are deleted, never the newest complete set, never the
    /// last, and never one `retain` keeps.
    fn check_r13_deletes(&mut self, op: &Op<'_>) {
        let deletes: Vec<(usize, &Step)> = self.steps(StepKind::DeleteSnapshot).collect();
        let mut bad: Vec<(&Step, String)> = Vec::new();
        if !deletes.is_empty() {
            let complete = self.complete_sets();
            let mut deleted_sets = BTreeSet::new();
            for (_, s) in &deletes {
                let id = s.params["snapshot_id"].as_str().unwrap_or_default();
                match self.ix.snap.get(id).copied() {
                    None => bad.push((s, format!("snapshot {id} does not exist"))),
                    Some(x) if !self.own_tags(&x.tags) => bad.push((
                        s,
                        format!(
                            "snapshot {id} is not tagged asdr:cluster={}: asdr did not make it",
                            self.policy.cluster.name
                        ),
                    )),
                    Some(x) => {
                        if let Some(set) = x.tags.get(tags::SET) {
                            deleted_sets.insert(set.clone());
                        }
                    }
                }
            }
            // A set this plan makes counts toward `retain.count` only once it is marked complete
            // before every delete.
            let mark = self
                .steps(StepKind::MarkSetComplete)
                .next()
                .map(|(i, s)| (i, s.params["set"].as_str().unwrap_or_default().to_string()));
            let new_counts = mark.as_ref().is_some_and(|(m, set)| {
                let mut seen = vec![0u32; self.plan.steps.len()];
                let after: HashSet<usize> =
                    Graph::reach(&self.graph().dependents, *m, &mut seen, 1)
                        .into_iter()
                        .collect();
                !complete.iter().any(|c| &c.0 == set)
                    && deletes.iter().all(|(i, _)| after.contains(i))
            });
            let keep = self
                .policy
                .backup
                .retain
                .count
                .map_or(usize::MAX, |c| c as usize);
            let max_age = self.policy.backup.retain.max_age.map(|d| d.seconds());
            let now = OffsetDateTime::parse(
                &self.plan.now,
                &time::format_description::well_known::Rfc3339,
            )
            .ok();
            let mut protected = BTreeSet::new();
            let slots = keep.saturating_sub(usize::from(new_counts)).max(1);
            for (k, (set, t)) in complete.iter().rev().enumerate() {
                let young = match (max_age, now) {
                    (Some(m), Some(now)) => ((now - *t).whole_seconds().max(0) as u64) <= m,
                    _ => true,
                };
                if k == 0 || (k < slots && young) {
                    protected.insert(set.clone());
                }
            }
            for (_, s) in &deletes {
                let id = s.params["snapshot_id"].as_str().unwrap_or_default();
                if let Some(set) = self.ix.snap.get(id).and_then(|x| x.tags.get(tags::SET))
                    && protected.contains(set)
                {
                    bad.push((s, format!("deletes a snapshot of set {set}, which retention keeps (the newest complete set, or within retain.count and max_age)")));
                }
            }
            let remaining = complete
                .iter()
                .filter(|c| !deleted_sets.contains(&c.0))
                .count();
            if remaining == 0 && !complete.is_empty() && !new_counts {
                bad.push((deletes[0].1, "leaves no complete backup set".into()));
            }
            if !matches!(op, Op::Backup) {
                bad.push((
                    deletes[0].1,
                    "only a backup's retention deletes snapshots".into(),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("R13", Some(s), m);
        }
    }

    /// R7 and R13: only own instances are terminated, only after their data volumes with
    /// DeleteOnTermination are detached; volumes are never detached from a running instance; only
    /// a drill's own volumes are deleted.
    fn check_r13_detach_terminate(&mut self, op: &Op<'_>) {
        let mut bad: Vec<(&'static str, &Step, String)> = Vec::new();
        for (i, s) in self.steps(StepKind::TerminateInstance) {
            let id = s.params["instance_id"].as_str().unwrap_or_default();
            let Some(inst) = self.world.instances.iter().find(|x| x.id == id) else {
                bad.push(("R13", s, format!("instance {id} does not exist")));
                continue;
            };
            let pinned = self
                .policy
                .cluster
                .nodes
                .iter()
                .any(|n| n.instance_id.as_deref() == Some(id));
            let drill = match op {
                Op::Teardown(d) => inst.tags.get(crate::drill::DRILL) == Some(d),
                _ => false,
            };
            if !(pinned || self.own_tags(&inst.tags)) {
                bad.push((
                    "R13",
                    s,
                    format!(
                        "instance {id} is neither named by the policy nor tagged asdr:cluster={}",
                        self.policy.cluster.name
                    ),
                ));
            }
            if matches!(op, Op::Teardown(_)) && !drill {
                bad.push((
                    "R13",
                    s,
                    format!("instance {id} is not tagged for this drill"),
                ));
            }
            if let Some(node) = self
                .policy
                .cluster
                .nodes
                .iter()
                .find(|n| self.instance_of(n).is_some_and(|x| x.id == id))
                && !self.is_down(node)
            {
                bad.push((
                    "R7",
                    s,
                    format!("terminates the instance of healthy node {}", node.name),
                ));
            }
            for b in inst
                .block_devices
                .iter()
                .filter(|b| b.delete_on_termination)
            {
                let data = self.ix.vol.get(b.volume_id.as_str()).is_some_and(|v| {
                    v.tags.contains_key(tags::DEVICE)
                        || self
                            .policy
                            .cluster
                            .nodes
                            .iter()
                            .any(|n| self.ebs_of(n).contains(&b.device_name))
                });
                let detached = self.has_ancestor(i, |x| {
                    x.kind == StepKind::DetachVolume
                        && x.params["volume_id"] == b.volume_id.as_str()
                });
                if data && !detached && !matches!(op, Op::Teardown(_)) {
                    bad.push(("R7", s, format!("terminates {id} while data volume {} is attached with DeleteOnTermination", b.volume_id)));
                }
            }
        }
        for (i, s) in self.steps(StepKind::DetachVolume) {
            let id = s.params["instance_id"].as_str().unwrap_or_default();
            let Some(inst) = self.world.instances.iter().find(|x| x.id == id) else {
                continue;
            };
            if matches!(inst.state, InstanceState::Running | InstanceState::Pending) {
                let stopped = self.has_ancestor(i, |a| {
                    (a.kind == StepKind::StopInstance && a.params["instance_id"] == id)
                        || (a.kind == StepKind::StopNode && a.node == s.node)
                });
                if !stopped {
                    bad.push(("R7", s, format!("detaches a volume from running instance {id} with nothing stopped first")));
                }
            }
            let own = self.own_tags(&inst.tags)
                || self
                    .policy
                    .cluster
                    .nodes
                    .iter()
                    .any(|n| n.instance_id.as_deref() == Some(id));
            if !own {
                bad.push(("R13", s, format!("instance {id} is not this cluster's")));
            }
        }
        for (_, s) in self.steps(StepKind::DeleteVolume) {
            let id = s.params["volume_id"].as_str().unwrap_or_default();
            let ok = match (op, self.ix.vol.get(id).copied()) {
                (Op::Teardown(d), Some(v)) => {
                    self.own_tags(&v.tags) && v.tags.get(crate::drill::DRILL) == Some(d)
                }
                _ => false,
            };
            if !ok {
                bad.push((
                    "R13",
                    s,
                    format!("volume {id} is not a volume of this drill"),
                ));
            }
        }
        for (rule, s, m) in bad {
            self.bad(rule, Some(s), m);
        }
    }

    /// Drills: no step touches production — no production node name, address, tag, security
    /// group, or (on a shared host) rendered path or command.
    fn check_drill(&mut self, d: &asdr_specs::Drill) {
        let suffix = format!("@{}", d.name);
        let prod_ips: BTreeSet<Ipv4Addr> = self
            .policy
            .cluster
            .nodes
            .iter()
            .map(|n| n.private_ip)
            .collect();
        let prod_names: BTreeSet<&str> = self
            .policy
            .cluster
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        let local = self.policy.cluster.access.transport == Transport::Local;
        let c = &self.policy.cluster;
        let mut prod_paths = BTreeSet::new();
        let mut prod_commands = BTreeSet::new();
        for n in &c.nodes {
            prod_paths.insert(self.render(&c.config.path, n));
            prod_paths.insert(format!(
                "{}/smd",
                self.render(&c.work_directory, n).trim_end_matches('/')
            ));
            prod_commands.insert(self.render(&c.service_start, n));
            prod_commands.insert(self.render(&c.service_stop, n));
        }
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for s in &self.plan.steps {
            if let Some(n) = &s.node
                && !n.ends_with(&suffix)
            {
                bad.push((
                    s,
                    format!("acts on node `{n}`, which is not one of the drill's stand-ins"),
                ));
            }
            let p = &s.params;
            for key in ["address", "private_ip"] {
                if let Some(a) = p[key].as_str() {
                    let ip = a.split(':').next().unwrap_or_default().parse::<Ipv4Addr>();
                    if ip.is_ok_and(|ip| prod_ips.contains(&ip)) {
                        bad.push((s, format!("{key} {a} is a production address")));
                    }
                }
            }
            if let Some(t) = p["tags"].as_object() {
                if t.get(crate::drill::DRILL).and_then(Value::as_str) != Some(d.name.as_str()) {
                    bad.push((
                        s,
                        "creates a resource without the drill's asdr:drill tag".into(),
                    ));
                }
                if t.get(tags::NODE)
                    .and_then(Value::as_str)
                    .is_some_and(|n| prod_names.contains(n))
                {
                    bad.push((s, "tags a drill resource as a production node".into()));
                }
            }
            if let Some(sgs) = p["security_groups"].as_array() {
                for sg in sgs.iter().filter_map(Value::as_str) {
                    if c.instance.security_groups.iter().any(|p| p == sg) {
                        bad.push((s, format!("launches into production's security group {sg}")));
                    }
                }
            }
            if s.kind == StepKind::WriteConfig {
                let content = p["content"].as_str().unwrap_or_default();
                if let Some(ip) = content
                    .split(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                    .filter_map(|t| t.parse::<Ipv4Addr>().ok())
                    .find(|ip| prod_ips.contains(ip))
                {
                    bad.push((s, format!("the drill's aerospike.conf names production address {ip}: the drill would join production")));
                }
            }
            if local {
                // One host for every node: a path or command is production's if it renders the same.
                for key in ["path", "to"] {
                    if let Some(path) = p[key].as_str()
                        && matches!(s.kind, StepKind::WriteConfig | StepKind::RestoreSmd)
                        && prod_paths.contains(path.trim_end_matches('/'))
                    {
                        bad.push((s, format!("writes {path}, which is a production node's")));
                    }
                }
                if let Some(cmd) = p["command"].as_str()
                    && prod_commands.contains(cmd)
                {
                    bad.push((s, format!("runs `{cmd}`, a production node's command")));
                }
            }
        }
        for (s, m) in bad {
            self.bad("drill", Some(s), m);
        }
    }

    /// New volumes are encrypted at least as the data they replace: the node's volume at that
    /// device, and the snapshot they come from, with the same KMS key.
    fn check_encryption(&mut self, op: &Op<'_>) {
        if matches!(op, Op::Teardown(_)) {
            return;
        }
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for (_, s) in self.steps(StepKind::CreateVolume) {
            let node_name = s.node.as_deref().map(|n| n.split('@').next().unwrap_or(n));
            let Some(node) = node_name.and_then(|n| self.policy.node(n)) else {
                continue;
            };
            let device = s.params["tags"][tags::DEVICE].as_str().unwrap_or_default();
            let mut keys: BTreeSet<Option<String>> = BTreeSet::new();
            let mut encrypted = false;
            let current = self.candidates(node, device).into_iter().chain(
                self.instance_of(node)
                    .filter(|i| i.state != InstanceState::Terminated)
                    .into_iter()
                    .flat_map(|i| i.block_devices.iter().filter(|b| b.device_name == device))
                    .filter_map(|b| self.ix.vol.get(b.volume_id.as_str()).copied()),
            );
            for v in current.filter(|v| v.encrypted) {
                encrypted = true;
                keys.insert(v.kms_key_id.clone());
            }
            if let Some(id) = s.params["snapshot_id"].as_str()
                && let Some(snap) = self.ix.snap.get(id).copied()
                && snap.encrypted
            {
                encrypted = true;
                keys.insert(snap.kms_key_id.clone());
            }
            if !encrypted {
                continue;
            }
            let key = s.params["kms_key_id"].as_str().map(str::to_string);
            if s.params["encrypted"] != true {
                bad.push((
                    s,
                    "creates an unencrypted volume for data that is encrypted at rest".into(),
                ));
            } else if !keys.contains(&key) {
                bad.push((
                    s,
                    format!(
                        "encrypts with {} instead of the data's key ({})",
                        key.as_deref().unwrap_or("the default key"),
                        keys.iter()
                            .map(|k| k.as_deref().unwrap_or("?"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("encryption", Some(s), m);
        }
    }
}

fn not_rolling(s: &Step) -> bool {
    s.params.get("rolling").and_then(Value::as_bool) == Some(false)
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
