//! The options of asbackup and asrestore (Aerospike Backup tools 4.x) that a policy may add with
//! `asbackup.args` / `asbackup.restore_args`. Each tool gets only its own: the same letter means
//! different things to each (`-r` is asbackup's `--remove-files` and asrestore's `--replace`).

use crate::span::Span;

/// One tool's options: those asdr sets itself (refused in any spelling), and the others it knows
/// (short and long names). Options that take a value take the next argument or `=value`.
pub(crate) struct ToolOptions {
    pub tool: &'static str,
    pub owned: &'static [&'static str],
    /// Options that would make the run partial (a backup of some records, bins or partitions, an
    /// estimate) or change what a restore writes: a set made so would still count as whole.
    pub partial: &'static [&'static str],
    pub partial_why: &'static str,
    pub known: &'static [&'static str],
}

/// Connection and authentication options both tools share.
const CONNECTION: &[&str] = &[
    "-U",
    "--user",
    "-P",
    "--password",
    "-A",
    "--auth",
    "--tls-enable",
    "--tls-name",
    "--tls-cafile",
    "--tls-capath",
    "--tls-protocols",
    "--tls-cipher-suite",
    "--tls-keyfile",
    "--tls-keyfile-password",
    "--tls-certfile",
    "--services-alternate",
];

pub(crate) const ASBACKUP: ToolOptions = ToolOptions {
    tool: "asbackup",
    owned: &[
        "-h",
        "--host",
        "-p",
        "--port",
        "-n",
        "--namespace",
        "-d",
        "--directory",
        "-o",
        "--output-file",
        "-r",
        "--remove-files",
        "-z",
        "--compress",
        "-y",
        "--encrypt",
        "--encryption-key-file",
        "--encryption-key-env",
        "-a",
        "--modified-after",
        "-c",
        "--continue",
        "--s3-region",
        "--s3-endpoint-override",
    ],
    partial: &[
        "-s",
        "--set",
        "-B",
        "--bin-list",
        "-x",
        "--no-bins",
        "-R",
        "--no-records",
        "-I",
        "--no-indexes",
        "-u",
        "--no-udfs",
        "-b",
        "--modified-before",
        "--no-ttl-only",
        "--after-digest",
        "--partition-list",
        "--filter-exp",
        "-M",
        "--max-records",
        "-l",
        "--node-list",
        "-e",
        "--estimate",
        "--estimate-samples",
    ],
    partial_why: "backs up only part of the namespace (or nothing), yet the set would count as whole and older sets would expire",
    known: &[
        "-s",
        "--set",
        "-B",
        "--bin-list",
        "-F",
        "--file-limit",
        "-L",
        "--records-per-second",
        "-N",
        "--nice",
        "-w",
        "--parallel",
        "-l",
        "--node-list",
        "-x",
        "--no-bins",
        "-R",
        "--no-records",
        "-I",
        "--no-indexes",
        "-u",
        "--no-udfs",
        "-C",
        "--compact",
        "-b",
        "--modified-before",
        "--no-ttl-only",
        "--after-digest",
        "--partition-list",
        "--filter-exp",
        "--prefer-racks",
        "--rack-id",
        "-M",
        "--max-records",
        "--compression-level",
        "--socket-timeout",
        "--total-timeout",
        "--max-retries",
        "--retry-delay",
        "--sleep-between-retries",
        "--s3-profile",
        "--s3-max-async-downloads",
        "--s3-max-async-uploads",
        "--s3-connect-timeout",
        "--s3-min-part-size",
        "--s3-log-level",
        "-v",
        "--verbose",
        "-m",
        "--machine",
        "-e",
        "--estimate",
        "--estimate-samples",
    ],
};

pub(crate) const ASRESTORE: ToolOptions = ToolOptions {
    tool: "asrestore",
    owned: &[
        "-h",
        "--host",
        "-p",
        "--port",
        "-n",
        "--namespace",
        "-d",
        "--directory",
        "-i",
        "--input-file",
        "--directory-list",
        "--parent-directory",
        "-z",
        "--compress",
        "-y",
        "--encrypt",
        "--encryption-key-file",
        "--encryption-key-env",
        "--s3-region",
        "--s3-endpoint-override",
    ],
    partial: &[
        "-g",
        "--no-generation",
        "-r",
        "--replace",
        "-u",
        "--unique",
        "-s",
        "--set-list",
        "-B",
        "--bin-list",
        "-R",
        "--no-records",
        "-I",
        "--no-indexes",
        "--no-udfs",
        "--ignore-record-error",
    ],
    partial_why: "changes which records asrestore writes and how, so the restore is not the one the plan states",
    known: &[
        "--extra-ttl",
        "-t",
        "--threads",
        "-m",
        "--machine",
        "-B",
        "--bin-list",
        "-s",
        "--set-list",
        "-u",
        "--unique",
        "-r",
        "--replace",
        "-g",
        "--no-generation",
        "-N",
        "--nice",
        "-L",
        "--records-per-second",
        "--ignore-record-error",
        "--indexes-last",
        "-R",
        "--no-records",
        "-I",
        "--no-indexes",
        "--no-udfs",
        "-w",
        "--wait",
        "-T",
        "--timeout",
        "--socket-timeout",
        "--total-timeout",
        "--max-retries",
        "--retry-delay",
        "--batch-size",
        "--max-async-batches",
        "--disable-batch-writes",
        "--event-loops",
        "--s3-profile",
        "--s3-max-async-downloads",
        "--s3-connect-timeout",
        "--s3-log-level",
        "-v",
        "--verbose",
    ],
};

