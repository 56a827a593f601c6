//! The messages a newcomer reads when a policy is wrong, asserted verbatim: each says what was
//! expected in plain words and, for a typo, the closest name.

use std::path::{Path, PathBuf};

fn example() -> (PathBuf, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/prod-east");
    let text = std::fs::read_to_string(dir.join("asdr.yaml")).unwrap();
    (dir, text)
}

/// The first error's headline for the example policy with `from` replaced by `to` once.
fn first_error(from: &str, to: &str) -> String {
    let (dir, text) = example();
    assert!(text.contains(from), "the example no longer has `{from}`");
    let edited = text.replacen(from, to, 1);
    match asdr_specs::parse("asdr.yaml", &edited, &dir) {
        Err(d) => d.items[0].headline(),
        Ok(_) => panic!("`{to}` was accepted"),
    }
}

#[test]
fn a_word_where_a_number_belongs_says_a_whole_number_is_expected() {
    let e = first_error("replication_factor: 2", "replication_factor: two");
    assert_eq!(e, "expected a whole number");
    let e = first_error("info_port: 3000", "info_port: 70000");
    assert_eq!(e, "expected a whole number from 0 to 65535");
}

#[test]
fn an_unknown_key_names_the_closest_known_one() {
    let e = first_error("  region: us-east-1", "  regoin: us-east-1");
    assert_eq!(
        e,
        "unknown field `regoin`; did you mean `region`? (expected name, id, region, edition, \
         info_port, durable_deletes, work_directory, access, service, config, namespaces, racks, \
         instance, nodes)"
    );
}

#[test]
fn an_unknown_value_names_the_closest_allowed_one() {
    let e = first_error("edition: enterprise", "edition: enterprice");
    assert_eq!(
        e,
        "unknown variant `enterprice`; did you mean `enterprise`? (expected enterprise, community)"
    );
}

