//! The executor against in-memory providers: ordering, cleanups, resumption, timeouts.

use super::*;
use asdr_planner::params::{Learned, Params};
use std::sync::Mutex;

/// Executes a plan of `steps` with `provider`, journalled in a fresh folder, nothing done before.
async fn run_fresh<P: Provider + Send + Sync + 'static>(
    steps: Vec<Step>,
    provider: Arc<P>,
    opts: &Options,
) -> Report {
    let plan = crate::tests::plan_of(steps);
    let dir = tempfile::tempdir().unwrap();
    let (mut journal, _) = Journal::open(dir.path(), &plan).unwrap();
    execute(
        Arc::new(plan),
        provider,
        &mut journal,
        BTreeMap::new(),
        opts,
        &|_| {},
    )
    .await
    .unwrap()
}

/// Each step: its first act makes "the change" (counted while it lasts) and reports pending;
/// its second act finishes.
#[derive(Default)]
struct Settling {
    acted: Mutex<std::collections::HashSet<String>>,
    changing: Mutex<(usize, usize)>,
    started_before_first_done: Mutex<Option<usize>>,
}

impl Provider for Settling {
    async fn observe(&self, _: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        Ok(None)
    }

    async fn act(&self, input: StepInput<'_>) -> Result<StepProgress, StepError> {
        let first = self.acted.lock().unwrap().insert(input.step.id.clone());
        if first {
            {
                let mut c = self.changing.lock().unwrap();
                c.0 += 1;
                c.1 = c.1.max(c.0);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.changing.lock().unwrap().0 -= 1;
            return StepProgress::pending("settling", None);
        }
        let started = self.acted.lock().unwrap().len();
        self.started_before_first_done
            .lock()
            .unwrap()
            .get_or_insert(started);
        StepProgress::done(Learned::default())
    }
}

/// Parallelism bounds the changes being made at once; a step that made its change and only
/// watches it settle frees its slot, so the next starts without waiting for the poll.
#[tokio::test]
async fn a_step_watching_its_change_settle_frees_its_parallelism_slot() {
    let steps: Vec<Step> = (0..4)
        .map(|i| Step {
            region: None,
            id: format!("snapshot:n{i}"),
            params: Params::Snapshot(asdr_planner::params::Snapshot {
                description: String::new(),
                device: "/dev/sdf".into(),
                set: "bs-20261121T090000Z".into(),
                tags: Default::default(),
                volume_id: format!("vol-{i}"),
            }),
            node: Some(format!("n{i}")),
            depends_on: vec![],
            cleanup: false,
        })
        .collect();
    let provider = Arc::new(Settling::default());
    let opts = Options {
        parallelism: 1,
        poll_interval: Duration::from_millis(300),
        ..Options::default()
    };
    let report = run_fresh(steps, provider.clone(), &opts).await;
    assert!(report.succeeded(), "{:?}", report.outcomes);
    assert_eq!(
        provider.changing.lock().unwrap().1,
        1,
        "never two changes at once at parallelism 1"
    );
    assert_eq!(
        *provider.started_before_first_done.lock().unwrap(),
        Some(4),
        "every step made its change while the first was still settling"
    );
}

/// Quiesce reports pending until the node says it is quiesced; unquiesce is done at once.
/// Records the nodes out of service after each call.
#[derive(Default)]
struct Quiescing {
    acted: Mutex<std::collections::HashSet<String>>,
    out: Mutex<std::collections::BTreeSet<String>>,
    most_out: Mutex<usize>,
}

impl Provider for Quiescing {
    async fn observe(&self, _: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        Ok(None)
    }

