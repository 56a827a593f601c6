//! Recovery points that describe themselves: what a set is (its own members), whose it is, and
//! when it was. One regression test per defect an operator review reproduced, named `rpNN_…`,
//! each also showing the verifier catches the defective plan where the verifier can see it.

use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, StepKind, plan, verify};
use asdr_specs::Policy;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const WEST: &str = "us-west-2";

const A3: &str =
    "    - name: a3\n      private_ip: 10.0.2.12\n      availability_zone: us-east-1b\n\nbackup:";
const SDI: (&str, &str) = (
    "        - device: /dev/sdh        # EBS directly, no shadow; `ebs` defaults to the shadow's path, else the device's\n",
    "        - device: /dev/sdh\n        - device: /dev/sdi\n",
);

fn backup(policy: &Policy, w: &World) -> Plan {
    plan(policy, w, NOW, &Operation::Backup).unwrap_or_else(|e| panic!("{e}"))
}

/// The sets whose snapshots a plan deletes, per region (None: the cluster's own).
fn deleted_sets(p: &Plan, w: &World) -> BTreeSet<(Option<String>, String)> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
        .filter_map(|s| {
            let id = serde_json::to_value(s).unwrap()["params"]["snapshot_id"]
                .as_str()?
                .to_string();
            let snap = w.snapshots.iter().find(|x| x.id == id)?;
            Some((snap.region.clone(), snap.tags["asdr:set"].clone()))
        })
        .collect()
}

/// The world of `now_policy` (the cluster as it is now) with `sets` sets made before the members
/// for which `member(node, device)` is false existed: their snapshots are removed from those sets.
/// `then_one_more`: a newest set made since, holding every member (the apply after the edit).
/// Half the old sets carry the member count their mark recorded, half are marked as sets were
/// before that record existed.
fn world_before(
    now_policy: &Policy,
    sets: usize,
    then_one_more: bool,
    member: impl Fn(&str, &str) -> bool,
) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = sets + usize::from(then_one_more);
    let mut w = world_for(now_policy, &spec);
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .max()
        .unwrap();
    w.snapshots.retain(|s| {
        let (Some(n), Some(d)) = (s.tags.get("asdr:node"), s.tags.get("asdr:device")) else {
            return true;
        };
        member(n, d) || (then_one_more && s.tags.get("asdr:set") == Some(&newest))
    });
    let sets: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .collect();
    for (k, set) in sets.iter().enumerate() {
        let members = w
            .snapshots
            .iter()
            .filter(|s| s.tags.get("asdr:set") == Some(set))
            .count();
        for s in w
            .snapshots
            .iter_mut()
            .filter(|s| s.tags.get("asdr:set") == Some(set))
        {
            if k % 2 == 0 {
                s.tags.insert("asdr:members".into(), members.to_string());
            }
        }
    }
    w
}

