//! The TCP and WebSocket relays: each accepted connection gets its own upstream connection,
//! and whole packets (TCP frames, WebSocket frames) pass through the faults both ways.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::Shared;

/// How a stream is cut into packets.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    /// MobileIMSDK's 4-byte big-endian length prefix.
    Tcp,
    /// An HTTP upgrade, passed untouched, then WebSocket frames.
    WebSocket,
}

/// Why one direction of a relay stopped.
enum Ended {
    /// Its side closed or failed.
    Closed,
    /// A packet's fate was to reset the connection.
    Reset,
}

pub(super) async fn run(
    listener: TcpListener,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    framing: Framing,
) {
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    // A refused upstream closes the client's connection, as the server would.
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        let _ = server.set_nodelay(true);
                        let _ = client.set_nodelay(true);
                        pair(client, server, shared, framing).await;
                    }
                });
            }
        }
    }
}

/// Relays packets both ways between one client and its upstream connection until either side
/// closes, a packet resets it, the proxy cuts it or stops; or holds both, relaying nothing,
/// once the proxy makes it half-open.
async fn pair(client: TcpStream, server: TcpStream, shared: Arc<Shared>, framing: Framing) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (to_server, server_out) = mpsc::unbounded_channel();
    let (to_client, client_out) = mpsc::unbounded_channel();
    let mut stop = shared.stop.clone();
    let mut generation = shared.generation.subscribe();
    let mut frozen = shared.frozen.subscribe();
    let ended = tokio::select! {
        _ = stop.changed() => Ended::Closed,
        _ = generation.changed() => Ended::Closed,
        _ = frozen.changed() => {
            // Half-open: nothing more is read or written, nothing is closed.
            tokio::select! {
                _ = stop.changed() => {}
                _ = generation.changed() => {}
            }
            Ended::Closed
        }
        ended = relay(&mut client_read, &shared, &to_server, framing) => ended,
        ended = relay(&mut server_read, &shared, &to_client, framing) => ended,
        () = write(&mut server_write, server_out) => Ended::Closed,
        () = write(&mut client_write, client_out) => Ended::Closed,
    };
    if let Ended::Reset = ended {
        // RST rather than FIN on both sides, as a middlebox resets a connection: the halves
        // are put back together (a dropped write half would send a FIN first) and closed
        // with a zero linger.
        for (read, write) in [(client_read, client_write), (server_read, server_write)] {
            if let Ok(stream) = read.reunite(write) {
                let _ = stream.set_zero_linger();
            }
        }
    }
}

/// Reads one direction and forwards it packet by packet.
async fn relay(
    reader: &mut OwnedReadHalf,
    shared: &Shared,
    out: &mpsc::UnboundedSender<Vec<u8>>,
    framing: Framing,
) -> Ended {
    let mut buf = BytesMut::with_capacity(8192);
    if let Framing::WebSocket = framing {
        // The HTTP upgrade (request or response head) passes untouched.
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = buf.split_to(end + 4).to_vec();
                if out.send(head).is_err() {
                    return Ended::Closed;
                }
                break;
            }
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            }
        }
    }
    loop {
        while let Some(len) = frame_len(&buf, framing) {
            let frame = buf.split_to(len).to_vec();
            let packet = packet_of(&frame, framing);
            if !shared.forward(&packet, frame, out) {
                return Ended::Reset;
            }
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return Ended::Closed,
            Ok(_) => {}
        }
    }
}

/// The length of the complete frame at the start of `buf`, if it is all there.
fn frame_len(buf: &[u8], framing: Framing) -> Option<usize> {
    let len = match framing {
        Framing::Tcp => {
            4 + usize::try_from(u32::from_be_bytes(buf.get(..4)?.try_into().ok()?)).ok()?
        }
        Framing::WebSocket => {
            let (header, payload) = ws_header(buf)?;
            header + payload
        }
    };
    (buf.len() >= len).then_some(len)
}

/// A WebSocket frame's header length and payload length, once the header is all there.
fn ws_header(buf: &[u8]) -> Option<(usize, usize)> {
    let second = *buf.get(1)?;
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    let (extended, payload) = match second & 0x7F {
        126 => (
            2,
            usize::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
        ),
        127 => (
            8,
            usize::try_from(u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?)).ok()?,
        ),
        len => (0, usize::from(len)),
    };
    Some((2 + extended + mask, payload))
}

/// The packet body a frame carries: a TCP frame's body, a WebSocket text frame's unmasked
/// payload (empty for other frames).
fn packet_of(frame: &[u8], framing: Framing) -> Vec<u8> {
    match framing {
        Framing::Tcp => frame[4..].to_vec(),
        Framing::WebSocket => {
            let Some((header, _)) = ws_header(frame) else {
                return Vec::new();
            };
            if frame[0] & 0x0F != 0x1 {
                return Vec::new();
            }
            let mut payload = frame[header..].to_vec();
            if frame[1] & 0x80 != 0 {
                let key = &frame[header - 4..header];
                for (byte, mask) in payload.iter_mut().zip(key.iter().cycle()) {
                    *byte ^= mask;
                }
            }
            payload
        }
    }
}

async fn write(writer: &mut OwnedWriteHalf, mut frames: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = frames.recv().await {
        if writer.write_all(&frame).await.is_err() {
            return;
        }
    }
}
