use crate::args::{Global, IamPolicyArgs};
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::inputs;
use asdr_planner::StepKind;
use asdr_providers::ec2::iam::{self, Launch};

/// `asdr iam-policy`: the IAM policy document for everything an operation can do, from the policy
/// alone (the role is prepared before it is needed, and generating it needs no credentials).
pub fn cmd_iam_policy(g: &Global, a: &IamPolicyArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    if let Some(account) = &a.backup_account {
        return backup_account(g, a, &policy, account);
    }
    let ssm = policy.cluster.access.transport == asdr_specs::Transport::Ssm;
    let restore = match &a.drill {
        Some(d) => {
            let drill = policy.drill(d).ok_or_else(|| {
                CommandError::User(
                    asdr_planner::PlanError::UnknownDrill {
                        name: d.clone(),
                        known: policy.drills.iter().map(|d| d.name.clone()).collect(),
                    }
                    .to_string(),
                )
            })?;
            policy.restore(&drill.restore)
        }
        None => match a.restore.as_deref() {
            Some(r) => Some(policy.restore(r).ok_or_else(|| {
                CommandError::User(
                    asdr_planner::PlanError::UnknownRestore {
                        name: r.to_string(),
                        known: policy.restores.iter().map(|r| r.name.clone()).collect(),
                    }
                    .to_string(),
                )
            })?),
            None => None,
        },
    };
    let elsewhere = restore.and_then(|r| r.region.as_ref());
    let mut kinds: Vec<StepKind> = match (&a.drill, restore) {
        (Some(_), _) => asdr_planner::drill::step_kinds(),
        (None, Some(r)) => asdr_planner::restore::step_kinds(&policy, r),
        (None, None) => asdr_planner::backup::step_kinds(&policy),
    };
    // Fast Snapshot Restore, enabled and disabled around the volumes of a restore that asks.
    if restore.is_some_and(|r| r.volume.fast_snapshot_restore)
        || (restore.is_none() && policy.backup.fast_restore.is_some())
    {
        kinds.push(StepKind::FastSnapshotRestore);
    }
    // Backups and restores at home claim the cluster id on an instance that lacks it (a node
    // replaced by hand later).
    if elsewhere.is_none() && a.drill.is_none() {
        kinds.push(StepKind::ClaimCluster);
    }
    let launches = match (&a.drill, elsewhere) {
        (Some(d), _) => {
            let drill = policy.drill(d).expect("checked above");
            let (region, ami) = match elsewhere {
                Some(t) => (
                    asdr_specs::split_place(&t.region).0.to_string(),
                    t.ami.clone(),
                ),
                None => (
                    policy.cluster.region.clone(),
                    policy.cluster.instance.ami.clone(),
                ),
            };
            vec![Launch {
                region,
                ami,
                subnets: drill.subnets.values().cloned().collect(),
                security_groups: drill.security_groups.clone(),
                key_name: policy.cluster.instance.key_name.clone(),
                own_subnets_in: Vec::new(),
            }]
        }
        (None, Some(t)) => vec![Launch {
            region: asdr_specs::split_place(&t.region).0.to_string(),
            ami: t.ami.clone(),
            subnets: t.subnets.values().cloned().collect(),
            security_groups: t.security_groups.clone(),
            key_name: policy.cluster.instance.key_name.clone(),
            own_subnets_in: Vec::new(),
        }],
        (None, None) => vec![Launch::of_cluster(&policy)],
    };
    let cluster_id = match &a.cluster_id {
        Some(id) => Some(id.clone()),
        None => policy
            .cluster
            .id
            .clone()
            .or_else(|| from_world_file(g, &policy)),
    };
    let stores: Vec<String> = policy
        .backup
        .asbackup
        .as_ref()
        .map(|b| b.to.clone())
        .into_iter()
        .collect();
    // A restore inside a backup account is that account's role's: its copy (KMS, SMD store)
    // only, nothing of the workload account's stores or copies.
    let vault = elsewhere.and_then(|t| {
        policy
            .backup
            .copies
            .iter()
            .find(|c| c.account.is_some() && c.region == t.region)
    });
    let (smd_to, copies, backup_accounts, stores) = match vault {
        Some(c) => (c.smd_to.clone(), vec![c.clone()], Vec::new(), Vec::new()),
        None => {
            let (theirs, ours): (Vec<_>, Vec<_>) = policy
                .backup
                .copies
                .iter()
                .cloned()
                .partition(|c| c.account.is_some());
            (policy.backup.smd_to.clone(), ours, theirs, stores)
        }
    };
    let mut document = iam::policy_for_kinds(
        &policy.cluster.name,
        cluster_id.as_deref(),
        kinds,
        ssm,
        &smd_to,
        &iam::Regions {
            home: vault.map_or_else(|| policy.cluster.region.clone(), |c| c.aws_region.clone()),
            copies,
            backup_accounts,
            restores_elsewhere: elsewhere.is_some(),
            launches,
            // Production's pinned instances are nothing a drill or a restore elsewhere touches.
            pinned: if a.drill.is_some() || elsewhere.is_some() {
                Vec::new()
            } else {
                policy
                    .cluster
                    .nodes
                    .iter()
                    .filter_map(|n| n.instance_id.clone())
                    .collect()
            },
            stores,
            drill: a.drill.clone(),
            instance_profile: policy.cluster.instance.iam_instance_profile.clone(),
            node_role: a.node_role.clone(),
        },
    );
    iam::add_lock(&mut document, policy.lock.as_deref());
    // A restore inside a backup account runs there, through its role: this policy is that
    // role's (the workload role only assumes it).
    if let Some((_, Some(account))) = elsewhere.map(|t| asdr_specs::split_place(&t.region))
        && !g.quiet
    {
        eprintln!(
            "note: this restore builds the cluster inside backup account {account}, through its role: give this policy to that role (backup.copies[].role_arn), beside `iam-policy --backup-account {account}`"
        );
    }
    iam::in_partition(&mut document, &policy.cluster.region);
    // Without an id the claim of it cannot be granted, and the first apply makes that claim.
    if cluster_id.is_none() && a.drill.is_none() && elsewhere.is_none() && !g.quiet {
        eprintln!(
            "note: no cluster id is known (no `cluster.id`, no --cluster-id), so this policy does not let an apply tag the instances with one, and the first apply does (claim_cluster): see the id with `asdr status`, then pass --cluster-id ID"
        );
    }
    print(&json(&document)?)?;
    Ok(0)
}

