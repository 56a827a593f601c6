//! The Aerospike nodes: cluster checks and waits, quiesce, stop and start, aerospike.conf, SMD
//! archives, asbackup runs and the deletion of asbackup sets.

use super::*;

pub(super) fn observe(world: &World, _cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    let step = input.step;
    let node = step.node.as_deref().unwrap_or("");
    let obs = world.nodes.iter().find(|n| n.name == node);
    match &step.params {
        Params::Quiesce(_) => obs.filter(|n| n.quiesced).and_then(|_| found()),
        Params::Unquiesce(_) => obs.filter(|n| !n.quiesced).and_then(|_| found()),
        Params::StopNode(_) => obs.filter(|n| !n.reachable).and_then(|_| found()),
        Params::StartNode(_) => obs.filter(|n| n.reachable).and_then(|_| found()),
        // The set's archive in the same store directory (another region's copy is elsewhere).
        Params::CopySmd(p) => world
            .smd_archives
            .iter()
            .find(|a| a.set == p.set && parent(&a.uri) == parent(&p.to))
            .map(|a| Learned::uri(a.uri.clone())),
        Params::WriteManifest(p) => {
            let file = world
                .set_manifests
                .iter()
                .find(|m| m.uri == p.uri)?
                .file
                .as_ref()?;
            let want =
                asdr_planner::manifest::build(p, input, &[], time::OffsetDateTime::UNIX_EPOCH)
                    .ok()?;
            (file.check().is_ok()
                && file.manifest.cluster_id == p.cluster_id
                && file.manifest.members == want.members)
                .then(|| Learned {
                    uri: Some(p.uri.clone()),
                    sha256: Some(file.sha256.clone()),
                    ..Learned::default()
                })
        }
        Params::CopySmdArchive(p) => {
            world
                .smd_archives
                .iter()
                .find(|a| a.uri == p.to)
                .map(|a| Learned {
                    uri: Some(a.uri.clone()),
                    sha256: a.sha256.clone(),
                    ..Learned::default()
                })
        }
        Params::RestoreSmd(p) => obs
            .filter(|n| n.smd_restored_from.as_deref() == Some(p.set.as_str()))
            .and_then(|_| found()),
        Params::WriteConfig(p) => obs
            .filter(|n| n.config.as_deref() == Some(p.content.as_str()))
            .and_then(|_| found()),
        Params::Asbackup(p) => world
            .asbackup_archives
            .iter()
            .find(|a| {
                a.set == p.set
                    && a.namespace == p.namespace
                    && a.cluster.as_deref().is_none_or(|c| c == p.cluster)
            })
            .map(|a| Learned::uri(a.uri.clone())),
        Params::DeleteBackup(p) => (!world
            .asbackup_archives
            .iter()
            .any(|a| a.set == p.set && a.cluster.as_deref().is_none_or(|c| c == p.cluster)))
        .then(Resources::new),
        // Checks and waits are cheap to run again; asrestore leaves no mark to find.
        _ => None,
    }
}

