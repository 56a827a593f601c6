//! Raw policy → checked `Policy`. Every check that needs only the policy file lives here, so that
//! `asdr validate` refuses a bad file before anything is observed (the static half of the safety
//! rules: R1, R6, R8, R9 and R4's subnet requirement).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::diagnostic::Diagnostic;
use crate::duration::Duration;
use crate::model::*;
use crate::raw::*;
use crate::span::{Sp, Span};
use crate::template::Template;

/// The variables every per-node template may use.
#[derive(Debug, Clone, Serialize)]
pub struct NodeVars<'a> {
    pub cluster: &'a str,
    pub node: &'a str,
    pub private_ip: String,
    pub availability_zone: &'a str,
}

impl<'a> NodeVars<'a> {
    pub fn new(cluster: &'a str, node: &'a Node) -> Self {
        NodeVars {
            cluster,
            node: &node.name,
            private_ip: node.private_ip.to_string(),
            availability_zone: &node.availability_zone,
        }
    }
}

/// The variables of `backup.snapshot_description`.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotVars<'a> {
    pub cluster: &'a str,
    pub node: &'a str,
    pub device: &'a str,
    pub set: &'a str,
}

pub(crate) struct Validator<'a> {
    pub errors: Vec<Diagnostic>,
    base_dir: &'a Path,
}

impl<'a> Validator<'a> {
    pub fn new(base_dir: &'a Path) -> Self {
        Validator {
            errors: Vec::new(),
            base_dir,
        }
    }

    fn err(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        self.errors.push(Diagnostic::new(span, message));
        self.errors.last_mut().expect("just pushed")
    }

    fn template(&mut self, s: &Sp<String>, what: &str) -> Template {
        match Template::compile(&s.value) {
            Ok(t) => t,
            Err(e) => {
                self.err(s.span, format!("bad template in {what}: {e}"));
                Template::compile("").expect("empty template compiles")
            }
        }
    }

    /// A name of `kind` (node, restore): `[a-z0-9-]+`, and not seen before in `seen`.
    fn unique_name(&mut self, kind: &str, name: &Sp<String>, seen: &mut BTreeSet<String>) {
        if !is_name(&name.value) {
            self.err(
                name.span,
                format!("{kind} name `{}` must match [a-z0-9-]+", name.value),
            );
        }
        if !seen.insert(name.value.clone()) {
            self.err(
                name.span,
                format!("{kind} `{}` is declared twice", name.value),
            );
        }
    }

    fn duration(&mut self, s: &Sp<String>) -> Duration {
        Duration::parse(&s.value).unwrap_or_else(|e| {
            self.err(s.span, e);
            Duration(1)
        })
    }

    pub fn policy(&mut self, raw: RawPolicy, path: &str, text: &str) -> Policy {
        if raw.version.value != 1 {
            self.err(
                raw.version.span,
                format!(
                    "unsupported version {}: this asdr reads version 1",
                    raw.version.value
                ),
            );
        }
        let cluster = self.cluster(raw.cluster);
        let backup = self.backup(raw.backup, &cluster);
        let restores = self.restores(raw.restores, &cluster, &backup);
        let lock = raw.lock.map(|l| {
            let s3 = l
                .value
                .strip_prefix("s3://")
                .and_then(|r| r.split_once('/'))
                .is_some_and(|(b, k)| !b.is_empty() && !k.is_empty());
            if !s3 && !l.value.starts_with("file:///") {
                self.err(
                    l.span,
                    format!("lock `{}` must be s3://bucket/key or file:///path", l.value),
                );
            }
            l.value
        });
        let drills = self.drills(raw.drills, &cluster, &restores);
        Policy {
            path: path.to_string(),
            text: text.to_string(),
            cluster,
            backup,
            restores,
            lock,
            drills,
        }
    }

