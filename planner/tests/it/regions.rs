//! Copies of backup sets in other regions (R16): each snapshot copied once it is complete, the
//! SMD archive beside it, a set complete in a region only once whole there and at home, missing
//! copies caught up without a new set, retention per region, copies in flight bounded.

use std::collections::HashSet;

use asdr_planner::params::{Params, Ref};
use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
use asdr_planner::world::{SnapshotState, World};
use asdr_planner::{Operation, Plan, PlanError, StepKind, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const WEST: &str = "us-west-2";

fn policy_with_copies(copies: &str) -> Policy {
    ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            &format!("  copies:\n{copies}\n  max_nodes_at_once: 1 "),
        )
        .policy()
}

fn west(extra: &str) -> Policy {
    policy_with_copies(&format!(
        "    - {{region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east{extra}}}"
    ))
}

/// The newest set with copies in another region.
fn newest_copied(w: &World) -> &String {
    w.snapshots
        .iter()
        .filter(|s| s.region.is_some())
        .filter_map(|s| s.tags.get("asdr:set"))
        .max()
        .expect("copies exist")
}

/// Whether the verifier refused under R16 with a message containing `fragment`.
fn r16(v: &[asdr_planner::Violation], fragment: &str) -> bool {
    v.iter()
        .any(|x| x.rule == "R16" && x.message.contains(fragment))
}

fn world(policy: &Policy, newest_age_hours: i64, sets: usize) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(newest_age_hours);
    spec.sets = sets;
    world_for(policy, &spec)
}

fn backup(policy: &Policy, world: &World) -> Plan {
    plan(policy, world, NOW, &Operation::Backup).unwrap_or_else(|e| panic!("{e}"))
}

fn ids(p: &Plan, kind: StepKind) -> Vec<&str> {
    p.steps
        .iter()
        .filter(|s| s.kind() == kind)
        .map(|s| s.id.as_str())
        .collect()
}

fn ancestors(p: &Plan, id: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(s) = stack.pop() {
        let step = p.steps.iter().find(|x| x.id == s).expect("in the plan");
        for d in &step.depends_on {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn r16_a_due_backup_copies_each_snapshot_once_its_wait_saw_it_complete_and_marks_the_region_after_home()
 {
    let policy = west(", kms_key_id: alias/asdr-dr");
    let w = world(&policy, 30, 3);
    let p = backup(&policy, &w);
    let set = asdr_planner::set_id(NOW);
    let copies: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::CopySnapshot && s.params.set() == Some(&set))
        .collect();
    // 3 nodes × 3 EBS devices of the new set; the three older sets are caught up beside it.
    assert_eq!(copies.len(), 9, "{:#?}", ids(&p, StepKind::CopySnapshot));
    assert_eq!(ids(&p, StepKind::CopySnapshot).len(), 36);
    for c in &copies {
        assert_eq!(c.region.as_deref(), Some(WEST));
        let Params::CopySnapshot(cp) = &c.params else {
            unreachable!()
        };
        let wait = format!("wait_snapshot:{}:{}:{}", cp.node, cp.device, cp.set);
        assert_eq!(
            cp.source,
            Ref::Learned {
                from_step: wait.clone()
            }
        );
        assert!(c.depends_on.contains(&wait), "{} after {wait}", c.id);
        assert_eq!(cp.source_region, "us-east-1");
        assert!(cp.encrypted);
        assert_eq!(cp.kms_key_id.as_deref(), Some("alias/asdr-dr"));
        assert_eq!(
            cp.tags.get("asdr:source-region").map(String::as_str),
            Some("us-east-1")
        );
        assert_eq!(cp.tags.get("asdr:device"), Some(&cp.device));
        assert!(!cp.tags.contains_key("asdr:complete"));
    }
    let mark = format!("mark_set_complete:{WEST}:{set}");
    let before = ancestors(&p, &mark);
    assert!(before.contains(&format!("mark_set_complete:{set}")));
    assert!(before.contains(&format!("copy_smd_archive:{WEST}:{set}")));
    for c in &copies {
        assert!(before.contains(&c.id));
    }
    let smd = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::CopySmdArchive)
        .expect("the SMD archive is copied");
    let Params::CopySmdArchive(a) = &smd.params else {
        unreachable!()
    };
    assert!(a.to.starts_with("s3://acme-dr-west/asdr/prod-east/prod-east/"));
    assert!(smd.depends_on.contains(&format!("copy_smd:{set}")));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "limit" && w.message.contains("at most 5")),
        "{:?}",
        p.warnings
    );
    assert!(verify(&policy, &w, &p).is_empty());
}

