//! The node steps for real, through the executor: the in-test Aerospike cluster speaks the info
//! protocol on 127.0.1.11-13, service commands run through the local transport, SMD archives go to
//! a local store, and EC2 steps go to the world-file provider.

use crate::step_on as step;
use asdr_planner::params::Params;
use asdr_planner::testkit::ExamplePolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asdr_executor::journal::Journal;
use asdr_executor::{Options, Outcome, Report};
use asdr_planner::ports::{Progress, Provider, StepInput};
use asdr_planner::testkit::{WorldSpec, world_for};
use asdr_planner::{Operation, Plan, Step, StepKind};
use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces};
use asdr_providers::exec::local::Local;
use asdr_providers::node_provider::{Composite, NodeProvider};
use asdr_providers::store::LocalStore;
use asdr_providers::world_provider::WorldFileProvider;
use time::macros::datetime;

const NODES: [(&str, &str); 3] = [
    ("a1", "127.0.1.11"),
    ("b1", "127.0.1.12"),
    ("a2", "127.0.1.13"),
];

fn smd_vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/smd-ce-8.1")
}

struct Env {
    dir: tempfile::TempDir,
    cluster: TestCluster,
    policy: asdr_specs::Policy,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }
}

/// The example policy moved onto the test cluster: nodes at 127.0.1.x and its port, work
/// directories and service commands in a scratch folder, SMD to a local store.
async fn env(consistency: &str, enterprise: bool, extra: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control");
    let cluster = TestCluster::start(&NODES, example_namespaces(), enterprise, &control)
        .await
        .unwrap();
    let root = dir.path().display().to_string();
    // Edits may name the scratch folder.
    let extra: Vec<(&str, String)> = extra
        .iter()
        .map(|(from, to)| (*from, to.replace("@@ROOT@@", &root)))
        .collect();
    ExamplePolicy::prod_east()
        .on_test_nodes(
            &root,
            cluster.port(),
            ["127.0.1.11", "127.0.1.12", "127.0.1.13"],
        )
        .edit(
            "consistency: multi-volume",
            &format!("consistency: {consistency}"),
        )
        .edits(&extra)
        .write_to(dir.path());
    let policy = asdr_specs::load(&dir.path().join("asdr.yaml")).unwrap_or_else(|d| panic!("{d}"));
    // a1 holds the real SMD files a CE 8.1 server wrote.
    for n in ["a1", "b1", "a2"] {
        std::fs::create_dir_all(dir.path().join(format!("nodes/{n}/smd"))).unwrap();
    }
    for f in ["UDF.smd", "sindex.smd", "truncate.smd"] {
        std::fs::copy(
            smd_vectors().join(f),
            dir.path().join("nodes/a1/smd").join(f),
        )
        .unwrap();
    }
    Env {
        dir,
        cluster,
        policy,
    }
}

async fn run(env: &Env, plan: Plan, transport: Local) -> Report {
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(30);
    let world_path = env.path("world.yaml");
    if !world_path.exists() {
        let world = world_for(&env.policy, &spec);
        std::fs::write(
            &world_path,
            asdr_providers::world_file::to_string(&world, asdr_providers::world_file::Format::Yaml)
                .unwrap(),
        )
        .unwrap();
    }
    let cloud = WorldFileProvider::open(
        &world_path,
        None,
        &env.policy.cluster.name,
        Arc::new(|_| {}),
    )
    .unwrap();
    let mut nodes = NodeProvider::for_policy(&env.policy, transport.clone(), LocalStore);
    nodes.retry_after = Duration::from_millis(20);
    // `asbackup.run_on: local` runs the tools here, with the same PATH.
    nodes.local = transport;
    let provider = Arc::new(Composite { cloud, nodes });
    let (mut journal, _) = Journal::open(&env.path("journal"), &plan).unwrap();
    let opts = Options {
        poll_interval: Duration::from_millis(10),
        max_nodes_at_once: 1,
        ..Options::default()
    };
    asdr_executor::execute(
        Arc::new(plan),
        provider,
        &mut journal,
        BTreeMap::new(),
        &opts,
        &|_| {},
    )
    .await
    .unwrap()
}

fn backup_plan(env: &Env) -> Plan {
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(30);
    let world = world_for(&env.policy, &spec);
    asdr_planner::plan(&env.policy, &world, spec.now, &Operation::Backup).unwrap()
}

fn failures(r: &Report) -> Vec<String> {
    r.outcomes
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Done { .. } | Outcome::Adopted { .. }))
        .map(|(k, o)| format!("{k}: {o:?}"))
        .collect()
}

#[tokio::test]
async fn quiesce_snapshot_unquiesce_sends_the_verified_sequence_node_by_node() {
    let env = env("quiesce", true, &[]).await;
    let report = run(&env, backup_plan(&env), Local::default()).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    let log = env.cluster.log();
    let pos = |node: &str, cmd: &str| {
        log.iter()
            .position(|(n, c)| n == node && c == cmd)
            .unwrap_or_else(|| panic!("{node} never got {cmd}"))
    };
    for node in ["a1", "b1", "a2"] {
        let q = pos(node, "quiesce:");
        let undo = pos(node, "quiesce-undo:");
        // After quiesce:, asdr reads pending_quiesce, reclusters every node, then reads the effect.
        let after: Vec<&(String, String)> = log[q + 1..undo].iter().collect();
        let first_recluster = after
            .iter()
            .position(|(_, c)| c == "recluster:")
            .expect("a recluster after quiesce:");
        assert!(
            after[..first_recluster]
                .iter()
                .any(|(n, c)| n == node && c.starts_with("namespace/")),
            "{node}: pending_quiesce checked before recluster"
        );
        let reclustered: std::collections::BTreeSet<&str> = after
            .iter()
            .filter(|(_, c)| c == "recluster:")
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            reclustered.len(),
            3,
            "{node}: recluster: sent to every node"
        );
        assert!(
            after[first_recluster..]
                .iter()
                .any(|(n, c)| n == node && c.starts_with("namespace/")),
            "{node}: effective_is_quiesced checked after recluster"
        );
        assert!(
            log[undo + 1..].iter().any(|(_, c)| c == "recluster:"),
            "{node}: quiesce-undo: is followed by recluster:"
        );
        assert!(!env.cluster.quiesced(node), "{node} left quiesced");
    }
    // Rolling: b1 is quiesced only after a1 is back and the cluster is stable again.
    let a1_back = pos("a1", "quiesce-undo:");
    let b1_q = pos("b1", "quiesce:");
    assert!(a1_back < b1_q);
    assert!(
        log[a1_back..b1_q]
            .iter()
            .any(|(_, c)| c == "cluster-stable:size=3;ignore-migrations=false"),
        "wait_cluster_stable between nodes"
    );
    // The first commands of all: cluster-stable on every node (check_cluster_stable, R14).
    assert!(
        log[..3]
            .iter()
            .all(|(_, c)| c == "cluster-stable:size=3;ignore-migrations=false"),
        "{:?}",
        &log[..3]
    );
}

