//! [`ServeArgs`]: the `hongyan serve` flags, one per setting of the catalog, each also read
//! from its environment variable; and what the command line and the environment gave.

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use figment::value::Value;

use super::catalog::{Setting, catalog};
use super::layers::{Given, Origin};

/// The id and flag of the configuration file's path.
const CONFIG: &str = "config";

/// `hongyan serve` as invoked: the configuration file, and the settings given as flags or
/// environment variables, as text (they are typed when the layers are extracted, so that a
/// bad value is reported with where it came from).
#[derive(Debug, Clone)]
pub struct ServeArgs {
    /// The TOML file named by `--config` (`HONGYAN_CONFIG`).
    pub config: Option<PathBuf>,
    /// Settings given as flags.
    pub(super) flags: Given,
    /// Settings given as environment variables.
    pub(super) env: Given,
}

impl ServeArgs {
    /// The `serve` flags.
    fn args() -> impl Iterator<Item = Arg> {
        let config = Arg::new(CONFIG)
            .long(CONFIG)
            .env("HONGYAN_CONFIG")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help(
                "TOML configuration file; its keys are the flag names with `_`, e.g. \
                 `tcp_addr = \"0.0.0.0:8901\"`",
            );
        std::iter::once(config).chain(catalog().iter().map(arg))
    }
}

/// The flag of `setting`, which also reads its environment variable.
fn arg(setting: &Setting) -> Arg {
    let arg = Arg::new(setting.key)
        .long(setting.long())
        .env(setting.env())
        .hide_env_values(setting.secret)
        .help(format!("{} [default: {}]", setting.help, setting.default));
    match &setting.value_name {
        Some(name) => arg.value_name(name.clone()).action(ArgAction::Set),
        None => arg.action(ArgAction::SetTrue),
    }
}

impl clap::Args for ServeArgs {
    fn augment_args(command: Command) -> Command {
        command.args(Self::args())
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self {
            config: matches.get_one::<PathBuf>(CONFIG).cloned(),
            flags: Given::new(Origin::Flags),
            env: Given::new(Origin::Env),
        };
        for setting in catalog() {
            let given = match matches.value_source(setting.key) {
                Some(ValueSource::CommandLine) => &mut args.flags,
                Some(ValueSource::EnvVariable) => &mut args.env,
                _ => continue,
            };
            let value = match setting.value_name {
                Some(_) => matches
                    .get_one::<String>(setting.key)
                    .map(|text| Value::from(text.clone())),
                None => Some(Value::from(matches.get_flag(setting.key))),
            };
            if let Some(value) = value {
                given.values.insert(setting.key.to_owned(), value);
            }
        }
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}
