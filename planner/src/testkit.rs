//! A deterministic world generator: given a policy, the world a healthy cluster of it would show
//! after `sets` daily backups, with knobs for the failures restores are for. Used to write the
//! example worlds, by the property tests and by the benchmark (256 nodes × 4 devices × 60 sets).

mod example;
pub mod fuzz;

pub use example::ExamplePolicy;

use std::collections::BTreeMap;

use asdr_specs::{Edition, NodeVars, Policy};
use time::{Duration, OffsetDateTime};

use crate::observe::{render, set_id};
use crate::tags;
use crate::world::*;

/// How a node has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The instance is terminated; its data volumes survived, detached (`available`).
    Terminated,
    /// The instance runs but Aerospike does not answer; volumes still attached.
    Unreachable { delete_on_termination: bool },
}

#[derive(Debug, Clone)]
pub struct WorldSpec {
    pub now: OffsetDateTime,
    /// Complete daily sets; the newest is `newest_set_age` old.
    pub sets: usize,
    pub newest_set_age: Duration,
    pub set_interval: Duration,
    /// The reply nodes give to `edition` (None: the policy's edition).
    pub edition_reply: Option<String>,
    pub failures: Vec<(String, Failure)>,
    /// The newest set's snapshots are still `pending` and it is not marked complete.
    pub newest_set_pending: bool,
    /// Snapshots of the cluster's volumes that asdr did not make (no asdr tags).
    pub foreign_snapshots: usize,
    pub volume_size_gib: u32,
    /// Every data volume and snapshot is encrypted with this KMS key.
    pub kms_key: Option<String>,
    /// The cluster id its instances, volumes and snapshots carry (none: a world from before ids).
    pub cluster_id: Option<String>,
}

/// The cluster id of the worlds made here, unless a test says otherwise.
pub const CLUSTER_ID: &str = "c1d0000000000001";

impl WorldSpec {
    pub fn new(now: OffsetDateTime) -> Self {
        WorldSpec {
            now,
            sets: 3,
            newest_set_age: Duration::hours(6),
            set_interval: Duration::days(1),
            edition_reply: None,
            failures: Vec::new(),
            newest_set_pending: false,
            foreign_snapshots: 0,
            volume_size_gib: 500,
            kms_key: None,
            cluster_id: Some(CLUSTER_ID.into()),
        }
    }
}

fn id(prefix: &str, n: u64) -> String {
    format!("{prefix}-{n:017x}")
}

