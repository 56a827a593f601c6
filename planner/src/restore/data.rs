//! Where a restored device's data comes from, and the create_volume and provision_instance
//! parameters that carry it (encryption, sizes, the replacement instance).

use super::*;

/// Where a device's data comes from on the restored node.
pub(super) enum Data<'w> {
    /// The node's existing volume.
    Existing(&'w Volume),
    /// A new blank volume of this size and type.
    Blank {
        size_gib: u32,
        volume_type: String,
        iops: Option<u32>,
        throughput: Option<u32>,
    },
    /// A new volume from this snapshot.
    FromSnapshot(&'w crate::world::Snapshot, Option<&'w Volume>),
}

pub(super) enum Same {
    Yes,
    No,
}

pub(super) fn data_kind(volume_ref: &Ref, old: Option<&Volume>) -> Same {
    match (volume_ref.known(), old) {
        (Some(id), Some(v)) if v.id == id => Same::Yes,
        _ => Same::No,
    }
}

pub(super) fn data_for<'w>(
    ctx: &Ctx<'_, 'w>,
    restore: &Restore,
    set: Option<&BackupSet<'w>>,
    view: &NodeView<'w>,
    node: &Node,
    d: &crate::observe::DeviceView<'w>,
) -> Result<Data<'w>, PlanError> {
    match &restore.source {
        RestoreSource::CurrentVolumes => {
            if d.volume.is_none() && d.candidates.len() > 1 {
                let list: Vec<String> = d
                    .candidates
                    .iter()
                    .map(|v| {
                        format!(
                            "{} ({:?}, snapshot {})",
                            v.id,
                            v.state,
                            v.snapshot_id.as_deref().unwrap_or("none")
                        )
                        .to_lowercase()
                    })
                    .collect();
                return Err(refuse(
                    Diagnostic::new(restore.source_span, format!(
                        "restore `{}`: {} {} has {} candidate volumes and asdr cannot tell which the node last ran on: {}",
                        restore.name, view.name, d.ebs, d.candidates.len(), list.join(", ")
                    ))
                    .rule("R4")
                    .help(format!("tag the stale ones `{}=<reason>` (asdr then never reattaches them) or delete them, and plan again", tags::SUPERSEDED)),
                ));
            }
            let v = d.volume.ok_or_else(|| {
                refuse(
                    Diagnostic::new(restore.source_span, format!("restore `{}`: no EBS volume of {} {} was found (not attached, not tagged asdr:node/asdr:device, not in a backup set)", restore.name, view.name, d.ebs))
                        .help("restore from a backup set (`latest-backup`) or refill it (`empty`)"),
                )
            })?;
            if let Some((rule, why)) = unusable(node, view, v) {
                let at = if rule == "R4" {
                    node.name_span
                } else {
                    restore.source_span
                };
                return Err(refuse(
                    Diagnostic::new(
                        at,
                        format!("volume {} of {} {} {why}", v.id, view.name, d.ebs),
                    )
                    .rule(rule),
                ));
            }
            Ok(Data::Existing(v))
        }
        RestoreSource::Empty => {
            let (size, vtype, iops, throughput) = match d.volume {
                Some(v) => (v.size_gib, v.volume_type.clone(), v.iops, v.throughput),
                None => {
                    let snap = ctx.obs.sets.iter().rev().find_map(|s| s.snapshot_for(&view.name, &d.ebs)).filter(|s| s.volume_size_gib > 0).ok_or_else(|| {
                        refuse(Diagnostic::new(restore.source_span, format!("restore `{}`: the size of {} {} is unknown (no volume and no snapshot of it found)", restore.name, view.name, d.ebs)))
                    })?;
                    (snap.volume_size_gib, "gp3".to_string(), None, None)
                }
            };
            let volume_type = restore.volume.volume_type.clone().unwrap_or(vtype.clone());
            let (iops, throughput) = asdr_specs::ebs::carried_performance(
                &volume_type,
                restore.volume.iops,
                restore.volume.throughput,
                Some((vtype.as_str(), iops, throughput)),
            );
            check_performance(restore, &volume_type, iops, throughput)?;
            Ok(Data::Blank {
                size_gib: size,
                volume_type,
                iops,
                throughput,
            })
        }
        _ => {
            let set = set.expect("sources that use a backup resolve a set");
            let snap = set
                .snapshot_for(&view.name, &d.ebs)
                .expect("check_set_covers saw every snapshot");
            Ok(Data::FromSnapshot(snap, ctx.obs.volume(&snap.volume_id)))
        }
    }
}

