//! Plans that cannot lose data: one regression test per defect found by operators' scenarios,
//! each followed by the proof that the independent verifier catches the defect's plan if the
//! fix were reverted (the fixed plan, edited back into the defective shape).

use crate::{edit, params, step_from_json};
use asdr_planner::params::Params;
use asdr_planner::testkit::ExamplePolicy;
use std::path::{Path, PathBuf};

use asdr_planner::testkit::{Failure, WorldSpec, world_for};
use asdr_planner::world::{InstanceType, Subnet, Volume, VolumeState, World};
use asdr_planner::{Operation, Plan, PlanError, Step, StepKind, Violation, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// prod-east with edits (each checked to apply), and these restores appended.
fn prod_east(edits: &[(&str, &str)], restores: &str) -> Policy {
    ExamplePolicy::prod_east()
        .edits(edits)
        .append(restores)
        .policy()
}

fn world(policy: &Policy, f: impl FnOnce(&mut WorldSpec)) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 7;
    f(&mut spec);
    world_for(policy, &spec)
}

fn run(policy: &Policy, world: &World, op: Operation) -> Result<Plan, PlanError> {
    plan(policy, world, NOW, &op)
}

fn restore(policy: &Policy, world: &World, name: &str) -> Plan {
    run(policy, world, Operation::Restore(name.into())).unwrap_or_else(|e| panic!("{e}"))
}

fn refusal(r: Result<Plan, PlanError>) -> asdr_specs::Diagnostic {
    match r {
        Err(PlanError::Refused(d)) => d,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn step<'p>(p: &'p Plan, id: &str) -> &'p Step {
    p.step(id)
        .unwrap_or_else(|| panic!("no step {id} in {:?}", ids(p)))
}

fn step_mut<'p>(p: &'p mut Plan, id: &str) -> &'p mut Step {
    p.steps.iter_mut().find(|s| s.id == id).unwrap()
}

fn ids(p: &Plan) -> Vec<&str> {
    p.steps.iter().map(|s| s.id.as_str()).collect()
}

