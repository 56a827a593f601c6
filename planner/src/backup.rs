//! Backup as desired state: a complete set younger than `every` must exist (one set per run,
//! every node, the SMD archive), and sets outside `retain` go.

use std::collections::HashSet;

use asdr_specs::{Consistency, Diagnostic, SnapshotVars};
use serde_json::json;

use crate::builder::Builder;
use crate::error::{PlanError, refuse};
use crate::nodes::{node_params, require_stable_cluster};
use crate::observe::{BackupSet, NodeHealth, human_age, render, set_id};
use crate::params::{self, Params};
use crate::plan::{Action, StepKind};
use crate::world::SnapshotState;
use crate::{Ctx, retention, tags};

pub(crate) fn plan(ctx: &Ctx<'_, '_>, b: &mut Builder) -> Result<(), PlanError> {
    let backup = &ctx.policy.backup;
    let newest = newest_complete(ctx);
    let due = match newest {
        None => Some("no complete backup set exists".to_string()),
        // A node or device added since: the newest set stays complete (and kept), but the
        // cluster as it is now is in no set yet.
        Some(set) if !set.covers_every_device => Some(format!(
            "the newest complete set {} does not hold every node and device the policy has now",
            set.id
        )),
        Some(set) => {
            let age = (ctx.now - set.time).whole_seconds().max(0) as u64;
            (age >= backup.every.seconds()).then(|| {
                format!(
                    "the newest complete set {} is {} old; every: {}",
                    set.id,
                    human_age(age),
                    backup.every
                )
            })
        }
    };
    // The copy regions first: a set whose copy is under way stays until the copy is done.
    let region_worlds = crate::copies::views(ctx);
    let regions: Vec<crate::observe::Observed<'_>> = region_worlds
        .iter()
        .map(|w| crate::observe::Observed::new(ctx.policy, w))
        .collect();
    let in_flight = crate::copies::sources_in_flight(ctx, &regions);
    let mut new_set = None;
    if let Some(reason) = due {
        refuse_clock_behind(ctx)?;
        let set = resume_or_new(ctx);
        crate::locks::check_store(ctx, b, backup.lock.as_ref(), &backup.smd_to, "backup.lock")?;
        crate::locks::check_observed(ctx, backup.lock.as_ref(), &ctx.policy.cluster.region)?;
        snapshot_set(ctx, b, &set, &reason)?;
        new_set = Some(set);
    } else {
        crate::nodes::warn_nodes_down(ctx, b);
    }
    let expired = retention::plan(ctx, b, new_set.as_deref(), &in_flight);
    crate::copies::plan(ctx, b, &regions, new_set.as_deref(), &expired);
    Ok(())
}

/// How far a set's time may lie past `now` before a clock is taken to be off (a set id has
/// whole seconds; runners' clocks differ a little).
const CLOCK_SLACK: time::Duration = time::Duration::minutes(5);

/// How long a quiesced node's client write counters must stand still before its snapshots
/// (clients move to the new partition map within a tend interval, one second by default).
const QUIESCE_QUIET_MS: u64 = 3_000;
/// A node whose writes have not stopped by then is not snapshotted.
const QUIESCE_DRAIN_TIMEOUT_S: u64 = 300;

/// A set of this cluster from later than `now` means this machine's clock is behind (or that
/// set's runner was ahead). A set made now would be named as older than sets made before it,
/// and retention, which keeps the newest by their time, would take a newer set for an older
/// one: the backup is refused until the clocks agree.
fn refuse_clock_behind(ctx: &Ctx<'_, '_>) -> Result<(), PlanError> {
    let was_marked = |s: &&BackupSet<'_>| {
        s.snapshots
            .iter()
            .any(|x| x.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"))
            || s.is_complete()
    };
    let Some(future) = ctx
        .obs
        .sets
        .iter()
        .rev()
        .filter(was_marked)
        .find(|s| s.time > ctx.now + CLOCK_SLACK)
    else {
        return Ok(());
    };
    Err(refuse(
        Diagnostic::new(
            ctx.policy.backup.every_span,
            format!(
                "a backup is due, but set {} is from {} later than this machine's clock says it is now ({}): this clock is behind, or the clock of the runner that made that set was ahead",
                future.id,
                human_age((future.time - ctx.now).whole_seconds().max(0) as u64),
                ctx.now
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        )
        .rule("R13")
        .help("set the clocks right (NTP) and apply again: a set made now would be named as older than the sets before it, and retention would take a newer set for an older one"),
    ))
}

fn newest_complete<'a>(ctx: &'a Ctx<'_, '_>) -> Option<&'a BackupSet<'a>> {
    ctx.obs.newest_complete_set()
}

