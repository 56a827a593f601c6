//! What AWS refuses and moto accepts, through the strict layer every moto test runs behind
//! (`scripts/strict-aws.py`, docs/aws.md): each test here failed before its fix, on a request
//! EC2 would have refused.

use crate::big::big_cluster;
use crate::ec2::{DEVICES, env};

/// EC2 API Reference, Filter (200 values at most) and CreateTags (1,000 resource ids at most):
/// a cluster of 340 nodes is observed with every address in filters of at most 200 values, and
/// its set of 1,020 snapshots is marked in chunks of at most 1,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_340_node_cluster_is_observed_and_its_set_marked_within_ec2_request_limits() {
    let big = big_cluster(340).await;
    let out = big.asdr(&["inventory", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let world: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(world["instances"].as_array().unwrap().len(), 340);
    let out = big.asdr(&["apply", "--yes", "-q", "--parallelism", "20"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps = big.snapshots().await;
    assert_eq!(snaps.len(), 340 * DEVICES.len());
    assert!(
        snaps
            .iter()
            .all(|s| s.tags().iter().any(|t| t.key() == Some("asdr:complete"))),
        "every snapshot of the set is marked"
    );
    assert!(big.moto.refused().is_empty(), "{:?}", big.moto.refused());
}

/// EC2 API Reference, CreateVolume: `Iops` only for io1, io2 and gp3, `Throughput` only for gp3.
/// The nodes' volumes are gp3 (moto reports their 3,000 IOPS, as EC2 does); a restore onto gp2
/// creates its volumes without either, instead of carrying the gp3 settings EC2 refuses for gp2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_onto_another_volume_type_sends_only_what_that_type_takes() {
    let env = env(
        120,
        &[(
            "volume: {type: gp3, iops: 16000, throughput: 1000, initialization_rate: 300}",
            "volume: {type: gp2}",
        )],
    )
    .await;
    env.ok(&["apply", "--yes"]);
    env.ok(&["apply", "--yes", "--restore", "a1-from-backup"]);
    let a1 = env.live_instances("a1").await[0]
        .instance_id()
        .unwrap()
        .to_string();
    let volumes = env.volumes_of(&a1).await;
    for dev in DEVICES {
        assert_eq!(
            volumes[dev].volume_type().map(|t| t.as_str()),
            Some("gp2"),
            "{dev}"
        );
    }
    assert!(env.moto.refused().is_empty(), "{:?}", env.moto.refused());
}

/// EC2 API Reference, "Ensuring idempotency": a RunInstances client token names the same
/// instance for hours, even once it is terminated. A launch EC2 ends at once (here: no capacity)
/// is launched again with a token of its own, its reason said; after three such launches the
/// step fails with every reason, instead of waiting on the dead instance until its deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_ec2_ends_at_once_is_launched_anew_and_its_reason_said() {
    let env = env(122, &[]).await;
    env.terminate("a1").await;
    env.moto
        .strict("terminate-launches?count=1&code=Server.InsufficientInstanceCapacity");
    let out = env.asdr(&["apply", "--yes", "--restore", "replace-a1"]);
    let all = crate::ec2::all(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("launching again") && all.contains("Server.InsufficientInstanceCapacity"),
        "the reason is said: {all}"
    );
    assert_eq!(env.live_instances("a1").await.len(), 1);
    assert!(env.nodes.is_up("a1"));

    // Three launches ended: the step fails, naming why.
    let env = env_again(130).await;
    env.terminate("a1").await;
    env.moto
        .strict("terminate-launches?count=3&code=Server.InsufficientInstanceCapacity");
    let started = std::time::Instant::now();
    let out = env.asdr(&["apply", "--yes", "--restore", "replace-a1"]);
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("3 launches for provision_instance:a1") && all.contains("ended at once"),
        "{all}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "it failed, not waited out"
    );
}

async fn env_again(base: u8) -> crate::ec2::Env {
    env(base, &[]).await
}

