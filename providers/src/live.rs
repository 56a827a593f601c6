//! Wiring the real nodes to a policy: observing them into a world, and the node provider with the
//! transport and SMD store the policy names.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use asdr_planner::World;
use asdr_planner::world::{InstanceState, RecycleRule};
use asdr_specs::{Policy, Transport as Kind};

use crate::aerospike::info::InfoClient;
use crate::aerospike::observe::observe_node;
use crate::exec::AnyTransport;
use crate::exec::local::Local;
use crate::exec::ssh::Ssh;
use crate::exec::ssm::Ssm;
use crate::node_provider::NodeProvider;
use crate::store::s3::{AnyStore, S3Store};

/// AWS settings from the command line (the policy's region is the default).
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub profile: Option<String>,
}

impl AwsSettings {
    pub async fn load(&self, policy: &Policy) -> aws_config::SdkConfig {
        let region = self
            .region
            .clone()
            .unwrap_or_else(|| policy.cluster.region.clone());
        self.load_region(region).await
    }

    /// The same settings in another place (a copy's, a restore's elsewhere): a region, or
    /// `REGION@ACCOUNT` for a backup account's copies, reached through its role (STS AssumeRole,
    /// with its external id) from these credentials.
    pub async fn load_in(&self, policy: &Policy, place: &str) -> aws_config::SdkConfig {
        let (region, account) = asdr_specs::split_place(place);
        let conf = self.load_region(region.to_string()).await;
        if account.is_none() {
            return conf;
        }
        // The copy's own role: two copies in one account may name different roles.
        let a = policy
            .backup
            .copies
            .iter()
            .find(|c| c.region == place)
            .and_then(|c| c.account.as_ref())
            .expect("a place's account is one of backup.copies (places come from the policy)");
        let mut role = aws_config::sts::AssumeRoleProvider::builder(&a.role_arn)
            .session_name(session_name(&policy.cluster.name))
            .configure(&conf);
        if let Some(x) = &a.external_id {
            role = role.external_id(x);
        }
        let role = role.build().await;
        conf.into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(role),
            )
            .build()
    }

    async fn load_region(&self, region: String) -> aws_config::SdkConfig {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region));
        if let Some(e) = &self.endpoint_url {
            loader = loader.endpoint_url(e);
        }
        if let Some(p) = &self.profile {
            loader = loader.profile_name(p);
        }
        // Adaptive retries: throttling answers slow this client down (a token bucket), so a plan
        // of hundreds of nodes does not storm the account's shared API limits. AWS_RETRY_MODE
        // still chooses otherwise.
        if std::env::var_os("AWS_RETRY_MODE").is_none() {
            loader = loader
                .retry_config(aws_config::retry::RetryConfig::adaptive().with_max_attempts(5));
        }
        loader.load().await
    }
}

/// The role session name asdr's sessions in a backup account carry (CloudTrail shows it): STS
/// takes 2–64 characters of letters, digits and `+=,.@_-`.
fn session_name(cluster: &str) -> String {
    let clean: String = cluster
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("asdr-{clean}").chars().take(64).collect()
}

fn info_addr(policy: &Policy, node: &asdr_specs::Node) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(node.private_ip), policy.cluster.info_port)
}

/// The world with its node records replaced by what the nodes answer now. Every node is asked at
/// once: a cluster of 256 nodes, some of them down, takes the time of its slowest answer (or one
/// info timeout), not their sum.
pub async fn refresh_nodes(policy: &Policy, mut world: World) -> World {
    let mut asked = tokio::task::JoinSet::new();
    for (i, n) in policy.cluster.nodes.iter().enumerate() {
        let client = InfoClient::new(&n.name, info_addr(policy, n));
        asked.spawn(async move { (i, observe_node(&client).await) });
    }
    let mut answers: Vec<Option<asdr_planner::world::NodeObservation>> =
        vec![None; policy.cluster.nodes.len()];
    while let Some(joined) = asked.join_next().await {
        let (i, o) = joined.expect("observing a node does not panic");
        answers[i] = Some(o);
    }
    world.nodes = answers
        .into_iter()
        .flatten()
        .map(|mut o| {
            // The node's aerospike.conf is read through the transport when it is applied; keep
            // the last one recorded so config diffs stay meaningful.
            o.config = world
                .nodes
                .iter()
                .find(|w| w.name == o.name)
                .and_then(|w| w.config.clone());
            o
        })
        .collect();
    world
}

fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map_or_else(|| PathBuf::from(path), |h| PathBuf::from(h).join(rest)),
        None => PathBuf::from(path),
    }
}

/// The node provider for nodes at explicit addresses (a drill's stand-ins), with the policy's
/// transport and store.
pub async fn node_provider_at(
    policy: &Policy,
    world: &World,
    aws: &AwsSettings,
    nodes: BTreeMap<String, crate::node_provider::NodeAddress>,
) -> NodeProvider<AnyTransport, AnyStore> {
    let base = node_provider(policy, world, aws).await;
    base.at(nodes)
}

/// The node provider for the policy's transport and SMD store. SSM addresses instances, found in
/// `world` (the node's live instance, by the policy's instance_id or the asdr:node tag).
pub async fn node_provider(
    policy: &Policy,
    world: &World,
    aws: &AwsSettings,
) -> NodeProvider<AnyTransport, AnyStore> {
    let transport = match policy.cluster.access.transport {
        Kind::Local => AnyTransport::Local(Local::default()),
        Kind::Ssh => {
            let s = policy
                .cluster
                .access
                .ssh
                .clone()
                .expect("validation requires ssh settings");
            let mut t = Ssh::new(&s.user, s.port);
            t.identity_file = s.identity_file.as_deref().map(expand_home);
            if let Some(k) = s.known_hosts.as_deref() {
                t.known_hosts = Some(expand_home(k));
                t.pinned = true;
            }
            AnyTransport::Ssh(t)
        }
        Kind::Ssm => {
            let conf = aws.load(policy).await;
            let instances: BTreeMap<String, String> = policy
                .cluster
                .nodes
                .iter()
                .filter_map(|n| {
                    world
                        .instances
                        .iter()
                        .filter(|i| i.state != InstanceState::Terminated)
                        .find(|i| {
                            Some(&i.id) == n.instance_id.as_ref()
                                || i.tags.get(asdr_planner::tags::NODE) == Some(&n.name)
                        })
                        .map(|i| (n.name.clone(), i.id.clone()))
                })
                .collect();
            let mut ssm = Ssm::new(aws_sdk_ssm::Client::new(&conf), instances);
            // A restore elsewhere runs its commands in its region.
            for region in policy.other_regions() {
                let conf = aws.load_in(policy, &region).await;
                ssm.regional.insert(region, aws_sdk_ssm::Client::new(&conf));
            }
            AnyTransport::Ssm(ssm)
        }
    };
    let mut provider = NodeProvider::for_policy(policy, transport, smd_store(policy, aws).await);
    provider.s3_endpoint = aws.endpoint_url.clone();
    provider
}

/// The EC2 provider for the policy, with its call counter.
pub async fn ec2_provider(
    policy: &Policy,
    aws: &AwsSettings,
) -> (crate::ec2::Ec2Provider, crate::ec2::CallCounter) {
    let conf = aws.load(policy).await;
    let counter = crate::ec2::CallCounter::default();
    let mut provider = crate::ec2::Ec2Provider::new(
        crate::ec2::Ec2Provider::client_for(&conf, &counter),
        &policy.cluster.name,
    );
    provider.endpoint = aws.endpoint_url.clone();
    // Copies into a backup account grant its role the source snapshots' key.
    if policy.backup.copies.iter().any(|c| c.account.is_some()) {
        provider.kms = Some(aws_sdk_kms::Client::new(&conf));
    }
    // A client per other region the policy acts in: its copies' and its restores' elsewhere.
    for region in policy.other_regions() {
        let conf = aws.load_in(policy, &region).await;
        let mut other = crate::ec2::Ec2Provider::new(
            crate::ec2::Ec2Provider::client_for(&conf, &counter),
            &policy.cluster.name,
        );
        other.endpoint = aws.endpoint_url.clone();
        provider = provider.with_region(&region, other);
    }
    (provider, counter)
}