pub(super) fn act(
    world: &mut World,
    cx: &Ctx<'_>,
    input: &StepInput<'_>,
) -> Result<Progress, StepError> {
    let step = input.step;
    match &step.params {
        Params::CheckClusterStable(p) => {
            match cluster_unstable(world, p.size, Some(&p.nodes)) {
                None => Progress::finished(),
                // R14: refuse to go on.
                Some(why) => Err(bad("ERROR:7", why)),
            }
        }
        Params::WaitClusterStable(p) => match cluster_unstable(world, p.size, Some(&p.nodes)) {
            None => Progress::done(Learned {
                cluster_key: world.nodes.iter().find_map(|n| n.cluster_key.clone()),
                ..Learned::default()
            }),
            Some(why) => {
                for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                    n.migrations_remaining = n.migrations_remaining.saturating_sub(1);
                }
                Progress::pending(why, None)
            }
        },
        // The simulated nodes take no client traffic: a quiesced node is drained at once.
        Params::WaitQuiesceDrained(_) => Progress::finished(),
        Params::SetRoster(p) => super::consistency::set_roster(world, p),
        Params::WaitPartitionsAvailable(p) => super::consistency::partitions_available(world, p),
        Params::WaitNodesStopped(p) => {
            match world
                .nodes
                .iter()
                .find(|n| n.reachable && p.nodes.contains(&n.name))
            {
                None => Progress::finished(),
                Some(n) => Progress::pending(format!("{} still answers", n.name), None),
            }
        }
        Params::Quiesce(_) | Params::Unquiesce(_) => {
            let name = node_name(input)?;
            let n = node_mut(world, &name);
            if !n.reachable {
                return Err(bad(
                    "Unreachable",
                    format!("node {name} does not answer on its info port"),
                ));
            }
            n.quiesced = step.kind() == StepKind::Quiesce;
            Progress::finished()
        }
        Params::StopNode(_) => {
            let name = node_name(input)?;
            let n = node_mut(world, &name);
            // The edition is the software's, not the process's: it comes back as it was.
            n.reachable = false;
            n.quiesced = false;
            n.build = None;
            recluster(world);
            super::consistency::refresh(world);
            Progress::finished()
        }
        Params::StartNode(_) => {
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
            let mac = token("mac", &instance.id, "");
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
            // As asd: `node-id` in the service context, else an id from the instance's MAC.
            let configured = n
                .config
                .as_deref()
                .and_then(|c| asdr_specs::config_node_ids(c).into_iter().next());
            n.node_id = Some(configured.unwrap_or_else(|| {
                format!(
                    "BB9{:012X}",
                    u64::from_str_radix(&mac[..10], 16).unwrap_or(0) + u64::from(drives)
                )
            }));
            if let Some(conf) = &n.config {
                let mut namespaces = namespaces_of(conf);
                // The roster is cluster metadata (SMD): the node keeps or receives it.
                for ns in &mut namespaces {
                    ns.roster = n
                        .namespaces
                        .iter()
                        .find(|o| o.name == ns.name)
                        .map(|o| o.roster.clone())
                        .unwrap_or_default();
                }
                if !namespaces.is_empty() {
                    n.namespaces = namespaces;
                }
            }
            let peers_roster: BTreeMap<String, Vec<String>> = world
                .nodes
                .iter()
                .filter(|o| o.reachable && o.name != name)
                .flat_map(|o| o.namespaces.iter())
                .filter(|ns| !ns.roster.is_empty())
                .map(|ns| (ns.name.clone(), ns.roster.clone()))
                .collect();
            for ns in &mut node_mut(world, &name).namespaces {
                if let Some(r) = peers_roster.get(&ns.name) {
                    ns.roster = r.clone();
                }
            }
            recluster(world);
            super::consistency::refresh(world);
            // A node that joins makes the cluster migrate partitions for a while.
            for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                n.migrations_remaining = u64::from(cx.sim.migration_polls);
            }
            Progress::finished()
        }
        Params::CopySmd(p) => {
            let (set, uri) = (p.set.clone(), p.to.clone());
            let name = node_name(input)?;
            let sha = token(&set, &name, "smd");
            world.smd_archives.push(SmdArchive {
                set,
                node: name,
                uri: uri.clone(),
                sha256: Some(sha),
            });
            Progress::done(Learned::uri(uri))
        }
        Params::WriteManifest(p) => {
            let mut shas = Vec::new();
            for a in &p.smd {
                let Some(archive) = world.smd_archives.iter().find(|x| x.uri == a.uri) else {
                    return Err(bad(
                        "NoSuchKey",
                        format!("SMD archive {} is not in the store", a.uri),
                    ));
                };
                shas.push(
                    archive
                        .sha256
                        .clone()
                        .unwrap_or_else(|| token(&archive.set, &archive.node, "smd")),
                );
            }
            let written = world.now.unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let file = asdr_planner::manifest::build(p, input, &shas, written)
                .map_err(|e| bad("ManifestIncomplete", e))?
                .seal();
            let sha256 = file.sha256.clone();
            if let Some(other) = world
                .set_manifests
                .iter()
                .filter(|m| m.uri == p.uri)
                .filter_map(|m| m.file.as_ref()?.manifest.cluster_id.clone())
                .find(|c| p.cluster_id.as_ref() != Some(c))
            {
                return Err(bad(
                    "R13",
                    format!(
                        "[R13] {} holds set {}'s manifest of cluster id {other}: a same-named cluster writes to this store; not overwritten",
                        p.uri, p.set
                    ),
                ));
            }
            world.set_manifests.retain(|m| m.uri != p.uri);
            world
                .set_manifests
                .push(asdr_planner::manifest::ObservedManifest {
                    uri: p.uri.clone(),
                    set: p.set.clone(),
                    file: Some(file),
                    problem: None,
                });
            Progress::done(Learned {
                uri: Some(p.uri.clone()),
                sha256: Some(sha256),
                ..Learned::default()
            })
        }
        Params::CopySmdArchive(p) => {
            let Some(source) = world.smd_archives.iter().find(|a| a.uri == p.from).cloned() else {
                return Err(bad(
                    "NoSuchKey",
                    format!("SMD archive {} is not in the store", p.from),
                ));
            };
            if let (Some(want), Some(have)) = (&p.sha256, &source.sha256)
                && want != have
            {
                return Err(bad(
                    "ChecksumMismatch",
                    format!("SMD archive {} has SHA-256 {have}, {want} expected", p.from),
                ));
            }
            world.smd_archives.retain(|a| a.uri != p.to);
            world.smd_archives.push(SmdArchive {
                uri: p.to.clone(),
                ..source.clone()
            });
            Progress::done(Learned {
                uri: Some(p.to.clone()),
                sha256: source.sha256,
                ..Learned::default()
            })
        }
        Params::CheckSmdArchive(p) => {
            smd_matches(world, &p.uri, p.sha256.as_deref())?;
            Progress::finished()
        }
        // The simulation's store keeps no retention (S3 Object Lock is tested against moto):
        // the files must be there, as S3 refuses retention on an object that is not.
        Params::RetainFiles(p) => {
            // asbackup runs: their retention recorded as the store would hold it.
            for a in world
                .asbackup_archives
                .iter_mut()
                .filter(|a| p.directories.contains(&a.uri))
            {
                a.retention = Some(p.retention.clone());
            }
            for uri in &p.uris {
                let known = world
                    .smd_archives
                    .iter()
                    .any(|a| a.uri == *uri || format!("{}.sha256", a.uri) == *uri)
                    || world.set_manifests.iter().any(|m| m.uri == *uri);
                if !known {
                    return Err(bad("NoSuchKey", format!("{uri}: not found")));
                }
            }
            Progress::finished()
        }
        Params::RestoreSmd(p) => {
            let set = p.set.clone();
            smd_matches(world, &p.from, p.sha256.as_deref())?;
            node_mut(world, &node_name(input)?).smd_restored_from = Some(set);
            Progress::finished()
        }
        Params::WriteConfig(p) => {
            let name = node_name(input)?;
            if live_instance(world, cx, &name, None).is_none() {
                return Err(bad(
                    "Unreachable",
                    format!("node {name} has no running instance to write aerospike.conf on"),
                ));
            }
            node_mut(world, &name).config = Some(p.content.clone());
            Progress::finished()
        }
        Params::Asbackup(p) => {
            world.asbackup_archives.push(AsbackupArchive {
                set: p.set.clone(),
                namespace: p.namespace.clone(),
                uri: p.to.clone(),
                incremental_of: p.incremental_of.clone(),
                cluster: (!p.cluster.is_empty()).then(|| p.cluster.clone()),
                cluster_id: p.cluster_id.clone(),
                after: p.after.clone(),
                missing_files: 0,
                finished: Some(world.now.unwrap_or_else(time::OffsetDateTime::now_utc)),
                compress: Some(p.tool.compress_name().into()),
                encrypt: Some(p.tool.encrypt_name().into()),
                retention: p.retention.clone(),
            });
            Progress::done(Learned::uri(p.to.clone()))
        }
        Params::Asrestore(_) => Progress::finished(),
        Params::DeleteBackup(p) => {
            world
                .asbackup_archives
                .retain(|a| a.set != p.set || a.cluster.as_deref().is_some_and(|c| c != p.cluster));
            Progress::finished()
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{} is not carried out here", other.kind()),
        )),
    }
}

/// The store directory of an archive URI (`…/<cluster>/<set>`).
fn parent(uri: &str) -> &str {
    uri.rsplit_once('/').map_or(uri, |(dir, _)| dir)
}

/// The archive is in the store and, where both are known, its checksum is the one expected: the
/// node provider reads and hashes the archive itself; the simulation compares what is recorded.
fn smd_matches(world: &World, uri: &str, want: Option<&str>) -> Result<(), StepError> {
    let Some(a) = world.smd_archives.iter().find(|a| a.uri == uri) else {
        return Err(bad(
            "NoSuchKey",
            format!("SMD archive {uri} is not in the store"),
        ));
    };
    match (want, a.sha256.as_deref()) {
        (Some(w), Some(h)) if w != h => Err(bad(
            "CorruptArchive",
            format!("SMD archive {uri} has SHA-256 {h}, {w} was recorded"),
        )),
        _ => Ok(()),
    }
}
