//! Certificates made with rcgen, throwaway directories, a TLS echo server on loopback, and
//! clients configured as MobileIMSDK's are.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hongyan_client::tls::AcceptAnyCertificate;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

use crate::tls::certificate::ServerCertificate;
use crate::tls::config::build;
use crate::tls::handshake::{HandshakeLimits, TlsAcceptor};
use crate::tls::load::CertFiles;
use crate::tls::metrics::TlsMetrics;

/// A directory under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("hongyan-tls-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("the temporary directory is writable");
        Self(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a file, failing the test if it cannot.
pub(crate) fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A certificate and its key, in PEM.
pub(crate) struct TestCert {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    der: CertificateDer<'static>,
}

impl TestCert {
    /// A self-signed ECDSA P-256 certificate for `names`.
    pub(crate) fn new(names: &[&str]) -> Self {
        let key = KeyPair::generate().unwrap();
        let cert = params(names).self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    /// A certificate for `names` issued by a fresh CA, and the CA's certificate in PEM.
    pub(crate) fn signed_by_ca(names: &[&str]) -> (Self, String) {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params(names).signed_by(&key, &ca).unwrap();
        let leaf = Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        };
        (leaf, ca.pem())
    }

    pub(crate) fn der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// Writes `<stem>.crt` and `<stem>.key` into `dir`.
    pub(crate) fn write_to(&self, dir: &Path, stem: &str) -> CertFiles {
        let files = CertFiles::new(
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        self.replace(&files);
        files
    }

    /// Puts this certificate in `files` the way certbot renews: each file written beside and
    /// renamed over the old one.
    pub(crate) fn replace(&self, files: &CertFiles) {
        for (path, contents) in [(&files.key, &self.key_pem), (&files.cert, &self.cert_pem)] {
            let temp = path.with_extension("new");
            write(&temp, contents);
            std::fs::rename(&temp, path).unwrap();
        }
    }
}

fn params(names: &[&str]) -> CertificateParams {
    CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap()
}

/// Polls `condition` until it holds, failing the test after `limit`.
pub(crate) async fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What the echo server learnt of a connection's handshake.
#[derive(Debug)]
pub(crate) struct Accepted {
    /// The SNI the client sent.
    pub(crate) sni: Option<String>,
    /// The negotiated version.
    pub(crate) version: Option<rustls::ProtocolVersion>,
}

/// A TLS echo server on loopback, built from the module under test: `accept`, then the
/// acceptor's handshake in the connection's task, as the server's accept loops do.
pub(crate) struct EchoServer {
    pub(crate) addr: SocketAddr,
    pub(crate) certificate: Arc<ServerCertificate>,
    pub(crate) metrics: TlsMetrics,
    pub(crate) accepted: mpsc::UnboundedReceiver<Accepted>,
    pub(crate) files: CertFiles,
    _dir: TempDir,
}

impl EchoServer {
    /// Serves a fresh certificate for `localhost` and `127.0.0.1`.
    pub(crate) async fn start(limits: HandshakeLimits) -> (Self, TestCert) {
        let cert = TestCert::new(&["localhost", "127.0.0.1"]);
        let dir = TempDir::new();
        let files = cert.write_to(dir.path(), "server");
        (Self::start_with(files, dir, limits).await, cert)
    }

    /// Serves the certificate in `files`.
    pub(crate) async fn start_with(
        files: CertFiles,
        dir: TempDir,
        limits: HandshakeLimits,
    ) -> Self {
        let metrics = TlsMetrics::default();
        let certificate = ServerCertificate::load(files.clone(), metrics.clone()).unwrap();
        let (tx, accepted) = mpsc::unbounded_channel();
        let (names, sni) = mpsc::unbounded_channel();
        let resolver = Arc::new(RecordingResolver {
            certificate: certificate.clone(),
            names,
        });
        let config = build(resolver, Vec::new()).unwrap();
        let acceptor = TlsAcceptor::new(config, limits, metrics.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sni = Arc::new(tokio::sync::Mutex::new(sni));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (acceptor, tx, sni) = (acceptor.clone(), tx.clone(), sni.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.handshake(stream).await else {
                        return;
                    };
                    let sni = sni.lock().await.recv().await.flatten();
                    let _ = tx.send(Accepted {
                        sni,
                        version: tls.protocol_version(),
                    });
                    let mut buf = [0; 1024];
                    while let Ok(n @ 1..) = tls.read(&mut buf).await {
                        if tls.write_all(&buf[..n]).await.is_err() || tls.flush().await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            certificate,
            metrics,
            accepted,
            files,
            _dir: dir,
        }
    }
}

/// The server's certificate, and the SNI of every handshake that asked for it, in order.
#[derive(Debug)]
struct RecordingResolver {
    certificate: Arc<ServerCertificate>,
    names: mpsc::UnboundedSender<Option<String>>,
}

impl ResolvesServerCert for RecordingResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let _ = self.names.send(hello.server_name().map(str::to_owned));
        self.certificate.resolve(hello)
    }
}

/// A client that trusts `roots` (PEM), speaks the given versions and sends SNI if `sni`.
pub(crate) fn client_config(
    roots_pem: &str,
    versions: &[&'static rustls::SupportedProtocolVersion],
    sni: bool,
) -> Arc<ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(crate::tls::provider::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.enable_sni = sni;
    Arc::new(config)
}

/// A client as MobileIMSDK's Java/Android one is on Java 8: TLS 1.2 only, P-256 key exchange
/// only (Java 8 has no X25519), AES-GCM suites, any certificate trusted, no SNI.
pub(crate) fn java8_like_client() -> Arc<ClientConfig> {
    use rustls::crypto::ring::{cipher_suite, default_provider, kx_group};
    let provider = CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::SECP256R1],
        ..default_provider()
    };
    let provider = Arc::new(provider);
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider)))
        .with_no_client_auth();
    config.enable_sni = false;
    Arc::new(config)
}

/// Connects to `addr` and runs the client handshake for `name`.
pub(crate) async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// Writes `bytes` and reads them back.
pub(crate) async fn echo(stream: &mut TlsStream<TcpStream>, bytes: &[u8]) {
    stream.write_all(bytes).await.unwrap();
    let mut back = vec![0; bytes.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, bytes);
}

/// The certificate the server presented on `stream`.
pub(crate) fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

pub(crate) fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}
