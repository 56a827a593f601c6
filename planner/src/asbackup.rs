//! The seed's first method: asbackup to a safe place, asrestore from it. A set is one directory
//! per namespace, `<asbackup.to>/<set>/<namespace>/`, finished when asdr's manifest is in it.
//! Full sets start chains; with `incremental_every`, incremental sets (records modified after the
//! previous set of the chain started) follow until the next full set is due. A restore replays a
//! chain in order; retention keeps chains whole.

use asdr_specs::{Diagnostic, Restore, RestoreSource};
use serde_json::json;
use time::OffsetDateTime;

use crate::builder::Builder;
use crate::error::{PlanError, refuse};
use crate::nodes::require_stable_cluster;
use crate::observe::human_age;
use crate::observe::{BackupSet, Observed, set_id};
use crate::params::{self, BackupKind, Params, Tool, ToolEncrypt};
use crate::plan::Action;
use crate::{Ctx, tags};

/// A complete full set and its complete incrementals, oldest first.
struct Chain<'a, 'w> {
    full: &'a BackupSet<'w>,
    incrementals: Vec<&'a BackupSet<'w>>,
}

impl<'a, 'w> Chain<'a, 'w> {
    fn newest(&self) -> &'a BackupSet<'w> {
        self.incrementals.last().copied().unwrap_or(self.full)
    }

    fn sets(&self) -> impl Iterator<Item = &'a BackupSet<'w>> + '_ {
        std::iter::once(self.full).chain(self.incrementals.iter().copied())
    }
}

fn namespaces(ctx: &Ctx<'_, '_>) -> Vec<String> {
    ctx.policy
        .cluster
        .namespaces
        .iter()
        .map(|n| n.name.clone())
        .collect()
}

/// Complete chains, oldest first.
fn chains<'a, 'w>(ctx: &'a Ctx<'_, 'w>) -> Vec<Chain<'a, 'w>> {
    chains_of(ctx.policy, ctx.obs)
}

/// The asbackup sets a restore can replay: every set of a whole chain. `status` asks this, as the
/// planner does, so both name the same recovery points.
pub(crate) fn restorable(policy: &asdr_specs::Policy, obs: &Observed<'_>) -> Vec<String> {
    chains_of(policy, obs)
        .iter()
        .flat_map(|c| c.sets().map(|s| s.id.clone()).collect::<Vec<_>>())
        .collect()
}

fn chains_of<'a, 'w>(policy: &asdr_specs::Policy, obs: &'a Observed<'w>) -> Vec<Chain<'a, 'w>> {
    let ns: Vec<String> = policy
        .cluster
        .namespaces
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let complete: Vec<&BackupSet<'w>> = obs
        .sets
        .iter()
        .filter(|s| s.asbackup_complete(&ns))
        .collect();
    complete
        .iter()
        .filter(|s| s.chain() == s.id)
        .map(|full| {
            // A chain holds only while every link is there: an incremental whose manifest names
            // the set it follows, and that set is not the chain's last whole one, comes after a
            // gap (a set lost or damaged) and is not replayed; a later incremental that follows
            // the last whole set carries the chain on.
            let mut incrementals: Vec<&BackupSet<'w>> = Vec::new();
            for s in complete
                .iter()
                .filter(|s| s.chain() == full.id && s.id != full.id)
            {
                let last = incrementals
                    .last()
                    .map_or(full.id.as_str(), |l| l.id.as_str());
                if s.asbackup_after().is_some_and(|a| a != last) {
                    continue;
                }
                incrementals.push(s);
            }
            Chain { full, incrementals }
        })
        .collect()
}

fn age(ctx: &Ctx<'_, '_>, t: OffsetDateTime) -> u64 {
    (ctx.now - t).whole_seconds().max(0) as u64
}

