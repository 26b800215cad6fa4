//! Conversation history and sync (issue 12, §9.4), on a memory store: messages numbered per
//! conversation as they are accepted, never waiting for the store; the sync requests and
//! their answers within the transport's limit; and sessions that did not ask see nothing new.

use std::time::Duration;

use futures_util::FutureExt;
use hongyan_shared::history::{
    ConversationsRequest, ConversationsResponse, HistoryRange, HistoryRequest, HistoryResponse,
    ReadRequest, ReadResponse, SyncDocument,
};
use hongyan_shared::{Fingerprint, Outgoing, Packet, PacketType, SeqTag, Transport, UserId};
use hongyan_store::{MemoryStore, MessageStore};

use super::harness::{Harness, Peer, data, kinds};
use crate::clock::Clock;
use crate::core::Flow;

/// What `peer` (logged in as `user`) gets in answer to `request`.
fn ask<D: SyncDocument>(h: &Harness, peer: &mut Peer, user: &str, request: &D) -> Option<Packet> {
    let flow = h.receive(peer, &request.to_packet(user, UserId::SERVER));
    assert_eq!(flow, Flow::Continue);
    let mut written = peer.written();
    assert!(written.len() <= 1, "one answer at most: {written:?}");
    written.pop()
}

/// `user`'s conversations, which also opts `peer` in.
fn conversations(h: &Harness, peer: &mut Peer, user: &str) -> ConversationsResponse {
    let request = ConversationsRequest {
        id: 1,
        after: None,
        limit: 0,
    };
    let answer = ask(h, peer, user, &request).expect("answered");
    assert_eq!(answer.kind, PacketType::ConversationsResponse);
    ConversationsResponse::decode(answer.data_content.as_deref().unwrap()).unwrap()
}

/// A page of the conversation between `user` and `with`.
fn page(
    h: &Harness,
    peer: &mut Peer,
    user: &str,
    with: &str,
    range: HistoryRange,
    limit: u32,
) -> (HistoryResponse, usize) {
    let request = HistoryRequest::new(7, with.into(), range, limit);
    let answer = ask(h, peer, user, &request).expect("answered");
    let len = answer.to_json().len();
    (
        HistoryResponse::decode(answer.data_content.as_deref().unwrap()).unwrap(),
        len,
    )
}

fn seqs(page: &HistoryResponse) -> Vec<u64> {
    page.items.iter().map(|m| m.seq).collect()
}

/// The history, opened: the store chores ran once.
fn history() -> Harness {
    let h = Harness::with_history(|_| {});
    h.chores();
    h
}

/// `from` sends `fp` to `to`; returns the acknowledgement `from` got.
fn send(h: &Harness, from: &mut Peer, sender: &str, to: &str, fp: &str) -> Packet {
    h.receive(from, &data(sender, to, fp));
    let written = from.written();
    assert_eq!(kinds(&written), [PacketType::Ack], "{fp}");
    written.into_iter().next().unwrap()
}

/// What `peer` was sent, written out.
fn received(h: &Harness, peer: &mut Peer) -> Vec<Packet> {
    h.deliver(peer);
    peer.written()
}

#[test]
fn numbering_waits_for_no_store_read_and_follows_acceptance_order() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    assert!(conversations(&h, &mut bob, "bob").items.is_empty());

    // The conversation's counter is not loaded yet: m1 goes at once, without a seq.
    let ack = send(&h, &mut alice, "alice", "bob", "m1");
    assert_eq!(ack.seq, None);
    let m1 = received(&h, &mut bob);
    assert_eq!(
        (kinds(&m1), m1[0].seq),
        (vec![PacketType::CommonData], None)
    );
    // The store chores load it and number m1; m2 is numbered as it is delivered.
    h.chores();
    send(&h, &mut alice, "alice", "bob", "m2");
    let m2 = received(&h, &mut bob);
    let tag = m2[0].seq.expect("bob syncs: m2 carries its place");
    assert_eq!((tag.seq, tag.epoch, tag.at), (2, 1, h.clock.unix_millis()));
    // Bob answers; his acknowledgement says where his message went.
    let ack = send(&h, &mut bob, "bob", "alice", "m3");
    assert_eq!(ack.seq.map(|t| t.seq), Some(3));
    assert_eq!(received(&h, &mut alice)[0].seq, None, "alice never asked");

    let (all, _) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    assert_eq!(
        seqs(&all),
        [1, 2, 3],
        "read before and after the write alike"
    );
    let senders: Vec<&str> = all.items.iter().map(|m| m.from.as_str()).collect();
    assert_eq!(senders, ["alice", "alice", "bob"]);
    h.chores();
    let (written, _) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    assert_eq!(written.items, all.items);
    assert_eq!((written.from, written.through, written.newest), (1, 3, 3));
}

