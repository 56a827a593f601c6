//! The `asdr` binary, end to end: exit codes, error locations, plan files, graphs, snapshots of
//! the human plan for every example.

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn asdr() -> Command {
    let mut c = Command::cargo_bin("asdr").unwrap();
    // Never the instance-metadata address, never real credentials.
    c.current_dir(root())
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("NO_COLOR", "1");
    c
}

pub(crate) struct Out {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// The binary with test credentials and no endpoint, run from the repository's root.
pub(crate) fn run(args: &[&str]) -> Out {
    let o = asdr().args(args).output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

const PROD: &str = "examples/prod-east/asdr.yaml";
const CE: &str = "examples/community/asdr.yaml";

#[test]
fn validate_accepts_the_policy_md_example() {
    let out = run(&["-f", PROD, "validate"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("valid: cluster prod-east (3 nodes, 2 namespaces"),
        "{}",
        out.stdout
    );
}

#[test]
fn every_bad_policy_exits_1_at_its_expected_line_and_column() {
    let dir = root().join("testdata/bad");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = text
            .lines()
            .next()
            .unwrap()
            .strip_prefix("# expect: ")
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let (location, fragment) = expect.split_once(": ").unwrap();
        let rel = format!(
            "testdata/bad/{}",
            file.file_name().unwrap().to_str().unwrap()
        );
        let out = run(&["-f", &rel, "validate"]);
        assert_eq!(out.code, 1, "{rel} exited {}: {}", out.code, out.stderr);
        let first = out.stderr.lines().next().unwrap_or("");
        assert!(
            first.starts_with(&format!("{rel}:{location}: error: ")),
            "{rel}: expected {location}, got: {first}"
        );
        assert!(
            first.contains(fragment),
            "{rel}: expected `{fragment}` in: {first}"
        );
        assert!(
            out.stderr.contains(&format!("--> {rel}:{location}")) && out.stderr.contains('^'),
            "{rel}: the source line is shown underlined:\n{}",
            out.stderr
        );
    }
}

#[test]
fn plan_json_is_byte_identical_across_runs() {
    for args in [
        vec![
            "-f",
            PROD,
            "--world",
            "examples/prod-east/world-backup-due.yaml",
            "plan",
            "--json",
        ],
        vec![
            "-f",
            PROD,
            "--world",
            "examples/prod-east/world-failed-node.yaml",
            "plan",
            "--json",
            "--restore",
            "replace-a1",
        ],
        vec![
            "-f",
            PROD,
            "--world",
            "examples/prod-east/world-backup-due.yaml",
            "plan",
            "--json",
            "--restore",
            "full-cluster",
        ],
    ] {
        let a = run(&args);
        let b = run(&args);
        assert_eq!(a.code, 0, "{}", a.stderr);
        assert!(a.stdout.len() > 1000);
        assert_eq!(a.stdout, b.stdout);
        let plan: serde_json::Value = serde_json::from_str(&a.stdout).unwrap();
        assert_eq!(plan["format_version"], 1);
        assert!(plan["spec_digest"].as_str().unwrap().starts_with("sha256:"));
    }
}

#[test]
fn show_of_a_saved_plan_prints_what_plan_printed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plan.json");
    let file = file.to_str().unwrap();
    let planned = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-unreachable-node.yaml",
        "plan",
        "--restore",
        "replace-a1",
        "--out",
        file,
    ]);
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let shown = run(&["show", file]);
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let saved_note = planned.stdout.rfind("Saved the plan").unwrap();
    assert_eq!(&planned.stdout[..saved_note], shown.stdout);
    let json = run(&["show", file, "--json"]);
    assert_eq!(json.stdout, std::fs::read_to_string(file).unwrap());
}

