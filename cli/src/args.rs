//! The command line of CLI.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Declarative backup and disaster recovery for Aerospike on AWS.
///
/// asdr reads a policy file (asdr.yaml) that says how a cluster is backed up and how it may be
/// restored, observes the world, and shows a reviewable plan that obeys the safety rules.
#[derive(Debug, Parser)]
#[command(name = "asdr", version = env!("ASDR_VERSION"), propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The policy file.
    #[arg(
        short = 'f',
        long = "file",
        global = true,
        help_heading = "Global options",
        default_value = "asdr.yaml",
        value_name = "PATH"
    )]
    pub file: PathBuf,
    /// Observe (and later act on) a world file instead of AWS and the nodes.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        value_name = "PATH"
    )]
    pub world: Option<PathBuf>,
    /// Observe and act on the Aerospike nodes themselves (their info port, the policy's transport)
    /// instead of the node records of the world file.
    #[arg(long, global = true, help_heading = "Global options")]
    pub live_nodes: bool,
    /// AWS endpoint (also AWS_ENDPOINT_URL).
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "AWS_ENDPOINT_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub endpoint_url: Option<String>,
    /// AWS region (defaults to the policy's cluster.region).
    #[arg(long, global = true, help_heading = "Global options")]
    pub region: Option<String>,
    /// AWS profile.
    #[arg(long, global = true, help_heading = "Global options")]
    pub profile: Option<String>,
    /// Machine-readable output on stdout.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// No colours (NO_COLOR works too).
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_color: bool,
    /// More detail.
    #[arg(short, long, global = true,
        help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the policy file; no network.
    Validate,
    /// Show what asdr would do: a new backup set and retention, or a declared restore.
    Plan(PlanArgs),
    /// Carry a plan out: a saved plan file, or a plan made now (shown, then confirmed).
    Apply(ApplyArgs),
    /// Render a saved plan file as `plan` printed it.
    Show(ShowArgs),
    /// Print the plan's step graph for Graphviz or Mermaid.
    Graph(GraphArgs),
    /// Print the observed world as a world file.
    Inventory,
    /// Print the policy file's JSON Schema (or, with --plan, the plan file's).
    Schema(SchemaArgs),
    /// Run a disaster-recovery drill: restore into the drill's isolated target, validate, time,
    /// tear down, report.
    Drill(DrillArgs),
    /// Print the least-privilege IAM policy for exactly the actions a plan uses.
    IamPolicy(IamPolicyArgs),
    /// Print a Recycle Bin retention rule keeping the cluster's deleted snapshots (JSON for
    /// `aws rbin create-rule`, or CloudFormation); asdr creates none itself.
    RecycleBinRule(RecycleBinArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the manual page (roff), every command on one page: `asdr man > asdr.1`, then
    /// `man ./asdr.1`.
    Man,
    /// Lay the policy file out one way (two spaces per level, sequences under their key),
    /// keeping its comments and key order; refused when the layout would change its meaning.
    Fmt(FmtArgs),
    /// Write a commented policy (and its aerospike.conf template and a world-file skeleton) for
    /// a new cluster, from flags or from a world file's instances.
    Init(InitArgs),
    /// List the backup sets, newest first: when each was taken, its age, state, size and copies,
    /// to choose a restore's `set:<id>` (`--json` for scripts).
    Sets,
    /// Where the cluster stands: the newest complete backup against the RPO, the sets kept,
    /// each restore's readiness and bound, the nodes, drift, the lock, the last apply. Exit 0
    /// when fine, 2 when not (overdue, a node down, a restore not ready…), 1 on error.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing: print what would change as a diff and exit 1 when the file is not laid
    /// out (for CI).
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The cluster's name (`[a-z0-9-]+`). Its region is `--region`, else its nodes' zones'.
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// community or enterprise.
    #[arg(long, value_name = "EDITION", default_value = "enterprise",
        value_parser = ["enterprise", "community"])]
    pub edition: String,
    /// A node, `NAME=IP@ZONE` (e.g. `a1=10.0.1.11@us-east-1a`); repeat for each.
    #[arg(long = "node", value_name = "NAME=IP@ZONE")]
    pub nodes: Vec<String>,
    /// Take the nodes (name, address, zone, subnet, type, EBS devices) from a world file's
    /// running instances, e.g. one written by `asdr inventory` (instances tagged `asdr:node`, else
    /// named by their `Name` tag).
    #[arg(long, value_name = "PATH", conflicts_with = "nodes")]
    pub from_world: Option<PathBuf>,
    /// Only instances whose `Name` tag starts with this (with --from-world).
    #[arg(long, value_name = "PREFIX", requires = "from_world")]
    pub name_prefix: Option<String>,
    /// A namespace name; repeat for each (default: `test`).
    #[arg(long = "namespace", value_name = "NAME")]
    pub namespaces: Vec<String>,
    /// Where SMD archives go: `s3://bucket/prefix` or `file:///path`.
    #[arg(long, value_name = "URI")]
    pub smd_to: Option<String>,
    /// The directory to write into (asdr.yaml, templates/aerospike.conf.j2, world.yaml).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell, e.g. `asdr completions bash > /etc/bash_completion.d/asdr`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum)]
    pub format: Option<StatusFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
    /// The OpenMetrics text format, for Prometheus.
    Openmetrics,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan this declared restore instead of the backup policy.
    #[arg(long, value_name = "NAME")]
    pub restore: Option<String>,
    /// Also write the plan as JSON to FILE, for `asdr show` and `asdr apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when there is nothing to do, 2 when the plan has changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// How to print the plan: for a terminal, as JSON (like --json), or as Markdown for a pull
    /// request's comment.
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    Markdown,
}

