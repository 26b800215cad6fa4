//! The operations that drive a [`ClientSession`](hongyan_shared::ClientSession), decoded from
//! the fuzz input with `arbitrary`: the application's calls, the transport's news, packets from
//! a hostile server (built field by field, taken from the captures, or raw bytes) and the
//! passing of time.
//!
//! Values that must match for anything to happen (user ids, fingerprints, protocol codes) are
//! drawn mostly from small sets, with an arbitrary value always possible, so the fuzzer reaches
//! deep states (online, messages in flight, acknowledgements) quickly.

use std::time::Duration;

use arbitrary::Arbitrary;
use hongyan_shared::{
    DedupConfig, ErrorResponse, Fingerprint, Kickout, LoginResponse, Outgoing, Packet, PacketType,
    RetransmitSchedule, SenseMode, SessionConfig, Transport, UserId, codes,
};

use crate::samples;

/// One run: a configuration, then operations until the input ends.
#[derive(Arbitrary, Debug)]
pub struct SessionRun {
    /// How the session is tuned.
    pub config: ConfigInput,
    /// What happens to it, in order.
    pub ops: Vec<Op>,
}

/// A session configuration: the Java defaults of a transport, optionally with a sense mode,
/// or with short timings of the input's choosing so every timer fires within a run.
#[derive(Arbitrary, Debug)]
pub struct ConfigInput {
    transport: TransportInput,
    sense_mode: Option<u8>,
    auto_relogin: bool,
    timings: Option<Timings>,
    dedup_capacity: Option<u8>,
    max_packet_len: Option<u16>,
    seed: u64,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TransportInput {
    Tcp,
    Udp,
    WebSocket,
}

/// Timer settings in milliseconds (zero included: a degenerate configuration must not break
/// the session either).
#[derive(Arbitrary, Debug)]
struct Timings {
    keep_alive_interval: u16,
    keep_alive_timeout: u16,
    timeout_check_interval: u16,
    relogin_interval: u16,
    retransmit_check_interval: u16,
    just_sent: u16,
    max_retries: u8,
    dedup_lifetime: u16,
    dedup_sweep_interval: u16,
}

impl ConfigInput {
    /// The configuration this input describes.
    pub fn to_config(&self) -> SessionConfig {
        let transport = match self.transport {
            TransportInput::Tcp => Transport::Tcp,
            TransportInput::Udp => Transport::Udp,
            TransportInput::WebSocket => Transport::WebSocket,
        };
        let mut config = SessionConfig::new(transport, self.seed);
        if let Some(mode) = self.sense_mode {
            config =
                config.with_sense_mode(SenseMode::ALL[usize::from(mode) % SenseMode::ALL.len()]);
        }
        config.auto_relogin = self.auto_relogin;
        if let Some(t) = &self.timings {
            let ms = |v: u16| Duration::from_millis(u64::from(v));
            config.keep_alive.interval = ms(t.keep_alive_interval);
            config.keep_alive.timeout = ms(t.keep_alive_timeout);
            config.timeout_check_interval = ms(t.timeout_check_interval);
            config.relogin_interval = ms(t.relogin_interval);
            config.retransmit = RetransmitSchedule {
                check_interval: ms(t.retransmit_check_interval),
                just_sent: ms(t.just_sent),
                max_retries: u32::from(t.max_retries % 4),
            };
            config.dedup.lifetime = ms(t.dedup_lifetime);
            config.dedup.sweep_interval = ms(t.dedup_sweep_interval);
        }
        config.dedup = DedupConfig {
            capacity: self
                .dedup_capacity
                .map_or(config.dedup.capacity, usize::from),
            ..config.dedup
        };
        if let Some(len) = self.max_packet_len {
            config.max_packet_len = usize::from(len);
        }
        config
    }
}

/// One thing that happens to the session.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// The application logs in.
    Login {
        /// Who.
        user: Who,
        /// The token, if any.
        token: Option<String>,
        /// The `firstLoginTime` the application passes (normally 0).
        first_login_time: i64,
    },
    /// The application sends a message.
    Send(MessageInput),
    /// The application logs out.
    Logout,
    /// The transport the session asked for is up (or a spurious report says so).
    Connected,
    /// The transport closed.
    Disconnected,
    /// A packet built from arbitrary fields arrives.
    Receive(PacketInput),
    /// A captured packet arrives (index into the captures).
    Captured(u8),
    /// Raw bytes arrive; they are handed over if they decode as a packet.
    Raw(Vec<u8>),
    /// The server acknowledges one of the messages the session sent.
    Ack(SentRef),
    /// The server answers the login with success.
    LoginAccepted {
        /// The `firstLoginTime` it answers.
        first_login_time: i64,
    },
    /// Time passes by this many milliseconds, then the driver calls `handle_timeout`.
    Wait(u32),
    /// The driver sleeps until `poll_timeout` and calls `handle_timeout`.
    WaitForTimeout,
}

/// A user id: a few fixed ones (including the reserved `"0"`, `"-1"` and `""`), or any.
#[derive(Arbitrary, Debug, Clone)]
pub enum Who {
    /// `alice`, the user the session usually logs in as.
    Alice,
    /// `bob`, a peer.
    Bob,
    /// `"0"`, the server.
    Server,
    /// `"-1"`, unset.
    Unset,
    /// `""`.
    Empty,
    /// Any string.
    Other(String),
}

