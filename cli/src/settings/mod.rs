//! The settings of `hongyan serve`: the server library's [`Config`] and the process's own
//! [`ProcessSettings`], each setting defined once, as a field of one of the two.
//!
//! From those two definitions come the setting's TOML key (the field's serde name), its flag
//! (`--kebab-key`), its environment variable (`HONGYAN_UPPER_KEY`), its help text (the
//! field's doc comment) and its default (rendered from `Default`). Adding a setting is one
//! field with its default, and one row in README's configuration table (a test checks that
//! `--help`, the README and the TOML keys agree).
//!
//! - `catalog`: the list of settings, read from the structs' JSON schemas.
//! - `args`: [`ServeArgs`], the `serve` flags built from the catalog, and what was given.
//! - `layers`: the layering (defaults → TOML file → environment → flags) with `figment`,
//!   and errors that name where a bad value came from.

mod args;
mod catalog;
mod layers;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use hongyan_server::Config;
use hongyan_server::hongyan_store::StoreSpec;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

pub use args::ServeArgs;
pub use catalog::{Setting, catalog};
pub use layers::SettingsError;

/// Settings that are the `hongyan serve` process's, not the server library's: how many threads
/// it runs and where it keeps state. Written like [`Config`]'s: one field per setting, its doc
/// comment is the help text.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessSettings {
    /// Runtime worker threads. Fewer than the cores leaves them to other processes on the
    /// machine, and costs less CPU per message at moderate load (see docs/PERFORMANCE.md,
    /// "Worker threads"). [default: one per core]
    #[serde(deserialize_with = "positive")]
    #[schemars(with = "Option<usize>")]
    pub workers: Option<NonZeroUsize>,
    /// Directory for state kept between runs: the generated admin token (`admin-token`) and
    /// the SQLite message store (`hongyan.db`). [default: $XDG_STATE_HOME/hongyan,
    /// ~/.local/state/hongyan or ./.hongyan]
    pub state_dir: Option<PathBuf>,
    /// For development: turn TLS on with a self-signed certificate, made in the state dir
    /// (`tls/`) and reused while valid, whose fingerprint is printed at start. Clients do not
    /// trust it unless told to; not with tls_cert and tls_key.
    pub tls_self_signed: bool,
}

/// The server settings `hongyan serve` starts from: the library's defaults, except that
/// messages are kept in SQLite (`<state dir>/hongyan.db`), with no set-up.
pub fn serve_defaults() -> Config {
    Config {
        store: StoreSpec::default(),
        ..Config::default()
    }
}

/// Everything `hongyan serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// The server's.
    pub server: Config,
    /// The process's.
    pub process: ProcessSettings,
}

impl ServeSettings {
    /// Where state is kept: `--state-dir`, else `$XDG_STATE_HOME/hongyan`, else
    /// `$HOME/.local/state/hongyan`, else `./.hongyan`.
    pub fn state_dir(&self) -> PathBuf {
        let non_empty = |var| std::env::var_os(var).filter(|v| !v.is_empty());
        if let Some(dir) = &self.process.state_dir {
            dir.clone()
        } else if let Some(state) = non_empty("XDG_STATE_HOME") {
            PathBuf::from(state).join("hongyan")
        } else if let Some(home) = non_empty("HOME") {
            PathBuf::from(home).join(".local/state/hongyan")
        } else {
            PathBuf::from(".hongyan")
        }
    }

    /// The store setting with `sqlite` placed in the state directory (`hongyan.db`), which is
    /// created if needed; any other setting as given.
    pub fn resolved_store(&self) -> std::io::Result<StoreSpec> {
        match &self.server.store {
            StoreSpec::Sqlite(None) => {
                let dir = self.state_dir();
                std::fs::create_dir_all(&dir)?;
                Ok(StoreSpec::Sqlite(Some(dir.join("hongyan.db"))))
            }
            other => Ok(other.clone()),
        }
    }

    /// Serves the H5 client from `dist` when no directory is configured and `dist` exists, so
    /// `hongyan serve` in a built checkout serves the client.
    fn with_web_dir_fallback(mut self) -> Self {
        if self.server.web_dir.is_none() && Path::new("dist").is_dir() {
            self.server.web_dir = Some(PathBuf::from("dist"));
        }
        self
    }
}

/// A thread count that must be positive.
fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NonZeroUsize>, D::Error> {
    match Option::<usize>::deserialize(d)? {
        None => Ok(None),
        Some(n) => NonZeroUsize::new(n)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("must be positive")),
    }
}
