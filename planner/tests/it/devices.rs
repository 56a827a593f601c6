//! R5, the path is the volume: a restored node's attaches come one at a time in the order of the
//! NVMe numbers its config names, and its start checks each path against the volume attached
//! for it. The verifier refuses a plan that drops either.

use crate::edit;
use asdr_planner::params::{Params, Ref};
use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, Step, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

fn world(policy: &Policy) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    world_for(policy, &spec)
}

fn step_mut<'p>(p: &'p mut Plan, id: &str) -> &'p mut Step {
    p.steps.iter_mut().find(|s| s.id == id).unwrap()
}

fn step<'p>(p: &'p Plan, id: &str) -> &'p Step {
    p.steps.iter().find(|s| s.id == id).unwrap()
}

fn r5(policy: &Policy, w: &World, p: &Plan) -> Vec<String> {
    verify(policy, w, p)
        .into_iter()
        .filter(|v| v.rule == "R5")
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn r5_a_restored_nodes_attaches_are_chained_and_its_start_checks_every_path() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(&policy);
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    for node in ["a1", "b1", "a2"] {
        let sdf = format!("attach_volume:{node}:/dev/sdf");
        let sdg = format!("attach_volume:{node}:/dev/sdg");
        let sdh = format!("attach_volume:{node}:/dev/sdh");
        // nvme3n1 (sdf), then nvme4n1 (sdg), then the named /dev/sdh.
        assert!(step(&p, &sdg).depends_on.contains(&sdf), "{node}");
        assert!(step(&p, &sdh).depends_on.contains(&sdg), "{node}");
        let Params::StartNode(s) = &step(&p, &format!("start_node:{node}")).params else {
            panic!("a start");
        };
        let checked: Vec<(&str, &str)> = s
            .devices
            .iter()
            .map(|d| (d.ebs.as_str(), d.path.as_str()))
            .collect();
        assert_eq!(
            checked,
            [
                ("/dev/sdf", "/dev/nvme3n1"),
                ("/dev/sdg", "/dev/nvme4n1"),
                ("/dev/sdh", "/dev/sdh")
            ],
            "{node}"
        );
        assert_eq!(s.instance_store, ["/dev/nvme1n1", "/dev/nvme2n1"], "{node}");
        for d in &s.devices {
            let Params::AttachVolume(a) =
                &step(&p, &format!("attach_volume:{node}:{}", d.ebs)).params
            else {
                panic!("an attach");
            };
            assert_eq!(d.volume_id, a.volume_id, "{node} {}", d.ebs);
        }
    }
    assert!(r5(&policy, &w, &p).is_empty(), "{:?}", r5(&policy, &w, &p));
}

#[test]
fn r5_the_verifier_refuses_a_start_that_does_not_check_its_attached_volumes() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(&policy);
    let p = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap();
    assert!(r5(&policy, &w, &p).is_empty(), "{:?}", r5(&policy, &w, &p));

    let mut unchecked = p.clone();
    edit(step_mut(&mut unchecked, "start_node:a1"), |v| {
        v.as_object_mut().unwrap().remove("devices");
    });
    let v = r5(&policy, &w, &unchecked);
    assert!(v.iter().any(|m| m.contains("without checking")), "{v:?}");

    let mut no_primaries = p.clone();
    edit(step_mut(&mut no_primaries, "start_node:a1"), |v| {
        v.as_object_mut().unwrap().remove("instance_store");
    });
    let v = r5(&policy, &w, &no_primaries);
    assert!(
        v.iter()
            .any(|m| m
                .contains("/dev/nvme1n1 (namespace users's primary) is an instance-store drive")),
        "{v:?}"
    );

    let mut wrong_path = p.clone();
    edit(step_mut(&mut wrong_path, "start_node:a1"), |v| {
        v["devices"][0]["path"] = "/dev/nvme4n1".into();
    });
    let v = r5(&policy, &w, &wrong_path);
    assert!(
        v.iter()
            .any(|m| m.contains("aerospike.conf names /dev/nvme3n1")),
        "{v:?}"
    );

    let mut other_volume = p.clone();
    edit(step_mut(&mut other_volume, "start_node:a1"), |v| {
        v["devices"][0]["volume_id"] = "vol-0ther".into();
    });
    let v = r5(&policy, &w, &other_volume);
    assert!(v.iter().any(|m| m.contains("another volume")), "{v:?}");

    // Two attaches of one node side by side: the kernel numbers them as they arrive.
    let mut parallel = p.clone();
    step_mut(&mut parallel, "attach_volume:a1:/dev/sdg")
        .depends_on
        .retain(|d| !d.starts_with("attach_volume:"));
    let v = r5(&policy, &w, &parallel);
    assert!(v.iter().any(|m| m.contains("attaches beside")), "{v:?}");
    assert!(
        matches!(
            &step(&p, "attach_volume:a1:/dev/sdg").params,
            Params::AttachVolume(a) if matches!(a.volume_id, Ref::Learned { .. })
        ),
        "the restore attaches volumes it creates"
    );
}

/// The start checks the policy's paths; the node opens what the config asdr writes names. A
/// template that writes other device lines (here each shadow before its primary: the blank
/// instance-store drive would be taken as the authoritative shadow) is refused by validation,
/// and again by the planner on its own (a policy built without validation), naming both.
#[test]
fn r5_a_template_that_renders_other_devices_than_the_policy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = ExamplePolicy::prod_east().write_to(dir.path());
    let mut policy = asdr_specs::load(&path).unwrap_or_else(|d| panic!("{d}"));
    let t = dir.path().join("templates/aerospike.conf.j2");
    let text = std::fs::read_to_string(&t).unwrap();
    let line = "device {{ d.device }}{% if d.shadow %} {{ d.shadow }}{% endif %}";
    assert!(text.contains(line));
    let swapped = text.replace(
        line,
        "device {% if d.shadow %}{{ d.shadow }} {% endif %}{{ d.device }}",
    );
    std::fs::write(&t, &swapped).unwrap();
    let refused = asdr_specs::load(&path).expect_err("validation refuses it");
    assert!(
        refused.to_string().contains(
            "[R5] config template templates/aerospike.conf.j2 renders namespace `users` of node `a1` with [device /dev/nvme3n1 /dev/nvme1n1"
        ),
        "{refused}"
    );
    // The planner's own check, on the policy as validated with the template swapped after.
    policy.cluster.config.template = asdr_specs::Template::compile(&swapped).unwrap();
    let w = world(&policy);
    let err = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "renders namespace `users` of node `a1` with [device /dev/nvme3n1 /dev/nvme1n1"
        ),
        "{err}"
    );
}
