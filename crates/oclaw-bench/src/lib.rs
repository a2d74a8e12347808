//! The built-in benchmarks (`oclaw bench`), kept out of the node so a node carries none of the
//! clients they drive it with: `drain` and `latency` (the store, worker and executor on SQLite or
//! PostgreSQL), `http` (the API under a fixed request rate), `chat` (WebSocket or MQTT chat
//! sessions against the example FAQ bot, or a model bot against a stand-in model), `llm` (what the model layer adds to a call), `fanout` (a `for_each` step over many items), `plugin` (WebAssembly calls), `resume` (an agent run after its node is
//! killed) `spread` (a burst over two worker processes, one killed) and `waits` (tasks parked in a
//! `wait` step, and the events that resume them), `bare` (the store's ceiling: a bare queue table
//! drained without the engine) and `memory` (a separate node's resident memory, idle and over a soak).

pub mod bare;
pub mod chat;
pub mod drain;
pub mod fairness;
pub mod fanout;
pub mod http;
pub mod kb;
pub mod llm;
pub mod memory;
pub mod plugin;
pub mod resume;
pub mod spread;
pub mod waits;
