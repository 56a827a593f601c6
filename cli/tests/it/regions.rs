//! Copies of backup sets in another region against moto (it answers CopySnapshot across regions,
//! with tags): a backup with copies, a second apply creating nothing, a region that missed sets
//! caught up, retention per region.

use std::collections::BTreeSet;

use crate::ec2::{env, tag};

const WEST: &str = "us-west-2";

/// The instances in `ec2`'s region tagged `key=value`, whatever their state.
async fn tagged_instances(
    ec2: &aws_sdk_ec2::Client,
    key: &str,
    value: &str,
) -> Vec<aws_sdk_ec2::types::Instance> {
    ec2.describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name(format!("tag:{key}"))
                .values(value)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .flat_map(|r| r.instances().to_vec())
        .collect()
}

fn copies_edit(dir: &std::path::Path, extra: &str) -> (String, String) {
    (
        "  max_nodes_at_once: 1 ".to_string(),
        format!(
            "  copies:\n    - {{region: us-west-2, smd_to: file://{}/west{extra}}}\n  max_nodes_at_once: 1 ",
            dir.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_with_copies_against_moto_copies_the_set_to_the_other_region_and_a_second_apply_creates_nothing()
 {
    let env = env(81, &[]).await;
    let (from, to) = copies_edit(env.dir.path(), ", max_in_flight: 2");
    env.edit_policy(&from, &to);
    let plan = env.ok(&["plan"]);
    assert!(
        plan.contains("at most 2 snapshot copies in flight"),
        "the plan says the limit:\n{plan}"
    );
    let out = env.asdr(&["apply", "--yes", "-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let home = env.snapshots().await;
    let west = env.snapshots_in(WEST).await;
    assert_eq!(home.len(), 9);
    assert_eq!(west.len(), 9, "one copy per snapshot of the set");
    let sources: BTreeSet<&str> = home.iter().map(|s| s.snapshot_id().unwrap()).collect();
    let set = tag(&home[0], "asdr:set").unwrap();
    for c in &west {
        let src = tag(c, "asdr:source-snapshot").expect("the source tag");
        assert!(sources.contains(src), "copy of {src}");
        assert_eq!(tag(c, "asdr:source-region"), Some("us-east-1"));
        assert_eq!(tag(c, "asdr:set"), Some(set));
        assert_eq!(tag(c, "asdr:cluster"), Some("prod-east"));
        assert_eq!(
            tag(c, "asdr:complete"),
            Some("true"),
            "complete in us-west-2"
        );
        let source = home.iter().find(|s| s.snapshot_id() == Some(src)).unwrap();
        assert_eq!(tag(c, "asdr:node"), tag(source, "asdr:node"));
        assert_eq!(tag(c, "asdr:device"), tag(source, "asdr:device"));
    }
    // The SMD archive beside the copies, with its checksum.
    let copied = env
        .dir
        .path()
        .join(format!("west/prod-east/{set}/a1.smd.tar"));
    let original = env
        .dir
        .path()
        .join(format!("store/prod-east/{set}/a1.smd.tar"));
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(&original).unwrap()
    );
    assert!(copied.with_extension("tar.sha256").exists());
    assert!(stderr.contains("CopySnapshot 9"), "{stderr}");
    // Observation stays a handful of calls: the cluster's region's, and three for us-west-2.
    let observed = crate::ec2::counted(&stderr, "observed cluster prod-east with ");
    assert!(observed <= 8 + 3, "observation took {observed} calls");
    assert_eq!(
        env.asdr(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "plan again: nothing to do"
    );
    env.ok(&["apply", "--yes"]);
    assert_eq!(
        env.snapshots_in(WEST).await.len(),
        9,
        "a second apply creates nothing"
    );
    let status = env.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["regions"][WEST]["newest_complete_set"], set,
        "{status:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_gained_by_the_policy_is_caught_up_and_kept_by_its_own_retention_against_moto() {
    let env = env(84, &[("every: 24h", "every: 1s")]).await;
    // Two sets at home before the policy copies anywhere.
    env.ok(&["apply", "--yes"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["apply", "--yes"]);
    assert_eq!(env.snapshots().await.len(), 18);
    let (from, to) = copies_edit(env.dir.path(), ", retain: {count: 1}");
    env.edit_policy(&from, &to);
    env.edit_policy("every: 1s", "every: 24h");
    let plan = env.ok(&["plan"]);
    assert!(plan.contains("catching up"), "{plan}");
    env.ok(&["apply", "--yes"]);
    assert_eq!(env.snapshots().await.len(), 18, "no new set at home");
    let west = env.snapshots_in(WEST).await;
    let sets: BTreeSet<&str> = west.iter().filter_map(|s| tag(s, "asdr:set")).collect();
    assert_eq!(sets.len(), 1, "retain count 1 in us-west-2: {sets:?}");
    let home = env.snapshots().await;
    let newest = home
        .iter()
        .filter_map(|s| tag(s, "asdr:set"))
        .max()
        .unwrap();
    assert!(
        sets.contains(newest),
        "the newest set is the one kept there"
    );
    assert_eq!(west.len(), 9);
    // A new set is copied; the region's older copy stays as long as it is the region's newest
    // complete one (as at home), and goes by the region's own retention on the next run.
    env.edit_policy("every: 24h", "every: 1s");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["apply", "--yes"]);
    let west = env.snapshots_in(WEST).await;
    let sets_now: BTreeSet<&str> = west.iter().filter_map(|s| tag(s, "asdr:set")).collect();
    assert_eq!(sets_now.len(), 2, "{sets_now:?}");
    env.edit_policy("every: 1s", "every: 24h");
    env.ok(&["apply", "--yes"]);
    let west = env.snapshots_in(WEST).await;
    let sets_now: BTreeSet<&str> = west.iter().filter_map(|s| tag(s, "asdr:set")).collect();
    assert_eq!(sets_now.len(), 1, "{sets_now:?}");
    assert!(!sets_now.contains(newest), "the older copy went");
    assert_eq!(west.len(), 9);
    assert_eq!(
        env.snapshots().await.len(),
        27,
        "home keeps its own 3 (retain count 7)"
    );
}

/// The moto environment with us-west-2 ready for a restore there: its VPC, subnets (127.0.7.0/24,
/// 127.0.8.0/24) and security group, the policy copying there with a restore `dr-west` into it,
/// and the test nodes that answer at the restore's addresses (`<node>@<label>`).
async fn west_env(
    base: u8,
    label: &str,
    drill: bool,
) -> (
    crate::ec2::Env,
    aws_sdk_ec2::Client,
    asdr_providers::aerospike::testnode::TestCluster,
) {
    use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces};
    let env = env(base, &[]).await;
    // us-west-2: its own VPC, subnets and security group (moto keeps regions apart).
    let west = env.moto.ec2_in(WEST);
    let subnets = crate::ec2::seed_subnets(
        &west,
        &[
            ("us-west-2a", "127.0.7.0/24"),
            ("us-west-2b", "127.0.8.0/24"),
        ],
    )
    .await;
    let vpc = west
        .describe_subnets()
        .subnet_ids(&subnets["us-west-2a"])
        .send()
        .await
        .unwrap()
        .subnets()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let sg = west
        .create_security_group()
        .group_name("dr-west")
        .description("the DR cluster's")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    let (from, to) = copies_edit(env.dir.path(), "");
    env.edit_policy(&from, &to);
    let target = format!(
        "{{us-west-2a: {}, us-west-2b: {}}}",
        subnets["us-west-2a"], subnets["us-west-2b"]
    );
    let ips = |a: u8| {
        format!(
            "{{a1: 127.0.7.{a}, b1: 127.0.8.{a}, a2: 127.0.7.{}}}",
            a + 1
        )
    };
    env.edit_policy(
        "  - name: full-cluster\n",
        &format!(
            "  - name: dr-west\n    scope: cluster\n    source: latest-backup\n    region: us-west-2\n    target:\n      subnets: {target}\n      private_ips: {}\n      security_groups: [{sg}]\n      ami: ami-0123456789abcdef0\n  - name: full-cluster\n",
            ips(base)
        ),
    );
    let d = base + 10;
    if drill {
        let policy = env.dir.path().join("asdr.yaml");
        let mut text = std::fs::read_to_string(&policy).unwrap();
        text.push_str(&format!(
            "\ndrills:\n  - name: {label}\n    restore: dr-west\n    target:\n      subnets: {target}\n      private_ips: {}\n      security_groups: [{sg}]\n    validations:\n      min_objects: {{users: 100}}\n",
            ips(d)
        ));
        std::fs::write(&policy, text).unwrap();
    }
    let at = if drill { d } else { base };
    let a1 = format!("127.0.7.{at}");
    let b1 = format!("127.0.8.{at}");
    let a2 = format!("127.0.7.{}", at + 1);
    let names = [
        format!("a1@{label}"),
        format!("b1@{label}"),
        format!("a2@{label}"),
    ];
    let stand_ins = [
        (names[0].as_str(), a1.as_str()),
        (names[1].as_str(), b1.as_str()),
        (names[2].as_str(), a2.as_str()),
    ];
    let new_nodes = TestCluster::start_at(
        &stand_ins,
        example_namespaces(),
        true,
        &env.dir.path().join("west-control"),
        Some(env.nodes.port()),
    )
    .await
    .unwrap();
    for (n, _) in &stand_ins {
        let smd = env.dir.path().join(format!("nodes/{n}/smd"));
        std::fs::create_dir_all(&smd).unwrap();
        new_nodes.set_smd_dir(n, &smd);
    }
    new_nodes.set_objects("users", 150);
    (env, west, new_nodes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_into_the_other_region_against_moto_builds_the_cluster_there_from_the_copies() {
    let (env, west, _new_nodes) = west_env(87, "dr-west", false).await;
    env.ok(&["apply", "--yes"]);
    let east_before = env.snapshots().await.len();
    let plan = env.ok(&["plan", "--restore", "dr-west"]);
    assert!(plan.contains("us-west-2"), "{plan}");
    let out = env.asdr(&["apply", "--restore", "dr-west", "--yes", "-v"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let instances = tagged_instances(&west, "asdr:restore", "dr-west").await;
    let mut ips: Vec<&str> = instances
        .iter()
        .filter_map(|i| i.private_ip_address())
        .collect();
    ips.sort();
    assert_eq!(ips, ["127.0.7.87", "127.0.7.88", "127.0.8.87"]);
    let west_snaps: BTreeSet<String> = env
        .snapshots_in(WEST)
        .await
        .iter()
        .map(|s| s.snapshot_id().unwrap().to_string())
        .collect();
    let vols = west.describe_volumes().send().await.unwrap();
    let restored: Vec<_> = vols
        .volumes()
        .iter()
        .filter(|v| !v.attachments().is_empty() && v.snapshot_id().is_some_and(|s| !s.is_empty()))
        .collect();
    assert_eq!(restored.len(), 9, "every node's every device");
    for v in &restored {
        assert!(
            west_snaps.contains(v.snapshot_id().unwrap()),
            "made from a copy in us-west-2"
        );
    }
    // The cluster's own region is untouched: its three instances, its set.
    assert_eq!(env.snapshots().await.len(), east_before);
    // Configs name the new peers, never the source region's addresses.
    for n in ["a1", "b1", "a2"] {
        let conf = std::fs::read_to_string(
            env.dir
                .path()
                .join(format!("nodes/{n}@dr-west/aerospike.conf")),
        )
        .unwrap();
        assert!(conf.contains("127.0.8.87"), "{conf}");
        for home in ["127.0.1.87", "127.0.2.87", "127.0.1.88"] {
            assert!(!conf.contains(home), "{n}@dr-west names {home}");
        }
    }
    assert_eq!(
        env.asdr(&["plan", "--restore", "dr-west", "--detailed-exitcode"])
            .status
            .code(),
        Some(0),
        "the cluster stands: nothing more to do"
    );
}

/// The example policy with copies to us-west-2 and a restore `dr-west` there, and a world (file)
/// whose newest set has complete copies there, in a folder of their own.
fn dr_west_offline() -> (tempfile::TempDir, String, String) {
    use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
    let dir = tempfile::tempdir().unwrap();
    let policy = ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            "  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east, kms_key_id: alias/asdr-dr}\n  max_nodes_at_once: 1 ",
        )
        .edit(
            "  - name: full-cluster\n",
            "  - name: dr-west\n    scope: cluster\n    source: latest-backup\n    region: us-west-2\n    target:\n      subnets: {us-west-2a: subnet-w1, us-west-2b: subnet-w2}\n      ip_offset: 0\n      security_groups: [sg-west]\n      ami: ami-0west\n  - name: full-cluster\n",
        );
    let path = policy.write_to(dir.path());
    let parsed = policy.policy();
    let mut spec = WorldSpec::new(time::macros::datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(30);
    let mut world = world_for(&parsed, &spec);
    copy_sets(&mut world, &parsed, 0, 1, false);
    let world_path = dir.path().join("world.json");
    std::fs::write(&world_path, serde_json::to_string_pretty(&world).unwrap()).unwrap();
    (
        dir,
        path.display().to_string(),
        world_path.display().to_string(),
    )
}

use crate::cli::{actions_of as actions, iam_doc as iam_of, run as offline};

#[test]
fn iam_policy_covers_the_copies_with_their_kms_grants_and_a_restore_elsewhere_without_any_removal()
{
    let (_dir, policy, world) = dr_west_offline();
    let backup = iam_of(&["-f", &policy, "--world", &world, "iam-policy"]);
    let a = actions(&backup);
    for needed in [
        "ec2:CopySnapshot",
        "ec2:CreateSnapshots",
        "kms:CreateGrant",
        "kms:Decrypt",
        "kms:ReEncryptTo",
        "s3:PutObject",
    ] {
        assert!(a.contains(needed), "{needed} in {a:?}");
    }
    let stmts = backup["Statement"].as_array().unwrap();
    let grants = stmts
        .iter()
        .find(|s| s["Sid"] == "KmsGrantsForEbs")
        .unwrap();
    assert_eq!(
        grants["Condition"]["Bool"]["kms:GrantIsForAWSResource"],
        "true"
    );
    let via = grants["Condition"]["StringEquals"]["kms:ViaService"].to_string();
    assert!(
        via.contains("ec2.us-east-1.amazonaws.com") && via.contains("ec2.us-west-2.amazonaws.com"),
        "{via}"
    );
    let stores = stmts
        .iter()
        .find(|s| s["Sid"] == "CopiesSmdArchives")
        .unwrap();
    assert_eq!(
        stores["Resource"][0],
        "arn:aws:s3:::acme-dr-west/asdr/prod-east/*"
    );
    let copy_create = stmts
        .iter()
        .find(|s| s["Sid"] == "CreateTaggedForCluster")
        .unwrap();
    assert!(
        copy_create["Action"]
            .to_string()
            .contains("ec2:CopySnapshot")
    );

    let restore = actions(&iam_of(&[
        "-f",
        &policy,
        "--world",
        &world,
        "iam-policy",
        "--restore",
        "dr-west",
    ]));
    for needed in [
        "ec2:RunInstances",
        "ec2:CreateVolume",
        "ec2:AttachVolume",
        "kms:CreateGrant",
    ] {
        assert!(restore.contains(needed), "{needed} in {restore:?}");
    }
    for never in [
        "ec2:TerminateInstances",
        "ec2:DetachVolume",
        "ec2:StopInstances",
        "ec2:DeleteSnapshot",
        "ec2:CopySnapshot",
    ] {
        assert!(!restore.contains(never), "{never} in {restore:?}");
    }
}

#[test]
fn a_world_file_backup_with_copies_applies_and_then_plans_nothing() {
    let (_dir, policy, world) = dr_west_offline();
    let out = offline(&["-f", &policy, "--world", &world, "apply", "--yes"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let after: asdr_planner::World =
        serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    let set = asdr_planner::set_id(time::macros::datetime!(2026-11-21 09:00:00 UTC));
    let copies: Vec<_> = after
        .snapshots
        .iter()
        .filter(|s| s.region.as_deref() == Some(WEST) && s.tags.get("asdr:set") == Some(&set))
        .collect();
    assert_eq!(copies.len(), 9);
    assert!(
        copies
            .iter()
            .all(|c| c.tags.get("asdr:complete").map(String::as_str) == Some("true"))
    );
    assert!(
        after
            .smd_archives
            .iter()
            .any(|a| a.set == set && a.uri.starts_with("s3://acme-dr-west/"))
    );
    let again = offline(&[
        "-f",
        &policy,
        "--world",
        &world,
        "plan",
        "--detailed-exitcode",
    ]);
    assert_eq!(again.code, 0, "{}", again.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_check_of_a_region_failover_against_moto_dry_runs_every_mutation_in_that_region() {
    let (env, west, _new_nodes) = west_env(91, "failover", true).await;
    env.ok(&["apply", "--yes"]);
    let count = |west: aws_sdk_ec2::Client| async move {
        let i = west.describe_instances().send().await.unwrap();
        let v = west.describe_volumes().send().await.unwrap();
        (i.reservations().len(), v.volumes().len())
    };
    let before = count(west.clone()).await;
    let out = env.ok(&["drill", "failover", "--check"]);
    assert_eq!(count(west.clone()).await, before, "a check creates nothing");
    let allowed = out
        .lines()
        .filter(|l| l.trim_start().starts_with("allowed"))
        .count();
    assert_eq!(
        allowed,
        3 + 9,
        "RunInstances ×3, CreateVolume ×9 (attaches of what the drill has yet to make are not asked), in us-west-2:\n{out}"
    );
    assert!(out.contains("Check passed."), "{out}");
}

#[test]
fn status_reports_each_copy_region_and_says_when_it_is_behind() {
    let (_dir, policy, world) = dr_west_offline();
    let out = offline(&["-f", &policy, "--world", &world, "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let west = &status["regions"][WEST];
    // The world's newest set is copied; a set is due (30 h old) but the copies are not behind it.
    assert_eq!(
        west["complete_sets"].as_array().unwrap().len(),
        1,
        "{status:#}"
    );
    assert_eq!(west["behind"], false);
    let metrics = offline(&[
        "-f",
        &policy,
        "--world",
        &world,
        "status",
        "--format",
        "openmetrics",
    ]);
    let text = metrics.stdout;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus parses it");
    let sample = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get("region") == Some(WEST))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                _ => panic!("{name} is not a gauge"),
            })
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert_eq!(sample("asdr_copy_sets"), 1.0);
    assert_eq!(sample("asdr_copy_behind"), 0.0);
    assert!(sample("asdr_copy_last_complete_timestamp_seconds") > 1.7e9);
    let human = offline(&["-f", &policy, "--world", &world, "status"]);
    assert!(
        human.stdout.contains("copies in us-west-2: newest"),
        "{}",
        human.stdout
    );

    // Without the copies, the region is behind the cluster's newest set.
    let mut w: asdr_planner::World =
        serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    w.snapshots.retain(|s| s.region.is_none());
    std::fs::write(&world, serde_json::to_string(&w).unwrap()).unwrap();
    let out = offline(&["-f", &policy, "--world", &world, "status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(status["regions"][WEST]["behind"], true);
    // A restore into us-west-2 reads the copies there: none complete, nothing to restore from.
    let dr = status["restores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "dr-west")
        .unwrap();
    assert!(dr["set"].is_null(), "{dr}");
    let full = status["restores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "full-cluster")
        .unwrap();
    assert!(
        full["set"].is_string(),
        "the cluster's own region still has its sets: {full}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_region_that_does_not_answer_leaves_the_backup_at_home_whole_against_moto() {
    let env = env(94, &[]).await;
    // moto answers a region it does not know with HTTP 500: a region that is down.
    env.edit_policy(
        "  max_nodes_at_once: 1 ",
        &format!(
            "  copies:\n    - {{region: us-fake-1, smd_to: file://{}/fake}}\n  max_nodes_at_once: 1 ",
            env.dir.path().display()
        ),
    );
    let quick = |args: &[&str]| {
        env.command(args)
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    };
    let out = quick(&["apply", "--yes"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("us-fake-1 could not be observed"),
        "{stdout}"
    );
    let home = env.snapshots().await;
    assert_eq!(home.len(), 9, "the set at home");
    assert!(home.iter().all(|s| tag(s, "asdr:complete") == Some("true")));
    let status = quick(&["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("copies in us-fake-1: NOT OBSERVED"),
        "{}",
        String::from_utf8_lossy(&status.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_region_failover_drill_against_moto_restores_in_us_west_2_validates_and_tears_down_there()
 {
    let (env, west, _new_nodes) = west_env(97, "failover", true).await;
    env.ok(&["apply", "--yes"]);
    let east_instances = |env: &crate::ec2::Env| {
        let ec2 = env.moto.ec2();
        async move {
            ec2.describe_instances()
                .send()
                .await
                .unwrap()
                .reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum::<usize>()
        }
    };
    let before = east_instances(&env).await;
    let out = env.ok(&["drill", "failover", "--yes"]);
    assert!(out.contains("Drill `failover` passed"), "{out}");
    // It ran in us-west-2, and nothing of it is left there.
    let launched = tagged_instances(&west, "asdr:drill", "failover").await;
    let states: Vec<String> = launched
        .iter()
        .filter_map(|i| {
            i.state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_string())
        })
        .collect();
    assert_eq!(
        states.len(),
        3,
        "three drill nodes were launched in us-west-2"
    );
    assert!(states.iter().all(|s| s == "terminated"), "{states:?}");
    let volumes = west
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:asdr:drill")
                .values("failover")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(volumes.volumes().is_empty(), "its volumes deleted");
    assert_eq!(east_instances(&env).await, before, "production untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_clusters_region_down_only_the_restore_elsewhere_is_planned_and_it_builds_against_moto()
 {
    let (env, west, _new_nodes) = west_env(99, "dr-west", false).await;
    env.ok(&["apply", "--yes"]);
    // us-east-1 is down: every request signed for it is answered 503.
    let outage = crate::ec2::proxy(&env.moto.endpoint, |head, _| {
        head.contains("/us-east-1/").then(|| {
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>ServiceUnavailable</Code><Message>us-east-1 is unavailable</Message></Error></Errors><RequestID>outage</RequestID></Response>";
            format!("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}", xml.len()).into_bytes()
        })
    })
    .await;
    let during = |args: &[&str]| {
        env.command_at(&outage, args)
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    };
    let backup = during(&["plan"]);
    assert_eq!(backup.status.code(), Some(1));
    let err = String::from_utf8_lossy(&backup.stderr);
    assert!(
        err.contains("us-east-1 could not be observed") && err.contains("dr-west"),
        "{err}"
    );
    let restore = during(&["apply", "--restore", "dr-west", "--yes"]);
    assert!(
        restore.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&restore.stdout),
        String::from_utf8_lossy(&restore.stderr)
    );
    let n = tagged_instances(&west, "asdr:restore", "dr-west")
        .await
        .len();
    assert_eq!(n, 3, "the cluster stands in us-west-2");
}

/// `apply --restore dr-west --yes` on the offline world, with the simulation's faults in `sim`
/// if given: (exit code, stdout and stderr).
fn apply_dr_west(
    policy: &str,
    world: &str,
    sim: Option<&std::path::PathBuf>,
) -> (Option<i32>, String) {
    let mut c = assert_cmd::Command::cargo_bin("asdr").unwrap();
    c.args([
        "-f",
        policy,
        "--world",
        world,
        "apply",
        "--restore",
        "dr-west",
        "--yes",
    ])
    .env("NO_COLOR", "1")
    .env_remove("AWS_ENDPOINT_URL");
    if let Some(sim) = sim {
        c.env("ASDR_SIMULATION", sim);
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// A restore into the other region that failed halfway (SMD could not be fetched on one node):
/// planned afresh it would find its cluster partly built and refuse, and DR would stand still.
/// The next `apply --restore` resumes it instead: the failed step is tried again, what was built
/// is kept, and the cluster there comes up and is marked as standing.
#[test]
fn a_failed_restore_into_the_other_region_is_resumed_by_the_next_apply_and_finishes() {
    let (dir, policy, world) = dr_west_offline();
    let sim = dir.path().join("sim.yaml");
    std::fs::write(
        &sim,
        "faults:\n  - {step: \"restore_smd:b1@dr-west\", code: AccessDenied}\n",
    )
    .unwrap();
    let apply = |with_fault: bool| apply_dr_west(&policy, &world, with_fault.then_some(&sim));
    let (code, out) = apply(true);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("restore_smd:b1@dr-west"), "{out}");
    let built = |w: &asdr_planner::World| -> (usize, usize) {
        let ours: Vec<_> = w
            .instances
            .iter()
            .filter(|i| {
                i.region.as_deref() == Some(WEST)
                    && i.tags.get("asdr:restore").map(String::as_str) == Some("dr-west")
            })
            .collect();
        let marked = ours
            .iter()
            .filter(|i| i.tags.contains_key("asdr:restore-complete"))
            .count();
        (ours.len(), marked)
    };
    let read = || -> asdr_planner::World {
        serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap()
    };
    let (n, marked) = built(&read());
    assert_eq!((n, marked), (3, 0), "partly built: {out}");

    let (code, out) = apply(false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("esum"), "says it resumes: {out}");
    assert_eq!(
        built(&read()),
        (3, 3),
        "the same three instances, now standing"
    );
    let again = offline(&[
        "-f",
        &policy,
        "--world",
        &world,
        "plan",
        "--restore",
        "dr-west",
        "--detailed-exitcode",
    ]);
    assert_eq!(again.code, 0, "{}{}", again.stdout, again.stderr);
}

/// A failed build whose instances were terminated since (a build that never served, removed by
/// hand) is not resumed: its launch tokens would only name the terminated instances again. It is
/// set aside, said so, and the restore is planned afresh and built.
#[test]
fn a_failed_restore_into_the_other_region_whose_instances_are_gone_is_planned_afresh() {
    let (dir, policy, world) = dr_west_offline();
    let sim = dir.path().join("sim.yaml");
    std::fs::write(
        &sim,
        "faults:\n  - {step: \"wait_cluster_stable*\", code: Timeout}\n",
    )
    .unwrap();
    let apply = |with_fault: bool| apply_dr_west(&policy, &world, with_fault.then_some(&sim));
    let (code, out) = apply(true);
    assert_ne!(code, Some(0), "{out}");
    // The operator removes the build that never served: instances terminated, their volumes
    // detached and deleted, their node records gone.
    let mut w: asdr_planner::World =
        serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    let first: Vec<String> = w
        .instances
        .iter()
        .filter(|i| i.region.as_deref() == Some(WEST) && i.tags.contains_key("asdr:restore"))
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(first.len(), 3, "{out}");
    for i in w.instances.iter_mut().filter(|i| first.contains(&i.id)) {
        i.state = asdr_planner::world::InstanceState::Terminated;
        i.block_devices.clear();
    }
    w.volumes
        .retain(|v| !v.attachments.iter().any(|a| first.contains(&a.instance_id)));
    w.nodes.retain(|n| !n.name.contains('@'));
    std::fs::write(&world, serde_json::to_string_pretty(&w).unwrap()).unwrap();

    let (code, out) = apply(false);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("is not resumed") && out.contains("planned afresh"),
        "{out}"
    );
    let after: asdr_planner::World =
        serde_json::from_str(&std::fs::read_to_string(&world).unwrap()).unwrap();
    let standing: Vec<_> = after
        .instances
        .iter()
        .filter(|i| {
            i.region.as_deref() == Some(WEST)
                && i.state != asdr_planner::world::InstanceState::Terminated
                && i.tags.contains_key("asdr:restore-complete")
        })
        .collect();
    assert_eq!(standing.len(), 3);
    assert!(standing.iter().all(|i| !first.contains(&i.id)));
}

/// A copy EBS accepts and then fails (a KMS key the copy may not use is checked after the call):
/// the wait of the copy this apply made says why, instead of waiting for a copy that will never
/// be, and the next plan says the reason beside the copy it makes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_that_fails_after_the_call_is_reported_with_its_reason_and_made_again() {
    let env = env(146, &[]).await;
    let (from, to) = copies_edit(env.dir.path(), "");
    env.edit_policy(&from, &to);
    env.moto.strict(
        "fail-copies?count=1&message=The%20KMS%20key%20is%20not%20usable%20for%20the%20copy",
    );
    let out = env.asdr(&["apply", "--yes"]);
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("The KMS key is not usable for the copy"),
        "the reason is said: {all}"
    );
    let plan = env.ok(&["plan"]);
    assert!(
        plan.contains("a failed copy (state error: The KMS key is not usable for the copy)"),
        "{plan}"
    );
    env.ok(&["apply", "--yes"]);
    let west = env.snapshots_in(WEST).await;
    assert_eq!(west.len(), 9, "the failed copy removed, made again");
    assert!(
        west.iter().all(|c| tag(c, "asdr:complete") == Some("true")),
        "complete in us-west-2"
    );
}
