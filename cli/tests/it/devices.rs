//! The devices a restored node starts on are the volumes asdr attached for them, end to end
//! through the binary against moto, the in-test nodes and the Nitro emulator (what a guest sees
//! of its EBS volumes: NVMe numbers in arrival order, serial links, attachment-name links; no
//! Nitro instance runs here).

use crate::ec2::{env, env_with, tag};
use asdr_providers::testkit_nitro::Numbering;
use std::collections::BTreeMap;

/// Which volume each of a1's guest paths is (the emulator writes the volume id into the file).
fn volume_at(env: &crate::ec2::Env, name: &str) -> String {
    std::fs::read_to_string(env.dir.path().join(format!("nodes/a1/dev/{name}")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The set's volumes now attached to a1's instance, by attachment name.
async fn attached(env: &crate::ec2::Env) -> BTreeMap<String, String> {
    let instance = env.live_instances("a1").await[0]
        .instance_id()
        .unwrap()
        .to_string();
    env.volumes_of(&instance)
        .await
        .into_iter()
        .map(|(dev, v)| (dev, v.volume_id().unwrap().to_string()))
        .collect()
}

/// An in-place restore swaps a1's three volumes. Attached one at a time in the order of the
/// NVMe numbers the config names, each lands where aerospike.conf looks for it, and the start
/// checks so on the node before Aerospike starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_restored_volumes_are_attached_in_config_order_and_checked_before_the_start() {
    let env = env(132, &[]).await;
    env.ok(&["apply", "--yes"]);
    let plan = env.ok(&["plan", "--restore", "a1-from-backup"]);
    let sdg = plan
        .lines()
        .find(|l| l.contains("attach_volume:a1:/dev/sdg") && l.contains('←'))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(
        sdg.split('←')
            .nth(1)
            .unwrap()
            .contains("attach_volume:a1:/dev/sdf"),
        "the second attach waits for the first: {sdg}"
    );
    env.ok(&["apply", "--yes", "--restore", "a1-from-backup"]);
    let now = attached(&env).await;
    assert_eq!(volume_at(&env, "nvme3n1"), now["/dev/sdf"]);
    assert_eq!(volume_at(&env, "nvme4n1"), now["/dev/sdg"]);
    assert_eq!(volume_at(&env, "sdh"), now["/dev/sdh"]);
    assert_eq!(env.nodes.starts("a1"), ["cold"]);
}

/// The guest numbers the restored volumes the other way round (a kernel that saw them arrive
/// in another order): `/dev/nvme3n1`, which aerospike.conf names for the volume at `/dev/sdf`,
/// is the one at `/dev/sdg`. Aerospike is not started on it — a cold start would rebuild the
/// namespace from another volume's data — and the error says which is which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_a_node_whose_nvme_numbers_came_out_swapped_is_never_started_on_them() {
    let env = env(134, &[]).await;
    env.ok(&["apply", "--yes"]);
    env.nitro.set_numbering(Numbering::Reversed);
    let out = env
        .command(&["apply", "--yes", "--restore", "a1-from-backup"])
        .output()
        .unwrap();
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    let now = attached(&env).await;
    assert!(
        all.contains("Aerospike was not started") && all.contains(&now["/dev/sdf"]),
        "{all}"
    );
    assert!(
        env.nodes.starts("a1").is_empty(),
        "a1 was started on swapped devices"
    );
    assert!(
        env.dir.path().join("control/a1.down").exists(),
        "a1 stays stopped"
    );
}

/// The policy names the shadows by their attachment-name links (`/dev/sdf`, which
/// amazon-ec2-utils' udev rules create on Amazon Linux): however the guest numbers the volumes,
/// each link is its volume, the check agrees, and a1 comes back on the right data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_shadows_named_by_attachment_links_survive_any_nvme_numbering() {
    let env = env_with(
        136,
        &[
            ("dev/nvme3n1    #", "dev/sdf    #"),
            ("dev/nvme4n1\n", "dev/sdg\n"),
        ],
        &[("nvme3n1", "sdf"), ("nvme4n1", "sdg")],
    )
    .await;
    env.nitro.set_numbering(Numbering::Reversed);
    env.ok(&["apply", "--yes"]);
    let set: Vec<String> = env
        .snapshots()
        .await
        .iter()
        .filter(|s| tag(s, "asdr:node") == Some("a1"))
        .map(|s| s.snapshot_id().unwrap().to_string())
        .collect();
    assert_eq!(set.len(), 3);
    env.ok(&["apply", "--yes", "--restore", "a1-from-backup"]);
    let now = attached(&env).await;
    assert_eq!(volume_at(&env, "sdf"), now["/dev/sdf"]);
    assert_eq!(volume_at(&env, "sdg"), now["/dev/sdg"]);
    assert_ne!(
        volume_at(&env, "nvme3n1"),
        now["/dev/sdf"],
        "the emulator did number them the other way round"
    );
    assert_eq!(env.nodes.starts("a1"), ["cold"]);
}