fn ancestors(p: &Plan, id: &str) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(s) = stack.pop() {
        for d in &step(p, &s).depends_on {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

/// The plan without `id` (and without every reference to it).
fn without(mut p: Plan, id: &str) -> Plan {
    p.steps.retain(|s| s.id != id);
    for s in &mut p.steps {
        s.depends_on.retain(|d| d != id);
    }
    p
}

fn assert_caught(policy: &Policy, world: &World, p: &Plan, rule: &str) -> Vec<Violation> {
    let v = verify(policy, world, p);
    assert!(
        v.iter().any(|x| x.rule == rule),
        "the verifier must catch this with {rule}: {v:?}"
    );
    v
}

fn assert_clean(policy: &Policy, world: &World, p: &Plan) {
    let v = verify(policy, world, p);
    assert!(v.is_empty(), "{v:?}");
}

const A1B1_FROM_BACKUP: &str = "  - {name: a1b1-from-backup, scope: node, nodes: [a1, b1], source: latest-backup, accept_zombie_records: true}\n";

#[test]
fn defect_01_multi_node_restore_keeps_the_rolling_limit_r8() {
    let policy = prod_east(&[], A1B1_FROM_BACKUP);
    let w = world(&policy, |s| s.newest_set_age = time::Duration::hours(31));
    let p = restore(&policy, &w, "a1b1-from-backup");
    assert!(
        ancestors(&p, "stop_node:b1").contains("wait_cluster_stable:a1"),
        "b1 is stopped only once a1 is back and stable"
    );
    assert_clean(&policy, &w, &p);
    // Reverted: b1's stop no longer waits for a1's window to close.
    let mut bad = p.clone();
    step_mut(&mut bad, "stop_node:b1")
        .depends_on
        .retain(|d| !d.starts_with("wait_cluster_stable"));
    let v = assert_caught(&policy, &w, &bad, "R8");
    assert!(
        v.iter()
            .any(|x| x.message.contains("max_nodes_at_once is 1"))
    );
}

fn stale_volume(policy: &Policy) -> Volume {
    let real = world(policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    let mut v = real
        .volumes
        .iter()
        .find(|v| v.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .unwrap()
        .clone();
    v.id = "vol-00000000000001000".into();
    v.state = VolumeState::Available;
    v.attachments.clear();
    v.tags.insert("asdr:device".into(), "/dev/sdf".into());
    v
}

#[test]
fn defect_02_current_volumes_never_reattaches_a_stale_volume() {
    let policy = prod_east(&[], "");
    let mut w = world(&policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    w.volumes.push(stale_volume(&policy));
    let d = refusal(run(&policy, &w, Operation::Restore("replace-a1".into())));
    assert_eq!(d.rule, Some("R4"));
    assert!(
        d.message.contains("vol-00000000000001000") && d.message.contains("2 candidate volumes"),
        "{}",
        d.message
    );
    // A volume asdr marked superseded is never a candidate: the node's own volume is attached,
    // and the plan names it.
    let mut marked = w.clone();
    marked
        .volumes
        .last_mut()
        .unwrap()
        .tags
        .insert("asdr:superseded".into(), "p-earlier".into());
    let p = restore(&policy, &marked, "replace-a1");
    let attach = step(&p, "attach_volume:a1:/dev/sdf");
    assert_ne!(params(attach)["volume_id"], "vol-00000000000001000");
    let id = params(attach)["volume_id"].as_str().unwrap().to_string();
    assert!(
        p.changes
            .iter()
            .any(|c| c.address == "volume.a1./dev/sdf" && c.reason.contains(&id)),
        "the human plan names the volume it reattaches"
    );
    assert_clean(&policy, &marked, &p);
    // Reverted: the stale volume attached (the old chooser took the smallest id).
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "attach_volume:a1:/dev/sdf"), |p| {
        p["volume_id"] = "vol-00000000000001000".into()
    });
    assert_caught(&policy, &marked, &bad, "R4");
    assert_caught(&policy, &w, &p, "R4");
}

#[test]
fn defect_03_a_set_missing_a_snapshot_is_not_restorable_and_retention_keeps_a_whole_one() {
    let policy = prod_east(
        &[("retain: {count: 7, max_age: 30d}", "retain: {count: 1}")],
        "",
    );
    let mut w = world(&policy, |s| s.newest_set_age = time::Duration::hours(2));
    // The newest set loses one snapshot.
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .max()
        .unwrap();
    let gone = w
        .snapshots
        .iter()
        .position(|s| s.tags.get("asdr:set") == Some(&newest))
        .unwrap();
    w.snapshots.remove(gone);
    let p = run(&policy, &w, Operation::Backup).unwrap();
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == StepKind::MarkSetComplete),
        "a backup is due: the newest set is not whole"
    );
    let second = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .filter(|s| *s != newest)
        .max()
        .unwrap();
    for s in p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
    {
        assert_ne!(
            params(s)["set"],
            second.as_str(),
            "the newest whole set is never deleted"
        );
        assert!(
            ancestors(&p, &s.id)
                .iter()
                .any(|a| a.starts_with("mark_set_complete")),
            "deletions wait for the new set"
        );
    }
    assert_clean(&policy, &w, &p);
    // Reverted: the incomplete set counted, so every whole set was deleted.
    let mut bad = p.clone();
    for snap in w
        .snapshots
        .iter()
        .filter(|s| s.tags.get("asdr:set") == Some(&second))
    {
        bad.steps.push(step_from_json(serde_json::json!({
            "id": format!("delete_snapshot:{}", snap.id), "kind": "delete_snapshot", "node": null,
            "depends_on": [], "cleanup": false, "params": {"snapshot_id": snap.id, "set": second},
        })));
    }
    assert_caught(&policy, &w, &bad, "R13");
    // And a from-backup restore never takes the broken set.
    let r = restore(&policy, &w, "a1-from-backup");
    let c = step(&r, "create_volume:a1:/dev/sdf");
    let snap = params(c)["snapshot_id"].as_str().unwrap().to_string();
    assert!(
        w.snapshots
            .iter()
            .any(|s| s.id == snap && s.tags.get("asdr:set") == Some(&second))
    );
}

#[test]
fn defect_04_restore_smd_replaces_the_directory_and_keeps_the_old_one_aside() {
    let policy = prod_east(&[], "");
    let w = world(&policy, |_| {});
    let p = restore(&policy, &w, "full-cluster");
    let smd = step(&p, "restore_smd:a1");
    assert_eq!(params(smd)["replace"], true);
    assert_eq!(params(smd)["keep_previous"], "/opt/aerospike/smd.asdr-prev");
    assert_clean(&policy, &w, &p);
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "restore_smd:a1"), |p| {
        p["replace"] = false.into()
    });
    assert_caught(&policy, &w, &bad, "R2");
}

