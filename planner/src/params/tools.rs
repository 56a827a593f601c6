//! The parameters of the steps that run Aerospike's backup tools (`asbackup`, `asrestore`):
//! where they run, how their files are compressed and encrypted, and the options they get.

use asdr_specs::{Compress, EncryptAlgorithm, RunOn};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Encryption of asbackup's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolEncrypt {
    pub algorithm: EncryptAlgorithm,
    pub key_file: String,
}

/// What every asbackup/asrestore step carries: where it runs, compression, encryption, the S3
/// region and extra arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    pub run_on: RunOn,
    pub compress: Option<Compress>,
    pub encrypt: Option<ToolEncrypt>,
    pub s3_region: String,
    pub args: Vec<String>,
}

impl Tool {
    /// How the files are compressed, as a run's manifest name records it: `zstd`, `none`.
    pub fn compress_name(&self) -> &'static str {
        match self.compress {
            Some(Compress::Zstd) => "zstd",
            None => "none",
        }
    }

    /// How the files are encrypted, as a run's manifest name records it: `aes128`, `aes256`,
    /// `none`.
    pub fn encrypt_name(&self) -> &'static str {
        self.encrypt
            .as_ref()
            .map_or("none", |e| e.algorithm.as_str())
    }
}

/// Whether an asbackup run copies everything or what changed since its chain's newest set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    Full,
    Incremental,
}

impl BackupKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
        }
    }
}

/// asbackup: one namespace of a set into its directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Asbackup {
    #[serde(flatten)]
    pub tool: Tool,
    pub namespace: String,
    pub set: String,
    pub to: String,
    pub kind: BackupKind,
    pub incremental_of: Option<String>,
    /// asbackup's `--modified-after` for incrementals.
    pub modified_after: Option<String>,
    /// The cluster the run is for: its manifest names it, so a store shared with another cluster
    /// never mixes their sets (R13).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    /// The cluster's id: the run's manifest names it too, so a same-named cluster sharing the
    /// store never takes this cluster's runs for its own, nor this one theirs (R13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// For an incremental: the set of the chain it follows; its manifest names it, so a chain
    /// with a link gone is seen as broken there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// `backup.lock`: every file of the run and its manifest get S3 Object Lock retention
    /// before the run counts as finished (R20), as a snapshot set is locked before its mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<super::Retention>,
}

/// asrestore: one namespace, replaying a chain's directories in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Asrestore {
    #[serde(flatten)]
    pub tool: Tool,
    pub namespace: String,
    pub set: String,
    pub directories: Vec<String>,
}
