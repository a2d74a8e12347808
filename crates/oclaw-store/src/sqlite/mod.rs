//! The embedded backend: one SQLite file in WAL mode, one writer connection and a few readers.

mod connection;
mod rows;
mod schema;
mod store_impl;

pub use connection::{SqliteOptions, SqliteStore};
pub use schema::SCHEMA_VERSION;