#[test]
fn r16_a_region_without_copies_is_caught_up_without_a_new_set() {
    let policy = west(", retain: {count: 2}");
    let w = world(&policy, 2, 3);
    let p = backup(&policy, &w);
    assert!(ids(&p, StepKind::SnapshotInstance).is_empty(), "no new set");
    let sets: HashSet<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::CopySnapshot)
        .filter_map(|s| s.params.set())
        .collect();
    assert_eq!(sets.len(), 2, "the newest two complete sets: {sets:?}");
    for s in p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::CopySnapshot)
    {
        let Params::CopySnapshot(cp) = &s.params else {
            unreachable!()
        };
        let src = cp.source.known().expect("a completed snapshot of the set");
        let x = w.snapshots.iter().find(|x| x.id == src).expect("exists");
        assert_eq!(x.state, SnapshotState::Completed);
        assert_eq!(x.tags.get("asdr:set"), Some(&cp.set));
    }
    assert_eq!(ids(&p, StepKind::MarkSetComplete).len(), 2);
    assert!(
        p.changes.iter().any(|c| c.reason.contains("catching up")),
        "the plan says why"
    );
}

#[test]
fn r16_copies_complete_in_the_region_plan_nothing_more() {
    let policy = west(", retain: {count: 2}");
    let mut w = world(&policy, 2, 3);
    copy_sets(&mut w, &policy, 0, 2, false);
    let p = backup(&policy, &w);
    assert!(
        p.steps.is_empty(),
        "{:#?}",
        p.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
}

#[test]
fn r16_copies_are_never_taken_for_the_clusters_own_snapshots() {
    // The cluster's region lost every set; the copies elsewhere are whole. A backup is due at
    // home, and a restore at home has nothing to restore from.
    let policy = west("");
    let mut w = world(&policy, 2, 2);
    copy_sets(&mut w, &policy, 0, 2, false);
    w.snapshots.retain(|s| s.region.is_some());
    w.smd_archives
        .retain(|a| a.uri.starts_with("s3://acme-dr-west"));
    let p = backup(&policy, &w);
    assert_eq!(
        ids(&p, StepKind::SnapshotInstance).len(),
        3,
        "a new set at home"
    );
    assert!(
        p.steps
            .iter()
            .filter(|s| s.kind() == StepKind::DeleteSnapshot)
            .all(|s| s.region.is_some()),
        "nothing at home to delete"
    );
    let r = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into()));
    assert!(matches!(r, Err(PlanError::Refused(_))), "{r:?}");
}

#[test]
fn r16_retention_runs_per_region_and_keeps_the_regions_newest_complete_copy() {
    let policy = west(", retain: {count: 1}");
    let mut w = world(&policy, 2, 3);
    copy_sets(&mut w, &policy, 0, 3, false);
    let p = backup(&policy, &w);
    let deleted: HashSet<String> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
        .map(|s| {
            assert_eq!(s.region.as_deref(), Some(WEST), "home keeps its 7");
            s.params.set().unwrap().to_string()
        })
        .collect();
    assert_eq!(deleted.len(), 2, "the two older copies go: {deleted:?}");
    let newest = newest_copied(&w);
    assert!(!deleted.contains(newest));

    // Every copy too old for max_age: the region still keeps its newest complete one.
    let policy = west(", retain: {max_age: 1d}");
    let mut w = world(&policy, 50, 3);
    copy_sets(&mut w, &policy, 0, 3, false);
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let west_deleted: HashSet<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot && s.region.is_some())
        .filter_map(|s| s.params.set())
        .collect();
    assert_eq!(west_deleted.len(), 2, "{west_deleted:?}");
    let mark = format!("mark_set_complete:{WEST}:{}", asdr_planner::set_id(NOW));
    for d in p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot && s.region.is_some())
    {
        assert!(
            d.depends_on.contains(&mark),
            "{} waits for the new copy",
            d.id
        );
    }
}

