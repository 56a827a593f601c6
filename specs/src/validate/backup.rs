//! `backup`: schedule, retention, the SMD store, the rolling limit, asbackup, consistency (R1, R6,
//! R8, R9).

use super::*;

impl Validator<'_> {
    pub(super) fn backup(&mut self, b: RawBackup, cluster: &Cluster) -> Backup {
        let every = self.duration(&b.every);
        let retain = self.retain(&b.retain, every);
        check_store_uri(self, &b.smd.to, "backup.smd.to");
        // SSM moves files only through S3: a node cannot write to a file store on asdr's machine.
        if cluster.access.transport == crate::Transport::Ssm
            && b.smd.to.value.starts_with("file://")
        {
            self.err(
                b.smd.to.span,
                "transport `ssm` moves SMD archives through S3 only: `backup.smd.to` must be s3://… (ssh and local transports can use file://)",
            );
        }
        let min_rf = cluster.min_replication_factor();
        let disruptive = matches!(
            b.consistency.value,
            Consistency::Quiesce | Consistency::StopNode
        );
        let by_rack = b
            .max_nodes_at_once
            .as_ref()
            .is_some_and(|m| m.value == crate::raw::MaxAtOnce::Rack);
        let max_nodes_at_once = match &b.max_nodes_at_once {
            Some(m) if m.value == crate::raw::MaxAtOnce::Rack => {
                // A rack out leaves every record's other copies in the other racks only when
                // the cluster is rack-aware with at least two racks and two copies.
                let racks: std::collections::BTreeSet<u32> =
                    cluster.racks.values().copied().collect();
                if racks.len() < 2 {
                    self.err(m.span, "`max_nodes_at_once: rack` needs a rack-aware cluster of at least two racks (`cluster.racks`)")
                        .rule = Some("R8");
                } else if min_rf < 2 {
                    self.err(m.span, "`max_nodes_at_once: rack` needs replication_factor 2 or more: a rack out leaves no copy otherwise")
                        .rule = Some("R8");
                }
                let largest = racks
                    .iter()
                    .map(|r| {
                        cluster
                            .nodes
                            .iter()
                            .filter(|n| cluster.rack_of(n) == *r)
                            .count()
                    })
                    .max()
                    .unwrap_or(1);
                largest.max(1) as u32
            }
            Some(m) => {
                let crate::raw::MaxAtOnce::Nodes(v) = m.value else {
                    unreachable!("rack handled above")
                };
                if v == 0 {
                    self.err(m.span, "max_nodes_at_once must be at least 1");
                    1
                } else {
                    if v + 1 > min_rf {
                        self.err(m.span, format!(
                            "max_nodes_at_once {v} is more than replication_factor - 1 = {}: taking that many nodes out at once makes partitions unavailable",
                            min_rf.saturating_sub(1)
                        )).rule = Some("R8");
                    }
                    v
                }
            }
            None => {
                if disruptive && min_rf < 2 {
                    self.err(b.consistency.span, format!(
                        "consistency `{}` takes nodes out one at a time, but replication factor 1 leaves no copy to serve from",
                        b.consistency.value
                    )).rule = Some("R8");
                }
                1
            }
        };
        let mut tags = BTreeMap::new();
        if let Some(t) = &b.tags {
            for (k, v) in &t.value {
                if k.value.starts_with("asdr:") || k.value.starts_with("aws:") {
                    self.err(k.span, format!("tag key `{}` is reserved: asdr:* tags are the state asdr finds its resources by", k.value));
                } else if k.value.is_empty() || k.value.len() > 128 || v.len() > 256 {
                    self.err(
                        k.span,
                        format!(
                            "tag `{}` is out of EC2's limits (key 1–128, value 0–256 characters)",
                            k.value
                        ),
                    );
                }
                tags.insert(k.value.clone(), v.clone());
            }
        }
        let snapshot_description = match &b.snapshot_description {
            Some(s) => {
                let t = self.template(s, "backup.snapshot_description");
                let vars = SnapshotVars {
                    cluster: &cluster.name,
                    node: "a1",
                    device: "/dev/sdf",
                    set: "bs-20260101T000000Z",
                };
                if let Err(e) = t.render(vars) {
                    self.err(
                        s.span,
                        format!("template in backup.snapshot_description does not render: {e}"),
                    );
                }
                t
            }
            None => Template::compile("{{ cluster }} {{ node }} {{ device }} {{ set }}")
                .expect("default compiles"),
        };
        let asbackup = match (&b.method.value, &b.asbackup) {
            (Method::Asbackup, None) => {
                self.err(
                    b.method.span,
                    "method `asbackup` needs a `backup.asbackup` section with `to`",
                );
                None
            }
            (_, Some(a)) => {
                check_store_uri(self, &a.value.to, "backup.asbackup.to");
                let incremental_every = a.value.incremental_every.as_ref().map(|d| {
                    let d2 = self.duration(d);
                    if d2.seconds() >= every.seconds() {
                        self.err(d.span, format!("incremental_every {d2} is not shorter than every {every}: no incremental backup would ever run"));
                    }
                    d2
                });
                // `--compress zstd` in args is the `compress` key written the old way: taken as
                // it, so the plan shows it. Every other argument is vetted against its own tool's
                // options: asdr's own are refused in any spelling (given again they would
                // contradict the plan), and so is anything the tool does not have.
                let mut compress = a.value.compress.as_ref().map(|c| c.value);
                let mut args = Vec::new();
                if let Some(given) = &a.value.args {
                    let mut it = given.value.iter().peekable();
                    while let Some(arg) = it.next() {
                        if matches!(arg.as_str(), "-z" | "--compress")
                            && it.peek().is_some_and(|v| *v == "zstd")
                        {
                            it.next();
                            compress = Some(Compress::Zstd);
                            continue;
                        }
                        args.push(arg.clone());
                    }
                    self.tool_args(
                        &args,
                        &super::tool_args::ASBACKUP,
                        given.span,
                        "backup.asbackup.args",
                    );
                }
                let restore_args = a.value.restore_args.as_ref().map_or_else(Vec::new, |r| {
                    self.tool_args(
                        &r.value,
                        &super::tool_args::ASRESTORE,
                        r.span,
                        "backup.asbackup.restore_args",
                    );
                    r.value.clone()
                });
                Some(Asbackup {
                    to: a.value.to.value.clone(),
                    run_on: a.value.run_on.as_ref().map(|r| r.value).unwrap_or_default(),
                    compress,
                    encrypt: a.value.encrypt.as_ref().map(|e| Encrypt {
                        algorithm: e.value.algorithm.value,
                        key_file: e.value.key_file.value.clone(),
                    }),
                    incremental_every,
                    args,
                    restore_args,
                })
            }
            (_, None) => None,
        };
        let accept_zombie_records = b.accept_zombie_records.as_ref().is_some_and(|a| a.value);
        let lock = b
            .lock
            .as_ref()
            .and_then(|l| self.lock(l, &b, retain, every, "backup", &b.smd.to.value));
        let copies = self.copies(&b, cluster, retain, every, lock);
        if b.method.value == Method::EbsSnapshot {
            self.consistency_rules(&b, cluster, accept_zombie_records);
        }
        Backup {
            method: b.method.value,
            consistency: b.consistency.value,
            consistency_span: b.consistency.span,
            every,
            every_span: b.every.span,
            retain,
            smd_to: b.smd.to.value.clone(),
            max_nodes_at_once,
            by_rack,
            tags,
            snapshot_description,
            asbackup,
            accept_zombie_records,
            copies,
            lock,
            fast_restore: self.fast_restore_keep(&b, cluster),
        }
    }

    /// `backup.fast_restore`: EBS snapshots only; said when the set holds more snapshots than
    /// EBS enables per region by default.
    fn fast_restore_keep(&mut self, b: &RawBackup, cluster: &Cluster) -> Option<FastRestoreKeep> {
        let f = b.fast_restore.as_ref()?;
        if b.method.value == Method::Asbackup {
            self.err(f.span, "backup.fast_restore keeps Fast Snapshot Restore on EBS snapshots, and `method: asbackup` takes none");
            return None;
        }
        let devices: std::collections::BTreeSet<&str> = cluster
            .namespaces
            .iter()
            .flat_map(|n| n.devices.iter().map(|d| d.ebs.source()))
            .collect();
        let snapshots = cluster.nodes.len() * devices.len();
        if snapshots > 5 {
            self.notes.push((f.span, format!("backup.fast_restore keeps Fast Snapshot Restore on {snapshots} snapshots (every node's every device), and EBS enables 5 per region unless its quota (\"Fast snapshot restore\" in Service Quotas) is raised: raise it first, or the backup's enable step fails")));
        }
        Some(f.value)
    }

    fn retain(&mut self, r: &Sp<RawRetain>, every: Duration) -> Retain {
        let count = r.value.count.as_ref().map(|c| {
            if c.value == 0 {
                self.err(
                    c.span,
                    "retain.count must be at least 1: the newest complete set is always kept",
                );
            }
            c.value
        });
        let max_age = r.value.max_age.as_ref().map(|m| self.duration(m));
        if count.is_none() && max_age.is_none() {
            self.err(r.span, "retain needs `count`, `max_age` or both");
        }
        if let Some(max_age) = max_age
            && max_age < every
            && let Some(m) = &r.value.max_age
            // A max_age that did not parse is said once, above, not compared as a stand-in.
            && Duration::parse(&m.value).is_ok()
        {
            self.err(m.span, format!("retain.max_age {max_age} is shorter than every {every}: no set would live to be replaced"));
        }
        Retain { count, max_age }
    }

    /// `backup.copies`: other regions only, each once, with its own SMD store.
    fn copies(
        &mut self,
        b: &RawBackup,
        cluster: &Cluster,
        home_retain: Retain,
        every: Duration,
        home_lock: Option<Lock>,
    ) -> Vec<Copy> {
        let Some(list) = &b.copies else {
            return Vec::new();
        };
        if b.method.value == Method::Asbackup && !list.value.is_empty() {
            self.err(list.span, "backup.copies copies EBS snapshot sets; an asbackup set lives in `asbackup.to`: replicate that bucket to the other region (S3 replication) instead");
            return Vec::new();
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for c in &list.value {
            let r = &c.value.region;
            let account = self.backup_account(&c.value);
            // A role of another partition is not one this cluster's credentials can assume.
            if let (Some(a), Some(r)) = (&account, &c.value.role_arn) {
                let want = partition_of(&cluster.region);
                if !a.role_arn.starts_with(&format!("arn:{want}:")) {
                    self.err(r.span, format!("backup.copies[].role_arn is not in partition {want}, the cluster's ({}): a role is assumed only within its partition", cluster.region));
                }
            }
            // One role per backup account: `iam-policy --backup-account` prints that role, and
            // every copy there is made by it.
            if let (Some(a), Some(span)) = (&account, c.value.role_arn.as_ref().map(|r| r.span))
                && let Some(earlier) = out
                    .iter()
                    .filter_map(|x: &Copy| x.account.as_ref())
                    .find(|x| x.id == a.id)
                && (earlier.role_arn != a.role_arn || earlier.external_id != a.external_id)
            {
                self.err(span, format!("backup.copies: account {} is reached through {} (and its external id) by an earlier copy: every copy in one backup account uses the same role_arn and external_id", a.id, earlier.role_arn));
            }
            if let Some(a) = &account
                && !crate::StoreUri::is_s3(&c.value.smd_to.value)
            {
                // Allowed (a test, a mounted share), but said: the point of the account is lost.
                self.notes.push((c.value.smd_to.span, format!("backup.copies[].smd_to is a file store: the SMD archives and manifests of the copies in account {} stay on this machine's disk, where the workload's credentials reach them; a bucket that account owns keeps them apart", a.id)));
            }
            let key = crate::place::place(&r.value, account.as_ref().map(|a| a.id.as_str()));
            if !is_region(&r.value) {
                self.err(
                    r.span,
                    format!("`{}` is not an AWS region name such as us-west-2", r.value),
                );
            } else if r.value == cluster.region && c.value.account.is_none() {
                // In a backup account the cluster's own region is another place: the copies
                // survive the workload account, not the region.
                self.err(r.span, format!("backup.copies: {} is the cluster's own region: a copy protects against losing the region only in another one (or in another account: name `account` and `role_arn`)", r.value));
            } else if !seen.insert(key.clone()) {
                self.err(
                    r.span,
                    match &account {
                        Some(a) => format!(
                            "backup.copies names region {} in account {} twice",
                            r.value, a.id
                        ),
                        None => format!("backup.copies names region {} twice", r.value),
                    },
                );
            }
            check_store_uri(self, &c.value.smd_to, "backup.copies[].smd_to");
            if c.value.smd_to.value.trim_end_matches('/') == b.smd.to.value.trim_end_matches('/') {
                self.err(c.value.smd_to.span, "backup.copies[].smd_to is the same store as backup.smd.to: the SMD archive would be lost with the region; name a store in the copy's region");
            } else if let Some(why) = shares_home_store(&c.value.smd_to.value, &b.smd.to.value) {
                self.err(c.value.smd_to.span, match &account {
                    Some(a) => format!("backup.copies[].smd_to {why}: the copies' SMD archives would be the workload account's to delete; name a bucket account {} owns", a.id),
                    None => format!("backup.copies[].smd_to {why}: the copies' SMD archives would be lost with the cluster's region; name a bucket in {}", r.value),
                });
            } else if let Some((other, _)) =
                asdr_specs_bucket(&c.value.smd_to.value).and_then(|bucket| {
                    out.iter()
                        .find(|x: &&Copy| {
                            asdr_specs_bucket(&x.smd_to).as_deref() == Some(bucket.as_str())
                                && x.account.as_ref().map(|a| &a.id)
                                    != account.as_ref().map(|a| &a.id)
                        })
                        .map(|x| (x.region.clone(), ()))
                })
            {
                // A bucket is one account's: the copies of two accounts cannot share it.
                self.err(c.value.smd_to.span, format!("backup.copies[].smd_to is the bucket of the copies in {other}, which are another account's: each account's copies need a bucket of their own"));
            }
            let retain = match &c.value.retain {
                Some(r) => self.retain(r, every),
                None => home_retain,
            };
            if let Some(k) = &c.value.kms_key_id
                && k.value.trim().is_empty()
            {
                self.err(k.span, "kms_key_id is empty");
            }
            let max_in_flight = match &c.value.max_in_flight {
                // EBS allows 20 concurrent snapshot copies into a region, for the whole
                // account: more in flight would only be refused (ResourceLimitExceeded).
                Some(m) if m.value == 0 || m.value > MAX_COPIES_IN_FLIGHT => {
                    self.err(
                        m.span,
                        format!(
                            "max_in_flight {} is outside 1–{MAX_COPIES_IN_FLIGHT}: EBS allows {MAX_COPIES_IN_FLIGHT} concurrent snapshot copies into a region, shared by everything in the account that copies there",
                            m.value
                        ),
                    );
                    DEFAULT_COPIES_IN_FLIGHT
                }
                Some(m) => m.value,
                None => DEFAULT_COPIES_IN_FLIGHT,
            };
            let lock = match &c.value.lock {
                Some(l) => self.lock(
                    l,
                    b,
                    retain,
                    every,
                    &format!("backup.copies ({})", r.value),
                    &c.value.smd_to.value,
                ),
                None => home_lock,
            };
            let complete_within_minutes = c.value.complete_within.as_ref().map(|s| {
                let d = self.duration(s);
                let minutes = d.seconds() / 60;
                // CopySnapshot's CompletionDurationMinutes: 15 to 2,880, in steps of 15.
                if !d.seconds().is_multiple_of(15 * 60) || !(15..=2880).contains(&minutes) {
                    self.err(
                        s.span,
                        format!(
                            "complete_within {} is not one EBS takes: time-based copies complete within 15m to 48h, in steps of 15 minutes",
                            s.value
                        ),
                    );
                }
                minutes.clamp(15, 2880) as u32
            });
            out.push(Copy {
                complete_within_minutes,
                lock,
                region: key,
                aws_region: r.value.clone(),
                account,
                region_span: r.span,
                retain,
                kms_key_id: c.value.kms_key_id.as_ref().map(|k| k.value.clone()),
                smd_to: c.value.smd_to.value.clone(),
                max_in_flight,
            });
        }
        out
    }

    /// `backup.copies[].account`, `role_arn` and `external_id`: a 12-digit account, the role in
    /// that account asdr assumes, and the external id its trust policy may require.
    fn backup_account(&mut self, c: &crate::raw::RawCopy) -> Option<crate::place::BackupAccount> {
        match (&c.account, &c.role_arn) {
            (None, None) => {
                if let Some(x) = &c.external_id {
                    self.err(x.span, "backup.copies[].external_id is used when assuming `role_arn`, which this copy does not name");
                }
                None
            }
            (Some(a), None) => {
                self.err(a.span, format!("backup.copies[].account {} needs `role_arn`: the role asdr assumes in that account to copy, lock and keep the sets there (arn:aws:iam::{}:role/NAME)", a.value, a.value));
                None
            }
            (None, Some(r)) => {
                self.err(r.span, "backup.copies[].role_arn needs `account`: the backup account the role belongs to");
                None
            }
            (Some(a), Some(r)) => {
                let mut ok = true;
                if a.value.len() != 12 || !a.value.chars().all(|ch| ch.is_ascii_digit()) {
                    self.err(a.span, format!("backup.copies[].account `{}` is not an AWS account id (12 digits; quote it so YAML keeps leading zeros)", a.value));
                    ok = false;
                }
                match role_account(&r.value) {
                    Some(ra) if ra == a.value => {}
                    Some(ra) => {
                        self.err(r.span, format!("backup.copies[].role_arn is a role of account {ra}, not of the backup account {}", a.value));
                        ok = false;
                    }
                    None => {
                        self.err(r.span, format!("backup.copies[].role_arn `{}` is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)", r.value));
                        ok = false;
                    }
                }
                if let Some(x) = &c.external_id {
                    // STS: 2–1224 characters of [\w+=,.@:/-].
                    let valid = (2..=1224).contains(&x.value.len())
                        && x.value
                            .chars()
                            .all(|ch| ch.is_ascii_alphanumeric() || "_+=,.@:/-".contains(ch));
                    if !valid {
                        self.err(x.span, "backup.copies[].external_id must be 2–1224 characters of letters, digits and _+=,.@:/- (STS AssumeRole)");
                        ok = false;
                    }
                }
                ok.then(|| crate::place::BackupAccount {
                    id: a.value.clone(),
                    role_arn: r.value.clone(),
                    external_id: c.external_id.as_ref().map(|x| x.value.clone()),
                })
            }
        }
    }

    pub(super) fn consistency_rules(&mut self, b: &RawBackup, cluster: &Cluster, accept: bool) {
        let span = b.consistency.span;
        match b.consistency.value {
            Consistency::None => {
                if let Some(ns) = cluster.namespaces.iter().find(|n| n.devices.len() > 1) {
                    self.err(span, format!(
                        "consistency `none` cannot back up namespace `{}`: it spans {} EBS volumes, and snapshots of separate volumes are not consistent with each other",
                        ns.name, ns.devices.len()
                    )).set("R1", "use `multi-volume` (one CreateSnapshots call per instance), or `quiesce` / `stop-node`");
                }
            }
            Consistency::Quiesce if cluster.edition == Edition::Community => {
                self.err(span, "consistency `quiesce` needs Enterprise Edition: Community Edition answers `ERROR:25:enterprise only`")
                    .set("R9", "use `multi-volume` or `stop-node`");
            }
            Consistency::Quiesce
                if cluster
                    .namespaces
                    .iter()
                    .any(|n| n.replication_factor as usize >= cluster.nodes.len()) =>
            {
                // A quiesced node moves to the end of every partition's succession list; with
                // as many copies as nodes that is still a replica, written to over fabric by
                // every write, which no client counter shows: its writes never stop.
                let ns = cluster
                    .namespaces
                    .iter()
                    .find(|n| n.replication_factor as usize >= cluster.nodes.len())
                    .expect("matched above");
                self.err(span, format!(
                    "consistency `quiesce` cannot stop writes to a node here: namespace `{}` keeps {} copies on {} nodes, so a quiesced node stays a replica of every partition and takes every write",
                    ns.name, ns.replication_factor, cluster.nodes.len()
                ))
                .set("R1", "use `multi-volume` (one CreateSnapshots call per instance) or `stop-node`");
            }
            Consistency::StopNode if !accept && !cluster.durable_deletes => {
                let how = if cluster.edition == Edition::Enterprise {
                    "restarts every node it backs up (warm on Enterprise, yet deletes a node misses while down can come back when it rejoins)"
                } else {
                    "cold-starts every node it backs up, and a cold start brings back records deleted without durable deletes"
                };
                self.err(span, format!("consistency `stop-node` {how}"))
                    .set("R6", "set `backup.accept_zombie_records: true`, declare `cluster.durable_deletes: true`, or use `multi-volume`");
            }
            _ => {}
        }
    }
}

