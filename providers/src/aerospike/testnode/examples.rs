//! The example policy's namespaces, as the in-test nodes report them.

use super::TestNamespace;

/// [`example_namespaces`] in each node's device tree under `<root>/nodes/<node>/dev` (the
/// policy's `on_lab_devices`).
pub fn example_namespaces_at(root: &str) -> Vec<TestNamespace> {
    let at = |p: &str| format!("{root}/nodes/{{node}}{p}");
    let mut out = example_namespaces();
    for ns in &mut out {
        for (dev, shadow) in &mut ns.devices {
            *dev = at(dev);
            *shadow = shadow.as_deref().map(at);
        }
    }
    out
}

/// The namespaces of the example policy (examples/prod-east): `users` on two shadowed devices,
/// `events` on one EBS device.
pub fn example_namespaces() -> Vec<TestNamespace> {
    vec![
        TestNamespace {
            name: "users".into(),
            replication_factor: 2,
            devices: vec![
                ("/dev/nvme1n1".into(), Some("/dev/nvme3n1".into())),
                ("/dev/nvme2n1".into(), Some("/dev/nvme4n1".into())),
            ],
        },
        TestNamespace {
            name: "events".into(),
            replication_factor: 2,
            devices: vec![("/dev/sdh".into(), None)],
        },
    ]
}
