//! `hongyan serve --help`, README's configuration table and the TOML keys agree: every setting
//! appears in all three under the same flag, environment variable and key, with the same
//! default; the README lists nothing else.

use std::process::Command;

use clap::Parser;
use hongyan_cli::settings::{Setting, catalog};
use hongyan_cli::{Cli, Command as Subcommand};

/// The rows of README's table that are not settings: the file the settings are read from, and
/// the log filter.
const NOT_SETTINGS: [&str; 2] = ["HONGYAN_CONFIG", "HONGYAN_LOG"];

fn help() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// `--help`'s text for the flag `long`: its line and the lines after it, up to the next flag.
fn help_block<'a>(help: &'a str, long: &str) -> Option<Vec<&'a str>> {
    let mut lines = help.lines().skip_while(|line| {
        let line = line.trim_start();
        line != long && !line.starts_with(&format!("{long} "))
    });
    let first = lines.next()?;
    let rest = lines.take_while(|line| !line.trim_start().starts_with('-'));
    Some(std::iter::once(first).chain(rest).collect())
}

#[test]
fn help_shows_every_setting_with_its_flag_variable_and_default() {
    let help = help();
    for s in catalog() {
        let block = help_block(&help, &s.flag())
            .unwrap_or_else(|| panic!("{} is not in --help:\n{help}", s.flag()));
        let expected = match &s.value_name {
            Some(name) => format!("{} <{name}>", s.flag()),
            None => s.flag(),
        };
        assert_eq!(block[0].trim(), expected);
        let text = block.join(" ");
        assert!(
            text.contains(&format!("{} [default: {}]", s.help, s.default)),
            "{}: {text}",
            s.key
        );
        assert!(text.contains(&format!("[env: {}", s.env())), "{text}");
    }
    let flags = help
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("--"))
        .map(|line| line.split_whitespace().next().unwrap_or_default())
        .filter(|&long| long != "config" && long != "help");
    for long in flags {
        assert!(
            catalog().iter().any(|s| s.long() == long),
            "--{long} is in --help but is no setting"
        );
    }
}

/// One row of README's configuration table.
#[derive(Debug)]
struct Row {
    flag: String,
    env: String,
    key: String,
    default: String,
}

fn readme_rows() -> Vec<Row> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md at the workspace root");
    let table = readme
        .split("| flag | environment | TOML key | default |")
        .nth(1)
        .expect("README has the configuration table");
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<String> = line
                .replace("\\|", "¦")
                .split('|')
                .map(|cell| cell.trim().replace(['`'], "").replace('¦', "|"))
                .collect();
            Row {
                flag: cells[1].clone(),
                env: cells[2].clone(),
                key: cells[3].clone(),
                default: cells[4].clone(),
            }
        })
        .collect()
}

/// Whether README's default cell says `default` (then maybe explains it).
fn says(cell: &str, default: &str) -> bool {
    let default = default.replace('`', "");
    cell.strip_prefix(&default)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', ':', ',', ';']))
}

#[test]
fn readme_lists_every_setting_as_help_does_and_nothing_else() {
    let rows = readme_rows();
    let settings: Vec<&Row> = rows
        .iter()
        .filter(|row| !NOT_SETTINGS.contains(&row.env.as_str()))
        .collect();
    for row in &rows {
        assert!(
            NOT_SETTINGS.contains(&row.env.as_str()) || catalog().iter().any(|s| s.key == row.key),
            "README lists {row:?}, which is no setting"
        );
    }
    assert_eq!(
        settings
            .iter()
            .map(|row| row.key.as_str())
            .collect::<Vec<_>>(),
        catalog().iter().map(|s| s.key).collect::<Vec<_>>(),
        "README lists the settings in --help's order"
    );
    for (row, s) in settings.into_iter().zip(catalog()) {
        let mut flag = row.flag.split_whitespace();
        assert_eq!(flag.next(), Some(s.flag().as_str()), "{row:?}");
        match &s.value_name {
            Some(name) => assert!(
                flag.next().is_some_and(|v| v.starts_with(name.as_str())),
                "{row:?}"
            ),
            None => assert_eq!(flag.next(), None, "{row:?}: a switch takes no value"),
        }
        assert_eq!(row.env, s.env(), "{row:?}");
        assert!(
            says(&row.default, &s.default),
            "README's default for {} is {:?}; --help says {:?}",
            s.key,
            row.default,
            s.default
        );
    }
}

fn load_toml(text: &str) -> Result<hongyan_cli::settings::ServeSettings, String> {
    let dir = std::env::temp_dir().join(format!("hongyan-settings-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{:x}.toml", text.len() ^ text.as_ptr() as usize));
    std::fs::write(&file, text).unwrap();
    let cli = Cli::try_parse_from(["hongyan", "serve", "--config", file.to_str().unwrap()])
        .expect("--config FILE parses");
    let Subcommand::Serve(args) = cli.command else {
        panic!("serve parses as serve")
    };
    let loaded = args.load().map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&file);
    loaded
}

/// A TOML line setting `s` to its default.
fn default_line(s: &Setting) -> String {
    match s.value_name {
        None => format!("{} = {}", s.key, s.default),
        Some(_) if s.default.parse::<u64>().is_ok() => format!("{} = {}", s.key, s.default),
        Some(_) => format!("{} = \"{}\"", s.key, s.default),
    }
}

#[test]
fn every_setting_is_a_toml_key_and_its_default_reads_back_as_the_default() {
    let valued: Vec<&Setting> = catalog().iter().filter(|s| s.valued).collect();
    let file: Vec<String> = valued.iter().map(|s| default_line(s)).collect();
    let loaded = load_toml(&file.join("\n")).unwrap_or_else(|e| panic!("{e}\n{file:#?}"));
    let server = serde_json::to_value(&loaded.server).unwrap();
    let process = serde_json::to_value(&loaded.process).unwrap();
    for s in &valued {
        let value = server
            .get(s.key)
            .or_else(|| process.get(s.key))
            .unwrap_or(&serde_json::Value::Null);
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_owned);
        assert_eq!(text, s.default, "{}", s.key);
    }
    // A setting whose default is none is still a key: a bad value for it is refused as a bad
    // value of that key, not as an unknown key.
    for s in catalog().iter().filter(|s| !s.valued) {
        let error = load_toml(&format!("{} = 0", s.key)).expect_err(s.key);
        assert!(
            error.starts_with(&format!("invalid `{}` from config file ", s.key)),
            "{error}"
        );
    }
}
