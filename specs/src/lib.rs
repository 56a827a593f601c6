//! The asdr policy file (`asdr.yaml`): parsing with serde-saphyr (which keeps line and column for
//! every value), validation into a checked model, and the JSON Schema editors use.
//!
//! Parse, then validate, then act: nothing downstream of this crate sees YAML or serde.

mod diagnostic;
mod duration;
pub mod ebs;
pub mod fmt;
mod model;
mod node_id;
mod place;
mod raw;
mod span;
mod store_uri;
pub mod suggest;
mod template;
mod validate;

use std::path::Path;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use duration::Duration;
pub use model::*;
pub use node_id::{
    canonical_node_id, config_device_lines, config_device_mismatch, config_node_ids,
    config_rack_ids, derived_node_id,
};
pub use place::*;
pub use span::Span;
pub use store_uri::StoreUri;
pub use template::{Template, TemplateError};
pub use validate::{
    NodeVars, SnapshotVars, asbackup_arg_problems, asrestore_arg_problems, drive_of, is_set_id,
    shares_home_store,
};

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and validates the policy at `path`. The config template is read relative to it.
pub fn load(path: &Path) -> Result<Policy, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&path.display().to_string(), &text, base).map_err(LoadError::Invalid)
}

/// Parses and validates policy text. `base_dir` is where relative paths in it (the config
/// template) are resolved. Every problem found is returned, sorted by position.
pub fn parse(path: &str, text: &str, base_dir: &Path) -> Result<Policy, Diagnostics> {
    let fail = |items: Vec<Diagnostic>| Diagnostics {
        path: path.to_string(),
        text: text.to_string(),
        items,
    };
    let raw: raw::RawPolicy =
        serde_saphyr::from_str(text).map_err(|e| fail(vec![yaml_error(text, &e)]))?;
    let mut v = validate::Validator::new(base_dir);
    let policy = v.policy(raw, path, text);
    v.errors.extend(placeholders(text));
    if v.errors.is_empty() {
        Ok(policy)
    } else {
        let mut items = v.errors;
        items.sort_by_key(|d| (d.span.line, d.span.column));
        items.dedup();
        Err(fail(items))
    }
}

/// The word `asdr init` marks what only the operator knows with (an AMI, a subnet, a bucket).
pub const PLACEHOLDER: &str = "REPLACE";

/// Values still holding a placeholder `asdr init` wrote (`ami-REPLACE`, `sg-REPLACE`,
/// `subnet-REPLACE`, `s3://REPLACE-bucket…`, `/dev/REPLACE-<n>`), outside comments: a policy with
/// a placeholder bucket or security group must not validate, or the first restore would fail
/// after the node is gone.
fn placeholders(text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = fmt::strip_comment(line);
        let mut from = 0;
        while let Some(k) = code[from..].find(PLACEHOLDER) {
            let at = from + k;
            let after = code[at + PLACEHOLDER.len()..].chars().next();
            from = at + PLACEHOLDER.len();
            if after.is_some_and(|c| c.is_ascii_alphabetic()) {
                continue; // REPLACEMENT and the like are words, not the marker
            }
            // The whole value around it: only the forms `asdr init` writes are placeholders (a
            // tag value `REPLACE` is the operator's own).
            let start = code[..at]
                .rfind(|c: char| c.is_whitespace() || "{[,".contains(c))
                .map_or(0, |i| i + 1);
            let end = code[at..]
                .find(|c: char| c.is_whitespace() || "}],".contains(c))
                .map_or(code.len(), |i| at + i);
            let value = &code[start..end];
            let written_by_init = matches!(value, "ami-REPLACE" | "sg-REPLACE" | "subnet-REPLACE")
                || value.starts_with("s3://REPLACE-bucket")
                || value
                    .strip_prefix("/dev/REPLACE-")
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
            if !written_by_init {
                continue;
            }
            let mut span = Span::at(text, n as u32 + 1, start as u32 + 1);
            span.len = value.len().max(1);
            out.push(Diagnostic::new(
                span,
                format!(
                    "`{value}` is a placeholder (`asdr init` writes them): fill in the real value"
                ),
            ));
        }
    }
    out
}

/// Turns a serde-saphyr error into a diagnostic at its location, without the crate's own
/// rendering (we render every error the same way).
fn yaml_error(text: &str, e: &serde_saphyr::Error) -> Diagnostic {
    let full = e.without_snippet().to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    let span = match e.location() {
        Some(loc) => {
            let s = Span::from(loc);
            if s.offset == 0 && (s.line, s.column) != (1, 1) {
                Span::at(text, s.line, s.column)
            } else {
                s
            }
        }
        None => Span::at(text, 1, 1),
    };
    if message.starts_with("missing field") {
        return missing_field(text, span, message);
    }
    Diagnostic::new(span, plain_message(&message))
}

