//! The client session state machine (`ClientSession`) driven by an arbitrary sequence of
//! operations: logins, sends and logouts; connects and disconnects (requested or not);
//! packets from a hostile server, built field by field, taken from the captures, or raw
//! bytes that decode; and time moving forward by arbitrary steps or to the next deadline.
//! After every operation the driver drains every output, as a real one does.
//!
//! Checks, after every operation:
//! - no panic (and none of the session's own debug assertions, which the fuzz build enables);
//! - every QoS `send` that returned a fingerprint is reported delivered or lost at most once,
//!   never both, and never retransmitted after that report; the session's pending count is
//!   exactly the number of QoS messages not yet reported;
//! - a received QoS message reaches the application only after it was acknowledged, and a copy
//!   of one the dedup window must still remember (seen within its lifetime, the window never
//!   full, the session not ended since) is acknowledged but not delivered again;
//! - a sent message never exceeds the configured packet limit;
//! - bounded output: the packets one operation makes are at most the pending messages plus
//!   two, and the events queue is drained;
//! - state changes are reported once each and end at the session's state, and an offline
//!   session has no timer and nothing pending;
//! - after `handle_timeout(now)`, `poll_timeout` is never in the past;
//!
//! and at the end, after a logout, every QoS message has been reported exactly once.

#![no_main]

use std::collections::{HashMap, HashSet};

use hongyan_fuzz::clock::Clock;
use hongyan_fuzz::session_input::{Op, SessionRun, captured};
use hongyan_shared::{
    ClientEvent, ClientSession, ConnectionState, Fingerprint, Instant, LoginInfo, LoginResponse,
    Packet, PacketType, UserId,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|run: SessionRun| {
    let mut clock = Clock::new();
    let mut driver = Driver::new(ClientSession::new(run.config.to_config(), clock.now()));
    for op in &run.ops {
        driver.apply(op, &mut clock);
    }
    driver.session.logout(clock.now());
    driver.drain(clock.now());
    assert!(
        driver.outstanding.is_empty(),
        "a QoS message was never reported"
    );
    assert_eq!(driver.session.pending(), 0);
});

/// The application and transport around the session, and what they have seen of it.
struct Driver {
    session: ClientSession,
    /// Every fingerprint a QoS `send` returned, in order: what `SentRef` picks from.
    sent: Vec<Fingerprint>,
    /// QoS messages sent and not yet reported delivered or lost.
    outstanding: HashSet<Fingerprint>,
    /// The fingerprints the session acknowledged since it last ended, and when: what its dedup
    /// window must remember for the configured lifetime, unless it was ever full.
    acked: HashMap<String, Instant>,
    /// Whether the dedup window may have evicted a fingerprint (it reached its capacity).
    window_was_full: bool,
}

impl Driver {
    fn new(session: ClientSession) -> Self {
        Self {
            session,
            sent: Vec::new(),
            outstanding: HashSet::new(),
            acked: HashMap::new(),
            window_was_full: false,
        }
    }

    /// Applies `op`, then drains every output and checks the invariants.
    fn apply(&mut self, op: &Op, clock: &mut Clock) {
        let now = clock.now();
        match op {
            Op::Login {
                user,
                token,
                first_login_time,
            } => {
                let mut info = LoginInfo::new(user.as_str(), token.as_deref(), None);
                info.first_login_time = *first_login_time;
                let _ = self.session.login(info, now);
            }
            Op::Send(message) => {
                let message = message.to_outgoing(&self.sent);
                let qos = message.qos;
                if let Ok(fp) = self.session.send(message, now)
                    && qos
                {
                    assert!(self.outstanding.insert(fp.clone()), "{fp} pending twice");
                    self.sent.push(fp);
                }
            }
            Op::Logout => self.session.logout(now),
            Op::Connected => self.session.handle_connected(now),
            Op::Disconnected => self.session.handle_disconnected(now),
            Op::Receive(packet) => self.receive(packet.to_packet(&self.sent), now),
            Op::Captured(index) => self.receive(captured(*index), now),
            Op::Raw(bytes) => {
                if let Ok(packet) = Packet::decode(bytes) {
                    self.receive(packet, now);
                }
            }
            Op::Ack(sent) => {
                if let Some(fp) = sent.resolve(&self.sent) {
                    let me = self.me();
                    self.receive(Packet::ack(UserId::SERVER, &me, &fp, false), now);
                }
            }
            Op::LoginAccepted { first_login_time } => {
                let response = LoginResponse {
                    code: 0,
                    first_login_time: *first_login_time,
                };
                let me = self.me();
                self.receive(Packet::login_response(&me, response), now);
            }
            Op::Wait(ms) => {
                let now = clock.advance(std::time::Duration::from_millis(u64::from(*ms)));
                self.session.handle_timeout(now);
                self.check_deadline(now);
            }
            Op::WaitForTimeout => {
                if let Some(deadline) = self.session.poll_timeout() {
                    clock.advance_to(deadline);
                }
                let now = clock.now();
                self.session.handle_timeout(now);
                self.check_deadline(now);
            }
        }
        self.drain(clock.now());
    }

