//! Aerospike node ids: what `node-id` in aerospike.conf's `service` context sets, and what the
//! `node` info command answers. Without `node-id` the id derives from the instance's MAC address,
//! so a replacement instance joins as a new node — outside a strong-consistency roster.

/// The canonical form of a node id (upper-case hex, no leading zeros, as `node` answers it), or
/// None when `s` is not one: 1–16 hex digits, not zero.
pub fn canonical_node_id(s: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() || s.len() > 16 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let v = u64::from_str_radix(s, 16).ok()?;
    (v != 0).then(|| format!("{v:X}"))
}

/// The id asdr gives a node it has never known an id for (never answered, recorded in no set's
/// manifest, not pinned): a hash of the cluster and node names, so every plan renders the same
/// one and the node keeps it from then on.
pub fn derived_node_id(cluster: &str, node: &str) -> String {
    // FNV-1a, 64 bits: stable across releases and platforms (std's hasher is not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("asdr/{cluster}/{node}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:X}", h.max(1))
}

/// The `node-id` values an aerospike.conf sets in its top-level `service` context (canonical
/// where they parse, else as written), in order. `#` starts a comment; contexts are brace-nested.
pub fn config_node_ids(conf: &str) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.last() == Some(&"{") {
            path.push(words.first().copied().unwrap_or("").to_string());
            continue;
        }
        if words.first() == Some(&"}") {
            path.pop();
            continue;
        }
        if path.len() == 1 && path[0] == "service" && words.first() == Some(&"node-id") {
            let v = words.get(1).copied().unwrap_or("");
            out.push(canonical_node_id(v).unwrap_or_else(|| v.to_string()));
        }
    }
    out
}

/// How R5 fixes the config a node starts with: the first of `namespaces` whose `device` lines in
/// `conf` are not the policy's for the node of `vars`, with what the config says and what the
/// policy says (`device A B; device C`). Validation and the planner ask it the same way.
pub fn config_device_mismatch<'n>(
    namespaces: &'n [crate::Namespace],
    vars: &crate::NodeVars<'_>,
    conf: &str,
) -> Option<(&'n crate::Namespace, String, String)> {
    let rendered = config_device_lines(conf);
    let render = |t: &crate::Template| t.render(vars).unwrap_or_else(|_| t.source().to_string());
    let show = |v: &[(String, Option<String>)]| {
        v.iter()
            .map(|(d, s)| match s {
                Some(s) => format!("device {d} {s}"),
                None => format!("device {d}"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    namespaces.iter().find_map(|ns| {
        let want: Vec<(String, Option<String>)> = ns
            .devices
            .iter()
            .map(|d| (render(&d.device), d.shadow.as_ref().map(render)))
            .collect();
        let got = rendered.get(&ns.name).cloned().unwrap_or_default();
        (got != want).then(|| (ns, show(&got), show(&want)))
    })
}

/// The `device` lines of an aerospike.conf, by namespace: (device, shadow), in order.
pub fn config_device_lines(
    conf: &str,
) -> std::collections::BTreeMap<String, Vec<(String, Option<String>)>> {
    let mut out: std::collections::BTreeMap<String, Vec<(String, Option<String>)>> =
        Default::default();
    let mut namespace: Option<String> = None;
    for line in conf.lines() {
        let words: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        match words.as_slice() {
            ["namespace", name, ..] => namespace = Some(name.trim_end_matches('{').to_string()),
            ["device", device, rest @ ..] => {
                if let Some(ns) = &namespace {
                    let shadow = rest.first().filter(|s| **s != "{").map(|s| s.to_string());
                    out.entry(ns.clone())
                        .or_default()
                        .push((device.to_string(), shadow));
                }
            }
            _ => {}
        }
    }
    out
}

/// The `rack-id` each `namespace NAME { … }` context of an aerospike.conf sets (None where it
/// sets none), by namespace, in order.
pub fn config_rack_ids(conf: &str) -> Vec<(String, Option<String>)> {
    let mut path: Vec<String> = Vec::new();
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for line in conf.lines() {
        let line = line.split('#').next().unwrap_or("");
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.last() == Some(&"{") {
            if path.is_empty() && words.first() == Some(&"namespace") {
                out.push((words.get(1).copied().unwrap_or("").to_string(), None));
            }
            path.push(words.first().copied().unwrap_or("").to_string());
            continue;
        }
        if words.first() == Some(&"}") {
            path.pop();
            continue;
        }
        if path.len() == 1
            && path[0] == "namespace"
            && words.first() == Some(&"rack-id")
            && let Some(last) = out.last_mut()
        {
            last.1 = words.get(1).map(|v| v.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_compare_as_the_node_answers_them() {
        assert_eq!(canonical_node_id("00a1").as_deref(), Some("A1"));
        assert_eq!(
            canonical_node_id("BB9040011AC4202").as_deref(),
            Some("BB9040011AC4202")
        );
        for bad in ["", "0", "000", "g1", "12345678901234567", "a 1"] {
            assert_eq!(canonical_node_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_service_contexts_node_id_is_the_nodes() {
        let conf = "service {\n  node-id a1 # pinned\n  cluster-name x\n}\nnetwork {\n  service {\n    node-id ff\n  }\n}\n";
        assert_eq!(config_node_ids(conf), ["A1"]);
        assert!(config_node_ids("service {\n}\n").is_empty());
        assert_eq!(config_node_ids("service {\n node-id none\n}\n"), ["none"]);
    }

    #[test]
    fn each_namespace_says_its_own_rack() {
        let conf = "service {\n}\nnamespace users {\n  rack-id 2\n  storage-engine device {\n    rack-id 9\n  }\n}\nnamespace events {\n}\n";
        assert_eq!(
            config_rack_ids(conf),
            [
                ("users".to_string(), Some("2".to_string())),
                ("events".to_string(), None)
            ]
        );
    }

    #[test]
    fn a_derived_id_is_stable_valid_and_differs_by_node() {
        let a = derived_node_id("prod-east", "a1");
        assert_eq!(a, derived_node_id("prod-east", "a1"));
        assert_ne!(a, derived_node_id("prod-east", "a2"));
        assert_eq!(canonical_node_id(&a).as_deref(), Some(a.as_str()));
    }
}
