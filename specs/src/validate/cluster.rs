//! `cluster`: names, access, templates, namespaces and devices, nodes, instance defaults, and
//! every per-node template rendered once.

use super::*;

impl Validator<'_> {
    pub(super) fn cluster(&mut self, c: RawCluster) -> Cluster {
        if !is_name(&c.name.value) {
            self.err(
                c.name.span,
                format!(
                    "cluster name `{}` must match [a-z0-9-]+ (it is used in tags and names)",
                    c.name.value
                ),
            );
        }
        // A region ends in its number (`us-east-1`); `us-east-1a` is a zone.
        if c.region.value.is_empty()
            || !c
                .region
                .value
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
            || !c.region.value.ends_with(|ch: char| ch.is_ascii_digit())
        {
            self.err(
                c.region.span,
                format!(
                    "region `{}` is not an AWS region name such as us-east-1",
                    c.region.value
                ),
            );
        }
        // Every zone the cluster names is in its region: a node elsewhere cannot be one of its
        // nodes, and a subnet for it would place a replacement in another region.
        let in_region = |zone: &str| {
            zone.len() > c.region.value.len() && zone.starts_with(c.region.value.as_str())
        };
        // Said once: a malformed region makes every zone look misplaced.
        let region_ok = c.region.value.ends_with(|ch: char| ch.is_ascii_digit());
        for n in c.nodes.value.iter().filter(|_| region_ok) {
            if n.availability_zone.value == c.region.value {
                self.err(
                    n.availability_zone.span,
                    format!(
                        "node `{}`: {} is the region, not an availability zone (such as {}a)",
                        n.name.value, n.availability_zone.value, c.region.value
                    ),
                );
            } else if !in_region(&n.availability_zone.value) {
                self.err(
                    n.availability_zone.span,
                    format!(
                        "node `{}` is in availability zone {}, which is not in the cluster's region {}",
                        n.name.value, n.availability_zone.value, c.region.value
                    ),
                );
            }
        }
        for zone in c.instance.subnets.value.keys().filter(|_| region_ok) {
            if !in_region(zone) {
                self.err(
                    c.instance.subnets.span,
                    format!(
                        "cluster.instance.subnets names availability zone {zone}, which is not in the cluster's region {}",
                        c.region.value
                    ),
                );
            }
        }
        if let Some(id) = &c.id
            && !(id.value.len() == 16
                && id
                    .value
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        {
            self.err(
                id.span,
                format!(
                    "cluster id `{}` must be 16 lowercase hex digits, as asdr mints them (see `asdr status`)",
                    id.value
                ),
            );
        }
        let info_port = match &c.info_port {
            Some(p) if p.value == 0 => {
                self.err(p.span, "info_port must be between 1 and 65535");
                3000
            }
            Some(p) => p.value,
            None => 3000,
        };
        let work_directory = match &c.work_directory {
            Some(w) => self.template(w, "cluster.work_directory"),
            None => Template::compile("/opt/aerospike").expect("literal"),
        };
        let ssh = match (&c.access.transport.value, &c.access.ssh) {
            (Transport::Ssh, None) => {
                self.err(
                    c.access.transport.span,
                    "transport `ssh` needs an `ssh:` section (user, port, identity_file)",
                );
                None
            }
            (_, Some(s)) => Some(Ssh {
                user: s.value.user.value.clone(),
                port: s.value.port.unwrap_or(22),
                identity_file: s.value.identity_file.clone(),
                known_hosts: s.value.known_hosts.clone(),
            }),
            (_, None) => None,
        };
        let service_stop = self.template(&c.service.stop, "cluster.service.stop");
        let service_start = self.template(&c.service.start, "cluster.service.start");
        let service_cold_start = c
            .service
            .cold_start
            .as_ref()
            .map(|t| self.template(t, "cluster.service.cold_start"));
        let config = self.config(&c.config);
        let namespaces = self.namespaces(&c.namespaces);
        let nodes = self.nodes(&c.nodes);
        let instance = self.instance(&c.instance, &c.nodes);
        let durable_deletes = c.durable_deletes.as_ref().is_some_and(|d| d.value);
        if let Some(d) = c.durable_deletes.as_ref().filter(|d| d.value)
            && c.edition.value == Edition::Community
        {
            // Durable deletes are an Enterprise feature: a Community cluster declaring them would
            // skip R6's refusals while every delete it makes can come back on a cold start.
            self.err(d.span, "`durable_deletes: true` with `edition: community`: durable deletes are Enterprise-only, so deleted records can come back on every cold start")
                .set("R6", "remove `durable_deletes`, and accept zombie records explicitly where a restore or backup cold-starts a node");
        }
        if c.edition.value == Edition::Community {
            for ns in &c.namespaces.value {
                if let Some(sc) = ns.strong_consistency.as_ref().filter(|s| s.value) {
                    self.err(sc.span, format!(
                        "namespace `{}`: strong consistency is Enterprise-only, and this cluster is `edition: community`",
                        ns.name.value
                    ))
                    .set("R19", "remove `strong_consistency`, or declare `edition: enterprise` if the nodes run it");
                }
            }
        }
        // R4/R5: every shadowed primary is on an instance-store drive; a replacement type must
        // offer at least that many drives, or the node cannot be configured as the one it
        // replaces. Drives, not partitions: Aerospike recommends partitioning large NVMe drives
        // (`/dev/nvme1n1p1` … `p4`, each shadowed by its own EBS volume).
        let shadowed = namespaces
            .iter()
            .flat_map(|ns: &Namespace| &ns.devices)
            .filter(|d| d.shadow.is_some())
            .map(|d| drive_of(d.device.source()).to_string())
            .collect::<BTreeSet<_>>()
            .len() as u32;
        if shadowed > instance.instance_store_volumes {
            self.err(instance.instance_store_volumes_span, format!(
                "instance_store_volumes is {}, but the namespaces put shadowed primaries on {shadowed} instance-store drives: a replacement could come without them",
                instance.instance_store_volumes
            )).set("R4", format!("set `cluster.instance.instance_store_volumes: {shadowed}` (or more)"));
        }
        let racks = self.racks(&c, &nodes);
        let cluster = Cluster {
            racks,
            name: c.name.value.clone(),
            id: c.id.as_ref().map(|i| i.value.clone()),
            id_span: c.id.as_ref().map_or(c.name.span, |i| i.span),
            region: c.region.value.clone(),
            edition: c.edition.value,
            edition_span: c.edition.span,
            info_port,
            durable_deletes,
            work_directory,
            access: Access {
                transport: c.access.transport.value,
                ssh,
            },
            service_stop,
            service_start,
            service_cold_start,
            config,
            namespaces,
            instance,
            nodes,
        };
        self.render_every_node(&cluster, &c);
        cluster
    }

    pub(super) fn config(&mut self, c: &RawConfig) -> ConfigSpec {
        let path = self.template(&c.path, "cluster.config.path");
        let file = self.base_dir.join(&c.template.value);
        let template = match std::fs::read_to_string(&file) {
            Ok(text) => match Template::compile(&text) {
                Ok(t) => t,
                Err(e) => {
                    let at = e
                        .line
                        .map(|l| format!(" (line {l} of {})", c.template.value))
                        .unwrap_or_default();
                    self.err(
                        c.template.span,
                        format!("bad template {}{at}: {e}", c.template.value),
                    );
                    Template::compile("").expect("empty")
                }
            },
            Err(e) => {
                self.err(
                    c.template.span,
                    format!("cannot read config template {}: {e}", file.display()),
                );
                Template::compile("").expect("empty")
            }
        };
        ConfigSpec {
            template_path: c.template.value.clone(),
            template,
            path,
        }
    }

    pub(super) fn namespaces(&mut self, raw: &Sp<Vec<RawNamespace>>) -> Vec<Namespace> {
        if raw.value.is_empty() {
            self.err(raw.span, "a cluster needs at least one namespace");
        }
        let mut names = BTreeSet::new();
        let mut ebs_seen: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for ns in &raw.value {
            if !names.insert(ns.name.value.clone()) {
                self.err(
                    ns.name.span,
                    format!("namespace `{}` is declared twice", ns.name.value),
                );
            }
            if ns.replication_factor.value == 0 {
                self.err(
                    ns.replication_factor.span,
                    "replication_factor must be at least 1",
                );
            }
            if ns.devices.value.is_empty() {
                self.err(
                    ns.devices.span,
                    format!("namespace `{}` needs at least one device", ns.name.value),
                );
            }
            let mut devices = Vec::new();
            for d in &ns.devices.value {
                let device = self.template(&d.device, "device");
                let shadow = d.shadow.as_ref().map(|s| self.template(s, "shadow"));
                let ebs_raw = d.ebs.as_ref().or(d.shadow.as_ref()).unwrap_or(&d.device);
                let ebs = self.template(ebs_raw, "ebs");
                if let Some(other) = ebs_seen.insert(ebs_raw.value.clone(), ns.name.value.clone()) {
                    self.err(ebs_raw.span, format!("EBS device {} is already used by namespace `{other}`: each device line needs its own volume", ebs_raw.value));
                }
                devices.push(Device {
                    device,
                    shadow,
                    ebs,
                });
            }
            out.push(Namespace {
                name: ns.name.value.clone(),
                name_span: ns.name.span,
                replication_factor: ns.replication_factor.value,
                strong_consistency: ns.strong_consistency.as_ref().is_some_and(|s| s.value),
                devices,
            });
        }
        out
    }

    pub(super) fn nodes(&mut self, raw: &Sp<Vec<RawNode>>) -> Vec<Node> {
        if raw.value.is_empty() {
            self.err(raw.span, "a cluster needs at least one node");
        }
        let mut names = BTreeSet::new();
        let mut ips = BTreeMap::new();
        let mut ids = BTreeSet::new();
        let mut node_ids = BTreeMap::new();
        let mut out = Vec::new();
        for n in &raw.value {
            self.unique_name("node", &n.name, &mut names);
            let ip = match n.private_ip.value.parse::<Ipv4Addr>() {
                Ok(ip) => {
                    if let Some(other) = ips.insert(ip, n.name.value.clone()) {
                        self.err(
                            n.private_ip.span,
                            format!("private_ip {ip} is already node `{other}`'s"),
                        );
                    }
                    ip
                }
                Err(_) => {
                    self.err(
                        n.private_ip.span,
                        format!("private_ip `{}` is not an IPv4 address", n.private_ip.value),
                    );
                    Ipv4Addr::UNSPECIFIED
                }
            };
            if let Some(id) = &n.instance_id {
                if !id.value.starts_with("i-") {
                    self.err(
                        id.span,
                        format!("instance_id `{}` is not an EC2 instance id (i-…)", id.value),
                    );
                } else if !ids.insert(id.value.clone()) {
                    self.err(
                        id.span,
                        format!("instance {} is named by two nodes", id.value),
                    );
                }
            }
            let node_id = n.node_id.as_ref().and_then(|id| {
                let canonical = crate::canonical_node_id(&id.value);
                match &canonical {
                    None => {
                        self.err(
                            id.span,
                            format!(
                                "node_id `{}` is not an Aerospike node id (1 to 16 hex digits, not zero)",
                                id.value
                            ),
                        );
                    }
                    Some(c) => {
                        if let Some(other) = node_ids.insert(c.clone(), n.name.value.clone()) {
                            self.err(id.span, format!("node_id {c} is already node `{other}`'s"));
                        }
                    }
                }
                canonical
            });
            out.push(Node {
                name: n.name.value.clone(),
                name_span: n.name.span,
                instance_id: n.instance_id.as_ref().map(|i| i.value.clone()),
                node_id,
                node_id_span: n.node_id.as_ref().map_or(n.name.span, |i| i.span),
                private_ip: ip,
                availability_zone: n.availability_zone.value.clone(),
                rack: n.rack.as_ref().map(|r| r.value),
                moved_from: None,
            });
        }
        out
    }

    pub(super) fn instance(
        &mut self,
        i: &RawInstance,
        nodes: &Sp<Vec<RawNode>>,
    ) -> InstanceDefaults {
        // R4: a replacement goes into the failed node's subnet, so every AZ in use needs one.
        for n in &nodes.value {
            if !i.subnets.value.contains_key(&n.availability_zone.value) {
                self.err(n.availability_zone.span, format!(
                    "no subnet for availability zone {} in cluster.instance.subnets: a replacement for node `{}` could not be placed",
                    n.availability_zone.value, n.name.value
                )).rule = Some("R4");
            }
        }
        if !i.ami.value.starts_with("ami-") {
            self.err(
                i.ami.span,
                format!("ami `{}` is not an AMI id (ami-…)", i.ami.value),
            );
        }
        InstanceDefaults {
            instance_type: i.instance_type.value.clone(),
            ami: i.ami.value.clone(),
            subnets: i.subnets.value.clone(),
            security_groups: i.security_groups.clone(),
            iam_instance_profile: i.iam_instance_profile.clone(),
            key_name: i.key_name.clone(),
            instance_store_volumes: i.instance_store_volumes.as_ref().map_or(0, |v| v.value),
            instance_store_volumes_span: i
                .instance_store_volumes
                .as_ref()
                .map_or(i.instance_type.span, |v| v.span),
        }
    }

    /// `racks`: Enterprise only; every node's zone has a rack, each a rack id Aerospike accepts
    /// (1–1000000; 0 is the rack of a cluster that is not rack-aware).
    fn racks(&mut self, c: &RawCluster, nodes: &[Node]) -> BTreeMap<String, u32> {
        let Some(raw) = &c.racks else {
            if let Some((n, r)) = c
                .nodes
                .value
                .iter()
                .find_map(|n| n.rack.as_ref().map(|r| (n, r)))
            {
                self.err(r.span, format!("node `{}` names a rack, but the cluster declares no `racks`", n.name.value))
                    .set("R4", "declare `racks` (one per zone) for a rack-aware cluster, or remove the node's `rack`");
            }
            return BTreeMap::new();
        };
        if c.edition.value == Edition::Community {
            self.err(raw.span, "`racks`: rack awareness (`rack-id`) is Enterprise-only, and this cluster is `edition: community`")
                .set("R4", "remove `racks`, or declare `edition: enterprise` if the nodes run it");
        }
        let mut out = BTreeMap::new();
        for (zone, id) in &raw.value {
            if id.value == 0 || id.value > 1_000_000 {
                self.err(
                    id.span,
                    format!("rack of {zone} is {}: a rack id is 1 to 1000000", id.value),
                );
            }
            out.insert(zone.clone(), id.value);
        }
        for n in &c.nodes.value {
            if let Some(r) = &n.rack
                && (r.value == 0 || r.value > 1_000_000)
            {
                self.err(
                    r.span,
                    format!(
                        "node `{}`'s rack is {}: a rack id is 1 to 1000000",
                        n.name.value, r.value
                    ),
                );
            }
        }
        for n in nodes {
            if n.rack.is_none() && !out.contains_key(&n.availability_zone) {
                self.err(
                    raw.span,
                    format!(
                        "node `{}` is in {}, which `racks` gives no rack: every node of a rack-aware cluster is in one",
                        n.name, n.availability_zone
                    ),
                );
            }
        }
        out
    }

    /// Renders every per-node template for every node, so an unknown variable or a filter error
    /// is reported now, at the template's line, not halfway through an apply.
    pub(super) fn render_every_node(&mut self, cluster: &Cluster, raw: &RawCluster) {
        let Some(node) = cluster.nodes.first() else {
            return;
        };
        let vars = NodeVars::new(&cluster.name, node);
        let mut checks: Vec<(&Template, Span, &str)> = vec![
            (
                &cluster.service_stop,
                raw.service.stop.span,
                "cluster.service.stop",
            ),
            (
                &cluster.service_start,
                raw.service.start.span,
                "cluster.service.start",
            ),
            (
                &cluster.config.path,
                raw.config.path.span,
                "cluster.config.path",
            ),
        ];
        if let (Some(t), Some(raw_t)) = (&cluster.service_cold_start, &raw.service.cold_start) {
            checks.push((t, raw_t.span, "cluster.service.cold_start"));
        }
        if let Some(w) = &raw.work_directory {
            checks.push((&cluster.work_directory, w.span, "cluster.work_directory"));
        }
        for (ns, raw_ns) in cluster.namespaces.iter().zip(&raw.namespaces.value) {
            for (d, rd) in ns.devices.iter().zip(&raw_ns.devices.value) {
                checks.push((&d.device, rd.device.span, "device"));
                if let (Some(s), Some(rs)) = (&d.shadow, &rd.shadow) {
                    checks.push((s, rs.span, "shadow"));
                }
                if let Some(re) = &rd.ebs {
                    checks.push((&d.ebs, re.span, "ebs"));
                }
            }
        }
        for (t, span, what) in checks {
            if let Err(e) = t.render(&vars) {
                self.err(span, format!("template in {what} does not render: {e}"));
            }
        }
        if let Err(e) = cluster
            .config
            .template
            .render(config_vars_example(cluster, node))
        {
            let at = e.line.map(|l| format!(" (line {l})")).unwrap_or_default();
            self.err(
                raw.config.template.span,
                format!(
                    "config template {} does not render{at}: {e}",
                    cluster.config.template_path
                ),
            );
            return;
        }
        // R5: the config names each node's devices as the policy does, each shadow beside its
        // primary (the planner checks it again before any start; found here, it is found before
        // a restore is needed).
        'nodes: for node in &cluster.nodes {
            let Ok(text) = cluster
                .config
                .template
                .render(config_vars_example(cluster, node))
            else {
                continue;
            };
            let vars = NodeVars::new(&cluster.name, node);
            if let Some((ns, got, want)) =
                crate::config_device_mismatch(&cluster.namespaces, &vars, &text)
            {
                let e = self.err(
                    raw.config.template.span,
                    format!(
                        "config template {} renders namespace `{}` of node `{}` with [{got}], but the policy says [{want}]: the node would open other disks than the ones asdr checks before it starts it",
                        cluster.config.template_path, ns.name, node.name
                    ),
                );
                e.rule = Some("R5");
                e.help = Some("render each device as `device {{ d.device }}{% if d.shadow %} {{ d.shadow }}{% endif %}` from `ns.devices`, or make the policy's paths say what the template writes".into());
                break 'nodes;
            }
        }
        // R4: in a rack-aware cluster every namespace of every node's config says its rack.
        if !cluster.racks.is_empty() {
            for node in &cluster.nodes {
                let Ok(text) = cluster
                    .config
                    .template
                    .render(config_vars_example(cluster, node))
                else {
                    continue;
                };
                let rack = cluster.rack_of(node).to_string();
                if let Some((ns, said)) = crate::config_rack_ids(&text)
                    .into_iter()
                    .find(|(_, r)| r.as_deref() != Some(rack.as_str()))
                {
                    let found =
                        said.map_or("no `rack-id`".to_string(), |r| format!("`rack-id {r}`"));
                    self.err(
                        raw.config.template.span,
                        format!(
                            "[R4] `racks` puts node `{}` ({}) in rack {rack}, but config template {} renders {found} in its namespace {ns}: a replacement would join another rack",
                            node.name, node.availability_zone, cluster.config.template_path
                        ),
                    )
                    .help = Some("put `rack-id {{ rack_id }}` in every `namespace { }` context of the template".into());
                    break;
                }
            }
        }
        // R18: a pinned id is only kept if the config says it.
        for node in cluster.nodes.iter() {
            let Some(pinned) = &node.node_id else {
                continue;
            };
            let Ok(text) = cluster
                .config
                .template
                .render(config_vars_example(cluster, node))
            else {
                continue;
            };
            let said = crate::config_node_ids(&text);
            if said.as_slice() != std::slice::from_ref(pinned) {
                let found = match said.as_slice() {
                    [] => "no `node-id` in its service context".to_string(),
                    ids => format!("`node-id {}`", ids.join("`, `node-id ")),
                };
                self.err(
                    node.node_id_span,
                    format!(
                        "[R18] node `{}` pins node_id {pinned}, but config template {} renders {found} for it: a replacement would join as another node",
                        node.name, cluster.config.template_path
                    ),
                )
                .help = Some(
                    "put `node-id {{ node_id }}` in the template's `service { }` context".into(),
                );
            }
        }
    }
}

