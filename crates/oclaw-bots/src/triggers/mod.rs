//! Every trigger a bot declares under `spec.triggers`, parsed and checked when the bot loads: time
//! ([`time`], fired by the scheduler), webhooks ([`webhook`]) and chat platforms ([`platform`],
//! served by the api-server under `/hooks/`), and broker subscriptions ([`broker`], MQTT and
//! NATS, served by the node's channels).

pub mod broker;
pub mod platform;
pub mod time;
pub mod webhook;

pub use time::{due_ticks, TimeTrigger};
