//! `oclaw bench`: the benchmarks and their knobs.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Pre-load N no-op tasks, then measure how fast one worker drains them.
    Drain {
        #[arg(long, default_value_t = 200_000)]
        tasks: usize,
        #[arg(long, default_value_t = 10)]
        concurrency: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Claim and complete one task per round trip.
        #[arg(long)]
        no_batch: bool,
        /// Run on this store instead of a temporary SQLite file: `postgres://USER@HOST/DB`
        /// (the bench creates and drops a schema of its own).
        #[arg(long)]
        storage_url: Option<String>,
        /// Drain with N separate `oclaw worker` processes (PostgreSQL only); 0 runs the worker
        /// inside the bench process.
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Write this many finished tasks before the drain: claims must stay fast however much
        /// history the table holds.
        #[arg(long, default_value_t = 0)]
        history: usize,
        /// Tasks each worker claims beyond its free slots (worker.prefetch).
        #[arg(long, default_value_t = 10)]
        prefetch: usize,
        /// Spread the tasks over N keys, one running per key (a bot's
        /// `spec.concurrency: {limit: 1}`); 0: no keys.
        #[arg(long, default_value_t = 0)]
        keys: usize,
    },
    /// A burst of slow tasks over two `oclaw worker` processes (PostgreSQL): how it spreads, and
    /// how soon a killed worker's tasks run elsewhere, with the defaults beside the old claiming.
    Spread {
        #[arg(long, default_value_t = 40)]
        tasks: usize,
        /// How long each task sleeps (longer than the run, so the killed worker's started
        /// tasks are still running).
        #[arg(long, default_value = "60s")]
        task_time: String,
        /// The PostgreSQL database (the bench creates and drops a schema of its own).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
        storage_url: String,
    },
    /// Load `POST /v1/tasks` (or the batch route) of a node and measure latency and rate.
    Http {
        /// Requests per second (open loop); 0 runs closed loop to find the maximum rate.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// How long to send, e.g. 10s.
        #[arg(long, default_value = "10s")]
        duration: String,
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Tasks per request (more than 1 uses POST /v1/tasks/batch).
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// A running node to load; without it an embedded node is started in this process.
        #[arg(long)]
        server: Option<String>,
        /// Pre-load this many tasks, all due the moment the load starts, so the requests are
        /// measured while the node drains a backlog.
        #[arg(long, default_value_t = 0)]
        backlog: usize,
    },
    /// Calls per second and per-call latency of a WebAssembly plugin skill (a trivial echo
    /// plugin by default), next to a built-in skill doing the same work.
    Plugin {
        #[arg(long, default_value_t = 200_000)]
        calls: usize,
        /// Calls in flight at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// A plugin folder (with plugin.yaml) to measure instead of the echo plugin.
        #[arg(long, requires = "skill")]
        plugin: Option<PathBuf>,
        /// The skill of --plugin to call.
        #[arg(long)]
        skill: Option<String>,
        /// The input of every call (JSON).
        #[arg(long, default_value = r#"{"text": "Hello, World!"}"#)]
        input: String,
        /// Keep this many runaway plugin calls (endless loops) in flight while measuring.
        #[arg(long, default_value_t = 0)]
        noisy: usize,
        /// Run plugin calls on the bench's threads (plugins.dedicated_threads: false).
        #[arg(long)]
        shared_threads: bool,
    },
    /// Chat round trips over WebSocket with the faq-bot example on an embedded node: each
    /// session sends its messages one after another and waits for every reply.
    Chat {
        /// Concurrent WebSocket sessions.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Messages each session sends.
        #[arg(long, default_value_t = 20)]
        messages: usize,
        /// A running node to load (its faq-bot); without it an embedded node is started in
        /// this process (concurrency 200).
        #[arg(long)]
        server: Option<String>,
        /// Chat over MQTT through this broker (`mqtt://127.0.0.1:1883`) instead of WebSocket:
        /// each session is a topic, answered on `<topic>/reply`.
        #[arg(long)]
        mqtt: Option<String>,
        /// Chat with a model bot backed by a stand-in model answering after this long (e.g.
        /// 200ms) instead of faq-bot: how close to sessions ÷ latency the node gets.
        #[arg(long)]
        model_latency: Option<String>,
    },
    /// What the model layer (provider adapter, router) adds to a model call, against a
    /// stand-in OpenAI-compatible server in this process.
    Llm {
        #[arg(long, default_value_t = 2000)]
        calls: usize,
        /// How long the stand-in waits before answering.
        #[arg(long, default_value = "0ms")]
        latency: String,
    },
    /// One task whose step fans out over N items (for_each): items/s at concurrency 1, 10
    /// and 50, with a checkpoint per item and with a pure skill.
    Fanout {
        #[arg(long, default_value_t = 10_000)]
        items: usize,
        /// Run on this store instead of a temporary SQLite file (`postgres://USER@HOST/DB`).
        #[arg(long)]
        storage_url: Option<String>,
    },
    /// N tasks parked in a `wait` step (no worker slot held): parks/s, memory and idle CPU
    /// while they wait, store bytes per waiting task, and event → resumed step p50/p99.
    Waits {
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
        /// Events sent one at a time for the latency figures.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Run on this store instead of a temporary SQLite file (`postgres://USER@HOST/DB`).
        #[arg(long)]
        storage_url: Option<String>,
    },
    /// Two tenants on one queue: tenant b's enqueue → start p50/p99 (one task every 10 ms) on an
    /// idle node, beside tenant a's backlog of N queued tasks (shared fairly), and with b's
    /// tasks filed under a (one tenant, oldest first) for comparison.
    Fairness {
        #[arg(long, default_value_t = 200_000)]
        backlog: usize,
        #[arg(long, default_value_t = 300)]
        samples: usize,
        /// Run on this store instead of a temporary SQLite file (`postgres://USER@HOST/DB`).
        #[arg(long)]
        storage_url: Option<String>,
    },
    /// Knowledge at size: ingestion chunks/s (full-text only, with vectors, with the in-process
    /// model), kb.search p50/p99 over N chunks (full-text, vector, hybrid), memory with the
    /// collection's vectors loaded, and the model's time to embed a question.
    Kb {
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        #[arg(long, default_value_t = 200)]
        queries: usize,
        /// Run on this store instead of a temporary SQLite file (`postgres://USER@HOST/DB`).
        #[arg(long)]
        storage_url: Option<String>,
        /// The in-process embedding model's folder (scripts/install-embedder.sh).
        #[arg(
            long,
            env = "OCLAW_EMBEDDER_DIR",
            default_value = "models/all-MiniLM-L6-v2"
        )]
        model_dir: std::path::PathBuf,
    },
    /// An agent's node killed with SIGKILL in the middle of its run and started again: the
    /// time from the restart to the resumed run's next model call (stand-in model, SQLite).
    Resume {
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
    /// The store's ceiling: a bare queue table (id, status, payload) drained 100 rows per claim
    /// and per completion, without leases, fencing or the engine. Compare with `drain`.
    Bare {
        #[arg(long, default_value_t = 200_000)]
        tasks: usize,
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// PostgreSQL instead of a temporary SQLite file (a schema of its own, dropped after).
        #[arg(long)]
        storage_url: Option<String>,
        /// Connections draining at once (PostgreSQL).
        #[arg(long, default_value_t = 2)]
        connections: usize,
    },
    /// Resident memory of a separate `oclaw serve` (example bots, fresh SQLite file): idle, with
    /// tasks waiting, and a reading every `--every` during a soak of steady `POST /v1/tasks`.
    Memory {
        /// Seconds idle before the idle reading.
        #[arg(long, default_value = "20s")]
        idle: oclaw_core::Dur,
        /// Leave this many tasks waiting in the store (due in an hour), then read again.
        #[arg(long, default_value_t = 0)]
        queued: usize,
        /// Length of the soak, e.g. `1h`; 0 skips it.
        #[arg(long, default_value = "0s")]
        soak: oclaw_core::Dur,
        #[arg(long, default_value = "60s")]
        every: oclaw_core::Dur,
        /// Submissions per second during the soak (`hello` bot).
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// The `oclaw` binary to measure (default: this one).
        #[arg(long)]
        bin: Option<PathBuf>,
    },
    /// Enqueue single tasks on an idle node and measure enqueue → start latency.
    Latency {
        #[arg(long, default_value_t = 1000)]
        samples: usize,
        /// Run on this store instead of a temporary SQLite file (`postgres://USER@HOST/DB`).
        #[arg(long)]
        storage_url: Option<String>,
        /// 1 runs the worker as a separate `oclaw worker` process (PostgreSQL only), so the
        /// wake-up crosses processes; 0 runs it inside the bench process.
        #[arg(long, default_value_t = 0)]
        workers: usize,
    },
}
