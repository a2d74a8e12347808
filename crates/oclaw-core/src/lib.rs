//! Domain types shared by every OpenClaw component: tasks and their states, bot definitions,
//! the node configuration, durations, retry policies and the catalogue of `OC-xxxx` error codes.

pub mod backoff;
pub mod bot;
pub mod channel;
pub mod ci;
pub mod config;
pub mod config_load;
pub mod duration;
pub mod error_code;
pub mod integral;
pub mod quantity;
pub mod stream;
pub mod suggest;
pub mod task;

pub use duration::Dur;
pub use error_code::ErrorCode;
pub use task::{Checkpoint, NewTask, Task, TaskError, TaskId, TaskStatus};
