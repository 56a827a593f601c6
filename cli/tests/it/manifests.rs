//! Set manifests end to end on world files, through the real binary: a backup writes its set's
//! manifest before the mark and the mark names it; a set is complete by its manifest's own
//! members, so a snapshot that only carries a set's tags is never restored from, and a set whose
//! manifest was altered, or whose member is gone, is not counted and `status` says so.

use asdr_planner::manifest::{ManifestFile, ObservedManifest};
use asdr_planner::params::Params;
use asdr_planner::world::Snapshot;
use asdr_planner::{Plan, StepKind, World};
use asdr_providers::world_file::{self, Format};

use crate::apply::Scratch;
use crate::support::{self, ok, plan_of};

const WORLD: &str = "world-backup-due.yaml";

fn load(s: &Scratch) -> World {
    support::load(s, WORLD)
}

fn save(s: &Scratch, w: &World) {
    support::save(s, WORLD, w)
}

/// prod-east after one backup: the scratch copy and the new set's manifest as written.
fn backed_up() -> (Scratch, ObservedManifest) {
    let s = Scratch::of("prod-east");
    let before: Vec<String> = load(&s).snapshots.iter().map(|x| x.id.clone()).collect();
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let w = load(&s);
    assert_eq!(w.set_manifests.len(), 1, "one set made, one manifest");
    let m = w.set_manifests[0].clone();
    // Its members are the snapshots this backup took.
    let file = m.file.as_ref().unwrap();
    for mb in &file.manifest.members {
        assert!(!before.contains(&mb.snapshot_id));
    }
    (s, m)
}

/// The verifier, reading the scratch copy's policy and world itself, refuses `p` under `rule`
/// with a message containing `says`.
fn assert_refused(s: &Scratch, w: &World, p: &Plan, rule: &str, says: &str) {
    let policy = asdr_specs::load(&s.path("asdr.yaml")).unwrap();
    let v = asdr_planner::verify(&policy, w, p);
    assert!(
        v.iter().any(|x| x.rule == rule && x.message.contains(says)),
        "{rule} \"{says}\" expected: {v:?}"
    );
}

fn plan_json(s: &Scratch, restore: &str) -> Plan {
    let out = ok(&s.asdr(WORLD, &["plan", "--json", "--restore", restore], &[]));
    serde_json::from_str(&out).unwrap()
}

/// The snapshots a plan creates volumes from, by node.
fn restored_from(p: &Plan) -> Vec<(String, String)> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::CreateVolume)
        .filter_map(|s| Some((s.node.clone()?, s.params.snapshot_id()?.to_string())))
        .collect()
}

#[test]
fn a_backup_writes_its_sets_manifest_and_the_mark_names_it() {
    let (s, m) = backed_up();
    let w = load(&s);
    let file = m.file.as_ref().unwrap();
    file.check().unwrap();
    let man = &file.manifest;
    assert_eq!(man.cluster, "prod-east");
    assert_eq!(
        m.uri,
        format!(
            "s3://acme-backups/asdr/prod-east/smd/prod-east/manifests/{}.json",
            man.set
        )
    );
    // Every node's every device, each a snapshot of the volume it names, with its start.
    assert_eq!(man.members.len(), 3 * 3, "{:?}", man.members);
    for mb in &man.members {
        let snap = w.snapshots.iter().find(|x| x.id == mb.snapshot_id).unwrap();
        assert_eq!(snap.volume_id, mb.volume_id);
        assert_eq!(snap.tags["asdr:node"], mb.node);
        assert_eq!(snap.tags["asdr:device"], mb.device);
        // The mark names this manifest.
        assert_eq!(snap.tags["asdr:manifest"], file.sha256);
        assert!(mb.started.is_some());
    }
    assert_eq!(man.smd.len(), 1);
    let archive = w
        .smd_archives
        .iter()
        .find(|a| a.uri == man.smd[0].uri)
        .unwrap();
    assert_eq!(archive.sha256.as_deref(), Some(man.smd[0].sha256.as_str()));
    assert!(man.policy_digest.starts_with("sha256:"));
    assert!(man.times.last_snapshot_start.is_some());
    // A restore checks the archive against the manifest's checksum before writing it.
    let p = plan_json(&s, "full-cluster");
    let smd: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|x| match &x.params {
            Params::RestoreSmd(r) => r.sha256.as_deref(),
            _ => None,
        })
        .collect();
    assert!(!smd.is_empty());
    assert!(smd.iter().all(|sha| *sha == man.smd[0].sha256), "{smd:?}");
    // And it restores the manifest's members.
    let members: Vec<&str> = man
        .members
        .iter()
        .map(|mb| mb.snapshot_id.as_str())
        .collect();
    for (_, id) in restored_from(&p) {
        assert!(members.contains(&id.as_str()), "{id} is not a member");
    }
    // Nothing is left to do, and status is fine.
    let again = s.asdr(WORLD, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    ok(&s.asdr(WORLD, &["status"], &[]));
}

