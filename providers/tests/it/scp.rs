//! deploy/aws/scp-asdr-tags.json, the service control policy that keeps `asdr:*` tags asdr's
//! own: evaluated against the requests that matter, from asdr's roles and from anyone else.

use std::collections::BTreeMap;

use asdr_providers::testkit_iam::scp_denies;

fn scp() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/aws/scp-asdr-tags.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const ASDR: &str = "arn:aws:iam::111122223333:role/asdr-prod-east";
const OPS: &str = "arn:aws:iam::111122223333:role/ops-admin";
const VOLUME: &str = "arn:aws:ec2:us-east-1:111122223333:volume/vol-0123";

/// A request's context: who asks, the tag keys it writes (none: a DeleteTags of every tag), and
/// the tags the resource carries.
fn ctx(
    principal: &str,
    keys: Option<&[&str]>,
    carries: &[(&str, &str)],
) -> BTreeMap<String, Vec<String>> {
    let mut c = BTreeMap::new();
    c.insert("aws:PrincipalArn".to_string(), vec![principal.to_string()]);
    if let Some(keys) = keys {
        c.insert(
            "aws:TagKeys".to_string(),
            keys.iter().map(|k| k.to_string()).collect(),
        );
    }
    for (k, v) in carries {
        c.insert(format!("aws:ResourceTag/{k}"), vec![v.to_string()]);
    }
    c
}

#[test]
fn only_asdrs_roles_write_or_remove_asdr_tags() {
    let scp = scp();
    let ours = [("asdr:cluster", "prod-east")];
    // Anyone else: no asdr:* key, alone or among others, written or removed (tag-on-create is
    // authorized as ec2:CreateTags too).
    for action in ["ec2:CreateTags", "ec2:DeleteTags"] {
        for keys in [
            &["asdr:node"][..],
            &["Name", "asdr:drill"][..],
            &["asdr:cluster-id"][..],
        ] {
            assert!(
                scp_denies(&scp, action, VOLUME, &ctx(OPS, Some(keys), &[])),
                "{action} {keys:?} by another principal"
            );
        }
    }
    // Nor every tag at once of a resource that carries asdr's.
    assert!(scp_denies(
        &scp,
        "ec2:DeleteTags",
        VOLUME,
        &ctx(OPS, None, &ours)
    ));
    // asdr's roles may.
    for action in ["ec2:CreateTags", "ec2:DeleteTags"] {
        assert!(!scp_denies(
            &scp,
            action,
            VOLUME,
            &ctx(ASDR, Some(&["asdr:node", "asdr:set"]), &ours)
        ));
    }
    assert!(!scp_denies(
        &scp,
        "ec2:DeleteTags",
        VOLUME,
        &ctx(ASDR, None, &ours)
    ));
    // Everyone else's own tags, and resources that are not asdr's, are untouched.
    assert!(!scp_denies(
        &scp,
        "ec2:CreateTags",
        VOLUME,
        &ctx(OPS, Some(&["Name", "team"]), &ours)
    ));
    assert!(!scp_denies(
        &scp,
        "ec2:DeleteTags",
        VOLUME,
        &ctx(OPS, None, &[])
    ));
    // Nothing else is denied.
    assert!(!scp_denies(
        &scp,
        "ec2:DeleteSnapshot",
        VOLUME,
        &ctx(OPS, Some(&["asdr:node"]), &ours)
    ));
}