#[test]
fn a_session_that_did_not_ask_gets_the_bytes_a_server_without_history_sends() {
    let with = history();
    let without = Harness::with_store(|_| {});
    let mut got = Vec::new();
    for h in [&with, &without] {
        let mut alice = h.online(Transport::Tcp, "alice");
        let mut bob = h.online(Transport::Tcp, "bob");
        for fp in ["m1", "m2", "m3"] {
            h.receive(&mut alice, &data("alice", "bob", fp));
            h.chores();
        }
        h.deliver(&mut bob);
        let push = Outgoing::new("bob", "from the server").with_fingerprint("s1".into());
        h.push(push).unwrap();
        h.deliver(&mut bob);
        got.push((alice.written_bytes(), bob.written_bytes()));
    }
    assert_eq!(got[0], got[1]);
    assert_eq!(got[0].1.len(), 4);
}

#[test]
fn a_retransmission_is_delivered_again_with_its_first_place_and_kept_once() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    conversations(&h, &mut alice, "alice");
    conversations(&h, &mut bob, "bob");
    send(&h, &mut alice, "alice", "bob", "m1");
    h.chores();
    let first = send(&h, &mut alice, "alice", "bob", "m2");
    // Alice's acknowledgement was lost: she sends m2 again.
    let again = send(&h, &mut alice, "alice", "bob", "m2");
    assert_eq!(first.seq, again.seq);
    let copies = received(&h, &mut bob);
    assert_eq!(copies.len(), 3);
    assert_eq!(copies[1].seq, copies[2].seq);
    let (all, _) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    assert_eq!(seqs(&all), [1, 2]);
}

/// A fingerprint is recognised whatever its length (the key keeps short ones in place,
/// longer ones apart), and fingerprints that differ only in length are different messages.
#[test]
fn retransmissions_are_recognised_at_every_fingerprint_length() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    conversations(&h, &mut alice, "alice");
    send(&h, &mut alice, "alice", "bob", "m0");
    h.chores();
    let fps: Vec<String> = [1, 39, 40, 41, 128].map(|n| "f".repeat(n)).into();
    let mut sent = |fp: &String| send(&h, &mut alice, "alice", "bob", fp).seq;
    let first: Vec<Option<SeqTag>> = fps.iter().map(&mut sent).collect();
    let again: Vec<Option<SeqTag>> = fps.iter().map(&mut sent).collect();
    assert_eq!(first, again);
    let numbered: Vec<Option<u64>> = first.iter().map(|t| t.map(|t| t.seq)).collect();
    assert_eq!(numbered, [2, 3, 4, 5, 6].map(Some));
    received(&h, &mut bob);
    let (all, _) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5, 6]);
}

