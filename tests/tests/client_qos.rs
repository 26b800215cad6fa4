//! QoS end to end through a seeded lossy proxy (drop, duplicate, delay, reorder) on UDP and
//! TCP: every QoS message is reported delivered or lost exactly once by its sender, reaches
//! its receiver at most once, and a "delivered" report is never a lie.
//!
//! Per §6 QoS is hop by hop, so a message can reach its receiver although every
//! acknowledgement was dropped, and then be reported lost: "never both" holds for the
//! sender's reports (one per message), not between a receipt and a loss report.

use crate::client_support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use client_support::{fast, online};
use hongyan_client::{ClientEvent, Endpoint, Events};
use hongyan_shared::{Fingerprint, RetransmitSchedule, Transport};
use hongyan_tests::proxy::{Faults, LossyProxy};
use hongyan_tests::{Event, TestServer};

const MESSAGES: usize = 60;

#[derive(Debug, Default)]
struct Reports {
    delivered: usize,
    lost: usize,
}

/// Reads `events` until every fingerprint in `sent` has a report, or `wait` passes; counts
/// received messages by fingerprint on the way.
async fn settle(
    events: &mut Events,
    sent: &[Fingerprint],
    reports: &mut HashMap<Fingerprint, Reports>,
    received: &mut HashMap<Fingerprint, usize>,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    while sent
        .iter()
        .any(|fp| reports.get(fp).is_none_or(|r| r.delivered + r.lost == 0))
    {
        let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.recv()).await else {
            break;
        };
        match event {
            ClientEvent::MessageDelivered(fp) => reports.entry(fp).or_default().delivered += 1,
            ClientEvent::MessagesLost(lost) => {
                for packet in lost {
                    reports.entry(packet.fp.unwrap()).or_default().lost += 1;
                }
            }
            ClientEvent::MessageReceived(m) => *received.entry(m.fp.unwrap()).or_default() += 1,
            _ => {}
        }
    }
}

async fn qos_holds_through_a_lossy_link(transport: Transport, seed: u64) {
    let server = TestServer::with(|c| {
        c.s2c_schedule = RetransmitSchedule {
            check_interval: Duration::from_millis(500),
            just_sent: Duration::from_millis(200),
            max_retries: 1,
        };
    })
    .await;
    let faults = Faults {
        drop: 0.15,
        duplicate: 0.1,
        max_delay: Duration::from_millis(120),
        seed,
        ..Faults::none()
    };
    let (proxy, endpoint) = match transport {
        Transport::Tcp => {
            let proxy = LossyProxy::tcp(server.tcp, faults).await;
            let endpoint = Endpoint::Tcp(proxy.addr.to_string());
            (proxy, endpoint)
        }
        _ => {
            let proxy = LossyProxy::udp(server.udp, faults).await;
            let endpoint = Endpoint::Udp(proxy.addr.to_string());
            (proxy, endpoint)
        }
    };
    let (alice, mut alice_events) = online(fast(endpoint.clone()), "alice").await;
    let (_bob, mut bob_events) = online(fast(endpoint), "bob").await;

    let mut c2s = Vec::new();
    let mut c2c = Vec::new();
    for i in 0..MESSAGES {
        let fp = if i % 2 == 0 {
            let fp = alice.send_c2s(format!("c2s {i}"), 0).await.unwrap();
            c2s.push(fp.clone());
            fp
        } else {
            let fp = alice.send_c2c("bob", format!("c2c {i}"), 0).await.unwrap();
            c2c.push(fp.clone());
            fp
        };
        assert!(!fp.is_empty());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sent: Vec<Fingerprint> = c2s.iter().chain(&c2c).cloned().collect();
    let mut reports = HashMap::new();
    let mut alice_received = HashMap::new();
    // Three transmissions 500 ms apart, then the loss report: all settle within seconds, even
    // across relogins.
    settle(
        &mut alice_events,
        &sent,
        &mut reports,
        &mut alice_received,
        Duration::from_secs(20),
    )
    .await;
    // Let late duplicates and retransmissions to bob land before counting; his events wait
    // in the channel meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut bob_received: HashMap<Fingerprint, usize> = HashMap::new();
    while let Some(event) = bob_events.try_recv() {
        if let ClientEvent::MessageReceived(m) = event {
            *bob_received.entry(m.fp.unwrap()).or_default() += 1;
        }
    }

    let mut delivered = 0;
    for fp in &sent {
        let report = reports.get(fp).unwrap_or_else(|| panic!("{fp}: no report"));
        assert_eq!(
            report.delivered + report.lost,
            1,
            "{fp}: exactly one report, got {report:?}"
        );
        delivered += report.delivered;
    }
    let in_server_app = |fp: &Fingerprint| {
        server
            .hooks
            .count(|e| matches!(e, Event::C2s(p) if p.fp.as_ref() == Some(fp)))
    };
    for fp in &c2s {
        let count = in_server_app(fp);
        assert!(
            count <= 1,
            "{fp} reached the server application {count} times"
        );
        if reports[fp].delivered == 1 {
            assert_eq!(
                count, 1,
                "{fp} reported delivered but not in the server app"
            );
        }
    }
    for fp in &c2c {
        let count = bob_received.get(fp).copied().unwrap_or(0);
        assert!(count <= 1, "{fp} reached bob {count} times");
    }
    let stats = proxy.stats();
    assert!(
        stats.dropped.load(Ordering::Relaxed) > 0 && stats.duplicated.load(Ordering::Relaxed) > 0,
        "the proxy must have misbehaved"
    );
    assert!(
        delivered > MESSAGES / 2,
        "with 15% loss most messages get through: {delivered}/{MESSAGES}"
    );
}

#[tokio::test]
async fn udp_qos_holds_through_a_lossy_link() {
    for seed in [1, 2] {
        qos_holds_through_a_lossy_link(Transport::Udp, seed).await;
    }
}

#[tokio::test]
async fn tcp_qos_holds_through_a_lossy_link() {
    for seed in [3, 4] {
        qos_holds_through_a_lossy_link(Transport::Tcp, seed).await;
    }
}
