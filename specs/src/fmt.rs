//! `asdr fmt`: a policy file laid out one way, comments kept. Two spaces per level, sequences
//! indented under their key, no trailing blanks or tabs at line ends, at most one blank line in a
//! row, one newline at the end. Nothing else moves: keys keep their order and their comments, and
//! values keep their spelling.
//!
//! Formatting works on lines, so it is checked on meaning: the text before and after must parse to
//! the same value, or nothing is written.

/// Why a file was not formatted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FmtError {
    #[error("not valid YAML: {0}")]
    Yaml(String),
    #[error(
        "formatting would change what the file means (a layout this formatter does not know, near line {0}); the file is left as it is"
    )]
    Meaning(usize),
}

/// The formatted text of `text`, or why it cannot be formatted safely.
pub fn format(text: &str) -> Result<String, FmtError> {
    let before = parse(text).map_err(FmtError::Yaml)?;
    let out = layout(text);
    match parse(&out) {
        Ok(after) if after == before => Ok(out),
        _ => Err(FmtError::Meaning(first_difference(text, &out))),
    }
}

/// `cluster.name` as written, when the text parses and has one.
pub fn cluster_name(text: &str) -> Option<String> {
    parse(text)
        .ok()?
        .get("cluster")?
        .get("name")?
        .as_str()
        .map(str::to_string)
}

fn parse(text: &str) -> Result<serde_json::Value, String> {
    serde_saphyr::from_str::<serde_json::Value>(text).map_err(|e| {
        let full = e.without_snippet().to_string();
        full.lines().next().unwrap_or_default().to_string()
    })
}

fn first_difference(a: &str, b: &str) -> usize {
    a.lines()
        .zip(b.lines())
        .position(|(x, y)| x.trim() != y.trim())
        .unwrap_or(0)
        + 1
}

/// A line's indentation and whether it is content (not blank, not only a comment).
struct Line<'a> {
    indent: usize,
    body: &'a str,
    /// The line as written, trailing blanks kept: a block scalar's text is content to the end.
    raw: &'a str,
}

impl Line<'_> {
    fn content(&self) -> bool {
        !self.body.is_empty() && !self.body.starts_with('#')
    }
    fn dash(&self) -> bool {
        self.body == "-" || self.body.starts_with("- ")
    }
    /// `key:` with nothing after it but a comment: a block follows.
    fn opens_block(&self) -> bool {
        let code = strip_comment(self.body);
        code.ends_with(':') && !self.dash_only()
    }
    fn dash_only(&self) -> bool {
        self.body == "-"
    }
    /// `key: |` or `key: >-` and the like: the lines below are text, kept as they are.
    fn opens_scalar(&self) -> bool {
        let code = strip_comment(self.body);
        let last = code.rsplit([' ', ':']).next().unwrap_or("");
        (last.starts_with('|') || last.starts_with('>'))
            && last[1..]
                .chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == '+')
            && (code.contains(": ") || code.starts_with("- "))
    }
}

/// The code of a line without its trailing comment (a `#` after a space, outside quotes).
pub(crate) fn strip_comment(body: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && (prev == ' ' || prev == '\t') => return body[..i].trim_end(),
            None => {}
        }
        prev = c;
    }
    body.trim_end()
}

/// Open `[` and `{` minus closed ones, outside quotes and comments.
fn flow_depth(body: &str) -> i32 {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for c in strip_comment(body).chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                _ => {}
            },
        }
    }
    depth
}

