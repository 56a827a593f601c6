//! The Aerospike nodes: cluster checks and waits, quiesce, stop and start, aerospike.conf, SMD
//! archives, asbackup runs and the deletion of asbackup sets.

use super::*;

pub(super) fn observe(world: &World, _cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    let step = input.step;
    let node = step.node.as_deref().unwrap_or("");
    let obs = world.nodes.iter().find(|n| n.name == node);
    match step.kind {
        StepKind::Quiesce => obs.filter(|n| n.quiesced).and_then(|_| r(&[])),
        StepKind::Unquiesce => obs.filter(|n| !n.quiesced).and_then(|_| r(&[])),
        StepKind::StopNode => obs.filter(|n| !n.reachable).and_then(|_| r(&[])),
        StepKind::StartNode => obs.filter(|n| n.reachable).and_then(|_| r(&[])),
        StepKind::CopySmd => {
            let set = input.param_str("set", "")?;
            world
                .smd_archives
                .iter()
                .find(|a| a.set == set)
                .and_then(|a| r(&[("uri", json!(a.uri))]))
        }
        StepKind::RestoreSmd => {
            let set = input.param_str("set", "")?;
            obs.filter(|n| n.smd_restored_from.as_deref() == Some(set.as_str()))
                .and_then(|_| r(&[]))
        }
        StepKind::WriteConfig => {
            let content = input.param_str("content", "")?;
            obs.filter(|n| n.config.as_deref() == Some(content.as_str()))
                .and_then(|_| r(&[]))
        }
        StepKind::Asbackup => {
            let (set, ns) = (
                input.param_str("set", "")?,
                input.param_str("namespace", "")?,
            );
            world
                .asbackup_archives
                .iter()
                .find(|a| a.set == set && a.namespace == ns)
                .and_then(|a| r(&[("uri", json!(a.uri))]))
        }
        StepKind::DeleteBackup => {
            let set = input.param_str("set", "")?;
            (!world.asbackup_archives.iter().any(|a| a.set == set)).then(Resources::new)
        }
        // Checks and waits are cheap to run again; asrestore leaves no mark to find.
        StepKind::CheckClusterStable
        | StepKind::WaitClusterStable
        | StepKind::WaitNodesStopped
        | StepKind::Asrestore => None,
        _ => None,
    }
}

