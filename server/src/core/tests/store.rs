//! Store and forward (issue 11), on a memory store: a QoS message for a user who cannot take
//! it is stored before its sender is acknowledged, replayed at login in acceptance order
//! within the window, and removed once acknowledged; never stored twice, never a false ACK.

use std::time::Duration;

use futures_util::FutureExt;
use hongyan_shared::{Fingerprint, Outgoing, Packet, PacketType, Transport};
use hongyan_store::MessageStore;

use super::harness::{Event, Harness, Peer, data, kinds};
use crate::Delivery;
use crate::core::Flow;
use crate::session::PushError;

/// `peer` (logged in as `user`) acknowledges `fp` from `from`.
fn ack(h: &Harness, peer: &mut Peer, user: &str, from: &str, fp: &str) {
    let flow = h.receive(peer, &Packet::ack(user, from, &Fingerprint::new(fp), false));
    assert_eq!(flow, Flow::Continue);
}

/// The fingerprints of the data packets `peer`'s outbox holds, written out.
fn replayed(h: &Harness, peer: &mut Peer) -> Vec<String> {
    h.deliver(peer);
    peer.written()
        .into_iter()
        .filter(|p| p.kind == PacketType::CommonData)
        .map(|p| p.fp.expect("QoS").as_str().to_owned())
        .collect()
}

/// `alice` sends `fps` to `to`, each acknowledged (the ACK written back to alice).
fn send_all(h: &Harness, alice: &mut Peer, to: &str, fps: &[&str]) {
    for fp in fps {
        h.receive(alice, &data("alice", to, fp));
        let acks = alice.written();
        assert_eq!(kinds(&acks), [PacketType::Ack], "{fp} is acknowledged");
        assert_eq!(acks[0].data_content.as_deref(), Some(*fp));
        assert_eq!(
            acks[0].from_str(),
            to,
            "a pseudo-ACK in the receiver's name"
        );
    }
}

#[test]
fn a_message_for_an_offline_user_is_stored_acknowledged_and_replayed_at_login() {
    let h = Harness::with_store(|_| {});
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut message = data("alice", "bob", "fp-1");
    message.typeu = 7;
    message.data_content = Some("see you at 8".into());
    h.receive(&mut alice, &message);
    assert_eq!(kinds(&alice.written()), [PacketType::Ack]);
    assert_eq!(h.stored("bob"), 1, "committed before the ACK");
    assert_eq!(
        h.hooks.take(),
        [Event::Stored("fp-1".into())],
        "the application hears of it, for push notifications"
    );

    let mut bob = h.online(Transport::Udp, "bob");
    h.deliver(&mut bob);
    let got = bob.written();
    assert_eq!(kinds(&got), [PacketType::CommonData]);
    let replay = &got[0];
    assert_eq!(
        (replay.from_str(), replay.to_str(), replay.typeu, replay.qos),
        ("alice", "bob", 7, true)
    );
    assert_eq!(replay.data_content.as_deref(), Some("see you at 8"));
    assert_eq!(replay.fp.as_ref().map(Fingerprint::as_str), Some("fp-1"));

    ack(&h, &mut bob, "bob", "alice", "fp-1");
    assert_eq!(
        h.hooks.take(),
        [Event::S2cReceived("bob".into(), "fp-1".into())]
    );
    assert_eq!(
        h.stored("bob"),
        1,
        "removed by the chores, not on the ACK's path"
    );
    assert!(h.core.poll_store_timeout().is_some_and(|t| t <= h.now()));
    h.chores();
    assert_eq!(h.stored("bob"), 0);
}

#[test]
fn a_retransmission_of_a_stored_message_is_acknowledged_again_and_stored_once() {
    let h = Harness::with_store(|_| {});
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["fp-1", "fp-1"]);
    assert_eq!(h.stored("bob"), 1);
    assert_eq!(
        h.hooks.take(),
        [Event::Stored("fp-1".into())],
        "notified once"
    );
}

