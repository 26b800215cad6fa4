//! The history sync of a client session (§9.4): after every login it asks for the user's
//! conversations, compares each with what it has, and fetches what it lacks page by page;
//! live messages and the acknowledgements of its own messages carry their seq, so a gap is
//! seen at once and fetched after a short grace; `mark_read` and `fetch_older` are requests
//! of their own. Requests are not QoS: each is sent again, with the same id, until answered.
//!
//! Per conversation it keeps only numbers (the newest seq, how far its window is complete, the
//! read position) and the fingerprints of messages that arrived without a seq; the messages
//! themselves go to the application in [`HistoryEvent`]s.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use web_time::Instant;

use super::config::SyncConfig;
use super::event::{HistoryEvent, ReceivedMessage};
use crate::history::{
    ConversationInfo, ConversationsRequest, ConversationsResponse, HistoryMessage, HistoryRange,
    HistoryRequest, HistoryResponse, ReadRequest, ReadResponse, SyncDocument,
};
use crate::packet::{Fingerprint, Packet, PacketType, SeqTag, UserId};

/// Where the session stands with one conversation, as [`ClientSession::sync_state`]
/// (super::ClientSession::sync_state) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// The conversation's numbers as the session knows them.
    pub info: ConversationInfo,
    /// The session has reported every message of the conversation with a seq from
    /// `complete_from` through `complete_through` (empty while `complete_through` is lower).
    pub complete_from: u64,
    /// See [`complete_from`](Self::complete_from).
    pub complete_through: u64,
    /// Messages received without a seq, still looked for in the history.
    pub unsequenced: usize,
}

/// One conversation's numbers.
#[derive(Debug, Clone)]
struct Conversation {
    newest: u64,
    /// Every message from `low` through `through` was reported.
    low: u64,
    through: u64,
    read: u64,
    at: i64,
    /// When the tail (after `through`) is to be fetched.
    fetch_at: Option<Instant>,
    /// A tail request is queued or in flight.
    fetching: bool,
    /// The read position to tell the server, the one it confirmed, and whether a request
    /// carries it now.
    read_wanted: u64,
    read_acked: u64,
    read_sending: bool,
    /// Messages that arrived without a seq, by sender and fingerprint.
    unsequenced: BTreeSet<(UserId, Fingerprint)>,
    /// Fetches that did not find them yet.
    refreshes: u32,
}

impl Default for Conversation {
    fn default() -> Self {
        Self {
            newest: 0,
            low: 1,
            through: 0,
            read: 0,
            at: 0,
            fetch_at: None,
            fetching: false,
            read_wanted: 0,
            read_acked: 0,
            read_sending: false,
            unsequenced: BTreeSet::new(),
            refreshes: 0,
        }
    }
}

impl Conversation {
    fn info(&self, peer: &UserId) -> ConversationInfo {
        ConversationInfo {
            peer: peer.clone(),
            newest: self.newest,
            read: self.read,
            unread: self.newest.saturating_sub(self.read),
            at: self.at,
        }
    }

    /// Fetches the tail no later than `at`.
    fn fetch_by(&mut self, at: Instant) {
        if !self.fetching {
            self.fetch_at = Some(self.fetch_at.map_or(at, |t| t.min(at)));
        }
    }

    /// `tag` is known to exist (a live message, an acknowledgement): the window grows if it
    /// is the next seq, otherwise the gap is fetched after `grace`.
    fn saw(&mut self, tag: &SeqTag, now: Instant, grace: std::time::Duration) {
        self.newest = self.newest.max(tag.seq);
        self.at = self.at.max(tag.at);
        if tag.seq == self.through + 1 {
            self.through = tag.seq;
        }
        if self.newest > self.through {
            self.fetch_by(now + grace);
        }
    }
}

/// A request the session makes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Conversations {
        after: Option<UserId>,
    },
    Tail {
        peer: UserId,
        after: u64,
    },
    Older {
        peer: UserId,
        before: Option<u64>,
        limit: u32,
    },
    Read {
        peer: UserId,
        seq: u64,
    },
}

