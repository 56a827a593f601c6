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

/// Creates asdr's own `dir` (the journal's) owner-only, and makes an existing one owner-only.
/// `dir` and each directory above it up to the state directory (`.asdr`) must be a real
/// directory (not a symbolic link) owned by the user asdr runs as (or root), and not writable by
/// every user: what they hold decides what a resume or a teardown runs. (A group that may write
/// there is the operator's choice: Kubernetes gives a mounted volume its pod's `fsGroup`.)
pub fn create_own_dir(dir: &Path) -> std::io::Result<()> {
    create_dir(dir)?;
    // Who asdr runs as: the owner of a file it creates (no unsafe call needed).
    let probe = dir.join(format!(".asdr-owner-{}", std::process::id()));
    let me = {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&probe)
            .map_err(link_refused)?;
        let uid = std::os::unix::fs::MetadataExt::uid(&f.metadata()?);
        let _ = std::fs::remove_file(&probe);
        uid
    };
    // From `dir` up to the state directory (`.asdr`); a journal kept elsewhere (`dir` alone).
    let chain: Vec<&Path> = match dir
        .ancestors()
        .position(|a| a.file_name().is_some_and(|n| n == ".asdr"))
    {
        Some(i) => dir.ancestors().take(i + 1).collect(),
        None => vec![dir],
    };
    for d in chain {
        let meta = std::fs::symlink_metadata(d)?;
        // Root's own directories are as trusted as asdr's (a volume mounted for the state, as
        // Kubernetes does with its `fsGroup`, belongs to root).
        let owner = std::os::unix::fs::MetadataExt::uid(&meta);
        let own = owner == me || owner == 0;
        if meta.file_type().is_symlink() || !meta.is_dir() || !own {
            return Err(std::io::Error::other(format!(
                "{} is not a directory of asdr's own (a symbolic link, or owned by another user): asdr keeps its state only in directories the user it runs as made",
                d.display()
            )));
        }
        if d == dir && owner == me {
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
            }
        } else if meta.permissions().mode() & 0o002 != 0 {
            return Err(std::io::Error::other(format!(
                "{} can be written by other users, who could replace what asdr keeps there: `chmod go-w {}`",
                d.display(),
                d.display()
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Security review: a `.asdr` planted as a link (or left writable by others) handed the
    /// journal, and with it what a resume or a teardown runs, to whoever made it.
    #[test]
    fn a_state_directory_that_is_a_link_or_writable_by_others_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::create_dir(t.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, t.path().join("linked/.asdr")).unwrap();
        let err = create_own_dir(&t.path().join("linked/.asdr/journal")).unwrap_err();
        assert!(
            err.to_string().contains("not a directory of asdr's own"),
            "{err}"
        );

        let open = t.path().join("open/.asdr");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = create_own_dir(&open.join("journal")).unwrap_err();
        assert!(
            err.to_string().contains("can be written by other users"),
            "{err}"
        );

        // A group allowed to write (Kubernetes' fsGroup on a mounted volume) is the operator's.
        let shared = t.path().join("shared/.asdr");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o2775)).unwrap();
        create_own_dir(&shared.join("journal")).unwrap();

        let fine = t.path().join("fine/.asdr/drills/journal");
        create_own_dir(&fine).unwrap();
        let mode = std::fs::metadata(&fine).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(
            std::fs::read_dir(&fine).unwrap().next().is_none(),
            "no probe left"
        );
    }
}
