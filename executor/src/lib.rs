//! The executor walks a plan's step graph on tokio: ready steps run concurrently up to the
//! parallelism, never more than `max_nodes_at_once` nodes out of service (R8), a failed step's
//! dependents are skipped while independent steps go on, cleanup steps always run, each step is
//! observed before it acts (idempotency), transient errors are retried, every step has a deadline,
//! and a journal makes an interrupted apply resumable. It knows nothing of the cloud it drives.

pub mod journal;
pub mod lock;
pub mod private;
mod run;

use std::collections::{HashMap, HashSet};

use asdr_planner::{Plan, StepKind};

pub use run::{Event, Interrupt, Options, Outcome, Report, execute};

/// What the executor knows of each step so far.
#[derive(Debug, Default)]
pub struct StepStates {
    pub done: HashSet<String>,
    pub failed: HashSet<String>,
    pub skipped: HashSet<String>,
    pub running: HashSet<String>,
    /// Running steps that have made their change and now only watch it (they reported
    /// `Pending`): like waits, they take no parallelism slot.
    pub polling: HashSet<String>,
}

/// Quiesce and stop count against `max_nodes_at_once`, except the stops of a full-cluster restore
/// (`rolling: false`), which takes every node down by design (R12).
fn counts_against_limit(s: &asdr_planner::Step) -> bool {
    s.kind().takes_node_out() && s.params.rolling()
}

/// Steps whose dependencies are all done, not yet started, and that keep the number of nodes
/// out of service (quiesced or stopped and not yet back) within `max_nodes_at_once` (R8).
/// Cleanup steps become ready when their dependencies have finished at all, failed or not.
pub fn ready<'p>(plan: &'p Plan, progress: &StepStates, max_nodes_at_once: usize) -> Vec<&'p str> {
    let finished = |id: &String| {
        progress.done.contains(id) || progress.failed.contains(id) || progress.skipped.contains(id)
    };
    let mut out_of_service: HashSet<&str> = HashSet::new();
    let by_id: HashMap<&str, &asdr_planner::Step> =
        plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    for s in &plan.steps {
        if s.kind().takes_node_out()
            && (progress.done.contains(&s.id) || progress.running.contains(&s.id))
        {
            // A node is back once the cluster is stable with it again (its window closes at its
            // wait_cluster_stable, R8), or, where the plan has no such wait, once it is started.
            let waits_for_it = plan
                .steps
                .iter()
                .any(|c| c.kind() == StepKind::WaitClusterStable && c.node == s.node);
            let back = plan.steps.iter().any(|c| {
                c.node == s.node
                    && progress.done.contains(&c.id)
                    && if waits_for_it {
                        c.kind() == StepKind::WaitClusterStable
                    } else {
                        c.kind().brings_node_back()
                    }
            });
            if !back && let Some(n) = &s.node {
                out_of_service.insert(n.as_str());
            }
        }
    }
    let mut ready = Vec::new();
    for s in &plan.steps {
        if progress.done.contains(&s.id)
            || progress.failed.contains(&s.id)
            || progress.skipped.contains(&s.id)
            || progress.running.contains(&s.id)
        {
            continue;
        }
        let deps_ok = if s.cleanup {
            s.depends_on.iter().all(finished)
        } else {
            s.depends_on.iter().all(|d| progress.done.contains(d))
        };
        if !deps_ok || s.depends_on.iter().any(|d| !by_id.contains_key(d.as_str())) {
            continue;
        }
        if counts_against_limit(s)
            && let Some(n) = &s.node
            && !out_of_service.contains(n.as_str())
        {
            if out_of_service.len() >= max_nodes_at_once {
                continue;
            }
            out_of_service.insert(n.as_str());
        }
        ready.push(s.id.as_str());
    }
    ready
}

#[cfg(test)]
mod tests {
    use super::*;
    use asdr_planner::params::{NodeService, Params, Stable};
    use asdr_planner::{Plan, Step, StepKind, Summary};

    fn step(id: &str, kind: StepKind, node: Option<&str>, deps: &[&str], cleanup: bool) -> Step {
        Step {
            region: None,
            id: id.into(),
            params: params_of(kind),
            node: node.map(Into::into),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            cleanup,
        }
    }

