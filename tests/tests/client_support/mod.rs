//! Helpers shared by the `client_*` end-to-end tests: fast client timings, endpoints of a
//! [`TestServer`], and bounded waits on a client's events.

use std::time::Duration;

use hongyan_client::{Client, ClientConfig, ClientEvent, ConnectionState, Endpoint, Events};
use hongyan_shared::{LoginInfo, RetransmitSchedule, Transport};
use hongyan_tests::{TestServer, WAIT};

/// The server's endpoint for `transport`.
pub fn endpoint(server: &TestServer, transport: Transport) -> Endpoint {
    match transport {
        Transport::Tcp => Endpoint::Tcp(server.tcp.to_string()),
        Transport::Udp => Endpoint::Udp(server.udp.to_string()),
        Transport::WebSocket => Endpoint::WebSocket(server.ws_url()),
        Transport::Http => panic!("the native client has no HTTP sessions"),
    }
}

/// The Java defaults sped up tenfold, so link loss, relogin and QoS loss happen within a test's
/// patience: keepalive 500 ms, timeout 1500 ms checked every 250 ms, relogin every 300 ms,
/// retransmission every 500 ms.
pub fn fast(endpoint: Endpoint) -> ClientConfig {
    let mut config = ClientConfig::new(endpoint);
    let session = &mut config.session;
    session.keep_alive.interval = Duration::from_millis(500);
    session.keep_alive.timeout = Duration::from_millis(1500);
    session.timeout_check_interval = Duration::from_millis(250);
    session.relogin_interval = Duration::from_millis(300);
    session.retransmit = RetransmitSchedule {
        check_interval: Duration::from_millis(500),
        just_sent: Duration::from_millis(300),
        max_retries: 2,
    };
    config
}

/// Starts a client for `user` and waits until it is online.
pub async fn online(config: ClientConfig, user: &str) -> (Client, Events) {
    let (client, events) =
        Client::connect(config, LoginInfo::new(user, Some("token"), None)).expect("valid login");
    tokio::time::timeout(WAIT, client.wait_for(ConnectionState::Online))
        .await
        .unwrap_or_else(|_| panic!("{user} not online within {WAIT:?}"))
        .expect("session still running");
    (client, events)
}

/// The next event that `matches`, skipping others, failing the test after `wait`.
pub async fn next_matching(
    events: &mut Events,
    wait: Duration,
    matches: impl Fn(&ClientEvent) -> bool,
) -> ClientEvent {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if matches(&event) => return event,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event stream ended before a matching event"),
            Err(_) => panic!("no matching event within {wait:?}"),
        }
    }
}

/// Every event until the stream ends, failing the test after `wait`.
pub async fn until_end(events: &mut Events, wait: Duration) -> Vec<ClientEvent> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) => seen.push(event),
            Ok(None) => return seen,
            Err(_) => panic!("event stream did not end within {wait:?}; saw {seen:#?}"),
        }
    }
}

/// Everything that arrives within `wait`.
pub async fn collect_for(events: &mut Events, wait: Duration) -> Vec<ClientEvent> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await {
        seen.push(event);
    }
    seen
}
