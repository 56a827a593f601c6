//! The one place that decides how a failure is shown and which exit code it gets (CLI.md: 1 for
//! every error; 2 is only `--detailed-exitcode`'s "has changes").

use asdr_specs::{Diagnostic, Policy};

#[derive(Debug)]
pub enum CommandError {
    /// An invalid policy: every diagnostic, rendered against the file.
    Policy(Box<asdr_specs::Diagnostics>),
    /// A refused plan: the rule and the policy line it concerns.
    Refused(Box<Refusal>),
    /// Anything else the user must fix (unreadable file, bad world file, unknown restore…).
    User(String),
}

/// A refused plan's diagnostic and the policy text it points into.
#[derive(Debug)]
pub struct Refusal {
    diagnostic: Diagnostic,
    path: String,
    text: String,
    /// The last line: what was refused (`plan refused`; `status refused` for a world status
    /// cannot read).
    footer: &'static str,
}

impl CommandError {
    pub fn refused(policy: &Policy, diagnostic: Diagnostic) -> Self {
        CommandError::Refused(Box::new(Refusal {
            diagnostic,
            path: policy.path.clone(),
            text: policy.text.clone(),
            footer: "plan refused",
        }))
    }

    /// The same error, a refusal said to be of `what` rather than of a plan.
    pub fn refused_as(self, what: &'static str) -> Self {
        match self {
            CommandError::Refused(mut r) => {
                r.footer = what;
                CommandError::Refused(r)
            }
            other => other,
        }
    }

    /// An engine error; a refused plan is shown against the policy's text.
    pub fn engine(policy: &Policy, e: asdr_engine::EngineError) -> Self {
        match e {
            asdr_engine::EngineError::Plan(asdr_planner::PlanError::Refused(d)) => {
                CommandError::refused(policy, d)
            }
            other => CommandError::User(other.to_string()),
        }
    }

    /// The error as one line of text (for errors that pass through the engine and back).
    pub fn message(self) -> String {
        match self {
            CommandError::User(m) => m,
            CommandError::Policy(d) => d.render(false),
            CommandError::Refused(r) => r.diagnostic.render(&r.path, &r.text, false),
        }
    }

    /// Prints the error on stderr and returns the exit code.
    pub fn report(self) -> i32 {
        let mut err = anstream::stderr();
        let text = match self {
            CommandError::Policy(d) => d.render(true),
            CommandError::Refused(r) => {
                let mut s = r.diagnostic.render(&r.path, &r.text, true);
                s.push_str(r.footer);
                s.push('\n');
                s
            }
            // A message that already is `path:line:column: error: …` (a world file's) is shown as is.
            CommandError::User(message)
                if message
                    .lines()
                    .next()
                    .is_some_and(|l| l.contains(": error: ")) =>
            {
                format!("{}\n", message.trim_end())
            }
            CommandError::User(message) => format!("error: {message}\n"),
        };
        use std::io::Write;
        let _ = err.write_all(text.as_bytes());
        1
    }
}

/// Lock and journal errors; a refused plan goes through [`CommandError::engine`], which has the
/// policy to point into.
impl From<asdr_engine::EngineError> for CommandError {
    fn from(e: asdr_engine::EngineError) -> Self {
        CommandError::User(e.to_string())
    }
}

impl From<asdr_specs::LoadError> for CommandError {
    fn from(e: asdr_specs::LoadError) -> Self {
        match e {
            asdr_specs::LoadError::Invalid(d) => CommandError::Policy(Box::new(d)),
            other => CommandError::User(other.to_string()),
        }
    }
}

impl From<asdr_providers::world_file::WorldFileError> for CommandError {
    fn from(e: asdr_providers::world_file::WorldFileError) -> Self {
        CommandError::User(e.to_string())
    }
}
