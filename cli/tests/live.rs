//! `--live-nodes`: the binary observes and drives real Aerospike nodes (here the in-test cluster
//! on 127.0.1.11-13) through the policy's transport, while EC2 stays in the world file.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use asdr_providers::aerospike::testnode::{TestCluster, TestNamespace};
use assert_cmd::cargo::CommandCargoExt;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/prod-east")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_nodes_are_observed_and_quiesced_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let namespaces = vec![
        TestNamespace {
            name: "users".into(),
            replication_factor: 2,
            devices: vec![
                ("/dev/nvme1n1".into(), Some("/dev/nvme3n1".into())),
                ("/dev/nvme2n1".into(), Some("/dev/nvme4n1".into())),
            ],
        },
        TestNamespace {
            name: "events".into(),
            replication_factor: 2,
            devices: vec![("/dev/sdh".into(), None)],
        },
    ];
    let cluster = TestCluster::start(
        &[
            ("a1", "127.0.1.21"),
            ("b1", "127.0.1.22"),
            ("a2", "127.0.1.23"),
        ],
        namespaces,
        true,
        &dir.path().join("control"),
    )
    .await
    .unwrap();
    let mut text = std::fs::read_to_string(examples().join("asdr.yaml")).unwrap();
    for (from, to) in [
        ("10.0.1.11".to_string(), "127.0.1.21".to_string()),
        ("10.0.2.11".into(), "127.0.1.22".into()),
        ("10.0.1.12".into(), "127.0.1.23".into()),
        (
            "info_port: 3000".into(),
            format!("info_port: {}", cluster.port()),
        ),
        ("transport: ssm".into(), "transport: local".into()),
        (
            "work_directory: /opt/aerospike".into(),
            format!("work_directory: {root}/nodes/{{{{ node }}}}"),
        ),
        (
            "smd: {to: s3://acme-backups/asdr/prod-east/smd}".into(),
            format!("smd: {{to: file://{root}/store}}"),
        ),
        (
            "consistency: multi-volume".into(),
            "consistency: quiesce".into(),
        ),
    ] {
        assert!(text.contains(&from), "{from}");
        text = text.replacen(&from, &to, 1);
    }
    std::fs::write(dir.path().join("asdr.yaml"), &text).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::copy(
        examples().join("templates/aerospike.conf.j2"),
        dir.path().join("templates/aerospike.conf.j2"),
    )
    .unwrap();
    for n in ["a1", "b1", "a2"] {
        std::fs::create_dir_all(dir.path().join(format!("nodes/{n}/smd"))).unwrap();
    }
    // The cloud side: the example world with the nodes' addresses moved to the test cluster.
    let world = std::fs::read_to_string(examples().join("world-backup-due.yaml"))
        .unwrap()
        .replace("10.0.1.11", "127.0.1.21")
        .replace("10.0.2.11", "127.0.1.22")
        .replace("10.0.1.12", "127.0.1.23");
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();

    let asdr = |args: &[&str]| {
        let mut c = Command::cargo_bin("asdr").unwrap();
        c.current_dir(dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .args(["-f", "asdr.yaml", "--world", "world.yaml", "--live-nodes"])
            .args(args);
        c.output().unwrap()
    };
    let inv = asdr(&["inventory", "--json"]);
    assert!(
        inv.status.success(),
        "{}",
        String::from_utf8_lossy(&inv.stderr)
    );
    let world: serde_json::Value = serde_json::from_slice(&inv.stdout).unwrap();
    assert!(
        world["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["reachable"] == true && n["edition"] == "Aerospike Enterprise Edition"),
        "{}",
        world["nodes"]
    );

    let apply = asdr(&["apply", "--yes"]);
    assert!(
        apply.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&apply.stdout),
        String::from_utf8_lossy(&apply.stderr)
    );
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
        dir.path().join("store/prod-east").exists(),
        "the SMD archive went to the store"
    );
    let again = asdr(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
}
