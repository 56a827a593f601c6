//! The devices a node starts on are the volumes asdr attached for them.
//!
//! aerospike.conf names devices by path. On Nitro instances every EBS volume is an NVMe device
//! the kernel numbers as it arrives, so `/dev/nvme3n1` is whichever volume came first, not the
//! one attached at `/dev/sdf`; a reboot can renumber them too. Started on a swapped pair, a
//! namespace reads another namespace's (or another node's) data as its own, and a cold start
//! then rebuilds its index from it. The one name a volume carries into the guest is its NVMe
//! serial, the volume id, which udev links as
//! `/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id>`. Before a start that follows a
//! volume change, each path the config names must resolve to the device that link names.
//!
//! On Xen instances (no NVMe for EBS) the device takes its attachment name (`/dev/sdf` as
//! `/dev/xvdf`); a path resolving to that name is the volume.

use super::*;

/// How long a volume's link may be missing after its attach finished (udev creates it within
/// seconds) before the start is refused.
const LINK_GRACE: Duration = Duration::from_secs(120);

/// How long a path may resolve to another volume's device before the start is refused: udev
/// moves links one by one, so a link read between two of its moves can name a device that is
/// about to change. A mismatch that lasts this long is not a move in progress.
const MISMATCH_SETTLE: Duration = Duration::from_secs(10);

/// What the node said of one device: where its config path and its volume's link resolve.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    path: Option<String>,
    volume: Option<String>,
}

/// The serial link of `volume_id`, in the `/dev` tree `path` is in (`/dev/disk/by-id/…` for any
/// path under `/dev`; a lab that keeps its devices under `<root>/dev` keeps its links there).
pub(crate) fn volume_link(path: &str, volume_id: &str) -> String {
    let root = dev_root(path);
    format!(
        "{root}/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{}",
        volume_id.replace('-', "")
    )
}

/// The part of `path` before its `/dev` tree (empty for a path under `/dev`).
fn dev_root(path: &str) -> &str {
    path.find("/dev/").map_or("", |i| &path[..i])
}

/// The drive a resolved device is on (`…/dev/nvme3n1p1` → `…/dev/nvme3n1`).
fn drive(path: &str) -> &str {
    let root = dev_root(path);
    &path[..root.len() + asdr_specs::drive_of(&path[root.len()..]).len()]
}

/// A device LVM or md assembled (`dm-0`, `md0`): it is found by what is on its members.
fn is_assembled(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("dm-")
        || name
            .strip_prefix("md")
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty())
}

/// `/dev/sdf` → `sdf`, `xvdf`: the names a Xen guest gives the volume attached at `ebs`.
fn xen_names(ebs: &str) -> [String; 2] {
    let name = ebs.rsplit('/').next().unwrap_or(ebs);
    let letters = name
        .strip_prefix("xvd")
        .or_else(|| name.strip_prefix("sd"))
        .unwrap_or(name);
    [format!("sd{letters}"), format!("xvd{letters}")]
}

impl<T: Transport, S: Store> NodeProvider<T, S> {
    /// `check_devices`, with a mismatch on a stopped node waited out for [`MISMATCH_SETTLE`]
    /// (or the link grace, when shorter) before it is refused: the start waits meanwhile, so
    /// nothing starts on the wrong disk either way. On a node that already runs it is refused at
    /// once (it must be stopped now).
    pub(super) async fn settled_devices(
        &self,
        input: &StepInput<'_>,
        name: &str,
        running: bool,
    ) -> Result<Option<String>, StepError> {
        let key = format!("mismatch:{}", input.step.id);
        let checked = self.check_devices(input, name, running).await;
        let mut waits = self.device_waits.lock().expect("not poisoned");
        match checked {
            Err(e) if e.code == "DeviceMismatch" && !running => {
                let since = *waits.entry(key).or_insert_with(std::time::Instant::now);
                if since.elapsed() >= MISMATCH_SETTLE.min(self.device_grace) {
                    Err(e)
                } else {
                    Ok(Some(format!(
                        "{} (waiting for the links to settle)",
                        e.message
                    )))
                }
            }
            other => {
                waits.remove(&key);
                other
            }
        }
    }

