//! The client session's rules one at a time: login, keepalive, link timeout, auto-relogin,
//! 301, kickout, logout, QoS sending and receiving (§4.7, §5, §6.1, §6.3).

use std::time::Duration;

use hongyan_shared::client::{
    ClientEvent, ClientSession, ConnectionState, LoginError, SendError, SessionConfig,
    TransportCommand,
};
use hongyan_shared::{
    DedupConfig, ErrorResponse, Fingerprint, Instant, Kickout, LoginInfo, LoginResponse, Outgoing,
    Packet, PacketTooLarge, PacketType, Transport, codes,
};

const FIRST_LOGIN_TIME: i64 = 1_795_892_259_638;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

struct Harness {
    session: ClientSession,
    t0: Instant,
}

impl Harness {
    fn new(config: SessionConfig) -> Self {
        let t0 = Instant::now();
        Self {
            session: ClientSession::new(config, t0),
            t0,
        }
    }

    fn tcp() -> Self {
        Self::new(SessionConfig::new(Transport::Tcp, 7))
    }

    fn at(&self, offset_ms: u64) -> Instant {
        self.t0 + ms(offset_ms)
    }

    fn transmits(&mut self) -> Vec<Packet> {
        std::iter::from_fn(|| self.session.poll_transmit()).collect()
    }

