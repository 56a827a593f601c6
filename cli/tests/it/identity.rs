//! The cluster id end to end on world files, through the real binary: the first apply claims it
//! and everything it makes carries it; a same-named cluster (another id) in the same region and
//! store is never counted, restored from or deleted; instances carrying two ids are refused; a
//! cluster whose instances lost the tag adopts its id from its manifests only when a member
//! volume shows the instances are that cluster.

use crate::apply::Scratch;
use crate::support::{self, ok};
use asdr_planner::manifest::{ObservedManifest, SmdEntry};
use asdr_planner::params::Params;
use asdr_planner::{Plan, StepKind, World};

const WORLD: &str = "world-backup-due.yaml";
const ID: &str = "asdr:cluster-id";
/// The same-named cluster's id and its set: newer than any of ours, so taking it for ours would
/// make it the newest complete set.
const TWIN: &str = "7717000000000000";
const TWIN_SET: &str = "bs-20261121T080000Z";
/// The newest of prod-east's own sets in the example world.
const OURS_NEWEST: &str = "bs-20261120T020000Z";

fn load(s: &Scratch) -> World {
    support::load(s, WORLD)
}

fn save(s: &Scratch, w: &World) {
    support::save(s, WORLD, w)
}

fn plan_of(s: &Scratch, args: &[&str]) -> Plan {
    support::plan_of(s, WORLD, args)
}

