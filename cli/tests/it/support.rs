//! What the world-file tests share: a command that must succeed, a scratch copy's world read and
//! written back, and a plan as JSON.

use std::process::Output;

use asdr_planner::{Plan, World};
use asdr_providers::world_file::{self, Format};

use crate::apply::Scratch;

/// The command's stdout, once it is known to have succeeded (else its exit and output, whole).
pub(crate) fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn load(s: &Scratch, world: &str) -> World {
    world_file::load(&s.path(world)).unwrap()
}

pub(crate) fn save(s: &Scratch, world: &str, w: &World) {
    std::fs::write(
        s.path(world),
        world_file::to_string(w, Format::Yaml).unwrap(),
    )
    .unwrap();
}

/// `plan --json` with `args` on the scratch copy's `world`.
pub(crate) fn plan_of(s: &Scratch, world: &str, args: &[&str]) -> Plan {
    let mut all = vec!["plan", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(&s.asdr(world, &all, &[]))).unwrap()
}
