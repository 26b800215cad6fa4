//! The rustls server configurations of the TCP gateway and the HTTP listener.
//!
//! Both present the one [`ServerCertificate`] and differ only in ALPN. The choices, and the
//! clients they are for:
//!
//! - **TLS 1.3 and 1.2.** iOS clients (GCDAsyncSocket) and Java 8 speak 1.2 at most.
//! - **rustls's cipher suites and groups** (ECDHE with X25519, P-256 or P-384; AES-GCM or
//!   ChaCha20-Poly1305; no CBC, no RSA key exchange). Java 8 offers
//!   `TLS_ECDHE_{ECDSA,RSA}_WITH_AES_128_GCM_SHA256` over P-256, Android 5+ and iOS 9+ the
//!   same or better, so every MobileIMSDK client of this century finds a match.
//! - **No client certificates.**
//! - **Session resumption**, so a mobile client reconnecting after a network change skips the
//!   signature and the certificate: stateless tickets (rotating keys) for clients that take
//!   them, and a session-id cache for those that do not (Java 8's TLS 1.2 client).

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ResolvesServerCert, ServerSessionMemoryCache};

use super::certificate::ServerCertificate;
use super::error::TlsError;
use super::provider::provider;

/// TLS 1.2 sessions remembered for session-id resumption (a few hundred bytes each). rustls's
/// default, 256, is far below the clients of one server.
const SESSION_CACHE: usize = 4096;

/// The TCP gateway's configuration: no ALPN (MobileIMSDK clients offer none).
pub fn tcp_gateway_config(
    certificate: Arc<ServerCertificate>,
) -> Result<Arc<ServerConfig>, TlsError> {
    build(certificate, Vec::new())
}

/// The HTTP listener's configuration (HTTPS, WSS, the API, the H5 client): ALPN `http/1.1`,
/// the one HTTP version the listener serves, and the one browsers open WebSockets over.
pub fn http_config(certificate: Arc<ServerCertificate>) -> Result<Arc<ServerConfig>, TlsError> {
    build(certificate, vec![b"http/1.1".to_vec()])
}

/// A configuration presenting what `resolver` picks (the [`ServerCertificate`]; tests wrap it)
/// with ALPN `alpn`.
pub(crate) fn build(
    resolver: Arc<dyn ResolvesServerCert>,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = alpn;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Config)?;
    // One ticket is enough for a client that holds one connection at a time (rustls sends two
    // by default, for browsers that open several).
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}
