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

/// A signal's release (the handler that ends the process at once) runs while the renewal task
/// still does: a renewal put in flight at that moment must neither re-create the lock after the
/// delete nor change its version under the delete. Renewing every 40 ms (a put to moto takes a
/// few) makes a put in flight at some release of the 20 likely; the phase of each release
/// differs. A renewal that goes unanswered within its period yet is applied by S3 after is a
/// version the lease must still recognise as its own.
#[test]
fn a_release_from_a_signal_while_a_renewal_is_in_flight_leaves_no_lock_behind() {
    let (rt, moto) = moto_with_bucket();
    for round in 0..20u64 {
        let mut lock = S3Lock::new(moto.s3(), "s3://locks/prod-east.lock").unwrap();
        lock.renew_every = Duration::from_millis(40);
        // Never stale within the test: the renewals are not what is measured.
        lock.expiry = Some(Duration::from_secs(600));
        let held = ClusterLock::S3(lock, rt.handle().clone())
            .acquire(&holder(), || {})
            .unwrap();
        let (s3, lease) = held.s3_lease().unwrap();
        std::thread::sleep(Duration::from_millis(50 + round * 7));
        rt.block_on(asdr_engine::release_s3(&s3, &lease, Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // Renewals that were due meanwhile have had their chance to put it back.
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(
            rt.block_on(s3.holder()).unwrap(),
            None,
            "round {round}: the lock is there after its release"
        );
        // The process would have ended; here the renewal task is ended by its handle's owner.
        drop(held);
    }
}