/// The documented configuration for nodes sharing a host: per-node templates keyed on
/// `{{ node }}`, local transport, real start commands.
fn per_node_policy() -> Policy {
    prod_east(
        &[
            ("transport: ssm", "transport: local"),
            (
                "work_directory: /opt/aerospike",
                "work_directory: /var/asdr/{{ node }}",
            ),
            (
                "stop: systemctl stop aerospike",
                "stop: asd-ctl stop {{ node }}",
            ),
            (
                "start: systemctl start aerospike",
                "start: asd-ctl start {{ node }}",
            ),
            (
                "path: /etc/aerospike/aerospike.conf",
                "path: /var/asdr/{{ node }}/aerospike.conf",
            ),
        ],
        "drills:\n  - name: dr\n    restore: full-cluster\n    target:\n      subnets: {us-east-1a: subnet-d1, us-east-1b: subnet-d2}\n      ip_offset: 100\n      security_groups: [sg-drill]\n",
    )
}

#[test]
fn defect_05_a_drill_never_writes_over_production() {
    let policy = per_node_policy();
    let w = world(&policy, |_| {});
    let p = run(&policy, &w, Operation::Drill("dr".into())).unwrap();
    let cfg = step(&p, "write_config:a1@dr");
    assert_eq!(params(cfg)["path"], "/var/asdr/a1@dr/aerospike.conf");
    assert_eq!(
        params(step(&p, "restore_smd:a1@dr"))["to"],
        "/var/asdr/a1@dr/smd"
    );
    assert_eq!(
        params(step(&p, "start_node:a1@dr"))["command"],
        "asd-ctl start a1@dr"
    );
    assert_clean(&policy, &w, &p);
    // Reverted: the stand-in rendered with production's name.
    for (id, key, value) in [
        ("write_config:a1@dr", "path", "/var/asdr/a1/aerospike.conf"),
        ("restore_smd:a1@dr", "to", "/var/asdr/a1/smd"),
        ("start_node:a1@dr", "command", "asd-ctl start a1"),
    ] {
        let mut bad = p.clone();
        edit(step_mut(&mut bad, id), |p| p[key] = value.into());
        let v = assert_caught(&policy, &w, &bad, "drill");
        assert!(v.iter().any(|x| x.step.as_deref() == Some(id)), "{v:?}");
    }
}

#[test]
fn defect_06_a_partial_quiesce_set_is_not_finished_in_another_window_r1() {
    let policy = prod_east(&[("consistency: multi-volume", "consistency: quiesce")], "");
    let mut w = world(&policy, |s| s.newest_set_age = time::Duration::hours(30));
    // An hour ago a quiesce backup snapshotted a1 /dev/sdf, then failed on /dev/sdg.
    let partial_set = "bs-20261121T080000Z";
    let mut snap = w
        .snapshots
        .iter()
        .find(|s| {
            s.tags.get("asdr:node").map(String::as_str) == Some("a1")
                && s.tags.get("asdr:device").map(String::as_str) == Some("/dev/sdf")
                && s.tags.contains_key("asdr:set")
        })
        .unwrap()
        .clone();
    snap.id = "snap-0000000000000beef".into();
    snap.start_time = datetime!(2026-11-21 08:00:00 UTC);
    snap.tags.insert("asdr:set".into(), partial_set.into());
    snap.tags.remove("asdr:complete");
    w.snapshots.push(snap);
    let p = run(&policy, &w, Operation::Backup).unwrap();
    assert!(
        p.steps
            .iter()
            .all(|s| params(s)["set"].as_str() != Some(partial_set)),
        "the partial set is not resumed: {:?}",
        ids(&p)
    );
    assert!(p.step("snapshot:a1:/dev/sdf:bs-20261121T090000Z").is_some());
    assert!(p.step("snapshot:a1:/dev/sdg:bs-20261121T090000Z").is_some());
    assert_clean(&policy, &w, &p);
    // Reverted: only /dev/sdg snapshotted into the partial set.
    let mut bad = without(p.clone(), "snapshot:a1:/dev/sdf:bs-20261121T090000Z");
    bad = without(bad, "wait_snapshot:a1:/dev/sdf:bs-20261121T090000Z");
    for s in &mut bad.steps {
        if s.node.as_deref() == Some("a1") {
            edit(s, |p| {
                if let Some(v) = p.get_mut("set")
                    && v == "bs-20261121T090000Z"
                {
                    *v = partial_set.into();
                }
            });
        }
    }
    assert_caught(&policy, &w, &bad, "R1");
}

