//! A restore's phases as they went (from each step's start and end in its journal), beside the
//! plan's estimate of each.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A restore's phases as they went: from each step's start and end (the journal's times).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Measured {
    /// `launch`, `volumes`, `cold-start+cluster` (the steps cannot tell the nodes' cold start
    /// from the cluster's forming: from the first start to a stable cluster), each in seconds,
    /// with the estimate it is compared with.
    pub phases: Vec<MeasuredPhase>,
    /// From the first step's start to the last step's end.
    pub total_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MeasuredPhase {
    pub phase: String,
    pub seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_seconds: Option<u64>,
}

/// The phases of an applied restore plan, from `spans` (step id → its start and end; a step
/// adopted or resumed has none). None when no step ran.
pub fn measured(
    plan: &crate::Plan,
    spans: &std::collections::BTreeMap<String, (time::OffsetDateTime, time::OffsetDateTime)>,
) -> Option<Measured> {
    use crate::StepKind::*;
    let span_of = |kinds: &[crate::StepKind]| {
        let mut first: Option<time::OffsetDateTime> = None;
        let mut last: Option<time::OffsetDateTime> = None;
        // The disable of Fast Snapshot Restore runs while the nodes start: not the volumes'.
        let disable = |s: &&crate::Step| matches!(&s.params, crate::params::Params::FastSnapshotRestore(p) if !p.enable);
        for s in plan
            .steps
            .iter()
            .filter(|s| kinds.contains(&s.kind()) && !disable(s))
        {
            if let Some((a, b)) = spans.get(&s.id) {
                first = Some(first.map_or(*a, |f| f.min(*a)));
                last = Some(last.map_or(*b, |l| l.max(*b)));
            }
        }
        Some((first?, last?))
    };
    let seconds =
        |(a, b): (time::OffsetDateTime, time::OffsetDateTime)| (b - a).as_seconds_f64().max(0.0);
    let all: Vec<&(time::OffsetDateTime, time::OffsetDateTime)> = spans
        .iter()
        .filter(|(id, _)| plan.step(id).is_some())
        .map(|(_, s)| s)
        .collect();
    let start = all.iter().map(|s| s.0).min()?;
    let end = all.iter().map(|s| s.1).max()?;
    let estimate = |names: &[&str]| {
        let e = plan.rto.as_ref()?;
        names
            .iter()
            .map(|n| e.phases.iter().find(|p| p.phase == *n)?.seconds)
            .sum::<Option<u64>>()
    };
    let mut phases = Vec::new();
    for (phase, kinds, names) in [
        ("launch", &[ProvisionInstance][..], &["launch"][..]),
        (
            "volumes",
            &[FastSnapshotRestore, CreateVolume, WaitVolume][..],
            &["volumes"][..],
        ),
        (
            "cold-start+cluster",
            &[
                StartNode,
                WaitClusterStable,
                SetRoster,
                WaitPartitionsAvailable,
            ][..],
            &["cold-start", "cluster"][..],
        ),
    ] {
        if let Some(span) = span_of(kinds) {
            phases.push(MeasuredPhase {
                phase: phase.into(),
                seconds: seconds(span),
                estimate_seconds: estimate(names),
            });
        }
    }
    Some(Measured {
        phases,
        total_seconds: seconds((start, end)),
        estimate_seconds: plan.rto.as_ref().and_then(|r| r.total_seconds),
    })
}