    fn cluster(&mut self, c: RawCluster) -> Cluster {
        if !is_name(&c.name.value) {
            self.err(
                c.name.span,
                format!(
                    "cluster name `{}` must match [a-z0-9-]+ (it is used in tags and names)",
                    c.name.value
                ),
            );
        }
        if c.region.value.is_empty()
            || !c
                .region
                .value
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        {
            self.err(
                c.region.span,
                format!(
                    "region `{}` is not an AWS region name such as us-east-1",
                    c.region.value
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
            }),
            (_, None) => None,
        };
        let service_stop = self.template(&c.service.stop, "cluster.service.stop");
        let service_start = self.template(&c.service.start, "cluster.service.start");
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
        // R4/R5: every shadowed primary is an instance-store drive; a replacement type must offer
        // at least that many, or the node cannot be configured as the one it replaces.
        let shadowed = namespaces
            .iter()
            .flat_map(|ns: &Namespace| &ns.devices)
            .filter(|d| d.shadow.is_some())
            .map(|d| d.device.source().to_string())
            .collect::<BTreeSet<_>>()
            .len() as u32;
        if shadowed > instance.instance_store_volumes {
            self.err(instance.instance_store_volumes_span, format!(
                "instance_store_volumes is {}, but the namespaces put {shadowed} shadowed primaries on instance-store drives: a replacement could come without them",
                instance.instance_store_volumes
            )).set("R4", format!("set `cluster.instance.instance_store_volumes: {shadowed}` (or more)"));
        }
        let cluster = Cluster {
            name: c.name.value.clone(),
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
            config,
            namespaces,
            instance,
            nodes,
        };
        self.render_every_node(&cluster, &c);
        cluster
    }

