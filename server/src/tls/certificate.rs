//! The certificate every handshake presents, replaced without a restart.
//!
//! [`ServerCertificate`] is the rustls certificate resolver of both listeners. Each handshake
//! takes the current chain with one uncontended read lock and an `Arc` clone, nothing next to
//! the signature it then computes; a reload builds the new chain off to the side and swaps it
//! in. Connections already established keep the session they negotiated; new handshakes get the
//! new certificate. A reload that fails (a half-written file, a key that does not match) keeps
//! the old certificate, logs why and counts the failure.
//!
//! Reloads happen on demand ([`reload`](ServerCertificate::reload), which the binary calls on
//! SIGHUP, see [`reload_on_sighup`]) and when the files change
//! ([`watch`](ServerCertificate::watch)). The watch compares the files' size and modification
//! time every few seconds rather than subscribing to inotify (`notify`): certbot swaps a
//! symlink and Kubernetes swaps a directory symlink under a mounted secret, two cases where
//! file-system events are easy to miss and a `stat` is not; a renewed certificate is not
//! urgent to the second; and two `stat` calls per period cost nothing and no dependency.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

use super::error::TlsError;
use super::fingerprint::CertFingerprint;
use super::load::{CertFiles, Loaded, load};
use super::metrics::TlsMetrics;

/// How often [`ServerCertificate::watch`] looks at the files by default.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// The server's certificate: loaded from [`CertFiles`], shared by every handshake, reloadable.
pub struct ServerCertificate {
    files: CertFiles,
    current: RwLock<Loaded>,
    /// The files as last read; also serialises reloads, so the watch and a SIGHUP never load
    /// twice at once.
    seen: Mutex<Stamps>,
    metrics: TlsMetrics,
}

impl ServerCertificate {
    /// Loads `files`. An error here is a configuration error: the server must not start (never
    /// fall back to a plain listener). Blocks on reading the two files.
    pub fn load(files: CertFiles, metrics: TlsMetrics) -> Result<Arc<Self>, TlsError> {
        let stamps = Stamps::of(&files);
        let loaded = load(&files)?;
        tracing::info!(
            cert = %files.cert.display(),
            fingerprint = %loaded.fingerprint,
            "TLS certificate loaded"
        );
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(loaded),
            seen: Mutex::new(stamps),
            metrics,
        }))
    }

    /// The files this certificate is read from.
    pub fn files(&self) -> &CertFiles {
        &self.files
    }

    /// The SHA-256 fingerprint of the certificate new handshakes present.
    pub fn fingerprint(&self) -> CertFingerprint {
        self.read().fingerprint
    }

    /// Reads the files again and, if they hold a valid certificate and key, presents them from
    /// the next handshake on. On failure the current certificate stays. Logs the outcome and
    /// returns the fingerprint now in use. Blocks on reading the files: call it from a
    /// blocking task (as [`watch`](Self::watch) and [`reload_on_sighup`] do).
    pub fn reload(&self) -> Result<CertFingerprint, TlsError> {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        *seen = Stamps::of(&self.files);
        self.reload_locked()
    }

    /// Reloads if either file's size or modification time changed since the last load (or
    /// failed load: a broken file is reported once, then again only when it changes).
    /// Returns whether it tried.
    pub fn reload_if_changed(&self) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Stamps::of(&self.files);
        if now == *seen {
            return false;
        }
        *seen = now;
        // The outcome is logged and counted there.
        let _ = self.reload_locked();
        true
    }

    fn reload_locked(&self) -> Result<CertFingerprint, TlsError> {
        match load(&self.files) {
            Ok(loaded) => {
                let fingerprint = loaded.fingerprint;
                let old = std::mem::replace(
                    &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
                    loaded,
                );
                self.metrics.reloaded.inc();
                tracing::info!(
                    cert = %self.files.cert.display(),
                    %fingerprint,
                    changed = old.fingerprint != fingerprint,
                    "TLS certificate reloaded"
                );
                Ok(fingerprint)
            }
            Err(error) => {
                self.metrics.reload_failed.inc();
                tracing::error!(
                    %error,
                    kept = %self.fingerprint(),
                    "TLS certificate reload failed; keeping the current certificate"
                );
                Err(error)
            }
        }
    }

    /// Calls [`reload_if_changed`](Self::reload_if_changed) every `every` until `shutdown`.
    pub async fn watch(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await; // The first tick is immediate; the files were just loaded.
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let this = self.clone();
            // A stat or read on a hung network file system must not hold a runtime thread.
            if let Err(error) = tokio::task::spawn_blocking(move || this.reload_if_changed()).await
            {
                tracing::error!(%error, "TLS certificate watch failed");
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResolvesServerCert for ServerCertificate {
    /// The one certificate, whatever the client asked for: MobileIMSDK's Java clients send no
    /// SNI, and a client that connects by IP address sends none either.
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.read().key.clone())
    }
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("files", &self.files)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Reloads `certificate` on every SIGHUP until `shutdown`. The signal handler is installed
/// before this returns, so a SIGHUP sent after it cannot kill the process; the returned future
/// does the reloading.
#[cfg(unix)]
pub fn reload_on_sighup(
    certificate: Arc<ServerCertificate>,
    shutdown: CancellationToken,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    Ok(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                received = hangups.recv() => if received.is_none() { return },
            }
            tracing::info!("SIGHUP: reloading the TLS certificate");
            let certificate = certificate.clone();
            // The outcome is logged by `reload`.
            if let Err(error) = tokio::task::spawn_blocking(move || certificate.reload()).await {
                tracing::error!(%error, "TLS certificate reload task failed");
            }
        }
    })
}

/// What identifies a version of both files without reading them (`None` where a file cannot
/// be looked at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamps([Option<Stamp>; 2]);

/// Size, modification time and (on Unix) inode: a rename over the file changes the inode even
/// when size and time (a few milliseconds coarse) happen to agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamps {
    fn of(files: &CertFiles) -> Self {
        Self([Stamp::of(&files.cert), Stamp::of(&files.key)])
    }
}

impl Stamp {
    fn of(path: &std::path::Path) -> Option<Self> {
        // `metadata` follows symlinks, so a swapped link shows as a changed file.
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        })
    }
}
