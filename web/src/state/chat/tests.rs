use hongyan_shared::SeqTag;
use hongyan_shared::history::ConversationInfo;

use super::*;

const EPOCH: u64 = 7;

fn fp(n: u128) -> Fingerprint {
    Fingerprint::from_random(n)
}

fn logged_in(me: &str) -> ChatState {
    let mut state = ChatState::new();
    state.begin_login(UserId::from(me));
    state.apply(SessionUpdate::LoggedIn);
    state
}

fn send(state: &mut ChatState, to: &str, text: &str, n: u128) -> MessageId {
    state.record_outgoing(&Outgoing::new(to, text).with_fingerprint(fp(n)))
}

fn message(from: &str, n: Option<u128>, text: &str, seq: Option<u64>) -> ReceivedMessage {
    ReceivedMessage {
        fp: n.map(fp),
        from: UserId::from(from),
        to: UserId::from("me"),
        content: text.to_owned(),
        typeu: -1,
        qos: n.is_some(),
        sm: -1,
        seq: seq.map(|seq| SeqTag {
            seq,
            epoch: EPOCH,
            at: 1_000 + seq as i64,
        }),
    }
}

fn received(from: &str, n: Option<u128>, text: &str) -> SessionUpdate {
    SessionUpdate::Received(message(from, n, text, None))
}

fn numbered(seq: u64, from: &str, n: u128, text: &str) -> HistoryMessage {
    HistoryMessage {
        seq,
        from: UserId::from(from),
        fp: Some(fp(n)),
        typeu: -1,
        at: 1_000 + seq as i64,
        content: Some(text.to_owned()),
    }
}

fn info(peer: &str, newest: u64, read: u64) -> ConversationInfo {
    ConversationInfo {
        peer: UserId::from(peer),
        newest,
        read,
        unread: newest - read,
        at: 1_000 + newest as i64,
    }
}

fn listed(infos: Vec<ConversationInfo>) -> SessionUpdate {
    SessionUpdate::History(HistoryEvent::Conversations {
        epoch: EPOCH,
        conversations: infos,
    })
}

fn page(peer: &str, from: u64, through: u64, messages: Vec<HistoryMessage>) -> SessionUpdate {
    SessionUpdate::History(HistoryEvent::Page {
        peer: UserId::from(peer),
        from,
        through,
        messages,
        older: false,
        more: false,
    })
}

fn older_page(peer: &str, from: u64, through: u64, more: bool) -> SessionUpdate {
    let messages = (from..=through)
        .map(|seq| numbered(seq, peer, u128::from(seq), &format!("m{seq}")))
        .collect();
    SessionUpdate::History(HistoryEvent::Page {
        peer: UserId::from(peer),
        from,
        through,
        messages,
        older: true,
        more,
    })
}

fn texts(state: &ChatState, peer: &str) -> Vec<String> {
    state
        .thread(&UserId::from(peer))
        .into_iter()
        .map(|m| m.text)
        .collect()
}

fn delivery_of(state: &ChatState, peer: &str, id: MessageId) -> Option<Delivery> {
    state
        .thread(&UserId::from(peer))
        .into_iter()
        .find(|m| m.local_id() == Some(id))
        .and_then(|m| m.delivery)
}

fn unread(state: &ChatState, peer: &str) -> usize {
    state.unread(&UserId::from(peer))
}

#[test]
fn sent_message_goes_from_sending_to_delivered() {
    let mut state = logged_in("alice");
    let id = send(&mut state, "bob", "hi", 1);
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Sending));
    state.apply(SessionUpdate::Delivered(fp(1)));
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Delivered));
}

#[test]
fn late_ack_after_lost_marks_delivered_but_late_lost_never_undelivers() {
    let mut state = logged_in("alice");
    let lost_then_acked = send(&mut state, "bob", "one", 1);
    let acked_then_lost = send(&mut state, "bob", "two", 2);
    state.apply(SessionUpdate::Lost(fp(1)));
    state.apply(SessionUpdate::Delivered(fp(1)));
    state.apply(SessionUpdate::Delivered(fp(2)));
    state.apply(SessionUpdate::Lost(fp(2)));
    assert_eq!(
        delivery_of(&state, "bob", lost_then_acked),
        Some(Delivery::Delivered)
    );
    assert_eq!(
        delivery_of(&state, "bob", acked_then_lost),
        Some(Delivery::Delivered)
    );
}