    /// Ok(None) when every device the start names is its volume; Ok(Some(why)) while a volume's
    /// link has not appeared yet; a permanent error for a path that is another device.
    pub(super) async fn check_devices(
        &self,
        input: &StepInput<'_>,
        name: &str,
        running: bool,
    ) -> Result<Option<String>, StepError> {
        // What a refusal leaves: a start this step has not made yet is not made; a node that
        // already runs (started by the image, an operator, or a run that was killed) is said to.
        let outcome = if running {
            "Aerospike ALREADY RUNS on the node (started by something other than this step): stop it there now"
        } else {
            "Aerospike was not started; the node stays stopped"
        };
        let next = "Once the names are right, plan again and read the plan before applying: a node that does not answer is planned as a replacement";
        let Params::StartNode(p) = &input.step.params else {
            return Ok(None);
        };
        if p.devices.is_empty() {
            return Ok(None);
        }
        let mut wanted = Vec::new();
        for d in &p.devices {
            let volume = input
                .resolve(&d.volume_id, |l| l.volume_id.as_ref())
                .ok_or_else(|| {
                    StepError::permanent(
                        "UnresolvedReference",
                        format!(
                            "step {}: step {} has not learned the volume for {}",
                            input.step.id,
                            d.volume_id.from_step().unwrap_or_default(),
                            d.ebs
                        ),
                    )
                })?;
            wanted.push((d, volume));
        }
        // One line per EBS device: `V|<where the path resolves>|<where the volume's link does>`
        // (empty when it does not exist); one per primary: `P|<where it resolves>`; one per
        // instance-store drive the node has: `S|<the drive>`.
        let mut script: Vec<String> = wanted
            .iter()
            .map(|(d, volume)| {
                format!(
                    "printf 'V|%s|%s\\n' \"$(readlink -e -- {} 2>/dev/null)\" \"$(readlink -e -- {} 2>/dev/null)\"",
                    quote(&d.path),
                    quote(&volume_link(&d.path, volume))
                )
            })
            .collect();
        let mut roots = std::collections::BTreeSet::new();
        for primary in &p.instance_store {
            script.push(format!(
                "printf 'P|%s\\n' \"$(readlink -e -- {} 2>/dev/null)\"",
                quote(primary)
            ));
            roots.insert(dev_root(primary).to_string());
        }
        for root in roots {
            script.push(format!(
                "for l in {}/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_*; do [ -e \"$l\" ] && printf 'S|%s\\n' \"$(readlink -e -- \"$l\")\"; done; true",
                quote(&root)
            ));
        }
        let script = script.join("; ");
        let target = self.target(name)?;
        let out = run_ok(&self.transport, &target, &script, None)
            .await
            .map_err(transport_error)?;
        let text = String::from_utf8_lossy(&out);
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let mut seen: Vec<Seen> = Vec::new();
        let mut primaries: Vec<Option<String>> = Vec::new();
        let mut store_drives = std::collections::BTreeSet::new();
        for l in text.lines() {
            let mut f = l.splitn(3, '|');
            match (f.next(), f.next(), f.next()) {
                (Some("V"), Some(a), b) => seen.push(Seen {
                    path: some(a),
                    volume: b.and_then(some),
                }),
                (Some("P"), Some(a), _) => primaries.push(some(a)),
                (Some("S"), Some(a), _) if !a.is_empty() => {
                    store_drives.insert(drive(a).to_string());
                }
                _ => {}
            }
        }
        if seen.len() != wanted.len() || primaries.len() != p.instance_store.len() {
            return Err(StepError::permanent(
                "DeviceCheck",
                format!(
                    "{name}: the device check printed {} volume and {} primary lines for {} and {}: {text}",
                    seen.len(),
                    primaries.len(),
                    wanted.len(),
                    p.instance_store.len()
                ),
            ));
        }
        let mut missing = Vec::new();
        for ((d, volume), seen) in wanted.iter().zip(&seen) {
            match (&seen.path, &seen.volume) {
                // A partition of the volume is the volume (`/dev/nvme3n1p1`).
                (Some(at), Some(vol)) if drive(at) == vol => {}
                // LVM and md devices find their members by the UUIDs on them, not by device
                // names: the kernel's numbering cannot swap them.
                (Some(at), _) if is_assembled(at) => {}
                (Some(at), Some(vol)) => {
                    return Err(StepError::permanent(
                        "DeviceMismatch",
                        format!(
                            "[R5] {name}: aerospike.conf names {} for volume {volume} (attached at {}), but on the node {} is {at} and {volume} is {vol}: the namespace would read another volume's data as its own. {outcome}. NVMe numbers follow the order volumes arrive; name EBS devices in the policy by a stable link (`/dev/sdf`, which amazon-ec2-utils' udev rules create from the attachment name: installed on Amazon Linux, to install elsewhere). {next}",
                            d.path, d.ebs, d.path
                        ),
                    ));
                }
                (Some(at), None)
                    if xen_names(&d.ebs)
                        .iter()
                        .any(|n| drive(at).rsplit('/').next() == Some(n.as_str())) => {}
                (Some(at), None) if at.contains("nvme") => missing.push(format!(
                    "{} is {at}, but no device has {volume}'s serial ({})",
                    d.path,
                    volume_link(&d.path, volume)
                )),
                (Some(at), None) => {
                    return Err(StepError::permanent(
                        "DeviceMismatch",
                        format!(
                            "[R5] {name}: aerospike.conf names {} for volume {volume} (attached at {}), but on the node {} is {at}, which is neither {volume} ({}) nor the device Xen names after {}. {outcome}. {next}",
                            d.path,
                            d.ebs,
                            d.path,
                            volume_link(&d.path, volume),
                            d.ebs
                        ),
                    ));
                }
                (None, _) => missing.push(format!("{} does not exist yet", d.path)),
            }
        }
        let volumes: Vec<&str> = seen.iter().filter_map(|x| x.volume.as_deref()).collect();
        for (path, at) in p.instance_store.iter().zip(&primaries) {
            let Some(at) = at else {
                missing.push(format!("{path} does not exist yet"));
                continue;
            };
            let disk = drive(at);
            let nvme = disk
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("nvme"));
            if nvme && !volumes.contains(&disk) && store_drives.is_empty() {
                // No instance-store link at all yet: udev may still be at it.
                missing.push(format!(
                    "{path} is {at}, but no instance-store drive is linked on the node"
                ));
                continue;
            }
            if volumes.contains(&disk) || (nvme && !store_drives.contains(disk)) {
                return Err(StepError::permanent(
                    "DeviceMismatch",
                    format!(
                        "[R5] {name}: aerospike.conf names {path} as an instance-store primary, but on the node it is {at}, which is {}: the namespace would be written over that disk. {outcome}. The kernel numbers NVMe devices in the order they answer at boot, so on this instance the policy's primary path is another disk: check the instance type's instance-store drives and the paths the policy gives the primaries. {next}",
                        if volumes.contains(&disk) {
                            "one of the node's EBS data volumes"
                        } else {
                            "no instance-store drive (the root volume, or an EBS volume)"
                        }
                    ),
                ));
            }
        }
        let mut waits = self.device_waits.lock().expect("not poisoned");
        if missing.is_empty() {
            waits.remove(&input.step.id);
            return Ok(None);
        }
        let since = *waits
            .entry(input.step.id.clone())
            .or_insert_with(std::time::Instant::now);
        let why = format!("{name}: {}", missing.join("; "));
        if since.elapsed() >= self.device_grace {
            return Err(StepError::permanent(
                "DeviceMissing",
                format!(
                    "[R5] {why} ({}s after the volumes were attached): which device holds which volume cannot be confirmed. {outcome}. {next}",
                    self.device_grace.as_secs()
                ),
            ));
        }
        Ok(Some(why))
    }
}

