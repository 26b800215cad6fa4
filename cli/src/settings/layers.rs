//! The layering of `hongyan serve` settings with `figment`: defaults, then the TOML file, then
//! environment variables, then flags, each overriding the one before.
//!
//! Two figments are extracted from the same layers: the server library's [`Config`] from its
//! keys, and [`ProcessSettings`] from every other key, so that each struct keeps refusing keys
//! it does not know. Environment variables and flags are layered as their text, and
//! converted to numbers or switches only where the setting is one (`extract_lossy`): a token
//! like `123456` stays a string. (figment's own `Env` provider guesses the type from the text,
//! and would turn that token into a number.) The cli reads each setting's variable itself,
//! through clap, which also shows it in `--help`.

use std::fmt::Write as _;

use figment::error::Kind;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};
use hongyan_server::Config;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::catalog::{catalog, field_names};
use super::{ProcessSettings, ServeArgs, ServeSettings, serve_defaults};

/// Where a layer of given settings came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Flags on the command line.
    Flags,
    /// Environment variables.
    Env,
}

impl Origin {
    /// The name of the layer, by which errors are told apart.
    fn name(self) -> &'static str {
        match self {
            Self::Flags => "command-line flags",
            Self::Env => "environment variables",
        }
    }
}

/// Settings given as flags or environment variables, by key, as text (switches as booleans).
#[derive(Debug, Clone)]
pub struct Given {
    pub(super) origin: Origin,
    pub(super) values: Dict,
}

impl Given {
    /// Nothing given yet, from `origin`.
    pub(super) fn new(origin: Origin) -> Self {
        Self {
            origin,
            values: Dict::new(),
        }
    }
}

impl Provider for Given {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.origin.name())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

/// A provider's values under some keys only.
struct Only<P> {
    provider: P,
    keep: fn(&str) -> bool,
}

impl<P: Provider> Provider for Only<P> {
    fn metadata(&self) -> Metadata {
        self.provider.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut data = self.provider.data()?;
        for dict in data.values_mut() {
            dict.retain(|key, _| (self.keep)(key));
        }
        Ok(data)
    }
}

/// Why the settings could not be loaded: every bad value, each with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct SettingsError {
    /// One line per problem, e.g. "invalid `max_connections` from env
    /// HONGYAN_MAX_CONNECTIONS: invalid type: found string \"many\", expected usize".
    pub problems: Vec<String>,
}

impl ServeArgs {
    /// The settings: defaults, overridden by the `--config` file, overridden by environment
    /// variables, overridden by flags.
    pub fn load(&self) -> Result<ServeSettings, SettingsError> {
        let server = self.extract(serve_defaults(), is_server_key);
        let process = self.extract(ProcessSettings::default(), |key| !is_server_key(key));
        match (server, process) {
            (Ok(server), Ok(process)) => {
                Ok(ServeSettings { server, process }.with_web_dir_fallback())
            }
            (server, process) => {
                // Both figments read the file, so a file that cannot be read is reported once.
                let mut problems: Vec<String> = Vec::new();
                let errors = server.err().into_iter().chain(process.err());
                for problem in errors.flat_map(|e| e.problems) {
                    if !problems.contains(&problem) {
                        problems.push(problem);
                    }
                }
                Err(SettingsError { problems })
            }
        }
    }

    /// `T` from `defaults` and the layers' values under the keys `keep` keeps.
    fn extract<T: Serialize + DeserializeOwned>(
        &self,
        defaults: T,
        keep: fn(&str) -> bool,
    ) -> Result<T, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(defaults));
        if let Some(path) = &self.config {
            figment = figment.merge(Only {
                provider: Toml::file_exact(path),
                keep,
            });
        }
        figment
            .merge(Only {
                provider: self.env.clone(),
                keep,
            })
            .merge(Only {
                provider: self.flags.clone(),
                keep,
            })
            .extract_lossy()
            .map_err(|error| SettingsError {
                problems: error.into_iter().map(|e| explain(&e)).collect(),
            })
    }
}

fn is_server_key(key: &str) -> bool {
    field_names::<Config>().contains(&key)
}

/// One problem, named by its key and where the value came from.
fn explain(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let setting = catalog().iter().find(|s| s.key == key);
    let from = match &error.metadata {
        Some(md) if md.name == Origin::Flags.name() => {
            setting.map_or_else(|| "a flag".to_owned(), |s| format!("flag {}", s.flag()))
        }
        Some(md) if md.name == Origin::Env.name() => setting.map_or_else(
            || "the environment".to_owned(),
            |s| format!("env {}", s.env()),
        ),
        Some(Metadata {
            source: Some(Source::File(path)),
            ..
        }) => format!("config file {}", path.display()),
        Some(md) => md.name.to_string(),
        None => "the settings".to_owned(),
    };
    let mut line = String::new();
    let _ = match &error.kind {
        Kind::UnknownField(found, _) => write!(
            line,
            "unknown key `{found}` in {from} (the keys are the settings in `hongyan serve --help`, \
             with `_`)"
        ),
        kind if key.is_empty() => write!(line, "invalid {from}: {kind}"),
        kind => write!(line, "invalid `{key}` from {from}: {kind}"),
    };
    line
}