/// Backup as desired state for `method: asbackup`: a full set younger than `every` (and, with
/// `incremental_every`, a set of the newest chain younger than that), then retention.
pub(crate) fn plan(ctx: &Ctx<'_, '_>, b: &mut Builder) -> Result<(), PlanError> {
    let backup = &ctx.policy.backup;
    let asb = backup
        .asbackup
        .as_ref()
        .expect("validation requires it for method asbackup");
    if asb.run_on == asdr_specs::RunOn::Node && asb.to.starts_with("file://") {
        // The tool writes on the node, asdr lists where it runs: only a filesystem both see
        // holds the same sets for both. Otherwise no set is ever seen: a full set every time,
        // none deleted, `status` overdue — loud, never lost, but said here first.
        b.warn(
            "R13",
            format!(
                "asbackup.to {} is written on the node (run_on: node) but read where asdr runs: unless it is a filesystem both see (NFS, EFS), asdr sees none of its sets (a full set every run, none deleted, status overdue); use an s3:// store or run_on: local",
                asb.to
            ),
        );
    }
    // R20: a locked set's files are retained in the store (S3 Object Lock): a bucket without
    // it refuses the backup here, before any run.
    crate::locks::check_store(ctx, b, backup.lock.as_ref(), &asb.to, "backup.lock")?;
    let chains = chains(ctx);
    let newest = chains.last();
    let due = match newest {
        None => Some((
            BackupKind::Full,
            None,
            "no complete asbackup set exists".to_string(),
        )),
        Some(c) if age(ctx, c.full.time) >= backup.every.seconds() => Some((
            BackupKind::Full,
            None,
            format!(
                "the newest full set {} is {} old; every: {}",
                c.full.id,
                human_age(age(ctx, c.full.time)),
                backup.every
            ),
        )),
        Some(c) => asb
            .incremental_every
            .filter(|i| age(ctx, c.newest().time) >= i.seconds())
            .map(|i| {
                (
                    BackupKind::Incremental,
                    Some(c),
                    format!(
                        "the newest set of chain {} is {} old; incremental_every: {i}",
                        c.full.id,
                        human_age(age(ctx, c.newest().time))
                    ),
                )
            }),
    };
    let mut last_step = None;
    // Only a full set starts a chain: an incremental adds to the newest one and counts toward
    // `retain.count` as nothing new.
    let new_chain = due
        .as_ref()
        .is_some_and(|(kind, _, _)| *kind == BackupKind::Full);
    if let Some((kind, chain, reason)) = due {
        require_stable_cluster(ctx)?;
        let set = resume_or_new(ctx, chain.map(|c| c.full.id.as_str()));
        last_step = backup_set(ctx, b, &set, chain, kind, &reason);
        if let Some(c) = chain {
            retain_chain(ctx, b, c, &set);
        }
    } else {
        crate::nodes::warn_nodes_down(ctx, b);
    }
    retention(ctx, b, &chains, last_step, new_chain);
    Ok(())
}

/// An unfinished set of the same kind newer than every complete one (an interrupted run) is
/// finished, its half-written directories cleared by asbackup itself (`-r`: no manifest there).
fn resume_or_new(ctx: &Ctx<'_, '_>, chain: Option<&str>) -> String {
    let ns = namespaces(ctx);
    let newest_complete = ctx
        .obs
        .sets
        .iter()
        .filter(|s| s.asbackup_complete(&ns))
        .map(|s| s.time)
        .max();
    ctx.obs
        .sets
        .iter()
        .rev()
        .find(|s| {
            !s.asbackup.is_empty()
                && !s.asbackup_complete(&ns)
                // A run that lost files since is not an interrupted one: never rewritten.
                && !s.asbackup_damaged()
                && newest_complete.is_none_or(|t| s.time > t)
                && s.time <= ctx.now
                // Only this interval's run is finished; an older one is left, and a new set made.
                && ((ctx.now - s.time).whole_seconds().max(0) as u64)
                    < ctx.policy.backup.every.seconds()
                && (s.chain() == s.id) == chain.is_none()
                && chain.is_none_or(|c| s.chain() == c)
        })
        .map_or_else(
            || {
                // Never an id any run in the store has, ours or another cluster's sharing it.
                (0..3600)
                    .map(|k| set_id(ctx.now + time::Duration::seconds(k)))
                    .find(|id| {
                        ctx.obs.set(id).is_none()
                            && !ctx.world.asbackup_archives.iter().any(|a| &a.set == id)
                    })
                    .unwrap_or_else(|| set_id(ctx.now))
            },
            |s| s.id.clone(),
        )
}

