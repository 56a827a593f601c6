//! What reviews of `status`, drift, `sets`, `fmt` and `init` found, each reproduced on the
//! examples' world files: a metrics file that kept "fine", a replication factor the nodes do not
//! have, another cluster's instances taken for nodes, drift raised for a node's own instance or a
//! drill's stand-ins, a restore called ready with its volumes gone, sets kept only as copies left
//! out, and a policy formatted between an interrupted apply and its resume.

use std::os::unix::process::ExitStatusExt;

use asdr_planner::world::InstanceState;

use crate::apply::Scratch;
use crate::support::{load, ok, save};

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn r8_a_replication_factor_the_nodes_do_not_have_refuses_every_plan() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-failed-node.yaml");
    for n in &mut w.nodes {
        for ns in &mut n.namespaces {
            ns.replication_factor = Some(1);
        }
    }
    save(&s, "world-failed-node.yaml", &w);
    // Blank volumes with a single copy would leave a1's partitions empty.
    let out = s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "a1-refill"],
        &[],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "[R8] node `b1` runs namespace `users` with replication-factor 1, but the policy says 2"
        ),
        "{err}"
    );
}

#[test]
fn r13_a_pinned_instance_tagged_for_another_cluster_is_never_acted_on() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-backup-due.yaml");
    let i = w.instances.iter_mut().find(|i| i.id == "i-0a1").unwrap();
    i.tags.insert("asdr:cluster".into(), "billing".into());
    save(&s, "world-backup-due.yaml", &w);
    let out = s.asdr("world-backup-due.yaml", &["plan"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("[R13] instance i-0a1 of node `a1` is tagged asdr:cluster=billing: another cluster's, not `prod-east`'s"),
        "{err}"
    );
}

