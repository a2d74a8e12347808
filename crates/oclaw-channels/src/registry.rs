//! The channel registry: every channel kind, where it is served, and — for the broker channels
//! a node runs itself — how it is checked and started from `channels.<type>`. One table, so a
//! new channel is one module plus one entry here.

use std::sync::Arc;

use oclaw_bots::BotCatalog;
use oclaw_core::config::ChannelsConfig;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ReplyRouter;

/// Where a channel's traffic enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Routes of the api-server (`/hooks/...`, `/v1/ws`).
    Http,
    /// A connection the node keeps to a broker.
    Broker,
}

/// One channel kind.
pub struct ChannelKind {
    /// The `type`: the trigger key in bots and the key under `channels:` in the node config.
    pub name: &'static str,
    pub served: Served,
}

/// Every channel, as `oclaw` knows them (`channel` label of the channel metrics).
pub const CHANNELS: &[ChannelKind] = &[
    ChannelKind {
        name: "webhook",
        served: Served::Http,
    },
    ChannelKind {
        name: "websocket",
        served: Served::Http,
    },
    ChannelKind {
        name: "slack",
        served: Served::Http,
    },
    ChannelKind {
        name: "telegram",
        served: Served::Http,
    },
    ChannelKind {
        name: "feishu",
        served: Served::Http,
    },
    ChannelKind {
        name: "dingtalk",
        served: Served::Http,
    },
    ChannelKind {
        name: "wecom",
        served: Served::Http,
    },
    ChannelKind {
        name: "mqtt",
        served: Served::Broker,
    },
    ChannelKind {
        name: "nats",
        served: Served::Broker,
    },
];

/// What a broker channel needs to run.
pub struct Context {
    pub catalog: Arc<BotCatalog>,
    pub router: Arc<ReplyRouter>,
    pub metrics: Arc<oclaw_telemetry::NodeMetrics>,
    pub node_id: String,
    pub stop: watch::Receiver<bool>,
}

/// Checks and starts every broker channel some loaded bot uses. An error (a trigger whose
/// connection is not configured, a bad URL) is a configuration error: the node must not start.
pub fn start_brokers(config: &ChannelsConfig, ctx: Context) -> Result<Vec<JoinHandle<()>>, String> {
    let mut running = Vec::new();
    if crate::mqtt::wanted(&ctx.catalog) {
        let conn = config
            .mqtt
            .as_ref()
            .ok_or("a bot has an `mqtt` trigger but channels.mqtt.url is not set")?;
        let options = crate::mqtt::options(conn, &ctx.node_id)?;
        running.push(tokio::spawn(crate::mqtt::run(
            options,
            conn.share_group.clone(),
            ctx.catalog.clone(),
            ctx.router.clone(),
            ctx.metrics.clone(),
            ctx.stop.clone(),
        )));
    }
    if crate::nats::wanted(&ctx.catalog) {
        let conn = config
            .nats
            .clone()
            .ok_or("a bot has a `nats` trigger but channels.nats.url is not set")?;
        crate::nats::check(&conn)?;
        running.push(tokio::spawn(crate::nats::run(
            conn,
            ctx.catalog.clone(),
            ctx.router.clone(),
            ctx.metrics.clone(),
            ctx.stop.clone(),
        )));
    }
    Ok(running)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trigger_kind_is_a_registered_channel() {
        let trigger = oclaw_core::bot::Trigger::default();
        let platforms: Vec<&str> = trigger.platforms().iter().map(|(n, _)| *n).collect();
        for name in ["webhook", "websocket", "mqtt", "nats"]
            .iter()
            .chain(platforms.iter())
        {
            assert!(
                CHANNELS.iter().any(|c| c.name == *name),
                "{name} is not registered"
            );
        }
        assert_eq!(
            CHANNELS
                .iter()
                .filter(|c| c.served == Served::Broker)
                .count(),
            2
        );
    }
}
