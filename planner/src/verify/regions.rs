//! R16, copies in other regions: a copy is made only of a completed snapshot of this cluster; a
//! set is marked complete in a region only once every node's every device has a completed copy
//! there, its SMD archive is in the region's store and the set is complete at home; retention in
//! a region never takes its last complete copy (R13 there, with the copy's `retain`); no more
//! copies in flight to a region than its `max_in_flight`; the cluster's region never deletes a
//! set a copy is being made from.

use super::*;
use crate::copies::under;
pub(super) use scope::{restore_region, sub_plan};

pub(super) fn verify_copies(
    policy: &Policy,
    world: &World,
    home: &World,
    plan: &Plan,
) -> Vec<Violation> {
    let mut out = Vec::new();
    // Every step acts in the cluster's region or a copy region.
    for s in &plan.steps {
        if let Some(r) = &s.region
            && !policy.backup.copies.iter().any(|c| &c.region == r)
        {
            out.push(Violation {
                rule: "R16",
                step: Some(s.id.clone()),
                message: format!("acts in region {r}, which backup.copies does not name"),
            });
        }
    }
    out.extend(copies_are_ours(policy, world, plan));
    out.extend(super::accounts::shares_only_with_backup_accounts(
        policy, plan,
    ));
    // Retention in each copy region, checked as at home with the copy's own `retain`.
    let views: Vec<World> = policy
        .backup
        .copies
        .iter()
        .map(|c| crate::copies::region_view(policy, world, c))
        .collect();
    for (copy, view) in policy.backup.copies.iter().zip(&views) {
        let sub = sub_plan(plan, Some(&copy.region));
        if sub.steps.is_empty() {
            continue;
        }
        let mut v = Verifier::new(policy, view, &sub, copy.retain);
        if v.check_graph() {
            let op = v.op();
            v.check_kinds_allowed(&op);
            v.check_r13_deletes(&op);
            v.check_r13_detach_terminate(&op);
        }
        out.extend(v.out.into_iter().map(|mut x| {
            x.message = format!("in {}: {}", copy.region, x.message);
            x
        }));
    }
    let mut v = Verifier::new(policy, world, plan, policy.backup.retain);
    if !v.check_graph() {
        out.extend(v.out);
        return out;
    }
    v.check_copy_sources(home);
    v.check_region_marks(home, &views);
    v.check_copies_in_flight(&views);
    v.check_home_deletes_spare_copy_sources(home, &views);
    out.extend(v.out);
    out
}

/// R13 in a copy region: a snapshot deleted or restored from there is a copy this cluster made,
/// by its source tags (copied from the cluster's region; a source still there is ours, of the same
/// set), never a same-named cluster's own snapshot. Read from the whole world, not a region view.
fn copies_are_ours(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    let mut out = Vec::new();
    for s in &plan.steps {
        let Some(r) = &s.region else { continue };
        let id = match &s.params {
            Params::DeleteSnapshot(p) => p.snapshot_id.as_str(),
            Params::CreateVolume(p) => p.snapshot_id.as_deref().unwrap_or_default(),
            _ => continue,
        };
        let Some(snap) = world.snapshots.iter().find(|x| x.id == id) else {
            continue;
        };
        let home = policy.cluster.region.as_str();
        let source = snap.tags.get(tags::SOURCE_SNAPSHOT);
        let from_home = snap.tags.get(tags::SOURCE_REGION).map(String::as_str) == Some(home);
        let source_foreign = source.is_some_and(|src| {
            world.snapshots.iter().any(|h| {
                &h.id == src
                    && (h.tags.get(tags::CLUSTER) != Some(&policy.cluster.name)
                        || [tags::SET, tags::NODE, tags::DEVICE]
                            .iter()
                            .any(|k| h.tags.get(*k) != snap.tags.get(*k)))
            })
        });
        if source.is_none() || !from_home || source_foreign {
            out.push(Violation {
                rule: "R13",
                step: Some(s.id.clone()),
                message: format!(
                    "in {r}: snapshot {id} is not a copy of this cluster's (its asdr:source-snapshot/asdr:source-region do not lead to {home})"
                ),
            });
        }
    }
    out
}