#[test]
fn r16_no_more_copies_in_flight_than_max_in_flight_and_the_verifier_counts_them() {
    let policy = west(", max_in_flight: 2");
    let w = world(&policy, 30, 3);
    let mut p = backup(&policy, &w);
    assert!(verify(&policy, &w, &p).is_empty());
    assert!(p.warnings.iter().any(|x| x.message.contains("at most 2")));
    // A tampered plan: every copy free to start at once.
    let waits: HashSet<String> = p
        .steps
        .iter()
        .filter(|s| s.region.is_some() && s.kind() == StepKind::WaitSnapshot)
        .map(|s| s.id.clone())
        .collect();
    for s in p
        .steps
        .iter_mut()
        .filter(|s| s.kind() == StepKind::CopySnapshot)
    {
        s.depends_on.retain(|d| !waits.contains(d));
    }
    let v = verify(&policy, &w, &p);
    assert!(r16(&v, "in flight to us-west-2"), "{v:?}");
}

#[test]
fn r16_the_verifier_refuses_a_copy_of_an_incomplete_snapshot_and_a_region_marked_without_smd() {
    let policy = west(", retain: {count: 2}");
    let mut w = world(&policy, 2, 3);
    let p = backup(&policy, &w);
    // The source of a catch-up copy turns out not completed.
    let mut tampered = p.clone();
    let src = tampered
        .steps
        .iter()
        .find_map(|s| match &s.params {
            Params::CopySnapshot(c) => c.source.known().map(str::to_string),
            _ => None,
        })
        .unwrap();
    w.snapshots.iter_mut().find(|s| s.id == src).unwrap().state = SnapshotState::Pending;
    let v = verify(&policy, &w, &tampered);
    assert!(r16(&v, "not completed"), "{v:?}");
    w.snapshots.iter_mut().find(|s| s.id == src).unwrap().state = SnapshotState::Completed;

    // The SMD archive copy dropped: the region's mark has nothing to stand on.
    tampered
        .steps
        .retain(|s| s.kind() != StepKind::CopySmdArchive);
    for s in &mut tampered.steps {
        s.depends_on.retain(|d| !d.starts_with("copy_smd_archive:"));
    }
    let v = verify(&policy, &w, &tampered);
    assert!(r16(&v, "SMD archive"), "{v:?}");
}