impl Who {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Alice => "alice",
            Self::Bob => "bob",
            Self::Server => UserId::SERVER,
            Self::Unset => UserId::UNSET,
            Self::Empty => "",
            Self::Other(id) => id,
        }
    }
}

/// Which message of those the session sent (by index, wrapping); used for acknowledgements
/// and fingerprints that must match a sent one.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct SentRef(u8);

impl SentRef {
    /// The fingerprint it names, if anything was sent yet.
    pub fn resolve(self, sent: &[Fingerprint]) -> Option<Fingerprint> {
        (!sent.is_empty()).then(|| sent[usize::from(self.0) % sent.len()].clone())
    }
}

/// A fingerprint: one of the session's own, one of four fixed ones, or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum FpInput {
    /// A fingerprint the session returned from `send`.
    Sent(SentRef),
    /// `fp-0` … `fp-3`, so duplicates are frequent.
    Fixed(u8),
    /// Any string.
    Text(String),
}

impl FpInput {
    /// The fingerprint; a `Sent` with nothing sent yet falls back to `fp-0`.
    pub fn resolve(&self, sent: &[Fingerprint]) -> Fingerprint {
        match self {
            Self::Sent(r) => r.resolve(sent).unwrap_or_else(|| Fingerprint::from("fp-0")),
            Self::Fixed(n) => Fingerprint::new(format!("fp-{}", n % 4)),
            Self::Text(text) => Fingerprint::new(text.clone()),
        }
    }
}

/// A message the application sends.
#[derive(Arbitrary, Debug)]
pub struct MessageInput {
    to: Who,
    content: String,
    typeu: i32,
    qos: bool,
    /// `None` lets the session make one.
    fp: Option<FpInput>,
}

impl MessageInput {
    /// The message, its fingerprint resolved against what was sent.
    pub fn to_outgoing(&self, sent: &[Fingerprint]) -> Outgoing {
        let mut message = Outgoing::new(self.to.as_str(), self.content.as_str())
            .with_typeu(self.typeu)
            .with_qos(self.qos);
        message.fp = self.fp.as_ref().map(|fp| fp.resolve(sent));
        message
    }
}

/// A packet from the server, field by field.
#[derive(Arbitrary, Debug)]
pub struct PacketInput {
    bridge: bool,
    kind: KindInput,
    data: DataInput,
    from: Who,
    to: Who,
    fp: Option<FpInput>,
    qos: bool,
    typeu: i32,
    sm: i64,
}

/// A packet type: one the protocol defines, or any code.
#[derive(Arbitrary, Debug)]
enum KindInput {
    Known(u8),
    Code(i32),
}

/// What `dataContent` holds.
#[derive(Arbitrary, Debug)]
enum DataInput {
    Absent,
    LoginResponse {
        accepted: bool,
        code: i32,
        first_login_time: i64,
    },
    Error {
        not_logged_in: bool,
        code: i32,
        message: Option<String>,
    },
    Kickout {
        code: i32,
        reason: Option<String>,
    },
    KeepAlive,
    Fingerprint(FpInput),
    Text(String),
}

impl PacketInput {
    /// The packet, its fingerprints resolved against what was sent.
    pub fn to_packet(&self, sent: &[Fingerprint]) -> Packet {
        const KNOWN: [i32; 11] = [0, 1, 2, 3, 4, 5, 50, 51, 52, 53, 54];
        let kind = match self.kind {
            KindInput::Known(i) => PacketType::from_code(KNOWN[usize::from(i) % KNOWN.len()]),
            KindInput::Code(code) => PacketType::from_code(code),
        };
        let data_content = match &self.data {
            DataInput::Absent => None,
            DataInput::LoginResponse {
                accepted,
                code,
                first_login_time,
            } => Some(
                LoginResponse {
                    code: if *accepted { codes::OK } else { *code },
                    first_login_time: *first_login_time,
                }
                .to_json(),
            ),
            DataInput::Error {
                not_logged_in,
                code,
                message,
            } => Some(
                ErrorResponse {
                    error_code: if *not_logged_in {
                        codes::RESPONSE_FOR_UNLOGIN
                    } else {
                        *code
                    },
                    error_msg: message.clone(),
                }
                .to_json(),
            ),
            DataInput::Kickout { code, reason } => Some(
                Kickout {
                    code: *code,
                    reason: reason.clone(),
                }
                .to_json(),
            ),
            DataInput::KeepAlive => Some("{}".to_owned()),
            DataInput::Fingerprint(fp) => Some(fp.resolve(sent).as_str().to_owned()),
            DataInput::Text(text) => Some(text.clone()),
        };
        Packet {
            bridge: self.bridge,
            kind,
            data_content,
            from: Some(UserId::from(self.from.as_str())),
            to: Some(UserId::from(self.to.as_str())),
            fp: self.fp.as_ref().map(|fp| fp.resolve(sent)),
            qos: self.qos,
            typeu: self.typeu,
            sm: self.sm,
            seq: None,
        }
    }
}

/// The captured packet at `index` (wrapping).
pub fn captured(index: u8) -> Packet {
    let bodies = samples::body_list();
    let body = bodies[usize::from(index) % bodies.len()];
    Packet::decode(body.as_bytes()).expect("the captures decode")
}
