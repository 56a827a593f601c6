use asdr_engine::status::Report;
use asdr_executor::journal::Ended;

use crate::args::{Global, StatusArgs, StatusFormat};
use crate::commands::{age, json, print};
use crate::error::CommandError;
use crate::inputs;

/// `asdr status`: the backups against the RPO, the restores' bounds, the lock, the last apply.
/// Exit 0 when every declared recovery path (the cluster's region, each copy region, each
/// restore) has a usable set within its objective, 2 when one does not, 1 on error.
pub fn cmd_status(g: &Global, a: &StatusArgs) -> Result<i32, CommandError> {
    let session = inputs::session(g)?;
    let report = asdr_engine::status::report(&session)
        .map_err(|e| CommandError::engine(&session.policy, e).refused_as("status refused"))?;
    let format = match (a.format, g.json) {
        (Some(f), _) => f,
        (None, true) => StatusFormat::Json,
        (None, false) => StatusFormat::Text,
    };
    match format {
        StatusFormat::Json => print(&json(&report)?)?,
        StatusFormat::Openmetrics => print(&openmetrics(&report))?,
        StatusFormat::Text if !g.quiet => print(&text(&report, g.world.is_some()))?,
        StatusFormat::Text => {}
    }
    Ok(if report.status.problems.is_empty() {
        0
    } else {
        2
    })
}