fn s3_client(conf: &aws_config::SdkConfig, aws: &AwsSettings) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(conf)
            .force_path_style(aws.endpoint_url.is_some())
            .build(),
    )
}

/// The team lock at `uri` (`s3://bucket/key`).
pub async fn s3_lock(
    policy: &Policy,
    aws: &AwsSettings,
    uri: &str,
) -> Result<crate::store::lock::S3Lock, crate::store::lock::S3LockError> {
    let mut lock = crate::store::lock::S3Lock::new(s3_client(&aws.load(policy).await, aws), uri)?
        .located()
        .await?;
    lock.expiry = policy
        .lock_expiry
        .map(|d| std::time::Duration::from_secs(d.seconds()));
    Ok(lock)
}

/// The store the policy's SMD archives and asbackup sets live in (S3 when either is there), and
/// the stores of its copies, each bucket through a client of the copy's region.
pub async fn smd_store(policy: &Policy, aws: &AwsSettings) -> AnyStore {
    let asbackup_s3 = policy
        .backup
        .asbackup
        .as_ref()
        .is_some_and(|a| asdr_specs::StoreUri::is_s3(&a.to));
    let copies_s3: Vec<&asdr_specs::Copy> = policy
        .backup
        .copies
        .iter()
        .filter(|c| asdr_specs::StoreUri::is_s3(&c.smd_to))
        .collect();
    let mut store = AnyStore::default();
    if !asdr_specs::StoreUri::is_s3(&policy.backup.smd_to) && !asbackup_s3 && copies_s3.is_empty() {
        return store;
    }
    let conf = aws.load(policy).await;
    store.s3 = Some(S3Store::new(s3_client(&conf, aws)));
    for c in copies_s3 {
        if let Some(asdr_specs::StoreUri::S3 { bucket, .. }) =
            asdr_specs::StoreUri::parse(&c.smd_to)
        {
            let conf = aws.load_in(policy, &c.region).await;
            store
                .by_bucket
                .insert(bucket, S3Store::new(s3_client(&conf, aws)));
        }
    }
    store
}

/// The SMD archives and set manifests of the policy's store and of every copy's store; a store
/// that cannot be listed, by region (the cluster's own for its store).
pub async fn all_set_files(
    policy: &Policy,
    store: &AnyStore,
) -> (crate::store::SetFiles, BTreeMap<String, String>) {
    let mut out = crate::store::SetFiles::default();
    let mut failed = BTreeMap::new();
    let stores = std::iter::once((
        policy.cluster.region.as_str(),
        policy.backup.smd_to.as_str(),
    ))
    .chain(
        policy
            .backup
            .copies
            .iter()
            .map(|c| (c.region.as_str(), c.smd_to.as_str())),
    );
    for (region, smd_to) in stores {
        match crate::store::set_files(store, smd_to, &policy.cluster.name).await {
            Ok(found) => {
                out.archives.extend(found.archives);
                out.manifests.extend(found.manifests);
            }
            Err(e) => {
                failed.insert(region.to_string(), format!("listing {smd_to}: {e}"));
            }
        }
    }
    (out, failed)
}