    fn receive(&mut self, packet: Packet, now: Instant) {
        self.session.handle_packet(packet, now);
    }

    /// The session's user, or `"alice"` before a login.
    fn me(&self) -> String {
        self.session
            .user_id()
            .map_or_else(|| "alice".to_owned(), UserId::to_string)
    }

    fn check_deadline(&self, now: Instant) {
        if let Some(deadline) = self.session.poll_timeout() {
            assert!(
                deadline >= now,
                "poll_timeout is in the past after handle_timeout"
            );
        }
    }

    /// Drains every output in the documented order and checks what came out.
    fn drain(&mut self, now: Instant) {
        let config = self.session.config();
        let max_packet_len = config.max_packet_len;
        let dedup = config.dedup;
        let mut transmitted = 0;
        let mut acked = HashSet::new();
        while let Some(packet) = self.session.poll_transmit() {
            transmitted += 1;
            match packet.kind {
                PacketType::CommonData => {
                    assert!(
                        packet.to_json().len() <= max_packet_len,
                        "over the packet limit"
                    );
                    if let Some(fp) = packet.qos_fingerprint() {
                        assert!(
                            self.outstanding.contains(fp),
                            "{fp} transmitted after it was reported"
                        );
                    }
                }
                PacketType::Ack => {
                    acked.insert(packet.data_content.unwrap_or_default());
                }
                _ => {}
            }
        }
        assert!(
            transmitted <= self.outstanding.len() + 2,
            "{transmitted} packets for {} pending messages",
            self.outstanding.len()
        );
        while self.session.poll_transport().is_some() {}

        let remembered: HashSet<String> = acked
            .iter()
            .filter(|fp| {
                !self.window_was_full
                    && self
                        .acked
                        .get(*fp)
                        .is_some_and(|seen| now.saturating_duration_since(*seen) < dedup.lifetime)
            })
            .cloned()
            .collect();
        for fp in &acked {
            self.acked.insert(fp.clone(), now);
        }
        self.window_was_full |= self.acked.len() >= dedup.capacity;

        let mut last_state = None;
        while let Some(event) = self.session.poll_event() {
            match event {
                ClientEvent::MessageDelivered(fp) => {
                    assert!(
                        self.outstanding.remove(&fp),
                        "{fp} reported twice or never sent"
                    );
                }
                ClientEvent::MessagesLost(packets) => {
                    assert!(!packets.is_empty(), "an empty loss report");
                    for packet in packets {
                        assert!(packet.qos, "a message without QoS reported lost");
                        let fp = packet.fp.expect("a QoS message has a fingerprint");
                        assert!(
                            self.outstanding.remove(&fp),
                            "{fp} reported twice or never sent"
                        );
                    }
                }
                ClientEvent::MessageReceived(message) => {
                    if let Some(fp) = message
                        .fp
                        .as_ref()
                        .filter(|fp| message.qos && !fp.is_empty())
                    {
                        assert!(acked.contains(fp.as_str()), "{fp} delivered without an ack");
                        assert!(!remembered.contains(fp.as_str()), "{fp} delivered twice");
                    }
                }
                ClientEvent::StateChanged(state) => {
                    assert_ne!(last_state, Some(state), "a state change reported twice");
                    if state == ConnectionState::Offline {
                        // The session ended: its dedup window starts empty again.
                        self.acked.clear();
                        self.window_was_full = false;
                    }
                    last_state = Some(state);
                }
                _ => {}
            }
        }
        if let Some(state) = last_state {
            assert_eq!(
                state,
                self.session.state(),
                "the last state change is not the state"
            );
        }
        assert_eq!(self.session.pending(), self.outstanding.len());
        if self.session.state() == ConnectionState::Offline {
            assert!(self.outstanding.is_empty(), "offline with messages pending");
            assert_eq!(self.session.poll_timeout(), None, "offline with a timer");
        }
    }
}
