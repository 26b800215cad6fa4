//! One node of a cluster: what the core answers other nodes about the users it holds
//! ([`Node`]), and what it does with their answers about users it does not hold (a scripted
//! [`Cluster`], an in-process implementation of the seam like `SingleNode`, that answers as
//! told and records what it was asked).

use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::FutureExt;
use hongyan_shared::history::HistoryRange;
use hongyan_shared::{Fingerprint, Outgoing, Packet, PacketType, Transport, UserId, codes};
use hongyan_store::MemoryStore;
use tokio::sync::Semaphore;

use super::harness::{Harness, data, kinds};
use crate::cluster::{Claim, Cluster, Handover, Node, NodePage, NodeUser, Remote};
use crate::core::{Delivery, Flow};

/// A cluster whose other nodes answer `deliver` with `remote` and `claim` with `claim`, each
/// `deliver` once `gate` lets it (a permit per answer).
struct Scripted {
    remote: Remote,
    claim: Claim,
    asked: Mutex<Vec<String>>,
    gate: Semaphore,
}

impl Scripted {
    fn new(remote: Remote, claim: Claim) -> Arc<Self> {
        Self::gated(remote, claim, Semaphore::MAX_PERMITS)
    }

    /// A cluster whose answers to `deliver` wait for [`answer`](Self::answer), `open` of
    /// them excepted.
    fn gated(remote: Remote, claim: Claim, open: usize) -> Arc<Self> {
        Arc::new(Self {
            remote,
            claim,
            asked: Mutex::new(Vec::new()),
            gate: Semaphore::new(open),
        })
    }

    /// Lets the next `n` answers to `deliver` through.
    fn answer(&self, n: usize) {
        self.gate.add_permits(n);
    }

    fn asked(&self) -> Vec<String> {
        std::mem::take(&mut self.asked.lock().unwrap())
    }

    fn note(&self, what: String) {
        self.asked.lock().unwrap().push(what);
    }
}

#[async_trait]
impl Cluster for Scripted {
    fn node_name(&self) -> Option<&str> {
        Some("node-a")
    }
    fn attach(&self, _node: Weak<dyn Node>) {}
    async fn deliver(&self, user: &UserId, packet: Bytes) -> Remote {
        let fp = Packet::decode(&packet).ok().and_then(|p| p.fp);
        match fp {
            Some(fp) if self.gate.available_permits() < Semaphore::MAX_PERMITS => {
                self.note(format!("deliver {user} {}", fp.as_str()));
            }
            _ => self.note(format!("deliver {user}")),
        }
        self.gate
            .acquire()
            .await
            .expect("the gate is never closed")
            .forget();
        self.remote
    }
    async fn claim(&self, user: &UserId, requested: i64) -> Claim {
        self.note(format!("claim {user} {requested}"));
        self.claim
    }
    async fn joined(&self, user: &UserId) {
        self.note(format!("joined {user}"));
    }
    fn left(&self, user: &UserId) {
        self.note(format!("left {user}"));
    }
    fn stored(&self, user: &UserId) {
        self.note(format!("stored {user}"));
    }
    async fn kick(&self, _user: &UserId, _code: i32, _reason: Option<&str>) -> bool {
        false
    }
    async fn user(&self, _user: &UserId) -> Option<NodeUser> {
        None
    }
    async fn pages(&self, _after: Option<&UserId>, _limit: usize) -> Option<Vec<NodePage>> {
        None
    }
    fn degraded(&self) -> Option<String> {
        None
    }
}

/// Whether `peer` was acknowledged for `fp` (the pseudo-ACK).
fn acked(written: &[Packet], fp: &str) -> bool {
    written
        .iter()
        .any(|p| p.kind == PacketType::Ack && p.data_content.as_deref() == Some(fp))
}

#[test]
fn a_message_for_a_user_held_elsewhere_is_acknowledged_by_its_outcome_there() {
    for (remote, ack, stored) in [
        (Remote::Delivered, true, 0),
        (Remote::Stored, true, 0),
        (Remote::Lost, false, 0),
        (Remote::NotHere, true, 1),
    ] {
        let cluster = Scripted::new(remote, Claim::Granted);
        let h = Harness::in_cluster(cluster.clone());
        let mut alice = h.online(Transport::Tcp, "alice");
        cluster.asked();
        h.receive(&mut alice, &data("alice", "bob", "m-1"));
        assert_eq!(acked(&alice.written(), "m-1"), ack, "{remote:?}");
        assert_eq!(h.stored("bob"), stored, "{remote:?}");
        let mut asked = vec!["deliver bob".to_owned()];
        if stored == 1 {
            // The holder's replay may have read the store already: it is told.
            asked.push("stored bob".to_owned());
        }
        assert_eq!(cluster.asked(), asked, "{remote:?}");
    }
}

