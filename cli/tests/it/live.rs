//! `--live-nodes`: the binary observes and drives real Aerospike nodes (here the in-test cluster
//! on 127.0.1.x) through the policy's transport, while EC2 stays in the world file.

use asdr_planner::testkit::ExamplePolicy;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces};
use assert_cmd::cargo::CommandCargoExt;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/prod-east")
}

/// The example policy on a local in-test cluster at 127.0.1.{base}..{base+2}: local transport,
/// work directories and the SMD store in a scratch folder, plus `edits`.
async fn setup(base: u8, edits: &[(String, String)]) -> (tempfile::TempDir, TestCluster) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let namespaces = example_namespaces();
    let ips = [0, 1, 2].map(|k| format!("127.0.1.{}", base + k));
    let cluster = TestCluster::start(
        &[("a1", &ips[0]), ("b1", &ips[1]), ("a2", &ips[2])],
        namespaces,
        true,
        &dir.path().join("control"),
    )
    .await
    .unwrap();
    let edits: Vec<(String, String)> = edits
        .iter()
        .map(|(from, to)| (from.clone(), to.replace("@@ROOT@@", &root)))
        .collect();
    ExamplePolicy::prod_east()
        .on_test_nodes(&root, cluster.port(), [&ips[0], &ips[1], &ips[2]])
        .edits(&edits)
        .write_to(dir.path());
    for n in ["a1", "b1", "a2"] {
        std::fs::create_dir_all(dir.path().join(format!("nodes/{n}/smd"))).unwrap();
    }
    // The cloud side: the example world with the nodes' addresses moved to the test cluster.
    let world = std::fs::read_to_string(examples().join("world-backup-due.yaml"))
        .unwrap()
        .replace("10.0.1.11", &ips[0])
        .replace("10.0.2.11", &ips[1])
        .replace("10.0.1.12", &ips[2]);
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    (dir, cluster)
}