#[test]
fn a_message_the_store_refuses_is_not_acknowledged() {
    let h = Harness::with_store(|c| c.store_max_per_user = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["fp-1"]);
    h.receive(&mut alice, &data("alice", "bob", "fp-2"));
    assert!(
        alice.written().is_empty(),
        "over bob's limit: no ACK, so alice retransmits and reports it lost"
    );
    let store = h.store.clone().unwrap();
    store.close().now_or_never().unwrap();
    h.receive(&mut alice, &data("alice", "carol", "fp-3"));
    assert!(alice.written().is_empty(), "a failing store: no false ACK");
    assert_eq!(h.hooks.take(), [Event::Stored("fp-1".into())]);
}

#[test]
fn the_replay_keeps_acceptance_order_and_at_most_the_window_unacknowledged() {
    let h = Harness::with_store(|c| c.store_replay_window = 2);
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["m1", "m2", "m3", "m4", "m5"]);
    let mut bob = h.online(Transport::WebSocket, "bob");
    assert_eq!(replayed(&h, &mut bob), ["m1", "m2"]);
    ack(&h, &mut bob, "bob", "alice", "m2");
    assert_eq!(replayed(&h, &mut bob), ["m3"], "one acknowledged, one more");
    ack(&h, &mut bob, "bob", "alice", "m1");
    ack(&h, &mut bob, "bob", "alice", "m3");
    assert_eq!(replayed(&h, &mut bob), ["m4", "m5"]);
    ack(&h, &mut bob, "bob", "alice", "m4");
    ack(&h, &mut bob, "bob", "alice", "m5");
    h.chores();
    assert_eq!(h.stored("bob"), 0);
}

#[test]
fn a_message_sent_during_the_replay_is_stored_behind_it_and_live_once_it_drained() {
    let h = Harness::with_store(|c| c.store_replay_window = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["old-1", "old-2"]);
    let mut bob = h.online(Transport::Tcp, "bob");
    assert_eq!(replayed(&h, &mut bob), ["old-1"]);
    send_all(&h, &mut alice, "bob", &["new-1"]);
    assert_eq!(
        h.stored("bob"),
        3,
        "stored behind the replay, not sent ahead of it"
    );
    assert!(replayed(&h, &mut bob).is_empty(), "the window is full");
    for fp in ["old-1", "old-2"] {
        ack(&h, &mut bob, "bob", "alice", fp);
        let next = replayed(&h, &mut bob);
        assert_eq!(next.len(), 1, "after {fp}: {next:?}");
    }
    ack(&h, &mut bob, "bob", "alice", "new-1");
    h.hooks.take();
    h.chores();
    assert_eq!(h.stored("bob"), 0);
    // Drained: a new message goes straight to the session, from memory.
    send_all(&h, &mut alice, "bob", &["live"]);
    assert_eq!(h.stored("bob"), 0);
    assert_eq!(replayed(&h, &mut bob), ["live"]);
    assert_eq!(h.hooks.take(), [Event::C2cDelivered("live".into())]);
}

#[test]
fn a_live_message_whose_retransmissions_run_out_is_stored_not_lost() {
    let h = Harness::with_store(|_| {});
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    send_all(&h, &mut alice, "bob", &["fp-1"]);
    assert_eq!(replayed(&h, &mut bob), ["fp-1"], "live, from memory");
    assert_eq!(h.stored("bob"), 0);
    h.core.close_session(&mut bob.session);
    h.hooks.take();
    let schedule = h.core.config.s2c_schedule;
    for _ in 0..=schedule.max_retries {
        h.advance(schedule.check_interval);
        h.tick();
    }
    assert_eq!(h.stored("bob"), 1, "given up on, and stored");
    assert!(
        h.hooks.take().is_empty(),
        "not reported lost: it was stored (and bob is offline: no second notification)"
    );
    let mut bob = h.online(Transport::Udp, "bob");
    assert_eq!(replayed(&h, &mut bob), ["fp-1"]);
}

