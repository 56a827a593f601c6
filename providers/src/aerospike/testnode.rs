//! An in-test Aerospike cluster that speaks the info protocol on real TCP sockets (one listener per
//! node on its own loopback address), keeps the state asdr's steps change — quiesce flags that take
//! effect on `recluster:`, a cluster key that changes with each recluster, migrations that drain
//! over `cluster-stable` polls — and logs every command it receives, so tests can assert the order.
//!
//! A node is down while the file `<control>/<node>.down` exists, so the policy's real service
//! commands (run by a real transport) can stop and start it: `touch …/a1.down`, `rm -f …/a1.down`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod examples;
pub use examples::{example_namespaces, example_namespaces_at};

use super::info::{HEADER_LEN, decode_header, encode_header};

#[derive(Debug, Clone)]
pub struct TestNamespace {
    pub name: String,
    pub replication_factor: u32,
    /// (device, shadow)
    pub devices: Vec<(String, Option<String>)>,
}

#[derive(Debug, Default)]
struct NodeState {
    /// Where the node's SMD files are: `sindex-list` and `udf-list` answer from them.
    smd_dir: Option<PathBuf>,
    node_id: String,
    pending_quiesce: bool,
    effective_quiesced: bool,
    was_down: bool,
    /// Client writes the node counts (`client_write_success`): they grow while it is not
    /// quiesced, and for half a second after (clients still on the old partition map), or for
    /// good when its clients never leave it.
    writes: u64,
    writes_until: Option<std::time::Instant>,
    clients_stay: bool,
    /// How the node came back each time it rejoined: `cold` (read its devices) or `warm`.
    starts: Vec<&'static str>,
}

#[derive(Debug)]
struct State {
    enterprise: bool,
    namespaces: Vec<TestNamespace>,
    nodes: BTreeMap<String, NodeState>,
    key: u64,
    /// `cluster-stable` polls left before migrations have drained.
    migrations: u32,
    migration_polls: u32,
    log: Vec<(String, String)>,
    control: PathBuf,
    /// Namespace → objects each node reports.
    objects: BTreeMap<String, u64>,
    /// Strong-consistency namespaces (Enterprise emulation), by name.
    sc: BTreeMap<String, Sc>,
}

/// One strong-consistency namespace as the cluster holds it.
#[derive(Debug, Default)]
struct Sc {
    roster: Vec<String>,
    pending: Vec<String>,
    dead: u64,
    /// Nodes that accepted `revive:` since the last recluster.
    revived_by: std::collections::BTreeSet<String>,
}

impl State {
    fn up(&self, name: &str) -> bool {
        !self.control.join(format!("{name}.down")).exists()
    }

