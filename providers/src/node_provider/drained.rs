//! A quiesce that has drained (R1). After `quiesce:` and `recluster:` a node still takes client
//! transactions until every client has fetched the new partition map; a snapshot taken then
//! catches writes in flight on one volume and not another. The node is drained when it reports
//! itself quiesced and its client write counters (summed over its namespaces) stand still for the
//! step's quiet window; a node still written to after the step's timeout is not snapshotted.

use std::time::Instant;

use super::*;
use crate::aerospike::info::parse_kv;

/// One drain under way.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drain {
    first: Instant,
    writes: u64,
    still_since: Instant,
}

/// Namespace statistics that count client writes the node handled (as master, from a proxy, in
/// batches): anything that changes records.
const WRITE_COUNTERS: &[&str] = &[
    "client_write_",
    "client_delete_",
    "client_udf_",
    "client_lang_",
    "batch_sub_write_",
    "batch_sub_delete_",
    "batch_sub_udf_",
    "batch_sub_lang_",
    "from_proxy_write_",
    "from_proxy_delete_",
    "from_proxy_udf_",
    "from_proxy_lang_",
    // Background scans and queries that write (operations, UDFs), and XDR writes shipped in.
    "ops_sub_write_",
    "udf_sub_udf_",
    "udf_sub_lang_",
    "xdr_client_write_",
    "xdr_client_delete_",
];

/// The client writes a namespace's statistics count, and whether it reports itself quiesced.
pub(crate) fn writes_of(stats: &str) -> (u64, bool) {
    let kv = parse_kv(stats);
    let writes = kv
        .iter()
        .filter(|(k, _)| WRITE_COUNTERS.iter().any(|p| k.starts_with(p)))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    let quiesced = kv
        .iter()
        .any(|(k, v)| *k == "effective_is_quiesced" && *v == "true");
    (writes, quiesced)
}

impl<T: Transport, S: Store> NodeProvider<T, S> {
    pub(super) async fn drained(
        &self,
        input: &StepInput<'_>,
        p: &params::WaitQuiesceDrained,
    ) -> Result<Progress, StepError> {
        let name = Self::node(input)?;
        let c = self.client(&name)?;
        let unreachable = |e: crate::aerospike::info::InfoError| {
            StepError::transient("Unreachable", e.to_string(), self.retry_after)
        };
        let namespaces = c.get("namespaces").await.map_err(unreachable)?;
        if namespaces.split(';').all(|s| s.is_empty()) {
            // No namespace is no evidence of anything: never taken as drained.
            return Progress::pending(format!("{name}: reports no namespaces"), None);
        }
        let (mut writes, mut quiesced) = (0u64, true);
        for ns in namespaces.split(';').filter(|s| !s.is_empty()) {
            let stats = c
                .get(&format!("namespace/{ns}"))
                .await
                .map_err(unreachable)?;
            let (w, q) = writes_of(&stats);
            writes += w;
            quiesced &= q;
        }
        if !quiesced {
            return Err(StepError::permanent(
                "NotQuiesced",
                format!(
                    "[R1] {name} no longer reports itself quiesced (effective_is_quiesced): its writes were never stopped, so it is not snapshotted"
                ),
            ));
        }
        let now = Instant::now();
        let drain = {
            let mut drains = self.drains.lock().expect("not poisoned");
            let d = drains.entry(input.step.id.clone()).or_insert(Drain {
                first: now,
                writes,
                still_since: now,
            });
            if d.writes != writes {
                d.writes = writes;
                d.still_since = now;
            }
            *d
        };
        let still = now.duration_since(drain.still_since);
        if still >= Duration::from_millis(p.quiet_ms) {
            self.drains
                .lock()
                .expect("not poisoned")
                .remove(&input.step.id);
            return Progress::finished();
        }
        if now.duration_since(drain.first) >= Duration::from_secs(p.timeout_s) {
            self.drains
                .lock()
                .expect("not poisoned")
                .remove(&input.step.id);
            return Err(StepError::permanent(
                "NotDrained",
                format!(
                    "[R1] {name} still takes client writes {}s after it was quiesced (clients that do not follow the partition map, or writes pinned to it): it is not snapshotted, and its writes resume",
                    p.timeout_s
                ),
            ));
        }
        Progress::pending(
            format!(
                "{name}: quiesced; client writes still for {} ms of {} ms",
                still.as_millis(),
                p.quiet_ms
            ),
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_client_write_counts_and_reads_do_not() {
        let stats = "objects=10;client_read_success=900;client_write_success=5;client_write_error=1;client_delete_success=2;client_udf_complete=3;batch_sub_write_success=4;from_proxy_write_success=6;client_proxy_complete=100;effective_is_quiesced=true";
        assert_eq!(writes_of(stats), (21, true));
        assert_eq!(
            writes_of(
                "ops_sub_write_success=2;udf_sub_udf_complete=3;xdr_client_write_success=4;effective_is_quiesced=true"
            ),
            (9, true)
        );
        assert_eq!(
            writes_of("client_write_success=5;effective_is_quiesced=false"),
            (5, false)
        );
    }
}
