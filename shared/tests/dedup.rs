//! The receiver's de-duplication window (§6.3) at the edges of its configuration: regressions
//! found by fuzzing (`fuzz/fuzz_targets/client_session.rs`).

use std::time::Duration;

use hongyan_shared::client::{ClientEvent, ClientSession, SessionConfig};
use hongyan_shared::{
    DedupConfig, DedupWindow, Fingerprint, Instant, LoginInfo, LoginResponse, Packet, Transport,
};

#[test]
fn a_window_of_capacity_zero_remembers_nothing() {
    let t0 = Instant::now();
    let config = DedupConfig {
        capacity: 0,
        ..DedupConfig::default()
    };
    let mut window = DedupWindow::new(config, t0);
    assert!(window.observe("fp", t0));
    assert!(window.observe("fp", t0 + Duration::from_millis(1)));
    assert!(window.is_empty());
}

#[test]
fn a_session_without_a_dedup_window_acks_and_delivers_every_copy() {
    let t0 = Instant::now();
    let mut config = SessionConfig::new(Transport::Tcp, 1);
    config.dedup.capacity = 0;
    let mut session = ClientSession::new(config, t0);
    session
        .login(LoginInfo::new("alice", None, None), t0)
        .unwrap();
    session.handle_connected(t0);
    let accepted = LoginResponse {
        code: 0,
        first_login_time: 1,
    };
    session.handle_packet(Packet::login_response("alice", accepted), t0);
    while session.poll_transmit().is_some() {}
    while session.poll_event().is_some() {}

    let fp = Fingerprint::from("fp-1");
    let message = Packet::common_data("bob", "alice", "hi", Some(fp.clone()), -1);
    for _ in 0..2 {
        session.handle_packet(message.clone(), t0);
        let ack = session.poll_transmit().expect("every copy is acknowledged");
        assert_eq!(ack.data_content.as_deref(), Some(fp.as_str()));
        assert!(matches!(
            session.poll_event(),
            Some(ClientEvent::MessageReceived(m)) if m.fp.as_ref() == Some(&fp)
        ));
    }
}