#[test]
fn init_from_a_world_never_takes_another_clusters_or_an_untagged_instance_for_a_node() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-backup-due.yaml");
    let mut other = w.instances[0].clone();
    other.id = "i-0billing1".into();
    other.private_ip = Some("10.0.1.50".into());
    other.tags.insert("asdr:cluster".into(), "billing".into());
    other.tags.insert("asdr:node".into(), "x1".into());
    let mut web = w.instances[0].clone();
    web.id = "i-0web".into();
    web.private_ip = Some("10.0.1.60".into());
    web.tags = [("Name".to_string(), "web-frontend".to_string())].into();
    w.instances.push(other);
    w.instances.push(web);
    save(&s, "world-backup-due.yaml", &w);
    let dir = s.path("new");
    let out = s.asdr(
        "world-backup-due.yaml",
        &[
            "init",
            "--name",
            "prod-east",
            "--from-world",
            "world-backup-due.yaml",
            "--dir",
            "new",
            "-q",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let policy = std::fs::read_to_string(dir.join("asdr.yaml")).unwrap();
    for id in ["i-0a1", "i-00000000000001001", "i-00000000000001002"] {
        assert!(policy.contains(&format!("instance_id: {id}")), "{policy}");
    }
    assert!(
        !policy.contains("i-0billing1") && !policy.contains("i-0web"),
        "{policy}"
    );
    // The nodes' own namespaces and replication factor, not a guess; the shadows' attachment
    // names left to the operator.
    assert!(policy.contains("    - name: users                     # as the nodes report it\n      replication_factor: 2\n"), "{policy}");
    assert!(
        policy.contains("shadow: /dev/nvme3n1") && policy.contains("ebs: /dev/REPLACE-1"),
        "{policy}"
    );
    // A cluster none of whose instances is tagged: only with --name-prefix, and never another's.
    let out = s.asdr(
        "world-backup-due.yaml",
        &[
            "init",
            "--name",
            "billing2",
            "--from-world",
            "world-backup-due.yaml",
            "--dir",
            "b2",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("no running instance is tagged asdr:cluster=billing2 (instances of billing, prod-east are other clusters' and never taken): name the cluster's instances with --name-prefix"),
        "{}",
        text(&out).1
    );
}

#[test]
fn a_placeholder_left_by_init_is_refused_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Scratch::of("prod-east");
    let out = s.asdr(
        "world-backup-due.yaml",
        &[
            "init",
            "--name",
            "shop",
            "--node",
            "a1=10.0.1.11@us-east-1a",
            "--node",
            "b1=10.0.2.11@us-east-1b",
            "--dir",
            dir.path().to_str().unwrap(),
            "-q",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let v = std::process::Command::new(assert_cmd::cargo::cargo_bin("asdr"))
        .current_dir(dir.path())
        .args(["validate"])
        .output()
        .unwrap();
    let (_, err) = text(&v);
    assert_eq!(v.status.code(), Some(1));
    for value in [
        "ami-REPLACE",
        "subnet-REPLACE",
        "sg-REPLACE",
        "s3://REPLACE-bucket/asdr",
    ] {
        assert!(
            err.contains(&format!("error: `{value}` is a placeholder (`asdr init` writes them): fill in the real value")),
            "{value}: {err}"
        );
    }
}

#[test]
fn drift_is_not_raised_for_a_declared_nodes_own_instance_or_a_drills_stand_ins() {
    let s = Scratch::of("prod-east");
    // Backed up once, so the cluster is fine; then a1's own instance is retagged.
    ok(&s.asdr("world-backup-due.yaml", &["apply", "--yes", "-q"], &[]));
    let mut w = load(&s, "world-backup-due.yaml");
    let i = w.instances.iter_mut().find(|i| i.id == "i-0a1").unwrap();
    i.tags.insert("asdr:node".into(), "node-a1".into());
    // A drill's stand-in record, as a drill on a world file leaves it.
    let mut stand_in = w.nodes[0].clone();
    stand_in.name = "a1@quarterly".into();
    w.nodes.push(stand_in);
    save(&s, "world-backup-due.yaml", &w);
    let out = s.asdr("world-backup-due.yaml", &["status"], &[]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("    - instance i-0a1 is node `a1`'s (its pinned instance_id), but is tagged asdr:node=node-a1: set its tag back"),
        "{stdout}"
    );
    assert!(!stdout.contains("a1@quarterly"), "{stdout}");
}

#[test]
fn a_down_nodes_restore_blocked_by_an_undeclared_member_names_that_member() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-unreachable-node.yaml");
    // a1 does not answer, and b1 and a2 still count three: the third is c1, which the policy
    // lacks, not a1.
    let mut c1 = w
        .instances
        .iter()
        .find(|i| i.id != "i-0a1")
        .unwrap()
        .clone();
    c1.id = "i-0c1".into();
    c1.private_ip = Some("10.0.1.77".into());
    c1.block_devices.clear();
    c1.tags.insert("asdr:node".into(), "c1".into());
    w.instances.push(c1);
    for n in &mut w.nodes {
        if n.reachable {
            n.cluster_size = Some(3);
        }
    }
    save(&s, "world-unreachable-node.yaml", &w);
    let out = s.asdr(
        "world-unreachable-node.yaml",
        &["plan", "--restore", "replace-a1"],
        &[],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("help: the member counted may be one the policy does not name (instance i-0c1 (10.0.1.77, running) is tagged asdr:cluster=prod-east and asdr:node=c1"),
        "{err}"
    );
    let (stdout, _) = text(&s.asdr("world-unreachable-node.yaml", &["status"], &[]));
    assert!(
        stdout.contains("or it counts a member the policy does not name (see drift)"),
        "{stdout}"
    );
}

#[test]
fn a_restore_from_current_volumes_is_not_ready_when_the_volumes_are_gone() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-failed-node.yaml");
    w.volumes
        .retain(|v| v.tags.get("asdr:node").map(String::as_str) != Some("a1"));
    save(&s, "world-failed-node.yaml", &w);
    let out = s.asdr("world-failed-node.yaml", &["status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let r = v["restores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "replace-a1")
        .unwrap();
    assert_eq!(r["ready"], false, "{r}");
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("restore `replace-a1`: no volume of a1 /dev/sdf"),
        "{problems}"
    );
    // The node-down line no longer offers it as what brings a1 back.
    assert!(
        problems.contains("(restores `a1-refill`, `a1-from-backup` bring it back)"),
        "{problems}"
    );
    // And the planner agrees.
    assert_eq!(
        s.asdr(
            "world-failed-node.yaml",
            &["plan", "--restore", "replace-a1"],
            &[]
        )
        .status
        .code(),
        Some(1)
    );
}

#[test]
fn sets_lists_a_set_kept_only_as_copies() {
    let s = Scratch::of("prod-east-dr");
    let mut w = load(&s, "world-with-copies.yaml");
    // The home region's snapshots of the newest set are gone (its retention is shorter); its
    // copies in us-west-2 remain.
    let newest = "bs-20261120T020000Z";
    w.snapshots.retain(|p| {
        !(p.region.is_none() && p.tags.get("asdr:set").map(String::as_str) == Some(newest))
    });
    save(&s, "world-with-copies.yaml", &w);
    let out = s.asdr("world-with-copies.yaml", &["sets", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
    let row = v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == newest)
        .cloned();
    let row = row.expect("the copy is listed");
    assert_eq!(row["at_home"], false, "{row}");
    assert_eq!(row["state"], "complete");
    assert_eq!(row["copies"], serde_json::json!(["us-west-2"]));
    let (stdout, _) = text(&s.asdr("world-with-copies.yaml", &["sets"], &[]));
    assert!(
        stdout.contains(&format!(
            "{newest}  2026-11-20T02:00:00Z  31h 0m  copy only"
        )),
        "{stdout}"
    );
}

#[test]
fn a_restore_naming_an_unfinished_set_says_it_is_not_complete() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-failed-node.yaml");
    let set = "bs-20261121T030000Z";
    for p in &mut w.snapshots {
        if p.tags.get("asdr:set").map(String::as_str) == Some(set) {
            p.tags.remove("asdr:complete");
        }
    }
    save(&s, "world-failed-node.yaml", &w);
    s.edit(
        "asdr.yaml",
        "    source: latest-backup",
        &format!("    source: set:{set}"),
    );
    let out = s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "a1-from-backup"],
        &[],
    );
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        stdout.contains(&format!("[R2] set {set} is not complete (not marked complete: a snapshot, its completion or its SMD archive may be missing): restored only because restore `a1-from-backup` names it")),
        "{stdout}"
    );
}

