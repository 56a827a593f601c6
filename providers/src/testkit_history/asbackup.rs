//! Histories of a cluster that switches between EBS snapshots and asbackup: prod-east, its
//! asbackup store shared with another cluster (runs named for it) and holding runs written
//! before manifests named their cluster (this cluster's when older than its first named run,
//! another's when newer), incremental chains (`incremental_every`), a namespace whose name
//! prefixes another's (`users`, `users_v2`), runs whose files were lost, `retain` lowered and the
//! clock moving unevenly.

use std::collections::BTreeSet;

use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
use asdr_planner::world::{AsbackupArchive, World};
use asdr_planner::{Operation, PlanError, plan};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

use super::{Rng, Tally, apply, status_agrees};

const TO: &str = "s3://acme-backups/asbackup/prod-east";

#[derive(Debug, Clone, Default)]
struct Edits {
    count: u32,
    asbackup: bool,
    incremental: bool,
    users_v2: bool,
}

fn policy_of(e: &Edits) -> Policy {
    let mut p = ExamplePolicy::prod_east()
        .edit(
            "retain: {count: 7, max_age: 30d}",
            &format!("retain: {{count: {}}}", e.count),
        )
        // asrestore merges into the running cluster: accepted (R6); a single node's restore from
        // an asbackup set is none (it holds no volumes): that node refills instead.
        .edit(
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup",
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    accept_zombie_records: true",
        )
        .edit(
            "    source: latest-backup\n    accept_zombie_records: true   # required",
            "    source: empty\n    accept_zombie_records: true   # required",
        );
    if e.asbackup {
        p = p.edit("method: ebs-snapshot", "method: asbackup");
    }
    if e.incremental {
        p = p.edit(
            "    args: [--compress, zstd]\n",
            "    args: [--compress, zstd]\n    incremental_every: 6h\n",
        );
    }
    if e.users_v2 {
        p = p.edit(
            "    - name: events\n",
            "    - name: users_v2\n      replication_factor: 2\n      devices:\n        - device: /dev/sdi\n    - name: events\n",
        );
    }
    p.policy()
}

/// Runs of `cluster` (None: a manifest that names none) for set `set`, every namespace given.
fn runs(
    world: &mut World,
    set: &str,
    cluster: Option<&str>,
    namespaces: &[&str],
    of: Option<&str>,
) {
    for ns in namespaces {
        world.asbackup_archives.push(AsbackupArchive {
            set: set.into(),
            namespace: ns.to_string(),
            uri: format!("{TO}/{set}/{ns}"),
            incremental_of: of.map(str::to_string),
            cluster: cluster.map(str::to_string),
            cluster_id: None,
            after: None,
            missing_files: 0,
            finished: None,
            compress: None,
            encrypt: None,
            retention: None,
        });
    }
}

/// The runs that are not this cluster's, by the rule asdr documents, read here on its own: named
/// for another cluster; or naming none while another is named, or newer than this cluster's first
/// named run.
fn foreign_runs(world: &World) -> BTreeSet<String> {
    let named_other = world
        .asbackup_archives
        .iter()
        .any(|a| a.cluster.as_deref().is_some_and(|c| c != "prod-east"));
    let first_own = world
        .asbackup_archives
        .iter()
        .filter(|a| a.cluster.as_deref() == Some("prod-east"))
        .map(|a| a.set.clone())
        .min();
    world
        .asbackup_archives
        .iter()
        .filter(|a| match &a.cluster {
            Some(c) => c != "prod-east",
            None => named_other || first_own.as_ref().is_some_and(|f| a.set > *f),
        })
        .map(|a| a.uri.clone())
        .collect()
}

/// This cluster's whole chains: full sets whose every namespace of the policy has a run of
/// ours with every file.
fn whole_fulls(world: &World, policy: &Policy) -> BTreeSet<String> {
    let foreign = foreign_runs(world);
    let mut sets: BTreeSet<String> = BTreeSet::new();
    for a in &world.asbackup_archives {
        if a.incremental_of.is_none() && !foreign.contains(&a.uri) {
            sets.insert(a.set.clone());
        }
    }
    sets.retain(|set| {
        policy.cluster.namespaces.iter().all(|ns| {
            world.asbackup_archives.iter().any(|a| {
                &a.set == set
                    && a.namespace == ns.name
                    && a.missing_files == 0
                    && !foreign.contains(&a.uri)
            })
        })
    });
    sets
}