    async fn act(&self, input: StepInput<'_>) -> Result<StepProgress, StepError> {
        let node = input.step.node.clone().unwrap();
        let first = self.acted.lock().unwrap().insert(input.step.id.clone());
        match input.step.kind() {
            StepKind::Quiesce => {
                let mut out = self.out.lock().unwrap();
                out.insert(node);
                let mut most = self.most_out.lock().unwrap();
                *most = (*most).max(out.len());
                if first {
                    return StepProgress::pending("waiting for effective_is_quiesced", None);
                }
            }
            _ => {
                self.out.lock().unwrap().remove(&node);
            }
        }
        StepProgress::done(Learned::default())
    }
}

/// R8 holds when a quiesce frees its parallelism slot while it waits for the node: the
/// rolling limit counts nodes out of service, not slots, so the second node is not quiesced
/// until the first is back.
#[tokio::test]
async fn r8_a_quiesce_waiting_on_its_node_frees_its_slot_but_not_the_rolling_limit() {
    let service = |node: &str| asdr_planner::params::NodeService {
        address: format!("127.0.0.1:3000/{node}"),
        command: None,
        rolling: true,
        start: None,
        node_id: None,
        devices: Vec::new(),
        instance_store: Vec::new(),
    };
    let mut steps = Vec::new();
    for n in ["a", "b", "c"] {
        steps.push(Step {
            region: None,
            id: format!("quiesce:{n}"),
            params: Params::Quiesce(service(n)),
            node: Some(n.into()),
            depends_on: vec![],
            cleanup: false,
        });
        steps.push(Step {
            region: None,
            id: format!("unquiesce:{n}"),
            params: Params::Unquiesce(service(n)),
            node: Some(n.into()),
            depends_on: vec![format!("quiesce:{n}")],
            cleanup: true,
        });
    }
    let provider = Arc::new(Quiescing::default());
    let opts = Options {
        parallelism: 10,
        max_nodes_at_once: 1,
        poll_interval: Duration::from_millis(20),
        ..Options::default()
    };
    let report = run_fresh(steps, provider.clone(), &opts).await;
    assert!(report.succeeded(), "{:?}", report.outcomes);
    assert_eq!(
        *provider.most_out.lock().unwrap(),
        1,
        "one node out at a time"
    );
    assert!(provider.out.lock().unwrap().is_empty(), "every node back");
}

/// Panics in the snapshot step (a reply no one foresaw, say); records what else ran.
#[derive(Default)]
struct PanicsInSnapshot {
    ran: Mutex<Vec<String>>,
}

impl Provider for PanicsInSnapshot {
    async fn observe(&self, _: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        Ok(None)
    }

    async fn act(&self, input: StepInput<'_>) -> Result<StepProgress, StepError> {
        if input.step.kind() == StepKind::Snapshot {
            let replies: Vec<&str> = Vec::new();
            // The shape of the bug the info client once had: indexing a reply that is not there.
            let _ = replies[0];
        }
        self.ran.lock().unwrap().push(input.step.id.clone());
        StepProgress::done(Learned::default())
    }
}

/// A step that panics fails like any other: the run goes on to its cleanups (the node is
/// unquiesced), the panic's message is the step's error, and the report is a failure.
#[tokio::test]
async fn a_panicking_step_fails_and_the_unquiesce_after_it_still_runs() {
    let service = asdr_planner::params::NodeService {
        address: "127.0.0.1:3000/a".into(),
        command: None,
        rolling: true,
        start: None,
        node_id: None,
        devices: Vec::new(),
        instance_store: Vec::new(),
    };
    let step = |id: &str, params: Params, after: &[&str], cleanup: bool| Step {
        region: None,
        id: id.into(),
        params,
        node: Some("a".into()),
        depends_on: after.iter().map(|s| s.to_string()).collect(),
        cleanup,
    };
    let steps = vec![
        step("quiesce:a", Params::Quiesce(service.clone()), &[], false),
        step(
            "snapshot:a",
            Params::Snapshot(asdr_planner::params::Snapshot {
                description: String::new(),
                device: "/dev/sdf".into(),
                set: "bs-20261121T090000Z".into(),
                tags: Default::default(),
                volume_id: "vol-a".into(),
            }),
            &["quiesce:a"],
            false,
        ),
        step(
            "unquiesce:a",
            Params::Unquiesce(service),
            &["quiesce:a", "snapshot:a"],
            true,
        ),
    ];
    let provider = Arc::new(PanicsInSnapshot::default());
    let report = run_fresh(steps, provider.clone(), &Options::default()).await;
    assert!(!report.succeeded());
    match &report.outcomes["snapshot:a"] {
        Outcome::Failed { error, .. } => assert!(
            error.contains("internal error") && error.contains("index out of bounds"),
            "{error}"
        ),
        other => panic!("snapshot:a: {other:?}"),
    }
    assert_eq!(
        *provider.ran.lock().unwrap(),
        vec!["quiesce:a".to_string(), "unquiesce:a".to_string()],
        "the unquiesce ran after the panic"
    );
}

#[test]
fn the_wait_of_a_time_based_copy_allows_what_the_copy_was_promised_and_an_hour() {
    let wait = |within: Option<u32>| Step {
        region: Some("us-west-2".into()),
        id: "wait_snapshot:us-west-2:a1:/dev/sdf:bs-1".into(),
        params: Params::WaitSnapshot(asdr_planner::params::WaitSnapshot {
            snapshot_id: None,
            set: Some("bs-1".into()),
            node: Some("a1".into()),
            device: Some("/dev/sdf".into()),
            volume_id: None,
            cluster_id: None,
            progress: None,
            within_minutes: within,
        }),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
    };
    let opts = Options::default();
    // 48 hours promised: 49 hours allowed, past the 12 a snapshot's wait has.
    assert_eq!(
        opts.timeout_for(&wait(Some(2880))),
        Duration::from_secs(49 * 3600)
    );
    // A short promise never shortens the wait, nor does a best-effort copy change it.
    assert_eq!(
        opts.timeout_for(&wait(Some(15))),
        Duration::from_secs(12 * 3600)
    );
    assert_eq!(
        opts.timeout_for(&wait(None)),
        Duration::from_secs(12 * 3600)
    );
    // An explicit step timeout still wins.
    let fixed = Options {
        step_timeout: Some(Duration::from_secs(5)),
        ..Options::default()
    };
    assert_eq!(fixed.timeout_for(&wait(Some(2880))), Duration::from_secs(5));
}

/// Records the order steps first act in; each is done at once.
#[derive(Default)]
struct Order(Mutex<Vec<String>>);

impl Provider for Order {
    async fn observe(&self, _: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        Ok(None)
    }

