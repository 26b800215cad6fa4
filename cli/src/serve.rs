//! `hongyan serve`: loads the settings, builds the runtime they ask for, makes sure the API
//! has an admin token (and, with `--tls-self-signed`, that there is a development
//! certificate), picks the hooks, reloads the TLS certificate on SIGHUP, and serves until
//! SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hongyan_server::tls::self_signed::default_names;
use hongyan_server::tls::{SelfSigned, ensure_self_signed};
use hongyan_server::{BearerToken, Hooks, LoggingHooks, Server, TokenOrigin, WebhookHooks};
use tokio_util::sync::CancellationToken;

pub use crate::settings::ServeArgs;
use crate::settings::ServeSettings;

/// Runs `hongyan serve` until it is stopped.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    // The settings decide the runtime, so they are read before one exists.
    let settings = args.load()?;
    raise_open_file_limit();
    crate::process::runtime(settings.process.workers)?.block_on(serve(settings))
}

/// Raises the soft limit on open files to the hard limit: every connection holds a file, and
/// the default connection limit is derived from this one (the server logs both when it
/// binds). Distributions start processes with a soft limit of 1024 and a hard one far above.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit raised to the hard limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

async fn serve(mut settings: ServeSettings) -> anyhow::Result<()> {
    ensure_admin_token(&mut settings)?;
    settings.server.store = settings
        .resolved_store()
        .context("creating the state directory for the message store")?;
    ensure_development_certificate(&mut settings)?;
    let config = settings.server;
    let webhooks = match config.webhook() {
        Some(webhook) => {
            tracing::info!(backend = %webhook.url.origin().ascii_serialization(),
                "webhooks: logins are verified by the backend");
            Some(Arc::new(
                WebhookHooks::new(&webhook).context("starting the webhooks")?,
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
    let stop_reloads = CancellationToken::new();
    #[cfg(unix)]
    if let Some(certificate) = bound.certificate() {
        let reloads =
            hongyan_server::tls::certificate::reload_on_sighup(certificate, stop_reloads.clone())
                .context("installing the SIGHUP handler (TLS certificate reloads)")?;
        tokio::spawn(reloads);
    }
    let served = bound.serve(shutdown_signal()).await;
    stop_reloads.cancel();
    served?;
    if let Some(webhooks) = webhooks
        && !webhooks.flush(Duration::from_secs(5)).await
    {
        tracing::warn!("some webhook events were not delivered before exit");
    }
    Ok(())
}

/// Without a configured admin token, generates one on first start (printed once) and reuses
/// it on later starts, so the API is never open.
fn ensure_admin_token(settings: &mut ServeSettings) -> anyhow::Result<()> {
    if settings.server.admin_token.is_some() {
        return Ok(());
    }
    let file = settings.state_dir().join("admin-token");
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
    settings.server.admin_token = Some(token);
    Ok(())
}

/// With `--tls-self-signed`: makes (or reuses) the development certificate in the state dir,
/// prints where it is and its fingerprint, and turns TLS on with it.
fn ensure_development_certificate(settings: &mut ServeSettings) -> anyhow::Result<()> {
    if !settings.process.tls_self_signed {
        return Ok(());
    }
    if settings.server.tls_cert.is_some() || settings.server.tls_key.is_some() {
        anyhow::bail!(
            "--tls-self-signed makes its own certificate: give it or tls_cert and tls_key, not both"
        );
    }
    let dir = settings.state_dir().join("tls");
    let SelfSigned {
        files,
        fingerprint,
        generated,
    } = ensure_self_signed(&dir, &default_names())
        .context("preparing the self-signed development certificate")?;
    let made = if generated {
        "made now"
    } else {
        "kept from an earlier start"
    };
    eprintln!(
        "\nhongyan: TLS with a SELF-SIGNED development certificate ({made}), for {names}:\n\n    \
         {cert}\n\nClients do not trust it unless told to. Its SHA-256 fingerprint, to compare \
         with what a client or browser shows:\n\n    {fingerprint}\n\nTrust it with \
         `hongyan chat --tcp localhost:8901 --tls --ca-file {cert}`, or in a browser by \
         accepting it for https://localhost:3000/ after comparing the fingerprint. Use a real \
         certificate (--tls-cert, --tls-key) in production.\n",
        names = default_names().join(", "),
        cert = files.cert.display(),
    );
    settings.server.tls_cert = Some(files.cert);
    settings.server.tls_key = Some(files.key);
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
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
