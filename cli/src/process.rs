//! What every subcommand's process needs: the log on stderr and a runtime.

use std::io::IsTerminal;
use std::num::NonZeroUsize;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// Logs to stderr (coloured on a terminal), filtered by `HONGYAN_LOG` (a `tracing` filter,
/// default `info`, with NATS's client at `warn`: it logs every reconnection attempt, and the
/// cluster logs losing and regaining NATS itself).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("HONGYAN_LOG")
                .unwrap_or_else(|_| EnvFilter::new("info,async_nats=warn")),
        )
        .init();
}

/// A multi-threaded runtime with `workers` threads, by default one per core (or
/// `TOKIO_WORKER_THREADS`).
pub(crate) fn runtime(workers: Option<NonZeroUsize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n.get());
    }
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}