/// `world_file`: the report reads a world file, whose time is its own; what the journals recorded
/// happened on this machine's clock, and is said so.
fn text(r: &Report, world_file: bool) -> String {
    let s = &r.status;
    let rfc = crate::render::rfc3339_seconds;
    let mut out = format!("cluster {} (as of {})\n", s.cluster, rfc(s.now));
    out.push_str(&format!(
        "  id:         {} ({})\n",
        s.cluster_id.as_deref().unwrap_or("unknown"),
        s.cluster_id_source
    ));
    if s.other_cluster_resources > 0 {
        out.push_str(&format!(
            "  others:     {} resource(s) named for this cluster carry another cluster id: another cluster of the same name's, left alone\n",
            s.other_cluster_resources
        ));
    }
    match &s.newest_complete {
        Some(n) => out.push_str(&format!(
            "  backup:     newest complete set {} taken {} ago; every {}: {}\n",
            n.set,
            age(n.age_seconds),
            asdr_specs::Duration(s.rpo_seconds),
            if s.overdue {
                "OVERDUE"
            } else {
                "within the RPO"
            }
        )),
        None => out.push_str("  backup:     no complete set: OVERDUE\n"),
    }
    out.push_str(&format!(
        "  sets:       {} complete{}\n",
        s.complete_sets.len(),
        if s.unfinished_sets.is_empty() {
            String::new()
        } else {
            format!(
                ", {} unfinished ({})",
                s.unfinished_sets.len(),
                s.unfinished_sets.join(", ")
            )
        }
    ));
    // Snapshot locks (R20), per region: how many complete sets are wholly locked, and until
    // when the earliest of those holds.
    let mut regions: Vec<&str> = s.locks.iter().map(|l| l.region.as_str()).collect();
    regions.dedup();
    for region in regions {
        let rows: Vec<_> = s.locks.iter().filter(|l| l.region == region).collect();
        let locked: Vec<_> = rows.iter().filter(|l| l.locked).collect();
        out.push_str(&format!(
            "  locked in {}: {} of {} set(s){}\n",
            asdr_specs::place_text(region),
            locked.len(),
            rows.len(),
            locked
                .iter()
                .filter_map(|l| l.until)
                .min()
                .map(|t| format!(", the first lock ending {}", rfc(t)))
                .unwrap_or_default()
        ));
    }
    for (region, c) in &s.recycle_bin {
        use asdr_planner::recycle_bin::Coverage;
        let said = match c {
            Coverage::Covered {
                rule,
                days,
                locked,
                locked_days,
            } => format!(
                "deleted snapshots kept {days} days (rule {rule}{})",
                asdr_planner::recycle_bin::locked_note(*locked, *locked_days)
            ),
            Coverage::NotCovered => {
                "no rule keeps asdr's snapshots: a deleted one is gone at once".into()
            }
            Coverage::Unobserved => continue,
        };
        out.push_str(&format!(
            "  recycle bin in {}: {said}\n",
            asdr_specs::place_text(region)
        ));
    }
    for (key, c) in &s.regions {
        let region = &asdr_specs::place_text(key);
        if let Some(why) = &c.unobserved {
            out.push_str(&format!("  copies in {region}: NOT OBSERVED ({why})\n"));
            continue;
        }
        out.push_str(&format!(
            "  copies in {region}: {}; {} complete{}\n",
            match (&c.newest_complete_set, c.age_seconds) {
                (Some(set), Some(a)) => format!("newest {set} ({} old)", age(a)),
                _ => "none complete".to_string(),
            },
            c.complete_sets.len(),
            if c.behind {
                ", BEHIND: the newest set has no complete copy here yet"
            } else {
                ""
            }
        ));
    }
    if !s.restores.is_empty() {
        out.push_str("  restores:\n");
        let width = s.restores.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &s.restores {
            let from = r
                .set
                .as_ref()
                .map_or_else(|| r.source.clone(), |set| format!("{} ({set})", r.source));
            out.push_str(&format!("    {:width$}  {from}: {}\n", r.name, r.basis));
            out.push_str(&format!(
                "    {:width$}  restore time: {}\n",
                "",
                r.rto.line()
            ));
        }
    }
    if !s.nodes.is_empty() {
        let out_of: Vec<String> = s
            .nodes
            .iter()
            .filter(|n| !n.up || n.quiesced)
            .map(|n| {
                if n.up {
                    format!("{} quiesced", n.name)
                } else {
                    format!("{} {}", n.name, n.health)
                }
            })
            .collect();
        let up = s.nodes.iter().filter(|n| n.up).count();
        let migrating: u64 = s.nodes.iter().map(|n| n.migrations_remaining).sum();
        out.push_str(&format!(
            "  nodes:      {up} of {} up{}{}\n",
            s.nodes.len(),
            if out_of.is_empty() {
                String::new()
            } else {
                format!("; {}", out_of.join(", "))
            },
            if migrating > 0 {
                format!("; {migrating} partition migrations remaining")
            } else {
                String::new()
            }
        ));
    }
    if s.problems.is_empty() {
        out.push_str("  recovery:   every declared recovery path has a usable set\n");
    } else {
        out.push_str("  recovery:   NOT FINE\n");
        for p in &s.problems {
            out.push_str(&format!("    - {p}\n"));
        }
    }
    // Drift taking part in the cluster is among the problems above; the rest is said here.
    let quiet: Vec<&String> = s
        .drift
        .iter()
        .filter(|d| !s.problems.contains(&format!("drift: {d}")))
        .collect();
    if !quiet.is_empty() {
        out.push_str("  drift:      found in the world, not declared in the policy:\n");
        for d in quiet {
            out.push_str(&format!("    - {d}\n"));
        }
    }
    if !s.not_proven.is_empty() {
        out.push_str(
            "  not proven this cluster's (never counted, restored from or deleted; a same-named cluster's, or a manifest removed):\n",
        );
        for p in &s.not_proven {
            out.push_str(&format!("    - {p}\n"));
        }
    }
    out.push_str(&format!(
        "  apply lock: {}\n",
        r.lock_held_by.as_deref().unwrap_or("free")
    ));
    match &r.last_apply {
        Some(a) => {
            out.push_str(&format!(
                "  last apply: {} {} {} at {}",
                a.operation,
                a.plan_id,
                match a.ended {
                    Ended::Succeeded => "succeeded",
                    Ended::Failed => "failed",
                    Ended::Unfinished => "did not finish (killed, or still running)",
                    Ended::Discarded => "was discarded (asdr apply --discard) without finishing",
                },
                rfc(a.last)
            ));
            out.push_str(if world_file {
                " (this machine's clock; the world file's time is above)\n"
            } else {
                "\n"
            });
        }
        None => out.push_str("  last apply: none recorded here\n"),
    }
    for f in &s.fast_restore_on {
        out.push_str(&format!(
            "  fast restore: on for {} snapshot–zone pair(s) of set {} ({}), {} DSU-hour(s) every hour\n",
            f.pairs,
            f.set,
            if f.kept {
                "the newest, kept by backup.fast_restore"
            } else {
                "not kept by the policy: a restore's left on, or someone else's; turn it off if it is not needed"
            },
            f.pairs
        ));
    }
    for d in &r.drills {
        out.push_str(&format!(
            "  drill {}: last passed {}{}\n",
            d.drill,
            rfc(d.last_success),
            match (d.rto_seconds, d.estimate_seconds) {
                (Some(m), Some(e)) => format!(
                    ", restore took {} (estimated {})",
                    asdr_planner::rto::span(m.round() as u64),
                    asdr_planner::rto::span(e)
                ),
                (Some(m), None) => format!(
                    ", restore took {}",
                    asdr_planner::rto::span(m.round() as u64)
                ),
                _ => String::new(),
            }
        ));
    }
    out
}

