//! `asdr status`: where a cluster stands against its policy, from the observed world alone (pure,
//! like the planner): the newest complete backup set and its age against `backup.every` (the
//! recovery point objective), the sets kept, and for each declared restore what bounds its time.

use asdr_specs::{Method, Policy, RestoreSource};
use serde::Serialize;
use time::OffsetDateTime;

use crate::World;
use crate::observe::{BackupSet, Observed, human_age};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    pub cluster: String,
    /// The cluster's id (`asdr:cluster-id`) and where it was found; none when it cannot be told
    /// (then a problem says why).
    pub cluster_id: Option<String>,
    pub cluster_id_source: String,
    /// Resources tagged with this cluster's name and another cluster id: another cluster of the
    /// same name's, left out of everything here.
    #[serde(skip_serializing_if = "is_zero")]
    pub other_cluster_resources: usize,
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// `backup.every`: no complete set may be older.
    pub rpo_seconds: u64,
    pub newest_complete: Option<NewestSet>,
    /// No complete set, or the newest older than the RPO.
    pub overdue: bool,
    /// Complete sets, oldest first.
    pub complete_sets: Vec<String>,
    /// Sets begun and not complete (an interrupted or failing backup leaves them).
    pub unfinished_sets: Vec<String>,
    pub restores: Vec<RestoreStatus>,
    /// Each policy node as observed: a node down, unreachable or left quiesced makes `status`
    /// not fine, whatever the backups say.
    pub nodes: Vec<NodeStatus>,
    /// Per copy region (`backup.copies`): the copies there.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub regions: std::collections::BTreeMap<String, RegionStatus>,
    /// Every declared recovery path (the cluster's region, each copy region, each restore) that
    /// has no usable set within its objective, and every node not up or left quiesced, said
    /// plainly. Empty: all is fine; `status` exits 2 otherwise.
    pub problems: Vec<String>,
    /// Fast Snapshot Restore on for the cluster's snapshots, by set: pairs billed every hour
    /// (read where a restore or the backup uses it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fast_restore_on: Vec<crate::fast_restore::SetOn>,
    /// What the world shows of the cluster that the policy does not declare (undeclared nodes);
    /// those taking part in the cluster are problems too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
    /// Sets marked with a manifest the store does not hold (a same-named cluster's, or this
    /// cluster's whose manifest was removed): never counted, restored from or deleted. Said,
    /// not a recovery problem of their own: what they leave uncovered shows in the objectives.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_proven: Vec<String>,
    /// Each complete set's snapshot locks, per region (R20): sets that are locked, and every
    /// set where the policy locks them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<crate::locks::SetLockStatus>,
    /// What the Recycle Bin does for the cluster's snapshots, per region.
    pub recycle_bin: std::collections::BTreeMap<String, crate::recycle_bin::Coverage>,
}