#[test]
fn a_sender_reads_on_while_another_node_answers_and_its_messages_keep_their_order() {
    let cluster = Scripted::gated(Remote::Delivered, Claim::Granted, 0);
    let h = Harness::in_cluster(cluster.clone());
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut carol = h.online(Transport::Tcp, "carol");
    cluster.asked();
    // Bob is on another node, which answers with his client's acknowledgement: not yet.
    h.receive(&mut alice, &data("alice", "bob", "m-1"));
    // Alice's session reads on meanwhile (the harness would panic on a wait): her keepalive
    // is answered, and what she sends next waits behind m-1, a message to carol here too.
    h.receive(&mut alice, &Packet::keep_alive("alice"));
    h.receive(&mut alice, &data("alice", "bob", "m-2"));
    h.receive(&mut alice, &data("alice", "carol", "m-3"));
    let written = alice.written();
    assert_eq!(kinds(&written), [PacketType::KeepAliveResponse]);
    h.deliver(&mut carol);
    assert!(carol.written().is_empty(), "m-3 waits behind m-1 and m-2");
    assert_eq!(cluster.asked(), ["deliver bob m-1"]);
    // Bob's node answers: each message is acknowledged as its outcome comes, in order.
    cluster.answer(1);
    h.drive_lane(&mut alice);
    assert_eq!(cluster.asked(), ["deliver bob m-2"]);
    let written = alice.written();
    assert_eq!(kinds(&written), [PacketType::Ack]);
    assert!(acked(&written, "m-1"));
    cluster.answer(1);
    h.drive_lane(&mut alice);
    let written = alice.written();
    assert!(
        acked(&written, "m-2") && acked(&written, "m-3"),
        "{written:?}"
    );
    assert_eq!(
        written
            .iter()
            .filter_map(|p| p.data_content.as_deref())
            .collect::<Vec<_>>(),
        ["m-2", "m-3"]
    );
    h.deliver(&mut carol);
    assert_eq!(
        carol
            .written()
            .iter()
            .filter_map(|p| p.fp.as_ref().map(|fp| fp.as_str().to_owned()))
            .collect::<Vec<_>>(),
        ["m-3"]
    );
    assert!(alice.session.lane.is_none(), "an empty lane is let go");
}

#[test]
fn a_handed_off_message_is_acknowledged_only_to_the_login_that_sent_it() {
    let cluster = Scripted::gated(Remote::Delivered, Claim::Granted, 0);
    let h = Harness::in_cluster(cluster.clone());
    let mut address = h.online(Transport::Udp, "alice");
    // m-1 is out to bob's node, m-2 waits behind it.
    h.receive(&mut address, &data("alice", "bob", "m-1"));
    h.receive(&mut address, &data("alice", "bob", "m-2"));
    // Meanwhile the address passes to another client, which logs in as carol.
    h.handle().kick(&"alice".into(), None);
    h.deliver(&mut address);
    let (flow, response) = h.login(&mut address, "carol", 0);
    assert_eq!((flow, response.code), (Flow::Continue, codes::OK));
    address.written();
    cluster.asked();
    // Bob's node answers both: they were alice's, and are relayed in her name, but carol's
    // client hears of neither.
    cluster.answer(2);
    h.drive_lane(&mut address);
    assert_eq!(cluster.asked(), ["deliver bob m-2"]);
    assert!(address.session.lane.is_none());
    assert_eq!(
        address.written(),
        [],
        "no acknowledgement of alice's messages"
    );
}

#[test]
fn a_full_lane_holds_its_session_until_the_oldest_message_is_answered() {
    let cluster = Scripted::gated(Remote::Delivered, Claim::Granted, 0);
    let h = Harness::in_cluster(cluster.clone());
    let mut alice = h.online(Transport::Tcp, "alice");
    for n in 0..crate::lane::LANE_CAPACITY {
        h.receive(&mut alice, &data("alice", "bob", &format!("m-{n}")));
    }
    let now = h.now();
    let next = data("alice", "bob", "one-too-many").to_json();
    let mut handling =
        Box::pin(
            h.core
                .handle_packet(&mut alice.session, &mut alice.pipe, next.as_bytes(), now),
        );
    assert!(
        handling.as_mut().now_or_never().is_none(),
        "the lane is full"
    );
    cluster.answer(1);
    assert_eq!(handling.now_or_never(), Some(Flow::Continue));
    h.deliver(&mut alice);
    assert!(acked(&alice.written(), "m-0"));
}

