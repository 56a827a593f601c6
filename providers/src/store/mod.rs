//! Where SMD archives are kept (R2): `file:///directory` now; `s3://bucket/prefix` comes with the
//! AWS providers. An archive is a tar of `<work_directory>/smd` with its SHA-256 beside it
//! (`<uri>.sha256`); a restore verifies it before anything reaches the node.

pub mod lock;
pub mod s3;

use std::future::Future;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{uri}: not found")]
    NotFound { uri: String },
    #[error("{uri}: {message}")]
    Io { uri: String, message: String },
    #[error("{uri}: unsupported store (use file:///directory{})", if .uri.starts_with("s3://") { "; this store was opened without an S3 client" } else { " or s3://bucket/prefix" })]
    Unsupported { uri: String },
}

pub trait Store: Send + Sync + 'static {
    fn put(&self, uri: &str, bytes: Vec<u8>)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get(&self, uri: &str) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;
    /// Every URI under `prefix` (a "directory" ending in `/`).
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// Removes one object; one that is already gone is not an error.
    fn delete(&self, uri: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// `file:///…` URIs on this machine.
#[derive(Debug, Clone, Default)]
pub struct LocalStore;

fn path_of(uri: &str) -> Result<PathBuf, StoreError> {
    match asdr_specs::StoreUri::parse(uri) {
        Some(asdr_specs::StoreUri::File(p)) => Ok(p),
        _ => Err(StoreError::Unsupported { uri: uri.into() }),
    }
}

impl Store for LocalStore {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let root = path_of(prefix)?;
        let mut out = Vec::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Ok(Some(e)) = entries.next_entry().await {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(format!("file://{}", p.display()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

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

    async fn delete(&self, uri: &str) -> Result<(), StoreError> {
        let path = path_of(uri)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                // Empty directories left behind go too (a set's namespace directory, the set's).
                let mut dir = path.parent();
                while let Some(d) = dir {
                    if tokio::fs::remove_dir(d).await.is_err() {
                        break;
                    }
                    dir = d.parent();
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::Io {
                uri: uri.into(),
                message: e.to_string(),
            }),
        }
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

/// What a store holds of a cluster's sets: the SMD archives and the set manifests.
#[derive(Debug, Default)]
pub struct SetFiles {
    pub archives: Vec<asdr_planner::world::SmdArchive>,
    pub manifests: Vec<asdr_planner::manifest::ObservedManifest>,
}

/// The SMD archives of `cluster` in the store at `smd_to` (`<smd_to>/<cluster>/<set>/<node>.smd.tar`)
/// and its set manifests (`<smd_to>/<cluster>/manifests/<set>.json`), each read; one that cannot
/// be read is recorded with why.
pub async fn set_files<S: Store>(
    store: &S,
    smd_to: &str,
    cluster: &str,
) -> Result<SetFiles, StoreError> {
    let prefix = format!("{}/{cluster}/", smd_to.trim_end_matches('/'));
    let mut out = SetFiles::default();
    for uri in store.list(&prefix).await? {
        let Some(rest) = uri.strip_prefix(&prefix) else {
            continue;
        };
        let Some((set, file)) = rest.split_once('/') else {
            continue;
        };
        if set == asdr_planner::manifest::FOLDER {
            let Some(set) = file
                .strip_suffix(".json")
                .filter(|s| asdr_specs::is_set_id(s))
            else {
                continue;
            };
            out.manifests.push(match store.get(&uri).await {
                Ok(bytes) => {
                    asdr_planner::manifest::ObservedManifest::from_bytes(&uri, set, &bytes)
                }
                Err(e) => asdr_planner::manifest::ObservedManifest {
                    uri: uri.clone(),
                    set: set.into(),
                    file: None,
                    problem: Some(format!("unreadable: {e}")),
                },
            });
            continue;
        }
        let Some(node) = file.strip_suffix(".smd.tar") else {
            continue;
        };
        out.archives.push(asdr_planner::world::SmdArchive {
            set: set.into(),
            node: node.into(),
            uri: uri.clone(),
            sha256: None,
        });
    }
    // The checksum recorded beside each archive (a few bytes each): a set whose archive was
    // replaced since its manifest was written is told from a whole one without reading it.
    for a in &mut out.archives {
        if let Ok(sha) = store.get(&format!("{}.sha256", a.uri)).await {
            a.sha256 = Some(String::from_utf8_lossy(&sha).trim().to_string());
        }
    }
    Ok(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
