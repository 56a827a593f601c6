//! R20 end to end on a world file (the simulation models EBS snapshot locks; EC2's own lock
//! calls are tested with aws-smithy-mocks in the providers' tests, as moto has none): a set
//! locked by a backup survives a plan, an apply, a `retain: {count: 1}` edit and a plan file
//! edited to delete it; `sets`, `status` and OpenMetrics say it is locked and until when.

use crate::apply::Scratch;

const W: &str = "world-backup-due.yaml";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn world(s: &Scratch) -> asdr_planner::World {
    asdr_providers::world_file::load(&s.path(W)).unwrap()
}

/// The snapshots of `set` in the world file.
fn of_set(s: &Scratch, set: &str) -> Vec<asdr_planner::world::Snapshot> {
    world(s)
        .snapshots
        .into_iter()
        .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some(set))
        .collect()
}

#[test]
fn r20_a_locked_set_survives_plan_apply_a_count_1_edit_and_a_tampered_plan_file() {
    let s = Scratch::of("prod-east");
    s.edit(
        "asdr.yaml",
        "  tags: {team: data}",
        "  tags: {team: data}\n  lock: {mode: governance, duration: 14d}",
    );
    // validate explains what the lock means for retention, pointing at the line.
    let v = ok(&s.asdr(W, &["validate"], &[]));
    assert!(
        v.lines().any(|l| l.starts_with("asdr.yaml:62:") && l.contains(": note: backup: with a set every 24h locked for 14d, about 14 sets are locked at once, more than retain.count 7")),
        "{v}"
    );
    // The backup locks its new set before marking it.
    let plan = ok(&s.asdr(W, &["plan"], &[]));
    assert!(
        plan.contains("lock_snapshots:bs-20261121T090000Z"),
        "{plan}"
    );
    ok(&s.asdr(W, &["apply", "--yes", "-q"], &[]));
    let first = "bs-20261121T090000Z";
    let snaps = of_set(&s, first);
    assert_eq!(snaps.len(), 9);
    for x in &snaps {
        let l = x.lock.expect("every member is locked");
        assert_eq!(l.mode, asdr_specs::LockMode::Governance);
        assert_eq!(
            asdr_planner::manifest::utc(l.expires),
            "2026-12-05T09:00:00Z",
            "the set's time + 14d"
        );
        assert_eq!(
            x.tags.get("asdr:complete").map(String::as_str),
            Some("true")
        );
    }
    // Converged: nothing more to do (the older sets were locked too, as the policy covers them).
    let again = s.asdr(W, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stdout));
    // `sets` and OpenMetrics say so.
    let sets = ok(&s.asdr(W, &["sets"], &[]));
    assert!(
        sets.contains("LOCK") && sets.contains("us-east-1: governance until 2026-12-05T09:00:00Z"),
        "{sets}"
    );
    let om = ok(&s.asdr(W, &["status", "--format", "openmetrics"], &[]));
    assert!(
        om.contains(&format!(
            "asdr_set_locked{{cluster=\"prod-east\",set=\"{first}\",region=\"us-east-1\"}} 1"
        )),
        "{om}"
    );
    assert!(
        om.contains(&format!(
            "asdr_set_lock_expiry_timestamp_seconds{{cluster=\"prod-east\",set=\"{first}\",region=\"us-east-1\"}} 1796461200"
        )),
        "{om}"
    );

    // Retention down to one set, the lock gone from the policy, two days on: a new set is due and
    // every older set is past retain. The first set's own locks keep it.
    s.edit(
        "asdr.yaml",
        "retain: {count: 7, max_age: 30d}",
        "retain: {count: 1}",
    );
    s.edit(
        "asdr.yaml",
        "\n  lock: {mode: governance, duration: 14d}",
        "",
    );
    s.edit(
        W,
        "now: \"2026-11-21T09:00:00Z\"",
        "now: \"2026-11-23T09:00:00Z\"",
    );
    ok(&s.asdr(W, &["apply", "--yes", "-q"], &[]));
    assert_eq!(
        of_set(&s, first).len(),
        9,
        "the locked set survived the apply"
    );
    // Now past retain (the new set is the one kept), and still kept: the plan says until when.
    let plan = ok(&s.asdr(W, &["plan"], &[]));
    assert!(
        plan.contains(&format!(
            "set {first} is past retain but locked (governance) until 2026-12-05T09:00:00Z"
        )),
        "{plan}"
    );
    assert!(!plan.contains("- snapshot."), "nothing is deleted: {plan}");

    // A plan file edited to delete one of its snapshots is refused by the verifier.
    ok(&s.asdr(W, &["plan", "--out", "plan.json", "-q"], &[]));
    let victim = of_set(&s, first)[0].id.clone();
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan.json")).unwrap()).unwrap();
    let cluster_id = plan["cluster_id"].clone();
    plan["steps"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": format!("delete_snapshot:{victim}"), "kind": "delete_snapshot", "node": null,
            "depends_on": [], "cleanup": false,
            "params": {"snapshot_id": victim, "set": first, "cluster_id": cluster_id}
        }));
    std::fs::write(s.path("plan.json"), plan.to_string()).unwrap();
    let before = std::fs::read(s.path(W)).unwrap();
    let out = s.asdr(W, &["apply", "plan.json", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("[R20] delete_snapshot:{victim}: snapshot {victim} is locked (governance) until 2026-12-05T09:00:00Z")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(s.path(W)).unwrap(),
        before,
        "nothing was applied"
    );
    assert_eq!(of_set(&s, first).len(), 9);

    // Once the lock has expired, the next apply deletes the set as retention says.
    s.edit(
        W,
        "now: \"2026-11-23T09:00:00Z\"",
        "now: \"2026-12-06T09:00:00Z\"",
    );
    ok(&s.asdr(W, &["apply", "--yes", "-q"], &[]));
    assert!(
        of_set(&s, first).is_empty(),
        "deleted after its lock expired"
    );
}