#[test]
fn retry_resends_a_lost_message_under_the_same_fingerprint() {
    let mut state = logged_in("alice");
    let id = send(&mut state, "bob", "again", 9);
    assert_eq!(state.retry(id), None, "only lost messages can be retried");
    state.apply(SessionUpdate::Lost(fp(9)));
    let again = state.retry(id).expect("a lost message can be retried");
    assert_eq!(again, Outgoing::new("bob", "again").with_fingerprint(fp(9)));
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Sending));
}

/// Copies the session drops never get here; this is a later one it has forgotten (a retry
/// after its dedup lifetime, or after a new login).
#[test]
fn a_message_already_in_the_conversation_appears_once() {
    let mut state = logged_in("bob");
    state.apply(received("alice", Some(5), "hello"));
    state.apply(received("alice", Some(5), "hello"));
    assert_eq!(texts(&state, "alice"), ["hello"]);
    assert_eq!(unread(&state, "alice"), 1);
}

#[test]
fn messages_without_qos_are_never_merged() {
    let mut state = logged_in("bob");
    state.apply(received("alice", None, "ping"));
    state.apply(received("alice", None, "ping"));
    assert_eq!(texts(&state, "alice"), ["ping", "ping"]);
}

#[test]
fn unread_counts_only_closed_conversations_and_clear_on_open() {
    let mut state = logged_in("bob");
    state.select(UserId::from("alice"));
    state.apply(received("alice", Some(1), "seen at once"));
    state.apply(received("carol", Some(2), "waits"));
    state.apply(received("carol", Some(3), "waits more"));
    assert_eq!(unread(&state, "alice"), 0);
    assert_eq!(state.total_unread(), 2);
    state.select(UserId::from("carol"));
    assert_eq!(state.total_unread(), 0);
    state.select(UserId::from("alice"));
    assert_eq!(unread(&state, "carol"), 0, "reading stays read");
}

#[test]
fn most_recent_conversation_comes_first() {
    let mut state = logged_in("bob");
    state.apply(received("alice", Some(1), "a"));
    state.apply(received("carol", Some(2), "c"));
    let peers: Vec<_> = state
        .conversations()
        .iter()
        .map(|c| c.peer.to_string())
        .collect();
    assert_eq!(peers, ["carol", "alice"]);
    send(&mut state, "alice", "back to you", 3);
    assert_eq!(state.conversations()[0].peer, UserId::from("alice"));
}

#[test]
fn server_messages_are_system_messages() {
    let mut state = logged_in("bob");
    state.apply(received("0", Some(1), "maintenance at noon"));
    let conversation = &state.conversations()[0];
    assert_eq!(conversation.title(), "System");
    assert_eq!(conversation.last.as_ref().unwrap().author, Author::Server);
}

#[test]
fn conversations_survive_a_reconnect() {
    let mut state = logged_in("alice");
    let id = send(&mut state, "bob", "before", 1);
    state.apply(SessionUpdate::LinkLost);
    assert_eq!(state.connection(), &ConnectionStatus::Reconnecting);
    state.apply(SessionUpdate::LoggedIn);
    assert_eq!(state.connection(), &ConnectionStatus::Online);
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Sending));
    state.apply(SessionUpdate::Delivered(fp(1)));
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Delivered));
}

#[test]
fn kickout_marks_pending_messages_lost_and_is_not_undone_by_link_loss() {
    let mut state = logged_in("alice");
    let id = send(&mut state, "bob", "in flight", 1);
    state.apply(SessionUpdate::KickedOut {
        code: 1,
        reason: None,
    });
    state.apply(SessionUpdate::LinkLost);
    assert_eq!(state.connection().key(), "kicked-out");
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Lost));
}