    /// Ids of the nodes that answer, sorted.
    fn up_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, _)| self.up(n))
            .map(|(_, s)| s.node_id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// An SC namespace's partitions are unavailable while replication-factor roster members are
    /// missing (a simplification of Aerospike's rule, enough for the roster steps).
    fn unavailable(&self, ns: &str) -> u64 {
        let Some(sc) = self.sc.get(ns) else { return 0 };
        let up = self.up_ids();
        let missing = sc.roster.iter().filter(|r| !up.contains(r)).count();
        let rf = self
            .namespaces
            .iter()
            .find(|n| n.name == ns)
            .map_or(2, |n| n.replication_factor as usize);
        if missing >= rf.max(1) { 4096 } else { 0 }
    }

    fn up_count(&self) -> usize {
        self.nodes.keys().filter(|n| self.up(n)).count()
    }

    /// Membership changes and reclusters change the key and start migrations.
    fn rebalance(&mut self) {
        self.key = self
            .key
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.migrations = self.migration_polls;
    }

    fn answer(&mut self, node: &str, command: &str) -> String {
        // A node that was down and is up again has rejoined: the cluster rebalances.
        let up_now = self.up(node);
        let st = self.nodes.get_mut(node).expect("known node");
        if st.was_down && up_now {
            st.was_down = false;
            // Enterprise emulation: a restart is warm (the index reattached from shared memory,
            // the devices not read) unless the start command left `<node>.cold`, as
            // `asd-coldstart` would; Community always cold-starts.
            let marker = self.control.join(format!("{node}.cold"));
            let cold = !self.enterprise || std::fs::remove_file(&marker).is_ok();
            st.starts.push(if cold { "cold" } else { "warm" });
            // As asd at start: `node-id` in the service context of the config it starts with
            // (`<root>/nodes/<node>/aerospike.conf`, beside the control folder). Without one
            // the node keeps the id it had: the emulator has no MAC that could change.
            let conf = self
                .control
                .parent()
                .map(|root| root.join(format!("nodes/{node}/aerospike.conf")));
            if let Some(id) = conf
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|c| asdr_specs::config_node_ids(&c).into_iter().next())
            {
                st.node_id = id;
            }
            self.rebalance();
        }
        let (cmd, args) = command
            .split_once(':')
            .map_or((command, ""), |(c, a)| (c, a));
        if command.starts_with("namespace/") {
            let st = self.nodes.get_mut(node).expect("known node");
            if !st.effective_quiesced {
                st.writes += 5;
            } else if st.clients_stay
                || st
                    .writes_until
                    .is_some_and(|t| std::time::Instant::now() < t)
            {
                st.writes += 1;
            }
        }
        let st = &self.nodes[node];
        match (cmd, command) {
            (_, "node") => st.node_id.clone(),
            (_, "edition") => if self.enterprise {
                "Aerospike Enterprise Edition"
            } else {
                "Aerospike Community Edition"
            }
            .into(),
            (_, "build") => "8.1.1.2".into(),
            (_, "namespaces") => self
                .namespaces
                .iter()
                .map(|n| n.name.clone())
                .collect::<Vec<_>>()
                .join(";"),
            (_, "statistics") => format!(
                "cluster_size={};cluster_key={:012X};cluster_integrity=true;migrate_partitions_remaining={}",
                self.up_count(),
                self.key & 0xFFFF_FFFF_FFFF,
                self.migrations
            ),
            ("cluster-stable", _) => {
                let kv: BTreeMap<&str, &str> =
                    args.split(';').filter_map(|p| p.split_once('=')).collect();
                let size: usize = kv.get("size").and_then(|s| s.parse().ok()).unwrap_or(0);
                match kv.get("ignore-migrations") {
                    Some(&"true") | Some(&"false") | None => {}
                    Some(_) => return "ERROR:4:ignore-migrations must be true or false".into(),
                }
                if size != self.up_count() {
                    "ERROR:7:cluster not specified size".into()
                } else if self.migrations > 0 && kv.get("ignore-migrations") != Some(&"true") {
                    self.migrations -= 1;
                    "ERROR:7:unstable cluster".into()
                } else {
                    format!("{:012X}", self.key & 0xFFFF_FFFF_FFFF)
                }
            }
            ("quiesce", "quiesce:") | ("quiesce-undo", "quiesce-undo:") => {
                if !self.enterprise {
                    return "ERROR:25:enterprise only".into();
                }
                self.nodes.get_mut(node).expect("known").pending_quiesce = cmd == "quiesce";
                "ok".into()
            }
            ("recluster", "recluster:") => {
                let principal = self.nodes.keys().find(|n| self.up(n)).cloned();
                if principal.as_deref() != Some(node) {
                    return "ignored-by-non-principal".into();
                }
                for n in self.nodes.values_mut() {
                    if n.pending_quiesce && !n.effective_quiesced {
                        n.writes_until =
                            Some(std::time::Instant::now() + std::time::Duration::from_millis(500));
                    }
                    n.effective_quiesced = n.pending_quiesce;
                }
                let up = self.up_ids();
                for sc in self.sc.values_mut() {
                    if !sc.pending.is_empty() {
                        sc.roster = std::mem::take(&mut sc.pending);
                    }
                    // Revived only once every node that answers accepted `revive:`.
                    if sc.dead > 0 && sc.revived_by.len() >= up.len() {
                        sc.dead = 0;
                    }
                    sc.revived_by.clear();
                }
                self.rebalance();
                "ok".into()
            }
            ("roster", _) => {
                let Some(ns) = args.strip_prefix("namespace=") else {
                    return "ERROR:4:bad namespace".into();
                };
                let observed = self.up_ids().join(",");
                match self.sc.get(ns) {
                    None => "ERROR:4:namespace is not strong-consistency".into(),
                    Some(sc) => {
                        let list = |v: &[String]| {
                            if v.is_empty() {
                                "null".to_string()
                            } else {
                                v.join(",")
                            }
                        };
                        format!(
                            "roster={}:pending_roster={}:observed_nodes={observed}",
                            list(&sc.roster),
                            list(if sc.pending.is_empty() {
                                &sc.roster
                            } else {
                                &sc.pending
                            })
                        )
                    }
                }
            }
            ("roster-set", _) => {
                let kv: BTreeMap<&str, &str> =
                    args.split(';').filter_map(|p| p.split_once('=')).collect();
                match kv.get("namespace").and_then(|ns| self.sc.get_mut(*ns)) {
                    None => "ERROR:4:namespace is not strong-consistency".into(),
                    Some(sc) => {
                        sc.pending = kv
                            .get("nodes")
                            .map(|n| n.split(',').map(str::to_string).collect())
                            .unwrap_or_default();
                        "ok".into()
                    }
                }
            }
            ("revive", _) => {
                match args
                    .strip_prefix("namespace=")
                    .and_then(|ns| self.sc.get_mut(ns))
                {
                    None => "ERROR:4:namespace is not strong-consistency".into(),
                    Some(sc) => {
                        sc.revived_by.insert(node.to_string());
                        "ok".into()
                    }
                }
            }
            ("get-config", _) => {
                let Some(ns) = args
                    .strip_prefix("context=namespace;id=")
                    .and_then(|id| self.namespaces.iter().find(|n| n.name == id))
                else {
                    return "ERROR:4:unknown namespace".into();
                };
                let mut out = format!(
                    "replication-factor={};strong-consistency={};storage-engine=device",
                    ns.replication_factor,
                    self.sc.contains_key(&ns.name)
                );
                // `{node}` in a path: each node's own device tree (a lab's).
                for (i, (dev, shadow)) in ns.devices.iter().enumerate() {
                    let dev = dev.replace("{node}", node);
                    out.push_str(&format!(";storage-engine.device[{i}]={dev}"));
                    if let Some(s) = shadow {
                        let s = s.replace("{node}", node);
                        out.push_str(&format!(";storage-engine.device[{i}].shadow={s}"));
                    }
                }
                out
            }
            ("sindex-list", _) | (_, "udf-list") => {
                // SMD files are JSON arrays: [[cluster_key, tid], item…]; an item with a null value
                // is a tombstone.
                let file = if cmd == "sindex-list" {
                    "sindex.smd"
                } else {
                    "UDF.smd"
                };
                let items: Vec<String> = st
                    .smd_dir
                    .as_ref()
                    .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
                    .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
                    .map(|v| {
                        v.into_iter()
                            .skip(1)
                            .filter(|i| !i["value"].is_null())
                            .filter_map(|i| i["key"].as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                if cmd == "sindex-list" {
                    items
                        .iter()
                        .map(|k| format!("ns=x:indexname={k}:state=RW"))
                        .collect::<Vec<_>>()
                        .join(";")
                } else {
                    items
                        .iter()
                        .map(|k| format!("filename={k},type=LUA;"))
                        .collect::<String>()
                }
            }
            _ if command.starts_with("namespace/") => {
                let name = &command["namespace/".len()..];
                if !self.namespaces.iter().any(|n| n.name == name) {
                    return "type=unknown".into();
                }
                let quiesced = self.nodes.values().filter(|n| n.effective_quiesced).count();
                let objects = self.objects.get(name).copied().unwrap_or(0);
                let dead = self.sc.get(name).map_or(0, |sc| sc.dead);
                let unavailable = self.unavailable(name);
                format!(
                    "objects={objects};master_objects={};client_write_success={};pending_quiesce={};effective_is_quiesced={};nodes_quiesced={quiesced};dead_partitions={dead};unavailable_partitions={unavailable};migrate_tx_partitions_remaining={m};migrate_rx_partitions_remaining={m}",
                    objects / self.nodes.len().max(1) as u64,
                    st.writes,
                    st.pending_quiesce,
                    st.effective_quiesced,
                    m = self.migrations
                )
            }
            _ => "ERROR:4:unrecognized command".into(),
        }
    }
}

/// A running test cluster; dropping it stops every listener.
pub struct TestCluster {
    state: Arc<Mutex<State>>,
    pub addrs: BTreeMap<String, SocketAddr>,
    tasks: BTreeMap<String, JoinHandle<()>>,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("addrs", &self.addrs)
            .finish()
    }
}

impl TestCluster {
    /// Starts one node per `(name, ip)` on `ip` and one shared port (the policy's info_port).
    pub async fn start(
        nodes: &[(&str, &str)],
        namespaces: Vec<TestNamespace>,
        enterprise: bool,
        control: &Path,
    ) -> std::io::Result<TestCluster> {
        Self::start_at(nodes, namespaces, enterprise, control, None).await
    }

    /// Like `start`, on `port` when given (a second cluster on the policy's info port).
    pub async fn start_at(
        nodes: &[(&str, &str)],
        namespaces: Vec<TestNamespace>,
        enterprise: bool,
        control: &Path,
        port: Option<u16>,
    ) -> std::io::Result<TestCluster> {
        std::fs::create_dir_all(control)?;
        // Find a port free on every address.
        'ports: for _ in 0..50 {
            let probe = TcpListener::bind((nodes[0].1, port.unwrap_or(0))).await?;
            let port = probe.local_addr()?.port();
            let mut listeners = vec![probe];
            for (_, ip) in &nodes[1..] {
                match TcpListener::bind((*ip, port)).await {
                    Ok(l) => listeners.push(l),
                    Err(_) => continue 'ports,
                }
            }
            let state = Arc::new(Mutex::new(State {
                enterprise,
                namespaces: namespaces.clone(),
                nodes: nodes
                    .iter()
                    .enumerate()
                    .map(|(i, (n, _))| {
                        (
                            (*n).to_string(),
                            NodeState {
                                node_id: format!("BB9{:012X}", 0xA000 + i),
                                ..NodeState::default()
                            },
                        )
                    })
                    .collect(),
                key: 0x3E1E_BD35_19A4,
                migrations: 0,
                migration_polls: 2,
                log: Vec::new(),
                control: control.to_path_buf(),
                objects: BTreeMap::new(),
                sc: BTreeMap::new(),
            }));
            let mut addrs = BTreeMap::new();
            let mut tasks = BTreeMap::new();
            for ((name, _), listener) in nodes.iter().zip(listeners) {
                addrs.insert((*name).to_string(), listener.local_addr()?);
                tasks.insert(
                    (*name).to_string(),
                    tokio::spawn(serve(listener, (*name).to_string(), state.clone())),
                );
            }
            return Ok(TestCluster {
                state,
                addrs,
                tasks,
            });
        }
        Err(std::io::Error::other("no port free on every test address"))
    }

    /// `node` answers at `ip` from now on (rebuilt in another zone), on the same port; nothing
    /// answers at its old address any more.
    pub async fn move_to(&mut self, node: &str, ip: &str) -> std::io::Result<()> {
        let listener = TcpListener::bind((ip, self.port())).await?;
        if let Some(old) = self.tasks.remove(node) {
            old.abort();
        }
        self.addrs.insert(node.to_string(), listener.local_addr()?);
        self.tasks.insert(
            node.to_string(),
            tokio::spawn(serve(listener, node.to_string(), self.state.clone())),
        );
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.addrs.values().next().map_or(0, SocketAddr::port)
    }

    /// Every (node, command) received so far, in order.
    pub fn log(&self) -> Vec<(String, String)> {
        self.state.lock().expect("not poisoned").log.clone()
    }

    pub fn clear_log(&self) {
        self.state.lock().expect("not poisoned").log.clear();
    }

    /// Time passes: the migrations in progress finish (a real cluster drains them on its own;
    /// the in-test one otherwise only as `cluster-stable` is polled).
    pub fn settle(&self) {
        self.state.lock().expect("not poisoned").migrations = 0;
    }

    pub fn set_migration_polls(&self, polls: u32) {
        self.state.lock().expect("not poisoned").migration_polls = polls;
    }

    /// Every node reports `objects` for `namespace` (a cluster total of that many masters).
    pub fn set_objects(&self, namespace: &str, objects: u64) {
        self.state
            .lock()
            .expect("not poisoned")
            .objects
            .insert(namespace.into(), objects);
    }

    /// Where `node` keeps its SMD files (what `sindex-list` and `udf-list` report).
    pub fn set_smd_dir(&self, node: &str, dir: &Path) {
        if let Some(n) = self.state.lock().expect("not poisoned").nodes.get_mut(node) {
            n.smd_dir = Some(dir.to_path_buf());
        }
    }

    pub fn quiesced(&self, node: &str) -> bool {
        let st = self.state.lock().expect("not poisoned");
        st.nodes[node].effective_quiesced || st.nodes[node].pending_quiesce
    }

    /// How `node` came back each time it rejoined (`cold` or `warm`), oldest first.
    pub fn starts(&self, node: &str) -> Vec<&'static str> {
        self.state.lock().expect("not poisoned").nodes[node]
            .starts
            .clone()
    }

    /// Enterprise emulation: `namespace` runs strong consistency with `roster` (node ids).
    pub fn set_strong_consistency(&self, namespace: &str, roster: &[String]) {
        self.state.lock().expect("not poisoned").sc.insert(
            namespace.to_string(),
            Sc {
                roster: roster.to_vec(),
                ..Sc::default()
            },
        );
    }

    /// Dead partitions in an SC namespace, until every node revives them and a recluster.
    pub fn set_dead_partitions(&self, namespace: &str, dead: u64) {
        if let Some(sc) = self
            .state
            .lock()
            .expect("not poisoned")
            .sc
            .get_mut(namespace)
        {
            sc.dead = dead;
        }
    }

    /// The active roster of an SC namespace.
    pub fn roster(&self, namespace: &str) -> Vec<String> {
        self.state.lock().expect("not poisoned").sc[namespace]
            .roster
            .clone()
    }

    /// The id `node` answers `node` with.
    pub fn node_id(&self, node: &str) -> String {
        self.state.lock().expect("not poisoned").nodes[node]
            .node_id
            .clone()
    }

    /// Gives `node` another id, as a new instance's MAC would.
    pub fn set_node_id(&self, node: &str, id: &str) {
        self.state
            .lock()
            .expect("not poisoned")
            .nodes
            .get_mut(node)
            .expect("known node")
            .node_id = id.to_string();
    }

    /// The client writes `node` has counted so far.
    pub fn writes(&self, node: &str) -> u64 {
        self.state.lock().expect("not poisoned").nodes[node].writes
    }

    /// Clients that never leave `node`: it goes on taking writes even once quiesced.
    pub fn keep_writing(&self, node: &str) {
        self.state
            .lock()
            .expect("not poisoned")
            .nodes
            .get_mut(node)
            .expect("known node")
            .clients_stay = true;
    }

    pub fn is_up(&self, node: &str) -> bool {
        self.state.lock().expect("not poisoned").up(node)
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for t in self.tasks.values() {
            t.abort();
        }
    }
}

