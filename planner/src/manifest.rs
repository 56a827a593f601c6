//! Set manifests: what a backup set is, written into its store when the set is marked complete.
//!
//! A manifest names the cluster, the set's members as they were (node → device → volume →
//! snapshot, with sizes and encryption), the namespaces, each SMD archive with its SHA-256, the
//! times from AWS's clock (the snapshots' starts) and asdr's (the set id, the write) in UTC, and
//! the digest of the policy it was made under. It carries its own SHA-256. A set is complete by
//! its manifest's own members, present and matching — never by today's policy (R2), and a
//! snapshot that merely carries the set's tags is not one of them.
//!
//! Sets marked before manifests existed have none; they are adopted by the member count recorded
//! with their mark (`asdr:members`). A set marked with a manifest (`asdr:manifest` on its
//! snapshots) whose manifest is missing, unreadable or altered is complete no more.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest format this asdr writes and reads.
/// 2: the cluster id (`cluster_id`). 3: the nodes' Aerospike ids (`node_ids`). Earlier formats
/// are read as before.
pub const FORMAT: u32 = 3;

/// The folder of a cluster's set manifests in its store: `<store>/<cluster>/manifests/<set>.json`.
/// Apart from the archives (`<store>/<cluster>/bs-…/`), so a lifecycle rule that expires old SMD
/// archives by prefix never takes the manifests that prove the sets are this cluster's.
pub const FOLDER: &str = "manifests";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetManifest {
    pub format: u32,
    pub cluster: String,
    /// The cluster's id (`asdr:cluster-id`); absent in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub set: String,
    /// `ebs` (asbackup runs carry their own manifests, one per namespace).
    pub method: String,
    /// The region the set's snapshots are in.
    pub region: String,
    /// For a copy: the region of the set it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_region: Option<String>,
    /// Sorted by node, then device.
    pub members: Vec<Member>,
    pub namespaces: Vec<String>,
    pub smd: Vec<SmdEntry>,
    /// Node → its Aerospike node id when the set was made (`node` reply), so a replacement or a
    /// restored cluster rejoins as the same nodes (R18). Empty before format 3.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub node_ids: std::collections::BTreeMap<String, String>,
    /// UTC times: `set` from the set id (asdr's clock when the set began), `written` (asdr's clock
    /// when this manifest was written), and the first and last snapshot starts (AWS's clock: the
    /// data's moment).
    pub times: Times,
    /// The digest of the policy the set was made under (`sha256:…`).
    pub policy_digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub node: String,
    pub device: String,
    /// The volume the snapshot was taken of (for a copy: the source's volume).
    pub volume_id: String,
    pub snapshot_id: String,
    /// For a copy: the snapshot it was copied from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot_id: Option<String>,
    pub size_gib: u32,
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The snapshot's start (AWS's clock, RFC 3339 UTC), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmdEntry {
    pub node: String,
    pub uri: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Times {
    pub set: String,
    pub written: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_snapshot_start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot_start: Option<String>,
}

/// The file as stored: the manifest and the SHA-256 of its canonical JSON (serde's field order,
/// no whitespace), so a truncated or altered file is told from a whole one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    pub manifest: SetManifest,
    pub sha256: String,
}

impl SetManifest {
    /// The SHA-256 of the manifest's canonical JSON.
    pub fn digest(&self) -> String {
        let bytes = serde_json::to_vec(self).expect("a manifest serializes");
        crate::hex(&Sha256::digest(&bytes))
    }

    /// The file to store: the manifest and its own SHA-256.
    pub fn seal(self) -> ManifestFile {
        let sha256 = self.digest();
        ManifestFile {
            manifest: self,
            sha256,
        }
    }

    pub fn member(&self, node: &str, device: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.node == node && m.device == device)
    }
}

