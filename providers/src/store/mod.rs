//! Where SMD archives are kept (R2): `file:///directory` now; `s3://bucket/prefix` comes with the
//! AWS providers. An archive is a tar of `<work_directory>/smd` with its SHA-256 beside it
//! (`<uri>.sha256`); a restore verifies it before anything reaches the node.

pub mod s3;

use std::future::Future;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{uri}: not found")]
    NotFound { uri: String },
    #[error("{uri}: {message}")]
    Io { uri: String, message: String },
    #[error("{uri}: unsupported store (use file:///directory{})", if .uri.starts_with("s3://") { "; s3:// needs the AWS providers, not in this build" } else { "" })]
    Unsupported { uri: String },
}

pub trait Store: Send + Sync + 'static {
    fn put(&self, uri: &str, bytes: Vec<u8>)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, uri: &str) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
}

/// `file:///…` URIs on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalStore;

fn path_of(uri: &str) -> Result<PathBuf, StoreError> {
    uri.strip_prefix("file://")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .ok_or_else(|| StoreError::Unsupported { uri: uri.into() })
}

impl Store for LocalStore {
    async fn put(&self, uri: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let path = path_of(uri)?;
        let io = |e: std::io::Error| StoreError::Io {
            uri: uri.into(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = path.with_extension("asdr-tmp");
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    async fn get(&self, uri: &str) -> Result<Vec<u8>, StoreError> {
        let path = path_of(uri)?;
        tokio::fs::read(&path).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound { uri: uri.into() },
            _ => StoreError::Io {
                uri: uri.into(),
                message: e.to_string(),
            },
        })
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
