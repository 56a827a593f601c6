//! Restore time: a restore's phases (launch, volumes, the cold start's read, the cluster) told
//! in advance from the set's sizes, the restore's volume settings and, in a plan, the steps it
//! takes; held against the restore's objective (`restores[].rto`, docs/rto.md).

use asdr_specs::{Method, Policy, RestoreSource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::measured::{Measured, MeasuredPhase, measured};

use crate::observe::{BackupSet, human_age};

/// A lower bound on a restore's data-load time, in seconds where one is known, and why.
pub(crate) fn estimate(
    policy: &Policy,
    source: &RestoreSource,
    set: Option<&BackupSet<'_>>,
    nodes: &[&str],
    rate: Option<u32>,
    fsr: bool,
) -> (Option<u64>, String) {
    match source {
        RestoreSource::CurrentVolumes => (
            Some(0),
            "the node's own volumes are reattached: no data to load".into(),
        ),
        RestoreSource::Empty => (
            Some(0),
            "blank volumes: migrations refill the node from its peers".into(),
        ),
        _ if policy.backup.method == Method::Asbackup => (
            None,
            "asrestore: its time depends on the records, not told in advance".into(),
        ),
        _ => {
            let Some(set) = set else {
                return (None, "no complete set to restore from".into());
            };
            let largest = set
                .snapshots
                .iter()
                .filter(|s| {
                    s.tags
                        .get(crate::tags::NODE)
                        .is_some_and(|n| nodes.contains(&n.as_str()))
                })
                .map(|s| u64::from(s.volume_size_gib))
                .max()
                .unwrap_or(0);
            match rate {
                _ if fsr => (
                    None,
                    format!(
                        "Fast Snapshot Restore: the volumes (largest {largest} GiB) are whole at creation, once it is enabled; see the restore time"
                    ),
                ),
                Some(rate) => {
                    let seconds = (largest * 1024).div_ceil(u64::from(rate.max(1)));
                    (
                        Some(seconds),
                        format!(
                            "the largest volume, {largest} GiB at {rate} MiB/s ({}), plus launch and cluster formation",
                            human_age(seconds)
                        ),
                    )
                }
                None => (
                    None,
                    format!(
                        "volumes load lazily from S3 (largest {largest} GiB); set the restore's volume.initialization_rate for a bound"
                    ),
                ),
            }
        }
    }
}

/// A duration to the second, largest unit first (`1h 39m 4s`, `31m 27s`, `2m`): an estimate
/// held against an objective is never rounded into it.
pub fn span(seconds: u64) -> String {
    let parts = [
        (seconds / 86_400, "d"),
        (seconds % 86_400 / 3600, "h"),
        (seconds % 3600 / 60, "m"),
        (seconds % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, u)| format!("{n}{u}"))
        .collect();
    if text.is_empty() {
        "0s".into()
    } else {
        text.join(" ")
    }
}

/// Instance launch to a node that answers: RunInstances, boot, the agent or sshd. A typical EC2
/// figure, stated as such; a drill measures the cluster's own (docs/rto.md).
pub const LAUNCH_SECONDS: u64 = 120;
/// CreateVolume from a snapshot to `available` (blocks load later, lazily or at a rate).
pub const VOLUME_CREATE_SECONDS: u64 = 30;
/// Nodes started to a stable cluster: heartbeats, the cluster key agreed, the roster set.
pub const FORMATION_SECONDS: u64 = 60;
/// What the read rate does not know.
const BANDWIDTH: &str =
    "; a node's devices share its instance's EBS bandwidth, which may bound them lower";
/// EBS's default quota of snapshots with Fast Snapshot Restore enabled, per region.
pub const FSR_SNAPSHOTS_PER_REGION: usize = 5;

/// One phase of a restore: what it is, its time when it can be told, and what that rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RtoPhase {
    /// `launch`, `volumes`, `cold-start` or `cluster`.
    pub phase: String,
    pub seconds: Option<u64>,
    pub basis: String,
}

