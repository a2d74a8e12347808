//! Channels turn outside traffic into tasks for bots and carry each bot's reply back the way the
//! message came. Every channel goes through [`Inbound`] (one message → one durable task, ordered
//! within its conversation) and the process's [`ReplyRouter`] (one subscription to finished
//! tasks, waking the waiter of each), and counts its messages in the same metrics.
//!
//! HTTP-borne channels (webhooks, chat platforms, WebSocket sessions) are served by the API;
//! broker-borne ones ([`mqtt`], [`nats`]) run as tasks of the node.

pub mod broker;
pub mod delivery;
pub mod inbound;
pub mod mqtt;
pub mod nats;
pub mod platforms;
pub mod registry;
mod request;
pub mod router;
pub mod webhook;
pub mod websocket;

pub use inbound::{broker_message, reply_payload, resolve_secret, Inbound};
pub use request::Request;
pub use router::{Pending, ReplyRouter};

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