fn status_json(s: &Scratch) -> serde_json::Value {
    let out = s.asdr(WORLD, &["status", "--json"], &[]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn claims(p: &Plan) -> Vec<&asdr_planner::params::ClaimCluster> {
    p.steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::ClaimCluster(c) => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_first_apply_claims_the_cluster_id_and_everything_it_makes_carries_it() {
    let s = Scratch::of("prod-east");
    let p = plan_of(&s, &[]);
    let id = p.cluster_id.clone().expect("the plan names the cluster id");
    let c = claims(&p);
    assert_eq!(c.len(), 1, "the first plan claims the id");
    assert_eq!(c[0].cluster_id, id);
    assert_eq!(c[0].instances.len(), 3, "every node's instance");
    // Whatever the plan creates waits for the claim.
    for step in p.steps.iter().filter(|x| x.params.tags().is_some()) {
        assert!(
            step.depends_on.iter().any(|d| d == "claim_cluster"),
            "{}",
            step.id
        );
        assert_eq!(step.params.tags().unwrap()[ID], id, "{}", step.id);
    }
    // The role that applies it may tag the id on instances that carry none, and nothing else.
    let iam = ok(&s.asdr(WORLD, &["iam-policy"], &[]));
    assert!(iam.contains("ClaimTheClusterId"), "{iam}");
    // The same world, the same id: an interrupted first apply mints it again.
    assert_eq!(plan_of(&s, &[]).cluster_id.as_deref(), Some(id.as_str()));

    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let w = load(&s);
    for i in &w.instances {
        assert_eq!(i.tags.get(ID), Some(&id), "{}", i.id);
    }
    let made: Vec<_> = w
        .snapshots
        .iter()
        .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some("bs-20261121T090000Z"))
        .collect();
    assert_eq!(made.len(), 9);
    assert!(made.iter().all(|x| x.tags.get(ID) == Some(&id)));
    let m = w.set_manifests[0].file.as_ref().unwrap();
    assert_eq!(m.manifest.cluster_id.as_deref(), Some(id.as_str()));
    // Claimed: no further claim, and `status` says where the id is.
    assert!(claims(&plan_of(&s, &["--restore", "full-cluster"])).is_empty());
    let st = status_json(&s);
    assert_eq!(st["cluster_id"], id.as_str());
    assert_eq!(st["cluster_id_source"], "tagged on the cluster's instances");
}

/// prod-east claimed `ours`, and beside it a same-named cluster (id TWIN) in the same region,
/// writing to the same store: an instance of a node prod-east does not have, and one complete
/// set with its manifest and SMD archive, an hour old — newer than anything of ours.
fn with_twin(w: &mut World, ours: &str, policy: &asdr_specs::Policy) {
    for i in &mut w.instances {
        i.tags.insert(ID.into(), ours.into());
    }
    let mut twin = w.instances[0].clone();
    twin.id = "i-0000000000000twin".into();
    twin.block_devices.clear();
    twin.tags.insert("asdr:node".into(), "c9".into());
    twin.tags.insert(ID.into(), TWIN.into());
    w.instances.push(twin);
    let store = "s3://acme-backups/asdr/prod-east/smd";
    let smd_uri = format!("{store}/prod-east/{TWIN_SET}/a1.smd.tar");
    let sha = "ab".repeat(32);
    let start = time::macros::datetime!(2026-11-21 08:00:00 UTC);
    let mut snaps = Vec::new();
    for (n, x) in w
        .snapshots
        .iter()
        .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some(OURS_NEWEST))
        .enumerate()
    {
        let mut t = x.clone();
        t.id = format!("snap-00000000000twin{n}");
        t.volume_id = format!("vol-000000000000twin{n}");
        t.start_time = start;
        t.tags.insert("asdr:set".into(), TWIN_SET.into());
        t.tags.insert(ID.into(), TWIN.into());
        snaps.push(t);
    }
    assert_eq!(snaps.len(), 9);
    let smd = vec![SmdEntry {
        node: "a1".into(),
        uri: smd_uri.clone(),
        sha256: sha.clone(),
    }];
    let file = asdr_planner::testkit::manifest_of(
        policy,
        TWIN_SET,
        &snaps.iter().collect::<Vec<_>>(),
        Some(TWIN.into()),
        smd,
    );
    for t in &mut snaps {
        t.tags.insert("asdr:complete".into(), "true".into());
        t.tags.insert("asdr:members".into(), "9".into());
        t.tags.insert("asdr:manifest".into(), file.sha256.clone());
    }
    w.snapshots.extend(snaps);
    w.smd_archives.push(asdr_planner::world::SmdArchive {
        set: TWIN_SET.into(),
        node: "a1".into(),
        uri: smd_uri,
        sha256: Some(sha),
    });
    w.set_manifests.push(ObservedManifest {
        uri: asdr_planner::manifest::uri(store, "prod-east", TWIN_SET),
        set: TWIN_SET.into(),
        file: Some(file),
        problem: None,
    });
}

fn is_twins(id: &str) -> bool {
    id.contains("twin")
}

#[test]
fn a_same_named_cluster_in_the_same_region_and_store_is_never_counted_restored_from_or_deleted() {
    let s = Scratch::of("prod-east");
    let ours = plan_of(&s, &[]).cluster_id.unwrap();
    let mut w = load(&s);
    with_twin(
        &mut w,
        &ours,
        &asdr_specs::load(&s.path("asdr.yaml")).unwrap(),
    );
    save(&s, &w);

    // Not counted: our newest set is 31 h old, so a backup is overdue, whatever the twin made.
    let st = status_json(&s);
    assert_eq!(st["overdue"], true, "{st}");
    assert_eq!(st["newest_complete"]["set"], OURS_NEWEST, "{st}");
    let listed = st.to_string();
    assert!(!listed.contains(TWIN_SET), "{listed}");
    assert_eq!(
        st["other_cluster_resources"], 10,
        "9 snapshots and an instance"
    );
    let text = String::from_utf8_lossy(&s.asdr(WORLD, &["status"], &[]).stdout).into_owned();
    assert!(text.contains("another cluster of the same name"), "{text}");

    // Not taken for ours: a backup is due, and nothing of the twin's is deleted.
    let p = plan_of(&s, &[]);
    assert!(
        p.steps
            .iter()
            .any(|x| x.kind() == StepKind::SnapshotInstance)
    );
    for x in &p.steps {
        assert!(!x.params.snapshot_id().is_some_and(is_twins), "{}", x.id);
        assert!(!x.params.instance_id().is_some_and(is_twins), "{}", x.id);
    }
    assert!(
        p.warnings
            .iter()
            .any(|x| x.message.contains("another cluster of the same name")),
        "{:?}",
        p.warnings
    );
    // Not restored from: the restores take our newest set.
    let full = plan_of(&s, &["--restore", "full-cluster"]);
    let from: Vec<&str> = full
        .steps
        .iter()
        .filter(|x| x.kind() == StepKind::CreateVolume)
        .filter_map(|x| x.params.snapshot_id())
        .collect();
    assert_eq!(from.len(), 9);
    assert!(from.iter().all(|x| !is_twins(x)), "{from:?}");

    // The verifier reads the ids itself: a plan edited to restore from the twin's is refused.
    let mut edited = full.clone();
    let x = edited
        .steps
        .iter_mut()
        .find(|x| x.kind() == StepKind::CreateVolume)
        .unwrap();
    if let Params::CreateVolume(c) = &mut x.params {
        c.snapshot_id = Some("snap-00000000000twin0".into());
    }
    let policy = asdr_specs::load(&s.path("asdr.yaml")).unwrap();
    let v = asdr_planner::verify(&policy, &w, &edited);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("another cluster's")),
        "{v:?}"
    );

    // Applied: the twin's snapshots, set and instance are all as they were.
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let after = load(&s);
    let twins = |w: &World| {
        w.snapshots
            .iter()
            .filter(|x| is_twins(&x.id))
            .map(|x| (x.id.clone(), x.tags.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(twins(&after), twins(&w));
    let inst = after.instances.iter().find(|i| is_twins(&i.id)).unwrap();
    assert_eq!(inst.tags[ID], TWIN);
}

#[test]
fn instances_carrying_two_cluster_ids_are_refused_naming_both() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s);
    for (n, i) in w.instances.iter_mut().enumerate() {
        let id = if n == 0 { TWIN } else { "0123456789abcdef" };
        i.tags.insert(ID.into(), id.into());
    }
    save(&s, &w);
    let out = s.asdr(WORLD, &["plan"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(TWIN) && err.contains("0123456789abcdef"),
        "{err}"
    );
    assert!(err.contains("two clusters named `prod-east`"), "{err}");
    let st = s.asdr(WORLD, &["status"], &[]);
    assert_eq!(st.status.code(), Some(2));
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("id:         unknown"), "{text}");
    assert!(text.contains("two clusters named"), "{text}");
}

