//! TLS for the TCP gateway and the HTTP listener (HTTPS, WSS, the API and the H5 client), as
//! MobileIMSDK v6.3+ clients speak it: TLS from the first byte, the protocol unchanged inside.
//!
//! rustls with the *ring* provider, TLS 1.2 and 1.3, no client certificates. What the clients
//! need and what follows from it:
//!
//! - **Java/Android** clients (Netty `SslHandler`) trust any certificate and send no SNI, so the
//!   server presents its one certificate whatever the client asks for.
//! - **iOS** clients (GCDAsyncSocket `startTLS`) may speak only TLS 1.2, so 1.2 stays on.
//! - Browsers and the native client check the certificate as usual (`wss://`).
//!
//! A TLS-enabled port is **all-TLS**: a connection whose first byte is not a TLS handshake
//! record (`0x16`) is closed at once, without a byte sent back (a MobileIMSDK frame starts with
//! `0x00`). A migration runs a second, plain port alongside for clients not yet switched, so
//! nothing is ever silently downgraded and the plain port can simply be closed when the last
//! client has moved.
//!
//! # Layout
//! - [`load`]: reading a certificate chain and its key from PEM files ([`CertFiles`]), with
//!   errors that name the file and what is wrong ([`TlsError`]).
//! - [`certificate`]: [`ServerCertificate`], the certificate every handshake presents, swapped
//!   without a restart on [`reload`](ServerCertificate::reload) (SIGHUP) or when the files
//!   change ([`watch`](ServerCertificate::watch)).
//! - [`config`]: the rustls server configurations of the two listeners.
//! - [`handshake`]: [`TlsAcceptor`], the bounded handshake stage: at most N handshakes at
//!   once, joined only by a connection that has spoken, each connection with a deadline,
//!   plain clients turned away cleanly. The TCP gateway's and the HTTP listener's accept
//!   loops are generic over the server's `Handshake` trait, which `TlsAcceptor` implements:
//!   the loop accepts, checks the connection limit, and runs the handshake in the
//!   connection's task.
//! - [`stream`]: [`TlsStream`], the connection after the handshake, on rustls's unbuffered
//!   API so that an idle connection holds no buffer.
//! - [`metrics`]: [`TlsMetrics`], handshake and reload counters for `/metrics`.
//! - [`self_signed`]: a development certificate made with rcgen and kept in a directory.
//! - [`fingerprint`]: [`CertFingerprint`], the SHA-256 fingerprint operators compare.

pub mod certificate;
pub mod config;
mod error;
pub mod fingerprint;
pub mod handshake;
pub mod load;
pub mod metrics;
mod provider;
pub mod self_signed;
pub mod stream;
#[cfg(test)]
pub(crate) mod tests;

pub use certificate::ServerCertificate;
pub use config::{http_config, tcp_gateway_config};
pub use error::{HandshakeError, TlsError};
pub use fingerprint::CertFingerprint;
pub use handshake::{HandshakeLimits, TlsAcceptor};
pub use load::CertFiles;
pub use metrics::TlsMetrics;
pub use self_signed::{SelfSigned, ensure_self_signed};
pub use stream::TlsStream;
