//! `hongyan serve` as a user runs it: addresses from a flag, an environment variable and a
//! TOML file at once; a gateway turned off; graceful exit on SIGTERM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_tcp(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => return s,
            Err(e) if Instant::now() > deadline => panic!("{addr} never listened: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Where the servers a test starts keep their generated admin token and their SQLite store,
/// instead of the user's own state directory: one per test, so servers of tests running at
/// the same time never share a database file.
fn state_dir(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hongyan-cli-state-{}-{test}", std::process::id()))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn addresses_come_from_flag_environment_and_file_and_sigterm_stops_cleanly() {
    let (tcp, udp, http) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("hongyan-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("hongyan.toml");
    std::fs::write(
        &config,
        format!(
            "udp_addr = \"127.0.0.1:{udp}\"\nhttp_addr = \"127.0.0.1:1\"\ntcp_sense_mode = \"MODE_5S\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("HONGYAN_STATE_DIR", state_dir("addresses"))
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .env("HONGYAN_TCP_ADDR", format!("127.0.0.1:{tcp}"))
        .env("HONGYAN_WEB_DIR", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Running(child);

    // HTTP from the flag (overriding the file's port 1).
    let mut s = wait_for_tcp(SocketAddr::from(([127, 0, 0, 1], http)));
    s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.0 200") && reply.ends_with("ok\n"),
        "{reply}"
    );

    // TCP from the environment.
    let mut s = wait_for_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
    let keepalive = br#"{"type":1,"dataContent":"{}","from":"x","to":"0"}"#;
    s.write_all(&(keepalive.len() as u32).to_be_bytes())
        .unwrap();
    s.write_all(keepalive).unwrap();
    let mut header = [0u8; 4];
    s.read_exact(&mut header).unwrap();
    assert!(u32::from_be_bytes(header) > 0, "a 301 frame comes back");

    // UDP from the file.
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let padded = format!(r#"{{"type":1,"from":"{}","to":"0"}}"#, "u".repeat(100));
    u.send_to(padded.as_bytes(), ("127.0.0.1", udp)).unwrap();
    let mut buf = [0u8; 2048];
    let n = u.recv(&mut buf).unwrap();
    assert!(std::str::from_utf8(&buf[..n]).unwrap().contains("301"));

    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    server
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        log.contains("EVERY LOGIN IS ACCEPTED"),
        "the default hooks warn loudly: {log}"
    );
    assert!(log.contains("shutting down"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gateway_can_be_turned_off_and_bad_configuration_is_explained() {
    let http = free_port();
    let tcp = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--tcp-addr", "off", "--udp-addr", "off"])
        .args(["--http-addr", &format!("127.0.0.1:{http}")])
        .env("HONGYAN_STATE_DIR", state_dir("gateway-off"))
        .env("HONGYAN_TCP_ADDR", format!("127.0.0.1:{tcp}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Running(child);
    wait_for_tcp(SocketAddr::from(([127, 0, 0, 1], http)));
    assert!(
        TcpStream::connect(("127.0.0.1", tcp)).is_err(),
        "tcp is off"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args([
            "serve",
            "--udp-sense-mode",
            "MODE_5S",
            "--tcp-addr",
            "nonsense",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an address"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--udp-sense-mode", "MODE_5S", "--http-addr", "off"])
        .args(["--tcp-addr", "off", "--udp-addr", "off"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist for UDP"), "{err}");
}

#[test]
fn two_hongyan_chat_processes_talk_through_hongyan_serve() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let (tcp, udp) = (free_port(), free_port());
    let server = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--http-addr", "off"])
        .args(["--tcp-addr", &format!("127.0.0.1:{tcp}")])
        .env("HONGYAN_STATE_DIR", state_dir("chat"))
        .args(["--udp-addr", &format!("127.0.0.1:{udp}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Running(server);
    wait_for_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));

    let mut bob = Running(
        Command::new(env!("CARGO_BIN_EXE_hongyan"))
            .args(["chat", "--udp", &format!("127.0.0.1:{udp}")])
            .args(["--user", "bob", "--json", "--stay"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = mpsc::channel();
    let stdout = bob.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let next_matching = |needle: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("bob never printed {needle}"));
        if line.contains(needle) {
            return line;
        }
    };
    next_matching(r#""state":"online""#);

    let mut alice = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["chat", "--tcp", &format!("127.0.0.1:{tcp}")])
        .args(["--user", "alice", "--to", "bob", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    alice
        .stdin
        .take()
        .unwrap()
        .write_all("hello bob, 你好 🪿\n".as_bytes())
        .unwrap();
    let output = alice.wait_with_output().unwrap();
    assert!(output.status.success());
    let alice_out = String::from_utf8(output.stdout).unwrap();
    assert!(alice_out.contains(r#""event":"delivered""#), "{alice_out}");
    let message = next_matching(r#""event":"message""#);
    assert!(message.contains("hello bob, 你好 🪿") && message.contains(r#""from":"alice""#));
}

/// Threads of `pid` named like tokio's workers.
#[cfg(target_os = "linux")]
fn tokio_workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn the_runtime_has_as_many_workers_as_configured() {
    for (flag, env, expected) in [(Some("1"), None, 1), (None, Some("3"), 3)] {
        let tcp = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hongyan"));
        // Not the SQLite store: its reads run on tokio's blocking pool, whose threads have the
        // workers' name.
        command
            .args(["serve", "--udp-addr", "off", "--http-addr", "off"])
            .args([
                "--tcp-addr",
                &format!("127.0.0.1:{tcp}"),
                "--store",
                "memory",
            ])
            .env("HONGYAN_STATE_DIR", state_dir("workers"))
            .env_remove("TOKIO_WORKER_THREADS")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(n) = flag {
            command.args(["--workers", n]);
        }
        if let Some(n) = env {
            command.env("HONGYAN_WORKERS", n);
        }
        let server = Running(command.spawn().unwrap());
        wait_for_tcp(SocketAddr::from(([127, 0, 0, 1], tcp)));
        assert_eq!(tokio_workers(server.0.id()), expected, "{flag:?} {env:?}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args(["serve", "--workers", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid `workers` from flag --workers: must be positive"),
        "{err}"
    );
}