#[test]
fn instances_that_lost_the_id_adopt_it_from_the_manifests_only_when_a_member_volume_shows_it() {
    let s = Scratch::of("prod-east");
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let mut w = load(&s);
    let id = w.instances[0].tags[ID].clone();
    // Two instances replaced by hand, the volumes moved over; none carries the id.
    for i in &mut w.instances {
        i.tags.remove(ID);
        if i.id != "i-0a1" {
            i.id = i.id.replacen("i-0000", "i-0e00", 1);
        }
    }
    save(&s, &w);
    let p = plan_of(&s, &["--restore", "full-cluster"]);
    assert_eq!(
        p.cluster_id.as_deref(),
        Some(id.as_str()),
        "adopted, not minted anew"
    );
    assert_eq!(claims(&p)[0].instances.len(), 3);
    assert_eq!(
        status_json(&s)["cluster_id_source"],
        "recorded by the cluster's manifests, runs or earlier instances"
    );
    // New volumes too: nothing shows these instances are the cluster those sets were made of.
    for i in &mut w.instances {
        for b in &mut i.block_devices {
            b.volume_id = b.volume_id.replacen("vol-0000", "vol-0e00", 1);
        }
    }
    save(&s, &w);
    let out = s.asdr(WORLD, &["plan", "--restore", "full-cluster"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("Key={ID},Value={id}")), "{err}");
}