#[tokio::test]
async fn a_rolling_restart_stops_one_node_at_a_time_and_waits_for_migrations() {
    let env = env(
        "stop-node",
        true,
        &[("durable_deletes: false", "durable_deletes: true")],
    )
    .await;
    env.cluster.set_migration_polls(3);
    let report = run(&env, backup_plan(&env), Local::default()).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    let journal = asdr_executor::journal::read(
        &env.path("journal")
            .read_dir()
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .unwrap(),
    )
    .unwrap();
    let at = |event: &str, step: &str| {
        journal
            .iter()
            .position(|e| {
                format!("{:?}", e.event).to_lowercase() == event && e.step.as_deref() == Some(step)
            })
            .unwrap_or_else(|| panic!("{event} {step}"))
    };
    let order = ["a1", "b1", "a2"];
    for (i, n) in order.iter().enumerate() {
        assert!(at("done", &format!("stop_node:{n}")) < at("done", &format!("start_node:{n}")));
        assert!(
            at("done", &format!("start_node:{n}"))
                < at("done", &format!("wait_cluster_stable:{n}"))
        );
        if let Some(next) = order.get(i + 1) {
            assert!(
                at("done", &format!("wait_cluster_stable:{n}"))
                    < at("start", &format!("stop_node:{next}")),
                "{next} stops only after {n} is back and stable"
            );
        }
        assert!(env.cluster.is_up(n));
    }
    // Migrations after each start made cluster-stable answer "unstable" before the key.
    let polls = env
        .cluster
        .log()
        .iter()
        .filter(|(_, c)| c == "cluster-stable:size=3;ignore-migrations=false")
        .count();
    assert!(polls >= 3 * 3 + 3, "{polls} cluster-stable polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_an_smd_archive_is_copied_to_another_store_only_when_its_checksum_holds() {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let root = env.dir.path().display().to_string();
    let from = format!("file://{root}/store/prod-east/bs/a1.smd.tar");
    let to = format!("file://{root}/west/prod-east/bs/a1.smd.tar");
    let learned = BTreeMap::new();
    let archive = step(
        "copy_smd:bs",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": "bs", "from": format!("{root}/nodes/a1/smd"), "to": from}),
    );
    let input = StepInput {
        plan_id: "p",
        step: &archive,
        learned: &learned,
    };
    let Progress::Done(archived) = nodes.act(input).await.unwrap() else {
        panic!("archived at once")
    };
    let mut learned = BTreeMap::new();
    learned.insert("copy_smd:bs".to_string(), archived);
    let copy = |sha: Option<&str>| {
        let mut s = step(
            "copy_smd_archive:us-west-2:bs",
            StepKind::CopySmdArchive,
            "a1",
            serde_json::json!({"set": "bs", "from": from, "to": to, "sha256": sha}),
        );
        s.node = None;
        s.region = Some("us-west-2".into());
        s
    };
    // The plan expects another checksum (the archive changed since it was observed): refused,
    // nothing written.
    let wrong = copy(Some("00"));
    let input = StepInput {
        plan_id: "p",
        step: &wrong,
        learned: &learned,
    };
    let e = nodes.act(input).await.unwrap_err();
    assert_eq!(e.code, "ChecksumMismatch", "{}", e.message);
    assert!(!env.path("west/prod-east/bs/a1.smd.tar").exists());
    // The same, and adopted once there.
    let right = copy(None);
    let input = StepInput {
        plan_id: "p",
        step: &right,
        learned: &learned,
    };
    assert!(nodes.observe(input).await.unwrap().is_none());
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    assert_eq!(
        std::fs::read(env.path("west/prod-east/bs/a1.smd.tar")).unwrap(),
        std::fs::read(env.path("store/prod-east/bs/a1.smd.tar")).unwrap()
    );
    assert!(nodes.observe(input).await.unwrap().is_some(), "copied once");
    // Without the checksum the archiving step learned (nothing in the plan knows the archive),
    // what is at the copy's place is not adopted: it may have been planted there.
    let unknown = BTreeMap::new();
    let input_unknown = StepInput {
        plan_id: "p",
        step: &right,
        learned: &unknown,
    };
    assert!(nodes.observe(input_unknown).await.unwrap().is_none());
    // A source whose recorded checksum no longer matches its bytes (tampered in the store).
    std::fs::write(env.path("store/prod-east/bs/a1.smd.tar"), b"tampered").unwrap();
    std::fs::remove_file(env.path("west/prod-east/bs/a1.smd.tar")).unwrap();
    let e = nodes.act(input).await.unwrap_err();
    assert_eq!(e.code, "ChecksumMismatch", "{}", e.message);
    assert!(!env.path("west/prod-east/bs/a1.smd.tar").exists());
}

#[tokio::test]
async fn smd_round_trips_byte_for_byte_and_a_corrupted_archive_is_refused() {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let root = env.dir.path().display().to_string();
    let uri = format!("file://{root}/store/prod-east/bs-20261121T090000Z/a1.smd.tar");
    let learned = BTreeMap::new();
    let copy = step(
        "copy_smd:bs",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": "bs", "from": format!("{root}/nodes/a1/smd"), "to": uri}),
    );
    let input = StepInput {
        plan_id: "p",
        step: &copy,
        learned: &learned,
    };
    assert!(nodes.observe(input).await.unwrap().is_none());
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    assert!(
        nodes.observe(input).await.unwrap().is_none(),
        "never adopted: an archive at a new set's place proves nothing (archiving again is cheap)"
    );
    // b1's SMD changed after the backup: a truncate issued since, an index dropped since.
    std::fs::write(
        env.path("nodes/b1/smd/truncate.smd"),
        "truncated after the backup",
    )
    .unwrap();
    std::fs::write(env.path("nodes/b1/smd/issued-after-backup.smd"), "new").unwrap();
    let restore = step(
        "restore_smd:b1",
        StepKind::RestoreSmd,
        "b1",
        serde_json::json!({"set": "bs", "from": uri, "to": format!("{root}/nodes/b1/smd"), "sha256": null, "replace": true, "keep_previous": format!("{root}/nodes/b1/smd.asdr-prev")}),
    );
    let input = StepInput {
        plan_id: "p",
        step: &restore,
        learned: &learned,
    };
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    for f in ["UDF.smd", "sindex.smd", "truncate.smd"] {
        assert_eq!(
            std::fs::read(env.path(&format!("nodes/b1/smd/{f}"))).unwrap(),
            std::fs::read(smd_vectors().join(f)).unwrap(),
            "{f}"
        );
    }
    // Defect 4: the directory holds exactly the archive; what was there is kept aside.
    let mut names: Vec<String> = std::fs::read_dir(env.path("nodes/b1/smd"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["UDF.smd", "sindex.smd", "truncate.smd"]);
    assert_eq!(
        std::fs::read_to_string(env.path("nodes/b1/smd.asdr-prev/issued-after-backup.smd"))
            .unwrap(),
        "new"
    );
    // Running it again (a resumed apply) gives the same directory.
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    assert_eq!(
        std::fs::read_dir(env.path("nodes/b1/smd")).unwrap().count(),
        3
    );
    // Flip one byte of the archive: the restore is refused and nothing is written.
    let archive = PathBuf::from(uri.strip_prefix("file://").unwrap());
    let mut bytes = std::fs::read(&archive).unwrap();
    let i = bytes.len() / 3;
    bytes[i] ^= 0x20;
    std::fs::write(&archive, bytes).unwrap();
    let fresh = step(
        "restore_smd:a2",
        StepKind::RestoreSmd,
        "a2",
        serde_json::json!({"set": "bs", "from": uri, "to": format!("{root}/nodes/a2/smd")}),
    );
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &fresh,
            learned: &learned,
        })
        .await
        .unwrap_err();
    assert!(
        err.message.contains("is corrupted")
            && err.message.contains("nothing was written to node a2"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(env.path("nodes/a2/smd")).unwrap().count(),
        0
    );
    // A full-cluster restore checks the archive before it stops any node: the same corruption
    // is refused there, against the checksum beside it and against the one a manifest recorded.
    let good = std::fs::read_to_string(format!("{}.sha256", archive.display()))
        .unwrap()
        .trim()
        .to_string();
    for sha in [serde_json::Value::Null, serde_json::json!(good)] {
        let check = step(
            "check_smd_archive:bs",
            StepKind::CheckSmdArchive,
            "a1",
            serde_json::json!({"set": "bs", "uri": uri, "sha256": sha}),
        );
        let err = nodes
            .act(StepInput {
                plan_id: "p",
                step: &check,
                learned: &learned,
            })
            .await
            .unwrap_err();
        assert!(
            err.message.contains("is corrupted") && err.message.contains("no node was stopped"),
            "{err}"
        );
    }
}

/// The asbackup/asrestore stand-ins (testdata/asbackup-stand-in: the real tools are not in the
/// package registries) first on PATH, logging their arguments as JSON lines.
pub(crate) fn stand_in_tools(dir: &Path) -> (Local, PathBuf, PathBuf) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/asbackup-stand-in");
    let log = dir.join("tool-args.jsonl");
    let restored = dir.join("restored.jsonl");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (
        Local {
            timeout: Duration::from_secs(30),
            env: vec![
                ("PATH".into(), path),
                ("STANDIN_LOG".into(), log.display().to_string()),
                ("STANDIN_RESTORED".into(), restored.display().to_string()),
            ],
        },
        log,
        restored,
    )
}

