//! EBS-snapshot histories: prod-east-dr (copies to us-west-2) with edits between applies — a
//! node added and removed, a device added, `retain` lowered, the copy region dropped and taken
//! up again, a set pinned by a `set:` restore, the SMD archives no longer seen (`smd.to` moved),
//! a same-named cluster's snapshots in the copy region and its copies in the cluster's own
//! region, a same-named cluster in the same region and store with its own cluster id, the clock
//! moving by uneven steps and now and then backwards (a runner behind).

use std::collections::BTreeSet;

use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
use asdr_planner::world::{InstanceState, World};
use asdr_planner::{Operation, PlanError, plan};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

use super::{Rng, Tally, apply_lagging, status_agrees};

const WEST: &str = "us-west-2";

/// The edits made so far.
#[derive(Debug, Clone, Default)]
struct Edits {
    home_count: u32,
    copy_count: u32,
    a3: bool,
    sdi: bool,
    no_copies: bool,
    pinned: Option<String>,
    /// `before:` restores at home and in the copy region, at this time (RFC 3339).
    before: Option<String>,
}

/// prod-east-dr with the edits made so far.
fn policy_of(e: &Edits) -> Policy {
    // The copy's retain first: its text is the one `{count: N}` could also match.
    let mut p = ExamplePolicy::named("prod-east-dr")
        .edit(
            "retain: {count: 3}",
            &format!("retain: {{count: {}}}", e.copy_count),
        )
        .edit(
            "retain: {count: 7, max_age: 30d}",
            &format!("retain: {{count: {}}}", e.home_count),
        );
    if e.a3 {
        p = p
            .edit(
                "\nbackup:",
                "    - name: a3\n      private_ip: 10.0.2.12\n      availability_zone: us-east-1b\n\nbackup:",
            )
            .edit("a2: 10.1.1.12}", "a2: 10.1.1.12, a3: 10.1.2.12}");
    }
    if e.sdi {
        p = p.edit(
            "        - device: /dev/sdh        # EBS directly, no shadow; `ebs` defaults to the shadow's path, else the device's\n",
            "        - device: /dev/sdh\n        - device: /dev/sdi\n",
        );
    }
    if e.no_copies {
        // The copies, the restore there and its drill: gone from the policy.
        let a = p.text.find("  copies:").expect("the copies are there");
        let b = a + p.text[a..]
            .find("  max_nodes_at_once:")
            .expect("their end is there");
        p.text.replace_range(a..b, "");
        let at = p.text.find("  - name: dr-west").expect("dr-west");
        p.text.truncate(at);
    }
    if let Some(t) = &e.before {
        if !e.no_copies {
            p = p.edit(
                "    scope: cluster\n    source: latest-backup\n    region: us-west-2",
                &format!("    scope: cluster\n    source: 'before:{t}'\n    region: us-west-2"),
            );
        }
        let at = p.text.find("restores:\n").expect("restores") + "restores:\n".len();
        p.text.insert_str(
            at,
            &format!(
                "  - {{name: before, scope: cluster, source: 'before:{t}', accept_zombie_records: true}}\n"
            ),
        );
    }
    if let Some(set) = &e.pinned {
        let at = p.text.find("restores:\n").expect("restores") + "restores:\n".len();
        p.text.insert_str(
            at,
            &format!(
                "  - {{name: pinned, scope: cluster, source: 'set:{set}', accept_zombie_records: true}}\n"
            ),
        );
    }
    p.policy()
}

