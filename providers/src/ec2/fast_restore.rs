//! `fast_snapshot_restore` carried out: EnableFastSnapshotRestores for each zone's snapshots
//! (only the pairs not already on), polled with DescribeFastSnapshotRestores until every pair is
//! `enabled` (the step is then done); DisableFastSnapshotRestores for the pairs still on. Only the
//! cluster's own snapshots are touched. moto implements none of these (a 500): the requests are
//! tested with aws-smithy-mocks, the states in the world-file simulation.

use std::collections::{BTreeMap, BTreeSet};

use asdr_planner::params::FastSnapshotRestore;
use asdr_planner::ports::{Progress, StepError, StepInput};
use asdr_planner::tags;
use aws_sdk_ec2::types::{FastSnapshotRestoreStateCode as State, Filter};

use super::Ec2Provider;

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

impl Ec2Provider {
    /// (zone, snapshot) → its state now; pairs never enabled are absent.
    async fn fsr_states(
        &self,
        ids: &BTreeSet<String>,
    ) -> Result<BTreeMap<(String, String), State>, StepError> {
        let mut out = BTreeMap::new();
        let mut pages = self
            .client
            .describe_fast_snapshot_restores()
            .filters(filter("snapshot-id", ids.iter().cloned()))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify("DescribeFastSnapshotRestores", e))?;
            for r in page.fast_snapshot_restores() {
                if let (Some(z), Some(id), Some(state)) =
                    (r.availability_zone(), r.snapshot_id(), r.state())
                {
                    out.insert((z.to_string(), id.to_string()), state.clone());
                }
            }
        }
        Ok(out)
    }

    /// Every pair on in this provider's region, written onto the world's snapshots of `region`.
    pub(crate) async fn fill_fast_restore(
        &self,
        snapshots: &mut [asdr_planner::world::Snapshot],
        region: Option<&str>,
    ) -> Result<(), StepError> {
        let mut pages = self
            .client
            .describe_fast_snapshot_restores()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.classify("DescribeFastSnapshotRestores", e))?;
            for r in page.fast_snapshot_restores() {
                let (Some(z), Some(id), Some(state)) =
                    (r.availability_zone(), r.snapshot_id(), r.state())
                else {
                    continue;
                };
                if let Some(s) = snapshots
                    .iter_mut()
                    .find(|s| s.id == id && s.region.as_deref() == region)
                {
                    s.fast_restore
                        .insert(z.to_string(), state.as_str().to_string());
                }
            }
        }
        Ok(())
    }

    /// R13: every snapshot is this cluster's (its name, and its id when the plan names one).
    async fn fsr_ours(
        &self,
        ids: &BTreeSet<String>,
        cluster_id: Option<&str>,
    ) -> Result<(), StepError> {
        let found = self
            .snapshots(vec![filter("snapshot-id", ids.iter().cloned())])
            .await?;
        for id in ids {
            let Some(s) = found.iter().find(|s| &s.id == id) else {
                return Err(StepError::permanent(
                    "SnapshotNotFound",
                    format!("snapshot {id} is gone: Fast Snapshot Restore is not touched for it"),
                ));
            };
            let named = s.tags.get(tags::CLUSTER) == Some(&self.cluster);
            let same_id = cluster_id.is_none_or(|c| {
                s.tags
                    .get(tags::CLUSTER_ID)
                    .is_none_or(|theirs| theirs == c)
            });
            if !(named && same_id) {
                return Err(StepError::permanent(
                    "NotOurs",
                    format!(
                        "snapshot {id} is not cluster {}'s (its tags say otherwise): Fast Snapshot Restore is not touched for it",
                        self.cluster
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn act_fast_restore(
        &self,
        input: &StepInput<'_>,
        p: &FastSnapshotRestore,
    ) -> Result<Progress, StepError> {
        let ids: BTreeSet<String> = p.snapshots.values().flatten().cloned().collect();
        let states = self.fsr_states(&ids).await?;
        let on = |s: &State| matches!(s, State::Enabling | State::Optimizing | State::Enabled);
        if !p.enable {
            for (zone, snaps) in &p.snapshots {
                let still: Vec<String> = snaps
                    .iter()
                    .filter(|id| states.get(&(zone.clone(), (*id).clone())).is_some_and(&on))
                    .cloned()
                    .collect();
                if still.is_empty() {
                    continue;
                }
                self.fsr_ours(&still.iter().cloned().collect(), p.cluster_id.as_deref())
                    .await?;
                self.acting_on(input).await;
                self.client
                    .disable_fast_snapshot_restores()
                    .availability_zones(zone)
                    .set_source_snapshot_ids(Some(still))
                    .send()
                    .await
                    .map_err(|e| self.classify("DisableFastSnapshotRestores", e))?;
            }
            return Progress::finished();
        }
        let mut waiting = Vec::new();
        for (zone, snaps) in &p.snapshots {
            let off: Vec<String> = snaps
                .iter()
                .filter(|id| !states.get(&(zone.clone(), (*id).clone())).is_some_and(&on))
                .cloned()
                .collect();
            for id in snaps {
                match states.get(&(zone.clone(), id.clone())) {
                    Some(State::Enabled) => {}
                    s => waiting.push(format!(
                        "{id} in {zone} {}",
                        s.map_or("disabled", |s| s.as_str())
                    )),
                }
            }
            if off.is_empty() {
                continue;
            }
            self.fsr_ours(&off.iter().cloned().collect(), p.cluster_id.as_deref())
                .await?;
            self.acting_on(input).await;
            let out = self
                .client
                .enable_fast_snapshot_restores()
                .availability_zones(zone)
                .set_source_snapshot_ids(Some(off))
                .send()
                .await
                .map_err(|e| self.classify("EnableFastSnapshotRestores", e))?;
            // EBS answers per pair: a refused one (the quota of 5 snapshots per region, a
            // snapshot over 16 TiB) fails the step with EBS's own words.
            if let Some(bad) = out.unsuccessful().first() {
                let why: Vec<String> = bad
                    .fast_snapshot_restore_state_errors()
                    .iter()
                    .filter_map(|e| e.error())
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.code().unwrap_or_default(),
                            e.message().unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(StepError::permanent(
                    "FastSnapshotRestoreRefused",
                    format!(
                        "EBS refused Fast Snapshot Restore for {} in {zone}: {} (the restore's volumes were not made; raise the quota, or drop fast_snapshot_restore and set an initialization_rate)",
                        bad.snapshot_id().unwrap_or_default(),
                        why.join("; ")
                    ),
                ));
            }
        }
        // `backup.fast_restore`: requested is enough; the next plan sees how far it got.
        if waiting.is_empty() || p.no_wait {
            Progress::finished()
        } else {
            Progress::pending(
                format!(
                    "Fast Snapshot Restore not enabled yet (about 60 minutes per TiB): {}",
                    waiting.join(", ")
                ),
                None,
            )
        }
    }
}
