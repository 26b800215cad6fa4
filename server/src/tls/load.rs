//! Reading a certificate chain and its private key from PEM files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls::{Error as RustlsError, InconsistentKeys};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::TlsError;
use super::fingerprint::CertFingerprint;
use super::provider::provider;

/// Where the server's certificate and key live.
///
/// - `cert`: PEM, the server's certificate first, then its intermediates (a `fullchain.pem`
///   as certbot writes it).
/// - `key`: PEM, the certificate's private key: PKCS#8 (`BEGIN PRIVATE KEY`), PKCS#1 RSA
///   (`BEGIN RSA PRIVATE KEY`) or SEC1 EC (`BEGIN EC PRIVATE KEY`), not encrypted.
///
/// Both may name the same file when it holds the chain and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

impl CertFiles {
    /// The pair `cert`, `key`.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// A loaded certificate: the chain with its signing key, ready for rustls, and its fingerprint.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) key: Arc<CertifiedKey>,
    pub(crate) fingerprint: CertFingerprint,
}

/// Reads `files` and checks that the key belongs to the first certificate. Blocks on the two
/// file reads.
pub(crate) fn load(files: &CertFiles) -> Result<Loaded, TlsError> {
    let cert_pem = read(&files.cert, "certificate")?;
    let key_pem = read(&files.key, "key")?;
    let chain = certificates(&files.cert, &cert_pem)?;
    let key = private_key(&files.key, &key_pem)?;
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::BadKey {
            path: files.key.clone(),
            source,
        })?;
    let fingerprint = CertFingerprint::of(&chain[0]);
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // rustls cannot tell for some key types; the first handshake would then fail instead.
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            });
        }
        Err(source) => {
            return Err(TlsError::BadCertificate {
                path: files.cert.clone(),
                source,
            });
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        fingerprint,
    })
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// Every `CERTIFICATE` block in `pem`, in order; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            path: path.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        let hint = if PrivateKeyDer::from_pem_slice(pem).is_ok() {
            "; it holds a private key: are the certificate and key files swapped?"
        } else {
            ""
        };
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            hint,
        });
    }
    Ok(chain)
}

/// The first private key in `pem`, of any supported kind.
fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let hint = if contains(pem, b"ENCRYPTED PRIVATE KEY")
                || contains(pem, b"Proc-Type: 4,ENCRYPTED")
            {
                "; it is encrypted: decrypt it first (`openssl pkey -in key.pem -out plain.pem`)"
            } else if CertificateDer::from_pem_slice(pem).is_ok() {
                "; it holds a certificate: are the certificate and key files swapped?"
            } else {
                ""
            };
            Err(TlsError::NoPrivateKey {
                path: path.to_owned(),
                hint,
            })
        }
        Err(source) => Err(TlsError::Pem {
            what: "key",
            path: path.to_owned(),
            source,
        }),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::support::{TestCert, write};

    fn load_err(files: &CertFiles) -> TlsError {
        load(files).expect_err("the files are wrong on purpose")
    }

    #[test]
    fn loads_a_pkcs8_chain_and_reports_its_fingerprint() {
        let dir = tempdir();
        let cert = TestCert::new(&["localhost"]);
        let files = cert.write_to(dir.path(), "a");
        let loaded = load(&files).unwrap();
        assert_eq!(loaded.fingerprint, CertFingerprint::of(&cert.der()));
        assert_eq!(loaded.key.cert.len(), 1);
    }

    #[test]
    fn loads_the_full_chain_in_order() {
        let dir = tempdir();
        let (leaf, ca_pem) = TestCert::signed_by_ca(&["localhost"]);
        let files = leaf.write_to(dir.path(), "leaf");
        let mut chain = std::fs::read_to_string(&files.cert).unwrap();
        chain.push_str(&ca_pem);
        std::fs::write(&files.cert, chain).unwrap();
        let loaded = load(&files).unwrap();
        assert_eq!(loaded.key.cert.len(), 2);
        assert_eq!(loaded.fingerprint, CertFingerprint::of(&leaf.der()));
    }

    #[test]
    fn loads_pkcs1_rsa_and_sec1_ec_keys() {
        // Made with openssl (ring cannot generate RSA keys, rcgen writes only PKCS#8); see
        // `testdata/README.md`.
        for name in ["rsa-pkcs1", "ec-sec1"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tls/testdata");
            let files = CertFiles::new(
                dir.join(format!("{name}.crt")),
                dir.join(format!("{name}.key")),
            );
            let loaded = load(&files).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(loaded.key.cert.len(), 1, "{name}");
        }
    }

    #[test]
    fn one_file_may_hold_both_chain_and_key() {
        let dir = tempdir();
        let cert = TestCert::new(&["localhost"]);
        let both = dir.path().join("both.pem");
        write(&both, &format!("{}{}", cert.cert_pem, cert.key_pem));
        load(&CertFiles::new(&both, &both)).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempdir();
        let files = CertFiles::new(dir.path().join("nope.crt"), dir.path().join("nope.key"));
        let error = load_err(&files);
        assert!(
            matches!(
                error,
                TlsError::Read {
                    what: "certificate",
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("nope.crt"), "{error}");
    }

    #[test]
    fn swapped_files_are_recognised() {
        let dir = tempdir();
        let files = TestCert::new(&["localhost"]).write_to(dir.path(), "a");
        let swapped = CertFiles::new(&files.key, &files.cert);
        let error = load_err(&swapped);
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains("swapped"), "{error}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempdir();
        let a = TestCert::new(&["localhost"]).write_to(dir.path(), "a");
        let b = TestCert::new(&["localhost"]).write_to(dir.path(), "b");
        let error = load_err(&CertFiles::new(&a.cert, &b.key));
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn an_encrypted_key_gets_a_hint() {
        let dir = tempdir();
        let files = TestCert::new(&["localhost"]).write_to(dir.path(), "a");
        write(
            &files.key,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let error = load_err(&files);
        assert!(matches!(error, TlsError::NoPrivateKey { .. }), "{error}");
        assert!(error.to_string().contains("encrypted"), "{error}");
    }

    #[test]
    fn an_empty_certificate_file_says_so() {
        let dir = tempdir();
        let files = TestCert::new(&["localhost"]).write_to(dir.path(), "a");
        write(&files.cert, "");
        let error = load_err(&files);
        assert!(
            matches!(error, TlsError::NoCertificate { hint: "", .. }),
            "{error}"
        );
    }

    fn tempdir() -> crate::tls::tests::support::TempDir {
        crate::tls::tests::support::TempDir::new()
    }
}
