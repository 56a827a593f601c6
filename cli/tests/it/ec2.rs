//! asdr against AWS for real: the EC2 provider through aws-sdk-ec2 against a moto server the test
//! starts on 127.0.0.1, seeded with a 3-node cluster by the SDK itself; the node steps run on the
//! in-test Aerospike nodes (listening at the instances' own private IPs) through the local
//! transport. Each test has its own moto server, so each its own world.

use asdr_planner::testkit::ExamplePolicy;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces_at};
use asdr_providers::testkit_moto::{Moto, SeedNode, tag_spec as spec};
use asdr_providers::testkit_nitro::Nitro;
use assert_cmd::cargo::CommandCargoExt;
use aws_sdk_ec2::types::{Filter, ResourceType};

pub(crate) const DEVICES: [&str; 3] = ["/dev/sdf", "/dev/sdg", "/dev/sdh"];

pub(crate) struct Env {
    pub(crate) moto: Moto,
    pub(crate) ec2: aws_sdk_ec2::Client,
    pub(crate) nodes: TestCluster,
    pub(crate) dir: tempfile::TempDir,
    /// node → (ip, az, instance id)
    layout: BTreeMap<String, (String, String, String)>,
    subnets: BTreeMap<String, String>,
    /// What each node's guest sees of its volumes (`<dir>/nodes/<node>/dev`).
    pub(crate) nitro: Nitro,
}

/// One node of a cluster in moto: its instance at `ip` in `subnet`, and a gp3 volume attached at
/// each of DEVICES, tagged as asdr finds them. Returns the instance id.
pub(crate) async fn seed_node(
    ec2: &aws_sdk_ec2::Client,
    subnet: &str,
    cluster: &str,
    node: &str,
    ip: &str,
    az: &str,
) -> String {
    let seeded = SeedNode {
        at: Some((subnet, ip)),
        az,
        tagged: Some((cluster, node)),
    };
    asdr_providers::testkit_moto::seed_node(ec2, seeded, &DEVICES)
        .await
        .0
}

/// The number `-v` prints after `prefix` ("made 14 EC2 API calls").
pub(crate) fn counted(stderr: &str, prefix: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix(prefix)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no `{prefix}` count in:\n{stderr}"))
}

