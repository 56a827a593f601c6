//! SMD archives: copied from a node into the store (checksum beside it), restored onto a node
//! (checked before anything is written), copied between stores (copy regions).

use super::*;

impl<T: Transport, S: Store> NodeProvider<T, S> {
    /// The archive at `to` with its `.sha256` beside it, both agreeing (and with `want`).
    pub(super) async fn smd_archive_at(&self, to: &str, want: Option<&str>) -> Option<Learned> {
        let (Ok(tar), Ok(sha)) = (
            self.store.get(to).await,
            self.store.get(&format!("{to}.sha256")).await,
        ) else {
            return None;
        };
        let have = sha256_hex(&tar);
        (String::from_utf8_lossy(&sha).trim() == have && want.is_none_or(|w| w == have)).then(
            || Learned {
                uri: Some(to.to_string()),
                sha256: Some(have),
                ..Learned::default()
            },
        )
    }

    /// A set's SMD archive copied to another store: the source checked against its recorded
    /// SHA-256 (and the plan's), written with its `.sha256`, and read back and checked again.
    pub(super) async fn copy_smd_archive(
        &self,
        p: &params::CopySmdArchive,
    ) -> Result<Progress, StepError> {
        let tar = self.store.get(&p.from).await.map_err(store_error)?;
        let sha = sha256_hex(&tar);
        let recorded = self
            .store
            .get(&format!("{}.sha256", p.from))
            .await
            .ok()
            .map(|b| String::from_utf8_lossy(&b).trim().to_string());
        for (what, want) in [
            ("recorded beside it", recorded),
            ("in the plan", p.sha256.clone()),
        ] {
            if let Some(want) = want
                && want != sha
            {
                return Err(StepError::permanent(
                    "ChecksumMismatch",
                    format!(
                        "SMD archive {} has SHA-256 {sha}, but {want} is {what}: not copied",
                        p.from
                    ),
                ));
            }
        }
        self.store.put(&p.to, tar).await.map_err(store_error)?;
        self.store
            .put(&format!("{}.sha256", p.to), format!("{sha}\n").into_bytes())
            .await
            .map_err(store_error)?;
        self.retain(
            &[p.to.clone(), format!("{}.sha256", p.to)],
            p.retention.as_ref(),
        )
        .await?;
        match self.smd_archive_at(&p.to, Some(&sha)).await {
            Some(learned) => Progress::done(learned),
            None => Err(StepError::transient(
                "ChecksumMismatch",
                format!("the copy at {} does not read back as written", p.to),
                self.retry_after,
            )),
        }
    }

    /// A manifest already at the step's place that lists the same members: an earlier run wrote
    /// it (its SHA-256 is what the mark names).
    pub(super) async fn manifest_written(
        &self,
        input: &StepInput<'_>,
        p: &params::WriteManifest,
    ) -> Option<Learned> {
        let bytes = self.store.get(&p.uri).await.ok()?;
        let file = asdr_planner::manifest::ManifestFile::read(&bytes).ok()?;
        let want =
            asdr_planner::manifest::build(p, input, &[], time::OffsetDateTime::now_utc()).ok()?;
        // Every SMD entry as this plan's archiving steps recorded it (the journal, out of the
        // store's reach): a manifest written into the store by someone else, naming another
        // archive's checksum, is never adopted.
        let smd_as_recorded = p.smd.iter().all(|a| {
            learned_sha256(input, &a.uri).is_some_and(|sha| {
                file.manifest
                    .smd
                    .iter()
                    .any(|e| e.uri == a.uri && e.node == a.node && e.sha256 == sha)
            })
        });
        // A locked set's manifest is adopted only once it is retained (a kill between the write
        // and the retention leaves it unretained: written again, and retained).
        if !self
            .retained_all(std::slice::from_ref(&p.uri), p.retention.as_ref())
            .await
        {
            return None;
        }
        (file.manifest.set == p.set
            && file.manifest.cluster == p.cluster
            && file.manifest.cluster_id == p.cluster_id
            && file.manifest.members == want.members
            && file.manifest.smd.len() == p.smd.len()
            && smd_as_recorded)
            .then(|| Learned {
                uri: Some(p.uri.clone()),
                sha256: Some(file.sha256),
                ..Learned::default()
            })
    }