/// The example world with its instances claimed with the id the first plan mints.
fn claimed(s: &Scratch) -> (World, String) {
    let id = plan_of(s, &[]).cluster_id.unwrap();
    let mut w = load(s);
    for i in &mut w.instances {
        i.tags.insert(ID.into(), id.clone());
    }
    save(s, &w);
    (w, id)
}

#[test]
fn a_same_named_clusters_set_of_the_same_second_is_never_marked_adopted_or_overwritten() {
    let s = Scratch::of("prod-east");
    let (mut w, ours) = claimed(&s);
    // The twin began its set in the same second as the backup this apply makes, in the same
    // store: its snapshots carry the same set, node and device tags, its manifest is at the path
    // ours would take.
    with_twin(
        &mut w,
        &ours,
        &asdr_specs::load(&s.path("asdr.yaml")).unwrap(),
    );
    let set = "bs-20261121T090000Z";
    for x in w.snapshots.iter_mut().filter(|x| is_twins(&x.id)) {
        x.tags.insert("asdr:set".into(), set.into());
    }
    for m in w.set_manifests.iter_mut().filter(|m| m.set == TWIN_SET) {
        let mut f = m.file.clone().unwrap().manifest;
        f.set = set.into();
        m.set = set.into();
        m.uri =
            asdr_planner::manifest::uri("s3://acme-backups/asdr/prod-east/smd", "prod-east", set);
        m.file = Some(f.seal());
    }
    save(&s, &w);
    let twins_before: Vec<_> = w
        .snapshots
        .iter()
        .filter(|x| is_twins(&x.id))
        .cloned()
        .collect();
    let manifest_before = w
        .set_manifests
        .iter()
        .find(|m| m.set == set)
        .cloned()
        .unwrap();
    let out = s.asdr(WORLD, &["apply", "--yes"], &[]);
    // Our set is not recorded over theirs: the write is refused, naming the shared store.
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a same-named cluster writes to this store"),
        "{err}"
    );
    let after = load(&s);
    let twins_after: Vec<_> = after
        .snapshots
        .iter()
        .filter(|x| is_twins(&x.id))
        .cloned()
        .collect();
    assert_eq!(
        twins_after, twins_before,
        "the twin's snapshots are as they were"
    );
    assert_eq!(
        after.set_manifests.iter().find(|m| m.set == set),
        Some(&manifest_before)
    );
    // Our own snapshots of the set were each waited for as ours, never the twin's.
    let ours_made: Vec<_> = after
        .snapshots
        .iter()
        .filter(|x| x.tags.get("asdr:set").map(String::as_str) == Some(set) && !is_twins(&x.id))
        .collect();
    assert_eq!(ours_made.len(), 9);
    assert!(ours_made.iter().all(|x| x.tags.get(ID) == Some(&ours)));
    assert!(
        ours_made
            .iter()
            .all(|x| !x.tags.contains_key("asdr:complete"))
    );
}

#[test]
fn an_instance_that_only_carries_a_nodes_tags_elsewhere_is_neither_the_node_nor_claimed() {
    let s = Scratch::of("prod-east");
    let mut w = load(&s);
    // Launched by someone who can tag: b1's tags, another address, an id sorting first, its own
    // volume; once with no cluster id, once with another.
    let mut decoy = w.instances[1].clone();
    decoy.id = "i-00000000000000666".into();
    decoy.private_ip = Some("10.0.9.66".into());
    decoy.block_devices.truncate(1);
    decoy.block_devices[0].volume_id = "vol-00000000000000666".into();
    w.instances.push(decoy);
    for with_id in [None, Some(TWIN)] {
        let mut w = w.clone();
        if let Some(id) = with_id {
            w.instances
                .last_mut()
                .unwrap()
                .tags
                .insert(ID.into(), id.into());
        }
        save(&s, &w);
        let p = plan_of(&s, &[]);
        let c = claims(&p);
        assert!(
            !c[0].instances.iter().any(|i| i.ends_with("666")),
            "{with_id:?}"
        );
        assert_eq!(c[0].instances.len(), 3);
        let full = plan_of(&s, &["--restore", "full-cluster"]);
        for x in p.steps.iter().chain(&full.steps) {
            assert!(
                !x.params.instance_id().is_some_and(|i| i.ends_with("666")),
                "{}",
                x.id
            );
            assert!(
                !x.params.volume_id().is_some_and(|v| v.ends_with("666")),
                "{}",
                x.id
            );
        }
    }
}

