//! The S3 lock's lease as its holder keeps it, against moto behind a proxy whose network can
//! hang: a renewal that never answers must not keep the holder going past the point where
//! another apply may take the lock as stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use asdr_engine::ClusterLock;
use asdr_executor::lock::Holder;
use asdr_providers::store::lock::S3Lock;
use asdr_providers::testkit_moto::{Moto, StallingProxy, s3_at};

fn holder() -> Holder {
    Holder {
        pid: std::process::id(),
        host: "test".into(),
        plan_id: "p-test".into(),
        since: "2026-12-06T00:00:00Z".into(),
    }
}

/// The runtime asdr runs on, and moto with the bucket `locks`.
fn moto_with_bucket() -> (tokio::runtime::Runtime, Moto) {
    let rt = asdr_engine::runtime().unwrap();
    let moto = Moto::start();
    rt.block_on(async {
        moto.s3()
            .create_bucket()
            .bucket("locks")
            .send()
            .await
            .unwrap();
    });
    (rt, moto)
}

#[test]
fn a_holder_whose_renewals_hang_stops_before_its_lease_runs_out() {
    let (rt, moto) = moto_with_bucket();
    let proxy = StallingProxy::start(&moto.endpoint);
    let mut lock = S3Lock::new(s3_at(&proxy.endpoint), "s3://locks/prod-east.lock").unwrap();
    lock.renew_every = Duration::from_millis(400);
    // The lease is 2 s: another apply may take the lock once it has gone unrenewed that long.
    assert_eq!(lock.lease(), Duration::from_secs(2));
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let held = ClusterLock::S3(lock, rt.handle().clone())
        .acquire(&holder(), move || flag.store(true, Ordering::SeqCst))
        .unwrap();
    // Renewed while S3 answers.
    std::thread::sleep(Duration::from_millis(1300));
    assert!(!lost.load(Ordering::SeqCst));
    // The network hangs: no answer, no reset.
    proxy.stall();
    let stalled_at = Instant::now();
    while !lost.load(Ordering::SeqCst) {
        assert!(
            stalled_at.elapsed() < Duration::from_secs(3),
            "still going {:?} after S3 stopped answering",
            stalled_at.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // It stopped before the lease ran out (one renewal period early, counted from its last
    // renewal, which was before the stall).
    assert!(
        stalled_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        stalled_at.elapsed()
    );
    // Giving it back fails at once (the lease is gone), without waiting on the hung network.
    let t = Instant::now();
    let err = held.release().unwrap_err().to_string();
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(err.contains("lost the lock"), "{err}");
    proxy.resume();
}

#[test]
fn break_lock_removes_the_version_it_read_and_names_its_holder() {
    let (rt, moto) = moto_with_bucket();
    let lock = S3Lock::new(moto.s3(), "s3://locks/prod-east.lock").unwrap();
    rt.block_on(lock.acquire("{\"host\":\"gone\"}")).unwrap();
    let cluster = ClusterLock::S3(lock.clone(), rt.handle().clone());
    let (uri, was) = cluster.break_it().unwrap();
    assert_eq!(uri, "s3://locks/prod-east.lock");
    assert_eq!(was.as_deref(), Some("{\"host\":\"gone\"}"));
    assert_eq!(rt.block_on(lock.holder()).unwrap(), None);
    // Nothing to break: says so, removes nothing.
    assert_eq!(cluster.break_it().unwrap().1, None);
}