/// An AWS region name: `us-west-2`, `eu-central-1`, `ap-southeast-4`, `us-gov-west-1`.
/// The account of an IAM role ARN (`arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`).
fn role_account(arn: &str) -> Option<&str> {
    let rest = ["arn:aws:iam::", "arn:aws-cn:iam::", "arn:aws-us-gov:iam::"]
        .iter()
        .find_map(|p| arn.strip_prefix(p))?;
    let (account, role) = rest.split_once(':')?;
    let name = role.strip_prefix("role/")?;
    // IAM role paths and names: letters, digits and +=,.@_-/ only (never a wildcard: the
    // workload role would be let assume every role of the account).
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c));
    (valid && !name.is_empty() && !name.ends_with('/')).then_some(account)
}

/// The bucket of an S3 store URI.
fn asdr_specs_bucket(uri: &str) -> Option<String> {
    match crate::StoreUri::parse(uri)? {
        crate::StoreUri::S3 { bucket, .. } => Some(bucket),
        _ => None,
    }
}

/// The AWS partition of a region.
fn partition_of(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

pub(super) fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// Why a copy's SMD store is not apart from the cluster's own (`backup.smd.to`): an S3 bucket
/// lives in one region, so the same bucket is the home region's whatever the prefix; a file store
/// inside the home store's directory (or holding it) is the same disk.
pub fn shares_home_store(copy: &str, home: &str) -> Option<String> {
    use crate::StoreUri;
    // The bucket however the URI spells it: case, a trailing dot, the virtual-hosted
    // (`bucket.s3[.region].amazonaws.com`) and path (`s3[.region].amazonaws.com/bucket`) forms.
    fn bucket(s: &StoreUri) -> Option<String> {
        let StoreUri::S3 { bucket, key } = s else {
            return None;
        };
        let b = bucket.to_ascii_lowercase();
        let b = b.trim_end_matches('.');
        if b == "s3.amazonaws.com" || (b.starts_with("s3.") && b.ends_with(".amazonaws.com")) {
            return key.split('/').next().map(|k| k.to_ascii_lowercase());
        }
        match b.split_once(".s3") {
            Some((name, rest)) if rest.ends_with(".amazonaws.com") => Some(name.to_string()),
            _ => Some(b.to_string()),
        }
    }
    let (c, h) = (StoreUri::parse(copy)?, StoreUri::parse(home)?);
    if let (Some(cb), Some(hb)) = (bucket(&c), bucket(&h))
        && cb == hb
    {
        return Some(format!(
            "is in bucket `{cb}`, the bucket of backup.smd.to (a bucket lives in one region)"
        ));
    }
    match (c, h) {
        (StoreUri::File(c), StoreUri::File(h)) if c.starts_with(&h) || h.starts_with(&c) => {
            Some("is inside backup.smd.to's directory, or holds it".to_string())
        }
        _ => None,
    }
}
