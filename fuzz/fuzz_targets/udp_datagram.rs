//! The UDP path: arbitrary datagrams from a few addresses or any (IPv4 and IPv6) through the
//! gateway's rules, its pseudo-session table (`engine::PseudoSessions`) and what it hands a
//! pseudo-session (`engine::inbound_datagram`), into the server core, whose sessions the
//! harness runs as the gateway's session loop does (`hongyan_fuzz::server_harness`); with
//! pushes, kicks and time on a configuration with small bounds and short timers.
//!
//! A datagram is read as the gateway reads it: into a buffer one byte larger than the inbound
//! limit, with its whole length known, so a datagram over the limit is kept only in part.
//!
//! Checks, after every operation, besides the harness's (the core's invariants, answers to an
//! address that has not logged in never larger than its datagram, …):
//! - a datagram from an address without a pseudo-session opens one only if it is a packet
//!   within the limit and there is room (the table refuses only when `max_udp_sessions`
//!   exist, or `max_udp_unauthenticated` have not logged in);
//! - a datagram over the limit from an address with a pseudo-session ends that session,
//!   unanswered;
//! - the table and the sessions agree: one pseudo-session per address in the table, each
//!   with an open session, and none in the table once its session has ended;
//! - between datagrams no address that has not logged in holds a pseudo-session (each is
//!   forgotten once answered), and never more than `max_udp_sessions` exist;
//!
//! and at the end, once every address is gone and time has run out, the harness's: nothing is
//! left in the core.

#![no_main]

use hongyan_fuzz::server_harness::Harness;
use hongyan_fuzz::udp_input::{UdpOp, UdpRun};
use hongyan_server::engine::{PseudoSessions, Unopened, inbound_datagram};
use hongyan_shared::{Packet, Transport};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|run: UdpRun| {
    let mut config = run.config.to_config();
    let limits = run.limits();
    let max_inbound = run.max_inbound();
    config.max_udp_sessions = limits.sessions;
    config.max_udp_unauthenticated = limits.unauthenticated;
    config.udp_max_inbound = max_inbound;
    let mut harness = Harness::new(config, run.config.store_offline);
    let mut table = PseudoSessions::new(limits);
    for op in &run.ops {
        match op {
            UdpOp::Datagram { from, payload } => {
                let peer = from.addr();
                let me = harness.find(&peer).and_then(|i| harness.user(i));
                let datagram = payload.to_bytes(me, &harness.seen);
                // What recvmmsg leaves in a buffer of `max_inbound + 1` bytes.
                let len = datagram.len();
                let kept = &datagram[..len.min(max_inbound + 1)];
                let item = inbound_datagram(kept, len, max_inbound);
                assert_eq!(item.is_ok(), len <= max_inbound);
                match table.get(&peer) {
                    Some((id, ())) => {
                        let i = harness
                            .find(&peer)
                            .expect("an address in the table has a session");
                        match item {
                            Ok(body) => {
                                if harness.receive(i, &body) {
                                    table.logged_in(&peer, id);
                                }
                            }
                            Err(_) => harness.refuse(i),
                        }
                    }
                    None => {
                        assert!(harness.find(&peer).is_none(), "a session outside the table");
                        let (len_before, unauthenticated) = (table.len(), table.unauthenticated());
                        match table.open(peer, &item, ()) {
                            Ok(id) => {
                                let body = item.expect("only a packet opens a session");
                                let i = harness.open(Transport::Udp, peer);
                                if harness.receive(i, &body) {
                                    table.logged_in(&peer, id);
                                }
                            }
                            Err(Unopened::NotAPacket) => assert!(
                                item.as_ref()
                                    .map_or(true, |body| Packet::decode(body).is_err()),
                                "a packet refused as garbage"
                            ),
                            Err(Unopened::SessionLimit) => {
                                assert!(len_before >= limits.sessions);
                            }
                            Err(Unopened::UnauthenticatedLimit) => {
                                assert!(unauthenticated >= limits.unauthenticated);
                            }
                        }
                    }
                }
            }
            UdpOp::Drain { from, items } => {
                if let Some(i) = harness.find(&from.addr()) {
                    harness.drain(i, *items);
                }
            }
            UdpOp::Push {
                to,
                qos,
                fp,
                content,
            } => harness.push(to.as_str(), *qos, fp, content),
            UdpOp::Kick { user, code } => harness.kick(user.as_str(), *code),
            UdpOp::Wait(ms) => harness.wait(*ms),
            UdpOp::WaitForTimeout => harness.wait_for_timeout(),
        }
        harness.after_op();
        // A session that ended forgets its address, as `UdpPipe::close` does.
        for peer in harness.take_closed() {
            let (id, ()) = table.get(&peer).expect("an ended session was in the table");
            assert!(table.remove(&peer, id).is_some());
        }
        harness.check();
        assert_eq!(
            table.len(),
            harness.len(),
            "the table and the sessions disagree"
        );
        for i in 0..harness.len() {
            assert!(table.get(&harness.peer(i)).is_some());
        }
        assert_eq!(
            table.unauthenticated(),
            0,
            "an unanswered address is remembered"
        );
        assert!(table.len() <= limits.sessions);
    }
    harness.finish();
});
