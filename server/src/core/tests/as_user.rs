//! The core's side of the backend acting as a user: a message sent in a user's name takes the
//! C2C path of one their client sends, with an outcome; an HTTP session's pipe properties give
//! it a connection's kickout rules and an idle expiry of its own.

use std::sync::atomic::Ordering;

use futures_util::FutureExt;
use hongyan_shared::{Fingerprint, Outgoing, Packet, PacketType, Transport, UserId};

use super::harness::{Event, Harness, kinds};
use crate::config::HTTP_SESSION_MAX_OUTBOUND;
use crate::core::Flow;
use crate::handle::{Delivery, SendAsError, Sent};
use crate::pipe::PipeProperties;

fn send_as(h: &Harness, from: &str, message: Outgoing) -> Result<Sent, SendAsError> {
    h.handle()
        .send_as(&UserId::from(from), message)
        .now_or_never()
        .expect("with a memory store and immediate hooks, sending never waits")
}

fn hello(to: &str, fp: &str) -> Outgoing {
    Outgoing::new(to, "hello").with_fingerprint(Fingerprint::new(fp))
}

#[test]
fn a_message_sent_as_a_user_reaches_the_receiver_from_them_and_settles_with_its_ack() {
    let h = Harness::new();
    let mut bob = h.online(Transport::Tcp, "bob");
    let sent = send_as(&h, "alice", hello("bob", "fp-1")).unwrap();
    assert_eq!(sent.settled(), None, "awaits bob's acknowledgement");
    h.deliver(&mut bob);
    let written = bob.written();
    assert_eq!(kinds(&written), [PacketType::CommonData]);
    assert_eq!(written[0].from_str(), "alice");
    assert!(written[0].qos);
    assert_eq!(h.hooks.take(), [Event::C2cDelivered("fp-1".into())]);

    let ack = Packet::ack("bob", "alice", &Fingerprint::new("fp-1"), false);
    assert_eq!(h.receive(&mut bob, &ack), Flow::Continue);
    assert_eq!(sent.outcome().now_or_never(), Some(Delivery::Delivered));
    assert_eq!(
        h.hooks.take(),
        [Event::S2cReceived("bob".into(), "fp-1".into())]
    );
}

#[test]
fn unacknowledged_it_is_resent_then_lost_without_a_store_and_stored_with_one() {
    for (h, outcome) in [
        (Harness::new(), Delivery::Lost),
        (Harness::with_store(|_| {}), Delivery::Stored),
    ] {
        let mut bob = h.online(Transport::Tcp, "bob");
        let sent = send_as(&h, "alice", hello("bob", "fp-1")).unwrap();
        let schedule = h.core.config.s2c_schedule;
        for _ in 0..=schedule.max_retries {
            h.deliver(&mut bob);
            assert_eq!(kinds(&bob.written()), [PacketType::CommonData]);
            h.advance(schedule.check_interval);
            h.tick();
        }
        assert_eq!(sent.outcome().now_or_never(), Some(outcome));
    }
}

#[test]
fn for_an_offline_receiver_it_is_stored_at_once_or_left_to_the_offline_hook() {
    let h = Harness::with_store(|_| {});
    let sent = send_as(&h, "alice", hello("bob", "fp-1")).unwrap();
    assert_eq!(sent.settled(), Some(Delivery::Stored));
    assert_eq!(h.stored("bob"), 1);
    assert_eq!(h.hooks.take(), [Event::Stored("fp-1".into())], "notified");
    let mut bob = h.online(Transport::Tcp, "bob");
    h.deliver(&mut bob);
    let replayed = bob.written();
    assert_eq!(replayed[0].from_str(), "alice", "replayed from its sender");

    let h = Harness::new();
    let lost = send_as(&h, "alice", hello("bob", "fp-2")).unwrap();
    assert_eq!(lost.settled(), Some(Delivery::Lost));
    h.hooks.store_offline.store(true, Ordering::Relaxed);
    let kept = send_as(&h, "alice", hello("bob", "fp-3")).unwrap();
    assert_eq!(kept.settled(), Some(Delivery::Stored));
    assert_eq!(
        h.hooks.take(),
        [Event::Offline("fp-2".into()), Event::Offline("fp-3".into())]
    );
}

#[test]
fn only_user_ids_a_client_could_log_in_as_send_and_receive() {
    let h = Harness::new();
    assert_eq!(
        send_as(&h, "0", hello("bob", "fp")).unwrap_err(),
        SendAsError::Sender(UserId::from("0"))
    );
    assert_eq!(
        send_as(&h, "alice", hello("-1", "fp")).unwrap_err(),
        SendAsError::Receiver(UserId::from("-1"))
    );
    let long = "x".repeat(129);
    assert_eq!(
        send_as(&h, "alice", hello("bob", &long)).unwrap_err(),
        SendAsError::Fingerprint
    );
    assert!(h.hooks.take().is_empty(), "nothing reached the hooks");
}

#[test]
fn an_http_session_is_a_connection_with_an_idle_expiry_of_its_own() {
    let h = Harness::with(|c| c.http_session_idle = std::time::Duration::from_secs(90));
    let properties = PipeProperties::of(Transport::Http, HTTP_SESSION_MAX_OUTBOUND);
    assert!(!properties.connectionless && !properties.spoofable);
    let mut alice = h.open_with(properties);
    let (flow, response) = h.login(&mut alice, "alice", 0);
    assert_eq!((flow, response.code), (Flow::Continue, 0));
    assert_eq!(
        h.core.poll_session_timeout(&alice.session),
        h.now() + std::time::Duration::from_secs(90)
    );
    assert!(h.handle().kick(&UserId::from("alice"), None));
    assert_eq!(h.deliver(&mut alice), Flow::Close, "a kickout ends it");
}
