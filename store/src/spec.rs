//! [`StoreSpec`]: the one setting that chooses a backend, and opening it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::config::SslMode;

use crate::{MemoryStore, MessageStore, PostgresStore, SqliteStore, StoreConfig, StoreError};

/// Which store to use, as the server's setting spells it:
///
/// | setting | meaning |
/// |---|---|
/// | `sqlite` (default) | SQLite at [`StoreConfig::default_sqlite_path`] (`<state dir>/hongyan.db`) |
/// | `sqlite:PATH` | SQLite at `PATH` |
/// | `postgres://…`, `postgresql://…` | PostgreSQL at that URL (libpq syntax) |
/// | `memory` | in memory, lost on exit (tests, benchmarks) |
/// | `off` | no store: messages to offline users go to the hooks, as before stores existed |
///
/// `Display` writes the setting back, with a PostgreSQL password replaced by `***` so it can
/// be logged.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// No store: the caller keeps its behaviour without one.
    Off,
    /// [`MemoryStore`].
    Memory,
    /// [`SqliteStore`] at this path, or at the default path when `None`.
    Sqlite(Option<PathBuf>),
    /// [`PostgresStore`] at this URL.
    Postgres(String),
}

impl Default for StoreSpec {
    /// `sqlite` at the default path: durable with zero set-up.
    fn default() -> Self {
        StoreSpec::Sqlite(None)
    }
}

impl StoreSpec {
    /// Opens the store this setting names; `Ok(None)` for [`StoreSpec::Off`].
    ///
    /// # Errors
    /// Whatever opening the backend fails with (see [`SqliteStore::open`],
    /// [`PostgresStore::open`]).
    pub async fn open(
        &self,
        config: &StoreConfig,
    ) -> Result<Option<Arc<dyn MessageStore>>, StoreError> {
        Ok(Some(match self {
            StoreSpec::Off => return Ok(None),
            StoreSpec::Memory => Arc::new(MemoryStore::new(config.limits)),
            StoreSpec::Sqlite(path) => {
                let path = path.as_ref().unwrap_or(&config.default_sqlite_path);
                Arc::new(SqliteStore::open(path.clone(), config).await?)
            }
            StoreSpec::Postgres(url) => Arc::new(PostgresStore::open(url, config).await?),
        }))
    }
}

impl FromStr for StoreSpec {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| StoreError::InvalidSpec {
            given: redact(s),
            reason: reason.to_owned(),
        };
        match s.trim() {
            "off" => Ok(StoreSpec::Off),
            "memory" => Ok(StoreSpec::Memory),
            "sqlite" => Ok(StoreSpec::Sqlite(None)),
            url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                parse_postgres_url(url)?;
                Ok(StoreSpec::Postgres(url.to_owned()))
            }
            other => match other.strip_prefix("sqlite:") {
                Some("") => Err(invalid("`sqlite:` needs a path after the colon")),
                Some(path) => Ok(StoreSpec::Sqlite(Some(PathBuf::from(path)))),
                None => Err(invalid(
                    "expected `sqlite`, `sqlite:PATH`, `postgres://…`, `memory` or `off`",
                )),
            },
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Off => f.write_str("off"),
            StoreSpec::Memory => f.write_str("memory"),
            StoreSpec::Sqlite(None) => f.write_str("sqlite"),
            StoreSpec::Sqlite(Some(path)) => write!(f, "sqlite:{}", path.display()),
            StoreSpec::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreSpec({self})")
    }
}

/// Parses a PostgreSQL URL, refusing what this store cannot honour.
pub(crate) fn parse_postgres_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let invalid = |reason: String| StoreError::InvalidSpec {
        given: redact(url),
        reason,
    };
    let config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| invalid(crate::postgres::describe_error(&e)))?;
    if config.get_ssl_mode() == SslMode::Require {
        return Err(invalid(
            "TLS to PostgreSQL is not supported yet: use sslmode=disable (or prefer) over a \
             private network or a local socket"
                .to_owned(),
        ));
    }
    Ok(config)
}

/// `url` with any password (in the user info or a `password=` parameter) replaced by `***`,
/// for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut redacted = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
                    None => base.to_owned(),
                },
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<&str> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some(("password", _)) => "password=***",
                _ => parameter,
            })
            .collect();
        redacted.push('?');
        redacted.push_str(&parameters.join("&"));
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_reads_back_as_written() {
        for setting in [
            "off",
            "memory",
            "sqlite",
            "sqlite:/var/lib/hongyan/messages.db",
            "postgres://hongyan@db.internal:5432/hongyan",
            "postgresql://localhost/hongyan?connect_timeout=3",
        ] {
            let spec: StoreSpec = setting.parse().unwrap();
            assert_eq!(spec.to_string(), setting);
        }
    }

    #[test]
    fn settings_name_their_backend() {
        assert_eq!("off".parse::<StoreSpec>().unwrap(), StoreSpec::Off);
        assert_eq!(StoreSpec::default(), StoreSpec::Sqlite(None));
        assert_eq!(
            "sqlite:relative.db".parse::<StoreSpec>().unwrap(),
            StoreSpec::Sqlite(Some(PathBuf::from("relative.db")))
        );
    }

    #[test]
    fn a_password_never_reaches_display_or_errors() {
        let spec: StoreSpec = "postgres://app:s3cret@db:5432/im".parse().unwrap();
        assert_eq!(spec.to_string(), "postgres://app:***@db:5432/im");
        assert!(!format!("{spec:?}").contains("s3cret"));
        let error = "postgres://app:s3cret@db:5432/im?sslmode=require"
            .parse::<StoreSpec>()
            .unwrap_err();
        assert!(!error.to_string().contains("s3cret"), "{error}");
        let spec: StoreSpec = "postgresql://app@db/im?password=s3cret&connect_timeout=3"
            .parse()
            .unwrap();
        assert_eq!(
            spec.to_string(),
            "postgresql://app@db/im?password=***&connect_timeout=3"
        );
    }

    #[test]
    fn unknown_settings_are_refused_with_the_choices() {
        for bad in [
            "",
            "mysql://x",
            "sqlite:",
            "SQLITE",
            "postgres://host:notaport/db",
        ] {
            let error = bad.parse::<StoreSpec>().unwrap_err();
            assert!(
                matches!(error, StoreError::InvalidSpec { .. }),
                "{bad}: {error}"
            );
        }
        let error = "mysql://x".parse::<StoreSpec>().unwrap_err().to_string();
        assert!(error.contains("sqlite:PATH"), "{error}");
    }

    #[test]
    fn tls_is_refused_until_it_is_supported() {
        let error = "postgres://localhost/im?sslmode=require"
            .parse::<StoreSpec>()
            .unwrap_err();
        assert!(error.to_string().contains("TLS"), "{error}");
    }
}
