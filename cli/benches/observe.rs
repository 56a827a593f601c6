//! `cargo bench -p asdr --bench observe`: observing a 64-node cluster (4 EBS volumes each) with 30
//! retained backup sets (7,680 snapshots) in moto, counting EC2 API calls with the provider's
//! interceptor. Target: at most 10 calls. The naive count is one call per resource.

use std::time::Instant;

use asdr_planner::testkit::{CONFIG_TEMPLATE, policy_yaml};
use asdr_providers::ec2::{CallCounter, Ec2Provider, observe_cloud};
use asdr_providers::testkit_moto::Moto;
use aws_sdk_ec2::types::{InstanceSpecification, ResourceType, Tag, TagSpecification};

const NODES: usize = 64;
const DEVICES: usize = 4;
const SETS: usize = 30;

fn spec(kind: ResourceType, pairs: &[(&str, &str)]) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
                .collect(),
        ))
        .build()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("asdr.yaml"),
        policy_yaml(NODES, DEVICES, "multi-volume", "enterprise", SETS as u32),
    )
    .unwrap();
    std::fs::write(dir.path().join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    let policy = asdr_specs::load(&dir.path().join("asdr.yaml")).unwrap();
    let moto = Moto::start();
    let ec2 = moto.ec2();
    let seeding = Instant::now();
    let mut subnets = std::collections::BTreeMap::new();
    // The generated nodes use 10.0/16, 10.1/16 and 10.2/16, one per AZ (a VPC is at most a /16).
    for (i, az) in ["us-east-1a", "us-east-1b", "us-east-1c"]
        .iter()
        .enumerate()
    {
        let vpc = ec2
            .create_vpc()
            .cidr_block(format!("10.{i}.0.0/16"))
            .send()
            .await
            .unwrap()
            .vpc
            .unwrap()
            .vpc_id
            .unwrap();
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(format!("10.{i}.0.0/16"))
            .availability_zone(*az)
            .send()
            .await
            .unwrap()
            .subnet
            .unwrap()
            .subnet_id
            .unwrap();
        subnets.insert(az.to_string(), s);
    }
    let mut instances = Vec::new();
    for n in &policy.cluster.nodes {
        let id = ec2
            .run_instances()
            .image_id("ami-0123456789abcdef0")
            .instance_type(aws_sdk_ec2::types::InstanceType::I4i4xlarge)
            .min_count(1)
            .max_count(1)
            .subnet_id(&subnets[&n.availability_zone])
            .private_ip_address(n.private_ip.to_string())
            .tag_specifications(spec(
                ResourceType::Instance,
                &[("asdr:cluster", "gen"), ("asdr:node", &n.name)],
            ))
            .send()
            .await
            .unwrap()
            .instances()[0]
            .instance_id()
            .unwrap()
            .to_string();
        for d in 0..DEVICES {
            let dev = format!("/dev/sd{}", (b'f' + d as u8) as char);
            let vol = ec2
                .create_volume()
                .availability_zone(&n.availability_zone)
                .size(100)
                .tag_specifications(spec(
                    ResourceType::Volume,
                    &[
                        ("asdr:cluster", "gen"),
                        ("asdr:node", &n.name),
                        ("asdr:device", &dev),
                    ],
                ))
                .send()
                .await
                .unwrap()
                .volume_id
                .unwrap();
            ec2.attach_volume()
                .volume_id(vol)
                .instance_id(&id)
                .device(dev)
                .send()
                .await
                .unwrap();
        }
        instances.push((n.name.clone(), id));
    }
    for s in 0..SETS {
        let set = format!("bs-202611{:02}T020000Z", s % 28 + 1);
        for (node, id) in &instances {
            ec2.create_snapshots()
                .instance_specification(
                    InstanceSpecification::builder()
                        .instance_id(id)
                        .exclude_boot_volume(true)
                        .build(),
                )
                .tag_specifications(spec(
                    ResourceType::Snapshot,
                    &[
                        ("asdr:cluster", "gen"),
                        ("asdr:set", &set),
                        ("asdr:node", node),
                        ("asdr:complete", "true"),
                    ],
                ))
                .send()
                .await
                .unwrap();
        }
    }
    println!(
        "seeded moto with {NODES} instances, {} volumes, {} snapshots in {:.1} s",
        NODES * DEVICES,
        NODES * DEVICES * SETS,
        seeding.elapsed().as_secs_f64()
    );

    // Where the time goes, call by call.
    let f = |n: &str, v: &[&str]| {
        aws_sdk_ec2::types::Filter::builder()
            .name(n)
            .set_values(Some(v.iter().map(|s| s.to_string()).collect()))
            .build()
    };
    let t = Instant::now();
    let snaps = ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(f("tag:asdr:cluster", &["gen"]))
        .send()
        .await
        .unwrap();
    println!(
        "  DescribeSnapshots (tag filter): {} snapshots in {:.3} s",
        snaps.snapshots().len(),
        t.elapsed().as_secs_f64()
    );
    let ids: Vec<&str> = instances.iter().map(|(_, id)| id.as_str()).collect();
    let t = Instant::now();
    let vols = ec2
        .describe_volumes()
        .filters(f("attachment.instance-id", &ids))
        .send()
        .await
        .unwrap();
    println!(
        "  DescribeVolumes (64 instance ids): {} volumes in {:.3} s",
        vols.volumes().len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let vols = ec2
        .describe_volumes()
        .filters(f("tag:asdr:cluster", &["gen"]))
        .send()
        .await
        .unwrap();
    println!(
        "  DescribeVolumes (tag filter): {} volumes in {:.3} s",
        vols.volumes().len(),
        t.elapsed().as_secs_f64()
    );
    let ips: Vec<String> = policy
        .cluster
        .nodes
        .iter()
        .map(|n| n.private_ip.to_string())
        .collect();
    let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
    let t = Instant::now();
    let inst = ec2
        .describe_instances()
        .filters(f("private-ip-address", &ips))
        .send()
        .await
        .unwrap();
    println!(
        "  DescribeInstances (64 IPs): {} reservations in {:.3} s",
        inst.reservations().len(),
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let inst = ec2
        .describe_instances()
        .filters(f("tag:asdr:cluster", &["gen"]))
        .send()
        .await
        .unwrap();
    println!(
        "  DescribeInstances (tag filter): {} reservations in {:.3} s",
        inst.reservations().len(),
        t.elapsed().as_secs_f64()
    );

    let counter = CallCounter::default();
    let conf = ec2
        .config()
        .to_builder()
        .interceptor(counter.clone())
        .build();
    let provider = Ec2Provider::new(aws_sdk_ec2::Client::from_conf(conf), "gen");
    let mut walls = Vec::new();
    let mut calls = 0;
    for _ in 0..3 {
        let before = counter.get();
        let t = Instant::now();
        let world = observe_cloud(&provider, &policy).await.unwrap();
        walls.push(t.elapsed().as_secs_f64());
        calls = counter.get() - before;
        assert_eq!(world.instances.len(), NODES);
        assert_eq!(world.snapshots.len(), NODES * DEVICES * SETS);
        assert!(world.volumes.len() >= NODES * DEVICES);
    }
    walls.sort_by(f64::total_cmp);
    let naive = NODES + NODES * DEVICES + NODES * DEVICES * SETS + NODES;
    println!(
        "observe_cloud: {calls} EC2 API calls (target ≤ 10; one call per resource would be {naive}), wall min {:.3} s, median {:.3} s, max {:.3} s",
        walls[0], walls[1], walls[2]
    );
    assert!(calls <= 10, "{calls} calls");
}
