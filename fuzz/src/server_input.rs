//! The operations that drive the server's protocol core (`hongyan_server::engine::Core`),
//! decoded from the fuzz input with `arbitrary`: peers connecting over each transport and
//! leaving, packets from hostile clients (built field by field, taken from the captures, or
//! raw bytes), session loops that drain their outboxes or not, pushes and kicks from the
//! application, and the passing of time.
//!
//! As in [`session_input`](crate::session_input), values that must match for anything to
//! happen (user ids, fingerprints, `firstLoginTime`s) are drawn mostly from small sets or from
//! what the server already sent, with an arbitrary value always possible.

use std::time::Duration;

use arbitrary::Arbitrary;
use hongyan_server::Config;
use hongyan_shared::{
    DedupConfig, Fingerprint, LoginInfo, Packet, PacketType, RetransmitSchedule, SenseMode,
    Transport, UserId,
};

use crate::session_input::{PacketInput, Who};

/// One run: a configuration, then operations until the input ends.
#[derive(Arbitrary, Debug)]
pub struct ServerRun {
    /// How the server is tuned.
    pub config: ServerConfigInput,
    /// What happens to it, in order.
    pub ops: Vec<ServerOp>,
}

/// The bounds and timings a run uses: small, so that every bound is reached and every timer
/// fires within a run. Counts that the configuration file refuses at zero stay positive, and
/// so do the retransmission tick and the de-duplication sweep (neither is a user setting): a
/// zero interval would ask to be called again at the very instant it was handled, for ever.
#[derive(Arbitrary, Debug)]
pub struct ServerConfigInput {
    outbox_capacity: u8,
    slow_consumer_ms: u16,
    max_queued_bytes: u16,
    max_in_flight: u8,
    max_in_flight_per_user: u8,
    max_in_flight_bytes_per_user: u16,
    login_timeout_ms: u16,
    s2c_check_ms: u16,
    s2c_just_sent_ms: u16,
    s2c_retries: u8,
    dedup_lifetime_ms: u16,
    dedup_sweep_ms: u16,
    dedup_capacity: u8,
    dedup_max_bytes: u16,
    sense_mode: Option<u8>,
    udp_max_outbound: Option<u16>,
    server_timestamp: bool,
    /// Whether the application stores messages for offline receivers.
    pub store_offline: bool,
}

impl ServerConfigInput {
    /// The server configuration this input describes.
    pub fn to_config(&self) -> Config {
        let ms = |v: u16| Duration::from_millis(u64::from(v));
        let positive = |v: u8| usize::from(v).max(1);
        let mut config = Config::loopback();
        config.outbox_capacity = positive(self.outbox_capacity % 16);
        config.slow_consumer_stall = ms(self.slow_consumer_ms);
        config.max_queued_bytes = usize::from(self.max_queued_bytes).max(1);
        config.max_in_flight = positive(self.max_in_flight % 32);
        config.max_in_flight_per_user = positive(self.max_in_flight_per_user % 16);
        config.max_in_flight_bytes_per_user = usize::from(self.max_in_flight_bytes_per_user).max(1);
        config.login_timeout = ms(self.login_timeout_ms.max(1));
        config.s2c_schedule = RetransmitSchedule {
            check_interval: ms(self.s2c_check_ms.max(1)),
            just_sent: ms(self.s2c_just_sent_ms),
            max_retries: u32::from(self.s2c_retries % 4),
        };
        config.dedup = DedupConfig {
            lifetime: ms(self.dedup_lifetime_ms),
            sweep_interval: ms(self.dedup_sweep_ms.max(1)),
            capacity: positive(self.dedup_capacity % 32),
            max_bytes: usize::from(self.dedup_max_bytes),
        };
        if let Some(mode) = self.sense_mode {
            let mode = Some(SenseMode::ALL[usize::from(mode) % SenseMode::ALL.len()]);
            config.tcp_sense_mode = mode;
            config.udp_sense_mode = mode;
            config.ws_sense_mode = mode;
        }
        if let Some(max) = self.udp_max_outbound {
            config.udp_max_outbound = usize::from(max).max(1);
        }
        config.server_timestamp = self.server_timestamp;
        config
    }
}

/// A transport a peer connects over.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum TransportInput {
    /// A TCP connection.
    Tcp,
    /// A UDP address (a pseudo-session, lasting only if it logs in).
    Udp,
    /// A WebSocket connection.
    WebSocket,
}

impl TransportInput {
    /// The transport.
    pub fn transport(self) -> Transport {
        match self {
            Self::Tcp => Transport::Tcp,
            Self::Udp => Transport::Udp,
            Self::WebSocket => Transport::WebSocket,
        }
    }
}

/// One thing that happens to the server. `conn` picks one of the open sessions (wrapping).
#[derive(Arbitrary, Debug)]
pub enum ServerOp {
    /// A peer connects (TCP, WebSocket) or a new address sends its first datagram (UDP, whose
    /// session opens with that datagram, which follows).
    Open(TransportInput, ClientPacket),
    /// A peer sends a packet.
    Send {
        /// Which session.
        conn: u8,
        /// What it sends.
        packet: ClientPacket,
    },
    /// The session's loop takes what other sessions, pushes and kicks queued for it (up to
    /// this many items; a session whose loop never does is a peer that does not read).
    Drain {
        /// Which session.
        conn: u8,
        /// How many items at most.
        items: u8,
    },
    /// The peer goes away (a connection closed, a UDP session forgotten).
    Leave {
        /// Which session.
        conn: u8,
    },
    /// Every later write on the session fails, as on a socket whose peer vanished.
    FailWrites {
        /// Which session.
        conn: u8,
    },
    /// The application pushes a message.
    Push {
        /// To whom.
        to: Who,
        /// With QoS.
        qos: bool,
        /// Its fingerprint.
        fp: FpChoice,
        /// Its content.
        content: String,
    },
    /// The application kicks a user.
    Kick {
        /// Whom.
        user: Who,
        /// An application code instead of the administrator's 2.
        code: Option<i32>,
    },
    /// Time passes by this many milliseconds, then every deadline due is handled.
    Wait(u16),
    /// Time moves to the earliest deadline, which is then handled.
    WaitForTimeout,
}

