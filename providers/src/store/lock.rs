//! The team lock: an S3 object created only if it does not exist (`If-None-Match: *`), naming its
//! holder, and held on a lease: the holder renews it (a conditional put, `If-Match` its own
//! version) while it runs and removes it at the end. A lock not renewed for longer than the lease
//! belongs to an apply that is gone, or cut off from S3: it is reported as stale with its age,
//! and broken only on request (`--break-lock`) or after the expiry the policy sets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3LockError {
    #[error("another apply holds the lock {uri}: {holder} (renewed {age} ago)")]
    Held {
        uri: String,
        holder: String,
        age: String,
    },
    #[error(
        "the lock {uri} is stale: {holder} has not renewed it for {age} (its lease is {lease}); that apply is gone or cut off from S3. Break the lock with `asdr apply --break-lock` once you are sure it no longer runs, or set `lock_expiry` in the policy"
    )]
    Stale {
        uri: String,
        holder: String,
        age: String,
        lease: String,
    },
    /// This apply's lock was broken or taken by another while it ran.
    #[error("the lock {uri} is no longer this apply's: {message}")]
    Lost { uri: String, message: String },
    #[error("lock {uri}: {message}")]
    Io { uri: String, message: String },
}

/// The lock object as found: who wrote it, its version, and how long ago.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub holder: String,
    pub etag: String,
    pub age: Duration,
}

#[derive(Debug, Clone)]
pub struct S3Lock {
    client: Client,
    bucket: String,
    key: String,
    uri: String,
    /// A holder renews the lock at this interval; a lock not renewed for five of them is stale.
    pub renew_every: Duration,
    /// The policy's `lock_expiry`: a stale lock older than this is broken by the next apply.
    pub expiry: Option<Duration>,
    /// This machine's clock, consulted only when S3 sends no `Date`: a lock's age is S3's
    /// time of the read less S3's time of the write, so a runner whose clock is off neither
    /// breaks a live lock nor waits on a dead one. Replaceable in tests.
    pub local_clock: fn() -> SystemTime,
}

/// Keeps the `Date` header of the response it sees: S3's clock at the time of the request.
#[derive(Debug, Default, Clone)]
struct ServerDate(Arc<Mutex<Option<String>>>);

impl Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "asdr-server-date"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(date) = context.response().headers().get("date") {
            *self.0.lock().expect("not poisoned") = Some(date.to_string());
        }
        Ok(())
    }
}

impl ServerDate {
    fn time(&self) -> Option<SystemTime> {
        let text = self.0.lock().expect("not poisoned").clone()?;
        let t = aws_smithy_types::DateTime::from_str(
            &text,
            aws_smithy_types::date_time::Format::HttpDate,
        )
        .ok()?;
        SystemTime::try_from(t).ok()
    }
}

/// "1h 2m", "3m 4s", "5.2 s".
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1} s", d.as_secs_f64()),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

