//! An emulator of what a Nitro guest sees of its EBS volumes, for tests (no Nitro instance runs
//! here). It watches EC2 (moto) and keeps, for each node, the device tree its instance would show
//! under `<root>/nodes/<node>/dev`, as the in-test nodes' policy names it (`on_lab_devices`):
//!
//! - every attached data volume is an NVMe namespace `nvme<N>n1` (a file holding the volume id,
//!   so a test can read which volume a path is), numbered from `first` as the kernel numbers
//!   hot-plugged controllers: the lowest free number, in the order the attachments arrive;
//! - `disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id>` links to it (udev, from the serial);
//! - `sdf` links to it for the volume attached at `/dev/sdf` (amazon-ec2-utils' udev rules);
//! - the root volume is `nvme0n1`, the instance-store drives `nvme1n1` … `nvme<first-1>n1`, each
//!   linked as `disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_AWS<n>`.
//!
//! [`Numbering::Reversed`] numbers a node's volumes in the reverse order of their attachment
//! names instead, as a kernel that saw them arrive the other way round (or a reboot) would.
//! A node is the newest running instance tagged `asdr:node=<node>`; another instance is a new
//! boot, its numbers start again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the emulated kernel hands out NVMe numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// The lowest free number, in the order attachments arrive (Linux's).
    Arrival,
    /// In the reverse order of the attachment names.
    Reversed,
    /// Data volumes as `Arrival`, but the root volume answered second at boot: it is `nvme1n1`
    /// and the first instance-store drive `nvme0n1` (the kernel numbers in response order).
    RootSecond,
}

/// The emulator; stops when dropped.
#[derive(Debug)]
pub struct Nitro {
    stop: Arc<AtomicBool>,
    numbering: Arc<AtomicU8>,
    /// node → (NVMe number → volume id), as last laid out.
    pub layout: Arc<Mutex<BTreeMap<String, BTreeMap<u32, String>>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Nitro {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One node's guest as last seen.
#[derive(Default)]
struct Guest {
    instance: String,
    /// NVMe number → (volume id, attachment name).
    slots: BTreeMap<u32, (String, String)>,
}

impl Nitro {
    /// Watches the EC2 endpoint `endpoint` in `regions`; data volumes are numbered from `first`
    /// (after the root volume and the instance-store drives).
    pub fn start(endpoint: &str, regions: &[&str], root: &Path, first: u32) -> Nitro {
        let stop = Arc::new(AtomicBool::new(false));
        let numbering = Arc::new(AtomicU8::new(0));
        let layout = Arc::new(Mutex::new(BTreeMap::new()));
        let (endpoint, root) = (endpoint.to_string(), root.to_path_buf());
        let regions: Vec<String> = regions.iter().map(|r| r.to_string()).collect();
        let (s, n, l) = (stop.clone(), numbering.clone(), layout.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(watch(&endpoint, &regions, &root, first, s, n, l));
        });
        Nitro {
            stop,
            numbering,
            layout,
            thread: Some(thread),
        }
    }

    pub fn set_numbering(&self, n: Numbering) {
        let code = match n {
            Numbering::Arrival => 0,
            Numbering::Reversed => 1,
            Numbering::RootSecond => 2,
        };
        self.numbering.store(code, Ordering::SeqCst);
    }
}

/// Moto's header naming the account a request acts in: the guest of a backup account's instance
/// reads that account's EC2 (`REGION@ACCOUNT` places).
#[derive(Debug)]
struct InAccount(String);

impl aws_sdk_ec2::config::Intercept for InAccount {
    fn name(&self) -> &'static str {
        "nitro-in-account"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_ec2::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert("x-moto-account-id", self.0.clone());
        Ok(())
    }
}

fn client(endpoint: &str, place: &str) -> aws_sdk_ec2::Client {
    let (region, account) = asdr_specs::split_place(place);
    let mut conf = aws_sdk_ec2::config::Builder::new()
        .behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest())
        .region(aws_sdk_ec2::config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        // The strict layer does not record this key's calls: they are the guest's, not asdr's.
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "nitro", "test", None, None, "nitro",
        ));
    if let Some(a) = account {
        conf = conf.interceptor(InAccount(a.to_string()));
    }
    aws_sdk_ec2::Client::from_conf(conf.build())
}