impl ManifestFile {
    /// Reads a stored manifest: it parses, is of a format this asdr reads, and its SHA-256 holds.
    pub fn read(bytes: &[u8]) -> Result<ManifestFile, String> {
        #[derive(Deserialize)]
        struct Format {
            manifest: FormatOnly,
        }
        #[derive(Deserialize)]
        struct FormatOnly {
            format: u32,
        }
        if let Ok(f) = serde_json::from_slice::<Format>(bytes)
            && f.manifest.format > FORMAT
        {
            return Err(format!(
                "written in manifest format {}, newer than this asdr reads ({FORMAT}): upgrade asdr",
                f.manifest.format
            ));
        }
        let file: ManifestFile =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable: {e}"))?;
        file.check()?;
        Ok(file)
    }

    /// Its SHA-256 is the manifest's.
    pub fn check(&self) -> Result<(), String> {
        let have = self.manifest.digest();
        if have == self.sha256 {
            Ok(())
        } else {
            Err(format!(
                "altered or damaged: its content hashes to {have}, it records {}",
                self.sha256
            ))
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serializes")
    }
}

/// A manifest as observed in a store (or a world file): where it is, and what was read there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedManifest {
    pub uri: String,
    /// The set its path names.
    pub set: String,
    /// The file, as read (its SHA-256 is checked by whoever relies on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<ManifestFile>,
    /// Why it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ObservedManifest {
    pub fn from_bytes(uri: &str, set: &str, bytes: &[u8]) -> ObservedManifest {
        match serde_json::from_slice::<ManifestFile>(bytes) {
            Ok(file) => ObservedManifest {
                uri: uri.into(),
                set: set.into(),
                file: Some(file),
                problem: None,
            },
            Err(_) => ObservedManifest {
                uri: uri.into(),
                set: set.into(),
                file: None,
                problem: Some(
                    ManifestFile::read(bytes)
                        .err()
                        .unwrap_or_else(|| "unreadable".into()),
                ),
            },
        }
    }

    /// The manifest, when it is whole, of `cluster` and of the set its path names; else why not.
    pub fn usable(&self, cluster: &str) -> Result<&SetManifest, String> {
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| self.problem.clone().unwrap_or_else(|| "unreadable".into()))?;
        file.check()?;
        let m = &file.manifest;
        if m.cluster != cluster {
            return Err(format!("it names cluster `{}`", m.cluster));
        }
        if m.set != self.set {
            return Err(format!("it names set {}, its path {}", m.set, self.set));
        }
        Ok(m)
    }
}

/// The manifest a `write_manifest` step writes: its members' snapshots resolved from what earlier
/// steps learned, `smd_sha256` the checked SHA-256 of each archive it lists, `written` now (UTC).
/// An error names what is not known (a member whose snapshot no step learned).
pub fn build(
    p: &crate::params::WriteManifest,
    input: &crate::ports::StepInput<'_>,
    smd_sha256: &[String],
    written: time::OffsetDateTime,
) -> Result<SetManifest, String> {
    let mut members = Vec::with_capacity(p.members.len());
    for m in &p.members {
        let snapshot_id = input
            .resolve(&m.snapshot, |l| l.snapshot_id.as_ref())
            .ok_or_else(|| format!("the snapshot of {} {} is not known yet", m.node, m.device))?;
        let started = m.started.clone().or_else(|| {
            m.snapshot
                .from_step()
                .and_then(|s| input.learned.get(s))
                .and_then(|l| l.started.clone())
        });
        let source_snapshot_id = match &m.source_snapshot_id {
            None => None,
            Some(r) => Some(
                input
                    .resolve(r, |l| l.snapshot_id.as_ref())
                    .ok_or_else(|| format!("the source of {} {} is not known", m.node, m.device))?,
            ),
        };
        members.push(Member {
            node: m.node.clone(),
            device: m.device.clone(),
            volume_id: m.volume_id.clone(),
            snapshot_id,
            source_snapshot_id,
            size_gib: m.size_gib,
            encrypted: m.encrypted,
            kms_key_id: m.kms_key_id.clone(),
            started,
        });
    }
    members.sort_by(|a, b| (&a.node, &a.device).cmp(&(&b.node, &b.device)));
    let starts: Vec<String> = members.iter().filter_map(|m| m.started.clone()).collect();
    let set_time = crate::observe::set_time(&p.set)
        .map(utc)
        .unwrap_or_default();
    Ok(SetManifest {
        format: FORMAT,
        cluster: p.cluster.clone(),
        cluster_id: p.cluster_id.clone(),
        set: p.set.clone(),
        method: "ebs".into(),
        region: p.region.clone(),
        source_region: p.source_region.clone(),
        members,
        namespaces: p.namespaces.clone(),
        smd: p
            .smd
            .iter()
            .zip(smd_sha256)
            .map(|(a, sha)| SmdEntry {
                node: a.node.clone(),
                uri: a.uri.clone(),
                sha256: sha.clone(),
            })
            .collect(),
        node_ids: p.node_ids.clone(),
        times: Times {
            set: set_time,
            written: utc(written),
            // RFC 3339 UTC strings of one format order as times.
            first_snapshot_start: starts.iter().min().cloned(),
            last_snapshot_start: starts.iter().max().cloned(),
        },
        policy_digest: p.policy_digest.clone(),
    })
}

