//! What the planner needs of a live node, read over the info protocol.

use asdr_planner::world::{NodeObservation, ObservedDevice, ObservedNamespace};

use super::info::{InfoClient, InfoError, parse_kv};

fn value<'a>(kv: &'a [(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Devices of a namespace from `get-config:context=namespace;id=NS`: `storage-engine.device[i]`
/// or, for file-backed storage, `storage-engine.file[i]`, each with its `.shadow`.
pub fn devices_of(config: &str) -> Vec<ObservedDevice> {
    let kv = parse_kv(config);
    let mut out = Vec::new();
    for kind in ["device", "file"] {
        for i in 0.. {
            let Some(dev) = value(&kv, &format!("storage-engine.{kind}[{i}]")) else {
                break;
            };
            let shadow =
                value(&kv, &format!("storage-engine.{kind}[{i}].shadow")).map(str::to_string);
            out.push(ObservedDevice {
                device: dev.to_string(),
                shadow,
            });
        }
    }
    out
}

/// One field of a `roster:namespace=NS` reply — `roster=A,B:pending_roster=A,B:observed_nodes=A,B,C`
/// (fields split by `:`, `null` for none) — as the server wrote its ids.
fn roster_field<'r>(reply: &'r str, name: &str) -> Vec<&'r str> {
    reply
        .split(':')
        .filter_map(|f| f.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            v.split(',')
                .filter(|id| !id.is_empty() && *id != "null")
                .collect()
        })
        .unwrap_or_default()
}

/// The `observed_nodes` as the server wrote them, rack suffixes (`ID@rack`) kept: what
/// `roster-set` must be given, or a rack-aware roster loses its racks.
pub fn observed_raw(reply: &str) -> Vec<String> {
    roster_field(reply, "observed_nodes")
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// (roster, observed_nodes) of a `roster:namespace=NS` reply, each id canonical and without its
/// rack suffix (`A1@2`).
pub fn parse_roster(reply: &str) -> (Vec<String>, Vec<String>) {
    let ids = |name: &str| -> Vec<String> {
        roster_field(reply, name)
            .into_iter()
            .map(|id| {
                let id = id.split('@').next().unwrap_or(id);
                asdr_specs::canonical_node_id(id).unwrap_or_else(|| id.to_string())
            })
            .collect()
    };
    (ids("roster"), ids("observed_nodes"))
}

/// Observes a node: identity, edition, cluster view, quiesce and migration state, and the devices
/// of every namespace. A node that does not answer is `reachable: false`, not an error: the plan
/// decides what that means.
pub async fn observe_node(client: &InfoClient) -> NodeObservation {
    match try_observe(client).await {
        Ok(o) => o,
        Err(_) => NodeObservation {
            name: client.node.clone(),
            reachable: false,
            ..NodeObservation::default()
        },
    }
}

async fn try_observe(client: &InfoClient) -> Result<NodeObservation, InfoError> {
    let first = client
        .request(&["node", "edition", "build", "namespaces", "statistics"])
        .await?;
    let get = |i: usize| first[i].value.clone().unwrap_or_default();
    let stats = get(4);
    let stats_kv = parse_kv(&stats);
    let mut o = NodeObservation {
        name: client.node.clone(),
        reachable: true,
        node_id: Some(get(0)),
        edition: Some(get(1)),
        build: Some(get(2)),
        cluster_size: value(&stats_kv, "cluster_size").and_then(|v| v.parse().ok()),
        cluster_key: value(&stats_kv, "cluster_key").map(str::to_string),
        migrations_remaining: value(&stats_kv, "migrate_partitions_remaining")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        ..NodeObservation::default()
    };
    for ns in get(3).split(';').filter(|s| !s.is_empty()) {
        let (stat_cmd, conf_cmd) = (
            format!("namespace/{ns}"),
            format!("get-config:context=namespace;id={ns}"),
        );
        let replies = client.request(&[&stat_cmd, &conf_cmd]).await?;
        let stat = replies[0].value.clone().unwrap_or_default();
        let conf = replies[1].value.clone().unwrap_or_default();
        let skv = parse_kv(&stat);
        let n = |k: &str| {
            value(&skv, k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        o.dead_partitions += n("dead_partitions");
        o.unavailable_partitions += n("unavailable_partitions");
        o.quiesced |= value(&skv, "effective_is_quiesced") == Some("true")
            || value(&skv, "pending_quiesce") == Some("true");
        let ckv = parse_kv(&conf);
        let sc = value(&ckv, "strong-consistency") == Some("true");
        let (roster, observed_nodes) = if sc {
            let cmd = format!("roster:namespace={ns}");
            let reply = client.request(&[&cmd]).await?;
            parse_roster(reply[0].value.as_deref().unwrap_or_default())
        } else {
            (Vec::new(), Vec::new())
        };
        o.namespaces.push(ObservedNamespace {
            name: ns.to_string(),
            replication_factor: value(&ckv, "replication-factor").and_then(|v| v.parse().ok()),
            strong_consistency: sc,
            rack_id: value(&ckv, "rack-id").and_then(|v| v.parse().ok()),
            roster,
            observed_nodes,
            dead_partitions: n("dead_partitions"),
            unavailable_partitions: n("unavailable_partitions"),
            devices: devices_of(&conf),
        });
    }
    Ok(o)
}

#[cfg(test)]
mod roster_tests {
    use super::{observed_raw, parse_roster};

    #[test]
    fn a_roster_reply_reads_as_canonical_ids_without_rack_suffixes() {
        let (roster, observed) = parse_roster(
            "roster=BB9020011AC4202@1,0BB9030011AC4202@2:pending_roster=null:observed_nodes=BB9020011AC4202@1,BB9030011AC4202@2,BB9040011AC4202@2",
        );
        assert_eq!(roster, ["BB9020011AC4202", "BB9030011AC4202"]);
        assert_eq!(
            observed,
            ["BB9020011AC4202", "BB9030011AC4202", "BB9040011AC4202"]
        );
        assert_eq!(
            parse_roster("roster=null:pending_roster=null:observed_nodes=null"),
            (vec![], vec![])
        );
        // What roster-set is given keeps the racks: a rack-aware roster must not lose them.
        assert_eq!(
            observed_raw(
                "roster=null:pending_roster=null:observed_nodes=BB9020011AC4202@1,BB9030011AC4202@2"
            ),
            ["BB9020011AC4202@1", "BB9030011AC4202@2"]
        );
    }
}