pub fn world_for(policy: &Policy, spec: &WorldSpec) -> World {
    let cluster = &policy.cluster;
    let edition = spec
        .edition_reply
        .clone()
        .unwrap_or_else(|| match cluster.edition {
            Edition::Enterprise => "Aerospike Enterprise Edition".into(),
            Edition::Community => "Aerospike Community Edition".into(),
        });
    let failed = |name: &str| {
        spec.failures
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, f)| *f)
    };
    let up = cluster
        .nodes
        .iter()
        .filter(|n| failed(&n.name).is_none())
        .count() as u32;
    let mut world = World {
        now: Some(spec.now),
        ..World::default()
    };
    let mut snap_counter = 0x5000u64;
    let devices = policy.ebs_devices();

    for (i, node) in cluster.nodes.iter().enumerate() {
        let vars = NodeVars::new(&cluster.name, node);
        let instance_id = node
            .instance_id
            .clone()
            .unwrap_or_else(|| id("i", 0x1000 + i as u64));
        let failure = failed(&node.name);
        let mut block_devices = Vec::new();
        let mut node_tags: Tags = BTreeMap::new();
        node_tags.insert("Name".into(), format!("{}-{}", cluster.name, node.name));
        node_tags.insert(tags::CLUSTER.into(), cluster.name.clone());
        node_tags.insert(tags::NODE.into(), node.name.clone());
        if let Some(cid) = &spec.cluster_id {
            node_tags.insert(tags::CLUSTER_ID.into(), cid.clone());
        }
        for (d, t) in devices.iter().enumerate() {
            let ebs = render(t, &vars);
            let volume_id = id("vol", 0x2000 + (i * 64 + d) as u64);
            let dot = matches!(
                failure,
                Some(Failure::Unreachable {
                    delete_on_termination: true
                })
            );
            let attached = failure != Some(Failure::Terminated);
            if attached {
                block_devices.push(BlockDevice {
                    device_name: ebs.clone(),
                    volume_id: volume_id.clone(),
                    delete_on_termination: dot,
                });
            }
            let mut vtags = node_tags.clone();
            vtags.insert(tags::DEVICE.into(), ebs.clone());
            world.volumes.push(Volume {
                region: None,
                id: volume_id.clone(),
                availability_zone: node.availability_zone.clone(),
                size_gib: spec.volume_size_gib,
                volume_type: "gp3".into(),
                iops: Some(3000),
                throughput: Some(125),
                state: if attached {
                    VolumeState::InUse
                } else {
                    VolumeState::Available
                },
                snapshot_id: None,
                encrypted: spec.kms_key.is_some(),
                kms_key_id: spec.kms_key.clone(),
                attachments: if attached {
                    vec![Attachment {
                        instance_id: instance_id.clone(),
                        device: ebs.clone(),
                        state: AttachmentState::Attached,
                        delete_on_termination: dot,
                    }]
                } else {
                    Vec::new()
                },
                tags: vtags,
            });
            for s in 0..spec.sets {
                let age = spec.newest_set_age + spec.set_interval * (spec.sets - 1 - s) as i32;
                let start = spec.now - age;
                let set = set_id(start);
                let newest = s + 1 == spec.sets;
                let pending = newest && spec.newest_set_pending;
                let mut stags: Tags = BTreeMap::new();
                for (k, v) in &policy.backup.tags {
                    stags.insert(k.clone(), v.clone());
                }
                stags.insert(tags::CLUSTER.into(), cluster.name.clone());
                if let Some(cid) = &spec.cluster_id {
                    stags.insert(tags::CLUSTER_ID.into(), cid.clone());
                }
                stags.insert(tags::SET.into(), set.clone());
                stags.insert(tags::NODE.into(), node.name.clone());
                stags.insert(tags::DEVICE.into(), ebs.clone());
                stags.insert(
                    tags::STEP.into(),
                    format!("snapshot_instance:{}:{set}", node.name),
                );
                if !pending {
                    stags.insert(tags::COMPLETE.into(), "true".into());
                }
                snap_counter += 1;
                world.snapshots.push(Snapshot {
                    state_message: None,
                    lock: None,
                    fast_restore: Default::default(),
                    region: None,
                    id: id("snap", snap_counter),
                    volume_id: volume_id.clone(),
                    volume_size_gib: spec.volume_size_gib,
                    state: if pending {
                        SnapshotState::Pending
                    } else {
                        SnapshotState::Completed
                    },
                    progress: if pending { 42 } else { 100 },
                    start_time: start,
                    encrypted: spec.kms_key.is_some(),
                    kms_key_id: spec.kms_key.clone(),
                    tags: stags,
                });
            }
            for f in 0..spec.foreign_snapshots {
                snap_counter += 1;
                world.snapshots.push(Snapshot {
                    state_message: None,
                    lock: None,
                    fast_restore: Default::default(),
                    region: None,
                    id: id("snap", snap_counter),
                    volume_id: volume_id.clone(),
                    volume_size_gib: spec.volume_size_gib,
                    state: SnapshotState::Completed,
                    progress: 100,
                    start_time: spec.now - Duration::days(400 + f as i64),
                    encrypted: false,
                    kms_key_id: None,
                    tags: BTreeMap::from([(
                        "Name".to_string(),
                        format!("manual copy before upgrade {f}"),
                    )]),
                });
            }
        }
        world.instances.push(Instance {
            region: None,
            id: instance_id,
            state: if failure == Some(Failure::Terminated) {
                InstanceState::Terminated
            } else {
                InstanceState::Running
            },
            instance_type: cluster.instance.instance_type.clone(),
            private_ip: (failure != Some(Failure::Terminated)).then(|| node.private_ip.to_string()),
            availability_zone: node.availability_zone.clone(),
            subnet_id: cluster
                .instance
                .subnets
                .get(&node.availability_zone)
                .cloned(),
            instance_store_drives: cluster.instance.instance_store_volumes,
            root_device: None,
            state_reason: None,
            block_devices,
            tags: node_tags,
        });
        let reachable = failure.is_none();
        world.nodes.push(NodeObservation {
            name: node.name.clone(),
            reachable,
            edition: reachable.then(|| edition.clone()),
            build: reachable.then(|| "8.1.1.2".into()),
            node_id: reachable.then(|| test_node_id(i)),
            cluster_size: reachable.then_some(up),
            cluster_key: reachable.then(|| "A1B2C3D4E5F6".into()),
            namespaces: if reachable {
                cluster
                    .namespaces
                    .iter()
                    .map(|ns| ObservedNamespace {
                        name: ns.name.clone(),
                        replication_factor: Some(ns.replication_factor),
                        strong_consistency: ns.strong_consistency,
                        rack_id: (!cluster.racks.is_empty()).then(|| cluster.rack_of(node)),
                        roster: if ns.strong_consistency {
                            (0..cluster.nodes.len()).map(test_node_id).collect()
                        } else {
                            Vec::new()
                        },
                        observed_nodes: if ns.strong_consistency {
                            (0..cluster.nodes.len())
                                .filter(|k| {
                                    !spec
                                        .failures
                                        .iter()
                                        .any(|(n, _)| *n == cluster.nodes[*k].name)
                                })
                                .map(test_node_id)
                                .collect()
                        } else {
                            Vec::new()
                        },
                        dead_partitions: 0,
                        unavailable_partitions: 0,
                        devices: ns
                            .devices
                            .iter()
                            .map(|d| ObservedDevice {
                                device: render(&d.device, &vars),
                                shadow: d.shadow.as_ref().map(|s| render(s, &vars)),
                            })
                            .collect(),
                    })
                    .collect()
            } else {
                Vec::new()
            },
            config: reachable
                .then(|| crate::config::render(policy, node, &test_node_id(i)).content),
            ..NodeObservation::default()
        });
    }
    for s in 0..spec.sets {
        let newest = s + 1 == spec.sets;
        if newest && spec.newest_set_pending {
            continue;
        }
        let age = spec.newest_set_age + spec.set_interval * (spec.sets - 1 - s) as i32;
        let set = set_id(spec.now - age);
        let node = cluster
            .nodes
            .first()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        world.smd_archives.push(SmdArchive {
            uri: format!(
                "{}/{}/{set}/{node}.smd.tar",
                policy.backup.smd_to.trim_end_matches('/'),
                cluster.name
            ),
            set,
            node,
            sha256: None,
        });
    }
    world.instance_types.insert(
        cluster.instance.instance_type.clone(),
        InstanceType {
            instance_store_drives: cluster.instance.instance_store_volumes,
        },
    );
    world
}

