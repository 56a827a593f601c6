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