#[test]
fn defect_07_drill_nodes_get_their_own_cluster_peers_and_security_groups() {
    let policy = per_node_policy();
    let w = world(&policy, |_| {});
    let p = run(&policy, &w, Operation::Drill("dr".into())).unwrap();
    let content = params(step(&p, "write_config:a1@dr"))["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.contains("cluster-name prod-east-dr"), "{content}");
    assert!(content.contains("mesh-seed-address-port 10.0.1.111 3002"));
    for prod in ["10.0.1.11 ", "10.0.2.11 ", "10.0.1.12 "] {
        assert!(!content.contains(prod), "{prod} in {content}");
    }
    assert_eq!(
        params(step(&p, "provision_instance:a1@dr"))["security_groups"],
        serde_json::json!(["sg-drill"])
    );
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "write_config:a1@dr"), |p| {
        p["content"] = content.replace("10.0.1.111 3002", "10.0.1.11 3002").into()
    });
    assert_caught(&policy, &w, &bad, "drill");
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "provision_instance:a1@dr"), |p| {
        p["security_groups"] = serde_json::json!(["sg-0123"])
    });
    assert_caught(&policy, &w, &bad, "drill");
    // Validation: a template that seeds production's addresses, or no security groups of its own.
    let drill = ExamplePolicy::prod_east().append("drills:\n  - name: dr\n    restore: full-cluster\n    target:\n      subnets: {us-east-1a: subnet-d1, us-east-1b: subnet-d2}\n      ip_offset: 100\n");
    let err = drill.parse().unwrap_err();
    assert!(
        err.to_string().contains("needs `target.security_groups`"),
        "{err}"
    );
    // The same drill, with its own security group, from a folder whose template names a1.
    let mut seeded = drill.edit(
        "ip_offset: 100\n",
        "ip_offset: 100\n      security_groups: [sg-drill]\n",
    );
    seeded.dir = tempdir();
    std::fs::create_dir_all(seeded.dir.join("templates")).unwrap();
    let template =
        std::fs::read_to_string(examples().join("prod-east/templates/aerospike.conf.j2")).unwrap();
    std::fs::write(
        seeded.dir.join("templates/aerospike.conf.j2"),
        template.replace("{{ peer }}", "10.0.1.11"),
    )
    .unwrap();
    let err = seeded.parse().unwrap_err();
    assert!(
        err.to_string()
            .contains("renders production address 10.0.1.11"),
        "{err}"
    );
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "asdr-safety-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn defect_08_durable_deletes_on_community_is_refused_and_covers_nothing() {
    let err = ExamplePolicy::community()
        .edit(
            "edition: community",
            "edition: community\n  durable_deletes: true",
        )
        .parse()
        .unwrap_err();
    assert!(
        err.to_string().contains("[R6]") && err.to_string().contains("Enterprise-only"),
        "{err}"
    );
    // The verifier does not take a Community policy's word for it either.
    let mut policy = prod_east(&[], "");
    let w = world(&policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    let p = restore(&policy, &w, "replace-a1");
    policy.cluster.edition = asdr_specs::Edition::Community;
    policy.cluster.durable_deletes = true;
    for r in &mut policy.restores {
        r.accept_zombie_records = false;
    }
    let mut w2 = w.clone();
    for n in &mut w2.nodes {
        n.edition = n
            .edition
            .as_ref()
            .map(|_| "Aerospike Community Edition".into());
    }
    assert_caught(&policy, &w2, &p, "R6");
}

#[test]
fn defect_10_refilling_rf_nodes_is_refused_and_down_nodes_never_deadlock() {
    let err = ExamplePolicy::prod_east()
        .append("  - {name: a1b1-refill, scope: node, nodes: [a1, b1], source: empty}\n")
        .parse()
        .unwrap_err();
    assert!(err.to_string().contains("refills 2 nodes"), "{err}");

    let policy = prod_east(
        &[],
        "  - {name: a1b1-replace, scope: node, nodes: [a1, b1], source: current-volumes, accept_zombie_records: true}\n",
    );
    let w = world(&policy, |s| {
        s.failures = vec![
            ("a1".into(), Failure::Terminated),
            ("b1".into(), Failure::Terminated),
        ]
    });
    let p = restore(&policy, &w, "a1b1-replace");
    assert!(
        !ancestors(&p, "provision_instance:b1").contains("wait_cluster_stable:a1"),
        "b1 comes back without waiting for a cluster that cannot be whole without it"
    );
    assert_clean(&policy, &w, &p);
    // Reverted: b1 restored only after a1's full-size wait, which never ends.
    let mut bad = p.clone();
    let wait = bad
        .steps
        .iter()
        .position(|s| s.id == "wait_cluster_stable:a1")
        .unwrap();
    let moved = bad.steps.remove(wait);
    let first_b1 = bad
        .steps
        .iter()
        .position(|s| s.node.as_deref() == Some("b1"))
        .unwrap();
    bad.steps.insert(first_b1, moved);
    step_mut(&mut bad, "provision_instance:b1")
        .depends_on
        .push("wait_cluster_stable:a1".into());
    // Keep the listing order valid: everything of b1 after a1's wait.
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R8" && x.message.contains("never ends")),
        "{v:?}"
    );
    // Refill of two nodes at once in a plan: caught whatever validation said.
    let one = prod_east(&[], "");
    let w1 = world(&one, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    let mut refill = restore(&one, &w1, "a1-refill");
    let mut extra = step(&refill, "create_volume:a1:/dev/sdf").clone();
    extra.id = "create_volume:b1:/dev/sdf".into();
    extra.node = Some("b1".into());
    refill.steps.push(extra);
    assert_caught(&one, &w1, &refill, "R8");
}