/// A restore's time by phase, against its objective (`restores[].rto`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RtoEstimate {
    pub phases: Vec<RtoPhase>,
    /// Launch and volumes run side by side; the cold start follows both, formation follows it.
    /// None when a phase cannot be told in advance.
    pub total_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective_seconds: Option<u64>,
}

impl RtoEstimate {
    /// Whether the estimate breaks the objective, and how: None when there is no objective or
    /// the estimate is within it.
    pub fn shortfall(&self) -> Option<String> {
        let objective = self.objective_seconds?;
        match self.total_seconds {
            Some(total) if total <= objective => None,
            Some(total) => {
                let longest = self
                    .phases
                    .iter()
                    .max_by_key(|p| p.seconds.unwrap_or(0))
                    .expect("phases");
                Some(format!(
                    "estimated {} exceeds the objective {} ({}); the longest phase is {}: {}",
                    span(total),
                    span(objective),
                    self.by_phase(),
                    longest.phase,
                    longest.basis
                ))
            }
            None => {
                let open: Vec<String> = self
                    .phases
                    .iter()
                    .filter(|p| p.seconds.is_none())
                    .map(|p| format!("{}: {}", p.phase, p.basis))
                    .collect();
                Some(format!(
                    "its objective {} cannot be held: {}",
                    span(objective),
                    open.join("; ")
                ))
            }
        }
    }

    /// `launch 2m, volumes 30s, cold-start 28m 27s, cluster 1m`.
    pub fn by_phase(&self) -> String {
        self.phases
            .iter()
            .map(|p| match p.seconds {
                Some(s) => format!("{} {}", p.phase, span(s)),
                None => format!("{} unbounded", p.phase),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line for people: the total, the phases, the objective.
    pub fn line(&self) -> String {
        let total = self
            .total_seconds
            .map_or_else(|| "not bounded".to_string(), span);
        let objective = self
            .objective_seconds
            .map_or_else(String::new, |o| format!(", objective {}", span(o)));
        format!("{total} ({}){objective}", self.by_phase())
    }
}

/// How the restored volumes come by their blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Volumes made from snapshots, at `rate` MiB/s, by Fast Snapshot Restore, or lazily.
    FromSnapshots,
    /// The node's own volumes, reattached: already whole.
    Reattached,
    /// Blank volumes: nothing to read; migrations refill the node while the cluster serves.
    Blank,
    /// asrestore writes the records: its time depends on them.
    Asrestore,
}

impl Load {
    /// How a restore's volumes come by their blocks, from its source and the backup method.
    fn of(policy: &Policy, restore: &asdr_specs::Restore) -> Load {
        match &restore.source {
            s if s.uses_backup() && policy.backup.method == Method::Asbackup => Load::Asrestore,
            RestoreSource::CurrentVolumes => Load::Reattached,
            RestoreSource::Empty => Load::Blank,
            _ => Load::FromSnapshots,
        }
    }
}

/// One volume the restore makes or reattaches: its size and what it can be read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeLoad {
    pub size_gib: u64,
    /// The volume's own throughput (MiB/s), see [`throughput`].
    pub throughput: u32,
}

/// What the estimate is made from.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub launches: bool,
    pub load: Load,
    pub volumes: Vec<VolumeLoad>,
    /// Snapshots Fast Snapshot Restore is enabled for by the restore, and the zones.
    pub fast_restore: Option<(usize, usize)>,
    pub initialization_rate: Option<u32>,
    pub whole_cluster: bool,
    pub objective: Option<u64>,
    /// Why the data cannot be told (no set to restore from, a device without a snapshot).
    pub missing: Option<String>,
    /// Fast Snapshot Restore is already `enabled` for every snapshot in its volume's zone
    /// (`backup.fast_restore`): the volumes are whole at creation, with no wait for it.
    pub already_enabled: bool,
}

/// Whether every (zone, snapshot) pair is `enabled` in the world.
fn all_enabled<'a>(
    world: &crate::World,
    mut pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> bool {
    let mut any = false;
    let all = pairs.all(|(zone, id)| {
        any = true;
        world
            .snapshots
            .iter()
            .any(|s| s.id == id && s.fast_restore.get(zone).map(String::as_str) == Some("enabled"))
    });
    any && all
}

