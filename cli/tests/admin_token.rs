//! The admin token as `hongyan serve` handles it: generated on a fresh install, printed once,
//! kept owner-only in the state directory and reused on restart; a configured token is used as
//! given; neither ever appears in the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hongyan-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `hongyan serve` with only HTTP on (an ephemeral port, read back from its log), killed on
/// drop.
struct Serve {
    child: Child,
    http: SocketAddr,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Serve {
    fn start(state_dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hongyan"))
            .args(["serve", "--tcp-addr", "off", "--udp-addr", "off"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .env("HONGYAN_STATE_DIR", state_dir)
            .env("HONGYAN_LOG", "debug")
            .env_remove("HONGYAN_ADMIN_TOKEN")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (address_tx, address) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = std::thread::spawn(move || {
            let mut log = String::new();
            for line in stderr.lines() {
                let line = line.unwrap_or_default();
                if let Some(addr) = line
                    .contains("http listening")
                    .then(|| line.split("addr=Some(").nth(1))
                    .flatten()
                    .and_then(|rest| rest.split(')').next())
                {
                    let _ = address_tx.send(addr.parse::<SocketAddr>().unwrap());
                }
                log.push_str(&line);
                log.push('\n');
            }
            log
        });
        let http = address
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its HTTP address");
        Self {
            child,
            http,
            log: Some(log),
        }
    }

    /// The status line of `GET /api/stats` with `token`.
    fn stats_status(&self, token: &str) -> String {
        let mut s = TcpStream::connect(self.http).unwrap();
        write!(
            s,
            "GET /api/stats HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply.lines().next().unwrap_or_default().to_owned()
    }

    /// Stops the server and returns everything it wrote to stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log.take().unwrap().join().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_fresh_install_generates_a_private_token_prints_it_once_and_reuses_it() {
    let state = temp_dir("fresh-token");
    let file = state.join("admin-token");

    let first = Serve::start(&state, &[]);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64, "{token:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is owner-only");
    }
    assert!(first.stats_status(&token).contains(" 200 "));
    assert!(first.stats_status("guess").contains(" 401 "));
    let log = first.stop();
    assert_eq!(
        log.matches(&token).count(),
        1,
        "printed exactly once: {log}"
    );
    assert!(
        log.contains(&file.display().to_string()),
        "says where it is kept"
    );

    let second = Serve::start(&state, &[]);
    assert!(
        second.stats_status(&token).contains(" 200 "),
        "the same token works after a restart"
    );
    let log = second.stop();
    assert!(!log.contains(&token), "not printed again: {log}");
    assert!(log.contains("admin token for /api loaded"), "{log}");
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn a_configured_token_is_used_as_given_and_never_logged() {
    let state = temp_dir("configured-token");
    let serve = Serve::start(&state, &["--admin-token", "configured-secret-token"]);
    assert!(
        serve
            .stats_status("configured-secret-token")
            .contains(" 200 ")
    );
    assert!(
        serve
            .stats_status("configured-secret-toke")
            .contains(" 401 ")
    );
    let log = serve.stop();
    assert!(!log.contains("configured-secret-token"), "{log}");
    assert!(
        !state.join("admin-token").exists(),
        "nothing is generated when a token is configured"
    );
    std::fs::remove_dir_all(&state).unwrap();
}

#[test]
fn a_bad_webhook_url_is_explained_at_start() {
    let state = temp_dir("bad-webhook");
    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--http-addr", "off", "--tcp-addr", "off"])
        .args(["--udp-addr", "off", "--webhook-url", "backend:8080"])
        .env("HONGYAN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http:// or https://") || err.contains("not a URL"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--http-addr", "off", "--tcp-addr", "off"])
        .args(["--udp-addr", "off", "--webhook-url", "http://127.0.0.1:9/"])
        .args(["--webhook-events", "login,logins"])
        .env("HONGYAN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown event \"logins\""), "{err}");
    std::fs::remove_dir_all(&state).unwrap();
}