/// A restore into another region, or a drill of one: every step acts in that region; only new
/// resources (launch, create, attach, configure, start), never a delete, stop, detach or
/// terminate; volumes from the completed copies there of one complete set (R2, R3, R12 as at
/// home, against that region's view); SMD from the copy's store before each node starts; the
/// target's addresses, subnets, security groups and AMI; a drill's isolation as at home.
pub(super) fn verify_region_restore(
    policy: &Policy,
    world: &World,
    plan: &Plan,
    target: &asdr_specs::RegionTarget,
) -> Vec<Violation> {
    let region = target.region.as_str();
    let Some(copy) = policy.backup.copies.iter().find(|c| c.region == region) else {
        return vec![Violation {
            rule: "R16",
            step: None,
            message: format!("restores from {region}, which backup.copies does not copy to"),
        }];
    };
    let foreign = copies_are_ours(policy, world, plan);
    if !foreign.is_empty() {
        return foreign;
    }
    let view = crate::copies::region_view(policy, world, copy);
    let mut v = Verifier::new(policy, &view, plan, copy.retain);
    if !v.check_graph() {
        return v.out;
    }
    let op = v.op();
    v.check_kinds_allowed(&op);
    let allowed = [
        StepKind::ProvisionInstance,
        StepKind::CreateVolume,
        StepKind::WaitVolume,
        StepKind::AttachVolume,
        StepKind::WaitSnapshot,
        StepKind::WriteConfig,
        StepKind::RestoreSmd,
        StepKind::StartNode,
        StepKind::WaitClusterStable,
        // Strong consistency (R19): the new cluster's roster and partitions.
        StepKind::SetRoster,
        StepKind::WaitPartitionsAvailable,
        StepKind::MarkRestoreComplete,
        // Enabled and disabled around the new volumes (checked with the pairs it names).
        StepKind::FastSnapshotRestore,
    ];
    let nodes = policy.cluster.nodes.len();
    let mut bad = Vec::new();
    for (i, s) in plan.steps.iter().enumerate() {
        // The mark says the cluster stood: only after it was seen stable at full size, and only
        // on instances this plan launched.
        if let Params::MarkRestoreComplete(m) = &s.params {
            let stood = v.has_ancestor(
                i,
                |x| matches!(&x.params, Params::WaitClusterStable(w) if w.size == nodes),
            );
            let launched = m.instances.iter().all(|r| {
                r.from_step().is_some_and(|from| {
                    plan.steps
                        .iter()
                        .any(|x| x.id == from && x.kind() == StepKind::ProvisionInstance)
                })
            }) && m.instances.len() == nodes;
            if !stood || !launched {
                bad.push((
                    s,
                    "marks the restore complete before its cluster was seen stable at full size, or on instances this plan did not launch".to_string(),
                ));
            }
        }
        if s.region.as_deref() != Some(region) {
            bad.push((
                s,
                format!(
                    "acts in {}, not in {region} where the restore builds",
                    s.region.as_deref().unwrap_or(&policy.cluster.region)
                ),
            ));
        }
        if !allowed.contains(&s.kind()) {
            bad.push((
                s,
                format!(
                    "{} step: a restore into another region only builds a new cluster",
                    s.kind()
                ),
            ));
        }
        if let Params::RestoreSmd(r) = &s.params
            && !under(&r.from, &copy.smd_to)
        {
            bad.push((
                s,
                format!(
                    "restores SMD from {}, not from the copy's store {}",
                    r.from, copy.smd_to
                ),
            ));
        }
    }
    for (s, m) in bad {
        v.bad("R16", Some(s), m);
    }
    match op {
        Op::Restore(r) => {
            v.check_restore_data(r, None);
            v.check_new_cluster(&r.name, target);
            v.check_nothing_to_build(world, &r.name, region);
        }
        Op::Drill(d) => {
            if let Some(r) = policy.restore(&d.restore) {
                v.check_restore_data(r, Some(d.name.as_str()));
            }
            v.check_drill(d);
        }
        _ => {}
    }
    v.check_encryption(&op);
    v.out
}

