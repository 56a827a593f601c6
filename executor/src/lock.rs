//! One apply per cluster at a time on this machine: an operating-system lock on a file beside the
//! policy (`flock`), held by the process for as long as it runs. The kernel releases it when the
//! process ends, however it ends: a killed apply leaves no lock to break by hand. The file also
//! names its holder, for the message another apply gets.
//!
//! The lock is local to the machine: applies from several machines take turns on the policy's
//! S3 lock instead.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub host: String,
    pub plan_id: String,
    pub since: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} (plan {}, since {})",
            self.pid, self.host, self.plan_id, self.since
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another apply holds the lock {path}: {holder}")]
    Held { path: String, holder: Holder },
    /// Held, by a process that has not written its name yet.
    #[error("another apply holds the lock {path} (it is just starting)")]
    HeldUnnamed { path: String },
    #[error("lock {path}: {message}")]
    Io { path: String, message: String },
}

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: File,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LockError + '_ {
    move |e| LockError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Who the file says holds (or last held) the lock.
pub fn read_holder(path: &Path) -> Option<Holder> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

fn refused(path: &Path) -> LockError {
    let p = path.display().to_string();
    match read_holder(path) {
        Some(holder) => LockError::Held { path: p, holder },
        None => LockError::HeldUnnamed { path: p },
    }
}

/// Opens the lock file and takes the lock without waiting. The file a lock is taken on must still
/// be the one at `path` (a releasing holder removes it): otherwise it is opened anew.
fn lock_file(path: &Path) -> Result<Option<File>, LockError> {
    if let Some(dir) = path.parent() {
        crate::private::create_dir(dir).map_err(io(path))?;
    }
    loop {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io(path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(io(path)(e)),
        }
        let same = match std::fs::metadata(path) {
            Ok(m) => file.metadata().map_err(io(path))?.ino() == m.ino(),
            Err(_) => false,
        };
        if same {
            return Ok(Some(file));
        }
    }
}

pub fn acquire(path: &Path, holder: &Holder) -> Result<Lock, LockError> {
    let Some(mut file) = lock_file(path)? else {
        return Err(refused(path));
    };
    let text = serde_json::to_string(holder).expect("a holder serializes");
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(io(path))?;
    Ok(Lock {
        path: path.to_path_buf(),
        file,
    })
}

/// Whether a process holds the lock now (`status`), and who the file names; taking nothing.
pub fn probe(path: &Path) -> Result<Option<Option<Holder>>, LockError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    match file.try_lock_shared() {
        // Free: the shared lock goes with the file, closed here.
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(read_holder(path))),
        Err(TryLockError::Error(e)) => Err(io(path)(e)),
    }
}

/// `--break-lock`: refused while a process holds the lock. A lock no process holds is no lock:
/// the file a finished or killed apply left is removed, and who it named is returned.
pub fn break_lock(path: &Path) -> Result<Option<Holder>, LockError> {
    if !path.exists() {
        return Ok(None);
    }
    let Some(file) = lock_file(path)? else {
        return Err(refused(path));
    };
    let left = read_holder(path);
    std::fs::remove_file(path).map_err(io(path))?;
    drop(file);
    Ok(left)
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Removed while still held, so nobody takes the lock on a file about to vanish; the lock
        // itself goes with the file handle.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(plan: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            plan_id: plan.into(),
            since: "now".into(),
        }
    }

    #[test]
    fn a_second_acquire_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        let _held = acquire(&path, &me("p-1")).unwrap();
        let err = acquire(&path, &me("p-2")).unwrap_err();
        assert!(
            matches!(&err, LockError::Held { holder, .. } if holder.plan_id == "p-1"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
        assert!(break_lock(&path).is_err(), "a held lock is not broken");
    }

    #[test]
    fn the_file_a_dead_process_left_is_no_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        let dead = Holder {
            pid: u32::MAX - 1,
            host: hostname(),
            plan_id: "p-0".into(),
            since: "then".into(),
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        let held = acquire(&path, &me("p-1")).unwrap();
        assert_eq!(read_holder(&path).map(|h| h.plan_id), Some("p-1".into()));
        drop(held);
        assert!(!path.exists(), "released on drop");
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        assert_eq!(break_lock(&path).unwrap(), Some(dead));
        assert!(!path.exists());
    }
}
