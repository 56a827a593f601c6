//! Where applies of a cluster take turns: the policy's `lock` (an S3 object for a team, or a
//! file), else a file beside the policy. One type over both, so callers never tell them apart.

use std::path::PathBuf;

use asdr_executor::lock::{self, Holder};
use asdr_providers::store::lock::S3Lock;
use tokio::runtime::Handle;

use crate::EngineError;

pub enum ClusterLock {
    File(PathBuf),
    S3(S3Lock, Handle),
}

/// A lock this process holds; [`HeldLock::release`] gives it back. A killed process leaves it
/// behind, to be broken on request.
pub enum HeldLock {
    File(lock::Lock),
    /// With the task that renews its lease while the apply runs.
    S3(S3Lock, Handle, tokio::task::JoinHandle<()>),
}

fn lock_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Lock(e.to_string())
}

impl ClusterLock {
    /// Who holds the lock now, in words (`status`); None when it is free.
    pub fn held_by(&self) -> Result<Option<String>, EngineError> {
        match self {
            ClusterLock::File(path) => Ok(lock::probe(path).map_err(lock_error)?.map(|h| {
                h.map_or_else(
                    || "a process that left no name".to_string(),
                    |h| h.to_string(),
                )
            })),
            ClusterLock::S3(s3, rt) => Ok(rt.block_on(s3.found()).map_err(lock_error)?.map(|f| {
                format!(
                    "{} (renewed {} ago)",
                    f.holder,
                    asdr_providers::store::lock::human(f.age)
                )
            })),
        }
    }
}

impl std::fmt::Debug for ClusterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterLock::File(p) => write!(f, "ClusterLock::File({})", p.display()),
            ClusterLock::S3(s3, _) => write!(f, "ClusterLock::S3({})", s3.uri()),
        }
    }
}

impl std::fmt::Debug for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeldLock::File(_) => f.write_str("HeldLock::File"),
            HeldLock::S3(s3, _, _) => write!(f, "HeldLock::S3({})", s3.uri()),
        }
    }
}

impl ClusterLock {
    pub fn acquire(&self, holder: &Holder) -> Result<HeldLock, EngineError> {
        match self {
            ClusterLock::File(path) => lock::acquire(path, holder)
                .map(HeldLock::File)
                .map_err(lock_error),
            ClusterLock::S3(s3, rt) => {
                let text = serde_json::to_string(holder).expect("a holder serializes");
                let etag = rt.block_on(s3.acquire(&text)).map_err(lock_error)?;
                let renewal = rt.spawn(renew(s3.clone(), text, etag));
                Ok(HeldLock::S3(s3.clone(), rt.clone(), renewal))
            }
        }
    }

    /// Removes the lock: (where it was, who held it, if anyone).
    pub fn break_it(&self) -> Result<(String, Option<String>), EngineError> {
        match self {
            ClusterLock::File(path) => Ok((
                path.display().to_string(),
                lock::break_lock(path)
                    .map_err(lock_error)?
                    .map(|h| h.to_string()),
            )),
            ClusterLock::S3(s3, rt) => Ok((
                s3.uri().to_string(),
                rt.block_on(s3.release()).map_err(lock_error)?,
            )),
        }
    }
}

impl HeldLock {
    pub fn release(self) -> Result<(), EngineError> {
        match self {
            HeldLock::File(l) => {
                drop(l);
                Ok(())
            }
            HeldLock::S3(s3, rt, renewal) => {
                renewal.abort();
                rt.block_on(s3.release()).map(|_| ()).map_err(lock_error)
            }
        }
    }
}

/// Renews the S3 lock's lease while the apply runs, each time only if the object is still the
/// version this apply wrote. A lock broken or taken meanwhile is said once, loudly: two applies
/// may then run.
async fn renew(s3: S3Lock, holder: String, mut etag: String) {
    loop {
        tokio::time::sleep(s3.renew_every).await;
        // The holder as written, and when it last renewed (which also makes each version new).
        let mut body: serde_json::Value =
            serde_json::from_str(&holder).unwrap_or_else(|_| serde_json::json!({"holder": holder}));
        body["renewed"] = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
            .into();
        match s3.renew(&body.to_string(), &etag).await {
            Ok(next) => etag = next,
            Err(e @ asdr_providers::store::lock::S3LockError::Lost { .. }) => {
                eprintln!("warning: {e}; another apply may be running on this cluster");
                return;
            }
            // Cut off from S3 for a moment: the lease outlasts a few missed renewals.
            Err(e) => eprintln!("warning: the lock's lease was not renewed: {e}"),
        }
    }
}
