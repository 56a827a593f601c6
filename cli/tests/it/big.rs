//! Big clusters against moto behind the strict layer: `n` nodes in two zones, each with an
//! instance and three tagged EBS volumes, the in-test nodes answering the info protocol.

use crate::ec2::{DEVICES, counted, seed_node, seed_subnets};
use asdr_planner::testkit::ExamplePolicy;
use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces};
use asdr_providers::testkit_moto::Moto;
use assert_cmd::cargo::CommandCargoExt;
use aws_sdk_ec2::types::Filter;
use std::process::{Command, Output, Stdio};

pub(crate) struct Big {
    pub(crate) moto: Moto,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) nodes: usize,
    _cluster: TestCluster,
}

/// A cluster `big` of `nodes` nodes (at most 490: 127.0.3.10–254 and 127.0.4.10–254, where no
/// other test's nodes listen), with the example's backup policy.
pub(crate) async fn big_cluster(nodes: usize) -> Big {
    let moto = Moto::start();
    let ec2 = moto.ec2();
    let subnets = seed_subnets(
        &ec2,
        &[
            ("us-east-1a", "127.0.3.0/24"),
            ("us-east-1b", "127.0.4.0/24"),
        ],
    )
    .await;
    let layout: Vec<(String, String, &str)> = (0..nodes)
        .map(|i| {
            let (az, third) = if i % 2 == 0 {
                ("us-east-1a", 3)
            } else {
                ("us-east-1b", 4)
            };
            (format!("n{i}"), format!("127.0.{third}.{}", 10 + i / 2), az)
        })
        .collect();
    for (node, ip, az) in &layout {
        seed_node(&ec2, &subnets[*az], "big", node, ip, az).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let addrs: Vec<(&str, &str)> = layout
        .iter()
        .map(|(n, ip, _)| (n.as_str(), ip.as_str()))
        .collect();
    let cluster = TestCluster::start(
        &addrs,
        example_namespaces(),
        true,
        &dir.path().join("control"),
    )
    .await
    .unwrap();
    let listed: String = layout
        .iter()
        .map(|(n, ip, az)| {
            format!("    - {{name: {n}, private_ip: {ip}, availability_zone: {az}}}\n")
        })
        .collect();
    let example_nodes = "    - name: a1\n      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n    - name: b1\n      private_ip: 10.0.2.11\n      availability_zone: us-east-1b\n    - name: a2\n      private_ip: 10.0.1.12\n      availability_zone: us-east-1a\n";
    // The backup policy alone: the example's restores and drills name its three nodes.
    let mut policy = ExamplePolicy::prod_east();
    let cut = policy
        .text
        .find("\nrestores:")
        .expect("the example has restores");
    policy.text.truncate(cut + 1);
    policy
        .edits(&[
            (example_nodes, listed.as_str()),
            ("name: prod-east", "name: big"),
            ("info_port: 3000", &format!("info_port: {}", cluster.port())),
            ("transport: ssm", "transport: local"),
            (
                "work_directory: /opt/aerospike",
                &format!("work_directory: {root}/nodes/{{{{ node }}}}"),
            ),
            (
                "smd: {to: s3://acme-backups/asdr/prod-east/smd}",
                &format!("smd: {{to: file://{root}/store}}"),
            ),
            ("subnet-0aaa", subnets["us-east-1a"].as_str()),
            ("subnet-0bbb", subnets["us-east-1b"].as_str()),
            ("type: i4i.2xlarge", "type: i4i.8xlarge"),
        ])
        .write_to(dir.path());
    for (n, _, _) in &layout {
        std::fs::create_dir_all(dir.path().join(format!("nodes/{n}/smd"))).unwrap();
    }
    Big {
        moto,
        ec2,
        dir,
        nodes,
        _cluster: cluster,
    }
}

impl Big {
    /// The binary against moto at asdr's defaults (no test poll interval).
    pub(crate) fn asdr(&self, args: &[&str]) -> Output {
        Command::cargo_bin("asdr")
            .unwrap()
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("ASDR_POLL_INTERVAL_MS")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .args([
                "-f",
                "asdr.yaml",
                "--endpoint-url",
                &self.moto.endpoint,
                "--region",
                "us-east-1",
            ])
            .args(args)
            .output()
            .unwrap()
    }

    /// The cluster's snapshots.
    pub(crate) async fn snapshots(&self) -> Vec<aws_sdk_ec2::types::Snapshot> {
        let mut out = Vec::new();
        let mut pages = self
            .ec2
            .describe_snapshots()
            .filters(
                Filter::builder()
                    .name("tag:asdr:cluster")
                    .values("big")
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            out.extend(page.unwrap().snapshots().to_vec());
        }
        out
    }
}

/// A multi-volume backup of 64 nodes × 3 EBS volumes against moto, nodes answering the info
/// protocol, at asdr's defaults: at most 80 EC2 calls for the whole apply (64 of them the
/// CreateSnapshots calls themselves). One DescribeSnapshots finds the plan's evidence, the
/// excluded volumes are planned, the waits of the set share their views and give the device tags
/// in one CreateTags per device for the waits asking together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_node_backup_makes_at_most_80_ec2_calls() {
    let big = big_cluster(64).await;
    // The default parallelism (10): the bound holds however the nodes' steps interleave.
    let out = big.asdr(&["apply", "--yes", "-q", "-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let made = counted(&stderr, "made ");
    eprintln!("64-node × 3-volume backup: {made} EC2 calls to apply");
    let snaps = big.snapshots().await;
    assert_eq!(snaps.len(), big.nodes * DEVICES.len());
    assert!(
        snaps
            .iter()
            .all(|s| s.tags().iter().any(|t| t.key() == Some("asdr:complete"))),
        "the set is marked complete"
    );
    assert!(made <= 80, "the apply made {made} EC2 calls");
    assert!(big.moto.refused().is_empty(), "{:?}", big.moto.refused());
}