#[test]
fn defect_11_volumes_are_never_detached_from_a_running_instance() {
    let policy = prod_east(&[], "");
    let w = world(&policy, |s| {
        s.failures = vec![(
            "a1".into(),
            Failure::Unreachable {
                delete_on_termination: true,
            },
        )]
    });
    let p = restore(&policy, &w, "replace-a1");
    for dev in ["/dev/sdf", "/dev/sdg", "/dev/sdh"] {
        assert!(ancestors(&p, &format!("detach_volume:a1:{dev}")).contains("stop_instance:a1"));
    }
    assert_clean(&policy, &w, &p);
    let bad = without(p.clone(), "stop_instance:a1");
    assert_caught(&policy, &w, &bad, "R7");
    // Peers that still count the node as a member: not a failed node; refused.
    let mut counted = w.clone();
    for n in counted.nodes.iter_mut().filter(|n| n.reachable) {
        n.cluster_size = Some(3);
    }
    let d = refusal(run(
        &policy,
        &counted,
        Operation::Restore("replace-a1".into()),
    ));
    assert_eq!(d.rule, Some("R14"));
    assert!(
        d.message.contains("still count it as a member"),
        "{}",
        d.message
    );
}

#[test]
fn defect_12_before_time_compares_snapshot_start_times() {
    let policy = prod_east(
        &[],
        "  - {name: a1-before, scope: node, nodes: [a1], source: 'before:2026-11-21T00:00:00Z', accept_zombie_records: true}\n",
    );
    let mut w = world(&policy, |s| s.newest_set_age = time::Duration::hours(10));
    // The set named 23:00 the day before had snapshots that started after midnight.
    let late = "bs-20261120T230000Z";
    for s in w.snapshots.iter_mut() {
        if s.tags.get("asdr:set").map(String::as_str) == Some("bs-20261120T230000Z") {
            s.start_time = datetime!(2026-11-21 00:10:00 UTC);
        }
    }
    assert!(
        w.snapshots
            .iter()
            .any(|s| s.tags.get("asdr:set").map(String::as_str) == Some(late))
    );
    let p = restore(&policy, &w, "a1-before");
    let snap = params(step(&p, "create_volume:a1:/dev/sdf"))["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let chosen = w.snapshots.iter().find(|s| s.id == snap).unwrap();
    assert_eq!(chosen.tags["asdr:set"], "bs-20261119T230000Z");
    assert_clean(&policy, &w, &p);
    let late_snap = w
        .snapshots
        .iter()
        .find(|s| {
            s.tags.get("asdr:set").map(String::as_str) == Some(late)
                && s.tags.get("asdr:node").map(String::as_str) == Some("a1")
                && s.tags.get("asdr:device").map(String::as_str) == Some("/dev/sdf")
        })
        .unwrap();
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "create_volume:a1:/dev/sdf"), |p| {
        p["snapshot_id"] = late_snap.id.clone().into()
    });
    assert_caught(&policy, &w, &bad, "R3");
}

#[test]
fn defect_13_a_replacement_keeps_the_failed_instances_subnet() {
    let policy = prod_east(&[], "");
    let mut w = world(&policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    let old = w.instances.iter_mut().find(|i| i.id == "i-0a1").unwrap();
    old.subnet_id = Some("subnet-0old".into());
    let p = restore(&policy, &w, "replace-a1");
    assert_eq!(
        params(step(&p, "provision_instance:a1"))["subnet_id"],
        "subnet-0old"
    );
    assert!(
        p.warnings
            .iter()
            .any(|x| x.rule == "R4" && x.message.contains("subnet-0old"))
    );
    assert_clean(&policy, &w, &p);
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "provision_instance:a1"), |p| {
        p["subnet_id"] = "subnet-0aaa".into()
    });
    assert_caught(&policy, &w, &bad, "R4");
    // An address outside the subnet's range is refused before anything happens.
    w.subnets.push(Subnet {
        region: None,
        id: "subnet-0old".into(),
        cidr: "10.0.9.0/24".into(),
        availability_zone: "us-east-1a".into(),
    });
    let d = refusal(run(&policy, &w, Operation::Restore("replace-a1".into())));
    assert!(
        d.message
            .contains("not in subnet subnet-0old (10.0.9.0/24)"),
        "{}",
        d.message
    );
}