/// A request sent and not yet answered.
#[derive(Debug)]
struct InFlight {
    request: Request,
    packet: Packet,
    tries: u32,
    retry_at: Instant,
}

/// The sync state of one session.
#[derive(Debug)]
pub(super) struct Sync {
    config: SyncConfig,
    me: Option<UserId>,
    online: bool,
    /// The server's history epoch, once it answered.
    epoch: Option<u64>,
    /// The server keeps no history: nothing more to ask until the next login.
    off: bool,
    conversations: BTreeMap<UserId, Conversation>,
    /// The conversations list being read, page by page.
    listing: Option<Vec<ConversationInfo>>,
    in_flight: BTreeMap<u32, InFlight>,
    waiting: VecDeque<Request>,
    next_id: u32,
    /// The server answered something since the login.
    answered: bool,
    unavailable_reported: bool,
    transmits: VecDeque<Packet>,
    events: VecDeque<HistoryEvent>,
}

impl Sync {
    pub(super) fn new(config: SyncConfig) -> Self {
        Self {
            config,
            me: None,
            online: false,
            epoch: None,
            off: false,
            conversations: BTreeMap::new(),
            listing: None,
            in_flight: BTreeMap::new(),
            waiting: VecDeque::new(),
            next_id: 1,
            answered: false,
            unavailable_reported: false,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next packet to send.
    pub(super) fn poll_transmit(&mut self) -> Option<Packet> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub(super) fn poll_event(&mut self) -> Option<HistoryEvent> {
        self.events.pop_front()
    }

    /// The server's history epoch, once it answered.
    pub(super) fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Where the session stands with the conversation with `peer`.
    pub(super) fn state(&self, peer: &UserId) -> Option<SyncState> {
        let conversation = self.conversations.get(peer)?;
        Some(SyncState {
            info: conversation.info(peer),
            complete_from: conversation.low,
            complete_through: conversation.through,
            unsequenced: conversation.unsequenced.len(),
        })
    }

    /// Every conversation the session knows to be in the history, in peer-id order.
    pub(super) fn conversations(&self) -> Vec<ConversationInfo> {
        self.conversations
            .iter()
            .filter(|(_, c)| c.newest > 0)
            .map(|(peer, c)| c.info(peer))
            .collect()
    }

    /// The login as `me` was accepted: sync from the conversations list on.
    pub(super) fn online(&mut self, me: &UserId, now: Instant) {
        if self.me.as_ref().is_some_and(|m| m != me) {
            self.forget();
        }
        self.me = Some(me.clone());
        self.online = true;
        self.off = false;
        self.answered = false;
        self.unavailable_reported = false;
        self.drop_requests();
        self.start_listing(now);
    }

    /// The link went down: what was in flight is asked again after the next login.
    pub(super) fn offline(&mut self) {
        self.online = false;
        self.transmits.clear();
        self.drop_requests();
    }

    /// The session ended (logout, kickout): everything is forgotten.
    pub(super) fn end(&mut self) {
        self.online = false;
        self.forget();
    }

    fn forget(&mut self) {
        let config = self.config.clone();
        *self = Self::new(config);
    }

    fn drop_requests(&mut self) {
        self.in_flight.clear();
        self.waiting.clear();
        self.listing = None;
        for conversation in self.conversations.values_mut() {
            // Asked again once the next login's conversations list is in.
            conversation.fetching = false;
            conversation.fetch_at = None;
            conversation.read_sending = false;
        }
    }

    fn active(&self) -> bool {
        self.online && !self.off
    }

    /// When [`handle_timeout`](Self::handle_timeout) has work.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        if !self.active() {
            return None;
        }
        let retries = self.in_flight.values().map(|r| r.retry_at);
        let fetches = self
            .conversations
            .values()
            .filter(|_| self.epoch.is_some())
            .filter_map(|c| c.fetch_at);
        retries.chain(fetches).min()
    }

