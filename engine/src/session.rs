//! One policy, where its world comes from, and the runtime: observed once, planned from, locked,
//! executed on with the providers the source calls for.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use asdr_executor::journal::Journal;
use asdr_executor::lock::{self, Holder};
use asdr_executor::{Event, Interrupt, Options, Report};
use asdr_planner::{Operation, Plan, World};
use asdr_providers::live::AwsSettings;
use asdr_providers::node_provider::{Composite, NodeAddress};
use asdr_providers::world_provider::{Hook, WorldFileProvider};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use asdr_providers::store::lock::S3Lock;

use crate::lock::{Lease, release_s3};
use crate::{ClusterLock, EngineError, HeldLock};

/// Where the world comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A world file; with `live_nodes`, its node records (and asbackup sets) refreshed from the
    /// nodes themselves, and node steps carried out on them.
    WorldFile { path: PathBuf, live_nodes: bool },
    /// AWS, the nodes and the stores, observed now.
    Aws,
}

/// Tuning and test knobs, read from the environment once when a session opens.
#[derive(Debug, Clone, Default)]
pub struct Knobs {
    /// Overrides every step's deadline (`ASDR_STEP_TIMEOUT_MS`).
    pub step_timeout: Option<Duration>,
    /// Between polls of a pending step on AWS (`ASDR_POLL_INTERVAL_MS`; default 5 s).
    pub poll_interval: Option<Duration>,
    /// A world file's simulation settings (`ASDR_SIMULATION`).
    pub simulation: Option<PathBuf>,
    /// Crash-safety tests: SIGKILL at the Nth step boundary or provider effect
    /// (`ASDR_TEST_KILL_AT`), and a file listing those points as they pass (`ASDR_TEST_POINTS`).
    pub kill_at: Option<usize>,
    pub points: Option<PathBuf>,
    /// Once interrupted, how long operations in flight may finish (`ASDR_GRACE_MS`; default
    /// 30 s).
    pub grace: Option<Duration>,
    /// How often the holder of an S3 lock renews its lease (`ASDR_LOCK_RENEW_MS`; default 60 s;
    /// a lock not renewed for five of these is stale).
    pub lock_renew: Option<Duration>,
}

impl Knobs {
    pub fn from_env() -> Knobs {
        let ms = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis)
        };
        Knobs {
            step_timeout: ms("ASDR_STEP_TIMEOUT_MS"),
            poll_interval: ms("ASDR_POLL_INTERVAL_MS"),
            simulation: std::env::var_os("ASDR_SIMULATION").map(PathBuf::from),
            kill_at: std::env::var("ASDR_TEST_KILL_AT")
                .ok()
                .and_then(|v| v.parse().ok()),
            points: std::env::var_os("ASDR_TEST_POINTS").map(PathBuf::from),
            grace: ms("ASDR_GRACE_MS"),
            lock_renew: ms("ASDR_LOCK_RENEW_MS"),
        }
    }
}

/// What an execution returns: the plan as run, its report, and where its journal is.
#[derive(Debug)]
pub struct Executed {
    pub plan: Arc<Plan>,
    pub report: Report,
    pub journal: PathBuf,
}

pub struct Session {
    pub policy: Policy,
    pub source: Source,
    pub aws: AwsSettings,
    pub knobs: Knobs,
    /// Say how many API calls observation and execution made (on stderr).
    pub verbose: bool,
    runtime: tokio::runtime::Runtime,
    world: RefCell<Option<World>>,
    observations: std::cell::Cell<usize>,
    /// The execution a signal interrupts, if one runs.
    current: Arc<std::sync::Mutex<Option<Interrupt>>>,
    /// The S3 lock this session holds, released by a signal that ends the process.
    held: HeldS3,
    /// Set while the S3 lock is being taken: its put may have been applied before `held` names
    /// it, so a signal then waits for the taking to end before it gives the lock back.
    taking: Arc<std::sync::atomic::AtomicBool>,
    /// Set by a signal that ends the process: work that has not begun does not begin.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    watching: std::cell::Cell<bool>,
}

type HeldS3 = Arc<std::sync::Mutex<Option<(S3Lock, Arc<Lease>)>>>;

/// The runtime every session (and a policy-less observation) runs on: two workers, as the
/// machines asdr runs on are small and its work is I/O.
pub fn runtime() -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EngineError::Other(format!("cannot start the runtime: {e}")))
}

