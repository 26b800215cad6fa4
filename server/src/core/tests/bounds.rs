//! What the server refuses once a bound is reached (§8.1, item 8), so that no client can make
//! it hold memory without end: QoS packets in flight per user and server-wide, bytes queued
//! for delivery, fingerprint and user id lengths, the C2S window's bytes and its sweep.

use std::time::Duration;

use hongyan_shared::{Fingerprint, LoginInfo, Outgoing, Packet, PacketType, Transport, UserId};

use super::harness::{Event, Harness, Peer, data, kinds};
use crate::PushError;
use crate::config::{MAX_FINGERPRINT_BYTES, MAX_USER_ID_BYTES};
use crate::core::Flow;

/// `alice` sends QoS message `fp` to `to`; returns whether she got the pseudo-ACK.
fn acked(h: &Harness, alice: &mut Peer, to: &str, fp: &str) -> bool {
    assert_eq!(h.receive(alice, &data("alice", to, fp)), Flow::Continue);
    let written = alice.written();
    assert!(written.iter().all(|p| p.kind == PacketType::Ack));
    !written.is_empty()
}

#[test]
fn a_user_who_reads_but_never_acknowledges_gets_only_so_many_qos_messages_in_flight() {
    let h = Harness::with(|c| c.max_in_flight_per_user = 3);
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    for i in 0..5 {
        let fp = format!("fp-{i}");
        assert_eq!(acked(&h, &mut alice, "bob", &fp), i < 3, "{fp}");
        h.deliver(&mut bob); // bob reads everything, acknowledges nothing
    }
    assert_eq!(bob.written().len(), 3);
    assert_eq!(h.core.s2c.usage_of(&"bob".into()).0, 3);
    assert_eq!(
        h.hooks.take()[3..],
        [Event::Offline("fp-3".into()), Event::Offline("fp-4".into())],
        "refused like a message for an offline user: the application may keep it"
    );
    // Another receiver is not affected, and an acknowledgement makes room again.
    let _carol = h.online(Transport::Tcp, "carol");
    assert!(acked(&h, &mut alice, "carol", "fp-c"));
    h.receive(
        &mut bob,
        &Packet::ack("bob", "alice", &Fingerprint::new("fp-0"), false),
    );
    assert!(acked(&h, &mut alice, "bob", "fp-5"));
}

#[test]
fn the_bytes_in_flight_to_one_user_are_bounded_too() {
    let h = Harness::with(|c| c.max_in_flight_bytes_per_user = 400);
    let mut alice = h.online(Transport::Tcp, "alice");
    let _bob = h.online(Transport::Tcp, "bob");
    let mut accepted = 0;
    while acked(&h, &mut alice, "bob", &format!("fp-{accepted}")) {
        accepted += 1;
        assert!(accepted < 100, "never refused");
    }
    let (packets, bytes) = h.core.s2c.usage_of(&"bob".into());
    assert_eq!(packets, accepted);
    assert!(
        bytes <= 400 && accepted >= 2,
        "{accepted} packets, {bytes} bytes"
    );
}

#[test]
fn the_server_wide_bound_on_qos_in_flight_refuses_pushes_as_overloaded() {
    let h = Harness::with(|c| c.max_in_flight = 2);
    let mut alice = h.online(Transport::Tcp, "alice");
    let _bob = h.online(Transport::Tcp, "bob");
    let _carol = h.online(Transport::Tcp, "carol");
    assert!(acked(&h, &mut alice, "bob", "fp-1"));
    assert!(acked(&h, &mut alice, "carol", "fp-2"));
    assert!(!acked(&h, &mut alice, "carol", "fp-3"));
    let push = h.push(Outgoing::new("bob", "hello").with_fingerprint("fp-4".into()));
    assert_eq!(push.unwrap_err(), PushError::Overloaded);
    assert_eq!(h.handle().in_flight(), 2);
    // Without QoS nothing is tracked, so the bound does not apply.
    let mut plain = Packet::common_data("alice", "bob", "plain", None, 0);
    plain.qos = false;
    assert_eq!(h.receive(&mut alice, &plain), Flow::Continue);
    assert_eq!(
        h.hooks.take().last(),
        Some(&Event::C2cDelivered(String::new()))
    );
}

#[test]
fn what_is_lost_leaves_the_bounds_as_well() {
    let h = Harness::with(|c| c.max_in_flight_per_user = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    assert!(acked(&h, &mut alice, "bob", "fp-1"));
    assert!(!acked(&h, &mut alice, "bob", "fp-2"));
    let schedule = h.core.config.s2c_schedule;
    for _ in 0..=schedule.max_retries {
        h.advance(schedule.check_interval);
        h.tick();
    }
    h.deliver(&mut bob);
    assert_eq!(h.core.s2c.usage_of(&"bob".into()), (0, 0));
    assert!(acked(&h, &mut alice, "bob", "fp-2"));
}

#[test]
fn bytes_queued_for_sessions_that_do_not_drain_are_bounded_server_wide() {
    let h = Harness::with(|c| c.max_queued_bytes = 1000);
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    let mut accepted = 0;
    while acked(&h, &mut alice, "bob", &format!("fp-{accepted}")) {
        accepted += 1;
        assert!(accepted < 100, "never refused");
    }
    let held = h.core.queued.bytes();
    assert!(
        held <= 1000 && accepted >= 2,
        "{accepted} packets, {held} bytes"
    );
    // Written and acknowledged, the bytes are given back.
    h.deliver(&mut bob);
    for message in bob.written() {
        let fp = message.fp.expect("a QoS message");
        h.receive(&mut bob, &Packet::ack("bob", "alice", &fp, false));
    }
    assert_eq!(h.core.queued.bytes(), 0);
    assert!(acked(&h, &mut alice, "bob", "fp-again"));
}

#[test]
fn a_qos_message_with_an_overlong_fingerprint_is_refused_without_an_ack() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    let _bob = h.online(Transport::Tcp, "bob");
    let longest = "f".repeat(MAX_FINGERPRINT_BYTES);
    let overlong = "f".repeat(MAX_FINGERPRINT_BYTES + 1);
    for to in ["0", "bob"] {
        assert!(acked(&h, &mut alice, to, &longest), "{to}");
        assert!(!acked(&h, &mut alice, to, &overlong), "{to}");
    }
    let events = h.hooks.take();
    assert_eq!(
        events.len(),
        2,
        "neither delivered nor offered offline: {events:?}"
    );
    assert_eq!(h.core.c2s_window().0, 1);
    assert!(
        !h.handle()
            .is_in_flight(&"bob".into(), &Fingerprint::new(overlong))
    );
}

