//! Where `asdr init` takes a new cluster from: `--node` flags, or a world file's instances (and,
//! when it records them, what the nodes report of their namespaces and devices).

use asdr_planner::World;
use asdr_planner::world::{Instance, InstanceState};

/// A node of the new policy.
pub(super) struct NewNode {
    pub name: String,
    pub ip: String,
    pub zone: String,
    pub subnet: Option<String>,
    pub instance_id: Option<String>,
}

/// A namespace as the nodes report it.
pub(super) struct NewNamespace {
    pub name: String,
    pub replication_factor: u32,
    pub devices: Vec<NewDevice>,
}

pub(super) struct NewDevice {
    pub device: String,
    pub shadow: Option<String>,
    /// The EBS attachment name, when it is not the device's (or the shadow's) own path. A
    /// placeholder when it cannot be told: guessing which volume is which shadow would back up
    /// one device under another's name.
    pub ebs: Option<String>,
}

/// What the new policy says beyond its nodes.
pub(super) struct Shape {
    pub instance_type: String,
    pub instance_store: u32,
    /// The EBS attachment names of the first node's data volumes.
    pub devices: Vec<String>,
    /// What the nodes reported, when the world records it.
    pub namespaces: Option<Vec<NewNamespace>>,
    /// The SMD store the world's archives are in, when they agree on one.
    pub smd_to: Option<String>,
    /// What was seen and not taken, said when the policy is written.
    pub notes: Vec<String>,
}

/// `a1=10.0.1.11@us-east-1a`, one per `--node`.
pub(super) fn from_flags(specs: &[String]) -> Result<Vec<NewNode>, String> {
    if specs.is_empty() {
        return Err(
            "name the nodes: --node NAME=IP@ZONE for each (e.g. --node a1=10.0.1.11@us-east-1a), or take them from a world file with --from-world"
                .into(),
        );
    }
    specs
        .iter()
        .map(|s| {
            let bad = || format!("--node {s}: expected NAME=IP@ZONE, e.g. a1=10.0.1.11@us-east-1a");
            let (name, rest) = s.split_once('=').ok_or_else(bad)?;
            let (ip, zone) = rest.split_once('@').ok_or_else(bad)?;
            if name.is_empty() || ip.parse::<std::net::Ipv4Addr>().is_err() || zone.is_empty() {
                return Err(bad());
            }
            Ok(NewNode {
                name: name.into(),
                ip: ip.into(),
                zone: zone.into(),
                subnet: None,
                instance_id: None,
            })
        })
        .collect()
}