/// Observes the world from `source`. A world file needs no policy unless its nodes are live.
pub fn observe(
    rt: &tokio::runtime::Runtime,
    policy: Option<&Policy>,
    source: &Source,
    aws: &AwsSettings,
    verbose: bool,
) -> Result<World, EngineError> {
    match source {
        Source::Aws => {
            let policy = policy
                .ok_or_else(|| EngineError::World("observing AWS needs the policy (-f)".into()))?;
            let (world, calls) = rt
                .block_on(asdr_providers::live::observe_aws(policy, aws))
                .map_err(EngineError::World)?;
            if verbose {
                eprintln!(
                    "observed cluster {} with {calls} EC2 API calls",
                    policy.cluster.name
                );
            }
            Ok(world)
        }
        Source::WorldFile { path, live_nodes } => {
            let world = asdr_providers::world_file::load(path)
                .map_err(|e| EngineError::World(e.to_string()))?;
            if !live_nodes {
                return Ok(world);
            }
            let policy = policy.ok_or_else(|| {
                EngineError::World(
                    "--live-nodes needs the policy (-f) to know the nodes' addresses".into(),
                )
            })?;
            rt.block_on(async {
                let mut world = asdr_providers::live::refresh_nodes(policy, world).await;
                let store = asdr_providers::live::smd_store(policy, aws).await;
                // The real nodes' provider writes set manifests to the real store: the ones
                // there are read from it (the world file records the snapshots and archives).
                let (files, _) = asdr_providers::live::all_set_files(policy, &store).await;
                world
                    .set_manifests
                    .retain(|m| !files.manifests.iter().any(|f| f.uri == m.uri));
                world.set_manifests.extend(files.manifests);
                // The real nodes write asbackup sets to the real store: what is there is read
                // from it.
                if policy.backup.method == asdr_specs::Method::Asbackup {
                    world.asbackup_archives =
                        asdr_providers::live::asbackup_archives(policy, &store)
                            .await
                            .map_err(EngineError::World)?;
                }
                Ok(world)
            })
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("cluster", &self.policy.cluster.name)
            .field("source", &self.source)
            .finish()
    }
}

impl Session {
    pub fn open(
        policy: Policy,
        source: Source,
        aws: AwsSettings,
        knobs: Knobs,
        verbose: bool,
    ) -> Result<Session, EngineError> {
        Ok(Session {
            policy,
            source,
            aws,
            knobs,
            verbose,
            runtime: runtime()?,
            world: RefCell::new(None),
            observations: std::cell::Cell::new(0),
            current: Arc::new(std::sync::Mutex::new(None)),
            held: Arc::new(std::sync::Mutex::new(None)),
            taking: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            watching: std::cell::Cell::new(false),
        })
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }

    pub fn is_world_file(&self) -> bool {
        matches!(self.source, Source::WorldFile { .. })
    }

    /// Whether node steps reach the Aerospike nodes themselves (AWS, or `--live-nodes`).
    pub fn live_nodes(&self) -> bool {
        match self.source {
            Source::WorldFile { live_nodes, .. } => live_nodes,
            Source::Aws => true,
        }
    }

    /// The world, observed on first use and kept: a session observes once unless it changed
    /// the world itself ([`Session::observe_again`]).
    pub fn world(&self) -> Result<World, EngineError> {
        if let Some(w) = self.world.borrow().as_ref() {
            return Ok(w.clone());
        }
        self.observe_again()
    }

    /// Observes anew (after an execution changed the world).
    pub fn observe_again(&self) -> Result<World, EngineError> {
        let mut w = observe(
            &self.runtime,
            Some(&self.policy),
            &self.source,
            &self.aws,
            self.verbose,
        )?;
        // What the cluster's drills made, as their journals here recorded it: their teardowns
        // delete only that (a world file may state more).
        w.recorded_snapshots
            .extend(asdr_executor::journal::snapshots_taken(
                &self.journal_dir(),
                &self.policy.cluster.name,
            ));
        for dir in [self.drill_journal_dir(), self.journal_dir()] {
            for (drill, made) in
                asdr_executor::journal::drill_resources(&dir, &self.policy.cluster.name)
            {
                w.drill_resources.entry(drill).or_default().extend(made);
            }
        }
        *self.world.borrow_mut() = Some(w.clone());
        self.observations.set(self.observations.get() + 1);
        Ok(w)
    }

    /// How many times this session observed the world.
    pub fn observations(&self) -> usize {
        self.observations.get()
    }

    /// The plan for `op` at the world's time (or now), and the world it was made from.
    pub fn plan(&self, op: &Operation) -> Result<(Plan, World), EngineError> {
        let world = self.world()?;
        let now = world.now.unwrap_or_else(OffsetDateTime::now_utc);
        let plan = asdr_planner::plan(&self.policy, &world, now, op)?;
        Ok((plan, world))
    }

    /// `.asdr` beside the policy file: journals, local locks, drill reports.
    pub fn state_dir(&self) -> PathBuf {
        Path::new(&self.policy.path)
            .parent()
            .unwrap_or(Path::new("."))
            .join(".asdr")
    }

    pub fn journal_dir(&self) -> PathBuf {
        self.state_dir().join("journal")
    }

    /// Where drills journal their applies (their restores and teardowns).
    pub fn drill_journal_dir(&self) -> PathBuf {
        self.state_dir().join("drills/journal")
    }

    /// The cluster's lock: the policy's `lock` (S3 for a team, or a file), else a file beside
    /// the policy.
    pub fn lock(&self) -> Result<ClusterLock, EngineError> {
        match self.policy.lock.as_deref() {
            Some(uri) if asdr_specs::StoreUri::is_s3(uri) => self
                .runtime
                .block_on(asdr_providers::live::s3_lock(&self.policy, &self.aws, uri))
                .map(|mut l| {
                    if let Some(every) = self.knobs.lock_renew {
                        l.renew_every = every;
                    }
                    ClusterLock::S3(l, self.runtime.handle().clone())
                })
                .map_err(|e| EngineError::Lock(e.to_string())),
            Some(uri) => Ok(ClusterLock::File(PathBuf::from(
                asdr_specs::StoreUri::for_tool(uri),
            ))),
            None => Ok(ClusterLock::File(
                self.state_dir()
                    .join("locks")
                    .join(format!("{}.lock", self.policy.cluster.name)),
            )),
        }
    }

    /// Runs `f` holding the cluster's lock, in the name of `what` (a plan, a drill); the lock is
    /// released whatever `f` returns.
    pub fn locked<T, E: From<EngineError>>(
        &self,
        what: &str,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let holder = Holder {
            pid: std::process::id(),
            host: lock::hostname(),
            plan_id: what.to_string(),
            since: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
        };
        // Signals are watched before the lock is taken: from the moment it is held a signal
        // never leaves it behind (planning, the prompt, execution).
        self.watch_signals();
        // A lock lost while the apply runs stops the execution (if one runs; `execute` checks
        // when it begins).
        let current = self.current.clone();
        let lock = self.lock()?;
        self.taking.store(true, Ordering::SeqCst);
        let taken = lock.acquire(&holder, move || {
            if let Some(i) = current.lock().expect("not poisoned").as_ref() {
                i.request();
            }
        });
        if let Ok(held) = &taken {
            *self.held.lock().expect("not poisoned") = held.s3_lease();
        }
        self.taking.store(false, Ordering::SeqCst);
        if self.stopping.load(Ordering::SeqCst) {
            // A signal came while the lock was being taken: its handler gives the lock back
            // and ends the process. Nothing runs under the lock meanwhile.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        let held: HeldLock = taken?;
        let result = f();
        *self.held.lock().expect("not poisoned") = None;
        held.release()?;
        result
    }

    /// Executes `plan`, journalled in `journal_dir` (resuming what it finished), with the
    /// providers the source calls for: the world file (its simulated nodes, or the nodes
    /// themselves with live nodes), or EC2 and the nodes. `stand_ins` replaces the policy's node
    /// addresses (a drill's nodes).
    pub fn execute(
        &self,
        plan: Plan,
        journal_dir: &Path,
        parallelism: usize,
        stand_ins: Option<BTreeMap<String, NodeAddress>>,
        on_event: &(dyn Fn(&Event) + Send + Sync),
    ) -> Result<Executed, EngineError> {
        let rt = &self.runtime;
        let journal_error =
            |e: asdr_executor::journal::JournalError| EngineError::Journal(e.to_string());
        // A plan that builds a new cluster (a restore into another region) names its nodes'
        // addresses itself.
        let stand_ins = stand_ins.or_else(|| plan_stand_ins(&plan));
        // A zone-loss restore starts nodes at the addresses it moves them to.
        let moved = plan_moved(&plan, &self.policy);
        let (mut journal, resumed) = Journal::open(journal_dir, &plan).map_err(journal_error)?;
        let plan = Arc::new(plan);
        let hook = self.hook();
        let interrupt = Interrupt::default();
        let mut opts = Options {
            parallelism,
            max_nodes_at_once: self.policy.backup.max_nodes_at_once.max(1) as usize,
            poll_interval: self.knobs.poll_interval.unwrap_or(Duration::from_secs(5)),
            max_attempts: 5,
            step_timeout: self.knobs.step_timeout,
            hook: hook.clone(),
            interrupt: interrupt.clone(),
            grace: self.knobs.grace.unwrap_or(Duration::from_secs(30)),
        };
        self.watch_signals();
        *self.current.lock().expect("not poisoned") = Some(interrupt.clone());
        // The lock lost before the execution began: nothing starts.
        if let Some((_, lease)) = self.held.lock().expect("not poisoned").as_ref()
            && let Some(why) = lease.lost()
        {
            eprintln!("asdr: this apply no longer holds the lock ({why}): no step starts");
            interrupt.request();
        }
        let nodes_for = |world: &World| {
            let provider = rt.block_on(async {
                match &stand_ins {
                    Some(map) => {
                        asdr_providers::live::node_provider_at(
                            &self.policy,
                            world,
                            &self.aws,
                            map.clone(),
                        )
                        .await
                    }
                    None => {
                        asdr_providers::live::node_provider(&self.policy, world, &self.aws).await
                    }
                }
            });
            provider.moved(moved.clone())
        };
        let report = match &self.source {
            Source::WorldFile { path, live_nodes } => {
                let file = WorldFileProvider::open(
                    path,
                    self.knobs.simulation.as_deref(),
                    &self.policy.cluster.name,
                    hook.clone(),
                )
                .map_err(|e| EngineError::World(e.to_string()))?;
                opts.poll_interval =
                    Duration::from_millis(rt.block_on(file.simulation()).poll_interval_ms);
                if *live_nodes {
                    // Node steps to the nodes themselves, cloud steps to the world file.
                    let nodes = nodes_for(&rt.block_on(file.world()));
                    run_with(
                        rt,
                        &plan,
                        Composite { cloud: file, nodes },
                        &mut journal,
                        &resumed.done,
                        &opts,
                        on_event,
                    )
                } else {
                    run_with(
                        rt,
                        &plan,
                        file,
                        &mut journal,
                        &resumed.done,
                        &opts,
                        on_event,
                    )
                }
            }
            Source::Aws => {
                let world = self.world()?;
                let (cloud, calls) =
                    rt.block_on(asdr_providers::live::ec2_provider(&self.policy, &self.aws));
                let nodes = nodes_for(&world);
                let report = run_with(
                    rt,
                    &plan,
                    Composite { cloud, nodes },
                    &mut journal,
                    &resumed.done,
                    &opts,
                    on_event,
                );
                if self.verbose {
                    let by_api: Vec<String> = calls
                        .by_api()
                        .iter()
                        .map(|(api, n)| format!("{api} {n}"))
                        .collect();
                    eprintln!("made {} EC2 API calls ({})", calls.get(), by_api.join(", "));
                }
                report
            }
        };
        *self.current.lock().expect("not poisoned") = None;
        let report = report.map_err(journal_error)?;
        // What the plan changed is observed again when asked for.
        *self.world.borrow_mut() = None;
        Ok(Executed {
            plan,
            report,
            journal: journal.path().to_path_buf(),
        })
    }

    /// SIGINT and SIGTERM (Ctrl-C; Kubernetes, systemd and CI runners stop jobs with SIGTERM):
    /// the first interrupts the execution that runs, which stops starting steps, lets those in
    /// flight finish within the grace, runs the cleanups and returns; a second, or one while
    /// nothing executes (observing, planning, the prompt), ends the process at once, giving
    /// the S3 lock back first (the kernel releases the local lock; the journal is written line
    /// by line).
    fn watch_signals(&self) {
        if self.watching.replace(true) {
            return;
        }
        let current = self.current.clone();
        let held = self.held.clone();
        let taking = self.taking.clone();
        let stopping = self.stopping.clone();
        // Registered here, before this returns (not in the task, which may first run later): a
        // signal from then on is never the default one, which would end the process holding
        // the lock.
        use tokio::signal::unix::{SignalKind, signal};
        let _runtime = self.runtime.enter();
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        self.runtime.spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                let running = current.lock().expect("not poisoned").clone();
                match running {
                    Some(i) if !i.requested() => i.request(),
                    _ => {
                        stopping.store(true, Ordering::SeqCst);
                        // A lock being taken is waited for (a few requests, each with its
                        // timeout): its put may already stand in S3 before `held` names it.
                        // Another signal meanwhile ends the wait, as a second one always does.
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                        while taking.load(Ordering::SeqCst)
                            && tokio::time::Instant::now() < deadline
                        {
                            tokio::select! {
                                () = tokio::time::sleep(Duration::from_millis(10)) => {}
                                _ = int.recv() => break,
                                _ = term.recv() => break,
                            }
                        }
                        let lock = held.lock().expect("not poisoned").take();
                        if let Some((s3, lease)) = lock
                            && let Err(e) =
                                release_s3(&s3, &lease, Duration::from_secs(5)).await
                        {
                            eprintln!("asdr: the lock was not given back: {e}");
                        }
                        eprintln!(
                            "asdr: stopped at once; the journal holds what ran: `asdr apply` again resumes or plans afresh"
                        );
                        std::process::exit(130);
                    }
                }
            }
        });
    }

    /// Test support: a SIGKILL at the Nth step boundary or provider effect, and a file listing
    /// those points as they pass. Crash-safety tests interrupt an apply exactly where
    /// idempotency matters.
    fn hook(&self) -> Hook {
        let (kill_at, points) = (self.knobs.kill_at, self.knobs.points.clone());
        if kill_at.is_none() && points.is_none() {
            return Arc::new(|_| {});
        }
        let counter = Arc::new(AtomicUsize::new(0));
        let file = points.map(|p| {
            std::sync::Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .expect("points file opens"),
            )
        });
        Arc::new(move |label: &str| {
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(f) = &file {
                let _ = writeln!(f.lock().expect("not poisoned"), "{n} {label}");
            }
            if kill_at == Some(n) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &std::process::id().to_string()])
                    .status();
                std::thread::sleep(Duration::from_secs(60));
            }
        })
    }
}