    fn transport(&mut self) -> Vec<TransportCommand> {
        std::iter::from_fn(|| self.session.poll_transport()).collect()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn kinds(&mut self) -> Vec<PacketType> {
        self.transmits().into_iter().map(|p| p.kind).collect()
    }

    /// Advances through every deadline up to `offset_ms`, as a driver would.
    fn run_until(&mut self, offset_ms: u64) {
        let end = self.at(offset_ms);
        while let Some(next) = self.session.poll_timeout().filter(|t| *t <= end) {
            self.session.handle_timeout(next);
        }
    }

    fn receive(&mut self, packet: Packet, offset_ms: u64) {
        let now = self.at(offset_ms);
        self.session.handle_packet(packet, now);
    }

    fn accept_login(&mut self, offset_ms: u64) {
        self.receive(
            Packet::login_response(
                "alice",
                LoginResponse {
                    code: 0,
                    first_login_time: FIRST_LOGIN_TIME,
                },
            ),
            offset_ms,
        );
    }

    /// Logs in as alice at t0 and drains everything.
    fn online(mut self) -> Self {
        let t0 = self.t0;
        self.session
            .login(LoginInfo::new("alice", Some("tk"), None), t0)
            .unwrap();
        assert_eq!(self.transport(), [TransportCommand::Open]);
        self.session.handle_connected(t0);
        assert_eq!(self.kinds(), [PacketType::Login]);
        self.accept_login(0);
        assert_eq!(self.session.state(), ConnectionState::Online);
        self.events();
        self
    }
}

fn login_payload(packet: &Packet) -> LoginInfo {
    assert_eq!(packet.kind, PacketType::Login);
    LoginInfo::decode(packet.data_content.as_deref().unwrap()).unwrap()
}

#[test]
fn login_opens_a_connection_and_sends_the_login_once_it_is_up() {
    let mut h = Harness::tcp();
    h.session
        .login(LoginInfo::new("alice", Some("tk"), Some("ex")), h.t0)
        .unwrap();
    assert_eq!(h.transport(), [TransportCommand::Open]);
    assert!(
        h.transmits().is_empty(),
        "nothing is sent before the link is up"
    );
    assert_eq!(
        h.events(),
        [ClientEvent::StateChanged(ConnectionState::Connecting)]
    );
    h.session.handle_connected(h.t0);
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    let info = login_payload(&sent[0]);
    assert_eq!(info, LoginInfo::new("alice", Some("tk"), Some("ex")));
    h.accept_login(30);
    assert_eq!(
        h.events(),
        [
            ClientEvent::LoginResponse {
                code: 0,
                first_login_time: FIRST_LOGIN_TIME
            },
            ClientEvent::StateChanged(ConnectionState::Online)
        ]
    );
}

#[test]
fn reserved_user_ids_and_double_logins_are_refused() {
    let mut h = Harness::tcp();
    assert!(matches!(
        h.session.login(LoginInfo::new("0", None, None), h.t0),
        Err(LoginError::InvalidUserId(_))
    ));
    let mut h = h.online();
    assert_eq!(
        h.session.login(LoginInfo::new("alice", None, None), h.t0),
        Err(LoginError::AlreadyActive)
    );
}

#[test]
fn keepalives_start_one_interval_after_login_and_repeat() {
    let mut config = SessionConfig::new(Transport::Tcp, 7);
    config.keep_alive.interval = ms(3000);
    config.keep_alive.timeout = ms(5000);
    let mut h = Harness::new(config).online();
    h.run_until(2999);
    assert!(h.transmits().is_empty());
    for t in [3000, 6000, 9000] {
        h.run_until(t);
        let sent = h.transmits();
        assert_eq!(sent.len(), 1, "at {t} ms");
        assert_eq!(sent[0].to_json(), Packet::keep_alive("alice").to_json());
        h.receive(Packet::keep_alive_response("alice"), t + 10);
    }
    assert_eq!(h.session.state(), ConnectionState::Online);
}

#[test]
fn the_link_is_lost_when_no_keepalive_response_comes_within_the_timeout() {
    let mut config = SessionConfig::new(Transport::Tcp, 7);
    config.keep_alive.interval = ms(3000);
    config.keep_alive.timeout = ms(5000);
    let mut h = Harness::new(config).online();
    // First keepalive at 3000 ms starts the clock; the checker runs every 2000 ms from login.
    // 8000 - 3000 = 5000 ≥ timeout, so the check at 8000 ms declares the loss.
    h.run_until(7999);
    assert_eq!(h.session.state(), ConnectionState::Online);
    h.run_until(8000);
    assert_eq!(h.session.state(), ConnectionState::Reconnecting);
    let events = h.events();
    assert!(events.contains(&ClientEvent::LinkClosed));
    assert!(events.contains(&ClientEvent::StateChanged(ConnectionState::Reconnecting)));
    assert_eq!(
        h.transport(),
        [TransportCommand::Close, TransportCommand::Open],
        "closed, then the first relogin opens a new connection at once"
    );
}

#[test]
fn only_keepalive_responses_keep_the_link_alive() {
    let mut config = SessionConfig::new(Transport::Tcp, 7);
    config.keep_alive.interval = ms(3000);
    config.keep_alive.timeout = ms(5000);
    let mut h = Harness::new(config).online();
    h.run_until(3000);
    for t in (3100..8000).step_by(500) {
        h.receive(Packet::common_data("0", "alice", "x", None, 0), t);
    }
    h.run_until(8000);
    assert_eq!(h.session.state(), ConnectionState::Reconnecting);
}

#[test]
fn relogin_repeats_every_interval_on_a_new_connection_with_the_saved_first_login_time() {
    let mut h = Harness::new(SessionConfig::new(Transport::Udp, 7)).online();
    h.transmits();
    h.session.handle_disconnected(h.at(1000));
    assert_eq!(h.events()[0], ClientEvent::LinkClosed);
    h.run_until(1000);
    assert_eq!(h.transport(), [TransportCommand::Open], "immediately");
    h.session.handle_connected(h.at(1000));
    let info = login_payload(&h.transmits()[0]);
    assert_eq!(info.first_login_time, FIRST_LOGIN_TIME);
    h.run_until(2999);
    assert!(h.transport().is_empty());
    h.run_until(3000);
    assert_eq!(
        h.transport(),
        [TransportCommand::Open],
        "UDP: every 2000 ms"
    );
    h.session.handle_connected(h.at(3000));
    h.transmits();
    h.receive(
        Packet::login_response(
            "alice",
            LoginResponse {
                code: 0,
                first_login_time: 42,
            },
        ),
        3010,
    );
    assert_eq!(h.session.state(), ConnectionState::Online);
    assert_eq!(
        h.session.login_info().unwrap().first_login_time,
        FIRST_LOGIN_TIME,
        "only the first successful login's time is saved"
    );
    h.run_until(12_000);
    assert!(h.transport().is_empty(), "relogin stopped");
}

#[test]
fn tcp_relogs_in_every_three_seconds_while_the_server_is_down() {
    let mut h = Harness::tcp().online();
    h.session.handle_disconnected(h.at(500));
    let mut opens = Vec::new();
    let mut t = 500;
    while t <= 9600 {
        h.run_until(t);
        if !h.transport().is_empty() {
            opens.push(t);
            h.session.handle_disconnected(h.at(t));
        }
        t += 100;
    }
    assert_eq!(opens, [500, 3500, 6500, 9500]);
}

#[test]
fn a_301_stops_keepalives_and_relogs_in_after_one_interval() {
    let mut h = Harness::new(SessionConfig::new(Transport::Udp, 7)).online();
    let error = ErrorResponse {
        error_code: 301,
        error_msg: Some(Packet::keep_alive("alice").to_json()),
    };
    h.receive(Packet::error(&error), 3100);
    assert_eq!(h.session.state(), ConnectionState::Reconnecting);
    let events = h.events();
    assert!(events.contains(&ClientEvent::ErrorResponse {
        code: 301,
        message: error.error_msg.clone()
    }));
    h.run_until(5099);
    assert!(h.transport().is_empty());
    assert!(h.transmits().is_empty(), "no keepalive after a 301");
    h.run_until(5100);
    assert_eq!(h.transport(), [TransportCommand::Open]);
}

#[test]
fn error_1000_is_reported_as_rate_limited_and_the_message_is_retransmitted() {
    let mut h = Harness::tcp().online();
    let fp = h.session.send(Outgoing::new("0", "c2s"), h.at(0)).unwrap();
    h.transmits();
    let error = ErrorResponse {
        error_code: codes::RATE_LIMITED,
        error_msg: Some(fp.as_str().to_owned()),
    };
    h.receive(Packet::error(&error), 10);
    let events = h.events();
    assert_eq!(
        events,
        [ClientEvent::RateLimited {
            fp: Some(fp.clone())
        }]
    );
    assert_eq!(
        h.session.state(),
        ConnectionState::Online,
        "nothing else changes"
    );
    // Not acknowledged: the QoS schedule sends it again.
    h.run_until(10_000);
    assert!(h.transmits().iter().any(|p| p.fp.as_ref() == Some(&fp)));
}

#[test]
fn a_kickout_ends_the_session_without_relogin_and_reports_pending_messages_lost() {
    let mut h = Harness::tcp().online();
    let fp = h
        .session
        .send(Outgoing::new("bob", "hi"), h.at(10))
        .unwrap();
    h.transmits();
    let kickout = Kickout {
        code: 1,
        reason: None,
    };
    h.receive(Packet::kickout("alice", &kickout), 20);
    let events = h.events();
    assert_eq!(events[0], ClientEvent::Kickout(kickout));
    assert_eq!(events[1], ClientEvent::LinkClosed);
    assert!(matches!(&events[2], ClientEvent::MessagesLost(lost) if lost[0].fp == Some(fp)));
    assert_eq!(
        events[3],
        ClientEvent::StateChanged(ConnectionState::Offline)
    );
    assert_eq!(h.transport(), [TransportCommand::Close]);
    assert_eq!(h.session.poll_timeout(), None, "every timer stopped");
    h.run_until(60_000);
    assert!(h.transport().is_empty());
}

#[test]
fn logout_sends_type_3_before_closing() {
    let mut h = Harness::tcp().online();
    h.session.logout(h.at(100));
    let sent = h.transmits();
    assert_eq!(sent[0].to_json(), Packet::logout("alice").to_json());
    assert_eq!(h.transport(), [TransportCommand::Close]);
    assert_eq!(h.session.state(), ConnectionState::Offline);
    assert_eq!(
        h.session.send(Outgoing::new("bob", "x"), h.at(200)),
        Err(SendError::NotLoggedIn)
    );
}

#[test]
fn a_refused_first_login_ends_the_session() {
    let mut h = Harness::tcp();
    h.session
        .login(LoginInfo::new("alice", Some("bad"), None), h.t0)
        .unwrap();
    h.session.handle_connected(h.t0);
    h.transmits();
    h.transport();
    h.receive(
        Packet::login_response("-1", LoginResponse::refused(1025)),
        5,
    );
    assert_eq!(h.session.state(), ConnectionState::Offline);
    assert!(h.events().contains(&ClientEvent::LoginResponse {
        code: 1025,
        first_login_time: -1
    }));
    assert_eq!(h.transport(), [TransportCommand::Close]);
}

#[test]
fn a_refused_relogin_keeps_retrying() {
    let mut h = Harness::tcp().online();
    h.session.handle_disconnected(h.at(100));
    h.run_until(100);
    h.session.handle_connected(h.at(100));
    h.transmits();
    h.transport();
    h.receive(
        Packet::login_response("-1", LoginResponse::refused(1025)),
        110,
    );
    assert_eq!(h.session.state(), ConnectionState::Reconnecting);
    assert_eq!(h.transport(), [TransportCommand::Close]);
    h.run_until(3100);
    assert_eq!(h.transport(), [TransportCommand::Open]);
}

#[test]
fn a_lost_first_login_is_retried_on_the_relogin_interval() {
    let mut h = Harness::tcp();
    h.session
        .login(LoginInfo::new("alice", None, None), h.t0)
        .unwrap();
    h.transport();
    h.session.handle_disconnected(h.at(5));
    assert_eq!(h.session.state(), ConnectionState::Connecting);
    h.run_until(3000);
    assert_eq!(h.transport(), [TransportCommand::Open]);
}

#[test]
fn without_auto_relogin_a_lost_link_ends_the_session() {
    let mut config = SessionConfig::new(Transport::Tcp, 7);
    config.auto_relogin = false;
    let mut h = Harness::new(config).online();
    h.session.handle_disconnected(h.at(100));
    assert_eq!(h.session.state(), ConnectionState::Offline);
    assert_eq!(h.session.poll_timeout(), None);
}

#[test]
fn a_qos_message_is_sent_three_times_then_reported_lost() {
    let mut h = Harness::tcp().online();
    let fp = h
        .session
        .send(Outgoing::new("bob", "hi").with_typeu(5), h.at(0))
        .unwrap();
    let first = h.transmits();
    assert_eq!(first.len(), 1);
    assert!(first[0].qos);
    assert_eq!(first[0].typeu, 5);
    let mut copies = 1;
    let mut lost_at = None;
    for t in (100..=20_000).step_by(100) {
        h.run_until(t);
        for p in h.transmits() {
            if p.kind == PacketType::KeepAlive {
                h.receive(Packet::keep_alive_response("alice"), t);
            } else {
                assert_eq!(p.to_json(), first[0].to_json(), "identical resend");
                copies += 1;
            }
        }
        for e in h.events() {
            if let ClientEvent::MessagesLost(lost) = e {
                assert_eq!(lost[0].fp.as_ref(), Some(&fp));
                lost_at.get_or_insert(t);
            }
        }
    }
    assert_eq!(copies, 3);
    assert_eq!(lost_at, Some(15_000));
}

#[test]
fn an_ack_reports_delivery_once_and_stops_retransmission() {
    let mut h = Harness::tcp().online();
    let fp = h.session.send(Outgoing::new("0", "c2s"), h.at(0)).unwrap();
    h.transmits();
    h.receive(Packet::ack("0", "alice", &fp, false), 50);
    h.receive(Packet::ack("0", "alice", &fp, false), 60);
    assert_eq!(h.events(), [ClientEvent::MessageDelivered(fp)]);
    assert_eq!(h.session.pending(), 0);
    h.run_until(5000);
    assert!(
        h.transmits()
            .iter()
            .all(|p| p.kind != PacketType::CommonData)
    );
}

#[test]
fn an_ack_after_the_loss_report_is_not_reported() {
    let mut h = Harness::tcp().online();
    let fp = h.session.send(Outgoing::new("0", "c2s"), h.at(0)).unwrap();
    h.run_until(15_000);
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, ClientEvent::MessagesLost(_)))
    );
    h.receive(Packet::ack("0", "alice", &fp, false), 15_001);
    assert!(h.events().is_empty());
}

