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

/// What the node said of one device: where its config path and its volume's link resolve.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    path: Option<String>,
    volume: Option<String>,
}

/// The serial link of `volume_id`, in the `/dev` tree `path` is in (`/dev/disk/by-id/…` for any
/// path under `/dev`; a lab that keeps its devices under `<root>/dev` keeps its links there).
pub(crate) fn volume_link(path: &str, volume_id: &str) -> String {
    let root = path.find("/dev/").map_or("", |i| &path[..i]);
    format!(
        "{root}/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{}",
        volume_id.replace('-', "")
    )
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
    /// Ok(None) when every device the start names is its volume; Ok(Some(why)) while a volume's
    /// link has not appeared yet; a permanent error for a path that is another device.
    pub(super) async fn check_devices(
        &self,
        input: &StepInput<'_>,
        name: &str,
    ) -> Result<Option<String>, StepError> {
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
        // One line per device: where the path resolves, then where the volume's link does
        // (empty when it does not exist).
        let script = wanted
            .iter()
            .map(|(d, volume)| {
                format!(
                    "printf '%s|%s\\n' \"$(readlink -e -- {} 2>/dev/null)\" \"$(readlink -e -- {} 2>/dev/null)\"",
                    quote(&d.path),
                    quote(&volume_link(&d.path, volume))
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let target = self.target(name)?;
        let out = run_ok(&self.transport, &target, &script, None)
            .await
            .map_err(transport_error)?;
        let text = String::from_utf8_lossy(&out);
        let seen: Vec<Seen> = text
            .lines()
            .map(|l| {
                let (a, b) = l.split_once('|').unwrap_or((l, ""));
                let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
                Seen {
                    path: some(a),
                    volume: some(b),
                }
            })
            .collect();
        if seen.len() != wanted.len() {
            return Err(StepError::permanent(
                "DeviceCheck",
                format!(
                    "{name}: the device check printed {} lines for {} devices: {text}",
                    seen.len(),
                    wanted.len()
                ),
            ));
        }
        let mut missing = Vec::new();
        for ((d, volume), seen) in wanted.iter().zip(&seen) {
            match (&seen.path, &seen.volume) {
                (Some(at), Some(vol)) if at == vol => {}
                (Some(at), Some(vol)) => {
                    return Err(StepError::permanent(
                        "DeviceMismatch",
                        format!(
                            "[R5] {name}: aerospike.conf names {} for volume {volume} (attached at {}), but on the node {} is {at} and {volume} is {vol}. Aerospike was not started: it would read another volume's data as this one's. NVMe numbers follow the order volumes arrive; name EBS devices in the policy by a stable link (`/dev/sdf`, which amazon-ec2-utils' udev rules create from the attachment name) and apply again",
                            d.path, d.ebs, d.path
                        ),
                    ));
                }
                (Some(at), None)
                    if xen_names(&d.ebs)
                        .iter()
                        .any(|n| at.rsplit('/').next() == Some(n.as_str())) => {}
                (Some(at), None) if at.contains("nvme") => missing.push(format!(
                    "{} is {at}, but no device has {volume}'s serial ({})",
                    d.path,
                    volume_link(&d.path, volume)
                )),
                (Some(at), None) => {
                    return Err(StepError::permanent(
                        "DeviceMismatch",
                        format!(
                            "[R5] {name}: aerospike.conf names {} for volume {volume} (attached at {}), but on the node {} is {at}, which is neither {volume} ({}) nor the device Xen names after {}. Aerospike was not started",
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
                    "[R5] {why} ({}s after the volumes were attached). Aerospike was not started: which device holds which volume cannot be confirmed",
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
    fn xen_names_a_volume_after_its_attachment() {
        assert_eq!(xen_names("/dev/sdf"), ["sdf", "xvdf"]);
        assert_eq!(xen_names("/dev/xvdg"), ["sdg", "xvdg"]);
    }
}
