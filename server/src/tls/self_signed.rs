//! A self-signed certificate for development, made once and kept in a directory.
//!
//! An ECDSA P-256 key: every MobileIMSDK client platform takes it (Java 8 and Android 5+
//! negotiate `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`, iOS likewise) and, unlike RSA, *ring*
//! can generate it. Valid 397 days (the longest Apple platforms accept for a server
//! certificate, even one the user trusts by hand) for `localhost`, `127.0.0.1`, `::1` and the
//! host name ([`default_names`]). A later start reuses it as long as it is valid for the names
//! asked for and more than 30 days from expiry; otherwise it makes a new one.
//!
//! Clients that verify certificates will not trust it unless told to (`--ca-file` with the
//! certificate file, or a browser exception): it is for development and tests, and the
//! fingerprint it prints is how to tell it is the right one.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::{ServerName, UnixTime};

use super::error::TlsError;
use super::fingerprint::CertFingerprint;
use super::load::{CertFiles, Loaded, load};
use super::provider::provider;

/// The certificate's file name in the directory.
pub const CERT_FILE: &str = "self-signed-cert.pem";
/// The key's file name in the directory (mode 0600 on Unix).
pub const KEY_FILE: &str = "self-signed-key.pem";
/// How long a new certificate is valid.
const VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// A certificate that expires within this long is replaced at start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Back-dating, so a device whose clock is a little behind accepts a new certificate.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// A development certificate ready to load.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// Where it is.
    pub files: CertFiles,
    /// Its SHA-256 fingerprint, to print.
    pub fingerprint: CertFingerprint,
    /// Whether it was made just now (false: an earlier one was reused).
    pub generated: bool,
}

/// The names a development certificate covers: `localhost`, `127.0.0.1`, `::1` and this
/// machine's host name where it can be found and is a valid DNS name.
pub fn default_names() -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let host = host_name().filter(|h| ServerName::try_from(h.as_str()).is_ok());
    if let Some(host) = host.filter(|h| !names.contains(h)) {
        names.push(host);
    }
    names
}

/// Ensures `dir` holds a valid self-signed certificate for `names` (see the module doc): reuses
/// the one there or makes a new one. Creates `dir` if needed. Blocks on file IO.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<SelfSigned, TlsError> {
    let files = CertFiles::new(dir.join(CERT_FILE), dir.join(KEY_FILE));
    if files.cert.exists() || files.key.exists() {
        match load(&files) {
            Ok(loaded) if still_good(&loaded, names) => {
                return Ok(SelfSigned {
                    files,
                    fingerprint: loaded.fingerprint,
                    generated: false,
                });
            }
            Ok(_) => tracing::info!(
                "the self-signed certificate expires soon or lacks a name; making a new one"
            ),
            Err(error) => {
                tracing::info!(%error, "the self-signed certificate is unusable; making a new one");
            }
        }
    }
    generate(&files, names)?;
    let loaded = load(&files)?;
    Ok(SelfSigned {
        files,
        fingerprint: loaded.fingerprint,
        generated: true,
    })
}

/// Whether `loaded` verifies, as its own root, for every name in `names` on the day
/// [`RENEW_BEFORE`] from now.
fn still_good(loaded: &Loaded, names: &[String]) -> bool {
    let Some(cert) = loaded.key.cert.first() else {
        return false;
    };
    let mut roots = RootCertStore::empty();
    if roots.add(cert.clone()).is_err() {
        return false;
    }
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider()).build()
    else {
        return false;
    };
    let then = UnixTime::since_unix_epoch(since_epoch() + RENEW_BEFORE);
    names.iter().all(|name| {
        ServerName::try_from(name.as_str()).is_ok_and(|name| {
            verifier
                .verify_server_cert(cert, &[], &name, &[], then)
                .is_ok()
        })
    })
}

fn generate(files: &CertFiles, names: &[String]) -> Result<(), TlsError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "hongyan development certificate");
    params.distinguished_name = subject;
    // rcgen's dates are `time` values; the Unix epoch plus a std duration avoids naming them.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + (since_epoch() - CLOCK_SKEW);
    params.not_after = epoch + (since_epoch() + VALIDITY);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    if let Some(dir) = files.cert.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TlsError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    write_atomically(&files.key, key.serialize_pem().as_bytes(), true)?;
    write_atomically(&files.cert, cert.pem().as_bytes(), false)?;
    Ok(())
}

/// Writes `contents` to a temporary file beside `path` and renames it over `path`, so no one
/// ever reads half a key. `secret` files are created readable by their owner only.
fn write_atomically(path: &Path, contents: &[u8], secret: bool) -> Result<(), TlsError> {
    let error = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = std::path::PathBuf::from(temp);
    // A leftover from an interrupted run may have other permissions; start afresh.
    let _ = std::fs::remove_file(&temp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(&temp).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temp, path).map_err(error)
}

fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// This machine's host name, where the platform tells it without a system call binding.
fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::support::TempDir;

    fn names() -> Vec<String> {
        default_names()
    }

    #[test]
    fn makes_a_certificate_once_and_reuses_it() {
        let dir = TempDir::new();
        let state = dir.path().join("state");
        let first = ensure_self_signed(&state, &names()).unwrap();
        assert!(first.generated);
        let second = ensure_self_signed(&state, &names()).unwrap();
        assert!(!second.generated);
        assert_eq!(first.fingerprint, second.fingerprint);
        assert_eq!(first.files, second.files);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new();
        let made = ensure_self_signed(dir.path(), &names()).unwrap();
        let mode = std::fs::metadata(&made.files.key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn covers_localhost_and_the_loopback_addresses() {
        let dir = TempDir::new();
        let made = ensure_self_signed(dir.path(), &names()).unwrap();
        let loaded = load(&made.files).unwrap();
        for name in ["localhost", "127.0.0.1", "::1"] {
            assert!(still_good(&loaded, &[name.to_owned()]), "{name}");
        }
        assert!(!still_good(&loaded, &["example.com".to_owned()]));
    }

    #[test]
    fn a_new_name_gets_a_new_certificate() {
        let dir = TempDir::new();
        let first = ensure_self_signed(dir.path(), &names()).unwrap();
        let mut more = names();
        more.push("dev.example".to_owned());
        let second = ensure_self_signed(dir.path(), &more).unwrap();
        assert!(second.generated);
        assert_ne!(first.fingerprint, second.fingerprint);
    }

    #[test]
    fn an_expiring_certificate_is_replaced() {
        let dir = TempDir::new();
        let files = CertFiles::new(dir.path().join(CERT_FILE), dir.path().join(KEY_FILE));
        // Valid now, but expiring within the renewal margin.
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names()).unwrap();
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        params.not_before = epoch + (since_epoch() - CLOCK_SKEW);
        params.not_after = epoch + (since_epoch() + RENEW_BEFORE / 2);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let old = CertFingerprint::of(cert.der());
        let made = ensure_self_signed(dir.path(), &names()).unwrap();
        assert!(made.generated);
        assert_ne!(made.fingerprint, old);
    }

    #[test]
    fn a_broken_file_is_replaced() {
        let dir = TempDir::new();
        let first = ensure_self_signed(dir.path(), &names()).unwrap();
        std::fs::write(&first.files.key, "garbage").unwrap();
        let second = ensure_self_signed(dir.path(), &names()).unwrap();
        assert!(second.generated);
    }
}
