//! The seed's first method as desired state: full and incremental asbackup sets, chains kept
//! whole by retention, asrestore replaying a chain in order, every option shown in the plan.

use crate::{edit, params};
use asdr_planner::testkit::ExamplePolicy;

use asdr_planner::testkit::{WorldSpec, world_for};
use asdr_planner::world::{AsbackupArchive, World};
use asdr_planner::{Operation, Plan, StepKind, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const TO: &str = "s3://acme-backups/asbackup/prod-east";

/// prod-east backed up with asbackup (its refill restore blank: asbackup sets hold no volumes).
pub(crate) fn asbackup_example() -> ExamplePolicy {
    ExamplePolicy::prod_east()
        .edit("method: ebs-snapshot", "method: asbackup")
        // asrestore merges into the running cluster: accepted (R6).
        .edit("  - name: full-cluster\n    scope: cluster\n    source: latest-backup", "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    accept_zombie_records: true")
        .edit(
            "    source: latest-backup\n    accept_zombie_records: true   # required",
            "    source: empty\n    accept_zombie_records: true   # required",
        )
}

pub(crate) fn policy(extra: &str) -> Policy {
    asbackup_example()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 2}")
        .edit(
            "    args: [--compress, zstd]\n",
            &format!("    args: [--compress, zstd]\n{extra}"),
        )
        .policy()
}

