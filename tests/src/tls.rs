//! TLS for the end-to-end tests: a test CA and a server certificate made with rcgen, written
//! where a server reads them ([`TestPki`]); rustls clients configured as MobileIMSDK's
//! platforms configure theirs; and what the server presented.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hongyan_client::tls::AcceptAnyCertificate;
use hongyan_server::Config;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The names every test server certificate is for.
pub const NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A test CA and a server certificate it issued, in a temporary directory removed on drop.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA's certificate, PEM: what clients trust.
    pub ca_pem: String,
    /// The same in a file, for `--ca-file` and [`Trust::CaFile`](hongyan_client::Trust).
    pub ca_file: PathBuf,
    /// The server's certificate chain (`tls_cert`).
    pub cert: PathBuf,
    /// The server's key (`tls_key`).
    pub key: PathBuf,
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh CA and a certificate for [`NAMES`].
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("a key"))
            .expect("a CA certificate");
        let ca_pem = ca.pem();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &ca_pem).expect("write the CA certificate");
        let pki = Self {
            cert: dir.path().join("server.crt"),
            key: dir.path().join("server.key"),
            dir,
            ca,
            ca_pem,
            ca_file,
        };
        pki.issue();
        pki
    }

    /// Issues a new server certificate and puts it in place the way certbot renews (each
    /// file written beside and renamed over the old one); returns it.
    pub fn issue(&self) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("a key");
        let names = NAMES.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let cert = CertificateParams::new(names)
            .expect("valid names")
            .signed_by(&key, &self.ca)
            .expect("a server certificate");
        for (path, contents) in [(&self.key, key.serialize_pem()), (&self.cert, cert.pem())] {
            let temp = path.with_extension("new");
            std::fs::write(&temp, contents).expect("write the new file");
            std::fs::rename(&temp, path).expect("rename it over the old one");
        }
        cert.der().clone()
    }

    /// Configures a server to present the certificate (TLS on its TCP gateway and HTTP
    /// listener).
    pub fn configure(&self, config: &mut Config) {
        config.tls_cert = Some(self.cert.clone());
        config.tls_key = Some(self.key.clone());
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client that trusts this CA, speaks `versions` and sends SNI if `sni`.
    pub fn client(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        sni: bool,
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.expect("PEM")).expect("a CA certificate");
        }
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .expect("ring speaks TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.enable_sni = sni;
        Arc::new(config)
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client as MobileIMSDK's Java/Android one is on Java 8 (Netty `SslHandler` with the demo's
/// trust-all `sslContext`): TLS 1.2 only, P-256 key exchange only (Java 8 has no X25519),
/// AES-GCM suites, any certificate trusted, no SNI.
pub fn java_like_client() -> Arc<ClientConfig> {
    use rustls::crypto::ring::{cipher_suite, default_provider, kx_group};
    let provider = Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::SECP256R1],
        ..default_provider()
    });
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("ring speaks TLS 1.2")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider)))
        .with_no_client_auth();
    config.enable_sni = false;
    Arc::new(config)
}

/// `localhost`, the name test clients check the certificate against.
pub fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid DNS name")
}

/// Connects to `addr` and runs the client handshake with `config` for `localhost`.
pub async fn connect(
    addr: std::net::SocketAddr,
    config: Arc<ClientConfig>,
) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    tokio_rustls::TlsConnector::from(config)
        .connect(localhost(), tcp)
        .await
        .expect("TLS handshake")
}

/// The certificate the server presented on `stream`.
pub fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("a server certificate")[0]
        .clone()
}

/// An HTTP client for the server's HTTPS listener, trusting `pki`'s CA.
pub fn https_client(pki: &TestPki) -> reqwest::Client {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(
            reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("the CA certificate"),
        )
        .build()
        .expect("an HTTPS client")
}