/// The throughput a volume of this type and size reads at sequentially (MiB/s): what bounds a
/// cold start's read of it once its blocks are there. EBS's published figures; the instance's
/// own EBS bandwidth may bound it lower.
pub fn throughput(
    volume_type: &str,
    size_gib: u32,
    iops: Option<u32>,
    throughput: Option<u32>,
) -> u32 {
    let tib = f64::from(size_gib) / 1024.0;
    match volume_type {
        "gp3" => throughput.unwrap_or(125),
        "gp2" if size_gib <= 170 => 128,
        "gp2" => 250,
        // 256 KiB I/Os at the provisioned IOPS, up to io1/io2's 1,000 MiB/s.
        "io1" | "io2" => (iops.unwrap_or(3000) / 4).clamp(1, 1000),
        // Throughput-optimised HDD bursts 250 MiB/s per TiB, up to 500; cold HDD 80, up to 250.
        "st1" => ((250.0 * tib) as u32).clamp(1, 500),
        "sc1" => ((80.0 * tib) as u32).clamp(1, 250),
        _ => 40,
    }
}

/// A restore's time by phase.
pub fn phases(i: &Inputs) -> RtoEstimate {
    let launch = RtoPhase {
        phase: "launch".into(),
        seconds: Some(if i.launches { LAUNCH_SECONDS } else { 0 }),
        basis: if i.launches {
            format!(
                "instances launched and booted, about {} (a typical EC2 figure; a drill measures yours)",
                span(LAUNCH_SECONDS)
            )
        } else {
            "no instance is launched: the nodes keep theirs".into()
        },
    };
    let largest = i.volumes.iter().map(|v| v.size_gib).max().unwrap_or(0);
    let (fsr_wait, fsr_basis) = match i.fast_restore {
        Some((snapshots, zones)) if largest > 0 => {
            // Enabling optimises the snapshot (60 minutes per TiB) and its credit bucket starts
            // empty, filling at MIN(10, 1024 / GiB) credits an hour: the largest snapshot's first
            // credit, or its optimisation, is what the first volume waits for.
            let wait = (3600 * largest).div_ceil(1024).max(360);
            (
                wait,
                format!(
                    ", after Fast Snapshot Restore is enabled for {snapshots} snapshot(s) in {zones} zone(s): {} for the largest ({largest} GiB: optimised at 60 min per TiB, its first volume credit at MIN(10, 1024/GiB) an hour){}",
                    span(wait),
                    if snapshots > FSR_SNAPSHOTS_PER_REGION {
                        format!(
                            "; more than the {FSR_SNAPSHOTS_PER_REGION} snapshots EBS enables per region by default: without a raised quota the restore fails at its enable step"
                        )
                    } else {
                        String::new()
                    }
                ),
            )
        }
        _ => (0, String::new()),
    };
    let volumes = match i.load {
        Load::Reattached => RtoPhase {
            phase: "volumes".into(),
            seconds: Some(0),
            basis: "the node's own volumes are reattached".into(),
        },
        Load::Asrestore => RtoPhase {
            phase: "volumes".into(),
            seconds: Some(VOLUME_CREATE_SECONDS),
            basis: "blank volumes for asrestore".into(),
        },
        _ if i.volumes.is_empty() => RtoPhase {
            phase: "volumes".into(),
            seconds: Some(0),
            basis: "no volume is made".into(),
        },
        _ => RtoPhase {
            phase: "volumes".into(),
            seconds: Some(VOLUME_CREATE_SECONDS + fsr_wait),
            basis: format!(
                "{} volume(s) created in parallel, about {} each{fsr_basis}{}",
                i.volumes.len(),
                span(VOLUME_CREATE_SECONDS),
                if i.already_enabled {
                    ", from snapshots with Fast Snapshot Restore already enabled in their zones (whole at creation while their credits last)"
                } else {
                    ""
                }
            ),
        },
    };
    let cold = cold_start(i, largest);
    let cluster = RtoPhase {
        phase: "cluster".into(),
        seconds: Some(FORMATION_SECONDS),
        basis: match i.load {
            Load::Blank => format!(
                "the node joins in about {}; migrations then refill it from its peers, which serve its partitions meanwhile (not counted)",
                span(FORMATION_SECONDS)
            ),
            _ if i.whole_cluster => format!(
                "the cluster forms in about {}; every node holds the set's data, so no migration stands before the partitions are available",
                span(FORMATION_SECONDS)
            ),
            _ => format!(
                "the node joins in about {}; migrations then bring it up to date while its peers serve (not counted)",
                span(FORMATION_SECONDS)
            ),
        },
    };
    let total = match (
        launch.seconds,
        volumes.seconds,
        cold.seconds,
        cluster.seconds,
    ) {
        (Some(l), Some(v), Some(c), Some(f)) => Some(l.max(v) + c + f),
        _ => None,
    };
    RtoEstimate {
        phases: vec![launch, volumes, cold, cluster],
        total_seconds: total,
        objective_seconds: i.objective,
    }
}

