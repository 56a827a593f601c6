//! Drills never touch production; new volumes keep the data's encryption.
use super::*;

impl<'a> Verifier<'a> {
    /// Drills: no step touches production — no production node name, address, tag, security
    /// group, or (on a shared host) rendered path or command.
    pub(super) fn check_drill(&mut self, d: &asdr_specs::Drill) {
        // A drill rehearses the restore it names, by its method: an asbackup cluster's restore
        // from a set asrestores, which a drill of EBS volumes would not rehearse.
        if self.policy.backup.method == asdr_specs::Method::Asbackup
            && self
                .policy
                .restore(&d.restore)
                .is_some_and(|r| r.source.uses_backup())
            && !self.plan.steps.is_empty()
        {
            self.bad(
                "drill",
                None,
                format!(
                    "drill `{}` rehearses `{}`, which restores with asrestore: this plan would rehearse another restore than the one that would run",
                    d.name, d.restore
                ),
            );
        }
        let suffix = format!("@{}", d.name);
        let prod_ips: BTreeSet<Ipv4Addr> = self
            .policy
            .cluster
            .nodes
            .iter()
            .map(|n| n.private_ip)
            .collect();
        let prod_names: BTreeSet<&str> = self.policy.node_names().into_iter().collect();
        let local = self.policy.cluster.access.transport == Transport::Local;
        let c = &self.policy.cluster;
        let mut prod_paths = BTreeSet::new();
        let mut prod_commands = BTreeSet::new();
        for n in &c.nodes {
            prod_paths.insert(self.render(&c.config.path, n));
            prod_paths.insert(format!(
                "{}/smd",
                self.render(&c.work_directory, n).trim_end_matches('/')
            ));
            prod_commands.insert(self.render(&c.service_start, n));
            if let Some(cold) = &c.service_cold_start {
                prod_commands.insert(self.render(cold, n));
            }
            prod_commands.insert(self.render(&c.service_stop, n));
        }
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for s in &self.plan.steps {
            if let Some(n) = &s.node
                && !n.ends_with(&suffix)
            {
                bad.push((
                    s,
                    format!("acts on node `{n}`, which is not one of the drill's stand-ins"),
                ));
            }
            let p = &s.params;
            let addresses = [
                p.node_service().map(|n| ("address", n.address.as_str())),
                match p {
                    Params::ProvisionInstance(i) => Some(("private_ip", i.private_ip.as_str())),
                    _ => None,
                },
            ];
            for (key, a) in addresses.into_iter().flatten() {
                let ip = a.split(':').next().unwrap_or_default().parse::<Ipv4Addr>();
                if ip.is_ok_and(|ip| prod_ips.contains(&ip)) {
                    bad.push((s, format!("{key} {a} is a production address")));
                }
            }
            if let Some(t) = p.tags() {
                if t.get(crate::drill::DRILL) != Some(&d.name) {
                    bad.push((
                        s,
                        "creates a resource without the drill's asdr:drill tag".into(),
                    ));
                }
                if t.get(tags::NODE)
                    .is_some_and(|n| prod_names.contains(n.as_str()))
                {
                    bad.push((s, "tags a drill resource as a production node".into()));
                }
            }
            if let Params::ProvisionInstance(i) = p {
                for sg in &i.security_groups {
                    if c.instance.security_groups.iter().any(|p| p == sg) {
                        bad.push((s, format!("launches into production's security group {sg}")));
                    }
                }
            }
            if let Params::WriteConfig(w) = p
                && let Some(ip) = w
                    .content
                    .split(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                    .filter_map(|t| t.parse::<Ipv4Addr>().ok())
                    .find(|ip| prod_ips.contains(ip))
            {
                bad.push((s, format!("the drill's aerospike.conf names production address {ip}: the drill would join production")));
            }
            if local {
                // One host for every node: a path or command is production's if it renders the same.
                let written = match p {
                    Params::WriteConfig(w) => Some(&w.path),
                    Params::RestoreSmd(r) => Some(&r.to),
                    _ => None,
                };
                if let Some(path) = written
                    && prod_paths.contains(path.trim_end_matches('/'))
                {
                    bad.push((s, format!("writes {path}, which is a production node's")));
                }
                if let Some(cmd) = p.node_service().and_then(|n| n.command.as_deref())
                    && prod_commands.contains(cmd)
                {
                    bad.push((s, format!("runs `{cmd}`, a production node's command")));
                }
            }
        }
        for (s, m) in bad {
            self.bad("drill", Some(s), m);
        }
    }

    /// New volumes are encrypted at least as the data they replace: the node's volume at that
    /// device, and the snapshot they come from, with the same KMS key.
    pub(super) fn check_encryption(&mut self, op: &Op<'_>) {
        if matches!(op, Op::Teardown(_)) {
            return;
        }
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for (_, s) in self.steps(StepKind::CreateVolume) {
            let node_name = s.node.as_deref().map(|n| n.split('@').next().unwrap_or(n));
            let Some(node) = node_name.and_then(|n| self.policy.node(n)) else {
                continue;
            };
            let Params::CreateVolume(c) = &s.params else {
                continue;
            };
            let device = c.tags.get(tags::DEVICE).map_or("", String::as_str);
            let mut keys: BTreeSet<Option<String>> = BTreeSet::new();
            let mut encrypted = false;
            let current = self.candidates(node, device).into_iter().chain(
                self.instance_of(node)
                    .filter(|i| i.state != InstanceState::Terminated)
                    .into_iter()
                    .flat_map(|i| i.block_devices.iter().filter(|b| b.device_name == device))
                    .filter_map(|b| self.ix.vol.get(b.volume_id.as_str()).copied()),
            );
            for v in current.filter(|v| v.encrypted) {
                encrypted = true;
                keys.insert(v.kms_key_id.clone());
            }
            if let Some(id) = s.params.snapshot_id()
                && let Some(snap) = self.ix.snap.get(id).copied()
                && snap.encrypted
            {
                encrypted = true;
                keys.insert(snap.kms_key_id.clone());
            }
            if !encrypted {
                continue;
            }
            let key = c.kms_key_id.clone();
            if !c.encrypted {
                bad.push((
                    s,
                    "creates an unencrypted volume for data that is encrypted at rest".into(),
                ));
            } else if !keys.contains(&key) {
                bad.push((
                    s,
                    format!(
                        "encrypts with {} instead of the data's key ({})",
                        key.as_deref().unwrap_or("the default key"),
                        keys.iter()
                            .map(|k| k.as_deref().unwrap_or("?"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("encryption", Some(s), m);
        }
    }
}
