//! R13, by the cluster id: read from the raw world, before anything is left out of it. A plan
//! never acts on what carries another cluster's id, everything it creates carries its own, and
//! the id it claims is the one the cluster's instances carry (or none of them carries one yet).

use std::collections::{BTreeSet, HashMap, HashSet};

use asdr_specs::Policy;

use super::{Verifier, Violation};
use crate::params::Params;
use crate::plan::Plan;
use crate::tags;
use crate::world::Instance;
use crate::world::{InstanceState, Tags, World};
use asdr_specs::Node;

pub(super) fn check(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(id) = plan.cluster_id.as_deref() else {
        // Plan files made before ids: nothing here to check them against.
        return out;
    };
    let mut bad = |step: Option<&str>, message: String| {
        out.push(Violation {
            rule: "R13",
            step: step.map(str::to_string),
            message,
        })
    };
    fn other<'t>(t: &'t Tags, id: &str) -> Option<&'t String> {
        t.get(tags::CLUSTER_ID).filter(|c| c.as_str() != id)
    }

    // The id is the one the cluster's nodes' instances carry.
    let home = policy.cluster.region.as_str();
    let live: Vec<&crate::world::Instance> = world
        .instances
        .iter()
        .filter(|i| {
            i.region.as_deref().unwrap_or(home) == home && i.state != InstanceState::Terminated
        })
        .collect();
    // A node's instance: the pinned one while it lives, else those tagged for the node at its
    // address.
    let carried: BTreeSet<&str> = policy
        .cluster
        .nodes
        .iter()
        .flat_map(|n| {
            let ip = n.private_ip.to_string();
            let pinned: Vec<&crate::world::Instance> = live
                .iter()
                .copied()
                .filter(|i| n.instance_id.as_deref() == Some(i.id.as_str()))
                .collect();
            if pinned.is_empty() {
                live.iter()
                    .copied()
                    .filter(|i| {
                        i.tags.get(tags::NODE) == Some(&n.name)
                            && i.tags.get(tags::CLUSTER) == Some(&policy.cluster.name)
                            && i.private_ip.as_deref() == Some(ip.as_str())
                    })
                    .collect()
            } else {
                pinned
            }
        })
        .filter_map(|i| i.tags.get(tags::CLUSTER_ID).map(String::as_str))
        .collect();
    if let Some(stated) = &policy.cluster.id
        && stated != id
    {
        bad(
            None,
            format!("the plan is for cluster id {id}, the policy states {stated}"),
        );
    }
    if !carried.is_empty() && carried != BTreeSet::from([id]) {
        bad(
            None,
            format!(
                "the plan is for cluster id {id}, the cluster's instances carry {}",
                carried.into_iter().collect::<Vec<_>>().join(", ")
            ),
        );
    }

    // Only what carries another id is indexed: a step naming anything else is fine here (most
    // worlds hold nothing of another id, and a 61,440-snapshot index costs more than the rest).
    let snapshots: HashMap<&str, &Tags> = world
        .snapshots
        .iter()
        .filter(|s| other(&s.tags, id).is_some())
        .map(|s| (s.id.as_str(), &s.tags))
        .collect();
    let volumes: HashMap<&str, &Tags> = world
        .volumes
        .iter()
        .filter(|v| other(&v.tags, id).is_some())
        .map(|v| (v.id.as_str(), &v.tags))
        .collect();
    let instances: HashMap<&str, &Tags> = world
        .instances
        .iter()
        .filter(|i| other(&i.tags, id).is_some())
        .map(|i| (i.id.as_str(), &i.tags))
        .collect();
    // asbackup runs by directory: a run whose manifest names another id is another cluster's.
    let foreign_runs: HashMap<&str, &str> = world
        .asbackup_archives
        .iter()
        .filter_map(|a| {
            a.cluster_id
                .as_deref()
                .filter(|c| *c != id)
                .map(|c| (a.uri.as_str(), c))
        })
        .collect();
    let claim = plan
        .steps
        .iter()
        .position(|s| matches!(s.params, Params::ClaimCluster(_)));
    let after_claim = claim.map(|c| descendants(plan, c));
    for (i, s) in plan.steps.iter().enumerate() {
        let sid = Some(s.id.as_str());
        let copied = match &s.params {
            Params::CopySnapshot(p) => p.source.known(),
            _ => None,
        };
        for snap in s.params.snapshot_id().into_iter().chain(copied) {
            if let Some(c) = snapshots.get(snap).and_then(|t| other(t, id)) {
                bad(
                    sid,
                    format!(
                        "snapshot {snap} carries {}={c}: another cluster's",
                        tags::CLUSTER_ID
                    ),
                );
            }
        }
        if let Some(v) = s.params.volume_id()
            && let Some(c) = volumes.get(v).and_then(|t| other(t, id))
        {
            bad(
                sid,
                format!(
                    "volume {v} carries {}={c}: another cluster's",
                    tags::CLUSTER_ID
                ),
            );
        }
        if let Some(inst) = s.params.instance_id()
            && let Some(c) = instances.get(inst).and_then(|t| other(t, id))
        {
            bad(
                sid,
                format!(
                    "instance {inst} carries {}={c}: another cluster's",
                    tags::CLUSTER_ID
                ),
            );
        }
        if matches!(s.params, Params::Asbackup(_))
            && let Some(after) = &after_claim
            && !after.contains(&i)
        {
            bad(
                sid,
                "it writes a run naming the cluster id before the id is claimed".into(),
            );
        }
        if let Some(t) = s.params.tags() {
            if t.get(tags::CLUSTER_ID).map(String::as_str) != Some(id) {
                bad(
                    sid,
                    format!("what it creates is not tagged {}={id}", tags::CLUSTER_ID),
                );
            }
            if let Some(after) = &after_claim
                && !after.contains(&i)
            {
                bad(
                    sid,
                    "it creates a resource carrying the cluster id before the id is claimed".into(),
                );
            }
        }
        let dirs: &[String] = match &s.params {
            Params::Asrestore(p) => &p.directories,
            Params::DeleteBackup(p) => &p.directories,
            _ => &[],
        };
        for d in dirs {
            if let Some(c) = foreign_runs.get(d.as_str()) {
                bad(
                    sid,
                    format!("the asbackup run in {d} names cluster id {c}: another cluster's"),
                );
            }
        }
        let named = match &s.params {
            Params::Asbackup(p) => Some(p.cluster_id.as_deref()),
            Params::WriteManifest(p) => Some(p.cluster_id.as_deref()),
            Params::DeleteSnapshot(p) => Some(p.cluster_id.as_deref()),
            Params::DeleteVolume(p) => Some(p.cluster_id.as_deref()),
            Params::DeleteBackup(p) => Some(p.cluster_id.as_deref()),
            Params::MarkSetComplete(p) => Some(p.cluster_id.as_deref()),
            Params::WaitSnapshot(p) => Some(p.cluster_id.as_deref()),
            Params::ClaimCluster(p) => Some(Some(p.cluster_id.as_str())),
            Params::LockSnapshots(p) => Some(p.cluster_id.as_deref()),
            _ => None,
        };
        if let Some(n) = named
            && n != Some(id)
        {
            bad(
                sid,
                format!("it names cluster id {}, the plan {id}", n.unwrap_or("none")),
            );
        }
        if let Params::ClaimCluster(p) = &s.params {
            for inst in &p.instances {
                if let Some(c) = instances.get(inst.as_str()).and_then(|t| other(t, id)) {
                    bad(
                        sid,
                        format!(
                            "it would claim instance {inst}, which carries {}={c}: another cluster's",
                            tags::CLUSTER_ID
                        ),
                    );
                }
            }
        }
    }
    out
}