/// The directory of one namespace's new run in a set: `<to>/<cluster>/<set>/<ns>`, so clusters
/// sharing `asbackup.to` never write into one directory (asbackup clears a directory without
/// asdr's manifest, `-r`). Runs written before, at `<to>/<set>/<ns>`, are read where they are.
/// A set begun before (an interrupted run) is finished in the layout its finished runs have.
pub(crate) fn dir(ctx: &Ctx<'_, '_>, set: &str, ns: &str) -> String {
    let to = ctx
        .policy
        .backup
        .asbackup
        .as_ref()
        .expect("asbackup")
        .to
        .trim_end_matches('/');
    let legacy = ctx.obs.set(set).is_some_and(|s| {
        s.asbackup
            .iter()
            .any(|a| a.uri == format!("{to}/{set}/{}", a.namespace))
    });
    if legacy {
        format!("{to}/{set}/{ns}")
    } else {
        format!("{to}/{}/{set}/{ns}", ctx.policy.cluster.name)
    }
}

/// What every asbackup/asrestore step carries: where it runs, how files are compressed and
/// encrypted, the S3 region; the extra arguments are each tool's own.
fn tool_params(ctx: &Ctx<'_, '_>, restore: bool) -> Tool {
    let asb = ctx.policy.backup.asbackup.as_ref().expect("asbackup");
    Tool {
        run_on: asb.run_on,
        compress: asb.compress,
        encrypt: asb.encrypt.as_ref().map(|e| ToolEncrypt {
            algorithm: e.algorithm,
            key_file: e.key_file.clone(),
        }),
        s3_region: ctx.policy.cluster.region.clone(),
        args: if restore {
            asb.restore_args.clone()
        } else {
            asb.args.clone()
        },
    }
}