/// Whether S3 Object Lock is enabled on each S3 bucket a locked set's files go to (R20); a
/// bucket whose configuration cannot be read is left out (not observed: the plan says so).
pub async fn object_locks(policy: &Policy, store: &AnyStore) -> BTreeMap<String, bool> {
    // asbackup sets are retained where asbackup writes them.
    let asbackup_to = policy
        .backup
        .asbackup
        .as_ref()
        .filter(|_| policy.backup.method == asdr_specs::Method::Asbackup)
        .map(|a| (policy.backup.lock.is_some(), a.to.as_str()));
    let stores = std::iter::once((policy.backup.lock.is_some(), policy.backup.smd_to.as_str()))
        .chain(asbackup_to)
        .chain(
            policy
                .backup
                .copies
                .iter()
                .map(|c| (c.lock.is_some(), c.smd_to.as_str())),
        );
    let mut out = BTreeMap::new();
    for (locked, uri) in stores {
        if let (true, Some(asdr_specs::StoreUri::S3 { bucket, .. })) =
            (locked, asdr_specs::StoreUri::parse(uri))
            && !out.contains_key(&bucket)
            && let Ok(enabled) = store.object_lock_enabled(uri).await
        {
            out.insert(bucket, enabled);
        }
    }
    out
}

/// The Recycle Bin rules of every region the policy keeps snapshots in, each region asked at
/// once; a region whose rules cannot be read is left out (not observed).
pub async fn recycle_bins(
    policy: &Policy,
    aws: &AwsSettings,
) -> BTreeMap<String, Vec<RecycleRule>> {
    let regions: Vec<String> = std::iter::once(policy.cluster.region.clone())
        .chain(policy.backup.copies.iter().map(|c| c.region.clone()))
        .collect();
    // Sequential: a few regions, each answering at once or failing at once (no retries).
    let mut out = BTreeMap::new();
    for region in regions {
        let conf = aws.load_in(policy, &region).await;
        let client = crate::recycle_bin::client(&conf);
        if let Ok(rules) = crate::recycle_bin::rules(&client).await {
            out.insert(region, rules);
        }
    }
    out
}

/// The whole world from AWS, the nodes and the SMD store; also the number of EC2 calls it took.
pub async fn observe_aws(policy: &Policy, aws: &AwsSettings) -> Result<(World, usize), String> {
    let (ec2, counter) = ec2_provider(policy, aws).await;
    // EC2, the store and the nodes answer independently: asked at once.
    let (cloud, archives, nodes, recycle_bin) = tokio::join!(
        crate::ec2::observe_cloud(&ec2, policy),
        async {
            let store = smd_store(policy, aws).await;
            let smd = all_set_files(policy, &store).await;
            let locks = object_locks(policy, &store).await;
            Ok::<_, String>((smd, asbackup_archives(policy, &store).await?, locks))
        },
        refresh_nodes(policy, World::default()),
        recycle_bins(policy, aws),
    );
    let mut world = cloud.map_err(|e| e.message)?;
    let ((smd, unlisted), asbackup, object_lock) = archives?;
    world.object_lock = object_lock;
    world.smd_archives = smd.archives;
    world.set_manifests = smd.manifests;
    world.asbackup_archives = asbackup;
    for (region, why) in unlisted {
        let home = region == policy.cluster.region;
        // The cluster's own store failing while its region answers is an error, as before; a
        // copy's store failing makes its region unobserved (nothing is planned there).
        if home && !world.unobserved_regions.contains_key(&region) {
            return Err(why);
        }
        world.unobserved_regions.entry(region).or_insert(why);
    }
    world.recycle_bin = recycle_bin;
    world.nodes = nodes.nodes;
    world.now = Some(
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc()),
    );
    Ok((world, counter.get()))
}

/// The finished asbackup runs of the policy's `asbackup.to`, from one listing of the store
/// (its manifests); none when the policy does not back up with asbackup.
pub async fn asbackup_archives(
    policy: &Policy,
    store: &AnyStore,
) -> Result<Vec<asdr_planner::world::AsbackupArchive>, String> {
    match &policy.backup.asbackup {
        Some(a) if policy.backup.method == asdr_specs::Method::Asbackup => {
            crate::asbackup::archives(store, &a.to)
                .await
                .map_err(|e| format!("listing asbackup sets: {e}"))
        }
        _ => Ok(Vec::new()),
    }
}
