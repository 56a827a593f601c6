//! asbackup and asrestore, the real tools, driven as the planner's steps say: where they run (a
//! node through the transport, or the machine running asdr), plain paths for `file://` stores
//! (asbackup does not understand `file://`, and creates only the last path component) and its
//! native S3 for `s3://`, compression and encryption. After a successful run asdr writes its
//! manifest beside the files — the tool's summary (records, indexes, UDFs, bytes), every file with
//! its SHA-256, start and end — and a set is complete when every namespace has one. A directory
//! without a manifest is an unfinished run's: asbackup clears it (`-r`); one with a manifest is
//! never written again.

use asdr_planner::params::{self, Learned};
use asdr_planner::ports::{Progress, Resources, StepError};
use asdr_planner::world::AsbackupArchive;
use serde::{Deserialize, Serialize};

use crate::exec::{Target, Transport, quote, write_file};
use crate::store::{Store, StoreError};

/// The manifest's name: `asdr-manifest.json` for a full set, and for an incremental one the
/// full set its chain starts from, so a listing alone says what a set is.
/// What a manifest's name says, so that one listing of the store tells every run's owner, its
/// files, its chain and its place in it (no manifest need be read to observe).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestName {
    /// Whose run it is; none for a manifest written before names said it.
    pub cluster: Option<String>,
    /// The id of the cluster whose run it is; none for a manifest written before ids.
    pub cluster_id: Option<String>,
    /// How many files the run wrote: fewer in the directory means one was lost.
    pub files: Option<u32>,
    /// For an incremental: the full set its chain starts from.
    pub incremental_of: Option<String>,
    /// For an incremental: the set of the chain it follows (its `--modified-after`).
    pub after: Option<String>,
    /// When the run finished, UTC, `YYYYMMDDTHHMMSSZ`: the newest moment its records may be
    /// from (a `before:` restore takes only runs finished by its time).
    pub finished: Option<String>,
    /// How its files are compressed (`zstd`, `none`) and encrypted (`aes128`, `aes256`, `none`):
    /// asrestore must be told the same, whatever the policy says today. None for a manifest
    /// written before names said it.
    pub compress: Option<String>,
    pub encrypt: Option<String>,
}

impl ManifestName {
    /// `asdr-manifest[.cluster-C][.id-I][.files-N][.incremental-of-F][.after-P][.finished-T]
    /// [.compress-Z][.encrypt-E].json`.
    pub fn render(&self) -> String {
        let mut out = "asdr-manifest".to_string();
        let parts = [
            ("cluster-", self.cluster.clone()),
            ("id-", self.cluster_id.clone()),
            ("files-", self.files.map(|n| n.to_string())),
            ("incremental-of-", self.incremental_of.clone()),
            ("after-", self.after.clone()),
            ("finished-", self.finished.clone()),
            ("compress-", self.compress.clone()),
            ("encrypt-", self.encrypt.clone()),
        ];
        for (k, v) in parts {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                out.push('.');
                out.push_str(k);
                out.push_str(&v);
            }
        }
        out.push_str(".json");
        out
    }

    /// A manifest's name read back; `None` for a file that is not a manifest.
    pub fn parse(file: &str) -> Option<ManifestName> {
        let rest = file.strip_prefix("asdr-manifest")?.strip_suffix(".json")?;
        let mut out = ManifestName::default();
        if rest.is_empty() {
            return Some(out);
        }
        // Cluster names and set ids hold no dots.
        for part in rest.strip_prefix('.')?.split('.') {
            if let Some(c) = part.strip_prefix("cluster-") {
                out.cluster = Some(c.to_string()).filter(|c| !c.is_empty());
                out.cluster.as_ref()?;
            } else if let Some(i) = part.strip_prefix("id-") {
                (!i.is_empty() && i.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
                out.cluster_id = Some(i.to_string());
            } else if let Some(n) = part.strip_prefix("files-") {
                out.files = Some(n.parse().ok()?);
            } else if let Some(f) = part.strip_prefix("incremental-of-") {
                out.incremental_of = Some(f.to_string());
            } else if let Some(p) = part.strip_prefix("after-") {
                out.after = Some(p.to_string());
            } else if let Some(c) = part.strip_prefix("compress-") {
                matches!(c, "zstd" | "none").then_some(())?;
                out.compress = Some(c.to_string());
            } else if let Some(e) = part.strip_prefix("encrypt-") {
                matches!(e, "aes128" | "aes256" | "none").then_some(())?;
                out.encrypt = Some(e.to_string());
            } else if let Some(t) = part.strip_prefix("finished-") {
                asdr_planner::set_time(&format!("bs-{t}"))?;
                out.finished = Some(t.to_string());
            } else {
                return None;
            }
        }
        Some(out)
    }
}

