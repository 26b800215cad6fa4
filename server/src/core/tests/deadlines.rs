//! What happens when time passes: idle expiry (§3.4, §5.2), retransmission and loss (§6.2),
//! a receiver that stopped reading.

use std::time::Duration;

use futures_util::FutureExt;
use hongyan_shared::{Fingerprint, Outgoing, Packet, PacketType, Transport};

use super::harness::{Event, Harness, data, kinds};
use crate::Delivery;
use crate::core::Flow;

#[test]
fn a_silent_session_expires_and_traffic_moves_its_deadline() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Udp, "alice");
    let expiry = h.core.config.idle_expiry(Transport::Udp);
    assert_eq!(
        h.core.poll_session_timeout(&alice.session),
        h.now() + expiry
    );

    h.advance(expiry - Duration::from_millis(1));
    h.receive(&mut alice, &Packet::keep_alive("alice"));
    let deadline = h.core.poll_session_timeout(&alice.session);
    assert_eq!(deadline, h.now() + expiry);

    h.advance(expiry - Duration::from_millis(1));
    assert_eq!(
        h.core.handle_session_timeout(&mut alice.session, h.now()),
        Flow::Continue
    );
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.core.handle_session_timeout(&mut alice.session, h.now()),
        Flow::Close
    );
    h.core.close_session(&mut alice.session);
    assert_eq!(h.hooks.take(), [Event::Logout("alice".into(), None)]);
}

#[test]
fn each_transport_expires_after_its_own_sense_mode() {
    let h = Harness::with(|c| c.tcp_sense_mode = Some(hongyan_shared::SenseMode::S60));
    for transport in [Transport::Tcp, Transport::Udp, Transport::WebSocket] {
        let peer = h.online(transport, &format!("user-{transport}"));
        assert_eq!(
            h.core.poll_session_timeout(&peer.session) - h.now(),
            h.core.config.idle_expiry(transport),
            "{transport}"
        );
    }
}

#[test]
fn an_unacknowledged_push_is_sent_again_then_reported_lost() {
    let h = Harness::new();
    let mut bob = h.online(Transport::Tcp, "bob");
    let fp = Fingerprint::new("fp-1");
    let sent = h
        .push(Outgoing::new("bob", "hello").with_fingerprint(fp.clone()))
        .unwrap();
    h.deliver(&mut bob);
    assert_eq!(kinds(&bob.written()), [PacketType::CommonData]);

    let schedule = h.core.config.s2c_schedule;
    assert_eq!(
        h.core.poll_timeout(),
        Some(h.now() + schedule.check_interval)
    );
    h.advance(schedule.check_interval - Duration::from_millis(1));
    h.tick();
    h.deliver(&mut bob);
    assert!(bob.written().is_empty(), "not yet due");

    h.advance(Duration::from_millis(1));
    h.tick();
    h.deliver(&mut bob);
    assert_eq!(kinds(&bob.written()), [PacketType::CommonData], "resent");
    assert!(h.hooks.take().is_empty());

    h.advance(schedule.check_interval);
    h.tick();
    h.deliver(&mut bob);
    assert!(bob.written().is_empty(), "no more retries");
    assert_eq!(h.hooks.take(), [Event::S2cLost("fp-1".into())]);
    assert_eq!(sent.outcome().now_or_never(), Some(Delivery::Lost));
    assert_eq!(h.core.poll_timeout(), None);
}

#[test]
fn a_retransmission_goes_to_the_users_current_session() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut old = h.online(Transport::Udp, "bob");
    h.receive(&mut alice, &data("alice", "bob", "fp-1"));
    h.deliver(&mut old);
    assert_eq!(kinds(&old.written()), [PacketType::CommonData]);

    let first_login_time = h
        .handle()
        .online_info(&"bob".into())
        .unwrap()
        .first_login_time;
    let mut new = h.open(Transport::Udp);
    h.login(&mut new, "bob", first_login_time);
    h.advance(h.core.config.s2c_schedule.check_interval);
    h.tick();
    h.deliver(&mut old);
    h.deliver(&mut new);
    assert!(old.written().is_empty());
    let resent = new.written();
    assert_eq!(kinds(&resent), [PacketType::CommonData]);
    assert_eq!(resent[0].fp, Some(Fingerprint::new("fp-1")));
}

#[test]
fn a_receiver_whose_queue_stays_full_is_closed_after_the_stall_limit() {
    let h = Harness::with(|c| c.outbox_capacity = 1);
    let mut alice = h.online(Transport::Tcp, "alice");
    let bob = h.online(Transport::Tcp, "bob");
    let plain = Packet::common_data("alice", "bob", "hi", None, 0);
    h.receive(&mut alice, &plain);
    h.receive(&mut alice, &plain);
    assert!(
        !bob.session.is_closing(),
        "a brief backlog is refused, not punished"
    );
    h.advance(h.core.config.slow_consumer_stall);
    h.receive(&mut alice, &plain);
    assert!(bob.session.is_closing());
}

#[test]
fn the_server_stamps_sm_from_the_clocks_wall_time() {
    let h = Harness::with(|c| c.server_timestamp = true);
    let mut alice = h.online(Transport::Tcp, "alice");
    h.advance(Duration::from_millis(250));
    h.receive(&mut alice, &data("alice", "0", "fp-1"));
    let ack = alice.written();
    assert_eq!(ack[0].sm, super::harness::T0 + 250);
}