/// A world with these asbackup runs: (set, incremental_of, namespaces).
pub(crate) fn world(policy: &Policy, runs: &[(&str, Option<&str>, &[&str])]) -> World {
    let mut w = world_for(policy, &WorldSpec::new(NOW));
    w.snapshots.clear();
    w.smd_archives.clear();
    for (set, of, namespaces) in runs {
        for ns in *namespaces {
            w.asbackup_archives.push(AsbackupArchive {
                set: set.to_string(),
                namespace: ns.to_string(),
                uri: format!("{TO}/{set}/{ns}"),
                incremental_of: of.map(str::to_string),
                cluster: Some("prod-east".into()),
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
    w
}

const BOTH: &[&str] = &["users", "events"];

fn ids(p: &Plan, kind: StepKind) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.kind() == kind)
        .map(|s| s.id.clone())
        .collect()
}

#[test]
fn an_incremental_set_follows_its_chain_with_the_previous_sets_start_as_modified_after() {
    let policy = policy("    incremental_every: 6h\n");
    let w = world(
        &policy,
        &[
            ("bs-20261120T120000Z", None, BOTH),
            ("bs-20261120T180000Z", Some("bs-20261120T120000Z"), BOTH),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let runs = ids(&p, StepKind::Asbackup);
    assert_eq!(
        runs,
        [
            "asbackup:users:bs-20261121T090000Z",
            "asbackup:events:bs-20261121T090000Z"
        ]
    );
    let s = p.step(&runs[0]).unwrap();
    assert_eq!(params(s)["kind"], "incremental");
    assert_eq!(params(s)["incremental_of"], "bs-20261120T120000Z");
    assert_eq!(params(s)["modified_after"], "2026-11-20_18:00:00");
    assert_eq!(
        params(s)["compress"],
        "zstd",
        "`--compress zstd` is shown as the key"
    );
    // A new run goes into the cluster's own directory; the runs before it are read where
    // they are.
    assert_eq!(
        params(s)["to"],
        format!("{TO}/prod-east/bs-20261121T090000Z/users")
    );
    assert!(verify(&policy, &w, &p).is_empty());
    // Once the full set is `every` old, a new chain starts.
    let w = world(&policy, &[("bs-20261120T080000Z", None, BOTH)]);
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let s = p.step("asbackup:users:bs-20261121T090000Z").unwrap();
    assert_eq!(params(s)["kind"], "full");
    assert!(params(s)["modified_after"].is_null());
}

#[test]
fn nothing_is_due_while_the_newest_set_is_young_enough() {
    let policy = policy("    incremental_every: 6h\n");
    let w = world(
        &policy,
        &[
            ("bs-20261120T120000Z", None, BOTH),
            ("bs-20261121T060000Z", Some("bs-20261120T120000Z"), BOTH),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(p.steps.is_empty(), "{:?}", ids(&p, StepKind::Asbackup));
}

#[test]
fn retention_deletes_whole_chains_never_the_newest_and_never_an_unfinished_set() {
    let policy = policy("");
    let w = world(
        &policy,
        &[
            ("bs-20261117T090000Z", None, BOTH),
            ("bs-20261117T150000Z", Some("bs-20261117T090000Z"), BOTH),
            // unfinished (no manifest for events): never deleted
            ("bs-20261118T090000Z", None, &["users"]),
            ("bs-20261119T090000Z", None, BOTH),
            ("bs-20261120T100000Z", None, BOTH),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    // The newest full set is 23 h old (every: 24h): nothing is due. The newest two chains are
    // kept (retain.count: 2), the oldest chain goes whole, its incremental with it: the
    // incremental first, the full set after it (never incrementals without their full set).
    assert_eq!(
        ids(&p, StepKind::DeleteBackup),
        [
            "delete_backup:bs-20261117T150000Z",
            "delete_backup:bs-20261117T090000Z"
        ]
    );
    assert!(
        p.step("delete_backup:bs-20261117T090000Z")
            .unwrap()
            .depends_on
            .contains(&"delete_backup:bs-20261117T150000Z".to_string())
    );
    assert!(
        p.warnings
            .iter()
            .any(|x| x.message.contains("unfinished asbackup sets"))
    );
    assert!(verify(&policy, &w, &p).is_empty());
    // The verifier refuses deleting the newest chain or an unfinished set.
    let mut bad = p.clone();
    edit(&mut bad.steps[0], |p| {
        p["set"] = "bs-20261120T100000Z".into()
    });
    assert!(verify(&policy, &w, &bad).iter().any(|v| v.rule == "R13"));
    let mut bad = p.clone();
    edit(&mut bad.steps[0], |p| {
        p["set"] = "bs-20261118T090000Z".into()
    });
    assert!(verify(&policy, &w, &bad).iter().any(|v| v.rule == "R13"));
}

#[test]
fn a_chain_whose_directory_also_holds_another_clusters_run_is_kept_and_said() {
    let policy = policy("");
    let mut w = world(
        &policy,
        &[
            ("bs-20261117T090000Z", None, BOTH),
            ("bs-20261119T090000Z", None, BOTH),
            ("bs-20261120T100000Z", None, BOTH),
        ],
    );
    // Before directories were per cluster, prod-west wrote the same set id into one directory.
    let mut theirs = w.asbackup_archives[0].clone();
    theirs.cluster = Some("prod-west".into());
    w.asbackup_archives.push(theirs.clone());
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(ids(&p, StepKind::DeleteBackup).is_empty(), "{:?}", p.steps);
    assert!(
        p.warnings
            .iter()
            .any(|x| x.message.contains(&theirs.uri) && x.message.contains("another cluster's run")),
        "{:?}",
        p.warnings
    );
    assert!(verify(&policy, &w, &p).is_empty());
}

#[test]
fn a_cluster_restore_replays_the_chain_in_order_and_states_its_write_semantics() {
    let policy = policy(
        "    incremental_every: 6h\n    encrypt: {algorithm: aes256, key_file: /etc/asdr/backup.key}\n    run_on: local\n",
    );
    let w = world(
        &policy,
        &[
            ("bs-20261120T120000Z", None, BOTH),
            ("bs-20261120T180000Z", Some("bs-20261120T120000Z"), BOTH),
            ("bs-20261121T000000Z", Some("bs-20261120T120000Z"), BOTH),
            // unfinished incremental: not part of the chain
            (
                "bs-20261121T060000Z",
                Some("bs-20261120T120000Z"),
                &["users"],
            ),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    let s = p.step("asrestore:users:bs-20261121T000000Z").unwrap();
    assert_eq!(
        params(s)["directories"],
        serde_json::json!([
            format!("{TO}/bs-20261120T120000Z/users"),
            format!("{TO}/bs-20261120T180000Z/users"),
            format!("{TO}/bs-20261121T000000Z/users"),
        ])
    );
    assert_eq!(params(s)["run_on"], "local");
    assert_eq!(params(s)["encrypt"]["algorithm"], "aes256");
    assert!(
        p.warnings
            .iter()
            .any(|x| x.rule == "R6" && x.message.contains("higher generation"))
    );
    // before: a time inside the chain stops there.
    let policy = policy_with_before();
    let p = plan(&policy, &w, NOW, &Operation::Restore("before".into())).unwrap();
    let s = p.step("asrestore:users:bs-20261120T180000Z").unwrap();
    assert_eq!(params(s)["directories"].as_array().unwrap().len(), 2);
}

fn policy_with_before() -> Policy {
    asbackup_example()
        .append("  - {name: before, scope: cluster, source: 'before:2026-11-20T20:00:00Z', accept_zombie_records: true}\n")
        .policy()
}

#[test]
fn incremental_every_must_be_shorter_than_every_and_asdrs_own_options_are_refused_in_args() {
    let err = ExamplePolicy::prod_east()
        .edit(
            "    args: [--compress, zstd]\n",
            "    incremental_every: 24h\n",
        )
        .parse()
        .unwrap_err();
    assert!(
        err.to_string().contains("is not shorter than every"),
        "{err}"
    );
    let err = ExamplePolicy::prod_east()
        .edit("args: [--compress, zstd]", "args: [--directory, /tmp/x]")
        .parse()
        .unwrap_err();
    assert!(
        err.to_string().contains("`--directory` is set by asdr"),
        "{err}"
    );
}

/// A same-named cluster writing to the same `asbackup.to` (its runs name `cluster-prod-east`
/// too, but another cluster id): its runs are neither counted, deleted nor replayed, and the
/// verifier refuses a plan that would replay or delete one.
#[test]
fn runs_naming_another_cluster_id_are_never_counted_deleted_or_replayed() {
    let policy = policy("");
    let mut w = world(
        &policy,
        &[
            ("bs-20261118T030000Z", None, BOTH),
            ("bs-20261119T030000Z", None, BOTH),
            ("bs-20261119T090000Z", None, BOTH),
            ("bs-20261121T030000Z", None, BOTH),
        ],
    );
    let twin = |set: &str| set == "bs-20261119T090000Z" || set == "bs-20261121T030000Z";
    for a in &mut w.asbackup_archives {
        a.cluster_id = Some(if twin(&a.set) {
            "7717000000000000".into()
        } else {
            asdr_planner::testkit::CLUSTER_ID.into()
        });
    }
    // The twin's 6 h old set would make a backup not due; ours is two days old.
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(!ids(&p, StepKind::Asbackup).is_empty(), "a backup is due");
    // retain 2: with the new set, our older one goes; none of the twin's.
    let deleted = ids(&p, StepKind::DeleteBackup);
    assert_eq!(deleted, ["delete_backup:bs-20261118T030000Z"]);
    let full = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    let dirs: Vec<String> = full
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            asdr_planner::params::Params::Asrestore(a) => Some(a.directories.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!dirs.is_empty());
    assert!(
        dirs.iter().all(|d| d.contains("bs-20261119T030000Z")),
        "{dirs:?}"
    );
    // A plan edited to replay the twin's run is refused.
    let mut bad = full.clone();
    for s in &mut bad.steps {
        if let asdr_planner::params::Params::Asrestore(a) = &mut s.params {
            a.directories = vec![format!("{TO}/bs-20261121T030000Z/{}", a.namespace)];
        }
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("names cluster id 7717000000000000")),
        "{v:?}"
    );
}

/// Every instance gone (terminated, or their tags lost): the id is what the nodes' terminated
/// instances and the cluster's runs record, never a new one that would make every run
/// "another cluster's".
#[test]
fn with_every_instance_gone_the_id_is_the_one_the_runs_record() {
    let policy = policy("");
    let mut w = world(
        &policy,
        &[
            ("bs-20261119T030000Z", None, BOTH),
            ("bs-20261120T030000Z", None, BOTH),
        ],
    );
    for a in &mut w.asbackup_archives {
        a.cluster_id = Some(asdr_planner::testkit::CLUSTER_ID.into());
    }
    for i in &mut w.instances {
        i.state = asdr_planner::world::InstanceState::Terminated;
    }
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert_eq!(
        s.cluster_id.as_deref(),
        Some(asdr_planner::testkit::CLUSTER_ID)
    );
    assert_eq!(s.complete_sets.len(), 2, "{s:?}");
    for i in &mut w.instances {
        i.tags.remove("asdr:cluster-id");
    }
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert_eq!(
        s.cluster_id.as_deref(),
        Some(asdr_planner::testkit::CLUSTER_ID)
    );
    assert_eq!(
        s.cluster_id_source,
        "recorded by the cluster's manifests, runs or earlier instances"
    );
    assert_eq!(s.complete_sets.len(), 2, "{s:?}");
}

/// An unfinished set (a run interrupted in some namespace) is finished by the next backup only
/// within the interval it was made for; an older one is left alone (asdr cannot tell what else
/// wrote there since) and a new set is made, so a run from days ago is never resumed and
/// counted as today's.
#[test]
fn an_unfinished_set_is_resumed_only_within_its_interval_never_however_old() {
    let policy = policy("");
    let sets_run = |p: &Plan| -> Vec<String> {
        p.steps
            .iter()
            .filter(|s| s.kind() == StepKind::Asbackup)
            .map(|s| params(s)["set"].as_str().unwrap().to_string())
            .collect()
    };
    // The newest complete set is 54 h old: a backup is due (every: 24h).
    // An interrupted run from 2 h ago: finished, under its own id.
    let w = world(
        &policy,
        &[
            ("bs-20261119T030000Z", None, BOTH),
            ("bs-20261121T070000Z", None, &["users"]),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let run = sets_run(&p);
    assert!(!run.is_empty());
    assert!(run.iter().all(|s| s == "bs-20261121T070000Z"), "{run:?}");
    // An interrupted run from 30 h ago, past its interval: a new set, the old one left.
    let w = world(
        &policy,
        &[
            ("bs-20261119T030000Z", None, BOTH),
            ("bs-20261120T030000Z", None, &["users"]),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let run = sets_run(&p);
    assert!(!run.is_empty());
    assert!(
        run.iter().all(|s| s.as_str() > "bs-20261121T000000Z"),
        "an unfinished set 30 h old was resumed: {run:?}"
    );
    assert!(ids(&p, StepKind::DeleteBackup).is_empty());
}

/// `run_on: node` with a `file://` store: the node writes the sets, asdr lists them where it
/// runs. Unless that is one filesystem, asdr sees no set: the plan says so, and what it then
/// does is loud and loses nothing — a full set is due, nothing is deleted, `status` is overdue.
#[test]
fn a_node_local_file_store_is_said_and_sets_it_cannot_see_are_never_taken_as_fine() {
    let policy = asbackup_example()
        .edit(
            &format!("to: {TO}"),
            "to: file:///var/backups/asdr\n    run_on: node",
        )
        .policy();
    // Sets written on the node; none visible here.
    let w = world(&policy, &[]);
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(
        p.warnings.iter().any(|x| x
            .message
            .contains("is written on the node (run_on: node) but read where asdr runs")),
        "{:?}",
        p.warnings
    );
    assert!(!ids(&p, StepKind::Asbackup).is_empty());
    assert!(ids(&p, StepKind::DeleteBackup).is_empty());
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert!(s.overdue && s.newest_complete.is_none());
    // On S3, or run where asdr runs, nothing to say.
    let p = plan(
        &crate::asbackup::policy(""),
        &world(&crate::asbackup::policy(""), &[]),
        NOW,
        &Operation::Backup,
    )
    .unwrap();
    assert!(
        !p.warnings
            .iter()
            .any(|x| x.message.contains("run_on: node"))
    );
}
