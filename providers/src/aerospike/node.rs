//! Node operations the steps are made of, over the info protocol: cluster stability and the
//! quiesce sequence Aerospike's own tooling uses (quiesce, check pending_quiesce, recluster on
//! every node, check effective_is_quiesced and nodes_quiesced).

use std::collections::BTreeSet;

use super::info::{InfoClient, InfoError, parse_kv};

/// The answer of `cluster-stable` from every node, when they all give the same key.
pub async fn cluster_stable(nodes: &[InfoClient], size: usize) -> Result<String, String> {
    let command = format!("cluster-stable:size={size};ignore-migrations=false");
    let mut keys = BTreeSet::new();
    for n in nodes {
        match n.get(&command).await {
            Ok(key) => {
                keys.insert(key);
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    match keys.len() {
        1 => Ok(keys.into_iter().next().expect("one key")),
        0 => Err("no node to ask".into()),
        _ => Err(format!(
            "nodes disagree on the cluster key: {}",
            keys.into_iter().collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Sends `recluster:` to every node; one of them (the principal) answers `ok`.
pub async fn recluster(nodes: &[InfoClient]) -> Result<(), InfoError> {
    let mut principal = false;
    for n in nodes {
        principal |= n.get("recluster:").await? == "ok";
    }
    if principal {
        Ok(())
    } else {
        Err(InfoError::Garbled {
            node: "cluster".into(),
            addr: nodes[0].addr,
            why: "no node answered ok to recluster:".into(),
        })
    }
}

/// The node's quiesce flags, over all its namespaces: (pending, effective, nodes_quiesced).
pub async fn quiesce_state(node: &InfoClient) -> Result<(bool, bool, u64), InfoError> {
    let namespaces = node.get("namespaces").await?;
    let (mut pending, mut effective, mut count) = (true, true, u64::MAX);
    let mut any = false;
    for ns in namespaces.split(';').filter(|s| !s.is_empty()) {
        any = true;
        let stats = node.get(&format!("namespace/{ns}")).await?;
        let kv = parse_kv(&stats);
        let get = |k: &str| kv.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        pending &= get("pending_quiesce") == Some("true");
        effective &= get("effective_is_quiesced") == Some("true");
        count = count.min(
            get("nodes_quiesced")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        );
    }
    if !any {
        return Ok((false, false, 0));
    }
    Ok((pending, effective, count))
}
