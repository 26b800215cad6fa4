//! A seeded fault proxy on loopback, between real clients and a real server: it drops,
//! duplicates and delays (and so reorders) whole packets, resets connections, and can cut
//! every connection or turn every current one into a half-open one that relays nothing.
//!
//! It relays packets, not bytes, so streams stay well-formed while packets go missing: UDP
//! datagrams are packets; on TCP each 4-byte length-prefixed frame is one (`tcp`); on a
//! WebSocket the HTTP upgrade passes untouched and then each WebSocket frame is one (`ws`).
//! Every client address (UDP) or connection (TCP, WebSocket) gets its own upstream socket, so
//! the server sees one session per client connection, exactly as without the proxy.
//!
//! The faults apply to every packet in both directions and can be changed while it runs
//! ([`LossyProxy::set_faults`]). The proxy counts what it did ([`ProxyStats`]) and remembers
//! the fingerprints of the acknowledgements it dropped ([`LossyProxy::dropped_acks`]), so a
//! test can tell a message whose sender never heard of its delivery because of the network
//! from one the server failed.
//!
//! All tasks stop when the [`LossyProxy`] is dropped; delays are bounded by
//! [`Faults::max_delay`].
//!
//! - `udp`: the datagram relay; a reset gives a client a new upstream port (a NAT rebinding).
//! - `stream`: the TCP and WebSocket relays; a reset closes both sides with RST.

mod stream;
mod udp;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hongyan_shared::{Packet, PacketType};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, UdpSocket};
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
    /// Probability that a packet resets its connection instead of passing: a TCP or WebSocket
    /// connection is closed on both sides with RST, a UDP client is given a new upstream port
    /// (the server no longer knows it, as after a NAT rebinding).
    pub reset: f64,
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
            reset: 0.0,
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
    /// Copies delayed (by a non-zero delay, which may reorder them).
    pub delayed: AtomicUsize,
    /// Connections reset (UDP: clients rebound to a new upstream port).
    pub resets: AtomicUsize,
}

/// What becomes of one packet.
enum Fate {
    /// Sent after each of these delays (none: dropped).
    Copies(Vec<Duration>),
    /// Its connection is reset.
    Reset,
}

struct Shared {
    faults: Mutex<Faults>,
    rng: Mutex<SmallRng>,
    stats: ProxyStats,
    /// Fingerprints of the acknowledgements dropped, or lost with a reset connection.
    dropped_acks: Mutex<HashSet<String>>,
    /// Bumped by [`LossyProxy::cut`]; every connection from an older generation ends.
    generation: watch::Sender<u64>,
    /// Bumped by [`LossyProxy::blackhole`]; every connection from an older one goes silent.
    frozen: watch::Sender<u64>,
    stop: watch::Receiver<bool>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("no proxy task panics while holding a lock")
}

impl Shared {
    /// The fate of `packet` (a packet body: the proxy looks inside only to remember dropped
    /// acknowledgements).
    fn fate(&self, packet: &[u8]) -> Fate {
        let faults = *lock(&self.faults);
        let mut rng = lock(&self.rng);
        if rng.random_bool(faults.reset) {
            self.stats.resets.fetch_add(1, Ordering::Relaxed);
            drop(rng);
            self.lost(packet);
            return Fate::Reset;
        }
        if rng.random_bool(faults.drop) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            drop(rng);
            self.lost(packet);
            return Fate::Copies(Vec::new());
        }
        let count = if rng.random_bool(faults.duplicate) {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        self.stats.forwarded.fetch_add(count, Ordering::Relaxed);
        let max = u64::try_from(faults.max_delay.as_micros()).unwrap_or(u64::MAX);
        let delays: Vec<Duration> = (0..count)
            .map(|_| Duration::from_micros(rng.random_range(0..=max)))
            .collect();
        let delayed = delays.iter().filter(|d| !d.is_zero()).count();
        self.stats.delayed.fetch_add(delayed, Ordering::Relaxed);
        Fate::Copies(delays)
    }

    /// Remembers `packet` if it is an acknowledgement that will not arrive.
    fn lost(&self, packet: &[u8]) {
        if let Ok(packet) = Packet::decode(packet)
            && packet.kind == PacketType::Ack
            && let Some(fp) = packet.data_content
        {
            lock(&self.dropped_acks).insert(fp);
        }
    }

    /// Sends `frame` (whose packet body is `packet`) to `out` after each copy's delay; false
    /// if its connection is to be reset.
    fn forward(&self, packet: &[u8], frame: Vec<u8>, out: &mpsc::UnboundedSender<Vec<u8>>) -> bool {
        let Fate::Copies(delays) = self.fate(packet) else {
            return false;
        };
        for delay in delays {
            let out = out.clone();
            let frame = frame.clone();
            if delay.is_zero() {
                let _ = out.send(frame);
            } else {
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    // The connection may be gone by now; the packet is then lost, as on a wire.
                    let _ = out.send(frame);
                });
            }
        }
        true
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
        tokio::spawn(udp::run(socket, upstream, shared));
        proxy
    }

    /// A TCP proxy (frame-aware) on a loopback port in front of `upstream`.
    pub async fn tcp(upstream: SocketAddr, faults: Faults) -> Self {
        Self::stream(upstream, faults, stream::Framing::Tcp).await
    }

    /// A WebSocket proxy on a loopback port in front of `upstream` (an HTTP listener): the
    /// upgrade passes untouched, then each WebSocket frame is a packet.
    pub async fn ws(upstream: SocketAddr, faults: Faults) -> Self {
        Self::stream(upstream, faults, stream::Framing::WebSocket).await
    }

    async fn stream(upstream: SocketAddr, faults: Faults, framing: stream::Framing) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let (proxy, shared) = Self::new(listener.local_addr().expect("proxy addr"), faults);
        tokio::spawn(stream::run(listener, upstream, shared, framing));
        proxy
    }

    fn new(addr: SocketAddr, faults: Faults) -> (Self, Arc<Shared>) {
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            faults: Mutex::new(faults),
            rng: Mutex::new(SmallRng::seed_from_u64(faults.seed)),
            stats: ProxyStats::default(),
            dropped_acks: Mutex::default(),
            generation: watch::channel(0).0,
            frozen: watch::channel(0).0,
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

    /// Cuts every current connection: TCP and WebSocket connections are closed on both sides;
    /// UDP clients get a new upstream socket (a new source port, as after a NAT rebinding), so
    /// the server no longer knows them.
    pub fn cut(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Makes every current connection half-open: nothing more is relayed either way and
    /// nothing is read, but no side is closed (as when a peer's machine vanishes without a
    /// FIN or RST). New connections are relayed as usual.
    pub fn blackhole(&self) {
        self.shared.frozen.send_modify(|g| *g += 1);
    }

    /// The faults from now on.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> &ProxyStats {
        &self.shared.stats
    }

    /// The fingerprints of the acknowledgements the proxy dropped (or lost with a connection it
    /// reset) so far.
    pub fn dropped_acks(&self) -> HashSet<String> {
        lock(&self.shared.dropped_acks).clone()
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
