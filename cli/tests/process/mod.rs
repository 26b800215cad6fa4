//! `hongyan serve` as a process of its own, for the tests that kill, stop or restart it: started
//! on ephemeral loopback ports (read back from its log), its log kept, its HTTP API asked
//! with raw requests, killed on drop (its log printed if the test failed).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The longest any step may take.
pub const STEP: Duration = Duration::from_secs(60);

/// The log lines that give a listener's address, and the listener each names.
const LISTENING: [(&str, Listener); 3] = [
    ("tcp gateway listening", Listener::Tcp),
    ("udp gateway listening", Listener::Udp),
    ("http listening", Listener::Http),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Listener {
    Tcp,
    Udp,
    Http,
}

/// How a server is started.
pub struct Options<'a> {
    /// Its name in failure messages.
    pub name: &'a str,
    /// The arguments after `serve` and the ephemeral addresses.
    pub args: &'a [&'a str],
    /// Its state directory.
    pub state_dir: &'a Path,
    /// Its admin token, which [`Served::http`] sends.
    pub token: &'static str,
    /// Its `HONGYAN_LOG` filter.
    pub log: &'a str,
    /// Whether it listens on UDP too.
    pub udp: bool,
}

/// A running `hongyan serve`.
pub struct Served {
    name: String,
    child: Child,
    token: &'static str,
    /// Its TCP gateway.
    pub tcp: SocketAddr,
    /// Its UDP gateway, if it has one.
    pub udp: Option<SocketAddr>,
    /// Its HTTP listener (API, WebSocket).
    pub http: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Starts the server and waits until it listens.
    pub fn start(options: &Options<'_>) -> Self {
        let udp = if options.udp { "127.0.0.1:0" } else { "off" };
        let mut child = Command::new(env!("CARGO_BIN_EXE_hongyan"))
            .arg("serve")
            .args(["--tcp-addr", "127.0.0.1:0", "--udp-addr", udp])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(options.args)
            .env("HONGYAN_STATE_DIR", options.state_dir)
            .env("HONGYAN_ADMIN_TOKEN", options.token)
            .env("HONGYAN_LOG", options.log)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (addresses_tx, addresses) = std::sync::mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines() {
                let line = line.unwrap_or_default();
                for (what, listener) in LISTENING {
                    if let Some(addr) = line
                        .contains(what)
                        .then(|| line.split("addr=Some(").nth(1))
                        .flatten()
                        .and_then(|rest| rest.split(')').next())
                    {
                        let _ = addresses_tx.send((listener, addr.parse::<SocketAddr>().unwrap()));
                    }
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let expected = if options.udp { 3 } else { 2 };
        let mut found = HashMap::new();
        while found.len() < expected {
            let (listener, addr) = addresses
                .recv_timeout(STEP)
                .unwrap_or_else(|_| panic!("{} starts:\n{}", options.name, log.lock().unwrap()));
            found.insert(listener, addr);
        }
        Self {
            name: options.name.to_owned(),
            child,
            token: options.token,
            tcp: found[&Listener::Tcp],
            udp: found.get(&Listener::Udp).copied(),
            http: found[&Listener::Http],
            log,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `method path` with the admin token and a JSON `body`: the status code and the body.
    pub fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        http_at(self.http, self.token, method, path, body)
    }

    /// `GET path` with the admin token: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.http("GET", path, "")
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log's lines that contain `text`.
    pub fn log_lines(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .lines()
            .filter(|l| l.contains(text))
            .count()
    }

    /// Waits until the log has a line that contains `text` (it is read by another thread), and
    /// returns how many it has.
    pub async fn wait_log(&self, text: &str) -> usize {
        let deadline = Instant::now() + STEP;
        loop {
            let lines = self.log_lines(text);
            if lines > 0 {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} in {}'s log:\n{}",
                self.name,
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends it `signal` (`-STOP`, `-CONT`, …).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Kills the process with SIGKILL, as a crash or the OOM killer would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {}'s log:\n{}", self.name, self.log.lock().unwrap());
        }
        // A stopped process must run again to die.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `method path` on the HTTP listener at `addr`, with `token` and a JSON `body`: the status
/// code and the body.
pub fn http_at(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}