impl S3Lock {
    pub fn new(client: Client, uri: &str) -> Result<Self, S3LockError> {
        let Some(asdr_specs::StoreUri::S3 { bucket, key }) = asdr_specs::StoreUri::parse(uri)
            .filter(|u| matches!(u, asdr_specs::StoreUri::S3 { key, .. } if !key.is_empty()))
        else {
            return Err(S3LockError::Io {
                uri: uri.into(),
                message: "not an s3://bucket/key URI".into(),
            });
        };
        Ok(S3Lock {
            client,
            bucket,
            key,
            uri: uri.into(),
            renew_every: Duration::from_secs(60),
            expiry: None,
            local_clock: SystemTime::now,
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The lock through a client of its bucket's region. S3 answers a request signed for
    /// another region with a redirect (301 PermanentRedirect) that the SDK does not follow, so a
    /// lock bucket in another region than the cluster's (as docs/regions.md advises) would fail
    /// every apply: HeadBucket tells the bucket's region (`x-amz-bucket-region`, on the answer or
    /// on the redirect).
    pub async fn located(mut self) -> Result<Self, S3LockError> {
        let answer = self.client.head_bucket().bucket(&self.bucket).send().await;
        let region = match &answer {
            Ok(out) => out.bucket_region().map(str::to_string),
            Err(e) => e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_string),
        };
        if let (Err(e), None) = (&answer, &region) {
            return Err(self.io(crate::aws_error::one_line("S3 HeadBucket", e, None)));
        }
        let current = self.client.config().region().map(|r| r.to_string());
        if let Some(region) = region
            && current.as_deref() != Some(region.as_str())
        {
            let conf = self
                .client
                .config()
                .to_builder()
                .region(aws_sdk_s3::config::Region::new(region))
                .build();
            self.client = Client::from_conf(conf);
        }
        Ok(self)
    }

    /// How long a lock may go unrenewed before it is stale.
    pub fn lease(&self) -> Duration {
        self.renew_every * 5
    }

    fn io(&self, e: impl std::fmt::Display) -> S3LockError {
        S3LockError::Io {
            uri: self.uri.clone(),
            message: e.to_string(),
        }
    }

    /// The lock object, if there is one.
    pub async fn found(&self) -> Result<Option<Found>, S3LockError> {
        let server_date = ServerDate::default();
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .customize()
            .interceptor(server_date.clone())
            .send()
            .await
        {
            Ok(o) => {
                let etag = o.e_tag().unwrap_or_default().to_string();
                let written = o
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                // Both times from S3's clock; this machine's only if S3 sent no Date.
                let now = server_date.time().unwrap_or_else(self.local_clock);
                let age = written
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                let bytes = o.body.collect().await.map_err(|e| self.io(e))?.into_bytes();
                Ok(Some(Found {
                    holder: String::from_utf8_lossy(&bytes).trim().to_string(),
                    etag,
                    age,
                }))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.io(crate::aws_error::one_line("S3 GetObject", &e, None))),
        }
    }

    /// Who holds the lock now, if anyone.
    pub async fn holder(&self) -> Result<Option<String>, S3LockError> {
        Ok(self.found().await?.map(|f| f.holder))
    }

    /// Takes the lock for `holder` (a description of this apply), atomically; returns the
    /// version to renew. A stale lock past the policy's expiry is broken first (only that
    /// version: a holder that renews meanwhile keeps it).
    pub async fn acquire(&self, holder: &str) -> Result<String, S3LockError> {
        match self.put(holder, Condition::Absent).await {
            Err(S3LockError::Lost { .. }) => {}
            other => return other,
        }
        let Some(found) = self.found().await? else {
            return Err(self.io("the lock was released meanwhile: try again"));
        };
        // This apply's own write, whose answer was lost: the SDK sent the put again, and S3
        // refused the copy because the first had made the object (the holder text names this
        // process and its start, so no other apply writes the same).
        if found.holder == holder.trim() {
            return Ok(found.etag);
        }
        if found.age <= self.lease() {
            return Err(S3LockError::Held {
                uri: self.uri.clone(),
                holder: found.holder,
                age: human(found.age),
            });
        }
        match self.expiry {
            Some(expiry) if found.age > expiry => {
                // Only the stale version seen: a holder that renewed meanwhile keeps its lock.
                if self.delete_at(&found.etag).await? == Deleted::Changed {
                    return Err(
                        self.io("the lock was renewed while it was being broken: try again")
                    );
                }
                self.put(holder, Condition::Absent).await
            }
            _ => Err(S3LockError::Stale {
                uri: self.uri.clone(),
                holder: found.holder,
                age: human(found.age),
                lease: human(self.lease()),
            }),
        }
    }

    /// Renews the lease of the lock this apply holds at version `etag`; returns the new version.
    /// Refused (`Lost`) when the object is no longer that version: broken, or taken by another.
    pub async fn renew(&self, holder: &str, etag: &str) -> Result<String, S3LockError> {
        self.put(holder, Condition::Version(etag)).await
    }

    async fn put(&self, holder: &str, condition: Condition<'_>) -> Result<String, S3LockError> {
        let put = || {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&self.key)
                .body(ByteStream::from(holder.as_bytes().to_vec()));
            match condition {
                Condition::Absent => put.if_none_match("*"),
                Condition::Version(etag) => put.if_match(etag),
            }
        };
        // 409 ConditionalRequestConflict: another conditional write to the object was in
        // flight; S3 says to send it again.
        let mut conflicts = 0;
        loop {
            match put().send().await {
                Ok(out) => return Ok(out.e_tag().unwrap_or_default().to_string()),
                Err(e)
                    if e.raw_response()
                        .is_some_and(|r| matches!(r.status().as_u16(), 404 | 412)) =>
                {
                    return Err(S3LockError::Lost {
                        uri: self.uri.clone(),
                        message: "another version of the lock object is there".into(),
                    });
                }
                Err(e)
                    if e.raw_response().is_some_and(|r| r.status().as_u16() == 409)
                        && conflicts < CONFLICT_RETRIES =>
                {
                    conflicts += 1;
                    tokio::time::sleep(Duration::from_millis(100 << conflicts)).await;
                }
                Err(e) => {
                    return Err(self.io(crate::aws_error::one_line("S3 PutObject", &e, None)));
                }
            }
        }
    }

    /// Deletes the lock object only if it is still version `etag` (DeleteObject with If-Match).
    async fn delete_at(&self, etag: &str) -> Result<Deleted, S3LockError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .if_match(etag)
            .send()
            .await
        {
            Ok(_) => Ok(Deleted::Done),
            Err(e) => match e.raw_response().map(|r| r.status().as_u16()) {
                Some(404) => Ok(Deleted::Gone),
                Some(409 | 412) => Ok(Deleted::Changed),
                _ => Err(self.io(crate::aws_error::one_line("S3 DeleteObject", &e, None))),
            },
        }
    }

