//! The node steps for real: the info protocol to the node's service port, the transport for
//! service commands and files, the store for SMD archives.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use asdr_planner::StepKind;
use asdr_planner::params::{self, Learned, Params, StartKind};
use asdr_planner::ports::{Progress, Provider, Resources, StepError, StepInput};
use asdr_specs::{Policy, RunOn};

use crate::aerospike::info::InfoClient;
use crate::aerospike::node::{cluster_stable, quiesce_state, recluster};
use crate::exec::{Target, Transport, TransportError, quote, read_file, run_ok, write_file};
use crate::store::{Store, StoreError, sha256_hex};

mod devices;
mod drained;
mod roster;
mod smd;
mod stopped;
mod tar_check;

#[cfg(test)]
mod archive_fuzz;

/// Step kinds this provider carries out; the rest go to the cloud provider.
pub fn is_node_step(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::CheckClusterStable
            | StepKind::WaitClusterStable
            | StepKind::WaitNodesStopped
            | StepKind::WaitQuiesceDrained
            | StepKind::SetRoster
            | StepKind::WaitPartitionsAvailable
            | StepKind::Quiesce
            | StepKind::Unquiesce
            | StepKind::StopNode
            | StepKind::StartNode
            | StepKind::CopySmd
            | StepKind::CopySmdArchive
            | StepKind::WriteManifest
            | StepKind::CheckSmdArchive
            | StepKind::RetainFiles
            | StepKind::RestoreSmd
            | StepKind::WriteConfig
            | StepKind::Asbackup
            | StepKind::Asrestore
            | StepKind::DeleteBackup
    )
}

#[derive(Debug, Clone)]
pub struct NodeAddress {
    pub info: SocketAddr,
    pub host: String,
}

pub struct NodeProvider<T, S> {
    nodes: BTreeMap<String, NodeAddress>,
    transport: T,
    store: S,
    pub info_timeout: Duration,
    pub retry_after: Duration,
    /// `--s3-endpoint-override` for asbackup/asrestore (the `--endpoint-url` asdr was given).
    pub s3_endpoint: Option<String>,
    /// The transport for `asbackup.run_on: local`: the machine running asdr.
    pub local: crate::exec::local::Local,
    /// A quiesce drain under way, by step id: when it was first polled, the write count last
    /// read and since when it has not moved.
    drains: std::sync::Mutex<BTreeMap<String, drained::Drain>>,
    /// The cold starts (R17) this process ran, by step id: only those are evidence that a node
    /// answering after a swap read its restored volumes.
    cold_started: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// Starts waiting for a volume's device link, by step id: since when.
    device_waits: std::sync::Mutex<BTreeMap<String, std::time::Instant>>,
    device_grace: Duration,
}

impl<T, S> std::fmt::Debug for NodeProvider<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeProvider")
            .field("nodes", &self.nodes)
            .finish()
    }
}

fn permanent(e: impl std::fmt::Display, code: &str) -> StepError {
    StepError::permanent(code, e.to_string())
}

fn transport_error(e: TransportError) -> StepError {
    match e {
        // A node that cannot be reached may come back (a reboot, a network blip): try again.
        TransportError::Unreachable { .. } | TransportError::Timeout { .. } => {
            StepError::transient("Unreachable", e.to_string(), Duration::from_secs(2))
        }
        TransportError::Failed { .. } => permanent(e, "CommandFailed"),
    }
}

impl<T: Transport, S: Store> NodeProvider<T, S> {
    /// The objects a retain_files step keeps: its URIs, and every object in its asbackup run
    /// directories, listed now.
    async fn retain_targets(&self, p: &params::RetainFiles) -> Result<Vec<String>, StepError> {
        let mut uris = p.uris.clone();
        for d in &p.directories {
            let listed = self
                .store
                .list(&format!("{}/", d.trim_end_matches('/')))
                .await
                .map_err(store_error)?;
            uris.extend(listed);
        }
        Ok(uris)
    }
}

fn store_error(e: StoreError) -> StepError {
    match e {
        StoreError::NotFound { .. } | StoreError::Unsupported { .. } => permanent(e, "NoSuchKey"),
        StoreError::Io { .. } => {
            StepError::transient("StoreIo", e.to_string(), Duration::from_secs(2))
        }
    }
}