fn tool_calls(log: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The example policy backing up with asbackup into `file://<scratch>/backups/prod-east`, whose
/// parent does not exist yet; the node restore from a backup becomes a refill (asbackup restores
/// whole clusters only).
async fn asbackup_env(extra: &[(&str, &str)]) -> Env {
    let dir_edit = "to: s3://acme-backups/asbackup/prod-east";
    let mut edits = vec![
        ("method: ebs-snapshot", "method: asbackup"),
        // asrestore merges into the running cluster: accepted (R6).
        (
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup",
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    accept_zombie_records: true",
        ),
        (
            "    source: latest-backup\n    accept_zombie_records: true   # required",
            "    source: empty\n    accept_zombie_records: true   # required",
        ),
        (dir_edit, "to: file://@@ROOT@@/backups/prod-east"),
    ];
    edits.extend_from_slice(extra);
    env("multi-volume", true, &edits).await
}

fn asbackup_to(env: &Env) -> String {
    format!("file://{}/backups/prod-east", env.dir.path().display())
}

#[tokio::test]
async fn asbackup_to_a_file_store_uses_plain_paths_creates_the_parent_and_leaves_a_manifest() {
    let env = asbackup_env(&[]).await;
    let (local, log, restored) = stand_in_tools(env.dir.path());
    let report = run(&env, backup_plan(&env), local.clone()).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    let root = env.dir.path().display().to_string();
    let set = "bs-20261121T090000Z";
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 2, "one asbackup per namespace: {calls:?}");
    for (call, ns) in calls.iter().zip(["users", "events"]) {
        // The cluster's own directory in the store (`<to>/<cluster>/<set>/<ns>`).
        let dir = format!("{root}/backups/prod-east/prod-east/{set}/{ns}");
        let at = call.iter().position(|a| a == "--directory").unwrap();
        assert_eq!(call[at + 1], dir, "a plain path, never file://");
        assert!(call.contains(&"--remove-files".to_string()));
        assert!(
            call.windows(2).any(|w| w == ["--compress", "zstd"]),
            "the policy's `--compress zstd` became the compress key: {call:?}"
        );
        // The manifest: the tool's summary and every file with its SHA-256.
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(manifest_in(
                &dir,
                "asdr-manifest.cluster-prod-east.id-c1d0000000000001.files-1.finished-",
            ))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["records"], 1000);
        assert_eq!(manifest["indexes"], 1);
        assert_eq!(manifest["namespace"], ns);
        let file = std::fs::read(format!("{dir}/{ns}_00000.asb")).unwrap();
        assert_eq!(
            manifest["files"][0]["sha256"],
            asdr_providers::store::sha256_hex(&file)
        );
    }
    // Observation lists the finished runs from the store; with them, nothing is due.
    let archives = asdr_providers::asbackup::archives(&LocalStore, &asbackup_to(&env))
        .await
        .unwrap();
    assert_eq!(archives.len(), 2, "{archives:?}");
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(30);
    let mut world = world_for(&env.policy, &spec);
    world.asbackup_archives = archives;
    let again = asdr_planner::plan(&env.policy, &world, spec.now, &Operation::Backup).unwrap();
    assert!(
        again.steps.iter().all(|s| s.kind() != StepKind::Asbackup),
        "{:?}",
        again.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    // The cluster restore finds the set and asrestore brings back records and indexes.
    let restore = asdr_planner::plan(
        &env.policy,
        &world,
        spec.now,
        &Operation::Restore("full-cluster".into()),
    )
    .unwrap();
    let report = run(&env, restore, local).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&restored)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert_eq!(l["records"], 1000);
        assert_eq!(l["indexes"], 1);
    }
}

