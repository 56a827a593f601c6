//! Copies into a separate backup account (`backup.copies[].account`) against moto: STS
//! AssumeRole gives the backup account's credentials (moto keeps accounts apart by them),
//! ModifySnapshotAttribute shares each source with that account only, and the backup account's
//! role copies, tags and marks the set there. moto copies only within one account: the strict
//! layer (scripts/strict-aws.py) copies a snapshot shared with the caller, and refuses one that
//! is not, as EC2 does.

use std::collections::BTreeSet;

use crate::ec2::{env, tag};
use asdr_providers::testkit_iam::{Reference, denied};

const ACCOUNT: &str = "222233334444";
const ROLE: &str = "arn:aws:iam::222233334444:role/asdr-backup";
const PLACE: &str = "us-east-1@222233334444";
const PLACE_WEST: &str = "us-west-2@222233334444";

/// The policy with a copy into the backup account in the cluster's own region.
fn backup_account_edit(dir: &std::path::Path) -> (String, String) {
    (
        "  max_nodes_at_once: 1 ".to_string(),
        format!(
            "  copies:\n    - {{region: us-east-1, account: \"{ACCOUNT}\", role_arn: \"{ROLE}\", external_id: vault-1, smd_to: file://{}/vault}}\n  max_nodes_at_once: 1 ",
            dir.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_copies_its_set_into_the_backup_account_shared_only_with_it_and_a_second_apply_creates_nothing()
 {
    let env = env(83, &[]).await;
    let (from, to) = backup_account_edit(env.dir.path());
    env.edit_policy(&from, &to);
    let plan = env.ok(&["plan"]);
    assert!(
        plan.contains(&format!("source_shared_with = \"{ACCOUNT}\"")),
        "the plan shows whom each source is shared with:\n{plan}"
    );
    // The two roles' policies, each evaluated on the calls made with its credentials.
    let id: serde_json::Value = serde_json::from_str(&env.ok(&["plan", "--json"])).unwrap();
    let id = id["cluster_id"]
        .as_str()
        .expect("the plan names the cluster id");
    let workload: serde_json::Value =
        serde_json::from_str(&env.ok(&["iam-policy", "--cluster-id", id])).unwrap();
    let vault_role: serde_json::Value = serde_json::from_str(&env.ok(&[
        "iam-policy",
        "--cluster-id",
        id,
        "--backup-account",
        ACCOUNT,
    ]))
    .unwrap();
    env.moto.clear_calls();
    let out = env.asdr(&["apply", "--yes", "-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let reference = Reference::load();
    let calls = env.moto.calls();
    let by_vault = |c: &&serde_json::Value| c["account"] == ACCOUNT;
    assert!(
        calls
            .iter()
            .filter(by_vault)
            .any(|c| c["action"] == "ec2:CopySnapshot")
    );
    let mut bad: Vec<String> = calls
        .iter()
        .filter(|c| !by_vault(c))
        .filter_map(|c| denied(&workload, c, &reference).map(|d| format!("workload role: {d}")))
        .collect();
    bad.extend(
        calls.iter().filter(by_vault).filter_map(|c| {
            denied(&vault_role, c, &reference).map(|d| format!("backup role: {d}"))
        }),
    );
    assert!(bad.is_empty(), "denied on real AWS:\n{}", bad.join("\n"));
    let home = env.snapshots().await;
    assert_eq!(home.len(), 9, "the workload account holds only its own set");
    assert!(
        home.iter()
            .all(|s| tag(s, "asdr:source-snapshot").is_none()),
        "no copy is made in the workload account"
    );
    // Each source shared with the backup account, and with no one else.
    let ec2 = env.moto.ec2();
    for s in &home {
        let attr = ec2
            .describe_snapshot_attribute()
            .snapshot_id(s.snapshot_id().unwrap())
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .unwrap();
        let with: Vec<Option<&str>> = attr
            .create_volume_permissions()
            .iter()
            .map(|p| p.user_id())
            .collect();
        assert_eq!(with, vec![Some(ACCOUNT)], "{:?}", s.snapshot_id());
    }
    // The copies are the backup account's, made by its role: tagged as ours, marked complete.
    let vault = env.moto.ec2_as(ROLE, "us-east-1").await;
    let copies = vault
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .to_vec();
    assert_eq!(copies.len(), 9, "one copy per snapshot of the set");
    let sources: BTreeSet<&str> = home.iter().map(|s| s.snapshot_id().unwrap()).collect();
    let set = tag(&home[0], "asdr:set").unwrap();
    for c in &copies {
        assert_eq!(c.owner_id(), Some(ACCOUNT));
        let src = tag(c, "asdr:source-snapshot").expect("the source tag");
        assert!(sources.contains(src), "a copy of {src}");
        assert_eq!(tag(c, "asdr:set"), Some(set));
        assert_eq!(tag(c, "asdr:cluster"), Some("prod-east"));
        assert_eq!(tag(c, "asdr:complete"), Some("true"), "complete there");
    }
    // The SMD archive beside the copies, in the backup account's store.
    assert!(
        env.dir
            .path()
            .join(format!("vault/prod-east/{set}/a1.smd.tar"))
            .exists()
    );
    assert!(stderr.contains("CopySnapshot 9"), "{stderr}");
    assert!(stderr.contains("ModifySnapshotAttribute 9"), "{stderr}");
    assert_eq!(
        env.asdr(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "plan again: nothing to do"
    );
    env.ok(&["apply", "--yes"]);
    assert_eq!(
        vault
            .describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap()
            .snapshots()
            .len(),
        9,
        "a second apply creates nothing"
    );
    // Evidence: the newest set in the backup account, by account.
    let status = env.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["regions"][PLACE]["account"], ACCOUNT, "{status:#}");
    assert_eq!(status["regions"][PLACE]["newest_complete_set"], set);
    let text = env.ok(&["status"]);
    assert!(
        text.contains(&format!(
            "copies in us-east-1 (backup account {ACCOUNT}): newest {set}"
        )),
        "{text}"
    );
    let metrics = env.ok(&["status", "--format", "openmetrics"]);
    assert!(
        metrics.contains(&format!(
            "asdr_copy_last_complete_timestamp_seconds{{cluster=\"prod-east\",region=\"us-east-1\",account=\"{ACCOUNT}\"}}"
        )),
        "{metrics}"
    );
    assert!(env.moto.refused().is_empty(), "{:?}", env.moto.refused());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_not_shared_with_the_backup_account_cannot_be_copied_there_as_on_ec2() {
    let env = env(84, &[]).await;
    let ec2 = env.moto.ec2();
    let vol = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .send()
        .await
        .unwrap();
    let snap = ec2
        .create_snapshot()
        .volume_id(vol.volume_id().unwrap())
        .send()
        .await
        .unwrap();
    let id = snap.snapshot_id().unwrap();
    let vault = env.moto.ec2_as(ROLE, "us-east-1").await;
    let copy = |v: aws_sdk_ec2::Client| async move {
        v.copy_snapshot()
            .source_region("us-east-1")
            .source_snapshot_id(id)
            .send()
            .await
    };
    let refused = copy(vault.clone()).await.expect_err("not shared: refused");
    assert_eq!(
        aws_sdk_ec2::error::ProvideErrorMetadata::code(&refused),
        Some("InvalidSnapshot.NotFound")
    );
    ec2.modify_snapshot_attribute()
        .snapshot_id(id)
        .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
        .operation_type(aws_sdk_ec2::types::OperationType::Add)
        .user_ids(ACCOUNT)
        .send()
        .await
        .unwrap();
    let made = copy(vault.clone()).await.expect("shared: copied");
    let copies = vault
        .describe_snapshots()
        .snapshot_ids(made.snapshot_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(copies.snapshots()[0].owner_id(), Some(ACCOUNT));
}

#[test]
fn iam_policy_prints_the_two_roles_apart_the_workload_may_only_share_with_the_backup_account_and_assume_its_role()
 {
    use asdr_planner::testkit::ExamplePolicy;
    let dir = tempfile::tempdir().unwrap();
    let policy = ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            &format!(
                "  copies:\n    - {{region: us-east-1, account: \"{ACCOUNT}\", role_arn: \"{ROLE}\", external_id: vault-1, smd_to: s3://acme-vault-east/asdr, lock: {{mode: compliance, duration: 14d}}}}\n    - {{region: us-west-2, account: \"{ACCOUNT}\", role_arn: \"{ROLE}\", external_id: vault-1, smd_to: s3://acme-vault-west/asdr, kms_key_id: alias/vault}}\n  max_nodes_at_once: 1 "
            ),
        )
        .edit(
            "  - name: full-cluster\n",
            &format!("  - name: from-vault\n    scope: cluster\n    source: latest-backup\n    region: us-west-2\n    account: \"{ACCOUNT}\"\n    target:\n      subnets: {{us-west-2a: subnet-v1, us-west-2b: subnet-v2}}\n      ip_offset: 0\n      security_groups: [sg-vault]\n      ami: ami-0vault\n  - name: full-cluster\n"),
        )
        .write_to(dir.path());
    let file = policy.display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["-f", file.as_str()];
        all.extend_from_slice(args);
        crate::cli::run(&all)
    };
    let doc = |args: &[&str]| {
        let out = run(args);
        assert_eq!(out.code, 0, "{}", out.stderr);
        serde_json::from_str::<serde_json::Value>(&out.stdout).expect("JSON")
    };
    let workload = doc(&["iam-policy", "--cluster-id", "c0ffee"]);
    let statements = workload["Statement"].as_array().unwrap();
    let share = statements
        .iter()
        .find(|s| s["Sid"] == "ShareWithTheBackupAccounts")
        .expect("the share statement");
    assert_eq!(
        share["Action"],
        serde_json::json!(["ec2:ModifySnapshotAttribute"])
    );
    assert_eq!(
        share["Condition"]["StringEquals"]["ec2:Add/userId"],
        serde_json::json!([ACCOUNT])
    );
    assert_eq!(
        share["Condition"]["StringEquals"]["aws:ResourceTag/asdr:cluster"],
        "prod-east"
    );
    // Account ids only: never a group (`all` would make the snapshot public).
    assert_eq!(share["Condition"]["Null"]["ec2:Add/group"], "true");
    let assume = statements
        .iter()
        .find(|s| s["Sid"] == "AssumeTheBackupRoles")
        .expect("the assume statement");
    assert_eq!(assume["Resource"], serde_json::json!([ROLE]));
    // The backup account's store is the backup role's: the workload writes nothing there.
    assert!(!workload.to_string().contains("acme-vault"), "{workload:#}");

    let vault = doc(&[
        "iam-policy",
        "--cluster-id",
        "c0ffee",
        "--backup-account",
        ACCOUNT,
    ]);
    let actions = crate::cli::actions_of(&vault);
    for a in [
        "ec2:CopySnapshot",
        "ec2:LockSnapshot",
        "ec2:DeleteSnapshot",
        "ec2:DescribeLockedSnapshots",
        "s3:PutObject",
        "s3:PutObjectRetention",
    ] {
        assert!(actions.contains(a), "the backup role may {a}: {actions:?}");
    }
    for a in [
        "ec2:UnlockSnapshot",
        "ec2:ModifySnapshotAttribute",
        "sts:AssumeRole",
        "s3:BypassGovernanceRetention",
    ] {
        assert!(!actions.contains(a), "the backup role may not {a}");
    }
    // Both regions' stores and KMS (the source's key is read through EC2 in the cluster's
    // region), each statement once by Sid (IAM wants each Sid once).
    let text = vault.to_string();
    assert!(
        text.contains("ec2.us-east-1.amazonaws.com")
            && text.contains("ec2.us-west-2.amazonaws.com"),
        "{vault:#}"
    );
    assert!(text.contains("acme-vault-east") && text.contains("acme-vault-west"));
    let sids: Vec<&str> = vault["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    let unique: BTreeSet<&&str> = sids.iter().collect();
    assert_eq!(unique.len(), sids.len(), "{sids:?}");

    let trust = doc(&[
        "iam-policy",
        "--backup-account",
        ACCOUNT,
        "--trust",
        "arn:aws:iam::111122223333:role/asdr",
        "--trust",
        "arn:aws:iam::222233334444:role/break-glass",
    ]);
    // The workload role, and a break-glass principal of the backup account itself (who
    // restores there once the workload account is lost).
    let st = &trust["Statement"][0];
    assert_eq!(
        st["Principal"]["AWS"],
        serde_json::json!([
            "arn:aws:iam::111122223333:role/asdr",
            "arn:aws:iam::222233334444:role/break-glass"
        ])
    );
    assert_eq!(st["Action"], "sts:AssumeRole");
    assert_eq!(st["Condition"]["StringEquals"]["sts:ExternalId"], "vault-1");

    // The restore inside the backup account is its role's: its copy's store and key, never
    // the workload account's stores.
    let restore = run(&[
        "iam-policy",
        "--cluster-id",
        "c0ffee",
        "--restore",
        "from-vault",
    ]);
    assert_eq!(restore.code, 0, "{}", restore.stderr);
    assert!(
        restore
            .stderr
            .contains(&format!("inside backup account {ACCOUNT}")),
        "{}",
        restore.stderr
    );
    let text = restore.stdout;
    assert!(text.contains("acme-vault-west"), "{text}");
    assert!(
        !text.contains("acme-backups") && !text.contains("acme-vault-east"),
        "{text}"
    );
    assert!(text.contains("ec2.us-west-2.amazonaws.com"), "{text}");
    assert!(
        text.contains("arn:aws:ec2:us-west-2::image/ami-0vault"),
        "{text}"
    );

    let unknown = run(&["iam-policy", "--backup-account", "999999999999"]);
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("makes no copies in that account")
            && unknown.stderr.contains(ACCOUNT),
        "{}",
        unknown.stderr
    );
}

/// A restore inside the backup account: the copies are made into it in us-west-2, then the
/// cluster is built there, in the backup account's own VPC (subnets 127.0.7.0/24 and
/// 127.0.8.0/24), by its role, from its copies; test nodes answer at the new addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_the_backup_account_builds_the_cluster_inside_it_from_its_copies_against_moto()
 {
    use asdr_providers::aerospike::testnode::{TestCluster, example_namespaces};
    let base = 160u8;
    let env = env(base, &[]).await;
    let vault = env.moto.ec2_as(ROLE, "us-west-2").await;
    let subnets = crate::ec2::seed_subnets(
        &vault,
        &[
            ("us-west-2a", "127.0.7.0/24"),
            ("us-west-2b", "127.0.8.0/24"),
        ],
    )
    .await;
    let vpc = vault
        .describe_subnets()
        .subnet_ids(&subnets["us-west-2a"])
        .send()
        .await
        .unwrap()
        .subnets()[0]
        .vpc_id()
        .unwrap()
        .to_string();
    let sg = vault
        .create_security_group()
        .group_name("from-vault")
        .description("the cluster rebuilt in the backup account")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id
        .unwrap();
    env.edit_policy(
        "  max_nodes_at_once: 1 ",
        &format!(
            "  copies:\n    - {{region: us-west-2, account: \"{ACCOUNT}\", role_arn: \"{ROLE}\", smd_to: file://{}/vault}}\n  max_nodes_at_once: 1 ",
            env.dir.path().display()
        ),
    );
    env.edit_policy(
        "  - name: full-cluster\n",
        &format!(
            "  - name: from-vault\n    scope: cluster\n    source: latest-backup\n    region: us-west-2\n    account: \"{ACCOUNT}\"\n    target:\n      subnets: {{us-west-2a: {}, us-west-2b: {}}}\n      private_ips: {{a1: 127.0.7.{base}, b1: 127.0.8.{base}, a2: 127.0.7.{}}}\n      security_groups: [{sg}]\n      ami: ami-0123456789abcdef0\n  - name: full-cluster\n",
            subnets["us-west-2a"],
            subnets["us-west-2b"],
            base + 1
        ),
    );
    let (a1, b1, a2) = (
        format!("127.0.7.{base}"),
        format!("127.0.8.{base}"),
        format!("127.0.7.{}", base + 1),
    );
    let stand_ins = [
        ("a1@from-vault", a1.as_str()),
        ("b1@from-vault", b1.as_str()),
        ("a2@from-vault", a2.as_str()),
    ];
    let new_nodes = TestCluster::start_at(
        &stand_ins,
        example_namespaces(),
        true,
        &env.dir.path().join("vault-control"),
        Some(env.nodes.port()),
    )
    .await
    .unwrap();
    for (n, _) in &stand_ins {
        let smd = env.dir.path().join(format!("nodes/{n}/smd"));
        std::fs::create_dir_all(&smd).unwrap();
        new_nodes.set_smd_dir(n, &smd);
    }
    // The guests of the backup account's instances see their volumes as the Nitro emulator of
    // the other tests' regions does (one of its own: the other tests keep their timing).
    let _vault_guests = asdr_providers::testkit_nitro::Nitro::start(
        &env.moto.endpoint,
        &[PLACE_WEST],
        env.dir.path(),
        3,
    );
    env.ok(&["apply", "--yes"]);
    let home_before = env.snapshots().await.len();
    // The restore's policy is the backup role's: every call it makes there is allowed by it.
    let id: serde_json::Value = serde_json::from_str(&env.ok(&["plan", "--json"])).unwrap();
    let id = id["cluster_id"]
        .as_str()
        .expect("the plan names the cluster id");
    let role_policy: serde_json::Value = serde_json::from_str(&env.ok(&[
        "iam-policy",
        "--cluster-id",
        id,
        "--restore",
        "from-vault",
    ]))
    .unwrap();
    env.moto.clear_calls();
    let out = env.asdr(&["apply", "--restore", "from-vault", "--yes", "-v"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = Reference::load();
    let calls = env.moto.calls();
    assert!(
        calls
            .iter()
            .any(|c| c["account"] == ACCOUNT && c["action"] == "ec2:RunInstances"),
        "the backup account's role launched the instances"
    );
    let bad: Vec<String> = calls
        .iter()
        .filter_map(|c| denied(&role_policy, c, &reference))
        .collect();
    assert!(bad.is_empty(), "denied on real AWS:\n{}", bad.join("\n"));
    // The instances are the backup account's, at the target's addresses.
    let instances: Vec<aws_sdk_ec2::types::Instance> = vault
        .describe_instances()
        .send()
        .await
        .unwrap()
        .reservations()
        .iter()
        .flat_map(|r| r.instances().to_vec())
        .collect();
    let mut ips: Vec<&str> = instances
        .iter()
        .filter_map(|i| i.private_ip_address())
        .collect();
    ips.sort();
    assert_eq!(ips, [a1.as_str(), a2.as_str(), b1.as_str()]);
    // Every node's every device from the backup account's copies.
    let copies: BTreeSet<String> = vault
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .map(|s| s.snapshot_id().unwrap().to_string())
        .collect();
    let vols = vault.describe_volumes().send().await.unwrap();
    let restored: Vec<_> = vols
        .volumes()
        .iter()
        .filter(|v| !v.attachments().is_empty() && v.snapshot_id().is_some_and(|s| !s.is_empty()))
        .collect();
    assert_eq!(restored.len(), 9, "every node's every device");
    for v in &restored {
        assert!(
            copies.contains(v.snapshot_id().unwrap()),
            "made from a copy in the backup account"
        );
    }
    // Nothing was launched in the workload account's us-west-2, and its own set is untouched.
    let west = env.moto.ec2_in("us-west-2");
    assert!(
        west.describe_instances()
            .send()
            .await
            .unwrap()
            .reservations()
            .is_empty()
    );
    assert_eq!(env.snapshots().await.len(), home_before);
    assert_eq!(
        env.asdr(&["plan", "--restore", "from-vault", "--detailed-exitcode"])
            .status
            .code(),
        Some(0),
        "the cluster stands: nothing more to do"
    );
}

#[test]
fn status_names_the_backup_account_in_words_and_in_labels_never_its_place_key() {
    use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
    let dir = tempfile::tempdir().unwrap();
    let policy = ExamplePolicy::prod_east().edit(
        "  max_nodes_at_once: 1 ",
        &format!(
            "  copies:\n    - {{region: us-east-1, account: \"{ACCOUNT}\", role_arn: \"{ROLE}\", smd_to: file:///var/vault, lock: {{mode: governance, duration: 14d}}}}\n  max_nodes_at_once: 1 "
        ),
    );
    let path = policy.write_to(dir.path()).display().to_string();
    let parsed = policy.policy();
    let mut spec = WorldSpec::new(time::macros::datetime!(2026-11-21 09:00:00 UTC));
    spec.newest_set_age = time::Duration::hours(2);
    let mut world = world_for(&parsed, &spec);
    copy_sets(&mut world, &parsed, 0, 2, false);
    let world_path = dir.path().join("world.json");
    std::fs::write(&world_path, serde_json::to_string_pretty(&world).unwrap()).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "-f",
            path.as_str(),
            "--world",
            world_path.to_str().unwrap(),
            "status",
        ];
        args.extend_from_slice(extra);
        crate::cli::run(&args).stdout
    };
    let text = run(&[]);
    assert!(
        text.contains(&format!(
            "locked in us-east-1 (backup account {ACCOUNT}): 0 of 2 set(s)"
        )),
        "{text}"
    );
    assert!(!text.contains(PLACE), "the place key is asdr's own: {text}");
    let metrics = run(&["--format", "openmetrics"]);
    assert!(
        metrics.contains(&format!(
            "asdr_set_locked{{cluster=\"prod-east\",set=\"{}\",region=\"us-east-1\",account=\"{ACCOUNT}\"}} 0",
            world.snapshots.iter().filter(|s| s.region.as_deref() == Some(PLACE)).filter_map(|s| s.tags.get("asdr:set")).max().unwrap()
        )),
        "{metrics}"
    );
    assert!(!metrics.contains(PLACE), "{metrics}");
}