#[test]
fn r16_a_set_being_copied_is_not_deleted_at_home() {
    let policy = ExamplePolicy::prod_east()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 1}")
        .edit(
            "  max_nodes_at_once: 1 ",
            "  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east, retain: {count: 3}}\n  max_nodes_at_once: 1 ",
        )
        .policy();
    let mut w = world(&policy, 2, 3);
    // The second newest set's copy is still under way in us-west-2.
    copy_sets(&mut w, &policy, 0, 2, false);
    let second = {
        let mut sets: Vec<&String> = w
            .snapshots
            .iter()
            .filter(|s| s.region.is_none())
            .filter_map(|s| s.tags.get("asdr:set"))
            .collect();
        sets.sort();
        sets.dedup();
        sets[sets.len() - 2].clone()
    };
    for s in w
        .snapshots
        .iter_mut()
        .filter(|s| s.region.is_some() && s.tags.get("asdr:set") == Some(&second))
    {
        s.state = SnapshotState::Pending;
        s.tags.remove("asdr:complete");
    }
    let p = backup(&policy, &w);
    let home_deleted: HashSet<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot && s.region.is_none())
        .filter_map(|s| s.params.set())
        .collect();
    assert!(!home_deleted.contains(second.as_str()), "{home_deleted:?}");
    assert!(!home_deleted.is_empty(), "the oldest set still goes");
    // The pending copies are waited for in their lanes and the set marked there after.
    assert!(
        p.steps
            .iter()
            .any(|s| s.id == format!("mark_set_complete:{WEST}:{second}"))
    );
    // A tampered plan deleting it at home is refused.
    let mut tampered = p.clone();
    let victim = w
        .snapshots
        .iter()
        .find(|s| s.region.is_none() && s.tags.get("asdr:set") == Some(&second))
        .unwrap();
    tampered.steps.push(asdr_planner::Step {
        id: format!("delete_snapshot:{}", victim.id),
        params: Params::DeleteSnapshot(asdr_planner::params::DeleteSnapshot {
            snapshot_id: victim.id.clone(),
            set: second.clone(),
            cluster_id: tampered.cluster_id.clone(),
        }),
        node: None,
        region: None,
        depends_on: vec![],
        cleanup: false,
    });
    let v = verify(&policy, &w, &tampered);
    assert!(r16(&v, "being copied"), "{v:?}");
}

/// The example policy with copies to us-west-2, a restore `dr-west` there, and a drill of it.
fn dr_west() -> Policy {
    restore_elsewhere("private_ips: {a1: 10.1.1.11, b1: 10.1.2.11, a2: 10.1.1.12}").policy()
}

/// The example policy copying to us-west-2, with a restore `dr-west` there at `addresses`.
fn restore_elsewhere(addresses: &str) -> ExamplePolicy {
    ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            "  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east}\n  max_nodes_at_once: 1 ",
        )
        .edit(
            "  - name: full-cluster\n",
            &format!("  - name: dr-west\n    scope: cluster\n    source: latest-backup\n    region: us-west-2\n    target:\n      subnets: {{us-west-2a: subnet-w1, us-west-2b: subnet-w2}}\n      {addresses}\n      security_groups: [sg-west]\n      ami: ami-0west\n  - name: full-cluster\n"),
        )
}

fn restore(policy: &Policy, world: &World, name: &str) -> Result<Plan, PlanError> {
    plan(policy, world, NOW, &Operation::Restore(name.into()))
}