    /// The set's manifest: each SMD archive read and checked against the `.sha256` beside it,
    /// the members resolved, written, then read back and checked.
    pub(super) async fn write_manifest(
        &self,
        input: &StepInput<'_>,
        p: &params::WriteManifest,
    ) -> Result<Progress, StepError> {
        let mut shas = Vec::with_capacity(p.smd.len());
        for a in &p.smd {
            // The checksum the archiving step learned (journalled, out of the store's reach)
            // when this plan made the archive; the one beside it only for an archive made before.
            let learned = learned_sha256(input, &a.uri);
            match self
                .smd_archive_at(&a.uri, learned.as_deref())
                .await
                .and_then(|l| l.sha256)
            {
                Some(sha) => shas.push(sha),
                None if learned.is_some() => {
                    return Err(StepError::permanent(
                        "ChecksumMismatch",
                        format!(
                            "SMD archive {} is not the one this plan wrote (SHA-256 {} when written): it was replaced in the store since; set {} is not recorded as complete",
                            a.uri,
                            learned.unwrap_or_default(),
                            p.set
                        ),
                    ));
                }
                None => {
                    return Err(StepError::permanent(
                        "ChecksumMismatch",
                        format!(
                            "SMD archive {} is missing or does not match the SHA-256 beside it: set {} is not recorded as complete",
                            a.uri, p.set
                        ),
                    ));
                }
            }
        }
        let manifest =
            asdr_planner::manifest::build(p, input, &shas, time::OffsetDateTime::now_utc())
                .map_err(|e| StepError::permanent("ManifestIncomplete", e))?;
        let file = manifest.seal();
        // Never over another cluster's: a same-named cluster sharing the store that began a set
        // in the same second has the same manifest path.
        if let Ok(bytes) = self.store.get(&p.uri).await
            && let Some(other) = another_clusters(&bytes, p)
        {
            return Err(StepError::permanent("R13", other));
        }
        self.store
            .put(&p.uri, file.to_bytes())
            .await
            .map_err(store_error)?;
        self.retain(std::slice::from_ref(&p.uri), p.retention.as_ref())
            .await?;
        let back = self.store.get(&p.uri).await.map_err(store_error)?;
        match asdr_planner::manifest::ManifestFile::read(&back) {
            Ok(read) if read == file => Progress::done(Learned {
                uri: Some(p.uri.clone()),
                sha256: Some(file.sha256),
                ..Learned::default()
            }),
            _ => Err(StepError::transient(
                "ChecksumMismatch",
                format!("the manifest at {} does not read back as written", p.uri),
                self.retry_after,
            )),
        }
    }

    /// The archive a full-cluster restore will put back, read and checked now, before anything
    /// is stopped: against the set's recorded SHA-256, else the one beside it.
    pub(super) async fn check_smd_archive(
        &self,
        p: &params::CheckSmdArchive,
    ) -> Result<Progress, StepError> {
        let tar = self.store.get(&p.uri).await.map_err(store_error)?;
        let actual = sha256_hex(&tar);
        let expected = match &p.sha256 {
            Some(s) => s.clone(),
            None => String::from_utf8_lossy(
                &self
                    .store
                    .get(&format!("{}.sha256", p.uri))
                    .await
                    .map_err(store_error)?,
            )
            .trim()
            .to_string(),
        };
        if actual != expected {
            return Err(StepError::permanent(
                "CorruptArchive",
                format!(
                    "SMD archive {} of set {} is corrupted: its SHA-256 is {actual}, {expected} was recorded; no node was stopped",
                    p.uri, p.set
                ),
            ));
        }
        // What the node's listing would refuse, refused now: before any node is stopped.
        if let Some(why) = super::tar_check::unsafe_member(&tar) {
            return Err(StepError::permanent(
                "UnsafeArchive",
                format!(
                    "SMD archive {} of set {} holds {why}: the nodes would refuse to unpack it; no node was stopped. Restore from another set",
                    p.uri, p.set
                ),
            ));
        }
        Progress::done(Learned {
            uri: Some(p.uri.clone()),
            sha256: Some(actual),
            ..Learned::default()
        })
    }

    pub(super) async fn copy_smd(
        &self,
        input: &StepInput<'_>,
        p: &params::CopySmd,
    ) -> Result<Progress, StepError> {
        let name = Self::node(input)?;
        let (from, to) = (&p.from, &p.to);
        let files = [to.clone(), format!("{to}.sha256")];
        if !self.transport.streams_binary() {
            let done = self.copy_smd_on_node(&name, from, to).await?;
            self.retain(&files, p.retention.as_ref()).await?;
            return Ok(done);
        }
        let tar = run_ok(
            &self.transport,
            &self.target(&name)?,
            &format!("tar -C {} -cf - .", quote(from)),
            None,
        )
        .await
        .map_err(transport_error)?;
        // A set whose archive a restore would refuse (a link in the SMD directory) is never made.
        if let Some(why) = super::tar_check::unsafe_member(&tar) {
            return Err(StepError::permanent(
                "UnsafeArchive",
                format!(
                    "the SMD directory {from} on node {name} holds {why}: a restore unpacks only plain files and directories, so this set could not be restored; it is not recorded. Remove that entry from the directory and back up again"
                ),
            ));
        }
        let sha = sha256_hex(&tar);
        self.store.put(to, tar).await.map_err(store_error)?;
        self.store
            .put(&format!("{to}.sha256"), format!("{sha}\n").into_bytes())
            .await
            .map_err(store_error)?;
        self.retain(&files, p.retention.as_ref()).await?;
        archived(to, sha, name)
    }

