//! What a new operator reaches for in the first hour: `init` for a new cluster, `fmt` for the
//! policy in version control, `sets` to choose a restore's set, and `test-all` that leaves their
//! machine as it was.

use std::path::Path;
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;

use crate::apply::Scratch;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn asdr_in(dir: &Path, args: &[&str]) -> Out {
    let o = Command::cargo_bin("asdr")
        .unwrap()
        .current_dir(dir)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

/// Fills in what `asdr init` leaves to the operator.
fn fill(policy: &Path) {
    let text = std::fs::read_to_string(policy).unwrap();
    let filled = text
        .replace("ami-REPLACE", "ami-0abc")
        .replace("sg-REPLACE", "sg-0abc")
        .replace("s3://REPLACE-bucket", "s3://shop-backups")
        .replace("/dev/REPLACE-1", "/dev/sdf")
        .replace("/dev/REPLACE-2", "/dev/sdg")
        .replacen("subnet-REPLACE", "subnet-0a", 1)
        .replacen("subnet-REPLACE", "subnet-0b", 1)
        .replacen("subnet-REPLACE", "subnet-0c", 1);
    std::fs::write(policy, filled).unwrap();
}

#[test]
fn init_writes_a_policy_that_validates_is_formatted_and_plans_its_first_backup() {
    let dir = tempfile::tempdir().unwrap();
    let out = asdr_in(
        dir.path(),
        &[
            "init",
            "--name",
            "shop",
            "--node",
            "a1=10.0.1.11@us-east-1a",
            "--node",
            "b1=10.0.2.11@us-east-1b",
            "--node",
            "c1=10.0.3.11@us-east-1c",
            "--namespace",
            "users",
            "--namespace",
            "events",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("fill in the values marked REPLACE"),
        "{}",
        out.stdout
    );
    let policy = std::fs::read_to_string(dir.path().join("asdr.yaml")).unwrap();
    // Commented, with the placeholders said as such, and each namespace on its own device.
    assert!(
        policy.contains("ami: ami-REPLACE                  # REPLACE with your nodes' AMI"),
        "{policy}"
    );
    assert!(
        policy.contains("cold_start: asd-coldstart"),
        "Enterprise needs a cold start (R17)"
    );
    assert!(
        policy.contains("- device: /dev/sdf") && policy.contains("- device: /dev/sdg"),
        "{policy}"
    );
    // Refused until the placeholders are filled in, then valid.
    assert_eq!(asdr_in(dir.path(), &["validate"]).code, 1);
    assert_eq!(
        asdr_in(dir.path(), &["fmt", "--check"]).code,
        0,
        "init's layout is fmt's"
    );
    fill(&dir.path().join("asdr.yaml"));
    let v = asdr_in(dir.path(), &["validate"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert!(
        v.stdout
            .contains("valid: cluster shop (3 nodes, 2 namespaces"),
        "{}",
        v.stdout
    );
    assert_eq!(
        asdr_in(dir.path(), &["fmt", "--check"]).code,
        0,
        "init's layout is fmt's"
    );
    // The skeleton world rehearses the first backup: a snapshot of every node's every device.
    let plan = asdr_in(dir.path(), &["--world", "world.yaml", "plan", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let snapshots = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "snapshot_instance" || s["kind"] == "snapshot")
        .count();
    assert!(snapshots >= 3, "{plan}");
    // Nothing is overwritten without --force.
    let again = asdr_in(
        dir.path(),
        &[
            "init",
            "--name",
            "shop",
            "--node",
            "a1=10.0.1.11@us-east-1a",
        ],
    );
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains("already exist(s); nothing was written (--force overwrites)"),
        "{}",
        again.stderr
    );
}

#[test]
fn init_from_a_world_file_takes_its_instances_and_refuses_what_does_not_validate() {
    let dir = tempfile::tempdir().unwrap();
    let world =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/prod-east/world-backup-due.yaml");
    let out = asdr_in(
        dir.path(),
        &[
            "init",
            "--name",
            "prod-east",
            "--from-world",
            world.to_str().unwrap(),
            "--smd-to",
            "s3://b/asdr",
            "-q",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let policy = std::fs::read_to_string(dir.path().join("asdr.yaml")).unwrap();
    for line in [
        "    - name: a1\n      instance_id: i-0a1\n      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n",
        "    subnets: {us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb}\n",
        "    type: i4i.2xlarge\n",
        "    instance_store_volumes: 2 ",
    ] {
        assert!(policy.contains(line), "no {line:?} in\n{policy}");
    }
    assert!(
        !dir.path().join("world.yaml").exists(),
        "the world given is the one to plan on"
    );
    // What only the operator knows is refused until filled in: the shadows' attachment names
    // above all (a guess would back one device up under another's name).
    let v = asdr_in(dir.path(), &["validate"]);
    assert_eq!(v.code, 1);
    assert!(
        v.stderr.contains("`/dev/REPLACE-1` is a placeholder"),
        "{}",
        v.stderr
    );
    fill(&dir.path().join("asdr.yaml"));
    let v = asdr_in(dir.path(), &["validate"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    // A name asdr cannot use is refused with the policy's own error, and nothing is written.
    let bad = tempfile::tempdir().unwrap();
    let out = asdr_in(
        bad.path(),
        &[
            "init",
            "--name",
            "Prod_East",
            "--node",
            "a1=10.0.1.11@us-east-1a",
        ],
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("cluster name `Prod_East` must match [a-z0-9-]+"),
        "{}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_dir(bad.path()).unwrap().count(),
        0,
        "nothing written"
    );
    let out = asdr_in(
        bad.path(),
        &["init", "--name", "x", "--node", "a1=10.0.1.11"],
    );
    assert_eq!(
        out.stderr,
        "error: --node a1=10.0.1.11: expected NAME=IP@ZONE, e.g. a1=10.0.1.11@us-east-1a\n"
    );
}

#[test]
fn fmt_lays_a_policy_out_keeping_comments_and_check_exits_1_with_the_diff() {
    let s = Scratch::of("prod-east");
    let path = s.path("asdr.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    // Four spaces where the example has two (a sequence item's keys as far in), a trailing
    // blank, and three blank lines in a row.
    let messy: String = original
        .lines()
        .map(|l| {
            let body = l.trim_start_matches(' ');
            let body = match body.strip_prefix("- ") {
                Some(rest) => format!("-   {rest}"),
                None => body.to_string(),
            };
            format!(
                "{}{body}\n",
                " ".repeat(2 * (l.len() - l.trim_start_matches(' ').len()))
            )
        })
        .collect::<String>()
        .replacen("    region: us-east-1\n", "    region: us-east-1   \n", 1)
        .replacen("\nbackup:\n", "\n\n\n\nbackup:\n", 1);
    assert!(messy != original && messy.contains("    name: prod-east"));
    std::fs::write(&path, &messy).unwrap();
    let check = asdr_in(s.path(".").as_path(), &["fmt", "--check"]);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(
        check.stdout.contains("-    region: us-east-1   \n")
            && check.stdout.contains("+  region: us-east-1\n"),
        "{}",
        check.stdout
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        messy,
        "--check writes nothing"
    );
    let fmt = asdr_in(s.path(".").as_path(), &["fmt"]);
    assert_eq!(fmt.code, 0, "{}", fmt.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        original,
        "comments and order kept"
    );
    // A file it cannot lay out safely is left alone.
    std::fs::write(&path, "cluster: [unclosed\n").unwrap();
    let bad = asdr_in(s.path(".").as_path(), &["fmt"]);
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("not valid YAML"), "{}", bad.stderr);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "cluster: [unclosed\n"
    );
}

#[test]
fn sets_lists_every_set_newest_first_with_its_state_size_and_copies() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = asdr_in(
        &root,
        &[
            "-f",
            "examples/prod-east-dr/asdr.yaml",
            "--world",
            "examples/prod-east-dr/world-with-copies.yaml",
            "sets",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "cluster prod-east (as of 2026-11-21T09:00:00Z): 7 set(s), 7 complete"
    );
    assert_eq!(
        lines[1],
        "SET                  TAKEN                 AGE     STATE     SNAPSHOTS  VOLUMES   COPIES"
    );
    assert_eq!(
        lines[2],
        "bs-20261120T020000Z  2026-11-20T02:00:00Z  31h 0m  complete  9          4500 GiB  us-west-2"
    );
    assert_eq!(
        lines[4],
        "bs-20261118T020000Z  2026-11-18T02:00:00Z  3d 7h   complete  9          4500 GiB  -"
    );
    let json = asdr_in(
        &root,
        &[
            "-f",
            "examples/prod-east-dr/asdr.yaml",
            "--world",
            "examples/prod-east-dr/world-with-copies.yaml",
            "sets",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let sets = v["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 7);
    assert_eq!(sets[0]["id"], "bs-20261120T020000Z");
    assert_eq!(sets[0]["age_seconds"], 31 * 3600);
    assert_eq!(sets[0]["copies"], serde_json::json!(["us-west-2"]));
    // What `sets` calls complete is what a restore takes: `latest-backup` is the first row.
    let plan = asdr_in(
        &root,
        &[
            "-f",
            "examples/prod-east-dr/asdr.yaml",
            "--world",
            "examples/prod-east-dr/world-with-copies.yaml",
            "plan",
            "--restore",
            "full-cluster",
        ],
    );
    assert!(
        plan.stdout.contains("bs-20261120T020000Z"),
        "{}",
        plan.stdout
    );
}

#[test]
fn sets_shows_a_set_begun_and_not_finished_as_unfinished() {
    let s = Scratch::of("prod-east");
    let mut world: serde_json::Value = serde_json::to_value(
        asdr_providers::world_file::load(&s.path("world-backup-due.yaml")).unwrap(),
    )
    .unwrap();
    // The newest set loses its mark: begun, never completed.
    let newest = "bs-20261120T020000Z";
    for snap in world["snapshots"].as_array_mut().unwrap() {
        if snap["tags"]["asdr:set"] == newest {
            snap["tags"]
                .as_object_mut()
                .unwrap()
                .remove("asdr:complete");
        }
    }
    std::fs::write(
        s.path("world-backup-due.yaml"),
        serde_json::to_string(&world).unwrap(),
    )
    .unwrap();
    let out = asdr_in(
        s.path(".").as_path(),
        &["--world", "world-backup-due.yaml", "sets", "--json"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let row = v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == newest)
        .unwrap()
        .clone();
    assert_eq!(row["state"], "unfinished", "{row}");
}

#[test]
fn sets_on_a_world_holding_nothing_of_the_cluster_refuses_as_plan_does() {
    let s = Scratch::of("prod-east");
    std::fs::write(
        s.path("empty.yaml"),
        "now: \"2026-11-21T09:00:00Z\"\ninstances: []\n",
    )
    .unwrap();
    let out = asdr_in(s.path(".").as_path(), &["--world", "empty.yaml", "sets"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("the world holds nothing of cluster `prod-east`"),
        "{}",
        out.stderr
    );
}

/// `scripts/test-tools` on a machine without sshd and without Graphviz, outside CI: it fetches
/// sshd into the project's `.tools` with `apt-get download` and `dpkg-deb -x` only, and stops with
/// a one-line instruction for dot. Stand-ins for apt-get, dpkg-deb, sudo and systemctl record every
/// call: nothing is installed, upgraded or enabled.
#[test]
fn test_all_fetches_sshd_into_the_project_and_installs_nothing_outside_ci() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::copy(
        root.join("scripts/test-tools"),
        dir.path().join("scripts/test-tools"),
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = dir.path().join("calls.log");
    let stub = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\necho \"{name} $*\" >> '{}'\n{body}\n",
                log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // `apt-get download` leaves a .deb; `dpkg-deb -x` unpacks an sshd from it.
    stub(
        "apt-get",
        "[ \"$1\" = download ] && touch \"${2}_1.0_amd64.deb\"; exit 0",
    );
    stub(
        "dpkg-deb",
        "mkdir -p \"$3/usr/sbin\" && printf '#!/bin/sh\\n' > \"$3/usr/sbin/sshd\" && chmod +x \"$3/usr/sbin/sshd\"",
    );
    stub("sudo", "exit 1");
    stub("systemctl", "exit 1");
    stub("ldd", "exit 0");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let script = "set -euo pipefail; source scripts/test-tools; echo \"sshd=$ASDR_SSHD\"";
    let run = |dot: &str| {
        Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("CI")
            .env_remove("ASDR_SSHD")
            .env("ASDR_SYSTEM_SSHD", "/nonexistent/sshd")
            .env("ASDR_DOT", dot)
            .output()
            .unwrap()
    };
    let out = run("sh"); // a `dot` that exists
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "sshd={}/.tools/openssh/usr/sbin/sshd",
            dir.path().display()
        )),
        "{stdout}"
    );
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(calls.contains("apt-get download openssh-server"), "{calls}");
    for forbidden in ["apt-get install", "apt-get update", "sudo", "systemctl"] {
        assert!(
            !calls.contains(forbidden),
            "`{forbidden}` was called:\n{calls}"
        );
    }
    // Graphviz missing, not in CI: one line saying how to get it, and a stop.
    let out = run("/nonexistent/dot");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Graphviz's dot is needed for the tests and is not on this machine; install it: sudo apt-get install"), "{stderr}");
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        !calls.contains("apt-get install") && !calls.contains("sudo"),
        "{calls}"
    );
}

#[test]
fn a_mistyped_command_or_restore_name_is_answered_with_the_closest() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = asdr_in(&root, &["plna"]);
    assert_eq!(out.code, 2, "clap's usage error");
    assert!(
        out.stderr
            .contains("tip: a similar subcommand exists: 'plan'"),
        "{}",
        out.stderr
    );
    let out = asdr_in(
        &root,
        &[
            "-f",
            "examples/prod-east/asdr.yaml",
            "--world",
            "examples/prod-east/world-failed-node.yaml",
            "plan",
            "--restore",
            "replace-a11",
        ],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: no restore named `replace-a11` in the policy; did you mean `replace-a1`? (declared: replace-a1, a1-refill, a1-from-backup, full-cluster)\n"
    );
    let out = asdr_in(
        &root,
        &[
            "-f",
            "examples/community/asdr.yaml",
            "iam-policy",
            "--drill",
            "quartrly",
        ],
    );
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: no drill named `quartrly` in the policy; did you mean `quarterly`? (declared: quarterly)\n"
    );
}
