//! R18: a node rejoins as the node it was. Without `node-id` in aerospike.conf the id derives
//! from the instance's MAC, so a replacement would join as a new node (outside a strong-
//! consistency roster); asdr renders the id it knows — pinned, answering, or recorded in a set's
//! manifest — and the verifier checks every written config against the world.

use crate::edit;
use asdr_planner::params::Params;
use asdr_planner::testkit::{ExamplePolicy, Failure, test_node_id};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, plan, verify};
use asdr_specs::Policy;

use crate::identity_worlds::{NOW, restore as run, world};

/// The `node-id` lines of each config the plan writes, by step.
fn written_ids(p: &Plan) -> Vec<(String, Vec<String>)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::WriteConfig(c) => Some((s.id.clone(), asdr_specs::config_node_ids(&c.content))),
            _ => None,
        })
        .collect()
}

fn r18(policy: &Policy, w: &World, p: &Plan) -> Vec<String> {
    verify(policy, w, p)
        .into_iter()
        .filter(|v| v.rule == "R18")
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn r18_a_replaced_node_is_rendered_with_the_id_its_newest_manifest_recorded() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(&policy, true, &[("a1", Failure::Terminated)]);
    let mut p = run(&policy, &w, "replace-a1");
    assert_eq!(
        written_ids(&p),
        [("write_config:a1".to_string(), vec![test_node_id(0)])]
    );
    assert!(
        !p.warnings.iter().any(|w| w.rule == "R18"),
        "{:?}",
        p.warnings
    );
    assert!(r18(&policy, &w, &p).is_empty());
    // A plan file edited to give the replacement another id is refused.
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "write_config:a1")
        .unwrap();
    edit(s, |v| {
        let c = v["content"]
            .as_str()
            .unwrap()
            .replace(&test_node_id(0), "FEED");
        v["content"] = c.into();
    });
    let bad = r18(&policy, &w, &p);
    assert!(
        bad.iter()
            .any(|m| m.contains("node-id FEED") && m.contains("recorded as")),
        "{bad:?}"
    );
}

#[test]
fn r18_an_in_place_restore_keeps_the_id_the_node_answers_with() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut w = world(&policy, true, &[]);
    // The node runs with an id no manifest recorded (it was re-ided by hand): that one stands.
    let a1 = w.nodes.iter_mut().find(|n| n.name == "a1").unwrap();
    a1.node_id = Some("C0FFEE".into());
    let p = run(&policy, &w, "a1-from-backup");
    assert_eq!(
        written_ids(&p),
        [("write_config:a1".to_string(), vec!["C0FFEE".to_string()])]
    );
    assert!(r18(&policy, &w, &p).is_empty());
}

#[test]
fn r18_a_full_cluster_restore_of_lost_nodes_keeps_every_recorded_id() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(
        &policy,
        true,
        &[
            ("a1", Failure::Terminated),
            ("b1", Failure::Terminated),
            ("a2", Failure::Terminated),
        ],
    );
    let p = run(&policy, &w, "full-cluster");
    let mut ids = written_ids(&p);
    ids.sort();
    assert_eq!(
        ids,
        [
            ("write_config:a1".to_string(), vec![test_node_id(0)]),
            ("write_config:a2".to_string(), vec![test_node_id(2)]),
            ("write_config:b1".to_string(), vec![test_node_id(1)]),
        ]
    );
    assert!(r18(&policy, &w, &p).is_empty());
}

#[test]
fn r18_a_pinned_id_wins_and_a_config_without_it_is_refused() {
    let policy = ExamplePolicy::prod_east()
        .edit(
            "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n",
            "      instance_id: i-0a1\n      node_id: a1\n",
        )
        .policy();
    let w = world(&policy, true, &[("a1", Failure::Terminated)]);
    let mut p = run(&policy, &w, "replace-a1");
    assert_eq!(
        written_ids(&p),
        [("write_config:a1".to_string(), vec!["A1".to_string()])]
    );
    assert!(r18(&policy, &w, &p).is_empty());
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "write_config:a1")
        .unwrap();
    edit(s, |v| {
        let c: String = v["content"]
            .as_str()
            .unwrap()
            .lines()
            .filter(|l| !l.contains("node-id"))
            .map(|l| format!("{l}\n"))
            .collect();
        v["content"] = c.into();
    });
    let bad = r18(&policy, &w, &p);
    assert!(
        bad.iter()
            .any(|m| m.contains("no `node-id`") && m.contains("pins a1's id A1")),
        "{bad:?}"
    );
}

