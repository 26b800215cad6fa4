//! TLS for the TCP transport ([`Endpoint::TcpTls`](crate::Endpoint::TcpTls)) and for `wss://`:
//! which certificates the client trusts, and the rustls client built from that.
//!
//! rustls with the *ring* provider, TLS 1.3 and 1.2, SNI sent for host names (never for IP
//! addresses). By default the server's certificate must chain to one of the operating system's
//! root certificates and name the host connected to, as a browser requires.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Which server certificates a client accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// Those that chain to the operating system's root certificates (the default).
    #[default]
    SystemRoots,
    /// Those that chain to a certificate in this PEM file: a private CA, or a self-signed
    /// server's own certificate (`hongyan serve`'s development certificate, for one). The
    /// system's roots are not consulted.
    CaFile(PathBuf),
    /// **Any certificate at all, for tests against a self-signed server only.** The connection
    /// is encrypted but not authenticated: anyone on the path can read and change it. This is
    /// what MobileIMSDK's demo clients do, and why a real deployment must not.
    DangerAcceptInvalidCerts,
}

/// TLS settings of a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Which certificates to accept.
    pub trust: Trust,
    /// The name to check the certificate against (and send as SNI) instead of the endpoint's
    /// host, e.g. when connecting by IP address to a server whose certificate names a host.
    pub server_name: Option<String>,
}

/// Why a client's TLS could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSetupError {
    /// The CA file could not be read or parsed.
    #[error("cannot read the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The CA file holds no usable certificate.
    #[error("the CA file {path} holds no usable certificate (expected PEM `BEGIN CERTIFICATE`)")]
    NoCaCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The operating system offered no root certificate.
    #[error("no root certificates found on this system ({reason}); use a CA file")]
    NoSystemRoots {
        /// What the loader reported.
        reason: String,
    },
    /// The endpoint's host (or the configured name) is not a valid TLS server name.
    #[error("{0:?} is not a host name or IP address TLS can check a certificate against")]
    ServerName(String),
}

/// A TLS client for one endpoint: the rustls configuration (built once per [`Client`], so
/// reconnections resume the previous session) and the name to check.
///
/// [`Client`]: crate::Client
#[derive(Clone)]
pub(crate) struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl TlsConnector {
    /// A connector for `host` (the endpoint's; `options.server_name` overrides it).
    pub(crate) fn new(options: &TlsOptions, host: &str) -> Result<Self, TlsSetupError> {
        let name = options.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsSetupError::ServerName(name.to_owned()))?;
        let config = client_config(&options.trust)?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(config),
            name,
        })
    }

    /// Runs the client handshake on `tcp`.
    pub(crate) async fn connect(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.name.clone(), tcp).await
    }
}

impl std::fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnector")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.3 and 1.2");
    let config = match trust {
        Trust::SystemRoots => builder.with_root_certificates(system_roots()?),
        Trust::CaFile(path) => builder.with_root_certificates(ca_file(path)?),
        Trust::DangerAcceptInvalidCerts => {
            tracing::warn!(
                "TLS certificate verification is OFF (danger_accept_invalid_certs): \
                 anyone on the path can read and change this connection"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider)))
        }
    };
    Ok(Arc::new(config.with_no_client_auth()))
}

/// The operating system's roots, read once per process (hundreds of certificates).
fn system_roots() -> Result<Arc<RootCertStore>, TlsSetupError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsSetupError>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                let reason = found
                    .errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(TlsSetupError::NoSystemRoots {
                    reason: if reason.is_empty() {
                        "none installed".to_owned()
                    } else {
                        reason
                    },
                });
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

fn ca_file(path: &Path) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let error = |reason: String| TlsSetupError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| error(e.to_string()))?;
        roots.add(cert).map_err(|e| error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(TlsSetupError::NoCaCertificate {
            path: path.to_owned(),
        });
    }
    Ok(Arc::new(roots))
}

/// The verifier behind [`Trust::DangerAcceptInvalidCerts`]: **any certificate, any name, any
/// date; for tests against self-signed servers only.** The handshake's signatures are still
/// checked with `provider`'s algorithms, so the peer at least holds the key of the certificate
/// it showed. Public for test clients that need their own rustls configuration (a Java 8-like
/// cipher list, say) with MobileIMSDK's trust-all behaviour.
#[derive(Debug)]
pub struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl AcceptAnyCertificate {
    /// A verifier checking handshake signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ca_file_is_named() {
        let options = TlsOptions {
            trust: Trust::CaFile("/nonexistent/ca.pem".into()),
            server_name: None,
        };
        let error = TlsConnector::new(&options, "localhost").unwrap_err();
        assert!(matches!(error, TlsSetupError::CaFile { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path = std::env::temp_dir().join(format!("hongyan-empty-ca-{}", std::process::id()));
        std::fs::write(&path, "no pem here").unwrap();
        let options = TlsOptions {
            trust: Trust::CaFile(path.clone()),
            server_name: None,
        };
        let error = TlsConnector::new(&options, "localhost").unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            matches!(error, TlsSetupError::NoCaCertificate { .. }),
            "{error}"
        );
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        let options = TlsOptions {
            trust: Trust::DangerAcceptInvalidCerts,
            server_name: None,
        };
        let connector = TlsConnector::new(&options, "[::1]").unwrap();
        assert!(matches!(connector.name, ServerName::IpAddress(_)));
    }

    #[test]
    fn the_configured_name_wins_over_the_host() {
        let options = TlsOptions {
            trust: Trust::DangerAcceptInvalidCerts,
            server_name: Some("im.example".to_owned()),
        };
        let connector = TlsConnector::new(&options, "127.0.0.1").unwrap();
        assert_eq!(connector.name.to_str(), "im.example");
    }
}