fn run_with<P: asdr_planner::ports::Provider>(
    rt: &tokio::runtime::Runtime,
    plan: &Arc<Plan>,
    provider: P,
    journal: &mut Journal,
    done: &BTreeMap<String, asdr_planner::ports::Resources>,
    opts: &Options,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<Report, asdr_executor::journal::JournalError> {
    rt.block_on(asdr_executor::execute(
        plan.clone(),
        Arc::new(provider),
        journal,
        done.clone(),
        opts,
        on_event,
    ))
}

/// The policy's nodes a plan starts at another address than the policy's: the nodes a zone-loss
/// restore moves.
fn plan_moved(plan: &Plan, policy: &Policy) -> BTreeMap<String, NodeAddress> {
    plan.steps
        .iter()
        .filter(|s| s.kind() == asdr_planner::StepKind::StartNode)
        .filter_map(|s| {
            let node = policy.node(s.node.as_deref()?)?;
            let info: std::net::SocketAddr = s.params.node_service()?.address.parse().ok()?;
            (info.ip() != std::net::IpAddr::V4(node.private_ip)).then(|| {
                (
                    node.name.clone(),
                    NodeAddress {
                        info,
                        host: info.ip().to_string(),
                    },
                )
            })
        })
        .collect()
}

/// The stand-in nodes (`<node>@<label>`) a plan starts, at the addresses its start_node steps
/// name; none when it starts no stand-in.
fn plan_stand_ins(plan: &Plan) -> Option<BTreeMap<String, NodeAddress>> {
    let map: BTreeMap<String, NodeAddress> = plan
        .steps
        .iter()
        .filter(|s| s.kind() == asdr_planner::StepKind::StartNode)
        .filter_map(|s| {
            let node = s.node.as_ref().filter(|n| n.contains('@'))?;
            let address = &s.params.node_service()?.address;
            let info: std::net::SocketAddr = address.parse().ok()?;
            Some((
                node.clone(),
                NodeAddress {
                    info,
                    host: info.ip().to_string(),
                },
            ))
        })
        .collect();
    (!map.is_empty()).then_some(map)
}
