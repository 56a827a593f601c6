//! The session observes the world once per state of it: plans made from one session share one
//! observation, and a drill observes again only after its own steps changed the world.

use std::path::{Path, PathBuf};

use asdr_engine::{Knobs, Session, Source, apply, drill};
use asdr_planner::Operation;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The community example (policy, template, world) in a directory of its own.
fn example() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let src = root().join("examples/community");
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    for f in [
        "asdr.yaml",
        "world-backup-due.yaml",
        "templates/aerospike.conf.j2",
    ] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let policy = asdr_specs::load(&dir.path().join("asdr.yaml")).unwrap();
    let source = Source::WorldFile {
        path: dir.path().join("world-backup-due.yaml"),
        live_nodes: false,
    };
    let session =
        Session::open(policy, source, Default::default(), Knobs::default(), false).unwrap();
    (dir, session)
}

#[test]
fn plans_of_one_session_share_one_observation() {
    let (_dir, session) = example();
    let (backup, _) = session.plan(&Operation::Backup).unwrap();
    let (again, _) = session.plan(&Operation::Backup).unwrap();
    assert_eq!(backup, again);
    let prepared = apply::prepare(&session, apply::Request::default()).unwrap();
    assert_eq!(prepared.origin, apply::Origin::Planned);
    assert_eq!(prepared.plan, backup);
    assert_eq!(session.observations(), 1);
}

#[test]
fn a_drill_observes_before_it_starts_and_again_only_after_it_changed_the_world() {
    let (_dir, session) = example();
    let d = drill::find(&session, "quarterly").unwrap().clone();
    let outcomes = drill::run(&session, &d, 10, &|_| Ok(()), &|_| {}).unwrap();
    assert!(outcomes.passed, "{outcomes:?}");
    assert!(outcomes.torn_down && outcomes.remaining.is_empty());
    assert!(
        !outcomes.validated,
        "a world file's simulated nodes are not validated"
    );
    // Before the restore; after it (what is left); after the teardown (what remains).
    assert_eq!(session.observations(), 3);
}

#[test]
fn an_unknown_drill_is_refused_naming_the_declared_ones() {
    let (_dir, session) = example();
    let err = drill::find(&session, "nope").unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("quarterly"), "{err}");
}