#[test]
fn a_volume_of_a_node_carrying_another_cluster_id_stops_every_plan_before_any_step() {
    let s = Scratch::of("prod-east");
    let (mut w, _) = claimed(&s);
    let v = w
        .volumes
        .iter_mut()
        .find(|v| v.id == "vol-00000000000002000")
        .unwrap();
    v.tags.insert(ID.into(), "ffffffffffffffff".into());
    save(&s, &w);
    for args in [
        &["plan"][..],
        &["plan", "--restore", "full-cluster"],
        &["apply", "--yes"],
    ] {
        let out = s.asdr(WORLD, args, &[]);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("vol-00000000000002000") && err.contains("ffffffffffffffff"),
            "{err}"
        );
    }
    assert_eq!(load(&s), w, "nothing was done");
}

#[test]
fn the_policy_can_state_the_id_and_it_settles_a_store_that_records_two() {
    let s = Scratch::of("prod-east");
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let mut w = load(&s);
    let id = w.instances[0].tags[ID].clone();
    // The instances lost the tag, and the store also records a same-named cluster's set.
    for i in &mut w.instances {
        i.tags.remove(ID);
    }
    let mut twin = w.set_manifests[0].file.clone().unwrap().manifest;
    twin.cluster_id = Some(TWIN.into());
    twin.set = TWIN_SET.into();
    w.set_manifests.push(ObservedManifest {
        uri: asdr_planner::manifest::uri(
            "s3://acme-backups/asdr/prod-east/smd",
            "prod-east",
            TWIN_SET,
        ),
        set: TWIN_SET.into(),
        file: Some(twin.seal()),
        problem: None,
    });
    save(&s, &w);
    let out = s.asdr(WORLD, &["plan", "--restore", "full-cluster"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cluster.id"));
    // Stated, it wins: the restore is planned from our sets, as that id's.
    s.edit(
        "asdr.yaml",
        "  name: prod-east",
        &format!("  name: prod-east\n  id: {id}"),
    );
    let p = plan_of(&s, &["--restore", "full-cluster"]);
    assert_eq!(p.cluster_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        status_json(&s)["cluster_id_source"],
        "stated by the policy (cluster.id)"
    );
    // A stated id the instances contradict is refused, naming both.
    s.edit(
        "asdr.yaml",
        &format!("  id: {id}"),
        "  id: 00000000000000aa",
    );
    let mut w = load(&s);
    for i in &mut w.instances {
        i.tags.insert(ID.into(), id.clone());
    }
    save(&s, &w);
    let out = s.asdr(WORLD, &["plan"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("00000000000000aa") && err.contains(&id),
        "{err}"
    );
}

#[test]
fn the_iam_policy_lets_the_role_set_only_this_clusters_id_only_where_none_is() {
    let s = Scratch::of("prod-east");
    let (_, id) = claimed(&s);
    // Claimed already: the statement is there all the same (a node replaced by hand later).
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&s.asdr(WORLD, &["iam-policy"], &[]))).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    let claim = statements
        .iter()
        .find(|x| x["Sid"] == "ClaimTheClusterId")
        .expect("the claim statement");
    assert_eq!(claim["Resource"], "arn:aws:ec2:us-east-1:*:instance/*");
    assert_eq!(
        claim["Condition"]["StringEquals"]["aws:RequestTag/asdr:cluster-id"],
        id.as_str()
    );
    assert_eq!(
        claim["Condition"]["Null"]["aws:ResourceTag/asdr:cluster-id"],
        "true"
    );
    let tag_owned = statements
        .iter()
        .find(|x| x["Sid"] == "TagWhatAsdrOwns")
        .unwrap();
    let later = tag_owned["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"].to_string();
    assert!(
        !later.contains("asdr:cluster-id") && !later.contains("\"asdr:cluster\""),
        "retagging what is owned never sets the id or the name: {later}"
    );
    for sid in ["ChangeOnlyWhatAsdrOwns", "TagWhatAsdrOwns"] {
        let x = statements.iter().find(|x| x["Sid"] == sid).unwrap();
        assert_eq!(
            x["Condition"]["StringEqualsIfExists"]["aws:ResourceTag/asdr:cluster-id"],
            id.as_str(),
            "{sid}"
        );
    }
}

#[test]
fn a_drill_of_a_restore_at_home_claims_the_id_its_stand_ins_carry() {
    let s = Scratch::of("community");
    let policy = asdr_specs::load(&s.path("asdr.yaml")).unwrap();
    let w = load(&s);
    let now = w.now.unwrap();
    let p = asdr_planner::plan(
        &policy,
        &w,
        now,
        &asdr_planner::Operation::Drill("quarterly".into()),
    )
    .unwrap();
    let c = claims(&p);
    assert_eq!(c.len(), 1);
    let id = p.cluster_id.clone().unwrap();
    for x in p.steps.iter().filter(|x| x.params.tags().is_some()) {
        assert_eq!(x.params.tags().unwrap()[ID], id, "{}", x.id);
    }
}

#[test]
fn instances_retagged_with_another_id_make_status_say_its_own_history_reads_as_anothers() {
    let s = Scratch::of("prod-east");
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let mut w = load(&s);
    let old = w.instances[0].tags[ID].clone();
    for i in &mut w.instances {
        i.tags.insert(ID.into(), "1111111111111111".into());
    }
    save(&s, &w);
    let out = s.asdr(WORLD, &["status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "9 snapshot(s) of this cluster's node volumes carry cluster id {old}"
        )),
        "{text}"
    );
    let p = plan_of(&s, &[]);
    assert!(
        p.warnings.iter().any(|x| x.message.contains(&old)),
        "{:?}",
        p.warnings
    );
}