#[test]
fn show_refuses_a_file_that_is_not_a_plan() {
    let out = run(&["show", PROD]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not a plan file"), "{}", out.stderr);
}

#[test]
fn graph_dot_is_accepted_by_graphviz() {
    let out = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "graph",
        "--restore",
        "full-cluster",
        "--format",
        "dot",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut dot = Command::new(std::env::var("ASDR_DOT").unwrap_or_else(|_| "dot".into()))
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` must be installed for this test (scripts/test-all finds it or says how to install it; ASDR_DOT names another)");
    use std::io::Write;
    dot.stdin
        .take()
        .unwrap()
        .write_all(out.stdout.as_bytes())
        .unwrap();
    let result = dot.wait_with_output().unwrap();
    assert!(
        result.status.success(),
        "dot rejected the graph: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let svg = String::from_utf8(result.stdout).unwrap();
    assert!(svg.contains("<svg") && svg.contains("restore_smd:a1"));
}

#[test]
fn graph_mermaid_has_a_node_per_step_and_an_edge_per_dependency() {
    let plan: serde_json::Value = serde_json::from_str(
        &run(&[
            "-f",
            PROD,
            "--world",
            "examples/prod-east/world-backup-due.yaml",
            "plan",
            "--json",
        ])
        .stdout,
    )
    .unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let edges: usize = steps
        .iter()
        .map(|s| s["depends_on"].as_array().unwrap().len())
        .sum();
    let out = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "graph",
        "--format",
        "mermaid",
    ]);
    assert!(out.stdout.starts_with("flowchart LR\n"));
    assert_eq!(out.stdout.matches("[\"").count(), steps.len());
    assert_eq!(out.stdout.matches(" --> ").count(), edges);
}

#[test]
fn detailed_exitcode_is_2_with_changes_and_0_without() {
    let changes = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "plan",
        "--detailed-exitcode",
    ]);
    assert_eq!(changes.code, 2, "{}", changes.stderr);
    let none = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-failed-node.yaml",
        "plan",
        "--detailed-exitcode",
    ]);
    assert_eq!(none.code, 0, "{}", none.stderr);
    assert!(none.stdout.contains("No changes"), "{}", none.stdout);
    let plain = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "plan",
    ]);
    assert_eq!(plain.code, 0);
}

#[test]
fn r9_a_refused_plan_exits_1_pointing_at_the_policy_line() {
    let dir = tempfile::tempdir().unwrap();
    let world =
        std::fs::read_to_string(root().join("examples/prod-east/world-backup-due.yaml")).unwrap();
    let path = dir.path().join("world.yaml");
    std::fs::write(
        &path,
        world.replace(
            "Aerospike Enterprise Edition",
            "Aerospike Community Edition",
        ),
    )
    .unwrap();
    let out = run(&["-f", PROD, "--world", path.to_str().unwrap(), "plan"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.starts_with(&format!(
            "{PROD}:6:12: error: [R9] node `a1` reports `Aerospike Community Edition`"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("plan refused"));
    assert!(out.stdout.is_empty(), "nothing is planned");
}

#[test]
fn an_unknown_restore_exits_1_and_lists_the_declared_ones() {
    let out = run(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "plan",
        "--restore",
        "replace-z9",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no restore named `replace-z9`") && out.stderr.contains("full-cluster"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_failed_observation_of_aws_exits_1_naming_the_call_without_hanging() {
    // Nothing listens on this loopback port: the observation fails fast and says where.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let out = run(&["-f", PROD, "--endpoint-url", &endpoint, "plan"]);
    assert_eq!(out.code, 1);
    // One line: the call, the cause, what to check, the offline alternative; never the SDK's
    // Debug dump of its internals.
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("Connection refused")
            && out.stderr.contains("--endpoint-url")
            && out.stderr.contains("--world FILE")
            && !out.stderr.contains("DispatchFailure("),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(&format!("DescribeInstances: cannot reach {endpoint}")),
        "{}",
        out.stderr
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}

#[test]
fn a_bad_world_file_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.yaml");
    std::fs::write(
        &path,
        "now: 2026-11-21T09:00:00Z\ninstances:\n  - id: i-1\n    state: exploded\n",
    )
    .unwrap();
    let out = run(&["-f", PROD, "--world", path.to_str().unwrap(), "plan"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("w.yaml:4:12: error: unknown variant `exploded`"),
        "{}",
        out.stderr
    );
}

#[test]
fn inventory_round_trips_the_world() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, name) in [("", "w.yaml"), ("--json", "w.json")] {
        let mut args = vec![
            "--world",
            "examples/prod-east/world-failed-node.yaml",
            "inventory",
        ];
        if !flag.is_empty() {
            args.push(flag);
        }
        let inv = run(&args);
        assert_eq!(inv.code, 0, "{}", inv.stderr);
        let path = dir.path().join(name);
        std::fs::write(&path, &inv.stdout).unwrap();
        let digest = |world: &str| {
            let p: serde_json::Value = serde_json::from_str(
                &run(&["-f", PROD, "--world", world, "plan", "--json"]).stdout,
            )
            .unwrap();
            p["world_digest"].as_str().unwrap().to_string()
        };
        assert_eq!(
            digest(path.to_str().unwrap()),
            digest("examples/prod-east/world-failed-node.yaml"),
            "{name}"
        );
    }
}

#[test]
fn schema_is_json_and_describes_every_top_level_key() {
    let out = run(&["schema"]);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for key in ["version", "cluster", "backup", "restores"] {
        assert!(schema["properties"][key].is_object(), "{key}");
    }
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are errors in editors too"
    );
}

#[test]
fn plan_schema_describes_every_step_kind_and_every_parameter_of_the_example_plans() {
    let out = run(&["schema", "--plan"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let defs = &schema["$defs"];
    let variants = defs["Step"]["oneOf"].as_array().unwrap();
    let kinds: Vec<&str> = variants
        .iter()
        .map(|v| v["properties"]["kind"]["const"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 38, "one variant per step kind: {kinds:?}");
    let params_def = |kind: &str| {
        let v = variants
            .iter()
            .find(|v| v["properties"]["kind"]["const"] == kind)
            .unwrap_or_else(|| panic!("no schema for {kind}"));
        let name = v["properties"]["params"]["$ref"]
            .as_str()
            .unwrap()
            .trim_start_matches("#/$defs/");
        &defs[name]
    };
    let mut seen = std::collections::BTreeSet::new();
    for (world, restore) in [
        ("examples/prod-east/world-backup-due.yaml", None),
        (
            "examples/prod-east/world-failed-node.yaml",
            Some("replace-a1"),
        ),
        (
            "examples/prod-east/world-backup-due.yaml",
            Some("full-cluster"),
        ),
        (
            "examples/prod-east/world-unreachable-node.yaml",
            Some("replace-a1"),
        ),
    ] {
        let mut args = vec!["-f", PROD, "--world", world, "plan", "--json"];
        args.extend(restore.iter().flat_map(|r| ["--restore", *r]));
        let out = run(&args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        for step in plan["steps"].as_array().unwrap() {
            let kind = step["kind"].as_str().unwrap();
            let def = params_def(kind);
            let props = def["properties"].as_object().unwrap();
            for key in step["params"].as_object().unwrap().keys() {
                assert!(props.contains_key(key), "{kind}.{key} is not in the schema");
            }
            for key in def["required"].as_array().into_iter().flatten() {
                assert!(
                    step["params"].get(key.as_str().unwrap()).is_some(),
                    "{kind} lacks required {key}"
                );
            }
            seen.insert(kind.to_string());
        }
    }
    assert!(
        seen.len() >= 15,
        "the examples exercise most kinds: {seen:?}"
    );
}

#[test]
fn output_off_a_terminal_has_no_colour_codes() {
    let o = asdr()
        .env_remove("NO_COLOR")
        .args([
            "-f",
            PROD,
            "--world",
            "examples/prod-east/world-failed-node.yaml",
            "plan",
            "--restore",
            "replace-a1",
        ])
        .output()
        .unwrap();
    assert!(!o.stdout.contains(&0x1b));
    let bad = asdr()
        .env_remove("NO_COLOR")
        .args([
            "-f",
            "testdata/bad/r1-none-with-multi-volume-namespace.yaml",
            "validate",
        ])
        .output()
        .unwrap();
    assert!(!bad.stderr.contains(&0x1b));
}

fn snapshot_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.code == 0 || out.code == 2, "{}", out.stderr);
    out.stdout
}

#[test]
fn human_plans_of_the_examples() {
    let cases: [(&str, &[&str]); 7] = [
        (
            "prod_east_backup_due",
            &[
                "-f",
                PROD,
                "--world",
                "examples/prod-east/world-backup-due.yaml",
                "plan",
            ],
        ),
        (
            "prod_east_failed_node_nothing_due",
            &[
                "-f",
                PROD,
                "--world",
                "examples/prod-east/world-failed-node.yaml",
                "plan",
            ],
        ),
        (
            "prod_east_replace_a1_terminated",
            &[
                "-f",
                PROD,
                "--world",
                "examples/prod-east/world-failed-node.yaml",
                "plan",
                "--restore",
                "replace-a1",
            ],
        ),
        (
            "prod_east_replace_a1_unreachable",
            &[
                "-f",
                PROD,
                "--world",
                "examples/prod-east/world-unreachable-node.yaml",
                "plan",
                "--restore",
                "replace-a1",
            ],
        ),
        (
            "prod_east_a1_from_backup",
            &[
                "-f",
                PROD,
                "--world",
                "examples/prod-east/world-failed-node.yaml",
                "plan",
                "--restore",
                "a1-from-backup",
            ],
        ),
        (
            "prod_east_full_cluster",
            &[
                "-f",
                PROD,
                "--world",
                "examples/prod-east/world-backup-due.yaml",
                "plan",
                "--restore",
                "full-cluster",
            ],
        ),
        (
            "community_backup_due",
            &[
                "-f",
                CE,
                "--world",
                "examples/community/world-backup-due.yaml",
                "plan",
            ],
        ),
    ];
    for (name, args) in cases {
        insta::assert_snapshot!(name, snapshot_of(args));
    }
}

/// The IAM policy document `asdr iam-policy` prints for `args`.
pub(crate) fn iam_doc(args: &[&str]) -> serde_json::Value {
    let out = run(args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("iam-policy prints JSON");
    assert_eq!(doc["Version"], "2012-10-17");
    doc
}

pub(crate) fn actions_of(doc: &serde_json::Value) -> std::collections::BTreeSet<String> {
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn iam_actions(args: &[&str]) -> std::collections::BTreeSet<String> {
    actions_of(&iam_doc(args))
}

fn set(v: &[&str]) -> std::collections::BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const KMS: [&str; 6] = [
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
];

/// `iam-policy` works from the policy alone (no world, no credentials) and grants everything the
/// operation can take, whatever the world holds today: the backup role snapshots, tags, deletes
/// for retention, stores SMD in S3 and works on the nodes over SSM even on a day with nothing due.
#[test]
fn iam_policy_allows_every_action_an_operation_can_take_from_the_policy_alone() {
    let backup = iam_actions(&["-f", PROD, "iam-policy"]);
    assert_eq!(
        backup,
        set(&[
            "ec2:CreateSnapshot",
            "ec2:CreateSnapshots",
            "ec2:CreateTags",
            "ec2:DeleteSnapshot",
            "ec2:DescribeInstanceTypes",
            "ec2:DescribeInstances",
            "ec2:DescribeLockedSnapshots",
            "rbin:GetRule",
            "rbin:ListRules",
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeSnapshots",
            "ec2:DescribeSubnets",
            "ec2:DescribeVolumes",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "ssm:GetCommandInvocation",
            "ssm:ListCommands",
            "ssm:SendCommand"
        ])
    );
    // The same on a day the world holds a backup that is not due: the role does not shrink.
    let not_due = iam_actions(&[
        "-f",
        PROD,
        "--world",
        "examples/prod-east/world-failed-node.yaml",
        "iam-policy",
    ]);
    assert_eq!(not_due, backup);
    // Replacing a node: stop its instance, detach, terminate, launch, attach; KMS through EC2
    // for encrypted volumes; no snapshot work at all.
    let replace_doc = iam_doc(&["-f", PROD, "iam-policy", "--restore", "replace-a1"]);
    let replace = actions_of(&replace_doc);
    let mut want = set(&[
        "ec2:AttachVolume",
        "ec2:CreateTags",
        "ec2:DescribeInstanceAttribute",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeInstances",
        "ec2:DescribeLockedSnapshots",
        "rbin:GetRule",
        "rbin:ListRules",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSnapshots",
        "ec2:DescribeSubnets",
        "ec2:DescribeVolumes",
        "ec2:DetachVolume",
        "ec2:RunInstances",
        "ec2:StopInstances",
        "ec2:TerminateInstances",
        "iam:PassRole",
        "s3:GetObject",
        "s3:ListBucket",
        "ssm:GetCommandInvocation",
        "ssm:ListCommands",
        "ssm:SendCommand",
    ]);
    want.extend(set(&KMS));
    assert_eq!(replace, want);
    let statements = replace_doc["Statement"].as_array().unwrap();
    let sid = |name: &str| {
        statements
            .iter()
            .find(|s| s["Sid"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(
        sid("ChangeOnlyWhatAsdrOwns")["Condition"]["StringEquals"]["aws:ResourceTag/asdr:cluster"],
        "prod-east",
        "scoped by the cluster tag (R13)"
    );
    // The pinned instance (i-0a1) is the cluster's by the policy's word; the launch reads the
    // policy's AMI, subnets and groups by ARN.
    assert_eq!(
        sid("ChangeThePinnedInstances")["Resource"],
        serde_json::json!(["arn:aws:ec2:*:*:instance/i-0a1"])
    );
    let launch = sid("LaunchFromThePolicysImageAndNetwork")["Resource"].to_string();
    for arn in [
        "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0",
        "arn:aws:ec2:us-east-1:*:subnet/subnet-0aaa",
        "arn:aws:ec2:us-east-1:*:security-group/sg-0123",
        "arn:aws:ec2:us-east-1:*:key-pair/ops",
    ] {
        assert!(launch.contains(arn), "{launch}");
    }
    // ListBucket applies to buckets, never to object ARNs.
    assert_eq!(
        sid("ListTheStores")["Resource"],
        serde_json::json!(["arn:aws:s3:::acme-backups"])
    );
    // PassRole names the nodes' role only (the profile's name unless --node-role says).
    assert_eq!(
        sid("PassTheNodeRole")["Resource"],
        "arn:aws:iam::*:role/aerospike-node"
    );
    // ... and only to EC2 (trust boundaries: never `Resource: *`, never to another service).
    assert_eq!(
        sid("PassTheNodeRole")["Condition"]["StringEquals"]["iam:PassedToService"],
        "ec2.amazonaws.com"
    );
    let other = iam_doc(&[
        "-f",
        PROD,
        "iam-policy",
        "--restore",
        "replace-a1",
        "--node-role",
        "aerospike-node-role",
    ]);
    assert!(
        other
            .to_string()
            .contains("arn:aws:iam::*:role/aerospike-node-role"),
        "{other}"
    );
    // Without the cluster's id the claim is not granted; with it, only that id, only on the
    // cluster's (or pinned) instances that carry none.
    assert!(!statements.iter().any(|s| s["Sid"] == "ClaimTheClusterId"));
    let claimed = iam_doc(&["-f", PROD, "iam-policy", "--cluster-id", "0123abcd"]);
    let claim = claimed["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "ClaimTheClusterId")
        .expect("granted with the id");
    assert_eq!(
        claim["Condition"]["StringEquals"]["aws:RequestTag/asdr:cluster-id"],
        "0123abcd"
    );
    assert_eq!(
        claim["Condition"]["StringEquals"]["aws:ResourceTag/asdr:cluster"],
        "prod-east"
    );
    // Snapshots are taken of the cluster's instances only, and later tags are asdr's own keys.
    let snap = claimed["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "SnapshotTheNodes")
        .unwrap();
    assert_eq!(
        snap["Condition"]["StringEquals"]["aws:ResourceTag/asdr:cluster"],
        "prod-east"
    );
    let later = claimed["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "TagWhatAsdrOwns")
        .unwrap()["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
        .to_string();
    assert!(
        !later.contains("\"asdr:cluster\"") && !later.contains("asdr:cluster-id"),
        "{later}"
    );
}

#[test]
fn iam_policy_of_a_drill_allows_its_restore_and_teardown_and_nothing_on_production() {
    let drill = iam_actions(&["-f", CE, "iam-policy", "--drill", "quarterly"]);
    let mut want = set(&[
        "ec2:AttachVolume",
        "ec2:CreateTags",
        "ec2:CreateVolume",
        "ec2:DeleteVolume",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeInstances",
        "ec2:DescribeLockedSnapshots",
        "rbin:GetRule",
        "rbin:ListRules",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSnapshots",
        "ec2:DescribeSubnets",
        "ec2:DescribeVolumes",
        "ec2:RunInstances",
        "ec2:TerminateInstances",
    ]);
    // No iam:PassRole: the community policy names no instance profile.
    want.extend(set(&KMS));
    assert_eq!(drill, want);
    let backup = iam_actions(&["-f", CE, "iam-policy"]);
    assert_ne!(drill, backup);
    assert!(!drill.contains("ec2:DetachVolume") && !drill.contains("ec2:DeleteSnapshot"));
    // What a drill terminates, deletes or attaches, and what it creates, is its own by tag:
    // never production's, which carries the same cluster tag.
    let doc = iam_doc(&["-f", CE, "iam-policy", "--drill", "quarterly"]);
    let statements = doc["Statement"].as_array().unwrap();
    let of = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap();
    assert_eq!(
        of("ChangeOnlyWhatAsdrOwns")["Condition"]["StringEquals"]["aws:ResourceTag/asdr:drill"],
        "quarterly"
    );
    assert_eq!(
        of("CreateTaggedForCluster")["Condition"]["StringEquals"]["aws:RequestTag/asdr:drill"],
        "quarterly"
    );
    assert!(
        !statements
            .iter()
            .any(|s| s["Sid"] == "ChangeThePinnedInstances")
    );
    assert_eq!(
        of("TagWhatAsdrOwns")["Condition"]["StringEquals"]["aws:ResourceTag/asdr:drill"],
        "quarterly",
        "a drill's role never marks production's sets"
    );
    // Over SSM, the drill's role runs commands only on its own stand-ins, never on production's
    // nodes (root on every node of the cluster).
    let doc = iam_doc(&[
        "-f",
        "examples/prod-east-dr/asdr.yaml",
        "iam-policy",
        "--drill",
        "failover",
    ]);
    let statements = doc["Statement"].as_array().unwrap();
    let run = statements
        .iter()
        .find(|s| s["Sid"] == "RunOnTheNodes")
        .expect("SSM over the drill's stand-ins");
    assert_eq!(
        run["Condition"]["StringEquals"]["aws:ResourceTag/asdr:drill"],
        "failover"
    );
    assert!(!statements.iter().any(|s| s["Sid"] == "RunOnThePinnedNodes"));
}

/// A copy of the community example (policy, backup-due world, template) in a fresh directory.
fn community_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["asdr.yaml", "world-backup-due.yaml"] {
        std::fs::copy(
            root().join("examples/community").join(f),
            dir.path().join(f),
        )
        .unwrap();
    }
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::copy(
        root().join("examples/community/templates/aerospike.conf.j2"),
        dir.path().join("templates/aerospike.conf.j2"),
    )
    .unwrap();
    dir
}

/// Review finding (trust boundaries): `asdr:drill` is a tag anyone with CreateTags can write. A
/// teardown removes only what the drill's own applies recorded making: another team's instance
/// and a detached volume tagged for the drill (a failed node's only copy of its data, say) are
/// kept, and said.
#[test]
fn a_drill_teardown_never_removes_what_only_carries_the_drills_tag() {
    let dir = community_copy();
    let world = dir.path().join("world-backup-due.yaml");
    let text = std::fs::read_to_string(&world).unwrap();
    let forged = r#"- id: i-0otherteam0000001
  state: running
  type: m6id.xlarge
  private_ip: "10.9.9.9"
  availability_zone: us-west-2a
  subnet_id: subnet-0other
  tags:
    "asdr:cluster": ce-west
    "asdr:drill": quarterly
"#;
    let forged_volume = r#"- id: vol-0nodesonlycopy01
  availability_zone: us-west-2a
  size_gib: 500
  type: gp3
  state: available
  attachments: []
  tags:
    "asdr:cluster": ce-west
    "asdr:node": w1
    "asdr:device": /dev/sdf
    "asdr:drill": quarterly
"#;
    let text = text
        .replacen("instances:\n", &format!("instances:\n{forged}"), 1)
        .replacen("volumes:\n", &format!("volumes:\n{forged_volume}"), 1);
    std::fs::write(&world, &text).unwrap();
    let o = asdr()
        .current_dir(dir.path())
        .args([
            "-f",
            "asdr.yaml",
            "--world",
            "world-backup-due.yaml",
            "drill",
            "quarterly",
            "--teardown-only",
        ])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        said.contains("i-0otherteam0000001, vol-0nodesonlycopy01 carry asdr:drill=quarterly but no apply of drill `quarterly` recorded making them: not torn down")
            && said.contains("0 resource(s) it made remain"),
        "{said}"
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "something tagged for the drill remains: {said}"
    );
    // A drill run beside them is refused before anything is made, saying how to clear them.
    let run = asdr()
        .current_dir(dir.path())
        .args([
            "-f",
            "asdr.yaml",
            "--world",
            "world-backup-due.yaml",
            "drill",
            "quarterly",
            "--yes",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stderr).to_string();
    assert_eq!(run.status.code(), Some(1), "{said}");
    assert!(
        said.contains("no journal of this drill here records making them")
            && said.contains("aws ec2 terminate-instances --instance-ids i-0otherteam0000001")
            && said.contains("aws ec2 delete-volume --volume-id vol-0nodesonlycopy01"),
        "{said}"
    );
    let after = std::fs::read_to_string(&world).unwrap();
    let w: serde_json::Value = serde_saphyr::from_str(&after).unwrap();
    let state_of = |kind: &str, id: &str| {
        w[kind]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["state"].as_str().unwrap().to_string())
    };
    assert_eq!(
        state_of("instances", "i-0otherteam0000001").as_deref(),
        Some("running"),
        "{said}"
    );
    assert_eq!(
        state_of("volumes", "vol-0nodesonlycopy01").as_deref(),
        Some("available"),
        "{said}"
    );
}

#[test]
fn a_world_file_drill_runs_tears_down_and_writes_its_report() {
    let dir = community_copy();
    // The drill of the copied example, on `world`.
    let drill = |world: &str, more: &[&str]| {
        asdr()
            .current_dir(dir.path())
            .args(["-f", "asdr.yaml", "--world", world, "drill", "quarterly"])
            .args(more)
            .output()
            .unwrap()
    };
    let o = drill("world-backup-due.yaml", &["--yes", "-q"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let world = std::fs::read_to_string(dir.path().join("world-backup-due.yaml")).unwrap();
    let w: asdr_planner::World =
        asdr_providers::world_file::parse("w", &world, asdr_providers::world_file::Format::Yaml)
            .unwrap();
    assert!(
        w.volumes.iter().all(|v| !v.tags.contains_key("asdr:drill")),
        "drill volumes deleted"
    );
    assert!(
        w.instances
            .iter()
            .filter(|i| i.tags.contains_key("asdr:drill"))
            .all(|i| i.state == asdr_planner::world::InstanceState::Terminated)
    );
    let reports: Vec<_> = std::fs::read_dir(dir.path().join(".asdr/drills"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        reports
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "md"))
            && reports
                .iter()
                .any(|p| p.extension().is_some_and(|e| e == "json"))
    );
    // The check of a world-file drill: nothing to DryRun against, the rest is checked.
    let check = drill("world-backup-due.yaml", &["--check"]);
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(shown.contains("not checked with DryRun"), "{shown}");
    assert!(
        check.status.success()
            && shown.contains("recorded in the world file")
            && shown.contains("Check passed."),
        "{shown}"
    );
    // A set whose SMD archive is missing fails the check.
    let world = std::fs::read_to_string(dir.path().join("world-backup-due.yaml")).unwrap();
    let mut w: asdr_planner::World =
        asdr_providers::world_file::parse("w", &world, asdr_providers::world_file::Format::Yaml)
            .unwrap();
    w.smd_archives.clear();
    std::fs::write(
        dir.path().join("no-smd.json"),
        serde_json::to_string(&w).unwrap(),
    )
    .unwrap();
    let check = drill("no-smd.json", &["--check"]);
    // Without its SMD archive the set is not complete (R2): the check fails at the plan.
    let refused = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{refused}");
    assert!(
        refused.contains("[R2]") && refused.contains("no complete backup set"),
        "{refused}"
    );
}

/// AWS credentials that cannot be found are one line: the call, the cause, what to set, and the
/// offline alternative; never the SDK's list of every provider it tried.
#[test]
fn missing_credentials_are_a_one_line_error_with_a_hint() {
    let home = tempfile::tempdir().unwrap();
    let no_credentials = asdr()
        .args([
            "-f",
            "examples/prod-east/asdr.yaml",
            "--endpoint-url",
            "http://127.0.0.1:1",
            "plan",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        .env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.path().join("credentials"),
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_credentials.stderr);
    assert_eq!(no_credentials.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("no AWS credentials found") && stderr.contains("AWS_PROFILE"),
        "{stderr}"
    );
}

/// A policy paired with another cluster's world is told so, naming the cluster the world holds,
/// instead of planning as if every node were gone.
#[test]
fn another_clusters_world_is_refused_as_holding_nothing_of_this_cluster() {
    let out = run(&[
        "-f",
        "examples/community/asdr.yaml",
        "--world",
        "examples/prod-east/world-failed-node.yaml",
        "plan",
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("the world holds nothing of cluster `ce-west`")
            && out
                .stderr
                .contains("it holds resources of cluster `prod-east`"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("is gone"), "{}", out.stderr);
}

/// `plan -q` says what it saw in one line; the human plan keeps every line short, eliding long
/// dependency lists (the plan file keeps them whole).
#[test]
fn quiet_plan_prints_its_summary_line_and_no_plan_line_runs_past_200_characters() {
    let args = [
        "-f",
        "examples/prod-east/asdr.yaml",
        "--world",
        "examples/prod-east/world-backup-due.yaml",
    ];
    let quiet = run(&[&args[..], &["-q", "plan"]].concat());
    assert_eq!(quiet.code, 0);
    assert_eq!(
        quiet.stdout,
        "Plan: 11 to add, 1 to change, 9 to destroy, 26 steps.\n"
    );
    let full = run(&[&args[..], &["plan"]].concat());
    let longest = full
        .stdout
        .lines()
        .map(|l| l.chars().count())
        .max()
        .unwrap();
    assert!(
        longest <= 200,
        "a {longest}-character line:\n{}",
        full.stdout
    );
    assert!(
        full.stdout
            .contains("wait_snapshot:a1:/dev/sdg:bs-20261121T090000Z and 7 more"),
        "{}",
        full.stdout
    );
}

/// Every option of every command says what it does, and help never prints the value of an
/// environment variable it reads (an endpoint can carry an account's private address).
#[test]
fn every_option_in_every_help_has_a_description_and_no_environment_value_is_shown() {
    let commands = [
        "validate",
        "plan",
        "apply",
        "show",
        "graph",
        "inventory",
        "schema",
        "drill",
        "iam-policy",
        "status",
    ];
    for c in commands {
        let out = asdr()
            .args([c, "--help"])
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("COLUMNS", "200")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{c} --help");
        assert!(
            !help.contains("127.0.0.1:9"),
            "{c} --help shows the value:\n{help}"
        );
        let lines: Vec<&str> = help.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            // Option lines (`-f, --file <PATH>`, `--world <PATH>`), not listed values (`- text`).
            let option = t.starts_with("--") || (t.starts_with('-') && t.get(2..4) == Some(", "));
            if !option {
                continue;
            }
            let parts: Vec<&str> = t
                .split("  ")
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            // Short help: the description on the same line; long help: on the next.
            let description = parts
                .get(1)
                .copied()
                .or_else(|| lines.get(i + 1).map(|l| l.trim()))
                .unwrap_or("");
            assert!(
                !description.is_empty()
                    && !description.starts_with('[')
                    && !description.starts_with('-'),
                "{c}: an option without a description: {line}"
            );
        }
    }
    let community = run(&["-f", "examples/community/asdr.yaml", "validate"]);
    assert!(
        !community.stdout.contains("1 namespaces") && !community.stdout.contains("1 restores"),
        "{}",
        community.stdout
    );
}

/// A bad world file is reported as a bad policy is: `path:line:column: error:` once, then the
/// line itself, underlined.
#[test]
fn a_bad_world_file_is_reported_at_its_line_with_the_line_shown() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("w.yaml");
    std::fs::write(
        &world,
        "now: \"2026-11-21T09:00:00Z\"\ninstances:\n  - id: i-1\n    bogus: 3\n",
    )
    .unwrap();
    let out = run(&["-f", PROD, "--world", world.to_str().unwrap(), "plan"]);
    assert_eq!(out.code, 1);
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.ends_with("w.yaml:4:5: error: unknown field `bogus` (expected id, region, state, type, private_ip, availability_zone, subnet_id, instance_store_drives, root_device, block_devices, tags, state_reason)")
            && !first.starts_with("error:"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("4 |     bogus: 3"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("error:").count(), 1, "{}", out.stderr);
}

/// The README's example commands that name the repository's examples run as written.
#[test]
fn the_readmes_example_commands_on_the_examples_run_as_written() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let commands: Vec<Vec<&str>> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("$ asdr "))
        .map(|l| {
            l.split('#')
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
        })
        .filter(|args| args.iter().any(|a| a.starts_with("examples/")) && args.contains(&"--world"))
        .collect();
    assert!(
        commands.iter().any(|c| c.contains(&"drill")),
        "the README shows a drill on an example"
    );
    for args in commands {
        let out = run(&args);
        assert_eq!(out.code, 0, "asdr {}:\n{}", args.join(" "), out.stderr);
    }
}

/// The Markdown plan: its summary first, one table row per change, the steps folded away, the
/// warnings with their rules; the same for a saved plan shown, and the same every time.
#[test]
fn a_markdown_plan_tables_every_change_folds_the_steps_and_is_stable() {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("plan.json");
    let args = [
        "-f",
        "examples/prod-east/asdr.yaml",
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "plan",
        "--format",
        "markdown",
    ];
    let md = run(&args);
    assert_eq!(md.code, 0, "{}", md.stderr);
    let again = run(&args);
    assert_eq!(md.stdout, again.stdout, "stable for diffing");
    let out = run(&[&args[..4], &["plan", "--out", saved.to_str().unwrap()]].concat());
    assert_eq!(out.code, 0);
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let text = &md.stdout;
    assert!(
        text.starts_with("### asdr plan: backup of cluster `prod-east`\n"),
        "{text}"
    );
    assert!(text.contains("**Plan: 11 to add, 1 to change, 9 to destroy, 26 steps.**"));
    let rows = text
        .lines()
        .filter(|l| {
            ["| `+` |", "| `-` |", "| `~` |"]
                .iter()
                .any(|m| l.starts_with(m))
        })
        .count();
    assert_eq!(rows, plan["changes"].as_array().unwrap().len());
    assert!(text.contains("<details><summary>26 steps</summary>"));
    assert!(text.contains("- **[R13]**"), "{text}");
    let shown = run(&["show", saved.to_str().unwrap(), "--format", "markdown"]);
    assert_eq!(
        shown.stdout, md.stdout,
        "show renders the saved plan the same"
    );
}

/// Shell completions and the manual page come from the same definition as the parser: every
/// command is in them.
#[test]
fn completions_and_the_manual_page_name_every_command() {
    let bash = run(&["completions", "bash"]);
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    let man = run(&["man"]);
    assert_eq!(man.code, 0, "{}", man.stderr);
    let page = man.stdout.replace("\\-", "-");
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH asdr 1"),
        "roff"
    );
    // Every command the parser knows has its own section on the one page, and the page sends
    // the reader to no other page (`asdr-plan(1)` does not exist).
    let help = run(&["--help"]);
    let names: Vec<String> = help
        .stdout
        .split("Commands:\n")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|n| n != "help")
        .collect();
    assert!(names.len() >= 15, "{names:?}");
    for c in &names {
        assert!(
            bash.stdout.contains(c.as_str()),
            "bash completion lacks {c}"
        );
        assert!(
            man.stdout
                .contains(&format!(".SS \"asdr {}", c.replace('-', "\\-"))),
            "the manual page has no section for {c}"
        );
    }
    assert!(
        !page.contains("asdr-"),
        "the page names pages that do not exist"
    );
    for section in [".SH \"EXIT STATUS\"", ".SH ENVIRONMENT", ".SH FILES"] {
        assert!(man.stdout.contains(section), "no {section}");
    }
    assert!(page.contains("AWS_ENDPOINT_URL") && page.contains("NO_COLOR"));
    assert!(
        page.contains(".B 130"),
        "the interrupted apply's exit status"
    );
    for shell in ["zsh", "fish"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.code, 0);
        assert!(out.stdout.contains("status"), "{shell}");
    }
}

/// `--version` names the commit the binary was built from, in a git checkout.
#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let out = run(&["--version"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout
            .starts_with(&format!("asdr {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        out.stdout
    );
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output();
    match head {
        Ok(h) if h.status.success() => {
            let commit = String::from_utf8_lossy(&h.stdout).trim().to_string();
            assert!(
                out.stdout.contains(&format!("({commit})")),
                "{}",
                out.stdout
            );
        }
        _ => eprintln!("not a git checkout: the version carries no commit"),
    }
}

#[test]
fn schema_help_lists_its_own_options_apart_from_the_global_ones() {
    let out = run(&["schema", "--help"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (own, global) = out
        .stdout
        .split_once("Global options:")
        .expect("the global options under their own heading");
    let own = own.split_once("Options:").map_or("", |(_, o)| o);
    assert!(own.contains("--plan"), "{}", out.stdout);
    for g in ["--world", "--endpoint-url", "--live-nodes", "--profile"] {
        assert!(
            !own.contains(g),
            "{g} among schema's own options:\n{}",
            out.stdout
        );
        assert!(
            global.contains(g),
            "{g} under Global options:\n{}",
            out.stdout
        );
    }
}

#[test]
fn a_policy_with_two_errors_reports_both_at_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join(PROD))
        .unwrap()
        .replacen("every: 24h", "every: 24", 1)
        .replacen("source: current-volumes", "source: currentvolumes", 1);
    let policy = dir.path().join("asdr.yaml");
    std::fs::write(&policy, &text).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::copy(
        root().join("examples/prod-east/templates/aerospike.conf.j2"),
        dir.path().join("templates/aerospike.conf.j2"),
    )
    .unwrap();
    let out = run(&["-f", policy.to_str().unwrap(), "validate"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect();
    assert_eq!(errors.len(), 2, "{}", out.stderr);
    assert!(
        errors[0].contains(&format!("asdr.yaml:{}:", line_of("every: 24 "))),
        "{}",
        out.stderr
    );
    assert!(
        errors[1].contains(&format!("asdr.yaml:{}:", line_of("source: currentvolumes"))),
        "{}",
        out.stderr
    );
}

#[test]
fn iam_policy_lets_an_apply_take_renew_and_give_back_an_s3_team_lock() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = std::fs::read_to_string(root.join(PROD)).unwrap();
    let policy = dir.path().join("asdr.yaml");
    std::fs::write(
        &policy,
        text.replacen(
            "restores:\n",
            "lock: s3://acme-locks/asdr/prod-east.lock\n\nrestores:\n",
            1,
        ),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        root.join("examples/prod-east/templates"),
        dir.path().join("templates"),
    )
    .unwrap();
    let world = root.join("examples/prod-east/world-backup-due.yaml");
    let doc = iam_doc(&[
        "-f",
        policy.to_str().unwrap(),
        "--world",
        world.to_str().unwrap(),
        "iam-policy",
    ]);
    let lock = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "TeamLock")
        .expect("a statement for the lock");
    assert_eq!(
        lock["Resource"],
        "arn:aws:s3:::acme-locks/asdr/prod-east.lock"
    );
    // The release is a delete conditional on the lock's version: S3 wants GetObject for it.
    assert_eq!(
        lock["Action"],
        serde_json::json!(["s3:DeleteObject", "s3:GetObject", "s3:PutObject"])
    );
    // A free lock reads as 404 only with ListBucket on its bucket (else S3 answers 403).
    let bucket = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "TeamLockBucket")
        .expect("ListBucket on the lock's bucket");
    assert_eq!(bucket["Resource"], "arn:aws:s3:::acme-locks");
    assert_eq!(bucket["Action"], serde_json::json!(["s3:ListBucket"]));
}

/// `--region` may only repeat the cluster's region: another would observe (and act on) that
/// region's resources as the cluster's home.
#[test]
fn a_region_other_than_the_clusters_is_refused() {
    let out = run(&[
        "-f",
        PROD,
        "--region",
        "us-west-2",
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "plan",
    ]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("--region us-west-2 is not the cluster's region (us-east-1"),
        "{}",
        out.stderr
    );
    let same = run(&[
        "-f",
        PROD,
        "--region",
        "us-east-1",
        "--world",
        "examples/prod-east/world-backup-due.yaml",
        "plan",
    ]);
    assert_ne!(same.code, 1, "{}", same.stderr);
}

/// R4 puts a replacement into the failed instance's own subnet, which need not be the policy's
/// (a legacy subnet): the restore's role may launch there, in the policy's zones only (the
/// policy's security groups hold it to their VPC), so the launch is not denied after the old
/// instance was terminated.
#[test]
fn iam_policy_of_a_replace_allows_the_failed_instances_own_subnet_in_the_policys_zones() {
    let doc = iam_doc(&["-f", PROD, "iam-policy", "--restore", "replace-a1"]);
    let reference = asdr_providers::testkit_iam::Reference::load();
    let launch_into = |subnet: &str, az: &str| {
        serde_json::json!({
            "action": "ec2:RunInstances",
            "resources": [{"type": "subnet", "arn": format!("arn:aws:ec2:us-east-1:123456789012:subnet/{subnet}"), "resource_tags": {}}],
            "context": {"ec2:AvailabilityZone": [az]}
        })
    };
    let denied =
        |call: &serde_json::Value| asdr_providers::testkit_iam::denied(&doc, call, &reference);
    assert_eq!(denied(&launch_into("subnet-0aaa", "us-east-1a")), None);
    assert_eq!(denied(&launch_into("subnet-0legacy", "us-east-1a")), None);
    assert!(
        denied(&launch_into("subnet-0far", "us-east-1f")).is_some(),
        "not outside the policy's zones"
    );
}

/// A cluster in GovCloud or China: its resources' ARNs are in that partition (`arn:aws-us-gov:`,
/// `arn:aws-cn:`), so a policy naming `arn:aws:` would allow nothing there.
#[test]
fn iam_policy_of_a_cluster_in_another_partition_names_that_partition() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = root.join(PROD);
    let src = src.parent().unwrap();
    for (region, partition) in [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")] {
        let text = std::fs::read_to_string(src.join("asdr.yaml"))
            .unwrap()
            .replace("us-east-1", region);
        std::fs::create_dir_all(dir.path().join("templates")).unwrap();
        for t in std::fs::read_dir(src.join("templates")).unwrap() {
            let t = t.unwrap();
            std::fs::copy(t.path(), dir.path().join("templates").join(t.file_name())).unwrap();
        }
        let policy = dir.path().join("asdr.yaml");
        std::fs::write(&policy, text).unwrap();
        let doc = iam_doc(&[
            "-f",
            policy.to_str().unwrap(),
            "iam-policy",
            "--restore",
            "replace-a1",
        ]);
        let text = doc.to_string();
        assert!(!text.contains("arn:aws:"), "{region}: {text}");
        assert!(
            text.contains(&format!("arn:{partition}:ec2:")),
            "{region}: {text}"
        );
    }
}