fn asdr(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut c = Command::cargo_bin("asdr").unwrap();
    c.current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .args(["-f", "asdr.yaml", "--world", "world.yaml", "--live-nodes"])
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_nodes_are_observed_and_quiesced_one_at_a_time() {
    let (dir, cluster) = setup(
        21,
        &[(
            "consistency: multi-volume".into(),
            "consistency: quiesce".into(),
        )],
    )
    .await;
    let dir = dir.path();
    let inv = ok(&asdr(dir, &["inventory", "--json"], &[]));
    let world: serde_json::Value = serde_json::from_str(&inv).unwrap();
    assert!(
        world["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["reachable"] == true && n["edition"] == "Aerospike Enterprise Edition"),
        "{}",
        world["nodes"]
    );
    ok(&asdr(dir, &["apply", "--yes"], &[]));
    let log = cluster.log();
    let quiesces: Vec<&str> = log
        .iter()
        .filter(|(_, c)| c == "quiesce:")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        quiesces,
        ["a1", "b1", "a2"],
        "one node at a time, in policy order"
    );
    for n in ["a1", "b1", "a2"] {
        assert!(!cluster.quiesced(n), "{n} left quiesced");
    }
    assert!(
        dir.join("store/prod-east").exists(),
        "the SMD archive went to the store"
    );
    let again = asdr(dir, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}

/// The seed's first method end to end through the binary, with the asbackup/asrestore stand-ins
/// (testdata/asbackup-stand-in: the real tools are not in the package registries) on PATH:
/// apply into a `file://` store whose parent does not exist, the next plan is empty (the sets are
/// read from the store's manifests), the cluster restore finds the set, and asrestore brings the
/// records and the secondary index back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asbackup_applies_to_a_file_store_the_next_plan_is_empty_and_a_restore_brings_records_back()
{
    let (dir, _cluster) = setup(
        91,
        &[
            ("method: ebs-snapshot".into(), "method: asbackup".into()),
            ("  - name: full-cluster\n    scope: cluster\n    source: latest-backup".into(), "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    accept_zombie_records: true".into()),
            (
                "to: s3://acme-backups/asbackup/prod-east".into(),
                "to: file://@@ROOT@@/backups/prod-east".into(),
            ),
            (
                "    source: latest-backup\n    accept_zombie_records: true   # required".into(),
                "    source: empty\n    accept_zombie_records: true   # required".into(),
            ),
        ],
    )
    .await;
    let dir = dir.path();
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/asbackup-stand-in");
    let env = [
        (
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        (
            "STANDIN_RESTORED",
            dir.join("restored.jsonl").display().to_string(),
        ),
    ];
    let plan = ok(&asdr(dir, &["plan"], &env));
    assert!(plan.contains("asbackup:users:"), "{plan}");
    ok(&asdr(dir, &["apply", "--yes"], &env));
    // The cluster's own directory in the store: `<to>/<cluster>/<set>/<ns>`.
    let sets: Vec<_> = std::fs::read_dir(dir.join("backups/prod-east/prod-east"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(sets.len(), 1, "{sets:?}");
    for ns in ["users", "events"] {
        // Whose run, how many files, and when it finished (UTC), in the manifest's name.
        let names: Vec<String> =
            std::fs::read_dir(dir.join(format!("backups/prod-east/prod-east/{}/{ns}", sets[0])))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .collect();
        let manifest = names
            .iter()
            .find(|n| {
                n.starts_with("asdr-manifest.cluster-prod-east.id-")
                    && n.contains(".files-1.finished-")
            })
            .unwrap_or_else(|| panic!("{names:?}"));
        let finished = manifest
            .split(".finished-")
            .nth(1)
            .and_then(|t| t.split('.').next())
            .unwrap_or_default();
        // How the files were written, for asrestore to be told the same.
        assert!(
            manifest.ends_with(".compress-none.encrypt-none.json")
                || manifest.ends_with(".compress-zstd.encrypt-none.json"),
            "{manifest}"
        );
        let finished = asdr_planner::set_time(&format!("bs-{finished}")).expect("a UTC time");
        let started = asdr_planner::set_time(&sets[0]).unwrap();
        assert!(finished >= started, "{manifest} before {}", sets[0]);
    }
    let again = asdr(dir, &["plan", "--detailed-exitcode"], &env);
    assert_eq!(
        again.status.code(),
        Some(0),
        "the sets are observed from the store: {}",
        String::from_utf8_lossy(&again.stdout)
    );
    let restore = ok(&asdr(dir, &["plan", "--restore", "full-cluster"], &env));
    assert!(restore.contains(&sets[0]), "{restore}");
    ok(&asdr(
        dir,
        &["apply", "--yes", "--restore", "full-cluster"],
        &env,
    ));
    let restored = std::fs::read_to_string(dir.join("restored.jsonl")).unwrap();
    assert_eq!(restored.lines().count(), 2, "{restored}");
    assert!(
        restored
            .lines()
            .all(|l| l.contains("\"records\": 1000") && l.contains("\"indexes\": 1"))
    );
}

/// The same through S3: asbackup writes to the bucket natively (the stand-in is told moto's
/// address by `--s3-endpoint-override`, from asdr's `--endpoint-url`), asdr's manifests go beside
/// the files, and the next plan reads the sets back from the bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asbackup_applies_to_an_s3_store_and_the_next_plan_is_empty() {
    let moto = asdr_providers::testkit_moto::Moto::start();
    moto.s3()
        .create_bucket()
        .bucket("acme-backups")
        .send()
        .await
        .unwrap();
    let (dir, _cluster) = setup(
        95,
        &[
            ("method: ebs-snapshot".into(), "method: asbackup".into()),
            ("  - name: full-cluster\n    scope: cluster\n    source: latest-backup".into(), "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    accept_zombie_records: true".into()),
            (
                "    source: latest-backup\n    accept_zombie_records: true   # required".into(),
                "    source: empty\n    accept_zombie_records: true   # required".into(),
            ),
        ],
    )
    .await;
    let dir = dir.path();
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/asbackup-stand-in");
    let env = [
        (
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
    ];
    let with_endpoint = |args: &[&str]| {
        let mut all = vec!["--endpoint-url", moto.endpoint.as_str()];
        all.extend_from_slice(args);
        asdr(dir, &all, &env)
    };
    ok(&with_endpoint(&["apply", "--yes"]));
    let listed = moto
        .s3()
        .list_objects_v2()
        .bucket("acme-backups")
        .prefix("asbackup/prod-east/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys.len(),
        4,
        "a file and a manifest per namespace: {keys:?}"
    );
    assert!(
        keys.iter()
            .any(|k| k.contains("/users/asdr-manifest.cluster-prod-east.id-")
                && k.contains(".files-1.finished-"))
    );
    let again = with_endpoint(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
}

/// SIGTERM (what Kubernetes, systemd and CI runners send) in the middle of a backup that takes
/// nodes out of service, against the in-test nodes: the apply stops starting steps, lets the one
/// in flight finish, runs the cleanups, releases the lock and exits 130 saying how to finish;
/// every node ends back in service, and the next apply completes the backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_backup_brings_every_node_back_and_frees_the_lock() {
    for (base, consistency, edit) in [
        (101u8, "quiesce", "consistency: quiesce"),
        // A cold start brings deleted records back: the policy says it accepts that (R6).
        (
            104,
            "stop-node",
            "consistency: stop-node\n  accept_zombie_records: true",
        ),
    ] {
        let (dir, cluster) =
            setup(base, &[("consistency: multi-volume".into(), edit.into())]).await;
        let dir = dir.path();
        // Slow cloud calls keep the first node out of service long enough to be caught there.
        std::fs::write(dir.join("sim.yaml"), "latency_ms: 400\n").unwrap();
        let child = Command::cargo_bin("asdr")
            .unwrap()
            .current_dir(dir)
            .env("NO_COLOR", "1")
            .env("ASDR_SIMULATION", dir.join("sim.yaml"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .args(["-f", "asdr.yaml", "--world", "world.yaml", "--live-nodes"])
            .args(["apply", "--yes"])
            .spawn()
            .unwrap();
        let out_of_service = |n: &str| match consistency {
            "quiesce" => cluster.quiesced(n),
            _ => !cluster.is_up(n),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let mut child = child;
        while !["a1", "b1", "a2"].iter().any(|n| out_of_service(n)) {
            if std::time::Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "{consistency}: no node was ever taken out\n{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "SIGTERM sent");
        let out = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(
            out.status.code(),
            Some(130),
            "{consistency}: {stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("Interrupt received") && stdout.contains("Interrupted:"),
            "{consistency}: {stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("Run `asdr apply` again"),
            "names what is left: {stdout}"
        );
        for n in ["a1", "b1", "a2"] {
            assert!(
                !out_of_service(n),
                "{consistency}: {n} was left out of service\n{stdout}\n{stderr}"
            );
        }
        assert!(
            !dir.join(".asdr/locks/prod-east.lock").exists(),
            "{consistency}: the lock is released"
        );
        // The next apply finishes the backup, with nothing to break or discard first, once the
        // cluster has settled from the node's return (R14 refuses a backup while it migrates).
        let refused = asdr(dir, &["apply", "--yes", "-q"], &[]);
        if !refused.status.success() {
            assert!(
                String::from_utf8_lossy(&refused.stderr).contains("migrations remaining"),
                "{}",
                String::from_utf8_lossy(&refused.stderr)
            );
            cluster.settle();
            ok(&asdr(dir, &["apply", "--yes", "-q"], &[]));
        }
        let again = asdr(dir, &["plan", "--detailed-exitcode"], &[]);
        assert_eq!(
            again.status.code(),
            Some(0),
            "{consistency}: nothing left to do\n{}\n{}",
            String::from_utf8_lossy(&again.stdout),
            String::from_utf8_lossy(&again.stderr)
        );
        for n in ["a1", "b1", "a2"] {
            assert!(!out_of_service(n), "{consistency}: {n} after the re-apply");
        }
    }
}