/// A snapshot tagged for a1's device in the new set, with an id that sorts first: the planner
/// once took the first snapshot carrying the tags.
fn forged_member(w: &World, set: &str) -> Snapshot {
    let real = w
        .snapshots
        .iter()
        .find(|x| {
            x.tags.get("asdr:set").map(String::as_str) == Some(set)
                && x.tags.get("asdr:node").map(String::as_str) == Some("a1")
        })
        .unwrap();
    let mut forged = real.clone();
    forged.id = "snap-0000000000000forged".into();
    forged.volume_id = "vol-0000000000000elsewhere".into();
    forged
}

#[test]
fn a_snapshot_that_only_carries_a_sets_tags_is_never_restored_from() {
    let (s, m) = backed_up();
    let set = m.set.clone();
    let mut w = load(&s);
    let forged = forged_member(&w, &set);
    w.snapshots.push(forged.clone());
    save(&s, &w);
    for restore in ["a1-from-backup", "full-cluster"] {
        let p = plan_json(&s, restore);
        let from = restored_from(&p);
        assert!(!from.is_empty(), "{restore} restores from a set");
        assert!(
            from.iter().all(|(_, id)| *id != forged.id),
            "{restore} restores the forged snapshot: {from:?}"
        );
        // And the verifier, reading the manifest itself, refuses a plan that would.
        let mut bad = p.clone();
        for st in &mut bad.steps {
            if let Params::CreateVolume(c) = &mut st.params
                && st.node.as_deref().is_some_and(|n| n.starts_with("a1"))
                && c.tags.get("asdr:device") == forged.tags.get("asdr:device")
            {
                c.snapshot_id = Some(forged.id.clone());
            }
        }
        assert_refused(&s, &w, &bad, "R2", "not a member");
    }
}

