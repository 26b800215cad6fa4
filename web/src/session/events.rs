//! How the session's events become UI updates.

use hongyan_shared::client::{ClientEvent, ConnectionState};

use crate::state::SessionUpdate;

/// The UI updates one [`ClientEvent`] stands for (none for events the UI does not show).
pub fn updates_for(event: ClientEvent) -> Vec<SessionUpdate> {
    match event {
        ClientEvent::StateChanged(ConnectionState::Connecting) => vec![SessionUpdate::Connecting],
        ClientEvent::StateChanged(ConnectionState::Online) => vec![SessionUpdate::LoggedIn],
        ClientEvent::StateChanged(ConnectionState::Reconnecting) | ClientEvent::LinkClosed => {
            vec![SessionUpdate::LinkLost]
        }
        ClientEvent::StateChanged(ConnectionState::Offline) => vec![SessionUpdate::Ended],
        ClientEvent::LoginResponse { code, .. } if code != 0 => {
            vec![SessionUpdate::LoginRefused { code }]
        }
        ClientEvent::LoginResponse { .. } => Vec::new(),
        ClientEvent::Kickout(kickout) => vec![SessionUpdate::KickedOut {
            code: kickout.code,
            reason: kickout.reason,
        }],
        ClientEvent::MessageReceived(message) => vec![SessionUpdate::Received {
            from: message.from,
            fp: message.fp,
            text: message.content,
        }],
        ClientEvent::MessageDelivered(fp) => vec![SessionUpdate::Delivered(fp)],
        ClientEvent::MessagesLost(packets) => packets
            .into_iter()
            .filter_map(|packet| packet.fp.map(SessionUpdate::Lost))
            .collect(),
        ClientEvent::RateLimited { fp } => {
            log::info!(
                "message {} refused: sending too fast",
                fp.as_ref().map_or("", |fp| fp.as_str())
            );
            Vec::new()
        }
        ClientEvent::ErrorResponse { code, message } => {
            log::info!("server error {code}: {}", message.unwrap_or_default());
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use hongyan_shared::client::{ClientSession, SessionConfig, TransportCommand};
    use hongyan_shared::{
        Fingerprint, Instant, Kickout, LoginInfo, LoginResponse, Outgoing, Packet, Transport, codes,
    };

    use super::*;
    use crate::state::{ChatState, ConnectionStatus, Delivery};

    /// A real session with a scripted server, its events applied to a [`ChatState`] the way
    /// the driver applies them.
    struct Harness {
        session: ClientSession,
        state: ChatState,
        now: Instant,
    }

    impl Harness {
        fn logged_in(user: &str) -> Self {
            let now = Instant::now();
            let mut harness = Self {
                session: ClientSession::new(SessionConfig::new(Transport::WebSocket, 7), now),
                state: ChatState::new(),
                now,
            };
            harness.state.begin_login(user.into());
            harness
                .session
                .login(LoginInfo::new(user, Some("t"), None), now)
                .unwrap();
            assert_eq!(
                harness.session.poll_transport(),
                Some(TransportCommand::Open)
            );
            harness.session.handle_connected(now);
            harness.server_says(Packet::login_response(
                user,
                LoginResponse {
                    code: 0,
                    first_login_time: 1,
                },
            ));
            harness
        }

        fn server_says(&mut self, packet: Packet) {
            self.session.handle_packet(packet, self.now);
            self.drain();
        }

        fn drain(&mut self) {
            while self.session.poll_transmit().is_some() {}
            while self.session.poll_transport().is_some() {}
            while let Some(event) = self.session.poll_event() {
                for update in updates_for(event) {
                    self.state.apply(update);
                }
            }
        }

        fn send(&mut self, to: &str, text: &str, n: u128) -> Fingerprint {
            let outgoing = Outgoing::new(to, text).with_fingerprint(Fingerprint::from_random(n));
            self.state.record_outgoing(&outgoing);
            self.session.send(outgoing, self.now).unwrap()
        }

        fn delivery(&self, peer: &str) -> Option<Delivery> {
            self.state
                .conversation(&peer.into())
                .and_then(|c| c.last())
                .and_then(|m| m.delivery)
        }

        fn run_timers_for(&mut self, secs: u64) {
            let end = self.now + std::time::Duration::from_secs(secs);
            while let Some(next) = self.session.poll_timeout().filter(|t| *t <= end) {
                self.now = next;
                self.session.handle_timeout(next);
                self.drain();
            }
            self.now = end;
        }
    }

    #[test]
    fn login_goes_online_and_an_ack_marks_the_message_delivered() {
        let mut h = Harness::logged_in("alice");
        assert_eq!(h.state.connection(), &ConnectionStatus::Online);
        let fp = h.send("bob", "hi", 1);
        h.drain();
        assert_eq!(h.delivery("bob"), Some(Delivery::Sending));
        h.server_says(Packet::ack("bob", "alice", &fp, false));
        assert_eq!(h.delivery("bob"), Some(Delivery::Delivered));
    }

    #[test]
    fn unacknowledged_message_is_reported_lost_after_its_retries() {
        let mut h = Harness::logged_in("alice");
        h.send("bob", "into the void", 1);
        h.run_timers_for(30);
        assert_eq!(h.delivery("bob"), Some(Delivery::Lost));
    }

    #[test]
    fn retransmitted_qos_message_shows_once() {
        let mut h = Harness::logged_in("bob");
        let fp = Fingerprint::from_random(3);
        let message = Packet::common_data("alice", "bob", "hello 👋", Some(fp), -1);
        h.server_says(message.clone());
        h.server_says(message);
        let conversation = h.state.conversation(&"alice".into()).unwrap();
        assert_eq!(conversation.messages.len(), 1);
        assert_eq!(conversation.messages[0].text, "hello 👋");
    }

    #[test]
    fn link_loss_shows_reconnecting_then_online_again() {
        let mut h = Harness::logged_in("alice");
        h.session.handle_disconnected(h.now);
        h.drain();
        assert_eq!(h.state.connection(), &ConnectionStatus::Reconnecting);
        h.session.handle_timeout(h.now);
        h.session.handle_connected(h.now);
        h.server_says(Packet::login_response(
            "alice",
            LoginResponse {
                code: 0,
                first_login_time: 1,
            },
        ));
        assert_eq!(h.state.connection(), &ConnectionStatus::Online);
    }

    #[test]
    fn kickout_for_a_duplicate_login_says_so_and_stays() {
        let mut h = Harness::logged_in("alice");
        let fp = h.send("bob", "pending", 1);
        h.server_says(Packet::kickout(
            "alice",
            &Kickout {
                code: codes::KICKOUT_DUPLICATE_LOGIN,
                reason: None,
            },
        ));
        assert_eq!(
            h.state.connection().describe(),
            "You logged in elsewhere",
            "{:?}",
            h.state.connection()
        );
        assert_eq!(h.delivery("bob"), Some(Delivery::Lost), "{fp}");
    }

    #[test]
    fn refused_login_shows_the_code() {
        let now = Instant::now();
        let mut session = ClientSession::new(SessionConfig::new(Transport::WebSocket, 1), now);
        let mut state = ChatState::new();
        state.begin_login("alice".into());
        session
            .login(LoginInfo::new("alice", None, None), now)
            .unwrap();
        session.handle_connected(now);
        session.handle_packet(
            Packet::login_response("-1", LoginResponse::refused(1025)),
            now,
        );
        while let Some(event) = session.poll_event() {
            for update in updates_for(event) {
                state.apply(update);
            }
        }
        assert_eq!(
            state.connection(),
            &ConnectionStatus::LoginRefused { code: 1025 }
        );
    }
}
