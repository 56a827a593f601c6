//! Strong consistency (R19): the roster made whole again after a node joined with an id it does
//! not hold, and the wait until no partition is unavailable or dead after a restore.

use super::*;
use crate::aerospike::info::parse_kv;
use crate::aerospike::observe::parse_roster;

impl<T: Transport, S: Store> NodeProvider<T, S> {
    fn all_clients(&self) -> Result<Vec<InfoClient>, StepError> {
        self.nodes.keys().map(|n| self.client(n)).collect()
    }

    fn unreachable(&self, e: crate::aerospike::info::InfoError) -> StepError {
        StepError::transient("Unreachable", e.to_string(), self.retry_after)
    }

    /// Each namespace's roster becomes the nodes it observes — only once all `size` are there,
    /// so a roster is never shrunk to a partial cluster. Done when roster = observed everywhere.
    pub(super) async fn set_roster(&self, p: &params::SetRoster) -> Result<Progress, StepError> {
        let clients = self.all_clients()?;
        let mut changed = false;
        for ns in &p.namespaces {
            let cmd = format!("roster:namespace={ns}");
            let reply = clients[0]
                .get(&cmd)
                .await
                .map_err(|e| self.unreachable(e))?;
            let (mut roster, mut observed) = parse_roster(&reply);
            if observed.len() < p.size {
                return Progress::pending(
                    format!(
                        "namespace {ns} observes {} of {} nodes",
                        observed.len(),
                        p.size
                    ),
                    None,
                );
            }
            roster.sort();
            observed.sort();
            if roster == observed {
                continue;
            }
            let set = format!("roster-set:namespace={ns};nodes={}", observed.join(","));
            for c in &clients {
                let answer = c.get(&set).await.map_err(|e| self.unreachable(e))?;
                if answer != "ok" {
                    return Err(StepError::permanent(
                        "RosterRefused",
                        format!("[R19] {} answered `{answer}` to `{set}`", c.node),
                    ));
                }
            }
            changed = true;
        }
        if changed {
            recluster(&clients).await.map_err(|e| self.unreachable(e))?;
            return Progress::pending("roster set; reclustering", None);
        }
        Progress::finished()
    }

    /// Until no node reports an unavailable or dead partition in the namespaces. Dead
    /// partitions are revived only when the restore said so.
    pub(super) async fn partitions_available(
        &self,
        p: &params::WaitPartitionsAvailable,
    ) -> Result<Progress, StepError> {
        let clients = self.all_clients()?;
        let mut waiting = Vec::new();
        for ns in &p.namespaces {
            let (mut dead, mut unavailable) = (0u64, 0u64);
            for c in &clients {
                let stats = c
                    .get(&format!("namespace/{ns}"))
                    .await
                    .map_err(|e| self.unreachable(e))?;
                let kv = parse_kv(&stats);
                let n = |k: &str| {
                    kv.iter()
                        .find(|(key, _)| *key == k)
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                dead = dead.max(n("dead_partitions"));
                unavailable = unavailable.max(n("unavailable_partitions"));
            }
            if dead > 0 {
                if !p.revive {
                    return Err(StepError::permanent(
                        "R19",
                        format!(
                            "[R19] namespace {ns} has {dead} dead partitions: their last writes may be lost. asdr revives them only for a restore that declares `accept_dead_partitions: true`; or revive by hand (`revive:namespace={ns}` on every node, then `recluster:`) once you accept that"
                        ),
                    ));
                }
                let revive = format!("revive:namespace={ns}");
                for c in &clients {
                    c.get(&revive).await.map_err(|e| self.unreachable(e))?;
                }
                recluster(&clients).await.map_err(|e| self.unreachable(e))?;
                waiting.push(format!("{ns}: {dead} dead partitions revived"));
            } else if unavailable > 0 {
                waiting.push(format!("{ns}: {unavailable} partitions unavailable"));
            }
        }
        if waiting.is_empty() {
            Progress::finished()
        } else {
            Progress::pending(waiting.join("; "), None)
        }
    }
}
