//! Random clusters for the verifier's property test and its benchmark: a seed gives a policy
//! (node count, replication factors, edition, consistency, devices with and without shadows,
//! rolling limits, restores of every source and scope, a drill), a world (failed nodes of every
//! kind, pending and missing snapshots, sets of every age, stale and encrypted volumes, moved
//! subnets) and an operation. Seeded rather than shrunk, so a failure is reproduced by its seed.

use std::path::{Path, PathBuf};

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::{CONFIG_TEMPLATE, Failure, WorldSpec, world_for};
use crate::world::{SnapshotState, VolumeState, World};
use crate::{Operation, PlanError, plan, verify};

/// splitmix64: small, fast and the same everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// 0..n
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One generated case.
#[derive(Debug, Clone)]
pub struct Case {
    pub seed: u64,
    pub policy_text: String,
    pub world: World,
    pub op: Operation,
    pub now: OffsetDateTime,
}

/// What planning a case gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A plan with this many steps, which the verifier accepted.
    Planned(usize),
    /// A rule said no (a legitimate answer).
    Refused,
    /// The generated policy did not validate (a legitimate answer too).
    Invalid,
}

pub fn case(seed: u64) -> Case {
    let mut r = Rng::new(seed);
    let now = datetime!(2026-11-21 09:00:00 UTC);
    // Replication factor 1 cannot keep max_nodes_at_once <= rf - 1 (validation refuses it).
    let nodes = 2 + r.below(6) as usize;
    let rf = 2 + r.below(2.min(nodes as u64 - 1)) as u32;
    let max_at_once = 1 + r.below(u64::from(rf.saturating_sub(1)).max(1)) as u32;
    let enterprise = r.chance(60);
    let edition = if enterprise {
        "enterprise"
    } else {
        "community"
    };
    let durable = enterprise && r.chance(30);
    let namespaces = 1 + r.below(2) as usize;
    // Strong consistency (R19) draws from its own stream, so every other choice of a seed stays
    // what it was before SC was generated.
    let mut sc_r = Rng::new(seed ^ 0x5c5c_5c5c);
    let mut sc_any = false;
    let mut letter = b'f';
    let mut ns_text = String::new();
    let mut single_device = true;
    let mut shadowed = 0;
    for ns in 0..namespaces {
        let devices = 1 + r.below(3) as usize;
        single_device &= devices == 1;
        let sc = enterprise && sc_r.chance(40);
        sc_any |= sc;
        let sc_line = if sc {
            "      strong_consistency: true\n"
        } else {
            ""
        };
        ns_text.push_str(&format!(
            "    - name: ns{ns}\n      replication_factor: {rf}\n{sc_line}      devices:\n"
        ));
        for _ in 0..devices {
            let l = letter as char;
            letter += 1;
            if r.chance(50) {
                shadowed += 1;
                ns_text.push_str(&format!(
                    "        - {{device: /dev/nvme{shadowed}n1, shadow: /dev/sd{l}}}\n"
                ));
            } else {
                ns_text.push_str(&format!("        - {{device: /dev/sd{l}}}\n"));
            }
        }
    }
    // Racks, one per zone (Enterprise), from the same separate stream.
    let racks_text = if enterprise && sc_r.chance(40) {
        "  racks: {us-east-1a: 1, us-east-1b: 2, us-east-1c: 3}\n"
    } else {
        ""
    };
    let max_at_once: String = if !racks_text.is_empty() && sc_r.chance(50) {
        "rack".into()
    } else {
        max_at_once.to_string()
    };
    let consistency = match r.below(4) {
        // Validation refuses quiesce with as many copies as nodes (a quiesced node stays a
        // replica of every partition).
        0 if enterprise && (rf as usize) < nodes => "quiesce",
        1 => "stop-node",
        2 if single_device => "none",
        _ => "multi-volume",
    };
    let mut text = format!(
        "version: 1\ncluster:\n  name: fz\n  region: us-east-1\n  edition: {edition}\n  durable_deletes: {durable}\n  work_directory: '/var/fz/{{{{ node }}}}'\n  access: {{transport: local}}\n  service: {{stop: 'fz-ctl stop {{{{ node }}}}', start: 'fz-ctl start {{{{ node }}}}', cold_start: 'fz-ctl coldstart {{{{ node }}}}'}}\n  config: {{template: aerospike.conf.j2, path: '/var/fz/{{{{ node }}}}/aerospike.conf'}}\n  namespaces:\n{ns_text}{racks_text}  instance:\n    type: i4i.4xlarge\n    ami: ami-0123456789abcdef0\n    subnets: {{us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb, us-east-1c: subnet-0ccc}}\n    security_groups: [sg-prod]\n    instance_store_volumes: {shadowed}\n  nodes:\n"
    );
    for n in 0..nodes {
        let az = ["a", "b", "c"][n % 3];
        text.push_str(&format!(
            "    - {{name: n{n}, private_ip: 10.{}.0.{}, availability_zone: us-east-1{az}}}\n",
            n % 3,
            10 + n
        ));
    }
    let retain = 1 + r.below(6);
    let max_age = if r.chance(50) { ", max_age: 30d" } else { "" };
    let asbackup = r.chance(15);
    let method = if asbackup { "asbackup" } else { "ebs-snapshot" };
    let incremental = if r.chance(50) {
        ", incremental_every: 6h"
    } else {
        ""
    };
    text.push_str(&format!(
        "backup:\n  method: {method}\n  consistency: {consistency}\n  every: 24h\n  retain: {{count: {retain}{max_age}}}\n  smd: {{to: s3://backups/smd}}\n  max_nodes_at_once: {max_at_once}\n  accept_zombie_records: true\n  asbackup: {{to: s3://backups/asb{incremental}}}\nrestores:\n"
    ));
    let pick = |r: &mut Rng, k: usize| -> Vec<String> {
        let mut all: Vec<usize> = (0..nodes).collect();
        let mut out = Vec::new();
        for _ in 0..k.min(nodes) {
            let i = r.below(all.len() as u64) as usize;
            out.push(format!("n{}", all.remove(i)));
        }
        out.sort();
        out
    };
    let k = 1 + r.below(nodes.min(3) as u64) as usize;
    text.push_str(&format!(
        "  - {{name: replace, scope: node, nodes: [{}], source: current-volumes, accept_zombie_records: true}}\n",
        pick(&mut r, k).join(", ")
    ));
    let k = 1 + r.below(nodes.min(3) as u64) as usize;
    // asbackup restores whole clusters only (validation refuses node scope).
    let scope = if asbackup { "cluster" } else { "node" };
    let nodes_of = |r: &mut Rng, k: usize| {
        if asbackup {
            String::new()
        } else {
            format!(", nodes: [{}]", pick(r, k).join(", "))
        }
    };
    let list = nodes_of(&mut r, k);
    text.push_str(&format!(
        "  - {{name: from-backup, scope: {scope}{list}, source: latest-backup, accept_zombie_records: true}}\n",
    ));
    let list = if asbackup {
        String::new()
    } else {
        ", nodes: [n0]".into()
    };
    // asrestore merges into the running cluster: only an accepting restore validates (R6).
    let mut full_accept = if asbackup {
        ", accept_zombie_records: true".to_string()
    } else {
        String::new()
    };
    if sc_any && sc_r.chance(50) {
        full_accept.push_str(", accept_dead_partitions: true");
    }
    text.push_str(&format!(
        "  - {{name: before, scope: {scope}{list}, source: 'before:2026-11-19T12:00:00Z', accept_zombie_records: true}}\n  - {{name: full, scope: cluster, source: latest-backup{full_accept}}}\n",
    ));
    if rf >= 2 {
        let k = 1 + r.below(u64::from(rf - 1)) as usize;
        text.push_str(&format!(
            "  - {{name: refill, scope: node, nodes: [{}], source: empty}}\n",
            pick(&mut r, k).join(", ")
        ));
    }
    // Drills rehearse EBS restores only (an asrestore drill is refused at validation).
    if !asbackup {
        text.push_str("drills:\n  - {name: dr, restore: full, target: {subnets: {us-east-1a: subnet-d1, us-east-1b: subnet-d2, us-east-1c: subnet-d3}, ip_offset: 100, security_groups: [sg-drill]}}\n");
    }

    // The world, from the generator, then disturbed.
    let policy = asdr_specs::parse("fuzz.yaml", &text, template_dir());
    let mut world = World::default();
    if let Ok(policy) = &policy {
        let mut spec = WorldSpec::new(now);
        spec.sets = r.below(9) as usize;
        spec.newest_set_age = Duration::hours(1 + r.below(60) as i64);
        spec.set_interval = if r.chance(50) {
            Duration::days(1)
        } else {
            Duration::hours(12)
        };
        spec.newest_set_pending = spec.sets > 0 && r.chance(20);
        spec.foreign_snapshots = r.below(2) as usize;
        if r.chance(20) {
            spec.kms_key = Some("arn:aws:kms:us-east-1:1:key/fz".into());
        }
        for n in 0..nodes {
            match r.below(10) {
                0 => spec.failures.push((format!("n{n}"), Failure::Terminated)),
                1 => spec.failures.push((
                    format!("n{n}"),
                    Failure::Unreachable {
                        delete_on_termination: r.chance(50),
                    },
                )),
                _ => {}
            }
        }
        world = world_for(policy, &spec);
        // Dead partitions reported by a node of a strong-consistency namespace.
        if sc_any && sc_r.chance(20) {
            let i = sc_r.below(world.nodes.len() as u64) as usize;
            if let Some(ns) = world.nodes[i]
                .namespaces
                .iter_mut()
                .find(|ns| ns.strong_consistency)
            {
                ns.dead_partitions = 1 + sc_r.below(50);
            }
        }
        if !world.snapshots.is_empty() && r.chance(20) {
            let i = r.below(world.snapshots.len() as u64) as usize;
            world.snapshots.remove(i);
        }
        if !world.snapshots.is_empty() && r.chance(15) {
            let i = r.below(world.snapshots.len() as u64) as usize;
            world.snapshots[i].state = SnapshotState::Pending;
            world.snapshots[i].progress = 40;
        }
        if !world.volumes.is_empty() && r.chance(15) {
            // A stale copy of some node's volume, left available and tagged as it.
            let i = r.below(world.volumes.len() as u64) as usize;
            let mut v = world.volumes[i].clone();
            v.id = format!("vol-{:017x}", 0xdead_0000 + i);
            v.state = VolumeState::Available;
            v.attachments.clear();
            if r.chance(50) {
                v.tags
                    .insert(crate::tags::SUPERSEDED.into(), "p-old".into());
            }
            world.volumes.push(v);
        }
        if asbackup {
            // Finished asbackup runs: full sets, incrementals, and unfinished ones.
            let namespaces: Vec<String> = policy
                .cluster
                .namespaces
                .iter()
                .map(|n| n.name.clone())
                .collect();
            let mut full: Option<String> = None;
            for k in 0..r.below(8) {
                let set = crate::observe::set_id(now - Duration::hours(6 * (8 - k as i64)));
                let incremental = full.is_some() && r.chance(50);
                if !incremental {
                    full = Some(set.clone());
                }
                for ns in &namespaces {
                    if r.chance(90) {
                        world.asbackup_archives.push(crate::world::AsbackupArchive {
                            set: set.clone(),
                            namespace: ns.clone(),
                            uri: format!("s3://backups/asb/{set}/{ns}"),
                            incremental_of: if incremental { full.clone() } else { None },
                            // Mostly this cluster's; some written before manifests named their
                            // cluster; now and then a same-named store's other cluster (R13).
                            cluster: match r.below(20) {
                                0 => Some("fz-other".into()),
                                1..=4 => None,
                                _ => Some("fz".into()),
                            },
                            cluster_id: None,
                            after: None,
                            missing_files: 0,
                            finished: None,
                            compress: None,
                            encrypt: None,
                            retention: None,
                        });
                    }
                }
            }
        }
        if !world.instances.is_empty() && r.chance(10) {
            let i = r.below(world.instances.len() as u64) as usize;
            world.instances[i].subnet_id = Some("subnet-0moved".into());
        }
    }
    let op = match r.below(8) {
        0 | 1 => Operation::Backup,
        2 => Operation::Restore("replace".into()),
        3 => Operation::Restore("from-backup".into()),
        4 => Operation::Restore("before".into()),
        5 => Operation::Restore("full".into()),
        6 if rf >= 2 => Operation::Restore("refill".into()),
        _ if asbackup => Operation::Backup,
        6 => Operation::Teardown("dr".into()),
        _ => Operation::Drill("dr".into()),
    };
    Case {
        seed,
        policy_text: text,
        world,
        op,
        now,
    }
}