#[test]
fn the_retransmit_schedule_keeps_running_while_offline() {
    let mut h = Harness::tcp().online();
    h.session.send(Outgoing::new("bob", "hi"), h.at(0)).unwrap();
    h.session.handle_disconnected(h.at(1000));
    for t in (1000..=16_000).step_by(100) {
        h.run_until(t);
        if !h.transport().is_empty() {
            h.session.handle_disconnected(h.at(t));
        }
    }
    assert!(
        h.events()
            .iter()
            .any(|e| matches!(e, ClientEvent::MessagesLost(_)))
    );
}

#[test]
fn a_qos_message_sent_while_reconnecting_leaves_as_soon_as_the_login_succeeds() {
    let mut h = Harness::tcp().online();
    h.session.handle_disconnected(h.at(100));
    let fp = h
        .session
        .send(Outgoing::new("bob", "later"), h.at(200))
        .unwrap();
    assert_eq!(
        h.session.send(
            Outgoing::new("bob", "now or never").with_qos(false),
            h.at(200)
        ),
        Err(SendError::NotOnline)
    );
    h.run_until(200);
    h.session.handle_connected(h.at(200));
    assert_eq!(h.kinds(), [PacketType::Login]);
    h.accept_login(250);
    let sent = h.transmits();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].fp.as_ref(), Some(&fp));
}

