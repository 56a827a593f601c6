//! The EC2 provider: observes a cluster's instances, volumes and snapshots in a bounded number of
//! calls, and carries out every cloud step kind with aws-sdk-ec2. Idempotency comes from
//! deterministic client tokens (RunInstances, CreateVolume) and, where EC2 has none, from the
//! `asdr:plan` + `asdr:step` tags every created resource carries (R13: asdr only deletes,
//! detaches or terminates what it owns).

mod act;
mod batch;
pub mod dry_run;
mod fast_restore;
pub mod iam;
mod locks;
mod observe;
mod views;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use asdr_planner::ports::{Retry, StepError};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_types::config_bag::ConfigBag;

pub use observe::observe_cloud;

/// Counts EC2 API calls (operations, not retry attempts), in all and by API, for `-v`, the
/// observation budget and the benchmarks.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    total: Arc<AtomicUsize>,
    by_api: Arc<std::sync::Mutex<std::collections::BTreeMap<String, usize>>>,
}

impl CallCounter {
    pub fn get(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// The calls made so far, by operation name ("CreateSnapshots": 64, …).
    pub fn by_api(&self) -> std::collections::BTreeMap<String, usize> {
        self.by_api.lock().expect("not poisoned").clone()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "asdr-call-counter"
    }

    // Once per operation, after the operation's own configuration (its name) is in the bag: a
    // client interceptor's read_before_execution runs before it is.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.total.fetch_add(1, Ordering::SeqCst);
        let api = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_string();
        *self
            .by_api
            .lock()
            .expect("not poisoned")
            .entry(api)
            .or_default() += 1;
        Ok(())
    }
}

/// The last DescribeSnapshots of each backup set, and when it was made.
type SetViews =
    std::collections::HashMap<String, (tokio::time::Instant, Vec<asdr_planner::world::Snapshot>)>;

/// The EC2 side of a cluster.
#[derive(Debug, Clone)]
pub struct Ec2Provider {
    pub client: aws_sdk_ec2::Client,
    /// KMS of the cluster's region: a copy into a backup account grants that account's role the
    /// source snapshot's key (none: not granted, the key policy must allow it).
    pub kms: Option<aws_sdk_kms::Client>,
    /// The endpoint it talks to when not AWS's own (for error messages).
    pub endpoint: Option<String>,
    pub cluster: String,
    /// R15: SnapshotCreationPerVolumeRateExceeded is not SDK throttling; wait at least this long.
    pub snapshot_rate_backoff: Duration,
    /// How long one DescribeSnapshots of a set answers every wait on that set: the waits of a
    /// 256-node backup poll with one call, not one each.
    pub set_view_fresh: Duration,
    /// How soon a wait whose snapshot a view predates may have the set described again.
    pub set_view_newer: Duration,
    set_views: std::sync::Arc<tokio::sync::Mutex<SetViews>>,
    /// The snapshots each plan made, described once per process, and the steps this process
    /// has acted on since (whose evidence is then looked up afresh).
    plan_views: std::sync::Arc<tokio::sync::Mutex<PlanViews>>,
    /// How long a CreateTags waits for others asking for the same tag (again while they come).
    pub tag_window: Duration,
    /// Lookups and tags shared between the steps (see `views`).
    views: std::sync::Arc<views::Views>,
    /// CreateSnapshots calls sent and not yet answered: the device tags of their snapshots are
    /// coming.
    snapshots_in_flight: std::sync::Arc<AtomicUsize>,
    /// The snapshots this process gave their `asdr:device` tag.
    device_tagged: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// Providers for the other regions steps act in (copies, restores elsewhere), by region.
    regions: std::sync::Arc<std::collections::BTreeMap<String, Ec2Provider>>,
    /// Volumes a wait did not find: how many looks in a row, since when (a volume EBS could not
    /// create, e.g. with a KMS key the role may not use, vanishes after CreateVolume said yes).
    missing: std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
    >,
    /// How long a created volume may stay unseen (eventual consistency) before it counts as gone.
    pub vanish_grace: Duration,
    /// Per set: a snapshot of it whose lock holds, as asked before its first delete (R20).
    set_locks:
        std::sync::Arc<tokio::sync::Mutex<std::collections::HashMap<String, Option<String>>>>,
}

