//! Why a run could not be carried out. A run that ran reports what went wrong during it (lost
//! messages, failed logins after the start) in its [`Report`](crate::Report) instead.

use std::collections::BTreeMap;

/// An error from any source, as a spawner returns it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options ask for what a run may not do: a target or source outside 127.0.0.0/8, too
    /// many connections or seconds, or values out of range.
    #[error("{0}")]
    Options(String),
    /// The run needs more open files than this process may have.
    #[error("{what} need about {needed} open files, over this process's limit of {limit}{hint}")]
    FileLimit {
        /// What needs them, e.g. "1000 connections".
        what: String,
        /// Open files the run needs.
        needed: usize,
        /// The process's limit.
        limit: u64,
        /// Advice, if any, starting with its separator.
        hint: &'static str,
    },
    /// Not every connection of the set-up phase logged in, so the scenario was not started.
    #[error("only {logged_in} of {wanted} connections logged in: {failures:?}")]
    Logins {
        /// Connections that logged in.
        logged_in: usize,
        /// Connections the scenario needs.
        wanted: usize,
        /// Failed logins by kind.
        failures: BTreeMap<String, usize>,
    },
    /// The server under test lacks the listener the run needs.
    #[error("the server has no {0} listener")]
    NoListener(&'static str),
    /// The CPU time of the server given by pid cannot be read.
    #[error("cannot read /proc/{0}/stat: no such process, or not readable")]
    ServerPid(u32),
    /// The in-process server could not start.
    #[error("the spawned server did not start: {0}")]
    Spawn(#[source] BoxError),
    /// A thread, runtime or HTTP client of the generator could not start.
    #[error("cannot start {what}: {source}")]
    Setup {
        /// What could not start.
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A task of the run panicked.
    #[error("a task of the run failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
