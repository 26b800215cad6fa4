//! The conversation-sync requests of hongyan clients (§9.4): "my conversations" (1000),
//! "messages of a conversation" (1001), "I have read up to" (1002), each answered on the
//! session's own pipe (1500–1502) within the largest packet its transport carries (UDP: 1024
//! bytes): a page holds what fits and says there is more. The first request opts the session
//! in: from then on, messages to it and acknowledgements of its own carry their seq.
//!
//! A request that cannot be answered now (the store failing, the history's epoch not opened
//! yet) gets no answer: the client asks again. A server without history answers epoch 0.

use hongyan_shared::codec::json::write_escaped;
use hongyan_shared::history::{
    ConversationInfo, ConversationsRequest, ConversationsResponse, HistoryMessage, HistoryRange,
    HistoryRequest, HistoryResponse, ReadRequest, ReadResponse, SyncDocument,
};
use hongyan_shared::{Packet, PacketType, UserId};
use serde::Serialize;

use super::state::{Core, Flow};
use crate::log_text::Untrusted;
use crate::pipe::Pipe;
use crate::session::Session;

/// Conversations per page when the client leaves it to the server, and the most it gets.
const CONVERSATIONS_PAGE: u32 = 100;
const MAX_CONVERSATIONS_PAGE: u32 = 500;
/// Messages per page when the client leaves it to the server, and the most it gets.
const HISTORY_PAGE: u32 = 50;
const MAX_HISTORY_PAGE: u32 = 200;

/// The page size a client asked for, within the server's bounds.
fn page_size(asked: u32, default: u32, max: u32) -> usize {
    let size = if asked == 0 { default } else { asked.min(max) };
    size as usize
}

/// How many bytes `item` adds to a document inside `dataContent`: its JSON, escaped once more
/// as a string (§1.2), and a comma.
fn cost<T: Serialize>(item: &T) -> usize {
    let json = serde_json::to_string(item).expect("sync documents always serialize");
    let mut escaped = Vec::with_capacity(json.len() + 16);
    write_escaped(&mut escaped, &json);
    escaped.len() - 2 + 1
}

impl Core {
    /// A conversation-sync request from `user`'s logged-in `session`.
    pub(super) async fn sync_request<P: Pipe>(
        &self,
        session: &mut Session,
        pipe: &mut P,
        packet: Packet,
        user: &UserId,
    ) -> Flow {
        if !session.handle.synced {
            // From its first question on, until it logs in as somebody else.
            session.handle.synced = true;
            self.registry.set_synced(user, session.info().id, true);
        }
        let data = packet.data_content.as_deref().unwrap_or_default();
        let limit = session.properties.max_outbound;
        let answer = match packet.kind {
            PacketType::ConversationsRequest => match ConversationsRequest::decode(data) {
                Ok(request) => self.answer_conversations(user, request, limit).await,
                Err(e) => return unreadable(&e),
            },
            PacketType::HistoryRequest => match HistoryRequest::decode(data) {
                Ok(request) => self.answer_history(user, request, limit).await,
                Err(e) => return unreadable(&e),
            },
            PacketType::ReadRequest => match ReadRequest::decode(data) {
                Ok(request) => self.answer_read(user, request).await,
                Err(e) => return unreadable(&e),
            },
            _ => None,
        };
        match answer {
            Some(packet) => self.reply(session, pipe, packet).await,
            None => Flow::Continue,
        }
    }

    /// The epoch to answer with: 0 without history; `None` while it is not open yet.
    fn answer_epoch(&self) -> Option<u64> {
        match &self.history {
            None => Some(0),
            Some(history) => history.epoch(),
        }
    }

    async fn answer_conversations(
        &self,
        user: &UserId,
        request: ConversationsRequest,
        max: usize,
    ) -> Option<Packet> {
        let epoch = self.answer_epoch()?;
        let limit = page_size(request.limit, CONVERSATIONS_PAGE, MAX_CONVERSATIONS_PAGE);
        let (items, more) = match self
            .conversations_of(user, request.after.as_ref(), limit)
            .await
        {
            Ok(page) => page,
            Err(error) => {
                tracing::debug!(%error, "conversations not read; the client asks again");
                return None;
            }
        };
        let mut response = ConversationsResponse {
            id: request.id,
            epoch,
            items: Vec::new(),
            more,
        };
        let room = room(&response, user, max);
        let (kept, cut) = keep_from_start(&items, room, cost::<ConversationInfo>);
        response.items = items.into_iter().take(kept).collect();
        response.more |= cut;
        Some(fitted(response, user, max, |r| {
            r.more = true;
            r.items.pop().is_some()
        }))
    }

