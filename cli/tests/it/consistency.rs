//! R19 through the binary on world files (the world simulation answers as Enterprise strong
//! consistency does: a roster per namespace, partitions unavailable while replication-factor
//! roster members are missing, dead partitions until revived).

use crate::apply::Scratch;
use asdr_planner::world::World;

const USERS: &str = "    - name: users\n      replication_factor: 2\n";
const ROSTER: &str = "[BB9000000010000, BB9000000010001, BB9000000010002]";

/// The prod-east example with namespace `users` in strong consistency, on the nodes too.
fn sc_scratch(world: &str) -> Scratch {
    let s = Scratch::of("prod-east");
    s.edit(
        "asdr.yaml",
        USERS,
        &format!("{USERS}      strong_consistency: true\n"),
    );
    let path = s.path(world);
    let text = std::fs::read_to_string(&path).unwrap();
    let from = "  - name: users\n    replication_factor: 2\n";
    assert!(text.contains(from));
    let to = format!("{from}    strong_consistency: true\n    roster: {ROSTER}\n");
    std::fs::write(&path, text.replace(from, &to)).unwrap();
    s
}

fn load(s: &Scratch, world: &str) -> World {
    asdr_providers::world_file::load(&s.path(world)).unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// a1 is lost and no set recorded its id, but the roster holds it: the one member no node
/// answers as. The replacement rejoins as that id — no re-roster, which would drop the id a1's
/// data is known by — and the restore ends only when every roster member is back and no
/// partition of `users` is unavailable.
#[test]
fn r19_a_replacement_rejoins_as_the_roster_member_it_was_and_the_restore_ends_with_the_roster_whole()
 {
    let w = "world-failed-node.yaml";
    let s = sc_scratch(w);
    let plan = s.asdr(w, &["plan", "--restore", "replace-a1"], &[]);
    let out = text(&plan);
    assert!(plan.status.success(), "{out}");
    assert!(
        out.contains("BB9000000010000 (the roster's one member no node answers as)")
            && out.contains("wait_partitions_available:a1")
            && !out.contains("set_roster"),
        "{out}"
    );
    let applied = s.asdr(w, &["apply", "--yes", "--restore", "replace-a1"], &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    let world = load(&s, w);
    let a1 = world.nodes.iter().find(|n| n.name == "a1").unwrap();
    assert!(a1.reachable);
    assert_eq!(a1.node_id.as_deref(), Some("BB9000000010000"));
    for n in world.nodes.iter() {
        let users = n.namespaces.iter().find(|ns| ns.name == "users").unwrap();
        assert!(users.strong_consistency, "{}", n.name);
        assert_eq!(users.roster.len(), 3, "{}: {:?}", n.name, users.roster);
        assert!(
            users
                .roster
                .iter()
                .all(|r| users.observed_nodes.contains(r)),
            "{}",
            n.name
        );
        assert_eq!(users.unavailable_partitions, 0, "{}", n.name);
    }
    let again = s.asdr(
        w,
        &["plan", "--detailed-exitcode", "--restore", "replace-a1"],
        &[],
    );
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
}

/// Dead partitions are never revived behind the operator's back: the restore is refused naming
/// the namespace; declared, the restore revives them and ends with none.
#[test]
fn r19_dead_partitions_refuse_a_restore_until_it_accepts_them_and_then_are_revived() {
    let w = "world-backup-due.yaml";
    let s = sc_scratch(w);
    s.edit(
        w,
        &format!("    roster: {ROSTER}\n"),
        &format!("    roster: {ROSTER}\n    dead_partitions: 7\n"),
    );
    let refused = s.asdr(w, &["plan", "--restore", "a1-from-backup"], &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("[R19]") && text(&refused).contains("namespace users (7)"),
        "{}",
        text(&refused)
    );
    s.edit(
        "asdr.yaml",
        "    accept_zombie_records: true   # required for a partial restore from snapshots (R6)\n",
        "    accept_zombie_records: true\n    accept_dead_partitions: true\n",
    );
    let applied = s.asdr(w, &["apply", "--yes", "--restore", "a1-from-backup"], &[]);
    assert!(applied.status.success(), "{}", text(&applied));
    for n in load(&s, w).nodes.iter() {
        let users = n.namespaces.iter().find(|ns| ns.name == "users").unwrap();
        assert_eq!(users.dead_partitions, 0, "{}", n.name);
    }
}