/// One server writes history 20 ms after it numbers it, so a write takes what arrives
/// meanwhile: the chores wake for it then, not before.
#[test]
fn one_server_writes_history_a_flush_delay_after_numbering() {
    let store = std::sync::Arc::new(MemoryStore::new(
        crate::Config::loopback().store_config().limits,
    ));
    let h = Harness::with_history_in(store.clone(), |config| config.history_flush_delay = None);
    h.chores();
    let mut alice = h.online(Transport::Tcp, "alice");
    let _bob = h.online(Transport::Tcp, "bob");
    send(&h, &mut alice, "alice", "bob", "m0");
    h.chores();
    send(&h, &mut alice, "alice", "bob", "m1");
    let history = h.core.history.as_ref().unwrap();
    let written = || {
        let conversation = hongyan_store::Conversation::between(&"alice".into(), &"bob".into());
        let newest = store.newest_seqs(&[conversation]).now_or_never().unwrap();
        newest.unwrap()[0]
    };
    h.chores();
    assert_eq!((history.held(), written()), (2, 0), "numbered, not written");
    h.advance(crate::config::HISTORY_FLUSH_DELAY - Duration::from_millis(1));
    assert!(h.core.poll_store_timeout().is_some_and(|at| at > h.now()));
    h.chores();
    assert_eq!(written(), 0);
    h.advance(Duration::from_millis(1));
    assert!(h.core.poll_store_timeout().is_some_and(|at| at <= h.now()));
    h.chores();
    assert_eq!((history.held(), written()), (0, 2));
}

/// What is remembered to recognise retransmissions goes after its lifetime even when no
/// message comes after it: the chores look through every shard.
#[test]
fn recently_numbered_messages_are_forgotten_after_their_lifetime_without_more_traffic() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let _bob = h.online(Transport::Tcp, "bob");
    send(&h, &mut alice, "alice", "bob", "m1");
    h.chores();
    send(&h, &mut alice, "alice", "bob", "m2");
    h.chores();
    let history = h.core.history.as_ref().unwrap();
    assert_eq!(history.recent_len(), 2);
    h.advance(Duration::from_secs(59));
    h.chores();
    assert_eq!(history.recent_len(), 2, "not before their lifetime");
    h.advance(Duration::from_secs(1));
    assert!(h.core.poll_store_timeout().is_some_and(|at| at <= h.now()));
    h.chores();
    assert_eq!(history.recent_len(), 0);
}

#[test]
fn a_fingerprint_the_other_member_or_conversation_used_is_a_new_message() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    let mut carol = h.online(Transport::Tcp, "carol");
    // Both ask for history, so their acknowledgements say where their messages went.
    conversations(&h, &mut alice, "alice");
    conversations(&h, &mut bob, "bob");
    send(&h, &mut alice, "alice", "bob", "m0");
    send(&h, &mut alice, "alice", "carol", "m0");
    h.chores();
    // Within the minute that retransmissions are recognised, the same fingerprint from the
    // other member, or in another conversation, is not one.
    send(&h, &mut alice, "alice", "bob", "m1");
    let bobs = send(&h, &mut bob, "bob", "alice", "m1");
    let carols = send(&h, &mut alice, "alice", "carol", "m1");
    assert_eq!(bobs.seq.map(|t| t.seq), Some(3));
    assert_eq!(carols.seq.map(|t| t.seq), Some(2));
    received(&h, &mut bob);
    received(&h, &mut carol);
    let (all, _) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    let senders: Vec<&str> = all.items.iter().map(|m| m.from.as_str()).collect();
    assert_eq!(
        (seqs(&all), senders),
        (vec![1, 2, 3], vec!["alice", "alice", "bob"])
    );
    let (all, _) = page(&h, &mut carol, "carol", "alice", HistoryRange::After(0), 0);
    assert_eq!(seqs(&all), [1, 2]);
}

#[test]
fn a_stored_message_is_numbered_and_its_sender_told() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    conversations(&h, &mut alice, "alice");
    let first = send(&h, &mut alice, "alice", "carol", "m1");
    assert_eq!(
        first.seq, None,
        "stored, numbered once the counter is loaded"
    );
    h.chores();
    let second = send(&h, &mut alice, "alice", "carol", "m2");
    assert_eq!(second.seq.map(|t| t.seq), Some(2));
    assert_eq!(h.stored("carol"), 2);
    let list = conversations(&h, &mut alice, "alice");
    assert_eq!(list.items.len(), 1);
    let carol = &list.items[0];
    assert_eq!(
        (carol.peer.as_str(), carol.newest, carol.read, carol.unread),
        ("carol", 2, 2, 0),
        "sending reads the conversation"
    );
}

