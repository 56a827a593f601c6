//! `s3://bucket/key` through aws-sdk-s3 (any S3 endpoint: AWS, or moto in tests).

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

use super::{Store, StoreError};

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    /// The largest object `get` reads whole ([`super::MAX_OBJECT`]; smaller in tests).
    max_object: u64,
}

/// Bucket and key of an object (the key must not be empty).
fn io_error<E, R>(uri: &str, what: &str, e: &aws_sdk_s3::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug + 'static,
{
    StoreError::Io {
        uri: uri.into(),
        message: crate::aws_error::one_line(what, e, None),
    }
}

fn split(uri: &str) -> Result<(String, String), StoreError> {
    match asdr_specs::StoreUri::parse(uri) {
        Some(asdr_specs::StoreUri::S3 { bucket, key }) if !key.is_empty() => Ok((bucket, key)),
        _ => Err(StoreError::Unsupported { uri: uri.into() }),
    }
}

impl S3Store {
    pub fn new(client: Client) -> Self {
        S3Store {
            client,
            max_object: super::MAX_OBJECT,
        }
    }

    /// The same store reading no object larger than `bytes` whole.
    pub fn with_max_object(mut self, bytes: u64) -> Self {
        self.max_object = bytes;
        self
    }

    /// A client from the standard credential chain; `endpoint` for S3-compatible servers (path
    /// style addressing, as they usually need).
    pub async fn connect(region: &str, endpoint: Option<&str>) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()));
        if let Some(e) = endpoint {
            loader = loader.endpoint_url(e);
        }
        let shared = loader.load().await;
        let conf = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(endpoint.is_some())
            .build();
        S3Store {
            client: Client::from_conf(conf),
            max_object: super::MAX_OBJECT,
        }
    }
}

impl S3Store {
    /// Whether S3 Object Lock is enabled on `bucket` (GetObjectLockConfiguration); a bucket
    /// without any configuration answers `ObjectLockConfigurationNotFoundError`.
    pub async fn object_lock_enabled(&self, bucket: &str) -> Result<bool, StoreError> {
        match self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == aws_sdk_s3::types::ObjectLockEnabled::Enabled)),
            Err(e)
                if aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                    == Some("ObjectLockConfigurationNotFoundError") =>
            {
                Ok(false)
            }
            Err(e) => Err(io_error(
                &format!("s3://{bucket}"),
                "S3 GetObjectLockConfiguration",
                &e,
            )),
        }
    }
}

impl AnyStore {
    /// Whether S3 Object Lock is enabled on the bucket of `uri` (an S3 store's).
    pub async fn object_lock_enabled(&self, uri: &str) -> Result<bool, StoreError> {
        let Some(asdr_specs::StoreUri::S3 { bucket, .. }) = asdr_specs::StoreUri::parse(uri) else {
            return Err(StoreError::Unsupported { uri: uri.into() });
        };
        match self.s3_for(uri) {
            Some(s3) => s3.object_lock_enabled(&bucket).await,
            None => Err(StoreError::Unsupported { uri: uri.into() }),
        }
    }
}