/// Policy text for a generated cluster of `nodes` nodes with `devices` EBS devices each (one
/// namespace, replication factor 2), spread over three AZs.
pub fn policy_yaml(
    nodes: usize,
    devices: usize,
    consistency: &str,
    edition: &str,
    retain_count: u32,
) -> String {
    let mut s = String::new();
    // Durable deletes are Enterprise-only.
    let durable = edition == "enterprise";
    s.push_str(&format!(
        "version: 1\ncluster:\n  name: gen\n  region: us-east-1\n  edition: {edition}\n  durable_deletes: {durable}\n  access: {{transport: local}}\n  service: {{stop: systemctl stop aerospike, start: systemctl start aerospike, cold_start: asd-coldstart}}\n  config: {{template: aerospike.conf.j2, path: /etc/aerospike/aerospike.conf}}\n  namespaces:\n    - name: data\n      replication_factor: 2\n      devices:\n"
    ));
    for d in 0..devices {
        let letter = (b'f' + d as u8) as char;
        s.push_str(&format!(
            "        - {{device: /dev/nvme{}n1, shadow: /dev/sd{letter}}}\n",
            d + 1
        ));
    }
    s.push_str("  instance:\n    type: i4i.4xlarge\n    ami: ami-0123456789abcdef0\n    subnets: {us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb, us-east-1c: subnet-0ccc}\n");
    s.push_str(&format!(
        "    instance_store_volumes: {devices}\n  nodes:\n"
    ));
    for n in 0..nodes {
        let az = ["a", "b", "c"][n % 3];
        s.push_str(&format!(
            "    - {{name: n{n}, private_ip: 10.{}.{}.{}, availability_zone: us-east-1{az}}}\n",
            n % 3,
            n / 200,
            10 + n % 200
        ));
    }
    s.push_str(&format!(
        "backup:\n  method: ebs-snapshot\n  consistency: {consistency}\n  every: 24h\n  retain: {{count: {retain_count}, max_age: 90d}}\n  smd: {{to: s3://backups/smd}}\n  max_nodes_at_once: 1\n  accept_zombie_records: true\nrestores:\n  - {{name: replace-n0, scope: node, nodes: [n0], source: current-volumes, accept_zombie_records: true}}\n  - {{name: refill-n0, scope: node, nodes: [n0], source: empty}}\n  - {{name: n0-from-backup, scope: node, nodes: [n0], source: latest-backup, accept_zombie_records: true}}\n  - {{name: full-cluster, scope: cluster, source: latest-backup}}\n"
    ));
    s
}

