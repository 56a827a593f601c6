//! The tests' shared fixture: one of the example policies (`examples/<name>/asdr.yaml`), edited.
//! Every edit is checked to apply, so no test silently runs on the unedited example after the
//! example changes.

use std::path::{Path, PathBuf};

use asdr_specs::{Diagnostics, Policy};

#[derive(Debug, Clone)]
pub struct ExamplePolicy {
    /// The example's folder (its templates are relative to it).
    pub dir: PathBuf,
    pub text: String,
}

impl ExamplePolicy {
    /// `examples/<name>` of this repository.
    pub fn named(name: &str) -> ExamplePolicy {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name);
        let text = std::fs::read_to_string(dir.join("asdr.yaml"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        ExamplePolicy { dir, text }
    }

    /// The policy of POLICY.md: cluster prod-east, three nodes in two zones, Enterprise.
    pub fn prod_east() -> ExamplePolicy {
        ExamplePolicy::named("prod-east")
    }

    /// A Community Edition cluster.
    pub fn community() -> ExamplePolicy {
        ExamplePolicy::named("community")
    }

    /// `from` replaced by `to`, once.
    pub fn edit(mut self, from: &str, to: &str) -> ExamplePolicy {
        assert!(self.text.contains(from), "edit `{from}` does not apply");
        self.text = self.text.replacen(from, to, 1);
        self
    }

    /// Every edit, in order.
    pub fn edits<A: AsRef<str>, B: AsRef<str>>(self, edits: &[(A, B)]) -> ExamplePolicy {
        edits
            .iter()
            .fold(self, |p, (a, b)| p.edit(a.as_ref(), b.as_ref()))
    }

    /// `more` added at the end (more restores, drills).
    pub fn append(mut self, more: &str) -> ExamplePolicy {
        self.text.push_str(more);
        self
    }

    /// The nodes on the in-test cluster: at `ips` (a1, b1, a2) answering on `port`, their work
    /// directories and aerospike.conf under `<root>/nodes/<node>`, the service commands touching
    /// `<root>/control/<node>.down` (what the in-test nodes watch), SMD archives to a file store
    /// at `<root>/store`, the local transport.
    pub fn on_test_nodes(self, root: &str, port: u16, ips: [&str; 3]) -> ExamplePolicy {
        self.edits(&[
            ("10.0.1.11", ips[0].to_string()),
            ("10.0.2.11", ips[1].to_string()),
            ("10.0.1.12", ips[2].to_string()),
            ("info_port: 3000", format!("info_port: {port}")),
            ("transport: ssm", "transport: local".to_string()),
            (
                "work_directory: /opt/aerospike",
                format!("work_directory: {root}/nodes/{{{{ node }}}}"),
            ),
            (
                "stop: systemctl stop aerospike",
                format!("stop: touch {root}/control/{{{{ node }}}}.down"),
            ),
            (
                "start: systemctl start aerospike",
                format!("start: rm -f {root}/control/{{{{ node }}}}.down"),
            ),
            (
                "path: /etc/aerospike/aerospike.conf",
                format!("path: {root}/nodes/{{{{ node }}}}/aerospike.conf"),
            ),
            (
                "smd: {to: s3://acme-backups/asdr/prod-east/smd}",
                format!("smd: {{to: file://{root}/store}}"),
            ),
        ])
        .cold_start_on_test_nodes(root)
    }

    /// The namespaces' devices in each node's own device tree under `<root>/nodes/<node>/dev`
    /// (where the Nitro emulator puts what a guest sees of its volumes), attached at the same
    /// EBS names.
    pub fn on_lab_devices(self, root: &str) -> ExamplePolicy {
        let at = |name: &str| format!("{root}/nodes/{{{{ node }}}}/dev/{name}");
        self.edits(&[
            (
                "device: /dev/nvme1n1    #".to_string(),
                format!("device: {}    #", at("nvme1n1")),
            ),
            (
                "shadow: /dev/nvme3n1    #".to_string(),
                format!("shadow: {}    #", at("nvme3n1")),
            ),
            (
                "device: /dev/nvme2n1\n".to_string(),
                format!("device: {}\n", at("nvme2n1")),
            ),
            (
                "shadow: /dev/nvme4n1\n".to_string(),
                format!("shadow: {}\n", at("nvme4n1")),
            ),
            (
                "- device: /dev/sdh        #".to_string(),
                format!("- ebs: /dev/sdh\n          device: {}        #", at("sdh")),
            ),
        ])
    }

    /// What `asd-coldstart` does, as the in-test nodes see it: a start that leaves
    /// `<root>/control/<node>.cold`, so the node records a cold start (Enterprise emulation).
    fn cold_start_on_test_nodes(self, root: &str) -> ExamplePolicy {
        let from = "cold_start: asd-coldstart";
        if !self.text.contains(from) {
            return self;
        }
        let to = format!(
            "cold_start: touch {root}/control/{{{{ node }}}}.cold && rm -f {root}/control/{{{{ node }}}}.down"
        );
        self.edit(from, &to)
    }

    pub fn parse(&self) -> Result<Policy, Diagnostics> {
        asdr_specs::parse("asdr.yaml", &self.text, &self.dir)
    }

    /// The policy; a test whose edits make it invalid fails with the diagnostics.
    pub fn policy(&self) -> Policy {
        self.parse().unwrap_or_else(|d| panic!("{d}"))
    }

    /// Writes the policy and its templates into `dir` (where the CLI is run); returns the
    /// policy's path.
    pub fn write_to(&self, dir: &Path) -> PathBuf {
        let templates = dir.join("templates");
        std::fs::create_dir_all(&templates).expect("a templates folder");
        for t in std::fs::read_dir(self.dir.join("templates")).expect("the example's templates") {
            let t = t.expect("a template");
            std::fs::copy(t.path(), templates.join(t.file_name())).expect("template copied");
        }
        let path = dir.join("asdr.yaml");
        std::fs::write(&path, &self.text).expect("policy written");
        path
    }
}