    /// R20: a locked set's store files kept by S3 Object Lock as long as its snapshots, before
    /// the step is done (so before the set's mark).
    pub(super) async fn retain(
        &self,
        uris: &[String],
        retention: Option<&params::Retention>,
    ) -> Result<(), StepError> {
        let Some(r) = retention else {
            return Ok(());
        };
        for uri in uris {
            // Retention the object already holds as long (a bucket's default retention, dated
            // from the write, or an earlier try) is left: S3 would refuse shortening it.
            let held = self.store.retained(uri).await.ok().flatten();
            if held.as_ref().is_some_and(|h| h.until >= r.until) {
                continue;
            }
            let r = &params::Retention {
                mode: held.map_or(r.mode, |h| h.mode.max(r.mode)),
                until: r.until.clone(),
            };
            self.store.retain(uri, r).await.map_err(|e| {
                StepError::permanent(
                    "ObjectLock",
                    format!(
                        "{e}: the set's files must be kept ({} until {}) as its snapshots are locked, and the set is not marked without",
                        r.mode, r.until
                    ),
                )
            })?;
        }
        Ok(())
    }

    /// Whether every one of `uris` holds `retention` (none asked: yes).
    pub(super) async fn retained_all(
        &self,
        uris: &[String],
        retention: Option<&params::Retention>,
    ) -> bool {
        let Some(want) = retention else {
            return true;
        };
        for uri in uris {
            let held = self.store.retained(uri).await.ok().flatten();
            if !crate::store::retention_holds(held.as_ref(), want) {
                return false;
            }
        }
        true
    }

    pub(super) async fn restore_smd(
        &self,
        input: &StepInput<'_>,
        p: &params::RestoreSmd,
    ) -> Result<Progress, StepError> {
        let name = Self::node(input)?;
        let (from, to) = (&p.from, &p.to);
        let expected = match &p.sha256 {
            Some(s) => s.clone(),
            None => String::from_utf8_lossy(
                &self
                    .store
                    .get(&format!("{from}.sha256"))
                    .await
                    .map_err(store_error)?,
            )
            .trim()
            .to_string(),
        };
        if !self.transport.streams_binary() {
            return self
                .restore_smd_on_node(&name, from, to, &p.keep_previous, &expected)
                .await;
        }
        let tar = self.store.get(from).await.map_err(store_error)?;
        let actual = sha256_hex(&tar);
        if actual != expected {
            return Err(StepError::permanent(
                "CorruptArchive",
                format!(
                    "SMD archive {from} is corrupted: its SHA-256 is {actual}, {expected} was recorded; nothing was written to node {name}"
                ),
            ));
        }
        let cmd = replace_smd_dir(to, &p.keep_previous, "-");
        run_ok(&self.transport, &self.target(&name)?, &cmd, Some(tar))
            .await
            .map_err(|e| unsafe_archive(e, from, &name))?;
        Progress::done(Learned {
            sha256: Some(actual),
            ..Learned::default()
        })
    }

    /// Over a transport that cannot carry the archive (SSM), the node packs it and copies it to
    /// S3 itself; only its checksum comes back through the command's output.
    pub(super) async fn copy_smd_on_node(
        &self,
        name: &str,
        from: &str,
        to: &str,
    ) -> Result<Progress, StepError> {
        if !asdr_specs::StoreUri::is_s3(to) {
            return Err(StepError::permanent(
                "Unsupported",
                format!(
                    "over SSM the SMD archive goes from the node to S3 directly; {to} is not an s3:// URI"
                ),
            ));
        }
        // A directory of its own (mktemp -d): a predictable name in /tmp could be made first by
        // any local user, as a link to a file root would then write.
        let cmd = copy_on_node_script(from, to);
        let out = run_ok(&self.transport, &self.target(name)?, &cmd, None)
            .await
            .map_err(|e| match e {
                TransportError::Failed { status: 66, .. } => StepError::permanent(
                    "UnsafeArchive",
                    format!(
                        "the SMD directory {from} on node {name} holds a link, a device or a fifo: a restore unpacks only plain files and directories, so this set could not be restored; it is not recorded. Remove that entry and back up again"
                    ),
                ),
                e => transport_error(e),
            })?;
        let sha = String::from_utf8_lossy(&out).trim().to_string();
        if sha.len() != 64 {
            return Err(StepError::permanent(
                "CopySmd",
                format!("node {name} did not report the archive's SHA-256 (got {sha:?})"),
            ));
        }
        archived(to, sha, name.to_string())
    }

