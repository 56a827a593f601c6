//! `restores`: sources, scopes and the rules a restore must obey (R6, R8).

use super::*;

impl Validator<'_> {
    pub(super) fn restores(
        &mut self,
        raw: Vec<RawRestore>,
        cluster: &Cluster,
        backup: &Backup,
    ) -> Vec<Restore> {
        let mut names = BTreeSet::new();
        let min_rf = cluster.min_replication_factor();
        let mut out = Vec::new();
        for r in raw {
            self.unique_name("restore", &r.name, &mut names);
            let mut nodes = Vec::new();
            match (&r.scope.value, &r.nodes) {
                (Scope::Node, None) => {
                    self.err(
                        r.scope.span,
                        format!(
                            "restore `{}` has scope `node` but names no `nodes`",
                            r.name.value
                        ),
                    );
                }
                (Scope::Node, Some(list)) => {
                    if list.value.is_empty() {
                        self.err(
                            list.span,
                            format!(
                                "restore `{}` has scope `node` but names no `nodes`",
                                r.name.value
                            ),
                        );
                    }
                    for n in &list.value {
                        if cluster.nodes.iter().all(|c| c.name != n.value) {
                            let known = || cluster.nodes.iter().map(|c| c.name.as_str());
                            self.err(
                                n.span,
                                format!(
                                    "restore `{}` names unknown node `{}`{} (nodes: {})",
                                    r.name.value,
                                    n.value,
                                    crate::suggest::did_you_mean(&n.value, known()),
                                    crate::suggest::listing(known())
                                ),
                            );
                        } else if nodes.contains(&n.value) {
                            self.err(n.span, format!("node `{}` is listed twice", n.value));
                        } else {
                            nodes.push(n.value.clone());
                        }
                    }
                }
                (Scope::Cluster, Some(list)) => {
                    self.err(
                        list.span,
                        "a `scope: cluster` restore restores every node: drop `nodes`",
                    );
                }
                (Scope::Cluster, None) => {}
            }
            let source = self.source(&r.source);
            let accept = r.accept_zombie_records.as_ref().is_some_and(|a| a.value);
            let accept_dead = r.accept_dead_partitions.as_ref().filter(|a| a.value);
            if let Some(a) = accept_dead
                && !cluster.namespaces.iter().any(|n| n.strong_consistency)
            {
                self.err(
                    a.span,
                    "`accept_dead_partitions` applies to strong-consistency namespaces, and no namespace of the cluster is one",
                )
                .set("R19", "remove it, or mark the namespaces that run strong consistency with `strong_consistency: true`");
            }
            if let Some(source) = &source {
                self.restore_rules(&r, source, accept, cluster, backup, min_rf);
            }
            let volume = r
                .volume
                .as_ref()
                .map(|v| self.volume(v))
                .unwrap_or_default();
            let region = self.region_target(&r, source.as_ref(), cluster, backup);
            let zone = self.zone_move(&r, &nodes, source.as_ref(), cluster);
            if let Some(f) = r
                .volume
                .as_ref()
                .and_then(|v| v.value.fast_snapshot_restore.as_ref())
                .filter(|f| f.value)
            {
                self.fast_restore_applies(&r, f.span, source.as_ref(), backup);
            }
            let rto = r.rto.as_ref().map(|s| {
                let d = self.duration(s);
                if d.seconds() < 60 {
                    self.err(
                        s.span,
                        format!(
                            "rto {} is under a minute: no restore launches an instance that fast",
                            s.value
                        ),
                    );
                }
                d
            });
            out.push(Restore {
                rto,
                region,
                name: r.name.value.clone(),
                name_span: r.name.span,
                scope: r.scope.value,
                nodes,
                source: source.unwrap_or(RestoreSource::LatestBackup),
                source_span: r.source.span,
                accept_zombie_records: accept,
                accept_dead_partitions: accept_dead.is_some(),
                volume,
                zone,
            });
        }
        out
    }

    /// Fast Snapshot Restore speeds up volumes made from a set's snapshots: a restore that makes
    /// none (its node's own volumes, blank ones, asrestore) would pay for it and gain nothing.
    fn fast_restore_applies(
        &mut self,
        r: &RawRestore,
        span: Span,
        source: Option<&RestoreSource>,
        backup: &Backup,
    ) {
        let name = &r.name.value;
        if backup.method == Method::Asbackup {
            self.err(span, format!("restore `{name}`: fast_snapshot_restore speeds up volumes made from EBS snapshots, and `method: asbackup` restores records with asrestore"));
        } else if let Some(s) = source.filter(|s| !s.uses_backup()) {
            self.err(span, format!("restore `{name}` restores from `{s}`, which makes no volume from a snapshot: fast_snapshot_restore would be paid for nothing"));
        }
    }

    /// `region` + `target`: a whole cluster restored from the copies in one of the copy regions,
    /// at addresses, subnets, security groups and an AMI of that region.
    fn region_target(
        &mut self,
        r: &RawRestore,
        source: Option<&RestoreSource>,
        cluster: &Cluster,
        backup: &Backup,
    ) -> Option<RegionTarget> {
        let name = &r.name.value;
        if let (Some(a), None) = (&r.account, &r.region) {
            self.err(a.span, format!("restore `{name}` names `account` but no `region`: a restore from a backup account names the region of its copies there, and a `target` in that account"));
            return None;
        }
        let (region, target) = match (&r.region, &r.target) {
            (None, None) => return None,
            (None, Some(t)) => {
                self.err(t.span, format!("restore `{name}` has a `target` but no `region`: a target is where a restore into another region builds the cluster (to rehearse in this region, declare a drill)"));
                return None;
            }
            (Some(reg), None) => {
                self.err(reg.span, format!("restore `{name}` into {} needs a `target`: that region's subnets, private_ips (or ip_offset), security_groups and ami", reg.value));
                return None;
            }
            (Some(reg), Some(t)) => (reg, t),
        };
        let mut ok = true;
        // Where the copies are and the cluster is built: the region, or a backup account's
        // place in it (`account`).
        let account = r.account.as_ref();
        let key = crate::place::place(&region.value, account.map(|a| a.value.as_str()));
        if region.value.contains('@') {
            self.err(region.span, format!(
                "restore `{name}`: `{}` is not an AWS region; to restore from a backup account's copies, name the region and `account`",
                region.value
            ));
            return None;
        }
        if let Some(a) = account
            && !backup.copies.iter().any(|c| c.region == key)
        {
            let accounts: Vec<String> = backup
                .copies
                .iter()
                .filter(|c| c.account.is_some())
                .map(Copy::label)
                .collect();
            self.err(a.span, format!(
                "restore `{name}` restores from the copies of account {} in {}, but backup.copies makes none there (backup accounts: {})",
                a.value, region.value,
                if accounts.is_empty() { "none".to_string() } else { accounts.join(", ") }
            ));
            ok = false;
        } else if account.is_none()
            && !backup.copies.iter().any(|c| c.region == key)
            && let Some(c) = backup
                .copies
                .iter()
                .find(|c| c.aws_region == region.value && c.account.is_some())
        {
            // The copies there are the backup account's: only its role can build from them.
            self.err(region.span, format!(
                "restore `{name}` restores from {}, but the copies there are in a backup account: add `account: \"{}\"` to build the cluster inside that account from them",
                crate::place::place_text(&c.region),
                c.account.as_ref().map(|a| a.id.as_str()).unwrap_or_default()
            ));
            ok = false;
        } else if !backup.copies.iter().any(|c| c.region == key) {
            let copies: Vec<&str> = backup.copies.iter().map(|c| c.region.as_str()).collect();
            self.err(region.span, format!(
                "restore `{name}` restores from the copies in {}, but backup.copies does not copy sets there (copies: {})",
                region.value,
                if copies.is_empty() { "none".to_string() } else { copies.join(", ") }
            ));
            ok = false;
        }
        if r.scope.value != Scope::Cluster {
            self.err(r.scope.span, format!("restore `{name}` into another region or a backup account builds a whole new cluster there: use `scope: cluster`"));
            ok = false;
        }
        if source.is_some_and(|s| !s.uses_backup()) {
            self.err(r.source.span, format!("restore `{name}` into another region or a backup account restores from the copies of a backup set: use latest-backup, set:<id> or before:<time>"));
            ok = false;
        }
        let t = &target.value;
        let mut subnets = BTreeMap::new();
        for (az, subnet) in &t.subnets.value {
            if !az.starts_with(&region.value) {
                self.err(
                    t.subnets.span,
                    format!(
                        "restore `{name}`: availability zone {az} is not in {}",
                        region.value
                    ),
                );
                ok = false;
            }
            subnets.insert(az.clone(), subnet.clone());
        }
        for n in &cluster.nodes {
            let zone = zone_in(&region.value, &n.availability_zone);
            if !subnets.contains_key(&zone) {
                self.err(
                    t.subnets.span,
                    format!(
                        "restore `{name}` has no subnet for {zone}, where node `{}` ({}) goes",
                        n.name, n.availability_zone
                    ),
                );
                ok = false;
            }
        }
        let (ips, sound) = self.new_addresses(
            &format!("restore `{name}`"),
            t.private_ips.as_ref(),
            t.ip_offset.as_ref(),
            target.span,
            cluster,
        );
        ok &= sound;
        let mut seen = BTreeSet::new();
        for (node, ip) in &ips {
            if !seen.insert(*ip) {
                self.err(
                    target.span,
                    format!("restore `{name}` gives {ip} to two nodes (`{node}` and another)"),
                );
                ok = false;
            }
        }
        if t.security_groups.value.is_empty() {
            self.err(t.security_groups.span, format!("restore `{name}`: `target.security_groups` is empty (security groups are regional: name the ones of {})", region.value));
            ok = false;
        }
        if t.ami.value.trim().is_empty() {
            self.err(
                t.ami.span,
                format!("restore `{name}`: `target.ami` is empty (AMIs are regional)"),
            );
            ok = false;
        }
        ok.then(|| RegionTarget {
            region: key,
            region_span: region.span,
            subnets,
            private_ips: ips,
            security_groups: t.security_groups.value.clone(),
            ami: t.ami.value.clone(),
            instance_type: t.instance_type.as_ref().map(|i| i.value.clone()),
        })
    }

    /// `zone`: the restore's nodes rebuilt in another zone of the cluster's region. Volumes are
    /// zonal, so the data comes from a set's snapshots or from the replicas, never from the
    /// volumes left in the lost zone.
    fn zone_move(
        &mut self,
        r: &RawRestore,
        nodes: &[String],
        source: Option<&RestoreSource>,
        cluster: &Cluster,
    ) -> Option<ZoneMove> {
        let zone = r.zone.as_ref()?;
        let name = &r.name.value;
        let z = &zone.value;
        let mut ok = true;
        if r.region.is_some() {
            self.err(zone.span, format!("restore `{name}` has both `region` and `zone`: a restore into another region builds a whole new cluster there; `zone` rebuilds nodes of a lost zone in this region"));
            ok = false;
        }
        if r.scope.value != Scope::Node {
            self.err(r.scope.span, format!("restore `{name}` moves nodes to {}: use `scope: node` and name the nodes of the lost zone", z.to.value))
                .set("R4", "a whole cluster restored in place keeps its zones");
            ok = false;
        }
        if source == Some(&RestoreSource::CurrentVolumes) {
            self.err(r.source.span, format!("restore `{name}` rebuilds its nodes in {}, but `current-volumes` are the volumes left in the lost zone, and an EBS volume attaches only in its own zone", z.to.value))
                .set("R4", "use `latest-backup` (or `set:`/`before:`) to build from the set's snapshots, or `empty` to refill from the replicas in the other zones");
            ok = false;
        }
        if !cluster.instance.subnets.contains_key(&z.to.value) {
            let zones: Vec<&str> = cluster
                .instance
                .subnets
                .keys()
                .map(String::as_str)
                .collect();
            self.err(z.to.span, format!(
                "restore `{name}` moves nodes to {}, which has no subnet in `cluster.instance.subnets` ({})",
                z.to.value,
                zones.join(", ")
            ))
            .set("R4", format!("add `{}: <subnet id>` to cluster.instance.subnets", z.to.value));
            ok = false;
        }
        let mut ips = BTreeMap::new();
        let mut seen: BTreeMap<Ipv4Addr, &str> = cluster
            .nodes
            .iter()
            .filter(|n| !nodes.contains(&n.name))
            .map(|n| (n.private_ip, n.name.as_str()))
            .collect();
        for (node, ip) in &z.private_ips.value {
            if !nodes.contains(node) {
                self.err(z.private_ips.span, format!(
                    "restore `{name}` gives an address in {} to `{node}`, which is not one of its nodes ({})",
                    z.to.value,
                    nodes.join(", ")
                ));
                ok = false;
                continue;
            }
            match ip.parse::<Ipv4Addr>() {
                Err(_) => {
                    self.err(
                        z.private_ips.span,
                        format!("restore `{name}`: `{ip}` ({node}) is not an IPv4 address"),
                    );
                    ok = false;
                }
                Ok(addr) => {
                    if let Some(other) = seen.insert(addr, node) {
                        self.err(
                            z.private_ips.span,
                            format!(
                                "restore `{name}` gives {addr} to `{node}`, but it is `{other}`'s"
                            ),
                        );
                        ok = false;
                    }
                    ips.insert(node.clone(), addr);
                }
            }
        }
        for n in nodes {
            if !z.private_ips.value.contains_key(n) {
                self.err(
                    z.private_ips.span,
                    format!(
                        "restore `{name}` moves `{n}` to {} but gives it no address there",
                        z.to.value
                    ),
                )
                .set(
                    "R4",
                    format!(
                        "add `{n}: <an address in {}'s subnet>` to `zone.private_ips`",
                        z.to.value
                    ),
                );
                ok = false;
            }
        }
        // A node already in the target zone is one the move placed there (the policy updated),
        // at the address the move gave it; any other is a survivor, never restored by it.
        for n in cluster.nodes.iter().filter(|n| nodes.contains(&n.name)) {
            if n.availability_zone == z.to.value
                && ips.get(&n.name).is_some_and(|ip| *ip != n.private_ip)
            {
                self.err(z.private_ips.span, format!(
                    "restore `{name}` moves `{}` to {}, where it already runs at {}: a zone-loss restore names the nodes of the lost zone",
                    n.name, z.to.value, n.private_ip
                ))
                .set("R4", format!("remove `{}` from this restore", n.name));
                ok = false;
            }
        }
        let from: BTreeSet<&str> = cluster
            .nodes
            .iter()
            .filter(|n| nodes.contains(&n.name) && n.availability_zone != z.to.value)
            .map(|n| n.availability_zone.as_str())
            .collect();
        if from.len() > 1 {
            self.err(zone.span, format!(
                "restore `{name}` moves nodes of {} zones ({}) at once: a zone-loss restore rebuilds the nodes of one lost zone",
                from.len(),
                from.iter().copied().collect::<Vec<_>>().join(", ")
            ));
            ok = false;
        }
        ok.then(|| ZoneMove {
            to: z.to.value.clone(),
            to_span: z.to.span,
            private_ips: ips,
        })
    }

    pub(super) fn source(&mut self, s: &Sp<String>) -> Option<RestoreSource> {
        let v = s.value.trim();
        let parsed = match v {
            "current-volumes" => Ok(RestoreSource::CurrentVolumes),
            "empty" => Ok(RestoreSource::Empty),
            "latest-backup" => Ok(RestoreSource::LatestBackup),
            _ => {
                if let Some(id) = v.strip_prefix("set:") {
                    if is_set_id(id) {
                        Ok(RestoreSource::Set(id.to_string()))
                    } else {
                        Err(format!(
                            "`{id}` is not a backup set id: sets are named bs-YYYYMMDDTHHMMSSZ"
                        ))
                    }
                } else if let Some(t) = v.strip_prefix("before:") {
                    OffsetDateTime::parse(t, &Rfc3339)
                        .map(RestoreSource::Before)
                        .map_err(|_| {
                            format!(
                                "`{t}` is not an RFC 3339 time: a date, `T`, a time and a zone, such as 2026-11-20T00:00:00Z"
                            )
                        })
                } else {
                    Err(format!(
                        "unknown restore source `{v}`: expected current-volumes, empty, latest-backup, set:<set id> or before:<RFC 3339 time>{}",
                        crate::suggest::did_you_mean(
                            v,
                            ["current-volumes", "empty", "latest-backup"]
                        )
                    ))
                }
            }
        };
        parsed.map_err(|e| self.err(s.span, e)).ok()
    }

    pub(super) fn restore_rules(
        &mut self,
        r: &RawRestore,
        source: &RestoreSource,
        accept: bool,
        cluster: &Cluster,
        backup: &Backup,
        min_rf: u32,
    ) {
        let span = r.source.span;
        let name = &r.name.value;
        match (r.scope.value, source) {
            (Scope::Cluster, RestoreSource::Empty) => {
                self.err(span, format!("restore `{name}`: a whole cluster cannot be refilled from empty volumes; nothing would be left to migrate from"));
                return;
            }
            (_, RestoreSource::Empty) if min_rf < 2 => {
                self.err(span, format!("restore `{name}` uses `source: empty`, which refills the node from its replicas, but replication factor 1 keeps no other copy"));
                return;
            }
            (_, RestoreSource::Empty)
                if r.nodes.as_ref().map_or(0, |n| n.value.len()) as u32 >= min_rf
                    && !one_rack_of_several(r, cluster) =>
            {
                self.err(span, format!(
                    "restore `{name}` refills {} nodes from empty volumes at once, but replication factor {min_rf} keeps only {min_rf} copies: partitions whose every copy is on those nodes would be lost",
                    r.nodes.as_ref().map_or(0, |n| n.value.len())
                )).set("R8", format!("refill at most {} node(s) per restore, one restore after the other", min_rf - 1));
                return;
            }
            _ => {}
        }
        // R6: a node that cold-starts holding data brings deleted records back; a full cluster
        // restored from one backup set only warns (every node goes back to the same moment).
        let cold_start_with_data = source.brings_data()
            && (r.scope.value == Scope::Node || *source == RestoreSource::CurrentVolumes);
        if cold_start_with_data && !accept && !cluster.durable_deletes {
            let healthy_alternative = if r.scope.value == Scope::Node && min_rf >= 2 {
                ", or use `source: empty` to rejoin blank and refill by migration (no records come back)"
            } else {
                ""
            };
            self.err(span, format!(
                "restore `{name}` cold-starts a node with data (`{source}`), which brings back records deleted while it was away or since the backup"
            )).set("R6", format!(
                "set `accept_zombie_records: true` on this restore, declare `cluster.durable_deletes: true`{healthy_alternative}"
            ));
        }
        // R6 for asrestore: it writes the backup's records into the running cluster and merges.
        // A scan carries no deletes (durable or not), so every record deleted since the backup
        // comes back; only the restore itself can accept that.
        if backup.method == Method::Asbackup
            && source.uses_backup()
            && r.scope.value == Scope::Cluster
            && !accept
        {
            self.err(span, format!(
                "restore `{name}` asrestores set data into the running cluster, which merges: every record deleted since the backup comes back (a backup holds no deletes)"
            )).set("R6", "set `accept_zombie_records: true` on this restore (durable deletes do not cover asrestore)");
        }
        if backup.method == Method::Asbackup && source.uses_backup() && r.scope.value == Scope::Node
        {
            self.err(span, format!("restore `{name}`: asbackup backups restore all or nothing across the cluster; a single node cannot be restored from them"));
        }
    }
}

/// The restore's nodes are all of one rack of a cluster with several: rack awareness keeps a copy
/// of every partition in another rack (with replication factor 2 or more), so the whole rack can
/// be refilled from the others at once (a lost zone).
fn one_rack_of_several(r: &RawRestore, cluster: &Cluster) -> bool {
    let racks: BTreeSet<u32> = cluster.nodes.iter().map(|n| cluster.rack_of(n)).collect();
    let named: BTreeSet<u32> = r
        .nodes
        .iter()
        .flat_map(|l| &l.value)
        .filter_map(|n| cluster.nodes.iter().find(|c| c.name == n.value))
        .map(|n| cluster.rack_of(n))
        .collect();
    !cluster.racks.is_empty() && racks.len() >= 2 && named.len() == 1
}