/// What the edited policy's cluster has that `world` lacks (a node's instance, volumes and
/// observation; a device's volume, attached to the node's instance there), taken from a world
/// generated for it.
pub(super) fn grow(world: &mut World, policy: &Policy, now: OffsetDateTime) {
    let mut spec = WorldSpec::new(now);
    spec.sets = 0;
    let fresh = world_for(policy, &spec);
    for i in &fresh.instances {
        if !world.instances.iter().any(|x| x.private_ip == i.private_ip) {
            world.instances.push(i.clone());
        }
    }
    for v in &fresh.volumes {
        let Some(a) = v.attachments.first() else {
            continue;
        };
        // The node's instance in this world: the one at the fresh instance's address.
        let ip = fresh
            .instances
            .iter()
            .find(|i| i.id == a.instance_id)
            .and_then(|i| i.private_ip.clone());
        let Some(host) = world
            .instances
            .iter()
            .position(|i| i.private_ip == ip && i.state != InstanceState::Terminated)
        else {
            continue;
        };
        let host_id = world.instances[host].id.clone();
        let taken = world.volumes.iter().any(|x| {
            x.attachments
                .iter()
                .any(|xa| xa.instance_id == host_id && xa.device == a.device)
        });
        if taken {
            continue;
        }
        let mut v = v.clone();
        // An id of its own: the generated world numbers its volumes from the same start.
        v.id = format!("vol-9{:016x}", world.volumes.len());
        for att in &mut v.attachments {
            att.instance_id = host_id.clone();
        }
        let inst = &mut world.instances[host];
        inst.block_devices.retain(|b| b.device_name != a.device);
        inst.block_devices.push(asdr_planner::world::BlockDevice {
            device_name: a.device.clone(),
            volume_id: v.id.clone(),
            delete_on_termination: false,
        });
        world.volumes.push(v);
    }
    for n in fresh.nodes.iter().cloned() {
        match world.nodes.iter_mut().find(|x| x.name == n.name) {
            Some(x) => *x = n,
            None => world.nodes.push(n),
        }
    }
}

/// Three snapshots tagged for the cluster in `region` (None: its own) with set `set`: in the
/// copy region without source tags (a same-named cluster whose home it is), at home with them (a
/// same-named cluster elsewhere copied them here). Marked complete: they look like a set.
fn not_ours(world: &mut World, region: Option<&str>, set: &str, k: usize) -> Vec<String> {
    let Some(t) = world
        .snapshots
        .iter()
        .find(|s| s.region.is_none() && s.tags.contains_key("asdr:complete"))
        .cloned()
    else {
        return Vec::new();
    };
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut s = t.clone();
        s.id = format!("snap-f{k:04}{n:011}{}", u8::from(region.is_none()));
        s.region = region.map(str::to_string);
        s.tags.retain(|k, _| !k.starts_with("asdr:source"));
        if region.is_none() {
            s.tags.insert("asdr:source-region".into(), WEST.into());
            s.tags
                .insert("asdr:source-snapshot".into(), format!("snap-0west{n:08}"));
        }
        s.tags.insert("asdr:set".into(), set.into());
        s.tags.insert("asdr:members".into(), "3".into());
        s.tags.insert("asdr:node".into(), format!("a{n}"));
        ids.push(s.id.clone());
        world.snapshots.push(s);
    }
    ids
}

/// A same-named cluster in the same region and store, with its own cluster id: a copy of our
/// newest complete set's snapshots (of its own volumes), marked, with its manifest sealed in our
/// store (recording its id) and its SMD archive there: whole by every test but whose it is. It
/// is newer than every set of ours, so taking it for ours would change what is counted, kept
/// and restored.
fn twin(world: &mut World, policy: &Policy, now: OffsetDateTime, k: usize) -> Vec<String> {
    use asdr_planner::manifest::{ObservedManifest, SmdEntry};
    let Some(newest) = asdr_planner::status::status(policy, world, now)
        .complete_sets
        .last()
        .cloned()
    else {
        return Vec::new();
    };
    let set = super::set_at(now - time::Duration::minutes(10));
    let mut snaps: Vec<asdr_planner::world::Snapshot> = world
        .snapshots
        .iter()
        .filter(|s| s.region.is_none() && s.tags.get("asdr:set") == Some(&newest))
        .cloned()
        .collect();
    for (n, s) in snaps.iter_mut().enumerate() {
        s.id = format!("snap-t{k:04}{n:011}");
        s.volume_id = format!("vol-t{k:04}{n:011}");
        s.start_time = now - time::Duration::minutes(10);
        s.tags.insert("asdr:set".into(), set.clone());
        s.tags
            .insert("asdr:cluster-id".into(), "7717000000000000".into());
    }
    let store = &policy.backup.smd_to;
    let cluster = &policy.cluster.name;
    let smd_uri = format!("{}/{cluster}/{set}/a1.smd.tar", store.trim_end_matches('/'));
    let sha = "ab".repeat(32);
    let smd = vec![SmdEntry {
        node: "a1".into(),
        uri: smd_uri.clone(),
        sha256: sha.clone(),
    }];
    let file = asdr_planner::testkit::manifest_of(
        policy,
        &set,
        &snaps.iter().collect::<Vec<_>>(),
        Some("7717000000000000".into()),
        smd,
    );
    let mut ids = Vec::new();
    for mut s in snaps {
        s.tags.insert("asdr:manifest".into(), file.sha256.clone());
        ids.push(s.id.clone());
        world.snapshots.push(s);
    }
    world.smd_archives.push(asdr_planner::world::SmdArchive {
        set: set.clone(),
        node: "a1".into(),
        uri: smd_uri,
        sha256: Some(sha),
    });
    world.set_manifests.push(ObservedManifest {
        uri: asdr_planner::manifest::uri(store, cluster, &set),
        set,
        file: Some(file),
        problem: None,
    });
    ids
}

