//! What the steps of an apply look up on EC2, shared between them: a volume's or an instance's
//! state by id, the instances holding an address. A step's question joins a batch (one
//! DescribeVolumes / DescribeInstances for every step asking at about the same time, and for
//! everything else being watched), and an answer stays good for a few seconds unless this process
//! has changed the resource since: 128 attachments settling are watched with a call every few
//! seconds, not one per volume per poll. Describes of one view are at least `gap` apart: a question
//! asked sooner waits for the next, which every question asked meanwhile shares, so the calls a
//! restore makes to watch its launches and attachments grow with how long it takes, not with how
//! many nodes it has. A provider may name in advance what a plan's steps will ask (`expect`), so
//! that the first describe answers them all.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asdr_planner::ports::StepError;
use asdr_planner::world::{Instance, Volume};
use aws_sdk_ec2::types::{Filter, Tag};
use tokio::time::Instant;

use super::Ec2Provider;
use super::batch::Batches;

/// EC2 takes up to 1000 resources in one CreateTags.
const MAX_RESOURCES: usize = 1000;
/// Values of one filter in one Describe call.
const MAX_FILTER_VALUES: usize = 200;
/// A key looked up within this long is refreshed with every batch.
const WATCHED: Duration = Duration::from_secs(30);

struct Known<T> {
    at: Instant,
    value: T,
}

struct State<T> {
    known: HashMap<String, Known<T>>,
    /// When this process last changed the resource: answers from before do not count.
    changed: HashMap<String, Instant>,
    asked: HashMap<String, Instant>,
}

/// One kind of lookup (volumes by id, instances by id, instances by address).
pub(crate) struct View<T> {
    state: Mutex<State<T>>,
    batches: Batches<(), Arc<HashMap<String, T>>>,
    /// How long an answer is good for.
    pub fresh: Duration,
    /// How long a batch waits for others to join.
    pub window: Duration,
    /// The least time between the starts of two describes of this view.
    pub gap: Duration,
    /// When the last describe started.
    last: Mutex<Option<Instant>>,
}

impl<T> std::fmt::Debug for View<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("fresh", &self.fresh)
            .field("window", &self.window)
            .finish()
    }
}

impl<T: Clone + Default> View<T> {
    pub(crate) fn new(fresh: Duration, window: Duration, gap: Duration) -> Self {
        View {
            state: Mutex::new(State {
                known: HashMap::new(),
                changed: HashMap::new(),
                asked: HashMap::new(),
            }),
            batches: Batches::default(),
            fresh,
            window,
            gap,
            last: Mutex::new(None),
        }
    }

    /// `keys` will be asked for soon: the next describe includes them, and its answer serves
    /// them while it is good.
    pub(crate) fn expect(&self, keys: impl IntoIterator<Item = String>) {
        let mut s = self.state.lock().expect("not poisoned");
        let now = Instant::now();
        for k in keys {
            s.asked.insert(k, now);
        }
    }

    /// This process just changed `key` (attached, detached, launched, tagged…).
    pub(crate) fn changed(&self, key: &str) {
        let mut s = self.state.lock().expect("not poisoned");
        s.changed.insert(key.to_string(), Instant::now());
    }

    fn cached(&self, key: &str) -> Option<T> {
        let s = self.state.lock().expect("not poisoned");
        let k = s.known.get(key)?;
        let after_change = s.changed.get(key).is_none_or(|c| k.at > *c);
        (after_change && k.at.elapsed() < self.fresh).then(|| k.value.clone())
    }

    /// `key`'s value, from a good answer or a batch; `fetch` describes the keys it is given
    /// (keys it does not return are absent: the value's default).
    pub(crate) async fn get<F, Fut>(&self, key: &str, fetch: F) -> Result<T, StepError>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<HashMap<String, T>, StepError>>,
    {
        if let Some(v) = self.cached(key) {
            return Ok(v);
        }
        self.state
            .lock()
            .expect("not poisoned")
            .asked
            .insert(key.to_string(), Instant::now());
        // Held open until `gap` has passed since the last describe (and as long as others join):
        // enough moments for the whole gap.
        let moments = 10 + (self.gap.as_millis() / self.window.as_millis().max(1)) as u32;
        let (last, gap) = (&self.last, self.gap);
        let too_soon = move || {
            last.lock()
                .expect("not poisoned")
                .is_some_and(|t| t.elapsed() < gap)
        };
        let answer = self
            .batches
            .join(
                (),
                vec![key.to_string()],
                (self.window, moments),
                &too_soon,
                |mut keys: Vec<String>| async move {
                    // Everything else watched lately and not known afresh rides along.
                    {
                        let s = self.state.lock().expect("not poisoned");
                        keys.extend(
                            s.asked
                                .iter()
                                .filter(|(_, at)| at.elapsed() < WATCHED)
                                .filter(|(k, _)| {
                                    s.known.get(*k).is_none_or(|n| {
                                        n.at.elapsed() >= self.fresh / 2
                                            || s.changed.get(*k).is_some_and(|c| n.at <= *c)
                                    })
                                })
                                .map(|(k, _)| k.clone()),
                        );
                    }
                    keys.sort();
                    keys.dedup();
                    let at = Instant::now();
                    *self.last.lock().expect("not poisoned") = Some(at);
                    let mut got = fetch(keys.clone()).await?;
                    for k in keys {
                        got.entry(k).or_default();
                    }
                    let mut s = self.state.lock().expect("not poisoned");
                    for (k, v) in &got {
                        s.known.insert(
                            k.clone(),
                            Known {
                                at,
                                value: v.clone(),
                            },
                        );
                    }
                    Ok(Arc::new(got))
                },
            )
            .await?;
        Ok(answer.get(key).cloned().unwrap_or_default())
    }
}

