//! The abuse limits the core applies (§8.1 item 18), hit and released by moving the clock:
//! messages per session, logins per address and in total, and exemptions from them.

use std::time::Duration;

use hongyan_shared::{
    ErrorResponse, LoginInfo, LoginResponse, Packet, PacketType, Transport, codes,
};

use super::harness::{Event, Harness, Peer, data, kinds};
use crate::core::Flow;
use crate::pipe::PipeProperties;

/// What `peer` was answered: ACKed fingerprints and the fingerprints of errors 1000.
fn answers(peer: &mut Peer) -> (Vec<String>, Vec<String>) {
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for packet in peer.written() {
        match packet.kind {
            PacketType::Ack => acked.push(packet.data_content.unwrap_or_default()),
            PacketType::Error => {
                let error = ErrorResponse::decode(packet.data_content.as_deref().unwrap()).unwrap();
                assert_eq!(error.error_code, codes::RATE_LIMITED);
                refused.push(error.error_msg.unwrap_or_default());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (acked, refused)
}

fn send(h: &Harness, peer: &mut Peer, fp: &str) {
    assert_eq!(h.receive(peer, &data("alice", "0", fp)), Flow::Continue);
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_message_over_the_sessions_rate_gets_error_1000_no_ack_and_is_not_delivered() {
    let h = Harness::with(|c| {
        c.max_messages_per_sec = 2;
        c.message_burst = 3;
    });
    let mut alice = h.online(Transport::Tcp, "alice");
    for fp in ["m1", "m2", "m3", "m4"] {
        send(&h, &mut alice, fp);
    }
    assert_eq!(
        answers(&mut alice),
        (strings(&["m1", "m2", "m3"]), strings(&["m4"]))
    );
    assert_eq!(
        h.hooks.take(),
        ["m1", "m2", "m3"].map(|fp| Event::C2s(fp.into()))
    );
    // Keepalives and ACKs do not count: they are answered and handled as always.
    h.receive(&mut alice, &Packet::keep_alive("alice"));
    assert_eq!(kinds(&alice.written()), [PacketType::KeepAliveResponse]);
    // A retransmission counts like any message: still over the rate.
    send(&h, &mut alice, "m4");
    assert_eq!(answers(&mut alice), (vec![], strings(&["m4"])));
    assert_eq!(h.refused("message_rate"), 2);

    // Half a second refills one message at 2/s: the retransmission is now taken.
    h.advance(Duration::from_millis(500));
    send(&h, &mut alice, "m4");
    send(&h, &mut alice, "m5");
    assert_eq!(answers(&mut alice), (strings(&["m4"]), strings(&["m5"])));
    assert_eq!(h.hooks.take(), [Event::C2s("m4".into())]);
    // After a quiet spell the whole burst is back.
    h.advance(Duration::from_secs(10));
    for fp in ["m5", "m6", "m7", "m8"] {
        send(&h, &mut alice, fp);
    }
    assert_eq!(
        answers(&mut alice),
        (strings(&["m5", "m6", "m7"]), strings(&["m8"]))
    );
}

#[test]
fn a_c2c_message_over_the_rate_is_neither_forwarded_nor_acknowledged() {
    let h = Harness::with(|c| {
        c.max_messages_per_sec = 1;
        c.message_burst = 1;
    });
    let mut alice = h.online(Transport::Udp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    for fp in ["c1", "c2"] {
        h.receive(&mut alice, &data("alice", "bob", fp));
    }
    assert_eq!(answers(&mut alice), (strings(&["c1"]), strings(&["c2"])));
    h.deliver(&mut bob);
    let received: Vec<_> = bob
        .written()
        .into_iter()
        .filter_map(|p| Some(p.fp?.as_str().to_owned()))
        .collect();
    assert_eq!(received, ["c1"]);
}

#[test]
fn logging_in_again_does_not_refill_a_sessions_budget() {
    let h = Harness::with(|c| {
        c.max_messages_per_sec = 1;
        c.message_burst = 1;
    });
    let mut alice = h.online(Transport::Tcp, "alice");
    send(&h, &mut alice, "m1");
    let (flow, response) = h.login(&mut alice, "alice", 0);
    assert_eq!((flow, response.code), (Flow::Continue, 0));
    send(&h, &mut alice, "m2");
    assert_eq!(answers(&mut alice), (vec![], strings(&["m2"])));
}

#[test]
fn an_exempt_address_sends_without_a_limit_until_its_exemption_is_removed() {
    let h = Harness::with(|c| {
        c.max_messages_per_sec = 1;
        c.message_burst = 1;
        c.limits_exempt = Some("127.0.0.2".parse().unwrap());
    });
    let properties = PipeProperties::of(Transport::Tcp, 6144);
    let mut backend = h.open_from(properties, [127, 0, 0, 2]);
    assert_eq!(h.login(&mut backend, "backend", 0).1.code, 0);
    for i in 0..20 {
        assert_eq!(
            h.receive(&mut backend, &data("backend", "0", &format!("b{i}"))),
            Flow::Continue
        );
    }
    assert_eq!(answers(&mut backend).0.len(), 20);

    // An exemption added through the API applies to sessions already open, and ends.
    let mut alice = h.online(Transport::Tcp, "alice");
    send(&h, &mut alice, "m1");
    send(&h, &mut alice, "m2");
    assert_eq!(answers(&mut alice), (strings(&["m1"]), strings(&["m2"])));
    let range = "127.0.0.1".parse().unwrap();
    let exempt = &h.core.limits.exempt;
    exempt
        .add(range, Some(Duration::from_secs(60)), h.now(), 0)
        .unwrap();
    send(&h, &mut alice, "m2");
    send(&h, &mut alice, "m3");
    assert_eq!(answers(&mut alice), (strings(&["m2", "m3"]), vec![]));
    h.advance(Duration::from_secs(60));
    send(&h, &mut alice, "m4");
    send(&h, &mut alice, "m5");
    assert_eq!(answers(&mut alice), (strings(&["m4"]), strings(&["m5"])));
    exempt.add(range, None, h.now(), 0).unwrap();
    assert!(exempt.remove(range, h.now()));
    send(&h, &mut alice, "m5");
    assert_eq!(answers(&mut alice), (vec![], strings(&["m5"])));
}

/// Logs a new session from `ip` in as `user` whose verification would refuse with 1025: a
/// 1000 means it was refused before it was verified.
fn login_from(h: &Harness, ip: [u8; 4], user: &str) -> (Flow, i32) {
    let mut peer = h.open_from(PipeProperties::of(Transport::Tcp, 6144), ip);
    let info = LoginInfo::new(user, Some("refuse-1025"), None);
    let flow = h.receive(&mut peer, &Packet::login(&info));
    let written = peer.written();
    let response = LoginResponse::decode(written[0].data_content.as_deref().unwrap()).unwrap();
    (flow, response.code)
}

#[test]
fn logins_over_an_addresss_rate_are_refused_with_1000_before_verification() {
    let h = Harness::with(|c| {
        c.max_logins_per_sec_per_ip = 1;
        c.login_burst_per_ip = 2;
    });
    let here = [127, 0, 0, 1];
    assert_eq!(login_from(&h, here, "a").1, 1025);
    assert_eq!(login_from(&h, here, "b").1, 1025);
    assert_eq!(
        login_from(&h, here, "c"),
        (Flow::Close, codes::RATE_LIMITED)
    );
    assert_eq!(h.refused("address_login_rate"), 1);
    // Another address has its own budget.
    assert_eq!(login_from(&h, [127, 0, 0, 2], "d").1, 1025);
    // A second later, one more from the first address.
    h.advance(Duration::from_secs(1));
    assert_eq!(login_from(&h, here, "e").1, 1025);
    assert_eq!(login_from(&h, here, "f").1, codes::RATE_LIMITED);
}

#[test]
fn the_server_wide_login_rate_counts_every_address_but_exempt_ones() {
    let h = Harness::with(|c| {
        c.max_logins_per_sec_per_ip = 0;
        c.max_logins_per_sec = 1;
        c.login_burst = 2;
        c.limits_exempt = Some("127.0.0.9".parse().unwrap());
    });
    assert_eq!(login_from(&h, [127, 0, 0, 1], "a").1, 1025);
    assert_eq!(login_from(&h, [127, 0, 0, 2], "b").1, 1025);
    assert_eq!(login_from(&h, [127, 0, 0, 3], "c").1, codes::RATE_LIMITED);
    assert_eq!(h.refused("login_rate"), 1);
    for user in ["x", "y", "z"] {
        assert_eq!(login_from(&h, [127, 0, 0, 9], user).1, 1025, "exempt");
    }
    h.advance(Duration::from_secs(1));
    assert_eq!(login_from(&h, [127, 0, 0, 3], "c").1, 1025);
}

#[test]
fn a_udp_login_over_the_rate_is_answered_within_the_datagrams_size_and_kept() {
    let h = Harness::with(|c| {
        c.max_logins_per_sec_per_ip = 1;
        c.login_burst_per_ip = 1;
    });
    let udp = PipeProperties::of(Transport::Udp, 1024);
    let mut first = h.open_from(udp, [127, 0, 0, 1]);
    assert_eq!(h.login(&mut first, "a", 0).1.code, 0);
    let mut second = h.open_from(udp, [127, 0, 0, 1]);
    let login = Packet::login(&LoginInfo::new("b", None, None)).to_json();
    assert_eq!(
        h.receive_bytes(&mut second, login.as_bytes()),
        Flow::Continue
    );
    let answer = second.written_bytes();
    assert_eq!(answer.len(), 1);
    assert!(answer[0].len() <= login.len());
    let answer = Packet::decode(&answer[0]).unwrap();
    let response = LoginResponse::decode(answer.data_content.as_deref().unwrap()).unwrap();
    assert_eq!(response.code, codes::RATE_LIMITED);
}
