use asdr_planner::sets::SetRow;
use serde::Serialize;

use crate::args::Global;
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::inputs;
use crate::render::rfc3339_seconds;

#[derive(Serialize)]
struct Listing<'a> {
    cluster: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    as_of: time::OffsetDateTime,
    sets: &'a [SetRow],
}

/// `asdr sets`: every backup set of the cluster, newest first, with its time, age, state, size
/// and copies, to choose a restore's `set:<id>`.
pub fn cmd_sets(g: &Global) -> Result<i32, CommandError> {
    let session = inputs::session(g)?;
    let (now, rows) = asdr_engine::status::sets(&session)
        .map_err(|e| CommandError::engine(&session.policy, e).refused_as("sets refused"))?;
    let cluster = session.policy.cluster.name.as_str();
    if g.json {
        print(&json(&Listing {
            cluster,
            as_of: now,
            sets: &rows,
        })?)?;
    } else if !g.quiet {
        print(&text(cluster, now, &rows))?;
    }
    Ok(0)
}

/// A set's locks in a few words: per region, its mode and when it ends (`final` once no one can
/// remove it), `partial` when only some snapshots are locked, `none`.
fn lock_cell(r: &SetRow) -> String {
    if r.locks.is_empty() {
        return "-".into();
    }
    r.locks
        .iter()
        .map(|l| {
            let what = match (l.mode, l.until) {
                (Some(mode), Some(until)) => format!(
                    "{mode}{} until {}{}",
                    if l.is_final { " (final)" } else { "" },
                    rfc3339_seconds(until),
                    if l.locked { "" } else { " (partial)" }
                ),
                _ => "none".to_string(),
            };
            format!("{}: {what}", l.region)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn text(cluster: &str, now: time::OffsetDateTime, rows: &[SetRow]) -> String {
    let complete = rows.iter().filter(|r| r.state == "complete").count();
    let mut out = format!(
        "cluster {cluster} (as of {}): {} set(s), {complete} complete\n",
        rfc3339_seconds(now),
        rows.len()
    );
    if rows.is_empty() {
        out.push_str("no backup set yet: `asdr plan` shows the first\n");
        return out;
    }
    let asbackup = rows.iter().any(|r| r.snapshots.is_none());
    let header = [
        "SET",
        "TAKEN",
        "AGE",
        "STATE",
        if asbackup { "NAMESPACES" } else { "SNAPSHOTS" },
        if asbackup { "INCREMENT OF" } else { "VOLUMES" },
        "COPIES",
        "LOCK",
    ];
    // The lock column only where locks are in play (the policy locks sets, or a set is locked).
    let cols = if rows.iter().any(|r| !r.locks.is_empty()) {
        8
    } else {
        7
    };
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for r in rows {
        table.push([
            r.id.clone(),
            rfc3339_seconds(r.time),
            crate::commands::age(r.age_seconds),
            if r.at_home {
                r.state.to_string()
            } else {
                "copy only".to_string()
            },
            match r.snapshots {
                Some(n) => n.to_string(),
                None => r.namespaces.join(","),
            },
            match r.volume_gib {
                Some(g) => format!("{g} GiB"),
                None => r.incremental_of.clone().unwrap_or_else(|| "-".into()),
            },
            if r.copies.is_empty() {
                "-".into()
            } else {
                r.copies.join(",")
            },
            lock_cell(r),
        ]);
    }
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            table
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row[..cols]
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if rows.iter().any(|r| !r.at_home) {
        out.push_str(
            "copy only: complete in the copy regions named, no longer in the cluster's region (a restore there takes it)\n",
        );
    }
    for r in rows.iter().filter(|r| r.why.is_some()) {
        out.push_str(&format!(
            "{}: {}\n",
            r.id,
            r.why.as_deref().unwrap_or_default()
        ));
    }
    out
}
