//! Login (§4.2) and duplicate logins (§4.3), as a client sees them.

use hongyan_shared::{Kickout, LoginInfo, Packet, PacketType, Transport, UserId, codes};

use super::harness::{Event, Harness, T0, data, kinds};
use crate::core::Flow;

fn kick_code(packet: &Packet) -> i32 {
    Kickout::decode(packet.data_content.as_deref().unwrap())
        .unwrap()
        .code
}

#[test]
fn a_first_login_is_answered_with_the_clocks_wall_time_and_registered() {
    let h = Harness::new();
    h.advance(std::time::Duration::from_millis(1234));
    let mut peer = h.open(Transport::Tcp);
    let (flow, response) = h.login(&mut peer, "alice", 0);
    assert_eq!((flow, response.code), (Flow::Continue, codes::OK));
    assert_eq!(response.first_login_time, T0 + 1234);
    assert!(peer.pipe.is_flushed(), "answered before registered");
    let online = h.handle().online_info(&"alice".into()).unwrap();
    assert_eq!(online.first_login_time, T0 + 1234);
    assert_eq!(online.since, crate::clock::system_time(T0 + 1234));
    assert_eq!(h.hooks.take(), [Event::Login("alice".into())]);
}

#[test]
fn a_relogin_is_answered_with_the_first_login_time_it_carries() {
    let h = Harness::new();
    let mut peer = h.open(Transport::Udp);
    let (_, response) = h.login(&mut peer, "alice", T0 - 99);
    assert_eq!(response.first_login_time, T0 - 99);
}

#[test]
fn a_duplicated_login_datagram_is_answered_with_the_same_first_login_time() {
    let h = Harness::new();
    let mut client = h.open(Transport::Udp);
    let (_, first) = h.login(&mut client, "alice", 0);
    h.advance(std::time::Duration::from_millis(40));
    let (_, again) = h.login(&mut client, "alice", 0);
    assert_eq!(again.first_login_time, first.first_login_time);
    // So the client's next re-login, with the time it kept, is not a stale instance.
    h.advance(std::time::Duration::from_secs(30));
    let mut next = h.open(Transport::Udp);
    let (flow, relogin) = h.login(&mut next, "alice", first.first_login_time);
    assert_eq!((flow, relogin.code), (Flow::Continue, codes::OK));
    let online = h.handle().online_info(&"alice".into()).unwrap();
    assert_eq!(online.session.id, next.session.info().id);
}

#[test]
fn a_refused_login_is_answered_and_a_connection_then_closed() {
    for (transport, after) in [
        (Transport::Tcp, Flow::Close),
        (Transport::Udp, Flow::Continue),
    ] {
        let h = Harness::new();
        let mut peer = h.open(transport);
        let info = LoginInfo::new("alice", Some("refuse-1025"), None);
        assert_eq!(
            h.receive(&mut peer, &Packet::login(&info)),
            after,
            "{transport}"
        );
        let written = peer.written();
        assert_eq!(kinds(&written), [PacketType::LoginResponse]);
        assert_eq!(written[0].to_str(), UserId::UNSET);
        assert!(!h.handle().is_online(&"alice".into()));
    }
}

#[test]
fn reserved_user_ids_cannot_log_in() {
    for user in ["0", "-1", ""] {
        for (transport, after) in [
            (Transport::Tcp, Flow::Close),
            (Transport::Udp, Flow::Continue),
        ] {
            let h = Harness::new();
            let mut peer = h.open(transport);
            let info = LoginInfo::new(user, Some("token"), None);
            assert_eq!(
                h.receive(&mut peer, &Packet::login(&info)),
                after,
                "{user:?}"
            );
            assert!(peer.written().is_empty(), "no answer to {user:?}");
            assert!(h.hooks.take().is_empty());
        }
    }
}

#[test]
fn logging_in_as_another_user_logs_the_first_out() {
    let h = Harness::new();
    let mut peer = h.online(Transport::Tcp, "alice");
    let (flow, response) = h.login(&mut peer, "bob", 0);
    assert_eq!((flow, response.code), (Flow::Continue, codes::OK));
    assert_eq!(
        h.hooks.take(),
        [
            Event::Logout("alice".into(), None),
            Event::Login("bob".into())
        ]
    );
    assert!(!h.handle().is_online(&"alice".into()));
    assert!(h.handle().is_online(&"bob".into()));
}

/// A UDP pseudo-session is its address, and an address passes from one client to another
/// (a NAT mapping, a reused port): what was queued for the user who logged in there before
/// must not reach the one who logs in now. The message goes to its own receiver instead.
#[test]
fn what_was_queued_for_the_previous_user_never_reaches_the_next_one() {
    let h = Harness::with_store(|_| {});
    let mut bob = h.online(Transport::Tcp, "bob");
    let mut address = h.online(Transport::Udp, "alice");
    h.receive(&mut bob, &data("bob", "alice", "fp-1"));
    assert_eq!(
        kinds(&bob.written()),
        [PacketType::Ack],
        "handed to alice's session"
    );
    h.handle().kick(&"alice".into(), None);

    let (flow, response) = h.login(&mut address, "carol", 0);
    assert_eq!((flow, response.code), (Flow::Continue, codes::OK));
    assert_eq!(h.deliver(&mut address), Flow::Continue);
    assert_eq!(
        address.written(),
        [],
        "neither alice's message nor her kickout"
    );
    assert!(
        h.handle().is_online(&"carol".into()),
        "not kicked for alice"
    );

    // Alice's message was not acknowledged: it is retransmitted to her next session.
    let mut alice = h.online(Transport::Tcp, "alice");
    let schedule = h.core.config.s2c_schedule;
    let mut arrived = Vec::new();
    for _ in 0..=schedule.max_retries {
        h.advance(schedule.check_interval);
        h.tick();
        h.deliver(&mut alice);
        arrived.extend(alice.written());
        if !arrived.is_empty() {
            break;
        }
    }
    assert_eq!(kinds(&arrived), [PacketType::CommonData]);
    assert_eq!(arrived[0].fp.as_ref().map(|fp| fp.as_str()), Some("fp-1"));
    assert_eq!(h.deliver(&mut address), Flow::Continue);
    assert_eq!(address.written(), [], "carol never gets it");
}