/// What a hostile client sends.
#[derive(Arbitrary, Debug)]
pub enum ClientPacket {
    /// A login.
    Login {
        /// As whom.
        user: Who,
        /// Its token: `refuse` makes the application refuse it.
        refused: bool,
        /// The `firstLoginTime` it carries.
        first_login_time: LoginTime,
        /// A login without a payload.
        empty: bool,
    },
    /// A message to a user or the server.
    Data {
        /// To whom.
        to: Who,
        /// With QoS.
        qos: bool,
        /// Its fingerprint, if any.
        fp: Option<FpChoice>,
        /// Its content.
        content: String,
        /// Its `typeu`.
        typeu: i32,
    },
    /// An acknowledgement.
    Ack {
        /// Of which fingerprint.
        fp: FpChoice,
        /// In whose name: `Alice` stands for the session's own user.
        from: Who,
    },
    /// A keepalive.
    KeepAlive,
    /// An echo.
    Echo(String),
    /// A logout.
    Logout,
    /// Any packet, field by field.
    Fields(PacketInput),
    /// A captured packet (index into the captures).
    Captured(u8),
    /// Raw bytes.
    Raw(Vec<u8>),
}

/// A `firstLoginTime`: 0 (a new instance), one the server answered before (the same instance
/// logging in again), or any value.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum LoginTime {
    /// 0.
    New,
    /// One the server answered (by index, wrapping), or 0 if none yet.
    Answered(u8),
    /// Any value.
    Any(i64),
}

/// A fingerprint: one the server wrote to a client, one of four fixed ones, or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum FpChoice {
    /// A fingerprint the server sent a client (by index, wrapping), or `fp-0` if none yet.
    Seen(u8),
    /// `fp-0` … `fp-3`, so duplicates are frequent.
    Fixed(u8),
    /// Any string.
    Text(String),
}

/// What the harness has seen that inputs may refer back to.
#[derive(Debug, Default)]
pub struct Seen {
    /// Fingerprints of QoS packets the server wrote to clients.
    pub fps: Vec<Fingerprint>,
    /// `firstLoginTime`s the server answered.
    pub login_times: Vec<i64>,
}

impl FpChoice {
    /// The fingerprint it names.
    pub fn resolve(&self, seen: &Seen) -> Fingerprint {
        match self {
            Self::Seen(i) if !seen.fps.is_empty() => {
                seen.fps[usize::from(*i) % seen.fps.len()].clone()
            }
            Self::Seen(_) => Fingerprint::from("fp-0"),
            Self::Fixed(n) => Fingerprint::new(format!("fp-{}", n % 4)),
            Self::Text(text) => Fingerprint::new(text.clone()),
        }
    }
}

impl LoginTime {
    fn resolve(self, seen: &Seen) -> i64 {
        match self {
            Self::New => 0,
            Self::Answered(i) if !seen.login_times.is_empty() => {
                seen.login_times[usize::from(i) % seen.login_times.len()]
            }
            Self::Answered(_) => 0,
            Self::Any(t) => t,
        }
    }
}

impl ClientPacket {
    /// The bytes the peer sends. `me` is the user the session logged in as, if any: a client
    /// names itself in `from`.
    pub fn to_bytes(&self, me: Option<&UserId>, seen: &Seen) -> Vec<u8> {
        let me = me.map_or("alice", UserId::as_str);
        let packet = match self {
            Self::Login {
                user,
                refused,
                first_login_time,
                empty,
            } => {
                let token = if *refused { "refuse" } else { "ok" };
                let mut info = LoginInfo::new(user.as_str(), Some(token), None);
                info.first_login_time = first_login_time.resolve(seen);
                let mut login = Packet::login(&info);
                if *empty {
                    login.data_content = None;
                }
                login
            }
            Self::Data {
                to,
                qos,
                fp,
                content,
                typeu,
            } => {
                let fp = fp.as_ref().map(|fp| fp.resolve(seen));
                let mut data = Packet::common_data(me, to.as_str(), content.clone(), fp, *typeu);
                data.qos = *qos;
                data
            }
            Self::Ack { fp, from } => {
                let fp = fp.resolve(seen);
                let from = match from {
                    Who::Alice => me,
                    other => other.as_str(),
                };
                Packet::ack(from, UserId::SERVER, &fp, false)
            }
            Self::KeepAlive => Packet::keep_alive(me),
            Self::Echo(text) => Packet::new(PacketType::Echo, Some(text.clone()), me, "0"),
            Self::Logout => Packet::logout(me),
            Self::Fields(fields) => fields.to_packet(&seen.fps),
            Self::Captured(index) => crate::session_input::captured(*index),
            Self::Raw(bytes) => return bytes.clone(),
        };
        packet.to_json().into_bytes()
    }
}
