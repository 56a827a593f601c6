//! The policy text `asdr init` writes: commented, laid out as `asdr fmt` lays it out, with what
//! only the operator knows marked `REPLACE` (which `validate` refuses until it is filled in).

use super::InitArgs;
use super::source::{NewNode, Shape};

/// The devices of namespace `k` of `count`: the observed devices shared out in turn; a namespace
/// left without one gets the next free attachment name (`/dev/sdg`, …). No device is in two.
fn devices_of(devices: &[String], k: usize, count: usize) -> Vec<String> {
    let mine: Vec<String> = devices
        .iter()
        .enumerate()
        .filter(|(i, _)| i % count == k)
        .map(|(_, d)| d.clone())
        .collect();
    if !mine.is_empty() {
        return mine;
    }
    let free: Vec<String> = ('f'..='z')
        .map(|c| format!("/dev/sd{c}"))
        .filter(|d| !devices.contains(d))
        .collect();
    vec![free[(k - devices.len()) % free.len()].clone()]
}

/// Lines of YAML with their comments in one column.
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, code: &str, comment: &str) {
        if comment.is_empty() {
            self.0.push_str(code);
        } else {
            // At least two spaces before the comment, however long the code.
            self.0.push_str(&format!("{code:<36}  # {comment}"));
        }
        self.0.push('\n');
    }
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
        self.0.push('\n');
    }
}

