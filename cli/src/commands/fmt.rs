use std::io::Write;

use crate::args::{FmtArgs, Global};
use crate::commands::print;
use crate::error::CommandError;

/// `asdr fmt`: the policy file laid out one way, comments and key order kept. With `--check`,
/// nothing is written: the diff is printed and the exit code is 1 when the file is not laid out.
pub fn cmd_fmt(g: &Global, a: &FmtArgs) -> Result<i32, CommandError> {
    let path = &g.file;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CommandError::User(format!("cannot read {}: {e}", path.display())))?;
    let formatted = asdr_specs::fmt::format(&text)
        .map_err(|e| CommandError::User(format!("{}: {e}", path.display())))?;
    if formatted == text {
        return Ok(0);
    }
    if !a.check {
        refuse_mid_apply(path, &text)?;
        if std::fs::metadata(path).is_ok_and(|m| m.permissions().readonly()) {
            return Err(CommandError::User(format!(
                "{} is read-only: not rewritten (`asdr fmt --check` shows the changes)",
                path.display()
            )));
        }
    }
    if a.check {
        let diff = similar::TextDiff::from_lines(&text, &formatted);
        let name = path.display().to_string();
        print(
            &diff
                .unified_diff()
                .header(&name, &format!("{name} (asdr fmt)"))
                .to_string(),
        )?;
        return Ok(1);
    }
    // A policy reached through a link is rewritten where it lives; the link stays.
    let target = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
    replace(&target, &formatted)
        .map_err(|e| CommandError::User(format!("cannot write {}: {e}", path.display())))?;
    if !g.quiet {
        eprintln!("formatted {}", path.display());
    }
    Ok(0)
}

/// An apply (or a drill's) that did not finish resumes only against the policy it was planned
/// from, byte for byte: formatting it now would leave the resume refused with nodes stopped.
fn refuse_mid_apply(path: &std::path::Path, text: &str) -> Result<(), CommandError> {
    let Some(cluster) = asdr_specs::fmt::cluster_name(text) else {
        return Ok(());
    };
    let state = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join(".asdr");
    for dir in [state.join("journal"), state.join("drills/journal")] {
        let unfinished = asdr_executor::journal::unfinished(&dir, &cluster).unwrap_or_default();
        if let Some(plan) = unfinished.first() {
            return Err(CommandError::User(format!(
                "an apply of cluster {cluster} did not finish (plan {}): it resumes only against the policy as it is now, so {} is not rewritten; resume it (`asdr apply`) or discard it (`asdr apply --discard {}`) first",
                plan.plan_id,
                path.display(),
                plan.plan_id
            )));
        }
    }
    Ok(())
}

/// Writes beside the file and renames over it, keeping its permissions: an interrupted `fmt`
/// leaves the old file or the new one, never half of one.
fn replace(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "asdr.yaml".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.asdr-fmt-{}", std::process::id()));
    let perms = std::fs::metadata(path)?.permissions();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    let done = f
        .write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::set_permissions(&tmp, perms))
        .and_then(|()| std::fs::rename(&tmp, path));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}