/// The fingerprints of the conversation between `a` and `b` as `node` reads it, after
/// checking that its seqs run from 1 without a gap.
fn history(node: &Harness, a: &str, b: &str) -> Vec<String> {
    let page = node
        .core
        .history_of(&a.into(), &b.into(), HistoryRange::After(0), 50)
        .now_or_never()
        .expect("the memory store never waits")
        .expect("the memory store reads");
    let seqs: Vec<u64> = page.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless");
    assert_eq!(page.newest, seqs.len() as u64);
    page.entries
        .iter()
        .map(|e| e.fp.as_ref().map_or("", |fp| fp.as_str()).to_owned())
        .collect()
}

#[test]
fn nodes_sharing_a_store_number_a_conversation_gaplessly_and_each_message_once() {
    let store = Arc::new(MemoryStore::new(hongyan_store::Limits::UNLIMITED));
    let a = Harness::in_cluster_on(
        store.clone(),
        Scripted::new(Remote::Delivered, Claim::Granted),
    );
    let b = Harness::in_cluster_on(store, Scripted::new(Remote::Delivered, Claim::Granted));
    let mut alice = a.online(Transport::Tcp, "alice");
    let mut bob = b.online(Transport::Udp, "bob");

    // alice writes through node a while bob writes back through node b.
    a.receive(&mut alice, &data("alice", "bob", "a-1"));
    b.receive(&mut bob, &data("bob", "alice", "b-1"));
    // A retransmission before its first is written: this node remembers it.
    a.receive(&mut alice, &data("alice", "bob", "a-1"));
    assert!(acked(&alice.written(), "a-1"));
    assert!(
        history(&a, "alice", "bob").is_empty(),
        "nothing numbered in memory"
    );
    a.chores();
    b.chores();
    a.receive(&mut alice, &data("alice", "bob", "a-2"));
    a.chores();
    // alice moves to node b and sends a-2 again: the store recognises it.
    let mut alice_on_b = b.online(Transport::Tcp, "alice");
    b.receive(&mut alice_on_b, &data("alice", "bob", "a-2"));
    assert!(acked(&alice_on_b.written(), "a-2"));
    b.deliver(&mut bob);
    let live: Vec<Packet> = bob
        .written()
        .into_iter()
        .filter(|p| p.kind == PacketType::CommonData)
        .collect();
    assert_eq!(live.len(), 1, "a-2, handed to bob on his node");
    b.chores();

    let expected = ["a-1", "b-1", "a-2"];
    assert_eq!(history(&a, "alice", "bob"), expected);
    assert_eq!(
        history(&b, "bob", "alice"),
        expected,
        "the same from any node"
    );

    // A push through node a to bob, held by node b, is kept once, by node a.
    let sent = a.push(Outgoing::new("bob", "pushed")).unwrap();
    assert_eq!(sent.settled(), Some(Delivery::Delivered));
    a.chores();
    assert_eq!(history(&b, "bob", "0").len(), 1);
}

#[test]
fn a_user_held_here_is_never_asked_about() {
    let cluster = Scripted::new(Remote::Lost, Claim::Granted);
    let h = Harness::in_cluster(cluster.clone());
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Udp, "bob");
    cluster.asked();
    h.receive(&mut alice, &data("alice", "bob", "m-1"));
    assert!(acked(&alice.written(), "m-1"));
    h.deliver(&mut bob);
    assert_eq!(kinds(&bob.written()), [PacketType::CommonData]);
    assert!(cluster.asked().is_empty());
}

#[test]
fn a_push_for_a_user_held_elsewhere_settles_with_the_outcome_there() {
    let cluster = Scripted::new(Remote::Delivered, Claim::Granted);
    let h = Harness::in_cluster(cluster.clone());
    let sent = h.push(Outgoing::new("bob", "hello")).unwrap();
    assert_eq!(sent.settled(), Some(Delivery::Delivered));
    assert_eq!(cluster.asked(), ["deliver bob"]);
}

#[test]
fn a_login_asks_the_cluster_first_and_a_stale_one_is_refused_with_a_kickout() {
    let cluster = Scripted::new(Remote::NotHere, Claim::Stale);
    let h = Harness::in_cluster(cluster.clone());
    let mut alice = h.open(Transport::Tcp);
    let mut info = hongyan_shared::LoginInfo::new("alice", Some("t"), None);
    info.first_login_time = super::harness::T0 - 1000;
    assert_eq!(h.receive(&mut alice, &Packet::login(&info)), Flow::Close);
    assert_eq!(kinds(&alice.written()), [PacketType::Kickout]);
    assert!(!h.handle().is_online(&"alice".into()));
    assert_eq!(
        cluster.asked(),
        [format!("claim alice {}", super::harness::T0 - 1000)]
    );

    let cluster = Scripted::new(Remote::NotHere, Claim::Granted);
    let h = Harness::in_cluster(cluster.clone());
    let mut alice = h.online(Transport::Tcp, "alice");
    assert_eq!(cluster.asked(), ["claim alice 0", "joined alice"]);
    h.core.close_session(&mut alice.session);
    assert_eq!(cluster.asked(), ["left alice"]);
}

