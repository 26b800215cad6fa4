//! Conversations and messages: everything the chat screen shows, as plain data.
//!
//! [`ChatState`] is a reducer: the session driver feeds it [`SessionUpdate`]s, the components
//! feed it the user's actions, and the view only reads it. It never touches the DOM, so all of
//! the rules below are unit-tested natively.
//!
//! # Where messages live
//! The conversation history the session syncs with the server (§9.4) is kept in the shared
//! [`HistoryView`]: messages by seq, exactly the server's once caught up. Beside it, per
//! conversation, this client keeps what the history does not have yet: our messages until the
//! server numbers them (with their delivery state and the retry of lost ones), and messages
//! that arrived without a seq (a server without history, a replay of stored messages at
//! login) until a page brings them with their seq. A thread shows the history in seq order,
//! then those, in the order they happened here.

use std::collections::BTreeMap;

use hongyan_shared::client::{ClientEvent, HistoryEvent, HistoryView, Learned, ReceivedMessage};
use hongyan_shared::history::HistoryMessage;
use hongyan_shared::{Fingerprint, Outgoing, UserId};

use super::connection::ConnectionStatus;
use super::message::{Author, ChatMessage, Delivery, MessageId, MessageKey};

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
    Received(ReceivedMessage),
    /// The server acknowledged one of our messages.
    Delivered(Fingerprint),
    /// One of our messages was retransmitted without an acknowledgement and given up on.
    Lost(Fingerprint),
    /// What the history sync learned: conversations, pages, read positions.
    History(HistoryEvent),
    /// A request for earlier messages of the conversation with this peer could not be made
    /// (the session is not online); it may be asked again.
    EarlierUnavailable(UserId),
}

/// How many earlier messages one "load earlier" asks for.
pub const EARLIER_PAGE: u32 = 50;

/// How many pages of earlier messages an open thread loads by itself to find the place of
/// messages it shows without a seq (see [`ChatState::backfill_due`]).
pub const BACKFILL_PAGES: u32 = 4;

/// Whether a thread has earlier messages to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Earlier {
    /// Nothing lies before the first message shown (or the thread has no history).
    None,
    /// Messages before seq `before` may be loaded.
    Available {
        /// The seq of the first message shown.
        before: u64,
    },
    /// A page of earlier messages was asked for.
    Loading,
}

/// One row of the conversation list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversation {
    /// The other side; `"0"` is the server's system conversation.
    pub peer: UserId,
    /// The last message of the thread, for the preview.
    pub last: Option<ChatMessage>,
    /// Messages not read yet (0 for the open conversation).
    pub unread: usize,
}

impl Conversation {
    /// The name shown for the peer.
    pub fn title(&self) -> String {
        display_name(&self.peer)
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

/// A message only this client knows of yet.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pending {
    id: MessageId,
    /// Who wrote it: us, or the sender of a message received without a seq.
    from: UserId,
    fp: Option<Fingerprint>,
    text: String,
    /// Ours: how far it got. Received: `None`.
    delivery: Option<Delivery>,
}

/// Where a request for earlier messages stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum EarlierFetch {
    #[default]
    Idle,
    Loading,
    /// The server said nothing lies before the first message shown.
    Exhausted,
}

/// What this client keeps of one conversation beside the history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Local {
    /// When the conversation was last active: the server's acceptance time in epoch ms, or a
    /// step past the latest one seen for what happened only here. The list is sorted by it.
    activity: i64,
    /// Ours until numbered, and received ones without a seq, in the order they happened.
    pending: Vec<Pending>,
    /// Messages received without a seq while the conversation was not open (the history's
    /// unread count covers numbered ones).
    unread_unsequenced: usize,
    earlier: EarlierFetch,
    /// Pages of earlier messages loaded by [`ChatState::begin_backfill`].
    backfilled: u32,
    /// The thread shows the history from this seq on: a catch-up that skipped messages (more
    /// than the session catches up at once) leaves a hole below it, filled only by loading
    /// earlier messages.
    shown_from: u64,
}