/// Whether a file in a set's directory is asdr's manifest rather than the tool's data.
pub fn is_manifest(file: &str) -> bool {
    file.starts_with("asdr-manifest")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub set: String,
    pub namespace: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_after: Option<String>,
    pub records: u64,
    pub indexes: u64,
    pub udfs: u64,
    pub bytes: u64,
    pub files: Vec<ManifestFile>,
    pub started: String,
    pub finished: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    pub sha256: String,
}

/// The numbers of asbackup's summary line: `Backed up 1000 record(s), 1 secondary index(es), 0
/// UDF file(s), 82968 byte(s) in total (~82 B/rec)`.
pub fn parse_summary(log: &str) -> Option<(u64, u64, u64, u64)> {
    let line = log.lines().rev().find(|l| l.contains("Backed up "))?;
    let rest = &line[line.find("Backed up ")? + "Backed up ".len()..];
    let mut nums = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u64>().ok());
    Some((nums.next()??, nums.next()??, nums.next()??, nums.next()??))
}

/// Where a store URI lives for the tool: a plain path for `file://`, the URI itself for `s3://`.
fn tool_dir(uri: &str) -> String {
    asdr_specs::StoreUri::for_tool(uri)
}

/// The options every run shares: S3 region and endpoint, compression, encryption, extra args.
fn common_args(tool: &params::Tool, s3: bool, s3_endpoint: Option<&str>) -> String {
    let mut out = String::new();
    if s3 {
        if !tool.s3_region.is_empty() {
            out.push_str(&format!(" --s3-region {}", quote(&tool.s3_region)));
        }
        if let Some(e) = s3_endpoint {
            out.push_str(&format!(" --s3-endpoint-override {}", quote(e)));
        }
    }
    if tool.compress == Some(asdr_specs::Compress::Zstd) {
        out.push_str(" --compress zstd");
    }
    if let Some(e) = &tool.encrypt {
        out.push_str(&format!(
            " --encrypt {} --encryption-key-file {}",
            quote(e.algorithm.as_str()),
            quote(&e.key_file)
        ));
    }
    for a in &tool.args {
        out.push(' ');
        out.push_str(&quote(a));
    }
    out
}

fn failed(tool: &str, status: i32, log: &str) -> StepError {
    let tail: Vec<&str> = log.lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    StepError::permanent(
        format!("{tool}Failed"),
        format!("{tool} exited {status}: {}", tail.join(" / ")),
    )
}

/// Runs a tool; a non-zero exit is the step's failure, with the end of what it logged.
async fn run_tool<T: Transport>(
    transport: &T,
    target: &Target,
    cmd: &str,
    tool: &str,
) -> Result<crate::exec::Output, StepError> {
    let out = transport.run(target, cmd, None).await.map_err(|e| {
        StepError::transient(
            "Unreachable",
            e.to_string(),
            std::time::Duration::from_secs(2),
        )
    })?;
    if out.status != 0 {
        return Err(failed(tool, out.status, &out.stderr));
    }
    Ok(out)
}

/// S3 Object Lock retention on each of `uris` (none wanted: nothing); retention an object already
/// holds as long (a bucket's default, an earlier try) is left, as S3 refuses shortening it.
async fn retain<S: Store>(
    store: &S,
    uris: &[String],
    retention: Option<&params::Retention>,
) -> Result<(), StepError> {
    let Some(r) = retention else {
        return Ok(());
    };
    for uri in uris {
        let held = store.retained(uri).await.ok().flatten();
        if held.as_ref().is_some_and(|h| h.until >= r.until) {
            continue;
        }
        let r = &params::Retention {
            mode: held.map_or(r.mode, |h| h.mode.max(r.mode)),
            until: r.until.clone(),
        };
        store.retain(uri, r).await.map_err(|e| {
            StepError::permanent(
                "ObjectLock",
                format!(
                    "{e}: the set's files must be kept ({} until {}) as the policy locks its sets, and the run does not count as finished without",
                    r.mode, r.until
                ),
            )
        })?;
    }
    Ok(())
}

