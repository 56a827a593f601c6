//! The world a new, healthy cluster of a policy shows before its first backup: its instances, their
//! EBS volumes and the nodes' replies, as `asdr init` writes it beside a new policy. It is a
//! skeleton to rehearse on (`asdr --world world.yaml plan`), not an observation: ids and sizes are
//! made up, and `asdr inventory` replaces it with the real thing.

use std::collections::BTreeMap;

use asdr_specs::{Edition, NodeVars, Policy};
use time::OffsetDateTime;

use crate::observe::render;
use crate::tags;
use crate::world::*;

/// Every volume of the skeleton is this big; the real ones are observed.
const VOLUME_GIB: u32 = 100;

pub fn world(policy: &Policy, now: OffsetDateTime) -> World {
    let cluster = &policy.cluster;
    let edition = match cluster.edition {
        Edition::Enterprise => "Aerospike Enterprise Edition",
        Edition::Community => "Aerospike Community Edition",
    };
    let mut world = World {
        now: Some(now),
        ..World::default()
    };
    let devices = policy.ebs_devices();
    let ids: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            n.node_id
                .clone()
                .unwrap_or_else(|| asdr_specs::derived_node_id(&cluster.name, &n.name))
        })
        .collect();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let vars = NodeVars::new(&cluster.name, node);
        let instance_id = node
            .instance_id
            .clone()
            .unwrap_or_else(|| format!("i-{:017x}", 0x1000 + i));
        let node_id = ids[i].clone();
        let node_tags: Tags = BTreeMap::from([
            (
                "Name".to_string(),
                format!("{}-{}", cluster.name, node.name),
            ),
            (tags::CLUSTER.to_string(), cluster.name.clone()),
            (tags::NODE.to_string(), node.name.clone()),
        ]);
        let mut block_devices = Vec::new();
        for (d, t) in devices.iter().enumerate() {
            let ebs = render(t, &vars);
            let volume_id = format!("vol-{:017x}", 0x2000 + i * 64 + d);
            block_devices.push(BlockDevice {
                device_name: ebs.clone(),
                volume_id: volume_id.clone(),
                delete_on_termination: false,
            });
            let mut vtags = node_tags.clone();
            vtags.insert(tags::DEVICE.into(), ebs.clone());
            world.volumes.push(Volume {
                region: None,
                id: volume_id,
                availability_zone: node.availability_zone.clone(),
                size_gib: VOLUME_GIB,
                volume_type: "gp3".into(),
                iops: Some(3000),
                throughput: Some(125),
                state: VolumeState::InUse,
                snapshot_id: None,
                encrypted: false,
                kms_key_id: None,
                attachments: vec![Attachment {
                    instance_id: instance_id.clone(),
                    device: ebs,
                    state: AttachmentState::Attached,
                    delete_on_termination: false,
                }],
                tags: vtags,
            });
        }
        world.instances.push(Instance {
            region: None,
            id: instance_id,
            state: InstanceState::Running,
            instance_type: cluster.instance.instance_type.clone(),
            private_ip: Some(node.private_ip.to_string()),
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
        world.nodes.push(NodeObservation {
            name: node.name.clone(),
            reachable: true,
            edition: Some(edition.into()),
            node_id: Some(node_id.clone()),
            cluster_size: Some(cluster.nodes.len() as u32),
            namespaces: cluster
                .namespaces
                .iter()
                .map(|ns| ObservedNamespace {
                    name: ns.name.clone(),
                    replication_factor: Some(ns.replication_factor),
                    strong_consistency: ns.strong_consistency,
                    rack_id: (!cluster.racks.is_empty()).then(|| cluster.rack_of(node)),
                    // A strong-consistency namespace's roster: every node, all of them present.
                    roster: if ns.strong_consistency {
                        ids.clone()
                    } else {
                        Vec::new()
                    },
                    observed_nodes: if ns.strong_consistency {
                        ids.clone()
                    } else {
                        Vec::new()
                    },
                    devices: ns
                        .devices
                        .iter()
                        .map(|d| ObservedDevice {
                            device: render(&d.device, &vars),
                            shadow: d.shadow.as_ref().map(|s| render(s, &vars)),
                        })
                        .collect(),
                    ..ObservedNamespace::default()
                })
                .collect(),
            config: Some(crate::config::render(policy, node, &node_id).content),
            ..NodeObservation::default()
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