#[test]
fn r18_a_pinned_id_the_template_does_not_render_is_refused_at_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let example = ExamplePolicy::prod_east().edit(
        "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n",
        "      instance_id: i-0a1\n      node_id: a1\n",
    );
    example.write_to(dir.path());
    let t = dir.path().join("templates/aerospike.conf.j2");
    let text = std::fs::read_to_string(&t).unwrap();
    std::fs::write(&t, text.replace("node-id {{ node_id }}", "node-id 00b7")).unwrap();
    let err = asdr_specs::parse("asdr.yaml", &example.text, dir.path()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("[R18] node `a1` pins node_id A1")
            && text.contains("renders `node-id B7`")
            && text.contains("asdr.yaml:"),
        "{text}"
    );
    for bad in ["0", "xyz", "12345678901234567"] {
        let e = ExamplePolicy::prod_east()
            .edit(
                "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n",
                &format!("      instance_id: i-0a1\n      node_id: \"{bad}\"\n"),
            )
            .parse()
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not an Aerospike node id"), "{bad}: {e}");
    }
}

const PIN_A1: &str =
    "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n";

/// Review finding: a pin naming another node's id (b1 answers with it, every manifest records
/// it for b1) was planned without a word; two nodes with one id split the cluster.
#[test]
fn r18_a_pin_that_is_another_nodes_id_is_refused() {
    let policy = ExamplePolicy::prod_east()
        .edit(
            PIN_A1,
            &format!(
                "      instance_id: i-0a1\n      node_id: {}\n",
                test_node_id(1)
            ),
        )
        .policy();
    let w = world(&policy, true, &[("a1", Failure::Terminated)]);
    let err = plan(&policy, &w, NOW, &Operation::Restore("replace-a1".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("which is node b1's"), "{err}");
}

/// Review finding: a pin that is not the id the node answers with re-ides it silently.
#[test]
fn r18_a_pin_that_is_not_the_nodes_own_id_is_said() {
    let policy = ExamplePolicy::prod_east()
        .edit(PIN_A1, "      instance_id: i-0a1\n      node_id: ABCDEF\n")
        .policy();
    let w = world(&policy, true, &[]);
    let p = run(&policy, &w, "a1-from-backup");
    assert!(
        p.warnings.iter().any(|w| w.rule == "R18"
            && w.message.contains("ABCDEF (pinned by the policy)")
            && w.message.contains(&format!("from {}", test_node_id(0)))),
        "{:?}",
        p.warnings
    );
}

/// Review finding: a node restored from an older set rejoined as the id that set recorded, not
/// the id its peers (and the roster) knew last; a full-cluster restore puts the set's SMD (its
/// roster) back, so there the set's ids are right.
#[test]
fn r18_a_node_restore_from_an_old_set_keeps_the_newest_id_and_a_full_restore_the_sets() {
    let base = ExamplePolicy::prod_east().policy();
    let mut w = world(&base, true, &[("a1", Failure::Terminated)]);
    let mut sets: Vec<String> = w.set_manifests.iter().map(|m| m.set.clone()).collect();
    sets.sort();
    let (oldest, newest) = (sets[0].clone(), sets[sets.len() - 1].clone());
    // a1 was re-ided between the sets: the newest set records its new id.
    let m = w
        .set_manifests
        .iter_mut()
        .find(|m| m.set == newest)
        .unwrap();
    let mut manifest = m.file.as_ref().unwrap().manifest.clone();
    manifest.node_ids.insert("a1".into(), "A1A1A1".into());
    let file = manifest.seal();
    let sha = file.sha256.clone();
    m.file = Some(file);
    for s in w.snapshots.iter_mut() {
        if s.tags.get("asdr:set") == Some(&newest) {
            s.tags.insert("asdr:manifest".into(), sha.clone());
        }
    }
    let policy = ExamplePolicy::prod_east()
        .append(&format!(
            "  - name: a1-old\n    scope: node\n    nodes: [a1]\n    source: set:{oldest}\n    accept_zombie_records: true\n  - name: all-old\n    scope: cluster\n    source: set:{oldest}\n"
        ))
        .policy();
    let p = run(&policy, &w, "a1-old");
    assert_eq!(
        written_ids(&p),
        [("write_config:a1".to_string(), vec!["A1A1A1".to_string()])]
    );
    assert!(r18(&policy, &w, &p).is_empty());
    let p = run(&policy, &w, "all-old");
    let a1 = written_ids(&p)
        .into_iter()
        .find(|(s, _)| s == "write_config:a1")
        .unwrap();
    assert_eq!(
        a1.1,
        [test_node_id(0)],
        "the set's roster names the set's id"
    );
}
