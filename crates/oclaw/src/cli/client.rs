//! The client commands: the node to talk to, output format, task input, and `task`, `bot`, `queue`, `node`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// How to reach a node (client commands).
#[derive(Debug, Args, Clone)]
pub struct ServerArgs {
    /// Base URL of the node.
    #[arg(long, env = "OCLAW_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Bearer token, when the node requires one.
    #[arg(long, env = "OCLAW_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of the certificate authority that signed an https:// node's certificate
    /// (`api.tls`), trusted besides the host's store.
    #[arg(long, env = "OCLAW_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Output: a table for people, JSON for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct InputArgs {
    /// Task input as JSON (`-` reads it from stdin).
    #[arg(long, short = 'i')]
    pub input: Option<String>,
    /// Read the task input from a JSON file.
    #[arg(long, conflicts_with = "input")]
    pub input_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Submit a task for BOT.
    Submit {
        bot: String,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        priority: Option<i32>,
        /// Run after this long (`30s`, `5m`).
        #[arg(long)]
        delay: Option<String>,
        /// Run at this time (RFC 3339).
        #[arg(long)]
        run_at: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Wait until the task finishes and exit with its outcome.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show one task.
    Get {
        id: String,
        /// Wait until the task finishes.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tasks, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        bot: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed by the previous page).
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a task that has not finished.
    Cancel {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a dead, failed or cancelled task again; with --from-step, also a finished one,
    /// from that step on (the checkpoints of earlier steps kept).
    Retry {
        id: String,
        /// Re-run from this step id (its checkpoint and later ones are dropped).
        #[arg(long, value_name = "STEP")]
        from_step: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Send the event NAME with --key: wakes the tasks waiting for it in a `wait` step, or is
    /// kept for `events.retention` when none waits yet.
    Send {
        name: String,
        /// The correlation key the `wait` step names (an order number, say).
        #[arg(long)]
        key: String,
        /// The event's data as JSON (the waiting step's output).
        #[arg(long, default_value = "{}")]
        data: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KbCommand {
    /// Create an empty knowledge collection.
    Create {
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Add files, folders (their Markdown, text and HTML files, recursively) or --url pages to
    /// a collection, made when missing. Each document is a durable ingestion task on the node;
    /// this waits for them and shows the progress (--no-wait to return at once).
    Add {
        /// The collection (made when missing).
        name: String,
        /// Files or folders; a document's id is its path as given (inside a folder: from it).
        paths: Vec<std::path::PathBuf>,
        /// A page to fetch (through the node's SSRF guard); repeatable.
        #[arg(long)]
        url: Vec<String>,
        /// The id of a single document (default: its path or URL).
        #[arg(long)]
        id: Option<String>,
        /// Title of the documents added (default: each one's front matter title or first heading).
        #[arg(long)]
        title: Option<String>,
        /// Metadata for every document added, as a JSON object (searches can filter on it).
        #[arg(long)]
        metadata: Option<String>,
        /// Return once the ingestion tasks are queued, printing their ids.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// The collections, or the documents of collection NAME.
    List {
        name: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Search collection NAME (full-text and vectors, fused).
    Search {
        name: String,
        query: String,
        #[arg(short, long, default_value_t = 5)]
        k: usize,
        /// hybrid, text or vector.
        #[arg(long, default_value = "hybrid")]
        mode: String,
        /// Metadata filter as a JSON object, e.g. '{"lang":"en"}'.
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove document ID from collection NAME, or (without ID, with --yes) the collection.
    Remove {
        name: String,
        id: Option<String>,
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Score retrieval on a question set (docs/knowledge.md): adds its documents to a scratch
    /// store and prints recall@k and MRR for full-text, vector and hybrid search.
    Eval {
        file: std::path::PathBuf,
        /// The in-process embedding model's folder; without one only full-text is scored.
        #[arg(
            long,
            env = "OCLAW_EMBEDDER_DIR",
            default_value = "models/all-MiniLM-L6-v2"
        )]
        model_dir: std::path::PathBuf,
        /// Only the questions marked with this `lang`.
        #[arg(long)]
        lang: Option<String>,
        /// Also list the questions each leg missed.
        #[arg(long, short)]
        verbose: bool,
        #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApprovalCommand {
    /// Approvals, newest first (pending ones by default).
    List {
        /// pending, done, timed_out, cancelled or all.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Only this task's approvals.
        #[arg(long)]
        task: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve approval ID (recorded with who and when).
    Approve {
        id: String,
        #[command(flatten)]
        decision: DecisionArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reject approval ID (recorded with who and when).
    Reject {
        id: String,
        #[command(flatten)]
        decision: DecisionArgs,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Args, Clone)]
pub struct DecisionArgs {
    /// Who decides (must be among the approval's approvers when it names some).
    #[arg(long = "as", env = "USER", value_name = "NAME")]
    pub by: String,
    #[arg(long)]
    pub comment: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BotCommand {
    /// List the node's bots.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run BOT and wait for its result (up to --timeout, default api.timeout).
    Run {
        bot: String,
        #[command(flatten)]
        input: InputArgs,
        #[arg(long)]
        timeout: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Depth, running, scheduled, dead and oldest age per queue.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Every registered api-server, scheduler and worker: status, leadership, load, age.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a tenant with a role; the token is printed once and kept only
    /// as a hash. Needs an admin token.
    Create {
        /// The tenant the token acts in.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// admin (every tenant), developer, operator or viewer.
        #[arg(long)]
        role: String,
        /// What the token is for, shown by `token list`.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by id: every api-server refuses it from the next request on.
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Show the audit log, oldest first (an admin sees every tenant's entries).
    List {
        /// Only this tenant's entries (admins).
        #[arg(long)]
        tenant: Option<String>,
        /// Entries after this id.
        #[arg(long)]
        after: Option<i64>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Read the whole log and check its chain of hashes: exit 0 when every entry holds, 1 at
    /// the first entry that was changed or removed (named). Needs an admin token.
    Verify {
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Set a secret of the token's tenant (read from stdin unless --value is given, so it stays
    /// out of the shell's history); bots of the tenant read it as `{{ secrets.NAME }}`.
    Set {
        name: String,
        /// The value (prefer stdin).
        #[arg(long)]
        value: Option<String>,
        /// The tenant (admins; others set their own tenant's).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the tenant's secrets by name (never their values).
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a secret.
    Remove {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}
