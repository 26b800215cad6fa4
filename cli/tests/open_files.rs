//! `hongyan serve` and the open-file limit: it raises its soft limit to the hard one, derives
//! the default `max_connections` from it (keeping descriptors back for everything else), logs
//! the effective limits, and honours an explicit `--max-connections` with a warning when the
//! file limit cannot back it.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Descriptors the server keeps back from connections (`RESERVED_FILES` in the server).
const RESERVED: u64 = 256;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `hongyan serve` with open-file limits `soft`/`hard` and `args`, and returns its log
/// lines up to the one that says `until` (failing after 20 s).
fn log_until(soft: u64, hard: u64, args: &str, until: &str) -> Vec<String> {
    // Each run gets its own state directory: the tests run in parallel, and two servers on
    // one SQLite file would find it locked.
    let state = tempfile::tempdir().unwrap();
    let script = format!(
        "ulimit -S -n {soft} && ulimit -H -n {hard} && exec \"$0\" serve \
         --tcp-addr 127.0.0.1:0 --udp-addr off --http-addr off {args}"
    );
    let child = Command::new("sh")
        .args(["-c", &script, env!("CARGO_BIN_EXE_hongyan")])
        .env("HONGYAN_STATE_DIR", state.path())
        .env("HONGYAN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Running(child);
    let stderr = server.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(until);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => panic!("no {until:?} in the log:\n{}", lines.join("\n")),
        }
    }
}

/// The value of `field=` in `line`.
fn field<'a>(line: &'a str, field: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {field}="))? + field.len() + 2;
    line[start..].split_whitespace().next()
}

#[test]
fn the_soft_limit_is_raised_and_the_default_connection_limit_follows_it() {
    let lines = log_until(600, 1200, "", "connection limits");
    let line = lines.last().unwrap();
    assert_eq!(
        field(line, "open_files"),
        Some("1200"),
        "raised to the hard limit: {line}"
    );
    assert_eq!(
        field(line, "max_connections"),
        Some((1200 - RESERVED).to_string().as_str()),
        "{line}"
    );
    assert_eq!(field(line, "derived"), Some("true"), "{line}");
    assert!(
        !lines.iter().any(|l| l.contains("exceeds")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn an_explicit_limit_the_file_limit_cannot_back_is_kept_with_a_warning() {
    let lines = log_until(
        1000,
        1000,
        "--max-connections 5000",
        "exceeds what the open-file limit allows",
    );
    let limits = lines
        .iter()
        .find(|l| l.contains("connection limits"))
        .expect("the limits are logged");
    assert_eq!(field(limits, "max_connections"), Some("5000"), "{limits}");
    assert_eq!(field(limits, "derived"), Some("false"), "{limits}");
    let warning = lines.last().unwrap();
    assert!(warning.contains("WARN"), "{warning}");
    assert_eq!(
        field(warning, "allowed"),
        Some((1000 - RESERVED).to_string().as_str()),
        "{warning}"
    );
}