#[tokio::test]
async fn a_killed_asbackup_is_cleared_on_resume_and_a_finished_directory_is_never_rewritten() {
    let env = asbackup_env(&[]).await;
    let (local, log, _) = stand_in_tools(env.dir.path());
    let to = asbackup_to(&env);
    let root = to.strip_prefix("file://").unwrap().to_string();
    let set = "bs-20261121T083000Z";
    // events finished (manifest), users was killed half-way (a partial file, no manifest).
    let events = format!("{root}/{set}/events");
    std::fs::create_dir_all(&events).unwrap();
    std::fs::write(
        format!("{events}/events_00000.asb"),
        "Version 3.1\nfinished\n",
    )
    .unwrap();
    std::fs::write(format!("{events}/asdr-manifest.json"), "{}").unwrap();
    let users = format!("{root}/{set}/users");
    std::fs::create_dir_all(&users).unwrap();
    std::fs::write(
        format!("{users}/users_00000.asb"),
        "Version 3.1\n+ n users\n",
    )
    .unwrap();
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(30);
    let mut world = world_for(&env.policy, &spec);
    world.asbackup_archives = asdr_providers::asbackup::archives(&LocalStore, &to)
        .await
        .unwrap();
    let plan = asdr_planner::plan(&env.policy, &world, spec.now, &Operation::Backup).unwrap();
    let runs: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::Asbackup)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        runs,
        [format!("asbackup:users:{set}")],
        "the unfinished set is finished"
    );
    let report = run(&env, plan, local).await;
    assert!(report.succeeded(), "{:?}", failures(&report));
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].contains(&"--remove-files".to_string()));
    assert!(
        std::fs::read_to_string(format!("{users}/users_00000.asb"))
            .unwrap()
            .lines()
            .count()
            > 1000
    );
    assert!(
        std::path::Path::new(&manifest_in(
            &users,
            "asdr-manifest.cluster-prod-east.id-c1d0000000000001.files-1.finished-"
        ))
        .exists()
    );
    assert_eq!(
        std::fs::read_to_string(format!("{events}/events_00000.asb")).unwrap(),
        "Version 3.1\nfinished\n",
        "a finished directory is never written again"
    );
}

#[tokio::test]
async fn a_failing_asrestore_stops_its_dependents_and_runs_the_cleanups() {
    let env = env("quiesce", true, &[]).await;
    let (local, log, _) = stand_in_tools(env.dir.path());
    let port = env.cluster.port();
    let missing = format!("{}/nothing-here/users", env.dir.path().display());
    let mk = |id: &str, kind, deps: &[&str], cleanup: bool, params: serde_json::Value| Step {
        region: None,
        id: id.into(),
        node: Some("a1".into()),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        cleanup,
        params: crate::params_of(kind, params),
    };
    let steps = vec![
        mk(
            "quiesce:a1",
            StepKind::Quiesce,
            &[],
            false,
            serde_json::json!({"address": format!("127.0.1.11:{port}")}),
        ),
        mk(
            "asrestore:users:bs",
            StepKind::Asrestore,
            &["quiesce:a1"],
            false,
            serde_json::json!({"namespace": "users", "directories": [format!("file://{missing}")], "set": "bs"}),
        ),
        mk(
            "asrestore:events:bs",
            StepKind::Asrestore,
            &["asrestore:users:bs"],
            false,
            serde_json::json!({"namespace": "events", "directories": ["file:///nowhere/events"], "set": "bs"}),
        ),
        mk(
            "unquiesce:a1",
            StepKind::Unquiesce,
            &["asrestore:events:bs"],
            true,
            serde_json::json!({"address": format!("127.0.1.11:{port}")}),
        ),
    ];
    let mut plan = backup_plan(&env);
    plan.steps = steps;
    let report = run(&env, plan, local).await;
    assert!(
        matches!(&report.outcomes["asrestore:users:bs"], Outcome::Failed { error, .. } if error.contains("exited 1")),
        "{:?}",
        report.outcomes
    );
    assert!(matches!(
        report.outcomes["asrestore:events:bs"],
        Outcome::Skipped { .. }
    ));
    assert!(matches!(
        report.outcomes["unquiesce:a1"],
        Outcome::Done { .. } | Outcome::Adopted { .. }
    ));
    assert!(!env.cluster.quiesced("a1"));
    let calls = tool_calls(&log);
    assert_eq!(calls.len(), 1);
    let at = calls[0].iter().position(|a| a == "--directory").unwrap();
    assert_eq!(calls[0][at + 1], missing, "a plain path");
}