#[test]
fn a_message_over_the_transport_limit_is_refused() {
    let mut config = SessionConfig::new(Transport::Tcp, 7);
    config.max_packet_len = 200;
    let mut h = Harness::new(config).online();
    assert!(matches!(
        h.session.send(Outgoing::new("bob", "x".repeat(200)), h.t0),
        Err(SendError::TooLarge(PacketTooLarge { max: 200, .. }))
    ));
    assert_eq!(h.session.pending(), 0);
}

#[test]
fn fingerprints_are_uuid_v4_and_distinct() {
    let mut h = Harness::tcp().online();
    let a = h.session.send(Outgoing::new("bob", "1"), h.t0).unwrap();
    let b = h.session.send(Outgoing::new("bob", "2"), h.t0).unwrap();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 36);
    assert_eq!(
        h.session
            .send(Outgoing::new("bob", "3").with_fingerprint(a.clone()), h.t0),
        Err(SendError::DuplicateFingerprint(a))
    );
}

#[test]
fn every_received_qos_packet_is_acked_but_delivered_once() {
    let mut h = Harness::tcp().online();
    let mut message = Packet::common_data("bob", "alice", "yo", Some("fp-1".into()), 9);
    message.bridge = true;
    h.receive(message.clone(), 10);
    h.receive(message, 20);
    let acks = h.transmits();
    assert_eq!(acks.len(), 2);
    for ack in &acks {
        assert_eq!(
            ack.to_json(),
            r#"{"bridge":true,"type":4,"dataContent":"fp-1","from":"alice","to":"bob","QoS":false,"typeu":-1,"sm":-1}"#
        );
    }
    let received: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::MessageReceived(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].content, "yo");
    assert_eq!(received[0].typeu, 9);
    assert_eq!(received[0].fp, Some(Fingerprint::from("fp-1")));
}