    /// Parameters for the kinds the scheduling tests use; only the kind matters to `ready`.
    fn params_of(kind: StepKind) -> Params {
        let service = NodeService {
            address: "127.0.0.1:3000".into(),
            command: None,
            rolling: true,
            start: None,
            node_id: None,
            devices: Vec::new(),
            instance_store: Vec::new(),
        };
        let stable = Stable {
            size: 2,
            nodes: vec![],
            ignore_migrations: false,
        };
        match kind {
            StepKind::CheckClusterStable => Params::CheckClusterStable(stable),
            StepKind::WaitClusterStable => Params::WaitClusterStable(stable),
            StepKind::Quiesce => Params::Quiesce(service),
            StepKind::Unquiesce => Params::Unquiesce(service),
            StepKind::StopNode => Params::StopNode(service),
            StepKind::StartNode => Params::StartNode(service),
            StepKind::Snapshot => Params::Snapshot(asdr_planner::params::Snapshot {
                description: String::new(),
                device: "/dev/sdf".into(),
                set: "bs-20261121T090000Z".into(),
                tags: Default::default(),
                volume_id: "vol-1".into(),
            }),
            other => panic!("no test parameters for {other}"),
        }
    }

    /// Two nodes that the graph would let quiesce together.
    fn plan() -> Plan {
        let steps = vec![
            step(
                "check_cluster_stable",
                StepKind::CheckClusterStable,
                None,
                &[],
                false,
            ),
            step(
                "quiesce:a",
                StepKind::Quiesce,
                Some("a"),
                &["check_cluster_stable"],
                false,
            ),
            step(
                "snapshot:a",
                StepKind::Snapshot,
                Some("a"),
                &["quiesce:a"],
                false,
            ),
            step(
                "unquiesce:a",
                StepKind::Unquiesce,
                Some("a"),
                &["snapshot:a"],
                true,
            ),
            step(
                "quiesce:b",
                StepKind::Quiesce,
                Some("b"),
                &["check_cluster_stable"],
                false,
            ),
        ];
        plan_of(steps)
    }

    /// A backup plan "p" of cluster "c" with these steps (the executor's tests).
    pub(crate) fn plan_of(steps: Vec<Step>) -> Plan {
        Plan {
            format_version: 1,
            plan_id: "p".into(),
            cluster: "c".into(),
            cluster_id: None,
            operation: "backup".into(),
            now: String::new(),
            spec_digest: String::new(),
            world_digest: String::new(),
            changes: vec![],
            summary: Summary {
                steps: steps.len(),
                ..Summary::default()
            },
            steps,
            warnings: vec![],
            rto: None,
        }
    }

    fn done(ids: &[&str]) -> StepStates {
        StepStates {
            done: ids.iter().map(|s| s.to_string()).collect(),
            ..StepStates::default()
        }
    }

    #[test]
    fn r8_the_rolling_limit_holds_back_a_second_quiesce() {
        let p = plan();
        assert_eq!(
            ready(&p, &done(&["check_cluster_stable"]), 1),
            vec!["quiesce:a"]
        );
        assert_eq!(
            ready(&p, &done(&["check_cluster_stable"]), 2),
            vec!["quiesce:a", "quiesce:b"]
        );
        assert_eq!(
            ready(&p, &done(&["check_cluster_stable", "quiesce:a"]), 1),
            vec!["snapshot:a"]
        );
        let back = done(&[
            "check_cluster_stable",
            "quiesce:a",
            "snapshot:a",
            "unquiesce:a",
        ]);
        assert_eq!(
            ready(&p, &back, 1),
            vec!["quiesce:b"],
            "a is back, b may go"
        );
    }

    #[test]
    fn r12_full_cluster_stops_are_not_held_back_by_the_rolling_limit() {
        let mut p = plan();
        for s in &mut p.steps {
            if let Params::Quiesce(q) = &s.params {
                s.params = Params::StopNode(NodeService {
                    rolling: false,
                    ..q.clone()
                });
            }
        }
        let r = ready(&p, &done(&["check_cluster_stable"]), 1);
        assert!(
            r.contains(&"quiesce:a") && r.contains(&"quiesce:b"),
            "{r:?}"
        );
    }