    fn config(&mut self, c: &RawConfig) -> ConfigSpec {
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

    fn namespaces(&mut self, raw: &Sp<Vec<RawNamespace>>) -> Vec<Namespace> {
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
                devices,
            });
        }
        out
    }

    fn nodes(&mut self, raw: &Sp<Vec<RawNode>>) -> Vec<Node> {
        if raw.value.is_empty() {
            self.err(raw.span, "a cluster needs at least one node");
        }
        let mut names = BTreeSet::new();
        let mut ips = BTreeMap::new();
        let mut ids = BTreeSet::new();
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
            out.push(Node {
                name: n.name.value.clone(),
                name_span: n.name.span,
                instance_id: n.instance_id.as_ref().map(|i| i.value.clone()),
                private_ip: ip,
                availability_zone: n.availability_zone.value.clone(),
            });
        }
        out
    }

    fn instance(&mut self, i: &RawInstance, nodes: &Sp<Vec<RawNode>>) -> InstanceDefaults {
        // R4: a replacement goes into the failed node's subnet, so every AZ in use needs one.
        for n in &nodes.value {
            if !i.subnets.value.contains_key(&n.availability_zone.value) {
                self.err(n.availability_zone.span, format!(
                    "no subnet for availability zone {} in cluster.instance.subnets: a replacement for node `{}` could not be placed (R4)",
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

    /// Renders every per-node template for every node, so an unknown variable or a filter error
    /// is reported now, at the template's line, not halfway through an apply.
    fn render_every_node(&mut self, cluster: &Cluster, raw: &RawCluster) {
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
        }
    }

    fn backup(&mut self, b: RawBackup, cluster: &Cluster) -> Backup {
        let every = self.duration(&b.every);
        let count = b.retain.value.count.as_ref().map(|c| {
            if c.value == 0 {
                self.err(
                    c.span,
                    "retain.count must be at least 1: the newest complete set is always kept",
                );
            }
            c.value
        });
        let max_age = b.retain.value.max_age.as_ref().map(|m| self.duration(m));
        if count.is_none() && max_age.is_none() {
            self.err(b.retain.span, "retain needs `count`, `max_age` or both");
        }
        if let Some(max_age) = max_age
            && max_age < every
            && let Some(m) = &b.retain.value.max_age
        {
            self.err(m.span, format!("retain.max_age {max_age} is shorter than every {every}: no set would live to be replaced"));
        }
        check_store_uri(self, &b.smd.to, "backup.smd.to");
        let min_rf = cluster
            .namespaces
            .iter()
            .map(|n| n.replication_factor)
            .min()
            .unwrap_or(1);
        let disruptive = matches!(
            b.consistency.value,
            Consistency::Quiesce | Consistency::StopNode
        );
        let max_nodes_at_once = match &b.max_nodes_at_once {
            Some(m) if m.value == 0 => {
                self.err(m.span, "max_nodes_at_once must be at least 1");
                1
            }
            Some(m) => {
                if m.value + 1 > min_rf {
                    self.err(m.span, format!(
                        "max_nodes_at_once {} is more than replication_factor - 1 = {}: taking that many nodes out at once makes partitions unavailable",
                        m.value, min_rf.saturating_sub(1)
                    )).rule = Some("R8");
                }
                m.value
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
                    self.err(s.span, format!("template in backup.snapshot_description does not render: {e} (variables: cluster, node, device, set)"));
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
                // it, so the plan shows it. Options asdr sets itself are refused: given again they
                // would contradict the plan.
                let mut compress = a.value.compress.as_ref().map(|c| c.value);
                let mut args = Vec::new();
                let mut it = a.value.args.iter().peekable();
                while let Some(arg) = it.next() {
                    match arg.as_str() {
                        "-z" | "--compress" if it.peek().is_some_and(|v| *v == "zstd") => {
                            it.next();
                            compress = Some(Compress::Zstd);
                        }
                        "-d" | "--directory" | "-n" | "--namespace" | "-r" | "--remove-files"
                        | "-z" | "--compress" | "-y" | "--encrypt" | "-a" | "--modified-after"
                        | "-h" | "--host" | "-p" | "--port" => {
                            self.err(a.span, format!("backup.asbackup.args: `{arg}` is set by asdr (use `to`, `compress`, `encrypt`, `incremental_every`)"));
                        }
                        _ => args.push(arg.clone()),
                    }
                }
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
                })
            }
            (_, None) => None,
        };
        let accept_zombie_records = b.accept_zombie_records.as_ref().is_some_and(|a| a.value);
        if b.method.value == Method::EbsSnapshot {
            self.consistency_rules(&b, cluster, accept_zombie_records);
        }
        Backup {
            method: b.method.value,
            consistency: b.consistency.value,
            consistency_span: b.consistency.span,
            every,
            every_span: b.every.span,
            retain: Retain { count, max_age },
            smd_to: b.smd.to.value.clone(),
            max_nodes_at_once,
            tags,
            snapshot_description,
            asbackup,
            accept_zombie_records,
        }
    }

    fn consistency_rules(&mut self, b: &RawBackup, cluster: &Cluster, accept: bool) {
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
            Consistency::StopNode if !accept && !cluster.durable_deletes => {
                self.err(span, "consistency `stop-node` cold-starts every node it backs up, and a cold start brings back records deleted without durable deletes")
                    .set("R6", "set `backup.accept_zombie_records: true`, declare `cluster.durable_deletes: true`, or use `multi-volume`");
            }
            _ => {}
        }
    }

    fn restores(
        &mut self,
        raw: Vec<RawRestore>,
        cluster: &Cluster,
        backup: &Backup,
    ) -> Vec<Restore> {
        let mut names = BTreeSet::new();
        let min_rf = cluster
            .namespaces
            .iter()
            .map(|n| n.replication_factor)
            .min()
            .unwrap_or(1);
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
                            let known: Vec<&str> =
                                cluster.nodes.iter().map(|c| c.name.as_str()).collect();
                            self.err(
                                n.span,
                                format!(
                                    "restore `{}` names unknown node `{}` (nodes: {})",
                                    r.name.value,
                                    n.value,
                                    known.join(", ")
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
            if let Some(source) = &source {
                self.restore_rules(&r, source, accept, cluster, backup, min_rf);
            }
            let volume = r
                .volume
                .as_ref()
                .map(|v| self.volume(v))
                .unwrap_or_default();
            out.push(Restore {
                name: r.name.value.clone(),
                name_span: r.name.span,
                scope: r.scope.value,
                nodes,
                source: source.unwrap_or(RestoreSource::LatestBackup),
                source_span: r.source.span,
                accept_zombie_records: accept,
                volume,
            });
        }
        out
    }

    fn source(&mut self, s: &Sp<String>) -> Option<RestoreSource> {
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
                        .map_err(|e| {
                            format!(
                                "`{t}` is not an RFC 3339 time such as 2026-11-20T00:00:00Z: {e}"
                            )
                        })
                } else {
                    Err(format!(
                        "unknown restore source `{v}`: expected current-volumes, empty, latest-backup, set:<set id> or before:<RFC 3339 time>"
                    ))
                }
            }
        };
        parsed.map_err(|e| self.err(s.span, e)).ok()
    }

    fn restore_rules(
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
                if r.nodes.as_ref().map_or(0, |n| n.value.len()) as u32 >= min_rf =>
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
        if backup.method == Method::Asbackup && source.uses_backup() && r.scope.value == Scope::Node
        {
            self.err(span, format!("restore `{name}`: asbackup backups restore all or nothing across the cluster; a single node cannot be restored from them"));
        }
    }

    fn drills(
        &mut self,
        raw: Vec<RawDrill>,
        cluster: &Cluster,
        restores: &[Restore],
    ) -> Vec<Drill> {
        let mut names = BTreeSet::new();
        let production: BTreeSet<Ipv4Addr> = cluster.nodes.iter().map(|n| n.private_ip).collect();
        let mut out = Vec::new();
        for d in raw {
            self.unique_name("drill", &d.name, &mut names);
            match restores.iter().find(|r| r.name == d.restore.value) {
                None => {
                    let known: Vec<&str> = restores.iter().map(|r| r.name.as_str()).collect();
                    self.err(
                        d.restore.span,
                        format!(
                            "drill `{}` names unknown restore `{}` (restores: {})",
                            d.name.value,
                            d.restore.value,
                            known.join(", ")
                        ),
                    );
                }
                Some(r) if !r.source.uses_backup() => {
                    self.err(d.restore.span, format!("drill `{}`: restore `{}` does not restore from a backup (source `{}`); a drill replays a backup into an isolated target", d.name.value, r.name, r.source));
                }
                Some(_) => {}
            }
            let t = &d.target.value;
            for n in &cluster.nodes {
                if !t.subnets.value.contains_key(&n.availability_zone) {
                    self.err(
                        t.subnets.span,
                        format!(
                            "drill `{}` has no subnet for availability zone {} (node `{}`)",
                            d.name.value, n.availability_zone, n.name
                        ),
                    );
                }
            }
            let mut ips = BTreeMap::new();
            match (&t.private_ips, &t.ip_offset) {
                (Some(list), None) => {
                    for n in &cluster.nodes {
                        match list.value.get(&n.name).map(|ip| ip.parse::<Ipv4Addr>()) {
                            Some(Ok(ip)) => {
                                ips.insert(n.name.clone(), ip);
                            }
                            Some(Err(_)) => {
                                self.err(
                                    list.span,
                                    format!(
                                        "drill `{}`: the address of `{}` is not an IPv4 address",
                                        d.name.value, n.name
                                    ),
                                );
                            }
                            None => {
                                self.err(
                                    list.span,
                                    format!(
                                        "drill `{}` gives no address for node `{}`",
                                        d.name.value, n.name
                                    ),
                                );
                            }
                        }
                    }
                }
                (None, Some(offset)) => {
                    for n in &cluster.nodes {
                        let o = n.private_ip.octets();
                        match o[3].checked_add(offset.value) {
                            Some(last) => {
                                ips.insert(n.name.clone(), Ipv4Addr::new(o[0], o[1], o[2], last));
                            }
                            None => {
                                self.err(
                                    offset.span,
                                    format!(
                                        "drill `{}`: ip_offset {} takes node `{}` ({}) past .255",
                                        d.name.value, offset.value, n.name, n.private_ip
                                    ),
                                );
                            }
                        }
                    }
                }
                _ => {
                    self.err(
                        d.target.span,
                        format!(
                            "drill `{}` needs exactly one of `private_ips` or `ip_offset`",
                            d.name.value
                        ),
                    );
                }
            }
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
    fn drill_config_is_isolated(
        &mut self,
        drill: &Drill,
        cluster: &Cluster,
        production: &BTreeSet<Ipv4Addr>,
    ) {
        let peers = drill.peers();
        let name = drill.cluster_name(&cluster.name);
        for node in &cluster.nodes {
            let stand_in = drill.stand_in(node);
            let Ok(text) = cluster
                .config
                .template
                .render(crate::config_vars_for(cluster, &name, &stand_in, &peers))
            else {
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

    fn volume(&mut self, v: &Sp<RawVolume>) -> VolumeSpec {
        const TYPES: [&str; 7] = ["gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"];
        if let Some(t) = &v.value.volume_type
            && !TYPES.contains(&t.value.as_str())
        {
            self.err(
                t.span,
                format!(
                    "unknown EBS volume type `{}` (one of {})",
                    t.value,
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
        VolumeSpec {
            volume_type: v.value.volume_type.as_ref().map(|t| t.value.clone()),
            iops: v.value.iops,
            throughput: v.value.throughput,
            initialization_rate: v.value.initialization_rate.as_ref().map(|r| r.value),
        }
    }
}

/// Example variables for the config template: one real node of the policy.
pub fn config_vars_example<'a>(cluster: &'a Cluster, node: &'a Node) -> serde_json::Value {
    crate::config_vars(cluster, node)
}

fn check_store_uri(v: &mut Validator<'_>, s: &Sp<String>, what: &str) {
    let ok = s
        .value
        .strip_prefix("s3://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        || s.value.strip_prefix("file:///").is_some();
    if !ok {
        v.err(
            s.span,
            format!(
                "{what} `{}` must be s3://bucket/prefix or file:///directory",
                s.value
            ),
        );
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `bs-YYYYMMDDTHHMMSSZ`.
pub fn is_set_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("bs-") else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 16
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
}
