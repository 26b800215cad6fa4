//! The client library's errors.

use hongyan_shared::client::{LoginError, SendError, SyncError};

use crate::tls::TlsSetupError;

/// Why a [`Client`](crate::Client) call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The login could not start (bad user id).
    #[error(transparent)]
    Login(#[from] LoginError),
    /// The message was refused by the session (not logged in, not online without QoS, too
    /// large, duplicate fingerprint).
    #[error(transparent)]
    Send(#[from] SendError),
    /// A history request was refused (history sync is off, or the session is not online).
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// TLS could not be set up for a `tls://` or `wss://` endpoint (CA file, system roots,
    /// server name).
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    /// The session has ended (logout, kickout, refused login), so the client accepts no more
    /// commands.
    #[error("the client session has ended")]
    Closed,
}
