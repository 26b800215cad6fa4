//! Kickouts (§4.3, §7.3): a connection closes after one, a UDP pseudo-session stays.

use hongyan_shared::{PacketType, Transport, codes};

use super::harness::{Event, Harness, kinds};
use crate::core::Flow;

#[test]
fn an_admin_kick_closes_a_connection_and_reports_the_code_at_logout() {
    for transport in [Transport::Tcp, Transport::WebSocket] {
        let h = Harness::new();
        let mut alice = h.online(transport, "alice");
        assert!(h.handle().kick(&"alice".into(), Some("bye")));
        assert_eq!(h.deliver(&mut alice), Flow::Close, "{transport}");
        assert!(alice.pipe.is_flushed());
        assert_eq!(kinds(&alice.written()), [PacketType::Kickout]);
        h.core.close_session(&mut alice.session);
        assert_eq!(
            h.hooks.take(),
            [Event::Logout("alice".into(), Some(codes::KICKOUT_ADMIN))]
        );
    }
}

#[test]
fn an_admin_kick_logs_a_udp_user_out_at_once_and_the_pseudo_session_stays() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Udp, "alice");
    h.handle().kick_with_code(&"alice".into(), 150, None);
    assert_eq!(h.deliver(&mut alice), Flow::Continue);
    assert_eq!(kinds(&alice.written()), [PacketType::Kickout]);
    assert_eq!(h.hooks.take(), [Event::Logout("alice".into(), Some(150))]);
    assert!(!h.handle().is_online(&"alice".into()));
    h.core.close_session(&mut alice.session);
    assert!(h.hooks.take().is_empty(), "logged out once");
}

#[test]
fn a_duplicate_login_kick_leaves_a_udp_pseudo_session_displaced() {
    let h = Harness::new();
    let mut old = h.online(Transport::Udp, "alice");
    let mut new = h.open(Transport::Udp);
    h.login(&mut new, "alice", 0);
    assert_eq!(h.deliver(&mut old), Flow::Continue);
    assert_eq!(kinds(&old.written()), [PacketType::Kickout]);
    h.core.close_session(&mut old.session);
    assert_eq!(h.hooks.take(), [Event::Login("alice".into())], "no logout");
    assert!(h.handle().is_online(&"alice".into()));
}

#[test]
fn a_kick_that_cannot_be_written_closes_even_a_udp_pseudo_session() {
    let h = Harness::new();
    let mut alice = h.online(Transport::Udp, "alice");
    alice.pipe.fail_writes();
    h.handle().kick(&"alice".into(), None);
    assert_eq!(h.deliver(&mut alice), Flow::Close);
}
