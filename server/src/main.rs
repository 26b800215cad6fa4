//! The `hongyan` command.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use hongyan_server::{
    BearerToken, Config, Hooks, LoggingHooks, ServeArgs, Server, TokenOrigin, WebhookHooks,
};
use tracing_subscriber::EnvFilter;

/// hongyan (鸿雁): a MobileIMSDK v6-compatible instant-messaging server.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: TCP :8901, UDP :7901, HTTP + WebSocket :3000 (H5 client at `/`).
    ///
    /// WARNING: without --webhook-url the built-in hooks accept every login. Verify logins in
    /// your backend (--webhook-url, see docs/INTEGRATION.md) or embed hongyan with your own
    /// `Hooks` before exposing it to untrusted clients.
    Serve(ServeArgs),
    /// Chat from the terminal over TCP, UDP or WebSocket (`--json` for scripts).
    Chat(hongyan_client::chat::ChatArgs),
    /// Load-test a server over TCP, UDP or WebSocket (bounded, loopback only; `--json`).
    Bench(hongyan_bench::BenchArgs),
}

/// mimalloc instead of glibc's malloc: glibc grows a thread's heap one page per `mprotect`
/// call, which cost the server ~14% of its CPU during a login storm, and its small
/// allocations on the message path are slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_env("HONGYAN_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => {
            // The configuration decides the runtime, so it is read before one exists.
            let config = args.resolve()?;
            runtime(config.workers)?.block_on(serve(config))
        }
        Command::Chat(args) => runtime(None)?.block_on(hongyan_client::chat::run(args)),
        Command::Bench(args) => {
            runtime(None)?.block_on(hongyan_bench::run(args, Some(spawn_for_bench)))
        }
    }
}

/// A multi-threaded runtime with `workers` threads, by default one per core (or
/// `TOKIO_WORKER_THREADS`).
fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n);
    }
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

async fn serve(mut config: Config) -> anyhow::Result<()> {
    ensure_admin_token(&mut config)?;
    let webhooks = match &config.webhook {
        Some(webhook) => {
            tracing::info!(backend = %webhook.url.origin().ascii_serialization(),
                "webhooks: logins are verified by the backend");
            Some(Arc::new(
                WebhookHooks::new(webhook).context("starting the webhooks")?,
            ))
        }
        None => {
            tracing::warn!(
                "built-in hooks: EVERY LOGIN IS ACCEPTED; do not expose this server to untrusted \
                 clients (set --webhook-url to verify logins in your backend)"
            );
            None
        }
    };
    let hooks: Arc<dyn Hooks> = match &webhooks {
        Some(webhooks) => webhooks.clone(),
        None => Arc::new(LoggingHooks),
    };
    let bound = Server::bind(config, hooks)
        .await
        .context("starting hongyan")?;
    bound.serve(shutdown_signal()).await?;
    if let Some(webhooks) = webhooks
        && !webhooks.flush(Duration::from_secs(5)).await
    {
        tracing::warn!("some webhook events were not delivered before exit");
    }
    Ok(())
}

/// Without a configured admin token, generates one on first start (printed once) and reuses
/// it on later starts, so the API is never open.
fn ensure_admin_token(config: &mut Config) -> anyhow::Result<()> {
    if config.admin_token.is_some() {
        return Ok(());
    }
    let file = config.state_dir.join("admin-token");
    let (token, origin) =
        BearerToken::load_or_create(&file).context("preparing the admin token for /api")?;
    match origin {
        TokenOrigin::Created(path) => eprintln!(
            "\nhongyan: generated an admin token for the HTTP API (/api). It is shown once; it \
             is kept in {} (owner-only) and reused on restart:\n\n    {}\n\nSend it as \
             `Authorization: Bearer <token>`.\n",
            path.display(),
            token.expose()
        ),
        TokenOrigin::Loaded(path) => {
            tracing::info!(path = %path.display(), "admin token for /api loaded");
        }
    }
    config.admin_token = Some(token);
    Ok(())
}

/// Accepts every login and logs nothing: the server `hongyan bench --spawn` measures.
struct BenchHooks;

impl hongyan_server::Hooks for BenchHooks {}

/// `hongyan bench --spawn`: a loopback server with every gateway on an ephemeral port.
fn spawn_for_bench(
    stop: tokio_util::sync::CancellationToken,
) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<hongyan_bench::SpawnedServer>> + Send>> {
    Box::pin(async move {
        let bound = Server::bind(hongyan_server::Config::loopback(), Arc::new(BenchHooks)).await?;
        let targets = hongyan_bench::Targets {
            tcp: bound.tcp_addr(),
            udp: bound.udp_addr(),
            ws: bound.http_addr(),
        };
        let serve = Box::pin(async move {
            if let Err(e) = bound.serve(stop.cancelled_owned()).await {
                tracing::error!(error = %e, "bench server failed");
            }
        });
        Ok(hongyan_bench::SpawnedServer { targets, serve })
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