#[test]
fn defect_14_instance_store_drives_are_required_and_checked() {
    let err = ExamplePolicy::prod_east()
        .edit("instance_store_volumes: 2", "instance_store_volumes: 0")
        .parse()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("shadowed primaries on 2 instance-store drives"),
        "{err}"
    );
    let community =
        std::fs::read_to_string(examples().join("community/templates/aerospike.conf.j2")).unwrap();
    assert!(
        !community.contains("10.0."),
        "the community example seeds its own peers"
    );
    let policy = prod_east(&[], "");
    let w = world(&policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    let p = restore(&policy, &w, "replace-a1");
    let mut small = w.clone();
    small.instance_types.insert(
        "i4i.2xlarge".into(),
        InstanceType {
            instance_store_drives: 0,
        },
    );
    assert!(run(&policy, &small, Operation::Restore("replace-a1".into())).is_err());
    assert_caught(&policy, &small, &p, "R4");
}

#[test]
fn defect_18_a_deleting_volume_is_not_a_drill_leftover() {
    let policy = per_node_policy();
    let mut w = world(&policy, |_| {});
    let mut v = w.volumes[0].clone();
    v.id = "vol-0000000000000d001".into();
    v.tags.clear();
    v.tags.insert("asdr:cluster".into(), "prod-east".into());
    v.tags.insert("asdr:drill".into(), "dr".into());
    v.tags.insert("asdr:plan".into(), "p-dr".into());
    v.state = VolumeState::Deleting;
    w.volumes.push(v.clone());
    assert!(asdr_planner::drill::leftovers(&w, "prod-east", "dr").is_empty());
    let p = run(&policy, &w, Operation::Teardown("dr".into())).unwrap();
    assert!(p.steps.is_empty(), "{:?}", ids(&p));
    v.id = "vol-0000000000000d002".into();
    v.state = VolumeState::Available;
    w.volumes.push(v);
    w.drill_resources.insert(
        "dr".into(),
        ["vol-0000000000000d001", "vol-0000000000000d002"]
            .iter()
            .map(|id| asdr_planner::drill::made_by(id, "p-dr"))
            .collect(),
    );
    let p = run(&policy, &w, Operation::Teardown("dr".into())).unwrap();
    assert_eq!(ids(&p), vec!["delete_volume:vol-0000000000000d002"]);
    assert_clean(&policy, &w, &p);
    // A teardown never deletes a production volume.
    let mut bad = p.clone();
    edit(&mut bad.steps[0], |p| {
        p["volume_id"] = w.volumes[0].id.clone().into()
    });
    assert_caught(&policy, &w, &bad, "R13");
}

#[test]
fn defect_19_new_volumes_keep_encryption_at_rest() {
    let policy = prod_east(&[], "");
    let key = "arn:aws:kms:us-east-1:111122223333:key/prod";
    let w = world(&policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)];
        s.kms_key = Some(key.into());
    });
    let p = restore(&policy, &w, "a1-refill");
    let c = step(&p, "create_volume:a1:/dev/sdf");
    assert_eq!(params(c)["encrypted"], true);
    assert_eq!(params(c)["kms_key_id"], key);
    assert!(
        p.changes
            .iter()
            .any(|c| c.reason.contains(&format!("encrypted with {key}")))
    );
    assert_clean(&policy, &w, &p);
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "create_volume:a1:/dev/sdf"), |p| {
        p["encrypted"] = false.into()
    });
    assert_caught(&policy, &w, &bad, "encryption");
    let mut bad = p.clone();
    edit(step_mut(&mut bad, "create_volume:a1:/dev/sdf"), |p| {
        p["kms_key_id"] = "alias/aws/ebs".into()
    });
    assert_caught(&policy, &w, &bad, "encryption");
    // Encrypted data whose key was not observed: refused rather than re-keyed.
    let mut unknown = w.clone();
    for v in &mut unknown.volumes {
        v.kms_key_id = None;
    }
    let d = refusal(run(
        &policy,
        &unknown,
        Operation::Restore("a1-refill".into()),
    ));
    assert!(
        d.message.contains("KMS key was not observed"),
        "{}",
        d.message
    );
    // From-backup restores keep the key too.
    let p = restore(&policy, &w, "a1-from-backup");
    assert_eq!(
        params(step(&p, "create_volume:a1:/dev/sdg"))["kms_key_id"],
        key
    );
}