    /// Retries what is unanswered and starts the fetches that are due.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        if !self.active() {
            return;
        }
        let mut resend = Vec::new();
        for request in self.in_flight.values_mut() {
            if request.retry_at > now {
                continue;
            }
            request.tries += 1;
            let backoff = self
                .config
                .request_timeout
                .saturating_mul(1 << (request.tries - 1).min(16))
                .min(self.config.max_retry_interval);
            request.retry_at = now + backoff;
            resend.push(request.packet.clone());
            if request.tries > self.config.unavailable_after
                && !self.answered
                && !self.unavailable_reported
            {
                self.unavailable_reported = true;
                self.events.push_back(HistoryEvent::Unavailable);
            }
        }
        self.transmits.extend(resend);
        self.pump(now);
    }

    /// Asks for the conversations list again.
    pub(super) fn sync_conversations(&mut self, now: Instant) {
        if self.active() && self.listing.is_none() {
            self.start_listing(now);
        }
    }

    /// Asks for up to `limit` messages of the conversation with `peer` before seq `before`
    /// (`None`: the newest).
    pub(super) fn fetch_older(
        &mut self,
        peer: UserId,
        before: Option<u64>,
        limit: u32,
        now: Instant,
    ) {
        self.want(
            Request::Older {
                peer,
                before,
                limit,
            },
            now,
        );
    }

    /// The user read the conversation with `peer` up to `seq`.
    pub(super) fn mark_read(&mut self, peer: UserId, seq: u64, now: Instant) {
        let conversation = self.conversations.entry(peer.clone()).or_default();
        let seq = seq.min(conversation.newest);
        if seq <= conversation.read_wanted.max(conversation.read) {
            return;
        }
        conversation.read_wanted = seq;
        conversation.read = seq;
        let info = conversation.info(&peer);
        let send = !conversation.read_sending;
        conversation.read_sending |= send;
        self.events.push_back(HistoryEvent::Updated(info));
        if send {
            self.want(Request::Read { peer, seq }, now);
        }
    }

    /// A message arrived live.
    pub(super) fn received(&mut self, message: &ReceivedMessage, now: Instant) {
        if self.off || self.me.is_none() {
            return;
        }
        let peer = message.from.clone();
        match message.seq {
            Some(tag) if self.current(&tag, now) => {
                let grace = self.config.gap_grace;
                let conversation = self.conversations.entry(peer.clone()).or_default();
                conversation.saw(&tag, now, grace);
                let info = conversation.info(&peer);
                self.events.push_back(HistoryEvent::Updated(info));
            }
            Some(_) => {}
            None => {
                if let Some(fp) = message.fp.clone().filter(|fp| !fp.is_empty()) {
                    self.unsequenced(peer, message.from.clone(), fp, now);
                }
            }
        }
    }

    /// A message this session sent, `packet`, was acknowledged by `peer` (the receiver, in
    /// whose name the server acknowledges), with its place in the history if the server
    /// numbered it.
    pub(super) fn sent(
        &mut self,
        peer: &UserId,
        packet: &Packet,
        tag: Option<SeqTag>,
        now: Instant,
    ) {
        let Some(me) = self.me.clone() else {
            return;
        };
        if self.off || peer.is_server() || packet.to.as_ref().is_some_and(UserId::is_server) {
            // C2S messages are the application's, not a conversation's.
            return;
        }
        let Some(fp) = packet.fp.clone() else {
            return;
        };
        match tag {
            Some(tag) if self.current(&tag, now) => {
                let grace = self.config.gap_grace;
                let conversation = self.conversations.entry(peer.clone()).or_default();
                conversation.saw(&tag, now, grace);
                conversation.read = conversation.read.max(tag.seq);
                let info = conversation.info(peer);
                self.events.push_back(HistoryEvent::Sent {
                    peer: peer.clone(),
                    message: HistoryMessage {
                        seq: tag.seq,
                        from: me,
                        fp: Some(fp),
                        typeu: packet.typeu,
                        at: tag.at,
                        content: packet.data_content.clone(),
                    },
                });
                self.events.push_back(HistoryEvent::Updated(info));
            }
            Some(_) => {}
            None => self.unsequenced(peer.clone(), me, fp, now),
        }
    }

    /// Whether `tag` belongs to the epoch the session syncs in; a newer epoch resets it. The
    /// first tag, before any answer, names the epoch: numbers learned from it must be dropped
    /// if a later answer is of another epoch.
    fn current(&mut self, tag: &SeqTag, now: Instant) -> bool {
        match self.epoch {
            Some(epoch) if tag.epoch > epoch => {
                self.reset(tag.epoch, now);
                false
            }
            Some(epoch) => tag.epoch == epoch,
            None => {
                self.epoch = Some(tag.epoch);
                true
            }
        }
    }

    fn unsequenced(&mut self, peer: UserId, from: UserId, fp: Fingerprint, now: Instant) {
        let grace = self.config.gap_grace;
        let conversation = self.conversations.entry(peer).or_default();
        if conversation.unsequenced.insert((from, fp)) {
            conversation.refreshes = 0;
        }
        conversation.fetch_by(now + grace);
    }

    /// An answer from the server, of one of the sync types.
    pub(super) fn handle_packet(&mut self, packet: &Packet, now: Instant) {
        if !self.online {
            return;
        }
        let Some(data) = packet.data_content.as_deref() else {
            return;
        };
        match packet.kind {
            PacketType::ConversationsResponse => {
                if let Ok(response) = ConversationsResponse::decode(data) {
                    self.conversations_answered(response, now);
                }
            }
            PacketType::HistoryResponse => {
                if let Ok(response) = HistoryResponse::decode(data) {
                    self.history_answered(response, now);
                }
            }
            PacketType::ReadResponse => {
                if let Ok(response) = ReadResponse::decode(data) {
                    self.read_answered(response, now);
                }
            }
            _ => {}
        }
        self.pump(now);
    }

    /// Takes the request `id` off the in-flight list: what it asked, if it was in flight.
    fn answered(&mut self, id: u32) -> Option<Request> {
        let request = self.in_flight.remove(&id)?.request;
        self.answered = true;
        Some(request)
    }

    /// Whether an answer in `epoch` may be used: the server keeps history, and the epoch is
    /// the session's (a newer one resets the session, an older one is a stale answer).
    fn usable_epoch(&mut self, epoch: u64, now: Instant) -> bool {
        if epoch == 0 {
            self.off = true;
            self.drop_requests();
            if !self.unavailable_reported {
                self.unavailable_reported = true;
                self.events.push_back(HistoryEvent::Unavailable);
            }
            return false;
        }
        match self.epoch {
            None => {
                self.epoch = Some(epoch);
                true
            }
            Some(current) if epoch == current => true,
            Some(current) if epoch < current => false,
            Some(_) => {
                self.reset(epoch, now);
                false
            }
        }
    }

    /// The server's history epoch is now `epoch`: everything known is dropped, and the sync
    /// starts over.
    fn reset(&mut self, epoch: u64, now: Instant) {
        self.epoch = Some(epoch);
        self.events.push_back(HistoryEvent::Reset { epoch });
        let reads: Vec<(UserId, u64)> = self
            .conversations
            .iter()
            .filter(|(_, c)| c.read_wanted > 0)
            .map(|(peer, c)| (peer.clone(), c.read_wanted))
            .collect();
        self.conversations.clear();
        self.in_flight
            .retain(|_, r| matches!(r.request, Request::Read { .. }));
        self.waiting.retain(|r| matches!(r, Request::Read { .. }));
        for (peer, read) in reads {
            // A read request still queued or in flight carries it; otherwise (the link went
            // down since) the next conversations list sends it again.
            let sending = self
                .in_flight
                .values()
                .map(|r| &r.request)
                .chain(&self.waiting)
                .any(|r| matches!(r, Request::Read { peer: p, .. } if *p == peer));
            let conversation = self.conversations.entry(peer).or_default();
            conversation.read_wanted = read;
            conversation.read = read;
            conversation.read_sending = sending;
        }
        self.listing = None;
        self.start_listing(now);
    }

    fn start_listing(&mut self, now: Instant) {
        self.listing = Some(Vec::new());
        self.want(Request::Conversations { after: None }, now);
    }

    fn conversations_answered(&mut self, response: ConversationsResponse, now: Instant) {
        let Some(Request::Conversations { .. }) = self.answered(response.id) else {
            return;
        };
        if !self.usable_epoch(response.epoch, now) {
            return;
        }
        let Some(listing) = &mut self.listing else {
            return;
        };
        let after = response.items.last().map(|c| c.peer.clone());
        listing.extend(response.items);
        if response.more && after.is_some() {
            self.want(Request::Conversations { after }, now);
            return;
        }
        let listed = self.listing.take().unwrap_or_default();
        let mut infos = Vec::with_capacity(listed.len());
        for item in listed {
            let conversation = self.conversations.entry(item.peer.clone()).or_default();
            conversation.newest = conversation.newest.max(item.newest);
            conversation.read = conversation.read.max(item.read).min(conversation.newest);
            conversation.at = conversation.at.max(item.at);
            if conversation.newest > conversation.through || !conversation.unsequenced.is_empty() {
                conversation.fetch_by(now);
            }
            infos.push(conversation.info(&item.peer));
        }
        let mut reads = Vec::new();
        for (peer, conversation) in &mut self.conversations {
            if !conversation.unsequenced.is_empty() {
                conversation.fetch_by(now);
            }
            if conversation.read_wanted > conversation.read_acked && !conversation.read_sending {
                conversation.read_sending = true;
                reads.push(Request::Read {
                    peer: peer.clone(),
                    seq: conversation.read_wanted,
                });
            }
        }
        for read in reads {
            self.want(read, now);
        }
        let epoch = self.epoch.unwrap_or_default();
        self.events.push_back(HistoryEvent::Conversations {
            epoch,
            conversations: infos,
        });
    }

    fn history_answered(&mut self, response: HistoryResponse, now: Instant) {
        let Some(request) = self.answered(response.id) else {
            return;
        };
        let older = match &request {
            Request::Tail { .. } => false,
            Request::Older { .. } => true,
            _ => return,
        };
        let usable = self.usable_epoch(response.epoch, now);
        let peer = response.peer.clone();
        if !usable {
            if !older && let Some(conversation) = self.conversations.get_mut(&peer) {
                conversation.fetching = false;
                if conversation.newest > conversation.through {
                    conversation.fetch_by(now);
                }
            }
            return;
        }
        let grace = self.config.gap_grace;
        let attempts = self.config.refresh_attempts;
        // Sending a message moves the sender's read position to it (§9.4): one of ours whose
        // acknowledgement was lost is learned here.
        let me = self.me.clone();
        let mine = response
            .items
            .iter()
            .filter(|m| Some(&m.from) == me.as_ref())
            .map(|m| m.seq)
            .max()
            .unwrap_or(0);
        let conversation = self.conversations.entry(peer.clone()).or_default();
        let newer = response.newest > conversation.newest || mine > conversation.read;
        conversation.newest = conversation.newest.max(response.newest);
        conversation.read = conversation.read.max(mine).min(conversation.newest);
        if let Some(last) = response.items.last() {
            conversation.at = conversation.at.max(last.at);
        }
        for message in &response.items {
            if let Some(fp) = &message.fp {
                conversation
                    .unsequenced
                    .remove(&(message.from.clone(), fp.clone()));
            }
        }
        let mut next = None;
        if older {
            if response.through.saturating_add(1) >= conversation.low
                && response.from < conversation.low
            {
                conversation.low = response.from.max(1);
            }
            if conversation.newest > conversation.through {
                // The answer named a newer message than the session has.
                conversation.fetch_by(now + grace);
            }
        } else {
            if response.from <= conversation.through + 1 {
                conversation.through = conversation.through.max(response.through);
            }
            if response.more && response.through > 0 {
                next = Some(conversation.through);
            } else {
                conversation.fetching = false;
                if conversation.newest > conversation.through {
                    conversation.fetch_by(now);
                } else if !conversation.unsequenced.is_empty() {
                    conversation.refreshes += 1;
                    if conversation.refreshes < attempts {
                        let backoff = grace.saturating_mul(1 << conversation.refreshes.min(16));
                        conversation.fetch_by(now + backoff);
                    } else {
                        // The server's history does not have them: a crash lost them before
                        // they were written. The application keeps them as they came.
                        conversation.unsequenced.clear();
                    }
                } else {
                    conversation.refreshes = 0;
                }
            }
        }
        let info = conversation.info(&peer);
        self.events.push_back(HistoryEvent::Page {
            peer: peer.clone(),
            from: response.from,
            through: response.through,
            messages: response.items,
            older,
            more: response.more,
        });
        if newer {
            self.events.push_back(HistoryEvent::Updated(info));
        }
        if let Some(after) = next {
            self.want(Request::Tail { peer, after }, now);
        }
    }

    fn read_answered(&mut self, response: ReadResponse, now: Instant) {
        let Some(Request::Read { seq, .. }) = self.answered(response.id) else {
            return;
        };
        let peer = response.peer;
        let conversation = self.conversations.entry(peer.clone()).or_default();
        conversation.read_sending = false;
        conversation.newest = conversation.newest.max(response.newest);
        if conversation.newest > conversation.through {
            conversation.fetch_by(now + self.config.gap_grace);
        }
        let changed = response.read > conversation.read;
        conversation.read = conversation.read.max(response.read);
        conversation.read_acked = conversation.read_acked.max(response.read).max(seq);
        let again = conversation.read_wanted > seq;
        if again {
            conversation.read_sending = true;
        }
        let wanted = conversation.read_wanted;
        if changed {
            let info = conversation.info(&peer);
            self.events.push_back(HistoryEvent::Updated(info));
        }
        if again {
            self.want(Request::Read { peer, seq: wanted }, now);
        }
    }

    /// Queues `request`, sending it at once if there is room.
    fn want(&mut self, request: Request, now: Instant) {
        if !self.active() {
            return;
        }
        if self.in_flight.values().any(|r| r.request == request) || self.waiting.contains(&request)
        {
            return;
        }
        self.waiting.push_back(request);
        self.pump(now);
    }

    /// Sends waiting requests while there is room, after starting the fetches that are due.
    fn pump(&mut self, now: Instant) {
        if !self.active() {
            return;
        }
        if self.epoch.is_some() {
            let due: Vec<UserId> = self
                .conversations
                .iter()
                .filter(|(_, c)| !c.fetching && c.fetch_at.is_some_and(|t| t <= now))
                .map(|(peer, _)| peer.clone())
                .collect();
            for peer in due {
                self.start_tail(peer);
            }
        }
        while self.in_flight.len() < self.config.max_in_flight.max(1) {
            let Some(request) = self.waiting.pop_front() else {
                break;
            };
            self.send(request, now);
        }
    }

    /// Queues the fetch of what the session lacks of the conversation with `peer`, at most
    /// the newest `catch_up` messages.
    fn start_tail(&mut self, peer: UserId) {
        let catch_up = self.config.catch_up;
        let Some(conversation) = self.conversations.get_mut(&peer) else {
            return;
        };
        conversation.fetch_at = None;
        conversation.fetching = true;
        if conversation.newest.saturating_sub(conversation.through) > catch_up {
            conversation.through = conversation.newest - catch_up;
            conversation.low = conversation.through + 1;
        }
        let after = conversation.through;
        self.waiting.push_back(Request::Tail { peer, after });
    }

    fn send(&mut self, request: Request, now: Instant) {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let me = self.me.as_ref().map_or("", UserId::as_str);
        let server = UserId::SERVER;
        let packet = match &request {
            Request::Conversations { after } => ConversationsRequest {
                id,
                after: after.clone(),
                limit: self.config.conversations_page,
            }
            .to_packet(me, server),
            Request::Tail { peer, after } => HistoryRequest::new(
                id,
                peer.clone(),
                HistoryRange::After(*after),
                self.config.history_page,
            )
            .to_packet(me, server),
            Request::Older {
                peer,
                before,
                limit,
            } => HistoryRequest::new(id, peer.clone(), HistoryRange::Before(*before), *limit)
                .to_packet(me, server),
            Request::Read { peer, seq } => ReadRequest {
                id,
                peer: peer.clone(),
                seq: *seq,
            }
            .to_packet(me, server),
        };
        self.transmits.push_back(packet.clone());
        self.in_flight.insert(
            id,
            InFlight {
                request,
                packet,
                tries: 1,
                retry_at: now + self.config.request_timeout,
            },
        );
    }
}