impl Store for S3Store {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let Some(asdr_specs::StoreUri::S3 { bucket, key }) = asdr_specs::StoreUri::parse(prefix)
        else {
            return Err(StoreError::Unsupported { uri: prefix.into() });
        };
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&bucket)
                .prefix(&key)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| io_error(prefix, "S3 ListObjectsV2", &e))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .map(|k| format!("s3://{bucket}/{k}")),
            );
            token = page.next_continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    async fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let (bucket, key) = split(uri)?;
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io_error(uri, "S3 PutObject", &e))
    }

    async fn retain(
        &self,
        uri: &str,
        retention: &asdr_planner::params::Retention,
    ) -> Result<(), StoreError> {
        use aws_sdk_s3::types::{ObjectLockRetention, ObjectLockRetentionMode};
        let (bucket, key) = split(uri)?;
        let until = time::OffsetDateTime::parse(
            &retention.until,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|e| StoreError::Io {
            uri: uri.into(),
            message: format!("retention until {}: {e}", retention.until),
        })?;
        let mode = match retention.mode {
            asdr_specs::LockMode::Governance => ObjectLockRetentionMode::Governance,
            asdr_specs::LockMode::Compliance => ObjectLockRetentionMode::Compliance,
        };
        self.client
            .put_object_retention()
            .bucket(bucket)
            .key(key)
            .retention(
                ObjectLockRetention::builder()
                    .mode(mode)
                    .retain_until_date(aws_smithy_types::DateTime::from_secs(
                        until.unix_timestamp(),
                    ))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io_error(uri, "S3 PutObjectRetention", &e))
    }

    // HeadObject carries the object's lock mode and date (to a caller allowed
    // s3:GetObjectRetention), one call for both.
    async fn retained(
        &self,
        uri: &str,
    ) -> Result<Option<asdr_planner::params::Retention>, StoreError> {
        use aws_sdk_s3::types::ObjectLockMode as M;
        let (bucket, key) = split(uri)?;
        let out = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| io_error(uri, "S3 HeadObject", &e))?;
        let mode = match out.object_lock_mode() {
            Some(M::Governance) => asdr_specs::LockMode::Governance,
            Some(M::Compliance) => asdr_specs::LockMode::Compliance,
            _ => return Ok(None),
        };
        let Some(until) = out
            .object_lock_retain_until_date()
            .and_then(|d| time::OffsetDateTime::from_unix_timestamp(d.secs()).ok())
        else {
            return Ok(None);
        };
        Ok(Some(asdr_planner::params::Retention {
            mode,
            until: asdr_planner::manifest::utc(until),
        }))
    }

    async fn delete(&self, uri: &str) -> Result<(), StoreError> {
        let (bucket, key) = split(uri)?;
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| io_error(uri, "S3 DeleteObject", &e))
    }

    async fn get(&self, uri: &str) -> Result<Vec<u8>, StoreError> {
        let (bucket, key) = split(uri)?;
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(mut out) => {
                let announced = out.content_length().unwrap_or(0).max(0) as u64;
                if announced > self.max_object {
                    return Err(super::too_large(uri, announced, self.max_object));
                }
                // Counted as it arrives too: the length announced is the server's word.
                let mut bytes = Vec::with_capacity(announced as usize);
                while let Some(chunk) = out.body.next().await {
                    let chunk = chunk.map_err(|e| StoreError::Io {
                        uri: uri.into(),
                        message: e.to_string(),
                    })?;
                    if (bytes.len() + chunk.len()) as u64 > self.max_object {
                        return Err(super::too_large(
                            uri,
                            (bytes.len() + chunk.len()) as u64,
                            self.max_object,
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(bytes)
            }
            Err(e) => match e.as_service_error() {
                Some(se) if se.is_no_such_key() => Err(StoreError::NotFound { uri: uri.into() }),
                _ => Err(io_error(uri, "S3 GetObject", &e)),
            },
        }
    }

    async fn digest(&self, uri: &str) -> Result<String, StoreError> {
        use sha2::{Digest, Sha256};
        let (bucket, key) = split(uri)?;
        let mut out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return Err(match e.as_service_error() {
                    Some(se) if se.is_no_such_key() => StoreError::NotFound { uri: uri.into() },
                    _ => io_error(uri, "S3 GetObject", &e),
                });
            }
        };
        let mut h = Sha256::new();
        while let Some(chunk) = out.body.next().await {
            h.update(&chunk.map_err(|e| StoreError::Io {
                uri: uri.into(),
                message: e.to_string(),
            })?);
        }
        Ok(super::hex(&h.finalize()))
    }
}

/// Local directories and S3 behind one store, by URI scheme; buckets of other regions (the
/// stores of `backup.copies`) through a client of their region.
#[derive(Debug, Clone, Default)]
pub struct AnyStore {
    pub s3: Option<S3Store>,
    /// Bucket → a client in the bucket's region.
    pub by_bucket: std::collections::BTreeMap<String, S3Store>,
}

impl AnyStore {
    /// The S3 client for `uri`, when it is an S3 URI asdr has a client for.
    fn s3_for(&self, uri: &str) -> Option<&S3Store> {
        match asdr_specs::StoreUri::parse(uri) {
            Some(asdr_specs::StoreUri::S3 { bucket, .. }) => {
                self.by_bucket.get(&bucket).or(self.s3.as_ref())
            }
            _ => None,
        }
    }
}

impl Store for AnyStore {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        match self.s3_for(prefix) {
            Some(s3) => s3.list(prefix).await,
            None => super::LocalStore.list(prefix).await,
        }
    }

    async fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self.s3_for(uri) {
            Some(s3) => s3.put(uri, bytes).await,
            None => super::LocalStore.put(uri, bytes).await,
        }
    }

    async fn get(&self, uri: &str) -> Result<Vec<u8>, StoreError> {
        match self.s3_for(uri) {
            Some(s3) => s3.get(uri).await,
            None => super::LocalStore.get(uri).await,
        }
    }

    async fn delete(&self, uri: &str) -> Result<(), StoreError> {
        match self.s3_for(uri) {
            Some(s3) => s3.delete(uri).await,
            None => super::LocalStore.delete(uri).await,
        }
    }

    async fn digest(&self, uri: &str) -> Result<String, StoreError> {
        match self.s3_for(uri) {
            Some(s3) => s3.digest(uri).await,
            None => super::LocalStore.digest(uri).await,
        }
    }

    async fn retain(
        &self,
        uri: &str,
        retention: &asdr_planner::params::Retention,
    ) -> Result<(), StoreError> {
        match self.s3_for(uri) {
            Some(s3) => s3.retain(uri, retention).await,
            None => super::LocalStore.retain(uri, retention).await,
        }
    }

    async fn retained(
        &self,
        uri: &str,
    ) -> Result<Option<asdr_planner::params::Retention>, StoreError> {
        match self.s3_for(uri) {
            Some(s3) => s3.retained(uri).await,
            None => super::LocalStore.retained(uri).await,
        }
    }
}
