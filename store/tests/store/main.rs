//! The store's tests, against real databases: one binary, so one link.
//!
//! - `backend`: a backend under test (memory, SQLite in a temporary file, PostgreSQL on a
//!   server of its own) and how to open it.
//! - `conformance`: the same tests against every backend.
//! - `durability`: what persistent backends add: reopening, migrations.
//! - `history`: conversation history, on every backend, and across reopens.
//! - `failures`: a full disk, a database that goes away, a full queue: errors, never false
//!   successes, and recovery without reopening.

#[macro_use]
mod backend;
mod conformance;
mod durability;
mod failures;
mod history;