/// A time as manifests state it: RFC 3339 in UTC.
pub fn utc(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// `<store>/<cluster>/manifests/<set>.json`.
pub fn uri(store: &str, cluster: &str, set: &str) -> String {
    format!(
        "{}/{cluster}/{FOLDER}/{set}.json",
        store.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SetManifest {
        SetManifest {
            format: FORMAT,
            cluster: "prod".into(),
            cluster_id: Some("0123456789abcdef".into()),
            set: "bs-20261120T030000Z".into(),
            method: "ebs".into(),
            region: "us-east-1".into(),
            source_region: None,
            members: vec![Member {
                node: "a1".into(),
                device: "/dev/sdf".into(),
                volume_id: "vol-1".into(),
                snapshot_id: "snap-1".into(),
                source_snapshot_id: None,
                size_gib: 100,
                encrypted: true,
                kms_key_id: None,
                started: Some("2026-11-20T03:00:05Z".into()),
            }],
            namespaces: vec!["users".into()],
            smd: vec![],
            node_ids: [("a1".to_string(), "BB9000000010000".to_string())].into(),
            times: Times {
                set: "2026-11-20T03:00:00Z".into(),
                written: "2026-11-20T03:10:00Z".into(),
                first_snapshot_start: None,
                last_snapshot_start: None,
            },
            policy_digest: "sha256:00".into(),
        }
    }

    #[test]
    fn a_sealed_manifest_reads_back_and_any_edit_to_it_is_caught() {
        let bytes = sample().seal().to_bytes();
        assert_eq!(ManifestFile::read(&bytes).unwrap().manifest, sample());
        let edited = String::from_utf8(bytes)
            .unwrap()
            .replace("snap-1", "snap-9");
        let err = ManifestFile::read(edited.as_bytes()).unwrap_err();
        assert!(err.contains("altered or damaged"), "{err}");
        let seen = ObservedManifest::from_bytes("u", "bs-20261120T030000Z", edited.as_bytes());
        assert!(seen.usable("prod").is_err());
    }

    #[test]
    fn a_manifest_of_another_cluster_or_set_or_a_newer_format_is_not_usable() {
        let bytes = sample().seal().to_bytes();
        let seen = ObservedManifest::from_bytes("u", "bs-20261120T030000Z", &bytes);
        assert!(seen.usable("prod").is_ok());
        assert!(seen.usable("other").unwrap_err().contains("cluster `prod`"));
        let elsewhere = ObservedManifest::from_bytes("u", "bs-20261121T030000Z", &bytes);
        assert!(elsewhere.usable("prod").is_err());
        let mut newer = sample();
        newer.format = FORMAT + 1;
        let err = ManifestFile::read(&newer.seal().to_bytes()).unwrap_err();
        assert!(err.contains("newer than this asdr reads"), "{err}");
    }
}