/// `asdr iam-policy --backup-account ACCOUNT [--trust ARN]`: the backup account's role policy
/// (or its trust policy), for the copies the policy makes in that account.
fn backup_account(
    g: &Global,
    a: &IamPolicyArgs,
    policy: &asdr_specs::Policy,
    account: &str,
) -> Result<i32, CommandError> {
    let copies: Vec<&asdr_specs::Copy> = policy
        .backup
        .copies
        .iter()
        .filter(|c| c.account.as_ref().is_some_and(|x| x.id == account))
        .collect();
    let Some(first) = copies.first() else {
        let named: Vec<String> = policy
            .backup
            .copies
            .iter()
            .filter_map(|c| c.account.as_ref().map(|x| x.id.clone()))
            .collect();
        return Err(CommandError::User(format!(
            "--backup-account {account}: backup.copies makes no copies in that account (backup accounts: {})",
            if named.is_empty() {
                "none".to_string()
            } else {
                named.join(", ")
            }
        )));
    };
    if !a.trust.is_empty() {
        print(&json(&iam::backup_account_trust(&a.trust, first))?)?;
        return Ok(0);
    }
    let cluster_id = a
        .cluster_id
        .clone()
        .or_else(|| policy.cluster.id.clone())
        .or_else(|| from_world_file(g, policy));
    // Every copy the policy makes in that account (one per region): one role's statements.
    let mut statements = Vec::new();
    for c in &copies {
        let doc = iam::backup_account_policy(
            &policy.cluster.name,
            cluster_id.as_deref(),
            &policy.cluster.region,
            c,
        );
        for st in doc["Statement"].as_array().into_iter().flatten() {
            if statements.contains(st) {
                continue;
            }
            let mut st = st.clone();
            // IAM wants each Sid once: a region's own statement is named for its region.
            let sid = st["Sid"].as_str().unwrap_or_default().to_string();
            if statements.iter().any(|x| x["Sid"] == st["Sid"]) {
                let region: String = c
                    .aws_region
                    .split('-')
                    .map(|p| {
                        let mut ch = p.chars();
                        ch.next()
                            .map(|f| f.to_ascii_uppercase().to_string() + ch.as_str())
                            .unwrap_or_default()
                    })
                    .collect();
                st["Sid"] = serde_json::json!(format!("{sid}{region}"));
            }
            statements.push(st);
        }
    }
    let mut document = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
    iam::in_partition(&mut document, &first.aws_region);
    print(&json(&document)?)?;
    Ok(0)
}

/// The cluster id a `--world` file shows (no AWS call is ever made for it).
fn from_world_file(g: &Global, policy: &asdr_specs::Policy) -> Option<String> {
    g.world.as_ref()?;
    let world = inputs::world(g, Some(policy)).ok()?;
    asdr_planner::identity::resolve(policy, &world)
        .ok()
        .map(|i| i.id)
}