#[test]
fn a_replayed_message_out_of_retries_is_sent_again_and_never_stored_twice() {
    let h = Harness::with_store(|_| {});
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["fp-1"]);
    let mut bob = h.online(Transport::Tcp, "bob");
    assert_eq!(replayed(&h, &mut bob), ["fp-1"]);
    let schedule = h.core.config.s2c_schedule;
    let mut sent = 1;
    for _ in 0..2 * (schedule.max_retries + 1) {
        h.advance(schedule.check_interval);
        h.tick();
        sent += replayed(&h, &mut bob).len();
    }
    assert!(sent > 3, "still sent while bob's session lives: {sent}");
    assert_eq!(h.stored("bob"), 1, "kept once");
    assert!(
        !h.hooks
            .take()
            .iter()
            .any(|e| matches!(e, Event::S2cLost(_))),
        "never reported lost"
    );
    ack(&h, &mut bob, "bob", "alice", "fp-1");
    h.chores();
    assert_eq!(h.stored("bob"), 0);
}

#[test]
fn a_session_that_ends_mid_replay_gets_the_rest_at_its_next_login() {
    let h = Harness::with_store(|c| c.store_replay_window = 2);
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["m1", "m2", "m3", "m4"]);
    let mut bob = h.online(Transport::Tcp, "bob");
    assert_eq!(replayed(&h, &mut bob), ["m1", "m2"]);
    ack(&h, &mut bob, "bob", "alice", "m1");
    h.core.close_session(&mut bob.session);
    h.chores();
    assert_eq!(h.stored("bob"), 3);
    let mut bob = h.online(Transport::Tcp, "bob");
    assert_eq!(
        replayed(&h, &mut bob),
        ["m2", "m3"],
        "what was not acknowledged comes again, in order"
    );
}

#[test]
fn a_duplicate_login_mid_replay_takes_the_replay_over() {
    let h = Harness::with_store(|c| c.store_replay_window = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["m1", "m2"]);
    let mut first = h.online(Transport::Tcp, "bob");
    assert_eq!(replayed(&h, &mut first), ["m1"]);
    let mut second = h.online(Transport::Udp, "bob");
    h.deliver(&mut first);
    assert_eq!(kinds(&first.written()), [PacketType::Kickout]);
    assert_eq!(
        replayed(&h, &mut second),
        ["m1"],
        "m1 was not acknowledged: the new session gets it at once"
    );
    ack(&h, &mut second, "bob", "alice", "m1");
    assert_eq!(replayed(&h, &mut second), ["m2"]);
}

#[test]
fn a_push_to_an_offline_user_is_stored_and_says_so() {
    let h = Harness::with_store(|_| {});
    let sent = h
        .push(Outgoing::new("bob", "your parcel").with_fingerprint(Fingerprint::new("p-1")))
        .unwrap();
    assert_eq!(sent.settled(), Some(Delivery::Stored));
    assert_eq!(h.stored("bob"), 1);
    let mut bob = h.online(Transport::Tcp, "bob");
    h.deliver(&mut bob);
    let got = bob.written();
    assert_eq!(got[0].from_str(), "0", "from the server, as pushed");
    let plain = h.push(Outgoing::new("carol", "no QoS").with_qos(false));
    assert_eq!(
        plain.unwrap_err(),
        PushError::Offline,
        "fire and forget: not stored"
    );
}

#[test]
fn a_push_out_of_retries_is_stored_and_its_outcome_is_stored() {
    let h = Harness::with_store(|_| {});
    let mut bob = h.online(Transport::Tcp, "bob");
    let sent = h
        .push(Outgoing::new("bob", "hello").with_fingerprint(Fingerprint::new("p-1")))
        .unwrap();
    assert_eq!(sent.settled(), None, "handed to bob's session");
    h.deliver(&mut bob);
    let schedule = h.core.config.s2c_schedule;
    for _ in 0..=schedule.max_retries {
        h.advance(schedule.check_interval);
        h.tick();
    }
    assert_eq!(sent.outcome().now_or_never(), Some(Delivery::Stored));
    assert_eq!(h.stored("bob"), 1);
}

#[test]
fn a_message_without_qos_is_never_stored() {
    let h = Harness::with_store(|_| {});
    let mut alice = h.online(Transport::Tcp, "alice");
    let plain = Packet::common_data("alice", "bob", "hi", None, 0);
    h.receive(&mut alice, &plain);
    assert!(alice.written().is_empty());
    assert_eq!(h.stored("bob"), 0);
    assert_eq!(
        h.hooks.take(),
        [Event::Offline(String::new())],
        "the offline hook decides, as without a store"
    );
}