#[test]
fn fmt_refuses_a_policy_an_interrupted_apply_resumes_against_and_a_read_only_one() {
    let s = Scratch::of("prod-east");
    let w = "world-failed-node.yaml";
    s.edit("asdr.yaml", "\nbackup:\n", "\n\n\nbackup:\n");
    let before = std::fs::read_to_string(s.path("asdr.yaml")).unwrap();
    let killed = s.asdr(
        w,
        &["apply", "--yes", "-q", "--restore", "a1-from-backup"],
        &[("ASDR_TEST_KILL_AT", "6".to_string())],
    );
    assert_eq!(killed.status.signal(), Some(9));
    let out = s.asdr(w, &["fmt"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("did not finish (plan p-") && err.contains("asdr apply --discard p-"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(s.path("asdr.yaml")).unwrap(),
        before
    );
    // The resume still runs against the policy as it was.
    ok(&s.asdr(
        w,
        &["apply", "--yes", "-q", "--restore", "a1-from-backup"],
        &[],
    ));
    // Read-only: shown, not rewritten.
    let mut perms = std::fs::metadata(s.path("asdr.yaml"))
        .unwrap()
        .permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(s.path("asdr.yaml"), perms).unwrap();
    let out = s.asdr(w, &["fmt"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("is read-only: not rewritten"),
        "{}",
        text(&out).1
    );
    assert_eq!(
        std::fs::read_to_string(s.path("asdr.yaml")).unwrap(),
        before
    );
    assert_eq!(s.asdr(w, &["fmt", "--check"], &[]).status.code(), Some(1));
}

#[test]
fn a_stopped_instance_of_an_undeclared_node_is_listed_not_counted() {
    let s = Scratch::of("prod-east");
    ok(&s.asdr("world-backup-due.yaml", &["apply", "--yes", "-q"], &[]));
    let mut w = load(&s, "world-backup-due.yaml");
    let mut old = w.instances[1].clone();
    old.id = "i-0old".into();
    old.state = InstanceState::Stopped;
    old.private_ip = Some("10.0.2.99".into());
    old.block_devices.clear();
    old.tags.insert("asdr:node".into(), "b2".into());
    w.instances.push(old);
    save(&s, "world-backup-due.yaml", &w);
    let out = s.asdr(
        "world-backup-due.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("asdr_drift{cluster=\"prod-east\"} 1\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("asdr_drift_active{cluster=\"prod-east\"} 0\n"),
        "{stdout}"
    );
}

#[test]
fn a_markdown_plan_escapes_angle_brackets_outside_code() {
    let s = Scratch::of("prod-east");
    let out = s.asdr(
        "world-backup-due.yaml",
        &["plan", "--format", "markdown"],
        &[],
    );
    let (md, _) = text(&out);
    assert!(out.status.success());
    // Every warning and reason line: a `<` outside backticks would be an HTML tag to GitHub.
    for line in md
        .lines()
        .filter(|l| l.starts_with("- **[") || l.starts_with("| `"))
    {
        for (i, part) in line.split('`').enumerate() {
            assert!(i % 2 == 1 || !part.contains('<'), "{line}");
        }
    }
}

#[test]
fn status_on_a_world_it_cannot_read_says_status_refused_and_a_closed_pipe_is_quiet() {
    let s = Scratch::of("prod-east");
    std::fs::write(
        s.path("empty.yaml"),
        "now: \"2026-11-21T09:00:00Z\"\ninstances: []\n",
    )
    .unwrap();
    let out = s.asdr("empty.yaml", &["status"], &[]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.ends_with("status refused\n") && !err.contains("plan refused"),
        "{err}"
    );
    // `asdr plan | head -1`: the reader leaves, asdr says nothing about it.
    let script = format!(
        "{} -f {} --world {} plan | head -1 >/dev/null",
        assert_cmd::cargo::cargo_bin("asdr").display(),
        s.path("asdr.yaml").display(),
        s.path("world-backup-due.yaml").display()
    );
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let (_, err) = text(&out);
    assert!(!err.contains("Broken pipe"), "{err}");
}

#[test]
fn iam_policy_without_a_cluster_id_says_the_first_apply_needs_one() {
    let s = Scratch::of("prod-east");
    // From the policy alone (no world file, no AWS): no id is known.
    let run = |args: &[&str]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("asdr"))
            .current_dir(s.path("."))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ENDPOINT_URL")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["iam-policy"]);
    let (_, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("note: no cluster id is known (no `cluster.id`, no --cluster-id)"),
        "{err}"
    );
    let with = run(&["iam-policy", "--cluster-id", "0123456789abcdef"]);
    assert!(with.status.success());
    assert!(!text(&with).1.contains("note:"), "{}", text(&with).1);
}

#[test]
fn init_from_a_world_says_which_nodes_it_left_out_and_keeps_the_worlds_smd_store() {
    let s = Scratch::of("prod-east");
    let out = s.asdr(
        "world-failed-node.yaml",
        &[
            "init",
            "--name",
            "prod-east",
            "--from-world",
            "world-failed-node.yaml",
            "--dir",
            "new",
        ],
        &[],
    );
    let (stdout, err) = text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "note: node `a1`'s instance i-0a1 is terminated, not running: it is not in the policy"
        ),
        "{err}"
    );
    let policy = std::fs::read_to_string(s.path("new/asdr.yaml")).unwrap();
    assert!(
        policy.contains("  smd: {to: s3://acme-backups/asdr/prod-east/smd}"),
        "{policy}"
    );
    assert!(
        stdout.contains("(the AMI, security groups, each shadow's EBS attachment name)"),
        "{stdout}"
    );
}

#[test]
fn r8_a_rolling_replication_factor_increase_blocks_no_restore() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-failed-node.yaml");
    // b1 already runs users with three copies, a2 still with two: more copies than counted.
    let b1 = w.nodes.iter_mut().find(|n| n.name == "b1").unwrap();
    for ns in &mut b1.namespaces {
        ns.replication_factor = Some(3);
    }
    save(&s, "world-failed-node.yaml", &w);
    let out = s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "replace-a1"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out).1);
}