impl PlanFormat {
    /// `--format`, else `--json`, else text.
    pub fn chosen(format: Option<PlanFormat>, json: bool) -> PlanFormat {
        format.unwrap_or(if json {
            PlanFormat::Json
        } else {
            PlanFormat::Text
        })
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan file written by `asdr plan --out`; refused when the policy or the world changed since.
    pub plan_file: Option<PathBuf>,
    /// Plan and apply this declared restore instead of the backup policy.
    #[arg(long, value_name = "NAME", conflicts_with = "plan_file")]
    pub restore: Option<String>,
    /// Apply without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Steps run at the same time (the rolling limit of max_nodes_at_once holds regardless).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
    /// Remove a lock left by an apply that is no longer running, then stop.
    #[arg(long)]
    pub break_lock: bool,
    /// Mark the interrupted apply of this plan id as abandoned (its journal is kept), then stop.
    #[arg(long, value_name = "PLAN_ID")]
    pub discard: Option<String>,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The plan file's schema (`plan --out`, `plan --json`) instead of the policy file's.
    #[arg(long)]
    pub plan: bool,
}

#[derive(Debug, Args)]
pub struct IamPolicyArgs {
    /// The policy for this declared restore instead of the backup policy.
    #[arg(long, value_name = "NAME", conflicts_with = "drill")]
    pub restore: Option<String>,
    /// The policy for this drill (its restore and its teardown).
    #[arg(long, value_name = "NAME")]
    pub drill: Option<String>,
    /// The cluster's id (`asdr:cluster-id`): changes are then limited to what carries it or no
    /// id. Defaults to the policy's `cluster.id`, else the id a `--world` file shows; nothing is
    /// observed in AWS.
    #[arg(long, value_name = "ID")]
    pub cluster_id: Option<String>,
    /// The IAM role the nodes' instance profile holds (`iam:PassRole` names the role, not the
    /// profile). Defaults to the profile's name (`cluster.instance.iam_instance_profile`).
    #[arg(long, value_name = "ROLE")]
    pub node_role: Option<String>,
    /// The policy of the backup account's role (`backup.copies[].account`) instead of the
    /// workload role's: what copies, locks and keeps the sets there.
    #[arg(long, value_name = "ACCOUNT", conflicts_with_all = ["restore", "drill"])]
    pub backup_account: Option<String>,
    /// With --backup-account: that role's trust policy instead, letting only these principals
    /// assume it, with the copy's external id: the workload role's ARN, and a break-glass
    /// principal of the backup account itself (who restores there once the workload account is
    /// lost). Repeatable.
    #[arg(long, value_name = "ARN", requires = "backup_account")]
    pub trust: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RecycleBinArgs {
    /// How long a deleted snapshot is kept in the Recycle Bin (1–365 days).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub days: u32,
    /// Lock the rule, with this unlock delay (7–30 days). EBS locks only Region-level rules: the
    /// rule then keeps every deleted snapshot in the region, not only the cluster's.
    #[arg(long, value_name = "DAYS")]
    pub lock_days: Option<u32>,
    /// A copy region's rule instead of the cluster's region's (rules act only in their own
    /// region).
    #[arg(long, value_name = "REGION")]
    pub copy_region: Option<String>,
    #[arg(long, value_enum, default_value = "json")]
    pub format: RecycleBinFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RecycleBinFormat {
    /// The CreateRule request, for `aws rbin create-rule --cli-input-json`.
    Json,
    /// An `AWS::Rbin::Rule` resource in a template.
    Cloudformation,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The drill, as the policy names it.
    pub name: String,
    /// Create nothing: check every EC2 mutation with DryRun, the backup set, and estimate the time.
    #[arg(long, conflicts_with = "teardown_only")]
    pub check: bool,
    /// Only remove what an earlier run of this drill left behind.
    #[arg(long)]
    pub teardown_only: bool,
    /// Run without asking. Required when stdin is not a terminal.
    #[arg(long)]
    pub yes: bool,
    /// Changes made at the same time (the rolling limit of max_nodes_at_once holds regardless).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub parallelism: u16,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan file written by `asdr plan --out`.
    pub plan_file: PathBuf,
    /// How to print the plan: for a terminal, as JSON (like --json), or as Markdown.
    #[arg(long, value_enum)]
    pub format: Option<PlanFormat>,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    /// Graph this declared restore instead of the backup policy.
    #[arg(long, value_name = "NAME")]
    pub restore: Option<String>,
    /// Graphviz `dot` (pipe to `dot -Tsvg`) or a Mermaid flowchart (renders in Markdown).
    #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
    pub format: GraphFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}
