//! Manifests change nothing about a healthy history: a world whose every set carries its
//! manifest plans the same backups, retention and restores as the same world without them (sets
//! marked before manifests), and its plans verify.

use asdr_planner::params::Params;
use asdr_planner::testkit::{ExamplePolicy, WorldSpec, with_manifests, world_for};
use asdr_planner::{Operation, Plan, StepKind, plan, verify};
use time::macros::datetime;

const NOW: time::OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

fn sources(p: &Plan) -> Vec<(StepKind, String)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::DeleteSnapshot(d) => Some((s.kind(), d.snapshot_id.clone())),
            Params::CreateVolume(c) => Some((s.kind(), c.snapshot_id.clone()?)),
            Params::RestoreSmd(r) => Some((s.kind(), r.from.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_history_with_manifests_plans_the_same_backups_retention_and_restores_as_without() {
    let policy = ExamplePolicy::prod_east()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 3}")
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 7;
    spec.newest_set_age = time::Duration::hours(30);
    let plain = world_for(&policy, &spec);
    let mut with = plain.clone();
    with_manifests(&policy, &mut with);
    assert_eq!(with.set_manifests.len(), 7);
    for op in [
        Operation::Backup,
        Operation::Restore("a1-from-backup".into()),
        Operation::Restore("full-cluster".into()),
    ] {
        let a = plan(&policy, &plain, NOW, &op);
        let b = plan(&policy, &with, NOW, &op);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                assert!(
                    !sources(&b).is_empty(),
                    "{op:?}: deletes or restores something"
                );
                assert_eq!(sources(&a), sources(&b), "{op:?}");
                assert!(verify(&policy, &with, &b).is_empty(), "{op:?}");
                // A full-cluster restore checks the archive against the manifest's checksum.
                for s in &b.steps {
                    if let Params::RestoreSmd(r) = &s.params {
                        let set = with
                            .set_manifests
                            .iter()
                            .find(|m| m.set == r.set)
                            .and_then(|m| m.file.as_ref())
                            .unwrap();
                        assert_eq!(
                            r.sha256.as_deref(),
                            Some(set.manifest.smd[0].sha256.as_str())
                        );
                    }
                }
            }
            (a, b) => assert_eq!(
                a.map(|p| p.steps.len()).map_err(|e| e.to_string()),
                b.map(|p| p.steps.len()).map_err(|e| e.to_string()),
                "{op:?}"
            ),
        }
    }
}