/// The compression and encryption asrestore must be told for `ns`'s runs of `members`: what
/// their manifests recorded, whatever the policy says now (the policy's for runs written before
/// names said it). One asrestore reads the whole chain with one setting: a chain whose runs
/// differ is refused, as is an encrypted one when the policy names no key file.
fn restore_tool(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    members: &[&BackupSet<'_>],
    ns: &str,
) -> Result<Tool, PlanError> {
    let mut tool = tool_params(ctx, true);
    let today = (tool.compress_name(), tool.encrypt_name());
    let recorded: std::collections::BTreeSet<(&str, &str)> = members
        .iter()
        .flat_map(|s| s.asbackup.iter().filter(|a| a.namespace == ns))
        .map(|a| {
            (
                a.compress.as_deref().unwrap_or(today.0),
                a.encrypt.as_deref().unwrap_or(today.1),
            )
        })
        .collect();
    let refused = |m: String| {
        refuse(
            Diagnostic::new(restore.source_span, m)
                .rule("R2")
                .help("restore the sets written one way separately (`set:<id>`), or give the policy the key file they were encrypted with"),
        )
    };
    if recorded.len() > 1 {
        let ways: Vec<String> = recorded
            .iter()
            .map(|(c, e)| format!("compress {c}, encrypt {e}"))
            .collect();
        return Err(refused(format!(
            "restore `{}`: the runs of namespace `{ns}` it replays were written in different ways ({}): one asrestore reads them with one",
            restore.name,
            ways.join("; ")
        )));
    }
    let (compress, encrypt) = recorded.into_iter().next().unwrap_or(today);
    tool.compress = (compress == "zstd").then_some(asdr_specs::Compress::Zstd);
    tool.encrypt = match encrypt {
        "none" => None,
        algorithm => {
            let Some(key_file) = tool.encrypt.as_ref().map(|e| e.key_file.clone()) else {
                return Err(refused(format!(
                    "restore `{}`: the runs of namespace `{ns}` were encrypted ({algorithm}), and the policy names no key file (asbackup.encrypt)",
                    restore.name
                )));
            };
            Some(ToolEncrypt {
                algorithm: if algorithm == "aes128" {
                    asdr_specs::EncryptAlgorithm::Aes128
                } else {
                    asdr_specs::EncryptAlgorithm::Aes256
                },
                key_file,
            })
        }
    };
    Ok(tool)
}

/// asbackup, one namespace after the other (asbackup loads the servers: the seed's "additional
/// server load"). Returns the last step, which completes the set.
fn backup_set(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    set: &str,
    chain: Option<&Chain<'_, '_>>,
    kind: BackupKind,
    reason: &str,
) -> Option<String> {
    let names: Vec<String> = ctx
        .policy
        .cluster
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let runner = ctx.obs.healthy_names().first().cloned().unwrap_or_default();
    let done: Vec<&str> = ctx
        .obs
        .set(set)
        .map(|s| s.asbackup.iter().map(|a| a.namespace.as_str()).collect())
        .unwrap_or_default();
    // An incremental takes what changed since the newest set of its chain started.
    let after = chain.map(|c| {
        let t = c.newest().time;
        let fmt =
            time::macros::format_description!("[year]-[month]-[day]_[hour]:[minute]:[second]");
        t.format(&fmt).expect("formats")
    });
    let mut prev = b.check_cluster_stable(names);
    let mut last = None;
    for ns in &ctx.policy.cluster.namespaces {
        if done.contains(&ns.name.as_str()) {
            continue;
        }
        let to = dir(ctx, set, &ns.name);
        let retention = crate::locks::retention(ctx, ctx.policy.backup.lock.as_ref(), &to, set);
        if let (Some(lock), None, Some(t)) = (
            ctx.policy.backup.lock.as_ref(),
            &retention,
            crate::observe::set_time(set),
        ) && lock.until(t) <= ctx.now
        {
            // Said, never silent: the set resumed is older than its lock.
            b.warn(
                "R20",
                format!(
                    "set {set} is finished ({}) after its lock ended ({}): this run's files are written without retention",
                    ns.name,
                    crate::manifest::utc(lock.until(t))
                ),
            );
        }
        let params = params::Asbackup {
            namespace: ns.name.clone(),
            set: set.to_string(),
            to,
            kind,
            incremental_of: chain.map(|c| c.full.id.clone()),
            modified_after: after.clone(),
            cluster: ctx.policy.cluster.name.clone(),
            cluster_id: Some(ctx.cluster_id.to_string()),
            after: chain.map(|c| c.newest().id.clone()),
            tool: tool_params(ctx, false),
            retention,
        };
        b.change(
            format!("asbackup.{set}.{}", ns.name),
            Action::Create,
            reason,
            None,
            serde_json::to_value(&params).ok(),
        );
        prev = b.step(
            format!("asbackup:{}:{set}", ns.name),
            Some(&runner),
            vec![prev],
            Params::Asbackup(params),
        );
        last = Some(prev.clone());
    }
    last
}

/// Keep the newest `retain.count` chains and none whose newest set is older than `max_age`; never
/// the newest complete chain; delete only sets every directory of which holds asdr's manifest
/// (an unfinished set is left alone: asdr cannot tell what else is in it). Deletions wait for the
/// set this plan makes.
fn retention(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    chains: &[Chain<'_, '_>],
    after: Option<String>,
    new_chain: bool,
) {
    let retain = ctx.policy.backup.retain;
    let new_counts = usize::from(after.is_some() && new_chain);
    let mut expired = Vec::new();
    for (k, chain) in chains.iter().rev().enumerate() {
        if k == 0 {
            continue;
        }
        let over = retain.count.is_some_and(|c| k + new_counts >= c as usize);
        let old = retain
            .max_age
            .is_some_and(|m| age(ctx, chain.newest().time) > m.seconds());
        if over || old {
            expired.push((
                chain,
                if over {
                    "retain.count"
                } else {
                    "retain.max_age"
                },
            ));
        }
    }
    let to = &ctx.policy.backup.asbackup.as_ref().expect("asbackup").to;
    // A directory that also holds another cluster's run (two clusters that wrote the same set id
    // into one shared directory, before directories were per cluster) is not deleted: the
    // deletion would be refused at the store (R13) on every apply. The chain is kept whole.
    let cluster = ctx.policy.cluster.name.as_str();
    let shared = |uri: &str| {
        ctx.world
            .asbackup_archives
            .iter()
            .any(|a| a.uri == uri && a.cluster.as_deref().is_some_and(|c| c != cluster))
    };
    // R20: a chain any set of which the policy's lock still covers stays (its files are
    // retained in the store until then, and deleting would only hide them behind delete
    // markers): said, with until when.
    let expired: Vec<_> = expired
        .into_iter()
        .filter(|(chain, why)| {
            let held = chain
                .sets()
                .filter_map(|s| kept_until(ctx, s).map(|(until, how)| (s, until, how)))
                .max_by_key(|(_, until, _)| *until);
            if let Some((s, until, how)) = &held {
                b.warn(
                    "R20",
                    format!(
                        "chain {} is past {why}, but set {} is {how} until {}: the chain is kept until then",
                        chain.full.id,
                        s.id,
                        crate::manifest::utc(*until)
                    ),
                );
            }
            held.is_none()
        })
        .collect();
    let expired: Vec<_> = expired
        .into_iter()
        .filter(|(chain, _)| {
            let blocked = chain
                .sets()
                .flat_map(|s| s.asbackup.iter())
                .find(|a| shared(&a.uri));
            if let Some(a) = blocked {
                b.warn(
                    "R13",
                    format!(
                        "chain {} is past retain, but {} also holds another cluster's run: asdr deletes neither; remove this cluster's files there by hand",
                        chain.full.id, a.uri
                    ),
                );
            }
            blocked.is_none()
        })
        .collect();
    for (chain, why) in expired {
        // Newest first, each after the one before, the full set last: a chain interrupted while
        // it is deleted never leaves incrementals without their full set.
        let mut previous: Option<String> = None;
        let sets: Vec<_> = chain.sets().collect();
        for set in sets.into_iter().rev() {
            let dirs: Vec<&str> = set.asbackup.iter().map(|a| a.uri.as_str()).collect();
            b.change(
                format!("asbackup_set.{}", set.id),
                Action::Delete,
                format!(
                    "chain {} is outside {why} (every set of a chain goes with it)",
                    chain.full.id
                ),
                Some(json!({"set": set.id, "directories": dirs})),
                None,
            );
            let deps = after.iter().chain(previous.iter()).cloned().collect();
            previous = Some(b.step(
                format!("delete_backup:{}", set.id),
                None,
                deps,
                Params::DeleteBackup(params::DeleteBackup {
                    set: set.id.clone(),
                    to: to.clone(),
                    directories: dirs.iter().map(|d| d.to_string()).collect(),
                    cluster: ctx.policy.cluster.name.clone(),
                    tag: tags::CLUSTER.to_string(),
                    cluster_id: Some(ctx.cluster_id.to_string()),
                }),
            ));
        }
    }
    let ns = namespaces(ctx);
    if ctx
        .obs
        .sets
        .iter()
        .any(|s| !s.asbackup.is_empty() && !s.asbackup_complete(&ns))
    {
        b.warn("R13", "unfinished asbackup sets (no manifest in some namespace) are never deleted by asdr: remove them by hand once no apply is running");
    }
}

/// R20: an incremental is worth only as much as the sets it follows: where the new one is
/// retained longer than they are (as observed), their runs are retained as long.
fn retain_chain(ctx: &Ctx<'_, '_>, b: &mut Builder, chain: &Chain<'_, '_>, new: &str) {
    let Some(asb) = ctx.policy.backup.asbackup.as_ref() else {
        return;
    };
    let Some(want) = crate::locks::retention(ctx, ctx.policy.backup.lock.as_ref(), &asb.to, new)
    else {
        return;
    };
    for s in chain.sets().filter(|s| s.id != new) {
        // Held only where every run of the set holds it (observed): else retained again.
        let held = !s.asbackup.is_empty()
            && s.asbackup.iter().all(|a| {
                a.retention
                    .as_ref()
                    .is_some_and(|r| r.mode >= want.mode && r.until >= want.until)
            });
        if held {
            continue;
        }
        let directories: Vec<String> = s.asbackup.iter().map(|a| a.uri.clone()).collect();
        b.change(
            format!("asbackup_set.{}", s.id),
            Action::Update,
            format!(
                "incremental {new} follows it in chain {}: its files are retained as long ({} until {})",
                chain.full.id, want.mode, want.until
            ),
            None,
            Some(json!({"set": s.id, "directories": directories, "retention": want})),
        );
        b.step(
            format!("retain_files:{}", s.id),
            None,
            vec![],
            Params::RetainFiles(params::RetainFiles {
                set: s.id.clone(),
                uris: Vec::new(),
                directories,
                retention: want.clone(),
            }),
        );
    }
}

/// Until when a set must stay (R20), and why: the retention its runs hold in the store, as
/// observed (whatever the policy says now: a lock removed or shortened since does not free
/// them), or the policy's lock; none once both have passed.
fn kept_until(ctx: &Ctx<'_, '_>, s: &BackupSet<'_>) -> Option<(OffsetDateTime, String)> {
    let observed = s
        .asbackup
        .iter()
        .filter_map(|a| a.retention.as_ref())
        .filter_map(|r| {
            r.until_time()
                .map(|u| (u, format!("retained in the store ({})", r.mode)))
        });
    let policy = ctx
        .policy
        .backup
        .lock
        .as_ref()
        .map(|l| (l.until(s.time), format!("locked ({})", l.mode)));
    observed
        .chain(policy)
        .filter(|(until, _)| *until > ctx.now)
        .max_by_key(|(until, _)| *until)
}

/// asrestore into the running cluster, per namespace, replaying the chosen chain in order (the
/// full set, then its incrementals) with `--directory-list`.
pub(crate) fn restore(
    ctx: &Ctx<'_, '_>,
    restore: &Restore,
    b: &mut Builder,
) -> Result<(), PlanError> {
    let chains = chains(ctx);
    let members: Option<Vec<&BackupSet<'_>>> = match &restore.source {
        RestoreSource::Set(id) => chains.iter().find_map(|c| {
            let sets: Vec<_> = c.sets().collect();
            let at = sets.iter().position(|s| &s.id == id)?;
            Some(sets[..=at].to_vec())
        }),
        RestoreSource::Before(t) => chains.iter().rev().find_map(|c| {
            // Runs finished before T: a run holds records written until it finished.
            let sets: Vec<_> = c.sets().filter(|s| s.asbackup_time() < *t).collect();
            (!sets.is_empty() && sets[0].id == c.full.id).then_some(sets)
        }),
        _ => chains.last().map(|c| c.sets().collect()),
    };
    let Some(members) = members else {
        return Err(refuse(
            Diagnostic::new(
                restore.source_span,
                format!(
                    "restore `{}`: no complete asbackup set found for `{}`",
                    restore.name, restore.source
                ),
            )
            .rule("R2"),
        ));
    };
    let last = members.last().expect("a chain has a full set");
    let up = ctx.obs.healthy_names();
    let runner = up.first().cloned().unwrap_or_default();
    let mut prev = b.check_cluster_stable(up);
    for ns in &ctx.policy.cluster.namespaces {
        // Where each run is (a run written before per-cluster directories stays where it is).
        let dirs: Vec<String> = members
            .iter()
            .map(|s| {
                s.asbackup
                    .iter()
                    .find(|a| a.namespace == ns.name)
                    .map_or_else(|| dir(ctx, &s.id, &ns.name), |a| a.uri.clone())
            })
            .collect();
        let params = params::Asrestore {
            namespace: ns.name.clone(),
            set: last.id.clone(),
            directories: dirs.clone(),
            tool: restore_tool(ctx, restore, &members, &ns.name)?,
        };
        b.change(
            format!("namespace.{}", ns.name),
            Action::Update,
            format!(
                "asrestore of {} set(s) up to {} into the running cluster: {}",
                members.len(),
                last.id,
                dirs.join(", ")
            ),
            None,
            serde_json::to_value(&params).ok(),
        );
        prev = b.step(
            format!("asrestore:{}:{}", ns.name, last.id),
            Some(&runner),
            vec![prev],
            Params::Asrestore(params),
        );
    }
    b.warn("R6", format!(
        "asrestore writes the backup's records into the running cluster: a record the cluster holds with a higher generation (written after the backup) is kept, every other one is overwritten with the backup's copy; records deleted since {} come back unless deletes were durable",
        last.id
    ));
    Ok(())
}
