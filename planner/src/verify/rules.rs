//! What every plan obeys: allowed step kinds, R14 before disturbing, R8 windows, R11, R1, R2
//! for backups and R6 for stop-node backups.
use super::*;

impl<'a> Verifier<'a> {
    /// What a kind of operation may do at all: restores and drills never delete data (R7),
    /// drills never touch a production node.
    pub(super) fn check_kinds_allowed(&mut self, op: &Op<'_>) {
        for s in &self.plan.steps {
            let why = match (op, s.kind()) {
                (
                    Op::Restore(_) | Op::Drill(_),
                    StepKind::DeleteSnapshot | StepKind::DeleteVolume | StepKind::DeleteBackup,
                ) => Some(("R7", "a restore never deletes data")),
                (
                    Op::Restore(_) | Op::Drill(_),
                    StepKind::LockSnapshots | StepKind::RetainFiles,
                ) => Some((
                    "R20",
                    "only a backup locks snapshots (a lock outlives the restore)",
                )),
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
                self.bad(rule, Some(s), format!("{} step: {why}", s.kind()));
            }
        }
    }

    /// R14: a step that takes a node out comes after `check_cluster_stable`.
    pub(super) fn check_r14_first(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.plan.steps.iter().enumerate() {
            if s.kind().takes_node_out()
                && !self.has_ancestor(i, |a| a.kind() == StepKind::CheckClusterStable)
                && !(s.kind() == StepKind::StopNode && not_rolling(s))
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
    pub(super) fn check_r8_windows(&mut self) {
        let max = self.policy.backup.max_nodes_at_once.max(1) as usize;
        let n = self.plan.steps.len();
        let mut windows: Vec<Window> = Vec::new();
        let mut unclosed = Vec::new();
        let mut seen = vec![0u32; n];
        let mut stamp = 0;
        for (i, s) in self.plan.steps.iter().enumerate() {
            if !s.kind().takes_node_out() || not_rolling(s) {
                continue;
            }
            let Some(node) = &s.node else { continue };
            stamp += 1;
            let close = Graph::reach(&self.graph().dependents, i, &mut seen, stamp)
                .into_iter()
                .filter(|&j| {
                    let c = &self.plan.steps[j];
                    c.kind() == StepKind::WaitClusterStable && c.node.as_ref() == Some(node)
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
                c.kind() == StepKind::WaitClusterStable && c.node.as_deref() == Some(&node.name)
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
        // `max_nodes_at_once: rack`: never two racks out at once.
        if self.policy.backup.by_rack {
            let rack = |name: &str| {
                self.policy
                    .node(name)
                    .map_or(0, |n| self.policy.cluster.rack_of(n))
            };
            let mut bad = Vec::new();
            for (k, w) in windows.iter().enumerate() {
                let Some(open) = w.open else { continue };
                if let Some(o) = (0..windows.len())
                    .find(|&o| o != k && rack(&windows[o].node) != rack(&w.node) && !ordered(k, o))
                    && reported.insert(w.node.clone())
                {
                    bad.push((open, format!(
                        "node {} (rack {}) can be out of service together with {} (rack {}), but max_nodes_at_once is `rack`: one rack at a time",
                        w.node,
                        rack(&w.node),
                        windows[o].node,
                        rack(&windows[o].node)
                    )));
                }
            }
            for (open, m) in bad {
                let s = self.plan.steps[open].clone();
                self.bad("R8", Some(&s), m);
            }
        }
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
    pub(super) fn check_r11(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.plan.steps.iter().enumerate() {
            if s.kind().brings_node_back()
                && s.cleanup
                && self.graph().deps[i]
                    .iter()
                    .any(|&d| self.plan.steps[d].kind() == StepKind::WaitSnapshot)
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
    /// R1: under `quiesce`, a node's snapshots wait until it has drained (its client writes
    /// stopped), not only until it was told to quiesce.
    pub(super) fn check_r1_drained(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.plan.steps.iter().enumerate() {
            if !matches!(s.kind(), StepKind::Snapshot | StepKind::SnapshotInstance) {
                continue;
            }
            let node = s.node.as_deref();
            let quiesced = self
                .find_ancestor(i, |a| {
                    a.kind() == StepKind::Quiesce && a.node.as_deref() == node
                })
                .is_some();
            let drained = self
                .find_ancestor(i, |a| {
                    a.kind() == StepKind::WaitQuiesceDrained
                        && a.node.as_deref() == node
                        && matches!(&a.params, Params::WaitQuiesceDrained(d)
                            if d.quiet_ms >= 3_000 && d.timeout_s > 0)
                })
                .is_some_and(|d| {
                    self.has_ancestor(d, |a| {
                        a.kind() == StepKind::Quiesce && a.node.as_deref() == node
                    })
                });
            if quiesced && !drained {
                bad.push(i);
            }
        }
        for i in bad {
            let s = self.plan.steps[i].clone();
            self.bad(
                "R1",
                Some(&s),
                format!(
                    "snapshots {} after its quiesce without waiting for its client writes to stop (a wait_quiesce_drained after the quiesce, quiet for at least 3 s: clients refetch the partition map about every second)",
                    s.node.as_deref().unwrap_or("?")
                ),
            );
        }
    }

    pub(super) fn check_r1(&mut self) {
        let mut bad: Vec<(usize, String)> = Vec::new();
        for node in &self.policy.cluster.nodes {
            let snaps: Vec<(usize, &Step)> = self
                .plan
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    matches!(s.kind(), StepKind::Snapshot | StepKind::SnapshotInstance)
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
                    let by = snaps.iter().find(|(_, s)| match &s.params {
                        Params::SnapshotInstance(p) => p.volumes.iter().any(|v| &v.device == dev),
                        p => p.device() == Some(dev.as_str()),
                    });
                    let Some((i, s)) = by else { continue };
                    covered += 1;
                    set_of = s.params.set();
                    let window = if s.kind() == StepKind::SnapshotInstance {
                        format!("call:{}", s.id)
                    } else {
                        self.find_ancestor(*i, |st| {
                            st.kind().takes_node_out() && st.node.as_deref() == Some(&node.name)
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
    pub(super) fn check_r2_backup(&mut self) {
        let mut bad = Vec::new();
        for (i, s) in self.steps(StepKind::MarkSetComplete) {
            let set = s.params.set().unwrap_or_default();
            let archived = self.world.smd_archives.iter().any(|a| a.set == set);
            let anc = self.ancestors(i);
            let copies = anc
                .iter()
                .any(|&a| self.plan.steps[a].kind() == StepKind::CopySmd);
            if !archived && !copies {
                bad.push((s, "set is marked complete without its SMD archive"));
            }
            let snapshots_here = self.plan.steps.iter().enumerate().filter(|(_, x)| {
                matches!(x.kind(), StepKind::Snapshot | StepKind::SnapshotInstance)
                    && x.params.set() == Some(set)
            });
            for (j, _) in snapshots_here {
                let waited = anc.iter().any(|&a| {
                    self.plan.steps[a].kind() == StepKind::WaitSnapshot
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
        self.check_r2_manifests();
    }

    /// R2: a set is marked only after its manifest is written, and the mark names it; the
    /// manifest lists each member as a snapshot of the set's node and device that this plan
    /// waited for or that exists completed, of this cluster.
    pub(super) fn check_r2_manifests(&mut self) {
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for (i, s) in self.steps(StepKind::MarkSetComplete) {
            let Params::MarkSetComplete(p) = &s.params else {
                continue;
            };
            let written = p
                .manifest
                .as_ref()
                .and_then(|r| r.from_step())
                .and_then(|w| {
                    self.plan.steps.iter().position(|x| {
                        x.id == w
                            && x.region == s.region
                            && matches!(&x.params, Params::WriteManifest(m) if m.set == p.set)
                    })
                });
            match written {
                Some(w) if self.ancestors(i).contains(&w) => {}
                _ => bad.push((
                    s,
                    format!(
                        "marks set {} complete without first writing its manifest",
                        p.set
                    ),
                )),
            }
        }
        for (i, s) in self.steps(StepKind::WriteManifest) {
            let Params::WriteManifest(p) = &s.params else {
                continue;
            };
            if s.region.is_some() {
                continue; // copies: checked with their region's view
            }
            for mb in &p.members {
                let ok = match &mb.snapshot {
                    crate::params::Ref::Known(id) => {
                        self.ix.snap.get(id.as_str()).is_some_and(|x| {
                            self.own_tags(&x.tags)
                                && x.tags.get(tags::SET) == Some(&p.set)
                                && x.tags.get(tags::NODE) == Some(&mb.node)
                                && x.tags.get(tags::DEVICE) == Some(&mb.device)
                                && x.volume_id == mb.volume_id
                                && x.state == SnapshotState::Completed
                        })
                    }
                    crate::params::Ref::Learned { from_step } => self.has_ancestor(i, |a| {
                        &a.id == from_step
                            && matches!(&a.params, Params::WaitSnapshot(w)
                                if w.set.as_deref() == Some(p.set.as_str())
                                && w.node.as_deref() == Some(mb.node.as_str())
                                && w.device.as_deref() == Some(mb.device.as_str()))
                    }),
                };
                if !ok {
                    bad.push((s, format!("lists {} {} of set {} as a member it has not waited for, or that is not that node's device's snapshot of this set", mb.node, mb.device, p.set)));
                }
            }
        }
        for (s, m) in bad {
            self.bad("R2", Some(s), m);
        }
    }

    /// R6 for `stop-node` backups: a cold start with data is accepted or deletes are durable.
    pub(super) fn check_r6_backup(&mut self) {
        let accepted = self.policy.backup.accept_zombie_records || self.durable();
        if accepted {
            return;
        }
        let bad: Vec<&Step> = self.steps(StepKind::StartNode).map(|(_, s)| s).collect();
        for s in bad {
            self.bad("R6", Some(s), "cold-starts a node with data, and neither accept_zombie_records nor durable deletes cover it");
        }
    }

    pub(super) fn durable(&self) -> bool {
        // Durable deletes exist only in Enterprise Edition; a Community policy claiming them
        // covers nothing.
        self.policy.cluster.durable_deletes && self.policy.cluster.edition == Edition::Enterprise
    }
}
