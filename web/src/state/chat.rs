//! Conversations and messages: everything the chat screen shows, as plain data.
//!
//! [`ChatState`] is a reducer: the session driver feeds it [`SessionUpdate`]s, the components
//! feed it the user's actions, and the view only reads it. It never touches the DOM, so all of
//! the rules below are unit-tested natively.

use hongyan_shared::client::SERVER_WS_MAX_FRAME;
use hongyan_shared::{Fingerprint, Outgoing, PacketTooLarge, UserId};

use super::connection::ConnectionStatus;

/// What the session driver reports to the UI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionUpdate {
    /// A first login is being attempted (socket opening, login sent).
    Connecting,
    /// The server accepted a login (the first one or an automatic re-login).
    LoggedIn,
    /// The server refused the login with this code.
    LoginRefused {
        /// The refusal code.
        code: i32,
    },
    /// The link was lost; the session keeps trying to log in again.
    LinkLost,
    /// The server ended the session.
    KickedOut {
        /// The kickout code.
        code: i32,
        /// The server's reason, if any.
        reason: Option<String>,
    },
    /// The session is over (logged out, kicked out or refused) and will not reconnect.
    Ended,
    /// A message arrived (already acknowledged and de-duplicated by the session).
    Received {
        /// Who sent it; `"0"` is the server.
        from: UserId,
        /// Its fingerprint when it was sent with QoS.
        fp: Option<Fingerprint>,
        /// The text.
        text: String,
    },
    /// The server acknowledged one of our messages.
    Delivered(Fingerprint),
    /// One of our messages was retransmitted without an acknowledgement and given up on.
    Lost(Fingerprint),
}

/// A message's place in this client's list, stable for the life of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

impl MessageId {
    /// The number, for DOM ids and keys.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Author {
    /// This user.
    Me,
    /// The conversation's peer.
    Peer,
    /// The server (user `"0"`): shown as a system message.
    Server,
}

/// Where one of our messages is on its way to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Sent and waiting for the acknowledgement (retransmitted meanwhile).
    Sending,
    /// Acknowledged by the server: handed to the peer or stored for them.
    Delivered,
    /// Never acknowledged; the user may retry.
    Lost,
}

impl Delivery {
    /// A short machine-readable name, used as the `data-status` attribute.
    pub fn key(self) -> &'static str {
        match self {
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Lost => "lost",
        }
    }
}

/// One line of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// The local id.
    pub id: MessageId,
    /// The wire fingerprint, when the message travelled with QoS.
    pub fp: Option<Fingerprint>,
    /// Who wrote it.
    pub author: Author,
    /// The text, exactly as sent.
    pub text: String,
    /// For our own messages, how far they got; `None` for received ones.
    pub delivery: Option<Delivery>,
}

/// The messages exchanged with one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// The other side; `"0"` is the server's system conversation.
    pub peer: UserId,
    /// Oldest first.
    pub messages: Vec<ChatMessage>,
    /// Messages received while this conversation was not open.
    pub unread: usize,
}

impl Conversation {
    fn new(peer: UserId) -> Self {
        Self {
            peer,
            messages: Vec::new(),
            unread: 0,
        }
    }

    /// The name shown for the peer.
    pub fn title(&self) -> String {
        display_name(&self.peer)
    }

    /// The last message, for the conversation list preview.
    pub fn last(&self) -> Option<&ChatMessage> {
        self.messages.last()
    }
}

/// How a peer is named in the UI: the server is "System", everyone else by their id.
pub fn display_name(peer: &UserId) -> String {
    if peer.is_server() {
        "System".to_owned()
    } else {
        peer.to_string()
    }
}

/// Why a message cannot be sent as typed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    /// The text is empty or only white space.
    #[error("type a message first")]
    Empty,
    /// The encoded packet would exceed the server's frame limit.
    #[error("the message is too long ({} bytes encoded, the limit is {})", .0.len, .0.max)]
    TooLong(#[from] PacketTooLarge),
    /// No conversation is open.
    #[error("choose someone to talk to")]
    NoPeer,
    /// The peer id cannot receive messages (empty or `"-1"`).
    #[error("{0:?} is not a user id")]
    BadPeer(String),
}