/// The cold start reads every shadow device in full; the nodes and their devices read in
/// parallel, so the largest device at its rate bounds the phase.
fn cold_start(i: &Inputs, largest: u64) -> RtoPhase {
    let phase = "cold-start".to_string();
    if let Some(why) = &i.missing {
        return RtoPhase {
            phase,
            seconds: None,
            basis: why.clone(),
        };
    }
    let slowest = |cap: Option<u32>| {
        i.volumes
            .iter()
            .map(|v| {
                let rate = cap.map_or(v.throughput, |c| c.min(v.throughput)).max(1);
                ((v.size_gib * 1024).div_ceil(u64::from(rate)), v, rate)
            })
            .max_by_key(|(s, _, _)| *s)
    };
    match i.load {
        Load::Blank => RtoPhase {
            phase,
            seconds: Some(0),
            basis: "blank devices: nothing to read".into(),
        },
        Load::Asrestore => RtoPhase {
            phase,
            seconds: None,
            basis: "asrestore writes the records: its time depends on them, not told in advance"
                .into(),
        },
        _ if i.volumes.is_empty() => RtoPhase {
            phase,
            seconds: Some(0),
            basis: "no device to read".into(),
        },
        Load::Reattached => whole(slowest(None), phase),
        Load::FromSnapshots if i.fast_restore.is_some() || i.already_enabled => {
            whole(slowest(None), phase)
        }
        Load::FromSnapshots => match i.initialization_rate {
            Some(r) => {
                let (s, v, rate) = slowest(Some(r)).expect("volumes");
                RtoPhase {
                    phase,
                    seconds: Some(s),
                    basis: format!(
                        "each shadow device read in full as it initialises: {} GiB at {rate} MiB/s (initialization_rate {r}, the volume's own throughput {}){BANDWIDTH}",
                        v.size_gib, v.throughput
                    ),
                }
            }
            None => RtoPhase {
                phase,
                seconds: None,
                basis: format!(
                    "the cold start reads each shadow device in full (largest {largest} GiB), and its blocks load lazily from S3 at no rate EBS commits to: set volume.initialization_rate or fast_snapshot_restore for a bound"
                ),
            },
        },
    }
}

/// A device whose blocks are all there reads at its volume's throughput.
fn whole(slowest: Option<(u64, &VolumeLoad, u32)>, phase: String) -> RtoPhase {
    let (s, v, rate) = slowest.expect("volumes");
    RtoPhase {
        phase,
        seconds: Some(s),
        basis: format!(
            "each shadow device read in full, its blocks already there: {} GiB at the volume's {rate} MiB/s{BANDWIDTH}",
            v.size_gib
        ),
    }
}