#[test]
fn r16_a_restore_into_another_region_builds_a_new_cluster_there_from_the_copies_only() {
    let policy = dr_west();
    let mut w = world(&policy, 2, 3);
    copy_sets(&mut w, &policy, 0, 2, false);
    let p = restore(&policy, &w, "dr-west").unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.steps.is_empty());
    let west_snaps: HashSet<&str> = w
        .snapshots
        .iter()
        .filter(|s| s.region.as_deref() == Some(WEST))
        .map(|s| s.id.as_str())
        .collect();
    let newest_west = newest_copied(&w);
    for s in &p.steps {
        assert_eq!(
            s.region.as_deref(),
            Some(WEST),
            "{} acts in us-west-2",
            s.id
        );
        assert!(
            !matches!(
                s.kind(),
                StepKind::StopNode
                    | StepKind::TerminateInstance
                    | StepKind::DetachVolume
                    | StepKind::DeleteSnapshot
                    | StepKind::StopInstance
            ),
            "{} touches nothing that exists",
            s.id
        );
        if let Some(n) = &s.node {
            assert!(n.ends_with("@dr-west"), "{n}");
        }
        match &s.params {
            Params::CreateVolume(c) => {
                let id = c.snapshot_id.as_deref().unwrap();
                assert!(west_snaps.contains(id), "{id} is a copy in us-west-2");
                let snap = w.snapshots.iter().find(|x| x.id == id).unwrap();
                assert_eq!(snap.tags.get("asdr:set"), Some(newest_west));
                assert!(c.availability_zone.starts_with(WEST));
            }
            Params::ProvisionInstance(i) => {
                assert!(i.private_ip.starts_with("10.1."), "{}", i.private_ip);
                assert_eq!(i.ami, "ami-0west");
                assert_eq!(i.security_groups, vec!["sg-west".to_string()]);
                let zone_ok = (i.availability_zone == "us-west-2a"
                    && i.subnet_id.as_deref() == Some("subnet-w1"))
                    || (i.availability_zone == "us-west-2b"
                        && i.subnet_id.as_deref() == Some("subnet-w2"));
                assert!(zone_ok, "{i:?}");
                assert_eq!(
                    i.tags.get("asdr:restore").map(String::as_str),
                    Some("dr-west")
                );
            }
            Params::WriteConfig(c) => {
                assert!(c.content.contains("10.1.1.11") && c.content.contains("10.1.2.11"));
                for prod in ["10.0.1.11", "10.0.2.11", "10.0.1.12"] {
                    assert!(!c.content.contains(prod), "the new peers, never {prod}");
                }
            }
            Params::RestoreSmd(r) => {
                assert!(r.from.starts_with("s3://acme-dr-west/"), "{}", r.from);
            }
            _ => {}
        }
    }
    assert_eq!(
        p.steps
            .iter()
            .filter(|s| s.kind() == StepKind::ProvisionInstance)
            .count(),
        3
    );
    assert!(verify(&policy, &w, &p).is_empty());

    // Tampered: a volume from the cluster's own snapshot, a step back home.
    let home_snap = w
        .snapshots
        .iter()
        .find(|s| s.region.is_none() && s.tags.contains_key("asdr:set"))
        .unwrap()
        .id
        .clone();
    let mut t = p.clone();
    let c = t
        .steps
        .iter_mut()
        .find(|s| s.kind() == StepKind::CreateVolume)
        .unwrap();
    crate::edit(c, |v| v["snapshot_id"] = serde_json::json!(home_snap));
    let v = verify(&policy, &w, &t);
    assert!(
        v.iter().any(|x| x.message.contains("does not exist")
            || x.message.contains("not a copy of this cluster's")),
        "{v:?}"
    );
    // Tampered: a config meshing with the source region's nodes.
    let mut t = p.clone();
    let c = t
        .steps
        .iter_mut()
        .find(|s| s.kind() == StepKind::WriteConfig)
        .unwrap();
    crate::edit(c, |v| {
        let content = v["content"]
            .as_str()
            .unwrap()
            .replace("10.1.2.11", "10.0.2.11");
        v["content"] = serde_json::json!(content);
    });
    let v = verify(&policy, &w, &t);
    assert!(r16(&v, "10.0.2.11"), "{v:?}");
    let mut t = p.clone();
    t.steps
        .iter_mut()
        .find(|s| s.kind() == StepKind::StartNode)
        .unwrap()
        .region = None;
    let v = verify(&policy, &w, &t);
    assert!(r16(&v, "not in us-west-2"), "{v:?}");
}

