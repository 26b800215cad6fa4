//! `hongyan serve` with TLS as a user runs it: a certificate from files, reloaded on SIGHUP
//! while a session stays up; the self-signed development certificate and the fingerprint it
//! prints; `hongyan chat --tls --ca-file` through it; TLS asked for without a certificate
//! refused at start.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hongyan_client::tls::AcceptAnyCertificate;
use hongyan_server::tls::CertFingerprint;
use rustls::{ClientConnection, StreamOwned};
use rustls_pki_types::{CertificateDer, ServerName};

/// The longest anything here should take.
const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hongyan-cli-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A self-signed certificate for localhost written to `dir/{name}.crt` and `.key` (renamed over
/// what was there, as certbot renews); its fingerprint.
fn certificate(dir: &Path, name: &str) -> CertFingerprint {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    for (ext, contents) in [("key", key.serialize_pem()), ("crt", cert.pem())] {
        let temp = dir.join(format!("{name}.{ext}.new"));
        std::fs::write(&temp, contents).unwrap();
        std::fs::rename(&temp, dir.join(format!("{name}.{ext}"))).unwrap();
    }
    CertFingerprint::of(cert.der())
}

/// `hongyan serve`, killed when dropped, with its stderr collected line by line.
struct Serve {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    lines: Receiver<String>,
}

impl Serve {
    fn start(args: &[&str], state: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hongyan"))
            .arg("serve")
            .args(args)
            .env("HONGYAN_STATE_DIR", state)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                kept.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self { child, log, lines }
    }

    /// The next stderr line that `matches`, failing the test after [`WAIT`].
    fn line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if matches(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("no {what} in the log: {:#?}", self.log.lock().unwrap()),
            }
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS client connection that accepts any certificate (it only looks at which one it got).
fn tls_connect(addr: SocketAddr) -> StreamOwned<ClientConnection, TcpStream> {
    let deadline = Instant::now() + WAIT;
    let tcp = loop {
        match TcpStream::connect(addr) {
            Ok(tcp) => break tcp,
            Err(e) => {
                assert!(Instant::now() < deadline, "{addr} never listened: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider)))
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

fn presented(stream: &StreamOwned<ClientConnection, TcpStream>) -> CertFingerprint {
    let chain: &[CertificateDer<'_>] = stream.conn.peer_certificates().unwrap();
    CertFingerprint::of(&chain[0])
}

/// Sends a MobileIMSDK frame and reads the answer's body.
fn exchange<S: Read + Write>(stream: &mut S, json: &str) -> String {
    stream
        .write_all(&(json.len() as u32).to_be_bytes())
        .unwrap();
    stream.write_all(json.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut header = [0; 4];
    stream.read_exact(&mut header).unwrap();
    let mut body = vec![0; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

#[cfg(unix)]
#[test]
fn sighup_reloads_the_certificate_while_a_session_stays_up() {
    let dir = temp_dir("sighup");
    let first = certificate(&dir, "server");
    let tcp = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let server = Serve::start(
        &[
            "--tcp-addr",
            &tcp.to_string(),
            "--udp-addr",
            "off",
            "--http-addr",
            "off",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &dir.join("state"),
    );
    let mut session = tls_connect(tcp);
    assert_eq!(presented(&session), first);
    let login = r#"{"type":0,"dataContent":"{\"loginUserId\":\"alice\",\"loginToken\":\"t\"}","from":"alice","to":"0"}"#;
    assert!(exchange(&mut session, login).contains(r#""type":50"#));

    let second = certificate(&dir, "server");
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    server.line("the SIGHUP reload", |l| {
        l.contains("TLS certificate reloaded") && l.contains(&second.to_string())
    });
    assert!(
        server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("SIGHUP: reloading the TLS certificate")),
        "the reload came from the signal"
    );
    assert_eq!(presented(&tls_connect(tcp)), second);

    let keepalive = r#"{"type":1,"dataContent":"{}","from":"alice","to":"0"}"#;
    assert!(
        exchange(&mut session, keepalive).contains(r#""type":51"#),
        "the session from before the reload is still served"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_self_signed_certificate_is_made_once_its_fingerprint_printed_and_served() {
    let dir = temp_dir("self-signed");
    let state = dir.join("state");
    let (tcp, http) = (free_port(), free_port());
    let args = [
        "--tls-self-signed",
        "--tcp-addr",
        &format!("127.0.0.1:{tcp}"),
        "--udp-addr",
        "off",
        "--http-addr",
        &format!("127.0.0.1:{http}"),
    ];
    let fingerprint_line = |l: &str| l.trim().len() == 95 && l.trim().chars().nth(2) == Some(':');
    let server = Serve::start(&args, &state);
    server.line("the notice", |l| {
        l.contains("SELF-SIGNED") && l.contains("made now")
    });
    let printed = server.line("the fingerprint", fingerprint_line);
    let printed = printed.trim().to_owned();
    let tcp = SocketAddr::from(([127, 0, 0, 1], tcp));
    assert_eq!(presented(&tls_connect(tcp)).to_string(), printed);
    let http = SocketAddr::from(([127, 0, 0, 1], http));
    assert_eq!(presented(&tls_connect(http)).to_string(), printed);

    // `hongyan chat --tls --ca-file` trusts it, by the name it was made for.
    let cert = state.join("tls/self-signed-cert.pem");
    let mut chat = Command::new(env!("CARGO_BIN_EXE_hongyan"))
        .args([
            "chat",
            "--tcp",
            &format!("localhost:{}", tcp.port()),
            "--tls",
        ])
        .args(["--ca-file", cert.to_str().unwrap()])
        .args(["--user", "alice", "--to", "0", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Written, then closed: the chat waits for the delivery report and logs out.
    chat.stdin
        .take()
        .unwrap()
        .write_all("to the server, in TLS\n".as_bytes())
        .unwrap();
    let output = chat.wait_with_output().unwrap();
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{out}");
    assert!(out.contains(r#""state":"online""#), "{out}");
    assert!(out.contains(r#""event":"delivered""#), "{out}");
    drop(server);

    // A later start keeps it.
    let server = Serve::start(&args, &state);
    server.line("the notice", |l| {
        l.contains("SELF-SIGNED") && l.contains("kept from an earlier start")
    });
    assert_eq!(
        server.line("the fingerprint", fingerprint_line).trim(),
        printed
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_asked_for_without_a_certificate_is_refused_at_start() {
    let state = temp_dir("refused");
    for (args, says) in [
        (
            &["--tcp-tls", "on"][..],
            r#"tcp_tls = "on" needs a certificate"#,
        ),
        (
            &["--tls-cert", "/nonexistent/cert.pem"][..],
            "tls_cert is set but tls_key is not",
        ),
        (
            &[
                "--tls-cert",
                "/nonexistent/c.pem",
                "--tls-key",
                "/nonexistent/k.pem",
            ][..],
            "cannot read the TLS certificate file /nonexistent/c.pem",
        ),
        (
            &["--tcp-plain-addr", "127.0.0.1:0"][..],
            "tcp_plain_addr is a plain port kept beside a TLS TCP gateway",
        ),
        (
            &["--tls-self-signed", "--tls-cert", "/nonexistent/c.pem"][..],
            "--tls-self-signed makes its own certificate",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hongyan"))
            .arg("serve")
            .args(["--tcp-addr", "127.0.0.1:0", "--udp-addr", "off"])
            .args(["--http-addr", "127.0.0.1:0"])
            .args(args)
            .env("HONGYAN_STATE_DIR", &state)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&state);
}
