//! The S3 team lock against moto's S3: its age read on S3's clock, and a release that removes
//! only the version this holder wrote.

use std::time::{Duration, SystemTime};

use asdr_providers::store::lock::{S3Lock, S3LockError};
use asdr_providers::testkit_moto::Moto;

async fn lock_on(moto: &Moto) -> S3Lock {
    let s3 = moto.s3();
    s3.create_bucket().bucket("locks").send().await.unwrap();
    S3Lock::new(s3, "s3://locks/prod-east.lock").unwrap()
}

fn two_hours_ahead() -> SystemTime {
    SystemTime::now() + Duration::from_secs(7200)
}

fn two_hours_behind() -> SystemTime {
    SystemTime::now() - Duration::from_secs(7200)
}

#[tokio::test]
async fn a_locks_age_is_read_on_s3s_clock_so_a_runner_whose_clock_is_off_breaks_no_live_lock() {
    let moto = Moto::start();
    let mut lock = lock_on(&moto).await;
    lock.acquire("{\"pid\":1,\"host\":\"live\"}").await.unwrap();
    // A runner two hours ahead, with an expiry of one second: on its own clock the live lock
    // would be two hours old and broken.
    lock.local_clock = two_hours_ahead;
    lock.expiry = Some(Duration::from_secs(1));
    let found = lock.found().await.unwrap().unwrap();
    assert!(found.age < Duration::from_secs(60), "{:?}", found.age);
    let err = lock
        .acquire("{\"pid\":2,\"host\":\"ahead\"}")
        .await
        .unwrap_err();
    assert!(matches!(err, S3LockError::Held { .. }), "{err}");
    assert!(lock.holder().await.unwrap().unwrap().contains("live"));
    // A runner behind reads the same age (it would read none and never see a dead lock).
    lock.local_clock = two_hours_behind;
    let behind = lock.found().await.unwrap().unwrap();
    assert!(behind.age < Duration::from_secs(60), "{:?}", behind.age);
}

#[tokio::test]
async fn a_lock_broken_and_taken_by_another_is_never_deleted_by_the_holder_that_lost_it() {
    let moto = Moto::start();
    let lock = lock_on(&moto).await;
    let mine = lock.acquire("{\"host\":\"first\"}").await.unwrap();
    // Someone breaks it and another apply takes it.
    lock.break_it().await.unwrap();
    let theirs = lock.acquire("{\"host\":\"second\"}").await.unwrap();
    let err = lock.release(&mine).await.unwrap_err();
    assert!(
        matches!(&err, S3LockError::Lost { message, .. } if message.contains("second")),
        "{err}"
    );
    assert!(
        lock.holder().await.unwrap().unwrap().contains("second"),
        "the new holder keeps its lock"
    );
    let renewed = lock.renew("{\"host\":\"first\"}", &mine).await.unwrap_err();
    assert!(matches!(renewed, S3LockError::Lost { .. }), "{renewed}");
    // Its own holder releases it at its version.
    lock.release(&theirs).await.unwrap();
    assert_eq!(lock.holder().await.unwrap(), None);
    // Broken and not taken: the release says so and removes nothing.
    let again = lock.acquire("{\"host\":\"third\"}").await.unwrap();
    lock.break_it().await.unwrap();
    let gone = lock.release(&again).await.unwrap_err();
    assert!(
        matches!(&gone, S3LockError::Lost { message, .. } if message.contains("broken")),
        "{gone}"
    );
}

/// S3 made the lock object, but its answer was lost (the strict layer answers 500 after moto
/// applied the put): the SDK sends the put again and S3 refuses it with 412, the object being
/// there. The lock is this apply's own, not "held by another apply" naming itself.
#[tokio::test]
async fn a_lock_whose_put_was_applied_but_unanswered_is_taken_as_this_applys_own() {
    let moto = Moto::start();
    let lock = lock_on(&moto).await;
    moto.strict("lose-s3-puts?count=1");
    let me = "{\"pid\":7,\"host\":\"runner\",\"started\":\"2026-12-07T05:00:00Z\"}";
    let etag = lock.acquire(me).await.unwrap();
    let found = lock.found().await.unwrap().unwrap();
    assert_eq!(
        (found.holder.as_str(), found.etag.as_str()),
        (me, etag.as_str())
    );
    // Its version is the one it renews and releases.
    let renewed = lock.renew(me, &etag).await.unwrap();
    lock.release(&renewed).await.unwrap();
    assert!(lock.holder().await.unwrap().is_none());
}

/// S3 answers 409 ConditionalRequestConflict when another conditional write to the object is in
/// flight, and says to send the request again: taking and renewing the lock do, instead of
/// failing the apply on an I/O error.
#[tokio::test]
async fn a_conditional_put_answered_409_is_sent_again() {
    let moto = Moto::start();
    let lock = lock_on(&moto).await;
    moto.strict("s3-conflicts?count=2");
    let etag = lock.acquire("{\"host\":\"a\"}").await.unwrap();
    moto.strict("s3-conflicts?count=1");
    let renewed = lock.renew("{\"host\":\"a\"}", &etag).await.unwrap();
    lock.release(&renewed).await.unwrap();
    assert!(lock.holder().await.unwrap().is_none());
}

/// The lock bucket in another region than the cluster's (docs/regions.md advises it, so the lock
/// outlives the region): S3 answers a request signed for the wrong region with a redirect the
/// SDK does not follow (the strict layer does the same). The lock asks the bucket's region first
/// and works there.
#[tokio::test]
async fn a_lock_bucket_in_another_region_is_used_through_a_client_of_that_region() {
    let moto = Moto::start();
    let s3 = moto.s3();
    s3.create_bucket()
        .bucket("locks-west")
        .create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let unlocated = S3Lock::new(s3.clone(), "s3://locks-west/prod-east.lock").unwrap();
    let err = unlocated.acquire("{\"host\":\"a\"}").await.unwrap_err();
    assert!(
        err.to_string().contains("PermanentRedirect") || err.to_string().contains("301"),
        "{err}"
    );
    let lock = S3Lock::new(s3, "s3://locks-west/prod-east.lock")
        .unwrap()
        .located()
        .await
        .unwrap();
    let etag = lock.acquire("{\"host\":\"a\"}").await.unwrap();
    assert!(lock.holder().await.unwrap().unwrap().contains("\"a\""));
    lock.release(&etag).await.unwrap();
    // A bucket that does not exist is said at once.
    let missing = S3Lock::new(moto.s3(), "s3://no-such-bucket/x.lock")
        .unwrap()
        .located()
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("HeadBucket"), "{missing}");
}
