//! Where applies of a cluster take turns: the policy's `lock` (an S3 object for a team, or a
//! file), else a file beside the policy. One type over both, so callers never tell them apart.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asdr_executor::lock::{self, Holder};
use asdr_providers::store::lock::{S3Lock, S3LockError, human};
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
    S3 {
        s3: S3Lock,
        rt: Handle,
        renewal: tokio::task::JoinHandle<()>,
        lease: Arc<Lease>,
    },
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
            ClusterLock::S3(s3, rt) => Ok(rt
                .block_on(s3.found())
                .map_err(lock_error)?
                .map(|f| format!("{} (renewed {} ago)", f.holder, human(f.age)))),
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
            HeldLock::S3 { s3, .. } => write!(f, "HeldLock::S3({})", s3.uri()),
        }
    }
}

impl ClusterLock {
    /// Takes the lock for `holder`. An S3 lock's lease is renewed while it is held; should the
    /// lock be lost meanwhile (broken and taken by another apply, or unrenewed past the point
    /// another may take it), `on_lost` is called once, so the apply stops starting steps.
    pub fn acquire(
        &self,
        holder: &Holder,
        on_lost: impl Fn() + Send + Sync + 'static,
    ) -> Result<HeldLock, EngineError> {
        match self {
            ClusterLock::File(path) => lock::acquire(path, holder)
                .map(HeldLock::File)
                .map_err(lock_error),
            ClusterLock::S3(s3, rt) => {
                let text = serde_json::to_string(holder).expect("a holder serializes");
                let etag = rt.block_on(s3.acquire(&text)).map_err(lock_error)?;
                let lease = Arc::new(Lease {
                    etag: Mutex::new(etag),
                    ..Lease::default()
                });
                let renewal = rt.spawn(renew(s3.clone(), text, lease.clone(), on_lost));
                Ok(HeldLock::S3 {
                    s3: s3.clone(),
                    rt: rt.clone(),
                    renewal,
                    lease,
                })
            }
        }
    }

    /// Removes the lock whoever holds it: (where it was, who held it, if anyone).
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
                rt.block_on(s3.break_it()).map_err(lock_error)?,
            )),
        }
    }
}

/// An S3 lock's lease as this apply holds it: the version it wrote last, and why it lost it.
#[derive(Debug, Default)]
pub struct Lease {
    etag: Mutex<String>,
    lost: Mutex<Option<String>>,
    stop: tokio::sync::Notify,
    /// Held across each renewal's put and by a release: a release from a signal handler, while
    /// the renewal task still runs, waits for a put in flight and then deletes the version it
    /// wrote; no renewal starts after that (`released`).
    turn: tokio::sync::Mutex<()>,
    released: std::sync::atomic::AtomicBool,
    /// The bodies of renewal puts since the last answered one that failed without a clear
    /// refusal (unanswered, a connection cut): S3 may still have applied one, making a version
    /// this lease does not know. The object is this apply's if it holds exactly one of these
    /// bodies (each `renewed` time is unique to its put).
    unanswered: Mutex<Vec<String>>,
}

impl Lease {
    /// Why this apply no longer holds the lock, once it does not.
    pub fn lost(&self) -> Option<String> {
        self.lost.lock().expect("not poisoned").clone()
    }

    fn lose(&self, why: String) {
        self.lost.lock().expect("not poisoned").get_or_insert(why);
    }

    fn etag(&self) -> String {
        self.etag.lock().expect("not poisoned").clone()
    }

    /// After a conditional write was refused: whether the object is the version an unanswered
    /// renewal wrote after all, in which case its version is taken as this lease's.
    async fn own_unanswered(&self, s3: &S3Lock) -> bool {
        let bodies = self.unanswered.lock().expect("not poisoned").clone();
        if bodies.is_empty() {
            return false;
        }
        match s3.found().await {
            Ok(Some(found)) if bodies.iter().any(|b| b.trim() == found.holder) => {
                *self.etag.lock().expect("not poisoned") = found.etag;
                self.unanswered.lock().expect("not poisoned").clear();
                true
            }
            _ => false,
        }
    }
}

impl HeldLock {
    /// The S3 lock and its lease, for a release from a signal handler.
    pub fn s3_lease(&self) -> Option<(S3Lock, Arc<Lease>)> {
        match self {
            HeldLock::S3 { s3, lease, .. } => Some((s3.clone(), lease.clone())),
            HeldLock::File(_) => None,
        }
    }

    /// Gives the lock back. An S3 lock is removed only at the version this apply wrote last;
    /// one it lost while it ran is left to whoever holds it now, and said as an error: another
    /// apply may have run beside this one.
    pub fn release(self) -> Result<(), EngineError> {
        match self {
            HeldLock::File(l) => {
                drop(l);
                Ok(())
            }
            HeldLock::S3 {
                s3,
                rt,
                renewal,
                lease,
            } => {
                // The renewal ends after any put in flight, so the version below is the last.
                lease.stop.notify_one();
                let _ = rt.block_on(renewal);
                if let Some(why) = lease.lost() {
                    return Err(lost(&s3, &why));
                }
                match rt.block_on(release_s3(&s3, &lease, Duration::from_secs(30))) {
                    Ok(()) => Ok(()),
                    Err(e @ S3LockError::Lost { .. }) => Err(lost(&s3, &e.to_string())),
                    Err(e) => Err(lock_error(e)),
                }
            }
        }
    }
}