/// The OpenMetrics text format, for Prometheus (a textfile collector or a scrape of the file).
fn openmetrics(r: &Report) -> String {
    let s = &r.status;
    let cluster = format!("cluster=\"{}\"", s.cluster);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, String)>| {
        if samples.is_empty() {
            return;
        }
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    let one = |v: String| vec![(cluster.clone(), v)];
    gauge(
        "asdr_backup_last_complete_timestamp_seconds",
        "When the newest complete backup set was taken.",
        s.newest_complete
            .iter()
            .map(|n| (cluster.clone(), n.time.unix_timestamp().to_string()))
            .collect(),
    );
    gauge(
        "asdr_backup_age_seconds",
        "Age of the newest complete backup set.",
        s.newest_complete
            .iter()
            .map(|n| (cluster.clone(), n.age_seconds.to_string()))
            .collect(),
    );
    gauge(
        "asdr_backup_rpo_seconds",
        "The policy's backup.every: no complete set may be older.",
        one(s.rpo_seconds.to_string()),
    );
    gauge(
        "asdr_backup_overdue",
        "1 when no complete set is younger than the RPO.",
        one(u8::from(s.overdue).to_string()),
    );
    gauge(
        "asdr_recovery_problems",
        "Problems status lists: declared recovery paths (the cluster's region, copy regions, restores) without a usable set within their objective, nodes not up or left quiesced; status exits 2 when above 0.",
        one(s.problems.len().to_string()),
    );
    gauge(
        "asdr_node_up",
        "1 when the node's instance runs and Aerospike answers; status exits 2 when a node is not up or is left quiesced.",
        s.nodes
            .iter()
            .map(|n| {
                (
                    format!("{cluster},node=\"{}\"", n.name),
                    u8::from(n.up).to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_restore_ready",
        "1 when a declared restore has what it needs now (a usable set, or none needed).",
        s.restores
            .iter()
            .map(|r| {
                (
                    format!("{cluster},restore=\"{}\"", r.name),
                    u8::from(r.ready).to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_drift",
        "Things found in the world and not declared in the policy (nodes the policy does not name); those taking part in the cluster also count as problems.",
        one(s.drift.len().to_string()),
    );
    gauge(
        "asdr_drift_active",
        "Drift taking part in the cluster (running, answering, counted): each is a problem.",
        one(s
            .drift
            .iter()
            .filter(|d| s.problems.contains(&format!("drift: {d}")))
            .count()
            .to_string()),
    );
    gauge(
        "asdr_backup_sets",
        "Complete backup sets kept.",
        one(s.complete_sets.len().to_string()),
    );
    gauge(
        "asdr_set_locked",
        "1 when every snapshot of a complete set is locked in that region (EBS snapshot locks), 0 when not all are; listed for every set where the policy locks sets, and every locked set.",
        s.locks
            .iter()
            .map(|l| {
                (
                    format!("{cluster},set=\"{}\",{}", l.set, place_kv(&l.region)),
                    u8::from(l.locked).to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_set_lock_expiry_timestamp_seconds",
        "When the last lock on a set's snapshots in that region expires: the set cannot be deleted before.",
        s.locks
            .iter()
            .filter_map(|l| {
                Some((
                    format!("{cluster},set=\"{}\",{}", l.set, place_kv(&l.region)),
                    l.until?.unix_timestamp().to_string(),
                ))
            })
            .collect(),
    );
    gauge(
        "asdr_recycle_bin_retention_days",
        "How long the Recycle Bin keeps the cluster's deleted snapshots in a region (0: no rule keeps them); absent where the rules were not observed.",
        s.recycle_bin
            .iter()
            .filter_map(|(region, c)| {
                use asdr_planner::recycle_bin::Coverage;
                let days = match c {
                    Coverage::Covered { days, .. } => *days,
                    Coverage::NotCovered => 0,
                    Coverage::Unobserved => return None,
                };
                Some((format!("{cluster},{}", place_kv(region)), days.to_string()))
            })
            .collect(),
    );
    gauge(
        "asdr_copy_last_complete_timestamp_seconds",
        "When the newest set with a complete copy in a region was taken.",
        s.regions
            .iter()
            .filter_map(|(key, c)| {
                let set = c.newest_complete_set.as_deref()?;
                let t = asdr_planner::set_time(set)?;
                Some((
                    format!("{cluster},{}", place_kv(key)),
                    t.unix_timestamp().to_string(),
                ))
            })
            .collect(),
    );
    gauge(
        "asdr_copy_sets",
        "Sets with a complete copy in a region.",
        s.regions
            .iter()
            .map(|(key, c)| {
                (
                    format!("{cluster},{}", place_kv(key)),
                    c.complete_sets.len().to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_copy_rpo_seconds",
        "The age past which a copy region has no copy within its objective: every, then its copy (another interval, or complete_within for each turn of max_in_flight copies).",
        s.regions
            .iter()
            .map(|(key, c)| {
                (
                    format!("{cluster},{}", place_kv(key)),
                    c.rpo_seconds.to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_copy_behind",
        "1 when the newest complete set has no complete copy in a region yet.",
        s.regions
            .iter()
            .map(|(key, c)| {
                (
                    format!("{cluster},{}", place_kv(key)),
                    u8::from(c.behind).to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_restore_estimate_seconds",
        "Lower bound on a declared restore's data-load time.",
        s.restores
            .iter()
            .filter_map(|x| {
                x.estimate_seconds
                    .map(|e| (format!("{cluster},restore=\"{}\"", x.name), e.to_string()))
            })
            .collect(),
    );
    gauge(
        "asdr_restore_rto_estimate_seconds",
        "A declared restore's time by phase, summed (docs/rto.md); absent when a phase cannot be told.",
        s.restores
            .iter()
            .filter_map(|x| {
                x.rto
                    .total_seconds
                    .map(|e| (format!("{cluster},restore=\"{}\"", x.name), e.to_string()))
            })
            .collect(),
    );
    gauge(
        "asdr_restore_rto_objective_seconds",
        "A declared restore's time objective (restores[].rto).",
        s.restores
            .iter()
            .filter_map(|x| {
                x.rto
                    .objective_seconds
                    .map(|e| (format!("{cluster},restore=\"{}\"", x.name), e.to_string()))
            })
            .collect(),
    );
    gauge(
        "asdr_fast_restore_pairs",
        "Snapshot–zone pairs with Fast Snapshot Restore on, by set (DSU-hours every hour).",
        s.fast_restore_on
            .iter()
            .map(|f| {
                (
                    format!("{cluster},set=\"{}\",kept=\"{}\"", f.set, f.kept),
                    f.pairs.to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_drill_last_success_timestamp_seconds",
        "When a drill last passed (its report here).",
        r.drills
            .iter()
            .map(|d| {
                (
                    format!("{cluster},drill=\"{}\"", d.drill),
                    d.last_success.unix_timestamp().to_string(),
                )
            })
            .collect(),
    );
    gauge(
        "asdr_drill_rto_seconds",
        "The restore time that drill measured, first step to last.",
        r.drills
            .iter()
            .filter_map(|d| {
                d.rto_seconds.map(|s| {
                    (
                        format!("{cluster},drill=\"{}\"", d.drill),
                        format!("{s:.3}"),
                    )
                })
            })
            .collect(),
    );
    gauge(
        "asdr_lock_held",
        "1 while a process holds the cluster's lock.",
        one(u8::from(r.lock_held_by.is_some()).to_string()),
    );
    gauge(
        "asdr_apply_last_success_timestamp_seconds",
        "When the last successful apply ended.",
        r.last_success
            .iter()
            .map(|t| (cluster.clone(), t.unix_timestamp().to_string()))
            .collect(),
    );
    out.push_str("# EOF\n");
    out
}

/// A place key's OpenMetrics labels: its region, and its backup account where it has one.
fn place_kv(key: &str) -> String {
    match asdr_specs::split_place(key) {
        (region, Some(a)) => format!("region=\"{region}\",account=\"{a}\""),
        (region, None) => format!("region=\"{region}\""),
    }
}
