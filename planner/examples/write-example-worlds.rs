//! Writes the example world files under examples/ from the example policies, so they stay
//! consistent with the policies and with what the planner expects. Run from the repository root:
//! `cargo run -p asdr-planner --features testkit --example write-example-worlds`.

use std::path::Path;

use asdr_planner::testkit::{Failure, WorldSpec, copy_sets, world_for};
use time::macros::datetime;

fn write(policy_path: &str, out: &str, header: &str, spec: &WorldSpec) {
    write_with(policy_path, out, header, spec, |_, _| {});
}

/// As `write`, with `edit` applied to the generated world (copies in other regions).
fn write_with(
    policy_path: &str,
    out: &str,
    header: &str,
    spec: &WorldSpec,
    edit: impl Fn(&asdr_specs::Policy, &mut asdr_planner::World),
) {
    let policy = asdr_specs::load(Path::new(policy_path)).expect("example policy is valid");
    let mut world = world_for(&policy, spec);
    edit(&policy, &mut world);
    let yaml = serde_saphyr::to_string(&world).expect("serializes");
    std::fs::write(out, format!("{header}\n{yaml}")).expect("writes");
    println!("wrote {out}");
}

fn main() {
    let now = datetime!(2026-11-21 09:00:00 UTC);
    let mut due = WorldSpec::new(now);
    due.sets = 7;
    due.newest_set_age = time::Duration::hours(31);
    due.foreign_snapshots = 1;
    write(
        "examples/prod-east/asdr.yaml",
        "examples/prod-east/world-backup-due.yaml",
        "# prod-east, healthy; the newest complete backup set is 31h old (every: 24h), so a backup is due,\n# and 7 complete sets exist (retain.count: 7). Some snapshots were made by hand: asdr never touches them.",
        &due,
    );
    let mut failed = WorldSpec::new(now);
    failed.sets = 7;
    failed.failures = vec![("a1".into(), Failure::Terminated)];
    write(
        "examples/prod-east/asdr.yaml",
        "examples/prod-east/world-failed-node.yaml",
        "# prod-east after node a1's instance was terminated: its EBS volumes survived, detached.\n# The newest backup set is 6h old. Plan: asdr plan --restore replace-a1",
        &failed,
    );
    let mut unreachable = WorldSpec::new(now);
    unreachable.sets = 7;
    unreachable.failures = vec![(
        "a1".into(),
        Failure::Unreachable {
            delete_on_termination: true,
        },
    )];
    write(
        "examples/prod-east/asdr.yaml",
        "examples/prod-east/world-unreachable-node.yaml",
        "# prod-east with a1's instance running but Aerospike not answering; its data volumes are\n# attached with DeleteOnTermination=true, so they must be detached before termination (R7).",
        &unreachable,
    );
    let mut ce = WorldSpec::new(now);
    ce.sets = 4;
    ce.newest_set_age = time::Duration::hours(13);
    ce.set_interval = time::Duration::hours(12);
    write(
        "examples/community/asdr.yaml",
        "examples/community/world-backup-due.yaml",
        "# ce-west (Community Edition): the newest set is 13h old (every: 12h), 4 sets retained.",
        &ce,
    );
    // prod-east with copies in us-west-2: the two newest sets are copied there; a backup is due.
    write_with(
        "examples/prod-east-dr/asdr.yaml",
        "examples/prod-east-dr/world-with-copies.yaml",
        "# prod-east copying its sets to us-west-2: the newest two of its 7 sets have complete copies there
# (region: us-west-2); a backup is due (31h). Plans: asdr plan (a new set and its copies, the
# third set caught up), asdr plan --restore dr-west (the cluster built in us-west-2), asdr drill failover --check.",
        &due,
        |policy, world| copy_sets(world, policy, 0, 2, false),
    );
}