#[test]
fn rp01_adding_a_node_or_a_device_never_wipes_the_history() {
    // A node added: its instance and volumes are in the world, in none of the 7 sets.
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 7}")
        .edit("\nbackup:", A3)
        .edit("a2: 10.1.1.12}", "a2: 10.1.1.12, a3: 10.1.2.12}")
        .policy();
    let w = world_before(&policy, 7, false, |n, _| n != "a3");
    let p = backup(&policy, &w);
    // A new set is due at once so that a3 is covered; it counts toward `count: 7` once marked,
    // so at most the oldest set goes — never the history.
    assert!(p.steps.iter().any(|s| s.id == "snapshot_instance:a3"
        || s.id.starts_with("snapshot_instance:a3")
        || s.id.starts_with("snapshot:a3")));
    let gone = deleted_sets(&p, &w);
    let home: Vec<&String> = gone
        .iter()
        .filter(|(r, _)| r.is_none())
        .map(|(_, s)| s)
        .collect();
    assert!(home.len() <= 1, "the history is deleted: {home:?}");
    assert!(verify(&policy, &w, &p).is_empty());
    // Once that set is made, the next plan keeps the 6 newest older ones: every set but the
    // newest was made before a3, and each is complete by its own members.
    let w = world_before(&policy, 7, true, |n, _| n != "a3");
    let p = backup(&policy, &w);
    let gone = deleted_sets(&p, &w);
    assert!(gone.len() <= 1, "the history is deleted: {gone:?}");
    assert!(verify(&policy, &w, &p).is_empty());

    // A device added: the us-west-2 copies of the two copied sets stay (the copy keeps 3).
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 7}")
        .edit(SDI.0, SDI.1)
        .policy();
    let mut w = world_before(&policy, 7, false, |_, d| d != "/dev/sdi");
    copy_sets(&mut w, &policy, 0, 2, false);
    let p = backup(&policy, &w);
    let gone = deleted_sets(&p, &w);
    assert!(
        gone.iter().all(|(r, _)| r.as_deref() != Some(WEST)),
        "copies in {WEST} deleted: {gone:?}"
    );
    assert!(
        gone.iter().filter(|(r, _)| r.is_none()).count() <= 1,
        "{gone:?}"
    );
    assert!(verify(&policy, &w, &p).is_empty());
}

/// A same-named cluster whose home is us-west-2: snapshots there tagged `asdr:cluster=prod-east`
/// and `asdr:set`, every node and device, marked complete — but copied from nowhere.
fn foreign_in_west(policy: &Policy, w: &mut World, set: &str) {
    let template: Vec<_> = w
        .snapshots
        .iter()
        .filter(|s| s.region.is_none() && s.tags.contains_key("asdr:complete"))
        .take(9)
        .cloned()
        .collect();
    for (k, mut s) in template.into_iter().enumerate() {
        s.id = format!("snap-f0reign{k:08}");
        s.region = Some(WEST.into());
        s.tags.insert("asdr:set".into(), set.into());
        s.tags
            .insert("asdr:cluster".into(), policy.cluster.name.clone());
        s.start_time = time::PrimitiveDateTime::parse(
            set.trim_start_matches("bs-"),
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
        )
        .unwrap()
        .assume_utc();
        w.snapshots.push(s);
    }
}

#[test]
fn rp02_copy_region_retention_and_restores_never_take_snapshots_asdr_never_copied() {
    let policy = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 7;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 2, false);
    // Older than every copy (retention would take them) and newer (a restore would pick them).
    foreign_in_west(&policy, &mut w, "bs-20261101T030000Z");
    foreign_in_west(&policy, &mut w, "bs-20261121T080000Z");
    let foreign: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter(|s| s.id.starts_with("snap-f0reign"))
        .map(|s| s.id.clone())
        .collect();
    let p = backup(&policy, &w);
    let touched: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| foreign.iter().any(|f| s.id.contains(f.as_str())))
        .map(|s| s.id.as_str())
        .collect();
    assert!(touched.is_empty(), "{touched:?}");

    let p = plan(&policy, &w, NOW, &Operation::Restore("dr-west".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let from: BTreeSet<String> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::CreateVolume)
        .map(|s| {
            serde_json::to_value(s).unwrap()["params"]["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(!from.is_empty());
    assert!(from.is_disjoint(&foreign), "restored from {from:?}");

    // The verifier reads the source tags itself: a plan deleting one of them is refused.
    let mut bad = backup(&policy, &w);
    let id = foreign.iter().next().unwrap().clone();
    bad.steps.push(asdr_planner::Step {
        region: Some(WEST.into()),
        id: format!("delete_snapshot:{id}"),
        params: asdr_planner::params::Params::DeleteSnapshot(
            asdr_planner::params::DeleteSnapshot {
                snapshot_id: id.clone(),
                set: "bs-20261101T030000Z".into(),
            },
        ),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
    });
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("not a copy of this cluster's")),
        "{v:?}"
    );
}
