//! The embedded backend: one SQLite file in WAL mode, one writer connection and a few readers.

mod access;
mod connection;
mod coordination;
mod knowledge;
mod kv;
mod queue;
mod rows;
mod schema;
mod store_impl;
mod transitions;
mod waits;

pub use connection::{SqliteOptions, SqliteStore};
pub use schema::{min_compatible, schema_version};