/// Checks that `message` can be sent by `me` as typed: to a real peer, not blank, and in one
/// WebSocket frame. The size rule is the shared session's own
/// ([`Outgoing::check_size`] against the limit of a WebSocket session), so the composer tells
/// the user at once what the session would refuse.
pub fn check_outgoing(me: &UserId, message: &Outgoing) -> Result<(), ComposeError> {
    let peer = &message.to;
    if peer.as_str().is_empty() || peer.as_str() == UserId::UNSET {
        return Err(ComposeError::BadPeer(peer.to_string()));
    }
    if message.content.trim().is_empty() {
        return Err(ComposeError::Empty);
    }
    message.check_size(me, SERVER_WS_MAX_FRAME)?;
    Ok(())
}

/// The state of the chat screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatState {
    me: Option<UserId>,
    connection: ConnectionStatus,
    /// Most recently active first.
    conversations: Vec<Conversation>,
    selected: Option<UserId>,
    next_id: u64,
}

impl ChatState {
    /// An empty state: logged out, no conversations.
    pub fn new() -> Self {
        Self::default()
    }

    /// Who is logged in (or was, after a kickout).
    pub fn me(&self) -> Option<&UserId> {
        self.me.as_ref()
    }

    /// The connection status.
    pub fn connection(&self) -> &ConnectionStatus {
        &self.connection
    }

    /// Every conversation, most recently active first.
    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    /// The conversation with `peer`, if there is one.
    pub fn conversation(&self, peer: &UserId) -> Option<&Conversation> {
        self.conversations.iter().find(|c| &c.peer == peer)
    }

    /// The peer whose thread is open.
    pub fn selected(&self) -> Option<&UserId> {
        self.selected.as_ref()
    }

    /// Unread messages over all conversations.
    pub fn total_unread(&self) -> usize {
        self.conversations.iter().map(|c| c.unread).sum()
    }

    /// Starts a session for `me`. Conversations are kept when the same user logs in again
    /// (after a kickout or a refused login) and dropped when someone else does.
    pub fn begin_login(&mut self, me: UserId) {
        if self.me.as_ref() != Some(&me) {
            self.conversations.clear();
            self.selected = None;
        }
        self.me = Some(me);
        self.connection = ConnectionStatus::Connecting;
    }

    /// Opens the thread with `peer`, creating the conversation if needed, and marks it read.
    pub fn select(&mut self, peer: UserId) {
        let index = self.index_or_insert(&peer, false);
        self.conversations[index].unread = 0;
        self.selected = Some(peer);
    }

    /// Closes the open thread (on a phone this shows the conversation list again).
    pub fn deselect(&mut self) {
        self.selected = None;
    }

    /// The user left the chat screen (logged out, or acknowledged a kickout): show the login
    /// screen. Conversations stay until another user logs in.
    pub fn leave(&mut self) {
        self.connection = ConnectionStatus::LoggedOut;
        self.give_up_pending();
    }

    /// Records a message the user just sent, in state `Sending`. It is followed by the
    /// session's reports on its fingerprint, so the UI gives it one before sending.
    pub fn record_outgoing(&mut self, outgoing: &Outgoing) -> MessageId {
        let id = self.fresh_id();
        let index = self.index_or_insert(&outgoing.to, true);
        self.conversations[index].messages.push(ChatMessage {
            id,
            fp: outgoing.fp.clone(),
            author: Author::Me,
            text: outgoing.content.clone(),
            delivery: Some(Delivery::Sending),
        });
        id
    }