#[test]
fn a_qos_packet_without_a_fingerprint_is_neither_acked_nor_delivered() {
    let mut h = Harness::tcp().online();
    let mut message = Packet::common_data("bob", "alice", "yo", None, 0);
    message.qos = true;
    h.receive(message, 10);
    assert!(h.transmits().is_empty());
    assert!(h.events().is_empty());
}

#[test]
fn a_refused_qos_login_response_is_not_acked() {
    let mut h = Harness::tcp();
    h.session
        .login(LoginInfo::new("alice", None, None), h.t0)
        .unwrap();
    h.session.handle_connected(h.t0);
    h.transmits();
    let mut refused = Packet::login_response("-1", LoginResponse::refused(1025));
    refused.qos = true;
    refused.fp = Some("fp-login".into());
    h.receive(refused, 5);
    assert!(h.transmits().is_empty());
}

#[test]
fn dedup_survives_a_relogin() {
    let mut h = Harness::tcp().online();
    let message = Packet::common_data("0", "alice", "s2c", Some("fp-s2c".into()), 0);
    h.receive(message.clone(), 10);
    h.session.handle_disconnected(h.at(20));
    h.run_until(20);
    h.session.handle_connected(h.at(20));
    h.accept_login(30);
    h.events();
    h.receive(message, 40);
    assert!(
        !h.events()
            .iter()
            .any(|e| matches!(e, ClientEvent::MessageReceived(_))),
        "the server's retransmission after the relogin is a duplicate"
    );
}

/// The session's promise is "once while it remembers the fingerprint" (§6.3): an application
/// that keeps messages longer (the browser's conversation) drops later copies itself.
#[test]
fn a_copy_after_the_dedup_lifetime_is_delivered_again() {
    let mut config = SessionConfig::new(Transport::Tcp, 7);
    config.dedup = DedupConfig {
        lifetime: ms(1000),
        sweep_interval: ms(1000),
        ..DedupConfig::default()
    };
    let mut h = Harness::new(config).online();
    let message = Packet::common_data("bob", "alice", "late", Some("fp-late".into()), 0);
    h.receive(message.clone(), 10);
    h.receive(message.clone(), 500);
    let received = |events: Vec<ClientEvent>| {
        events
            .iter()
            .filter(|e| matches!(e, ClientEvent::MessageReceived(_)))
            .count()
    };
    assert_eq!(received(h.events()), 1);
    h.run_until(2500);
    h.receive(message, 2600);
    assert_eq!(received(h.events()), 1, "forgotten after its lifetime");
}

#[test]
fn packets_arriving_while_the_link_is_down_are_ignored() {
    let mut h = Harness::tcp().online();
    h.session.handle_disconnected(h.at(10));
    h.events();
    h.receive(
        Packet::common_data("bob", "alice", "late", Some("fp".into()), 0),
        20,
    );
    assert!(h.events().is_empty());
    assert!(h.transmits().is_empty());
}