/// A VPC on 127.0.0.0/16 with a subnet per (zone, CIDR); zone → subnet id.
pub(crate) async fn seed_subnets(
    ec2: &aws_sdk_ec2::Client,
    zones: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let vpc = ec2
        .create_vpc()
        .cidr_block("127.0.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let mut subnets = BTreeMap::new();
    for (az, cidr) in zones {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(*cidr)
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
    subnets
}

/// What a run of the binary printed, stdout then stderr.
pub(crate) fn all(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Seeds moto with the example cluster at 127.0.1.x / 127.0.2.x (`base` keeps tests apart), and
/// starts the Aerospike test nodes at those addresses.
pub(crate) async fn env(base: u8, policy_edits: &[(&str, &str)]) -> Env {
    env_with(base, policy_edits, &[]).await
}

/// [`env`], the nodes reporting each device path with `renamed` applied (`("nvme3n1", "sdf")`:
/// a policy that names that device by another link, edited to say so).
pub(crate) async fn env_with(
    base: u8,
    policy_edits: &[(&str, &str)],
    renamed: &[(&str, &str)],
) -> Env {
    let moto = Moto::start();
    let ec2 = moto.ec2();
    let subnets = seed_subnets(
        &ec2,
        &[
            ("us-east-1a", "127.0.1.0/24"),
            ("us-east-1b", "127.0.2.0/24"),
        ],
    )
    .await;
    let plan = [
        ("a1", format!("127.0.1.{base}"), "us-east-1a"),
        ("b1", format!("127.0.2.{base}"), "us-east-1b"),
        ("a2", format!("127.0.1.{}", base + 1), "us-east-1a"),
    ];
    let mut layout = BTreeMap::new();
    for (node, ip, az) in &plan {
        let id = seed_node(&ec2, &subnets[*az], "prod-east", node, ip, az).await;
        layout.insert(node.to_string(), (ip.clone(), az.to_string(), id));
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let mut namespaces = example_namespaces_at(&root);
    for ns in &mut namespaces {
        for (dev, shadow) in &mut ns.devices {
            for (from, to) in renamed {
                *dev = dev.replace(from, to);
                *shadow = shadow.as_ref().map(|s| s.replace(from, to));
            }
        }
    }
    let addrs: Vec<(&str, &str)> = plan.iter().map(|(n, ip, _)| (*n, ip.as_str())).collect();
    let nodes = TestCluster::start(&addrs, namespaces, true, &dir.path().join("control"))
        .await
        .unwrap();
    let ip = |n: &str| layout[n].0.clone();
    let policy = ExamplePolicy::prod_east()
        .edit(
            "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n",
            "",
        )
        .on_test_nodes(&root, nodes.port(), [&ip("a1"), &ip("b1"), &ip("a2")])
        .on_lab_devices(&root)
        .edits(&[
            ("subnet-0aaa", subnets["us-east-1a"].as_str()),
            ("subnet-0bbb", subnets["us-east-1b"].as_str()),
            ("security_groups: [sg-0123]", "security_groups: []"),
            ("    iam_instance_profile: aerospike-node\n", ""),
            ("    key_name: ops\n", ""),
            // Two shadowed primaries need two instance-store drives: moto's i4i.8xlarge has two,
            // as the real one does (its i4i.2xlarge has one, and asdr refuses to replace onto it).
            ("type: i4i.2xlarge", "type: i4i.8xlarge"),
        ])
        .edits(policy_edits);
    policy.write_to(dir.path());
    for n in ["a1", "b1", "a2"] {
        std::fs::create_dir_all(dir.path().join(format!("nodes/{n}/smd"))).unwrap();
    }
    // The root volume is nvme0n1 and the two instance-store drives nvme1n1 and nvme2n1: data
    // volumes are numbered from 3, as the policy's shadows expect.
    let nitro = Nitro::start(&moto.endpoint, &["us-east-1", "us-west-2"], dir.path(), 3);
    Env {
        moto,
        ec2,
        nodes,
        dir,
        layout,
        subnets,
        nitro,
    }
}

impl Env {
    /// A subnet of `cidr` in zone `az`, in the cluster's VPC; its id.
    pub(crate) async fn add_subnet(&self, az: &str, cidr: &str) -> String {
        let any = self.subnets.values().next().expect("seeded");
        let vpc = self
            .ec2
            .describe_subnets()
            .subnet_ids(any)
            .send()
            .await
            .unwrap()
            .subnets()[0]
            .vpc_id()
            .unwrap()
            .to_string();
        self.ec2
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .unwrap()
            .subnet
            .unwrap()
            .subnet_id
            .unwrap()
    }

    /// The instance the environment seeded for `node`.
    pub(crate) fn layout_instance(&self, node: &str) -> String {
        self.layout[node].2.clone()
    }

    /// The address the environment seeded `node` at.
    pub(crate) fn layout_ip(&self, node: &str) -> String {
        self.layout[node].0.clone()
    }

    /// The subnet the policy names for `az`.
    pub(crate) fn subnet(&self, az: &str) -> &str {
        &self.subnets[az]
    }

    /// The policy file with `from` replaced by `to` (once; checked to apply).
    pub(crate) fn edit_policy(&self, from: &str, to: &str) {
        let path = self.dir.path().join("asdr.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "`{from}` is not in the policy");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    pub(crate) fn asdr(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The binary against moto in this environment's folder, not yet run.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        self.command_at(&self.moto.endpoint, args)
    }

    /// The binary against `endpoint` (a proxy in front of moto), not yet run.
    pub(crate) fn command_at(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("asdr").unwrap();
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ASDR_POLL_INTERVAL_MS", "20")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .args([
                "-f",
                "asdr.yaml",
                "--endpoint-url",
                endpoint,
                "--region",
                "us-east-1",
            ])
            .args(args);
        c
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.asdr(args);
        assert!(
            out.status.success(),
            "asdr {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) async fn snapshots(&self) -> Vec<aws_sdk_ec2::types::Snapshot> {
        self.snapshots_in("us-east-1").await
    }

    /// This account's snapshots in `region`.
    pub(crate) async fn snapshots_in(&self, region: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
        self.moto
            .ec2_in(region)
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap()
            .snapshots()
            .to_vec()
    }

    /// The node's instance is gone and its Aerospike with it.
    pub(crate) async fn terminate(&self, node: &str) {
        self.ec2
            .terminate_instances()
            .instance_ids(&self.layout[node].2)
            .send()
            .await
            .unwrap();
        std::fs::write(self.dir.path().join(format!("control/{node}.down")), "").unwrap();
    }

    pub(crate) async fn live_instances(&self, node: &str) -> Vec<aws_sdk_ec2::types::Instance> {
        let out = self
            .ec2
            .describe_instances()
            .filters(Filter::builder().name("tag:asdr:node").values(node).build())
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances().to_vec())
            .collect()
    }

    pub(crate) async fn volumes_of(
        &self,
        instance: &str,
    ) -> BTreeMap<String, aws_sdk_ec2::types::Volume> {
        let out = self
            .ec2
            .describe_volumes()
            .filters(
                Filter::builder()
                    .name("attachment.instance-id")
                    .values(instance)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.volumes()
            .iter()
            .filter_map(|v| Some((v.attachments().first()?.device()?.to_string(), v.clone())))
            .collect()
    }
}

pub(crate) fn tag<'a>(s: &'a aws_sdk_ec2::types::Snapshot, k: &str) -> Option<&'a str> {
    s.tags()
        .iter()
        .find(|t| t.key() == Some(k))
        .and_then(|t| t.value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_against_moto_tags_every_snapshot_marks_the_set_and_a_second_apply_creates_nothing()
{
    let env = env(31, &[]).await;
    let inventory = env.ok(&["inventory", "--json", "-v"]);
    let world: serde_json::Value = serde_json::from_str(&inventory).unwrap();
    assert_eq!(world["instances"].as_array().unwrap().len(), 3);
    assert_eq!(
        world["instance_types"]["i4i.8xlarge"]["instance_store_drives"],
        2
    );
    let applied = env.asdr(&["apply", "--yes", "-v"]);
    assert!(applied.status.success());
    let stderr = String::from_utf8_lossy(&applied.stderr);
    let (observed, made) = (
        counted(&stderr, "observed cluster prod-east with "),
        counted(&stderr, "made "),
    );
    eprintln!("backup of 3 nodes × 3 devices: observation {observed} EC2 calls, apply {made}");
    // Observation is a fixed handful of calls, whatever the number of nodes and sets.
    assert!(observed <= 8, "observation took {observed} calls");
    // 3 nodes: one DescribeSnapshots of the plan's evidence, a CreateSnapshots per node (the
    // volumes it leaves out are planned); a CreateTags per device for the nodes snapshotted
    // together (one per node and device at most); the set's waits, the mark.
    assert!(made <= 17, "the apply took {made} EC2 calls");
    let snaps = env.snapshots().await;
    assert_eq!(snaps.len(), 9, "one snapshot per data volume");
    let set = tag(&snaps[0], "asdr:set").unwrap().to_string();
    // The first apply claimed the cluster id on every node's instance (CreateTags in EC2), and
    // every snapshot carries it.
    let reservations = env.ec2.describe_instances().send().await.unwrap();
    let ids: std::collections::BTreeSet<String> = reservations
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            i.tags()
                .iter()
                .find(|t| t.key() == Some("asdr:cluster-id"))
                .and_then(|t| t.value())
                .unwrap_or_else(|| panic!("{:?} not claimed", i.instance_id()))
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let id = ids.into_iter().next().unwrap();
    for s in &snaps {
        assert_eq!(tag(s, "asdr:cluster-id"), Some(id.as_str()));
        for k in [
            "asdr:cluster",
            "asdr:node",
            "asdr:device",
            "asdr:step",
            "asdr:plan",
        ] {
            assert!(
                tag(s, k).is_some(),
                "{} lacks {k}",
                s.snapshot_id().unwrap()
            );
        }
        assert_eq!(tag(s, "asdr:set"), Some(set.as_str()));
        assert_eq!(
            tag(s, "asdr:complete"),
            Some("true"),
            "the set is marked complete"
        );
        assert_eq!(tag(s, "team"), Some("data"), "the policy's tags");
    }
    let devices: std::collections::BTreeSet<(String, String)> = snaps
        .iter()
        .map(|s| {
            (
                tag(s, "asdr:node").unwrap().into(),
                tag(s, "asdr:device").unwrap().into(),
            )
        })
        .collect();
    assert_eq!(devices.len(), 9);
    assert!(
        env.dir
            .path()
            .join(format!("store/prod-east/{set}/a1.smd.tar"))
            .exists(),
        "the SMD archive"
    );
    assert_eq!(
        env.asdr(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "plan again: nothing to do"
    );
    env.ok(&["apply", "--yes"]);
    assert_eq!(
        env.snapshots().await.len(),
        9,
        "a second apply creates nothing"
    );
    for n in ["a1", "b1", "a2"] {
        assert!(!env.nodes.quiesced(n));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_against_moto_deletes_exactly_the_expired_sets_and_no_foreign_snapshot() {
    let env = env(
        34,
        &[(
            "retain: {count: 7, max_age: 30d}",
            "retain: {count: 2, max_age: 30d}",
        )],
    )
    .await;
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let mut sets = Vec::new();
    for days in [4, 3, 2] {
        sets.push(format!(
            "bs-{}",
            (now - time::Duration::days(days) - time::Duration::hours(1))
                .format(&fmt)
                .unwrap()
        ));
    }
    // Three complete sets asdr made, with their SMD archives; two snapshots that are not asdr's.
    let vols = env
        .ec2
        .describe_volumes()
        .filters(
            Filter::builder()
                .name("tag:asdr:cluster")
                .values("prod-east")
                .build(),
        )
        .send()
        .await
        .unwrap();
    for set in &sets {
        for v in vols.volumes() {
            let t = |k: &str| {
                v.tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
                    .unwrap()
                    .to_string()
            };
            env.ec2
                .create_snapshot()
                .volume_id(v.volume_id().unwrap())
                .tag_specifications(spec(
                    ResourceType::Snapshot,
                    &[
                        ("asdr:cluster", "prod-east"),
                        ("asdr:set", set),
                        ("asdr:node", &t("asdr:node")),
                        ("asdr:device", &t("asdr:device")),
                        ("asdr:complete", "true"),
                    ],
                ))
                .send()
                .await
                .unwrap();
        }
        let archive = env.dir.path().join(format!("store/prod-east/{set}"));
        std::fs::create_dir_all(&archive).unwrap();
        std::fs::write(archive.join("a1.smd.tar"), b"archive").unwrap();
    }
    let any_volume = vols.volumes()[0].volume_id().unwrap();
    env.ec2
        .create_snapshot()
        .volume_id(any_volume)
        .description("taken by hand")
        .send()
        .await
        .unwrap();
    env.ec2
        .create_snapshot()
        .volume_id(any_volume)
        .tag_specifications(spec(
            ResourceType::Snapshot,
            &[("asdr:cluster", "another"), ("asdr:set", &sets[0])],
        ))
        .send()
        .await
        .unwrap();
    let before = env.snapshots().await;
    env.ok(&["apply", "--yes"]);
    let after = env.snapshots().await;
    let ids = |v: &[aws_sdk_ec2::types::Snapshot]| {
        v.iter()
            .map(|s| s.snapshot_id().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let deleted: Vec<&aws_sdk_ec2::types::Snapshot> = before
        .iter()
        .filter(|s| !ids(&after).contains(s.snapshot_id().unwrap()))
        .collect();
    // retain.count 2 counts the new set: the newest old set stays, the two before it go.
    assert_eq!(deleted.len(), 18, "two sets of nine");
    assert!(
        deleted
            .iter()
            .all(|s| tag(s, "asdr:cluster") == Some("prod-east")
                && [sets[0].as_str(), sets[1].as_str()].contains(&tag(s, "asdr:set").unwrap()))
    );
    assert!(
        after
            .iter()
            .any(|s| s.description() == Some("taken by hand")),
        "an untagged snapshot is never touched (R13)"
    );
    assert!(
        after
            .iter()
            .any(|s| tag(s, "asdr:cluster") == Some("another")),
        "another cluster's snapshot is never touched"
    );
    assert_eq!(
        after
            .iter()
            .filter(|s| tag(s, "asdr:set") == Some(sets[2].as_str()))
            .count(),
        9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a1_against_moto_keeps_its_address_zone_subnet_and_volumes() {
    let env = env(37, &[]).await;
    let old = env.layout["a1"].2.clone();
    let old_volumes = env.volumes_of(&old).await;
    env.terminate("a1").await;
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(plan.contains("provision_instance:a1"), "{plan}");
    let applied = env.asdr(&["apply", "--yes", "-v", "--restore", "replace-a1"]);
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success(), "{stderr}");
    let made = counted(&stderr, "made ");
    eprintln!("replace-a1 (3 volumes): {made} EC2 calls to apply");
    // The launch (its evidence, the address's holders, RunInstances, a poll) and per volume its
    // evidence, its state, AttachVolume and a poll: 16 on moto; a few more polls are allowed.
    assert!(made <= 20, "the restore made {made} EC2 calls");
    let new = env.live_instances("a1").await;
    assert_eq!(new.len(), 1, "one replacement");
    let new = &new[0];
    assert_ne!(new.instance_id(), Some(old.as_str()));
    assert_eq!(new.private_ip_address(), Some(env.layout["a1"].0.as_str()));
    assert_eq!(
        new.placement().and_then(|p| p.availability_zone()),
        Some("us-east-1a")
    );
    assert_eq!(new.subnet_id(), Some(env.subnets["us-east-1a"].as_str()));
    let attached = env.volumes_of(new.instance_id().unwrap()).await;
    for dev in DEVICES {
        assert_eq!(
            attached[dev].volume_id(),
            old_volumes[dev].volume_id(),
            "{dev}: the old volume, at the same device"
        );
    }
    assert!(env.nodes.is_up("a1"));
    assert_eq!(
        env.asdr(&["plan", "--restore", "replace-a1", "--detailed-exitcode"])
            .status
            .code(),
        Some(0),
        "plan again: no changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_of_an_unreachable_a1_against_moto_stops_its_instance_before_taking_its_volumes() {
    let env = env(75, &[]).await;
    let old = env.layout["a1"].2.clone();
    let old_volumes = env.volumes_of(&old).await;
    // Aerospike on a1 stops answering; its instance keeps running, volumes attached.
    std::fs::write(env.dir.path().join("control/a1.down"), "").unwrap();
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(plan.contains("stop_instance:a1"), "{plan}");
    let out = env.ok(&["apply", "--yes", "--restore", "replace-a1"]);
    // Defect 11: the instance was stopped (and waited for) before any volume was detached.
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|s| s.starts_with("stop_instance:") || s.starts_with("detach_volume:"))
        .collect();
    assert_eq!(order.first(), Some(&"stop_instance:a1"), "{out}");
    assert_eq!(order.len(), 4, "{out}");
    let old_state = env
        .ec2
        .describe_instances()
        .instance_ids(&old)
        .send()
        .await
        .unwrap()
        .reservations()[0]
        .instances()[0]
        .state()
        .and_then(|s| s.name())
        .map(|n| n.as_str().to_string());
    assert_eq!(old_state.as_deref(), Some("terminated"));
    let new = env.live_instances("a1").await;
    assert_eq!(new.len(), 1, "one replacement");
    let attached = env.volumes_of(new[0].instance_id().unwrap()).await;
    for dev in DEVICES {
        assert_eq!(
            attached[dev].volume_id(),
            old_volumes[dev].volume_id(),
            "{dev}: the old volume, kept and reattached at the same device (R7)"
        );
    }
    assert_eq!(
        env.asdr(&["plan", "--restore", "replace-a1", "--detailed-exitcode"])
            .status
            .code(),
        Some(0),
        "plan again: no changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a1_from_backup_against_moto_creates_volumes_from_the_set_in_a1s_zone() {
    let env = env(40, &[]).await;
    env.ok(&["apply", "--yes"]);
    let snaps = env.snapshots().await;
    let set_snapshots: BTreeMap<String, String> = snaps
        .iter()
        .filter(|s| tag(s, "asdr:node") == Some("a1"))
        .map(|s| {
            (
                tag(s, "asdr:device").unwrap().to_string(),
                s.snapshot_id().unwrap().to_string(),
            )
        })
        .collect();
    env.terminate("a1").await;
    env.ok(&["apply", "--yes", "--restore", "a1-from-backup"]);
    let new = env.live_instances("a1").await;
    assert_eq!(new.len(), 1);
    let attached = env.volumes_of(new[0].instance_id().unwrap()).await;
    for dev in DEVICES {
        let v = &attached[dev];
        assert_eq!(
            v.snapshot_id(),
            Some(set_snapshots[dev].as_str()),
            "{dev} comes from the set's snapshot"
        );
        assert_eq!(v.availability_zone(), Some("us-east-1a"));
    }
    assert_eq!(
        env.asdr(&["plan", "--restore", "a1-from-backup", "--detailed-exitcode"])
            .status
            .code(),
        Some(0)
    );
}

/// The whole cluster lost, restored from the set: every node relaunched at its address with its
/// volumes from its own snapshots and started, in a bounded number of EC2 calls (the evidence of
/// the plan's volumes and instances described once, lookups of states shared by the steps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restore_of_the_lost_cluster_against_moto_relaunches_every_node_from_its_snapshots()
 {
    let env = env(78, &[]).await;
    env.ok(&["apply", "--yes"]);
    let snaps = env.snapshots().await;
    for n in ["a1", "b1", "a2"] {
        env.terminate(n).await;
    }
    let applied = env.asdr(&["apply", "--yes", "-v", "--restore", "full-cluster"]);
    let stderr = String::from_utf8_lossy(&applied.stderr);
    assert!(applied.status.success(), "{stderr}");
    let made = counted(&stderr, "made ");
    eprintln!("full-cluster restore (3 nodes x 3 volumes): {made} EC2 calls to apply");
    for n in ["a1", "b1", "a2"] {
        let live = env.live_instances(n).await;
        assert_eq!(live.len(), 1, "{n}: one replacement");
        assert_eq!(live[0].private_ip_address(), Some(env.layout[n].0.as_str()));
        let attached = env.volumes_of(live[0].instance_id().unwrap()).await;
        for dev in DEVICES {
            let from = snaps
                .iter()
                .find(|s| tag(s, "asdr:node") == Some(n) && tag(s, "asdr:device") == Some(dev))
                .and_then(|s| s.snapshot_id());
            assert_eq!(attached[dev].snapshot_id(), from, "{n} {dev}");
        }
        assert!(env.nodes.is_up(n), "{n} started");
    }
    // 3 RunInstances, 9 CreateVolume, 9 AttachVolume; the plan's evidence, the addresses' holders
    // and the states polled in shared calls: 27 on moto (one call per volume and poll would be
    // over 60). The polls vary with how fast the steps finish on a loaded machine (29 to 35
    // seen): up to 40 allowed.
    assert!(made <= 40, "the restore made {made} EC2 calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_team_lock_is_taken_with_a_conditional_put_renewed_released_and_breakable() {
    let env = env(
        43,
        &[(
            "restores:\n",
            "lock: s3://asdr-locks/prod-east.lock\n\nrestores:\n",
        )],
    )
    .await;
    let s3 = env.moto.s3();
    s3.create_bucket()
        .bucket("asdr-locks")
        .send()
        .await
        .unwrap();
    // Someone else's apply holds it.
    s3.put_object()
        .bucket("asdr-locks")
        .key("prod-east.lock")
        .body(b"{\"pid\":4242,\"host\":\"ops-laptop\"}".to_vec().into())
        .send()
        .await
        .unwrap();
    let refused = env.asdr(&["apply", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("another apply holds the lock s3://asdr-locks/prod-east.lock")
            && stderr.contains("ops-laptop"),
        "{stderr}"
    );
    assert!(env.snapshots().await.is_empty(), "nothing was applied");
    let broke = env.ok(&["apply", "--break-lock"]);
    assert!(
        broke.contains("Broke the lock s3://asdr-locks/prod-east.lock held by {\"pid\":4242"),
        "{broke}"
    );
    // An apply renews its lease while it runs: the lock object is rewritten, version after
    // version, only by a conditional put on the version it wrote last. (Every 250 ms: at 100 ms
    // a loaded machine's moto can miss the four renewals a lease outlasts.)
    let mut apply = env
        .command(&["apply", "--yes", "-q"])
        .env("ASDR_LOCK_RENEW_MS", "250")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock_version = || async {
        s3.get_object()
            .bucket("asdr-locks")
            .key("prod-east.lock")
            .send()
            .await
            .ok()
            .and_then(|o| o.e_tag().map(str::to_string))
    };
    let mut versions = std::collections::BTreeSet::new();
    while apply.try_wait().unwrap().is_none() {
        if let Some(v) = lock_version().await {
            versions.insert(v);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = apply.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        versions.len() >= 2,
        "the lease was renewed while the apply ran: {versions:?}"
    );
    assert_eq!(env.snapshots().await.len(), 9);
    assert!(
        lock_version().await.is_none(),
        "released at the end of the apply"
    );
    // A lock nobody renews is stale after five renewal periods: reported with its age, never
    // broken silently ...
    let dead = || {
        s3.put_object()
            .bucket("asdr-locks")
            .key("prod-east.lock")
            .body(b"{\"pid\":4343,\"host\":\"gone\"}".to_vec().into())
            .send()
    };
    dead().await.unwrap();
    // S3's times (the read's Date, the object's LastModified) are in whole seconds.
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let stale = env
        .command(&["apply", "--yes"])
        .env("ASDR_LOCK_RENEW_MS", "100")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&stale.stderr);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stderr.contains("is stale")
            && stderr.contains("has not renewed it for")
            && stderr.contains("4343"),
        "{stderr}"
    );
    // ... unless the policy sets an expiry it is past.
    let policy = env.dir.path().join("asdr.yaml");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("{text}\nlock_expiry: 1s\n")).unwrap();
    let taken = env
        .command(&["apply", "--yes", "-q"])
        .env("ASDR_LOCK_RENEW_MS", "100")
        .output()
        .unwrap();
    assert!(
        taken.status.success(),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    assert!(lock_version().await.is_none(), "released at the end");
}

/// The prod-east policy with drill `q1`: the full-cluster restore replayed at 127.0.x.(base+10…),
/// in the documented configuration — every node's work directory, config path and service
/// commands keyed on `{{ node }}`, all nodes on this one host — so a stand-in that rendered with a
/// production name would write over production's files. Production a1 holds the real SMD files;
/// the drill's stand-in nodes run as a second in-test cluster (up from the start: `start_node`
/// adopts them), in the drill's own security group.
pub(crate) async fn drill_env(base: u8, objects: u64) -> (Env, TestCluster) {
    let env = env(base, &[]).await;
    let d = base + 10;
    let vpc = env
        .ec2
        .describe_subnets()
        .subnet_ids(&env.subnets["us-east-1a"])
        .send()
        .await
        .unwrap()
        .subnets()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let sg = env
        .ec2
        .create_security_group()
        .group_name("q1-drill")
        .description("the drill's own: no rule reaches production")
        .vpc_id(vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let policy = env.dir.path().join("asdr.yaml");
    let mut text = std::fs::read_to_string(&policy).unwrap();
    let drill = format!(
        "    scope: cluster\n    source: latest-backup\n\ndrills:\n  - name: q1\n    restore: full-cluster\n    target:\n      subnets: {{us-east-1a: {}, us-east-1b: {}}}\n      private_ips: {{a1: 127.0.1.{d}, b1: 127.0.2.{d}, a2: 127.0.1.{}}}\n      security_groups: [{sg}]\n    validations:\n      min_objects: {{users: 100}}\n      smd: [sindex, udf]\n    deadline: 30m\n    teardown: always\n",
        env.subnets["us-east-1a"],
        env.subnets["us-east-1b"],
        d + 1
    );
    let from = "    scope: cluster\n    source: latest-backup\n";
    assert!(text.contains(from));
    text = text.replacen(from, &drill, 1);
    std::fs::write(&policy, text).unwrap();
    for node in env.layout.keys() {
        std::fs::create_dir_all(env.dir.path().join(format!("nodes/{node}/smd"))).unwrap();
    }
    let vectors = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/vectors/smd-ce-8.1");
    for f in ["UDF.smd", "sindex.smd", "truncate.smd"] {
        std::fs::copy(
            vectors.join(f),
            env.dir.path().join(format!("nodes/a1/smd/{f}")),
        )
        .unwrap();
    }
    let stand_ins = [
        ("a1@q1", format!("127.0.1.{d}")),
        ("b1@q1", format!("127.0.2.{d}")),
        ("a2@q1", format!("127.0.1.{}", d + 1)),
    ];
    let addrs: Vec<(&str, &str)> = stand_ins.iter().map(|(n, ip)| (*n, ip.as_str())).collect();
    let namespaces = example_namespaces_at(&env.dir.path().display().to_string());
    let drill_nodes = TestCluster::start_at(
        &addrs,
        namespaces,
        true,
        &env.dir.path().join("drill-control"),
        Some(env.nodes.port()),
    )
    .await
    .unwrap();
    assert_eq!(
        drill_nodes.port(),
        env.nodes.port(),
        "the drill nodes answer on the policy's info port"
    );
    for (n, _) in &stand_ins {
        // The stand-in's own work directory, as `{{ node }}` renders for it.
        drill_nodes.set_smd_dir(n, &env.dir.path().join(format!("nodes/{n}/smd")));
    }
    drill_nodes.set_objects("users", objects);
    (env, drill_nodes)
}

impl Env {
    async fn tagged_for_drill(&self) -> (usize, usize) {
        let f = |n: &str, v: &str| Filter::builder().name(n).values(v).build();
        let inst = self
            .ec2
            .describe_instances()
            .filters(f("tag:asdr:drill", "q1"))
            .filters(
                Filter::builder()
                    .name("instance-state-name")
                    .values("pending")
                    .values("running")
                    .values("stopping")
                    .values("stopped")
                    .values("shutting-down")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let vols = self
            .ec2
            .describe_volumes()
            .filters(f("tag:asdr:drill", "q1"))
            .send()
            .await
            .unwrap();
        (
            inst.reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum(),
            vols.volumes().len(),
        )
    }

    async fn counts(&self) -> (usize, usize, usize) {
        let inst = self.ec2.describe_instances().send().await.unwrap();
        let vols = self.ec2.describe_volumes().send().await.unwrap();
        (
            inst.reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum(),
            vols.volumes().len(),
            self.snapshots().await.len(),
        )
    }

    fn report(&self) -> serde_json::Value {
        let dir = self.dir.path().join(".asdr/drills");
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "json"))
            .expect("a JSON report");
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_check_against_moto_allows_every_mutation_and_creates_nothing() {
    let (env, _drill_nodes) = drill_env(49, 150).await;
    env.ok(&["apply", "--yes"]);
    let before = env.counts().await;
    let out = env.ok(&["drill", "q1", "--check"]);
    assert_eq!(env.counts().await, before, "a check creates nothing");
    let allowed = out
        .lines()
        .filter(|l| l.trim_start().starts_with("allowed"))
        .count();
    // Attaches of volumes and instances the drill has yet to make are not asked: the policy
    // allows them by the tags they will carry, which no stand-in id has.
    assert_eq!(allowed, 3 + 9, "RunInstances ×3, CreateVolume ×9:\n{out}");
    assert!(!out.contains("ec2:AttachVolume"), "{out}");
    assert!(
        out.contains("all completed") && out.contains("readable") && out.contains("Check passed."),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_drill_against_moto_restores_validates_tears_down_and_reports_every_step() {
    let (env, drill_nodes) = drill_env(52, 150).await;
    env.ok(&["apply", "--yes"]);
    let production = env.counts().await;
    let files = |dir: &str| -> BTreeMap<String, Vec<u8>> {
        let path = env.dir.path().join(dir);
        std::fs::read_dir(&path)
            .map(|rd| {
                rd.map(|e| e.unwrap())
                    .filter(|e| e.file_type().unwrap().is_file())
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().to_string(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let production_files: Vec<_> = ["a1", "b1", "a2"]
        .iter()
        .flat_map(|n| {
            [
                files(&format!("nodes/{n}")),
                files(&format!("nodes/{n}/smd")),
            ]
        })
        .collect();
    let out = env.ok(&["drill", "q1", "--yes"]);
    assert!(out.contains("Drill `q1` passed"), "{out}");
    assert_eq!(
        env.tagged_for_drill().await,
        (0, 0),
        "nothing tagged for the drill remains"
    );
    let report = env.report();
    assert_eq!(report["passed"], true);
    assert!(report["restore_seconds"].as_f64().unwrap() > 0.0);
    let steps = report["steps"].as_array().unwrap();
    assert!(
        steps.len() > 3 * 7,
        "every step of three nodes and the cluster wait"
    );
    assert!(
        steps.iter().all(
            |s| s["seconds"].is_number() && s["outcome"] == "done" || s["outcome"] == "adopted"
        ),
        "{steps:?}"
    );
    let validations = report["validations"].as_array().unwrap();
    assert_eq!(
        validations.len(),
        4,
        "stable size, users objects, sindex, udf"
    );
    assert!(
        validations.iter().all(|v| v["ok"] == true),
        "{validations:?}"
    );
    assert!(
        report["notes"].to_string().contains("R6"),
        "the report says deleted records may come back"
    );
    // Production was not touched.
    let (pi, pv, _) = production;
    let (ni, nv, _) = env.counts().await;
    assert_eq!(
        (ni - 3, nv),
        (pi, pv),
        "only the drill's instances, now terminated, are added; its volumes are gone"
    );
    for n in ["a1", "b1", "a2"] {
        assert!(env.nodes.is_up(n));
    }
    // Defect 5: production's aerospike.conf and SMD are byte for byte as they were; the drill
    // wrote its stand-ins' own.
    let after: Vec<_> = ["a1", "b1", "a2"]
        .iter()
        .flat_map(|n| {
            [
                files(&format!("nodes/{n}")),
                files(&format!("nodes/{n}/smd")),
            ]
        })
        .collect();
    assert_eq!(
        after, production_files,
        "the drill wrote nothing of production's"
    );
    let conf = std::fs::read_to_string(env.dir.path().join("nodes/a1@q1/aerospike.conf")).unwrap();
    assert!(conf.contains("cluster-name prod-east-q1"), "{conf}");
    for (ip, _, _) in env.layout.values() {
        assert!(
            !conf.contains(&format!("{ip} ")),
            "production address {ip} in the drill's config"
        );
    }
    assert_eq!(
        files("nodes/a1@q1/smd").len(),
        3,
        "the stand-in's own SMD directory"
    );
    assert!(
        drill_nodes
            .log()
            .iter()
            .any(|(_, c)| c.starts_with("sindex-list"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_still_tears_down_and_exits_1_naming_it() {
    let (env, _drill_nodes) = drill_env(55, 10).await;
    env.ok(&["apply", "--yes"]);
    // A volume of an instance just terminated stays attached a while: EC2 answers DeleteVolume
    // VolumeInUse until it is released. The teardown waits it out instead of failing.
    env.moto
        .strict("refuse?action=DeleteVolume&code=VolumeInUse&count=6");
    let out = env.asdr(&["drill", "q1", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(env.tagged_for_drill().await, (0, 0), "teardown: always");
    assert_eq!(
        env.moto
            .refused()
            .iter()
            .filter(|r| r.contains("VolumeInUse"))
            .count(),
        6,
        "the teardown met VolumeInUse and waited it out"
    );
    let report = env.report();
    assert_eq!(report["passed"], false);
    let failed: Vec<&serde_json::Value> = report["validations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0]["name"],
        "namespace users holds at least 100 objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_drill_is_cleaned_up_by_teardown_only() {
    let (env, _drill_nodes) = drill_env(58, 150).await;
    env.ok(&["apply", "--yes"]);
    // Killed in the middle of the restore.
    let mut c = Command::cargo_bin("asdr").unwrap();
    c.current_dir(env.dir.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("ASDR_POLL_INTERVAL_MS", "20")
        .env("ASDR_TEST_KILL_AT", "20")
        .stdin(Stdio::null())
        .args([
            "-f",
            "asdr.yaml",
            "--endpoint-url",
            &env.moto.endpoint,
            "--region",
            "us-east-1",
            "drill",
            "q1",
            "--yes",
            "-q",
        ]);
    let killed = c.output().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(killed.status.signal(), Some(9));
    let (i, v) = env.tagged_for_drill().await;
    assert!(i + v > 0, "the killed drill left resources");
    env.ok(&["apply", "--break-lock"]);
    let out = env.ok(&["drill", "q1", "--teardown-only"]);
    assert!(out.contains("0 resource(s) it made remain"), "{out}");
    assert_eq!(env.tagged_for_drill().await, (0, 0));
}

/// A proxy in front of moto that refuses DryRun CreateVolume with UnauthorizedOperation (moto
/// allows everything) and forwards every other request.
async fn refusing_proxy(moto: &str) -> String {
    proxy(moto, |_head, body| {
        (body.contains("Action=CreateVolume") && body.contains("DryRun=true")).then(|| {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>proxy</RequestID></Response>";
            format!("HTTP/1.1 403 Forbidden\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}", xml.len()).into_bytes()
        })
    })
    .await
}

/// A proxy in front of moto: `answer` may answer a request itself (from its lower-cased head and
/// its body); every other request goes to moto.
pub(crate) async fn proxy(
    moto: &str,
    answer: impl Fn(&str, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = std::sync::Arc::new(answer);
    let upstream = moto.trim_start_matches("http://").to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                // The request: headers, then Content-Length bytes of body.
                let (head_end, len) = loop {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = client.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                let response = match answer(&head, &body) {
                    Some(own) => own,
                    None => {
                        let mut up = tokio::net::TcpStream::connect(&upstream).await.unwrap();
                        up.write_all(&buf).await.unwrap();
                        let mut out = Vec::new();
                        let _ = up.read_to_end(&mut out).await;
                        out
                    }
                };
                let _ = client.write_all(&response).await;
                let _ = client.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_check_exits_1_naming_the_step_and_action_ec2_refuses() {
    let (env, _drill_nodes) = drill_env(61, 150).await;
    env.ok(&["apply", "--yes"]);
    let proxy = refusing_proxy(&env.moto.endpoint).await;
    let mut c = Command::cargo_bin("asdr").unwrap();
    c.current_dir(env.dir.path())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .args([
            "-f",
            "asdr.yaml",
            "--endpoint-url",
            &proxy,
            "--region",
            "us-east-1",
            "drill",
            "q1",
            "--check",
        ]);
    let before = env.counts().await;
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("denied"))
        .collect();
    assert_eq!(denied.len(), 9, "{stdout}");
    assert!(
        denied.iter().all(|l| l.contains("ec2:CreateVolume")
            && l.contains("create_volume:")
            && l.contains("not authorized")),
        "{denied:?}"
    );
    assert!(stdout.contains("Check FAILED."));
    assert_eq!(env.counts().await, before, "nothing created");
}