/// Plans the case and checks what every plan must be: accepted by the verifier (plan() runs it
/// and refuses otherwise), a DAG listed in order, and the same bytes when planned again.
pub fn check(case: &Case) -> Result<Outcome, String> {
    let Ok(policy) = asdr_specs::parse("fuzz.yaml", &case.policy_text, template_dir()) else {
        return Ok(Outcome::Invalid);
    };
    match plan(&policy, &case.world, case.now, &case.op) {
        Err(PlanError::Refused(d)) if d.span.line > 0 && !d.message.is_empty() => {
            Ok(Outcome::Refused)
        }
        Err(e) => Err(format!("seed {}: {e}", case.seed)),
        Ok(p) => {
            let again = plan(&policy, &case.world, case.now, &case.op)
                .map_err(|e| format!("seed {}: second plan failed: {e}", case.seed))?;
            if serde_json::to_string(&p).ok() != serde_json::to_string(&again).ok() {
                return Err(format!("seed {}: planning is not deterministic", case.seed));
            }
            let v = verify(&policy, &case.world, &p);
            if !v.is_empty() {
                return Err(format!("seed {}: {v:?}", case.seed));
            }
            Ok(Outcome::Planned(p.steps.len()))
        }
    }
}

/// Where the generated policies' config template lives (written once per process).
fn template_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("asdr-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let template = format!(
            "{CONFIG_TEMPLATE}\n# mesh\n{{% for p in peers %}}mesh-seed-address-port {{{{ p }}}} 3002\n{{% endfor %}}"
        );
        std::fs::write(dir.join("aerospike.conf.j2"), template).expect("template");
        dir
    })
}
