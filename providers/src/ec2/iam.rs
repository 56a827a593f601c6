//! The least-privilege IAM policy for an operation: exactly the actions its steps can use.
//!
//! Written for the AWS authorization model (Service Authorization Reference): an action
//! authorizes each resource it touches, each with the condition keys of its own type. So the
//! resources a call creates (a volume, a snapshot, an instance with its interface and root
//! volume) are allowed only when the request tags them `asdr:cluster=<cluster>`; the resources
//! it reads from are allowed apart — the cluster's own snapshots by their tag, the launch's
//! image, subnets, security groups and key pair by ARN, as the policy names them — since a
//! request-tag condition never holds for a resource that is not created. Changes to existing
//! resources need the cluster's tag, or the policy's pin of the instance. Describe calls take no
//! resource-level permissions and get `Resource: *`.

use std::collections::BTreeSet;

use asdr_planner::{Plan, StepKind};
use serde_json::{Value, json};

mod copies;
mod partition;
pub use copies::{backup_account_policy, backup_account_trust};
use copies::{backup_account_statements, copy_statements};
pub use partition::{in_partition, partition};

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
const OBSERVATION: [(&str, Scope); 9] = [
    ("ec2:DescribeInstances", Scope::Read),
    ("ec2:DescribeVolumes", Scope::Read),
    ("ec2:DescribeSnapshots", Scope::Read),
    // Snapshot locks (R20): read where the policy locks sets or asdr once locked one; without
    // it, retention there deletes nothing.
    ("ec2:DescribeLockedSnapshots", Scope::Read),
    // Recycle Bin coverage of the cluster's snapshots (reported, never changed).
    ("rbin:ListRules", Scope::Read),
    ("rbin:GetRule", Scope::Read),
    ("ec2:DescribeInstanceTypes", Scope::Read),
    ("ec2:DescribeSubnets", Scope::Read),
    // Interfaces holding a node's address that no instance holds (a replacement needs it).
    ("ec2:DescribeNetworkInterfaces", Scope::Read),
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
        // Never ec2:UnlockSnapshot: asdr only locks, extends or strengthens.
        StepKind::LockSnapshots => vec![
            ("ec2:DescribeSnapshots", Read),
            ("ec2:DescribeLockedSnapshots", Read),
            ("ec2:LockSnapshot", Owned),
            ("ec2:CreateTags", Tag),
        ],
        // Only the cluster's own snapshots, enabled and disabled around a restore's volumes.
        StepKind::FastSnapshotRestore => vec![
            ("ec2:DescribeSnapshots", Read),
            ("ec2:DescribeFastSnapshotRestores", Read),
            ("ec2:EnableFastSnapshotRestores", Owned),
            ("ec2:DisableFastSnapshotRestores", Owned),
        ],
        StepKind::DetachVolume => vec![
            ("ec2:DescribeVolumes", Read),
            // Termination protection, read before the volumes of an instance to terminate go.
            ("ec2:DescribeInstanceAttribute", Read),
            ("ec2:DetachVolume", Owned),
            ("ec2:CreateTags", Tag),
        ],
        StepKind::StopInstance => vec![
            ("ec2:DescribeInstances", Read),
            ("ec2:DescribeInstanceAttribute", Read),
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
            ("ssm:ListCommands", Other),
        ]);
    }
    if s3 {
        match kind {
            StepKind::CopySmd => a.push(("s3:PutObject", Other)),
            // Observing asbackup runs reads the retention each manifest holds (HeadObject shows
            // it only with GetObjectRetention): a retained set is never taken for deletable.
            StepKind::DeleteBackup => a.extend([
                ("s3:ListBucket", Other),
                ("s3:DeleteObject", Other),
                ("s3:GetObjectRetention", Other),
            ]),
            StepKind::RestoreSmd | StepKind::CopySmdArchive | StepKind::CheckSmdArchive => {
                a.push(("s3:GetObject", Other))
            }
            // Reads each SMD archive and its checksum, writes the manifest, reads it back.
            StepKind::WriteManifest => a.extend([("s3:GetObject", Other), ("s3:PutObject", Other)]),
            // A locked set's store files get S3 Object Lock retention as its snapshots do (and
            // the bucket's Object Lock configuration is read); never s3:BypassGovernanceRetention.
            StepKind::LockSnapshots | StepKind::RetainFiles => a.extend([
                ("s3:GetObject", Other),
                ("s3:PutObjectRetention", Other),
                ("s3:GetObjectRetention", Other),
                ("s3:GetBucketObjectLockConfiguration", Other),
            ]),
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

/// Where a policy acts and with what: its region and copies (region, KMS key, SMD store), what
/// it launches from, the instances the policy pins, the other S3 stores it uses.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    pub home: String,
    pub copies: Vec<asdr_specs::Copy>,
    /// The role restores into another region: its volumes come from copies encrypted there.
    pub restores_elsewhere: bool,
    /// Where RunInstances may launch (production's replacements, a drill's or a restore's
    /// elsewhere).
    pub launches: Vec<Launch>,
    /// Instances the policy pins (`cluster.nodes[].instance_id`): they need not carry asdr's tags.
    pub pinned: Vec<String>,
    /// S3 stores besides the SMD store (`backup.asbackup.to`).
    pub stores: Vec<String>,
    /// A drill's name: what it changes must carry `asdr:drill=<name>`, never production's.
    pub drill: Option<String>,
    /// The instance profile replacements launch with, and the role it holds (PassRole names
    /// the role).
    pub instance_profile: Option<String>,
    pub node_role: Option<String>,
    /// Copies made in a backup account (`backup.copies[].account`): this role only shares the
    /// sources with that account and assumes its role; everything there is that role's.
    pub backup_accounts: Vec<asdr_specs::Copy>,
}

/// What a launch uses, by ARN: the image, the subnets, the security groups (none: the VPC's
/// default group, whose id the policy does not know), the key pair.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub region: String,
    pub ami: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub key_name: Option<String>,
    /// Zones where a replacement may also go into the failed instance's own subnet (R4: it
    /// keeps its subnet, which need not be the policy's), and only with the policy's security
    /// groups, which hold it to their VPC.
    pub own_subnets_in: Vec<String>,
}