#[test]
fn pushes_form_the_conversation_with_the_server() {
    let h = history();
    let mut bob = h.online(Transport::Tcp, "bob");
    conversations(&h, &mut bob, "bob");
    h.push(Outgoing::new("bob", "one")).unwrap();
    h.chores();
    h.push(Outgoing::new("bob", "two")).unwrap();
    let got = received(&h, &mut bob);
    assert_eq!(got[1].seq.map(|t| t.seq), Some(2));
    let list = conversations(&h, &mut bob, "bob");
    assert_eq!(
        (list.items[0].peer.as_str(), list.items[0].unread),
        ("0", 2)
    );
    let (pushes, _) = page(&h, &mut bob, "bob", "0", HistoryRange::Before(None), 10);
    let contents: Vec<&str> = pushes
        .items
        .iter()
        .map(|m| m.content.as_deref().unwrap())
        .collect();
    assert_eq!(contents, ["one", "two"]);
    assert!(pushes.items.iter().all(|m| m.from.is_server()));
}

#[test]
fn pages_fit_a_udp_datagram_and_say_where_they_end() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    send(&h, &mut alice, "alice", "bob", "m0");
    h.chores();
    for i in 1..30 {
        let mut message = data("alice", "bob", &format!("m{i}"));
        message.data_content = Some(format!("message {i} \"quoted\" <escaped> ").repeat(4));
        h.receive(&mut alice, &message);
    }
    let mut big = data("alice", "bob", "big");
    big.data_content = Some("x".repeat(2000));
    h.receive(&mut alice, &big);
    h.chores();

    let mut bob = h.open(Transport::Udp);
    h.login(&mut bob, "bob", 0);
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let (page, len) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(after), 50);
        assert!(len <= 1024, "{len} bytes");
        assert_eq!(page.from, after + 1);
        seen.extend(seqs(&page));
        if !page.more {
            assert_eq!(page.through, 31);
            break;
        }
        assert_eq!(Some(page.through), page.items.last().map(|m| m.seq));
        after = page.through;
    }
    assert_eq!(
        seen,
        (1..=31).collect::<Vec<_>>(),
        "every seq once, in order"
    );
    let (newest, len) = page(&h, &mut bob, "bob", "alice", HistoryRange::Before(None), 50);
    assert!(len <= 1024);
    assert!(newest.more);
    let last = newest.items.last().unwrap();
    assert_eq!(
        (last.seq, last.content.as_deref()),
        (31, None),
        "too large for UDP: its place without it"
    );
    assert_eq!(newest.through, 31);
    assert_eq!(Some(newest.from), newest.items.first().map(|m| m.seq));
}

#[test]
fn a_read_position_moves_forward_only_and_never_past_the_newest() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    send(&h, &mut alice, "alice", "bob", "m1");
    h.chores();
    send(&h, &mut alice, "alice", "bob", "m2");
    send(&h, &mut alice, "alice", "bob", "m3");
    let read = |peer: &mut Peer, seq| {
        let request = ReadRequest {
            id: 3,
            peer: "alice".into(),
            seq,
        };
        let answer = ask(&h, peer, "bob", &request).expect("answered");
        let answer = ReadResponse::decode(answer.data_content.as_deref().unwrap()).unwrap();
        (answer.read, answer.newest, answer.unread)
    };
    assert_eq!(read(&mut bob, 2), (2, 3, 1));
    assert_eq!(read(&mut bob, 1), (2, 3, 1));
    assert_eq!(read(&mut bob, 99), (3, 3, 0));
    h.chores();
    let list = conversations(&h, &mut bob, "bob");
    assert_eq!((list.items[0].read, list.items[0].unread), (3, 0));
}

#[test]
fn sync_requests_need_a_login() {
    let h = history();
    let mut peer = h.open(Transport::Tcp);
    let request = ConversationsRequest {
        id: 1,
        after: None,
        limit: 0,
    };
    let flow = h.receive(&mut peer, &request.to_packet("nobody", UserId::SERVER));
    assert_eq!(flow, Flow::Close);
    assert_eq!(kinds(&peer.written()), [PacketType::Error]);
}