#[test]
fn r16_a_restore_elsewhere_needs_a_complete_copy_there_and_stands_once_built() {
    let policy = dr_west();
    // Copies still under way: nothing complete in us-west-2.
    let mut w = world(&policy, 2, 1);
    copy_sets(&mut w, &policy, 0, 1, true);
    let r = restore(&policy, &w, "dr-west");
    let Err(PlanError::Refused(d)) = &r else {
        panic!("{r:?}")
    };
    assert!(
        d.message.contains("no complete backup set"),
        "{}",
        d.message
    );

    // Built already: nothing to do; partly built: refused, naming what exists.
    let mut w = world(&policy, 2, 2);
    copy_sets(&mut w, &policy, 0, 1, false);
    let built = restore(&policy, &w, "dr-west").unwrap();
    // The mark comes only after the cluster there was seen stable at full size.
    let mut early = built.clone();
    for s in early
        .steps
        .iter_mut()
        .filter(|s| s.kind() == StepKind::MarkRestoreComplete)
    {
        s.depends_on.clear();
    }
    assert!(
        verify(&policy, &w, &early)
            .iter()
            .any(|v| v.message.contains("before its cluster was seen stable")),
        "{:?}",
        verify(&policy, &w, &early)
    );
    let mut standing = w.clone();
    for (k, s) in built
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::ProvisionInstance)
        .enumerate()
    {
        let Params::ProvisionInstance(i) = &s.params else {
            unreachable!()
        };
        let mut tags = i.tags.clone();
        tags.insert("asdr:plan".into(), built.plan_id.clone());
        standing.instances.push(asdr_planner::world::Instance {
            region: Some(WEST.into()),
            id: format!("i-west{k}"),
            state: asdr_planner::world::InstanceState::Running,
            instance_type: i.instance_type.clone(),
            private_ip: Some(i.private_ip.clone()),
            availability_zone: i.availability_zone.clone(),
            subnet_id: i.subnet_id.clone(),
            instance_store_drives: 2,
            root_device: None,
            state_reason: None,
            block_devices: vec![],
            tags,
        });
    }
    // rp15: every instance there, volumes attached, but the apply stopped before the cluster
    // stood (Aerospike never started): partly built, never "stands".
    let r = restore(&policy, &standing, "dr-west");
    let Err(PlanError::Refused(d)) = &r else {
        panic!("{r:?}")
    };
    assert!(d.message.contains("partly built"), "{}", d.message);
    // The defect's plan (nothing to build) is refused by the verifier, which reads the marks
    // itself.
    let nothing = Plan {
        steps: vec![],
        ..built.clone()
    };
    let v = verify(&policy, &standing, &nothing);
    assert!(
        v.iter().any(|x| x.rule == "R16"
            && x.message
                .contains("does not stand: 3 of 3 instances, 0 marked")),
        "{v:?}"
    );
    // Marked by the apply that saw it stand: it stands.
    for i in &mut standing.instances {
        if i.region.as_deref() == Some(WEST) {
            i.tags.insert("asdr:restore-complete".into(), "true".into());
        }
    }
    let again = restore(&policy, &standing, "dr-west").unwrap();
    assert!(again.steps.is_empty());
    assert!(verify(&policy, &standing, &again).is_empty());
    // Review finding (trust boundaries): three small instances anyone tagged for the restore
    // (and marked) made a disaster's restore a no-op. What the restore built stands at its
    // nodes' addresses and carries the cluster's id; these do neither, and the restore builds.
    let mut forged = w.clone();
    for (k, i) in standing
        .instances
        .iter()
        .filter(|i| i.region.as_deref() == Some(WEST))
        .enumerate()
    {
        let mut f = i.clone();
        f.id = format!("i-0forged{k}");
        f.instance_type = "t3.nano".into();
        f.private_ip = Some(format!("10.9.9.{k}"));
        f.tags.remove("asdr:cluster-id");
        forged.instances.push(f);
    }
    let built_anyway = restore(&policy, &forged, "dr-west").unwrap();
    assert_eq!(
        built_anyway
            .steps
            .iter()
            .filter(|s| s.kind() == StepKind::ProvisionInstance)
            .count(),
        3,
        "{:?}",
        built_anyway.warnings
    );
    // Stopped since (by hand, or by AWS): it does not stand now, and an empty plan is refused
    // by the verifier too (review).
    let mut stopped = standing.clone();
    for i in &mut stopped.instances {
        if i.region.as_deref() == Some(WEST) {
            i.state = asdr_planner::world::InstanceState::Stopped;
        }
    }
    let r = restore(&policy, &stopped, "dr-west");
    let Err(PlanError::Refused(d)) = &r else {
        panic!("{r:?}")
    };
    assert!(
        d.message.contains("3 of its instances are not running"),
        "{}",
        d.message
    );
    let v = verify(&policy, &stopped, &again);
    assert!(
        v.iter()
            .any(|x| x.rule == "R16" && x.message.contains("0 running")),
        "{v:?}"
    );
    assert!(
        again
            .warnings
            .iter()
            .any(|x| x.message.contains("stands in us-west-2"))
    );
    standing.instances.pop();
    let r = restore(&policy, &standing, "dr-west");
    let Err(PlanError::Refused(d)) = &r else {
        panic!("{r:?}")
    };
    assert!(d.message.contains("partly built"), "{}", d.message);
}