impl ToolOptions {
    /// The option an argument names (`--namespace=x` → `--namespace`, `-nx` → `-n`), or None for
    /// a value.
    fn option_of(arg: &str) -> Option<&str> {
        if let Some(long) = arg.strip_prefix("--") {
            return Some(&arg[..2 + long.find('=').unwrap_or(long.len())]);
        }
        let short = arg.strip_prefix('-')?;
        let first = short.chars().next()?;
        (first.is_ascii_alphabetic()).then(|| &arg[..2])
    }

    /// A password given as a value (`--password secret`, `-Psecret`, `--password=secret`): the
    /// policy's words reach the journal, error messages and the SSM command history. The tools
    /// read `env:VARIABLE`, `env-b64:VARIABLE` and `file:/path` themselves, on the node.
    fn secret_given(args: &[String], i: usize) -> Option<String> {
        let arg = &args[i];
        let inline = arg
            .strip_prefix("--password=")
            .or_else(|| arg.strip_prefix("--tls-keyfile-password="))
            .or_else(|| arg.strip_prefix("-P").filter(|v| !v.is_empty()));
        let value = match inline {
            Some(v) => v,
            None if matches!(arg.as_str(), "--password" | "-P" | "--tls-keyfile-password") => {
                match args.get(i + 1) {
                    Some(v) if !v.starts_with('-') => v.as_str(),
                    // No value: the tool asks for it (asdr runs it without a terminal).
                    _ => return None,
                }
            }
            None => return None,
        };
        let by_reference = ["env:", "env-b64:", "file:"]
            .iter()
            .any(|p| value.starts_with(p));
        (!by_reference).then(|| {
            let opt = Self::option_of(arg).unwrap_or(arg);
            format!(
                "`{opt}` is given a password: written in the policy it would reach the journal, error messages and the SSM command history; give `{opt} env:VARIABLE` or `{opt} file:/path` (read on the node)"
            )
        })
    }

    /// What is wrong with `args` for this tool, each said once.
    pub fn problems(&self, args: &[String]) -> Vec<String> {
        // Short options that take a value (`-w4`, `-Uadmin`): what follows the letter is the
        // value. After any other letter more letters would be more options bundled in one
        // argument (`-vR`), which could hide one asdr refuses.
        const TAKES_VALUE: &str = "UPAsBFLNwlbMtTmnodahpzyi";
        let mut out = Vec::new();
        for (i, arg) in args.iter().enumerate() {
            if let Some(secret) = Self::secret_given(args, i) {
                out.push(secret);
                continue;
            }
            if let Some(short) = arg.strip_prefix('-').filter(|s| !s.starts_with('-'))
                && let Some(first) = short.chars().next()
                && first.is_ascii_alphabetic()
                && short.len() > 1
                && !TAKES_VALUE.contains(first)
            {
                out.push(format!(
                    "`{arg}` bundles short options in one argument: write each option apart"
                ));
                continue;
            }
            let Some(opt) = Self::option_of(arg) else {
                continue;
            };
            if self.owned.contains(&opt) {
                out.push(format!("`{arg}` is set by asdr for {} (use `to`, `compress`, `encrypt`, `incremental_every`)", self.tool));
            } else if self.partial.contains(&opt) {
                out.push(format!("`{arg}` {}", self.partial_why));
            } else if !CONNECTION.contains(&opt) && !self.known.contains(&opt) {
                out.push(format!("`{arg}` is not an option of {}", self.tool));
            }
        }
        out
    }
}

/// What is wrong with `args` given to asbackup (a plan's step as much as a policy's list).
pub fn asbackup_arg_problems(args: &[String]) -> Vec<String> {
    ASBACKUP.problems(args)
}

/// What is wrong with `args` given to asrestore.
pub fn asrestore_arg_problems(args: &[String]) -> Vec<String> {
    ASRESTORE.problems(args)
}

impl super::Validator<'_> {
    /// Each argument is an option of `tool` that asdr does not set itself.
    pub(super) fn tool_args(
        &mut self,
        args: &[String],
        tool: &ToolOptions,
        span: Span,
        what: &str,
    ) {
        for p in tool.problems(args) {
            self.err(span, format!("{what}: {p}"));
        }
    }
}