#[test]
fn a_same_named_clusters_snapshots_of_the_same_set_id_are_never_waited_for_or_marked() {
    let s = Scratch::of("prod-east");
    let (mut w, ours) = claimed(&s);
    // The twin keeps its manifests in a store of its own; its set began in the same second.
    with_twin(
        &mut w,
        &ours,
        &asdr_specs::load(&s.path("asdr.yaml")).unwrap(),
    );
    w.set_manifests.retain(|m| m.set != TWIN_SET);
    w.smd_archives.retain(|a| a.set != TWIN_SET);
    let set = "bs-20261121T090000Z";
    for x in w.snapshots.iter_mut().filter(|x| is_twins(&x.id)) {
        x.tags.insert("asdr:set".into(), set.into());
    }
    save(&s, &w);
    let before: Vec<_> = w
        .snapshots
        .iter()
        .filter(|x| is_twins(&x.id))
        .cloned()
        .collect();
    ok(&s.asdr(WORLD, &["apply", "--yes"], &[]));
    let after = load(&s);
    let twins: Vec<_> = after
        .snapshots
        .iter()
        .filter(|x| is_twins(&x.id))
        .cloned()
        .collect();
    assert_eq!(
        twins, before,
        "the twin's snapshots are neither retagged nor counted"
    );
    let m = after.set_manifests.iter().find(|m| m.set == set).unwrap();
    let members = &m.file.as_ref().unwrap().manifest.members;
    assert_eq!(members.len(), 9);
    assert!(
        members.iter().all(|x| !is_twins(&x.snapshot_id)),
        "{members:?}"
    );
}