fn store_err(e: StoreError) -> StepError {
    StepError::transient("StoreIo", e.to_string(), std::time::Duration::from_secs(2))
}

/// The manifest of this step's directory, if the run finished.
pub async fn finished<S: Store>(
    store: &S,
    p: &params::Asbackup,
) -> Result<Option<Resources>, StepError> {
    // A manifest of this cluster's (or, written before names said it, of no cluster) in the
    // directory: its name tells the file count only once the run is done, so it is listed.
    let listed = store
        .list(&format!("{}/", p.to.trim_end_matches('/')))
        .await
        .map_err(store_err)?;
    Ok(listed
        .into_iter()
        .find(|uri| {
            uri.rsplit('/')
                .next()
                .and_then(ManifestName::parse)
                .is_some_and(|m| m.cluster.as_deref().is_none_or(|c| c == p.cluster))
        })
        .map(|uri| Learned {
            manifest: Some(uri),
            ..Learned::default()
        }))
}

/// A finished run adopted as done: where the policy locks sets, only once its manifest holds the
/// retention (its files got theirs before it was written); otherwise acting retains it.
pub async fn adoptable<S: Store>(
    store: &S,
    p: &params::Asbackup,
) -> Result<Option<Resources>, StepError> {
    let Some(done) = finished(store, p).await? else {
        return Ok(None);
    };
    if let (Some(want), Some(m)) = (p.retention.as_ref(), done.manifest.as_deref()) {
        let held = store.retained(m).await.ok().flatten();
        if !crate::store::retention_holds(held.as_ref(), want) {
            return Ok(None);
        }
    }
    Ok(Some(done))
}

/// One namespace's asbackup run, then its manifest.
pub async fn backup<T: Transport, S: Store>(
    transport: &T,
    target: &Target,
    store: &S,
    info: std::net::SocketAddr,
    s3_endpoint: Option<&str>,
    p: &params::Asbackup,
) -> Result<Progress, StepError> {
    if let Some(done) = finished(store, p).await? {
        // A run killed between its manifest and the manifest's retention: retained now (its
        // files were, before the manifest was written).
        if let Some(m) = done.manifest.as_deref() {
            retain(store, &[m.to_string()], p.retention.as_ref()).await?;
        }
        return Ok(Progress::Done(done));
    }
    let (ns, to, set) = (p.namespace.clone(), p.to.clone(), p.set.clone());
    let s3 = asdr_specs::StoreUri::is_s3(&to);
    let dir = tool_dir(&to);
    let started = now();
    // A plain path: its parent is created first (asbackup creates only the last component).
    // `-r`: no manifest is here (checked above), so whatever is in the directory is an
    // unfinished run's, which asbackup would otherwise refuse.
    let mut cmd = String::new();
    if !s3 {
        cmd.push_str(&format!(
            "mkdir -p -- \"$(dirname -- {d})\" && ",
            d = quote(&dir)
        ));
    }
    // The tools read `--modified-after` as a local time of the process running them: under an
    // explicit UTC zone it means the UTC instant asdr computed, whatever the host's TZ.
    cmd.push_str(&format!(
        "TZ=UTC asbackup --host {} --port {} --namespace {} --directory {} --remove-files",
        info.ip(),
        info.port(),
        quote(&ns),
        quote(&dir)
    ));
    if let Some(after) = &p.modified_after {
        cmd.push_str(&format!(" --modified-after {}", quote(after)));
    }
    cmd.push_str(&common_args(&p.tool, s3, s3_endpoint));
    let out = run_tool(transport, target, &cmd, "asbackup").await?;
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), out.stderr);
    let (records, indexes, udfs, bytes) = parse_summary(&log).ok_or_else(|| {
        StepError::permanent(
            "asbackupNoSummary",
            "asbackup exited 0 without its summary line: the backup is not trusted",
        )
    })?;
    // Every file the run wrote, with its SHA-256.
    let files = if s3 {
        let mut files = Vec::new();
        for uri in store.list(&format!("{to}/")).await.map_err(store_err)? {
            let name = uri.rsplit('/').next().unwrap_or_default().to_string();
            if is_manifest(&name) {
                continue;
            }
            let sha256 = store.digest(&uri).await.map_err(store_err)?;
            files.push(ManifestFile { name, sha256 });
        }
        files
    } else {
        let listing = transport
            .run(
                target,
                &format!("cd -- {} && sha256sum -- *", quote(&dir)),
                None,
            )
            .await
            .map_err(|e| {
                StepError::transient(
                    "Unreachable",
                    e.to_string(),
                    std::time::Duration::from_secs(2),
                )
            })?;
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .filter_map(|l| l.split_once("  "))
            .filter(|(_, n)| !is_manifest(n))
            .map(|(h, n)| ManifestFile {
                name: n.to_string(),
                sha256: h.to_string(),
            })
            .collect()
    };
    if files.is_empty() {
        return Err(StepError::permanent(
            "asbackupNoFiles",
            format!("asbackup reported success but {to} holds no file"),
        ));
    }
    // R20: every file retained before the manifest says the run finished, as a snapshot set is
    // locked before its mark.
    if p.retention.is_some() {
        let uris: Vec<String> = files.iter().map(|f| format!("{to}/{}", f.name)).collect();
        retain(store, &uris, p.retention.as_ref()).await?;
    }
    let incremental_of = p.incremental_of.clone();
    let manifest = Manifest {
        format: 1,
        set,
        namespace: ns,
        kind: p.kind.as_str().to_string(),
        incremental_of: incremental_of.clone(),
        modified_after: p.modified_after.clone(),
        records,
        indexes,
        udfs,
        bytes,
        files,
        started,
        finished: now(),
    };
    let finished_at = asdr_planner::set_id(time::OffsetDateTime::now_utc())[3..].to_string();
    let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serializes");
    let name = ManifestName {
        cluster: Some(p.cluster.clone()).filter(|c| !c.is_empty()),
        cluster_id: p.cluster_id.clone(),
        files: Some(manifest.files.len() as u32),
        incremental_of: incremental_of.clone(),
        after: p.after.clone(),
        finished: Some(finished_at),
        compress: Some(p.tool.compress_name().into()),
        encrypt: Some(p.tool.encrypt_name().into()),
    }
    .render();
    if s3 {
        store
            .put(&format!("{to}/{name}"), text)
            .await
            .map_err(store_err)?;
        retain(store, &[format!("{to}/{name}")], p.retention.as_ref()).await?;
    } else {
        write_file(transport, target, &format!("{dir}/{name}"), text, None)
            .await
            .map_err(|e| StepError::permanent("ManifestWrite", e.to_string()))?;
    }
    Progress::done(Learned {
        manifest: Some(format!("{to}/{name}")),
        records: Some(records),
        command: Some(cmd),
        ..Learned::default()
    })
}