pub(super) fn act(
    world: &mut World,
    cx: &Ctx<'_>,
    input: &StepInput<'_>,
) -> Result<Progress, StepError> {
    let step = input.step;
    match step.kind {
        StepKind::CheckClusterStable => {
            let size = step.params.get("size").and_then(Value::as_u64).unwrap_or(0) as usize;
            let nodes = list(input, "nodes");
            match cluster_unstable(world, size, Some(&nodes)) {
                None => Progress::done(&[]),
                // R14: refuse to go on.
                Some(why) => Err(bad("ERROR:7", why)),
            }
        }
        StepKind::WaitClusterStable => {
            let size = step.params.get("size").and_then(Value::as_u64).unwrap_or(0) as usize;
            let nodes = list(input, "nodes");
            match cluster_unstable(world, size, Some(&nodes)) {
                None => Progress::done(&[(
                    "cluster_key",
                    json!(world.nodes.iter().find_map(|n| n.cluster_key.clone())),
                )]),
                Some(why) => {
                    for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                        n.migrations_remaining = n.migrations_remaining.saturating_sub(1);
                    }
                    Progress::pending(why, None)
                }
            }
        }
        StepKind::WaitNodesStopped => {
            let names = list(input, "nodes");
            match world
                .nodes
                .iter()
                .find(|n| n.reachable && names.contains(&n.name))
            {
                None => Progress::done(&[]),
                Some(n) => Progress::pending(format!("{} still answers", n.name), None),
            }
        }
        StepKind::Quiesce | StepKind::Unquiesce => {
            let name = node_name(input)?;
            let n = node_mut(world, &name);
            if !n.reachable {
                return Err(bad(
                    "Unreachable",
                    format!("node {name} does not answer on its info port"),
                ));
            }
            n.quiesced = step.kind == StepKind::Quiesce;
            Progress::done(&[])
        }
        StepKind::StopNode => {
            let name = node_name(input)?;
            let n = node_mut(world, &name);
            // The edition is the software's, not the process's: it comes back as it was.
            n.reachable = false;
            n.quiesced = false;
            n.build = None;
            recluster(world);
            Progress::done(&[])
        }
        StepKind::StartNode => {
            let name = node_name(input)?;
            let ip = address_ip(input);
            let instance = live_instance(world, cx, &name, ip.as_deref()).ok_or_else(|| {
                bad(
                    "Unreachable",
                    format!(
                        "node {name} has no running instance at {}",
                        ip.unwrap_or_default()
                    ),
                )
            })?;
            let drives = instance.instance_store_drives;
            // A new instance runs the same build as its peers (a Community cluster stays
            // Community); Enterprise only when nothing says otherwise.
            let peers_edition = world
                .nodes
                .iter()
                .find_map(|n| n.edition.clone())
                .unwrap_or_else(|| "Aerospike Enterprise Edition".into());
            let n = node_mut(world, &name);
            n.reachable = true;
            n.edition = n.edition.clone().or(Some(peers_edition));
            n.build = Some("8.1.1.2".into());
            n.node_id = Some(format!(
                "BB9{:012X}",
                u64::from_str_radix(&token("node", &name, "")[..10], 16).unwrap_or(0)
                    + u64::from(drives)
            ));
            if let Some(conf) = &n.config {
                let namespaces = namespaces_of(conf);
                if !namespaces.is_empty() {
                    n.namespaces = namespaces;
                }
            }
            recluster(world);
            // A node that joins makes the cluster migrate partitions for a while.
            for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                n.migrations_remaining = u64::from(cx.sim.migration_polls);
            }
            Progress::done(&[])
        }
        StepKind::CopySmd => {
            let set = need(input, "set", "")?;
            let uri = need(input, "to", "")?;
            let name = node_name(input)?;
            let sha = token(&set, &name, "smd");
            world.smd_archives.push(SmdArchive {
                set,
                node: name,
                uri: uri.clone(),
                sha256: Some(sha),
            });
            Progress::done(&[("uri", json!(uri))])
        }
        StepKind::RestoreSmd => {
            let set = need(input, "set", "")?;
            let from = need(input, "from", "")?;
            if !world.smd_archives.iter().any(|a| a.uri == from) {
                return Err(bad(
                    "NoSuchKey",
                    format!("SMD archive {from} is not in the store"),
                ));
            }
            node_mut(world, &node_name(input)?).smd_restored_from = Some(set);
            Progress::done(&[])
        }
        StepKind::WriteConfig => {
            let name = node_name(input)?;
            if live_instance(world, cx, &name, None).is_none() {
                return Err(bad(
                    "Unreachable",
                    format!("node {name} has no running instance to write aerospike.conf on"),
                ));
            }
            node_mut(world, &name).config = Some(need(input, "content", "")?);
            Progress::done(&[])
        }
        StepKind::Asbackup => {
            let (set, namespace, uri) = (
                need(input, "set", "")?,
                need(input, "namespace", "")?,
                need(input, "to", "")?,
            );
            world.asbackup_archives.push(AsbackupArchive {
                set,
                namespace,
                uri: uri.clone(),
                incremental_of: input.param_str("incremental_of", ""),
            });
            Progress::done(&[("uri", json!(uri))])
        }
        StepKind::Asrestore => Progress::done(&[]),
        StepKind::DeleteBackup => {
            let set = need(input, "set", "")?;
            world.asbackup_archives.retain(|a| a.set != set);
            Progress::done(&[])
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{other} is not carried out here"),
        )),
    }
}