#[test]
fn a_restore_is_not_ready_when_its_volume_cannot_attach_or_every_plan_is_refused() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s, "world-failed-node.yaml");
    let v = w
        .volumes
        .iter_mut()
        .find(|v| v.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .unwrap();
    v.state = asdr_planner::world::VolumeState::Error;
    let id = v.id.clone();
    save(&s, "world-failed-node.yaml", &w);
    let ready = |s: &Scratch| -> serde_json::Value {
        let out = s.asdr("world-failed-node.yaml", &["status", "--json"], &[]);
        let v: serde_json::Value = serde_json::from_str(&text(&out).0).unwrap();
        v["restores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r["ready"].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    assert_eq!(ready(&s)["replace-a1"], false);
    let out = s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "replace-a1"],
        &[],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(&format!("volume {id} of a1 /dev/sdf is in state error")),
        "{err}"
    );
    // A node running fewer copies than the policy counts: every plan is refused, so no restore
    // is ready either.
    let mut w = load(&s, "world-failed-node.yaml");
    for n in &mut w.nodes {
        for ns in &mut n.namespaces {
            ns.replication_factor = Some(1);
        }
    }
    save(&s, "world-failed-node.yaml", &w);
    let all = ready(&s);
    assert!(
        all.as_object().unwrap().values().all(|r| r == false),
        "{all}"
    );
}

#[test]
fn status_says_a_discarded_apply_was_discarded_and_never_counts_it_a_success() {
    let s = Scratch::of("prod-east");
    let w = "world-failed-node.yaml";
    let killed = s.asdr(
        w,
        &["apply", "--yes", "-q", "--restore", "a1-from-backup"],
        &[("ASDR_TEST_KILL_AT", "6".to_string())],
    );
    assert_eq!(killed.status.signal(), Some(9));
    let plan_id = std::fs::read_dir(s.path(".asdr/journal"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".jsonl").map(str::to_string)
        })
        .next()
        .expect("the killed apply's journal");
    ok(&s.asdr(w, &["apply", "--discard", &plan_id], &[]));
    let (stdout, _) = text(&s.asdr(w, &["status"], &[]));
    assert!(
        stdout.contains(&format!(
            "last apply: restore:a1-from-backup {plan_id} was discarded (asdr apply --discard) without finishing at "
        )),
        "{stdout}"
    );
    let (om, _) = text(&s.asdr(w, &["status", "--format", "openmetrics"], &[]));
    assert!(
        !om.contains("asdr_apply_last_success_timestamp_seconds"),
        "a discarded apply is no success:\n{om}"
    );
}
