//! Copies into a backup account (`backup.copies[].account`): kept apart from the workload
//! account's own snapshots under `REGION@ACCOUNT` (even in the cluster's own region), each source
//! shared with that account only, and a plan sharing with any other account refused (R16).

use asdr_planner::params::Params;
use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
use asdr_planner::{Operation, Plan, StepKind, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const ACCOUNT: &str = "222233334444";
const PLACE: &str = "us-east-1@222233334444";

/// prod-east with a copy into the backup account in its own region (and, with `west`, a plain
/// copy to us-west-2 too).
fn policy(west: bool) -> Policy {
    let mut copies = format!(
        "    - {{region: us-east-1, account: \"{ACCOUNT}\", role_arn: \"arn:aws:iam::{ACCOUNT}:role/asdr-backup\", smd_to: s3://acme-vault/asdr}}"
    );
    if west {
        copies.push_str("\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr}");
    }
    ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            &format!("  copies:\n{copies}\n  max_nodes_at_once: 1 "),
        )
        .policy()
}

fn due_world(policy: &Policy) -> asdr_planner::World {
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(30);
    spec.sets = 3;
    world_for(policy, &spec)
}

fn backup(policy: &Policy, world: &asdr_planner::World) -> Plan {
    plan(policy, world, NOW, &Operation::Backup).unwrap_or_else(|e| panic!("{e}"))
}

fn copy_steps(p: &Plan) -> Vec<&asdr_planner::Step> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::CopySnapshot)
        .collect()
}

#[test]
fn a_copy_into_the_backup_account_in_the_clusters_own_region_shares_each_source_with_that_account_only()
 {
    let policy = policy(true);
    assert_eq!(policy.backup.copies[0].region, PLACE);
    assert_eq!(policy.backup.copies[0].aws_region, "us-east-1");
    let w = due_world(&policy);
    let p = backup(&policy, &w);
    let copies = copy_steps(&p);
    assert!(!copies.is_empty());
    for s in &copies {
        let Params::CopySnapshot(c) = &s.params else {
            unreachable!()
        };
        match s.region.as_deref() {
            Some(PLACE) => {
                assert_eq!(c.share_with.as_deref(), Some(ACCOUNT), "{}", s.id);
                assert_eq!(
                    c.grant_to.as_deref(),
                    Some("arn:aws:iam::222233334444:role/asdr-backup"),
                    "{}",
                    s.id
                );
            }
            Some("us-west-2") => assert_eq!(c.share_with, None, "{}: not shared", s.id),
            other => panic!("{}: a copy step in {other:?}", s.id),
        }
        assert_eq!(c.source_region, "us-east-1");
    }
    // Both places get the new set and catch up the sets they lack, each marked in its place.
    for place in [PLACE, "us-west-2"] {
        assert!(
            p.steps.iter().any(
                |s| s.region.as_deref() == Some(place) && s.kind() == StepKind::MarkSetComplete
            ),
            "marked in {place}"
        );
    }
    // The plan says whom each source is shared with.
    let shared = p
        .changes
        .iter()
        .filter(|c| c.address.starts_with(&format!("copy.{PLACE}.")))
        .count();
    assert_eq!(
        shared,
        copies
            .iter()
            .filter(|s| s.region.as_deref() == Some(PLACE))
            .count()
    );
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
}

#[test]
fn r16_a_plan_sharing_a_snapshot_with_any_other_account_or_copying_into_the_backup_account_unshared_is_refused()
 {
    let policy = policy(true);
    let w = due_world(&policy);
    let p = backup(&policy, &w);
    let refused = |edit: &dyn Fn(&mut asdr_planner::params::CopySnapshot, Option<&str>)| {
        let mut t = p.clone();
        for s in &mut t.steps {
            let region = s.region.clone();
            if let Params::CopySnapshot(c) = &mut s.params {
                edit(c, region.as_deref());
            }
        }
        verify(&policy, &w, &t)
    };
    // Shared with an attacker's account instead.
    let v = refused(&|c, _| {
        if c.share_with.is_some() {
            c.share_with = Some("999999999999".into());
        }
    });
    assert!(
        v.iter().any(|x| x.rule == "R16"
            && x.message
                .contains("shares its source snapshot with account 999999999999")),
        "{v:?}"
    );
    // A plain region's copy made to share too.
    let v = refused(&|c, r| {
        if r == Some("us-west-2") {
            c.share_with = Some(ACCOUNT.into());
        }
    });
    assert!(
        v.iter()
            .any(|x| x.rule == "R16" && x.message.contains("not the backup account of us-west-2")),
        "{v:?}"
    );
    // The source's KMS key granted to another principal.
    let v = refused(&|c, _| {
        if c.grant_to.is_some() {
            c.grant_to = Some("arn:aws:iam::999999999999:role/thief".into());
        }
    });
    assert!(
        v.iter().any(|x| x.rule == "R16"
            && x.message
                .contains("grants the source's KMS key to arn:aws:iam::999999999999:role/thief")),
        "{v:?}"
    );
    // The backup account's copies without the share (they could not be made).
    let v = refused(&|c, _| c.share_with = None);
    assert!(
        v.iter()
            .any(|x| x.rule == "R16" && x.message.contains("without sharing the source")),
        "{v:?}"
    );
}