pub(super) fn policy_text(
    a: &InitArgs,
    region: &str,
    nodes: &[NewNode],
    shape: &Shape,
    namespaces: &[String],
) -> String {
    let enterprise = a.edition == "enterprise";
    let mut zones: Vec<(&str, Option<&str>)> = Vec::new();
    for n in nodes {
        if !zones.iter().any(|(z, _)| *z == n.zone) {
            zones.push((&n.zone, n.subnet.as_deref()));
        }
    }
    let subnets: Vec<String> = zones
        .iter()
        .map(|(z, s)| format!("{z}: {}", s.unwrap_or("subnet-REPLACE")))
        .collect();
    let subnets_known = zones.iter().all(|(_, s)| s.is_some());
    // Two copies when there are two nodes to hold them: a lost node then refills from its peers.
    let rf = match &shape.namespaces {
        Some(reported) => reported
            .iter()
            .map(|n| n.replication_factor)
            .min()
            .unwrap_or(1),
        None if nodes.len() >= 2 => 2,
        None => 1,
    };
    let smd_to = a.smd_to.as_ref().or(shape.smd_to.as_ref());
    let file_store = smd_to.is_some_and(|s| s.starts_with("file://"));
    let mut t = Text::default();
    t.raw(&format!(
        "# The asdr policy of cluster {}, written by `asdr init`: every key is in docs/policy.md.",
        a.name
    ));
    t.raw("# Fill in the lines marked REPLACE, check it with `asdr validate`, and review a plan before");
    t.raw("# applying one.");
    t.raw("version: 1");
    t.raw("");
    t.raw("cluster:");
    t.line(
        &format!("  name: {}", a.name),
        "[a-z0-9-]+, used in tags and names",
    );
    t.line(&format!("  region: {region}"), "");
    t.line(
        &format!("  edition: {}", a.edition),
        "enterprise | community; checked against the nodes' `edition` reply",
    );
    t.line(
        "  work_directory: /opt/aerospike",
        "SMD lives in <work_directory>/smd (R10)",
    );
    t.line(
        "  access:",
        "how asdr runs commands and moves files on a node",
    );
    if file_store {
        // SSM moves files through S3 only: a file store needs ssh (or local).
        t.line(
            "    transport: ssh",
            "ssm | ssh | local; ssm needs an s3:// SMD store",
        );
        t.line(
            "    ssh: {user: ec2-user, port: 22}",
            "the nodes' login; identity_file, known_hosts too",
        );
    } else {
        t.line("    transport: ssm", "ssm | ssh | local");
    }
    t.line(
        "  service:",
        "shell commands run on a node through the transport",
    );
    t.line("    stop: systemctl stop aerospike", "");
    t.line("    start: systemctl start aerospike", "");
    if enterprise {
        t.line(
            "    cold_start: asd-coldstart",
            "Enterprise restarts warm: a start after a volume swap must read the devices (R17)",
        );
    }
    t.line(
        "  config:",
        "aerospike.conf of a (replacement) node, rendered with minijinja",
    );
    t.line("    template: templates/aerospike.conf.j2", "");
    t.line("    path: /etc/aerospike/aerospike.conf", "");
    t.line("  namespaces:", "");
    match &shape.namespaces {
        // As the nodes report them: the policy must say exactly this.
        Some(reported) => {
            for ns in reported {
                t.line(
                    &format!("    - name: {}", ns.name),
                    "as the nodes report it",
                );
                t.line(
                    &format!("      replication_factor: {}", ns.replication_factor),
                    "",
                );
                t.line("      devices:", "");
                for d in &ns.devices {
                    t.line(&format!("        - device: {}", d.device), "");
                    if let Some(s) = &d.shadow {
                        t.line(
                            &format!("          shadow: {s}"),
                            "EBS shadow: what is backed up",
                        );
                    }
                    if let Some(e) = &d.ebs {
                        t.line(
                            &format!("          ebs: {e}"),
                            "REPLACE with this volume's EBS attachment name (e.g. /dev/sdf)",
                        );
                    }
                }
            }
        }
        None => {
            for (k, ns) in namespaces.iter().enumerate() {
                t.line(&format!("    - name: {ns}"), "");
                t.line(&format!("      replication_factor: {rf}"), "");
                t.line(
                    "      devices:",
                    "one per storage-engine `device` line, as aerospike.conf names it",
                );
                for d in devices_of(&shape.devices, k, namespaces.len()) {
                    t.line(
                        &format!("        - device: {d}"),
                        "EBS; an instance-store primary: `shadow:` (its EBS shadow) and `ebs:`",
                    );
                }
            }
        }
    }
    t.line(
        "  instance:",
        "replacement instances are launched like this (R4)",
    );
    t.line(&format!("    type: {}", shape.instance_type), "");
    t.line("    ami: ami-REPLACE", "REPLACE with your nodes' AMI");
    t.line(
        &format!("    subnets: {{{}}}", subnets.join(", ")),
        if subnets_known {
            ""
        } else {
            "REPLACE with each zone's subnet"
        },
    );
    t.line(
        "    security_groups: [sg-REPLACE]",
        "REPLACE with your nodes' security groups",
    );
    t.line(
        &format!("    instance_store_volumes: {}", shape.instance_store),
        "ephemeral drives a replacement type must offer",
    );
    t.line("  nodes:", "");
    for n in nodes {
        t.line(&format!("    - name: {}", n.name), "");
        if let Some(id) = &n.instance_id {
            t.line(&format!("      instance_id: {id}"), "");
        }
        t.line(&format!("      private_ip: {}", n.ip), "");
        t.line(&format!("      availability_zone: {}", n.zone), "");
    }
    t.raw("");
    t.raw("backup:");
    t.line("  method: ebs-snapshot", "ebs-snapshot | asbackup");
    t.line(
        "  consistency: multi-volume",
        "each node's volumes snapshotted together, crash-consistent (R1)",
    );
    t.line(
        "  every: 24h",
        "a complete set younger than this must exist: the RPO",
    );
    t.line(
        "  retain: {count: 7, max_age: 30d}",
        "the newest 7 complete sets, none older than 30 days",
    );
    match smd_to {
        Some(to) => t.line(
            &format!("  smd: {{to: {to}}}"),
            "where SMD archives go (R2)",
        ),
        None => t.line(
            "  smd: {to: s3://REPLACE-bucket/asdr}",
            "REPLACE: where SMD archives go (the cluster's name is added), s3://… (R2)",
        ),
    }
    if rf >= 2 {
        t.line(
            "  max_nodes_at_once: 1",
            "nodes quiesced or stopped at the same time (R8)",
        );
    }
    t.raw("");
    t.raw("restores:");
    let first = &nodes[0].name;
    if rf >= 2 {
        t.line(
            &format!("  - name: {first}-refill"),
            "a lost node rejoins blank, refilled by its peers: no deleted record returns",
        );
        t.raw("    scope: node");
        t.raw(&format!("    nodes: [{first}]"));
        t.raw("    source: empty");
    }
    t.line(
        "  - name: full-cluster",
        "the whole cluster from the newest complete set",
    );
    t.raw("    scope: cluster");
    t.raw("    source: latest-backup");
    t.0
}
