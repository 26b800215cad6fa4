//! The `hongyan` command: `hongyan serve`, `hongyan chat` and `hongyan bench` on the hongyan
//! libraries (`hongyan-server`, `hongyan-client`, `hongyan-bench`), which know nothing of
//! argument parsing, processes or terminals. This crate owns all of that.
//!
//! `main.rs` only installs the allocator and the log, parses [`Cli`] and runs it; the rest is
//! a library so that tests can drive the pieces in-process.
//!
//! # Layout
//! - [`settings`]: the settings of `hongyan serve`: the server library's
//!   [`Config`](hongyan_server::Config) and the process's own ([`settings::ProcessSettings`]),
//!   their flags and environment variables, built from the one definition of each setting,
//!   and their layering (defaults, TOML file, environment, flags) with `figment`.
//! - [`serve`]: `hongyan serve`: the runtime, the admin token in the state dir, the hooks,
//!   graceful shutdown on SIGINT/SIGTERM.
//! - [`chat`]: `hongyan chat`, the terminal client (human or JSON lines).
//! - [`bench`](mod@bench): `hongyan bench`: its flags, and the one adapter that spawns a server in this
//!   process for `--spawn`.
//! - `process`: what every subcommand's process needs: the runtime and the log.

pub mod bench;
pub mod chat;
mod process;
pub mod serve;
pub mod settings;

use clap::{Parser, Subcommand};

pub use process::init_logging;

/// hongyan (鸿雁): a MobileIMSDK v6-compatible instant-messaging server.
#[derive(Debug, Parser)]
#[command(name = "hongyan", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: TCP :8901, UDP :7901, HTTP + WebSocket :3000 (H5 client at `/`).
    ///
    /// WARNING: without --webhook-url the built-in hooks accept every login. Verify logins in
    /// your backend (--webhook-url, see docs/INTEGRATION.md) or embed hongyan with your own
    /// `Hooks` before exposing it to untrusted clients.
    Serve(serve::ServeArgs),
    /// Chat from the terminal over TCP, UDP or WebSocket (`--json` for scripts).
    Chat(chat::ChatArgs),
    /// Load-test a server over TCP, UDP or WebSocket (bounded, loopback only; `--json`).
    Bench(bench::BenchArgs),
}

impl Cli {
    /// Runs the command to its end.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Serve(args) => serve::run(&args),
            Command::Chat(args) => process::runtime(None)?.block_on(chat::run(args)),
            Command::Bench(args) => process::runtime(None)?.block_on(bench::run(args)),
        }
    }
}
