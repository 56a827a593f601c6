//! The cluster id end to end on world files, through the real binary: the first apply claims it
//! and everything it makes carries it; a same-named cluster (another id) in the same region and
//! store is never counted, restored from or deleted; instances carrying two ids are refused; a
//! cluster whose instances lost the tag adopts its id from its manifests only when a member
//! volume shows the instances are that cluster.

use std::process::Output;

use asdr_planner::manifest::{Member, ObservedManifest, SetManifest, SmdEntry, Times};
use asdr_planner::params::Params;
use asdr_planner::{Plan, StepKind, World};
use asdr_providers::world_file::{self, Format};

use crate::apply::Scratch;

const WORLD: &str = "world-backup-due.yaml";
const ID: &str = "asdr:cluster-id";
/// The same-named cluster's id and its set: newer than any of ours, so taking it for ours would
/// make it the newest complete set.
const TWIN: &str = "7717000000000000";
const TWIN_SET: &str = "bs-20261121T080000Z";
/// The newest of prod-east's own sets in the example world.
const OURS_NEWEST: &str = "bs-20261120T020000Z";

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn load(s: &Scratch) -> World {
    world_file::load(&s.path(WORLD)).unwrap()
}

fn save(s: &Scratch, w: &World) {
    std::fs::write(
        s.path(WORLD),
        world_file::to_string(w, Format::Yaml).unwrap(),
    )
    .unwrap();
}

fn plan_of(s: &Scratch, args: &[&str]) -> Plan {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(&s.asdr(WORLD, &all, &[]))).unwrap()
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
fn with_twin(w: &mut World, ours: &str) {
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
    let mut members = Vec::new();
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
        members.push(Member {
            node: t.tags["asdr:node"].clone(),
            device: t.tags["asdr:device"].clone(),
            volume_id: t.volume_id.clone(),
            snapshot_id: t.id.clone(),
            source_snapshot_id: None,
            size_gib: t.volume_size_gib,
            encrypted: t.encrypted,
            kms_key_id: t.kms_key_id.clone(),
            started: Some("2026-11-21T08:00:00Z".into()),
        });
        snaps.push(t);
    }
    assert_eq!(snaps.len(), 9);
    members.sort_by(|a, b| (&a.node, &a.device).cmp(&(&b.node, &b.device)));
    let file = SetManifest {
        format: asdr_planner::manifest::FORMAT,
        cluster: "prod-east".into(),
        cluster_id: Some(TWIN.into()),
        set: TWIN_SET.into(),
        method: "ebs".into(),
        region: "us-east-1".into(),
        source_region: None,
        members,
        namespaces: vec!["users".into(), "events".into()],
        smd: vec![SmdEntry {
            node: "a1".into(),
            uri: smd_uri.clone(),
            sha256: sha.clone(),
        }],
        times: Times {
            set: "2026-11-21T08:00:00Z".into(),
            written: "2026-11-21T08:10:00Z".into(),
            first_snapshot_start: None,
            last_snapshot_start: None,
        },
        policy_digest: "sha256:00".into(),
    }
    .seal();
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
    with_twin(&mut w, &ours);
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
        "recorded by the set manifests in the policy's stores"
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
