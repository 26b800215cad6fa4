//! No UDP amplification (§3.2, §8.1 item 6): whatever a peer that may be spoofed and has not
//! logged in sends, the answers to one packet together are never larger than it, and a real
//! client's login still gets its answer.

use std::time::Duration;

use hongyan_shared::{LoginInfo, Packet, PacketType, Transport, codes};

use super::harness::{Event, Harness, T0, kinds};
use crate::core::Flow;

/// A login as the Java UDP client sends it (docs/PROTOCOL.md §1.4, the wire samples).
fn java_login(user: &str, token: Option<&str>, first_login_time: i64) -> Vec<u8> {
    let mut info = LoginInfo::new(user, token, None);
    info.first_login_time = first_login_time;
    Packet::login(&info).to_json().into_bytes()
}

fn is_compact(body: &[u8]) -> bool {
    !String::from_utf8_lossy(body).contains("\"bridge\"")
}

#[test]
fn real_udp_logins_get_their_full_answer() {
    for server_timestamp in [false, true] {
        let h = Harness::with(|c| c.server_timestamp = server_timestamp);
        let mut peer = h.open(Transport::Udp);
        let login = java_login("udp5620A", Some("tok-udp5620A"), 0);
        assert_eq!(login.len(), 183, "the captured login's size");
        assert_eq!(h.receive_bytes(&mut peer, &login), Flow::Continue);
        let written = peer.written_bytes();
        assert_eq!(written.len(), 1);
        assert!(
            !is_compact(&written[0]),
            "{}",
            String::from_utf8_lossy(&written[0])
        );
        assert!(written[0].len() <= login.len());
        assert!(h.handle().is_online(&"udp5620A".into()));
    }
}

#[test]
fn a_login_whose_full_answer_would_be_larger_gets_the_compact_one() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Udp);
    // No token and a one-letter id: 3 bytes shorter than the full answer.
    let login = java_login("a", None, 0);
    assert_eq!(h.receive_bytes(&mut peer, &login), Flow::Continue);
    let written = peer.written_bytes();
    assert_eq!(written.len(), 1);
    assert!(
        is_compact(&written[0]),
        "{}",
        String::from_utf8_lossy(&written[0])
    );
    assert!(written[0].len() <= login.len());
    let answer = Packet::decode(&written[0]).unwrap();
    assert_eq!(answer.kind, PacketType::LoginResponse);
    assert!(h.handle().is_online(&"a".into()));
}

#[test]
fn a_login_too_small_for_any_answer_is_ignored_and_not_verified() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Udp);
    let login = br#"{"dataContent":"{\"loginUserId\":\"a\"}"}"#;
    assert_eq!(h.receive_bytes(&mut peer, login), Flow::Continue);
    assert!(peer.written().is_empty());
    assert!(!h.handle().is_online(&"a".into()));
    assert_eq!(h.hooks.take(), []);
    assert!(peer.session.user().is_none());
}

#[test]
fn a_refusal_is_no_larger_than_the_login_either() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Udp);
    let login = java_login("b", Some("refuse-1025"), 0);
    assert_eq!(h.receive_bytes(&mut peer, &login), Flow::Continue);
    let written = peer.written_bytes();
    assert_eq!(written.len(), 1);
    assert!(written[0].len() <= login.len());
    assert_eq!(
        kinds(&[Packet::decode(&written[0]).unwrap()]),
        [PacketType::LoginResponse]
    );
}

/// What a stale UDP instance of `alice` is sent for `login`, checked to fit in it.
fn stale_answers(login: &[u8]) -> Vec<PacketType> {
    let h = Harness::new();
    // A `firstLoginTime` from the future counts as now (§4.3): let the clock pass it first.
    h.advance(Duration::from_millis(100));
    let mut current = h.open(Transport::Tcp);
    h.login(&mut current, "alice", T0 + 50);
    h.hooks.take();
    let mut stale = h.open(Transport::Udp);
    assert_eq!(h.receive_bytes(&mut stale, login), Flow::Continue);
    let written = stale.written_bytes();
    let total: usize = written.iter().map(Vec::len).sum();
    assert!(total <= login.len(), "{total} > {}", login.len());
    assert_eq!(h.hooks.take(), [], "the current session stays online");
    assert!(stale.session.user().is_none());
    written
        .iter()
        .map(|b| Packet::decode(b).unwrap().kind)
        .collect()
}

#[test]
fn a_stale_udp_instance_gets_its_answer_and_kickout_within_its_login() {
    // As the Java client sends it, with a token: the answer (full) and the kickout fit.
    assert_eq!(
        stale_answers(&java_login("alice", Some("tok-alice"), T0)),
        [PacketType::LoginResponse, PacketType::Kickout]
    );
}

#[test]
fn a_stale_udp_instance_too_small_for_both_gets_the_kickout_that_stops_it() {
    // Without a token, an answer and a kickout together would be larger than the login.
    assert_eq!(
        stale_answers(&java_login("alice", None, T0)),
        [PacketType::Kickout]
    );
}

#[test]
fn logins_on_connections_are_answered_in_full_whatever_their_size() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Tcp);
    let login = br#"{"dataContent":"{\"loginUserId\":\"a\"}"}"#;
    assert_eq!(h.receive_bytes(&mut peer, login), Flow::Continue);
    let written = peer.written_bytes();
    assert_eq!(written.len(), 1);
    assert!(!is_compact(&written[0]));
    assert_eq!(h.hooks.take(), [Event::Login("a".into())]);
    let answer = Packet::decode(&written[0]).unwrap();
    let code = hongyan_shared::LoginResponse::decode(answer.data_content.as_deref().unwrap())
        .unwrap()
        .code;
    assert_eq!(code, codes::OK);
}