/// Removes the lock at the version of `lease`, unless the lease was lost; gives up after
/// `within` (S3 that does not answer must not keep asdr from ending).
pub async fn release_s3(
    s3: &S3Lock,
    lease: &Lease,
    within: std::time::Duration,
) -> Result<(), S3LockError> {
    let release = async {
        // After any renewal put in flight, and before any other: the version is the last.
        let _turn = lease.turn.lock().await;
        lease
            .released
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if lease.lost().is_some() {
            return Ok(());
        }
        match s3.release(&lease.etag()).await {
            Err(S3LockError::Lost { .. }) if lease.own_unanswered(s3).await => {
                s3.release(&lease.etag()).await
            }
            done => done,
        }
    };
    match tokio::time::timeout(within, release).await {
        Ok(done) => done,
        Err(_) => Err(S3LockError::Io {
            uri: s3.uri().to_string(),
            message: format!(
                "S3 did not answer within {}: the lock stays until its lease runs out",
                human(within)
            ),
        }),
    }
}

fn lost(s3: &S3Lock, why: &str) -> EngineError {
    EngineError::Lock(format!(
        "this apply lost the lock {} while it ran ({why}): it stopped starting steps, but another apply may have run beside it. See `asdr status` and the journals before applying again",
        s3.uri()
    ))
}

/// Renews the S3 lock's lease while the apply runs, each time only if the object is still the
/// version this apply wrote. The lock is lost when another version is there (broken, or taken),
/// or when it has gone unrenewed so long that another apply may take it as stale (its lease, or
/// the policy's `lock_expiry` if longer): then `on_lost` stops the apply, one renewal period
/// before that point. A renewal that does not answer (S3 unreachable, a connection that hangs)
/// is given up after one period: the clock, not S3's answer, decides.
async fn renew(
    s3: S3Lock,
    holder: String,
    lease: Arc<Lease>,
    on_lost: impl Fn() + Send + Sync + 'static,
) {
    let takeable_after = s3.expiry.unwrap_or_default().max(s3.lease());
    let mut renewed = Instant::now();
    let lose = |renewed: Instant, why: String| {
        eprintln!(
            "error: the lock's lease was not renewed for {} ({why}); another apply may take it, so this apply stops starting steps",
            human(renewed.elapsed())
        );
        lease.lose(format!(
            "its lease went unrenewed for {}",
            human(renewed.elapsed())
        ));
        on_lost();
    };
    let mut last_error = String::from("no answer yet");
    loop {
        // Stop one period before another apply may take the lock.
        let stop_at = renewed + takeable_after.saturating_sub(s3.renew_every);
        let left = || stop_at.saturating_duration_since(Instant::now());
        tokio::select! {
            () = tokio::time::sleep(s3.renew_every.min(left())) => {}
            () = lease.stop.notified() => return,
        }
        if left().is_zero() {
            lose(renewed, last_error);
            return;
        }
        // The holder as written, and when it last renewed (which also makes each version new).
        let mut body: serde_json::Value =
            serde_json::from_str(&holder).unwrap_or_else(|_| serde_json::json!({"holder": holder}));
        body["renewed"] = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
            .into();
        let turn = lease.turn.lock().await;
        if lease.released.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let (text, etag) = (body.to_string(), lease.etag());
        let attempt = tokio::time::timeout(s3.renew_every.min(left()), s3.renew(&text, &etag));
        // The turn is held until the new version is recorded (the end of this iteration).
        let _turn = turn;
        match attempt.await {
            Ok(Ok(next)) => {
                *lease.etag.lock().expect("not poisoned") = next;
                lease.unanswered.lock().expect("not poisoned").clear();
                renewed = Instant::now();
            }
            // The version is one this apply wrote in a renewal it gave up on: still its lock,
            // renewed at a time it cannot know, so the clock is not reset.
            Ok(Err(S3LockError::Lost { .. })) if lease.own_unanswered(&s3).await => {}
            Ok(Err(e @ S3LockError::Lost { .. })) => {
                eprintln!("error: {e}; this apply stops starting steps");
                lease.lose("another version of the lock object is there".into());
                on_lost();
                return;
            }
            // Cut off from S3 for a moment: the lease outlasts a few missed renewals.
            Ok(Err(e)) => {
                lease.unanswered.lock().expect("not poisoned").push(text);
                eprintln!("warning: the lock's lease was not renewed: {e}");
                last_error = e.to_string();
            }
            Err(_) => {
                lease.unanswered.lock().expect("not poisoned").push(text);
                eprintln!(
                    "warning: the lock's lease was not renewed: S3 did not answer within {}",
                    human(s3.renew_every)
                );
                last_error = "S3 did not answer".into();
            }
        }
    }
}