    #[test]
    fn r8_a_node_stays_out_until_its_wait_cluster_stable_not_only_its_start() {
        // A restore's shape: stop a, start a, wait for the cluster with a; b's stop would be
        // ready at once if the graph forgot its lane edge.
        let mut p = plan();
        p.steps = vec![
            step(
                "check_cluster_stable",
                StepKind::CheckClusterStable,
                None,
                &[],
                false,
            ),
            step(
                "stop_node:a",
                StepKind::StopNode,
                Some("a"),
                &["check_cluster_stable"],
                false,
            ),
            step(
                "start_node:a",
                StepKind::StartNode,
                Some("a"),
                &["stop_node:a"],
                false,
            ),
            step(
                "wait_cluster_stable:a",
                StepKind::WaitClusterStable,
                Some("a"),
                &["start_node:a"],
                false,
            ),
            step(
                "stop_node:b",
                StepKind::StopNode,
                Some("b"),
                &["check_cluster_stable"],
                false,
            ),
        ];
        let started = done(&["check_cluster_stable", "stop_node:a", "start_node:a"]);
        assert_eq!(
            ready(&p, &started, 1),
            vec!["wait_cluster_stable:a"],
            "a is started but migrations have not settled: b must wait"
        );
        let stable = done(&[
            "check_cluster_stable",
            "stop_node:a",
            "start_node:a",
            "wait_cluster_stable:a",
        ]);
        assert_eq!(ready(&p, &stable, 1), vec!["stop_node:b"]);
    }

    #[test]
    fn an_interrupted_apply_resumes_only_for_its_own_operation() {
        let mut restore = plan();
        restore.plan_id = "p-1".into();
        restore.operation = "restore:a1-from-backup".into();
        let err = crate::journal::resumable(vec![restore.clone()], "restore:replace-a1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("asdr apply --restore a1-from-backup") && err.contains("--discard p-1"),
            "{err}"
        );
        let same = crate::journal::resumable(vec![restore], "restore:a1-from-backup").unwrap();
        assert_eq!(same.map(|p| p.plan_id), Some("p-1".to_string()));
        assert!(
            crate::journal::resumable(vec![], "backup")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_journal_of_another_plan_with_the_same_id_is_never_taken_for_this_ones() {
        use crate::journal::{Entry, EventKind, Journal, JournalError};
        let dir = tempfile::tempdir().unwrap();
        let first = plan();
        let (mut journal, _) = Journal::open(dir.path(), &first).unwrap();
        let mut done = Entry::new(EventKind::Done, Some("quiesce:a"));
        done.resources = Some(Default::default());
        journal.record(&done).unwrap();
        // The same plan again (a resume) finds what it finished.
        let (_, resumed) = Journal::open(dir.path(), &first).unwrap();
        assert!(resumed.done.contains_key("quiesce:a"));
        // Another plan, made in the same second, whose short hash is the same: its steps are
        // not the first plan's, and "quiesce:a done" is not true of it.
        let mut other = plan();
        other.world_digest = "another world".into();
        let err = Journal::open(dir.path(), &other).unwrap_err();
        assert!(
            matches!(&err, JournalError::Collision { plan_id, .. } if plan_id == "p"),
            "{err}"
        );
        let mut fewer = plan();
        fewer.steps.pop();
        assert!(matches!(
            Journal::open(dir.path(), &fewer),
            Err(JournalError::Collision { .. })
        ));
    }

    #[test]
    fn a_step_done_in_one_run_and_failed_in_a_later_one_is_not_done() {
        use crate::journal::{Entry, EventKind, Journal};
        let dir = tempfile::tempdir().unwrap();
        let p = plan();
        let (mut journal, _) = Journal::open(dir.path(), &p).unwrap();
        for (event, step) in [
            (EventKind::Begin, None),
            (EventKind::Done, Some("quiesce:a")),
            (EventKind::Done, Some("snapshot:a")),
            // A later run: the step's evidence was gone, it ran again and failed.
            (EventKind::Begin, None),
            (EventKind::Failed, Some("snapshot:a")),
            (EventKind::Skipped, Some("quiesce:b")),
        ] {
            journal.record(&Entry::new(event, step)).unwrap();
        }
        let (_, resumed) = Journal::open(dir.path(), &p).unwrap();
        assert!(resumed.done.contains_key("quiesce:a"));
        assert!(
            !resumed.done.contains_key("snapshot:a"),
            "its latest run failed it: {:?}",
            resumed.done.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_cleanup_step_runs_after_its_dependency_failed() {
        let p = plan();
        let mut progress = done(&["check_cluster_stable", "quiesce:a"]);
        progress.failed.insert("snapshot:a".into());
        assert_eq!(ready(&p, &progress, 1), vec!["unquiesce:a"]);
    }
}