#[test]
fn kickout_survives_the_session_ending_until_the_user_leaves() {
    let mut state = logged_in("alice");
    state.apply(SessionUpdate::KickedOut {
        code: 1,
        reason: None,
    });
    state.apply(SessionUpdate::Ended);
    assert_eq!(state.connection().describe(), "You logged in elsewhere");
    state.leave();
    assert_eq!(state.connection(), &ConnectionStatus::LoggedOut);
}

#[test]
fn refused_first_login_ends_but_refused_relogin_keeps_reconnecting() {
    let mut state = ChatState::new();
    state.begin_login(UserId::from("alice"));
    state.apply(SessionUpdate::LoginRefused { code: 1025 });
    state.apply(SessionUpdate::Ended);
    assert_eq!(
        state.connection(),
        &ConnectionStatus::LoginRefused { code: 1025 }
    );

    let mut state = logged_in("alice");
    state.apply(SessionUpdate::LinkLost);
    state.apply(SessionUpdate::LoginRefused { code: 1025 });
    assert_eq!(state.connection(), &ConnectionStatus::Reconnecting);
}

#[test]
fn logout_gives_up_on_pending_messages() {
    let mut state = logged_in("alice");
    let id = send(&mut state, "bob", "unsent", 1);
    state.apply(SessionUpdate::Ended);
    assert_eq!(state.connection(), &ConnectionStatus::LoggedOut);
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Lost));
}

#[test]
fn same_user_keeps_history_other_user_starts_clean() {
    let mut state = logged_in("alice");
    send(&mut state, "bob", "mine", 1);
    state.apply(SessionUpdate::Ended);
    state.begin_login(UserId::from("alice"));
    assert_eq!(state.conversations().len(), 1);
    state.begin_login(UserId::from("mallory"));
    assert!(state.conversations().is_empty());
}

#[test]
fn unicode_and_emoji_are_kept_verbatim() {
    let mut state = logged_in("alice");
    state.apply(received("bob", Some(1), "你好 👋🏽 <b>&'"));
    assert_eq!(texts(&state, "bob"), ["你好 👋🏽 <b>&'"]);
}

// History sync.

#[test]
fn after_login_the_list_and_threads_come_from_the_history() {
    let mut state = logged_in("alice");
    state.apply(listed(vec![info("bob", 3, 1), info("carol", 1, 1)]));
    state.apply(page(
        "bob",
        1,
        3,
        vec![
            numbered(1, "alice", 1, "hi bob"),
            numbered(2, "bob", 2, "hi alice"),
            numbered(3, "bob", 3, "are you there?"),
        ],
    ));
    state.apply(page("carol", 1, 1, vec![numbered(1, "carol", 4, "yo")]));
    let list = state.conversations();
    let peers: Vec<_> = list.iter().map(|c| c.peer.to_string()).collect();
    assert_eq!(peers, ["bob", "carol"], "the newest activity first");
    assert_eq!(list[0].unread, 2);
    assert_eq!(list[0].last.as_ref().unwrap().text, "are you there?");
    assert_eq!(list[1].unread, 0);
    let thread = state.thread(&UserId::from("bob"));
    assert_eq!(thread[0].author, Author::Me);
    assert_eq!(thread[0].delivery, Some(Delivery::Delivered));
    assert_eq!(thread[0].seq(), Some(1));
    assert_eq!(
        texts(&state, "bob"),
        ["hi bob", "hi alice", "are you there?"]
    );
}

#[test]
fn reading_an_open_conversation_is_due_to_the_server_until_it_moved() {
    let mut state = logged_in("alice");
    state.apply(listed(vec![info("bob", 2, 0)]));
    state.apply(page(
        "bob",
        1,
        2,
        vec![numbered(1, "bob", 1, "one"), numbered(2, "bob", 2, "two")],
    ));
    assert_eq!(state.read_due(), None, "nothing is open");
    state.select(UserId::from("bob"));
    assert_eq!(state.read_due(), Some((UserId::from("bob"), 2)));
    state.apply(SessionUpdate::LinkLost);
    assert_eq!(state.read_due(), None, "told once online again");
    state.apply(SessionUpdate::LoggedIn);
    state.apply(SessionUpdate::History(HistoryEvent::Updated(info(
        "bob", 2, 2,
    ))));
    assert_eq!(state.read_due(), None);
    state.apply(SessionUpdate::Received(message(
        "bob",
        Some(3),
        "three",
        Some(3),
    )));
    state.apply(SessionUpdate::History(HistoryEvent::Updated(info(
        "bob", 3, 2,
    ))));
    assert_eq!(state.read_due(), Some((UserId::from("bob"), 3)));
    state.deselect();
    assert_eq!(unread(&state, "bob"), 1);
}

