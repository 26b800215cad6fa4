//! C2S, C2C and acknowledgements (§6.4), and the hardening around them.

use std::sync::atomic::Ordering;

use hongyan_shared::{Fingerprint, Outgoing, Packet, PacketType, Transport};

use super::harness::{Event, Harness, data, kinds};
use crate::core::Flow;

#[test]
fn a_c2s_message_is_acked_again_but_delivered_once() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    for _ in 0..2 {
        assert_eq!(
            h.receive(&mut alice, &data("alice", "0", "fp-1")),
            Flow::Continue
        );
        let written = alice.written();
        assert_eq!(kinds(&written), [PacketType::Ack]);
        assert_eq!(written[0].data_content.as_deref(), Some("fp-1"));
        assert_eq!(written[0].from_str(), "0");
    }
    assert_eq!(h.hooks.take(), [Event::C2s("fp-1".into())]);
}

#[test]
fn a_c2s_message_whose_ack_cannot_be_written_is_still_delivered_once() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    alice.pipe.fail_writes();
    assert_eq!(
        h.receive(&mut alice, &data("alice", "0", "fp-1")),
        Flow::Close
    );
    h.core.close_session(&mut alice.session);
    assert_eq!(
        h.hooks.take(),
        [
            Event::C2s("fp-1".into()),
            Event::Logout("alice".into(), None)
        ]
    );
    // The client retransmits on a new connection; the fingerprint is already known.
    let mut again = h.online(Transport::Tcp, "alice");
    h.receive(&mut again, &data("alice", "0", "fp-1"));
    assert_eq!(kinds(&again.written()), [PacketType::Ack]);
    assert!(h.hooks.take().is_empty(), "delivered once");
}

#[test]
fn the_c2s_window_forgets_a_fingerprint_after_its_lifetime() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    h.receive(&mut alice, &data("alice", "0", "fp-1"));
    let lifetime = h.core.config.dedup.lifetime + h.core.config.dedup.sweep_interval;
    h.advance(lifetime);
    h.receive(&mut alice, &data("alice", "0", "fp-2"));
    h.advance(lifetime);
    h.receive(&mut alice, &data("alice", "0", "fp-1"));
    assert_eq!(
        h.hooks.take(),
        [
            Event::C2s("fp-1".into()),
            Event::C2s("fp-2".into()),
            Event::C2s("fp-1".into())
        ]
    );
}

#[test]
fn a_c2c_message_is_pseudo_acked_once_the_receivers_queue_took_it() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Udp, "bob");
    assert_eq!(
        h.receive(&mut alice, &data("mallory", "bob", "fp-1")),
        Flow::Continue
    );
    let ack = alice.written();
    assert_eq!(kinds(&ack), [PacketType::Ack]);
    assert_eq!((ack[0].from_str(), ack[0].to_str()), ("bob", "alice"));
    h.deliver(&mut bob);
    let forwarded = bob.written();
    assert_eq!(kinds(&forwarded), [PacketType::CommonData]);
    assert_eq!(
        forwarded[0].from_str(),
        "alice",
        "the sender is who logged in"
    );
    assert!(
        h.handle()
            .is_in_flight(&"bob".into(), &Fingerprint::new("fp-1"))
    );
    assert_eq!(h.hooks.take(), [Event::C2cDelivered("fp-1".into())]);
}

#[test]
fn a_c2c_message_whose_receiver_queue_is_full_is_not_acked() {
    let h = Harness::with(|c| c.outbox_capacity = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    let _bob = h.online(Transport::Tcp, "bob");
    h.receive(&mut alice, &data("alice", "bob", "fp-1"));
    assert_eq!(kinds(&alice.written()), [PacketType::Ack]);
    h.receive(&mut alice, &data("alice", "bob", "fp-2"));
    assert!(
        alice.written().is_empty(),
        "not acked: the sender retransmits"
    );
    assert!(
        !h.handle()
            .is_in_flight(&"bob".into(), &Fingerprint::new("fp-2"))
    );
    assert_eq!(
        h.hooks.take(),
        [
            Event::C2cDelivered("fp-1".into()),
            Event::Offline("fp-2".into())
        ]
    );
}

#[test]
fn a_c2c_message_for_an_offline_user_is_acked_only_if_the_application_kept_it() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    h.receive(&mut alice, &data("alice", "bob", "fp-1"));
    assert!(alice.written().is_empty());
    h.hooks.store_offline.store(true, Ordering::Relaxed);
    h.receive(&mut alice, &data("alice", "bob", "fp-2"));
    let ack = alice.written();
    assert_eq!(kinds(&ack), [PacketType::Ack]);
    assert_eq!(ack[0].data_content.as_deref(), Some("fp-2"));
    assert_eq!(
        h.hooks.take(),
        [Event::Offline("fp-1".into()), Event::Offline("fp-2".into())]
    );
}

#[test]
fn a_qos_message_without_a_fingerprint_is_delivered_as_plain_data() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    let mut packet = Packet::common_data("alice", "bob", "hi", None, 0);
    packet.qos = true;
    h.receive(&mut alice, &packet);
    assert!(alice.written().is_empty(), "nothing to acknowledge");
    h.deliver(&mut bob);
    let forwarded = bob.written();
    assert_eq!(kinds(&forwarded), [PacketType::CommonData]);
    assert!(!forwarded[0].qos && forwarded[0].fp.is_none());
    assert_eq!(h.core.s2c.len(), 0);
}

#[test]
fn an_ack_settles_only_a_packet_sent_to_the_user_who_acks() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    let fp = Fingerprint::new("fp-1");
    let sent = h
        .push(Outgoing::new("bob", "hello").with_fingerprint(fp.clone()))
        .unwrap();
    h.receive(&mut alice, &Packet::ack("alice", "0", &fp, false));
    assert!(
        h.handle().is_in_flight(&"bob".into(), &fp),
        "a foreign ACK settles nothing"
    );
    h.receive(&mut bob, &Packet::ack("bob", "0", &fp, false));
    assert!(!h.handle().is_in_flight(&"bob".into(), &fp));
    assert_eq!(
        h.hooks.take(),
        [Event::S2cReceived("bob".into(), "fp-1".into())]
    );
    use futures_util::FutureExt;
    assert_eq!(
        sent.outcome().now_or_never(),
        Some(crate::Delivery::Delivered)
    );
}