#[tokio::test]
async fn r9_quiesce_on_community_edition_is_reported_as_the_rule_not_a_protocol_error() {
    let env = env("multi-volume", false, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let s = step("quiesce:a1", StepKind::Quiesce, "a1", serde_json::json!({}));
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &BTreeMap::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "R9");
    assert!(
        err.message.contains("[R9]")
            && err
                .message
                .contains("use `consistency: multi-volume` or `stop-node`"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_and_silent_nodes_give_errors_naming_the_node_and_address_without_hanging() {
    let env = env("multi-volume", true, &[]).await;
    // b1 is down: nothing listens at its address any more.
    drop(env.cluster);
    let mut nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    nodes.info_timeout = Duration::from_millis(300);
    let check = Step {
        region: None,
        id: "check_cluster_stable".into(),
        node: None,
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::CheckClusterStable,
            serde_json::json!({"size": 3, "nodes": ["a1"]}),
        ),
    };
    let started = Instant::now();
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &check,
            learned: &BTreeMap::new(),
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("node a1 (127.0.1.11:"), "{err}");
    // A node that accepts the connection but never answers.
    let silent = tokio::net::TcpListener::bind("127.0.1.14:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut client = asdr_providers::aerospike::info::InfoClient::new("z9", addr);
    client.read_timeout = Duration::from_millis(300);
    let err = client.get("node").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("node z9 ({addr}): no answer within")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn observing_a_live_node_gives_the_planner_its_devices_and_cluster_view() {
    let env = env("multi-volume", true, &[]).await;
    let addr = env.cluster.addrs["b1"];
    let o = asdr_providers::aerospike::observe::observe_node(
        &asdr_providers::aerospike::info::InfoClient::new("b1", addr),
    )
    .await;
    assert!(o.reachable);
    assert_eq!(o.edition.as_deref(), Some("Aerospike Enterprise Edition"));
    assert_eq!(o.cluster_size, Some(3));
    let users = o.namespaces.iter().find(|n| n.name == "users").unwrap();
    assert_eq!(users.replication_factor, Some(2));
    assert_eq!(users.devices[1].device, "/dev/nvme2n1");
    assert_eq!(users.devices[1].shadow.as_deref(), Some("/dev/nvme4n1"));
    // The planner accepts what a node with the policy's devices reports…
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(30);
    let mut world = world_for(&env.policy, &spec);
    for n in &mut world.nodes {
        n.namespaces = o.namespaces.clone();
    }
    assert!(asdr_planner::plan(&env.policy, &world, spec.now, &Operation::Backup).is_ok());
    // …and refuses a node whose devices differ.
    world.nodes[0].namespaces[0].devices.pop();
    let err = asdr_planner::plan(&env.policy, &world, spec.now, &Operation::Backup).unwrap_err();
    assert!(err.to_string().contains("reports devices"), "{err}");
    let down = asdr_providers::aerospike::observe::observe_node(
        &asdr_providers::aerospike::info::InfoClient::new("z9", "127.0.1.99:9".parse().unwrap()),
    )
    .await;
    assert!(!down.reachable);
}

#[tokio::test]
async fn asbackup_run_on_local_runs_the_tool_where_asdr_runs_not_on_the_node() {
    let env = asbackup_env(&[(
        "    args: [--compress, zstd]\n",
        "    args: [--compress, zstd]\n    run_on: local\n",
    )])
    .await;
    let (local, log, _) = stand_in_tools(env.dir.path());
    // The node transport has no asbackup on its PATH: only the local one can run it.
    let node_side = Local {
        timeout: Duration::from_secs(30),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
    };
    let mut nodes = NodeProvider::for_policy(&env.policy, node_side, LocalStore);
    nodes.local = local;
    let plan = backup_plan(&env);
    let step = plan
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::Asbackup)
        .unwrap();
    let Params::Asbackup(p) = &step.params else {
        panic!("an asbackup step")
    };
    assert_eq!(p.tool.run_on, asdr_specs::RunOn::Local);
    let learned = BTreeMap::new();
    let input = StepInput {
        plan_id: &plan.plan_id,
        step,
        learned: &learned,
    };
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    assert_eq!(tool_calls(&log).len(), 1);
    // The same step on the node fails there: asbackup is not installed on it.
    let mut on_node = step.clone();
    if let Params::Asbackup(p) = &mut on_node.params {
        p.tool.run_on = asdr_specs::RunOn::Node;
        p.to = format!("{}/bs-x/users", asbackup_to(&env));
    }
    let err = nodes
        .act(StepInput {
            plan_id: &plan.plan_id,
            step: &on_node,
            learned: &learned,
        })
        .await
        .unwrap_err();
    assert!(err.message.contains("asbackup exited"), "{err}");
}

#[tokio::test]
async fn an_incremental_run_takes_modified_after_and_its_manifest_names_its_chain() {
    let env = asbackup_env(&[]).await;
    let (local, log, _) = stand_in_tools(env.dir.path());
    let mut nodes = NodeProvider::for_policy(&env.policy, local, LocalStore);
    nodes.retry_after = Duration::from_millis(20);
    let to = asbackup_to(&env);
    let set = "bs-20261121T090000Z";
    let step = Step {
        region: None,
        id: format!("asbackup:users:{set}"),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::Asbackup,
            serde_json::json!({"namespace": "users", "set": set, "to": format!("{to}/{set}/users"),
            "kind": "incremental", "incremental_of": "bs-20261120T120000Z",
            "modified_after": "2026-11-21_03:00:00", "compress": null, "encrypt": null,
            "s3_region": "us-east-1", "args": [], "run_on": "node"}),
        ),
    };
    let learned = BTreeMap::new();
    let input = StepInput {
        plan_id: "p",
        step: &step,
        learned: &learned,
    };
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    let call = &tool_calls(&log)[0];
    assert!(
        call.windows(2)
            .any(|w| w == ["--modified-after", "2026-11-21_03:00:00"]),
        "{call:?}"
    );
    let listed = asdr_providers::asbackup::archives(&LocalStore, &to)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].incremental_of.as_deref(),
        Some("bs-20261120T120000Z")
    );
    assert!(
        nodes.observe(input).await.unwrap().is_some(),
        "found again by its manifest"
    );
    // The chain is restored in order, encrypted files with their key.
    let key = env.dir.path().join("backup.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    let restore = Step {
        id: format!("asrestore:users:{set}"),
        params: crate::params_of(
            StepKind::Asrestore,
            serde_json::json!({"namespace": "users", "set": set,
            "directories": [format!("{to}/{set}/users"), format!("{to}/{set}/users")],
            "compress": null, "encrypt": {"algorithm": "aes256", "key_file": key.display().to_string()},
            "s3_region": "us-east-1", "args": [], "run_on": "node"}),
        ),
        ..step.clone()
    };
    let input = StepInput {
        plan_id: "p",
        step: &restore,
        learned: &learned,
    };
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    let call = tool_calls(&log).pop().unwrap();
    let dir = to.strip_prefix("file://").unwrap();
    assert!(
        call.windows(2).any(|w| w[0] == "--directory-list"
            && w[1] == format!("{dir}/{set}/users,{dir}/{set}/users")),
        "{call:?}"
    );
    assert!(
        call.windows(2)
            .any(|w| w == ["--encrypt".to_string(), "aes256".to_string()]),
        "{call:?}"
    );
}

/// R17 on the Enterprise emulator (the in-test nodes restart warm unless the start leaves the
/// cold-start marker, as `asd-coldstart` would): a cold start is never adopted because the node
/// answers — a node something else started after its swap may be serving its old index — and the
/// start asdr runs itself comes back cold.
#[tokio::test]
async fn r17_a_cold_start_is_never_adopted_from_a_node_that_already_answers() {
    let env = env("multi-volume", true, &[]).await;
    let root = env.dir.path().display().to_string();
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let cold = format!("touch {root}/control/a1.cold && rm -f {root}/control/a1.down");
    let start = step(
        "start_node:a1",
        StepKind::StartNode,
        "a1",
        serde_json::json!({
            "address": env.cluster.addrs["a1"].to_string(),
            "command": cold,
            "start": "cold",
        }),
    );
    let learned = BTreeMap::new();
    let input = || StepInput {
        plan_id: "p",
        step: &start,
        learned: &learned,
    };
    // a1 runs (started by someone else after the swap): not adopted, refused with the way out.
    assert!(nodes.observe(input()).await.unwrap().is_none());
    let err = crate::act(&nodes, &start).await.unwrap_err();
    assert!(
        err.to_string().contains("[R17] a1 already answers"),
        "{err}"
    );
    // Stopped, as the refusal says: the step starts it cold, and then it is done.
    std::fs::write(env.path("control/a1.down"), "").unwrap();
    assert!(!env.cluster.is_up("a1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match crate::act(&nodes, &start).await.unwrap() {
            Progress::Done(_) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("a1 did not start: {other:?}"),
        }
    }
    assert_eq!(env.cluster.starts("a1"), ["cold"]);
}

/// rp08: `--modified-after` is a local time of the process running asbackup. The incremental's
/// cut-off asdr computes in UTC must mean that instant on a runner whose zone is not UTC
/// (`run_on: local` with `TZ=America/New_York`): five hours of changes would otherwise be in no
/// set. The stand-in reads the option as the real tool does, in its own zone.
#[tokio::test]
async fn rp08_an_incremental_cut_off_means_the_same_instant_on_a_runner_in_another_zone() {
    let env = asbackup_env(&[]).await;
    let (mut local, _, _) = stand_in_tools(env.dir.path());
    let cutoffs = env.dir.path().join("cutoffs.txt");
    local.env.push(("TZ".into(), "America/New_York".into()));
    local
        .env
        .push(("STANDIN_CUTOFF_LOG".into(), cutoffs.display().to_string()));
    let mut nodes = NodeProvider::for_policy(&env.policy, local, LocalStore);
    nodes.retry_after = Duration::from_millis(20);
    let to = asbackup_to(&env);
    let set = "bs-20261121T090000Z";
    let step = Step {
        region: None,
        id: format!("asbackup:users:{set}"),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::Asbackup,
            serde_json::json!({"namespace": "users", "set": set, "to": format!("{to}/{set}/users"),
            "kind": "incremental", "incremental_of": "bs-20261121T030000Z",
            "modified_after": "2026-11-21_03:00:00", "compress": null, "encrypt": null,
            "s3_region": "us-east-1", "args": [], "run_on": "node"}),
        ),
    };
    let learned = BTreeMap::new();
    let input = StepInput {
        plan_id: "p",
        step: &step,
        learned: &learned,
    };
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    assert_eq!(
        std::fs::read_to_string(&cutoffs).unwrap().trim(),
        "2026-11-21T03:00:00Z",
        "the tool's cut-off is the instant asdr meant"
    );
}

