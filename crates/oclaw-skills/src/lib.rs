//! Skills: named, typed pipeline steps (`async run(ctx, input) -> output`). Built-in skills are
//! one module each; [`SkillRegistry`] is the one place a step's `uses:` is looked up.

mod context;
mod enqueue;
mod faq;
mod http_request;
mod kv;
mod log;
mod registry;
mod sleep;
mod ssrf;
pub mod switch;
mod template;
mod transform;
pub mod waits;

pub use context::{Journal, SkillCall, SkillContext, SkillError};
pub use http_request::{fetch_document, HttpClients, HttpRequest};
pub use registry::{intern, Skill, SkillOrigin, SkillRegistry};
pub use transform::compile_jq;
