//! R20, read from the world and the plan alone: no step deletes a snapshot whose lock holds, or a
//! snapshot of a set that is locked (any member locked, or covered by the policy's lock and
//! younger than its duration); and where the policy locks sets, a set this plan marks complete
//! is locked first.

use super::*;

/// The time locks are read at: the earlier of the plan's and the world's (a plan file claiming
/// a later time does not make a lock expire).
fn at(world: &World, plan: &Plan) -> Option<OffsetDateTime> {
    let planned =
        OffsetDateTime::parse(&plan.now, &time::format_description::well_known::Rfc3339).ok();
    match (planned, world.now) {
        (Some(p), Some(w)) => Some(p.min(w)),
        (p, w) => p.or(w),
    }
}

pub(super) fn check(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    let mut out = Vec::new();
    let Some(now) = at(world, plan) else {
        return out;
    };
    let home = policy.cluster.region.as_str();
    let region_of = |r: &Option<String>| r.as_deref().filter(|r| *r != home).map(str::to_string);
    for step in plan
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
    {
        let id = step.params.snapshot_id().unwrap_or_default();
        let Some(snap) = world.snapshots.iter().find(|s| s.id == id) else {
            continue;
        };
        let violation = |message: String| Violation {
            rule: "R20",
            step: Some(step.id.clone()),
            message,
        };
        if let Some(l) = snap.lock.filter(|l| l.holds(now)) {
            out.push(violation(format!(
                "snapshot {id} is locked ({}) until {}: a locked snapshot is never deleted",
                l.mode,
                crate::manifest::utc(l.expires)
            )));
            continue;
        }
        let Some(set) = snap.tags.get(tags::SET) else {
            continue;
        };
        let region = region_of(&snap.region);
        let same_set: Vec<&crate::world::Snapshot> = world
            .snapshots
            .iter()
            .filter(|s| region_of(&s.region) == region && s.tags.get(tags::SET) == Some(set))
            .collect();
        if let Some(locked) = same_set
            .iter()
            .find(|s| s.lock.is_some_and(|l| l.holds(now)))
        {
            out.push(violation(format!(
                "snapshot {id} is of set {set}, whose snapshot {} is locked: a locked set is never deleted, in whole or in part",
                locked.id
            )));
            continue;
        }
        let marked = same_set
            .iter()
            .any(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"));
        if let Some(lock) = policy.lock_in(region.as_deref())
            && marked
            && let Some(t) = crate::observe::set_time(set)
            && lock.until(t) > now
        {
            out.push(violation(format!(
                "snapshot {id} is of set {set}, which the policy locks ({}, {}) until {}: it is never deleted before then",
                lock.mode,
                lock.duration,
                crate::manifest::utc(lock.until(t))
            )));
        }
    }
    out.extend(marks_wait_for_locks(policy, world, plan, now));
    out.extend(asbackup_sets(policy, world, plan, now));
    out
}

/// asbackup sets under `backup.lock`: none is deleted before its lock ends (its files are
/// retained in the store until then), and every run the plan makes retains its files as long
/// and as strongly as the policy says.
fn asbackup_sets(
    policy: &Policy,
    world: &World,
    plan: &Plan,
    now: OffsetDateTime,
) -> Vec<Violation> {
    let mut out = Vec::new();
    // Whatever the policy says now: a run whose store retention still runs is never deleted,
    // and a delete touches only the runs of the set it names.
    for step in &plan.steps {
        let Params::DeleteBackup(p) = &step.params else {
            continue;
        };
        for d in &p.directories {
            let run = world.asbackup_archives.iter().find(|a| &a.uri == d);
            match run {
                Some(a) if a.set != p.set => out.push(Violation {
                    rule: "R13",
                    step: Some(step.id.clone()),
                    message: format!(
                        "deletes {d}, a run of set {}, not of set {} it names",
                        a.set, p.set
                    ),
                }),
                // Gone already (a resumed delete): deleting it again deletes nothing.
                _ => {}
            }
        }
        let retained = world
            .asbackup_archives
            .iter()
            .filter(|a| a.set == p.set || p.directories.contains(&a.uri))
            .filter_map(|a| a.retention.as_ref())
            .find(|r| r.until_time().is_some_and(|u| u > now));
        if let Some(r) = retained {
            out.push(Violation {
                rule: "R20",
                step: Some(step.id.clone()),
                message: format!(
                    "deletes asbackup set {}, whose files the store retains ({}) until {}: it is never deleted before then",
                    p.set, r.mode, r.until
                ),
            });
        }
    }
    let Some(lock) = policy.backup.lock.as_ref() else {
        return out;
    };
    let planned = OffsetDateTime::parse(&plan.now, &time::format_description::well_known::Rfc3339)
        .unwrap_or(now);
    for step in &plan.steps {
        let violation = |message: String| Violation {
            rule: "R20",
            step: Some(step.id.clone()),
            message,
        };
        match &step.params {
            Params::DeleteBackup(p) => {
                if let Some(t) = crate::observe::set_time(&p.set)
                    && lock.until(t) > now
                {
                    out.push(violation(format!(
                        "deletes asbackup set {}, which the policy locks ({}, {}) until {}: it is never deleted before then",
                        p.set,
                        lock.mode,
                        lock.duration,
                        crate::manifest::utc(lock.until(t))
                    )));
                }
            }
            Params::Asbackup(p) if asdr_specs::StoreUri::is_s3(&p.to) => {
                let until = crate::observe::set_time(&p.set).map(|t| lock.until(t));
                let want = until.map(crate::manifest::utc);
                // A run whose lock has already run out (by the plan's own clock) retains nothing.
                let due = until.is_some_and(|u| u > planned);
                let wrong = match p.retention.as_ref() {
                    Some(r) => r.mode != lock.mode || Some(&r.until) != want.as_ref(),
                    None => due,
                };
                if wrong {
                    out.push(violation(format!(
                        "the run of asbackup set {} does not retain its files as the policy locks them ({} until {}): a locked set's files are retained before it counts as finished",
                        p.set,
                        lock.mode,
                        want.as_deref().unwrap_or("its set's time plus the lock")
                    )));
                }
            }
            _ => {}
        }
    }
    out
}

/// Where the policy locks sets, a set marked complete by this plan for the first time waits for
/// the `lock_snapshots` of that set in that region.
fn marks_wait_for_locks(
    policy: &Policy,
    world: &World,
    plan: &Plan,
    now: OffsetDateTime,
) -> Vec<Violation> {
    let home = policy.cluster.region.as_str();
    let by_id: HashMap<&str, &Step> = plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut out = Vec::new();
    for mark in plan
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::MarkSetComplete)
    {
        let region = mark.region.as_deref().filter(|r| *r != home);
        let Some(lock) = policy.lock_in(region) else {
            continue;
        };
        let set = mark.params.set().unwrap_or_default();
        // A set with less than a day of the lock left is not locked (EBS locks for at least a
        // day, and asdr never locks longer than the policy says); it is kept until then.
        if crate::observe::set_time(set)
            .is_none_or(|t| lock.until(t) < now + time::Duration::days(1))
        {
            continue;
        }
        let already = world.snapshots.iter().any(|s| {
            s.region.as_deref().filter(|r| *r != home) == region
                && s.tags.get(tags::SET).map(String::as_str) == Some(set)
                && s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")
        });
        if already {
            continue;
        }
        let mut stack: Vec<&str> = mark.depends_on.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        let mut locked = false;
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(s) = by_id.get(id) else { continue };
            if s.kind() == StepKind::LockSnapshots
                && s.params.set() == Some(set)
                && s.region.as_deref().filter(|r| *r != home) == region
            {
                locked = true;
                break;
            }
            stack.extend(s.depends_on.iter().map(String::as_str));
        }
        if !locked {
            out.push(Violation {
                rule: "R20",
                step: Some(mark.id.clone()),
                message: format!(
                    "set {set} is marked complete{} without first locking its snapshots, and the policy locks its sets",
                    region.map(|r| format!(" in {r}")).unwrap_or_default()
                ),
            });
        }
    }
    out
}