#[test]
fn a_set_whose_member_is_gone_is_not_complete_even_when_another_snapshot_takes_its_tags() {
    let (s, m) = backed_up();
    let set = m.set.clone();
    let mut w = load(&s);
    let forged = forged_member(&w, &set);
    let lost = m
        .file
        .as_ref()
        .unwrap()
        .manifest
        .members
        .iter()
        .find(|mb| mb.node == "a1" && mb.device == forged.tags["asdr:device"])
        .unwrap()
        .snapshot_id
        .clone();
    w.snapshots.retain(|x| x.id != lost);
    w.snapshots.push(forged.clone());
    save(&s, &w);
    let status = s.asdr(WORLD, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_ne!(status.status.code(), Some(0), "{text}");
    assert!(text.contains(&set) && text.contains("is gone"), "{text}");
    let p = plan_json(&s, "full-cluster");
    let from = restored_from(&p);
    assert!(
        from.iter().all(|(_, id)| *id != forged.id && *id != lost),
        "{from:?}"
    );
    assert!(
        p.steps.iter().all(|x| x.params.set() != Some(set.as_str())
            || x.kind() == StepKind::Snapshot
            || x.kind() == StepKind::WaitSnapshot),
        "the damaged set is not restored from"
    );
}

#[test]
fn a_set_whose_manifest_was_altered_or_removed_is_not_counted_and_status_says_so() {
    for how in ["altered", "removed"] {
        let (s, m) = backed_up();
        let set = m.set.clone();
        let mut w = load(&s);
        match how {
            "altered" => {
                let file = w.set_manifests[0].file.as_mut().unwrap();
                file.manifest.members[0].snapshot_id = "snap-0000000000000forged".into();
            }
            _ => w.set_manifests.clear(),
        }
        save(&s, &w);
        let status = s.asdr(WORLD, &["status"], &[]);
        let text = String::from_utf8_lossy(&status.stdout).into_owned();
        assert_ne!(status.status.code(), Some(0), "{how}: {text}");
        assert!(text.contains(&set), "{how}: {text}");
        assert!(
            text.contains(if how == "altered" {
                "altered or damaged"
            } else {
                "not in the SMD store"
            }),
            "{how}: {text}"
        );
        // Not restored from, and a new backup is due in its place.
        let p = plan_json(&s, "full-cluster");
        assert!(
            p.steps
                .iter()
                .filter(|x| x.kind() == StepKind::CreateVolume)
                .all(|x| x.params.set() != Some(set.as_str())),
            "{how}"
        );
        let backup: Plan =
            serde_json::from_str(&ok(&s.asdr(WORLD, &["plan", "--json"], &[]))).unwrap();
        assert!(
            backup
                .steps
                .iter()
                .any(|x| x.kind() == StepKind::WriteManifest),
            "{how}: a new set is due"
        );
    }
}

#[test]
fn a_manifest_file_reads_back_only_whole() {
    let (_, m) = backed_up();
    let bytes = m.file.as_ref().unwrap().to_bytes();
    assert!(ManifestFile::read(&bytes).is_ok());
    assert!(ManifestFile::read(&bytes[..bytes.len() / 2]).is_err());
}

#[test]
fn the_verifier_refuses_a_mark_without_a_manifest_written_first() {
    let s = Scratch::of("prod-east");
    let out = ok(&s.asdr(WORLD, &["plan", "--json"], &[]));
    let mut p: Plan = serde_json::from_str(&out).unwrap();
    let policy = asdr_specs::load(&s.path("asdr.yaml")).unwrap();
    let w = load(&s);
    assert!(asdr_planner::verify(&policy, &w, &p).is_empty());
    // The mark made to wait for what the manifest waited for, and the manifest left out.
    let write = p
        .steps
        .iter()
        .find(|x| x.kind() == StepKind::WriteManifest)
        .unwrap()
        .clone();
    for st in &mut p.steps {
        if st.kind() == StepKind::MarkSetComplete {
            st.depends_on = write.depends_on.clone();
        }
    }
    p.steps.retain(|x| x.id != write.id);
    assert_refused(&s, &w, &p, "R2", "without first writing its manifest");
}

/// prod-east-dr after one backup (copied to us-west-2): the scratch copy.
fn dr_backed_up() -> Scratch {
    let s = Scratch::of("prod-east-dr");
    ok(&s.asdr(DR_WORLD, &["apply", "--yes"], &[]));
    s
}

const DR_WORLD: &str = "world-with-copies.yaml";

#[test]
fn rv1_a_set_whose_manifest_broke_is_never_resumed_or_marked_again_from_its_tags() {
    let (s, m) = backed_up();
    let set = m.set.clone();
    let mut w = load(&s);
    // The manifest lost, and a stand-in carrying the set's tags (and its mark) put beside it.
    let mut forged = forged_member(&w, &set);
    forged.tags.remove("asdr:manifest");
    w.set_manifests.clear();
    w.snapshots.push(forged.clone());
    save(&s, &w);
    let before = s.asdr(WORLD, &["status"], &[]);
    assert_ne!(before.status.code(), Some(0));
    // The next apply makes a new set: the broken one is not finished, marked or given a new
    // manifest built from its tags.
    let p = plan_of(&s, WORLD, &[]);
    let marked: Vec<&str> = p
        .steps
        .iter()
        .filter(|x| {
            matches!(
                x.kind(),
                StepKind::MarkSetComplete | StepKind::WriteManifest
            )
        })
        .filter_map(|x| x.params.set())
        .collect();
    assert!(!marked.is_empty(), "a backup is due");
    assert!(marked.iter().all(|x| *x != set), "{marked:?}");
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let after = s.asdr(WORLD, &["status"], &[]);
    let text = String::from_utf8_lossy(&after.stdout).into_owned();
    assert!(
        text.contains(&set),
        "the broken set is still reported: {text}"
    );
    for restore in ["a1-from-backup", "full-cluster"] {
        let from = restored_from(&plan_json(&s, restore));
        assert!(
            from.iter().all(|(_, id)| *id != forged.id),
            "{restore}: {from:?}"
        );
    }
}

#[test]
fn rv3_a_copy_regions_broken_manifest_is_reported_by_status_and_not_rewritten() {
    let s = dr_backed_up();
    let mut w = world_file::load(&s.path(DR_WORLD)).unwrap();
    let at = w
        .set_manifests
        .iter()
        .position(|m| m.uri.starts_with("s3://acme-dr-west/"))
        .expect("the copy region has its own manifest");
    let set = w.set_manifests[at].set.clone();
    w.set_manifests.remove(at);
    std::fs::write(
        s.path(DR_WORLD),
        world_file::to_string(&w, Format::Yaml).unwrap(),
    )
    .unwrap();
    // Said in status as not proven this cluster's; the copies before it still cover the region.
    let status = s.asdr(DR_WORLD, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        text.contains("not proven this cluster's")
            && text.contains(&format!("us-west-2: set {set}")),
        "{text}"
    );
    let p = plan_of(&s, DR_WORLD, &[]);
    assert!(
        p.steps.iter().all(|x| !(x.region.is_some()
            && matches!(
                x.kind(),
                StepKind::MarkSetComplete | StepKind::WriteManifest
            )
            && x.params.set() == Some(set.as_str()))),
        "the copies are not marked again from their tags"
    );
}

#[test]
fn rv2_a_corrupt_smd_archive_stops_a_full_cluster_restore_before_any_node_is_stopped() {
    let (s, m) = backed_up();
    let mut w = load(&s);
    let uri = m.file.as_ref().unwrap().manifest.smd[0].uri.clone();
    let a = w.smd_archives.iter_mut().find(|a| a.uri == uri).unwrap();
    a.sha256 = Some("deadbeef".into());
    save(&s, &w);
    // status says so, naming the archive.
    let status = s.asdr(WORLD, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_ne!(status.status.code(), Some(0), "{text}");
    assert!(text.contains("SHA-256 deadbeef"), "{text}");
    // A restore of that set (named) checks the archive before it stops anything, and fails there.
    let p = plan_of(&s, WORLD, &["--restore", "full-cluster"]);
    let check = p
        .steps
        .iter()
        .position(|x| x.kind() == StepKind::CheckSmdArchive)
        .expect("the archive is checked");
    for stop in p.steps.iter().filter(|x| x.kind() == StepKind::StopNode) {
        assert!(stop.depends_on.contains(&p.steps[check].id), "{}", stop.id);
    }
    // The set whose archive does not match is not complete: the restore takes the set before
    // it, and a restore naming it is refused before anything runs.
    assert!(
        p.steps
            .iter()
            .all(|x| x.params.set() != Some(m.set.as_str()))
    );
    let named = std::fs::read_to_string(s.path("asdr.yaml"))
        .unwrap()
        .replacen(
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup",
            &format!(
                "  - name: full-cluster\n    scope: cluster\n    source: set:{}",
                m.set
            ),
            1,
        );
    std::fs::write(s.path("asdr.yaml"), named).unwrap();
    let out = s.asdr(WORLD, &["apply", "--yes", "--restore", "full-cluster"], &[]);
    assert!(!out.status.success());
    assert!(
        load(&s).nodes.iter().all(|n| n.reachable),
        "no node was stopped"
    );
    // And the verifier refuses a plan that stops a node before the check.
    let mut bad = p.clone();
    let id = bad.steps[check].id.clone();
    for st in &mut bad.steps {
        st.depends_on.retain(|d| *d != id);
    }
    bad.steps.retain(|x| x.id != id);
    assert_refused(&s, &load(&s), &bad, "R2", "before the SMD archive");
}

#[test]
fn rv4_a_store_moved_with_its_files_keeps_its_sets() {
    let (s, m) = backed_up();
    let (old, new) = ("s3://acme-backups/asdr/prod-east/smd", "s3://acme-new/asdr");
    // The files copied byte for byte: the manifest's content (which names the old archive)
    // unchanged, only where things are.
    let mut w = load(&s);
    for a in &mut w.smd_archives {
        a.uri = a.uri.replace(old, new);
    }
    for m in &mut w.set_manifests {
        m.uri = m.uri.replace(old, new);
    }
    save(&s, &w);
    let policy = std::fs::read_to_string(s.path("asdr.yaml")).unwrap();
    assert!(policy.contains(old));
    std::fs::write(s.path("asdr.yaml"), policy.replace(old, new)).unwrap();
    let status = s.asdr(WORLD, &["status"], &[]);
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
    let members: Vec<String> = m
        .file
        .as_ref()
        .unwrap()
        .manifest
        .members
        .iter()
        .map(|mb| mb.snapshot_id.clone())
        .collect();
    let from = restored_from(&plan_json(&s, "full-cluster"));
    assert!(!from.is_empty());
    assert!(from.iter().all(|(_, id)| members.contains(id)), "{from:?}");
}

#[test]
fn rv5_a_manifest_that_appears_for_a_set_marked_before_manifests_is_not_trusted() {
    let (s, m) = backed_up();
    let mut w = load(&s);
    // The older set in the example was marked before manifests (no asdr:manifest on it).
    let old = "bs-20261120T020000Z";
    assert!(
        w.snapshots
            .iter()
            .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some(old))
            .all(|x| !x.tags.contains_key("asdr:manifest"))
    );
    let mut planted = m.file.as_ref().unwrap().manifest.clone();
    planted.set = old.into();
    planted.members.truncate(1);
    let uri = m.uri.replace(&m.set, old);
    w.set_manifests.push(ObservedManifest {
        uri,
        set: old.into(),
        file: Some(planted.seal()),
        problem: None,
    });
    save(&s, &w);
    let status = s.asdr(WORLD, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(0), "{text}");
    assert!(
        !text.contains("unfinished") || !text.contains(old),
        "{text}"
    );
}

#[test]
fn rv6_a_marked_set_naming_a_manifest_not_in_the_store_is_never_deleted_or_restored_from() {
    // A same-named cluster in this region writing to another store: its sets are marked with
    // manifests this store does not hold.
    let (s, m) = backed_up();
    let mut w = load(&s);
    let foreign_set = "bs-20261101T020000Z";
    let template: Vec<Snapshot> = w
        .snapshots
        .iter()
        .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some(m.set.as_str()))
        .cloned()
        .collect();
    let mut foreign = Vec::new();
    for (i, t) in template.iter().enumerate() {
        let mut x = t.clone();
        x.id = format!("snap-00000000000f{i:05}");
        x.volume_id = format!("vol-00000000000f{i:05}");
        x.start_time = time::macros::datetime!(2026-11-01 02:00:05 UTC);
        x.tags.insert("asdr:set".into(), foreign_set.into());
        x.tags.insert("asdr:manifest".into(), "0".repeat(64));
        foreign.push(x.id.clone());
        w.snapshots.push(x);
    }
    save(&s, &w);
    s.edit("asdr.yaml", "count: 7", "count: 2");
    let p: Plan = serde_json::from_str(&ok(&s.asdr(WORLD, &["plan", "--json"], &[]))).unwrap();
    let deleted: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|x| match &x.params {
            Params::DeleteSnapshot(d) => Some(d.snapshot_id.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        !deleted.is_empty(),
        "retention deletes this cluster's own older sets"
    );
    assert!(
        deleted.iter().all(|d| !foreign.iter().any(|f| f == d)),
        "{deleted:?}"
    );
    assert!(
        p.warnings
            .iter()
            .any(|x| x.message.contains(foreign_set) && x.message.contains("not proven")),
        "{:?}",
        p.warnings
    );
    for restore in ["a1-from-backup", "full-cluster"] {
        let from = restored_from(&plan_json(&s, restore));
        assert!(
            from.iter().all(|(_, id)| !foreign.contains(id)),
            "{restore}: {from:?}"
        );
    }
    // status names it once as not proven, and a fresh cluster stays fine: another cluster's
    // sets are not this one's recovery problem.
    let status = s.asdr(WORLD, &["status"], &[]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!("us-east-1: set {foreign_set}")),
        "{text}"
    );
    assert!(!text.contains("unfinished (bs-20261101"), "{text}");
    // And the verifier refuses a plan that deletes one of them.
    let mut bad = p.clone();
    let mut extra = bad
        .steps
        .iter()
        .find(|x| x.kind() == StepKind::DeleteSnapshot)
        .unwrap()
        .clone();
    extra.id = format!("delete_snapshot:{}", foreign[0]);
    if let Params::DeleteSnapshot(d) = &mut extra.params {
        d.snapshot_id = foreign[0].clone();
        d.set = foreign_set.into();
    }
    bad.steps.push(extra);
    assert_refused(&s, &load(&s), &bad, "R13", "nothing proves");
}

