//! The least-privilege IAM policy for a plan: exactly the actions its steps use, creations
//! constrained to requests tagged for the cluster, and changes to existing resources to resources
//! tagged for it (where EC2 supports tag conditions). Describe calls do not support resource-level
//! permissions and get `Resource: *`.

use std::collections::BTreeSet;

use asdr_planner::{Plan, StepKind};
use serde_json::{Value, json};

/// (action, how it is scoped)
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// Describe*: no resource-level permissions in EC2.
    Read,
    /// Creates a resource: the request must carry `asdr:cluster=<cluster>`.
    Create,
    /// Acts on an existing resource tagged `asdr:cluster=<cluster>`.
    Owned,
    /// CreateTags: on create (with one of asdr's creating actions), or on owned resources.
    Tag,
    /// Node work through SSM, SMD archives in S3: scoped by the instance or bucket elsewhere.
    Other,
    /// CreateTags of the cluster id on an instance that carries none yet (`claim_cluster`): a
    /// pinned instance need not carry `asdr:cluster`, and an id once set is never overwritten.
    Claim,
}

/// What observing a cluster calls (providers::ec2::observe_cloud; the SMD store is listed too).
const OBSERVATION: [(&str, Scope); 5] = [
    ("ec2:DescribeInstances", Scope::Read),
    ("ec2:DescribeVolumes", Scope::Read),
    ("ec2:DescribeSnapshots", Scope::Read),
    ("ec2:DescribeInstanceTypes", Scope::Read),
    ("ec2:DescribeSubnets", Scope::Read),
];

/// The AWS actions a step kind uses (its observe and act halves), for the plan's transport and store.
fn actions(kind: StepKind, ssm: bool, s3: bool) -> Vec<(&'static str, Scope)> {
    use Scope::*;
    let mut a = match kind {
        StepKind::SnapshotInstance => vec![
            ("ec2:CreateSnapshots", Create),
            ("ec2:CreateTags", Tag),
            ("ec2:DescribeSnapshots", Read),
            ("ec2:DescribeInstances", Read),
        ],
        StepKind::Snapshot => vec![
            ("ec2:CreateSnapshot", Create),
            ("ec2:CreateTags", Tag),
            ("ec2:DescribeSnapshots", Read),
        ],
        StepKind::WaitSnapshot => vec![("ec2:DescribeSnapshots", Read)],
        StepKind::MarkSetComplete => vec![("ec2:DescribeSnapshots", Read), ("ec2:CreateTags", Tag)],
        StepKind::DeleteSnapshot => vec![
            ("ec2:DescribeSnapshots", Read),
            ("ec2:DeleteSnapshot", Owned),
        ],
        StepKind::DetachVolume => vec![
            ("ec2:DescribeVolumes", Read),
            ("ec2:DetachVolume", Owned),
            ("ec2:CreateTags", Tag),
        ],
        StepKind::StopInstance => vec![
            ("ec2:DescribeInstances", Read),
            ("ec2:StopInstances", Owned),
        ],
        StepKind::AttachVolume => vec![("ec2:DescribeVolumes", Read), ("ec2:AttachVolume", Owned)],
        StepKind::TerminateInstance => vec![
            ("ec2:DescribeInstances", Read),
            ("ec2:TerminateInstances", Owned),
        ],
        StepKind::ProvisionInstance => vec![
            ("ec2:DescribeInstances", Read),
            ("ec2:RunInstances", Create),
            ("ec2:CreateTags", Tag),
            ("iam:PassRole", Other),
        ],
        StepKind::CreateVolume => vec![
            ("ec2:DescribeVolumes", Read),
            ("ec2:CreateVolume", Create),
            ("ec2:CreateTags", Tag),
        ],
        StepKind::WaitVolume => vec![("ec2:DescribeVolumes", Read)],
        StepKind::MarkRestoreComplete => {
            vec![("ec2:DescribeInstances", Read), ("ec2:CreateTags", Tag)]
        }
        StepKind::ClaimCluster => {
            vec![("ec2:DescribeInstances", Read), ("ec2:CreateTags", Claim)]
        }
        StepKind::DeleteVolume => vec![("ec2:DescribeVolumes", Read), ("ec2:DeleteVolume", Owned)],
        // Called in the destination region; found again by its source tag.
        StepKind::CopySnapshot => vec![
            ("ec2:CopySnapshot", Create),
            ("ec2:CreateTags", Tag),
            ("ec2:DescribeSnapshots", Read),
        ],
        _ => vec![],
    };
    let node_step = asdr_planner_node_step(kind);
    if ssm && node_step {
        a.extend([
            ("ssm:SendCommand", Other),
            ("ssm:GetCommandInvocation", Other),
        ]);
    }
    if s3 {
        match kind {
            StepKind::CopySmd => a.push(("s3:PutObject", Other)),
            StepKind::DeleteBackup => {
                a.extend([("s3:ListBucket", Other), ("s3:DeleteObject", Other)])
            }
            StepKind::RestoreSmd | StepKind::CopySmdArchive | StepKind::CheckSmdArchive => {
                a.push(("s3:GetObject", Other))
            }
            // Reads each SMD archive and its checksum, writes the manifest, reads it back.
            StepKind::WriteManifest => a.extend([("s3:GetObject", Other), ("s3:PutObject", Other)]),
            _ => {}
        }
    }
    a
}

