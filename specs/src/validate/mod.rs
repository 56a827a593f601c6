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

mod backup;
mod cluster;
mod drills;
mod lock;
mod restores;
mod tool_args;

pub use backup::shares_home_store;
pub use cluster::drive_of;
pub use tool_args::{asbackup_arg_problems, asrestore_arg_problems};

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
    /// Said by `validate` without refusing: where, and what.
    notes: Vec<(Span, String)>,
    base_dir: &'a Path,
}

impl<'a> Validator<'a> {
    pub fn new(base_dir: &'a Path) -> Self {
        Validator {
            errors: Vec::new(),
            notes: Vec::new(),
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

    /// A new cluster's addresses (a drill's, a restore's elsewhere): `private_ips` for every node
    /// (IPv4, no unknown node), or `ip_offset` (each node's address plus the offset in the last
    /// octet). `what` names the owner in messages (`drill `q1``); the addresses found, and whether
    /// all were sound (each error said at its line).
    fn new_addresses(
        &mut self,
        what: &str,
        private_ips: Option<&Sp<BTreeMap<String, String>>>,
        ip_offset: Option<&Sp<u8>>,
        whole: Span,
        cluster: &Cluster,
    ) -> (BTreeMap<String, Ipv4Addr>, bool) {
        let mut ips = BTreeMap::new();
        let mut ok = true;
        match (private_ips, ip_offset) {
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
                                    "{what}: the address of `{}` is not an IPv4 address",
                                    n.name
                                ),
                            );
                            ok = false;
                        }
                        None => {
                            self.err(
                                list.span,
                                format!("{what} gives no address for node `{}`", n.name),
                            );
                            ok = false;
                        }
                    }
                }
                for k in list.value.keys() {
                    if cluster.nodes.iter().all(|n| &n.name != k) {
                        self.err(
                            list.span,
                            format!(
                                "{what} gives an address to unknown node `{k}`{}",
                                crate::suggest::did_you_mean(
                                    k,
                                    cluster.nodes.iter().map(|n| n.name.as_str())
                                )
                            ),
                        );
                        ok = false;
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
                                    "{what}: ip_offset {} takes node `{}` ({}) past .255",
                                    offset.value, n.name, n.private_ip
                                ),
                            );
                            ok = false;
                        }
                    }
                }
            }
            _ => {
                self.err(
                    whole,
                    format!("{what} needs exactly one of `private_ips` or `ip_offset`"),
                );
                ok = false;
            }
        }
        (ips, ok)
    }

    /// R17: Enterprise restarts warm, reattaching the index in shared memory without reading
    /// the devices. A restore that swaps a node's volumes (or restores SMD) on its own instance
    /// must start it cold, so the policy must say how.
    fn cold_start_required(
        &mut self,
        cluster: &Cluster,
        backup: &Backup,
        restores: &[Restore],
        start_span: Span,
    ) {
        if cluster.edition != Edition::Enterprise || cluster.service_cold_start.is_some() {
            return;
        }
        // Only a restore from a set swaps a running node's volumes on its own instance:
        // `current-volumes` and `empty` act on nodes that are down, which get a new instance (and
        // start cold anyway); asrestore swaps nothing; a restore elsewhere launches new instances.
        if backup.method == Method::Asbackup {
            return;
        }
        let swapping: Vec<&str> = restores
            .iter()
            .filter(|r| r.region.is_none() && r.source.uses_backup())
            .map(|r| r.name.as_str())
            .collect();
        if swapping.is_empty() {
            return;
        }
        self.err(
            start_span,
            format!(
                "`edition: enterprise` restarts warm (it reattaches the index in shared memory and does not read the devices), and restore{} {} can swap a node's volumes in place: `cluster.service.cold_start` must say how to start it cold",
                if swapping.len() == 1 { "" } else { "s" },
                swapping.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
        )
        .set(
            "R17",
            "add `cold_start: asd-coldstart` under `cluster.service` (systemd installs; `service aerospike coldstart` with SysV init)",
        );
    }

    /// R17: `cold_start`, rendered for every node, is a command, and not the plain start (which
    /// on Enterprise restarts warm) however it is spelled or templated.
    fn cold_start_is_a_command(&mut self, cluster: &Cluster, span: Span) {
        let Some(cold) = &cluster.service_cold_start else {
            return;
        };
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        for node in &cluster.nodes {
            let vars = NodeVars::new(&cluster.name, node);
            let (Ok(c), Ok(s)) = (cold.render(&vars), cluster.service_start.render(&vars)) else {
                continue; // reported where the template is checked
            };
            if words(&c).is_empty() {
                self.err(span, format!("`cold_start` renders to nothing for node `{}`: a restored node would never start", node.name))
                    .set("R17", "use `asd-coldstart` (systemd) or `service aerospike coldstart` (SysV)");
                return;
            }
            if cluster.edition == Edition::Enterprise && words(&c) == words(&s) {
                self.err(span, format!("`cold_start` is the same command as `start` for node `{}` (`{}`): Enterprise would restart warm and ignore restored volumes", node.name, words(&c)))
                    .set("R17", "use `asd-coldstart` (systemd) or `service aerospike coldstart` (SysV)");
                return;
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
        let start_span = raw.cluster.service.start.span;
        let cold_span = raw.cluster.service.cold_start.as_ref().map(|c| c.span);
        let cluster = self.cluster(raw.cluster);
        let backup = self.backup(raw.backup, &cluster);
        let restores = self.restores(raw.restores, &cluster, &backup);
        self.cold_start_required(&cluster, &backup, &restores, start_span);
        if let Some(span) = cold_span {
            self.cold_start_is_a_command(&cluster, span);
        }
        let lock = raw.lock.map(|l| {
            // A lock is one object: an S3 key, or a file.
            let ok = match crate::StoreUri::parse(&l.value) {
                Some(crate::StoreUri::S3 { key, .. }) => !key.is_empty(),
                Some(crate::StoreUri::File(_)) => true,
                None => false,
            };
            if !ok {
                self.err(
                    l.span,
                    format!("lock `{}` must be s3://bucket/key or file:///path", l.value),
                );
            }
            l.value
        });
        let lock_expiry = raw.lock_expiry.map(|e| {
            let d = self.duration(&e);
            let s3 = lock.as_deref().is_some_and(crate::StoreUri::is_s3);
            if !s3 {
                self.err(
                    e.span,
                    "lock_expiry applies to an s3:// lock (a local lock is released with its process)",
                );
            }
            d
        });
        let drills = self.drills(raw.drills, &cluster, &backup, &restores);
        let mut notes = std::mem::take(&mut self.notes);
        notes.sort_by_key(|(span, _)| (span.line, span.column));
        let notes = notes
            .into_iter()
            .map(|(span, m)| format!("{path}:{}:{}: note: {m}", span.line, span.column))
            .collect();
        Policy {
            path: path.to_string(),
            text: text.to_string(),
            cluster,
            backup,
            restores,
            lock,
            lock_expiry,
            drills,
            notes,
        }
    }
}

/// Example variables for the config template: one real node of the policy.
pub fn config_vars_example<'a>(cluster: &'a Cluster, node: &'a Node) -> serde_json::Value {
    crate::config_vars(cluster, node)
}

fn check_store_uri(v: &mut Validator<'_>, s: &Sp<String>, what: &str) {
    let ok = crate::StoreUri::parse(&s.value).is_some();
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
