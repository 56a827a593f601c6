//! Restores: where the data comes from (R2, R3, R12), replacements (R4), cold starts (R6), the
//! whole-cluster order (R12) and waits that can end (R8).
use super::*;

impl<'a> Verifier<'a> {
    /// Where a restore's (or a drill's) data comes from: one set, the right one, complete, with
    /// snapshots waited for (R3) and started before a `before:` time.
    pub(super) fn check_restore_data(&mut self, r: &asdr_specs::Restore, drill: Option<&str>) {
        let creates: Vec<(usize, &Step)> = self
            .steps(StepKind::CreateVolume)
            .filter(|(_, s)| s.params.snapshot_id().is_some())
            .collect();
        let mut bad: Vec<(&'static str, &Step, String)> = Vec::new();
        let mut sets = BTreeSet::new();
        let complete = self.complete_sets();
        for (i, s) in &creates {
            let id = s.params.snapshot_id().unwrap_or_default();
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
            // A set with a manifest restores only its members: another snapshot carrying the
            // set's tags is not one of them (R2).
            if let Some(Ok(m)) = self.manifest_of(&set) {
                let node = s.node.as_deref().map(|n| n.split('@').next().unwrap_or(n));
                let listed = m
                    .members
                    .iter()
                    .any(|mb| mb.snapshot_id == id && Some(mb.node.as_str()) == node);
                if !listed {
                    bad.push((
                        "R2",
                        s,
                        format!("snapshot {id} is not a member of set {set} by its manifest"),
                    ));
                }
            }
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
                    a.kind() == StepKind::WaitSnapshot && a.params.snapshot_id() == Some(id)
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
        if full && drill.is_none() {
            // R2: the archive is checked before any node of the cluster is stopped.
            let archives: BTreeSet<&str> = self
                .plan
                .steps
                .iter()
                .filter_map(|x| match &x.params {
                    Params::RestoreSmd(p) => Some(p.from.as_str()),
                    _ => None,
                })
                .collect();
            for (i, s) in self.steps(StepKind::StopNode) {
                for a in &archives {
                    let checked = self.has_ancestor(
                        i,
                        |x| matches!(&x.params, Params::CheckSmdArchive(c) if c.uri == *a),
                    );
                    if !checked {
                        bad.push((
                            "R2",
                            s,
                            format!("stops a node before the SMD archive {a} is checked"),
                        ));
                    }
                }
            }
        }
        if full {
            for (i, s) in self.steps(StepKind::StartNode) {
                let smd =
                    self.find_ancestor(i, |x| x.kind() == StepKind::RestoreSmd && x.node == s.node);
                match smd {
                    None => bad.push(("R2", s, "starts a node of a full restore before its SMD is restored".into())),
                    Some(a) if !matches!(&self.plan.steps[a].params, Params::RestoreSmd(r) if r.replace) => bad.push((
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
    pub(super) fn check_r4(&mut self, r: &asdr_specs::Restore) {
        let mut bad: Vec<(&Step, String)> = Vec::new();
        let shadowed = self
            .policy
            .cluster
            .namespaces
            .iter()
            .flat_map(|ns| &ns.devices)
            .filter(|d| d.shadow.is_some())
            // Drives, not partitions (`/dev/nvme1n1p1` and `p2` are one drive).
            .map(|d| asdr_specs::drive_of(d.device.source()))
            .collect::<BTreeSet<_>>()
            .len() as u32;
        for (i, s) in self.steps(StepKind::ProvisionInstance) {
            let Some(node) = self.step_node(s) else {
                bad.push((s, "provisions an instance for no node of the policy".into()));
                continue;
            };
            let Params::ProvisionInstance(p) = &s.params else {
                continue;
            };
            if p.private_ip != node.private_ip.to_string() {
                bad.push((
                    s,
                    format!(
                        "private_ip {} is not node {}'s {}",
                        p.private_ip, node.name, node.private_ip
                    ),
                ));
            }
            if p.availability_zone != node.availability_zone {
                bad.push((
                    s,
                    format!(
                        "availability zone {} is not node {}'s {}",
                        p.availability_zone, node.name, node.availability_zone
                    ),
                ));
            }
            // A node moved to another zone (zone loss) goes into that zone's subnet.
            let old_subnet = self
                .instance_of(node)
                .filter(|_| node.moved_from.is_none())
                .and_then(|i| i.subnet_id.clone());
            let want = old_subnet.or_else(|| {
                self.policy
                    .cluster
                    .instance
                    .subnets
                    .get(&node.availability_zone)
                    .cloned()
            });
            let subnet = p.subnet_id.as_deref().unwrap_or_default();
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
            let itype = p.instance_type.as_str();
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
                .filter(|x| x.kind() == StepKind::AttachVolume && x.node == s.node)
                .filter_map(|x| x.params.device().map(str::to_string))
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
                x.kind() == StepKind::WriteConfig && x.node == s.node
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
                let Some(id) = s.params.volume_id() else {
                    continue;
                };
                let Some(node) = self.step_node(s) else {
                    continue;
                };
                let device = s.params.device().unwrap_or_default();
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

    pub(super) fn attached_to_node(&self, node: &Node, volume: &str) -> bool {
        self.instance_of(node)
            .filter(|i| i.state != InstanceState::Terminated)
            .is_some_and(|i| i.block_devices.iter().any(|b| b.volume_id == volume))
    }

    /// Volumes that may hold a node's data at a device: tagged for it, or snapshotted as it,
    /// not superseded, not deleted.
    pub(super) fn candidates(&self, node: &Node, device: &str) -> Vec<&'a Volume> {
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
        // A volume in another zone never attaches here: when some are in the node's own zone,
        // those are the candidates.
        if out
            .iter()
            .any(|v| v.availability_zone == node.availability_zone)
        {
            out.retain(|v| v.availability_zone == node.availability_zone);
        }
        out
    }

    /// R6: a node that cold-starts holding data does so only when accepted or deletes are durable.
    pub(super) fn check_r6_restore(&mut self, r: &asdr_specs::Restore) {
        // asrestore merges into the running cluster: every record deleted since the set comes
        // back (a scan carries no deletes, so durable deletes do not cover it).
        if !r.accept_zombie_records {
            let merges: Vec<&Step> = self.steps(StepKind::Asrestore).map(|(_, s)| s).collect();
            for s in merges {
                self.bad(
                    "R6",
                    Some(s),
                    format!(
                        "asrestores into the running cluster for `{}` without accept_zombie_records: records deleted since the set come back",
                        r.name
                    ),
                );
            }
        }
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
    pub(super) fn check_r12(&mut self, r: &asdr_specs::Restore) {
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
            if matches!(s.kind(), StepKind::DetachVolume | StepKind::AttachVolume)
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
        // Once any node is stopped, every node still running is: one left running keeps the
        // writes it took since the set (the cluster is not at one moment), and a wait for every
        // node to stop never ends.
        if !stops.is_empty() {
            let stopped: HashSet<&str> = self
                .steps(StepKind::StopNode)
                .filter_map(|(_, s)| s.node.as_deref())
                .collect();
            let running: Vec<String> = self
                .policy
                .cluster
                .nodes
                .iter()
                .filter(|n| !self.is_down(n) && !stopped.contains(n.name.as_str()))
                .map(|n| n.name.clone())
                .collect();
            for name in running {
                self.bad(
                    "R12",
                    None,
                    format!("a full-cluster restore stops nodes but leaves {name} running"),
                );
            }
        }
        let size = self.policy.cluster.nodes.len() as u64;
        let last_wait = self
            .plan
            .steps
            .iter()
            .rev()
            .find(|s| s.kind() == StepKind::WaitClusterStable);
        match last_wait {
            Some(w) if w.params.stable().map(|p| p.size as u64) == Some(size) => {}
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
    pub(super) fn check_wait_sizes(&mut self) {
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
                        x.kind() == StepKind::StartNode
                            && x.node.as_deref() == Some(&n.name)
                            && !after.contains(&j)
                    })
                })
                .count() as u64;
            let size = s.params.stable().map_or(0, |p| p.size as u64);
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
    pub(super) fn check_refill(&mut self, _r: &asdr_specs::Restore) {
        let blank: BTreeSet<&str> = self
            .steps(StepKind::CreateVolume)
            .filter(|(_, s)| s.params.snapshot_id().is_none())
            .filter_map(|(_, s)| s.node.as_deref())
            .collect();
        let rf = self.policy.min_replication_factor() as usize;
        // Rack awareness keeps a copy of every partition in another rack: one whole rack may
        // rejoin empty (a lost zone refilled from the others).
        let c = &self.policy.cluster;
        let rack_of = |n: &str| c.nodes.iter().find(|x| x.name == n).map(|x| c.rack_of(x));
        let racks: BTreeSet<u32> = c.nodes.iter().map(|n| c.rack_of(n)).collect();
        let blank_racks: BTreeSet<Option<u32>> = blank.iter().map(|n| rack_of(n)).collect();
        let one_rack = !c.racks.is_empty()
            && racks.len() >= 2
            && rf >= 2
            && blank_racks.len() == 1
            && !blank_racks.contains(&None);
        if blank.len() >= rf && !blank.is_empty() && !one_rack {
            let list: Vec<&str> = blank.into_iter().collect();
            self.bad("R8", None, format!("{} nodes ({}) rejoin empty at once with replication factor {rf}: partitions whose every copy was on them are lost", list.len(), list.join(", ")));
        }
    }
}
