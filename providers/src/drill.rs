//! A drill's checks of the restored cluster, over the info protocol: it forms a stable cluster of
//! the right size, its namespaces hold at least the objects the policy expects, and the SMD
//! definitions (secondary indexes, UDFs) came back with it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use asdr_specs::Drill;
use serde::{Deserialize, Serialize};

use crate::aerospike::info::{InfoClient, parse_kv};
use crate::aerospike::node::cluster_stable;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// Runs every validation of `drill` against the drill's nodes (name → info address).
pub async fn validate(
    drill: &Drill,
    nodes: &BTreeMap<String, SocketAddr>,
    namespaces: &[String],
) -> Vec<Validation> {
    let clients: Vec<InfoClient> = nodes.iter().map(|(n, a)| InfoClient::new(n, *a)).collect();
    let mut out = Vec::new();
    let size = clients.len();
    out.push(match cluster_stable(&clients, size).await {
        Ok(key) => Validation {
            name: format!("stable cluster of {size} nodes"),
            ok: true,
            detail: format!("cluster key {key}"),
        },
        Err(e) => Validation {
            name: format!("stable cluster of {size} nodes"),
            ok: false,
            detail: e,
        },
    });
    for (ns, min) in &drill.min_objects {
        let mut total = 0u64;
        let mut errors = Vec::new();
        for c in &clients {
            match c.get(&format!("namespace/{ns}")).await {
                Ok(stats) => {
                    let kv = parse_kv(&stats);
                    let get = |k: &str| {
                        kv.iter()
                            .find(|(key, _)| *key == k)
                            .and_then(|(_, v)| v.parse::<u64>().ok())
                    };
                    total += get("master_objects")
                        .or_else(|| get("objects"))
                        .unwrap_or(0);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        let name = format!("namespace {ns} holds at least {min} objects");
        out.push(if errors.is_empty() {
            Validation {
                ok: total >= *min,
                detail: format!("{total} master objects"),
                name,
            }
        } else {
            Validation {
                ok: false,
                detail: errors.join("; "),
                name,
            }
        });
    }
    for what in &drill.smd {
        let (name, found) = match what.as_str() {
            "sindex" => {
                let mut count = 0;
                for ns in namespaces {
                    if let Some(c) = clients.first()
                        && let Ok(list) = c.get(&format!("sindex-list:ns={ns}")).await
                    {
                        count += list.split(';').filter(|s| s.contains("indexname=")).count();
                    }
                }
                ("secondary indexes present (SMD)", count)
            }
            _ => {
                let count = match clients.first() {
                    Some(c) => c
                        .get("udf-list")
                        .await
                        .map(|l| l.split(';').filter(|s| s.contains("filename=")).count())
                        .unwrap_or(0),
                    None => 0,
                };
                ("UDFs present (SMD)", count)
            }
        };
        out.push(Validation {
            name: name.into(),
            ok: found > 0,
            detail: format!("{found} found"),
        });
    }
    out
}
