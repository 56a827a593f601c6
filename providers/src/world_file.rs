//! World files: `asdr --world FILE` observes this file instead of AWS and the nodes.
//! The format is `asdr_planner::World` (docs/world-file.md); `.json` files are JSON, anything
//! else YAML.

use std::path::Path;

use asdr_planner::World;

#[derive(Debug, thiserror::Error)]
pub enum WorldFileError {
    #[error("cannot read world file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// With the offending line underlined beneath (`snippet`, empty when the text is not at hand).
    #[error("{path}:{line}:{column}: error: {message}{snippet}")]
    Invalid {
        path: String,
        line: u64,
        column: u64,
        message: String,
        snippet: String,
    },
    #[error("cannot write world file {path}: {message}")]
    Write { path: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

pub fn load(path: &Path) -> Result<World, WorldFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| WorldFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text, Format::of(path))
}

pub fn parse(path: &str, text: &str, format: Format) -> Result<World, WorldFileError> {
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            invalid(
                path,
                text,
                e.line() as u64,
                e.column() as u64,
                strip_position(&e.to_string()),
            )
        }),
        Format::Yaml => serde_saphyr::from_str_with_options(text, yaml_options()).map_err(|e| {
            let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            invalid(
                path,
                text,
                line,
                column,
                strip_position(&e.without_snippet().to_string()),
            )
        }),
    }
}

/// A YAML error at its line and column, in the form every asdr error takes.
pub fn yaml_error(path: &str, e: &serde_saphyr::Error) -> WorldFileError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    WorldFileError::Invalid {
        path: path.to_string(),
        line,
        column,
        message: strip_position(&e.without_snippet().to_string()),
        snippet: String::new(),
    }
}

/// An error at `line`:`column` of `text`, with that line underlined as the policy's errors are.
fn invalid(path: &str, text: &str, line: u64, column: u64, message: String) -> WorldFileError {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1) as usize)
        .map(str::len)
        .sum();
    let span = asdr_specs::Span {
        line: line as u32,
        column: column as u32,
        offset: line_start + column.saturating_sub(1) as usize,
        len: 1,
    };
    let rendered = asdr_specs::Diagnostic::new(span, message.clone()).render(path, text, false);
    // The headline is the error's own; the snippet follows it.
    let snippet = rendered
        .split_once('\n')
        .map(|(_, rest)| rest.trim_end())
        .filter(|rest| !rest.is_empty())
        .map_or_else(String::new, |rest| format!("\n{rest}"));
    WorldFileError::Invalid {
        path: path.to_string(),
        line,
        column,
        message,
        snippet,
    }
}

/// World files are written by machines (`asdr inventory`) and describe whole fleets: a
/// 256-node cluster with 60 retained sets is ~1.5 M YAML nodes, past serde-saphyr's default
/// budget of 250,000 that guards hand-written configuration. Depth and alias limits stay.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 50_000_000;
    budget.max_events = 100_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
    budget.max_reader_input_bytes = Some(1 << 30);
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Serializes a world in `format` (what `asdr inventory` prints).
pub fn to_string(world: &World, format: Format) -> Result<String, WorldFileError> {
    match format {
        Format::Json => serde_json::to_string_pretty(world)
            .map(|s| s + "\n")
            .map_err(|e| WorldFileError::Write {
                path: "-".into(),
                message: e.to_string(),
            }),
        Format::Yaml => serde_saphyr::to_string(world).map_err(|e| WorldFileError::Write {
            path: "-".into(),
            message: e.to_string(),
        }),
    }
}

fn strip_position(message: &str) -> String {
    let message = match message.rfind(" at line ") {
        Some(i) => &message[..i],
        None => message,
    };
    asdr_specs::plain_message(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "now: 2026-11-21T09:00:00Z\ninstances:\n  - id: i-1\n    state: running\n    type: i4i.2xlarge\n    availability_zone: us-east-1a\n";

    #[test]
    fn yaml_and_json_round_trip_to_the_same_world() {
        let world = parse("w.yaml", SMALL, Format::Yaml).unwrap();
        assert_eq!(world.instances.len(), 1);
        let json = to_string(&world, Format::Json).unwrap();
        assert_eq!(parse("w.json", &json, Format::Json).unwrap(), world);
        let yaml = to_string(&world, Format::Yaml).unwrap();
        assert_eq!(parse("w.yaml", &yaml, Format::Yaml).unwrap(), world);
    }

    #[test]
    fn a_bad_field_is_reported_at_its_line() {
        let bad = SMALL.replace("state: running", "state: exploded");
        let err = parse("w.yaml", &bad, Format::Yaml).unwrap_err().to_string();
        assert!(
            err.starts_with("w.yaml:4:12: error: unknown variant `exploded`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = format!("{SMALL}    colour: blue\n");
        let err = parse("w.yaml", &bad, Format::Yaml).unwrap_err().to_string();
        assert!(
            err.contains("w.yaml:7:5") && err.contains("unknown field `colour`"),
            "{err}"
        );
    }
}