#[test]
fn an_undefined_template_variable_is_named_with_the_ones_available() {
    let (dir, text) = example();
    let tmp = std::env::temp_dir().join(format!("asdr-msg-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("templates")).unwrap();
    let conf = std::fs::read_to_string(dir.join("templates/aerospike.conf.j2")).unwrap();
    assert!(conf.contains("cluster-name {{ cluster }}"));
    std::fs::write(
        tmp.join("templates/aerospike.conf.j2"),
        conf.replace("cluster-name {{ cluster }}", "cluster-name {{ clustr }}"),
    )
    .unwrap();
    let result = asdr_specs::parse("asdr.yaml", &text, &tmp);
    std::fs::remove_dir_all(&tmp).unwrap();
    let e = result.expect_err("the typo is refused").items[0].headline();
    assert!(
        e.contains("undefined variable `clustr`; did you mean `cluster`? (available: cluster, "),
        "{e}"
    );
    assert!(
        e.contains("node_id"),
        "the available variables are listed: {e}"
    );
}

#[test]
fn an_unknown_node_on_a_big_cluster_is_elided_and_the_closest_suggested() {
    let (dir, text) = example();
    // The example's three nodes, then 253 more of the same shape: 256 in all.
    let mut nodes = String::new();
    for i in 0..253 {
        nodes.push_str(&format!(
            "    - name: n{i}\n      private_ip: 10.0.{}.{}\n      availability_zone: us-east-1a\n",
            10 + i / 200,
            10 + i % 200
        ));
    }
    let anchor =
        "    - name: a2\n      private_ip: 10.0.1.12\n      availability_zone: us-east-1a\n";
    assert!(text.contains(anchor));
    let edited = text
        .replacen(anchor, &format!("{anchor}{nodes}"), 1)
        .replacen("nodes: [a1]", "nodes: [nn137]", 1);
    assert!(
        edited.contains("nodes: [nn137]"),
        "the example's restore names a1"
    );
    let d = asdr_specs::parse("asdr.yaml", &edited, &dir).unwrap_err();
    let e = d
        .items
        .iter()
        .map(|i| i.headline())
        .find(|h| h.contains("unknown node"))
        .expect("the unknown node is refused");
    assert_eq!(
        e,
        "restore `replace-a1` names unknown node `nn137`; did you mean `n137`? (nodes: a1, b1, a2, \
         n0, n1, n2, n3, n4, n5, n6, n7, n8, … and 244 more)"
    );
}

#[test]
fn a_drill_naming_a_restore_with_a_typo_is_told_the_closest() {
    let (dir, text) = example();
    assert!(!text.contains("drills:"), "the example declares no drill");
    let edited = format!(
        "{text}\ndrills:\n  - name: quarterly\n    restore: ful-cluster\n    target:\n      \
         subnets: {{us-east-1a: subnet-0drill, us-east-1b: subnet-0drill2}}\n      ip_offset: 100\n      security_groups: [sg-0drill]\n"
    );
    let d = asdr_specs::parse("asdr.yaml", &edited, &dir).unwrap_err();
    let e = d.items[0].headline();
    assert_eq!(
        e,
        "drill `quarterly` names unknown restore `ful-cluster`; did you mean `full-cluster`? \
         (restores: replace-a1, a1-refill, a1-from-backup, full-cluster)"
    );
}

#[test]
fn r5_a_config_template_rendering_other_devices_is_refused_at_validation() {
    let (dir, text) = example();
    let tmp = std::env::temp_dir().join(format!("asdr-msg-r5-{}", std::process::id()));
    std::fs::create_dir_all(tmp.join("templates")).unwrap();
    let conf = std::fs::read_to_string(dir.join("templates/aerospike.conf.j2")).unwrap();
    assert!(conf.contains("device {{ d.device }}"));
    std::fs::write(
        tmp.join("templates/aerospike.conf.j2"),
        conf.replace("device {{ d.device }}", "device /dev/nvme9n1"),
    )
    .unwrap();
    let result = asdr_specs::parse("asdr.yaml", &text, &tmp);
    std::fs::remove_dir_all(&tmp).unwrap();
    let d = result.expect_err("refused before any restore needs it");
    let e = d.items[0].headline();
    assert!(
        e.starts_with("[R5] config template templates/aerospike.conf.j2 renders namespace `users` of node `a1` with [device /dev/nvme9n1 /dev/nvme3n1;"),
        "{e}"
    );
}

#[test]
fn a_zone_for_a_region_and_a_region_for_a_zone_are_each_said_once_plainly() {
    let e = first_error("  region: us-east-1\n", "  region: us-east-1a\n");
    assert_eq!(
        e,
        "region `us-east-1a` is not an AWS region name such as us-east-1"
    );
    let e = first_error(
        "      availability_zone: us-east-1b\n",
        "      availability_zone: us-east-1\n",
    );
    assert_eq!(
        e,
        "node `b1`: us-east-1 is the region, not an availability zone (such as us-east-1a)"
    );
}

#[test]
fn library_wording_is_made_plain() {
    let e = first_error("    nodes: [a1]\n", "    nodes: [a1]\n    nodes: [a1]\n");
    assert_eq!(e, "key `nodes` appears twice in the same mapping");
    let e = first_error("    source: latest-backup", "    source: latest-backups");
    assert_eq!(
        e,
        "unknown restore source `latest-backups`: expected current-volumes, empty, latest-backup, set:<set id> or before:<RFC 3339 time>; did you mean `latest-backup`?"
    );
    let e = first_error("    source: latest-backup", "    source: before:2026-11-20");
    assert_eq!(
        e,
        "`2026-11-20` is not an RFC 3339 time: a date, `T`, a time and a zone, such as 2026-11-20T00:00:00Z"
    );
}

#[test]
fn a_duration_that_does_not_parse_is_said_once_with_its_whole_form() {
    let (dir, text) = example();
    let edited = text.replacen("max_age: 30d", "max_age: 1.5d", 1);
    assert_ne!(edited, text);
    let d = asdr_specs::parse("asdr.yaml", &edited, &dir).unwrap_err();
    let all: Vec<String> = d.items.iter().map(|i| i.headline()).collect();
    assert_eq!(
        all,
        ["duration `1.5d`: one whole number and one unit (s, m, h or d): `36h`"],
        "no second error about a stand-in value"
    );
}

#[test]
fn only_the_placeholders_init_writes_are_refused_not_an_operators_own_replace() {
    let (dir, text) = example();
    let own = text.replacen(
        "tags: {team: data}",
        "tags: {team: data, change-type: REPLACE}",
        1,
    );
    assert_ne!(own, text);
    assert!(
        asdr_specs::parse("asdr.yaml", &own, &dir).is_ok(),
        "a tag value is the operator's"
    );
    let left = text.replacen("sg-0123", "sg-REPLACE", 1);
    let d = asdr_specs::parse("asdr.yaml", &left, &dir).unwrap_err();
    assert_eq!(
        d.items[0].headline(),
        "`sg-REPLACE` is a placeholder (`asdr init` writes them): fill in the real value"
    );
}
