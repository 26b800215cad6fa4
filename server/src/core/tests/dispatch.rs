//! The type table (§4.1), 301 before login (§4.5), keepalive (§5), echo, bad input.

use hongyan_shared::{ErrorResponse, Packet, PacketType, Transport, codes};

use super::harness::{Harness, data, kinds};
use crate::core::Flow;

fn error_code(packet: &Packet) -> i32 {
    ErrorResponse::decode(packet.data_content.as_deref().unwrap())
        .unwrap()
        .error_code
}

#[test]
fn a_packet_before_login_gets_a_301_and_a_connection_is_then_closed() {
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let h = Harness::new();
        let mut peer = h.open(transport);
        let request = data("alice", "bob", "fp-1");
        assert_eq!(h.receive(&mut peer, &request), Flow::Close, "{transport}");
        assert!(
            peer.pipe.is_flushed(),
            "the 301 is flushed before the close"
        );
        let written = peer.written();
        assert_eq!(kinds(&written), [PacketType::Error]);
        assert_eq!(error_code(&written[0]), codes::RESPONSE_FOR_UNLOGIN);
        let embedded = ErrorResponse::decode(written[0].data_content.as_deref().unwrap())
            .unwrap()
            .error_msg
            .unwrap();
        assert_eq!(Packet::decode(embedded.as_bytes()).unwrap().fp, request.fp);
    }
}

#[test]
fn a_udp_pseudo_session_stays_after_a_301() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Udp);
    let mut request = data("alice", "bob", "fp-1");
    request.data_content = Some("x".repeat(400));
    assert_eq!(h.receive(&mut peer, &request), Flow::Continue);
    let written = peer.written();
    assert_eq!(kinds(&written), [PacketType::Error]);
    assert_eq!(error_code(&written[0]), codes::RESPONSE_FOR_UNLOGIN);
}

#[test]
fn a_udp_301_is_never_larger_than_its_request() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Udp);
    // A keepalive is smaller than the full 301 that would embed it: the compact one fits.
    let keepalive = Packet::keep_alive("alice").to_json();
    assert_eq!(
        h.receive_bytes(&mut peer, keepalive.as_bytes()),
        Flow::Continue
    );
    let written = peer.written_bytes();
    assert_eq!(written.len(), 1);
    assert!(
        written[0].len() <= keepalive.len(),
        "{} bytes",
        written[0].len()
    );
    assert_eq!(
        error_code(&Packet::decode(&written[0]).unwrap()),
        codes::RESPONSE_FOR_UNLOGIN
    );
    // Smaller than even the compact 301: no answer at all.
    let tiny = br#"{"type":1}"#;
    assert_eq!(h.receive_bytes(&mut peer, tiny), Flow::Continue);
    assert!(peer.written().is_empty());
}

#[test]
fn echo_is_answered_except_to_an_unauthenticated_udp_peer() {
    let h = Harness::new();
    let echo = Packet::new(PacketType::Echo, Some("ping".into()), "x", "0");

    let mut tcp = h.open(Transport::Tcp);
    assert_eq!(h.receive(&mut tcp, &echo), Flow::Continue);
    let written = tcp.written();
    assert_eq!(kinds(&written), [PacketType::EchoResponse]);
    assert_eq!(written[0].data_content.as_deref(), Some("ping"));

    let mut udp = h.open(Transport::Udp);
    assert_eq!(h.receive(&mut udp, &echo), Flow::Continue);
    assert!(udp.written().is_empty(), "no amplification");

    let mut udp = h.online(Transport::Udp, "alice");
    assert_eq!(h.receive(&mut udp, &echo), Flow::Continue);
    assert_eq!(kinds(&udp.written()), [PacketType::EchoResponse]);
}

#[test]
fn a_reply_over_the_pipe_limit_is_dropped_not_truncated() {
    let h = Harness::new();
    let mut udp = h.online(Transport::Udp, "alice");
    let big = Packet::new(PacketType::Echo, Some("x".repeat(1500)), "alice", "0");
    assert_eq!(h.receive(&mut udp, &big), Flow::Continue);
    assert!(udp.written().is_empty());
}

#[test]
fn a_keepalive_is_answered_on_the_users_current_online_session() {
    let h = Harness::new();
    let mut old = h.online(Transport::Udp, "alice");
    let first_login_time = h
        .core
        .registry
        .info(&"alice".into())
        .unwrap()
        .first_login_time;
    // The same client instance comes back on a new address: the old one is displaced.
    let mut new = h.open(Transport::Udp);
    h.login(&mut new, "alice", first_login_time);
    assert!(h.deliver(&mut old) == Flow::Continue && old.written().is_empty());

    assert_eq!(
        h.receive(&mut old, &Packet::keep_alive("alice")),
        Flow::Continue
    );
    assert!(old.written().is_empty(), "not on the displaced session");
    h.deliver(&mut new);
    assert_eq!(kinds(&new.written()), [PacketType::KeepAliveResponse]);

    assert_eq!(
        h.receive(&mut new, &Packet::keep_alive("alice")),
        Flow::Continue
    );
    let written = new.written();
    assert_eq!(kinds(&written), [PacketType::KeepAliveResponse]);
    assert_eq!(written[0].to_str(), "alice");
}

#[test]
fn unknown_types_are_ignored_and_malformed_input_closes() {
    let h = Harness::new();
    let mut peer = h.online(Transport::Tcp, "alice");
    assert_eq!(
        h.receive_bytes(&mut peer, br#"{"type":77,"from":"alice","to":"0"}"#),
        Flow::Continue
    );
    assert!(peer.written().is_empty());
    assert_eq!(h.receive_bytes(&mut peer, b"not json"), Flow::Close);
    assert_eq!(
        h.receive_bytes(&mut h.open(Transport::Udp), b"{"),
        Flow::Close
    );
}

#[test]
fn logout_closes_the_session_and_takes_its_user_offline() {
    let h = Harness::new();
    let mut peer = h.online(Transport::Tcp, "alice");
    assert_eq!(h.receive(&mut peer, &Packet::logout("alice")), Flow::Close);
    h.core.close_session(&mut peer.session);
    assert!(!h.handle().is_online(&"alice".into()));
    assert_eq!(
        h.hooks.take(),
        [super::harness::Event::Logout("alice".into(), None)]
    );
}
