use std::path::{Path, PathBuf};

use asdr_planner::World;
use asdr_planner::world::InstanceState;
use asdr_providers::world_file::{self, Format};

use crate::args::{Global, InitArgs};
use crate::commands::print;
use crate::error::CommandError;

/// The aerospike.conf template a new policy starts with: mesh heartbeats between the policy's
/// nodes, each node's id, a storage-engine device line per declared device.
const TEMPLATE: &str = include_str!("init/aerospike.conf.j2");

/// A node of the new policy.
struct NewNode {
    name: String,
    ip: String,
    zone: String,
    subnet: Option<String>,
    instance_id: Option<String>,
}

/// What the new policy says beyond its nodes.
struct Shape {
    instance_type: String,
    instance_store: u32,
    devices: Vec<String>,
}

/// `asdr init`: a commented policy for a new cluster, its aerospike.conf template and (from
/// flags) a world-file skeleton to rehearse on. The policy is validated before anything is
/// written, and nothing that exists is overwritten without `--force`.
pub fn cmd_init(g: &Global, a: &InitArgs) -> Result<i32, CommandError> {
    let user = |m: String| CommandError::User(m);
    let (nodes, shape, source_world) = match &a.from_world {
        Some(path) => {
            let world = world_file::load(path).map_err(|e| user(e.to_string()))?;
            let (nodes, shape) = from_world(&world, &a.name, a.name_prefix.as_deref())
                .map_err(|m| user(format!("{}: {m}", path.display())))?;
            (nodes, shape, Some(path.clone()))
        }
        None => (
            from_flags(&a.nodes).map_err(user)?,
            Shape {
                instance_type: "i4i.xlarge".into(),
                instance_store: 0,
                devices: vec!["/dev/sdf".into()],
            },
            None,
        ),
    };
    let region = region(g.region.as_deref(), &nodes).map_err(user)?;
    let namespaces = if a.namespaces.is_empty() {
        vec!["test".to_string()]
    } else {
        a.namespaces.clone()
    };
    let text = policy_text(a, &region, &nodes, &shape, &namespaces);
    // Written to a scratch directory first and validated there: a policy `init` writes always
    // validates, or nothing is written.
    let scratch = std::env::temp_dir().join(format!("asdr-init-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("templates"))
        .map_err(|e| user(format!("cannot write {}: {e}", scratch.display())))?;
    let written = std::fs::write(scratch.join("templates/aerospike.conf.j2"), TEMPLATE)
        .map_err(|e| user(e.to_string()));
    let parsed = written.and_then(|()| {
        asdr_specs::parse("asdr.yaml", &text, &scratch).map_err(|d| {
            user(format!(
                "the policy these flags make does not validate; nothing was written:\n{d}"
            ))
        })
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let policy = parsed?;
    let mut files: Vec<(PathBuf, String)> = vec![
        (a.dir.join("asdr.yaml"), text),
        (
            a.dir.join("templates/aerospike.conf.j2"),
            TEMPLATE.to_string(),
        ),
    ];
    if source_world.is_none() {
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        let world = asdr_planner::skeleton::world(&policy, now);
        let mut yaml = String::from(
            "# A skeleton world for rehearsing the new policy: what a healthy cluster of it would show\n# before its first backup (ids and sizes made up). `asdr inventory` writes the real one.\n",
        );
        yaml.push_str(&world_file::to_string(&world, Format::Yaml)?);
        files.push((a.dir.join("world.yaml"), yaml));
    }
    let exists: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !exists.is_empty() && !a.force {
        return Err(user(format!(
            "{} already exist(s); nothing was written (--force overwrites)",
            exists.join(", ")
        )));
    }
    for (path, content) in &files {
        write(path, content).map_err(user)?;
    }
    if !g.quiet {
        print(&next_steps(a, &files, source_world.as_deref()))?;
    }
    Ok(0)
}

fn write(path: &Path, content: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn next_steps(a: &InitArgs, files: &[(PathBuf, String)], world: Option<&Path>) -> String {
    let mut out = String::from("wrote:\n");
    for (p, _) in files {
        out.push_str(&format!("  {}\n", p.display()));
    }
    let policy = a.dir.join("asdr.yaml");
    let world_path = world.map_or_else(|| a.dir.join("world.yaml"), Path::to_path_buf);
    out.push_str(&format!(
        "\nnext:\n  1. fill in the lines marked REPLACE in {} (AMI, security groups{}{})\n  2. adjust namespaces, devices and templates/aerospike.conf.j2 to your nodes\n  3. asdr -f {} validate\n  4. asdr -f {} --world {} plan      # the first backup, reviewed offline\n",
        policy.display(),
        if world.is_none() { ", subnets" } else { "" },
        if a.smd_to.is_none() { ", the SMD store" } else { "" },
        policy.display(),
        policy.display(),
        world_path.display()
    ));
    out
}

/// `a1=10.0.1.11@us-east-1a`, one per `--node`.
fn from_flags(specs: &[String]) -> Result<Vec<NewNode>, String> {
    if specs.is_empty() {
        return Err(
            "name the nodes: --node NAME=IP@ZONE for each (e.g. --node a1=10.0.1.11@us-east-1a), or take them from a world file with --from-world"
                .into(),
        );
    }
    specs
        .iter()
        .map(|s| {
            let bad = || format!("--node {s}: expected NAME=IP@ZONE, e.g. a1=10.0.1.11@us-east-1a");
            let (name, rest) = s.split_once('=').ok_or_else(bad)?;
            let (ip, zone) = rest.split_once('@').ok_or_else(bad)?;
            if name.is_empty() || ip.parse::<std::net::Ipv4Addr>().is_err() || zone.is_empty() {
                return Err(bad());
            }
            Ok(NewNode {
                name: name.into(),
                ip: ip.into(),
                zone: zone.into(),
                subnet: None,
                instance_id: None,
            })
        })
        .collect()
}

/// The running instances of a world: named by `asdr:node`, else by their `Name` tag (less a
/// `<cluster>-` prefix), else `n1`, `n2`…; the first one's type and EBS devices shape the policy.
fn from_world(
    world: &World,
    cluster: &str,
    prefix: Option<&str>,
) -> Result<(Vec<NewNode>, Shape), String> {
    let mut chosen: Vec<&asdr_planner::world::Instance> = world
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running && i.region.is_none())
        .filter(|i| !i.tags.contains_key("asdr:drill"))
        .filter(|i| prefix.is_none_or(|p| i.tags.get("Name").is_some_and(|n| n.starts_with(p))))
        .collect();
    chosen.sort_by(|a, b| a.private_ip.cmp(&b.private_ip).then(a.id.cmp(&b.id)));
    let Some(first) = chosen.first() else {
        return Err(match prefix {
            Some(p) => format!("no running instance whose Name tag starts with `{p}`"),
            None => "no running instance".into(),
        });
    };
    let mut nodes = Vec::new();
    for (k, i) in chosen.iter().enumerate() {
        let ip = i
            .private_ip
            .clone()
            .ok_or_else(|| format!("instance {} has no private address", i.id))?;
        let name = i
            .tags
            .get("asdr:node")
            .cloned()
            .or_else(|| {
                i.tags.get("Name").map(|n| {
                    n.strip_prefix(&format!("{cluster}-"))
                        .unwrap_or(n)
                        .to_lowercase()
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                        .collect()
                })
            })
            .unwrap_or_else(|| format!("n{}", k + 1));
        nodes.push(NewNode {
            name,
            ip,
            zone: i.availability_zone.clone(),
            subnet: i.subnet_id.clone(),
            instance_id: Some(i.id.clone()),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = nodes.iter().find(|n| !seen.insert(n.name.clone())) {
        return Err(format!(
            "two instances would be node `{}`: tag each with a distinct asdr:node, or narrow them with --name-prefix",
            dup.name
        ));
    }
    let root = first.root_device.as_deref();
    let mut devices: Vec<String> = first
        .block_devices
        .iter()
        .map(|b| b.device_name.clone())
        .filter(|d| Some(d.as_str()) != root && d != "/dev/xvda" && d != "/dev/sda1")
        .collect();
    devices.sort();
    if devices.is_empty() {
        devices.push("/dev/sdf".into());
    }
    Ok((
        nodes,
        Shape {
            instance_type: first.instance_type.clone(),
            instance_store: first.instance_store_drives,
            devices,
        },
    ))
}

/// `--region`, else the nodes' zones less their letter; all must agree.
fn region(given: Option<&str>, nodes: &[NewNode]) -> Result<String, String> {
    let of = |zone: &str| {
        zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
            .to_string()
    };
    let region = match given {
        Some(r) => r.to_string(),
        None => of(&nodes[0].zone),
    };
    if let Some(n) = nodes.iter().find(|n| of(&n.zone) != region) {
        return Err(format!(
            "node {} is in zone {}, not in region {region}",
            n.name, n.zone
        ));
    }
    Ok(region)
}

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

fn policy_text(
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
    let rf = if nodes.len() >= 2 { 2 } else { 1 };
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
    t.line("    transport: ssm", "ssm | ssh | local");
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
    t.line(
        "  instance:",
        "replacement instances are launched like this (R4)",
    );
    t.line(&format!("    type: {}", shape.instance_type), "");
    t.line(
        "    ami: ami-00000000000000000",
        "REPLACE with your nodes' AMI",
    );
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
    match &a.smd_to {
        Some(to) => t.line(
            &format!("  smd: {{to: {to}}}"),
            "where SMD archives go (R2)",
        ),
        None => t.line(
            &format!("  smd: {{to: s3://REPLACE-bucket/asdr/{}/smd}}", a.name),
            "REPLACE: where SMD archives go, s3://… or file:///… (R2)",
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