#[test]
fn a_claim_from_another_node_applies_the_duplicate_login_rule_here() {
    let h = Harness::with_store(|_| {});
    let node: &dyn Node = &*h.core;
    let alice: UserId = "alice".into();
    assert_eq!(node.claim_here(&alice, 0), Claim::Granted, "not held here");

    // An older instance elsewhere: stale, and the session here stays.
    let mut here = h.online(Transport::Tcp, "alice");
    let answered = h.handle().online_info(&alice).unwrap().first_login_time;
    assert_eq!(node.claim_here(&alice, answered - 1), Claim::Stale);
    assert!(h.handle().is_online(&alice));
    assert!(here.written().is_empty());

    // The same instance elsewhere: displaced without a kick.
    assert_eq!(node.claim_here(&alice, answered), Claim::Granted);
    assert!(!h.handle().is_online(&alice));
    assert_eq!(h.deliver(&mut here), Flow::Continue);
    assert!(here.written().is_empty());

    // A new instance elsewhere: kicked with code 1, and no logout (the user is online).
    let mut here = h.online(Transport::Tcp, "alice");
    assert_eq!(node.claim_here(&alice, 0), Claim::Granted);
    assert!(!h.handle().is_online(&alice));
    assert_eq!(h.deliver(&mut here), Flow::Close);
    let written = here.written();
    assert_eq!(kinds(&written), [PacketType::Kickout]);
    assert!(
        written[0]
            .data_content
            .as_deref()
            .unwrap()
            .contains(&format!("\"code\":{}", codes::KICKOUT_DUPLICATE_LOGIN))
    );
    h.core.close_session(&mut here.session);
    assert!(h.hooks.take().is_empty(), "no logout");
}

#[test]
fn a_message_from_another_node_runs_the_qos_here_and_settles_with_the_outcome() {
    let h = Harness::with_store(|_| {});
    let node: &dyn Node = &*h.core;
    let bob: UserId = "bob".into();
    let from_elsewhere = data("alice", "bob", "m-1");
    let not_here = node
        .deliver_here(&bob, from_elsewhere.clone())
        .now_or_never()
        .unwrap();
    assert!(matches!(not_here, Handover::Done(Remote::NotHere)));

    // Acknowledged by the client.
    let mut peer = h.online(Transport::Tcp, "bob");
    let Handover::Waiting(outcome) = node
        .deliver_here(&bob, from_elsewhere.clone())
        .now_or_never()
        .unwrap()
    else {
        panic!("handed to bob's session");
    };
    h.deliver(&mut peer);
    assert_eq!(kinds(&peer.written()), [PacketType::CommonData]);
    h.receive(
        &mut peer,
        &Packet::ack("bob", "alice", &Fingerprint::new("m-1"), false),
    );
    assert_eq!(outcome.now_or_never(), Some(Remote::Delivered));

    // Never acknowledged: stored once the retransmissions run out.
    let Handover::Waiting(outcome) = node
        .deliver_here(&bob, data("alice", "bob", "m-2"))
        .now_or_never()
        .unwrap()
    else {
        panic!("handed to bob's session");
    };
    let schedule = h.core.config.s2c_schedule;
    for _ in 0..=schedule.max_retries {
        h.advance(schedule.check_interval);
        h.tick();
    }
    assert_eq!(outcome.now_or_never(), Some(Remote::Stored));
    assert_eq!(h.stored("bob"), 1);

    // Without QoS: handed over.
    let plain = Packet::common_data("alice", "bob", "hi", None, 0);
    assert!(matches!(
        node.deliver_here(&bob, plain).now_or_never().unwrap(),
        Handover::Done(Remote::Forwarded)
    ));
}

#[test]
fn one_node_lists_and_kicks_only_its_own_users() {
    let h = Harness::new();
    let handle = h.handle();
    assert!(
        handle
            .online_pages(None, 10)
            .now_or_never()
            .unwrap()
            .is_none()
    );
    assert!(
        !handle
            .kick_anywhere(&"nobody".into(), codes::KICKOUT_ADMIN, None)
            .now_or_never()
            .unwrap()
    );
    let _alice = h.online(Transport::Tcp, "alice");
    let found = handle
        .online_anywhere(&"alice".into())
        .now_or_never()
        .unwrap()
        .unwrap();
    assert_eq!((found.user_id.as_str(), found.node.as_str()), ("alice", ""));
}