/// An unfinished set newer than the newest complete one and younger than `every` is the run an
/// interrupted apply left: finish it rather than start a second set.
fn resume_or_new(ctx: &Ctx<'_, '_>) -> String {
    let newest_complete = newest_complete(ctx).map(|s| s.time);
    ctx.obs
        .sets
        .iter()
        .rev()
        .find(|s| {
            newest_complete.is_none_or(|t| s.time > t)
                && s.time <= ctx.now
                && ((ctx.now - s.time).whole_seconds().max(0) as u64)
                    < ctx.policy.backup.every.seconds()
                && !s.snapshots.iter().any(|x| x.state == SnapshotState::Error)
                && !mixes_windows(ctx, s)
                && resumable(s)
        })
        .map_or_else(|| fresh_set_id(ctx), |s| s.id.clone())
}

/// A set is finished by a later run only while nothing says it went wrong: never one whose
/// manifest no longer holds (missing, altered, a member gone or replaced: its tags are no
/// evidence of what it held), and never one marked without a manifest (a set marked before
/// manifests that is not complete lost a member; a snapshot taken now would mix two windows).
fn resumable(s: &BackupSet<'_>) -> bool {
    let marked = s
        .snapshots
        .iter()
        .any(|x| x.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"));
    s.manifest_problem.is_none() && !(marked && s.manifest.is_none())
}

/// The id of a new set: the one `now` names, or the first second after it that no set has (a
/// set left unfinished in the same second is never reused for another window).
fn fresh_set_id(ctx: &Ctx<'_, '_>) -> String {
    (0..3600)
        .map(|s| set_id(ctx.now + time::Duration::seconds(s)))
        .find(|id| ctx.obs.set(id).is_none())
        .unwrap_or_else(|| set_id(ctx.now))
}

/// R1: all devices of a node's namespace come from one write-stop window (or one
/// CreateSnapshots call). A set in which some of a namespace's devices were snapshotted and others
/// not cannot be finished without mixing two windows: it is left unfinished (retention removes
/// it) and a new set is started.
fn mixes_windows(ctx: &Ctx<'_, '_>, set: &BackupSet<'_>) -> bool {
    ctx.policy.cluster.nodes.iter().any(|node| {
        let vars = ctx.vars(node);
        ctx.policy.cluster.namespaces.iter().any(|ns| {
            let done = ns
                .devices
                .iter()
                .filter(|d| {
                    set.snapshot_for(&node.name, &render(&d.ebs, &vars))
                        .is_some()
                })
                .count();
            done > 0 && done < ns.devices.len()
        })
    })
}

fn snapshot_set(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    set: &str,
    reason: &str,
) -> Result<(), PlanError> {
    require_stable_cluster(ctx)?;
    let policy = ctx.policy;
    let backup = &policy.backup;
    let existing = ctx.obs.set(set);
    let snapshotted_volumes: HashSet<&str> = ctx
        .obs
        .world
        .snapshots
        .iter()
        .map(|s| s.volume_id.as_str())
        .collect();

    let check = b.check_cluster_stable(node_names(ctx));
    let mut before_mark = Vec::new();
    let mut members = Vec::new();
    // A node whose snapshot failed (or whose writes never drained) does not hold the others
    // back: their snapshots stay in the set, and the next apply resumes it for that node alone.
    let mut rolling = crate::nodes::Rolling::new(policy, Vec::new());
    if backup.consistency == Consistency::StopNode {
        b.warn("R6", format!(
            "consistency `stop-node` {} each node it backs up: records deleted without durable deletes come back (on a test cluster, 76 of 100 recent deletes after one bounce){}",
            if policy.cluster.edition == asdr_specs::Edition::Enterprise {
                "restarts (warm, on Enterprise; deletes it misses while down can still come back when it rejoins)"
            } else {
                "cold-starts"
            },
            if policy.cluster.durable_deletes { "; the policy declares durable deletes" } else { "; accepted by backup.accept_zombie_records" }
        ));
    }

    let names: Vec<&str> = ctx.obs.nodes.iter().map(|v| v.name.as_str()).collect();
    for (k, &i) in crate::nodes::Rolling::order(policy, &names)
        .iter()
        .enumerate()
    {
        let view = &ctx.obs.nodes[i];
        let node = ctx.policy_node(&view.name);
        let instance = view
            .instance
            .expect("require_stable_cluster saw every node healthy");
        let mut devices = Vec::new();
        for d in &view.volumes {
            let Some(volume) = d.volume.filter(|_| d.attached) else {
                return Err(refuse(
                    Diagnostic::new(node.name_span, format!("node `{}` has no EBS volume attached at {}: nothing to back up for that device", view.name, d.ebs))
                        .rule("R5")
                        .help("check the `ebs` names in cluster.namespaces against the instance's block devices"),
                ));
            };
            let done = existing.and_then(|s| s.snapshot_for(&view.name, &d.ebs));
            devices.push((d.ebs.clone(), volume, done));
        }
        let missing: Vec<_> = devices
            .iter()
            .filter(|(_, _, done)| done.is_none())
            .collect();
        for (ebs, volume, _) in &missing {
            let description = snapshot_description(ctx, &view.name, ebs, set);
            b.change(
                format!("snapshot.{}.{ebs}", view.name),
                Action::Create,
                reason,
                None,
                Some(json!({"set": set, "volume_id": volume.id, "size_gib": volume.size_gib, "description": description})),
            );
            if !snapshotted_volumes.contains(volume.id.as_str()) {
                b.warn("R3", format!(
                    "{} {ebs} ({}) has never been snapshotted: the first snapshot is a full copy and the slowest to complete",
                    view.name, volume.id
                ));
            }
        }

        // The write-stop window opens here for quiesce / stop-node; lanes enforce R8.
        let mut first_deps = vec![check.clone()];
        first_deps.extend(rolling.before(policy, &view.name, k));
        let (stop, open_kind, close_kind) = match backup.consistency {
            Consistency::Quiesce => (true, StepKind::Quiesce, StepKind::Unquiesce),
            Consistency::StopNode => (true, StepKind::StopNode, StepKind::StartNode),
            _ => (false, StepKind::Quiesce, StepKind::Unquiesce),
        };
        let stop = stop && !missing.is_empty();
        let opened = stop.then(|| {
            b.step(
                format!("{open_kind}:{}", view.name),
                Some(&view.name),
                first_deps.clone(),
                node_params(ctx, node, open_kind),
            )
        });
        // R1: a quiesced node still takes writes until its clients follow the new partition map;
        // its snapshots wait until its write counters stand still.
        let drained = opened
            .clone()
            .filter(|_| backup.consistency == Consistency::Quiesce)
            .map(|o| {
                b.step(
                    format!("wait_quiesce_drained:{}", view.name),
                    Some(&view.name),
                    vec![o],
                    Params::WaitQuiesceDrained(params::WaitQuiesceDrained {
                        address: format!("{}:{}", node.private_ip, policy.cluster.info_port),
                        quiet_ms: QUIESCE_QUIET_MS,
                        timeout_s: QUIESCE_DRAIN_TIMEOUT_S,
                    }),
                )
            });
        let snap_deps = drained
            .or_else(|| opened.clone())
            .map_or_else(|| first_deps.clone(), |o| vec![o]);

        let mut created = Vec::new();
        let step_tags = |step_id: &str, ebs: &str| {
            ctx.tags(&[
                (tags::SET, set),
                (tags::NODE, &view.name),
                (tags::DEVICE, ebs),
                (tags::STEP, step_id),
            ])
        };
        if backup.consistency == Consistency::MultiVolume && !missing.is_empty() {
            let id = format!("snapshot_instance:{}:{set}", view.name);
            let volumes: Vec<_> = devices
                .iter()
                .map(|(ebs, v, _)| params::DeviceVolume {
                    device: ebs.clone(),
                    volume_id: v.id.clone(),
                })
                .collect();
            let descriptions: Vec<_> = devices
                .iter()
                .map(|(ebs, _, _)| snapshot_description(ctx, &view.name, ebs, set))
                .collect();
            // Known from the observation when it says which device is the root.
            let exclude_volume_ids = instance.root_device.as_ref().map(|root| {
                instance
                    .block_devices
                    .iter()
                    .filter(|b| &b.device_name != root)
                    .filter(|b| !volumes.iter().any(|v| v.volume_id == b.volume_id))
                    .map(|b| b.volume_id.clone())
                    .collect()
            });
            let params = Params::SnapshotInstance(params::SnapshotInstance {
                instance_id: instance.id.clone(),
                set: set.to_string(),
                volumes,
                exclude_boot_volume: true,
                exclude_volume_ids,
                descriptions,
                tags: ctx.tags(&[
                    (tags::SET, set),
                    (tags::NODE, &view.name),
                    (tags::STEP, &id),
                ]),
            });
            created.push(b.step(id, Some(&view.name), snap_deps.clone(), params));
        } else {
            for (ebs, volume, _) in &missing {
                crate::nodes::warn_untagged_volume(ctx, b, &view.name, volume, "snapshot");
                let id = format!("snapshot:{}:{ebs}:{set}", view.name);
                let description = snapshot_description(ctx, &view.name, ebs, set);
                let params = Params::Snapshot(params::Snapshot {
                    volume_id: volume.id.clone(),
                    device: ebs.clone(),
                    set: set.to_string(),
                    description,
                    tags: step_tags(&id, ebs),
                });
                created.push(b.step(id, Some(&view.name), snap_deps.clone(), params));
            }
        }
        // R11: writes resume once the snapshot calls returned, not when the snapshots complete.
        if opened.is_some() {
            let closed = b.cleanup_step(
                format!("{close_kind}:{}", view.name),
                Some(&view.name),
                created.clone(),
                node_params(ctx, node, close_kind),
            );
            let stable = b.step(
                format!("wait_cluster_stable:{}", view.name),
                Some(&view.name),
                vec![closed],
                crate::restore::stable(policy.cluster.nodes.len()),
            );
            rolling.after(k, stable);
        }
        for (ebs, volume, done) in &devices {
            let pending_existing = done.is_some_and(|s| s.state != SnapshotState::Completed);
            let new = done.is_none();
            let wait_id = format!("wait_snapshot:{}:{ebs}:{set}", view.name);
            members.push(params::ManifestMember {
                node: view.name.clone(),
                device: ebs.clone(),
                volume_id: volume.id.clone(),
                snapshot: match done.filter(|_| !pending_existing) {
                    Some(s) => params::Ref::Known(s.id.clone()),
                    None => params::Ref::Learned {
                        from_step: wait_id.clone(),
                    },
                },
                source_snapshot_id: None,
                size_gib: volume.size_gib,
                encrypted: volume.encrypted,
                kms_key_id: volume.kms_key_id.clone(),
                started: done
                    .filter(|_| !pending_existing)
                    .map(|s| crate::manifest::utc(s.start_time)),
            });
            if !(new || pending_existing) {
                continue;
            }
            let creator = if backup.consistency == Consistency::MultiVolume {
                created.first().cloned()
            } else {
                created
                    .iter()
                    .find(|c| c.contains(&format!(":{ebs}:")))
                    .cloned()
            };
            let params = match done {
                Some(s) => params::WaitSnapshot {
                    cluster_id: Some(ctx.cluster_id.to_string()),
                    snapshot_id: Some(s.id.clone()),
                    node: Some(view.name.clone()),
                    device: Some(ebs.clone()),
                    progress: Some(s.progress),
                    within_minutes: None,
                    set: Some(set.to_string()),
                    volume_id: None,
                },
                None => params::WaitSnapshot {
                    cluster_id: Some(ctx.cluster_id.to_string()),
                    set: Some(set.to_string()),
                    node: Some(view.name.clone()),
                    device: Some(ebs.clone()),
                    snapshot_id: None,
                    progress: None,
                    within_minutes: None,
                    // CreateSnapshots tags alike: this wait names its snapshot's device.
                    volume_id: (backup.consistency == Consistency::MultiVolume)
                        .then(|| volume.id.clone()),
                },
            };
            before_mark.push(b.step(
                wait_id,
                Some(&view.name),
                creator.into_iter().collect(),
                Params::WaitSnapshot(params),
            ));
        }
    }

    let mut smd = Vec::new();
    if let Some(a) = existing.and_then(|s| s.smd_archive) {
        smd.push(params::NodeUri {
            node: a.node.clone(),
            uri: a.uri.clone(),
        });
    }
    if existing.is_none_or(|s| s.smd_archive.is_none()) {
        let from = ctx
            .obs
            .nodes
            .iter()
            .find(|n| n.health == NodeHealth::Healthy)
            .expect("stable cluster has a healthy node");
        let node = ctx.policy_node(&from.name);
        let uri = smd_uri(ctx, set, &from.name);
        let smd_dir = format!(
            "{}/smd",
            render(&policy.cluster.work_directory, &ctx.vars(node)).trim_end_matches('/')
        );
        b.change(
            format!("smd_archive.{set}"),
            Action::Create,
            "snapshots do not contain SMD: every set carries an archive of <work_directory>/smd (R2)",
            None,
            Some(json!({"uri": uri, "from": format!("{}:{smd_dir}", from.name)})),
        );
        smd.push(params::NodeUri {
            node: from.name.clone(),
            uri: uri.clone(),
        });
        before_mark.push(b.step(
            format!("copy_smd:{set}"),
            Some(&from.name),
            vec![check],
            Params::CopySmd(params::CopySmd {
                set: set.to_string(),
                from: smd_dir,
                retention: crate::locks::retention(ctx, policy.backup.lock.as_ref(), &uri, set),
                to: uri,
            }),
        ));
    }
    // R20: the set's snapshots locked once complete, before the manifest and the mark: a set
    // is never counted complete unlocked when the policy locks it.
    let set_time = crate::observe::set_time(set).unwrap_or(ctx.now);
    if let Some(lock) = &policy.backup.lock
        && lock.until(set_time) >= ctx.now + crate::locks::MIN_LOCK
    {
        crate::locks::describe(
            b,
            set,
            None,
            &crate::locks::fresh(lock, set_time),
            &format!(
                "backup.lock: every snapshot of set {set} locked ({}) for {} once complete, before the set is marked",
                lock.mode, lock.duration
            ),
        );
        let snapshots = members.iter().map(|m| m.snapshot.clone()).collect();
        let step = b.step(
            crate::locks::step_id("lock_snapshots", None, set),
            None,
            before_mark.clone(),
            crate::locks::params(ctx, set, set_time, lock, snapshots),
        );
        before_mark.push(step);
    }
    let uri = crate::manifest::uri(&policy.backup.smd_to, &policy.cluster.name, set);
    b.change(
        format!("manifest.{set}"),
        Action::Create,
        "a set is complete by its own manifest: its members, SMD archives and checksums (R2)",
        None,
        Some(json!({"uri": uri, "members": members.len()})),
    );
    let write = b.step(
        format!("write_manifest:{set}"),
        None,
        before_mark,
        write_manifest(ctx, uri, set, None, members, smd),
    );
    b.step(
        format!("mark_set_complete:{set}"),
        None,
        vec![write.clone()],
        Params::MarkSetComplete(params::MarkSetComplete {
            cluster_id: Some(ctx.cluster_id.to_string()),
            set: set.to_string(),
            snapshots: ctx.obs.nodes.len() * ctx.policy.ebs_devices().len(),
            tag: [(tags::COMPLETE.to_string(), "true".to_string())].into(),
            manifest: Some(params::Ref::Learned { from_step: write }),
        }),
    );
    Ok(())
}

/// `backup.snapshot_description` for one snapshot (validation rendered it once already).
pub(crate) fn snapshot_description(
    ctx: &Ctx<'_, '_>,
    node: &str,
    device: &str,
    set: &str,
) -> String {
    let vars = SnapshotVars {
        cluster: &ctx.policy.cluster.name,
        node,
        device,
        set,
    };
    ctx.policy
        .backup
        .snapshot_description
        .render(vars)
        .unwrap_or_default()
}

pub(crate) fn smd_uri(ctx: &Ctx<'_, '_>, set: &str, node: &str) -> String {
    format!(
        "{}/{}/{set}/{node}.smd.tar",
        ctx.policy.backup.smd_to.trim_end_matches('/'),
        ctx.policy.cluster.name
    )
}

fn node_names(ctx: &Ctx<'_, '_>) -> Vec<String> {
    ctx.policy
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

/// A set's `write_manifest` step parameters: at home (`region` none), or for its copies in
/// `region`, whose source is the cluster's own region.
pub(crate) fn write_manifest(
    ctx: &Ctx<'_, '_>,
    uri: String,
    set: &str,
    region: Option<&str>,
    members: Vec<params::ManifestMember>,
    smd: Vec<params::NodeUri>,
) -> Params {
    let policy = ctx.policy;
    Params::WriteManifest(params::WriteManifest {
        retention: crate::locks::retention(ctx, policy.lock_in(region), &uri, set),
        uri,
        set: set.to_string(),
        cluster: policy.cluster.name.clone(),
        cluster_id: Some(ctx.cluster_id.to_string()),
        region: region.unwrap_or(&policy.cluster.region).to_string(),
        source_region: region.map(|_| policy.cluster.region.clone()),
        members,
        namespaces: policy
            .cluster
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .collect(),
        smd,
        // A copy records what its source set recorded; a new set, the ids answering now.
        node_ids: ctx
            .obs
            .set(set)
            .and_then(|s| s.manifest)
            .map(|m| m.node_ids.clone())
            .filter(|ids| !ids.is_empty())
            .unwrap_or_else(|| crate::node_ids::answering_ids(ctx.obs)),
        policy_digest: crate::spec_digest(policy),
    })
}

/// Every step kind a backup of `policy` can take, whatever the world holds today (a set due or
/// not, retention due or not, copies behind or not): the role that runs scheduled backups is
/// prepared once, from the policy alone.
pub fn step_kinds(policy: &asdr_specs::Policy) -> Vec<StepKind> {
    use StepKind::*;
    let mut kinds = vec![CheckClusterStable, WaitClusterStable, ClaimCluster];
    if policy.backup.method == asdr_specs::Method::Asbackup {
        kinds.extend([Asbackup, CopySmd, WriteManifest, DeleteBackup]);
    } else {
        kinds.extend([
            SnapshotInstance,
            Snapshot,
            WaitSnapshot,
            CopySmd,
            WriteManifest,
            MarkSetComplete,
            DeleteSnapshot,
        ]);
    }
    match policy.backup.consistency {
        Consistency::Quiesce => kinds.extend([Quiesce, WaitQuiesceDrained, Unquiesce]),
        Consistency::StopNode => kinds.extend([StopNode, StartNode]),
        _ => {}
    }
    if !policy.backup.copies.is_empty() {
        kinds.extend([CopySnapshot, CopySmdArchive]);
    }
    if policy.backup.method == asdr_specs::Method::Asbackup {
        // asbackup's files are retained in the store (S3 Object Lock), no snapshot is locked.
        if policy.backup.lock.is_some() {
            kinds.push(RetainFiles);
        }
    } else if policy.backup.lock.is_some() || policy.backup.copies.iter().any(|c| c.lock.is_some())
    {
        kinds.extend([LockSnapshots, RetainFiles]);
    }
    kinds
}