    async fn answer_history(
        &self,
        user: &UserId,
        request: HistoryRequest,
        max: usize,
    ) -> Option<Packet> {
        let epoch = self.answer_epoch()?;
        let range = request.range();
        let limit = page_size(request.limit, HISTORY_PAGE, MAX_HISTORY_PAGE);
        let page = match self.history_of(user, &request.peer, range, limit).await {
            Ok(page) => page,
            Err(error) => {
                tracing::debug!(%error, "history not read; the client asks again");
                return None;
            }
        };
        let mut response = HistoryResponse {
            id: request.id,
            epoch,
            peer: request.peer,
            newest: page.newest,
            from: 0,
            through: 0,
            items: Vec::new(),
            more: page.more,
        };
        place(&mut response, range);
        let room = room(&response, user, max);
        let mut items: Vec<HistoryMessage> = page
            .entries
            .into_iter()
            .map(|entry| {
                let mut message = HistoryMessage {
                    seq: entry.seq,
                    from: entry.sender,
                    fp: entry.fp,
                    typeu: entry.typeu,
                    at: entry.accepted_at,
                    content: Some(entry.content),
                };
                if cost(&message) > room {
                    // Too large for one packet of this transport: its place, without it.
                    message.content = None;
                }
                message
            })
            .collect();
        // Catching up keeps the oldest items, scrolling back the newest.
        let backwards = matches!(range, HistoryRange::Before(_));
        if backwards {
            items.reverse();
        }
        let (kept, cut) = keep_from_start(&items, room, cost::<HistoryMessage>);
        items.truncate(kept);
        if backwards {
            items.reverse();
        }
        response.items = items;
        response.more |= cut;
        place(&mut response, range);
        Some(fitted(response, user, max, |r| {
            r.more = true;
            let any = !r.items.is_empty();
            if any {
                if backwards {
                    r.items.remove(0);
                } else {
                    r.items.pop();
                }
            }
            place(r, range);
            any
        }))
    }

    async fn answer_read(&self, user: &UserId, request: ReadRequest) -> Option<Packet> {
        self.answer_epoch()?;
        let (read, newest) = match self.mark_read(user, &request.peer, request.seq).await {
            Ok(position) => position,
            Err(error) => {
                tracing::debug!(%error, "read position not written; the client asks again");
                return None;
            }
        };
        let response = ReadResponse {
            id: request.id,
            peer: request.peer,
            read,
            newest,
            unread: newest.saturating_sub(read),
        };
        Some(response.to_packet(UserId::SERVER, user.as_str()))
    }
}

fn unreadable(error: &impl std::fmt::Display) -> Flow {
    tracing::debug!(error = %Untrusted(&error.to_string()), "unreadable sync request ignored");
    Flow::Continue
}

/// Room kept for what the envelope may still grow by: a stamped `sm`, the page's numbers.
const MARGIN: usize = 48;

/// The bytes left for items in a packet of at most `max` bytes to `to` carrying `empty` (the
/// answer without items).
fn room<D: SyncDocument>(empty: &D, to: &UserId, max: usize) -> usize {
    let base = empty.to_packet(UserId::SERVER, to.as_str()).to_json().len();
    max.saturating_sub(base + MARGIN)
}

/// `response` as a packet to `to` within `max` bytes, `shrink`ing it (an item at a time)
/// while it is not: the estimate makes that rare.
fn fitted<D: SyncDocument>(
    mut response: D,
    to: &UserId,
    max: usize,
    mut shrink: impl FnMut(&mut D) -> bool,
) -> Packet {
    loop {
        let packet = response.to_packet(UserId::SERVER, to.as_str());
        if packet.to_json().len() + MARGIN / 2 <= max || !shrink(&mut response) {
            return packet;
        }
    }
}

/// How many of `items`, from the start, fit in `room` bytes, and whether some were cut.
fn keep_from_start<T>(items: &[T], room: usize, cost: impl Fn(&T) -> usize) -> (usize, bool) {
    let mut used = 0;
    for (i, item) in items.iter().enumerate() {
        used += cost(item);
        if used > room {
            return (i, true);
        }
    }
    (items.len(), false)
}

/// Fills in which seqs a page covers, from its items and `range`. Catching up (after `a`):
/// from `a + 1` through the last item when more follows, else through the newest seq.
/// Scrolling back (before `b`, or from the newest): from the first item when more precedes
/// it, else from 1, through the seq before `b`.
fn place(response: &mut HistoryResponse, range: HistoryRange) {
    let newest = response.newest;
    match range {
        HistoryRange::After(after) => {
            response.from = after + 1;
            response.through = match (response.more, response.items.last()) {
                (true, Some(last)) => last.seq,
                (true, None) => after,
                (false, _) => newest.max(after),
            };
        }
        HistoryRange::Before(before) => {
            response.through = before.map_or(newest, |b| b.saturating_sub(1).min(newest));
            response.from = match (response.more, response.items.first()) {
                (true, Some(first)) => first.seq,
                (true, None) => response.through + 1,
                (false, _) => 1,
            };
        }
    }
}