/// The cluster's running instances in a world file: those tagged `asdr:cluster=<cluster>` when
/// any are, else the untagged ones whose `Name` starts with `--name-prefix` (required then: a
/// world of an account holds other instances too). Another cluster's instances (tagged for
/// another name) and drills' stand-ins are never taken. Named by `asdr:node`, else by their `Name`
/// tag (less a `<cluster>-` prefix).
pub(super) fn from_world(
    world: &World,
    cluster: &str,
    prefix: Option<&str>,
) -> Result<(Vec<NewNode>, Shape), String> {
    let running: Vec<&Instance> = world
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running && i.region.is_none())
        .filter(|i| !i.tags.contains_key("asdr:drill"))
        .filter(|i| prefix.is_none_or(|p| i.tags.get("Name").is_some_and(|n| n.starts_with(p))))
        .collect();
    fn tagged_for(i: &Instance) -> Option<&str> {
        i.tags.get("asdr:cluster").map(String::as_str)
    }
    let ours: Vec<&Instance> = running
        .iter()
        .copied()
        .filter(|i| tagged_for(i) == Some(cluster))
        .collect();
    let mut chosen = if !ours.is_empty() {
        ours
    } else {
        let others: std::collections::BTreeSet<&str> =
            running.iter().filter_map(|i| tagged_for(i)).collect();
        let untagged: Vec<&Instance> = running
            .iter()
            .copied()
            .filter(|i| tagged_for(i).is_none())
            .collect();
        if prefix.is_none() {
            return Err(format!(
                "no running instance is tagged asdr:cluster={cluster}{}: name the cluster's instances with --name-prefix (the start of their Name tag), so no other instance is taken for a node",
                if others.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (instances of {} are other clusters' and never taken)",
                        others.into_iter().collect::<Vec<_>>().join(", ")
                    )
                }
            ));
        }
        untagged
    };
    chosen.sort_by(|a, b| a.private_ip.cmp(&b.private_ip).then(a.id.cmp(&b.id)));
    let Some(first) = chosen.first().copied() else {
        return Err(match prefix {
            Some(p) => format!(
                "no running instance of this cluster whose Name tag starts with `{p}` (instances tagged for another cluster are never taken)"
            ),
            None => "no running instance".into(),
        });
    };
    let mut nodes = Vec::new();
    for (k, i) in chosen.iter().enumerate() {
        let ip = i
            .private_ip
            .clone()
            .ok_or_else(|| format!("instance {} has no private address", i.id))?;
        let name = i
            .tags
            .get("asdr:node")
            .cloned()
            .or_else(|| {
                i.tags.get("Name").map(|n| {
                    n.strip_prefix(&format!("{cluster}-"))
                        .unwrap_or(n)
                        .to_lowercase()
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                        .collect()
                })
            })
            .unwrap_or_else(|| format!("n{}", k + 1));
        nodes.push(NewNode {
            name,
            ip,
            zone: i.availability_zone.clone(),
            subnet: i.subnet_id.clone(),
            instance_id: Some(i.id.clone()),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = nodes.iter().find(|n| !seen.insert(n.name.clone())) {
        return Err(format!(
            "two instances would be node `{}`: tag each with a distinct asdr:node, or narrow them with --name-prefix",
            dup.name
        ));
    }
    let root = first.root_device.as_deref();
    let mut devices: Vec<String> = first
        .block_devices
        .iter()
        .map(|b| b.device_name.clone())
        .filter(|d| Some(d.as_str()) != root && d != "/dev/xvda" && d != "/dev/sda1")
        .collect();
    devices.sort();
    if devices.is_empty() {
        devices.push("/dev/sdf".into());
    }
    let namespaces = reported_namespaces(world, &nodes, &devices);
    // A node of the cluster whose instance is not running (terminated, stopped) is not taken:
    // said, so a lost node is not left out of the policy unseen.
    let notes = world
        .instances
        .iter()
        .filter(|i| i.state != InstanceState::Running && i.region.is_none())
        .filter(|i| tagged_for(i) == Some(cluster))
        .filter_map(|i| {
            let node = i.tags.get("asdr:node")?;
            (!nodes.iter().any(|n| &n.name == node)).then(|| {
                format!(
                    "node `{node}`'s instance {} is {:?}, not running: it is not in the policy; declare it by hand (with the address it had) if it is to be restored",
                    i.id,
                    i.state
                )
                .to_lowercase()
                .replacen(&i.id.to_lowercase(), &i.id, 1)
            })
        })
        .collect();
    // Archives are at `<store>/<cluster>/<set>/<node>.smd.tar`.
    let stores: std::collections::BTreeSet<String> = world
        .smd_archives
        .iter()
        .filter_map(|a| {
            let mut parts: Vec<&str> = a.uri.rsplitn(4, '/').collect();
            (parts.len() == 4 && parts[2] == cluster).then(|| parts.remove(3).to_string())
        })
        .collect();
    let smd_to = (stores.len() == 1).then(|| stores.into_iter().next().unwrap_or_default());
    Ok((
        nodes,
        Shape {
            instance_type: first.instance_type.clone(),
            instance_store: first.instance_store_drives,
            devices,
            namespaces,
            smd_to,
            notes,
        },
    ))
}

/// The namespaces the first node that answers reports (name, replication factor, devices): the
/// policy must say exactly these, and asdr refuses every plan until it does.
fn reported_namespaces(
    world: &World,
    nodes: &[NewNode],
    ebs: &[String],
) -> Option<Vec<NewNamespace>> {
    let o = nodes.iter().find_map(|n| {
        world
            .nodes
            .iter()
            .find(|o| o.name == n.name && o.reachable && !o.namespaces.is_empty())
    })?;
    let mut unknown = 0;
    let mut placeholder = || {
        unknown += 1;
        format!("/dev/REPLACE-{unknown}")
    };
    Some(
        o.namespaces
            .iter()
            .map(|ns| NewNamespace {
                name: ns.name.clone(),
                replication_factor: ns.replication_factor.unwrap_or(2),
                devices: ns
                    .devices
                    .iter()
                    .map(|d| {
                        // The EBS volume is the shadow when there is one, else the device; its
                        // path is the attachment name only when the instance lists it so.
                        let volume = d.shadow.as_ref().unwrap_or(&d.device);
                        NewDevice {
                            device: d.device.clone(),
                            shadow: d.shadow.clone(),
                            ebs: (!ebs.contains(volume)).then(&mut placeholder),
                        }
                    })
                    .collect(),
            })
            .collect(),
    )
}