/// The minimal config template `policy_yaml` points at.
pub const CONFIG_TEMPLATE: &str = "service {\n    cluster-name {{ cluster }}\n}\nnetwork {\n    service {\n        address {{ private_ip }}\n    }\n}\n{% for ns in namespaces %}namespace {{ ns.name }} {\n    replication-factor {{ ns.replication_factor }}\n{% if rack_id %}    rack-id {{ rack_id }}\n{% endif %}    storage-engine device {\n{% for d in ns.devices %}        device {{ d.device }}{% if d.shadow %} {{ d.shadow }}{% endif %}\n{% endfor %}    }\n}\n{% endfor %}";

/// Copies, in `policy.backup.copies[copy]`'s region, of the newest `newest` complete sets of the
/// cluster's region, as a backup with copies leaves them: every snapshot copied and completed,
/// tagged like its source plus the source tags, marked complete there, the SMD archive in the
/// copy's store. `pending`: the copies of the newest set are still being made (not marked).
pub fn copy_sets(world: &mut World, policy: &Policy, copy: usize, newest: usize, pending: bool) {
    let c = &policy.backup.copies[copy];
    let home = crate::copies::home_view(policy, world);
    let obs = crate::observe::Observed::new(policy, &home);
    let sets: Vec<(String, Vec<Snapshot>, Option<SmdArchive>)> = obs
        .sets
        .iter()
        .rev()
        .filter(|s| s.is_complete())
        .take(newest)
        .map(|s| {
            (
                s.id.clone(),
                s.snapshots.iter().map(|x| (*x).clone()).collect(),
                s.smd_archive.cloned(),
            )
        })
        .collect();
    drop(obs);
    drop(home);
    let mut counter = 0x9000u64 + (copy as u64) * 0x1000 + world.snapshots.len() as u64;
    for (k, (set, snaps, archive)) in sets.into_iter().enumerate() {
        let still = pending && k == 0;
        for s in snaps {
            counter += 1;
            let mut tags = s.tags.clone();
            tags.remove(tags::COMPLETE);
            tags.remove(tags::STEP);
            tags.insert(tags::SOURCE_SNAPSHOT.into(), s.id.clone());
            tags.insert(tags::SOURCE_REGION.into(), policy.cluster.region.clone());
            if !still {
                tags.insert(tags::COMPLETE.into(), "true".into());
            }
            world.snapshots.push(Snapshot {
                state_message: None,
                lock: None,
                fast_restore: Default::default(),
                region: Some(c.region.clone()),
                id: id("snap", counter),
                volume_id: "vol-ffffffff".into(),
                volume_size_gib: s.volume_size_gib,
                state: if still {
                    SnapshotState::Pending
                } else {
                    SnapshotState::Completed
                },
                progress: if still { 10 } else { 100 },
                start_time: s.start_time + Duration::minutes(5),
                encrypted: c.kms_key_id.is_some() || s.encrypted,
                kms_key_id: c.kms_key_id.clone().or(s.kms_key_id.clone()),
                tags,
            });
        }
        if let Some(a) = archive
            && !still
        {
            world.smd_archives.push(SmdArchive {
                uri: crate::copies::smd_uri_in(c, &policy.cluster.name, &set, &a.node),
                ..a
            });
        }
    }
}