/// asrestore of a chain (the full set, then its incrementals) into the running cluster.
pub async fn restore<T: Transport>(
    transport: &T,
    target: &Target,
    info: std::net::SocketAddr,
    s3_endpoint: Option<&str>,
    p: &params::Asrestore,
) -> Result<Progress, StepError> {
    let ns = &p.namespace;
    let dirs: Vec<String> = p.directories.iter().map(|d| tool_dir(d)).collect();
    let s3 = dirs.iter().any(|d| asdr_specs::StoreUri::is_s3(d));
    let which = match dirs.as_slice() {
        [one] => format!("--directory {}", quote(one)),
        many => format!("--directory-list {}", quote(&many.join(","))),
    };
    let mut cmd = format!(
        "asrestore --host {} --port {} --namespace {} {which}",
        info.ip(),
        info.port(),
        quote(ns)
    );
    cmd.push_str(&common_args(&p.tool, s3, s3_endpoint));
    run_tool(transport, target, &cmd, "asrestore").await?;
    Progress::done(Learned {
        command: Some(cmd),
        ..Learned::default()
    })
}

/// Retention: every file of a set goes, manifests last — and only when every namespace
/// directory of the set holds asdr's manifest (never anything asdr did not finish).
pub async fn delete_set<S: Store>(
    store: &S,
    p: &params::DeleteBackup,
) -> Result<Progress, StepError> {
    let dirs = &p.directories;
    let mut files = Vec::new();
    let mut manifests = Vec::new();
    for d in dirs {
        let listed = store.list(&format!("{d}/")).await.map_err(store_err)?;
        let (m, f): (Vec<String>, Vec<String>) = listed
            .into_iter()
            .partition(|u| u.rsplit('/').next().is_some_and(is_manifest));
        if m.is_empty() && !f.is_empty() {
            return Err(StepError::permanent(
                "R13",
                format!("[R13] {d} holds no asdr manifest: asdr does not delete it"),
            ));
        }
        // Right before deleting: a manifest naming another cluster is theirs, whatever the plan
        // says (a store shared by two clusters).
        if let Some(other) = m.iter().find_map(|u| {
            let m = ManifestName::parse(u.rsplit('/').next()?)?;
            let id_of = |i: String| format!("id {i}");
            m.cluster.filter(|c| c != &p.cluster).or_else(|| {
                m.cluster_id
                    .filter(|i| p.cluster_id.as_ref().is_some_and(|ours| ours != i))
                    .map(id_of)
            })
        }) {
            return Err(StepError::permanent(
                "R13",
                format!("[R13] {d} is cluster {other}'s backup: asdr does not delete it"),
            ));
        }
        files.extend(f);
        manifests.extend(m);
    }
    for uri in files.iter().chain(&manifests) {
        store.delete(uri).await.map_err(store_err)?;
    }
    Progress::done(Learned {
        deleted: Some((files.len() + manifests.len()) as u64),
        ..Learned::default()
    })
}