#[test]
fn a_new_instance_kicks_the_old_session_which_closes_if_it_is_a_connection() {
    let h = Harness::new();
    let mut old = h.online(Transport::Tcp, "alice");
    let mut new = h.open(Transport::Udp);
    h.login(&mut new, "alice", 0);
    assert_eq!(h.deliver(&mut old), Flow::Close);
    let written = old.written();
    assert_eq!(kinds(&written), [PacketType::Kickout]);
    assert_eq!(kick_code(&written[0]), codes::KICKOUT_DUPLICATE_LOGIN);
    h.core.close_session(&mut old.session);
    assert_eq!(
        h.hooks.take(),
        [Event::Login("alice".into())],
        "no logout: replaced"
    );
    assert!(h.handle().is_online(&"alice".into()));
}

#[test]
fn the_same_instance_reconnecting_displaces_the_old_session_without_a_kick() {
    let h = Harness::new();
    let mut old = h.online(Transport::Tcp, "alice");
    let mut new = h.open(Transport::Tcp);
    h.login(&mut new, "alice", T0);
    assert_eq!(h.deliver(&mut old), Flow::Continue);
    assert!(old.written().is_empty());
    h.core.close_session(&mut old.session);
    assert!(
        h.handle().is_online(&"alice".into()),
        "the old session leaves quietly"
    );
}

#[test]
fn a_stale_instance_is_refused_with_a_kickout() {
    for (transport, after) in [
        (Transport::Tcp, Flow::Close),
        (Transport::Udp, Flow::Continue),
    ] {
        let h = Harness::new();
        // A `firstLoginTime` the server cannot have answered yet would count as now.
        h.advance(std::time::Duration::from_secs(1));
        let mut current = h.open(Transport::Tcp);
        h.login(&mut current, "alice", T0 + 50);
        let mut stale = h.open(transport);
        let mut info = LoginInfo::new("alice", Some("token"), None);
        info.first_login_time = T0;
        assert_eq!(
            h.receive(&mut stale, &Packet::login(&info)),
            after,
            "{transport}"
        );
        let written = stale.written();
        // Answered first (§4.2 step 5), then refused as stale.
        assert_eq!(
            kinds(&written),
            [PacketType::LoginResponse, PacketType::Kickout]
        );
        assert_eq!(kick_code(&written[1]), codes::KICKOUT_DUPLICATE_LOGIN);
        let online = h.handle().online_info(&"alice".into()).unwrap();
        assert_eq!(online.session, current.session.info());
    }
}

#[test]
fn a_duplicate_login_closes_an_old_connection_whose_queue_cannot_take_the_kickout() {
    let h = Harness::with(|c| c.outbox_capacity = 1);
    let old = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    // Fill alice's queue.
    h.receive(
        &mut bob,
        &Packet::common_data("bob", "alice", "hi", None, 0),
    );
    let mut new = h.open(Transport::Tcp);
    h.login(&mut new, "alice", 0);
    assert!(old.session.is_closing());

    // A UDP pseudo-session is left to expire instead.
    let mut old = h.online(Transport::Udp, "carol");
    h.receive(
        &mut bob,
        &Packet::common_data("bob", "carol", "hi", None, 0),
    );
    let mut new = h.open(Transport::Tcp);
    h.login(&mut new, "carol", 0);
    assert!(!old.session.is_closing());
    assert_eq!(h.deliver(&mut old), Flow::Continue);
}

#[test]
fn a_first_login_time_after_the_servers_clock_counts_as_now() {
    let h = Harness::new();
    // Mallory claims an instance from the far future, which would make every later
    // instance's re-login look stale (§4.3).
    let mut mallory = h.open(Transport::Tcp);
    let (_, response) = h.login(&mut mallory, "alice", i64::MAX);
    assert_eq!(
        response.first_login_time, T0,
        "answered with the server's clock"
    );
    let online = h.handle().online_info(&"alice".into()).unwrap();
    assert_eq!(online.first_login_time, T0);
    // An instance the server answered after that re-logs in: a newer instance, not stale.
    h.advance(std::time::Duration::from_secs(10));
    let mut alice = h.open(Transport::Tcp);
    let (flow, response) = h.login(&mut alice, "alice", T0 + 5_000);
    assert_eq!((flow, response.code), (Flow::Continue, codes::OK));
    assert_eq!(response.first_login_time, T0 + 5_000);
    assert_eq!(
        h.handle().online_info(&"alice".into()).unwrap().session,
        alice.session.info()
    );
    // A real client re-logging in with the time it was answered is still the same instance.
    let mut again = h.open(Transport::Tcp);
    h.login(&mut again, "alice", T0 + 5_000);
    assert_eq!(
        h.deliver(&mut alice),
        Flow::Continue,
        "displaced, not kicked"
    );
}
