//! `cargo bench -p asdr --bench apply_ec2`: asdr against moto at scale, beside the bare API calls
//! the same work needs, measured in the same run on the same moto server.
//!
//! 1. A backup of 64 nodes × 2 EBS volumes (multi-volume, SMD to a file store, the nodes
//!    answering the info protocol on 127.0.5.x / 127.0.6.x): `asdr apply` wall time and EC2 calls
//!    by API, against 64 CreateSnapshots made directly (10 at a time, as asdr's default
//!    parallelism, and one after another). Targets: ≤ 80 EC2 calls, ≤ 2× the bare calls' time.
//! 2. `asdr plan` and a no-op `asdr apply` on the backed-up cluster: the no-op apply observes once
//!    and should take no longer than the plan.
//! 3. A full-cluster restore of the whole cluster lost (every instance terminated, every node
//!    down): volumes from the set, 64 instances provisioned at their addresses, volumes attached,
//!    configuration written, SMD restored, nodes started, the cluster waited stable; against
//!    RunInstances, CreateVolume and AttachVolume made directly.
//!
//! asdr runs with its defaults (parallelism 10, 5 s polls); the bench sets nothing but the
//! endpoint and test credentials.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asdr_planner::testkit::ExamplePolicy;
use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces};
use asdr_providers::testkit_moto::{Moto, SeedNode, seed_node, tag_spec as spec};
use aws_sdk_ec2::types::{Filter, InstanceSpecification, ResourceType, Tag, VolumeType};

const NODES: usize = 64;
const DEVICES: [&str; 2] = ["/dev/sdf", "/dev/sdg"];
/// asdr's default parallelism, for the bare calls made "as asdr would".
const AT_ONCE: usize = 10;

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| v.to_string()).collect()))
        .build()
}