impl Launch {
    /// Production's replacements: the policy's instance settings.
    pub fn of_cluster(policy: &asdr_specs::Policy) -> Launch {
        let i = &policy.cluster.instance;
        Launch {
            region: policy.cluster.region.clone(),
            ami: i.ami.clone(),
            subnets: i.subnets.values().cloned().collect(),
            security_groups: i.security_groups.clone(),
            key_name: i.key_name.clone(),
            own_subnets_in: if i.security_groups.is_empty() {
                Vec::new()
            } else {
                i.subnets.keys().cloned().collect()
            },
        }
    }

    fn arns(&self) -> Vec<String> {
        let r = &self.region;
        let mut out = vec![format!("arn:aws:ec2:{r}::image/{}", self.ami)];
        out.extend(
            self.subnets
                .iter()
                .map(|s| format!("arn:aws:ec2:{r}:*:subnet/{s}")),
        );
        if self.security_groups.is_empty() {
            out.push(format!("arn:aws:ec2:{r}:*:security-group/*"));
        }
        out.extend(
            self.security_groups
                .iter()
                .map(|g| format!("arn:aws:ec2:{r}:*:security-group/{g}")),
        );
        if let Some(k) = &self.key_name {
            out.push(format!("arn:aws:ec2:{r}:*:key-pair/{k}"));
        }
        out
    }
}

/// The tags asdr writes on what exists: device tags on snapshots, a set's mark, a superseded
/// volume, a restore that stood.
const LATER_TAGS: [&str; 7] = [
    asdr_planner::tags::DEVICE,
    asdr_planner::tags::LOCK,
    asdr_planner::tags::COMPLETE,
    asdr_planner::tags::MANIFEST,
    asdr_planner::tags::MEMBERS,
    asdr_planner::tags::SUPERSEDED,
    asdr_planner::tags::RESTORE_COMPLETE,
];

