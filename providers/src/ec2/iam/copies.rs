//! Copies: what copies to other regions need beyond EC2, and a backup account's two sides
//! (`backup.copies[].account`): what the workload role needs to hand copies over (share,
//! assume), and the backup account's own role and trust policy.

use super::*;

/// What copies to other regions need beyond EC2: the KMS grants an encrypted copy takes (the
/// source's key to read, the destination's key to write; EC2 calls KMS on the caller's behalf,
/// hence `kms:ViaService`), and the copies' SMD stores.
pub(super) fn copy_statements(statements: &mut Vec<Value>, regions: &Regions) {
    let all: Vec<String> = std::iter::once(regions.home.clone())
        .chain(regions.copies.iter().map(|c| c.aws_region.clone()))
        .collect();
    kms_statements(statements, &all);
    let stores: Vec<String> = regions
        .copies
        .iter()
        .filter(|c| asdr_specs::StoreUri::is_s3(&c.smd_to))
        .map(|c| c.smd_to.clone())
        .collect();
    if let Some((first, rest)) = stores.split_first() {
        let mut copy = Vec::new();
        s3_statements(
            &mut copy,
            &["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            first,
            rest,
        );
        for mut st in copy {
            st["Sid"] = json!(format!("Copies{}", st["Sid"].as_str().unwrap_or("")));
            statements.push(st);
        }
    }
}

/// What the workload role needs for copies into backup accounts: to share the cluster's own
/// snapshots with those accounts only (`ec2:Add/userId`), and to assume their roles. It gets
/// nothing in the backup accounts themselves: what is there, only their roles can change.
pub(super) fn backup_account_statements(
    statements: &mut Vec<Value>,
    cluster: &str,
    cluster_id: Option<&str>,
    regions: &Regions,
) {
    let mut accounts: Vec<&str> = regions
        .backup_accounts
        .iter()
        .filter_map(|c| c.account.as_ref().map(|a| a.id.as_str()))
        .collect();
    accounts.sort();
    accounts.dedup();
    let mut roles: Vec<&str> = regions
        .backup_accounts
        .iter()
        .filter_map(|c| c.account.as_ref().map(|a| a.role_arn.as_str()))
        .collect();
    roles.sort();
    roles.dedup();
    let home = if regions.home.is_empty() {
        "*"
    } else {
        regions.home.as_str()
    };
    // Never a group (`all` would make the snapshot public): account ids only, the backup ones.
    let mut condition = json!({"StringEquals": {
        "aws:ResourceTag/asdr:cluster": cluster,
        "ec2:Add/userId": accounts,
    }, "Null": {"ec2:Add/group": "true"}});
    if let Some(id) = cluster_id {
        condition["StringEqualsIfExists"] =
            json!({format!("aws:ResourceTag/{}", asdr_planner::tags::CLUSTER_ID): id});
    }
    statements.push(
        json!({"Sid": "ShareWithTheBackupAccounts", "Effect": "Allow",
        "Action": ["ec2:ModifySnapshotAttribute"],
        "Resource": format!("arn:aws:ec2:{home}::snapshot/*"), "Condition": condition}),
    );
    statements.push(json!({"Sid": "AssumeTheBackupRoles", "Effect": "Allow",
        "Action": ["sts:AssumeRole"], "Resource": roles}));
    // An encrypted source's key, granted to those roles only, for what EBS does with it.
    statements.push(json!({"Sid": "GrantTheBackupRolesTheSourceKeys", "Effect": "Allow",
        "Action": ["kms:CreateGrant"], "Resource": format!("arn:aws:kms:{home}:*:key/*"),
        "Condition": {"StringEquals": {"kms:GranteePrincipal": roles},
            "ForAllValues:StringEquals": {"kms:GrantOperations": ["Decrypt", "DescribeKey", "CreateGrant", "ReEncryptFrom", "GenerateDataKeyWithoutPlaintext"]}}}));
}

/// The backup account's role (`backup.copies[].role_arn`) for `copy`: copying the shared
/// sources in, tagging, locking, keeping and (by retention) deleting asdr's copies there, its
/// KMS key through EC2, its SMD store.
pub fn backup_account_policy(
    cluster: &str,
    cluster_id: Option<&str>,
    home: &str,
    copy: &asdr_specs::Copy,
) -> Value {
    let mut kinds: Vec<StepKind> = COPY_KINDS.to_vec();
    if copy.lock.is_some() {
        kinds.extend([StepKind::LockSnapshots, StepKind::RetainFiles]);
    }
    let regions = Regions {
        home: copy.aws_region.clone(),
        ..Regions::default()
    };
    let mut doc = policy_for_kinds(cluster, cluster_id, kinds, false, &copy.smd_to, &regions);
    if let Some(statements) = doc["Statement"].as_array_mut() {
        // EC2 reads the source's key in the cluster's region and writes the copy's in its own.
        kms_statements(statements, &[home.to_string(), copy.aws_region.clone()]);
        let mut store = Vec::new();
        s3_statements(
            &mut store,
            &["s3:GetObject", "s3:ListBucket", "s3:PutObject"],
            &copy.smd_to,
            &[],
        );
        for mut st in store {
            st["Sid"] = json!(format!("Copies{}", st["Sid"].as_str().unwrap_or("")));
            statements.push(st);
        }
    }
    doc
}

/// The backup role's trust policy: assumed only by `principals` (the workload role's ARN, and a
/// break-glass principal of the backup account for when the workload account is lost), with the
/// copy's external id where it names one.
pub fn backup_account_trust(principals: &[String], copy: &asdr_specs::Copy) -> Value {
    let mut statement = json!({"Sid": "AssumedByTheNamedPrincipals", "Effect": "Allow",
        "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"});
    if let Some(x) = copy.account.as_ref().and_then(|a| a.external_id.as_ref()) {
        statement["Condition"] = json!({"StringEquals": {"sts:ExternalId": x}});
    }
    json!({"Version": "2012-10-17", "Statement": [statement]})
}
