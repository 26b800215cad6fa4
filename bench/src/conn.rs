//! One bare client connection: packet bodies in and out over TCP frames, UDP datagrams or
//! WebSocket text frames, from a chosen loopback source address; TCP and WebSocket optionally
//! in TLS.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use hongyan_client::tls::AcceptAnyCertificate;
use hongyan_shared::{FrameCodec, Transport};
use rustls::client::Resumption;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::either::Either;

/// A TCP connection, plain or in TLS (boxed: a client TLS connection is a kilobyte).
pub(crate) type Stream = Either<TcpStream, Box<TlsStream<TcpStream>>>;

/// How a run's clients speak TLS: any certificate is accepted (the generator measures cost,
/// not identity, and talks to loopback only), and every connection makes a full handshake
/// (no resumption), as a crowd of devices reconnecting to a restarted server would.
#[derive(Clone)]
pub(crate) struct Tls(TlsConnector);

impl Tls {
    pub(crate) fn new() -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new(provider)))
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Self(TlsConnector::from(Arc::new(config)))
    }

    async fn connect(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, ConnError> {
        let name = ServerName::try_from("localhost").expect("a valid DNS name");
        self.0
            .connect(name, tcp)
            .await
            .map_err(|e| ConnError::Handshake(format!("tls: {}", io_kind(&e))))
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// Read buffer per connection: packets are a few hundred bytes.
const READ_BUFFER: usize = 2048;

/// Why a connection could not be set up or failed.
#[derive(Debug)]
pub(crate) enum ConnError {
    /// `connect` (or for UDP `bind`) failed.
    Connect(io::Error),
    /// The TLS handshake or the WebSocket upgrade failed.
    Handshake(String),
    /// Reading or writing failed.
    Io(String),
    /// The server sent bytes that are not a packet stream.
    Protocol(String),
}

impl ConnError {
    /// The failure kind as reports count it.
    pub(crate) fn kind(&self) -> String {
        match self {
            Self::Connect(e) => format!("connect: {:?}", e.kind()),
            Self::Handshake(e) => format!("handshake: {e}"),
            Self::Io(e) => format!("io: {e}"),
            Self::Protocol(e) => format!("protocol: {e}"),
        }
    }
}

pub(crate) enum Conn {
    Tcp {
        stream: Stream,
        read: BytesMut,
        write: BytesMut,
        codec: FrameCodec,
    },
    Udp {
        socket: UdpSocket,
        buf: Box<[u8]>,
    },
    Ws(Box<WebSocketStream<Stream>>),
}

async fn tcp_from(source: Ipv4Addr, target: SocketAddr) -> Result<TcpStream, ConnError> {
    let socket = TcpSocket::new_v4().map_err(ConnError::Connect)?;
    defer_port_choice(&socket);
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(ConnError::Connect)?;
    let stream = socket.connect(target).await.map_err(ConnError::Connect)?;
    stream.set_nodelay(true).map_err(ConnError::Connect)?;
    Ok(stream)
}

/// Lets `connect` rather than `bind` choose the source port. `bind` to port 0 searches the
/// address's ports for one bound by nobody, which grows slow with thousands of sockets per
/// source address and fails on ports still in TIME_WAIT from an earlier run; `connect` only
/// needs the four-tuple to be unique.
#[cfg(target_os = "linux")]
fn defer_port_choice(socket: &TcpSocket) {
    use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
    // Only an optimisation: without it `bind` still works, just slower.
    let _ = setsockopt(socket, IpBindAddressNoPort, &true);
}

#[cfg(not(target_os = "linux"))]
fn defer_port_choice(_socket: &TcpSocket) {}

/// An IO error's kind, which is what reports count (the message varies per connection).
fn io_kind(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    text.split(" (os error").next().unwrap_or(&text).to_owned()
}

impl Conn {
    pub(crate) async fn open(
        transport: Transport,
        source: Ipv4Addr,
        target: SocketAddr,
        tls: Option<&Tls>,
    ) -> Result<Self, ConnError> {
        let stream = async || {
            let tcp = tcp_from(source, target).await?;
            Ok::<_, ConnError>(match tls {
                Some(tls) => Either::Right(Box::new(tls.connect(tcp).await?)),
                None => Either::Left(tcp),
            })
        };
        match transport {
            Transport::Tcp => Ok(Self::Tcp {
                stream: stream().await?,
                read: BytesMut::with_capacity(READ_BUFFER),
                write: BytesMut::new(),
                codec: FrameCodec::default(),
            }),
            Transport::Udp => {
                let socket = UdpSocket::bind(SocketAddr::from((source, 0)))
                    .await
                    .map_err(ConnError::Connect)?;
                socket.connect(target).await.map_err(ConnError::Connect)?;
                Ok(Self::Udp {
                    socket,
                    buf: vec![0; READ_BUFFER].into_boxed_slice(),
                })
            }
            Transport::WebSocket => {
                let stream = stream().await?;
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(4096);
                let scheme = if tls.is_some() { "wss" } else { "ws" };
                let url = format!("{scheme}://{target}/websocket");
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                        .await
                        .map_err(|e| ConnError::Handshake(e.to_string()))?;
                Ok(Self::Ws(Box::new(ws)))
            }
            Transport::Http => Err(ConnError::Handshake(
                "hongyan bench has no client for HTTP sessions".into(),
            )),
        }
    }

    /// The next packet body; `None` when the server closed the connection. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Result<Option<Bytes>, ConnError> {
        match self {
            Self::Tcp {
                stream,
                read,
                codec,
                ..
            } => loop {
                if let Some(body) = codec
                    .decode(read)
                    .map_err(|e| ConnError::Protocol(e.to_string()))?
                {
                    return Ok(Some(body));
                }
                if read.capacity() - read.len() < 512 {
                    read.reserve(READ_BUFFER);
                }
                let n = stream
                    .read_buf(read)
                    .await
                    .map_err(|e| ConnError::Io(io_kind(&e)))?;
                if n == 0 {
                    return Ok(None);
                }
            },
            Self::Udp { socket, buf } => {
                let n = socket
                    .recv(buf)
                    .await
                    .map_err(|e| ConnError::Io(io_kind(&e)))?;
                Ok(Some(Bytes::copy_from_slice(&buf[..n])))
            }
            Self::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(None),
                    Some(Ok(Message::Text(text))) => return Ok(Some(Bytes::from(text))),
                    Some(Ok(Message::Binary(_))) => {
                        return Err(ConnError::Protocol("binary frame".into()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(None),
                    Some(Err(e)) => return Err(ConnError::Io(e.to_string())),
                }
            },
        }
    }

    /// Queues one packet body; it leaves at the latest on [`flush`](Self::flush).
    pub(crate) async fn send(&mut self, body: &[u8]) -> Result<(), ConnError> {
        match self {
            Self::Tcp { write, codec, .. } => codec
                .encode(body, write)
                .map_err(|e| ConnError::Protocol(e.to_string())),
            Self::Udp { socket, .. } => socket
                .send(body)
                .await
                .map(drop)
                .map_err(|e| ConnError::Io(io_kind(&e))),
            Self::Ws(ws) => {
                let text =
                    std::str::from_utf8(body).map_err(|e| ConnError::Protocol(e.to_string()))?;
                ws.feed(Message::text(text.to_owned()))
                    .await
                    .map_err(|e| ConnError::Io(io_kind(&e)))
            }
        }
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        match self {
            Self::Tcp { stream, write, .. } => {
                if !write.is_empty() {
                    stream
                        .write_all(write)
                        .await
                        .map_err(|e| ConnError::Io(io_kind(&e)))?;
                    // A TLS stream sends what it encrypted by the flush.
                    stream
                        .flush()
                        .await
                        .map_err(|e| ConnError::Io(io_kind(&e)))?;
                    write.clear();
                }
                Ok(())
            }
            Self::Udp { .. } => Ok(()),
            Self::Ws(ws) => ws.flush().await.map_err(|e| ConnError::Io(io_kind(&e))),
        }
    }
}
