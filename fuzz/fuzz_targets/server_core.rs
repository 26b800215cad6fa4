//! The server's protocol core (`hongyan_server::engine::Core`) driven by an arbitrary sequence
//! of operations across up to eight sessions on TCP, UDP and WebSocket: peers connecting and
//! leaving; hostile packets (logins as anyone with any `firstLoginTime`, messages, forged
//! acknowledgements, keepalives, echoes, logouts, packets built field by field, captured
//! packets, raw bytes); session loops that take what is queued for them, or never do; pushes
//! and kicks from the application; sockets whose writes fail; and time moving forward by
//! arbitrary steps or to the next deadline, on a configuration with small bounds and short
//! timers so that every bound is reached and every timer fires. The harness
//! (`hongyan_fuzz::server_harness`) runs each session as the gateways' session loop does
//! (`gateway/driver.rs`): it closes a session when the core says so or when somebody asked it
//! to close, and a UDP pseudo-session after its first datagram unless it logged in.
//!
//! Checks, after every operation:
//! - no panic, and every future the core returns completes at once (in-memory pipes, hooks
//!   that answer at once);
//! - every packet the server writes decodes, and is within its pipe's outbound limit;
//! - a spoofable peer that has not logged in (UDP) is never answered with more bytes than it
//!   sent;
//! - a connection (TCP, WebSocket) that was written a kickout is closed;
//! - "acknowledged" is never a lie: a client → server acknowledgement is written only for a
//!   message the application was given (`on_c2s`), a pseudo-acknowledgement in a receiver's
//!   name only for a message relayed to that receiver or stored for it;
//! - an acknowledgement from a client settles (`on_s2c_received`), and a loss is reported
//!   (`on_s2c_lost`), only for a QoS packet that was sent to that very user;
//! - `on_login` and `on_logout` pair up, and the registry holds exactly the users the
//!   application was told are online, each on an open session;
//! - the bounds hold: QoS packets in flight (`max_in_flight`), bytes held for delivery
//!   (`max_queued_bytes`), the C2S de-duplication window (its capacity and bytes);
//! - after a session's deadline or the server's tick is handled at `now`, the next one is
//!   later than `now`;
//!
//! and at the end, once every peer has left and time has run past every retry and lifetime:
//! nothing is left (no user online, nothing in flight, no byte held, an empty de-duplication
//! window, no timer), and every QoS push has its outcome.

#![no_main]

use std::net::SocketAddr;

use hongyan_fuzz::server_harness::Harness;
use hongyan_fuzz::server_input::{ServerOp, ServerRun};
use hongyan_shared::Packet;
use libfuzzer_sys::fuzz_target;

/// Most sessions open at once.
const MAX_SESSIONS: usize = 8;

fuzz_target!(|run: ServerRun| {
    let mut harness = Harness::new(run.config.to_config(), run.config.store_offline);
    let mut next_port: u16 = 1;
    for op in &run.ops {
        apply(&mut harness, op, &mut next_port);
        harness.after_op();
        harness.check();
    }
    harness.finish();
});

/// The session `conn` picks (wrapping), if any is open.
fn pick(harness: &Harness, conn: u8) -> Option<usize> {
    (!harness.is_empty()).then(|| usize::from(conn) % harness.len())
}

fn apply(harness: &mut Harness, op: &ServerOp, next_port: &mut u16) {
    match op {
        ServerOp::Open(transport, first) => {
            if harness.len() >= MAX_SESSIONS {
                return;
            }
            let transport = transport.transport();
            let bytes = first.to_bytes(None, &harness.seen);
            if transport == hongyan_shared::Transport::Udp && Packet::decode(&bytes).is_err() {
                // The UDP gateway opens nothing for garbage from an unknown address.
                return;
            }
            let peer = SocketAddr::from(([127, 0, 0, 1], *next_port));
            *next_port = next_port.wrapping_add(1);
            let i = harness.open(transport, peer);
            harness.receive(i, &bytes);
        }
        ServerOp::Send { conn, packet } => {
            if let Some(i) = pick(harness, *conn) {
                let bytes = packet.to_bytes(harness.user(i), &harness.seen);
                harness.receive(i, &bytes);
            }
        }
        ServerOp::Drain { conn, items } => {
            if let Some(i) = pick(harness, *conn) {
                harness.drain(i, *items);
            }
        }
        ServerOp::Leave { conn } => {
            if let Some(i) = pick(harness, *conn) {
                harness.close(i);
            }
        }
        ServerOp::FailWrites { conn } => {
            if let Some(i) = pick(harness, *conn) {
                harness.fail_writes(i);
            }
        }
        ServerOp::Push {
            to,
            qos,
            fp,
            content,
        } => harness.push(to.as_str(), *qos, fp, content),
        ServerOp::Kick { user, code } => harness.kick(user.as_str(), *code),
        ServerOp::Wait(ms) => harness.wait(*ms),
        ServerOp::WaitForTimeout => harness.wait_for_timeout(),
    }
}