#[test]
fn the_c2s_window_is_bounded_by_bytes() {
    let h = Harness::with(|c| c.dedup.max_bytes = 2000);
    let mut alice = h.online(Transport::Tcp, "alice");
    let fp = "f".repeat(MAX_FINGERPRINT_BYTES - 4);
    for i in 0..100 {
        assert!(acked(&h, &mut alice, "0", &format!("{fp}{i:04}")));
    }
    let (len, bytes) = h.core.c2s_window();
    assert!(bytes <= 2000 && len < 100, "{len} keys, {bytes} bytes");
}

#[test]
fn the_c2s_window_is_swept_on_the_timer_without_further_messages() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    assert_eq!(h.core.poll_timeout(), None, "nothing to do");
    assert!(acked(&h, &mut alice, "0", "fp-1"));
    let dedup = h.core.config.dedup;
    let sweep = h.core.poll_timeout().expect("a sweep is due");
    assert!(sweep <= h.now() + dedup.sweep_interval);
    h.advance(dedup.lifetime + dedup.sweep_interval);
    h.tick();
    assert_eq!(h.core.c2s_window(), (0, 0));
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn a_login_with_an_overlong_user_id_is_ignored_like_one_without_an_id() {
    let h = Harness::new();
    let longest = "u".repeat(MAX_USER_ID_BYTES);
    let overlong = "u".repeat(MAX_USER_ID_BYTES + 1);
    for (transport, after) in [
        (Transport::Tcp, Flow::Close),
        (Transport::Udp, Flow::Continue),
    ] {
        let mut peer = h.open(transport);
        let login = Packet::login(&LoginInfo::new(overlong.as_str(), Some("t"), None));
        assert_eq!(h.receive(&mut peer, &login), after, "{transport}");
        assert!(peer.written().is_empty(), "{transport}: no answer");
    }
    assert!(!h.handle().is_online(&UserId::from(overlong.as_str())));
    let mut peer = h.open(Transport::Tcp);
    assert_eq!(h.login(&mut peer, &longest, 0).1.code, 0);
    // Nothing is kept for a user who cannot exist, even by an application that stores.
    h.hooks.take();
    h.hooks
        .store_offline
        .store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(acked(&h, &mut peer, "nobody", "fp-1"));
    assert!(!acked(&h, &mut peer, &overlong, "fp-2"));
    assert_eq!(h.hooks.take(), [Event::Offline("fp-1".into())]);
}

#[test]
fn a_session_that_does_not_log_in_is_closed_at_its_deadline_whatever_it_sends() {
    let h = Harness::with(|c| c.tcp_sense_mode = Some(hongyan_shared::SenseMode::S120));
    let timeout = h.core.config.login_timeout;
    let mut peer = h.open(Transport::Tcp);
    let deadline = h.now() + timeout;
    while h.now() + Duration::from_secs(2) < deadline {
        h.advance(Duration::from_secs(2));
        let echo = Packet::new(PacketType::Echo, Some("still here".into()), "mallory", "0");
        assert_eq!(h.receive(&mut peer, &echo), Flow::Continue);
        assert_eq!(kinds(&peer.written()), [PacketType::EchoResponse]);
        assert_eq!(
            h.core.poll_session_timeout(&peer.session),
            deadline,
            "not moved"
        );
        assert_eq!(
            h.core.handle_session_timeout(&mut peer.session, h.now()),
            Flow::Continue
        );
    }
    h.advance(deadline - h.now());
    assert_eq!(
        h.core.handle_session_timeout(&mut peer.session, h.now()),
        Flow::Close
    );
}

#[test]
fn a_login_lifts_the_deadline_and_losing_the_user_sets_it_again() {
    let h = Harness::new();
    let timeout = h.core.config.login_timeout;
    let mut bob = h.open(Transport::Udp);
    h.advance(timeout / 2);
    h.login(&mut bob, "bob", 0);
    let expiry = h.core.config.idle_expiry(Transport::Udp);
    assert_eq!(h.core.poll_session_timeout(&bob.session), h.now() + expiry);
    h.advance(timeout);
    h.receive(&mut bob, &Packet::keep_alive("bob"));
    assert_eq!(
        h.core.handle_session_timeout(&mut bob.session, h.now()),
        Flow::Continue,
        "logged in: only the idle expiry applies"
    );
    // An administrator's kick leaves the pseudo-session unauthenticated: it must log in again.
    assert!(h.handle().kick(&"bob".into(), None));
    h.deliver(&mut bob);
    let deadline = h.now() + timeout;
    assert_eq!(
        h.core.poll_session_timeout(&bob.session),
        deadline.min(h.now() + expiry)
    );
}
