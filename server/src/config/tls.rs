//! Which listeners speak TLS, with which certificate: [`TlsMode`] per listener, and the
//! decision [`Config::tls`](super::Config::tls) makes from the settings: a [`TlsPlan`], or why
//! they do not fit together. A listener that was asked for TLS and cannot have it is an error, never a plain
//! listener in its place.

use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tls::CertFiles;

/// Whether a listener speaks TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS when a certificate is configured (`tls_cert` and `tls_key`), plain otherwise.
    #[default]
    Auto,
    /// TLS; the server refuses to start without a certificate.
    On,
    /// Plain, even with a certificate configured.
    Off,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::On => "on",
            Self::Off => "off",
        })
    }
}

/// What the TLS settings come to: the certificate, and which listeners present it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPlan {
    /// The certificate and key, when any listener speaks TLS.
    pub files: Option<CertFiles>,
    /// Whether the TCP gateway speaks TLS.
    pub tcp: bool,
    /// Whether the HTTP listener speaks TLS (HTTPS, WSS).
    pub http: bool,
}

/// Why the TLS settings do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsConfigError {
    /// Only one of `tls_cert` and `tls_key` is set.
    #[error("{set} is set but {missing} is not: TLS needs both the certificate and its key")]
    HalfACertificate {
        /// The one that is set.
        set: &'static str,
        /// The one that is not.
        missing: &'static str,
    },
    /// A listener must speak TLS, and there is no certificate.
    #[error(
        "{setting} = \"on\" needs a certificate: set tls_cert and tls_key (for development, \
         `hongyan serve --tls-self-signed` makes one)"
    )]
    NoCertificate {
        /// `tcp_tls` or `http_tls`.
        setting: &'static str,
    },
    /// `tcp_plain_addr` is set, but the TCP gateway does not speak TLS.
    #[error(
        "tcp_plain_addr is a plain port kept beside a TLS TCP gateway during a migration, but \
         the TCP gateway is {why}"
    )]
    PlainBesidePlain {
        /// What the TCP gateway is instead.
        why: &'static str,
    },
}

/// The settings [`Config::tls`](super::Config::tls) decides from.
#[derive(Debug, Clone, Copy)]
pub(super) struct TlsSettings<'a> {
    pub(super) cert: Option<&'a Path>,
    pub(super) key: Option<&'a Path>,
    pub(super) tcp: TlsMode,
    pub(super) http: TlsMode,
    /// Whether the TCP gateway listens at all (`tcp_addr` is not `off`).
    pub(super) tcp_listens: bool,
    /// Whether the HTTP listener listens at all.
    pub(super) http_listens: bool,
    /// Whether `tcp_plain_addr` is set.
    pub(super) plain_port: bool,
}

impl TlsSettings<'_> {
    /// Which listeners speak TLS, with which certificate, or why the settings do not fit.
    pub(super) fn plan(self) -> Result<TlsPlan, TlsConfigError> {
        let files = match (self.cert, self.key) {
            (Some(cert), Some(key)) => Some(CertFiles::new(cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(TlsConfigError::HalfACertificate {
                    set: "tls_cert",
                    missing: "tls_key",
                });
            }
            (None, Some(_)) => {
                return Err(TlsConfigError::HalfACertificate {
                    set: "tls_key",
                    missing: "tls_cert",
                });
            }
        };
        let on = |mode: TlsMode, setting| match mode {
            TlsMode::Off => Ok(false),
            TlsMode::Auto => Ok(files.is_some()),
            TlsMode::On if files.is_some() => Ok(true),
            TlsMode::On => Err(TlsConfigError::NoCertificate { setting }),
        };
        let tcp = on(self.tcp, "tcp_tls")? && self.tcp_listens;
        let http = on(self.http, "http_tls")? && self.http_listens;
        if self.plain_port && !tcp {
            let why = if !self.tcp_listens {
                "off (tcp_addr)"
            } else if files.is_none() {
                "plain: no certificate is configured (tls_cert, tls_key)"
            } else {
                "plain (tcp_tls = \"off\")"
            };
            return Err(TlsConfigError::PlainBesidePlain { why });
        }
        Ok(TlsPlan {
            files: files.filter(|_| tcp || http),
            tcp,
            http,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::config::Config;

    fn with_files() -> Config {
        Config {
            tls_cert: Some("cert.pem".into()),
            tls_key: Some("key.pem".into()),
            ..Config::default()
        }
    }

    #[test]
    fn no_certificate_means_plain_listeners() {
        let plan = Config::default().tls().unwrap();
        assert_eq!(
            plan,
            TlsPlan {
                files: None,
                tcp: false,
                http: false
            }
        );
    }

    #[test]
    fn a_certificate_turns_tls_on_for_both_listeners_unless_one_is_switched_off() {
        let plan = with_files().tls().unwrap();
        assert!(plan.tcp && plan.http);
        assert_eq!(plan.files, Some(CertFiles::new("cert.pem", "key.pem")));
        let plan = Config {
            tcp_tls: TlsMode::Off,
            ..with_files()
        }
        .tls()
        .unwrap();
        assert!(!plan.tcp && plan.http);
        let plan = Config {
            tcp_tls: TlsMode::Off,
            http_tls: TlsMode::Off,
            ..with_files()
        }
        .tls()
        .unwrap();
        assert_eq!(plan.files, None, "no listener needs the certificate");
    }

    #[test]
    fn tls_asked_for_without_a_certificate_is_an_error_not_a_plain_listener() {
        let error = Config {
            http_tls: TlsMode::On,
            ..Config::default()
        }
        .tls()
        .unwrap_err();
        assert_eq!(
            error,
            TlsConfigError::NoCertificate {
                setting: "http_tls"
            }
        );
        assert!(error.to_string().contains("tls_cert"), "{error}");
        let half = Config {
            tls_cert: Some("cert.pem".into()),
            ..Config::default()
        }
        .tls()
        .unwrap_err();
        assert!(half.to_string().contains("tls_key is not"), "{half}");
    }

    #[test]
    fn the_plain_migration_port_needs_a_tls_tcp_gateway() {
        let plain = Some(SocketAddr::from(([127, 0, 0, 1], 8902)));
        let plan = Config {
            tcp_plain_addr: plain,
            ..with_files()
        }
        .tls()
        .unwrap();
        assert!(plan.tcp);
        for config in [
            Config {
                tcp_plain_addr: plain,
                ..Config::default()
            },
            Config {
                tcp_plain_addr: plain,
                tcp_tls: TlsMode::Off,
                ..with_files()
            },
        ] {
            let error = config.tls().unwrap_err();
            assert!(
                matches!(error, TlsConfigError::PlainBesidePlain { .. }),
                "{error}"
            );
        }
    }

    #[test]
    fn modes_are_written_in_lower_case() {
        for mode in [TlsMode::Auto, TlsMode::On, TlsMode::Off] {
            let toml = format!("tcp_tls = \"{mode}\"");
            let config: Config = toml::from_str(&toml).unwrap();
            assert_eq!(config.tcp_tls, mode);
        }
        assert!(toml::from_str::<Config>("http_tls = \"yes\"").is_err());
    }
}