/// The copies of a cluster's sets in one other region.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionStatus {
    /// The backup account the copies are in (`backup.copies[].account`); none: this account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The AWS region (the key is `REGION@ACCOUNT` for a backup account's copies).
    pub aws_region: String,
    pub newest_complete_set: Option<String>,
    /// Counted from the set's own time (when it was taken at home), not from its copy's.
    pub age_seconds: Option<u64>,
    /// The age past which the region has no copy within its objective: one interval for the
    /// next set and one to copy it, or the declared `complete_within` when that is longer.
    pub rpo_seconds: u64,
    /// The cluster's newest complete set has no complete copy here yet.
    pub behind: bool,
    pub complete_sets: Vec<String>,
    pub unfinished_sets: Vec<String>,
    /// Why the region could not be observed, when it could not (then nothing else is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unobserved: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NewestSet {
    pub set: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub age_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    /// Instance running and Aerospike answering.
    pub up: bool,
    /// `healthy`, `running but Aerospike does not answer`, `stopped`, `shutting down`, `gone
    /// (terminated or missing)`.
    pub health: String,
    pub quiesced: bool,
    pub migrations_remaining: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreStatus {
    pub name: String,
    pub source: String,
    /// The set it would restore from now, when it restores from one.
    pub set: Option<String>,
    /// A lower bound on the time to load the data, when one can be told in advance (volumes
    /// initialised at a declared rate in parallel: the largest bounds it).
    pub estimate_seconds: Option<u64>,
    /// What the estimate rests on, or why there is none.
    pub basis: String,
    /// The restore's time by phase, for the disaster it is for, against its objective.
    pub rto: crate::rto::RtoEstimate,
    /// Node devices the restore rebuilds that its set holds no snapshot of (the set was made
    /// before they existed): the restore would be refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// It has what it needs now: a usable set (when it restores from one) holding every device
    /// it rebuilds.
    pub ready: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

pub fn status(policy: &Policy, world: &World, now: OffsetDateTime) -> Status {
    // Whose is what, as the planner has it: what carries another cluster's id is left out.
    let identity = crate::identity::resolve(policy, world);
    let (cluster_id, cluster_id_source, identity_problem) = match &identity {
        Ok(i) => (Some(i.id.clone()), i.how.as_str().to_string(), None),
        Err(e) => (None, "unknown".to_string(), Some(e.to_string())),
    };
    // Unknown: nothing is left out (and the problem says why nothing here can be relied on).
    let seen = world;
    let ours = match cluster_id.as_deref() {
        Some(id) => crate::identity::ours(seen, id),
        None => std::borrow::Cow::Borrowed(seen),
    };
    let world: &World = &ours;
    let other_cluster_resources = cluster_id.as_deref().map_or(0, |id| {
        crate::identity::foreign_count(seen, &policy.cluster.name, id)
    });
    let home = crate::copies::home_view(policy, world);
    let obs = Observed::new(policy, &home);
    // What a complete set is depends on the method: asbackup sets are complete with asdr's
    // manifest in every namespace (they hold no snapshots).
    let asbackup = policy.backup.method == Method::Asbackup;
    let namespaces: Vec<String> = policy
        .cluster
        .namespaces
        .iter()
        .map(|n| n.name.clone())
        .collect();
    // asbackup: only sets of a whole chain (what a restore can replay), as the planner has it.
    let restorable = crate::asbackup::restorable(policy, &obs);
    let complete = |s: &BackupSet<'_>| {
        if asbackup {
            s.asbackup_complete(&namespaces) && restorable.contains(&s.id)
        } else {
            s.is_complete()
        }
    };
    let home_newest = obs.sets.iter().rev().find(|s| complete(s));
    let views: Vec<World> = policy
        .backup
        .copies
        .iter()
        .map(|c| crate::copies::region_view(policy, world, c))
        .collect();
    let region_obs: Vec<Observed<'_>> = views.iter().map(|v| Observed::new(policy, v)).collect();
    let regions = policy
        .backup
        .copies
        .iter()
        .zip(&region_obs)
        .map(|(c, robs)| {
            let newest = robs.newest_complete_set();
            let unobserved = world.unobserved_regions.get(&c.region).cloned();
            let status = RegionStatus {
                account: c.account.as_ref().map(|a| a.id.clone()),
                aws_region: c.aws_region.clone(),
                unobserved,
                newest_complete_set: newest.map(|s| s.id.clone()),
                age_seconds: newest.map(|s| (now - s.time).whole_seconds().max(0) as u64),
                rpo_seconds: copy_rpo(policy, c),
                behind: obs
                    .newest_complete_set()
                    .is_some_and(|h| robs.set(&h.id).is_none_or(|s| !s.is_complete())),
                complete_sets: robs
                    .sets
                    .iter()
                    .filter(|s| s.is_complete())
                    .map(|s| s.id.clone())
                    .collect(),
                unfinished_sets: robs
                    .sets
                    .iter()
                    .filter(|s| !s.is_complete() && !s.unproven)
                    .map(|s| s.id.clone())
                    .collect(),
            };
            (c.region.clone(), status)
        })
        .collect();
    let rpo_seconds = policy.backup.every.seconds();
    let newest_complete = home_newest.map(|s| NewestSet {
        set: s.id.clone(),
        time: s.time,
        age_seconds: (now - s.time).whole_seconds().max(0) as u64,
    });
    let overdue = newest_complete
        .as_ref()
        .is_none_or(|n| n.age_seconds >= rpo_seconds);
    let mut restores: Vec<RestoreStatus> = policy
        .restores
        .iter()
        .map(|r| {
            // A restore into another region reads the copies there.
            let obs = r
                .region()
                .and_then(|region| policy.backup.copies.iter().position(|c| c.region == region))
                .map_or(&obs, |k| &region_obs[k]);
            let (source, set) = match &r.source {
                RestoreSource::CurrentVolumes => ("current-volumes".to_string(), None),
                RestoreSource::Empty => ("empty".to_string(), None),
                RestoreSource::LatestBackup => (
                    "latest-backup".to_string(),
                    obs.sets.iter().rev().find(|s| complete(s)),
                ),
                RestoreSource::Set(id) => {
                    (format!("set:{id}"), obs.set(id).filter(|s| complete(s)))
                }
                RestoreSource::Before(t) => (
                    format!(
                        "before:{}",
                        t.format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    ),
                    // The set the planner would take: the same question, asked the same way.
                    if asbackup {
                        obs.sets
                            .iter()
                            .rev()
                            .find(|s| complete(s) && s.asbackup_time() < *t)
                    } else {
                        obs.complete_set_before(*t)
                    },
                ),
            };
            let nodes: Vec<&str> = if r.nodes.is_empty() {
                policy
                    .cluster
                    .nodes
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect()
            } else {
                r.nodes.iter().map(String::as_str).collect()
            };
            let (estimate_seconds, basis) = crate::rto::estimate(
                policy,
                &r.source,
                set,
                &nodes,
                r.volume.initialization_rate,
                r.volume.fast_snapshot_restore,
            );
            let rto = crate::rto::of_status(policy, r, set, obs, &nodes);
            // EBS: the set must hold every device of every node the restore rebuilds, as the
            // planner requires; a set made before a node or device was added does not.
            let missing: Vec<String> = match set {
                Some(s) if !asbackup => obs
                    .nodes
                    .iter()
                    .filter(|v| nodes.contains(&v.name.as_str()))
                    .flat_map(|v| {
                        v.volumes
                            .iter()
                            .filter(|d| s.snapshot_for(&v.name, &d.ebs).is_none())
                            .map(|d| format!("{} {}", v.name, d.ebs))
                            .collect::<Vec<_>>()
                    })
                    .collect(),
                // The node's own volumes: each device must have one the planner can take (not
                // deleted, not one of several candidates).
                _ if r.source == RestoreSource::CurrentVolumes => obs
                    .nodes
                    .iter()
                    .filter(|v| nodes.contains(&v.name.as_str()))
                    .flat_map(|v| {
                        let node = policy.node(&v.name).expect("viewed from the policy");
                        v.volumes
                            .iter()
                            .filter_map(|d| match d.volume {
                                None => Some(format!("{} {}", v.name, d.ebs)),
                                Some(vol) => {
                                    crate::restore::data::unusable(node, v, vol).map(|(_, why)| {
                                        format!("{} {} ({} {why})", v.name, d.ebs, vol.id)
                                    })
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect(),
                _ => Vec::new(),
            };
            RestoreStatus {
                ready: missing.is_empty() && (!r.source.uses_backup() || set.is_some()),
                name: r.name.clone(),
                source,
                set: set.map(|s| s.id.clone()),
                estimate_seconds,
                basis,
                rto,
                missing,
            }
        })
        .collect();
    let nodes: Vec<NodeStatus> = obs
        .nodes
        .iter()
        .map(|v| NodeStatus {
            name: v.name.clone(),
            up: v.health == crate::observe::NodeHealth::Healthy,
            health: v.health.describe().to_string(),
            quiesced: v.observation.is_some_and(|o| o.quiesced),
            migrations_remaining: v.observation.map_or(0, |o| o.migrations_remaining),
        })
        .collect();
    let mut problems = problems(policy, overdue, &newest_complete, &regions, &restores);
    // asbackup sets are kept by their runs' retention in the store, as observed.
    let (mut locks, lock_problems) = if asbackup {
        crate::retained::status(policy, &obs, now)
    } else {
        crate::locks::status(
            &policy.cluster.region,
            &obs,
            policy.backup.lock.as_ref(),
            now,
        )
    };
    problems.extend(lock_problems);
    problems.extend(crate::locks::store_problems(policy, world));
    for (c, robs) in policy.backup.copies.iter().zip(&region_obs) {
        if world.unobserved_regions.contains_key(&c.region) {
            continue;
        }
        let (rows, p) = crate::locks::status(&c.region, robs, c.lock.as_ref(), now);
        locks.extend(rows);
        problems.extend(p);
    }
    let drift = crate::drift::undeclared(policy, world);
    let declared_count = policy.cluster.nodes.len() as u32;
    problems.extend(crate::restore::zone::twins(policy, obs.world));
    // What every plan would refuse is not fine, whatever else is.
    if let Err(e) = crate::preflight(policy, &obs) {
        problems.push(format!("every plan is refused: {e}"));
        // Nothing is ready that the planner refuses to plan.
        for r in &mut restores {
            r.ready = false;
        }
    }
    if identity_problem.is_some() {
        for r in &mut restores {
            r.ready = false;
        }
    }
    let stale = crate::restore::zone::stale_placements(policy, obs.world);
    for (node, restore, i, entry) in &stale {
        problems.push(format!(
            "node {node} runs in {} at {} ({}) since restore `{restore}` moved it, but the policy places it where it was: update its entry in cluster.nodes to {entry}; every plan but that restore is refused until then",
            i.availability_zone,
            i.private_ip.as_deref().unwrap_or("?"),
            i.id
        ));
    }
    let up_count = nodes.iter().filter(|n| n.up).count() as u32;
    // The cluster as it runs: a node out is not fine, even with every backup in order. Which
    // declared restore brings it back is said with it.
    for n in nodes.iter().rev() {
        let by: Vec<&str> = policy
            .restores
            .iter()
            .filter(|r| r.scope == asdr_specs::Scope::Node && r.nodes.contains(&n.name))
            // Only those that can run now: one whose volumes or set are gone brings nothing back.
            .filter(|r| restores.iter().any(|x| x.name == r.name && x.ready))
            .map(|r| r.name.as_str())
            .collect();
        let hint = if by.is_empty() {
            String::new()
        } else {
            match by.as_slice() {
                [one] => format!(" (restore `{one}` brings it back)"),
                many => format!(
                    " (restores {} bring it back)",
                    many.iter()
                        .map(|r| format!("`{r}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        if stale.iter().any(|(node, ..)| *node == n.name) {
            // Said above: where it runs now, and what the policy must say.
        } else if !n.up {
            problems.insert(
                0,
                format!(
                    "node {} is {}: the cluster is not whole{hint}",
                    n.name, n.health
                ),
            );
        } else if n.quiesced {
            problems.insert(
                0,
                format!(
                    "node {} is quiesced (an interrupted apply, or by hand): it takes no writes as master until `quiesce-undo:` and `recluster:`",
                    n.name
                ),
            );
        }
        // Up is not whole: a node may answer in a cluster of its own (split off: it sees fewer
        // nodes than answer), or with partitions lost. A node that is down is said above.
        if let Some(o) = obs.node(&n.name).observation.filter(|_| n.up) {
            let expected = up_count;
            // Nodes a zone-loss restore moved answer at addresses the policy does not name yet:
            // a cluster counting them is not split.
            let moved = stale
                .iter()
                .map(|(node, ..)| node.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u32;
            // More members than the policy declares is drift, said below, not a split.
            if let Some(size) = o
                .cluster_size
                .filter(|s| *s < expected || (*s > expected + moved && *s <= declared_count))
            {
                problems.insert(
                    0,
                    format!(
                        "node {} sees a cluster of {size} nodes, but {expected} answer: the cluster is split{}",
                        n.name,
                        if drift.iter().any(|d| d.active) {
                            ", or it counts a member the policy does not name (see drift)"
                        } else {
                            ""
                        }
                    ),
                );
            }
            for ns in o.namespaces.iter().filter(|ns| ns.strong_consistency) {
                let missing: Vec<&str> = ns
                    .roster
                    .iter()
                    .filter(|r| !ns.observed_nodes.is_empty() && !ns.observed_nodes.contains(r))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    problems.insert(
                        0,
                        format!(
                            "node {} holds a roster of {} whose member(s) {} are not in the cluster: one more node out and partitions are unavailable (R19)",
                            n.name,
                            ns.name,
                            missing.join(", ")
                        ),
                    );
                }
            }
            if o.dead_partitions > 0 || o.unavailable_partitions > 0 {
                problems.insert(
                    0,
                    format!(
                        "node {} reports {} dead and {} unavailable partitions: records cannot be read or written there (R19)",
                        n.name, o.dead_partitions, o.unavailable_partitions
                    ),
                );
            }
        }
    }
    if let Some(why) = identity_problem {
        problems.insert(0, why);
    }
    if let Some(id) = cluster_id
        .as_deref()
        .filter(|_| other_cluster_resources > 0)
    {
        for (other, n) in crate::identity::own_history_under_other_ids(policy, seen, id) {
            problems.insert(
                0,
                format!(
                    "{n} snapshot(s) of this cluster's node volumes carry cluster id {other}, not {id}: were the instances' {} tags changed? Their sets are not counted. Find out whose they are first (tags can be forged): only if the instances' tags were changed by mistake, set them back (or state `cluster.id: {other}`)",
                    crate::tags::CLUSTER_ID
                ),
            );
        }
    }
    // A node or device added since the newest set: the cluster as it is now is in no set.
    if !asbackup
        && !overdue
        && let Some(s) = home_newest.filter(|s| !s.covers_every_device)
    {
        problems.insert(
            0,
            format!(
                "{}: the newest complete set {} does not hold every node and device the policy has now (a new set is due)",
                policy.cluster.region, s.id
            ),
        );
    }
    // A set that was marked complete and whose manifest no longer holds (missing, altered, a
    // member gone or replaced) is complete no more: said, never silently dropped.
    let every_region = std::iter::once((policy.cluster.region.as_str(), &obs)).chain(
        policy
            .backup
            .copies
            .iter()
            .map(|c| c.region.as_str())
            .zip(&region_obs),
    );
    let mut not_proven = Vec::new();
    for (region, robs) in every_region {
        let region = asdr_specs::place_text(region);
        for s in robs.sets.iter().rev() {
            if s.unproven {
                not_proven.push(format!(
                    "{region}: set {} ({})",
                    s.id,
                    s.manifest_problem
                        .as_deref()
                        .unwrap_or("its mark names a manifest the store does not hold")
                ));
                continue;
            }
            let was_marked = s
                .snapshots
                .iter()
                .any(|x| x.tags.get(crate::tags::COMPLETE).map(String::as_str) == Some("true"));
            if let Some(why) = s.manifest_problem.as_deref().filter(|_| was_marked) {
                problems.push(format!(
                    "{region}: set {} was marked complete, but {why}: it is not counted as restorable",
                    s.id
                ));
            }
        }
    }
    // A set from later than now is never "fresh": a clock is off, and backups are refused
    // until it is right.
    if let Some(s) = home_newest.filter(|s| s.time > now + time::Duration::minutes(5)) {
        problems.insert(
            0,
            format!(
                "{}: the newest complete set {} is from later than now ({}): a clock is off, and backups are refused until it is right",
                policy.cluster.region,
                s.id,
                now.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        );
    }
    // An undeclared member of the cluster is in no backup set: not fine. A stopped leftover is
    // only drift.
    problems.extend(
        drift
            .iter()
            .filter(|d| d.active)
            .map(|d| format!("drift: {}", d.message)),
    );
    let drift: Vec<String> = drift.into_iter().map(|d| d.message).collect();
    Status {
        cluster: policy.cluster.name.clone(),
        cluster_id,
        cluster_id_source,
        other_cluster_resources,
        now,
        rpo_seconds,
        newest_complete,
        overdue,
        complete_sets: obs
            .sets
            .iter()
            .filter(|s| complete(s))
            .map(|s| s.id.clone())
            .collect(),
        unfinished_sets: obs
            .sets
            .iter()
            .filter(|s| !complete(s) && !s.unproven)
            .map(|s| s.id.clone())
            .collect(),
        problems,
        fast_restore_on: crate::fast_restore::on_by_set(policy, &obs),
        drift,
        not_proven,
        locks,
        recycle_bin: crate::recycle_bin::all(policy, world),
        restores,
        nodes,
        regions,
    }
}

/// A copy region's objective: the next set (`every`) and its copy. Best-effort copies are
/// given another interval; time-based ones what they promise, `complete_within` for each wave
/// of `max_in_flight` copies (a set of more snapshots copies in turns).
fn copy_rpo(policy: &Policy, copy: &asdr_specs::Copy) -> u64 {
    let every = policy.backup.every.seconds();
    let members = (policy.cluster.nodes.len() * policy.ebs_devices().len()).max(1) as u64;
    let waves = members.div_ceil(u64::from(copy.max_in_flight.max(1)));
    every
        + copy
            .complete_within_minutes
            .map_or(every, |m| u64::from(m) * 60 * waves)
}

/// Each declared recovery path without a usable set within its objective: the cluster's region
/// (a complete set younger than `every`), each copy region (observed, a complete copy younger than
/// twice `every`: one interval for the next set, one to copy it), each restore that reads a set
/// (one to restore from, where it would restore).
fn problems(
    policy: &Policy,
    overdue: bool,
    newest: &Option<NewestSet>,
    regions: &std::collections::BTreeMap<String, RegionStatus>,
    restores: &[RestoreStatus],
) -> Vec<String> {
    let mut out = Vec::new();
    if overdue {
        out.push(match newest {
            Some(n) => format!(
                "{}: the newest complete set {} is {} old, older than every: {}",
                policy.cluster.region,
                n.set,
                human_age(n.age_seconds),
                policy.backup.every
            ),
            None => format!("{}: no complete backup set", policy.cluster.region),
        });
    }
    for (region, r) in regions {
        let region = asdr_specs::place_text(region);
        if let Some(why) = &r.unobserved {
            out.push(format!("{region}: not observed ({why})"));
        } else {
            match (&r.newest_complete_set, r.age_seconds) {
                (Some(set), Some(age)) if age >= r.rpo_seconds => out.push(format!(
                    "{region}: the newest complete copy {set} is {} old, older than its objective {} (every: {}, then its copy)",
                    crate::rto::span(age),
                    crate::rto::span(r.rpo_seconds),
                    policy.backup.every
                )),
                (Some(_), _) => {}
                _ => out.push(format!("{region}: no complete copy of any set")),
            }
        }
    }
    for (r, decl) in restores.iter().zip(&policy.restores) {
        // An objective the restore cannot be held to is no recovery path within it.
        if let Some(why) = r.rto.shortfall() {
            out.push(format!("restore `{}`: {why}", r.name));
        }
        if decl.source.uses_backup() && r.set.is_none() {
            let place = decl.region().unwrap_or(policy.cluster.region.as_str());
            out.push(format!(
                "restore `{}`: no complete set to restore from ({}, in {place})",
                r.name, r.source
            ));
        } else if !r.missing.is_empty() && decl.source == RestoreSource::CurrentVolumes {
            out.push(format!(
                "restore `{}`: no volume of {} to reattach (deleted, several candidates, or not attachable there)",
                r.name,
                r.missing.join(", ")
            ));
        } else if !r.missing.is_empty() {
            out.push(format!(
                "restore `{}`: set {} holds no snapshot of {}",
                r.name,
                r.set.as_deref().unwrap_or_default(),
                r.missing.join(", ")
            ));
        }
    }
    out
}
