//! What may be deleted, detached or terminated (R7, R13).
use super::*;

impl<'a> Verifier<'a> {
    /// Whether an asbackup run is this cluster's, read from the manifests' names: the cluster
    /// its manifest names; one that names none (written before they did) only while no run in
    /// the store names another cluster, and only before this cluster's first named run.
    fn own_run(&self) -> impl Fn(&crate::world::AsbackupArchive) -> bool + 'a {
        let (policy, world): (&'a Policy, &'a World) = (self.policy, self.world);
        let cluster = policy.cluster.name.as_str();
        let foreign_here = world
            .asbackup_archives
            .iter()
            .any(|o| o.cluster.as_deref().is_some_and(|c| c != cluster));
        // An unnamed run after this cluster's first named one is not this cluster's.
        let first_named: Option<OffsetDateTime> = world
            .asbackup_archives
            .iter()
            .filter(|o| o.cluster.as_deref() == Some(cluster))
            .filter_map(|o| crate::observe::set_time(&o.set))
            .min();
        move |a| match &a.cluster {
            Some(c) => c == cluster,
            None => {
                !foreign_here
                    && match (first_named, crate::observe::set_time(&a.set)) {
                        (None, _) => true,
                        (Some(f), Some(t)) => t < f,
                        (Some(_), None) => false,
                    }
            }
        }
    }

    /// asrestore replays a whole chain of this cluster's: the full set first, then its
    /// incrementals in order, each the one that follows the set before it (its manifest says
    /// which), none with files lost. A gap would leave the changes it held silently absent.
    pub(super) fn check_asrestore_chains(&mut self) {
        let all = &self.world.asbackup_archives;
        let own = self.own_run();
        let mut bad = Vec::new();
        for (_, s) in self.steps(StepKind::Asrestore) {
            let Params::Asrestore(p) = &s.params else {
                continue;
            };
            let mut full: Option<&str> = None;
            let mut previous: Option<&str> = None;
            for d in &p.directories {
                let Some(a) = all
                    .iter()
                    .find(|a| a.uri.trim_end_matches('/') == d.trim_end_matches('/'))
                else {
                    bad.push((s, format!("restores {d}, which holds no finished run")));
                    break;
                };
                let told = (p.tool.compress_name(), p.tool.encrypt_name());
                let written = (
                    a.compress.as_deref().unwrap_or(told.0),
                    a.encrypt.as_deref().unwrap_or(told.1),
                );
                let problem = if !own(a) {
                    Some(format!("{d} is another cluster's run"))
                } else if written != told {
                    Some(format!(
                        "{d} was written with compress {}, encrypt {}; asrestore is told compress {}, encrypt {}",
                        written.0, written.1, told.0, told.1
                    ))
                } else if a.missing_files > 0 {
                    Some(format!("{d} lost {} of its files", a.missing_files))
                } else {
                    match (full, &a.incremental_of) {
                        (None, None) => None,
                        (None, Some(_)) => Some(format!("{d} is an incremental, not the chain's full set")),
                        (Some(_), None) => Some(format!("{d} is a second full set in one chain")),
                        (Some(f), Some(of)) if of != f => Some(format!("{d} belongs to chain {of}, not {f}")),
                        (Some(_), Some(_)) => a
                            .after
                            .as_deref()
                            .filter(|after| Some(*after) != previous)
                            .map(|after| format!("{d} follows set {after}, which is not replayed before it: the chain has a gap")),
                    }
                };
                if let Some(m) = problem {
                    bad.push((s, m));
                    break;
                }
                full.get_or_insert(a.set.as_str());
                previous = Some(a.set.as_str());
            }
        }
        for (s, m) in bad {
            self.bad("R2", Some(s), m);
        }
    }

    /// `before: T` with asbackup: every run replayed finished before T (its manifest's name says
    /// when; a run whose name predates that, by its set's start). A scan holds records written
    /// until it ended: a run still going at T may hold what T is meant to exclude.
    pub(super) fn check_asrestore_window(&mut self, r: &asdr_specs::Restore) {
        let asdr_specs::RestoreSource::Before(t) = &r.source else {
            return;
        };
        let all = &self.world.asbackup_archives;
        let mut bad = Vec::new();
        for (_, s) in self.steps(StepKind::Asrestore) {
            let Params::Asrestore(p) = &s.params else {
                continue;
            };
            for d in &p.directories {
                let Some(a) = all
                    .iter()
                    .find(|a| a.uri.trim_end_matches('/') == d.trim_end_matches('/'))
                else {
                    continue;
                };
                let Some(ended) = a.finished.or_else(|| crate::observe::set_time(&a.set)) else {
                    continue;
                };
                if ended >= *t {
                    bad.push((
                        s,
                        format!(
                            "replays {d}, a run that ended at {}, not before {}",
                            ended
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                            t.format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default()
                        ),
                    ));
                    break;
                }
            }
        }
        for (s, m) in bad {
            self.bad("R2", Some(s), m);
        }
    }

    /// R13 for asbackup sets: only sets whose every namespace has asdr's manifest, never a set of
    /// the newest complete chain (the full set the newest complete set belongs to).
    pub(super) fn check_r13_backup_deletes(&mut self) {
        let deletes: Vec<&Step> = self.steps(StepKind::DeleteBackup).map(|(_, s)| s).collect();
        if deletes.is_empty() {
            return;
        }
        let namespaces: Vec<&str> = self
            .policy
            .cluster
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect();
        let mut by_set: BTreeMap<&str, Vec<&crate::world::AsbackupArchive>> = BTreeMap::new();
        // This cluster's runs only.
        let own = self.own_run();
        for a in self.world.asbackup_archives.iter().filter(|a| own(a)) {
            by_set.entry(a.set.as_str()).or_default().push(a);
        }
        // Finished in every namespace, every file its manifests count still there.
        let complete = |set: &str| {
            by_set.get(set).is_some_and(|v| {
                v.iter().all(|a| a.missing_files == 0)
                    && namespaces
                        .iter()
                        .all(|ns| v.iter().any(|a| a.namespace == *ns))
            })
        };
        let chain_of = |set: &str| {
            by_set
                .get(set)
                .and_then(|v| v.iter().find_map(|a| a.incremental_of.clone()))
                .unwrap_or_else(|| set.to_string())
        };
        let newest_chain = by_set
            .keys()
            .filter(|s| complete(s))
            .max_by_key(|s| crate::observe::set_time(s))
            .map(|s| chain_of(s));
        // The chains `retain` keeps: the newest `count` (a full set this plan makes is one of
        // them; an incremental is not a chain), each younger than max_age by its newest set.
        let retain = self.retain;
        let new_full = self.plan.steps.iter().any(|s| {
            matches!(&s.params, Params::Asbackup(a) if a.kind == crate::params::BackupKind::Full)
        });
        let mut newest_of: BTreeMap<String, OffsetDateTime> = BTreeMap::new();
        for set in by_set.keys().filter(|s| complete(s)) {
            let t = crate::observe::set_time(set).unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let e = newest_of.entry(chain_of(set)).or_insert(t);
            *e = (*e).max(t);
        }
        let mut chains: Vec<(&String, &OffsetDateTime)> =
            newest_of.iter().filter(|(c, _)| complete(c)).collect();
        chains.sort_by(|a, b| b.1.cmp(a.1).then_with(|| b.0.cmp(a.0)));
        let keep_count = retain.count.map_or(usize::MAX, |c| {
            (c as usize).saturating_sub(usize::from(new_full)).max(1)
        });
        let now = OffsetDateTime::parse(
            &self.plan.now,
            &time::format_description::well_known::Rfc3339,
        )
        .ok();
        let kept: BTreeSet<&str> = chains
            .iter()
            .take(keep_count)
            .filter(|(_, t)| match (retain.max_age, now) {
                (Some(m), Some(now)) => (now - **t).whole_seconds().max(0) as u64 <= m.seconds(),
                _ => true,
            })
            .map(|(c, _)| c.as_str())
            .collect();
        let mut bad = Vec::new();
        for s in deletes {
            let set = s.params.set().unwrap_or_default();
            if !complete(set) {
                bad.push((s, format!("set {set} is not a finished asbackup set of this cluster with asdr's manifest in every namespace")));
            } else if newest_chain.as_deref() == Some(chain_of(set).as_str()) {
                bad.push((s, format!("set {set} belongs to the newest complete chain")));
            } else if kept.contains(chain_of(set).as_str()) {
                bad.push((
                    s,
                    format!(
                        "set {set} belongs to chain {}, which retain keeps",
                        chain_of(set)
                    ),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("R13", Some(s), m);
        }
    }

    /// Whether any snapshot of `set` carries the mark (`asdr:complete`).
    /// The set's snapshots name a manifest (`asdr:manifest`) that the store does not hold as
    /// named: read here from the world, not from the planner's view.
    /// Why snapshot `id` of `set` is not proven this cluster's, if it is not: with a whole
    /// manifest of this cluster in the store (and the set not marked before manifests), only the
    /// members it lists are; otherwise a snapshot whose own mark names a manifest is not.
    fn unproven(&self, set: &str, id: &str) -> Option<String> {
        let snaps = self.ix.snaps_set.get(set)?;
        let marked_without = !snaps.iter().any(|s| s.tags.contains_key(tags::MANIFEST))
            && snaps
                .iter()
                .any(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"));
        match self.manifest_of(set) {
            Some(Ok(m)) if !marked_without => (!m.members.iter().any(|mb| mb.snapshot_id == id))
                .then(|| "which its manifest does not list: another cluster's snapshot carrying its tags".to_string()),
            _ => self
                .ix
                .snap
                .get(id)
                .is_some_and(|x| x.tags.contains_key(tags::MANIFEST))
                .then(|| "whose mark names a manifest that is not in the store: nothing proves it is this cluster's".to_string()),
        }
    }

    fn was_marked(&self, set: &str) -> bool {
        self.ix.snaps_set.get(set).is_some_and(|snaps| {
            snaps
                .iter()
                .any(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"))
        })
    }

    /// The restore that restores from `set` in `region` (None: the cluster's own) now, if one
    /// does: `set:` names it; `before:` takes the newest complete set whose every snapshot
    /// started before its time.
    fn pinned_by(&self, region: Option<&str>, set: &str) -> Option<String> {
        let home = self.policy.cluster.region.as_str();
        self.policy.restores.iter().find_map(|r| {
            if r.region().filter(|x| *x != home) != region {
                return None;
            }
            let named = match &r.source {
                asdr_specs::RestoreSource::Set(id) => id == set,
                asdr_specs::RestoreSource::Before(t) => {
                    let before_t = |c: &str| {
                        self.ix
                            .snaps_set
                            .get(c)
                            .is_some_and(|snaps| snaps.iter().all(|s| s.start_time < *t))
                            && crate::observe::set_time(c).is_some_and(|st| st < *t)
                    };
                    // The complete set it takes now, and the newest set before T once marked.
                    let complete = self
                        .complete_sets()
                        .iter()
                        .rev()
                        .find(|(c, _)| before_t(c))
                        .is_some_and(|(c, _)| c == set);
                    let marked = self
                        .ix
                        .snaps_set
                        .keys()
                        .rev()
                        .find(|c| before_t(c) && self.was_marked(c))
                        .is_some_and(|c| *c == set);
                    complete || marked
                }
                _ => false,
            };
            named.then(|| r.name.clone())
        })
    }

    /// R13: only this cluster's snapshots are deleted, never the newest complete set, never the
    /// last, never one `retain` keeps, never one a declared restore restores from.
    pub(super) fn check_r13_deletes(&mut self, op: &Op<'_>) {
        let deletes: Vec<(usize, &Step)> = self.steps(StepKind::DeleteSnapshot).collect();
        let mut bad: Vec<(&Step, String)> = Vec::new();
        if !deletes.is_empty() {
            let complete = self.complete_sets();
            let mut deleted_sets = BTreeSet::new();
            for (_, s) in &deletes {
                let id = s.params.snapshot_id().unwrap_or_default();
                match self.ix.snap.get(id).copied() {
                    None => bad.push((s, format!("snapshot {id} does not exist"))),
                    Some(x) if !self.own_tags(&x.tags) => bad.push((
                        s,
                        format!(
                            "snapshot {id} is not tagged asdr:cluster={}: asdr did not make it",
                            self.policy.cluster.name
                        ),
                    )),
                    Some(x) => {
                        if let Some(set) = x.tags.get(tags::SET) {
                            deleted_sets.insert(set.clone());
                            // A leftover of a set that never completed, at home: only a snapshot
                            // of a volume known as the cluster's (tags are anyone's).
                            let never_completed = !self.was_marked(set)
                                && self.manifest_of(set).is_none()
                                && !complete.iter().any(|c| &c.0 == set);
                            if x.region.is_none()
                                && never_completed
                                && !self.known_volumes().contains(x.volume_id.as_str())
                                && !self.world.took(x)
                            {
                                bad.push((
                                    s,
                                    format!(
                                        "snapshot {id} of never-completed set {set} is of volume {}, which is no volume of this cluster's nodes, manifests or complete sets: not proven the cluster's",
                                        x.volume_id
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            // A set this plan makes counts toward `retain.count` only once it is marked complete
            // before every delete.
            // Any of the plan's marks will do (a region's plan also marks sets it copies again
            // or catches up, in any order): one of a set not complete yet that every delete
            // waits for.
            let marks: Vec<(usize, String)> = self
                .steps(StepKind::MarkSetComplete)
                .map(|(i, s)| (i, s.params.set().unwrap_or_default().to_string()))
                .collect();
            let new_counts = marks.iter().any(|(m, set)| {
                let mut seen = vec![0u32; self.plan.steps.len()];
                let after: HashSet<usize> =
                    Graph::reach(&self.graph().dependents, *m, &mut seen, 1)
                        .into_iter()
                        .collect();
                // Deletes of failed snapshots (state `error`: a failed copy, copied again)
                // lower nothing and need not wait.
                !complete.iter().any(|c| &c.0 == set)
                    && deletes.iter().all(|(i, s)| {
                        after.contains(i)
                            || self
                                .ix
                                .snap
                                .get(s.params.snapshot_id().unwrap_or_default())
                                .is_some_and(|x| x.state == crate::world::SnapshotState::Error)
                    })
            });
            let keep = self.retain.count.map_or(usize::MAX, |c| c as usize);
            let max_age = self.retain.max_age.map(|d| d.seconds());
            let now = OffsetDateTime::parse(
                &self.plan.now,
                &time::format_description::well_known::Rfc3339,
            )
            .ok();
            let mut protected = BTreeSet::new();
            let slots = keep.saturating_sub(usize::from(new_counts)).max(1);
            for (k, (set, t)) in complete.iter().rev().enumerate() {
                let young = match (max_age, now) {
                    (Some(m), Some(now)) => ((now - *t).whole_seconds().max(0) as u64) <= m,
                    _ => true,
                };
                if k == 0 || (k < slots && young) {
                    protected.insert(set.clone());
                }
            }
            let oldest_protected = complete
                .iter()
                .filter(|c| protected.contains(&c.0))
                .map(|c| c.1)
                .min();
            let complete_ids: HashSet<&str> = complete.iter().map(|c| c.0.as_str()).collect();
            for (_, s) in &deletes {
                let id = s.params.snapshot_id().unwrap_or_default();
                let Some(snap) = self.ix.snap.get(id) else {
                    continue;
                };
                let Some(set) = snap.tags.get(tags::SET) else {
                    continue;
                };
                // A snapshot in state `error` holds nothing to restore: deleting it (a failed
                // copy, copied again) lowers no set's restorability. Whose it is still counts.
                let failed = snap.state == crate::world::SnapshotState::Error;
                if let Some(why) = self.unproven(set, id) {
                    bad.push((s, format!("deletes snapshot {id} of set {set}, {why}")));
                } else if failed {
                    continue;
                } else if protected.contains(set) {
                    bad.push((s, format!("deletes a snapshot of set {set}, which retention keeps (the newest complete set, or within retain.count and max_age)")));
                } else if let Some(restore) = self.pinned_by(s.region.as_deref(), set) {
                    bad.push((s, format!("deletes a snapshot of set {set}, which restore `{restore}` restores from")));
                } else if !complete_ids.contains(set.as_str()) && self.was_marked(set) {
                    // Marked once, not restorable now: it goes only as a complete set would.
                    let t = crate::observe::set_time(set).unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    let young = match (max_age, now) {
                        (Some(m), Some(now)) => ((now - t).whole_seconds().max(0) as u64) <= m,
                        _ => true,
                    };
                    let over_count = protected.len() + usize::from(new_counts) >= keep;
                    if oldest_protected.is_none_or(|o| t >= o) || (young && !over_count) {
                        bad.push((s, format!("deletes a snapshot of set {set}, which was marked complete and is within retain (its SMD archive not seen, or a member lost, does not make it a failed run)")));
                    }
                }
            }
            let remaining = complete
                .iter()
                .filter(|c| !deleted_sets.contains(&c.0))
                .count();
            if remaining == 0 && !complete.is_empty() && !new_counts {
                bad.push((deletes[0].1, "leaves no complete backup set".into()));
            }
            if !matches!(op, Op::Backup) {
                bad.push((
                    deletes[0].1,
                    "only a backup's retention deletes snapshots".into(),
                ));
            }
        }
        for (s, m) in bad {
            self.bad("R13", Some(s), m);
        }
    }

    /// R7 and R13: only own instances are terminated, only after their data volumes with
    /// DeleteOnTermination are detached; volumes are never detached from a running instance; only
    /// a drill's own volumes are deleted.
    pub(super) fn check_r13_detach_terminate(&mut self, op: &Op<'_>) {
        let mut bad: Vec<(&'static str, &Step, String)> = Vec::new();
        for (i, s) in self.steps(StepKind::TerminateInstance) {
            let id = s.params.instance_id().unwrap_or_default();
            let Some(inst) = self.world.instances.iter().find(|x| x.id == id) else {
                bad.push(("R13", s, format!("instance {id} does not exist")));
                continue;
            };
            let pinned = self
                .policy
                .cluster
                .nodes
                .iter()
                .any(|n| n.instance_id.as_deref() == Some(id));
            // A drill's own: tagged for it and recorded by its applies (a tag is anyone's).
            let drill = match op {
                Op::Teardown(d) => {
                    inst.tags.get(crate::drill::DRILL) == Some(d)
                        && self.drill_made(d, id, &inst.tags)
                }
                _ => false,
            };
            if !(pinned || self.own_tags(&inst.tags)) {
                bad.push((
                    "R13",
                    s,
                    format!(
                        "instance {id} is neither named by the policy nor tagged asdr:cluster={}",
                        self.policy.cluster.name
                    ),
                ));
            }
            if matches!(op, Op::Teardown(_)) && !drill {
                bad.push((
                    "R13",
                    s,
                    format!("instance {id} is not tagged for this drill, or no apply of the drill recorded launching it"),
                ));
            }
            if let Some(node) = self
                .policy
                .cluster
                .nodes
                .iter()
                .find(|n| self.instance_of(n).is_some_and(|x| x.id == id))
                && !self.is_down(node)
            {
                bad.push((
                    "R7",
                    s,
                    format!("terminates the instance of healthy node {}", node.name),
                ));
            }
            for b in inst
                .block_devices
                .iter()
                .filter(|b| b.delete_on_termination)
            {
                let data = self.ix.vol.get(b.volume_id.as_str()).is_some_and(|v| {
                    v.tags.contains_key(tags::DEVICE)
                        || self
                            .policy
                            .cluster
                            .nodes
                            .iter()
                            .any(|n| self.ebs_of(n).contains(&b.device_name))
                });
                let detached = self.has_ancestor(i, |x| {
                    x.kind() == StepKind::DetachVolume
                        && x.params.volume_id() == Some(b.volume_id.as_str())
                });
                if data && !detached && !matches!(op, Op::Teardown(_)) {
                    bad.push(("R7", s, format!("terminates {id} while data volume {} is attached with DeleteOnTermination", b.volume_id)));
                }
            }
        }
        for (i, s) in self.steps(StepKind::DetachVolume) {
            let id = s.params.instance_id().unwrap_or_default();
            let Some(inst) = self.world.instances.iter().find(|x| x.id == id) else {
                continue;
            };
            if matches!(inst.state, InstanceState::Running | InstanceState::Pending) {
                let stopped = self.has_ancestor(i, |a| {
                    (a.kind() == StepKind::StopInstance && a.params.instance_id() == Some(id))
                        || (a.kind() == StepKind::StopNode && a.node == s.node)
                });
                if !stopped {
                    bad.push(("R7", s, format!("detaches a volume from running instance {id} with nothing stopped first")));
                }
            }
            let own = self.own_tags(&inst.tags)
                || self
                    .policy
                    .cluster
                    .nodes
                    .iter()
                    .any(|n| n.instance_id.as_deref() == Some(id));
            if !own {
                bad.push(("R13", s, format!("instance {id} is not this cluster's")));
            }
        }
        for (_, s) in self.steps(StepKind::DeleteVolume) {
            let id = s.params.volume_id().unwrap_or_default();
            let ok = match (op, self.ix.vol.get(id).copied()) {
                (Op::Teardown(d), Some(v)) => {
                    self.own_tags(&v.tags)
                        && v.tags.get(crate::drill::DRILL) == Some(d)
                        && self.drill_made(d, id, &v.tags)
                }
                _ => false,
            };
            if !ok {
                bad.push((
                    "R13",
                    s,
                    format!("volume {id} is not a volume this drill's applies recorded making"),
                ));
            }
        }
        for (rule, s, m) in bad {
            self.bad(rule, Some(s), m);
        }
    }
}

impl<'a> Verifier<'a> {
    /// The volumes known as the cluster's, judged here: attached to its nodes' instances,
    /// members of its set manifests, or snapshotted by its complete sets.
    fn known_volumes(&self) -> BTreeSet<&'a str> {
        let mut known = BTreeSet::new();
        for node in &self.policy.cluster.nodes {
            if let Some(i) = self.instance_of(node) {
                known.extend(i.block_devices.iter().map(|b| b.volume_id.as_str()));
            }
        }
        let complete: BTreeSet<&str> = self.complete_sets().iter().map(|c| c.0.as_str()).collect();
        for (set, snaps) in &self.ix.snaps_set {
            if let Some(Ok(m)) = self.manifest_of(set) {
                known.extend(m.members.iter().map(|mb| mb.volume_id.as_str()));
            }
            if complete.contains(set) {
                known.extend(snaps.iter().map(|s| s.volume_id.as_str()));
            }
        }
        known
    }

    /// Whether an apply of drill `drill` recorded making `id` (its journal, added to the world):
    /// by id, or as the one resource tagged with a step its journal saw start and never end.
    fn drill_made(&self, drill: &str, id: &str, t: &BTreeMap<String, String>) -> bool {
        let Some(made) = self.world.drill_resources.get(drill) else {
            return false;
        };
        let Some(plan) = t.get(tags::PLAN) else {
            return false;
        };
        if made.contains(&crate::drill::made_by(id, plan)) {
            return true;
        }
        let Some(step) = t.get(tags::STEP) else {
            return false;
        };
        let claims = |o: &BTreeMap<String, String>| {
            o.get(tags::PLAN) == Some(plan) && o.get(tags::STEP) == Some(step)
        };
        let instances = self
            .world
            .instances
            .iter()
            .filter(|i| i.state != InstanceState::Terminated && claims(&i.tags))
            .count();
        let volumes = self
            .world
            .volumes
            .iter()
            .filter(|v| {
                !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting) && claims(&v.tags)
            })
            .count();
        // One of its kind per step (a launch tags its root volume alike).
        made.contains(&crate::drill::in_flight(plan, step))
            && if id.starts_with("i-") {
                instances == 1
            } else {
                volumes == 1
            }
    }
}