fn asdr_planner_node_step(kind: StepKind) -> bool {
    crate::node_provider::is_node_step(kind)
}

/// The IAM policy document for `plan`, as JSON.
pub fn policy_for(plan: &Plan, ssm: bool, smd_to: &str) -> Value {
    policy_for_kinds(
        &plan.cluster,
        plan.cluster_id.as_deref(),
        plan.steps.iter().map(|s| s.kind()),
        ssm,
        smd_to,
        &Regions::default(),
    )
}

/// Where a policy acts besides its own region: its copies (region, KMS key, SMD store).
#[derive(Debug, Clone, Default)]
pub struct Regions {
    pub home: String,
    pub copies: Vec<asdr_specs::Copy>,
    /// The role restores into another region: its volumes come from copies encrypted there.
    pub restores_elsewhere: bool,
}

/// The step kinds a backup with copies can need, whatever today's plan holds: the role that
/// runs scheduled backups is prepared once.
pub const COPY_KINDS: [StepKind; 6] = [
    StepKind::CopySnapshot,
    StepKind::WaitSnapshot,
    StepKind::CopySmdArchive,
    StepKind::WriteManifest,
    StepKind::MarkSetComplete,
    StepKind::DeleteSnapshot,
];

/// The IAM policy document for a cluster's steps of these kinds, as JSON.
pub fn policy_for_kinds(
    cluster: &str,
    cluster_id: Option<&str>,
    kinds: impl IntoIterator<Item = StepKind>,
    ssm: bool,
    smd_to: &str,
    regions: &Regions,
) -> Value {
    let kinds: Vec<StepKind> = kinds.into_iter().collect();
    let copies = kinds.contains(&StepKind::CopySnapshot);
    let s3 = asdr_specs::StoreUri::is_s3(smd_to);
    let mut all: BTreeSet<(&'static str, Scope)> = BTreeSet::new();
    // Every apply observes first: every call observation makes, whatever the plan holds.
    all.extend(OBSERVATION.iter().copied());
    if s3 {
        all.extend([
            ("s3:ListBucket", Scope::Other),
            ("s3:GetObject", Scope::Other),
        ]);
    }
    for kind in kinds {
        all.extend(actions(kind, ssm, s3));
    }
    let of = |scope: Scope| {
        all.iter()
            .filter(|(_, s)| *s == scope)
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
    };
    let mut statements = Vec::new();
    if !of(Scope::Read).is_empty() {
        statements.push(json!({"Sid": "Observe", "Effect": "Allow", "Action": of(Scope::Read), "Resource": "*"}));
    }
    if !of(Scope::Create).is_empty() {
        // Creating actions also touch resources that are not created (the subnet, the source
        // volume or snapshot, the AMI): the tag condition applies to the new ones.
        statements.push(json!({"Sid": "CreateTaggedForCluster", "Effect": "Allow", "Action": of(Scope::Create), "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestTag/asdr:cluster": cluster}}}));
    }
    // What carries another cluster id is a same-named cluster's: never changed or retagged.
    let owned = |mut condition: Value| {
        if let Some(id) = cluster_id {
            condition["StringEqualsIfExists"] =
                json!({format!("aws:ResourceTag/{}", asdr_planner::tags::CLUSTER_ID): id});
        }
        condition
    };
    if !of(Scope::Owned).is_empty() {
        statements.push(json!({"Sid": "ChangeOnlyWhatAsdrOwns", "Effect": "Allow", "Action": of(Scope::Owned), "Resource": "*",
            "Condition": owned(json!({"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}))}));
    }
    if !of(Scope::Tag).is_empty() {
        let creating: Vec<&str> = of(Scope::Create)
            .iter()
            .map(|a| a.trim_start_matches("ec2:"))
            .collect();
        statements.push(json!({"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*",
            "Condition": {"StringEquals": {"ec2:CreateAction": creating}}}));
        // Never the id itself: only the claim sets it, only where none is.
        let mut tag_owned =
            owned(json!({"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}));
        tag_owned["ForAllValues:StringNotEquals"] =
            json!({"aws:TagKeys": [asdr_planner::tags::CLUSTER_ID]});
        statements.push(json!({"Sid": "TagWhatAsdrOwns", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*",
            "Condition": tag_owned}));
    }
    if !of(Scope::Claim).is_empty() {
        // Only the id tag, only this cluster's id, only on instances of its region that carry
        // none yet: an id once set is never overwritten, and no other id is ever set.
        let region = if regions.home.is_empty() {
            "*"
        } else {
            regions.home.as_str()
        };
        let key = asdr_planner::tags::CLUSTER_ID;
        let mut condition = json!({"ForAllValues:StringEquals": {"aws:TagKeys": [key]},
            "Null": {format!("aws:ResourceTag/{key}"): "true"}});
        if let Some(id) = cluster_id {
            condition["StringEquals"] = json!({format!("aws:RequestTag/{key}"): id});
        }
        statements.push(
            json!({"Sid": "ClaimTheClusterId", "Effect": "Allow", "Action": ["ec2:CreateTags"],
            "Resource": format!("arn:aws:ec2:{region}:*:instance/*"), "Condition": condition}),
        );
    }
    let other = of(Scope::Other);
    if other.contains(&"iam:PassRole") {
        statements.push(json!({"Sid": "PassTheNodeRole", "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}));
    }
    let ssm_actions: Vec<&str> = other
        .iter()
        .copied()
        .filter(|a| a.starts_with("ssm:"))
        .collect();
    if !ssm_actions.is_empty() {
        statements.push(json!({"Sid": "RunOnTheNodes", "Effect": "Allow", "Action": ssm_actions, "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}}));
    }
    let s3_actions: Vec<&str> = other
        .iter()
        .copied()
        .filter(|a| a.starts_with("s3:"))
        .collect();
    if !s3_actions.is_empty() {
        let prefix = smd_to.trim_start_matches("s3://").trim_end_matches('/');
        statements.push(json!({"Sid": "SmdArchives", "Effect": "Allow", "Action": s3_actions, "Resource": [format!("arn:aws:s3:::{prefix}/*")]}));
    }
    if (copies || regions.restores_elsewhere) && !regions.copies.is_empty() {
        copy_statements(&mut statements, regions);
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// What copies to other regions need beyond EC2: the KMS grants an encrypted copy takes (the
/// source's key to read, the destination's key to write; EC2 calls KMS on the caller's behalf,
/// hence `kms:ViaService`), and the copies' SMD stores.
fn copy_statements(statements: &mut Vec<Value>, regions: &Regions) {
    let mut via: Vec<String> = std::iter::once(regions.home.clone())
        .chain(regions.copies.iter().map(|c| c.region.clone()))
        .map(|r| format!("ec2.{r}.amazonaws.com"))
        .collect();
    via.sort();
    via.dedup();
    statements.push(json!({"Sid": "KmsForCopies", "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
        "Resource": "*", "Condition": {"StringEquals": {"kms:ViaService": via}}}));
    statements.push(json!({"Sid": "KmsGrantsForCopies", "Effect": "Allow", "Action": ["kms:CreateGrant"], "Resource": "*",
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}, "StringEquals": {"kms:ViaService": via}}}));
    let stores: Vec<String> = regions
        .copies
        .iter()
        .filter(|c| asdr_specs::StoreUri::is_s3(&c.smd_to))
        .map(|c| {
            format!(
                "arn:aws:s3:::{}/*",
                c.smd_to.trim_start_matches("s3://").trim_end_matches('/')
            )
        })
        .collect();
    if !stores.is_empty() {
        statements.push(json!({"Sid": "SmdArchiveCopies", "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:ListBucket", "s3:PutObject"], "Resource": stores}));
    }
}

/// Adds the team lock's statement when the policy's `lock` is an S3 object: every apply and
/// drill reads, writes (with conditions) and removes it, and S3 requires `s3:GetObject` beside
/// `s3:DeleteObject` for a delete conditional on the lock's version.
pub fn add_lock(policy: &mut Value, lock: Option<&str>) {
    let Some(asdr_specs::StoreUri::S3 { bucket, key }) = lock.and_then(asdr_specs::StoreUri::parse)
    else {
        return;
    };
    if let Some(statements) = policy["Statement"].as_array_mut() {
        statements.push(json!({"Sid": "TeamLock", "Effect": "Allow",
            "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
            "Resource": format!("arn:aws:s3:::{bucket}/{key}")}));
        // Without ListBucket on the bucket, S3 answers a read of a missing object 403, not 404:
        // a free lock would read as an error.
        statements.push(json!({"Sid": "TeamLockBucket", "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:aws:s3:::{bucket}")}));
    }
}

/// Every action a policy document allows (for tests and reviews).
pub fn actions_of(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}