#[test]
fn r20_a_delete_ec2_would_refuse_for_a_lock_is_kept_and_said_so() {
    // The simulation refuses as EBS does: a lock made after the plan was reviewed keeps the
    // snapshot; the step fails with SnapshotLocked and nothing else of the set goes.
    let s = Scratch::of("prod-east");
    s.edit(
        "asdr.yaml",
        "retain: {count: 7, max_age: 30d}",
        "retain: {count: 1}",
    );
    ok(&s.asdr(W, &["plan", "--out", "plan.json", "-q"], &[]));
    let plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan.json")).unwrap()).unwrap();
    let victim = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["kind"] == "delete_snapshot")
        .map(|st| st["params"]["snapshot_id"].as_str().unwrap().to_string())
        .unwrap();
    // Locked by hand, after planning: the apply plans afresh and sees the lock.
    let mut w = world(&s);
    let snap = w.snapshots.iter_mut().find(|x| x.id == victim).unwrap();
    snap.lock = Some(asdr_planner::world::SnapshotLock {
        mode: asdr_specs::LockMode::Compliance,
        expires: time::macros::datetime!(2027-01-01 00:00:00 UTC),
        cool_off_until: None,
    });
    let set = snap.tags["asdr:set"].clone();
    std::fs::write(
        s.path(W),
        asdr_providers::world_file::to_string(&w, asdr_providers::world_file::Format::Yaml)
            .unwrap(),
    )
    .unwrap();
    let plan = ok(&s.asdr(W, &["plan"], &[]));
    assert!(
        plan.contains(&format!(
            "set {set} is past retain but locked (compliance) until 2027-01-01T00:00:00Z"
        )),
        "{plan}"
    );
    ok(&s.asdr(W, &["apply", "--yes", "-q"], &[]));
    assert_eq!(of_set(&s, &set).len(), 9, "the whole set stays");
}

#[test]
fn r20_the_iam_policy_of_a_locked_backup_may_lock_and_read_locks_and_never_unlock() {
    let s = Scratch::of("prod-east");
    s.edit(
        "asdr.yaml",
        "  tags: {team: data}",
        "  tags: {team: data}\n  lock: {mode: compliance, duration: 30d, cool_off: 24h}",
    );
    let doc = ok(&s.asdr(
        W,
        &["iam-policy", "--cluster-id", "c-0123456789abcdef"],
        &[],
    ));
    assert!(doc.contains("\"ec2:LockSnapshot\""), "{doc}");
    assert!(doc.contains("\"ec2:DescribeLockedSnapshots\""), "{doc}");
    assert!(!doc.contains("UnlockSnapshot"), "{doc}");
    assert!(
        doc.contains("\"asdr:lock\""),
        "the lock tag may be written: {doc}"
    );
}