    /// Puts a lost message back to `Sending` and returns what to send again, under the same
    /// fingerprint (a receiver that did get the first copy then drops the second).
    pub fn retry(&mut self, id: MessageId) -> Option<Outgoing> {
        self.conversations.iter_mut().find_map(|conversation| {
            let message = conversation.messages.iter_mut().find(|m| m.id == id)?;
            if message.delivery != Some(Delivery::Lost) {
                return None;
            }
            let fp = message.fp.clone()?;
            message.delivery = Some(Delivery::Sending);
            Some(
                Outgoing::new(conversation.peer.clone(), message.text.clone()).with_fingerprint(fp),
            )
        })
    }

    /// Applies one report from the session.
    pub fn apply(&mut self, update: SessionUpdate) {
        match update {
            SessionUpdate::Connecting => self.connection = ConnectionStatus::Connecting,
            SessionUpdate::LoggedIn => self.connection = ConnectionStatus::Online,
            // A refused re-login is retried by the session; only a refused first login ends it.
            SessionUpdate::LoginRefused { code } => {
                if self.connection != ConnectionStatus::Reconnecting {
                    self.connection = ConnectionStatus::LoginRefused { code };
                }
            }
            SessionUpdate::LinkLost => {
                if !self.connection.is_final() {
                    self.connection = ConnectionStatus::Reconnecting;
                }
            }
            SessionUpdate::KickedOut { code, reason } => {
                self.connection = ConnectionStatus::KickedOut { code, reason };
                self.give_up_pending();
            }
            SessionUpdate::Ended => {
                if !self.connection.is_final() {
                    self.connection = ConnectionStatus::LoggedOut;
                }
                self.give_up_pending();
            }
            SessionUpdate::Received { from, fp, text } => self.receive(from, fp, text),
            SessionUpdate::Delivered(fp) => self.set_delivery(&fp, Delivery::Delivered),
            SessionUpdate::Lost(fp) => self.set_delivery(&fp, Delivery::Lost),
        }
    }

    fn receive(&mut self, from: UserId, fp: Option<Fingerprint>, text: String) {
        let author = if from.is_server() {
            Author::Server
        } else {
            Author::Peer
        };
        // The session delivers each QoS message once, across reconnects too, but only while
        // it remembers the fingerprint: for its dedup lifetime (10 to 15 minutes, §6.3), and
        // not into a new session after a logout or kickout. The conversation keeps messages
        // longer than that, and a sender's retry of a message reported lost (same fingerprint,
        // see `retry`) may come later, so a copy of a message already shown is dropped here.
        if let (Some(fp), Some(conversation)) = (&fp, self.conversation(&from)) {
            let seen = conversation
                .messages
                .iter()
                .any(|m| m.author == author && m.fp.as_ref() == Some(fp));
            if seen {
                return;
            }
        }
        let id = self.fresh_id();
        let open = self.selected.as_ref() == Some(&from);
        let index = self.index_or_insert(&from, true);
        let conversation = &mut self.conversations[index];
        conversation.messages.push(ChatMessage {
            id,
            fp,
            author,
            text,
            delivery: None,
        });
        if !open {
            conversation.unread += 1;
        }
    }

    /// Marks our message `fp` as delivered or lost. An acknowledgement can arrive after the
    /// message was reported lost (the reference fires both), and then delivered wins; a late
    /// "lost" never overrides "delivered".
    fn set_delivery(&mut self, fp: &Fingerprint, delivery: Delivery) {
        let message = self
            .conversations
            .iter_mut()
            .flat_map(|c| c.messages.iter_mut())
            .find(|m| m.author == Author::Me && m.fp.as_ref() == Some(fp));
        if let Some(message) = message
            && message.delivery != Some(Delivery::Delivered)
        {
            message.delivery = Some(delivery);
        }
    }

    /// After a kickout or logout the session drops its retransmission queue, so nothing still
    /// `Sending` will ever be resolved: show those messages as lost, never silently dropped.
    fn give_up_pending(&mut self) {
        for message in self
            .conversations
            .iter_mut()
            .flat_map(|c| c.messages.iter_mut())
        {
            if message.delivery == Some(Delivery::Sending) {
                message.delivery = Some(Delivery::Lost);
            }
        }
    }

    fn fresh_id(&mut self) -> MessageId {
        self.next_id += 1;
        MessageId(self.next_id)
    }