/// serde's wording made plain (world files' errors too): a number's Rust type becomes "a whole number" with its range, and
/// an unknown key or value gains the closest expected one (`did you mean`).
pub fn plain_message(message: &str) -> String {
    // Small ranges are said (a port); large ones are noise beside the rule that bounds the value.
    for (ty, max) in [
        ("u8", Some(u8::MAX as u32)),
        ("u16", Some(u16::MAX as u32)),
        ("u32", None),
        ("u64", None),
        ("usize", None),
    ] {
        if message == format!("invalid {ty}") || message.ends_with(&format!("expected {ty}")) {
            return match max {
                Some(max) => format!("expected a whole number from 0 to {max}"),
                None => "expected a whole number".to_string(),
            };
        }
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(", set ").next().unwrap_or(rest);
        return format!("key `{key}` appears twice in the same mapping");
    }
    for what in ["unknown field", "unknown variant"] {
        let Some(rest) = message.strip_prefix(what) else {
            continue;
        };
        let Some((word, expected)) = rest.trim_start().split_once(", expected ") else {
            continue;
        };
        let word = word.trim_matches('`');
        let names: Vec<&str> = expected
            .trim_start_matches("one of ")
            .split(", ")
            .flat_map(|s| s.split(" or "))
            .map(|s| s.trim().trim_matches('`'))
            .filter(|s| !s.is_empty())
            .collect();
        let hint = suggest::did_you_mean(word, names.iter().copied());
        return format!("{what} `{word}`{hint} (expected {})", names.join(", "));
    }
    message.to_string()
}

/// serde reports a missing field where the mapping ended (its last key). Point at the key that
/// owns the mapping instead, and name it: `missing field `name` in `cluster``.
fn missing_field(text: &str, at: Span, message: String) -> Diagnostic {
    let lines: Vec<&str> = text.lines().collect();
    let indent = at.column.saturating_sub(1) as usize;
    let start = (at.line as usize).min(lines.len());
    for i in (0..start.saturating_sub(1)).rev() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let own = line.len() - trimmed.len();
        if own < indent {
            let key = trimmed
                .trim_start_matches("- ")
                .split(':')
                .next()
                .unwrap_or("")
                .trim();
            let column = own as u32 + 1;
            let mut span = Span::at(text, i as u32 + 1, column);
            span.len = key.len().max(1);
            return Diagnostic::new(span, format!("{message} in `{key}`"));
        }
    }
    Diagnostic::new(Span::at(text, 1, 1), message)
}

/// The JSON Schema of the policy file, for editors (`asdr schema`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(raw::RawPolicy)).expect("a schema serializes")
}

/// The variables of the aerospike.conf template for one node: `cluster`, `node`, `private_ip`,
/// `availability_zone`, and `namespaces` (each with `name`, `replication_factor` and `devices`
/// of `device`, `shadow`, `ebs`, rendered for the node).
pub fn config_vars(cluster: &Cluster, node: &Node) -> serde_json::Value {
    let peers: Vec<std::net::Ipv4Addr> = cluster.nodes.iter().map(|n| n.private_ip).collect();
    let id = node
        .node_id
        .clone()
        .unwrap_or_else(|| derived_node_id(&cluster.name, &node.name));
    config_vars_for(
        cluster,
        &cluster.name,
        node,
        &peers,
        &id,
        cluster.rack_of(node),
    )
}

/// The config template's variables for `node` in a cluster called `cluster_name` whose members
/// are at `peers`. A drill renders its stand-ins with its own name and its own addresses, so
/// nothing in a drill's aerospike.conf points at production (mesh seeds, cluster name, paths).
pub fn config_vars_for(
    cluster: &Cluster,
    cluster_name: &str,
    node: &Node,
    peers: &[std::net::Ipv4Addr],
    node_id: &str,
    rack_id: u32,
) -> serde_json::Value {
    let vars = NodeVars::new(cluster_name, node);
    let render = |t: &Template| t.render(&vars).unwrap_or_else(|_| t.source().to_string());
    let namespaces: Vec<serde_json::Value> = cluster
        .namespaces
        .iter()
        .map(|ns| {
            let devices: Vec<serde_json::Value> = ns
                .devices
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "device": render(&d.device),
                        "shadow": d.shadow.as_ref().map(render),
                        "ebs": render(&d.ebs),
                    })
                })
                .collect();
            serde_json::json!({
                "name": ns.name,
                "replication_factor": ns.replication_factor,
                "strong_consistency": ns.strong_consistency,
                "devices": devices,
            })
        })
        .collect();
    let peers: Vec<String> = peers.iter().map(ToString::to_string).collect();
    serde_json::json!({
        "cluster": cluster_name,
        "node": node.name,
        "node_id": node_id,
        "rack_id": rack_id,
        "private_ip": node.private_ip.to_string(),
        "availability_zone": node.availability_zone,
        "peers": peers,
        "namespaces": namespaces,
    })
}