/// The estimate of a restore's (or its drill's) plan, from the steps it takes: the instances it
/// launches, the volumes it makes from snapshots or reattaches, and how their blocks load.
pub fn of_plan(
    policy: &Policy,
    restore: &asdr_specs::Restore,
    world: &crate::World,
    steps: &[crate::Step],
) -> RtoEstimate {
    use crate::params::Params;
    let launches = steps
        .iter()
        .any(|s| matches!(s.params, Params::ProvisionInstance(_)));
    let load = Load::of(policy, restore);
    let volumes: Vec<VolumeLoad> = match load {
        Load::Reattached => steps
            .iter()
            .filter_map(|s| match &s.params {
                Params::AttachVolume(p) => p.volume_id.known(),
                _ => None,
            })
            .filter_map(|id| world.volumes.iter().find(|v| v.id == id))
            .map(|v| VolumeLoad {
                size_gib: u64::from(v.size_gib),
                throughput: throughput(&v.volume_type, v.size_gib, v.iops, v.throughput),
            })
            .collect(),
        _ => steps
            .iter()
            .filter_map(|s| match &s.params {
                Params::CreateVolume(p) if p.snapshot_id.is_some() || load == Load::Blank => {
                    Some(VolumeLoad {
                        size_gib: u64::from(p.size_gib),
                        throughput: throughput(&p.volume_type, p.size_gib, p.iops, p.throughput),
                    })
                }
                _ => None,
            })
            .collect(),
    };
    let fast_restore = restore.volume.fast_snapshot_restore.then(|| {
        let mut snapshots = std::collections::BTreeSet::new();
        let mut zones = std::collections::BTreeSet::new();
        for s in steps {
            if let Params::CreateVolume(p) = &s.params
                && let Some(id) = &p.snapshot_id
            {
                snapshots.insert(id.as_str());
                zones.insert(p.availability_zone.as_str());
            }
        }
        (snapshots.len(), zones.len())
    });
    // EBS initialises at a declared rate rather than by FSR, even when a pair is on.
    let already_enabled = restore.volume.initialization_rate.is_none()
        && all_enabled(
            world,
            steps.iter().filter_map(|s| match &s.params {
                Params::CreateVolume(p) => {
                    Some((p.availability_zone.as_str(), p.snapshot_id.as_deref()?))
                }
                _ => None,
            }),
        );
    phases(&Inputs {
        launches,
        load,
        volumes,
        fast_restore: fast_restore.filter(|_| !already_enabled),
        initialization_rate: restore.volume.initialization_rate,
        whole_cluster: restore.scope == asdr_specs::Scope::Cluster,
        objective: restore.rto.map(|d| d.seconds()),
        missing: None,
        already_enabled,
    })
}

/// The estimate `status` gives a declared restore before any plan: the disaster it is for (its
/// nodes lost, instances launched), from the set it would take now and the nodes' volumes.
pub(crate) fn of_status(
    policy: &Policy,
    restore: &asdr_specs::Restore,
    set: Option<&BackupSet<'_>>,
    obs: &crate::observe::Observed<'_>,
    nodes: &[&str],
) -> RtoEstimate {
    let load = Load::of(policy, restore);
    let spec = &restore.volume;
    let mut volumes = Vec::new();
    let mut zones = std::collections::BTreeSet::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut missing = (load == Load::FromSnapshots && set.is_none())
        .then(|| "no complete set to restore from: nothing to estimate".to_string());
    for view in obs
        .nodes
        .iter()
        .filter(|v| nodes.contains(&v.name.as_str()))
    {
        if let Some(node) = policy.node(&view.name) {
            zones.insert(node.availability_zone.as_str());
        }
        for d in &view.volumes {
            let now = d.volume;
            let size = match (load, set.and_then(|s| s.snapshot_for(&view.name, &d.ebs))) {
                (Load::FromSnapshots, Some(snap)) => {
                    if let Some(node) = policy.node(&view.name) {
                        pairs.push((node.availability_zone.clone(), snap.id.clone()));
                    }
                    snap.volume_size_gib
                }
                (Load::FromSnapshots, None) => {
                    missing.get_or_insert_with(|| {
                        format!(
                            "the set holds no snapshot of {} {}: the restore would be refused",
                            view.name, d.ebs
                        )
                    });
                    continue;
                }
                _ => match now {
                    Some(v) => v.size_gib,
                    None => continue,
                },
            };
            // What the planner gives the new volume: the restore's settings, else the old one's.
            let kind = spec
                .volume_type
                .clone()
                .or_else(|| now.map(|v| v.volume_type.clone()))
                .unwrap_or_else(|| "gp3".into());
            let iops = spec.iops.or_else(|| now.and_then(|v| v.iops));
            let tput = spec.throughput.or_else(|| now.and_then(|v| v.throughput));
            volumes.push(VolumeLoad {
                size_gib: u64::from(size),
                throughput: throughput(&kind, size, iops, tput),
            });
        }
    }
    let fast_restore = spec
        .fast_snapshot_restore
        .then_some((volumes.len(), zones.len().max(1)));
    let already_enabled = load == Load::FromSnapshots
        && spec.initialization_rate.is_none()
        && all_enabled(
            obs.world,
            pairs.iter().map(|(z, id)| (z.as_str(), id.as_str())),
        );
    phases(&Inputs {
        launches: true,
        load,
        volumes,
        fast_restore: fast_restore.filter(|_| !already_enabled),
        initialization_rate: spec.initialization_rate,
        whole_cluster: restore.scope == asdr_specs::Scope::Cluster,
        objective: restore.rto.map(|d| d.seconds()),
        missing,
        already_enabled,
    })
}

