//! Two hundred independent clients in one process, spread over TCP, UDP and WebSocket, each
//! sending to the next in a ring.

use crate::client_support;

use std::time::Duration;

use client_support::{endpoint, fast, next_matching};
use hongyan_client::{Client, ClientEvent, ConnectionState};
use hongyan_shared::{LoginInfo, Transport};
use hongyan_tests::TestServer;

const CLIENTS: usize = 200;
const PATIENCE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_in_one_process_each_send_and_receive_once() {
    let server = TestServer::start().await;
    let transports = [Transport::Tcp, Transport::Udp, Transport::WebSocket];
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let config = fast(endpoint(&server, transports[i % 3]));
        let login = LoginInfo::new(&format!("user{i}"), Some("token"), None);
        clients.push(Client::connect(config, login).unwrap());
    }
    for (client, _) in &clients {
        tokio::time::timeout(PATIENCE, client.wait_for(ConnectionState::Online))
            .await
            .expect("every client online in time")
            .unwrap();
    }
    assert_eq!(server.handle.online_count(), CLIENTS);

    let mut sent = Vec::new();
    for (i, (client, _)) in clients.iter().enumerate() {
        let to = format!("user{}", (i + 1) % CLIENTS);
        sent.push(
            client
                .send_c2c(&to, format!("from user{i}"), 0)
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for (i, (client, mut events)) in clients.into_iter().enumerate() {
        let fp = sent[i].clone();
        let expected_from = format!("user{}", (i + CLIENTS - 1) % CLIENTS);
        tasks.push(tokio::spawn(async move {
            let mut delivered = false;
            let mut received = 0;
            while !(delivered && received == 1) {
                match next_matching(&mut events, PATIENCE, |e| {
                    matches!(
                        e,
                        ClientEvent::MessageDelivered(_) | ClientEvent::MessageReceived(_)
                    )
                })
                .await
                {
                    ClientEvent::MessageDelivered(done) => {
                        assert_eq!(done, fp);
                        delivered = true;
                    }
                    ClientEvent::MessageReceived(m) => {
                        assert_eq!(m.from.as_str(), expected_from);
                        received += 1;
                    }
                    _ => unreachable!(),
                }
            }
            client.logout().await;
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while server.handle.online_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.handle.online_count(), 0, "every client logged out");
}