impl<T: Transport, S: Store> NodeProvider<T, S> {
    /// The policy's nodes at `<private_ip>:<info_port>`.
    pub fn for_policy(policy: &Policy, transport: T, store: S) -> Self {
        let nodes = policy
            .cluster
            .nodes
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    NodeAddress {
                        info: SocketAddr::new(IpAddr::V4(n.private_ip), policy.cluster.info_port),
                        host: n.private_ip.to_string(),
                    },
                )
            })
            .collect();
        Self::with_nodes(nodes, transport, store)
    }

    /// Nodes at explicit addresses (a drill's stand-ins).
    pub fn with_nodes(nodes: BTreeMap<String, NodeAddress>, transport: T, store: S) -> Self {
        NodeProvider {
            nodes,
            transport,
            store,
            info_timeout: Duration::from_secs(5),
            retry_after: Duration::from_millis(500),
            s3_endpoint: None,
            local: crate::exec::local::Local::default(),
            cold_started: Default::default(),
            drains: Default::default(),
            device_waits: Default::default(),
            device_grace: devices::device_grace(),
        }
    }

    /// The same transport and store, for nodes at other addresses.
    pub fn at(self, nodes: BTreeMap<String, NodeAddress>) -> Self {
        NodeProvider { nodes, ..self }
    }

    /// The same nodes, some of them at new addresses (moved to another zone by a restore).
    pub fn moved(mut self, nodes: BTreeMap<String, NodeAddress>) -> Self {
        self.nodes.extend(nodes);
        self
    }

    fn client(&self, name: &str) -> Result<InfoClient, StepError> {
        let a = self.nodes.get(name).ok_or_else(|| {
            StepError::permanent("UnknownNode", format!("node {name} is not in the policy"))
        })?;
        let mut c = InfoClient::new(name, a.info);
        c.connect_timeout = self.info_timeout;
        c.read_timeout = self.info_timeout;
        Ok(c)
    }

    fn target(&self, name: &str) -> Result<Target, StepError> {
        let a = self.nodes.get(name).ok_or_else(|| {
            StepError::permanent("UnknownNode", format!("node {name} is not in the policy"))
        })?;
        Ok(Target {
            node: name.into(),
            host: a.host.clone(),
        })
    }

    fn node(input: &StepInput<'_>) -> Result<String, StepError> {
        input.step.node.clone().ok_or_else(|| {
            StepError::permanent(
                "MissingParameter",
                format!("step {} names no node", input.step.id),
            )
        })
    }

    async fn answers(&self, name: &str) -> bool {
        match self.client(name) {
            Ok(c) => c.get("node").await.is_ok(),
            Err(_) => false,
        }
    }

    /// R18: a started node that answers with another id than the config asdr wrote runs some
    /// other config (an image that starts Aerospike at boot, a config put back by hand).
    async fn check_started_as(&self, name: &str, p: &Params) -> Result<(), StepError> {
        let Params::StartNode(s) = p else {
            return Ok(());
        };
        let Some(want) = &s.node_id else {
            return Ok(());
        };
        let Ok(c) = self.client(name) else {
            return Ok(());
        };
        let Ok(got) = c.get("node").await else {
            return Ok(());
        };
        if asdr_specs::canonical_node_id(&got).as_deref() == Some(want.as_str()) {
            return Ok(());
        }
        Err(StepError::permanent(
            "NotAsConfigured",
            format!(
                "[R18] {name} answers as node {got}, but the aerospike.conf asdr wrote sets node-id {want}: it runs a config asdr did not write (an image that starts Aerospike at boot?). Stop Aerospike on {name} and apply again"
            ),
        ))
    }

    /// Clients of every policy node that answers now.
    async fn up_clients(&self) -> Vec<InfoClient> {
        let mut out = Vec::new();
        for name in self.nodes.keys() {
            if self.answers(name).await {
                out.push(self.client(name).expect("known node"));
            }
        }
        out
    }

    /// The nodes a step names; none named: every node of the policy.
    fn named(&self, names: &[String]) -> Vec<String> {
        if names.is_empty() {
            self.nodes.keys().cloned().collect()
        } else {
            names.to_vec()
        }
    }

    async fn quiesce(&self, name: &str) -> Result<Progress, StepError> {
        let c = self.client(name)?;
        let info = |e: crate::aerospike::info::InfoError| {
            StepError::transient("Unreachable", e.to_string(), self.retry_after)
        };
        let (pending_q, effective, count) = quiesce_state(&c).await.map_err(info)?;
        if effective && count >= 1 {
            return Progress::finished();
        }
        if !pending_q {
            if let Err(e) = c.get("quiesce:").await {
                if e.reply_code() == Some(25) {
                    // R9: never a raw protocol error.
                    return Err(StepError::permanent(
                        "R9",
                        format!(
                            "[R9] node {name} ({}) answered ERROR:25:enterprise only: quiesce needs Enterprise Edition; use `consistency: multi-volume` or `stop-node`",
                            c.addr
                        ),
                    ));
                }
                return Err(info(e));
            }
            let (now_pending, _, _) = quiesce_state(&c).await.map_err(info)?;
            if !now_pending {
                return Err(StepError::permanent(
                    "QuiesceNotPending",
                    format!(
                        "node {name} ({}) accepted quiesce: but pending_quiesce stayed false",
                        c.addr
                    ),
                ));
            }
        }
        recluster(&self.up_clients().await).await.map_err(info)?;
        let (_, effective, count) = quiesce_state(&c).await.map_err(info)?;
        if effective && count >= 1 {
            Progress::finished()
        } else {
            Progress::pending(format!("{name}: waiting for effective_is_quiesced"), None)
        }
    }

    async fn unquiesce(&self, name: &str) -> Result<Progress, StepError> {
        let c = self.client(name)?;
        let info = |e: crate::aerospike::info::InfoError| {
            StepError::transient("Unreachable", e.to_string(), self.retry_after)
        };
        let (pending_q, effective, _) = quiesce_state(&c).await.map_err(info)?;
        if !pending_q && !effective {
            return Progress::finished();
        }
        if pending_q {
            c.get("quiesce-undo:").await.map_err(info)?;
        }
        recluster(&self.up_clients().await).await.map_err(info)?;
        let (_, effective, _) = quiesce_state(&c).await.map_err(info)?;
        if effective {
            Progress::pending(format!("{name}: still quiesced"), None)
        } else {
            Progress::finished()
        }
    }

    async fn service(&self, input: &StepInput<'_>, start: bool) -> Result<Progress, StepError> {
        let name = Self::node(input)?;
        let target = self.target(&name)?;
        let cold = start
            && matches!(&input.step.params, Params::StartNode(p) if p.start == Some(StartKind::Cold));
        let ran_cold = || {
            self.cold_started
                .lock()
                .expect("not poisoned")
                .contains(&input.step.id)
        };
        // Never started on a device that is not the volume attached for it, whoever started it.
        let running = start && self.answers(&name).await;
        if start && let Some(why) = self.settled_devices(input, &name, running).await? {
            return Progress::pending(why, None);
        }
        if start && self.answers(&name).await {
            if cold && !ran_cold() {
                // Something else started the node after its volumes were swapped (an operator,
                // or this step before a kill): on Enterprise that start may have been warm, which
                // ignores the restored data. Only a cold start asdr ran itself counts.
                return Err(StepError::permanent(
                    "NotColdStarted",
                    format!(
                        "[R17] {name} already answers, but its volumes were swapped and asdr did not start it cold: a warm start serves the old index over the restored data. Stop Aerospike on {name} and apply again (asdr then starts it cold)"
                    ),
                ));
            }
            self.check_started_as(&name, &input.step.params).await?;
            return Progress::finished();
        }
        if cold {
            self.cold_started
                .lock()
                .expect("not poisoned")
                .insert(input.step.id.clone());
        }
        let command = input
            .step
            .params
            .node_service()
            .and_then(|p| p.command.as_deref())
            .ok_or_else(|| {
                StepError::permanent(
                    "MissingParameter",
                    format!("step {} has no command", input.step.id),
                )
            })?;
        run_ok(&self.transport, &target, command, None)
            .await
            .map_err(transport_error)?;
        if start {
            if self.answers(&name).await {
                self.check_started_as(&name, &input.step.params).await?;
                Progress::finished()
            } else {
                Progress::pending(format!("{name}: starting"), None)
            }
        } else {
            match self.stopped(&name).await {
                Ok(()) => Progress::finished(),
                Err(why) => Progress::pending(format!("{name}: stopping: {why}"), None),
            }
        }
    }

    /// `asbackup` / `asrestore` for one namespace: on the node through the transport, or, with
    /// `run_on: local`, on the machine running asdr (they are clients of the cluster).
    async fn tool(&self, input: &StepInput<'_>) -> Result<Progress, StepError> {
        let name = Self::node(input)?;
        let info = self.nodes.get(&name).map(|a| a.info).ok_or_else(|| {
            StepError::permanent("UnknownNode", format!("node {name} is not in the policy"))
        })?;
        let endpoint = self.s3_endpoint.as_deref();
        let (tool, backup, restore) = match &input.step.params {
            Params::Asbackup(p) => (&p.tool, Some(p), None),
            Params::Asrestore(p) => (&p.tool, None, Some(p)),
            other => {
                return Err(StepError::permanent(
                    "NotATool",
                    format!("{} runs no tool", other.kind()),
                ));
            }
        };
        if tool.run_on == RunOn::Local {
            let here = Target {
                node: "local".into(),
                host: "localhost".into(),
            };
            match (backup, restore) {
                (Some(p), _) => {
                    crate::asbackup::backup(&self.local, &here, &self.store, info, endpoint, p)
                        .await
                }
                (_, Some(p)) => {
                    crate::asbackup::restore(&self.local, &here, info, endpoint, p).await
                }
                _ => unreachable!("one of the two"),
            }
        } else {
            let target = self.target(&name)?;
            match (backup, restore) {
                (Some(p), _) => {
                    crate::asbackup::backup(
                        &self.transport,
                        &target,
                        &self.store,
                        info,
                        endpoint,
                        p,
                    )
                    .await
                }
                (_, Some(p)) => {
                    crate::asbackup::restore(&self.transport, &target, info, endpoint, p).await
                }
                _ => unreachable!("one of the two"),
            }
        }
    }
}