/// Gives every set marked complete in `world` (at home) the manifest a backup writes today: its
/// members as tagged, its SMD archive with a checksum, sealed, and the mark naming it. What a
/// world looks like once every retained set was made with manifests.
pub fn with_manifests(policy: &Policy, world: &mut World) {
    use crate::manifest::{ObservedManifest, SmdEntry, uri};
    let mut by_set: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, s) in world.snapshots.iter().enumerate() {
        if s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")
            && !tags::is_copy(&s.tags)
            && let Some(set) = s.tags.get(tags::SET)
        {
            by_set.entry(set.clone()).or_default().push(i);
        }
    }
    for (set, idx) in by_set {
        let Some(archive) = world.smd_archives.iter_mut().find(|a| a.set == set) else {
            continue;
        };
        let sha = archive
            .sha256
            .get_or_insert_with(|| {
                crate::hex(&<sha2::Sha256 as sha2::Digest>::digest(set.as_bytes()))
            })
            .clone();
        let smd = vec![SmdEntry {
            node: archive.node.clone(),
            uri: archive.uri.clone(),
            sha256: sha,
        }];
        let cluster_id = world
            .instances
            .iter()
            .find_map(|i| i.tags.get(tags::CLUSTER_ID).cloned());
        let members: Vec<&Snapshot> = idx.iter().map(|&i| &world.snapshots[i]).collect();
        let file = manifest_of(policy, &set, &members, cluster_id, smd);
        for &i in &idx {
            world.snapshots[i]
                .tags
                .insert(tags::MANIFEST.into(), file.sha256.clone());
        }
        world.set_manifests.push(ObservedManifest {
            uri: uri(&policy.backup.smd_to, &policy.cluster.name, &set),
            set,
            file: Some(file),
            problem: None,
        });
    }
}

/// The Aerospike node id the generated world gives the policy's `i`-th node.
pub fn test_node_id(i: usize) -> String {
    format!("BB9{:012X}", 0x10000 + i)
}

/// The sealed manifest of `set` at home as a backup writes it: `members` as tagged (node,
/// device), with `cluster_id` and the SMD archives `smd`, its times from the set id.
pub fn manifest_of(
    policy: &Policy,
    set: &str,
    members: &[&Snapshot],
    cluster_id: Option<String>,
    smd: Vec<crate::manifest::SmdEntry>,
) -> crate::manifest::ManifestFile {
    use crate::manifest::{Member, SetManifest, Times};
    let mut members: Vec<Member> = members
        .iter()
        .map(|s| Member {
            node: s.tags.get(tags::NODE).cloned().unwrap_or_default(),
            device: s.tags.get(tags::DEVICE).cloned().unwrap_or_default(),
            volume_id: s.volume_id.clone(),
            snapshot_id: s.id.clone(),
            source_snapshot_id: None,
            size_gib: s.volume_size_gib,
            encrypted: s.encrypted,
            kms_key_id: s.kms_key_id.clone(),
            started: Some(crate::manifest::utc(s.start_time)),
        })
        .collect();
    members.sort_by(|a, b| (&a.node, &a.device).cmp(&(&b.node, &b.device)));
    let time = crate::observe::set_time(set)
        .map(crate::manifest::utc)
        .unwrap_or_default();
    SetManifest {
        format: crate::manifest::FORMAT,
        cluster: policy.cluster.name.clone(),
        cluster_id,
        set: set.to_string(),
        method: "ebs".into(),
        region: policy.cluster.region.clone(),
        source_region: None,
        members,
        namespaces: policy
            .cluster
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .collect(),
        smd,
        node_ids: policy
            .cluster
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), test_node_id(i)))
            .collect(),
        times: Times {
            set: time.clone(),
            written: time,
            first_snapshot_start: None,
            last_snapshot_start: None,
        },
        policy_digest: crate::spec_digest(policy),
    }
    .seal()
}