/// The grace for a volume's link, `ASDR_DEVICE_GRACE_MS` when set (tests that show the refusal).
pub(super) fn device_grace() -> Duration {
    std::env::var("ASDR_DEVICE_GRACE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(LINK_GRACE, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volumes_link_is_its_serial_in_the_dev_tree_of_the_path() {
        assert_eq!(
            volume_link("/dev/nvme3n1", "vol-0abc123"),
            "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc123"
        );
        assert_eq!(
            volume_link("/tmp/lab/nodes/a1/dev/nvme3n1", "vol-0abc"),
            "/tmp/lab/nodes/a1/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"
        );
    }

    #[test]
    fn a_partition_is_on_its_drive_in_any_dev_tree() {
        assert_eq!(drive("/dev/nvme3n1p1"), "/dev/nvme3n1");
        assert_eq!(drive("/lab/a1/dev/nvme3n1p2"), "/lab/a1/dev/nvme3n1");
        assert_eq!(drive("/dev/xvdf1"), "/dev/xvdf");
        assert_eq!(drive("/dev/nvme1n1"), "/dev/nvme1n1");
    }

    #[test]
    fn lvm_and_md_devices_are_found_by_their_members_not_their_names() {
        assert!(is_assembled("/dev/dm-0"));
        assert!(is_assembled("/dev/md127"));
        assert!(!is_assembled("/dev/md"));
        assert!(!is_assembled("/dev/nvme3n1"));
        assert!(!is_assembled("/dev/mdx1"));
    }

    #[test]
    fn xen_names_a_volume_after_its_attachment() {
        assert_eq!(xen_names("/dev/sdf"), ["sdf", "xvdf"]);
        assert_eq!(xen_names("/dev/xvdg"), ["sdg", "xvdg"]);
    }
}