#[test]
fn expired_messages_are_swept_and_reported() {
    let h = Harness::with_store(|c| c.store_ttl = Duration::from_secs(60));
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["fp-1"]);
    h.hooks.take();
    let sweep = h.core.poll_store_timeout().expect("a sweep is scheduled");
    assert!(sweep <= h.now() + Duration::from_secs(60));
    h.advance(Duration::from_secs(61));
    h.chores();
    assert_eq!(h.hooks.take(), [Event::Expired("fp-1".into())]);
    assert_eq!(h.stored("bob"), 0);
    let mut bob = h.online(Transport::Tcp, "bob");
    assert!(replayed(&h, &mut bob).is_empty());
}

#[test]
fn erasing_a_users_messages_stops_their_replay() {
    let h = Harness::with_store(|c| c.store_replay_window = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["m1", "m2"]);
    let mut bob = h.online(Transport::Tcp, "bob");
    assert_eq!(replayed(&h, &mut bob), ["m1"]);
    let erased = h
        .handle()
        .erase_stored(&"bob".into())
        .now_or_never()
        .unwrap();
    assert_eq!(erased, Ok(2));
    ack(&h, &mut bob, "bob", "alice", "m1");
    assert!(replayed(&h, &mut bob).is_empty(), "m2 was erased");
    send_all(&h, &mut alice, "bob", &["live"]);
    assert_eq!(replayed(&h, &mut bob), ["live"], "the replay is done");
}

#[test]
fn without_a_store_the_offline_hook_decides_as_before() {
    let h = Harness::new();
    assert_eq!(h.core.poll_store_timeout(), None);
    let mut alice = h.online(Transport::Tcp, "alice");
    h.receive(&mut alice, &data("alice", "bob", "fp-1"));
    assert!(alice.written().is_empty(), "the hook did not keep it");
    assert_eq!(
        h.push(Outgoing::new("bob", "x")).unwrap_err(),
        PushError::Offline
    );
    let counted = h.handle().stored_count(&"bob".into()).now_or_never();
    assert_eq!(counted, Some(Err(crate::StoredError::NoStore)));
}

#[test]
fn a_replay_the_sessions_queue_cannot_take_goes_on_once_it_drained() {
    let h = Harness::with_store(|c| {
        c.outbox_capacity = 2;
        c.store_replay_window = 2;
    });
    let mut alice = h.online(Transport::Tcp, "alice");
    send_all(&h, &mut alice, "bob", &["m1", "m2", "m3"]);
    let mut bob = h.online(Transport::Tcp, "bob");
    // Bob acknowledges m1 before his session wrote anything: m3 does not fit in the queue.
    ack(&h, &mut bob, "bob", "alice", "m1");
    h.chores();
    let stalled = h
        .core
        .poll_store_timeout()
        .expect("the stalled replay is due later");
    assert!(stalled > h.now());
    assert_eq!(replayed(&h, &mut bob), ["m1", "m2"]);
    h.advance(stalled - h.now());
    h.chores();
    assert_eq!(
        replayed(&h, &mut bob),
        ["m3"],
        "pumped again by the store chores"
    );
}

#[test]
fn what_the_bounds_refuse_is_stored_instead_and_replayed_once_there_is_room() {
    let h = Harness::with_store(|c| c.max_in_flight_per_user = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    send_all(&h, &mut alice, "bob", &["fp-1", "fp-2"]);
    assert_eq!(
        h.stored("bob"),
        1,
        "fp-2 did not fit in bob's share: stored, and acknowledged"
    );
    assert_eq!(replayed(&h, &mut bob), ["fp-1"]);
    ack(&h, &mut bob, "bob", "alice", "fp-1");
    // The replay waits for room, then the store chores send fp-2.
    let due = h.core.poll_store_timeout().expect("the replay is retried");
    h.advance(due.saturating_duration_since(h.now()));
    h.chores();
    assert_eq!(replayed(&h, &mut bob), ["fp-2"]);
    ack(&h, &mut bob, "bob", "alice", "fp-2");
    h.chores();
    assert_eq!(h.stored("bob"), 0);
}