#[test]
fn a_server_without_history_answers_epoch_0_and_numbers_nothing() {
    let h = Harness::with_store(|_| {});
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    assert_eq!(conversations(&h, &mut bob, "bob").epoch, 0);
    send(&h, &mut alice, "alice", "bob", "m1");
    h.chores();
    send(&h, &mut alice, "alice", "bob", "m2");
    assert!(received(&h, &mut bob).iter().all(|p| p.seq.is_none()));
    let (page, _) = page(&h, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    assert_eq!((page.epoch, page.items.len()), (0, 0));
}

#[test]
fn a_retransmission_to_a_session_that_did_not_ask_leaves_the_place_out() {
    let h = history();
    let mut alice = h.online(Transport::Tcp, "alice");
    let mut bob = h.online(Transport::Tcp, "bob");
    conversations(&h, &mut bob, "bob");
    send(&h, &mut alice, "alice", "bob", "m1");
    h.chores();
    send(&h, &mut alice, "alice", "bob", "m2");
    assert!(received(&h, &mut bob)[1].seq.is_some());
    // Bob comes back on another session, as a client that does not sync, before he
    // acknowledged m2: its retransmission reaches the new session without the keys.
    let mut again = h.open(Transport::Tcp);
    let first_login_time = bob.session.first_login_time;
    h.login(&mut again, "bob", first_login_time);
    for _ in 0..2 {
        h.advance(Duration::from_secs(5));
        h.tick();
    }
    let resent = received(&h, &mut again);
    assert!(!resent.is_empty(), "retransmitted");
    assert!(resent.iter().all(|p| p.seq.is_none()));
}

#[test]
fn after_a_crash_the_epoch_grows_and_numbering_goes_on_from_what_was_written() {
    let store = std::sync::Arc::new(MemoryStore::new(
        crate::Config::loopback().store_config().limits,
    ));
    let first = Harness::with_history_in(store.clone(), |_| {});
    first.chores();
    let mut alice = first.online(Transport::Tcp, "alice");
    send(&first, &mut alice, "alice", "bob", "m1");
    first.chores();
    send(&first, &mut alice, "alice", "bob", "m2");
    first.chores();
    // m3 is numbered, not written, when the server dies.
    let lost = send(&first, &mut alice, "alice", "bob", "m3");
    assert_eq!(lost.seq, None, "alice did not ask");
    drop(first);

    let second = Harness::with_history_in(store, |_| {});
    second.chores();
    let mut bob = second.online(Transport::Tcp, "bob");
    let list = conversations(&second, &mut bob, "bob");
    assert_eq!(list.epoch, 2);
    assert_eq!(list.items[0].newest, 2, "m3 was lost with the crash");
    let mut alice = second.online(Transport::Tcp, "alice");
    send(&second, &mut alice, "alice", "bob", "m4");
    second.chores();
    send(&second, &mut alice, "alice", "bob", "m5");
    let got = received(&second, &mut bob);
    let places: Vec<(&str, Option<u64>)> = got
        .iter()
        .map(|p| (p.fp.as_ref().unwrap().as_str(), p.seq.map(|t| t.seq)))
        .collect();
    assert_eq!(
        places,
        [
            // Stored for bob, so replayed (without places: a replay never has one)...
            ("m1", None),
            ("m2", None),
            // ...m3 too: its delivery survives the crash, its place in history does not.
            ("m3", None),
            // m4 takes seq 3, which m3 had in the old epoch.
            ("m4", None),
            ("m5", Some(4)),
        ]
    );
    let (page, _) = page(&second, &mut bob, "bob", "alice", HistoryRange::After(0), 0);
    let fps: Vec<&str> = page
        .items
        .iter()
        .map(|m| m.fp.as_ref().map_or("", Fingerprint::as_str))
        .collect();
    assert_eq!(fps, ["m1", "m2", "m4", "m5"]);
    assert_eq!(page.epoch, 2);
    assert!(
        got.iter()
            .filter_map(|p| p.seq)
            .all(|SeqTag { epoch, .. }| epoch == 2)
    );
}