/// `before: T` means the same in every region (defect 7): a copy keeps its source's moment, so
/// the copy region restores the set the cluster's region would whenever that set's copy there is
/// complete, and never a newer one the cluster's region still holds.
fn same_point_in_every_region(
    policy: &Policy,
    world: &World,
    now: OffsetDateTime,
    s: &asdr_planner::status::Status,
    at: &str,
) -> Result<(), String> {
    let used = |name: &str| {
        plan(policy, world, now, &Operation::Restore(name.into()))
            .ok()
            .map(|p| super::restored_sets(&p, world))
            .and_then(|sets| sets.into_iter().next_back())
    };
    let (Some(home), west) = (used("before"), used("dr-west")) else {
        return Ok(());
    };
    let whole_there = s
        .regions
        .get(WEST)
        .is_some_and(|r| r.complete_sets.contains(&home));
    // A newer set there is wrong only while it is still complete at home too (the cluster's
    // region would then have taken it); one retention removed at home is the copy's to give.
    let newer_kept_home = west
        .as_ref()
        .is_some_and(|w| *w > home && s.complete_sets.contains(w));
    // An older set there (or none) while the home set's copy is complete there: the copy was
    // judged by its own later start, not its source's.
    let older = whole_there && west.as_ref().is_none_or(|w| *w < home);
    if older || newer_kept_home {
        return Err(format!(
            "{at}: `before:` restores {home} at home but {west:?} in {WEST} (copy complete there: {whole_there})"
        ));
    }
    Ok(())
}

fn sets_in(world: &World, region: Option<&str>) -> BTreeSet<String> {
    world
        .snapshots
        .iter()
        .filter(|s| s.region.as_deref() == region)
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .collect()
}

