//! The one cryptography provider: *ring*, as the rest of the workspace (reqwest) uses. In its
//! own file so the other TLS modules need not import `tls` itself, which imports them.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The provider every TLS configuration and key loader uses.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