    /// The node fetches the archive from S3 and checks its SHA-256 before unpacking anything.
    pub(super) async fn restore_smd_on_node(
        &self,
        name: &str,
        from: &str,
        to: &str,
        prev: &str,
        sha: &str,
    ) -> Result<Progress, StepError> {
        let cmd = format!(
            "set -e; {TEMP_DIR} aws s3 cp --only-show-errors {} \"$t\"; if ! echo {}'  '\"$t\" | sha256sum -c --status -; then echo 'SMD archive {} is corrupted' >&2; exit 65; fi; {}",
            quote(from),
            quote(sha),
            from.replace('\'', ""),
            replace_smd_dir(to, prev, "\"$t\"")
        );
        match run_ok(&self.transport, &self.target(name)?, &cmd, None).await {
            Ok(_) => Progress::done(Learned {
                sha256: Some(sha.to_string()),
                ..Learned::default()
            }),
            Err(TransportError::Failed { status: 65, .. }) => Err(StepError::permanent(
                "CorruptArchive",
                format!(
                    "SMD archive {from} is corrupted: its SHA-256 is not the recorded {sha}; nothing was written to node {name}"
                ),
            )),
            Err(e) => Err(unsafe_archive(e, from, name)),
        }
    }
}

/// The script a node runs (over SSM) to archive its SMD directory `from` into S3 at `to`: in a
/// fresh private directory, refusing a directory a restore could not unpack, printing the SHA-256.
pub(crate) fn copy_on_node_script(from: &str, to: &str) -> String {
    format!(
        "set -e; {TEMP_DIR} tar -C {} -cf \"$t\" .; if tar -tvf \"$t\" | cut -c1 | grep -qv '^[-d]$'; then echo 'the SMD directory holds a link, a device or a fifo: a restore could not unpack it; not archived' >&2; exit 66; fi; s=$(sha256sum \"$t\" | cut -d' ' -f1); aws s3 cp --only-show-errors \"$t\" {}; printf '%s\\n' \"$s\" | aws s3 cp --only-show-errors - {}; echo \"$s\"",
        quote(from),
        quote(to),
        quote(&format!("{to}.sha256"))
    )
}

/// The node-side archive's place: a fresh private directory, removed however the script ends.
const TEMP_DIR: &str = "d=$(mktemp -d); trap 'rm -rf -- \"$d\"' EXIT; t=\"$d/smd.tar\";";

/// The SHA-256 an earlier step of this plan learned for the archive at `uri` (it archived or
/// copied it there): the journal holds it, where the store cannot write.
pub(super) fn learned_sha256(input: &StepInput<'_>, uri: &str) -> Option<String> {
    input
        .learned
        .values()
        .find(|l| l.uri.as_deref() == Some(uri) && l.sha256.is_some())
        .and_then(|l| l.sha256.clone())
}

/// The node refused to unpack the archive (exit 66): a member that is a link, a device or a
/// fifo, or a name that is absolute or climbs out. Permanent: the archive is what it is.
fn unsafe_archive(e: TransportError, from: &str, name: &str) -> StepError {
    match e {
        TransportError::Failed { status: 66, .. } => StepError::permanent(
            "UnsafeArchive",
            format!(
                "SMD archive {from} holds a member that is not a plain file or directory under a relative name (a link, a device, a fifo, a path out of the directory): refused, nothing was unpacked on node {name}. An archive asdr made holds none: look at who wrote it"
            ),
        ),
        TransportError::Failed { status: 67, .. } => StepError::permanent(
            "CorruptArchive",
            format!(
                "SMD archive {from} could not be unpacked whole on node {name}: its SMD directory was left as it was"
            ),
        ),
        e => transport_error(e),
    }
}

/// Why the manifest already at `p.uri` (as `bytes`) is another cluster's, when it names another
/// cluster id than the step's.
pub(crate) fn another_clusters(bytes: &[u8], p: &params::WriteManifest) -> Option<String> {
    let seen = asdr_planner::manifest::ObservedManifest::from_bytes(&p.uri, &p.set, bytes);
    let other = seen.file?.manifest.cluster_id?;
    (p.cluster_id.as_ref() != Some(&other)).then(|| {
        format!(
            "[R13] {} holds set {}'s manifest of cluster id {other}, not {}: a same-named cluster writes to this store and began a set in the same second; not overwritten (give each cluster its own smd.to)",
            p.uri,
            p.set,
            p.cluster_id.as_deref().unwrap_or("none")
        )
    })
}
