//! The client over `tls://` and `wss://` against a stand-in MobileIMSDK server on loopback,
//! with certificates made by rcgen: which certificates it accepts and refuses, and that the
//! protocol runs unchanged inside TLS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use hongyan_client::{Client, ClientConfig, ClientError, Endpoint, TlsOptions, Trust};
use hongyan_shared::client::{ClientEvent, ConnectionState};
use hongyan_shared::{FrameCodec, LoginInfo, LoginResponse, Packet, PacketType};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const PROMPTLY: Duration = Duration::from_secs(10);

/// A self-signed certificate for `names`, written to a PEM file for the client to trust.
struct Cert {
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    pem_file: PathBuf,
}

impl Cert {
    fn new(names: &[&str], file: &str) -> Self {
        let made = rcgen::generate_simple_self_signed(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("hongyan-client-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem_file = dir.join(file);
        std::fs::write(&pem_file, made.cert.pem()).unwrap();
        Self {
            der: made.cert.der().clone(),
            key: PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into()),
            pem_file,
        }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        let config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![self.der.clone()], self.key.clone_key())
                .unwrap();
        Arc::new(config)
    }
}

/// How a stand-in server's connection went.
#[derive(Debug)]
enum Seen {
    /// The handshake finished, with this SNI.
    Tls { sni: Option<String> },
    /// The handshake failed.
    Refused(String),
}

/// Which protocol the stand-in speaks inside TLS.
#[derive(Clone, Copy)]
enum Gateway {
    Frames,
    WebSocket,
}

/// A TLS stand-in for `hongyan serve`: it accepts every login and acknowledges every message.
/// Reports each connection's handshake on the returned channel.
async fn stand_in(cert: &Cert, gateway: Gateway) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(cert.server_config());
    let (seen, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(error) => {
                    let _ = seen.send(Seen::Refused(error.to_string()));
                    continue;
                }
            };
            let sni = tls.get_ref().1.server_name().map(str::to_owned);
            let _ = seen.send(Seen::Tls { sni });
            tokio::spawn(async move {
                match gateway {
                    Gateway::Frames => serve_frames(tls).await,
                    Gateway::WebSocket => serve_websocket(tls).await,
                }
            });
        }
    });
    (port, seen_rx)
}

fn reply(packet: &Packet) -> Option<Packet> {
    match packet.kind {
        PacketType::Login => Some(Packet::login_response(
            packet.from_str(),
            LoginResponse {
                code: 0,
                first_login_time: 1,
            },
        )),
        PacketType::CommonData => Some(Packet::ack(
            packet.to_str(),
            packet.from_str(),
            packet.fp.as_ref()?,
            false,
        )),
        _ => None,
    }
}

async fn serve_frames(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let (codec, mut buf) = (FrameCodec::default(), BytesMut::new());
    while stream.read_buf(&mut buf).await.unwrap_or(0) > 0 {
        while let Ok(Some(body)) = codec.decode(&mut buf) {
            let Some(answer) = Packet::decode(&body).ok().as_ref().and_then(reply) else {
                continue;
            };
            let mut out = BytesMut::new();
            codec.encode(answer.to_json().as_bytes(), &mut out).unwrap();
            if stream.write_all(&out).await.is_err() {
                return;
            }
        }
    }
}

async fn serve_websocket(stream: impl AsyncRead + AsyncWrite + Unpin) {
    let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Some(answer) = Packet::decode(text.as_bytes())
            .ok()
            .as_ref()
            .and_then(reply)
        else {
            continue;
        };
        if socket.send(Message::text(answer.to_json())).await.is_err() {
            return;
        }
    }
}

fn config(endpoint: Endpoint, trust: Trust) -> ClientConfig {
    ClientConfig {
        tls: TlsOptions {
            trust,
            server_name: None,
        },
        ..ClientConfig::new(endpoint)
    }
}

/// Logs in, sends one QoS message and waits for its acknowledgement.
async fn chat(config: ClientConfig) {
    let (alice, mut events) =
        Client::connect(config, LoginInfo::new("alice", Some("t"), None)).unwrap();
    tokio::time::timeout(PROMPTLY, alice.wait_for(ConnectionState::Online))
        .await
        .expect("online in time")
        .unwrap();
    let fp = alice.send_c2c("bob", "over tls", 0).await.unwrap();
    tokio::time::timeout(PROMPTLY, async {
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::MessageDelivered(done) if done == fp => return,
                ClientEvent::MessagesLost(lost) => panic!("lost: {lost:?}"),
                _ => {}
            }
        }
        panic!("events ended");
    })
    .await
    .expect("delivered in time");
    alice.logout().await;
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(PROMPTLY, seen.recv())
        .await
        .expect("a connection in time")
        .expect("the stand-in runs")
}

