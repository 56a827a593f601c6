//! The team lock: an S3 object created only if it does not exist (`If-None-Match: *`), naming its
//! holder; removed at the end of the apply; broken explicitly when its holder is gone. S3 cannot
//! tell whether the holder still runs, so it is never broken silently.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum S3LockError {
    #[error(
        "another apply holds the lock {uri}: {holder}; if that apply is gone, break the lock with `asdr apply --break-lock`"
    )]
    Held { uri: String, holder: String },
    #[error("lock {uri}: {message}")]
    Io { uri: String, message: String },
}

#[derive(Debug, Clone)]
pub struct S3Lock {
    client: Client,
    bucket: String,
    key: String,
    uri: String,
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
        })
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    fn io(&self, e: impl std::fmt::Display) -> S3LockError {
        S3LockError::Io {
            uri: self.uri.clone(),
            message: e.to_string(),
        }
    }

    /// Who holds the lock now, if anyone.
    pub async fn holder(&self) -> Result<Option<String>, S3LockError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(o) => {
                let bytes = o.body.collect().await.map_err(|e| self.io(e))?.into_bytes();
                Ok(Some(String::from_utf8_lossy(&bytes).trim().to_string()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.io(aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    /// Takes the lock for `holder` (a description of this apply), atomically.
    pub async fn acquire(&self, holder: &str) -> Result<(), S3LockError> {
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .if_none_match("*")
            .body(ByteStream::from(holder.as_bytes().to_vec()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                Err(S3LockError::Held {
                    uri: self.uri.clone(),
                    holder: self
                        .holder()
                        .await?
                        .unwrap_or_else(|| "(released meanwhile: try again)".into()),
                })
            }
            Err(e) => Err(self.io(aws_sdk_s3::error::DisplayErrorContext(e))),
        }
    }

    /// Removes the lock (the end of this apply, or `--break-lock`); returns who held it.
    pub async fn release(&self) -> Result<Option<String>, S3LockError> {
        let holder = self.holder().await?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
            .map_err(|e| self.io(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(holder)
    }
}
