//! Errors that point at the policy text: `path:line:column: error: …` and the line, underlined.

use std::fmt;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use crate::span::Span;

/// One problem found in a policy file. `rule` is a safety-rule id (`R6`) when the problem breaks one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub rule: Option<&'static str>,
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            rule: None,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn rule(mut self, rule: &'static str) -> Self {
        self.rule = Some(rule);
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The message with its rule id in front, as users see it: `[R6] …`.
    pub fn headline(&self) -> String {
        match self.rule {
            Some(rule) => format!("[{rule}] {}", self.message),
            None => self.message.clone(),
        }
    }

    /// Renders `path:line:column: error: message`, then the source line with the span underlined.
    pub fn render(&self, path: &str, text: &str, color: bool) -> String {
        let mut out = format!(
            "{path}:{}:{}: error: {}\n",
            self.span.line,
            self.span.column,
            self.headline()
        );
        if let Some((line_text, start)) = line_of(text, self.span) {
            let begin = self.span.offset.saturating_sub(start).min(line_text.len());
            // A span that runs past its line (a whole mapping) is cut at the line end; an empty
            // one still gets one caret.
            let end = (begin + self.span.len.max(1)).min(line_text.len().max(begin + 1));
            let line_text = if line_text.is_empty() { " " } else { line_text };
            let end = end.min(line_text.len()).max(begin.min(line_text.len()));
            let label = self
                .rule
                .map_or_else(|| "here".to_string(), |r| format!("{r} applies here"));
            let mut group = Group::with_level(Level::ERROR).element(
                Snippet::source(line_text)
                    .line_start(self.span.line as usize)
                    .path(path)
                    .annotation(
                        AnnotationKind::Primary
                            .span(begin..end.max(begin))
                            .label(label),
                    ),
            );
            if let Some(help) = &self.help {
                group = group.element(Level::HELP.message(help.as_str()));
            }
            let renderer = if color {
                Renderer::styled()
            } else {
                Renderer::plain()
            };
            out.push_str(&renderer.render(&[group]));
            out.push('\n');
        }
        out
    }
}

/// The text of the span's line (without its newline) and the byte offset where that line starts.
fn line_of(text: &str, span: Span) -> Option<(&str, usize)> {
    let mut start = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == span.line as usize {
            return Some((l.trim_end_matches(['\n', '\r']), start));
        }
        start += l.len();
    }
    None
}

/// Every problem found in one file, sorted by position so the first one shown is the first in the file.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    pub path: String,
    pub text: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn render(&self, color: bool) -> String {
        let mut out = String::new();
        for d in &self.items {
            out.push_str(&d.render(&self.path, &self.text, color));
        }
        let n = self.items.len();
        out.push_str(&format!(
            "{n} error{} in {}\n",
            if n == 1 { "" } else { "s" },
            self.path
        ));
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl Diagnostic {
    /// Names the broken rule and how to fix it (for diagnostics built in place).
    pub fn set(&mut self, rule: &'static str, help: impl Into<String>) {
        self.rule = Some(rule);
        self.help = Some(help.into());
    }
}
