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
    /// The SHA-256 of an object (hex), read as it streams: never whole in memory (asbackup's
    /// files run to gigabytes).
    fn digest(&self, uri: &str) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Puts S3 Object Lock retention on an object (its current version) until `until`, as the
    /// set's snapshots are locked (R20). A store that cannot hold one refuses: nothing is
    /// said to be retained that is not.
    fn retain(
        &self,
        uri: &str,
        _retention: &asdr_planner::params::Retention,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let uri = uri.to_string();
        async move {
            Err(StoreError::Io {
                message: "this store cannot keep Object Lock retention (only an S3 bucket with Object Lock can)".into(),
                uri,
            })
        }
    }
    /// The retention an object holds (its mode and until when), if any.
    fn retained(
        &self,
        _uri: &str,
    ) -> impl Future<Output = Result<Option<asdr_planner::params::Retention>, StoreError>> + Send
    {
        async { Ok(None) }
    }
}

/// Whether `held` keeps an object at least as long and as strongly as `want`.
pub fn retention_holds(
    held: Option<&asdr_planner::params::Retention>,
    want: &asdr_planner::params::Retention,
) -> bool {
    held.is_some_and(|h| h.mode >= want.mode && h.until >= want.until)
}

/// The largest object `get` reads into memory. What asdr reads whole (SMD archives, set
/// manifests, markers, checksums) is kilobytes to megabytes; an object past this is not one asdr
/// wrote, and reading it would only exhaust memory.
pub const MAX_OBJECT: u64 = 256 << 20;

pub(crate) fn too_large(uri: &str, len: u64, limit: u64) -> StoreError {
    StoreError::Io {
        uri: uri.into(),
        message: format!(
            "{len} bytes, over the {limit}-byte limit of what asdr reads whole (an SMD archive or manifest is far smaller): not read"
        ),
    }
}

/// Opens a file store's object for reading, never through a symbolic link (a link planted in a
/// store could make asdr read, copy or serve another file as an archive).
fn open_object(path: &std::path::Path, uri: &str) -> Result<std::fs::File, StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        // Non-blocking: a fifo planted in a store would otherwise hold the open (and asdr) until
        // someone writes to it; it is then refused as not a regular file. Reads of a regular file
        // are not affected.
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound { uri: uri.into() },
            _ if e.raw_os_error() == Some(libc::ELOOP) => StoreError::Io {
                uri: uri.into(),
                message: "a symbolic link, not an object asdr wrote: not read".into(),
            },
            _ => StoreError::Io {
                uri: uri.into(),
                message: e.to_string(),
            },
        })?;
    let meta = file.metadata().map_err(|e| StoreError::Io {
        uri: uri.into(),
        message: e.to_string(),
    })?;
    if !meta.is_file() {
        return Err(StoreError::Io {
            uri: uri.into(),
            message: "not a regular file: not read".into(),
        });
    }
    Ok(file)
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
                // The entry's own type, links not followed: a link in a store is nothing asdr
                // wrote, and following links to directories could loop forever.
                let Ok(kind) = e.file_type().await else {
                    continue;
                };
                let p = e.path();
                if kind.is_dir() {
                    stack.push(p);
                } else if kind.is_file() {
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
        // A fresh name, created exclusively and never through a link (O_EXCL|O_NOFOLLOW): a
        // name planted beforehand, as a link to another file, makes the write fail instead of
        // writing the archive there. Owner-only: SMD holds users and roles.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(
            ".{name}.{}.{}.asdr-tmp",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let written = {
            let tmp = tmp.clone();
            blocking(move || {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&tmp)?;
                f.write_all(&bytes)?;
                f.sync_all()
            })
            .await
        };
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io(e));
        }
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
        let uri = uri.to_string();
        blocking(move || {
            use std::io::Read;
            let file = open_object(&path, &uri)?;
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if len > MAX_OBJECT {
                return Err(too_large(&uri, len, MAX_OBJECT));
            }
            let mut out = Vec::with_capacity(len as usize);
            file.take(MAX_OBJECT + 1)
                .read_to_end(&mut out)
                .map_err(|e| StoreError::Io {
                    uri: uri.clone(),
                    message: e.to_string(),
                })?;
            if out.len() as u64 > MAX_OBJECT {
                return Err(too_large(&uri, out.len() as u64, MAX_OBJECT));
            }
            Ok(out)
        })
        .await
    }

    async fn digest(&self, uri: &str) -> Result<String, StoreError> {
        let path = path_of(uri)?;
        let uri = uri.to_string();
        blocking(move || {
            use sha2::{Digest, Sha256};
            use std::io::Read;
            let mut file = open_object(&path, &uri)?;
            let mut h = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = file.read(&mut buf).map_err(|e| StoreError::Io {
                    uri: uri.clone(),
                    message: e.to_string(),
                })?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Ok(hex(&h.finalize()))
        })
        .await
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

/// Runs blocking file work off the async threads (a panic in it carries on as the caller's).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("file work cancelled: {e}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}