/// Whether a set's files are all gone (delete_backup is done).
pub async fn deleted<S: Store>(store: &S, p: &params::DeleteBackup) -> Result<bool, StepError> {
    for d in &p.directories {
        if !store
            .list(&format!("{d}/"))
            .await
            .map_err(store_err)?
            .is_empty()
        {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The finished asbackup runs under `to`, from one listing: `<to>/<cluster>/<set>/<ns>/asdr-manifest*.json`,
/// and runs written before directories were per cluster, `<to>/<set>/<ns>/asdr-manifest*.json`.
/// A run in a cluster's directory whose manifest names another cluster is that other cluster's
/// as its manifest says (the verifier and deletions read the manifest's name).
pub async fn archives<S: Store>(store: &S, to: &str) -> Result<Vec<AsbackupArchive>, StoreError> {
    let root = to.trim_end_matches('/');
    let mut out = Vec::new();
    let listed = store.list(&format!("{root}/")).await?;
    // (run directory, cluster directory, set, namespace, file) for each listed file.
    let parse = |uri: &str| -> Option<(String, Option<String>, String, String, String)> {
        let rest = uri.strip_prefix(&format!("{root}/"))?;
        match rest.split('/').collect::<Vec<_>>().as_slice() {
            [set, ns, file] if asdr_specs::is_set_id(set) => Some((
                format!("{root}/{set}/{ns}"),
                None,
                set.to_string(),
                ns.to_string(),
                file.to_string(),
            )),
            [cluster, set, ns, file] if asdr_specs::is_set_id(set) => Some((
                format!("{root}/{cluster}/{set}/{ns}"),
                Some(cluster.to_string()),
                set.to_string(),
                ns.to_string(),
                file.to_string(),
            )),
            _ => None,
        }
    };
    // The data files present per run directory: a manifest that counts more was left by a run
    // whose files were lost since.
    let mut present: std::collections::BTreeMap<String, u32> = Default::default();
    for uri in &listed {
        if let Some((dir, _, _, _, file)) = parse(uri)
            && !is_manifest(&file)
        {
            *present.entry(dir).or_default() += 1;
        }
    }
    for uri in &listed {
        let Some((dir, in_cluster_dir, set, ns, file)) = parse(uri) else {
            continue;
        };
        let Some(m) = ManifestName::parse(&file) else {
            continue;
        };
        let files_present = present.get(&dir).copied().unwrap_or(0);
        // What keeps the run (R20): read, never assumed from the policy, which may have
        // changed since; a store that cannot say fails the listing rather than guess none.
        let retention = store.retained(uri).await?;
        out.push(AsbackupArchive {
            retention,
            set,
            namespace: ns,
            uri: dir,
            incremental_of: m.incremental_of,
            // The manifest's name says whose run it is; in a cluster's directory a manifest
            // that names none is that cluster's.
            cluster: m.cluster.or(in_cluster_dir),
            cluster_id: m.cluster_id,
            after: m.after,
            missing_files: m.files.map_or(0, |n| n.saturating_sub(files_present)),
            finished: m
                .finished
                .and_then(|t| asdr_planner::set_time(&format!("bs-{t}"))),
            compress: m.compress,
            encrypt: m.encrypt,
        });
    }
    out.sort_by(|a, b| (&a.set, &a.namespace, &a.uri).cmp(&(&b.set, &b.namespace, &b.uri)));
    Ok(out)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
