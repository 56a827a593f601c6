//! Where asdr keeps things outside the cluster: `file:///path` on the machine that reads it, or
//! `s3://bucket/key`. One parser for every place that needs to tell them apart.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUri {
    /// An absolute local path.
    File(PathBuf),
    /// A bucket and a key (or key prefix), possibly empty.
    S3 { bucket: String, key: String },
}

impl StoreUri {
    /// `file:///abs/path` or `s3://bucket[/key]`; anything else is not a store.
    pub fn parse(uri: &str) -> Option<StoreUri> {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            return (!bucket.is_empty()).then(|| StoreUri::S3 {
                bucket: bucket.to_string(),
                key: key.to_string(),
            });
        }
        uri.strip_prefix("file://")
            .filter(|p| p.starts_with('/'))
            .map(|p| StoreUri::File(PathBuf::from(p)))
    }

    pub fn is_s3(uri: &str) -> bool {
        matches!(StoreUri::parse(uri), Some(StoreUri::S3 { .. }))
    }

    /// What a tool that takes plain paths and `s3://` (asbackup, asrestore) is given.
    pub fn for_tool(uri: &str) -> String {
        match StoreUri::parse(uri) {
            Some(StoreUri::File(p)) => p.display().to_string(),
            _ => uri.to_string(),
        }
    }
}

impl fmt::Display for StoreUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUri::File(p) => write!(f, "file://{}", p.display()),
            StoreUri::S3 { bucket, key } if key.is_empty() => write!(f, "s3://{bucket}"),
            StoreUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_uris_parse_and_print_back() {
        for uri in ["file:///var/backups/asdr", "s3://b/k/p", "s3://b"] {
            assert_eq!(StoreUri::parse(uri).unwrap().to_string(), uri);
        }
        assert_eq!(StoreUri::parse("file://relative"), None);
        assert_eq!(StoreUri::parse("s3:///key"), None);
        assert_eq!(StoreUri::parse("/plain"), None);
        assert_eq!(StoreUri::for_tool("file:///x/y"), "/x/y");
        assert_eq!(StoreUri::for_tool("s3://b/y"), "s3://b/y");
        assert!(StoreUri::is_s3("s3://b/y") && !StoreUri::is_s3("file:///y"));
    }
}