/// A node: name, private IP, zone.
type Node = (String, String, &'static str);

struct Bench {
    moto: Moto,
    ec2: aws_sdk_ec2::Client,
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    subnets: BTreeMap<String, String>,
    /// node → instance id, as seeded.
    instances: BTreeMap<String, String>,
    /// The nodes answer for as long as the bench runs.
    _cluster: TestCluster,
}

impl Bench {
    /// `asdr` against this moto, in this bench's folder; its wall time and output.
    fn asdr(&self, args: &[&str]) -> (Duration, Output) {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_asdr"))
            .current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("ASDR_POLL_INTERVAL_MS")
            .stdin(Stdio::null())
            .args(["-f", "asdr.yaml", "--endpoint-url", &self.moto.endpoint])
            .args(["--region", "us-east-1"])
            .args(args)
            .output()
            .unwrap();
        let took = t.elapsed();
        assert!(
            out.status.success(),
            "asdr {args:?} exited {:?}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (took, out)
    }

    /// Deletes what a bare run made (not timed).
    async fn delete(&self, snapshots: Vec<String>) {
        for id in snapshots {
            self.ec2
                .delete_snapshot()
                .snapshot_id(id)
                .send()
                .await
                .unwrap();
        }
    }

    fn control(&self) -> std::path::PathBuf {
        self.dir.path().join("control")
    }
}

/// What `-v` said about EC2: calls to observe, calls to apply and those by API.
#[derive(Debug, Default)]
struct Calls {
    observe: usize,
    apply: usize,
    by_api: BTreeMap<String, usize>,
}

impl Calls {
    fn of(stderr: &str) -> Calls {
        let mut c = Calls::default();
        for line in stderr.lines() {
            if let Some(rest) = line.strip_prefix("observed cluster ") {
                let n = rest
                    .split(" with ")
                    .nth(1)
                    .and_then(|r| r.split(' ').next());
                c.observe += n.and_then(|n| n.parse().ok()).unwrap_or(0);
            }
            if let Some(rest) = line.strip_prefix("made ") {
                let (n, apis) = rest.split_once(" EC2 API calls").expect("the -v line");
                c.apply = n.parse().expect("a count");
                let apis = apis.trim().trim_start_matches('(').trim_end_matches(')');
                for part in apis.split(", ").filter(|p| !p.is_empty()) {
                    let (api, n) = part.rsplit_once(' ').expect("`Api n`");
                    c.by_api
                        .insert(api.to_string(), n.parse().expect("a count"));
                }
            }
        }
        c
    }

    fn total(&self) -> usize {
        self.observe + self.apply
    }

    fn apis(&self) -> String {
        self.by_api
            .iter()
            .map(|(a, n)| format!("{a} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

async fn seed() -> Bench {
    let moto = Moto::start();
    let ec2 = moto.ec2();
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
    for (az, cidr) in [
        ("us-east-1a", "127.0.5.0/24"),
        ("us-east-1b", "127.0.6.0/24"),
    ] {
        let s = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .unwrap()
            .subnet
            .unwrap()
            .subnet_id
            .unwrap();
        subnets.insert(az.to_string(), s);
    }
    let nodes: Vec<Node> = (0..NODES)
        .map(|i| {
            let (az, third) = if i % 2 == 0 {
                ("us-east-1a", 5)
            } else {
                ("us-east-1b", 6)
            };
            (format!("n{i}"), format!("127.0.{third}.{}", 10 + i / 2), az)
        })
        .collect();
    let mut instances = BTreeMap::new();
    for (node, ip, az) in &nodes {
        let seeded = SeedNode {
            at: Some((&subnets[*az], ip)),
            az,
            tagged: Some(("big", node)),
        };
        let (id, _) = seed_node(&ec2, seeded, &DEVICES).await;
        instances.insert(node.clone(), id);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    // The example policy on these 64 nodes, its `users` namespace alone (two EBS shadows).
    // The nodes' devices are a lab tree under the bench's folder (`lab_devices`), which the
    // start's device check (R5) reads: the guests are Xen's, each EBS volume at its attachment's
    // name (`xvdf` for `/dev/sdf`), the instance-store drives NVMe. (The Nitro emulator of the
    // tests would describe every instance and volume of moto several times a second: a load
    // that slowed the bare calls below sixfold, where a real guest's udev costs EC2 nothing.)
    let lab = |name: &str| format!("{root}/nodes/{{node}}/dev/{name}");
    let mut policy = ExamplePolicy::prod_east();
    let events = policy.text.find("    - name: events\n").expect("events");
    let instance = policy.text.find("  instance:").expect("instance");
    policy.text.replace_range(events..instance, "");
    let cut = policy.text.find("\nrestores:").expect("restores");
    policy.text.truncate(cut + 1);
    policy.text.push_str(
        "restores:\n  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n",
    );
    let listed: String = nodes
        .iter()
        .map(|(n, ip, az)| {
            format!("    - {{name: {n}, private_ip: {ip}, availability_zone: {az}}}\n")
        })
        .collect();
    let example_nodes = "    - name: a1\n      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n    - name: b1\n      private_ip: 10.0.2.11\n      availability_zone: us-east-1b\n    - name: a2\n      private_ip: 10.0.1.12\n      availability_zone: us-east-1a\n";
    let mut namespaces: Vec<_> = example_namespaces()
        .into_iter()
        .filter(|n| n.name == "users")
        .collect();
    namespaces[0].devices = vec![
        (lab("nvme1n1"), Some(lab("xvdf"))),
        (lab("nvme2n1"), Some(lab("xvdg"))),
    ];
    let in_policy = |name: &str| lab(name).replace("{node}", "{{ node }}");
    let addrs: Vec<(&str, &str)> = nodes
        .iter()
        .map(|(n, ip, _)| (n.as_str(), ip.as_str()))
        .collect();
    let cluster = TestCluster::start(&addrs, namespaces, true, &dir.path().join("control"))
        .await
        .unwrap();
    policy
        .edits(&[
            (example_nodes, listed.as_str()),
            ("name: prod-east", "name: big"),
            ("device: /dev/nvme1n1 ", &format!("device: {} ", in_policy("nvme1n1"))),
            ("shadow: /dev/nvme3n1 ", &format!("shadow: {} ", in_policy("xvdf"))),
            ("device: /dev/nvme2n1\n", &format!("device: {}\n", in_policy("nvme2n1"))),
            ("shadow: /dev/nvme4n1\n", &format!("shadow: {}\n", in_policy("xvdg"))),
            ("info_port: 3000", &format!("info_port: {}", cluster.port())),
            ("transport: ssm", "transport: local"),
            (
                "work_directory: /opt/aerospike",
                &format!("work_directory: {root}/nodes/{{{{ node }}}}"),
            ),
            (
                "stop: systemctl stop aerospike",
                &format!("stop: touch {root}/control/{{{{ node }}}}.down"),
            ),
            (
                "start: systemctl start aerospike",
                &format!("start: rm -f {root}/control/{{{{ node }}}}.down"),
            ),
            (
                "cold_start: asd-coldstart",
                &format!(
                    "cold_start: touch {root}/control/{{{{ node }}}}.cold && rm -f {root}/control/{{{{ node }}}}.down"
                ),
            ),
            (
                "path: /etc/aerospike/aerospike.conf",
                &format!("path: {root}/nodes/{{{{ node }}}}/aerospike.conf"),
            ),
            (
                "smd: {to: s3://acme-backups/asdr/prod-east/smd}",
                &format!("smd: {{to: file://{root}/store}}"),
            ),
            ("subnet-0aaa", subnets["us-east-1a"].as_str()),
            ("subnet-0bbb", subnets["us-east-1b"].as_str()),
            ("security_groups: [sg-0123]", "security_groups: []"),
            ("    iam_instance_profile: aerospike-node\n", ""),
            ("    key_name: ops\n", ""),
            ("type: i4i.2xlarge", "type: i4i.8xlarge"),
        ])
        .write_to(dir.path());
    for (n, _, _) in &nodes {
        lab_devices(&dir.path().join(format!("nodes/{n}/dev")));
        std::fs::create_dir_all(dir.path().join(format!("nodes/{n}/smd"))).unwrap();
        std::fs::write(dir.path().join(format!("nodes/{n}/smd/security.smd")), n).unwrap();
    }
    Bench {
        moto,
        ec2,
        dir,
        nodes,
        subnets,
        instances,
        _cluster: cluster,
    }
}

/// A Xen guest's devices: the two EBS volumes at their attachment names, the two instance-store
/// drives as NVMe with their serial links.
fn lab_devices(dev: &std::path::Path) {
    std::fs::create_dir_all(dev.join("disk/by-id")).unwrap();
    for name in ["xvdf", "xvdg", "nvme1n1", "nvme2n1"] {
        std::fs::write(dev.join(name), name).unwrap();
    }
    for n in [1, 2] {
        std::os::unix::fs::symlink(
            format!("../../nvme{n}n1"),
            dev.join(format!(
                "disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS{n}"
            )),
        )
        .unwrap();
    }
}

/// Runs `calls` futures at most `at_once` at a time; the wall time.
async fn bare<F, Fut>(n: usize, at_once: usize, call: F) -> Duration
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let t = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.unwrap();
        let fut = call(i);
        tasks.spawn(async move {
            fut.await;
            drop(permit);
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    t.elapsed()
}

/// 64 CreateSnapshots, `at_once` at a time; the snapshots made and the time.
async fn bare_snapshots(b: &Bench, at_once: usize) -> (Vec<String>, Duration) {
    let ids: Vec<String> = b.instances.values().cloned().collect();
    let ec2 = b.ec2.clone();
    let made: Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let out = made.clone();
    let took = bare(ids.len(), at_once, move |i| {
        let (ec2, id, out) = (ec2.clone(), ids[i].clone(), out.clone());
        async move {
            let r = ec2
                .create_snapshots()
                .instance_specification(
                    InstanceSpecification::builder()
                        .instance_id(id)
                        .exclude_boot_volume(true)
                        .build(),
                )
                .tag_specifications(spec(ResourceType::Snapshot, &[("bench", "bare")]))
                .send()
                .await
                .unwrap();
            out.lock().unwrap().extend(
                r.snapshots()
                    .iter()
                    .filter_map(|s| s.snapshot_id().map(str::to_string)),
            );
        }
    })
    .await;
    let made = made.lock().unwrap().clone();
    (made, took)
}

/// The calls a backup of this cluster needs, made directly, as concurrently as asdr makes them:
/// the observation's describes (two rounds), the 64 CreateSnapshots 10 at a time, a CreateTags
/// per device and one for the set, the set described once.
async fn bare_backup_calls(b: &Bench) -> (Vec<String>, Duration) {
    let t = Instant::now();
    let ips: Vec<&str> = b.nodes.iter().map(|(_, ip, _)| ip.as_str()).collect();
    let cluster = ["big"];
    let (i1, i2, v1, s1) = tokio::join!(
        b.ec2
            .describe_instances()
            .filters(filter("private-ip-address", &ips))
            .send(),
        b.ec2
            .describe_instances()
            .filters(filter("tag:asdr:cluster", &cluster))
            .send(),
        b.ec2
            .describe_volumes()
            .filters(filter("tag:asdr:cluster", &cluster))
            .send(),
        b.ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(filter("tag:asdr:cluster", &cluster))
            .send(),
    );
    let (_, _, _, _) = (i1.unwrap(), i2.unwrap(), v1.unwrap(), s1.unwrap());
    let ids: Vec<&str> = b.instances.values().map(String::as_str).collect();
    let subnets: Vec<&str> = b.subnets.values().map(String::as_str).collect();
    let (v2, types, subs) = tokio::join!(
        b.ec2
            .describe_volumes()
            .filters(filter("attachment.instance-id", &ids))
            .send(),
        b.ec2
            .describe_instance_types()
            .instance_types(aws_sdk_ec2::types::InstanceType::I4i8xlarge)
            .send(),
        b.ec2
            .describe_subnets()
            .filters(filter("subnet-id", &subnets))
            .send(),
    );
    let (_, _, _) = (v2.unwrap(), types.unwrap(), subs.unwrap());
    let (made, _) = bare_snapshots(b, AT_ONCE).await;
    let half = made.len() / 2;
    for (key, chunk) in [("d", &made[..half]), ("d", &made[half..]), ("c", &made[..])] {
        b.ec2
            .create_tags()
            .set_resources(Some(chunk.to_vec()))
            .tags(
                Tag::builder()
                    .key(format!("bench-{key}"))
                    .value("1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    b.ec2
        .describe_snapshots()
        .owner_ids("self")
        .filters(filter("tag:bench", &["bare"]))
        .send()
        .await
        .unwrap();
    (made, t.elapsed())
}

/// The mutating calls of a full-cluster restore, made directly: per node a RunInstances, per
/// volume a CreateVolume from the set's snapshot and an AttachVolume.
async fn bare_restore(b: &Bench, snapshots: &[(String, String, String)]) -> Duration {
    let t = Instant::now();
    let ec2 = b.ec2.clone();
    let nodes = b.nodes.clone();
    let subnets = b.subnets.clone();
    let made: Arc<tokio::sync::Mutex<BTreeMap<String, String>>> = Default::default();
    let out = made.clone();
    bare(nodes.len(), AT_ONCE, move |i| {
        let (ec2, subnet, node) = (ec2.clone(), subnets[nodes[i].2].clone(), nodes[i].0.clone());
        let out = out.clone();
        async move {
            let id = ec2
                .run_instances()
                .image_id("ami-0123456789abcdef0")
                .instance_type(aws_sdk_ec2::types::InstanceType::I4i8xlarge)
                .min_count(1)
                .max_count(1)
                .subnet_id(subnet)
                .send()
                .await
                .unwrap()
                .instances()[0]
                .instance_id()
                .unwrap()
                .to_string();
            out.lock().await.insert(node, id);
        }
    })
    .await;
    let instances = made.lock().await.clone();
    let zones: BTreeMap<String, &str> = b.nodes.iter().map(|(n, _, az)| (n.clone(), *az)).collect();
    let work: Vec<(String, String, String, String)> = snapshots
        .iter()
        .map(|(node, dev, snap)| {
            (
                instances[node].clone(),
                zones[node].to_string(),
                dev.clone(),
                snap.clone(),
            )
        })
        .collect();
    let ec2 = b.ec2.clone();
    bare(work.len(), AT_ONCE, move |i| {
        let ec2 = ec2.clone();
        let (instance, az, dev, snap) = work[i].clone();
        async move {
            let vol = ec2
                .create_volume()
                .availability_zone(az)
                .snapshot_id(snap)
                .volume_type(VolumeType::Gp3)
                .send()
                .await
                .unwrap()
                .volume_id
                .unwrap();
            ec2.attach_volume()
                .volume_id(vol)
                .instance_id(instance)
                .device(dev)
                .send()
                .await
                .unwrap();
        }
    })
    .await;
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let seeding = Instant::now();
    let b = seed().await;
    println!(
        "seeded moto with {NODES} instances × {} volumes and {NODES} test nodes in {}",
        DEVICES.len(),
        secs(seeding.elapsed())
    );

    // 1. The backup: the bare calls first, their snapshots deleted, so both meet the same moto.
    let (made, bare_all) = bare_backup_calls(&b).await;
    b.delete(made).await;
    let (took, out) = b.asdr(&["apply", "--yes", "-q", "-v"]);
    let calls = Calls::of(&String::from_utf8_lossy(&out.stderr));
    assert!(calls.apply > 0, "the backup made EC2 calls");
    let snaps = b
        .ec2
        .describe_snapshots()
        .filters(filter("tag:asdr:cluster", &["big"]))
        .send()
        .await
        .unwrap();
    let set: Vec<(String, String, String)> = snaps
        .snapshots()
        .iter()
        .map(|s| {
            let tag = |k: &str| {
                s.tags()
                    .iter()
                    .find(|t| t.key() == Some(k))
                    .and_then(|t| t.value())
                    .unwrap_or_default()
                    .to_string()
            };
            assert_eq!(tag("asdr:complete"), "true", "the set is marked complete");
            (
                tag("asdr:node"),
                tag("asdr:device"),
                s.snapshot_id().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(set.len(), NODES * DEVICES.len());
    let (made, bare_10) = bare_snapshots(&b, AT_ONCE).await;
    b.delete(made).await;
    let (made, bare_1) = bare_snapshots(&b, 1).await;
    b.delete(made).await;
    println!(
        "\nbackup, {NODES} nodes × {} volumes (multi-volume):",
        DEVICES.len()
    );
    println!(
        "  asdr apply: {} wall, {} EC2 calls ({} to observe, {} to apply: {}) — target ≤ 80",
        secs(took),
        calls.total(),
        calls.observe,
        calls.apply,
        calls.apis()
    );
    println!(
        "  bare: 64 CreateSnapshots {AT_ONCE} at a time {}, one at a time {}",
        secs(bare_10),
        secs(bare_1),
    );
    println!(
        "  bare: the same {} calls (observation's describes, 64 CreateSnapshots {AT_ONCE} at a time, tags, the set described) {}; asdr / bare = {:.1}× — target ≤ 2×",
        7 + 64 + 4,
        secs(bare_all),
        took.as_secs_f64() / bare_all.as_secs_f64()
    );

    // 2. Plan and a no-op apply.
    let mut plans = Vec::new();
    let mut noops = Vec::new();
    let mut noop_calls = 0;
    for _ in 0..3 {
        plans.push(b.asdr(&["plan", "-q"]).0);
        let (t, out) = b.asdr(&["apply", "--yes", "-v"]);
        let calls = Calls::of(&String::from_utf8_lossy(&out.stderr));
        assert_eq!(calls.apply, 0, "a no-op apply acts on nothing");
        noop_calls = calls.observe;
        noops.push(t);
    }
    println!(
        "\nplan {} (median of 3), no-op apply {} with {noop_calls} EC2 calls (median of 3)",
        secs(median(plans)),
        secs(median(noops))
    );

    // 3. The whole cluster lost, restored from the set.
    if std::env::var_os("ASDR_BENCH_KEEP").is_some() {
        println!("(the bench's folder: {})", b.dir.path().display());
    }
    let ids: Vec<String> = b.instances.values().cloned().collect();
    b.ec2
        .terminate_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .unwrap();
    for (n, _, _) in &b.nodes {
        std::fs::write(b.control().join(format!("{n}.down")), "").unwrap();
    }
    let (took, out) = b.asdr(&["apply", "--yes", "-q", "-v", "--restore", "full-cluster"]);
    let calls = Calls::of(&String::from_utf8_lossy(&out.stderr));
    let running = b
        .ec2
        .describe_instances()
        .filters(filter("tag:asdr:cluster", &["big"]))
        .filters(filter("instance-state-name", &["running"]))
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .map(|r| r.instances().len())
        .sum::<usize>();
    assert_eq!(running, NODES, "every node replaced");
    assert!(
        b.nodes
            .iter()
            .all(|(n, _, _)| !b.control().join(format!("{n}.down")).exists()),
        "every node started"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let phases = stdout
        .lines()
        .find(|l| l.starts_with("Restore time:"))
        .unwrap_or("Restore time: not reported")
        .to_string();
    let bare = bare_restore(&b, &set).await;
    println!(
        "\nfull-cluster restore, {NODES} nodes × {} volumes (whole cluster lost):",
        DEVICES.len()
    );
    println!(
        "  asdr apply: {} wall, {} EC2 calls ({} to observe, {} to apply: {})",
        secs(took),
        calls.total(),
        calls.observe,
        calls.apply,
        calls.apis()
    );
    println!("  {phases}");
    println!(
        "  bare: 64 RunInstances, then 128 CreateVolume + AttachVolume, {AT_ONCE} at a time: {}; asdr / bare = {:.1}×",
        secs(bare),
        took.as_secs_f64() / bare.as_secs_f64()
    );
    // ASDR_BENCH_KEEP: the folder (policy, journal) stays, to read where the time went.
    if std::env::var_os("ASDR_BENCH_KEEP").is_some() {
        let _ = b.dir.keep();
    }
}