#[test]
fn our_message_moves_into_the_history_when_numbered() {
    let mut state = logged_in("alice");
    let id = send(&mut state, "bob", "numbered soon", 5);
    state.apply(SessionUpdate::Delivered(fp(5)));
    state.apply(SessionUpdate::History(HistoryEvent::Sent {
        peer: UserId::from("bob"),
        message: numbered(4, "alice", 5, "numbered soon"),
    }));
    let thread = state.thread(&UserId::from("bob"));
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].seq(), Some(4));
    assert_eq!(thread[0].delivery, Some(Delivery::Delivered));
    assert_eq!(state.retry(id), None);
}

#[test]
fn a_lost_message_the_server_did_keep_shows_once_as_delivered() {
    let mut state = logged_in("alice");
    send(&mut state, "bob", "ack lost", 5);
    state.apply(SessionUpdate::Lost(fp(5)));
    state.apply(page("bob", 1, 1, vec![numbered(1, "alice", 5, "ack lost")]));
    let thread = state.thread(&UserId::from("bob"));
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0].delivery, Some(Delivery::Delivered));
}

#[test]
fn messages_replayed_without_a_seq_take_their_place_and_count_once() {
    let mut state = logged_in("alice");
    state.apply(listed(vec![info("bob", 3, 1)]));
    state.apply(page("bob", 1, 1, vec![numbered(1, "bob", 1, "old")]));
    // Stored while alice was away, replayed at login without a seq.
    state.apply(received("bob", Some(2), "offline 1"));
    state.apply(received("bob", Some(3), "offline 2"));
    assert_eq!(texts(&state, "bob"), ["old", "offline 1", "offline 2"]);
    state.apply(page(
        "bob",
        2,
        3,
        vec![
            numbered(2, "bob", 2, "offline 1"),
            numbered(3, "bob", 3, "offline 2"),
        ],
    ));
    assert_eq!(texts(&state, "bob"), ["old", "offline 1", "offline 2"]);
    assert!(
        state
            .thread(&UserId::from("bob"))
            .iter()
            .all(|m| m.seq().is_some())
    );
    assert_eq!(unread(&state, "bob"), 2, "counted by the history alone");
}

#[test]
fn earlier_messages_load_before_the_first_shown_until_the_beginning() {
    let mut state = logged_in("alice");
    let bob = UserId::from("bob");
    state.apply(listed(vec![info("bob", 120, 120)]));
    assert_eq!(state.earlier(&bob), Earlier::None, "nothing shown yet");
    state.apply(SessionUpdate::History(HistoryEvent::Page {
        peer: bob.clone(),
        from: 21,
        through: 120,
        messages: (21..=120)
            .map(|seq| numbered(seq, "bob", u128::from(seq), &format!("m{seq}")))
            .collect(),
        older: false,
        more: false,
    }));
    assert_eq!(state.earlier(&bob), Earlier::Available { before: 21 });
    assert_eq!(state.begin_earlier(&bob), Some(21));
    assert_eq!(state.earlier(&bob), Earlier::Loading);
    assert_eq!(state.begin_earlier(&bob), None, "one page at a time");
    state.apply(older_page("bob", 11, 20, true));
    assert_eq!(state.earlier(&bob), Earlier::Available { before: 11 });
    assert_eq!(state.begin_earlier(&bob), Some(11));
    state.apply(SessionUpdate::LinkLost);
    assert_eq!(
        state.earlier(&bob),
        Earlier::Available { before: 11 },
        "a request the link took can be asked again"
    );
    state.begin_earlier(&bob);
    state.apply(older_page("bob", 1, 10, false));
    assert_eq!(state.earlier(&bob), Earlier::None);
    let expected: Vec<String> = (1..=120).map(|seq| format!("m{seq}")).collect();
    assert_eq!(texts(&state, "bob"), expected);
}