/// Every step that runs after `from` (by the dependency edges, transitively).
fn descendants(plan: &Plan, from: usize) -> HashSet<usize> {
    let index: HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); plan.steps.len()];
    for (i, s) in plan.steps.iter().enumerate() {
        for d in &s.depends_on {
            if let Some(&j) = index.get(d.as_str()) {
                dependents[j].push(i);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        for &j in &dependents[i] {
            if seen.insert(j) {
                stack.push(j);
            }
        }
    }
    seen
}

impl<'a> Verifier<'a> {
    /// The node's instance, judged here on its own: the pinned one while it lives; else one
    /// tagged for the node where the node stands (its address, its zone, the pinned instance's
    /// subnet), never one that only carries the tags elsewhere.
    pub(super) fn instance_of(&self, node: &Node) -> Option<&'a Instance> {
        let ip = node.private_ip.to_string();
        let pinned = |i: &Instance| Some(i.id.as_str()) == node.instance_id.as_deref();
        if let Some(live) = self
            .world
            .instances
            .iter()
            .find(|i| pinned(i) && i.state != InstanceState::Terminated)
        {
            return Some(live);
        }
        let pinned_subnet = self
            .world
            .instances
            .iter()
            .find(|i| pinned(i))
            .and_then(|i| i.subnet_id.clone());
        let mut found: Vec<&Instance> = self
            .world
            .instances
            .iter()
            .filter(|i| {
                pinned(i)
                    || (self.own_tags(&i.tags)
                        && i.tags.get(tags::NODE) == Some(&node.name)
                        && match &i.private_ip {
                            Some(a) => *a == ip,
                            None => i.state == InstanceState::Terminated,
                        }
                        && i.availability_zone == node.availability_zone
                        && (pinned_subnet.is_none()
                            || i.subnet_id.is_none()
                            || i.subnet_id == pinned_subnet)
                        && !i.tags.contains_key(crate::drill::DRILL))
            })
            .collect();
        found.sort_by_key(|i| {
            (
                i.state == InstanceState::Terminated,
                !pinned(i),
                i.id.clone(),
            )
        });
        found.first().copied()
    }
}