impl<T: Transport, S: Store> NodeProvider<T, S> {
    /// The instances earlier steps of this plan launched (`provision_instance:<node>`), told to
    /// the transport: SSM reaches a replacement, a drill's or a restore's new node there.
    fn note_launched(&self, input: &StepInput<'_>) {
        for (step, learned) in input.learned {
            if let (Some(node), Some(instance)) = (
                step.strip_prefix("provision_instance:"),
                learned.instance_id.as_deref(),
            ) {
                self.transport
                    .launched(node, instance, input.step.region.as_deref());
            }
        }
    }
}

impl<T: Transport, S: Store> Provider for NodeProvider<T, S> {
    async fn observe(&self, input: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        self.note_launched(&input);
        let some = || Some(Resources::new());
        Ok(match &input.step.params {
            Params::Asbackup(p) => crate::asbackup::adoptable(&self.store, p).await?,
            Params::DeleteBackup(p) => crate::asbackup::deleted(&self.store, p)
                .await?
                .then(Resources::new),
            Params::Quiesce(_) => match quiesce_state(&self.client(&Self::node(&input)?)?).await {
                Ok((_, true, n)) if n >= 1 => some(),
                _ => None,
            },
            Params::Unquiesce(_) => {
                match quiesce_state(&self.client(&Self::node(&input)?)?).await {
                    Ok((false, false, _)) => some(),
                    _ => None,
                }
            }
            // Never adopted: an `asd` still starting (a cold start reads its devices for hours
            // before it listens) neither answers nor listens, yet runs. The stop command is
            // always run (stopping a stopped service does nothing), then the node must be seen
            // stopped.
            Params::StopNode(_) => None,
            // A node answering is no evidence that it started cold (R17): that start is the
            // step's own to make.
            Params::StartNode(p) if p.start == Some(StartKind::Cold) => None,
            // Its devices are checked by the step itself, answering or not.
            Params::StartNode(p) if !p.devices.is_empty() => None,
            Params::StartNode(_) => {
                let name = Self::node(&input)?;
                if self.answers(&name).await {
                    self.check_started_as(&name, &input.step.params).await?;
                    Some(Resources::new())
                } else {
                    None
                }
            }
            Params::WriteConfig(p) => {
                let name = Self::node(&input)?;
                let current = read_file(&self.transport, &self.target(&name)?, &p.path)
                    .await
                    .ok();
                (current.as_deref() == Some(p.content.as_bytes())).then(Resources::new)
            }
            // Adopted only when the archive is the one this plan knows of: its SHA-256 observed
            // in advance or learned by the step that archived the source. An archive found at
            // the copy's place and matching only the checksum beside it may have been planted.
            Params::CopySmdArchive(p) => match p
                .sha256
                .clone()
                .or_else(|| smd::learned_sha256(&input, &p.from))
            {
                Some(want) => match self.smd_archive_at(&p.to, Some(&want)).await {
                    Some(l)
                        if self
                            .retained_all(
                                &[p.to.clone(), format!("{}.sha256", p.to)],
                                p.retention.as_ref(),
                            )
                            .await =>
                    {
                        Some(l)
                    }
                    _ => None,
                },
                None => None,
            },
            Params::WriteManifest(p) => self.manifest_written(&input, p).await,
            Params::RetainFiles(p) => {
                let targets = self.retain_targets(p).await?;
                self.retained_all(&targets, Some(&p.retention))
                    .await
                    .then(Learned::default)
            }
            // Never adopted: an archive already at a new set's place was not made by this plan
            // (a checksum beside it proves nothing, the store can write both). Archiving again
            // is cheap and harmless.
            Params::CopySmd(_) => None,
            _ => None,
        })
    }