/// Per plan: its snapshots when first described in this process, and the steps acted on since.
#[derive(Debug, Default)]
struct PlanViews {
    snapshots: std::collections::HashMap<String, Vec<asdr_planner::world::Snapshot>>,
    volumes: std::collections::HashMap<String, Vec<asdr_planner::world::Volume>>,
    instances: std::collections::HashMap<String, Vec<asdr_planner::world::Instance>>,
    acted: std::collections::HashSet<(String, String)>,
}

impl Ec2Provider {
    pub fn new(client: aws_sdk_ec2::Client, cluster: &str) -> Self {
        Ec2Provider {
            client,
            kms: None,
            endpoint: None,
            cluster: cluster.into(),
            snapshot_rate_backoff: Duration::from_secs(15),
            set_view_fresh: Duration::from_secs(3),
            set_view_newer: Duration::from_millis(500),
            set_views: Default::default(),
            plan_views: Default::default(),
            tag_window: Duration::from_millis(100),
            views: std::sync::Arc::new(views::Views::new(
                Duration::from_secs(3),
                Duration::from_millis(20),
                Duration::from_secs(1),
            )),
            device_tagged: Default::default(),
            snapshots_in_flight: Default::default(),
            regions: Default::default(),
            missing: Default::default(),
            set_locks: Default::default(),
            // EC2 is eventually consistent: a new volume may stay unseen for seconds, rarely a
            // minute. `ASDR_VANISH_GRACE_MS` shortens it for tests.
            vanish_grace: std::env::var("ASDR_VANISH_GRACE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(120), Duration::from_millis),
        }
    }

    /// This provider with `other` carrying out the steps that act in `region`.
    pub fn with_region(mut self, region: &str, other: Ec2Provider) -> Self {
        let mut regions = (*self.regions).clone();
        regions.insert(region.to_string(), other);
        self.regions = std::sync::Arc::new(regions);
        self
    }

    /// The provider for a step: this one, or the one of the region the step acts in.
    pub(crate) fn for_region(&self, region: Option<&str>) -> Result<&Ec2Provider, StepError> {
        match region {
            None => Ok(self),
            Some(r) => self.regions.get(r).ok_or_else(|| {
                StepError::permanent(
                    "NoRegionClient",
                    format!("no EC2 client for region {r}: it is not one the policy names"),
                )
            }),
        }
    }

    /// A client for `conf` with the call counter installed.
    pub fn client_for(conf: &aws_config::SdkConfig, counter: &CallCounter) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::config::Builder::from(conf)
                .interceptor(counter.clone())
                .build(),
        )
    }

    /// How an EC2 error is retried (R15), by its code.
    pub(crate) fn classify<
        E: ProvideErrorMetadata + std::fmt::Debug + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    >(
        &self,
        what: &str,
        e: aws_sdk_ec2::error::SdkError<E, R>,
    ) -> StepError {
        let code = e.code().unwrap_or("").to_string();
        let message = crate::aws_error::one_line(what, &e, self.endpoint.as_deref());
        let retry = match code.as_str() {
            "SnapshotCreationPerVolumeRateExceeded" => Retry::Transient {
                after: self.snapshot_rate_backoff,
            },
            "RequestLimitExceeded"
            | "Throttling"
            | "InsufficientInstanceCapacity"
            | "InternalError"
            | "Unavailable" => Retry::Transient {
                after: Duration::from_secs(2),
            },
            "InvalidIPAddress.InUse" => Retry::Transient {
                after: Duration::from_secs(5),
            },
            // Eventual consistency: a resource just created may not be visible yet.
            "InvalidInstanceID.NotFound"
            | "InvalidVolume.NotFound"
            | "InvalidSnapshot.NotFound"
            | "IncorrectState"
            | "IncorrectInstanceState" => Retry::Transient {
                after: Duration::from_secs(2),
            },
            "" => Retry::Transient {
                after: Duration::from_secs(2),
            },
            _ => Retry::Permanent,
        };
        StepError {
            retry,
            code: if code.is_empty() {
                "Unknown".into()
            } else {
                code
            },
            message,
        }
    }
}

/// A client token for a step of a plan: the same on every retry and resume of that plan, different
/// for the same step of another plan. At most 64 ASCII characters.
pub fn client_token(plan_id: &str, step_id: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(format!("{plan_id}\0{step_id}").as_bytes());
    format!(
        "asdr-{}",
        h.iter()
            .take(24)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}