#[test]
fn r16_a_drill_of_a_restore_elsewhere_rehearses_it_in_that_region_and_tears_down_there() {
    let policy = restore_elsewhere("ip_offset: 0").policy();
    let text = format!(
        "{}drills:\n  - name: failover\n    restore: dr-west\n    target: {{subnets: {{us-west-2a: subnet-d1, us-west-2b: subnet-d2}}, ip_offset: 100, security_groups: [sg-drill-west]}}\n",
        policy.text.split("drills:").next().unwrap()
    );
    let policy = asdr_specs::parse(
        &policy.path,
        &text,
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/prod-east")
            .as_path(),
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let mut w = world(&policy, 2, 2);
    copy_sets(&mut w, &policy, 0, 1, false);
    let p = plan(&policy, &w, NOW, &Operation::Drill("failover".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    for s in &p.steps {
        assert_eq!(s.region.as_deref(), Some(WEST), "{}", s.id);
        if let Params::ProvisionInstance(i) = &s.params {
            assert_eq!(i.ami, "ami-0west", "the region's AMI");
            assert_eq!(i.security_groups, vec!["sg-drill-west".to_string()]);
            assert_eq!(
                i.tags.get("asdr:drill").map(String::as_str),
                Some("failover")
            );
            assert!(i.availability_zone.starts_with(WEST));
        }
    }
    assert!(verify(&policy, &w, &p).is_empty());
    // What the drill left in us-west-2 is torn down there, and only that.
    let mut left = w.clone();
    let mut tags = std::collections::BTreeMap::new();
    tags.insert("asdr:cluster".to_string(), "prod-east".to_string());
    tags.insert("asdr:drill".to_string(), "failover".to_string());
    tags.insert("asdr:node".to_string(), "a1@failover".to_string());
    tags.insert("asdr:plan".to_string(), "p-failover".to_string());
    left.instances.push(asdr_planner::world::Instance {
        region: Some(WEST.into()),
        id: "i-drillwest".into(),
        state: asdr_planner::world::InstanceState::Running,
        instance_type: "i4i.2xlarge".into(),
        private_ip: Some("10.0.1.111".into()),
        availability_zone: "us-west-2a".into(),
        subnet_id: Some("subnet-d1".into()),
        instance_store_drives: 2,
        root_device: None,
        state_reason: None,
        block_devices: vec![],
        tags,
    });
    left.drill_resources.insert(
        "failover".into(),
        [asdr_planner::drill::made_by("i-drillwest", "p-failover")].into(),
    );
    let t = plan(&policy, &left, NOW, &Operation::Teardown("failover".into())).unwrap();
    assert_eq!(t.steps.len(), 1);
    assert_eq!(t.steps[0].region.as_deref(), Some(WEST));
    assert!(verify(&policy, &left, &t).is_empty());
}

#[test]
fn r16_a_failed_copy_is_copied_again_and_removed_before_the_region_marks_the_set() {
    let policy = west(", retain: {count: 1}");
    let mut w = world(&policy, 2, 1);
    copy_sets(&mut w, &policy, 0, 1, true);
    // One copy of the set failed; the others are still under way.
    let failed = w.snapshots.iter_mut().find(|s| s.region.is_some()).unwrap();
    failed.state = SnapshotState::Error;
    let failed_id = failed.id.clone();
    let (node, device) = (
        failed.tags["asdr:node"].clone(),
        failed.tags["asdr:device"].clone(),
    );
    let p = backup(&policy, &w);
    let delete = format!("delete_snapshot:{failed_id}");
    let d = p
        .steps
        .iter()
        .find(|s| s.id == delete)
        .expect("the failed copy goes");
    assert_eq!(d.region.as_deref(), Some(WEST));
    let recopy = p
        .steps
        .iter()
        .find(|s| {
            s.kind() == StepKind::CopySnapshot
                && s.node.as_deref() == Some(node.as_str())
                && s.params.device() == Some(device.as_str())
        })
        .expect("copied again");
    let mark = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::MarkSetComplete && s.region.is_some())
        .unwrap();
    let before = ancestors(&p, &mark.id);
    assert!(before.contains(&delete) && before.contains(&recopy.id));
    // The other copies under way are waited for, not copied again.
    assert_eq!(ids(&p, StepKind::CopySnapshot).len(), 1);
    assert!(verify(&policy, &w, &p).is_empty());
}

#[test]
fn r16_a_region_that_does_not_answer_stops_nothing_at_home_and_gets_nothing_planned() {
    let policy = dr_west();
    let mut w = world(&policy, 30, 3);
    w.unobserved_regions.insert(
        WEST.into(),
        "DescribeSnapshots: cannot reach the endpoint".into(),
    );
    let p = backup(&policy, &w);
    assert_eq!(
        ids(&p, StepKind::SnapshotInstance).len(),
        3,
        "the backup at home goes on"
    );
    assert!(
        p.steps.iter().all(|s| s.region.is_none()),
        "nothing in us-west-2"
    );
    assert!(
        p.warnings
            .iter()
            .any(|x| x.rule == "R16" && x.message.contains("could not be observed")),
        "{:?}",
        p.warnings
    );
    // Retention at home keeps every complete set: the blind region may be copying any of them.
    let policy_one = ExamplePolicy::prod_east()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 1}")
        .edit(
            "  max_nodes_at_once: 1 ",
            "  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east}\n  max_nodes_at_once: 1 ",
        )
        .policy();
    let mut w1 = world(&policy_one, 2, 3);
    assert!(!ids(&backup(&policy_one, &w1), StepKind::DeleteSnapshot).is_empty());
    w1.unobserved_regions
        .insert(WEST.into(), "timed out".into());
    assert!(ids(&backup(&policy_one, &w1), StepKind::DeleteSnapshot).is_empty());
    // A restore there is refused, saying why.
    let r = restore(&policy, &w, "dr-west");
    let Err(PlanError::Refused(d)) = &r else {
        panic!("{r:?}")
    };
    assert!(d.message.contains("could not be observed"), "{}", d.message);
}

/// Review finding: a restore into another region rebuilt a strong-consistency namespace and was
/// marked complete without waiting for its partitions (snapshots of running nodes come back dead
/// there too). It now ends as every restore does, and a plan without the wait is refused.
#[test]
fn r19_a_restore_into_another_region_waits_for_its_strong_consistency_partitions() {
    let policy = restore_elsewhere("private_ips: {a1: 10.1.1.11, b1: 10.1.2.11, a2: 10.1.1.12}")
        .edit(
            "    - name: users\n      replication_factor: 2\n",
            "    - name: users\n      replication_factor: 2\n      strong_consistency: true\n",
        )
        .policy();
    let mut w = world(&policy, 2, 3);
    copy_sets(&mut w, &policy, 0, 2, false);
    let mut p = restore(&policy, &w, "dr-west").unwrap_or_else(|e| panic!("{e}"));
    let waits = ids(&p, StepKind::WaitPartitionsAvailable);
    assert_eq!(waits, ["wait_partitions_available:dr-west"]);
    assert!(verify(&policy, &w, &p).is_empty());
    p.steps
        .retain(|s| s.kind() != StepKind::WaitPartitionsAvailable);
    let v = verify(&policy, &w, &p);
    assert!(
        v.iter().any(|x| x.rule == "R19"
            && x.message
                .contains("no wait_partitions_available follows it")),
        "{v:?}"
    );
}