/// What asdr changes when it owns it: instances, volumes, snapshots.
const OWNED: [&str; 3] = [
    "arn:aws:ec2:*:*:instance/*",
    "arn:aws:ec2:*:*:volume/*",
    "arn:aws:ec2:*::snapshot/*",
];

/// The resources each creating action makes (tagged at creation), by ARN pattern.
fn created(action: &str) -> &'static [&'static str] {
    match action {
        "ec2:CreateSnapshots" | "ec2:CreateSnapshot" | "ec2:CopySnapshot" => {
            &["arn:aws:ec2:*::snapshot/*"]
        }
        "ec2:CreateVolume" => &["arn:aws:ec2:*:*:volume/*"],
        "ec2:RunInstances" => &[
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:*:*:network-interface/*",
        ],
        _ => &[],
    }
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
    for &kind in &kinds {
        all.extend(actions(kind, ssm, s3));
    }
    let of = |scope: Scope| {
        all.iter()
            .filter(|(_, s)| *s == scope)
            .map(|(a, _)| *a)
            .collect::<Vec<_>>()
    };
    let mut statements = Vec::new();
    // DescribeInstanceAttribute is the one read scoped to a resource (the instance).
    let instance_reads = ["ec2:DescribeInstanceAttribute"];
    // Reads scoped to a resource: termination protection (an instance), a Recycle Bin rule.
    let reads: Vec<&str> = of(Scope::Read)
        .into_iter()
        .filter(|a| !instance_reads.contains(a) && *a != "rbin:GetRule")
        .collect();
    if !reads.is_empty() {
        statements
            .push(json!({"Sid": "Observe", "Effect": "Allow", "Action": reads, "Resource": "*"}));
    }
    if of(Scope::Read).iter().any(|a| instance_reads.contains(a)) {
        statements.push(
            json!({"Sid": "ReadTerminationProtection", "Effect": "Allow", "Action": instance_reads,
            "Resource": "arn:aws:ec2:*:*:instance/*"}),
        );
    }
    statements.push(json!({"Sid": "ReadRecycleBinRules", "Effect": "Allow",
        "Action": ["rbin:GetRule"], "Resource": "arn:aws:rbin:*:*:rule/*"}));
    let creating = of(Scope::Create);
    if !creating.is_empty() {
        // What is created carries the cluster's tag from its first moment.
        let mut made: Vec<&str> = creating
            .iter()
            .flat_map(|a| created(a).iter().copied())
            .collect();
        made.sort();
        made.dedup();
        let mut tagged = json!({"StringEquals": {"aws:RequestTag/asdr:cluster": cluster}});
        if let Some(d) = &regions.drill {
            // A drill makes only what is tagged as its own.
            tagged["StringEquals"][format!("aws:RequestTag/{}", asdr_planner::drill::DRILL)] =
                json!(d);
        }
        statements.push(json!({"Sid": "CreateTaggedForCluster", "Effect": "Allow", "Action": creating, "Resource": made,
            "Condition": tagged}));
        // What creating reads from is not created and carries no request tags: allowed apart.
        let from_snapshots: Vec<&str> = creating
            .iter()
            .copied()
            // CopySnapshot's permissions apply to the new snapshot only (its one resource type).
            .filter(|a| *a == "ec2:CreateVolume")
            .collect();
        if !from_snapshots.is_empty() {
            statements.push(json!({"Sid": "FromTheClustersSnapshots", "Effect": "Allow", "Action": from_snapshots,
                "Resource": "arn:aws:ec2:*::snapshot/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}}));
        }
        let snapshotting: Vec<&str> = creating
            .iter()
            .copied()
            .filter(|a| matches!(*a, "ec2:CreateSnapshots" | "ec2:CreateSnapshot"))
            .collect();
        if snapshotting.contains(&"ec2:CreateSnapshots") {
            // The cluster's instances (by tag, or pinned by the policy); their volumes need not
            // carry asdr's tags (attached by hand), and CreateSnapshots takes only the
            // instance's own.
            statements.push(json!({"Sid": "SnapshotTheNodes", "Effect": "Allow", "Action": ["ec2:CreateSnapshots"],
                "Resource": "arn:aws:ec2:*:*:instance/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}}));
            if !regions.pinned.is_empty() {
                let arns = pinned_arns(regions, "*");
                statements.push(json!({"Sid": "SnapshotThePinnedNodes", "Effect": "Allow", "Action": ["ec2:CreateSnapshots"], "Resource": arns}));
            }
            statements.push(json!({"Sid": "SnapshotTheNodesVolumes", "Effect": "Allow", "Action": ["ec2:CreateSnapshots"],
                "Resource": "arn:aws:ec2:*:*:volume/*"}));
        }
        if snapshotting.contains(&"ec2:CreateSnapshot") {
            // One volume alone: only a volume of the cluster's (any volume would do otherwise).
            statements.push(json!({"Sid": "SnapshotTheClustersVolumes", "Effect": "Allow", "Action": ["ec2:CreateSnapshot"],
                "Resource": "arn:aws:ec2:*:*:volume/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}}));
        }
        if creating.contains(&"ec2:RunInstances") && !regions.launches.is_empty() {
            let mut from: Vec<String> = regions.launches.iter().flat_map(Launch::arns).collect();
            from.sort();
            from.dedup();
            statements.push(
                json!({"Sid": "LaunchFromThePolicysImageAndNetwork", "Effect": "Allow",
                "Action": ["ec2:RunInstances"], "Resource": from}),
            );
            for l in regions
                .launches
                .iter()
                .filter(|l| !l.own_subnets_in.is_empty())
            {
                statements.push(json!({"Sid": "LaunchIntoTheFailedNodesOwnSubnet", "Effect": "Allow",
                    "Action": ["ec2:RunInstances"], "Resource": format!("arn:aws:ec2:{}:*:subnet/*", l.region),
                    "Condition": {"StringEquals": {"ec2:AvailabilityZone": l.own_subnets_in}}}));
            }
        }
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
        let mut condition =
            owned(json!({"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}));
        if let Some(d) = &regions.drill {
            // A drill changes (attaches, terminates, deletes) only what it made: never production.
            condition["StringEquals"][format!("aws:ResourceTag/{}", asdr_planner::drill::DRILL)] =
                json!(d);
        }
        statements.push(json!({"Sid": "ChangeOnlyWhatAsdrOwns", "Effect": "Allow", "Action": of(Scope::Owned), "Resource": OWNED,
            "Condition": condition}));
        // The instances the policy pins are the cluster's by the policy's word.
        let on_instances: Vec<&str> = of(Scope::Owned)
            .into_iter()
            .filter(|a| {
                matches!(
                    *a,
                    "ec2:AttachVolume"
                        | "ec2:DetachVolume"
                        | "ec2:StopInstances"
                        | "ec2:TerminateInstances"
                )
            })
            .collect();
        if !on_instances.is_empty() && !regions.pinned.is_empty() && regions.drill.is_none() {
            let arns = pinned_arns(regions, "*");
            statements.push(json!({"Sid": "ChangeThePinnedInstances", "Effect": "Allow", "Action": on_instances, "Resource": arns}));
        }
    }
    if !of(Scope::Tag).is_empty() {
        let creating: Vec<&str> = of(Scope::Create)
            .iter()
            .map(|a| a.trim_start_matches("ec2:"))
            .collect();
        // Tags at creation carry the cluster's name (and id, when known): nothing is created
        // tagged as another cluster's.
        let mut on_create = json!({"StringEquals": {"ec2:CreateAction": creating, "aws:RequestTag/asdr:cluster": cluster}});
        if let Some(id) = cluster_id {
            on_create["StringEquals"]
                [format!("aws:RequestTag/{}", asdr_planner::tags::CLUSTER_ID)] = json!(id);
        }
        statements.push(json!({"Sid": "TagOnCreate", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": "*",
            "Condition": on_create}));
        // Later, only the tags asdr writes after creation: never the cluster's name or id
        // (only the claim sets the id, only where none is).
        let mut tag_owned =
            owned(json!({"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}}));
        tag_owned["ForAllValues:StringEquals"] = json!({"aws:TagKeys": LATER_TAGS});
        if let Some(d) = &regions.drill {
            // A drill's role never marks production's sets or volumes (`asdr:complete`,
            // `asdr:superseded`…): only what the drill made.
            tag_owned["StringEquals"][format!("aws:ResourceTag/{}", asdr_planner::drill::DRILL)] =
                json!(d);
        }
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
        // Without the id (not given, not stated, no world file) the claim is not granted: any
        // id on any instance would be another cluster's denial of service.
        if let Some(id) = cluster_id {
            let condition = json!({"ForAllValues:StringEquals": {"aws:TagKeys": [key]},
                "Null": {format!("aws:ResourceTag/{key}"): "true"},
                "StringEquals": {format!("aws:RequestTag/{key}"): id, "aws:ResourceTag/asdr:cluster": cluster}});
            statements.push(
                json!({"Sid": "ClaimTheClusterId", "Effect": "Allow", "Action": ["ec2:CreateTags"],
                "Resource": format!("arn:aws:ec2:{region}:*:instance/*"), "Condition": condition}),
            );
            if !regions.pinned.is_empty() {
                let arns = pinned_arns(regions, region);
                statements.push(json!({"Sid": "ClaimThePinnedInstances", "Effect": "Allow", "Action": ["ec2:CreateTags"], "Resource": arns,
                    "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": [key]},
                        "Null": {format!("aws:ResourceTag/{key}"): "true"},
                        "StringEquals": {format!("aws:RequestTag/{key}"): id}}}));
            }
        }
    }
    let other = of(Scope::Other);
    if other.contains(&"iam:PassRole")
        && let Some(role) = regions
            .node_role
            .as_ref()
            .or(regions.instance_profile.as_ref())
    {
        // Only the nodes' role (PassRole names the role the profile holds, never the profile):
        // passing any role to an instance the role then commands would be any role's power.
        statements.push(
            json!({"Sid": "PassTheNodeRole", "Effect": "Allow", "Action": ["iam:PassRole"],
            "Resource": format!("arn:aws:iam::*:role/{role}"),
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}}),
        );
    }
    let ssm_actions: Vec<&str> = other
        .iter()
        .copied()
        .filter(|a| a.starts_with("ssm:"))
        .collect();
    if !ssm_actions.is_empty() {
        // SendCommand authorizes the instance (the cluster's, or pinned) and the document;
        // GetCommandInvocation and ListCommands (a command still running is found again, never
        // sent twice) have no resource to scope.
        let mut on_nodes = json!({"StringEquals": {"aws:ResourceTag/asdr:cluster": cluster}});
        if let Some(d) = &regions.drill {
            // A drill's role runs commands (as root) only on the drill's own stand-ins, never on
            // production's nodes.
            on_nodes["StringEquals"][format!("aws:ResourceTag/{}", asdr_planner::drill::DRILL)] =
                json!(d);
        }
        statements.push(
            json!({"Sid": "RunOnTheNodes", "Effect": "Allow", "Action": ["ssm:SendCommand"],
            "Resource": "arn:aws:ec2:*:*:instance/*", "Condition": on_nodes}),
        );
        if !regions.pinned.is_empty() && regions.drill.is_none() {
            let arns = pinned_arns(regions, "*");
            statements.push(json!({"Sid": "RunOnThePinnedNodes", "Effect": "Allow", "Action": ["ssm:SendCommand"], "Resource": arns}));
        }
        statements.push(
            json!({"Sid": "RunTheShellDocument", "Effect": "Allow", "Action": ["ssm:SendCommand"],
            "Resource": "arn:aws:ssm:*::document/AWS-RunShellScript"}),
        );
        statements.push(json!({"Sid": "ReadCommandResults", "Effect": "Allow", "Action": ["ssm:GetCommandInvocation", "ssm:ListCommands"], "Resource": "*"}));
    }
    let s3_actions: Vec<&str> = other
        .iter()
        .copied()
        .filter(|a| a.starts_with("s3:"))
        .collect();
    if !s3_actions.is_empty() {
        s3_statements(&mut statements, &s3_actions, smd_to, &regions.stores);
    }
    if kinds
        .iter()
        .any(|k| matches!(k, StepKind::CreateVolume | StepKind::ProvisionInstance))
        && !(copies || regions.restores_elsewhere)
    {
        // Volumes made from encrypted snapshots (or encrypted by default) need the key.
        kms_statements(&mut statements, std::slice::from_ref(&regions.home));
    }
    if (copies || regions.restores_elsewhere) && !regions.copies.is_empty() {
        copy_statements(&mut statements, regions);
    }
    if copies && !regions.backup_accounts.is_empty() {
        backup_account_statements(&mut statements, cluster, cluster_id, regions);
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// KMS through EC2 in `regions` (EC2 calls KMS on the caller's behalf, hence `kms:ViaService`):
/// reading an encrypted snapshot, writing an encrypted volume or copy, and the grant EBS takes.
fn kms_statements(statements: &mut Vec<Value>, regions: &[String]) {
    let mut via: Vec<String> = regions
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| format!("ec2.{r}.amazonaws.com"))
        .collect();
    via.sort();
    via.dedup();
    if via.is_empty() {
        return;
    }
    statements.push(json!({"Sid": "KmsThroughEc2", "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKeyWithoutPlaintext", "kms:ReEncryptFrom", "kms:ReEncryptTo"],
        "Resource": "arn:aws:kms:*:*:key/*", "Condition": {"StringEquals": {"kms:ViaService": via}}}));
    statements.push(json!({"Sid": "KmsGrantsForEbs", "Effect": "Allow", "Action": ["kms:CreateGrant"], "Resource": "arn:aws:kms:*:*:key/*",
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}, "StringEquals": {"kms:ViaService": via}}}));
}

/// S3: objects under each store's prefix, and ListBucket on each store's bucket (ListBucket
/// applies to the bucket, never to an object ARN).
fn s3_statements(statements: &mut Vec<Value>, actions: &[&str], smd_to: &str, others: &[String]) {
    let stores: Vec<&str> = std::iter::once(smd_to)
        .chain(others.iter().map(String::as_str))
        .filter(|s| asdr_specs::StoreUri::is_s3(s))
        .collect();
    let mut objects = Vec::new();
    let mut buckets = Vec::new();
    for s in stores {
        let path = s.trim_start_matches("s3://").trim_end_matches('/');
        let bucket = path.split('/').next().unwrap_or(path);
        objects.push(format!("arn:aws:s3:::{path}/*"));
        buckets.push(format!("arn:aws:s3:::{bucket}"));
    }
    buckets.sort();
    buckets.dedup();
    // Actions on the bucket itself, not its objects.
    let on_bucket = ["s3:ListBucket", "s3:GetBucketObjectLockConfiguration"];
    let (bucket_actions, on_objects): (Vec<&str>, Vec<&str>) =
        actions.iter().partition(|a| on_bucket.contains(a));
    if !on_objects.is_empty() {
        statements.push(json!({"Sid": "SmdArchives", "Effect": "Allow", "Action": on_objects, "Resource": objects}));
    }
    if !bucket_actions.is_empty() {
        statements.push(json!({"Sid": "ListTheStores", "Effect": "Allow", "Action": bucket_actions, "Resource": buckets}));
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

/// The ARNs of the instances the policy pins, in `region` (`*`: any).
fn pinned_arns(regions: &Regions, region: &str) -> Vec<String> {
    regions
        .pinned
        .iter()
        .map(|i| format!("arn:aws:ec2:{region}:*:instance/{i}"))
        .collect()
}