#[tokio::test]
async fn chats_over_tcp_tls_trusting_a_ca_file() {
    let cert = Cert::new(&["localhost"], "tcp-ca.pem");
    let (port, mut seen) = stand_in(&cert, Gateway::Frames).await;
    let endpoint = Endpoint::TcpTls(format!("localhost:{port}"));
    chat(config(endpoint, Trust::CaFile(cert.pem_file.clone()))).await;
    let Seen::Tls { sni } = next_seen(&mut seen).await else {
        panic!("handshake refused");
    };
    assert_eq!(sni.as_deref(), Some("localhost"));
}

#[tokio::test]
async fn chats_over_wss_trusting_a_ca_file() {
    let cert = Cert::new(&["localhost"], "wss-ca.pem");
    let (port, mut seen) = stand_in(&cert, Gateway::WebSocket).await;
    let endpoint = Endpoint::WebSocket(format!("wss://localhost:{port}/websocket"));
    chat(config(endpoint, Trust::CaFile(cert.pem_file.clone()))).await;
    assert!(matches!(next_seen(&mut seen).await, Seen::Tls { .. }));
}

/// Connecting by IP address to a certificate that names a host: the configured name is what
/// gets checked.
#[tokio::test]
async fn the_configured_server_name_is_checked_instead_of_the_address() {
    let cert = Cert::new(&["im.example"], "named-ca.pem");
    let (port, mut seen) = stand_in(&cert, Gateway::Frames).await;
    let mut config = config(
        Endpoint::TcpTls(format!("127.0.0.1:{port}")),
        Trust::CaFile(cert.pem_file.clone()),
    );
    config.tls.server_name = Some("im.example".to_owned());
    chat(config).await;
    let Seen::Tls { sni } = next_seen(&mut seen).await else {
        panic!("handshake refused");
    };
    assert_eq!(sni.as_deref(), Some("im.example"));
}

#[tokio::test]
async fn danger_accept_invalid_certs_takes_a_certificate_for_another_name() {
    let cert = Cert::new(&["elsewhere.example"], "danger.pem");
    let (port, _seen) = stand_in(&cert, Gateway::Frames).await;
    let endpoint = Endpoint::TcpTls(format!("127.0.0.1:{port}"));
    chat(config(endpoint, Trust::DangerAcceptInvalidCerts)).await;
}

#[tokio::test]
async fn a_certificate_from_another_issuer_is_refused() {
    let cert = Cert::new(&["localhost"], "served.pem");
    let other = Cert::new(&["localhost"], "other.pem");
    let (port, mut seen) = stand_in(&cert, Gateway::Frames).await;
    let endpoint = Endpoint::TcpTls(format!("localhost:{port}"));
    let (client, _events) = Client::connect(
        config(endpoint, Trust::CaFile(other.pem_file.clone())),
        LoginInfo::new("alice", Some("t"), None),
    )
    .unwrap();
    // The client's alert (rcgen names every self-signed certificate alike, so the client finds
    // an issuer of that name and then a signature that does not verify).
    let seen = next_seen(&mut seen).await;
    assert!(matches!(seen, Seen::Refused(_)), "{seen:?}");
    assert_ne!(client.state(), ConnectionState::Online);
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let cert = Cert::new(&["im.example"], "wrong-name.pem");
    let (port, mut seen) = stand_in(&cert, Gateway::WebSocket).await;
    let endpoint = Endpoint::WebSocket(format!("wss://localhost:{port}/websocket"));
    let (_client, _events) = Client::connect(
        config(endpoint, Trust::CaFile(cert.pem_file.clone())),
        LoginInfo::new("alice", Some("t"), None),
    )
    .unwrap();
    let Seen::Refused(why) = next_seen(&mut seen).await else {
        panic!("the client accepted a certificate for another name");
    };
    assert!(why.contains("BadCertificate"), "{why}");
}

#[tokio::test]
async fn an_unreadable_ca_file_fails_at_connect() {
    let endpoint = Endpoint::TcpTls("localhost:1".to_owned());
    let result = Client::connect(
        config(endpoint, Trust::CaFile("/nonexistent/ca.pem".into())),
        LoginInfo::new("alice", Some("t"), None),
    );
    assert!(matches!(result, Err(ClientError::Tls(_))), "{result:?}");
}
