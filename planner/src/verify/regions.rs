//! R16, copies in other regions: a copy is made only of a completed snapshot of this cluster; a
//! set is marked complete in a region only once every node's every device has a completed copy
//! there, its SMD archive is in the region's store and the set is complete at home; retention in
//! a region never takes its last complete copy (R13 there, with the copy's `retain`); no more
//! copies in flight to a region than its `max_in_flight`; the cluster's region never deletes a
//! set a copy is being made from.

use super::*;
use crate::copies::under;

/// The plan's steps that act in `region` (None: the cluster's own), their dependencies on steps
/// elsewhere dropped (those are checked on the whole plan).
pub(super) fn sub_plan(plan: &Plan, region: Option<&str>) -> Plan {
    let steps: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| s.region.as_deref() == region)
        .cloned()
        .collect();
    let ids: HashSet<String> = steps.iter().map(|s| s.id.clone()).collect();
    let steps = steps
        .into_iter()
        .map(|mut s| {
            s.depends_on.retain(|d| ids.contains(d));
            s
        })
        .collect();
    Plan {
        steps,
        ..plan.clone()
    }
}

/// The region a restore (or a drill of one) builds in, when not the cluster's own.
pub(super) fn restore_region<'p>(
    policy: &'p Policy,
    plan: &Plan,
) -> Option<&'p asdr_specs::RegionTarget> {
    let label = plan.operation.as_str();
    let restore = if let Some(name) = label.strip_prefix("restore:") {
        policy.restore(name)
    } else if let Some(name) = label.strip_prefix("drill:") {
        policy.drill(name).and_then(|d| policy.restore(&d.restore))
    } else {
        None
    }?;
    restore.region.as_ref()
}

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
            v.check_r13_deletes(&Op::Backup);
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

/// Placeholder until restores into other regions are planned: no such plan is safe yet.
pub(super) fn verify_region_restore(
    _policy: &Policy,
    _world: &World,
    plan: &Plan,
    region: &asdr_specs::RegionTarget,
) -> Vec<Violation> {
    vec![Violation {
        rule: "R16",
        step: None,
        message: format!(
            "plan `{}` builds in {}, which this verifier does not check",
            plan.operation, region.region
        ),
    }]
}

fn tag<'t>(t: &'t BTreeMap<String, String>, k: &str) -> Option<&'t str> {
    t.get(k).map(String::as_str)
}

impl Verifier<'_> {
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
            for node in &self.policy.cluster.nodes {
                for dev in self.ebs_of(node) {
                    let there = view.snapshots.iter().any(|x| {
                        self.own_tags(&x.tags)
                            && tag(&x.tags, tags::SET) == Some(&set)
                            && tag(&x.tags, tags::NODE) == Some(&node.name)
                            && tag(&x.tags, tags::DEVICE) == Some(&dev)
                            && x.state == SnapshotState::Completed
                    });
                    let waited = before_steps.iter().any(|x| {
                        x.region.as_deref() == Some(&region)
                            && matches!(&x.params, Params::WaitSnapshot(q)
                                if q.set.as_deref() == Some(&set)
                                && q.node.as_deref() == Some(&node.name)
                                && q.device.as_deref() == Some(&dev))
                    });
                    if !there && !waited {
                        bad.push((s, format!("marks set {set} complete in {region} without a completed copy of {} {dev} there", node.name)));
                    }
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
    fn check_copies_in_flight(&mut self, _views: &[World]) {
        let copies = self.policy.backup.copies.clone();
        for copy in &copies {
            let region = copy.region.as_str();
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