async fn watch(
    endpoint: &str,
    regions: &[String],
    root: &Path,
    first: u32,
    stop: Arc<AtomicBool>,
    numbering: Arc<AtomicU8>,
    layout: Arc<Mutex<BTreeMap<String, BTreeMap<u32, String>>>>,
) {
    let clients: Vec<aws_sdk_ec2::Client> = regions.iter().map(|r| client(endpoint, r)).collect();
    let mut guests: BTreeMap<String, Guest> = BTreeMap::new();
    while !stop.load(Ordering::SeqCst) {
        let mode = numbering.load(Ordering::SeqCst);
        let reversed = mode == 1;
        let root_second = mode == 2;
        let mut seen = Seen::new();
        for ec2 in &clients {
            if let Ok(more) = attachments(ec2).await {
                seen.extend(more);
            }
        }
        {
            for (node, (instance, attached)) in seen {
                let guest = guests.entry(node.clone()).or_default();
                if guest.instance != instance {
                    *guest = Guest {
                        instance,
                        ..Guest::default()
                    };
                }
                let before = guest.slots.clone();
                guest
                    .slots
                    .retain(|_, (v, _)| attached.iter().any(|(a, _)| a == v));
                let mut new: Vec<&(String, String)> = attached
                    .iter()
                    .filter(|(v, _)| !guest.slots.values().any(|(s, _)| s == v))
                    .collect();
                new.sort_by(|a, b| a.1.cmp(&b.1));
                for (v, dev) in new {
                    let n = (first..)
                        .find(|n| !guest.slots.contains_key(n))
                        .expect("a free number");
                    guest.slots.insert(n, (v.clone(), dev.clone()));
                }
                if reversed {
                    let mut all: Vec<(String, String)> = guest.slots.values().cloned().collect();
                    all.sort_by(|a, b| b.1.cmp(&a.1));
                    guest.slots = (first..).zip(all).collect();
                }
                let dev = root.join("nodes").join(&node).join("dev");
                if guest.slots != before || !dev.join("nvme0n1").exists() {
                    lay_out(&dev, first, root_second, &guest.slots);
                }
                layout.lock().expect("not poisoned").insert(
                    node,
                    guest
                        .slots
                        .iter()
                        .map(|(n, (v, _))| (*n, v.clone()))
                        .collect(),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// node → (its newest running instance, its attached data volumes with their names).
type Seen = BTreeMap<String, (String, Vec<(String, String)>)>;

async fn attachments(ec2: &aws_sdk_ec2::Client) -> Result<Seen, aws_sdk_ec2::Error> {
    let mut newest: BTreeMap<String, (aws_sdk_ec2::primitives::DateTime, String)> = BTreeMap::new();
    // Every page: a big cluster's instances and volumes do not fit in one answer.
    let pages = ec2
        .describe_instances()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    for i in pages
        .iter()
        .flat_map(|p| p.reservations())
        .flat_map(|r| r.instances())
    {
        let running = i
            .state()
            .and_then(|s| s.name())
            .is_some_and(|n| n.as_str() == "running");
        let node = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("asdr:node"))
            .and_then(|t| t.value());
        if let (true, Some(node), Some(id), Some(at)) =
            (running, node, i.instance_id(), i.launch_time())
        {
            let e = newest
                .entry(node.to_string())
                .or_insert((*at, id.to_string()));
            if *at > e.0 {
                *e = (*at, id.to_string());
            }
        }
    }
    let mut seen: Seen = newest
        .into_iter()
        .map(|(node, (_, id))| (node, (id, Vec::new())))
        .collect();
    let pages = ec2
        .describe_volumes()
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?;
    for v in pages.iter().flat_map(|p| p.volumes()) {
        for a in v.attachments() {
            let attached = a.state().is_some_and(|s| s.as_str() == "attached");
            let root = matches!(a.device(), Some("/dev/sda1" | "/dev/xvda"));
            for (id, list) in seen.values_mut() {
                if attached && !root && a.instance_id() == Some(id.as_str()) {
                    list.push((
                        v.volume_id().unwrap_or_default().to_string(),
                        a.device().unwrap_or_default().to_string(),
                    ));
                }
            }
        }
    }
    Ok(seen)
}

/// One entry of a guest's `/dev`: a device (a file holding what it is) or a link.
#[derive(PartialEq)]
enum Entry {
    Device(String),
    Link(PathBuf),
}

/// The guest's `/dev`: NVMe namespaces, their serial links, their attachment-name links.
/// Changed in place, entry by entry (each written beside and renamed over), as udev does: a
/// reader never sees a drive or a link that stays missing.
fn lay_out(dev: &Path, first: u32, root_second: bool, slots: &BTreeMap<u32, (String, String)>) {
    let by_id = dev.join("disk/by-id");
    let _ = std::fs::create_dir_all(&by_id);
    let mut want: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    // The root volume and the instance-store drives, as the instance booted.
    let root = if root_second { 1 } else { 0 };
    want.insert(
        dev.join(format!("nvme{root}n1")),
        Entry::Device("root".into()),
    );
    for (k, n) in (0..first).filter(|n| *n != root).enumerate() {
        let name = format!("nvme{n}n1");
        want.insert(dev.join(&name), Entry::Device("instance-store".into()));
        want.insert(
            by_id.join(format!(
                "nvme-Amazon_EC2_NVMe_Instance_Storage_AWS{}",
                k + 1
            )),
            Entry::Link(PathBuf::from("../..").join(&name)),
        );
    }
    for (n, (volume, attachment)) in slots {
        let name = format!("nvme{n}n1");
        want.insert(dev.join(&name), Entry::Device(volume.clone()));
        want.insert(
            by_id.join(format!(
                "nvme-Amazon_Elastic_Block_Store_{}",
                volume.replace('-', "")
            )),
            Entry::Link(PathBuf::from("../..").join(&name)),
        );
        if let Some(short) = attachment.rsplit('/').next() {
            want.insert(dev.join(short), Entry::Link(PathBuf::from(&name)));
        }
    }
    for (path, entry) in &want {
        let now = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => std::fs::read_link(path).ok().map(Entry::Link),
            Ok(_) => std::fs::read_to_string(path).ok().map(Entry::Device),
            Err(_) => None,
        };
        if now.as_ref() == Some(entry) {
            continue;
        }
        let tmp = path.with_extension("nitro-tmp");
        let _ = std::fs::remove_file(&tmp);
        let _ = match entry {
            Entry::Device(content) => std::fs::write(&tmp, content),
            Entry::Link(target) => std::os::unix::fs::symlink(target, &tmp),
        };
        let _ = std::fs::rename(&tmp, path);
    }
    for dir in [dev.to_path_buf(), by_id.clone()] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                let ours = name.starts_with("nvme-Amazon_")
                    || name.starts_with("sd")
                    || data_namespace(&name).is_some();
                if ours && e.file_type().is_ok_and(|t| !t.is_dir()) && !want.contains_key(&e.path())
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// `nvme3n1` → 3.
fn data_namespace(name: &str) -> Option<u32> {
    name.strip_prefix("nvme")?.strip_suffix("n1")?.parse().ok()
}