/// EBS drops a volume it cannot create (a KMS key the role may not use) after CreateVolume said
/// yes, and its client token then names the dead volume for hours. The wait says the volume is
/// gone instead of waiting hours for it; applied again, the restore creates it anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_ebs_drops_after_creating_it_fails_the_wait_and_is_created_anew() {
    let env = env(124, &[]).await;
    env.ok(&["apply", "--yes"]);
    env.moto.strict("vanish-volumes?count=1");
    let started = std::time::Instant::now();
    // Two minutes unseen by default (EC2's eventual consistency); ten seconds here.
    let out = env
        .command(&["apply", "--yes", "--restore", "a1-from-backup"])
        .env("ASDR_VANISH_GRACE_MS", "10000")
        .output()
        .unwrap();
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("was created and is gone") && all.contains("KMS key"),
        "{all}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(120),
        "{all}"
    );
    // The cause fixed, applied again: the failed apply resumes and the volume is made anew.
    let all = {
        let out = env
            .command(&["apply", "--yes", "--restore", "a1-from-backup"])
            .env("ASDR_VANISH_GRACE_MS", "10000")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        text
    };
    let a1 = env.live_instances("a1").await[0]
        .instance_id()
        .unwrap()
        .to_string();
    let volumes = env.volumes_of(&a1).await;
    for dev in DEVICES {
        assert!(
            volumes[dev].snapshot_id().is_some_and(|s| !s.is_empty()),
            "{dev} from the set: {all}"
        );
    }
    assert!(env.nodes.is_up("a1"));
}

/// a1's old instance has termination protection (as production database instances often do):
/// replacing it would stop it, detach its volumes, and then be refused the termination, leaving a
/// stopped machine without its data and no replacement. The protection is read before any volume
/// is detached: the restore fails saying how to proceed, with the volumes still on the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_termination_protected_instance_keeps_its_volumes_and_the_restore_says_why() {
    let env = env(148, &[]).await;
    let old = env.layout_instance("a1");
    let before = env.volumes_of(&old).await;
    env.ec2
        .modify_instance_attribute()
        .instance_id(&old)
        .disable_api_termination(
            aws_sdk_ec2::types::AttributeBooleanValue::builder()
                .value(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    std::fs::write(env.dir.path().join("control/a1.down"), "").unwrap();
    let out = env.asdr(&["apply", "--yes", "--restore", "replace-a1"]);
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("termination protection") && all.contains("--no-disable-api-termination"),
        "{all}"
    );
    let after = env.volumes_of(&old).await;
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "every data volume is still attached to the old instance"
    );
    assert!(
        env.live_instances("a1").await.len() <= 1,
        "nothing launched beside it"
    );
}

/// a1's instance is gone, but a network interface in its subnet still holds its address (one
/// kept when the instance was terminated, as a fixed-address setup leaves it): EC2 would refuse
/// the replacement's launch (InvalidIPAddress.InUse) for as long as it exists. The plan is
/// refused before anything is done, naming the interface.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_address_held_by_a_leftover_interface_refuses_the_replacement_naming_it() {
    let env = env(152, &[]).await;
    env.terminate("a1").await;
    let eni = env
        .ec2
        .create_network_interface()
        .subnet_id(env.subnet("us-east-1a"))
        .private_ip_address(env.layout_ip("a1"))
        .send()
        .await
        .unwrap()
        .network_interface
        .unwrap()
        .network_interface_id
        .unwrap();
    let out = env.asdr(&["plan", "--restore", "replace-a1"]);
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains(&format!("is held by network interface {eni}")),
        "{all}"
    );
    env.ec2
        .delete_network_interface()
        .network_interface_id(&eni)
        .send()
        .await
        .unwrap();
    env.ok(&["plan", "--restore", "replace-a1"]);
}

/// Another VPC with an overlapping range has an instance at a1's address: no conflict for a1's
/// replacement, which launches into a1's own subnet (two subnets of one VPC never overlap, so the
/// same address in another subnet is another network's). The launch does not wait on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_at_the_same_address_in_another_vpc_does_not_hold_the_replacements_address() {
    let env = env(154, &[]).await;
    env.terminate("a1").await;
    let vpc = env
        .ec2
        .create_vpc()
        .cidr_block("127.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let subnet = env
        .ec2
        .create_subnet()
        .vpc_id(&vpc)
        .cidr_block("127.0.1.0/24")
        .availability_zone("us-east-1a")
        .send()
        .await
        .unwrap()
        .subnet
        .unwrap()
        .subnet_id
        .unwrap();
    let foreign = env
        .ec2
        .run_instances()
        .image_id("ami-0123456789abcdef0")
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .subnet_id(&subnet)
        .private_ip_address(env.layout_ip("a1"))
        .send()
        .await
        .unwrap()
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    let out = env.asdr(&["apply", "--yes", "--restore", "replace-a1"]);
    let all = crate::ec2::all(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains(&format!("in use by {foreign}")), "{all}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{all}"
    );
    assert!(env.nodes.is_up("a1"));
}