    async fn act(&self, input: StepInput<'_>) -> Result<StepProgress, StepError> {
        self.0.lock().unwrap().push(input.step.id.clone());
        StepProgress::done(Learned::default())
    }
}

/// A restore's launches go before its volume creations, whatever the plan's order: an instance
/// takes minutes to come up and its node waits on it, so a wave of creations taking the slots
/// first would put every launch at the end of the critical path.
#[tokio::test]
async fn launches_take_the_parallelism_slots_before_other_ready_steps() {
    let step = |id: String, params: Params| Step {
        region: None,
        id,
        params,
        node: Some("n0".into()),
        depends_on: vec![],
        cleanup: false,
    };
    let mut steps: Vec<Step> = (0..6)
        .map(|i| {
            step(
                format!("create_volume:n{i}:/dev/sdf"),
                Params::CreateVolume(asdr_planner::params::CreateVolume {
                    availability_zone: "us-east-1a".into(),
                    snapshot_id: Some(format!("snap-{i}")),
                    size_gib: 10,
                    volume_type: "gp3".into(),
                    iops: None,
                    throughput: None,
                    initialization_rate: None,
                    encrypted: false,
                    kms_key_id: None,
                    client_token: format!("t{i}"),
                    tags: Default::default(),
                }),
            )
        })
        .collect();
    for i in 0..2 {
        steps.push(step(
            format!("provision_instance:n{i}"),
            Params::ProvisionInstance(asdr_planner::params::ProvisionInstance {
                private_ip: format!("10.0.0.{i}"),
                availability_zone: "us-east-1a".into(),
                subnet_id: Some("subnet-1".into()),
                instance_type: "i4i.2xlarge".into(),
                ami: "ami-1".into(),
                security_groups: vec![],
                iam_instance_profile: None,
                key_name: None,
                instance_store_volumes: 0,
                client_token: format!("p{i}"),
                tags: Default::default(),
                stopped_first: None,
            }),
        ));
    }
    let provider = Arc::new(Order::default());
    let opts = Options {
        parallelism: 2,
        ..Options::default()
    };
    let report = run_fresh(steps, provider.clone(), &opts).await;
    assert!(report.succeeded(), "{:?}", report.outcomes);
    let order = provider.0.lock().unwrap().clone();
    assert_eq!(order.len(), 8);
    assert!(
        order[..2]
            .iter()
            .all(|s| s.starts_with("provision_instance:")),
        "the launches went first: {order:?}"
    );
}
