//! Fast Snapshot Restore in the world file: each (snapshot, zone) pair the step enables goes
//! `enabling` → `optimizing` → `enabled`, one state per poll (EBS takes about an hour per TiB);
//! disabling removes it. Only the cluster's own snapshots, as EBS's tag conditions would allow.

use asdr_planner::params::FastSnapshotRestore;
use asdr_planner::ports::{Progress, StepError, StepInput};
use asdr_planner::tags;
use asdr_planner::world::World;

use super::{Ctx, bad, here};

pub(super) fn act(
    world: &mut World,
    cx: &Ctx<'_>,
    input: &StepInput<'_>,
    p: &FastSnapshotRestore,
) -> Result<Progress, StepError> {
    let mut waiting = Vec::new();
    for (zone, ids) in &p.snapshots {
        for id in ids {
            let snap = world
                .snapshots
                .iter_mut()
                .find(|s| &s.id == id && here(&s.region, input))
                .ok_or_else(|| {
                    bad(
                        "InvalidSnapshot.NotFound",
                        format!("snapshot {id} does not exist"),
                    )
                })?;
            if snap.tags.get(tags::CLUSTER).map(String::as_str) != Some(cx.cluster)
                || !tags::of_id(&snap.tags, p.cluster_id.as_deref())
            {
                return Err(bad(
                    "UnauthorizedOperation",
                    format!(
                        "snapshot {id} is not this cluster's: its Fast Snapshot Restore is not touched"
                    ),
                ));
            }
            if !p.enable {
                snap.fast_restore.remove(zone);
                continue;
            }
            let next = match snap.fast_restore.get(zone).map(String::as_str) {
                None | Some("disabling") => "enabling",
                Some("enabling") => "optimizing",
                _ => "enabled",
            };
            snap.fast_restore.insert(zone.clone(), next.to_string());
            if next != "enabled" {
                waiting.push(format!("{id} in {zone} {next}"));
            }
        }
    }
    if waiting.is_empty() || p.no_wait {
        Progress::finished()
    } else {
        Progress::pending(
            format!(
                "Fast Snapshot Restore not enabled yet: {}",
                waiting.join(", ")
            ),
            None,
        )
    }
}
