//! Zone loss (R4) through the binary on world files: a move that fails halfway is resumed (never
//! refused as "partly built"), and until the policy places the moved nodes where they run, every
//! other plan is refused — it would take them for lost and build twins in the lost zone.

use crate::apply::Scratch;
use asdr_planner::world::World;

const LOSE_1A: &str = "restores:\n  - name: lose-1a\n    scope: node\n    nodes: [a1, a2]\n    source: latest-backup\n    accept_zombie_records: true\n    zone: {to: us-east-1c, private_ips: {a1: 10.0.3.11, a2: 10.0.3.12}}\n";

/// prod-east with racks and a subnet in us-east-1c; us-east-1a lost: a1 terminated, a2 running
/// but not answering; b1 alone.
fn zone_scratch() -> (Scratch, &'static str) {
    let s = Scratch::of("prod-east");
    s.edit(
        "asdr.yaml",
        "subnets: {us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb}",
        "subnets: {us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb, us-east-1c: subnet-0ccc}",
    );
    s.edit(
        "asdr.yaml",
        "  instance:                       # defaults",
        "  racks: {us-east-1a: 1, us-east-1b: 2}\n  instance:                       # defaults",
    );
    s.edit("asdr.yaml", "restores:\n", LOSE_1A);
    let w = "world-failed-node.yaml";
    let mut world: World = asdr_providers::world_file::load(&s.path(w)).unwrap();
    for n in world.nodes.iter_mut() {
        match n.name.as_str() {
            "a2" => {
                *n = asdr_planner::world::NodeObservation {
                    name: "a2".into(),
                    reachable: false,
                    ..Default::default()
                }
            }
            "b1" => {
                n.cluster_size = Some(1);
                for ns in n.namespaces.iter_mut() {
                    ns.rack_id = Some(2);
                }
            }
            _ => {}
        }
    }
    let text = asdr_providers::world_file::to_string(
        &world,
        asdr_providers::world_file::Format::of(&s.path(w)),
    )
    .unwrap();
    std::fs::write(s.path(w), text).unwrap();
    (s, w)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn r4_a_zone_move_that_failed_halfway_is_resumed_and_other_plans_wait_for_the_policy() {
    let (s, w) = zone_scratch();
    std::fs::write(s.path("sim.yaml"), "faults:\n  - step: start_node:a2\n").unwrap();
    // a1's wait for the whole cluster would otherwise run to its deadline once a2 failed.
    let sim = [
        ("ASDR_SIMULATION", s.path("sim.yaml").display().to_string()),
        ("ASDR_STEP_TIMEOUT_MS", "3000".to_string()),
    ];
    let failed = s.asdr(w, &["apply", "--yes", "--restore", "lose-1a"], &sim);
    assert!(!failed.status.success(), "{}", text(&failed));

    // Until the policy is updated, nothing else is planned: a1 runs in us-east-1c.
    for args in [
        &["plan"][..],
        &["plan", "--restore", "a1-from-backup"][..],
        &["plan", "--restore", "full-cluster"][..],
    ] {
        let refused = s.asdr(w, args, &[]);
        let out = text(&refused);
        assert!(!refused.status.success(), "{args:?}: {out}");
        assert!(
            out.contains("moved there by restore `lose-1a`")
                && out.contains("asdr would take it for lost"),
            "{args:?}: {out}"
        );
    }
    let status = s.asdr(w, &["status"], &[]);
    assert!(!status.status.success());
    assert!(
        text(&status).contains("since restore `lose-1a` moved it"),
        "{}",
        text(&status)
    );
    // b1 counts the moved a1, which answers where the policy does not look yet: not a split.
    assert!(
        !text(&status).contains("the cluster is split"),
        "{}",
        text(&status)
    );

    // The failed move is resumed, not refused as partly built.
    let resumed = s.asdr(w, &["apply", "--yes", "--restore", "lose-1a"], &[]);
    let out = text(&resumed);
    assert!(resumed.status.success(), "{out}");
    assert!(!out.contains("partly built"), "{out}");
    let world: World = asdr_providers::world_file::load(&s.path(w)).unwrap();
    for (node, ip) in [("a1", "10.0.3.11"), ("a2", "10.0.3.12")] {
        let built: Vec<_> = world
            .instances
            .iter()
            .filter(|i| {
                i.tags.get("asdr:node").map(String::as_str) == Some(node)
                    && i.availability_zone == "us-east-1c"
            })
            .collect();
        assert_eq!(built.len(), 1, "{node}: one replacement, not two");
        assert_eq!(built[0].private_ip.as_deref(), Some(ip));
        assert!(built[0].tags.contains_key("asdr:restore-complete"));
    }
}

/// A move that failed before a2's replacement launched, resumed after the lost zone gave a2's
/// old instance back (it runs again, with a2's node id): the resume stops it before the
/// replacement launches, so the two never run together.
#[test]
fn r4_a_resumed_move_stops_an_old_instance_that_runs_again_before_launching_beside_it() {
    let (s, w) = zone_scratch();
    std::fs::write(
        s.path("sim.yaml"),
        "faults:\n  - step: provision_instance:a2\n",
    )
    .unwrap();
    let env = [
        ("ASDR_SIMULATION", s.path("sim.yaml").display().to_string()),
        ("ASDR_STEP_TIMEOUT_MS", "3000".to_string()),
    ];
    let failed = s.asdr(w, &["apply", "--yes", "--restore", "lose-1a"], &env);
    assert!(!failed.status.success(), "{}", text(&failed));
    // The zone comes back: a2's old instance runs again.
    let mut world: World = asdr_providers::world_file::load(&s.path(w)).unwrap();
    let old = world
        .instances
        .iter_mut()
        .find(|i| {
            i.tags.get("asdr:node").map(String::as_str) == Some("a2")
                && i.availability_zone == "us-east-1a"
        })
        .unwrap();
    old.state = asdr_planner::world::InstanceState::Running;
    let old_id = old.id.clone();
    std::fs::write(
        s.path(w),
        asdr_providers::world_file::to_string(
            &world,
            asdr_providers::world_file::Format::of(&s.path(w)),
        )
        .unwrap(),
    )
    .unwrap();
    let resumed = s.asdr(w, &["apply", "--yes", "--restore", "lose-1a"], &[]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    let world: World = asdr_providers::world_file::load(&s.path(w)).unwrap();
    let running: Vec<&str> = world
        .instances
        .iter()
        .filter(|i| {
            i.tags.get("asdr:node").map(String::as_str) == Some("a2")
                && i.state == asdr_planner::world::InstanceState::Running
        })
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(running.len(), 1, "one a2 runs: {running:?}");
    assert_ne!(running[0], old_id, "the replacement, not the old instance");
}