/// The drive a device path is on: a partition (`/dev/nvme1n1p2`, `/dev/sdb3`, `/dev/xvdc1`) is on
/// its disk (`/dev/nvme1n1`, `/dev/sdb`, `/dev/xvdc`); anything else is its own.
pub fn drive_of(device: &str) -> &str {
    let digits_at = |s: &str| s.len() - s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if let Some(rest) = device.strip_prefix("/dev/nvme") {
        // nvme<ctrl>n<ns>p<part>
        if let Some(p) = rest.rfind('p')
            && rest[..p].contains('n')
            && p + 1 < rest.len()
            && digits_at(&rest[p + 1..]) == rest.len() - p - 1
        {
            return &device[..device.len() - (rest.len() - p)];
        }
        return device;
    }
    for disk in ["/dev/sd", "/dev/xvd", "/dev/vd"] {
        if let Some(rest) = device.strip_prefix(disk) {
            let n = digits_at(rest);
            if n > 0
                && n < rest.len()
                && rest[..rest.len() - n]
                    .chars()
                    .all(|c| c.is_ascii_lowercase())
            {
                return &device[..device.len() - n];
            }
        }
    }
    device
}

#[cfg(test)]
mod drive_tests {
    use super::drive_of;

    #[test]
    fn partitions_count_as_their_drive() {
        for (dev, drive) in [
            ("/dev/nvme1n1p1", "/dev/nvme1n1"),
            ("/dev/nvme1n1p4", "/dev/nvme1n1"),
            ("/dev/nvme12n1p10", "/dev/nvme12n1"),
            ("/dev/nvme1n1", "/dev/nvme1n1"),
            ("/dev/sdb3", "/dev/sdb"),
            ("/dev/xvdc1", "/dev/xvdc"),
            ("/dev/sdb", "/dev/sdb"),
            (
                "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1",
                "/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS1",
            ),
        ] {
            assert_eq!(drive_of(dev), drive, "{dev}");
        }
    }
}