#[test]
fn the_backup_accounts_copies_are_never_taken_for_the_clusters_own_sets_in_the_same_region() {
    let policy = policy(false);
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(2);
    spec.sets = 3;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 3, false);
    // Nothing is due: the backup account holds every set, the cluster's region its own.
    let p = backup(&policy, &w);
    assert!(p.steps.is_empty(), "{:#?}", p.steps);
    // The copies there (same region, same set tags) are the backup account's: retention at home
    // keeping one set deletes only the workload account's own snapshots.
    let keep_one = ExamplePolicy::prod_east()
        .edit("count: 7", "count: 1")
        .edit(
            "  max_nodes_at_once: 1 ",
            &format!(
                "  copies:\n    - {{region: us-east-1, account: \"{ACCOUNT}\", role_arn: \"arn:aws:iam::{ACCOUNT}:role/asdr-backup\", smd_to: s3://acme-vault/asdr, retain: {{count: 3}}}}\n  max_nodes_at_once: 1 "
            ),
        )
        .policy();
    let p = backup(&keep_one, &w);
    let deleted: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::DeleteSnapshot(d) => Some((s.region.as_deref(), d.snapshot_id.as_str())),
            _ => None,
        })
        .map(|(r, id)| {
            assert_eq!(r, None, "{id} deleted in {r:?}");
            id
        })
        .collect();
    assert!(!deleted.is_empty(), "home retention runs");
    for id in deleted {
        let s = w.snapshots.iter().find(|s| s.id == id).unwrap();
        assert_eq!(s.region, None, "{id} is the workload account's own");
    }
    let status = asdr_planner::status::status(&keep_one, &w, NOW);
    let there = &status.regions[PLACE];
    assert_eq!(there.account.as_deref(), Some(ACCOUNT));
    assert_eq!(there.complete_sets.len(), 3);
}

#[test]
fn copies_in_the_backup_account_under_another_cluster_id_are_not_said_to_be_the_nodes_snapshots() {
    let policy = policy(false);
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(2);
    spec.sets = 2;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 2, false);
    // A same-named cluster's copies in the backup account (another id): not ours, not counted,
    // and nothing about the instances' tags (the advice to state `cluster.id` would be wrong).
    // Each names its source's volume, as a copy may.
    let volumes: std::collections::HashMap<String, String> = w
        .snapshots
        .iter()
        .map(|s| (s.id.clone(), s.volume_id.clone()))
        .collect();
    for s in w
        .snapshots
        .iter_mut()
        .filter(|s| s.region.as_deref() == Some(PLACE))
    {
        s.tags
            .insert("asdr:cluster-id".into(), "ffffffffffffffff".into());
        s.volume_id = volumes[&s.tags["asdr:source-snapshot"]].clone();
    }
    let status = asdr_planner::status::status(&policy, &w, NOW);
    assert!(
        !status
            .problems
            .iter()
            .any(|p| p.contains("carry cluster id")),
        "{:#?}",
        status.problems
    );
    let p = backup(&policy, &w);
    assert!(
        !p.warnings
            .iter()
            .any(|x| x.message.contains("carry cluster id")),
        "{:#?}",
        p.warnings
    );
    assert!(
        !status.regions[PLACE]
            .complete_sets
            .iter()
            .any(|s| w
                .snapshots
                .iter()
                .any(|x| x.region.as_deref() == Some(PLACE) && x.tags.get("asdr:set") == Some(s))),
        "another cluster's copies are not counted there"
    );
}