/// Review finding: a plan file must not move the clock forward. A plan made for a later time
/// (when every lock the policy puts on the sets has run out) is refused against a world whose
/// time is this machine's, as on AWS.
#[test]
fn r20_a_plan_made_for_a_later_time_is_never_applied() {
    let s = Scratch::of("prod-east");
    s.edit(
        "asdr.yaml",
        "  tags: {team: data}",
        "  tags: {team: data}\n  lock: {mode: governance, duration: 60d}",
    );
    s.edit(
        W,
        "now: \"2026-11-21T09:00:00Z\"",
        "now: \"2099-03-01T00:00:00Z\"",
    );
    ok(&s.asdr(W, &["plan", "--out", "future.json", "-q"], &[]));
    // The world as observed now: no time of its own (this machine's clock counts).
    s.edit(W, "now: \"2099-03-01T00:00:00Z\"\n", "");
    let before = std::fs::read(s.path(W)).unwrap();
    let out = s.asdr(W, &["apply", "future.json", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("it was made for 2099-03-01T00:00:00Z, later than now"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(s.path(W)).unwrap(),
        before,
        "nothing was applied"
    );
}

/// The printed rule is a CreateRule request AWS's own API model accepts (botocore's validator,
/// from the project's virtualenv): tag-level by default, Region-level when locked (EBS locks
/// only Region-level rules), as CloudFormation too; out-of-range values are refused.
#[test]
fn recycle_bin_rule_prints_a_create_rule_request_the_api_model_accepts() {
    let s = Scratch::of("prod-east");
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(python.exists(), "scripts/test-all sets up .venv");
    let validate = |rule: &str| {
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import sys, json, botocore.session, botocore.validate\n\
                 op = botocore.session.get_session().get_service_model('rbin').operation_model('CreateRule')\n\
                 r = botocore.validate.ParamValidator().validate(json.load(sys.stdin), op.input_shape)\n\
                 print(r.generate_report()); sys.exit(1 if r.has_errors() else 0)",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(rule.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "{rule}\n{}", text(&out.stdout));
    };
    let tagged = s.asdr(W, &["recycle-bin-rule", "--days", "14"], &[]);
    let rule = ok(&tagged);
    validate(&rule);
    let v: serde_json::Value = serde_json::from_str(&rule).unwrap();
    assert_eq!(
        v["ResourceTags"],
        serde_json::json!([{"ResourceTagKey": "asdr:cluster", "ResourceTagValue": "prod-east"}])
    );
    assert_eq!(v["RetentionPeriod"]["RetentionPeriodValue"], 14);
    assert!(v.get("LockConfiguration").is_none());
    assert!(text(&tagged.stderr).contains("EBS cannot lock a tag-level rule"));

    let locked = s.asdr(W, &["recycle-bin-rule", "--lock-days", "7"], &[]);
    let rule = ok(&locked);
    validate(&rule);
    let v: serde_json::Value = serde_json::from_str(&rule).unwrap();
    assert!(
        v.get("ResourceTags").is_none(),
        "a locked rule is Region-level"
    );
    assert_eq!(v["LockConfiguration"]["UnlockDelay"]["UnlockDelayValue"], 7);
    assert!(text(&locked.stderr).contains("not only this cluster's"));

    let cf = ok(&s.asdr(W, &["recycle-bin-rule", "--format", "cloudformation"], &[]));
    let v: serde_json::Value = serde_json::from_str(&cf).unwrap();
    let r = &v["Resources"]["AsdrRecycleBinProdEast"];
    assert_eq!(r["Type"], "AWS::Rbin::Rule");
    validate(&r["Properties"].to_string());

    for bad in [
        vec!["recycle-bin-rule", "--days", "400"],
        vec!["recycle-bin-rule", "--lock-days", "3"],
        vec!["recycle-bin-rule", "--copy-region", "eu-west-1"],
    ] {
        let out = s.asdr(W, &bad, &[]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {}", text(&out.stderr));
    }
}