#[test]
fn rv7_another_clusters_snapshots_sharing_a_sets_id_are_left_when_the_set_expires() {
    // Two same-named clusters whose backups start in the same second: the other's snapshots
    // carry this set's id and a mark naming their own manifest. Whichever way their ids sort.
    for prefix in ["snap-00000000000", "snap-fffffffffff"] {
        let (s, m) = backed_up();
        let mut w = load(&s);
        let ours: Vec<Snapshot> = w
            .snapshots
            .iter()
            .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some(m.set.as_str()))
            .cloned()
            .collect();
        let mut foreign = Vec::new();
        for (i, t) in ours.iter().enumerate() {
            let mut x = t.clone();
            x.id = format!("{prefix}{i:06}");
            x.volume_id = format!("vol-000000000ff{i:05}");
            x.tags.insert("asdr:manifest".into(), "0".repeat(64));
            foreign.push(x.id.clone());
            w.snapshots.push(x);
        }
        save(&s, &w);
        s.edit("asdr.yaml", "count: 7", "count: 2");
        // Daily applies, each making a set: this set expires on the way.
        let mut deleted_ours = false;
        for _ in 0..4 {
            let mut w = load(&s);
            w.now = w.now.map(|t| t + time::Duration::hours(25));
            save(&s, &w);
            ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
            let w = load(&s);
            for f in &foreign {
                assert!(
                    w.snapshots.iter().any(|x| &x.id == f),
                    "{prefix}: {f}, another cluster's, was deleted"
                );
            }
            deleted_ours |= !w.snapshots.iter().any(|x| x.id == ours[0].id);
        }
        assert!(deleted_ours, "{prefix}: this cluster's set expired");
        ok(&s.asdr(WORLD, &["status"], &[]));
    }
}