pub fn history(seed: u64) -> Result<Tally, String> {
    let mut r = Rng::new(seed);
    let mut e = Edits {
        count: 1 + r.below(4) as u32,
        asbackup: r.below(2) == 0,
        incremental: r.below(2) == 0,
        users_v2: false,
    };
    let mut now: OffsetDateTime = datetime!(2026-11-01 03:00:00 UTC);
    let mut policy = policy_of(&e);
    let mut spec = WorldSpec::new(now);
    spec.sets = 1 + r.below(3) as usize;
    let mut world = world_for(&policy, &spec);
    let mut tally = Tally {
        histories: 1,
        ..Tally::default()
    };
    let steps = 4 + r.below(7);
    for k in 0..steps {
        let at = format!("asbackup seed {seed} step {k}");
        match r.below(12) {
            0 => {
                e.asbackup = !e.asbackup;
                policy = policy_of(&e);
            }
            1 => {
                e.incremental = !e.incremental;
                policy = policy_of(&e);
            }
            2 => {
                e.count = (e.count - 1).max(1);
                policy = policy_of(&e);
            }
            3 if !e.users_v2 => {
                e.users_v2 = true;
                policy = policy_of(&e);
                super::ebs::grow(&mut world, &policy, now);
            }
            4 => {
                // Another cluster sharing the store, naming itself.
                let set = super::set_at(now - time::Duration::minutes(50 + k as i64));
                runs(
                    &mut world,
                    &set,
                    Some("prod-west"),
                    &["users", "events"],
                    None,
                );
            }
            5 => {
                // A run naming no cluster, written by a cluster still on older manifests.
                let set = super::set_at(now - time::Duration::minutes(70 + k as i64));
                runs(&mut world, &set, None, &["users", "events"], None);
            }
            6 => {
                // A run of ours lost a file.
                let own: Vec<usize> = (0..world.asbackup_archives.len())
                    .filter(|i| world.asbackup_archives[*i].cluster.as_deref() == Some("prod-east"))
                    .collect();
                if !own.is_empty() {
                    let i = own[r.below(own.len() as u64) as usize];
                    world.asbackup_archives[i].missing_files = 1;
                }
            }
            _ => {}
        }
        now += time::Duration::hours(1 + r.below(30) as i64);
        world.now = Some(now);
        tally.steps += 1;
        let foreign_before = foreign_runs(&world);
        let fulls_before = whole_fulls(&world, &policy);
        let snapshots_before = world.snapshots.len();
        let archives_before = world.asbackup_archives.len();
        let p = match plan(&policy, &world, now, &Operation::Backup) {
            Ok(p) => p,
            Err(PlanError::Refused(why)) => {
                super::refused(&mut tally, &at, &why);
                continue;
            }
            Err(e) => return Err(format!("{at}: {e}")),
        };
        apply(&mut world, &p, &policy.cluster.name).map_err(|e| format!("{at}: apply: {e}"))?;
        tally.applies += 1;
        let uris: BTreeSet<String> = world
            .asbackup_archives
            .iter()
            .map(|a| a.uri.clone())
            .collect();
        if let Some(gone) = foreign_before.iter().find(|u| !uris.contains(*u)) {
            return Err(format!("{at}: {gone}, another cluster's run, was deleted"));
        }
        // Switching methods deletes nothing of the other.
        if e.asbackup && world.snapshots.len() < snapshots_before {
            return Err(format!("{at}: the asbackup method deleted EBS snapshots"));
        }
        if !e.asbackup && world.asbackup_archives.len() < archives_before {
            return Err(format!("{at}: the EBS method deleted asbackup runs"));
        }
        if e.asbackup {
            let fulls_after = whole_fulls(&world, &policy);
            let kept = fulls_before.len().min(e.count as usize);
            if fulls_after.len() < kept {
                return Err(format!(
                    "{at}: {} whole chains after the apply, {} before, retain {}: {fulls_before:?} -> {fulls_after:?}",
                    fulls_after.len(),
                    fulls_before.len(),
                    e.count
                ));
            }
            // A restore replays only this cluster's runs.
            if let Ok(rp) = plan(
                &policy,
                &world,
                now,
                &Operation::Restore("full-cluster".into()),
            ) {
                let foreign = foreign_runs(&world);
                for s in &rp.steps {
                    if let asdr_planner::params::Params::Asrestore(a) = &s.params
                        && let Some(d) = a.directories.iter().find(|d| foreign.contains(*d))
                    {
                        return Err(format!("{at}: full-cluster replays {d}, not ours"));
                    }
                }
            }
        }
        status_agrees(&policy, &world, now, "full-cluster", &at)?;
    }
    Ok(tally)
}
