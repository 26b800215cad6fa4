//! The datagram relay: one upstream socket per client address, so the server sees each
//! client at its own address; a reset (or a cut) gives a client a new one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::Shared;

/// A client's route: the generation it belongs to, where its datagrams go, and how to end it.
struct Route {
    id: u64,
    generation: u64,
    frozen: u64,
    out: mpsc::UnboundedSender<Vec<u8>>,
    _end: oneshot::Sender<()>,
}

pub(super) async fn run(socket: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    let (to_clients, mut replies) = mpsc::unbounded_channel::<(SocketAddr, Vec<u8>)>();
    let (reset_tx, mut resets) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut routes: HashMap<SocketAddr, Route> = HashMap::new();
    let mut next_route = 0u64;
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            received = socket.recv_from(&mut buf) => {
                let Ok((len, client)) = received else { continue };
                let generation = *shared.generation.borrow();
                let frozen = *shared.frozen.borrow();
                match routes.get(&client) {
                    // A half-open route relays nothing until it is cut.
                    Some(route) if route.generation == generation && route.frozen != frozen => {}
                    Some(route) if route.generation == generation => {
                        let datagram = buf[..len].to_vec();
                        if !shared.forward(&datagram, datagram.clone(), &route.out) {
                            routes.remove(&client);
                        }
                    }
                    _ => {
                        next_route += 1;
                        let (out, end) = route(
                            client,
                            upstream,
                            &shared,
                            to_clients.clone(),
                            (next_route, reset_tx.clone()),
                        ).await;
                        let datagram = buf[..len].to_vec();
                        if shared.forward(&datagram, datagram.clone(), &out) {
                            let route = Route { id: next_route, generation, frozen, out, _end: end };
                            routes.insert(client, route);
                        }
                    }
                }
            }
            Some((client, packet)) = replies.recv() => {
                let _ = socket.send_to(&packet, client).await;
            }
            Some((client, id)) = resets.recv() => {
                // A reply reset its route: the client's next datagram gets a new one.
                if routes.get(&client).is_some_and(|r| r.id == id) {
                    routes.remove(&client);
                }
            }
        }
    }
}

/// One client's upstream socket: forwards what the client sends, and the server's replies
/// (through the faults) back towards the client, until the route ends (dropped, cut, reset),
/// or goes silent for good when the proxy makes it half-open.
async fn route(
    client: SocketAddr,
    upstream: SocketAddr,
    shared: &Arc<Shared>,
    to_clients: mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
    (id, resets): (u64, mpsc::UnboundedSender<(SocketAddr, u64)>),
) -> (mpsc::UnboundedSender<Vec<u8>>, oneshot::Sender<()>) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind route");
    socket.connect(upstream).await.expect("connect upstream");
    let (out, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let (back, mut incoming) = mpsc::unbounded_channel::<Vec<u8>>();
    let (end, mut ended) = oneshot::channel::<()>();
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut stop = shared.stop.clone();
        let mut generation = shared.generation.subscribe();
        let mut frozen = shared.frozen.subscribe();
        let mut buf = vec![0u8; 65_536];
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = generation.changed() => return,
                _ = &mut ended => return,
                _ = frozen.changed() => {
                    // Half-open: hold the socket, relay nothing, until the route ends.
                    tokio::select! {
                        _ = stop.changed() => {}
                        _ = generation.changed() => {}
                        _ = &mut ended => {}
                    }
                    return;
                }
                Some(packet) = outgoing.recv() => {
                    let _ = socket.send(&packet).await;
                }
                received = socket.recv(&mut buf) => {
                    if let Ok(len) = received {
                        let datagram = buf[..len].to_vec();
                        if !shared.forward(&datagram, datagram.clone(), &back) {
                            let _ = resets.send((client, id));
                            return;
                        }
                    }
                }
                Some(packet) = incoming.recv() => {
                    let _ = to_clients.send((client, packet));
                }
            }
        }
    });
    (out, end)
}
