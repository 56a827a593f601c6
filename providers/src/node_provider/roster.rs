//! Strong consistency (R19): the roster made whole again after a node joined with an id it does
//! not hold, and the wait until no partition is unavailable or dead after a restore.

use super::*;
use crate::aerospike::info::parse_kv;
use crate::aerospike::observe::{observed_raw, parse_roster};

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
            // Exactly the cluster: never a roster of part of it, nor one holding a node the
            // policy does not name.
            if observed.len() != p.size {
                return Progress::pending(
                    format!(
                        "namespace {ns} observes {} nodes, not the cluster's {}",
                        observed.len(),
                        p.size
                    ),
                    None,
                );
            }
            // Every node must see the same nodes before the roster is set from one's view.
            for c in &clients[1..] {
                let other = c.get(&cmd).await.map_err(|e| self.unreachable(e))?;
                let mut theirs = parse_roster(&other).1;
                theirs.sort();
                observed.sort();
                if theirs != observed {
                    return Progress::pending(
                        format!("{} observes other nodes in namespace {ns}", c.node),
                        None,
                    );
                }
            }
            roster.sort();
            observed.sort();
            if roster == observed {
                continue;
            }
            let set = format!(
                "roster-set:namespace={ns};nodes={}",
                observed_raw(&reply).join(",")
            );
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
            // Every roster member must be back before the next node may go out: one missing
            // member plus one more out is replication-factor 2 gone.
            let reply = clients[0]
                .get(&format!("roster:namespace={ns}"))
                .await
                .map_err(|e| self.unreachable(e))?;
            let (roster, observed) = parse_roster(&reply);
            let missing: Vec<&String> = roster.iter().filter(|r| !observed.contains(r)).collect();
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
                    let answer = c.get(&revive).await.map_err(|e| self.unreachable(e))?;
                    if answer != "ok" {
                        return Err(StepError::permanent(
                            "ReviveRefused",
                            format!("[R19] {} answered `{answer}` to `{revive}`", c.node),
                        ));
                    }
                }
                recluster(&clients).await.map_err(|e| self.unreachable(e))?;
                waiting.push(format!("{ns}: {dead} dead partitions revived"));
            } else if unavailable > 0 {
                waiting.push(format!("{ns}: {unavailable} partitions unavailable"));
            } else if !missing.is_empty() {
                waiting.push(format!(
                    "{ns}: roster member {} not in the cluster",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        if waiting.is_empty() {
            Progress::finished()
        } else {
            Progress::pending(waiting.join("; "), None)
        }
    }
}
