//! A seeded lossy proxy on loopback, between real clients and a real server: it drops,
//! duplicates and delays (and so reorders) whole packets, and can cut every connection.
//!
//! UDP datagrams are packets. On TCP the proxy reads the 4-byte length-prefixed frames and
//! treats each frame as a packet, so the stream stays well-formed while packets go missing.
//! Every client address (UDP) or connection (TCP) gets its own upstream socket, so the server
//! sees one session per client connection, exactly as without the proxy.
//!
//! All tasks stop when the [`LossyProxy`] is dropped; delays are bounded by
//! [`Faults::max_delay`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

/// What the proxy does to each packet, in each direction.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Probability that a packet is dropped.
    pub drop: f64,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Each copy is delayed uniformly by up to this much, which reorders packets.
    pub max_delay: Duration,
    /// Seeds the fault generator.
    pub seed: u64,
}

impl Faults {
    /// A clean pass-through.
    pub fn none() -> Self {
        Self {
            drop: 0.0,
            duplicate: 0.0,
            max_delay: Duration::ZERO,
            seed: 0,
        }
    }
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Packets forwarded (each copy counts).
    pub forwarded: AtomicUsize,
    /// Packets dropped.
    pub dropped: AtomicUsize,
    /// Packets duplicated.
    pub duplicated: AtomicUsize,
}

struct Shared {
    faults: Faults,
    rng: Mutex<SmallRng>,
    stats: ProxyStats,
    /// Bumped by [`LossyProxy::cut`]; every connection from an older generation ends.
    generation: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    /// The delays of the copies to send of one packet (empty when it is dropped).
    fn copies(&self) -> Vec<Duration> {
        let mut rng = self.rng.lock().expect("proxy lock");
        if rng.random_bool(self.faults.drop) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Vec::new();
        }
        let count = if rng.random_bool(self.faults.duplicate) {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        self.stats.forwarded.fetch_add(count, Ordering::Relaxed);
        let max = u64::try_from(self.faults.max_delay.as_micros()).unwrap_or(u64::MAX);
        (0..count)
            .map(|_| Duration::from_micros(rng.random_range(0..=max)))
            .collect()
    }

    /// Sends `packet` to `out` after each copy's delay.
    fn forward(&self, packet: Vec<u8>, out: &mpsc::UnboundedSender<Vec<u8>>) {
        for delay in self.copies() {
            let out = out.clone();
            let packet = packet.clone();
            if delay.is_zero() {
                let _ = out.send(packet);
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // The connection may be gone by now; the packet is then lost, as on a wire.
                    let _ = out.send(packet);
                });
            }
        }
    }
}

/// A running proxy. Clients connect to [`addr`](Self::addr); it forwards to the upstream
/// server given at start.
pub struct LossyProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
}

impl LossyProxy {
    /// A UDP proxy on a loopback port in front of `upstream`.
    pub async fn udp(upstream: SocketAddr, faults: Faults) -> Self {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind proxy"));
        let (proxy, shared) = Self::new(socket.local_addr().expect("proxy addr"), faults);
        tokio::spawn(run_udp(socket, upstream, shared));
        proxy
    }

    /// A TCP proxy (frame-aware) on a loopback port in front of `upstream`.
    pub async fn tcp(upstream: SocketAddr, faults: Faults) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let (proxy, shared) = Self::new(listener.local_addr().expect("proxy addr"), faults);
        tokio::spawn(run_tcp(listener, upstream, shared));
        proxy
    }

    fn new(addr: SocketAddr, faults: Faults) -> (Self, Arc<Shared>) {
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            faults,
            rng: Mutex::new(SmallRng::seed_from_u64(faults.seed)),
            stats: ProxyStats::default(),
            generation: watch::channel(0).0,
            stop: stopped,
        });
        (
            Self {
                addr,
                shared: shared.clone(),
                stop,
            },
            shared,
        )
    }

    /// Cuts every current connection: TCP connections are closed on both sides; UDP clients
    /// get a new upstream socket (a new source port, as after a NAT rebinding), so the server
    /// no longer knows them.
    pub fn cut(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn run_udp(socket: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    let (to_clients, mut replies) = mpsc::unbounded_channel::<(SocketAddr, Vec<u8>)>();
    let mut routes: HashMap<SocketAddr, (u64, mpsc::UnboundedSender<Vec<u8>>)> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = socket.recv_from(&mut buf) => {
                let Ok((len, client)) = received else { continue };
                let generation = *shared.generation.borrow();
                let route = routes.get(&client).filter(|(g, _)| *g == generation);
                let out = match route {
                    Some((_, out)) => out.clone(),
                    None => {
                        let out = udp_route(client, upstream, &shared, to_clients.clone()).await;
                        routes.insert(client, (generation, out.clone()));
                        out
                    }
                };
                shared.forward(buf[..len].to_vec(), &out);
            }
            Some((client, packet)) = replies.recv() => {
                let _ = socket.send_to(&packet, client).await;
            }
        }
    }
}

/// One client's upstream socket: forwards what the client sends, and the server's replies
/// (through the faults) back towards the client, until the route is cut or the proxy stops.
async fn udp_route(
    client: SocketAddr,
    upstream: SocketAddr,
    shared: &Arc<Shared>,
    to_clients: mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
) -> mpsc::UnboundedSender<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind route");
    socket.connect(upstream).await.expect("connect upstream");
    let (out, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let (back, mut incoming) = mpsc::unbounded_channel::<Vec<u8>>();
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut stop = shared.stop.clone();
        let mut generation = shared.generation.subscribe();
        let mut buf = vec![0u8; 65_536];
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = generation.changed() => return,
                Some(packet) = outgoing.recv() => {
                    let _ = socket.send(&packet).await;
                }
                received = socket.recv(&mut buf) => {
                    if let Ok(len) = received {
                        shared.forward(buf[..len].to_vec(), &back);
                    }
                }
                Some(packet) = incoming.recv() => {
                    let _ = to_clients.send((client, packet));
                }
            }
        }
    });
    out
}

async fn run_tcp(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    // A refused upstream closes the client's connection, as the server would.
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        tcp_pair(client, server, shared).await;
                    }
                });
            }
        }
    }
}

/// Relays frames both ways between one client and its upstream connection until either side
/// closes, the proxy is cut or stopped.
async fn tcp_pair(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let (to_server, server_out) = mpsc::unbounded_channel();
    let (to_client, client_out) = mpsc::unbounded_channel();
    let mut stop = shared.stop.clone();
    let mut generation = shared.generation.subscribe();
    tokio::select! {
        _ = stop.changed() => {}
        _ = generation.changed() => {}
        () = read_frames(client_read, &shared, &to_server) => {}
        () = read_frames(server_read, &shared, &to_client) => {}
        () = write_frames(server_write, server_out) => {}
        () = write_frames(client_write, client_out) => {}
    }
}

async fn read_frames(
    mut reader: OwnedReadHalf,
    shared: &Shared,
    out: &mpsc::UnboundedSender<Vec<u8>>,
) {
    let mut buf = BytesMut::with_capacity(8192);
    loop {
        while buf.len() >= 4 {
            let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame = buf.split_to(4 + len).to_vec();
            shared.forward(frame, out);
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn write_frames(mut writer: OwnedWriteHalf, mut frames: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&frame).await.is_err() {
            return;
        }
    }
}