/// The create_volume step for `data`: id, params (with a deterministic client token seed) and the
/// reason shown on the change. A new volume is encrypted at least as the data it replaces: with
/// the key of the node's volume at that device, else the snapshot's.
pub(super) fn create_volume(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    node: &Node,
    ebs: &str,
    data: &Data<'_>,
    set: Option<&BackupSet<'_>>,
    device: &crate::observe::DeviceView<'_>,
) -> Result<(String, params::CreateVolume, String), PlanError> {
    let id = format!("create_volume:{}:{ebs}", node.name);
    let tags = ctx.tags(&[
        (tags::NODE, &node.name),
        (tags::DEVICE, ebs),
        (tags::STEP, &id),
    ]);
    let current = device.volume.or_else(|| device.candidates.first().copied());
    let snapshot = match data {
        Data::FromSnapshot(s, _) => Some(*s),
        _ => None,
    };
    let (encrypted, kms_key_id) = encryption(restore, node, ebs, current, snapshot)?;
    let shown = match (&kms_key_id, encrypted) {
        (Some(k), _) => format!(", encrypted with {k}"),
        (None, true) => ", encrypted".to_string(),
        (None, false) => String::new(),
    };
    Ok(match data {
        Data::Blank {
            size_gib,
            volume_type,
            iops,
            throughput,
        } => (
            id.clone(),
            params::CreateVolume {
                availability_zone: node.availability_zone.clone(),
                size_gib: *size_gib,
                volume_type: volume_type.clone(),
                iops: *iops,
                throughput: *throughput,
                snapshot_id: None,
                initialization_rate: None,
                encrypted,
                kms_key_id,
                client_token: id.clone(),
                tags,
            },
            format!(
                "blank volume for {} {ebs}, refilled by migrations (`source: empty`){shown}",
                node.name
            ),
        ),
        Data::FromSnapshot(s, old) => (
            id.clone(),
            {
                let p = from_snapshot(
                    node,
                    s,
                    *old,
                    &restore.volume,
                    (encrypted, kms_key_id),
                    &id,
                    tags,
                );
                check_performance(restore, &p.volume_type, p.iops, p.throughput)?;
                p
            },
            format!(
                "from snapshot {} of set {} in {}{shown}",
                s.id,
                set.map_or("", |s| s.id.as_str()),
                node.availability_zone
            ),
        ),
        Data::Existing(_) => unreachable!("existing volumes are not created"),
    })
}

/// Encryption of a new volume: never less than the node's current volume at that device, nor
/// than the snapshot it comes from. An encrypted volume whose key was not observed is refused
/// rather than re-encrypted with the account's default key.
pub(crate) fn encryption(
    restore: &Restore,
    node: &Node,
    ebs: &str,
    current: Option<&Volume>,
    snapshot: Option<&crate::world::Snapshot>,
) -> Result<(bool, Option<String>), PlanError> {
    let encrypted = current.is_some_and(|v| v.encrypted) || snapshot.is_some_and(|s| s.encrypted);
    let key = current
        .filter(|v| v.encrypted)
        .and_then(|v| v.kms_key_id.clone())
        .or_else(|| {
            snapshot
                .filter(|s| s.encrypted)
                .and_then(|s| s.kms_key_id.clone())
        });
    if encrypted && key.is_none() {
        return Err(refuse(Diagnostic::new(
            restore.source_span,
            format!(
                "restore `{}`: the data of {} {ebs} is encrypted, but its KMS key was not observed: a new volume could be encrypted with another key",
                restore.name, node.name
            ),
        )));
    }
    Ok((encrypted, key))
}

pub(super) fn provision_params(
    ctx: &Ctx<'_, '_>,
    node: &Node,
    subnet: Option<&str>,
    step: Option<&str>,
) -> params::ProvisionInstance {
    let inst = &ctx.policy.cluster.instance;
    let id = format!("provision_instance:{}", node.name);
    let mut extra = vec![(tags::NODE, node.name.as_str())];
    if step.is_some() {
        extra.push((tags::STEP, id.as_str()));
    }
    params::ProvisionInstance {
        private_ip: node.private_ip.to_string(),
        availability_zone: node.availability_zone.clone(),
        subnet_id: subnet
            .map(str::to_string)
            .or_else(|| inst.subnets.get(&node.availability_zone).cloned()),
        instance_type: inst.instance_type.clone(),
        ami: inst.ami.clone(),
        security_groups: inst.security_groups.clone(),
        iam_instance_profile: inst.iam_instance_profile.clone(),
        key_name: inst.key_name.clone(),
        instance_store_volumes: inst.instance_store_volumes,
        client_token: id.clone(),
        tags: ctx.tags(&extra),
        stopped_first: None,
    }
}