#[test]
fn a_catch_up_that_skipped_messages_shows_the_newest_run_and_loads_the_hole() {
    let mut state = logged_in("alice");
    let bob = UserId::from("bob");
    state.apply(page(
        "bob",
        1,
        2,
        vec![numbered(1, "bob", 1, "m1"), numbered(2, "bob", 2, "m2")],
    ));
    // Back after 300 messages; the session caught up with the newest 100 only.
    state.apply(page(
        "bob",
        203,
        302,
        (203..=302)
            .map(|seq| numbered(seq, "bob", u128::from(seq), &format!("m{seq}")))
            .collect(),
    ));
    let thread = state.thread(&bob);
    assert_eq!(thread.len(), 100);
    assert_eq!(thread[0].seq(), Some(203));
    assert_eq!(state.begin_earlier(&bob), Some(203));
    state.apply(older_page("bob", 153, 202, true));
    assert_eq!(state.thread(&bob)[0].seq(), Some(153));
}

#[test]
fn a_new_history_epoch_drops_what_the_history_said() {
    let mut state = logged_in("alice");
    state.apply(listed(vec![info("bob", 1, 0)]));
    state.apply(page("bob", 1, 1, vec![numbered(1, "bob", 1, "gone")]));
    let id = send(&mut state, "bob", "mine", 2);
    state.apply(SessionUpdate::History(HistoryEvent::Reset {
        epoch: EPOCH + 1,
    }));
    assert_eq!(texts(&state, "bob"), ["mine"]);
    assert_eq!(unread(&state, "bob"), 0);
    assert_eq!(delivery_of(&state, "bob", id), Some(Delivery::Sending));
}

#[test]
fn an_open_thread_loads_earlier_pages_to_place_messages_the_catch_up_skipped() {
    let mut state = logged_in("alice");
    let bob = UserId::from("bob");
    // A conversation's first message is acknowledged before the server numbered it; a
    // hundred and more replies follow, and the catch-up starts after it.
    send(&mut state, "bob", "hello bob", 1);
    state.apply(SessionUpdate::Delivered(fp(1)));
    state.apply(page(
        "bob",
        2,
        121,
        (2..=121)
            .map(|seq| numbered(seq, "bob", u128::from(seq) + 10, "reply"))
            .collect(),
    ));
    assert_eq!(
        state.backfill_due(),
        None,
        "only the open thread loads by itself"
    );
    state.select(bob.clone());
    assert_eq!(state.backfill_due(), Some((bob.clone(), 2)));
    assert_eq!(state.begin_backfill(&bob), Some(2));
    assert_eq!(state.backfill_due(), None, "one page at a time");
    state.apply(SessionUpdate::History(HistoryEvent::Page {
        peer: bob.clone(),
        from: 1,
        through: 1,
        messages: vec![numbered(1, "alice", 1, "hello bob")],
        older: true,
        more: false,
    }));
    assert_eq!(state.backfill_due(), None);
    let thread = state.thread(&bob);
    assert_eq!(thread.len(), 121);
    assert_eq!(thread[0].text, "hello bob");
    assert_eq!(thread[0].seq(), Some(1));
}

#[test]
fn backfill_gives_up_after_a_few_pages() {
    let mut state = logged_in("alice");
    let bob = UserId::from("bob");
    state.apply(page(
        "bob",
        500,
        500,
        vec![numbered(500, "bob", 500, "newest")],
    ));
    state.apply(received("bob", Some(1), "never numbered"));
    state.select(bob.clone());
    for page_number in 0..BACKFILL_PAGES {
        let before = state.begin_backfill(&bob).expect("still looking");
        let from = before - 50;
        state.apply(older_page("bob", from, before - 1, true));
        assert_eq!(before, 500 - 50 * u64::from(page_number));
    }
    assert_eq!(state.backfill_due(), None);
    assert!(matches!(state.earlier(&bob), Earlier::Available { .. }));
}