    /// The index of `peer`'s conversation, created if missing; with `bump` it moves to the top
    /// of the list (new activity).
    fn index_or_insert(&mut self, peer: &UserId, bump: bool) -> usize {
        match self.conversations.iter().position(|c| &c.peer == peer) {
            Some(0) => 0,
            Some(index) if bump => {
                let conversation = self.conversations.remove(index);
                self.conversations.insert(0, conversation);
                0
            }
            Some(index) => index,
            None if bump => {
                self.conversations
                    .insert(0, Conversation::new(peer.clone()));
                0
            }
            None => {
                self.conversations.push(Conversation::new(peer.clone()));
                self.conversations.len() - 1
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn received(from: &str, n: Option<u128>, text: &str) -> SessionUpdate {
        SessionUpdate::Received {
            from: UserId::from(from),
            fp: n.map(fp),
            text: text.to_owned(),
        }
    }

    fn delivery_of(state: &ChatState, peer: &str, id: MessageId) -> Option<Delivery> {
        state
            .conversation(&UserId::from(peer))
            .and_then(|c| c.messages.iter().find(|m| m.id == id))
            .and_then(|m| m.delivery)
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

    /// Copies the session drops never get here; this is a later one it has forgotten (a
    /// retry after its dedup lifetime, or after a new login).
    #[test]
    fn a_message_already_in_the_conversation_appears_once() {
        let mut state = logged_in("bob");
        state.apply(received("alice", Some(5), "hello"));
        state.apply(received("alice", Some(5), "hello"));
        let conversation = state.conversation(&UserId::from("alice")).unwrap();
        assert_eq!(conversation.messages.len(), 1);
        assert_eq!(conversation.unread, 1);
    }

    #[test]
    fn messages_without_qos_are_never_merged() {
        let mut state = logged_in("bob");
        state.apply(received("alice", None, "ping"));
        state.apply(received("alice", None, "ping"));
        assert_eq!(
            state
                .conversation(&UserId::from("alice"))
                .unwrap()
                .messages
                .len(),
            2
        );
    }

    #[test]
    fn unread_counts_only_closed_conversations_and_clear_on_open() {
        let mut state = logged_in("bob");
        state.select(UserId::from("alice"));
        state.apply(received("alice", Some(1), "seen at once"));
        state.apply(received("carol", Some(2), "waits"));
        state.apply(received("carol", Some(3), "waits more"));
        assert_eq!(
            state.conversation(&UserId::from("alice")).unwrap().unread,
            0
        );
        assert_eq!(state.total_unread(), 2);
        state.select(UserId::from("carol"));
        assert_eq!(state.total_unread(), 0);
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
        let conversation = state.conversation(&UserId::server()).unwrap();
        assert_eq!(conversation.title(), "System");
        assert_eq!(conversation.messages[0].author, Author::Server);
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
        assert_eq!(
            state.conversation(&UserId::from("bob")).unwrap().messages[0].text,
            "你好 👋🏽 <b>&'"
        );
    }

    #[test]
    fn outgoing_text_must_fit_one_frame() {
        let me = UserId::from("alice");
        let to_bob = |text: &str| Outgoing::new("bob", text).with_fingerprint(fp(1));
        assert_eq!(
            check_outgoing(&me, &to_bob("  \n")),
            Err(ComposeError::Empty)
        );
        assert_eq!(check_outgoing(&me, &to_bob("你好 👋")), Ok(()));
        // '<' is escaped to six bytes by the Gson-compatible encoder.
        let angle_brackets = "<".repeat(SERVER_WS_MAX_FRAME / 6);
        assert!(matches!(
            check_outgoing(&me, &to_bob(&angle_brackets)),
            Err(ComposeError::TooLong(PacketTooLarge {
                max: SERVER_WS_MAX_FRAME,
                ..
            }))
        ));
        assert_eq!(
            check_outgoing(&me, &Outgoing::new("", "x")),
            Err(ComposeError::BadPeer(String::new()))
        );
    }
}
