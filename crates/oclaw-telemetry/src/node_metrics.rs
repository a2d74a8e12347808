//! The metrics a node keeps in memory: API latency, task counters and histograms per bot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use crate::metrics::{labels, CounterFamily, Histogram, HistogramFamily, LATENCY_BUCKETS};
use crate::system::NodeSampler;

/// Task wait and run times reach minutes; these buckets go to an hour.
pub const TASK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

#[derive(Debug)]
pub struct NodeMetrics {
    /// `oclaw_api_request_duration_seconds{route, method, status}`.
    pub api_latency: HistogramFamily,
    /// `oclaw_channel_messages_total{channel, event}`: received, sent, error, dropped.
    pub channel_messages: CounterFamily,
    /// `oclaw_channel_reply_seconds{channel}`: message received to reply sent.
    pub channel_reply: HistogramFamily,
    /// Task series per bot, found without allocating on the hot path.
    bots: Mutex<HashMap<String, Arc<BotSeries>>>,
    sampler: OnceLock<Arc<NodeSampler>>,
    pub started_unix: f64,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics {
            api_latency: HistogramFamily::new(LATENCY_BUCKETS),
            channel_messages: CounterFamily::default(),
            channel_reply: HistogramFamily::new(LATENCY_BUCKETS),
            bots: Mutex::new(HashMap::new()),
            sampler: OnceLock::new(),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        }
    }
}

/// What happened to a channel message: the `event` label of `oclaw_channel_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEvent {
    /// A message arrived and became a durable task.
    Received,
    /// A reply went back the way the message came.
    Sent,
    /// A message was refused, or its reply could not be sent.
    Error,
    /// A frame or reply was discarded (a slow client, a closed session).
    Dropped,
}

impl ChannelEvent {
    pub const ALL: [ChannelEvent; 4] = [
        ChannelEvent::Received,
        ChannelEvent::Sent,
        ChannelEvent::Error,
        ChannelEvent::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelEvent::Received => "received",
            ChannelEvent::Sent => "sent",
            ChannelEvent::Error => "error",
            ChannelEvent::Dropped => "dropped",
        }
    }
}

impl NodeMetrics {
    /// Starts sampling node CPU use (every 5 s) for `oclaw_node_cpu_utilization_ratio`.
    pub fn start_node_sampler(&self) {
        let _ = self
            .sampler
            .get_or_init(|| NodeSampler::start(Duration::from_secs(5)));
    }

    pub fn node_cpu_ratio(&self) -> f64 {
        self.sampler.get().map(|s| s.cpu_ratio()).unwrap_or(0.0)
    }

    fn series(&self, bot: &str) -> Arc<BotSeries> {
        let mut bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = bots.get(bot) {
            return s.clone();
        }
        let s = Arc::new(BotSeries::default());
        bots.insert(bot.to_string(), s.clone());
        s
    }

    /// Records one finished attempt of a task of `bot`.
    pub fn task_finished(&self, bot: &str, succeeded: bool, run: Duration, wait: Duration) {
        let s = self.series(bot);
        let counter = if succeeded { &s.succeeded } else { &s.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        s.duration.observe(run.as_secs_f64());
        s.wait.observe(wait.as_secs_f64());
    }

    /// Counts one channel event.
    pub fn channel_event(&self, channel: &str, event: ChannelEvent) {
        self.channel_messages.inc(
            &labels(&[("channel", channel), ("event", event.as_str())]),
            1,
        );
    }

    /// Counts a reply sent on `channel`, `latency` after its message arrived.
    pub fn channel_replied(&self, channel: &str, latency: Duration) {
        self.channel_event(channel, ChannelEvent::Sent);
        self.channel_reply
            .observe(&labels(&[("channel", channel)]), latency.as_secs_f64());
    }

    /// `oclaw_channel_messages_total` and `oclaw_channel_reply_seconds`.
    pub fn render_channels(&self, out: &mut String) {
        self.channel_messages.render(
            out,
            "oclaw_channel_messages_total",
            "Channel messages by channel and event: received, sent (replies), error, dropped.",
        );
        self.channel_reply.render(
            out,
            "oclaw_channel_reply_seconds",
            "Time from a channel message's arrival to its reply being sent.",
        );
    }

    /// `oclaw_tasks_total`, `oclaw_task_duration_seconds` and `oclaw_task_wait_seconds`.
    pub fn render_tasks(&self, out: &mut String) {
        use std::fmt::Write;
        let mut bots: Vec<(String, Arc<BotSeries>)> = {
            let b = self.bots.lock().unwrap_or_else(|p| p.into_inner());
            b.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        bots.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(out, "# HELP oclaw_tasks_total Finished task attempts by bot and outcome (succeeded, failed).\n# TYPE oclaw_tasks_total counter");
        for (bot, s) in &bots {
            for (outcome, v) in [("succeeded", &s.succeeded), ("failed", &s.failed)] {
                let _ = writeln!(
                    out,
                    "oclaw_tasks_total{{{}}} {}",
                    labels(&[("bot", bot), ("outcome", outcome)]),
                    v.load(Ordering::Relaxed)
                );
            }
        }
        for (name, help, by_wait) in [
            (
                "oclaw_task_duration_seconds",
                "Run time of one task attempt, by bot.",
                false,
            ),
            (
                "oclaw_task_wait_seconds",
                "Time from ready (run_at) to start, by bot.",
                true,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (bot, s) in &bots {
                let h = if by_wait { &s.wait } else { &s.duration };
                h.render(out, name, &labels(&[("bot", bot)]));
            }
        }
    }
}

/// The task series of one bot.
#[derive(Debug)]
struct BotSeries {
    succeeded: AtomicU64,
    failed: AtomicU64,
    duration: Histogram,
    wait: Histogram,
}

impl Default for BotSeries {
    fn default() -> Self {
        BotSeries {
            succeeded: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            duration: Histogram::new(TASK_BUCKETS),
            wait: Histogram::new(TASK_BUCKETS),
        }
    }
}

/// The node's own families: tasks by bot, channel messages and reply latency, the node's CPU and
/// memory, and the process's.
impl crate::metrics::Exposition for NodeMetrics {
    fn render(&self, out: &mut String) {
        use crate::metrics::render_one;
        self.render_tasks(out);
        self.render_channels(out);
        crate::llm_metrics::llm().render(out);
        render_one(
            out,
            "oclaw_node_cpu_utilization_ratio",
            "gauge",
            "CPU in use on this node (0..1), sampled every 5s.",
            self.node_cpu_ratio(),
        );
        render_one(
            out,
            "oclaw_node_memory_utilization_ratio",
            "gauge",
            "Memory in use on this node (1 - MemAvailable/MemTotal).",
            crate::system::memory_ratio(),
        );
        for (name, kind, help, v) in crate::system::process_metrics(self.started_unix) {
            render_one(out, name, kind, help, v);
        }
    }
}