/// The state of the chat screen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatState {
    me: Option<UserId>,
    connection: ConnectionStatus,
    history: HistoryView,
    locals: BTreeMap<UserId, Local>,
    selected: Option<UserId>,
    /// The latest activity of any conversation.
    latest: i64,
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
    pub fn conversations(&self) -> Vec<Conversation> {
        let mut peers: Vec<(&UserId, &Local)> = self.locals.iter().collect();
        peers.sort_by(|(a, la), (b, lb)| lb.activity.cmp(&la.activity).then(a.cmp(b)));
        peers
            .into_iter()
            .map(|(peer, _)| Conversation {
                peer: peer.clone(),
                last: self.last(peer),
                unread: self.unread(peer),
            })
            .collect()
    }

    /// Whether there is a conversation with `peer`.
    pub fn has_conversation(&self, peer: &UserId) -> bool {
        self.locals.contains_key(peer)
    }

    /// The thread with `peer`, oldest first: its history, then what only this client knows.
    pub fn thread(&self, peer: &UserId) -> Vec<ChatMessage> {
        let Some(local) = self.locals.get(peer) else {
            return Vec::new();
        };
        let mut thread: Vec<ChatMessage> = self
            .shown_history(peer, local)
            .map(|(seq, m)| self.history_line(*seq, m))
            .collect();
        thread.extend(local.pending.iter().map(|p| self.pending_line(p)));
        thread
    }

    /// The last message of the thread with `peer`.
    pub fn last(&self, peer: &UserId) -> Option<ChatMessage> {
        let local = self.locals.get(peer)?;
        if let Some(pending) = local.pending.last() {
            return Some(self.pending_line(pending));
        }
        self.shown_history(peer, local)
            .next_back()
            .map(|(seq, m)| self.history_line(*seq, m))
    }

    /// Messages of the conversation with `peer` the user has not read: 0 while it is open.
    pub fn unread(&self, peer: &UserId) -> usize {
        if self.selected.as_ref() == Some(peer) {
            return 0;
        }
        let numbered = self
            .history
            .conversation(peer)
            .and_then(|c| c.info.as_ref())
            .map_or(0, |info| usize::try_from(info.unread).unwrap_or(usize::MAX));
        let unsequenced = self.locals.get(peer).map_or(0, |l| l.unread_unsequenced);
        numbered.saturating_add(unsequenced)
    }

    /// Unread messages over all conversations.
    pub fn total_unread(&self) -> usize {
        self.locals.keys().map(|peer| self.unread(peer)).sum()
    }

    /// The peer whose thread is open.
    pub fn selected(&self) -> Option<&UserId> {
        self.selected.as_ref()
    }

    /// Whether the thread with `peer` has earlier messages to load.
    pub fn earlier(&self, peer: &UserId) -> Earlier {
        let Some(local) = self.locals.get(peer) else {
            return Earlier::None;
        };
        match local.earlier {
            EarlierFetch::Loading => Earlier::Loading,
            EarlierFetch::Exhausted => Earlier::None,
            EarlierFetch::Idle => match self.shown_history(peer, local).next() {
                Some((&before, _)) if before > 1 => Earlier::Available { before },
                _ => Earlier::None,
            },
        }
    }

    /// The user asked for earlier messages of the thread with `peer`: returns the seq to
    /// load before (and marks the thread loading), or `None` when there is nothing to load
    /// or a page is already on its way.
    pub fn begin_earlier(&mut self, peer: &UserId) -> Option<u64> {
        let Earlier::Available { before } = self.earlier(peer) else {
            return None;
        };
        self.locals.get_mut(peer)?.earlier = EarlierFetch::Loading;
        Some(before)
    }

    /// Earlier messages the open thread should load by itself: when it shows messages the
    /// history has not numbered for it (ours acknowledged without a seq, received ones
    /// without one) that the session's catch-up did not reach, because more than it catches
    /// up with at once came after them (a replay of many stored messages, a burst of replies
    /// to a conversation's first message). The page before the first message shown usually
    /// holds them; at most [`BACKFILL_PAGES`] are loaded so.
    pub fn backfill_due(&self) -> Option<(UserId, u64)> {
        if self.connection != ConnectionStatus::Online {
            return None;
        }
        let peer = self.selected.as_ref()?;
        let local = self.locals.get(peer)?;
        let waiting = local
            .pending
            .iter()
            .any(|p| p.fp.is_some() && p.delivery != Some(Delivery::Sending));
        if !waiting || local.backfilled >= BACKFILL_PAGES {
            return None;
        }
        match self.earlier(peer) {
            Earlier::Available { before } => Some((peer.clone(), before)),
            _ => None,
        }
    }

    /// Starts loading a page of earlier messages for [`backfill_due`](Self::backfill_due):
    /// returns the seq to load before.
    pub fn begin_backfill(&mut self, peer: &UserId) -> Option<u64> {
        let before = self.begin_earlier(peer)?;
        self.local(peer).backfilled += 1;
        Some(before)
    }

    /// The read position to tell the server: the open conversation's newest message shown,
    /// when the server's read position is behind it and the session is online.
    pub fn read_due(&self) -> Option<(UserId, u64)> {
        if self.connection != ConnectionStatus::Online {
            return None;
        }
        let peer = self.selected.as_ref()?;
        let local = self.locals.get(peer)?;
        let info = self.history.conversation(peer)?.info.as_ref()?;
        let (&newest_shown, _) = self.shown_history(peer, local).next_back()?;
        (newest_shown > info.read).then(|| (peer.clone(), newest_shown))
    }

    /// Starts a session for `me`. Conversations are kept when the same user logs in again
    /// (after a kickout or a refused login) and dropped when someone else does.
    pub fn begin_login(&mut self, me: UserId) {
        if self.me.as_ref() != Some(&me) {
            self.history = HistoryView::new();
            self.locals.clear();
            self.selected = None;
            self.latest = 0;
        }
        self.me = Some(me);
        self.connection = ConnectionStatus::Connecting;
    }

    /// Opens the thread with `peer`, creating the conversation if needed, and marks it read.
    pub fn select(&mut self, peer: UserId) {
        self.locals
            .entry(peer.clone())
            .or_default()
            .unread_unsequenced = 0;
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
        let from = self.me.clone().unwrap_or_default();
        let activity = self.step();
        let local = self.locals.entry(outgoing.to.clone()).or_default();
        local.activity = activity;
        local.pending.push(Pending {
            id,
            from,
            fp: outgoing.fp.clone(),
            text: outgoing.content.clone(),
            delivery: Some(Delivery::Sending),
        });
        id
    }

    /// Puts a lost message back to `Sending` and returns what to send again, under the same
    /// fingerprint (a receiver that did get the first copy then drops the second).
    pub fn retry(&mut self, id: MessageId) -> Option<Outgoing> {
        self.locals.iter_mut().find_map(|(peer, local)| {
            let message = local.pending.iter_mut().find(|m| m.id == id)?;
            if message.delivery != Some(Delivery::Lost) {
                return None;
            }
            let fp = message.fp.clone()?;
            message.delivery = Some(Delivery::Sending);
            Some(Outgoing::new(peer.clone(), message.text.clone()).with_fingerprint(fp))
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
                // The session forgets requests in flight when the link goes.
                self.stop_loading_earlier();
            }
            SessionUpdate::KickedOut { code, reason } => {
                self.connection = ConnectionStatus::KickedOut { code, reason };
                self.give_up_pending();
                self.stop_loading_earlier();
            }
            SessionUpdate::Ended => {
                if !self.connection.is_final() {
                    self.connection = ConnectionStatus::LoggedOut;
                }
                self.give_up_pending();
                self.stop_loading_earlier();
            }
            SessionUpdate::Received(message) => self.receive(message),
            SessionUpdate::Delivered(fp) => self.set_delivery(&fp, Delivery::Delivered),
            SessionUpdate::Lost(fp) => self.set_delivery(&fp, Delivery::Lost),
            SessionUpdate::History(event) => self.history_event(event),
            SessionUpdate::EarlierUnavailable(peer) => {
                if let Some(local) = self.locals.get_mut(&peer)
                    && local.earlier == EarlierFetch::Loading
                {
                    local.earlier = EarlierFetch::Idle;
                }
            }
        }
    }

    fn receive(&mut self, message: ReceivedMessage) {
        let open = self.selected.as_ref() == Some(&message.from);
        let learned = self
            .history
            .apply(&ClientEvent::MessageReceived(message.clone()));
        let peer = message.from;
        self.locals.entry(peer.clone()).or_default();
        for learned in learned {
            match learned {
                Learned::Unsequenced { message, .. } => {
                    let id = self.fresh_id();
                    let activity = self.step();
                    let local = self.local(&peer);
                    local.activity = activity;
                    local.pending.push(Pending {
                        id,
                        from: message.from,
                        fp: message.fp,
                        text: message.content,
                        delivery: None,
                    });
                    if !open {
                        local.unread_unsequenced += 1;
                    }
                }
                Learned::Message { message, .. } => {
                    self.saw_at(&peer, message.at);
                    self.numbered(&peer, std::slice::from_ref(&message));
                }
            }
        }
    }

    fn history_event(&mut self, event: HistoryEvent) {
        match &event {
            HistoryEvent::Conversations { conversations, .. } => {
                for info in conversations {
                    self.saw_at(&info.peer, info.at);
                }
            }
            HistoryEvent::Updated(info) => self.saw_at(&info.peer, info.at),
            HistoryEvent::Reset { .. } => {
                for local in self.locals.values_mut() {
                    local.shown_from = 0;
                    local.earlier = EarlierFetch::Idle;
                }
            }
            HistoryEvent::Page {
                peer,
                from,
                through,
                messages,
                older,
                more,
            } => {
                let newest_known = self
                    .history
                    .conversation(peer)
                    .and_then(|c| c.messages.keys().next_back().copied());
                let local = self.local(peer);
                if *older {
                    local.earlier = if *more {
                        EarlierFetch::Idle
                    } else {
                        EarlierFetch::Exhausted
                    };
                    if through.saturating_add(1) >= local.shown_from {
                        local.shown_from = local.shown_from.min(*from);
                    }
                } else if newest_known.is_some_and(|newest| *from > newest + 1) {
                    // The session skipped what it does not catch up with at once: show the
                    // newest run, and let "load earlier" fill in below it.
                    local.shown_from = *from;
                    local.earlier = EarlierFetch::Idle;
                }
                if let Some(last) = messages.last() {
                    self.saw_at(peer, last.at);
                }
                self.numbered(peer, messages);
            }
            HistoryEvent::Sent { peer, message } => {
                self.saw_at(peer, message.at);
                self.numbered(peer, std::slice::from_ref(message));
            }
            HistoryEvent::Unavailable => {
                log::info!("the server keeps no history: this client remembers this page only");
            }
        }
        self.history.apply(&ClientEvent::History(event));
    }

    /// `messages` now have their place in the history: the copies kept beside it go (ours
    /// waiting to be numbered, received ones without a seq).
    fn numbered(&mut self, peer: &UserId, messages: &[HistoryMessage]) {
        let open = self.selected.as_ref() == Some(peer);
        let local = self.local(peer);
        let mut counted = 0;
        local.pending.retain(|pending| {
            let Some(fp) = &pending.fp else {
                return true;
            };
            let found = messages
                .iter()
                .any(|m| m.from == pending.from && m.fp.as_ref() == Some(fp));
            if found && pending.delivery.is_none() {
                counted += 1;
            }
            !found
        });
        // The history's unread count includes them now.
        if !open {
            local.unread_unsequenced = local.unread_unsequenced.saturating_sub(counted);
        }
    }

    /// The history's messages the thread with `peer` shows, by seq.
    fn shown_history(
        &self,
        peer: &UserId,
        local: &Local,
    ) -> impl DoubleEndedIterator<Item = (&u64, &HistoryMessage)> {
        let from = local.shown_from;
        self.history
            .conversation(peer)
            .into_iter()
            .flat_map(move |c| c.messages.range(from..))
    }

    fn author(&self, from: &UserId) -> Author {
        if from.is_server() {
            Author::Server
        } else if self.me.as_ref() == Some(from) {
            Author::Me
        } else {
            Author::Peer
        }
    }

    fn history_line(&self, seq: u64, message: &HistoryMessage) -> ChatMessage {
        let author = self.author(&message.from);
        ChatMessage {
            key: MessageKey::Seq(seq),
            fp: message.fp.clone(),
            author,
            text: message
                .content
                .clone()
                .unwrap_or_else(|| "(this message is too large to show here)".to_owned()),
            delivery: (author == Author::Me).then_some(Delivery::Delivered),
        }
    }

    fn pending_line(&self, pending: &Pending) -> ChatMessage {
        ChatMessage {
            key: MessageKey::Local(pending.id),
            fp: pending.fp.clone(),
            author: self.author(&pending.from),
            text: pending.text.clone(),
            delivery: pending.delivery,
        }
    }

    /// Marks our message `fp` as delivered or lost. An acknowledgement can arrive after the
    /// message was reported lost (the reference fires both), and then delivered wins; a late
    /// "lost" never overrides "delivered".
    fn set_delivery(&mut self, fp: &Fingerprint, delivery: Delivery) {
        let message = self
            .locals
            .values_mut()
            .flat_map(|l| l.pending.iter_mut())
            .find(|m| m.delivery.is_some() && m.fp.as_ref() == Some(fp));
        if let Some(message) = message
            && message.delivery != Some(Delivery::Delivered)
        {
            message.delivery = Some(delivery);
        }
    }

    /// After a kickout or logout the session drops its retransmission queue, so nothing still
    /// `Sending` will ever be resolved: show those messages as lost, never silently dropped.
    fn give_up_pending(&mut self) {
        for message in self.locals.values_mut().flat_map(|l| l.pending.iter_mut()) {
            if message.delivery == Some(Delivery::Sending) {
                message.delivery = Some(Delivery::Lost);
            }
        }
    }

    fn stop_loading_earlier(&mut self) {
        for local in self.locals.values_mut() {
            if local.earlier == EarlierFetch::Loading {
                local.earlier = EarlierFetch::Idle;
            }
        }
    }

    fn local(&mut self, peer: &UserId) -> &mut Local {
        self.locals.entry(peer.clone()).or_default()
    }

    /// The conversation with `peer` was active at `at` (the server's clock).
    fn saw_at(&mut self, peer: &UserId, at: i64) {
        self.latest = self.latest.max(at);
        let local = self.local(peer);
        local.activity = local.activity.max(at);
    }

    /// An activity time for something that happens here and now: past every one seen.
    fn step(&mut self) -> i64 {
        self.latest += 1;
        self.latest
    }

    fn fresh_id(&mut self) -> MessageId {
        self.next_id += 1;
        MessageId(self.next_id)
    }
}

#[cfg(test)]
mod tests;
