//! One apply per cluster at a time: a lock file created exclusively, naming its holder. A lock
//! whose holder process is gone is reported as stale and can be broken explicitly
//! (`asdr apply --break-lock`); it is never broken silently.

use std::io::Write;
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
    #[error(
        "the lock {path} was left by {holder}, which is no longer running; break it with `asdr apply --break-lock` once you are sure no apply runs"
    )]
    Stale { path: String, holder: Holder },
    #[error("lock {path}: {message}")]
    Io { path: String, message: String },
}

/// A held lock; dropping it releases it.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether the holder still runs. Only a holder on this host can be checked; one elsewhere is
/// assumed alive.
fn alive(holder: &Holder) -> bool {
    holder.host != hostname() || Path::new(&format!("/proc/{}", holder.pid)).exists()
}

pub fn read_holder(path: &Path) -> Result<Holder, LockError> {
    let text = std::fs::read_to_string(path).map_err(|e| LockError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| LockError::Io {
        path: path.display().to_string(),
        message: format!("unreadable lock file: {e}"),
    })
}

pub fn acquire(path: &Path, holder: &Holder) -> Result<Lock, LockError> {
    let p = path.display().to_string();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| LockError::Io {
            path: p.clone(),
            message: e.to_string(),
        })?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            let text = serde_json::to_string(holder).expect("a holder serializes");
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_data())
                .map_err(|e| LockError::Io {
                    path: p,
                    message: e.to_string(),
                })?;
            Ok(Lock {
                path: path.to_path_buf(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let other = read_holder(path)?;
            if alive(&other) {
                Err(LockError::Held {
                    path: p,
                    holder: other,
                })
            } else {
                Err(LockError::Stale {
                    path: p,
                    holder: other,
                })
            }
        }
        Err(e) => Err(LockError::Io {
            path: p,
            message: e.to_string(),
        }),
    }
}

/// Removes a lock, returning who held it. Refuses while that holder still runs here.
pub fn break_lock(path: &Path) -> Result<Option<Holder>, LockError> {
    if !path.exists() {
        return Ok(None);
    }
    let holder = read_holder(path)?;
    if holder.host == hostname() && alive(&holder) {
        return Err(LockError::Held {
            path: path.display().to_string(),
            holder,
        });
    }
    std::fs::remove_file(path).map_err(|e| LockError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(Some(holder))
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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
    }

    #[test]
    fn a_lock_of_a_dead_process_is_stale_and_breakable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.lock");
        let dead = Holder {
            pid: u32::MAX - 1,
            host: hostname(),
            plan_id: "p-0".into(),
            since: "then".into(),
        };
        std::fs::write(&path, serde_json::to_string(&dead).unwrap()).unwrap();
        assert!(matches!(
            acquire(&path, &me("p-1")),
            Err(LockError::Stale { .. })
        ));
        assert_eq!(break_lock(&path).unwrap(), Some(dead));
        drop(acquire(&path, &me("p-1")).unwrap());
        assert!(!path.exists(), "released on drop");
    }
}