/// A replacement instance whose root volume answered second at boot: the kernel named it
/// `nvme1n1`, which aerospike.conf names as an instance-store primary. Started, Aerospike would
/// write the namespace over the OS disk. The start checks the primaries too, and refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_a_primary_that_is_not_an_instance_store_drive_is_never_started_on() {
    let env = env(150, &[]).await;
    env.ok(&["apply", "--yes"]);
    env.terminate("a1").await;
    env.nitro.set_numbering(Numbering::RootSecond);
    let out = env
        .command(&["apply", "--yes", "--restore", "replace-a1"])
        .output()
        .unwrap();
    let all = crate::ec2::all(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("as an instance-store primary") && all.contains("Aerospike was not started"),
        "{all}"
    );
    assert!(env.nodes.starts("a1").is_empty(), "a1 was started");
}

/// udev moves links one at a time: a path read between two moves can name another volume's
/// device for a moment. The start waits for it to settle (never starting meanwhile) and goes on
/// once every path is its volume; only a mismatch that lasts is refused (the test above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r5_a_mismatch_that_settles_is_waited_out_and_the_node_starts_on_its_own_volumes() {
    let env = env(138, &[]).await;
    env.ok(&["apply", "--yes"]);
    env.nitro.set_numbering(Numbering::Reversed);
    let log = env.dir.path().join("apply.err");
    let mut apply = env
        .command(&["apply", "--yes", "--restore", "a1-from-backup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Until the start has seen the swapped links and waits on them…
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("(waiting for the links to settle)") {
            break;
        }
        assert!(
            apply.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline,
            "the start never waited on the swapped links:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        env.nodes.starts("a1").is_empty(),
        "nothing starts while they are swapped"
    );
    // …then the links settle as the attachments say: each volume's serial link and device where
    // the config looks for it (written beside and renamed over, as udev does; the emulator
    // rewrites the tree only when an attachment changes).
    let now = attached(&env).await;
    let dev = env.dir.path().join("nodes/a1/dev");
    for (nvme, at) in [("nvme3n1", "/dev/sdf"), ("nvme4n1", "/dev/sdg")] {
        let volume = &now[at];
        let tmp = dev.join(format!(".{nvme}.new"));
        std::fs::write(&tmp, volume).unwrap();
        std::fs::rename(&tmp, dev.join(nvme)).unwrap();
        let link = dev.join(format!(
            "disk/by-id/nvme-Amazon_Elastic_Block_Store_{}",
            volume.replace('-', "")
        ));
        let tmp = dev.join(format!("disk/by-id/.{nvme}.new"));
        std::os::unix::fs::symlink(format!("../../{nvme}"), &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
    }
    let status = apply.wait().unwrap();
    assert!(
        status.success(),
        "{}",
        std::fs::read_to_string(&log).unwrap()
    );
    assert_eq!(volume_at(&env, "nvme3n1"), now["/dev/sdf"]);
    assert_eq!(volume_at(&env, "nvme4n1"), now["/dev/sdg"]);
    assert_eq!(env.nodes.starts("a1"), ["cold"]);
}
