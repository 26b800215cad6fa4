//! The soak's users: each a seat that keeps one native client (`hongyan_client::Client`, the
//! real one, with its reconnection and QoS) logged in through a fault proxy and sends QoS
//! messages to other users and to the server at random times. On command a seat drops its
//! client and logs in again as a new instance (churn), or logs in a second instance, which
//! gets the first kicked out by the server (a duplicate login). Every event of every instance
//! goes to the [`Ledger`].

use std::sync::Arc;
use std::time::Duration;

use hongyan_client::{Client, ClientConfig, Endpoint};
use hongyan_shared::client::{ClientEvent, ConnectionState};
use hongyan_shared::{Fingerprint, LoginInfo, Outgoing, UserId, codes};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ledger::{Kind, Ledger, Outcome};

/// What a seat is told to do.
#[derive(Debug, Clone, Copy)]
pub enum SeatCommand {
    /// Log out, then log in again as a new instance.
    Churn,
    /// Log in a second instance; the server kicks the first out.
    Kick,
}

/// One user of the soak.
pub struct Seat {
    /// Its user id.
    pub user: String,
    /// Where its client connects (a proxy).
    pub endpoint: Endpoint,
    /// The users it writes to.
    pub peers: Arc<Vec<String>>,
    /// Mean time between its messages.
    pub interval: Duration,
    /// The share of its messages that go to the server (C2S).
    pub c2s_share: f64,
    /// Seeds its choices.
    pub seed: u64,
}

/// One running client instance: its handle, and its id in the ledger.
struct Instance {
    client: Client,
    id: u64,
}

impl Seat {
    /// Runs the seat: logs in, then sends while `sending` is true, obeys `commands`, and at
    /// `stop` logs every instance it started out.
    pub async fn run(
        self,
        ledger: Arc<Ledger>,
        mut commands: mpsc::Receiver<SeatCommand>,
        mut sending: watch::Receiver<bool>,
        stop: CancellationToken,
    ) {
        let mut rng = SmallRng::seed_from_u64(self.seed);
        let mut instances = vec![self.start(&ledger)];
        let mut seq = 0u64;
        let mut next = tokio::time::Instant::now() + self.gap(&mut rng);
        loop {
            let send_now = *sending.borrow();
            tokio::select! {
                () = stop.cancelled() => break,
                changed = sending.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                Some(command) = commands.recv() => match command {
                    SeatCommand::Churn => {
                        let current = instances.last().expect("a seat always has an instance");
                        ledger.ending(current.id);
                        current.client.logout().await;
                        instances.push(self.start(&ledger));
                    }
                    SeatCommand::Kick => instances.push(self.start(&ledger)),
                },
                () = tokio::time::sleep_until(next), if send_now => {
                    let current = instances.last().expect("a seat always has an instance");
                    self.send(current, &ledger, &mut rng, seq).await;
                    seq += 1;
                    next += self.gap(&mut rng);
                }
            }
        }
        for instance in &instances {
            ledger.ending(instance.id);
            instance.client.logout().await;
        }
    }

    /// A time to the next message: exponential, with the seat's mean.
    fn gap(&self, rng: &mut SmallRng) -> Duration {
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        self.interval.mul_f64(-u.ln()).min(self.interval * 10)
    }

    /// Starts a new instance: the client connects and logs in by itself; its events go to the
    /// ledger from a task of its own, which keeps the instance alive until its session ends
    /// (a kicked instance must stay until the server has kicked it).
    fn start(&self, ledger: &Arc<Ledger>) -> Instance {
        let id = ledger.new_instance();
        let login = LoginInfo::new(&self.user, Some("soak"), None);
        let (client, mut events) = Client::connect(ClientConfig::new(self.endpoint.clone()), login)
            .expect("a valid user id and a plain endpoint");
        let ledger = ledger.clone();
        let user = self.user.clone();
        let alive = client.clone();
        tokio::spawn(async move {
            let _alive = alive;
            while let Some(event) = events.recv().await {
                record(&ledger, id, &user, event);
            }
        });
        Instance { client, id }
    }

    async fn send(&self, instance: &Instance, ledger: &Ledger, rng: &mut SmallRng, seq: u64) {
        let fp = format!("{}:{}:{seq}", self.user, instance.id);
        let (to, kind) = if rng.random_bool(self.c2s_share) {
            (UserId::SERVER.to_owned(), Kind::C2s)
        } else {
            let to = self.peers[rng.random_range(0..self.peers.len())].clone();
            (to.clone(), Kind::C2c { to })
        };
        // Recorded before it leaves, so its acknowledgement always finds it.
        ledger.sent(&fp, &self.user, instance.id, kind);
        let message = Outgoing::new(to.as_str(), format!("soak {fp}"))
            .with_fingerprint(Fingerprint::new(fp.clone()));
        if instance.client.send(message).await.is_err() {
            ledger.unsent(&fp);
            ledger.send_refused();
        }
    }
}

/// Puts one event of instance `id` (of `user`) in the ledger.
fn record(ledger: &Ledger, id: u64, user: &str, event: ClientEvent) {
    match event {
        ClientEvent::MessageDelivered(fp) => ledger.outcome(id, fp.as_str(), Outcome::Delivered),
        ClientEvent::MessagesLost(packets) => {
            for packet in packets {
                if let Some(fp) = packet.fp {
                    ledger.outcome(id, fp.as_str(), Outcome::Lost);
                }
            }
        }
        ClientEvent::MessageReceived(message) => {
            if let Some(fp) = message.fp.filter(|_| message.qos) {
                ledger.received(id, user, fp.as_str());
            }
        }
        ClientEvent::LinkClosed => ledger.link_event(id),
        ClientEvent::ErrorResponse { code, .. } if code == codes::RESPONSE_FOR_UNLOGIN => {
            ledger.link_event(id);
        }
        ClientEvent::Kickout(_) => ledger.kicked(id),
        ClientEvent::StateChanged(ConnectionState::Online) => ledger.online(id),
        ClientEvent::LoginResponse { code, .. } if code != codes::OK => ledger.login_refused(),
        _ => {}
    }
}
