use std::path::{Path, PathBuf};

mod source;
mod text;

use asdr_providers::world_file::{self, Format};
use source::{NewNode, Shape, from_flags, from_world};

use crate::args::{Global, InitArgs};
use crate::commands::print;
use crate::error::CommandError;

/// The aerospike.conf template a new policy starts with: mesh heartbeats between the policy's
/// nodes, each node's id, a storage-engine device line per declared device.
const TEMPLATE: &str = include_str!("init/aerospike.conf.j2");

/// `asdr init`: a commented policy for a new cluster, its aerospike.conf template and (from
/// flags) a world-file skeleton to rehearse on. The policy is validated before anything is
/// written, and nothing that exists is overwritten without `--force`.
pub fn cmd_init(g: &Global, a: &InitArgs) -> Result<i32, CommandError> {
    let user = |m: String| CommandError::User(m);
    let (nodes, shape, source_world) = match &a.from_world {
        Some(path) => {
            let world = world_file::load(path).map_err(|e| user(e.to_string()))?;
            let (nodes, shape) = from_world(&world, &a.name, a.name_prefix.as_deref())
                .map_err(|m| user(format!("{}: {m}", path.display())))?;
            (nodes, shape, Some(path.clone()))
        }
        None => (
            from_flags(&a.nodes).map_err(user)?,
            Shape {
                // EBS only: no instance-store drive to shadow.
                instance_type: "r6i.xlarge".into(),
                instance_store: 0,
                devices: vec!["/dev/sdf".into()],
                namespaces: None,
                smd_to: None,
                notes: Vec::new(),
            },
            None,
        ),
    };
    let region = region(g.region.as_deref(), &nodes).map_err(user)?;
    let namespaces = if a.namespaces.is_empty() {
        vec!["test".to_string()]
    } else {
        a.namespaces.clone()
    };
    let text = text::policy_text(a, &region, &nodes, &shape, &namespaces);
    // Validated before anything is written, with the placeholders filled by stand-ins (only
    // they may be wrong): the template is read from a scratch directory of our own, made new.
    let scratch = unique_dir(&std::env::temp_dir())
        .map_err(|e| user(format!("cannot make a scratch directory: {e}")))?;
    let checked = std::fs::create_dir(scratch.join("templates"))
        .and_then(|()| std::fs::write(scratch.join("templates/aerospike.conf.j2"), TEMPLATE))
        .map_err(|e| user(format!("cannot write {}: {e}", scratch.display())))
        .and_then(|()| {
            asdr_specs::parse("asdr.yaml", &stand_ins(&text), &scratch).map_err(|d| {
                user(format!(
                    "the policy these flags make does not validate; nothing was written:\n{d}"
                ))
            })
        });
    let _ = std::fs::remove_dir_all(&scratch);
    let parsed = checked;
    let policy = parsed?;
    let mut files: Vec<(PathBuf, String)> = vec![
        (a.dir.join("asdr.yaml"), text),
        (
            a.dir.join("templates/aerospike.conf.j2"),
            TEMPLATE.to_string(),
        ),
    ];
    if source_world.is_none() {
        let now = time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
        let mut world = asdr_planner::skeleton::world(&policy, now);
        // A subnet still to be filled in is not one the instances are in.
        for i in &mut world.instances {
            if i.subnet_id
                .as_deref()
                .is_some_and(|s| s.starts_with(STAND_IN))
            {
                i.subnet_id = None;
            }
        }
        let mut yaml = String::from(
            "# A skeleton world for rehearsing the new policy: what a healthy cluster of it would show\n# before its first backup (ids and sizes made up). `asdr inventory` writes the real one.\n",
        );
        yaml.push_str(&world_file::to_string(&world, Format::Yaml)?);
        files.push((a.dir.join("world.yaml"), yaml));
    }
    let exists: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !exists.is_empty() && !a.force {
        return Err(user(format!(
            "{} already exist(s); nothing was written (--force overwrites)",
            exists.join(", ")
        )));
    }
    for (path, content) in &files {
        write(path, content).map_err(user)?;
    }
    if !g.quiet {
        for note in &shape.notes {
            eprintln!("note: {note}");
        }
        print(&next_steps(a, &files, source_world.as_deref()))?;
    }
    Ok(0)
}

/// What stands in for each placeholder while `init` validates its own text.
const STAND_IN: &str = "subnet-0000init";

fn stand_ins(text: &str) -> String {
    text.replace("ami-REPLACE", "ami-0000init")
        .replace("subnet-REPLACE", STAND_IN)
        .replace("sg-REPLACE", "sg-0000init")
        .replace("s3://REPLACE-bucket", "s3://init-bucket")
        .replace("/dev/REPLACE-", "/dev/init")
}

/// A directory made new (never one that existed) under `parent`.
fn unique_dir(parent: &Path) -> std::io::Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for k in 0..100u32 {
        let dir = parent.join(format!("asdr-init-{}-{nanos:x}-{k}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free name"))
}

fn write(path: &Path, content: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn next_steps(a: &InitArgs, files: &[(PathBuf, String)], world: Option<&Path>) -> String {
    let mut out = String::from("wrote:\n");
    for (p, _) in files {
        out.push_str(&format!("  {}\n", p.display()));
    }
    let policy = a.dir.join("asdr.yaml");
    let text = files.first().map_or("", |(_, t)| t.as_str());
    // What is left to fill in, as the text has it.
    let left: Vec<&str> = [
        ("ami-REPLACE", "the AMI"),
        ("sg-REPLACE", "security groups"),
        ("subnet-REPLACE", "subnets"),
        ("REPLACE-bucket", "the SMD store"),
        ("/dev/REPLACE-", "each shadow's EBS attachment name"),
    ]
    .into_iter()
    .filter(|(marker, _)| text.contains(marker))
    .map(|(_, what)| what)
    .collect();
    let world_path = world.map_or_else(|| a.dir.join("world.yaml"), Path::to_path_buf);
    out.push_str(&format!(
        "\nnext:\n  1. fill in the values marked REPLACE in {} ({}); validate refuses them until then\n  2. adjust namespaces, devices and templates/aerospike.conf.j2 to your nodes\n  3. asdr -f {} validate\n  4. asdr -f {} --world {} plan      # the first backup, reviewed offline\n",
        policy.display(),
        left.join(", "),
        policy.display(),
        policy.display(),
        world_path.display()
    ));
    out
}

/// `--region`, else the nodes' zones less their letter; all must agree.
fn region(given: Option<&str>, nodes: &[NewNode]) -> Result<String, String> {
    let of = |zone: &str| {
        zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
            .to_string()
    };
    let region = match given {
        Some(r) => r.to_string(),
        None => of(&nodes[0].zone),
    };
    if let Some(n) = nodes.iter().find(|n| of(&n.zone) != region) {
        return Err(format!(
            "node {} is in zone {}, not in region {region}",
            n.name, n.zone
        ));
    }
    Ok(region)
}