/// The views an EC2 provider shares between its steps.
#[derive(Debug)]
pub(crate) struct Views {
    pub volumes: View<Option<Volume>>,
    pub instances: View<Option<Instance>>,
    /// The live instances at each private address.
    pub holders: View<Vec<Instance>>,
    pub tags: Batches<(String, String), ()>,
}

impl Views {
    pub(crate) fn new(fresh: Duration, window: Duration, gap: Duration) -> Self {
        Views {
            volumes: View::new(fresh, window, gap),
            instances: View::new(fresh, window, gap),
            holders: View::new(fresh, window, gap),
            tags: Batches::default(),
        }
    }
}

fn values(name: &str, chunk: &[String]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(chunk.to_vec()))
        .build()
}

impl Ec2Provider {
    /// A volume by id (None once it is gone), through the shared view.
    pub(crate) async fn volume(&self, id: &str) -> Result<Option<Volume>, StepError> {
        self.views
            .volumes
            .get(id, |ids| async move {
                let mut found = BTreeMap::new();
                for chunk in ids.chunks(MAX_FILTER_VALUES) {
                    self.volumes(vec![values("volume-id", chunk)], &mut found)
                        .await?;
                }
                Ok(found.into_iter().map(|(k, v)| (k, Some(v))).collect())
            })
            .await
    }

    /// An instance by id (None when EC2 no longer knows it), through the shared view.
    pub(crate) async fn instance(&self, id: &str) -> Result<Option<Instance>, StepError> {
        self.views
            .instances
            .get(id, |ids| async move {
                let mut found = BTreeMap::new();
                for chunk in ids.chunks(MAX_FILTER_VALUES) {
                    self.instances(vec![values("instance-id", chunk)], &mut found)
                        .await?;
                }
                Ok(found.into_iter().map(|(k, v)| (k, Some(v))).collect())
            })
            .await
    }

    /// The instances of `ids` that exist, in one DescribeInstances per 200 (not through the
    /// view: a claim reads every node's instance at once).
    pub(crate) async fn instances_by_id(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, Instance>, StepError> {
        let mut found = BTreeMap::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            self.instances(vec![values("instance-id", chunk)], &mut found)
                .await?;
        }
        Ok(found)
    }

    /// The instances not yet terminated that hold `ip`, through the shared view.
    pub(crate) async fn holders(&self, ip: &str) -> Result<Vec<Instance>, StepError> {
        self.views
            .holders
            .get(ip, |ips| async move {
                let mut found = BTreeMap::new();
                for chunk in ips.chunks(MAX_FILTER_VALUES) {
                    self.instances(
                        vec![
                            values("private-ip-address", chunk),
                            Filter::builder()
                                .name("instance-state-name")
                                .values("pending")
                                .values("running")
                                .values("shutting-down")
                                .values("stopping")
                                .values("stopped")
                                .build(),
                        ],
                        &mut found,
                    )
                    .await?;
                }
                let mut by_ip: HashMap<String, Vec<Instance>> = HashMap::new();
                for i in found.into_values() {
                    if let Some(ip) = i.private_ip.clone() {
                        by_ip.entry(ip).or_default().push(i);
                    }
                }
                Ok(by_ip)
            })
            .await
    }

    /// Tags `resources` with `key=value`, in one call with every other resource that asks for the
    /// same tag within the tag window (for as long as others keep asking or snapshots are being
    /// made, up to 30 windows).
    pub(crate) async fn tag_together(
        &self,
        key: &str,
        value: &str,
        resources: Vec<String>,
    ) -> Result<(), StepError> {
        self.views
            .tags
            .join(
                (key.to_string(), value.to_string()),
                resources,
                // The waits of a set ask as their snapshots are made: open while CreateSnapshots
                // calls are still out.
                (self.tag_window, 30),
                &|| {
                    self.snapshots_in_flight
                        .load(std::sync::atomic::Ordering::SeqCst)
                        > 0
                },
                |all| async move {
                    for chunk in all.chunks(MAX_RESOURCES) {
                        self.client
                            .create_tags()
                            .set_resources(Some(chunk.to_vec()))
                            .tags(Tag::builder().key(key).value(value).build())
                            .send()
                            .await
                            .map_err(|e| self.classify("CreateTags", e))?;
                    }
                    Ok(())
                },
            )
            .await
    }
}