/// The manifest in `dir` whose name starts with `prefix` (its name ends with when the run
/// finished).
fn manifest_in(dir: &str, prefix: &str) -> String {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let name = names
        .iter()
        .find(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .unwrap_or_else(|| panic!("no {prefix}… in {dir}: {names:?}"));
    format!("{dir}/{name}")
}

/// "Stopped" is seen, not inferred: a node whose info port accepts connections but never
/// replies (a hung `asd`, or one still shutting down) does not answer, yet its process is
/// there. Neither its `stop_node` nor a full-cluster restore's `wait_nodes_stopped` completes
/// while anything listens at its address, so no volume is detached from under it; once nothing
/// listens there, both do. The same holds for the in-test cluster, whose stopped nodes close
/// their sockets as a stopped `asd` does.
#[tokio::test]
async fn r7_a_node_that_does_not_answer_but_still_listens_is_never_taken_as_stopped() {
    let hung = tokio::net::TcpListener::bind("127.0.1.21:0").await.unwrap();
    let addr = hung.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let nodes = BTreeMap::from([(
        "a1".to_string(),
        asdr_providers::node_provider::NodeAddress {
            info: addr,
            host: "127.0.1.21".into(),
        },
    )]);
    let mut provider = NodeProvider::with_nodes(nodes, Local::default(), LocalStore);
    provider.info_timeout = Duration::from_millis(200);
    // The stop command "succeeds" (systemctl returned), but the process is still there.
    let stop = step(
        "stop_node:a1",
        StepKind::StopNode,
        "a1",
        serde_json::json!({"address": addr.to_string(), "command": "true"}),
    );
    let wait = step(
        "wait_nodes_stopped",
        StepKind::WaitNodesStopped,
        "a1",
        serde_json::json!({"nodes": ["a1"]}),
    );
    let nothing = BTreeMap::new();
    let input = |s| StepInput {
        plan_id: "p",
        step: s,
        learned: &nothing,
    };
    assert!(provider.observe(input(&stop)).await.unwrap().is_none());
    for s in [&stop, &wait] {
        match crate::act(&provider, s).await.unwrap() {
            Progress::Pending { note, .. } => assert!(
                note.contains("still listens at") && note.contains("not touched"),
                "{}: {note}",
                s.id
            ),
            other => panic!("{} taken as stopped: {other:?}", s.id),
        }
    }
    // The process is gone: nothing listens there any more.
    held.abort();
    let _ = held.await;
    // A stop is never adopted from silence alone (an `asd` still starting neither answers nor
    // listens): the stop command runs, then the node is seen stopped.
    assert!(provider.observe(input(&stop)).await.unwrap().is_none());
    for s in [&stop, &wait] {
        assert!(
            matches!(crate::act(&provider, s).await.unwrap(), Progress::Done(_)),
            "{}",
            s.id
        );
    }

    // The in-test cluster: a stopped node's socket is closed, and it is seen stopped.
    let env = env("multi-volume", false, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let wait_a1 = step(
        "wait_nodes_stopped",
        StepKind::WaitNodesStopped,
        "a1",
        serde_json::json!({"nodes": ["a1"]}),
    );
    assert!(matches!(
        crate::act(&nodes, &wait_a1).await.unwrap(),
        Progress::Pending { .. }
    ));
    std::fs::write(env.path("control/a1.down"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match crate::act(&nodes, &wait_a1).await.unwrap() {
            Progress::Done(_) => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("a1 never seen stopped: {other:?}"),
        }
    }
}

/// R1, against the info-protocol emulator answering as Enterprise documents it (quiesce is
/// Enterprise-only): after `quiesce:` and `recluster:` a node reports itself quiesced but still
/// takes client writes for a while (clients on the old partition map). `wait_quiesce_drained`
/// ends only once its client write counters stood still for the quiet window; a node whose
/// clients never leave is given up at the timeout, never snapshotted.
#[tokio::test]
async fn r1_enterprise_emulator_a_quiesced_node_counts_as_drained_only_once_its_writes_stand_still()
{
    let env = env("quiesce", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let until_done = |s: Step| {
        let nodes = &nodes;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut pending = 0;
            loop {
                match crate::act(nodes, &s).await {
                    Ok(Progress::Done(_)) => return Ok(pending),
                    Ok(_) if Instant::now() < deadline => {
                        pending += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Ok(other) => panic!("{}: {other:?}", s.id),
                    Err(e) => return Err(e),
                }
            }
        }
    };
    let quiesce = |n: &str| {
        step(
            &format!("quiesce:{n}"),
            StepKind::Quiesce,
            n,
            serde_json::json!({"address": env.cluster.addrs[n].to_string(), "rolling": true}),
        )
    };
    let drain = |n: &str, timeout_s: u64| {
        step(
            &format!("wait_quiesce_drained:{n}"),
            StepKind::WaitQuiesceDrained,
            n,
            serde_json::json!({"address": env.cluster.addrs[n].to_string(), "quiet_ms": 300, "timeout_s": timeout_s}),
        )
    };
    until_done(quiesce("a1")).await.unwrap();
    let at_quiesce = env.cluster.writes("a1");
    let polls = until_done(drain("a1", 30)).await.unwrap();
    let at_drained = env.cluster.writes("a1");
    // It waited: writes still arrived after the quiesce was effective, and the step polled on.
    assert!(at_drained > at_quiesce, "{at_quiesce} -> {at_drained}");
    assert!(polls >= 2, "{polls}");
    // Drained means drained: polling the node again shows no more writes.
    crate::act(&nodes, &drain("a1", 30)).await.unwrap();
    assert_eq!(env.cluster.writes("a1"), at_drained);

    // b1's clients never leave it: the wait gives up at its timeout with the rule, so its
    // snapshots are never taken (the cleanup's unquiesce then resumes it).
    env.cluster.keep_writing("b1");
    until_done(quiesce("b1")).await.unwrap();
    let started = Instant::now();
    let err = until_done(drain("b1", 1)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("[R1] b1 still takes client writes"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// R19, against the info-protocol emulator answering as Enterprise strong consistency documents
/// it (`roster:`, `roster-set:`, `revive:`, per-namespace dead and unavailable partitions): the
/// roster is set only once the whole cluster is observed, and to exactly the nodes observed; the
/// wait for partitions holds while they are unavailable; dead partitions fail it naming the
/// namespace unless the restore declared them accepted, and are then revived on every node.
#[tokio::test]
async fn r19_enterprise_emulator_the_roster_is_set_to_the_whole_cluster_and_dead_partitions_revived_only_when_declared()
 {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let ids: Vec<String> = ["a1", "b1", "a2"]
        .iter()
        .map(|n| env.cluster.node_id(n))
        .collect();
    // a1 and b1 came back as new nodes (new MACs): their old ids are what the roster holds.
    let old = vec!["0LD1".to_string(), "0LD2".to_string(), ids[2].clone()];
    env.cluster.set_strong_consistency("users", &old);
    let wait = |revive: bool| {
        step(
            "wait_partitions_available",
            StepKind::WaitPartitionsAvailable,
            "a1",
            serde_json::json!({"namespaces": ["users"], "revive": revive}),
        )
    };
    let roster = |size: usize| {
        step(
            "set_roster",
            StepKind::SetRoster,
            "a1",
            serde_json::json!({"namespaces": ["users"], "size": size}),
        )
    };
    let pending = |p: Progress| !matches!(p, Progress::Done(_));
    // Two of replication factor 2 roster members are missing: the partitions are unavailable.
    let p = crate::act(&nodes, &wait(false)).await.unwrap();
    assert!(pending(p), "unavailable partitions are waited for");
    // A roster of part of the cluster is never set: waiting for a fourth node changes nothing.
    assert!(pending(crate::act(&nodes, &roster(4)).await.unwrap()));
    assert_eq!(env.cluster.roster("users"), old);
    // With all three observed, the roster becomes exactly them, and the partitions come back.
    let mut done = false;
    for _ in 0..5 {
        if !pending(crate::act(&nodes, &roster(3)).await.unwrap()) {
            done = true;
            break;
        }
    }
    assert!(done, "set_roster finishes once roster = observed");
    let mut want = ids.clone();
    want.sort();
    assert_eq!(env.cluster.roster("users"), want);
    assert!(!pending(crate::act(&nodes, &wait(false)).await.unwrap()));

    // Dead partitions: never revived without the restore's word.
    env.cluster.set_dead_partitions("users", 9);
    let err = crate::act(&nodes, &wait(false))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[R19] namespace users has 9 dead partitions"),
        "{err}"
    );
    let log_before = env.cluster.log().len();
    assert!(pending(crate::act(&nodes, &wait(true)).await.unwrap()));
    let revives = env.cluster.log()[log_before..]
        .iter()
        .filter(|(_, c)| c == "revive:namespace=users")
        .count();
    assert_eq!(revives, 3, "revive on every node");
    assert!(!pending(crate::act(&nodes, &wait(true)).await.unwrap()));
}

/// Review finding (R18): a start is never taken as done when the node answers with another id
/// than the config asdr wrote — an image that starts Aerospike at boot runs its own config.
#[tokio::test]
async fn r18_a_node_answering_with_another_id_than_its_written_config_is_never_taken_as_started() {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let start = |id: &str| {
        step(
            "start_node:a1",
            StepKind::StartNode,
            "a1",
            serde_json::json!({
                "address": env.cluster.addrs["a1"].to_string(),
                "command": "true",
                "start": "new-instance",
                "node_id": id,
            }),
        )
    };
    let input = |s: Step| {
        let nodes = &nodes;
        async move {
            let learned = BTreeMap::new();
            nodes
                .observe(StepInput {
                    plan_id: "p",
                    step: &s,
                    learned: &learned,
                })
                .await
        }
    };
    let err = input(start("FEED")).await.unwrap_err().to_string();
    assert!(err.contains("[R18] a1 answers as node"), "{err}");
    let err = crate::act(&nodes, &start("FEED"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the aerospike.conf asdr wrote sets node-id FEED"),
        "{err}"
    );
    let own = env.cluster.node_id("a1");
    assert!(
        input(start(&own)).await.unwrap().is_some(),
        "its own id: adopted"
    );
}

/// An archive planted in the store with a matching checksum beside it: as root, tar would unpack
/// a link to /etc/passwd, a setuid shell or a device into the SMD directory. It is listed first
/// and refused for any member that is not a plain file or directory; a plain setuid file is
/// unpacked without its setuid bit or its world-write bit.
#[tokio::test]
async fn a_planted_smd_archive_with_links_or_setuid_files_is_never_unpacked_as_it_says() {
    let env = env("multi-volume", false, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let root = env.dir.path().display().to_string();
    let learned = BTreeMap::new();
    let plant = |name: &str, build: &dyn Fn(&std::path::Path)| -> String {
        let src = env.dir.path().join(format!("planted-{name}"));
        std::fs::create_dir_all(&src).unwrap();
        build(&src);
        let archive = env
            .dir
            .path()
            .join(format!("store/prod-east/bs-planted-{name}/a2.smd.tar"));
        std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
        let ok = std::process::Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap();
        assert!(ok.success());
        let sha = asdr_providers::store::sha256_hex(&std::fs::read(&archive).unwrap());
        std::fs::write(format!("{}.sha256", archive.display()), format!("{sha}\n")).unwrap();
        format!("file://{}", archive.display())
    };
    let restore = |uri: String| {
        step(
            "restore_smd:a2",
            StepKind::RestoreSmd,
            "a2",
            serde_json::json!({"set": "bs", "from": uri, "to": format!("{root}/nodes/a2/smd"), "replace": true, "keep_previous": format!("{root}/nodes/a2/smd.asdr-prev")}),
        )
    };
    std::fs::write(env.path("nodes/a2/smd/UDF.smd"), "live").unwrap();
    let link = plant("link", &|d| {
        std::fs::write(d.join("UDF.smd"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("sindex.smd")).unwrap();
    });
    let s = restore(link);
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "UnsafeArchive", "{err}");
    assert_eq!(
        std::fs::read_to_string(env.path("nodes/a2/smd/UDF.smd")).unwrap(),
        "live",
        "nothing unpacked, the live directory untouched"
    );
    assert!(!env.path("nodes/a2/smd.asdr-new").exists());
    let setuid = plant("setuid", &|d| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(d.join("UDF.smd"), "udf").unwrap();
        std::fs::set_permissions(d.join("UDF.smd"), std::fs::Permissions::from_mode(0o4777))
            .unwrap();
    });
    let s = restore(setuid);
    assert!(matches!(
        nodes
            .act(StepInput {
                plan_id: "p",
                step: &s,
                learned: &learned,
            })
            .await
            .unwrap(),
        Progress::Done(_)
    ));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(env.path("nodes/a2/smd/UDF.smd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o6002,
        0,
        "no setuid, setgid or world-write: {mode:o}"
    );
}

/// An archive planted in the store at the next set's place, with a matching checksum beside it,
/// is not taken as the node's: the archiving step copies the node's own SMD over it; and an
/// archive replaced in the store between its archiving and the manifest's writing is refused by
/// the manifest (it takes the checksum the archiving step learned, not the one beside it).
#[tokio::test]
async fn a_planted_archive_at_a_new_sets_place_is_never_adopted_nor_recorded() {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let root = env.dir.path().display().to_string();
    let set = "bs-20261121T090000Z";
    let uri = format!("file://{root}/store/prod-east/{set}/a1.smd.tar");
    let planted = env.path(&format!("store/prod-east/{set}/a1.smd.tar"));
    std::fs::create_dir_all(planted.parent().unwrap()).unwrap();
    std::fs::write(&planted, b"planted").unwrap();
    std::fs::write(
        format!("{}.sha256", planted.display()),
        format!("{}\n", asdr_providers::store::sha256_hex(b"planted")),
    )
    .unwrap();
    let none = BTreeMap::new();
    let copy = step(
        "copy_smd:a1",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": set, "from": format!("{root}/nodes/a1/smd"), "to": uri}),
    );
    let input = StepInput {
        plan_id: "p",
        step: &copy,
        learned: &none,
    };
    assert!(nodes.observe(input).await.unwrap().is_none(), "not adopted");
    let Progress::Done(archived) = nodes.act(input).await.unwrap() else {
        panic!("archived at once")
    };
    assert_ne!(
        std::fs::read(&planted).unwrap(),
        b"planted",
        "the node's own SMD"
    );
    // Replaced in the store (archive and checksum both) before the manifest is written.
    std::fs::write(&planted, b"planted").unwrap();
    std::fs::write(
        format!("{}.sha256", planted.display()),
        format!("{}\n", asdr_providers::store::sha256_hex(b"planted")),
    )
    .unwrap();
    let mut learned = BTreeMap::new();
    learned.insert("copy_smd:a1".to_string(), archived);
    let mut manifest = step(
        "write_manifest",
        StepKind::WriteManifest,
        "a1",
        serde_json::json!({
            "uri": format!("file://{root}/store/prod-east/manifests/{set}.json"),
            "set": set, "cluster": "prod-east", "region": "us-east-1",
            "members": [], "namespaces": ["users"],
            "smd": [{"node": "a1", "uri": uri}],
            "policy_digest": "d",
        }),
    );
    manifest.node = None;
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &manifest,
            learned: &learned,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "ChecksumMismatch", "{err}");
    assert!(err.message.contains("not the one this plan wrote"), "{err}");
    assert!(
        !env.path(&format!("store/prod-east/manifests/{set}.json"))
            .exists()
    );
}

/// Security review: a link in a node's SMD directory made a backup whose archive every restore
/// refuses, found only after the cluster was stopped. The backup refuses to record it, and a
/// restore's archive check (before anything is stopped) refuses such an archive.
#[tokio::test]
async fn an_smd_archive_a_restore_would_refuse_is_never_made_nor_restored_from() {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let root = env.dir.path().display().to_string();
    let set = "bs-20261121T090000Z";
    let uri = format!("file://{root}/store/prod-east/{set}/a1.smd.tar");
    std::os::unix::fs::symlink("UDF.smd", env.path("nodes/a1/smd/UDF.smd.link")).unwrap();
    let none = BTreeMap::new();
    let copy = step(
        "copy_smd:a1",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": set, "from": format!("{root}/nodes/a1/smd"), "to": uri}),
    );
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &copy,
            learned: &none,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "UnsafeArchive", "{err}");
    assert!(err.message.contains("a symbolic link"), "{err}");
    assert!(
        !env.path(&format!("store/prod-east/{set}/a1.smd.tar"))
            .exists()
    );
    // An archive with the link, in the store with a matching checksum: refused before a stop.
    let src = env.path("nodes/a1/smd");
    let archive = env.path(&format!("store/prod-east/{set}/a1.smd.tar"));
    std::fs::create_dir_all(archive.parent().unwrap()).unwrap();
    assert!(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&src)
            .arg("-cf")
            .arg(&archive)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let sha = asdr_providers::store::sha256_hex(&std::fs::read(&archive).unwrap());
    let mut check = step(
        "check_smd_archive:a1",
        StepKind::CheckSmdArchive,
        "a1",
        serde_json::json!({"set": set, "uri": uri, "sha256": sha}),
    );
    check.node = None;
    let err = nodes
        .act(StepInput {
            plan_id: "p",
            step: &check,
            learned: &none,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "UnsafeArchive", "{err}");
    assert!(err.message.contains("no node was stopped"), "{err}");
}

/// Security review: a manifest written into the store by someone else (the set's members, found
/// from EC2, and a forged archive's checksum) was adopted as this plan's, and its checksum
/// became the set's mark. A manifest is adopted only when its SMD checksums are the ones this
/// plan's archiving steps recorded.
#[tokio::test]
async fn a_manifest_in_the_store_is_adopted_only_with_the_checksums_the_plan_recorded() {
    let env = env("multi-volume", true, &[]).await;
    let nodes = NodeProvider::for_policy(&env.policy, Local::default(), LocalStore);
    let root = env.dir.path().display().to_string();
    let set = "bs-20261121T090000Z";
    let uri = format!("file://{root}/store/prod-east/{set}/a1.smd.tar");
    let none = BTreeMap::new();
    let copy = step(
        "copy_smd:a1",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": set, "from": format!("{root}/nodes/a1/smd"), "to": uri}),
    );
    let Progress::Done(archived) = nodes
        .act(StepInput {
            plan_id: "p",
            step: &copy,
            learned: &none,
        })
        .await
        .unwrap()
    else {
        panic!("archived at once")
    };
    let mut learned = BTreeMap::new();
    learned.insert("copy_smd:a1".to_string(), archived.clone());
    let mut manifest = step(
        "write_manifest",
        StepKind::WriteManifest,
        "a1",
        serde_json::json!({
            "uri": format!("file://{root}/store/prod-east/manifests/{set}.json"),
            "set": set, "cluster": "prod-east", "region": "us-east-1",
            "members": [], "namespaces": ["users"],
            "smd": [{"node": "a1", "uri": uri}],
            "policy_digest": "d",
        }),
    );
    manifest.node = None;
    assert!(matches!(
        nodes
            .act(StepInput {
                plan_id: "p",
                step: &manifest,
                learned: &learned
            })
            .await
            .unwrap(),
        Progress::Done(_)
    ));
    assert!(
        nodes
            .observe(StepInput {
                plan_id: "p",
                step: &manifest,
                learned: &learned
            })
            .await
            .unwrap()
            .is_some(),
        "its own manifest, as recorded: adopted"
    );
    // The journal recorded another archive than the manifest in the store names.
    let mut other = archived;
    other.sha256 = Some("0".repeat(64));
    learned.insert("copy_smd:a1".to_string(), other);
    assert!(
        nodes
            .observe(StepInput {
                plan_id: "p",
                step: &manifest,
                learned: &learned
            })
            .await
            .unwrap()
            .is_none()
    );
    // Nor without any record of the archive.
    assert!(
        nodes
            .observe(StepInput {
                plan_id: "p",
                step: &manifest,
                learned: &none
            })
            .await
            .unwrap()
            .is_none()
    );
}