fn tag<'t>(t: &'t BTreeMap<String, String>, k: &str) -> Option<&'t str> {
    t.get(k).map(String::as_str)
}

impl Verifier<'_> {
    /// A restore's new cluster in another region: its stand-ins only, tagged for the restore, at
    /// the target's addresses, subnets, security groups and AMI.
    fn check_new_cluster(&mut self, name: &str, target: &asdr_specs::RegionTarget) {
        let suffix = format!("@{name}");
        let ips: BTreeSet<String> = target.private_ips.values().map(|i| i.to_string()).collect();
        let subnets: BTreeSet<&String> = target.subnets.values().collect();
        let prod_ips: BTreeSet<String> = self
            .policy
            .cluster
            .nodes
            .iter()
            .map(|n| n.private_ip.to_string())
            .collect();
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for s in &self.plan.steps {
            if let Some(n) = &s.node
                && !n.ends_with(&suffix)
            {
                bad.push((
                    s,
                    format!("acts on node `{n}`, which is not one of the restore's new nodes"),
                ));
            }
            if let Some(t) = s.params.tags()
                && tag(t, tags::RESTORE) != Some(name)
            {
                bad.push((
                    s,
                    "creates a resource without the restore's asdr:restore tag".into(),
                ));
            }
            if let Params::ProvisionInstance(p) = &s.params {
                if !ips.contains(&p.private_ip) {
                    bad.push((
                        s,
                        format!(
                            "launches at {}, not one of the target's addresses",
                            p.private_ip
                        ),
                    ));
                }
                if !p.subnet_id.as_ref().is_some_and(|x| subnets.contains(x)) {
                    bad.push((
                        s,
                        format!(
                            "launches into subnet {:?}, not one of the target's",
                            p.subnet_id
                        ),
                    ));
                }
                if p.security_groups != target.security_groups {
                    bad.push((
                        s,
                        "launches with security groups other than the target's".into(),
                    ));
                }
                if p.ami != target.ami {
                    bad.push((
                        s,
                        format!("launches AMI {}, not the target's {}", p.ami, target.ami),
                    ));
                }
                if !p
                    .availability_zone
                    .starts_with(asdr_specs::split_place(&target.region).0)
                {
                    bad.push((
                        s,
                        format!(
                            "launches in {}, outside {}",
                            p.availability_zone, target.region
                        ),
                    ));
                }
            }
            // The new peers, never the source region's addresses (unless the target reuses
            // them: another VPC may have the same range).
            if let Params::WriteConfig(w) = &s.params
                && let Some(ip) = w
                    .content
                    .split(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                    .filter(|t| t.parse::<Ipv4Addr>().is_ok())
                    .find(|t| prod_ips.contains(*t) && !ips.contains(*t))
            {
                bad.push((s, format!("aerospike.conf names {ip}, an address of the cluster's own region, not one of the new peers")));
            }
            if let Some(svc) = s.params.node_service() {
                let ip = svc.address.split(':').next().unwrap_or_default();
                if !ips.contains(ip) {
                    bad.push((
                        s,
                        format!("talks to {}, not one of the new nodes", svc.address),
                    ));
                }
            }
        }
        for (s, m) in bad {
            self.bad("R16", Some(s), m);
        }
    }

    /// A copy reads a completed snapshot of this cluster of the set, node and device it says,
    /// or the snapshot a wait of this plan (before it) saw complete.
    fn check_copy_sources(&mut self, home: &World) {
        let mut bad = Vec::new();
        for (i, s) in self.steps(StepKind::CopySnapshot) {
            let Params::CopySnapshot(p) = &s.params else {
                continue;
            };
            if s.region.is_none() || s.region.as_deref() == Some(&self.policy.cluster.region) {
                bad.push((
                    s,
                    "copies a snapshot into the cluster's own region".to_string(),
                ));
                continue;
            }
            match &p.source {
                crate::params::Ref::Known(id) => {
                    let found = home.snapshots.iter().find(|x| &x.id == id);
                    match found {
                        None => bad.push((
                            s,
                            format!(
                                "its source {id} is not a snapshot in {}",
                                self.policy.cluster.region
                            ),
                        )),
                        Some(x) => {
                            let t = |k| tag(&x.tags, k);
                            if !self.own_tags(&x.tags)
                                || t(tags::SET) != Some(&p.set)
                                || t(tags::NODE) != Some(&p.node)
                                || t(tags::DEVICE) != Some(&p.device)
                            {
                                bad.push((s, format!("its source {id} is not this cluster's snapshot of {} {} in set {}", p.node, p.device, p.set)));
                            } else if x.state != SnapshotState::Completed {
                                bad.push((s, format!("its source {id} is not completed")));
                            }
                        }
                    }
                }
                crate::params::Ref::Learned { from_step } => {
                    let wait = self.plan.steps.iter().position(|x| &x.id == from_step);
                    let ok = wait.is_some_and(|w| {
                        let x = &self.plan.steps[w];
                        x.region.is_none()
                            && matches!(&x.params, Params::WaitSnapshot(q)
                                if q.set.as_deref() == Some(&p.set)
                                && q.node.as_deref() == Some(&p.node)
                                && q.device.as_deref() == Some(&p.device))
                            && self.ancestors(i).contains(&w)
                    });
                    if !ok {
                        bad.push((s, format!("its source is not the snapshot a wait before it saw complete ({from_step})")));
                    }
                }
            }
        }
        for (s, m) in bad {
            self.bad("R16", Some(s), m);
        }
    }

    /// A set is marked complete in a region only when it is whole there and at home.
    fn check_region_marks(&mut self, home: &World, views: &[World]) {
        let mut bad = Vec::new();
        for (i, s) in self.steps(StepKind::MarkSetComplete) {
            let Some(region) = s.region.clone() else {
                continue;
            };
            let Some(k) = self
                .policy
                .backup
                .copies
                .iter()
                .position(|c| c.region == region)
            else {
                continue;
            };
            let copy = &self.policy.backup.copies[k];
            let view = &views[k];
            let set = s.params.set().unwrap_or_default().to_string();
            let before = self.ancestors(i);
            let before_steps: Vec<&Step> = before.iter().map(|&a| &self.plan.steps[a]).collect();
            // The members the set has at home once marked there (its own, never today's policy:
            // an older set holds the nodes it had then); a set this plan makes: the policy's.
            let home_members: BTreeSet<(String, String)> = home
                .snapshots
                .iter()
                .filter(|x| {
                    self.own_tags(&x.tags)
                        && tag(&x.tags, tags::SET) == Some(&set)
                        && tag(&x.tags, tags::COMPLETE) == Some("true")
                })
                .filter_map(|x| {
                    Some((
                        tag(&x.tags, tags::NODE)?.to_string(),
                        tag(&x.tags, tags::DEVICE)?.to_string(),
                    ))
                })
                .collect();
            let members: Vec<(String, String)> = if home_members.is_empty() {
                self.policy
                    .cluster
                    .nodes
                    .iter()
                    .flat_map(|n| self.ebs_of(n).into_iter().map(|d| (n.name.clone(), d)))
                    .collect()
            } else {
                home_members.into_iter().collect()
            };
            for (node, dev) in members {
                let there = view.snapshots.iter().any(|x| {
                    self.own_tags(&x.tags)
                        && tag(&x.tags, tags::SET) == Some(&set)
                        && tag(&x.tags, tags::NODE) == Some(&node)
                        && tag(&x.tags, tags::DEVICE) == Some(&dev)
                        && x.state == SnapshotState::Completed
                });
                let waited = before_steps.iter().any(|x| {
                    x.region.as_deref() == Some(&region)
                        && matches!(&x.params, Params::WaitSnapshot(q)
                            if q.set.as_deref() == Some(&set)
                            && q.node.as_deref() == Some(&node)
                            && q.device.as_deref() == Some(&dev))
                });
                if !there && !waited {
                    bad.push((s, format!("marks set {set} complete in {region} without a completed copy of {node} {dev} there")));
                }
            }
            let archived = view
                .smd_archives
                .iter()
                .any(|a| a.set == set && under(&a.uri, &copy.smd_to));
            let archive_copied = before_steps.iter().any(|x| {
                matches!(&x.params, Params::CopySmdArchive(q) if q.set == set && under(&q.to, &copy.smd_to))
            });
            if !archived && !archive_copied {
                bad.push((
                    s,
                    format!(
                        "marks set {set} complete in {region} without its SMD archive in {}",
                        copy.smd_to
                    ),
                ));
            }
            let manifest_written = before_steps.iter().any(|x| {
                x.region.as_deref() == Some(&region)
                    && matches!(&x.params, Params::WriteManifest(m)
                        if m.set == set && under(&m.uri, &copy.smd_to))
            });
            if !manifest_written {
                bad.push((
                    s,
                    format!("marks set {set} complete in {region} without first writing its manifest in {}", copy.smd_to),
                ));
            }
            let home_marked = before_steps.iter().any(|x| {
                x.region.is_none()
                    && x.kind() == StepKind::MarkSetComplete
                    && x.params.set() == Some(&set)
            });
            let home_snaps: Vec<&crate::world::Snapshot> = home
                .snapshots
                .iter()
                .filter(|x| self.own_tags(&x.tags) && tag(&x.tags, tags::SET) == Some(&set))
                .collect();
            let home_complete = !home_snaps.is_empty()
                && home_snaps
                    .iter()
                    .all(|x| tag(&x.tags, tags::COMPLETE) == Some("true"));
            if !home_marked && !home_complete {
                bad.push((
                    s,
                    format!(
                        "marks set {set} complete in {region}, but it is not complete in {}",
                        self.policy.cluster.region
                    ),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("R16", Some(s), m);
        }
    }

    /// No more copies in flight to a region than its `max_in_flight`: a copy is in flight from
    /// its copy_snapshot to its wait; a copy an earlier run started, until its wait.
    fn check_copies_in_flight(&mut self, views: &[World]) {
        let copies = self.policy.backup.copies.clone();
        for (k, copy) in copies.iter().enumerate() {
            let region = copy.region.as_str();
            // Copies under way in the region (pending there) that no wait of this plan follows:
            // in flight for the whole plan. Never deleted while under way either.
            let waited_ids: HashSet<&str> = self
                .plan
                .steps
                .iter()
                .filter(|s| s.region.as_deref() == Some(region))
                .filter_map(|s| match &s.params {
                    Params::WaitSnapshot(w) => w.snapshot_id.as_deref(),
                    _ => None,
                })
                .collect();
            let pending: Vec<&str> = views[k]
                .snapshots
                .iter()
                .filter(|x| x.state == SnapshotState::Pending)
                .map(|x| x.id.as_str())
                .collect();
            let mut bad_deletes = Vec::new();
            for s in self.steps(StepKind::DeleteSnapshot) {
                if s.1.region.as_deref() == Some(region)
                    && matches!(&s.1.params, Params::DeleteSnapshot(d) if pending.contains(&d.snapshot_id.as_str()))
                {
                    bad_deletes.push(s.1);
                }
            }
            for s in bad_deletes {
                self.bad("R16", Some(s), "deletes a copy that is still being made");
            }
            let untracked = pending
                .iter()
                .filter(|id| !waited_ids.contains(*id))
                .count();
            let starts_any =
                self.plan.steps.iter().any(|s| {
                    s.region.as_deref() == Some(region) && s.kind() == StepKind::CopySnapshot
                });
            if untracked > 0 && starts_any {
                self.bad(
                    "R16",
                    None,
                    format!(
                        "{untracked} snapshot copies are under way to {region} and the plan starts more without waiting for them; max_in_flight is {}",
                        copy.max_in_flight
                    ),
                );
                continue;
            }
            // (start, end) per copy: the copy step (none for one already under way) and its wait.
            let mut items: Vec<(Option<usize>, usize)> = Vec::new();
            for (i, s) in self.plan.steps.iter().enumerate() {
                if s.region.as_deref() != Some(region) {
                    continue;
                }
                if let Params::WaitSnapshot(_) = &s.params {
                    let start = self.graph().deps[i]
                        .iter()
                        .copied()
                        .find(|&d| self.plan.steps[d].kind() == StepKind::CopySnapshot);
                    items.push((start, i));
                }
            }
            let starts = self.plan.steps.iter().enumerate().filter(|(_, s)| {
                s.region.as_deref() == Some(region) && s.kind() == StepKind::CopySnapshot
            });
            let waited: HashSet<usize> = items.iter().filter_map(|(s, _)| *s).collect();
            let unwaited: Vec<&Step> = starts
                .filter(|(i, _)| !waited.contains(i))
                .map(|(_, s)| s)
                .collect();
            for s in unwaited {
                self.bad(
                    "R16",
                    Some(s),
                    "a copy no wait follows: its flight is unbounded",
                );
            }
            // Copies an earlier run left under way are not this plan's doing: the bound is the
            // larger of max_in_flight and their number (the plan starts none beside them).
            let earlier = items.iter().filter(|(s, _)| s.is_none()).count();
            let bound = (copy.max_in_flight as usize).max(earlier);
            if items.len() <= bound {
                continue;
            }
            let before: Vec<HashSet<usize>> = items
                .iter()
                .map(|(start, _)| start.map(|s| self.ancestors(s)).unwrap_or_default())
                .collect();
            let idx: Vec<usize> = (0..items.len()).collect();
            let lt = |a: usize, b: usize| items[b].0.is_some() && before[b].contains(&items[a].1);
            let most = max_antichain(&idx, &lt, bound);
            if most > bound {
                self.bad(
                    "R16",
                    None,
                    format!(
                        "up to {most} snapshot copies may be in flight to {region} at once; max_in_flight is {}",
                        copy.max_in_flight
                    ),
                );
            }
        }
    }

    /// Never delete, in the cluster's region, a set whose copy is being made (in this plan or
    /// by an earlier one).
    fn check_home_deletes_spare_copy_sources(&mut self, home: &World, views: &[World]) {
        let mut sources: HashSet<String> = HashSet::new();
        for s in &self.plan.steps {
            if let Params::CopySnapshot(p) = &s.params {
                sources.insert(p.set.clone());
            }
        }
        for v in views {
            for x in &v.snapshots {
                if x.state == SnapshotState::Pending
                    && self.own_tags(&x.tags)
                    && let Some(set) = x.tags.get(tags::SET)
                {
                    sources.insert(set.clone());
                }
            }
        }
        let mut bad = Vec::new();
        for (_, s) in self.steps(StepKind::DeleteSnapshot) {
            if s.region.is_some() {
                continue;
            }
            let id = s.params.snapshot_id().unwrap_or_default();
            if let Some(set) = home
                .snapshots
                .iter()
                .find(|x| x.id == id)
                .and_then(|x| x.tags.get(tags::SET))
                && sources.contains(set)
            {
                bad.push((
                    s,
                    format!(
                        "deletes a snapshot of set {set}, which is being copied to another region"
                    ),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("R16", Some(s), m);
        }
    }
}