/// What a time-based copy (`copies[].complete_within`) promises and costs, said in the plan
/// that makes one.
pub(crate) fn time_based_copies(
    copy: &asdr_specs::Copy,
    said: &str,
    obs: &crate::observe::Observed<'_>,
) -> Option<String> {
    let minutes = u64::from(copy.complete_within_minutes?);
    // A snapshot holds at most its volume's size of data: what the largest may need.
    let largest = obs
        .nodes
        .iter()
        .flat_map(|n| n.volumes.iter().filter_map(|d| d.volume))
        .map(|v| u64::from(v.size_gib))
        .max()
        .unwrap_or(0);
    let needs = (largest * 1024).div_ceil(minutes * 60);
    let over = if needs > 500 {
        format!(
            "; a full {largest} GiB snapshot would need {needs} MiB/s, above the 500 MiB/s one copy gets: give it longer, or it completes late"
        )
    } else {
        String::new()
    };
    Some(format!(
        "copies to {said} are time-based: each completes within {} of its start (CopySnapshot CompletionDurationMinutes), billed per GiB copied on top of a standard copy, the more the shorter the duration; the throughput each needs (its data over {}) counts against the region pair's 2,000 MiB/s quota (500 MiB/s per copy, {} in flight here): a copy needing more than is left takes longer than asked, and one asked while none is left is refused{over}",
        span(minutes * 60),
        span(minutes * 60),
        copy.max_in_flight,
    ))
}

/// The restore an operation carries out: its own, or the one its drill rehearses.
pub(crate) fn restore_of<'p>(
    policy: &'p Policy,
    op: &crate::Operation,
) -> Option<&'p asdr_specs::Restore> {
    match op {
        crate::Operation::Restore(name) => policy.restore(name),
        crate::Operation::Drill(name) => {
            policy.drill(name).and_then(|d| policy.restore(&d.restore))
        }
        _ => None,
    }
}

/// A restore's (or a drill's) time by phase, from the steps it takes; said when it breaks the
/// restore's objective (`restores[].rto`).
pub(crate) fn restore_rto(
    policy: &Policy,
    world: &crate::World,
    op: &crate::Operation,
    b: &mut crate::builder::Builder,
) -> Option<RtoEstimate> {
    let restore = restore_of(policy, op)?;
    if b.steps.is_empty() {
        return None;
    }
    let estimate = of_plan(policy, restore, world, &b.steps);
    if let Some(why) = estimate.shortfall() {
        b.warn("RTO", format!("restore `{}`: {why}", restore.name));
    }
    Some(estimate)
}