    async fn act(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        self.note_launched(&input);
        match &input.step.params {
            Params::CheckClusterStable(p) => {
                let size = p.size;
                let clients: Vec<InfoClient> = self
                    .named(&p.nodes)
                    .iter()
                    .map(|n| self.client(n))
                    .collect::<Result<_, _>>()?;
                match cluster_stable(&clients, size).await {
                    Ok(key) => Progress::done(stable_at(key)),
                    // R14: refuse to go on.
                    Err(why) => Err(StepError::permanent(
                        "R14",
                        format!("[R14] the cluster is not stable at {size} nodes: {why}"),
                    )),
                }
            }
            Params::WaitClusterStable(p) => {
                let clients: Vec<InfoClient> = self
                    .nodes
                    .keys()
                    .map(|n| self.client(n))
                    .collect::<Result<_, _>>()?;
                match cluster_stable(&clients, p.size).await {
                    Ok(key) => Progress::done(stable_at(key)),
                    Err(why) => Progress::pending(why, None),
                }
            }
            Params::WaitNodesStopped(p) => {
                for n in self.named(&p.nodes) {
                    if let Err(why) = self.stopped(&n).await {
                        return Progress::pending(why, None);
                    }
                }
                Progress::finished()
            }
            Params::Quiesce(_) => self.quiesce(&Self::node(&input)?).await,
            Params::WaitQuiesceDrained(p) => self.drained(&input, p).await,
            Params::SetRoster(p) => self.set_roster(p).await,
            Params::WaitPartitionsAvailable(p) => self.partitions_available(p).await,
            Params::Unquiesce(_) => self.unquiesce(&Self::node(&input)?).await,
            Params::StopNode(_) => self.service(&input, false).await,
            Params::StartNode(_) => self.service(&input, true).await,
            Params::WriteConfig(p) => {
                let name = Self::node(&input)?;
                write_file(
                    &self.transport,
                    &self.target(&name)?,
                    &p.path,
                    p.content.clone().into_bytes(),
                    Some(&p.keep_previous),
                )
                .await
                .map_err(transport_error)?;
                Progress::finished()
            }
            Params::CopySmd(p) => self.copy_smd(&input, p).await,
            Params::CopySmdArchive(p) => self.copy_smd_archive(p).await,
            Params::WriteManifest(p) => self.write_manifest(&input, p).await,
            Params::CheckSmdArchive(p) => self.check_smd_archive(p).await,
            Params::RetainFiles(p) => {
                let targets = self.retain_targets(p).await?;
                self.retain(&targets, Some(&p.retention)).await?;
                Progress::finished()
            }
            Params::RestoreSmd(p) => self.restore_smd(&input, p).await,
            Params::Asbackup(_) | Params::Asrestore(_) => self.tool(&input).await,
            Params::DeleteBackup(p) => crate::asbackup::delete_set(&self.store, p).await,
            other => Err(StepError::permanent(
                "NotANodeStep",
                format!("{} is not carried out on nodes", other.kind()),
            )),
        }
    }
}