pub fn history(seed: u64) -> Result<Tally, String> {
    let mut r = Rng::new(seed);
    let mut e = Edits {
        home_count: 2 + r.below(5) as u32,
        copy_count: 1 + r.below(3) as u32,
        ..Edits::default()
    };
    let mut now: OffsetDateTime = datetime!(2026-11-01 03:00:00 UTC);
    let mut policy = policy_of(&e);
    let mut spec = WorldSpec::new(now);
    spec.sets = 0;
    let mut world = world_for(&policy, &spec);
    let mut foreign: Vec<String> = Vec::new();
    let mut tally = Tally {
        histories: 1,
        ..Tally::default()
    };
    // EBS records a snapshot's start some minutes after the plan named its set: `before:` goes
    // by the start, never the id (defect 13), within the 5 minutes a clock may be off.
    let lag_s = 60 + r.below(200);
    let steps = 4 + r.below(6);
    for k in 0..steps {
        let at = format!("ebs seed {seed} step {k}");
        let edit = r.below(16);
        if std::env::var_os("ASDR_HISTORY_DEBUG").is_some() {
            eprintln!("{at}: edit {edit}");
        }
        match edit {
            0 if !e.a3 => {
                e.a3 = true;
                policy = policy_of(&e);
                grow(&mut world, &policy, now);
            }
            1 if !e.sdi => {
                e.sdi = true;
                policy = policy_of(&e);
                grow(&mut world, &policy, now);
            }
            2 => {
                e.home_count = (e.home_count - 1).max(1);
                e.copy_count = (e.copy_count.saturating_sub(r.below(2) as u32)).max(1);
                policy = policy_of(&e);
            }
            3 => {
                let set = super::set_at(now - time::Duration::days(40));
                foreign.extend(not_ours(&mut world, Some(WEST), &set, k as usize));
            }
            4 => {
                // Newer than every set of ours, and older: either would be taken for ours.
                let set = super::set_at(now - time::Duration::minutes(30 + 7 * k as i64));
                foreign.extend(not_ours(&mut world, None, &set, k as usize));
            }
            5 if e.a3 => {
                // a3 leaves the policy; its instance stays (asdr never terminates it for that).
                e.a3 = false;
                policy = policy_of(&e);
            }
            6 => {
                e.no_copies = !e.no_copies;
                policy = policy_of(&e);
            }
            7 => {
                let s = asdr_planner::status::status(&policy, &world, now);
                if !s.complete_sets.is_empty() {
                    let pick =
                        s.complete_sets[r.below(s.complete_sets.len() as u64) as usize].clone();
                    e.pinned = Some(pick);
                    policy = policy_of(&e);
                }
            }
            8 => world
                .smd_archives
                .retain(|a| a.uri.contains("acme-dr-west")),
            9 => foreign.extend(twin(&mut world, &policy, now, k as usize)),
            10 => {
                // `before:` a moment between a set's id and its snapshots' start (or, in the copy
                // region, between the source's start and a copy's made later in a catch-up).
                let s = asdr_planner::status::status(&policy, &world, now);
                if !s.complete_sets.is_empty() {
                    let set =
                        s.complete_sets[r.below(s.complete_sets.len() as u64) as usize].clone();
                    if let Some(start) = world
                        .snapshots
                        .iter()
                        .filter(|x| x.region.is_none() && x.tags.get("asdr:set") == Some(&set))
                        .map(|x| x.start_time)
                        .min()
                    {
                        let t = start - time::Duration::seconds(30);
                        e.before = Some(
                            t.format(&time::format_description::well_known::Rfc3339)
                                .expect("formats"),
                        );
                        policy = policy_of(&e);
                    }
                }
            }
            11 => {
                // Every copy of one set in the copy region failed (defect 14: `status` must not
                // call the region fine when its restore cannot run).
                let west = sets_in(&world, Some(WEST));
                if !west.is_empty() {
                    let pick = west
                        .iter()
                        .nth(r.below(west.len() as u64) as usize)
                        .cloned();
                    for c in world.snapshots.iter_mut().filter(|c| {
                        c.region.as_deref() == Some(WEST) && c.tags.get("asdr:set") == pick.as_ref()
                    }) {
                        c.state = asdr_planner::world::SnapshotState::Error;
                    }
                    // Now and then `before:` just after that set's data: its copy, made again
                    // later, starts after T, yet it is the set before T in every region (defect 7).
                    let start = world
                        .snapshots
                        .iter()
                        .filter(|x| x.region.is_none() && x.tags.get("asdr:set") == pick.as_ref())
                        .map(|x| x.start_time)
                        .max();
                    if let Some(start) = start.filter(|_| r.below(2) == 0) {
                        e.before = Some(
                            (start + time::Duration::seconds(1))
                                .format(&time::format_description::well_known::Rfc3339)
                                .expect("formats"),
                        );
                        policy = policy_of(&e);
                    }
                }
            }
            _ => {}
        }
        // The clock moves on by uneven steps; now and then a runner's clock is behind.
        now += if r.below(10) == 0 {
            -time::Duration::minutes(20 + r.below(100) as i64)
        } else {
            time::Duration::hours(1 + r.below(40) as i64)
        };
        world.now = Some(now);
        tally.steps += 1;
        let before = asdr_planner::status::status(&policy, &world, now);
        // Sets of ours once marked complete (restorable now or not).
        let marked_before: BTreeSet<String> = world
            .snapshots
            .iter()
            .filter(|x| {
                x.region.is_none()
                    && !foreign.contains(&x.id)
                    && x.tags.get("asdr:complete").map(String::as_str) == Some("true")
            })
            .filter_map(|x| x.tags.get("asdr:set").cloned())
            .collect();
        let west_before = sets_in(&world, Some(WEST));
        let instances_before: Vec<String> = world
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated)
            .map(|i| i.id.clone())
            .collect();
        let p = match plan(&policy, &world, now, &Operation::Backup) {
            Ok(p) => p,
            Err(PlanError::Refused(why)) => {
                super::refused(&mut tally, &at, &why);
                continue;
            }
            Err(e) => return Err(format!("{at}: {e}")),
        };
        if std::env::var_os("ASDR_HISTORY_DEBUG").is_some() {
            eprintln!(
                "{at}: edits {e:?}; complete before {:?}; marked {marked_before:?}",
                before.complete_sets
            );
            for c in &p.changes {
                if c.action == asdr_planner::Action::Delete {
                    eprintln!("  delete {}: {}", c.address, c.reason);
                }
            }
        }
        apply_lagging(&mut world, &p, &policy.cluster.name, lag_s)
            .map_err(|e| format!("{at}: apply: {e}"))?;
        tally.applies += 1;
        for id in &foreign {
            if !world.snapshots.iter().any(|s| &s.id == id) {
                return Err(format!("{at}: {id}, not ours, was deleted"));
            }
        }
        for id in &instances_before {
            if world
                .instances
                .iter()
                .any(|i| &i.id == id && i.state == InstanceState::Terminated)
            {
                return Err(format!("{at}: a backup terminated {id}"));
            }
        }
        let s = asdr_planner::status::status(&policy, &world, now);
        for set in s.complete_sets.iter() {
            if world.snapshots.iter().any(|x| {
                x.region.is_none() && x.tags.get("asdr:set") == Some(set) && foreign.contains(&x.id)
            }) {
                return Err(format!(
                    "{at}: status counts {set}, made of snapshots not ours"
                ));
            }
        }
        let kept = |before: usize, retain: u32| before.min(retain as usize);
        if s.complete_sets.len() < kept(before.complete_sets.len(), e.home_count) {
            return Err(format!(
                "{at}: {} complete sets at home after the apply, {} before, retain {}: {:?} -> {:?}",
                s.complete_sets.len(),
                before.complete_sets.len(),
                e.home_count,
                before.complete_sets,
                s.complete_sets,
            ));
        }
        // A set once marked goes only past `count`: as many complete sets newer than it kept.
        let home_after = sets_in(&world, None);
        for gone in marked_before.iter().filter(|m| !home_after.contains(*m)) {
            let newer = s.complete_sets.iter().filter(|c| *c > gone).count();
            if newer < e.home_count as usize {
                return Err(format!(
                    "{at}: set {gone} was deleted with only {newer} complete sets newer (retain {})",
                    e.home_count
                ));
            }
        }
        if let Some(pinned) = &e.pinned
            && before.complete_sets.contains(pinned)
            && !home_after.contains(pinned)
        {
            return Err(format!(
                "{at}: {pinned}, which restore `pinned` names, was deleted"
            ));
        }
        let west = |st: &asdr_planner::status::Status| {
            st.regions.get(WEST).map_or(0, |r| r.complete_sets.len())
        };
        if e.no_copies {
            let west_after = sets_in(&world, Some(WEST));
            if !west_before.is_subset(&west_after) {
                return Err(format!(
                    "{at}: copies in {WEST} deleted while the policy no longer copies there"
                ));
            }
        } else if west(&s) < kept(west(&before), e.copy_count) {
            return Err(format!(
                "{at}: {} complete copies in {WEST} after the apply, {} before, retain {}",
                west(&s),
                west(&before),
                e.copy_count
            ));
        }
        status_agrees(&policy, &world, now, "full-cluster", &at)?;
        if e.pinned.is_some() {
            status_agrees(&policy, &world, now, "pinned", &at)?;
        }
        if e.before.is_some() {
            status_agrees(&policy, &world, now, "before", &at)?;
        }
        if !e.no_copies {
            status_agrees(&policy, &world, now, "dr-west", &at)?;
        }
        if e.before.is_some() && !e.no_copies {
            same_point_in_every_region(&policy, &world, now, &s, &at)?;
        }
    }
    Ok(tally)
}