fn layout(text: &str) -> String {
    let lines: Vec<Line<'_>> = text
        .lines()
        .map(|raw| {
            let l = raw.trim_end();
            let body = l.trim_start_matches(' ');
            Line {
                indent: l.len() - body.len(),
                body,
                raw,
            }
        })
        .collect();
    let mut new_indent: Vec<Option<usize>> = vec![None; lines.len()];
    // Lines inside a block scalar or a flow collection's continuation: moved, never rewritten.
    let mut in_text = vec![false; lines.len()];
    // (original indent, new indent, an indentless sequence's items)
    let mut stack: Vec<(usize, usize, bool)> = Vec::new();
    let mut last_content: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        if !line.content() {
            i += 1;
            continue;
        }
        let o = line.indent;
        while stack
            .last()
            .is_some_and(|t| t.0 > o || (t.0 == o && t.2 && !line.dash()))
        {
            stack.pop();
        }
        let n = match stack.last() {
            // An indentless sequence under `key:` gets its own level.
            Some(&(to, tn, false))
                if to == o
                    && line.dash()
                    && last_content.is_some_and(|k| {
                        lines[k].indent == o && !lines[k].dash() && lines[k].opens_block()
                    }) =>
            {
                stack.push((o, tn + 2, true));
                tn + 2
            }
            Some(&(to, tn, _)) if to == o => tn,
            Some(&(_, tn, _)) => {
                stack.push((o, tn + 2, false));
                tn + 2
            }
            None => {
                stack.push((o, 0, false));
                0
            }
        };
        new_indent[i] = Some(n);
        last_content = Some(i);
        i += 1;
        // Text of a block scalar, and the continuation lines of a flow collection, move with the
        // line that opened them.
        let delta = n as isize - o as isize;
        let shift = |l: &Line<'_>| (l.indent as isize + delta).max(0) as usize;
        if line.opens_scalar() {
            while i < lines.len() && (lines[i].body.is_empty() || lines[i].indent > o) {
                if !lines[i].body.is_empty() {
                    new_indent[i] = Some(shift(&lines[i]));
                }
                // Blank lines too: inside the text they are text.
                in_text[i] = true;
                i += 1;
            }
        } else {
            let mut depth = flow_depth(line.body);
            while depth > 0 && i < lines.len() {
                if !lines[i].body.is_empty() {
                    new_indent[i] = Some(shift(&lines[i]));
                    in_text[i] = true;
                    depth += flow_depth(lines[i].body);
                }
                i += 1;
            }
        }
    }
    // A comment line takes the indentation of the content below it (what it is about).
    let mut below = 0;
    for k in (0..lines.len()).rev() {
        match new_indent[k] {
            Some(n) if lines[k].content() => below = n,
            Some(_) => {}
            None if lines[k].body.starts_with('#') => new_indent[k] = Some(below),
            None => {}
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut blank = true; // no blank lines at the top
    for (k, l) in lines.iter().enumerate() {
        if in_text[k] {
            // Moved with the line that opened it, never trimmed or collapsed.
            if !l.body.is_empty() {
                out.push_str(&" ".repeat(new_indent[k].unwrap_or(l.indent)));
                out.push_str(&l.raw[l.indent..]);
            }
            out.push('\n');
            blank = false;
            continue;
        }
        if l.body.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        out.push_str(&" ".repeat(new_indent[k].unwrap_or(l.indent)));
        // `-   name: a` becomes `- name: a`: the keys below it already move to two spaces in.
        match l.body.strip_prefix("- ") {
            Some(rest) if l.content() && new_indent[k].is_some() && !in_text[k] => {
                out.push_str("- ");
                out.push_str(rest.trim_start_matches(' '));
            }
            _ => out.push_str(l.body),
        }
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_becomes_two_spaces_and_sequences_sit_under_their_key() {
        let text = "cluster:\n    name: a   \n    nodes:\n    - name: a1   # first\n      ip: 1\n    -   name: a2\n        ip: 2\nbackup:\n    every: 24h\n";
        assert_eq!(
            format(text).unwrap(),
            "cluster:\n  name: a\n  nodes:\n    - name: a1   # first\n      ip: 1\n    - name: a2\n      ip: 2\nbackup:\n  every: 24h\n"
        );
    }

    #[test]
    fn comments_move_with_what_they_describe() {
        let text = "# top\ncluster:\n      # the name\n      name: a\n\n\n\n# backup\nbackup: {every: 24h}\n";
        assert_eq!(
            format(text).unwrap(),
            "# top\ncluster:\n  # the name\n  name: a\n\n# backup\nbackup: {every: 24h}\n"
        );
    }

    #[test]
    fn block_scalars_and_multi_line_flow_collections_keep_their_shape() {
        let text = "a:\n    script: |\n        line one\n          indented\n    tags: {a: 1,\n           b: 2}\n    after: x\n";
        assert_eq!(
            format(text).unwrap(),
            "a:\n  script: |\n      line one\n        indented\n  tags: {a: 1,\n         b: 2}\n  after: x\n"
        );
    }

    #[test]
    fn formatting_twice_changes_nothing_and_the_examples_are_already_formatted() {
        for name in ["prod-east", "community", "prod-east-dr"] {
            let text = example(name);
            let once = format(&text).unwrap();
            assert_eq!(
                once, text,
                "{name} is not laid out as `asdr fmt` lays it out"
            );
            assert_eq!(format(&once).unwrap(), once);
        }
    }

    fn example(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name)
            .join("asdr.yaml");
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn a_policy_indented_four_spaces_comes_back_as_two() {
        for name in ["prod-east", "community", "prod-east-dr"] {
            let text = example(name);
            let wide: String = text
                .lines()
                .map(|l| {
                    let body = l.trim_start_matches(' ');
                    // Twice the indentation; a sequence item's content twice as far in too.
                    let body = match body.strip_prefix("- ") {
                        Some(rest) => format!("-   {rest}"),
                        None => body.to_string(),
                    };
                    let indent = l.len() - l.trim_start_matches(' ').len();
                    format!("{}{body}\n", " ".repeat(2 * indent))
                })
                .collect();
            assert_ne!(wide, text);
            assert_eq!(format(&wide).unwrap(), text, "{name}");
        }
    }

    #[test]
    fn blank_lines_and_trailing_blanks_inside_a_block_scalar_are_text() {
        let text = "a:\n    script: |\n        one  \n\n\n        two\n    after: x\n";
        assert_eq!(
            format(text).unwrap(),
            "a:\n  script: |\n      one  \n\n\n      two\n  after: x\n"
        );
    }

    #[test]
    fn invalid_yaml_is_refused_and_never_rewritten() {
        assert!(matches!(format("a: [1, 2\n"), Err(FmtError::Yaml(_))));
    }
}