#[test]
fn an_unknown_drill_is_named_as_a_drill_with_the_declared_ones() {
    let policy = per_node_policy();
    let w = world(&policy, |_| {});
    match run(&policy, &w, Operation::Drill("nope".into())) {
        Err(PlanError::UnknownDrill { name, known }) => {
            assert_eq!(name, "nope");
            assert_eq!(known, ["dr"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn defect_15_a_saved_plan_runs_only_if_it_re_plans_identically() {
    use asdr_planner::saved::{SavedPlanError, check_saved};
    let policy = prod_east(&[], "");
    let w = world(&policy, |s| s.newest_set_age = time::Duration::hours(31));
    let p = run(&policy, &w, Operation::Backup).unwrap();
    check_saved(&policy, &w, &p).unwrap();
    for op in [
        Operation::Backup,
        Operation::Restore("x".into()),
        Operation::Drill("d".into()),
        Operation::Teardown("d".into()),
    ] {
        assert_eq!(Operation::from_label(&op.label()), Some(op));
    }
    // One step appended (a delete nobody reviewed): refused, naming it.
    let mut edited = p.clone();
    let mut extra = edited.steps.last().unwrap().clone();
    extra.id = "delete_snapshot:snap-00000000000005002".into();
    extra.params = Params::DeleteSnapshot(asdr_planner::params::DeleteSnapshot {
        snapshot_id: "snap-00000000000005002".into(),
        set: String::new(),
        cluster_id: edited.cluster_id.clone(),
    });
    edited.steps.push(extra);
    match check_saved(&policy, &w, &edited) {
        Err(SavedPlanError::Edited { steps, .. }) => {
            assert_eq!(steps, ["delete_snapshot:snap-00000000000005002"])
        }
        other => panic!("{other:?}"),
    }
    // A changed world: stale before anything else.
    let mut moved = w.clone();
    moved.nodes[0].migrations_remaining = 3;
    assert!(matches!(
        check_saved(&policy, &moved, &p),
        Err(SavedPlanError::Stale { .. })
    ));
}

/// Review finding (trust boundaries): two tags (`asdr:cluster`, `asdr:set`) on any snapshot in
/// the account made retention delete it as a set that "never completed". A never-completed
/// set's snapshot goes only when it is of a volume known as the cluster's (its nodes' volumes,
/// its manifests' members, its complete sets' volumes): a stranger is left and said, and a plan
/// that deletes it anyway is refused by the verifier. The cluster's own leftovers still go.
#[test]
fn a_foreign_snapshot_carrying_a_never_completed_sets_tags_is_never_deleted() {
    let policy = prod_east(&[], "");
    let mut w = world(&policy, |_| {});
    let attached = w.instances[0].block_devices[0].volume_id.clone();
    let template = w
        .snapshots
        .iter()
        .find(|s| s.region.is_none())
        .unwrap()
        .clone();
    let leftover = |id: &str, volume: &str| {
        let mut s = template.clone();
        s.id = id.into();
        s.volume_id = volume.into();
        s.tags.clear();
        s.tags.insert("asdr:cluster".into(), "prod-east".into());
        s.tags
            .insert("asdr:set".into(), "bs-20250101T000000Z".into());
        s.start_time = datetime!(2025-01-01 00:00 UTC);
        s
    };
    w.snapshots
        .push(leftover("snap-0foreign000001", "vol-0anotherteam01"));
    w.snapshots.push(leftover("snap-0ownleftover01", &attached));
    // The cluster's own leftover of a volume replaced since (a node restored onto new volumes):
    // its journal recorded taking it (operator review), so it goes too.
    let mut taken = leftover("snap-0ownoldvolume1", "vol-0replacedsince1");
    taken
        .tags
        .insert("asdr:plan".into(), "p-20251231T000000Z-0001".into());
    w.snapshots.push(taken);
    w.recorded_snapshots.insert(asdr_planner::drill::made_by(
        "snap-0ownoldvolume1",
        "p-20251231T000000Z-0001",
    ));
    let p = run(&policy, &w, Operation::Backup).unwrap();
    let ids = ids(&p);
    assert!(
        !ids.contains(&"delete_snapshot:snap-0foreign000001"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"delete_snapshot:snap-0ownleftover01"),
        "the cluster's own leftover still goes: {ids:?}"
    );
    assert!(
        ids.contains(&"delete_snapshot:snap-0ownoldvolume1"),
        "a snapshot its journal recorded taking goes: {ids:?}"
    );
    assert!(
        p.warnings.iter().any(|x| x.message.contains(
            "snap-0foreign000001 carries set bs-20250101T000000Z's tags but is a snapshot of no volume asdr has seen as this cluster's"
        )),
        "{:?}",
        p.warnings
    );
    assert_clean(&policy, &w, &p);
    // A tampered plan deleting it is refused.
    let mut bad = p.clone();
    let step = step_mut(&mut bad, "delete_snapshot:snap-0ownleftover01");
    edit(step, |v| v["snapshot_id"] = "snap-0foreign000001".into());
    step.id = "delete_snapshot:snap-0foreign000001".into();
    let v = assert_caught(&policy, &w, &bad, "R13");
    assert!(
        v.iter()
            .any(|x| x.message.contains("not proven the cluster's")),
        "{v:?}"
    );
}

/// Review finding (trust boundaries): with a1's pinned instance terminated, an instance tagged
/// for a1 at its address but in another subnet (another VPC's same address plan, or anyone who
/// can tag) was taken for a1: `replace-a1` stopped and terminated it and attached its volume as
/// a1's data. Found by tags, a node's instance must stand in the pinned instance's subnet.
#[test]
fn an_instance_tagged_for_a_node_in_another_subnet_is_never_taken_for_it() {
    let policy = prod_east(&[], "");
    let mut w = world(&policy, |s| {
        s.failures = vec![("a1".into(), Failure::Terminated)]
    });
    let pinned = w
        .instances
        .iter()
        .find(|i| i.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .unwrap()
        .clone();
    let mut forged = pinned.clone();
    forged.id = "i-0000victim".into();
    forged.state = asdr_planner::world::InstanceState::Running;
    forged.subnet_id = Some("subnet-0othervpc".into());
    forged.private_ip = Some("10.0.1.11".into());
    let mut vol = w.volumes[0].clone();
    vol.id = "vol-0victimdata".into();
    vol.attachments.clear();
    vol.tags.clear();
    forged.block_devices = vec![asdr_planner::world::BlockDevice {
        device_name: "/dev/sdf".into(),
        volume_id: vol.id.clone(),
        delete_on_termination: true,
    }];
    w.volumes.push(vol);
    w.instances.push(forged);
    let p = restore(&policy, &w, "replace-a1");
    let text = serde_json::to_string(&p.steps).unwrap();
    assert!(!text.contains("i-0000victim"), "{:?}", ids(&p));
    assert!(!text.contains("vol-0victimdata"), "{:?}", ids(&p));
    assert_clean(&policy, &w, &p);
}

/// Suspected in review (trust boundaries): store URIs in a plan came from world files and store
/// listings unchecked. Every URI a plan reads, writes or deletes in must lie in a store the
/// policy names and never climb: an edited plan sending an archive elsewhere, or reading one
/// from a path that climbs out, is refused.
#[test]
fn a_plan_touching_a_store_the_policy_does_not_name_is_refused() {
    let policy = prod_east(&[], "");
    let w = world(&policy, |s| s.newest_set_age = time::Duration::hours(31));
    let p = run(&policy, &w, Operation::Backup).unwrap();
    assert_clean(&policy, &w, &p);
    let copy = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::CopySmd)
        .expect("a backup archives SMD")
        .id
        .clone();
    let inside = params(step(&p, &copy))["to"].as_str().unwrap().to_string();
    for elsewhere in [
        "s3://someone-elses-bucket/a1.smd.tar".to_string(),
        inside.replace("/prod-east/", "/prod-east/../../../elsewhere/"),
    ] {
        let mut bad = p.clone();
        edit(step_mut(&mut bad, &copy), |v| {
            v["to"] = elsewhere.clone().into()
        });
        let v = assert_caught(&policy, &w, &bad, "R13");
        assert!(
            v.iter()
                .any(|x| x.message.contains("outside the stores the policy names")),
            "{elsewhere}: {v:?}"
        );
    }
}

/// Review finding (trust boundaries): in a set made before manifests, a snapshot of another
/// volume tagged as a1's /dev/sdf (and marked) with a smaller id was taken as a1's data by a
/// restore. Two snapshots claiming one device are told apart by the volume that device has been
/// across the cluster's sets; the stranger is never restored.
#[test]
fn a_forged_member_of_a_set_without_a_manifest_is_never_restored() {
    let policy = prod_east(&[], "");
    let mut w = world(&policy, |_| {});
    assert!(w.set_manifests.is_empty(), "sets made before manifests");
    let newest = w
        .snapshots
        .iter()
        .filter(|s| s.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .max_by_key(|s| s.start_time)
        .unwrap()
        .clone();
    let mut forged = newest.clone();
    forged.id = "snap-00000000000000001".into();
    forged.volume_id = "vol-0attacker".into();
    w.snapshots.push(forged);
    let p = restore(&policy, &w, "a1-from-backup");
    let text = serde_json::to_string(&p.steps).unwrap();
    assert!(!text.contains("snap-00000000000000001"), "{:?}", ids(&p));
    assert!(text.contains(&newest.id), "{:?}", ids(&p));
    assert_clean(&policy, &w, &p);
}