/// A node serves while it is up. A stopped node holds no socket, as a stopped `asd` does: its
/// listener is closed while it is down (asdr takes a node as stopped only once nothing listens
/// at its address) and bound again when it is up.
async fn serve(listener: TcpListener, name: String, state: Arc<Mutex<State>>) {
    let Ok(addr) = listener.local_addr() else {
        return;
    };
    let mut listener = Some(listener);
    let tick = std::time::Duration::from_millis(10);
    loop {
        let up = {
            let mut st = state.lock().expect("not poisoned");
            let up = st.up(&name);
            if !up && let Some(n) = st.nodes.get_mut(&name) {
                n.was_down = true;
                n.pending_quiesce = false;
                n.effective_quiesced = false;
            }
            up
        };
        if !up {
            listener = None;
            tokio::time::sleep(tick).await;
            continue;
        }
        if listener.is_none() {
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(_) => {
                    tokio::time::sleep(tick).await;
                    continue;
                }
            }
        }
        let Some(l) = listener.as_ref() else {
            continue;
        };
        tokio::select! {
            accepted = l.accept() => match accepted {
                Ok((stream, _)) => {
                    let (name, state) = (name.clone(), state.clone());
                    tokio::spawn(async move {
                        let _ = connection(stream, &name, &state).await;
                    });
                }
                Err(_) => return,
            },
            () = tokio::time::sleep(tick) => {}
        }
    }
}

async fn connection(
    mut stream: TcpStream,
    name: &str,
    state: &Mutex<State>,
) -> std::io::Result<()> {
    loop {
        let mut header = [0u8; HEADER_LEN];
        if stream.read_exact(&mut header).await.is_err() {
            return Ok(());
        }
        {
            let mut st = state.lock().expect("not poisoned");
            if !st.up(name) {
                // A stopped node: the connection ends without a reply.
                if let Some(n) = st.nodes.get_mut(name) {
                    n.was_down = true;
                    n.pending_quiesce = false;
                    n.effective_quiesced = false;
                }
                return Ok(());
            }
        }
        let len = decode_header(header).map_err(std::io::Error::other)?;
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await?;
        let text = String::from_utf8_lossy(&body).to_string();
        let mut reply = String::new();
        {
            let mut st = state.lock().expect("not poisoned");
            for command in text.split_terminator('\n') {
                st.log.push((name.to_string(), command.to_string()));
                let value = st.answer(name, command);
                reply.push_str(&format!("{command}\t{value}\n"));
            }
        }
        stream.write_all(&encode_header(reply.len() as u64)).await?;
        stream.write_all(reply.as_bytes()).await?;
    }
}