/// The settings a test or a caller gives directly: `flags` as on the command line, `env` as
/// environment variables.
#[cfg(test)]
pub(super) fn given(flags: &[(&str, &str)], env: &[(&str, &str)]) -> ServeArgs {
    let layer = |origin, pairs: &[(&str, &str)]| Given {
        origin,
        values: pairs
            .iter()
            .map(|&(k, v)| (k.to_owned(), figment::value::Value::from(v.to_owned())))
            .collect(),
    };
    ServeArgs {
        config: None,
        flags: layer(Origin::Flags, flags),
        env: layer(Origin::Env, env),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn flags_override_the_environment_which_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("hongyan-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("hongyan.toml");
        std::fs::write(
            &file,
            "max_connections = 1\nmax_udp_sessions = 2\noutbox_capacity = 3\nworkers = 4\n",
        )
        .unwrap();
        let mut args = given(
            &[("max_connections", "10")],
            &[("max_connections", "20"), ("max_udp_sessions", "30")],
        );
        args.config = Some(file);
        let settings = args.load().unwrap();
        assert_eq!(settings.server.max_connections, Some(10));
        assert_eq!(settings.server.max_udp_sessions, 30);
        assert_eq!(settings.server.outbox_capacity, 3);
        assert_eq!(settings.process.workers.map(|n| n.get()), Some(4));
        assert_eq!(settings.server.tcp_addr, Config::default().tcp_addr);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_becomes_a_number_only_where_the_setting_is_one() {
        let settings = given(
            &[("slow_consumer_secs", "7"), ("admin_token", "123456")],
            &[
                ("webhook_timeout_ms", "250"),
                ("webhook_url", "http://127.0.0.1:9"),
            ],
        )
        .load()
        .unwrap();
        assert_eq!(settings.server.slow_consumer_stall, Duration::from_secs(7));
        assert_eq!(
            settings.server.admin_token.as_ref().map(|t| t.expose()),
            Some("123456")
        );
        let webhook = settings.server.webhook().unwrap();
        assert_eq!(webhook.timeout, Duration::from_millis(250));
    }

    #[test]
    fn a_bad_value_is_reported_with_its_key_and_where_it_came_from() {
        let error = |flags: &[(&str, &str)], env: &[(&str, &str)]| {
            given(flags, env).load().unwrap_err().to_string()
        };
        let e = error(&[], &[("max_connections", "many")]);
        assert!(
            e.starts_with("invalid `max_connections` from env HONGYAN_MAX_CONNECTIONS: "),
            "{e}"
        );
        let e = error(&[("tcp_addr", "nonsense")], &[]);
        assert!(
            e.starts_with("invalid `tcp_addr` from flag --tcp-addr: ")
                && e.contains("not an address"),
            "{e}"
        );
        let e = error(&[("workers", "0")], &[]);
        assert_eq!(e, "invalid `workers` from flag --workers: must be positive");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("hongyan-layers-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let load = |text: &str| {
            let file = dir.join("hongyan.toml");
            std::fs::write(&file, text).unwrap();
            let mut args = given(&[], &[]);
            args.config = Some(file.clone());
            (
                args.load().unwrap_err().to_string(),
                file.display().to_string(),
            )
        };
        let (e, file) = load("udp_sense_mode = \"MODE_5S\"\n");
        assert!(
            e.starts_with(&format!(
                "invalid `udp_sense_mode` from config file {file}: "
            )) && e.contains("does not exist for UDP"),
            "{e}"
        );
        let (e, file) = load("tcp_adr = \"off\"\nmax_connections = -1\n");
        let problems: Vec<&str> = e.lines().collect();
        assert_eq!(problems.len(), 2, "both problems are reported: {e}");
        assert!(
            problems[0].starts_with(&format!(
                "invalid `max_connections` from config file {file}"
            )),
            "{e}"
        );
        assert!(
            problems[1].starts_with(&format!("unknown key `tcp_adr` in config file {file}")),
            "{e}"
        );
        let (e, _) = load("tcp_addr = \n");
        assert!(e.contains(&file), "a TOML syntax error names the file: {e}");
        assert_eq!(e.matches(&file).count(), 1, "and is reported once: {e}");
        std::fs::remove_dir_all(&dir).unwrap();

        let mut args = given(&[], &[]);
        args.config = Some(dir.join("missing.toml"));
        let e = args.load().unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