/// A volume made from snapshot `s` for `node` (a restore's or a drill's): the restore's volume
/// settings, else those of the volume the snapshot was taken of; encrypted as `encryption` says.
pub(crate) fn from_snapshot(
    node: &Node,
    s: &crate::world::Snapshot,
    old: Option<&Volume>,
    v: &asdr_specs::VolumeSpec,
    (encrypted, kms_key_id): (bool, Option<String>),
    client_token: &str,
    tags: params::TagMap,
) -> params::CreateVolume {
    let volume_type = v
        .volume_type
        .clone()
        .or_else(|| old.map(|o| o.volume_type.clone()))
        .unwrap_or_else(|| "gp3".into());
    // Only what CreateVolume takes for the type: a gp2 volume reports iops it cannot be created
    // with, and another type's settings do not carry over.
    let (iops, throughput) = asdr_specs::ebs::carried_performance(
        &volume_type,
        v.iops,
        v.throughput,
        old.map(|o| (o.volume_type.as_str(), o.iops, o.throughput)),
    );
    params::CreateVolume {
        availability_zone: node.availability_zone.clone(),
        snapshot_id: Some(s.id.clone()),
        size_gib: if s.volume_size_gib > 0 {
            s.volume_size_gib
        } else {
            old.map_or(0, |o| o.size_gib)
        },
        volume_type,
        iops,
        throughput,
        initialization_rate: v.initialization_rate,
        encrypted,
        kms_key_id,
        client_token: client_token.to_string(),
        tags,
    }
}

/// R4: the replacement type must offer the instance-store drives the namespaces expect.
pub(super) fn check_instance_type(ctx: &Ctx<'_, '_>, b: &mut Builder) -> Result<(), PlanError> {
    let inst = &ctx.policy.cluster.instance;
    match ctx.obs.world.instance_types.get(&inst.instance_type) {
        Some(t) if t.instance_store_drives < inst.instance_store_volumes => Err(refuse(
            Diagnostic::new(
                inst.instance_store_volumes_span,
                format!(
                    "instance type {} offers {} instance-store drives, fewer than the {} required",
                    inst.instance_type, t.instance_store_drives, inst.instance_store_volumes
                ),
            )
            .rule("R4"),
        )),
        Some(_) => Ok(()),
        None if inst.instance_store_volumes > 0 => {
            b.warn(
                "R4",
                format!(
                    "the instance-store drive count of {} was not observed: check it offers {}",
                    inst.instance_type, inst.instance_store_volumes
                ),
            );
            Ok(())
        }
        None => Ok(()),
    }
}

/// CreateVolume refuses iops or throughput a type does not take, and io1/io2 without iops: said
/// at plan time, at the restore's volume settings, not by EC2 halfway through the restore.
pub(crate) fn check_performance(
    restore: &Restore,
    volume_type: &str,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> Result<(), PlanError> {
    match asdr_specs::ebs::performance_problem(volume_type, iops, throughput) {
        None => Ok(()),
        Some(problem) => Err(refuse(
            Diagnostic::new(
                restore.source_span,
                format!(
                    "restore `{}`: new volumes would be {volume_type}, and {problem}",
                    restore.name
                ),
            )
            .rule("R4")
            .help("set `volume: {type, iops, throughput}` on the restore to what the type takes"),
        )),
    }
}

/// Why a node's own volume cannot be reattached to it (its rule and reason), if it cannot: in
/// another zone, attached to another instance, or in a state EBS does not attach. `status` asks
/// the same question for a restore's readiness.
pub(crate) fn unusable(
    node: &asdr_specs::Node,
    view: &NodeView<'_>,
    v: &crate::world::Volume,
) -> Option<(&'static str, String)> {
    use crate::world::VolumeState;
    if v.availability_zone != node.availability_zone {
        return Some((
            "R4",
            format!(
                "is in {}, but the node is in {}: EBS attaches only within one AZ",
                v.availability_zone, node.availability_zone
            ),
        ));
    }
    if let Some(a) = v.attachments.first()
        && Some(a.instance_id.as_str()) != view.instance.map(|i| i.id.as_str())
    {
        return Some((
            "R13",
            format!(
                "is attached to {}, which is not this node's instance",
                a.instance_id
            ),
        ));
    }
    match v.state {
        VolumeState::Error => Some((
            "R4",
            "is in state error: EBS does not attach it (restore from a backup set, or refill the node with `empty`)".into(),
        )),
        VolumeState::Creating => Some((
            "R4",
            "is still being created: plan again once it is available".into(),
        )),
        _ => None,
    }
}
