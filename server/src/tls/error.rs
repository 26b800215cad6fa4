//! What can go wrong with certificates, keys and handshakes.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Why a certificate and key could not be loaded, generated or used.
///
/// Every variant names the file, so an operator can act on the message alone.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read (missing, unreadable).
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("the TLS {what} file {path} is not valid PEM: {source}")]
    Pem {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser found.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error(
        "the TLS certificate file {path} holds no certificate \
         (expected a PEM `BEGIN CERTIFICATE` block, the server's own first){hint}"
    )]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// A likely cause, when one is recognisable (empty otherwise).
        hint: &'static str,
    },
    /// The key file holds no private key in a supported form.
    #[error(
        "the TLS key file {path} holds no private key \
         (expected PEM `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`){hint}"
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// A likely cause, when one is recognisable (empty otherwise).
        hint: &'static str,
    },
    /// The private key is of a kind rustls cannot sign with, or malformed.
    #[error("the private key in {path} cannot be used: {source}")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The server's certificate (the first in the chain) cannot be parsed.
    #[error("the first certificate in {path} cannot be parsed: {source}")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The key is not the private half of the first certificate.
    #[error(
        "the private key in {key} does not belong to the first certificate in {cert} \
         (the server's own certificate must come first, its chain after it)"
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused to build a configuration (no randomness for session tickets).
    #[error("cannot build the TLS configuration: {0}")]
    Config(rustls::Error),
    /// A development certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A development certificate or key could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: io::Error,
    },
}

/// Why one connection did not become a TLS connection. These are the client's doing (or the
/// network's) and are counted, not reported as server errors.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The first byte was not a TLS handshake record: a plain client on a TLS port. The
    /// connection was closed without a reply.
    #[error("not TLS (first byte {first_byte:#04x}); closed")]
    NotTls {
        /// What the client sent first (`0x00` for a MobileIMSDK frame).
        first_byte: u8,
    },
    /// The client closed the connection before sending anything.
    #[error("closed before the handshake")]
    Closed,
    /// The handshake did not finish within the deadline.
    #[error("handshake not finished within {0:?}")]
    TimedOut(Duration),
    /// The handshake failed (a TLS alert, a protocol error, a socket error).
    #[error("handshake failed: {0}")]
    Failed(#[from] io::Error),
}