/// Node steps to the nodes, the rest to the cloud.
#[derive(Debug)]
pub struct Composite<C, N> {
    pub cloud: C,
    pub nodes: N,
}

impl<C: Provider, N: Provider> Provider for Composite<C, N> {
    async fn observe(&self, input: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        if is_node_step(input.step.kind()) {
            self.nodes.observe(input).await
        } else {
            self.cloud.observe(input).await
        }
    }

    async fn act(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        if is_node_step(input.step.kind()) {
            self.nodes.act(input).await
        } else {
            self.cloud.act(input).await
        }
    }

    fn expect(&self, plan_id: &str, steps: &[asdr_planner::plan::Step]) {
        self.cloud.expect(plan_id, steps);
        self.nodes.expect(plan_id, steps);
    }
}

/// What copy_smd learned: where the archive is, its checksum, the node it came from.
fn archived(to: &str, sha256: String, node: String) -> Result<Progress, StepError> {
    Progress::done(Learned {
        uri: Some(to.to_string()),
        sha256: Some(sha256),
        node: Some(node),
        ..Learned::default()
    })
}

fn stable_at(cluster_key: String) -> Learned {
    Learned {
        cluster_key: Some(cluster_key),
        ..Learned::default()
    }
}

/// Shell that makes `to` hold exactly the archive read from `source` (`-` for stdin): unpacked
/// beside it first, then swapped in, the old directory kept as `prev`. Merging into the live
/// directory would keep truncates and dropped indexes issued after the backup (R2). Safe to run
/// again after an interruption: a half-unpacked directory is thrown away and unpacked anew.
///
/// The archive is listed first: a member
/// that is not a plain file or directory (a link, a device, a fifo) or whose name is absolute or
/// climbs out (`..`) refuses it (exit 66) before anything is unpacked, and it is unpacked
/// without the owners and modes it carries (`--no-same-owner --no-same-permissions`: as root, tar
/// would keep owners and modes), its setuid, setgid and world-write bits cleared, then given the
/// owner and mode of the directory it replaces.
pub(crate) fn replace_smd_dir(to: &str, prev: &str, source: &str) -> String {
    let to = to.trim_end_matches('/');
    let (save, file, cleanup) = if source == "-" {
        ("a=$(mktemp); cat > \"$a\"; ", "\"$a\"", "rm -f \"$a\"; ")
    } else {
        ("", source, "")
    };
    format!(
        "{save}if tar -tvf {file} | cut -c1 | grep -qv '^[-d]$' || tar -tf {file} | grep -qE '(^/|(^|/)[.][.](/|$))'; then {cleanup}echo 'the SMD archive holds a member that is not a plain file or directory under a relative name: refused, nothing unpacked' >&2; exit 66; fi; n={new}; rm -rf -- \"$n\"; mkdir -p -- \"$n\"; if ! tar -C \"$n\" --no-same-owner --no-same-permissions -xf {file}; then rm -rf -- \"$n\"; {cleanup}echo 'the SMD archive could not be unpacked whole: nothing replaced' >&2; exit 67; fi; chmod -R u-s,g-s,o-w -- \"$n\"; {cleanup}if [ -e {to} ]; then chown -R --reference={to} \"$n\" 2>/dev/null || true; chmod --reference={to} \"$n\"; fi; rm -rf -- {prev}; if [ -e {to} ]; then mv -- {to} {prev}; fi; mv -- \"$n\" {to}",
        new = quote(&format!("{to}.asdr-new")),
        prev = quote(prev),
        to = quote(to),
    )
}