    /// Removes the lock whoever holds it (`--break-lock`), at the version read, so the holder it
    /// names is the one removed: a lock renewed or taken meanwhile is refused, not broken.
    /// Returns who held it.
    pub async fn break_it(&self) -> Result<Option<String>, S3LockError> {
        let Some(found) = self.found().await? else {
            return Ok(None);
        };
        match self.delete_at(&found.etag).await? {
            Deleted::Done | Deleted::Gone => Ok(Some(found.holder)),
            Deleted::Changed => Err(S3LockError::Io {
                uri: self.uri.clone(),
                message: format!(
                    "not broken: {} renewed it, or another apply took it, while it was being broken; look again",
                    found.holder
                ),
            }),
        }
    }

    /// Removes the lock this apply holds at version `etag` (the end of the apply), and only
    /// that version: a lock broken and taken by another apply meanwhile is theirs, and stays.
    /// `Lost` when the object is another version or gone.
    pub async fn release(&self, etag: &str) -> Result<(), S3LockError> {
        if self.delete_at(etag).await? == Deleted::Done {
            return Ok(());
        }
        Err(S3LockError::Lost {
            uri: self.uri.clone(),
            message: match self.found().await {
                Ok(Some(f)) => format!("it is held by {} now, and was left to it", f.holder),
                _ => "it was broken (the object is gone)".into(),
            },
        })
    }
}

/// Puts answered 409 (a conflicting conditional write in flight) sent again before giving up.
const CONFLICT_RETRIES: u32 = 4;

/// What a conditional delete of the lock object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deleted {
    Done,
    /// No object any more (404).
    Gone,
    /// Another version is there, or a write to it raced the delete (412, 409).
    Changed,
}

#[derive(Clone, Copy)]
enum Condition<'a> {
    /// Only if there is no lock object.
    Absent,
    /// Only if the lock object is still this version.
    Version(&'a str),
}
