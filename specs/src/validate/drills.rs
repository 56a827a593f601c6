//! `drills`: an isolated target (addresses, subnets, security groups), validations, and the
//! drill's rendered aerospike.conf naming nothing of production.

use super::*;

impl Validator<'_> {
    pub(super) fn drills(
        &mut self,
        raw: Vec<RawDrill>,
        cluster: &Cluster,
        backup: &Backup,
        restores: &[Restore],
    ) -> Vec<Drill> {
        let mut names = BTreeSet::new();
        let production: BTreeSet<Ipv4Addr> = cluster.nodes.iter().map(|n| n.private_ip).collect();
        let mut out = Vec::new();
        for d in raw {
            self.unique_name("drill", &d.name, &mut names);
            let restore = restores.iter().find(|r| r.name == d.restore.value);
            match restore {
                None => {
                    let known = || restores.iter().map(|r| r.name.as_str());
                    self.err(
                        d.restore.span,
                        format!(
                            "drill `{}` names unknown restore `{}`{} (restores: {})",
                            d.name.value,
                            d.restore.value,
                            crate::suggest::did_you_mean(&d.restore.value, known()),
                            crate::suggest::listing(known())
                        ),
                    );
                }
                Some(r) if !r.source.uses_backup() => {
                    self.err(d.restore.span, format!("drill `{}`: restore `{}` does not restore from a backup (source `{}`); a drill replays a backup into an isolated target", d.name.value, r.name, r.source));
                }
                // A drill rehearses the restore it names, by its method: with asbackup that is an
                // asrestore of the newest chain, not the EBS snapshots that may also exist.
                Some(r) if backup.method == Method::Asbackup => {
                    self.err(d.restore.span, format!("drill `{}`: restore `{}` restores with asrestore (`method: asbackup`), and asdr cannot rehearse an asrestore into stand-ins yet; drilling EBS snapshots instead would rehearse a restore that would not run", d.name.value, r.name))
                        .set("drill", "remove the drill, or drill a restore of a cluster backed up with `method: ebs-snapshot`");
                }
                Some(_) => {}
            }
            let t = &d.target.value;
            // A drill of a restore into another region runs in that region: its subnets are
            // that region's, each node in the zone with its own zone's letter.
            let region = restore.and_then(|r| r.region());
            for n in &cluster.nodes {
                let zone = region.map_or_else(
                    || n.availability_zone.clone(),
                    |r| zone_in(r, &n.availability_zone),
                );
                if !t.subnets.value.contains_key(&zone) {
                    self.err(
                        t.subnets.span,
                        format!(
                            "drill `{}` has no subnet for availability zone {zone} (node `{}`)",
                            d.name.value, n.name
                        ),
                    );
                }
            }
            let (ips, _) = self.new_addresses(
                &format!("drill `{}`", d.name.value),
                t.private_ips.as_ref(),
                t.ip_offset.as_ref(),
                d.target.span,
                cluster,
            );
            let mut seen = BTreeSet::new();
            for (node, ip) in &ips {
                if production.contains(ip) {
                    self.err(d.target.span, format!("drill `{}` would put node `{node}` at {ip}, a production address: a drill never touches production", d.name.value));
                } else if !seen.insert(*ip) {
                    self.err(
                        d.target.span,
                        format!("drill `{}` gives {ip} to two nodes", d.name.value),
                    );
                }
            }
            // The rendered config is checked only once the addresses themselves are sound.
            let complete_ips =
                ips.len() == cluster.nodes.len() && ips.values().all(|ip| !production.contains(ip));
            let security_groups = match &t.security_groups {
                None => {
                    self.err(d.target.span, format!("drill `{}` needs `target.security_groups`: security groups of its own, so its nodes cannot reach production's", d.name.value));
                    Vec::new()
                }
                Some(sgs) => {
                    for sg in &sgs.value {
                        if cluster.instance.security_groups.contains(sg) {
                            self.err(sgs.span, format!("drill `{}` would launch into production's security group {sg}: a drill's nodes must not reach production", d.name.value));
                        }
                    }
                    if sgs.value.is_empty() {
                        self.err(
                            sgs.span,
                            format!(
                                "drill `{}`: `target.security_groups` is empty",
                                d.name.value
                            ),
                        );
                    }
                    sgs.value.clone()
                }
            };
            let (min_objects, smd) = match d.validations {
                Some(v) => {
                    for ns in v.min_objects.keys() {
                        if !cluster.namespaces.iter().any(|n| &n.name == ns) {
                            self.err(
                                d.name.span,
                                format!(
                                    "drill `{}` validates unknown namespace `{ns}`",
                                    d.name.value
                                ),
                            );
                        }
                    }
                    for s in &v.smd {
                        if !["sindex", "udf"].contains(&s.value.as_str()) {
                            self.err(
                                s.span,
                                format!("unknown SMD validation `{}`: use sindex or udf", s.value),
                            );
                        }
                    }
                    (v.min_objects, v.smd.into_iter().map(|s| s.value).collect())
                }
                None => (BTreeMap::new(), Vec::new()),
            };
            out.push(Drill {
                name: d.name.value.clone(),
                name_span: d.name.span,
                restore: d.restore.value.clone(),
                subnets: t.subnets.value.clone(),
                private_ips: ips,
                min_objects,
                smd,
                deadline: d
                    .deadline
                    .as_ref()
                    .map_or(Duration(4 * 3600), |s| self.duration(s)),
                teardown: d.teardown.as_ref().map_or(Teardown::Always, |t| t.value),
                security_groups,
            });
            if complete_ips && let Some(drill) = out.last() {
                self.drill_config_is_isolated(drill, cluster, &production);
            }
        }
        out
    }

    /// A drill's aerospike.conf is rendered for its stand-ins (their names, their addresses, its
    /// own cluster name and peers); a production address in it would mesh the drill with
    /// production, so it is refused here, before anything is launched.
    pub(super) fn drill_config_is_isolated(
        &mut self,
        drill: &Drill,
        cluster: &Cluster,
        production: &BTreeSet<Ipv4Addr>,
    ) {
        let peers = drill.peers();
        let name = drill.cluster_name(&cluster.name);
        for node in &cluster.nodes {
            let stand_in = drill.stand_in(node);
            let Ok(text) = cluster.config.template.render(crate::config_vars_for(
                cluster,
                &name,
                &stand_in,
                &peers,
                &crate::derived_node_id(&cluster.name, &node.name),
                cluster.rack_of(node),
            )) else {
                continue;
            };
            let found = text
                .split(|c: char| !(c.is_ascii_digit() || c == '.'))
                .filter_map(|t| t.parse::<Ipv4Addr>().ok())
                .find(|ip| production.contains(ip));
            if let Some(ip) = found {
                let line = text
                    .lines()
                    .position(|l| l.contains(&ip.to_string()))
                    .map_or(0, |i| i + 1);
                self.err(drill.name_span, format!(
                    "drill `{}`: the config template renders production address {ip} into the aerospike.conf of `{}` (rendered line {line}): the drill would join production",
                    drill.name, stand_in.name
                )).help = Some(format!("use the `peers` variable for mesh seeds (`{{% for p in peers %}}mesh-seed-address-port {{{{ p }}}} 3002{{% endfor %}}`) in {}", cluster.config.template_path));
            }
        }
    }

    pub(super) fn volume(&mut self, v: &Sp<RawVolume>) -> VolumeSpec {
        const TYPES: [&str; 7] = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];
        if let Some(t) = &v.value.volume_type
            && !TYPES.contains(&t.value.as_str())
        {
            self.err(
                t.span,
                format!(
                    "unknown EBS volume type `{}`{} (one of {})",
                    t.value,
                    crate::suggest::did_you_mean(&t.value, TYPES),
                    TYPES.join(", ")
                ),
            );
        }
        if let Some(rate) = &v.value.initialization_rate
            && !(100..=300).contains(&rate.value)
        {
            self.err(
                rate.span,
                format!(
                    "initialization_rate {} MiB/s is outside EBS's 100–300",
                    rate.value
                ),
            );
        }
        // With the type named, what it takes is known now; without, at plan time (the type is
        // then the old volume's).
        if let Some(t) = &v.value.volume_type
            && let Some(problem) =
                crate::ebs::performance_problem(&t.value, v.value.iops, v.value.throughput)
        {
            self.err(v.span, format!("volume: {problem}")).set(
                "R4",
                "CreateVolume would refuse it: correct `iops`/`throughput` for the type",
            );
        }
        let fsr = v.value.fast_snapshot_restore.as_ref().filter(|f| f.value);
        if let (Some(f), Some(rate)) = (fsr, &v.value.initialization_rate) {
            // EBS initialises at the rate when both are given, and FSR would be paid for
            // nothing: one or the other.
            self.err(
                f.span,
                format!(
                    "fast_snapshot_restore and initialization_rate ({} MiB/s) both say how the volumes load; EBS would use the rate and bill Fast Snapshot Restore for nothing: keep one",
                    rate.value
                ),
            );
        }
        VolumeSpec {
            fast_snapshot_restore: fsr.is_some(),
            volume_type: v.value.volume_type.as_ref().map(|t| t.value.clone()),
            iops: v.value.iops,
            throughput: v.value.throughput,
            initialization_rate: v.value.initialization_rate.as_ref().map(|r| r.value),
        }
    }
}
