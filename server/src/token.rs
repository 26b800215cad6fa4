//! Bearer tokens: the admin token that guards `/api`, the optional one for `/metrics`, and the
//! one hongyan presents to webhooks. A token never appears in logs or `Debug` output.
//!
//! `hongyan serve` without a configured admin token generates one on first start and keeps it
//! in the state directory ([`BearerToken::load_or_create`]), so a fresh install is never open.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Random bytes in a generated token (256 bits, 64 hex characters).
const GENERATED_BYTES: usize = 32;

/// Why a token could not be used, read or stored.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token is empty or has characters an HTTP header cannot carry.
    #[error("a token must be non-empty visible ASCII without spaces")]
    Malformed,
    /// The token file could not be read or written.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The operating system's random source failed.
    #[error("cannot generate a token: {0}")]
    Random(getrandom::Error),
}

/// A secret presented as `Authorization: Bearer <token>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

/// Where [`BearerToken::load_or_create`] got the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Generated now and written to this file.
    Created(PathBuf),
    /// Read from this file, written by an earlier start.
    Loaded(PathBuf),
}

impl BearerToken {
    /// Checks that `token` can travel in an HTTP header: visible ASCII, no spaces.
    pub fn new(token: impl Into<String>) -> Result<Self, TokenError> {
        let token = token.into();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Malformed);
        }
        Ok(Self(token))
    }

    /// 256 random bits from the operating system, as 64 lowercase hex characters.
    pub fn generate() -> Result<Self, TokenError> {
        let mut bytes = [0u8; GENERATED_BYTES];
        getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
        let hex = bytes.iter().fold(String::new(), |mut s, b| {
            use fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        });
        Ok(Self(hex))
    }

    /// Compares `presented` with this token in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// The token itself, to print once or to send; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the token kept in `file`, or generates one and writes it there (owner-only
    /// permissions, parent directories created), so a restart reuses it.
    pub fn load_or_create(file: &Path) -> Result<(Self, TokenOrigin), TokenError> {
        let io = |source| TokenError::Io {
            path: file.to_owned(),
            source,
        };
        match std::fs::read_to_string(file) {
            Ok(text) => {
                warn_if_readable_by_others(file);
                let token = Self::new(text.trim())?;
                return Ok((token, TokenOrigin::Loaded(file.to_owned())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io)?;
        }
        let token = Self::generate()?;
        // Written in full under a private name, then linked into place: the link fails if
        // another server starting at the same moment got there first, and that server's file
        // is then already complete, so it is read instead.
        let partial = file.with_extension(format!("partial-{}", &token.0[..16]));
        let written = (|| {
            let mut out = create_private_file(&partial)?;
            writeln!(out, "{}", token.0)?;
            out.sync_all()?;
            std::fs::hard_link(&partial, file)
        })();
        let _ = std::fs::remove_file(&partial);
        match written {
            Ok(()) => Ok((token, TokenOrigin::Created(file.to_owned()))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(file).map_err(io)?;
                Ok((
                    Self::new(text.trim())?,
                    TokenOrigin::Loaded(file.to_owned()),
                ))
            }
            Err(e) => Err(io(e)),
        }
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl std::str::FromStr for BearerToken {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s.trim())
    }
}

impl<'de> serde::Deserialize<'de> for BearerToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Creates `file` readable and writable by its owner only, replacing a leftover from a crash.
fn create_private_file(file: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(file)
}

fn warn_if_readable_by_others(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %file.display(),
                "the admin token file is readable by other users; run chmod 600 on it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_matches_itself_and_nothing_else() {
        let token = BearerToken::new("s3cret").unwrap();
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches("s3cret "));
        assert!(!token.matches(""));
    }

    #[test]
    fn tokens_that_a_header_cannot_carry_are_refused() {
        assert!(BearerToken::new("").is_err());
        assert!(BearerToken::new("two words").is_err());
        assert!(BearerToken::new("naïve").is_err());
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let token = BearerToken::new("s3cret").unwrap();
        assert!(!format!("{token:?}").contains("s3cret"));
    }

    #[test]
    fn generated_tokens_are_long_and_distinct() {
        let a = BearerToken::generate().unwrap();
        let b = BearerToken::generate().unwrap();
        assert_eq!(a.expose().len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn a_created_token_is_private_and_loaded_again_on_the_next_start() {
        let dir = std::env::temp_dir().join(format!("hongyan-token-{}", std::process::id()));
        let file = dir.join("nested/admin-token");
        let _ = std::fs::remove_dir_all(&dir);

        let (created, origin) = BearerToken::load_or_create(&file).unwrap();
        assert_eq!(origin, TokenOrigin::Created(file.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (loaded, origin) = BearerToken::load_or_create(&file).unwrap();
        assert_eq!(origin, TokenOrigin::Loaded(file.clone()));
        assert_eq!(loaded, created);
        assert_eq!(
            std::fs::read_dir(file.parent().unwrap()).unwrap().count(),
            1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn servers_starting_at_once_end_up_with_one_token() {
        let dir = std::env::temp_dir().join(format!("hongyan-race-{}", std::process::id()));
        let file = dir.join("admin-token");
        let _ = std::fs::remove_dir_all(&dir);
        let tokens: Vec<BearerToken> = std::thread::scope(|s| {
            let starts: Vec<_> = (0..8)
                .map(|_| s.spawn(|| BearerToken::load_or_create(&file).unwrap().0))
                .collect();
            starts.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(tokens.iter().all(|t| *t == tokens[0]), "one token for all");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
