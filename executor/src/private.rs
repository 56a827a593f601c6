//! The state directory (`.asdr/`: journals, recorded plans and worlds, the lock file) is asdr's
//! own: what it holds decides what a resumed apply runs as root on the nodes. It is created
//! owner-only (0700, its files 0600), and nothing in it is opened through a symbolic link: a link
//! planted there could make asdr read a plan or world it did not write, or write over another
//! file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents owner-only (what exists is left as it is: a lock's
/// directory may be the operator's).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates asdr's own `dir` (the journal's) owner-only, and makes an existing one owner-only. A
/// `dir` that is a symbolic link is refused.
pub fn create_own_dir(dir: &Path) -> std::io::Result<()> {
    create_dir(dir)?;
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() || !meta.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory of its own (a symbolic link?): asdr keeps its state only in a directory it made",
            dir.display()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for reading, never through a symbolic link.
pub fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(link_refused)
}

/// ELOOP from O_NOFOLLOW, said plainly.
fn link_refused(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        std::io::Error::other(
            "a symbolic link: asdr reads and writes its state only in files it made itself",
        )
    } else {
        e
    }
}

/// Reads `path` whole, never through a symbolic link.
pub fn read_to_string(path: &Path) -> std::io::Result<String> {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut open(path)?, &mut s)?;
    Ok(s)
}

/// Opens `path` for appending (created 0600), never through a symbolic link.
pub fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(link_refused)
}

/// Writes `bytes` to `path` whole or not at all: a fresh temporary file beside it, created
/// exclusively (a planted name fails the write rather than redirecting it), then renamed.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let tmp = path.with_file_name(format!(".{name}.{}.{nanos}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)
}
