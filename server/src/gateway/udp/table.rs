//! The UDP gateway's address → pseudo-session table (§3.2), without the socket: which
//! datagrams open a pseudo-session, how many may exist, which last. The gateway keeps one
//! behind a lock, with each pseudo-session's inbox as the value; the `udp_datagram` fuzz
//! target drives one directly.
//!
//! A source address is free to forge, so an address earns a lasting pseudo-session only by
//! logging in. A datagram from a new address opens one only if it is a packet and there is
//! room: at most `max_udp_sessions` in all, of which at most `max_udp_unauthenticated` have not
//! logged in. Until it logs in, a pseudo-session lasts as long as answering its first datagram
//! takes; so datagrams from forged addresses, however many, never take the room of logged-in
//! users.

use std::collections::HashMap;
use std::net::SocketAddr;

use bytes::Bytes;
use hongyan_shared::Packet;

use crate::pipe::PipeError;

/// How many pseudo-sessions may exist (`max_udp_sessions`, `max_udp_unauthenticated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpLimits {
    /// Pseudo-sessions in all.
    pub sessions: usize,
    /// Pseudo-sessions of addresses that have not logged in, part of `sessions`.
    pub unauthenticated: usize,
}

/// Names one pseudo-session of an address: a later one of the same address has another, so
/// a session that ends forgets only itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PseudoSessionId(u64);

/// Why a datagram from an address without a pseudo-session opened none. None is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unopened {
    /// It is not a packet (or is over the inbound limit): garbage from a stranger.
    #[error("not a packet")]
    NotAPacket,
    /// `max_udp_sessions` pseudo-sessions exist.
    #[error("the pseudo-session limit is reached")]
    SessionLimit,
    /// `max_udp_unauthenticated` addresses are being answered before they logged in.
    #[error("the unauthenticated share of pseudo-sessions is full")]
    UnauthenticatedLimit,
}

#[derive(Debug)]
struct Entry<T> {
    id: PseudoSessionId,
    logged_in: bool,
    value: T,
}

/// Pseudo-sessions by remote address, each with a value of the caller's (the gateway's: the
/// session's inbox).
#[derive(Debug)]
pub struct PseudoSessions<T> {
    entries: HashMap<SocketAddr, Entry<T>>,
    /// Entries whose address has not logged in.
    unauthenticated: usize,
    limits: UdpLimits,
    next_id: u64,
}

/// What a pseudo-session receives for a `len`-byte datagram whose bytes are `datagram`: the
/// body, or [`PipeError::TooLarge`] over `max_inbound` bytes (which ends the session). The
/// gateway reads whole datagrams up to its limit and learns the length of larger ones, so it
/// never mistakes a truncated one for a packet.
pub fn inbound_datagram(
    datagram: &[u8],
    len: usize,
    max_inbound: usize,
) -> Result<Bytes, PipeError> {
    if len > max_inbound || datagram.len() != len {
        Err(PipeError::TooLarge {
            len,
            max: max_inbound,
        })
    } else {
        Ok(Bytes::copy_from_slice(datagram))
    }
}

impl<T> PseudoSessions<T> {
    /// An empty table within `limits`.
    pub fn new(limits: UdpLimits) -> Self {
        Self {
            entries: HashMap::new(),
            unauthenticated: 0,
            limits,
            next_id: 0,
        }
    }

    /// `peer`'s pseudo-session, if it has one.
    pub fn get(&self, peer: &SocketAddr) -> Option<(PseudoSessionId, &T)> {
        self.entries.get(peer).map(|e| (e.id, &e.value))
    }

    /// Opens a pseudo-session for `peer`, which has none, whose first datagram is `first`:
    /// only for a packet, and only within the limits. It counts as unauthenticated until
    /// [`logged_in`](Self::logged_in).
    pub fn open(
        &mut self,
        peer: SocketAddr,
        first: &Result<Bytes, PipeError>,
        value: T,
    ) -> Result<PseudoSessionId, Unopened> {
        debug_assert!(!self.entries.contains_key(&peer), "{peer} already has one");
        let Ok(body) = first else {
            return Err(Unopened::NotAPacket);
        };
        if Packet::decode(body).is_err() {
            return Err(Unopened::NotAPacket);
        }
        if self.entries.len() >= self.limits.sessions {
            return Err(Unopened::SessionLimit);
        }
        if self.unauthenticated >= self.limits.unauthenticated {
            return Err(Unopened::UnauthenticatedLimit);
        }
        let id = PseudoSessionId(self.next_id);
        self.next_id += 1;
        self.entries.insert(
            peer,
            Entry {
                id,
                logged_in: false,
                value,
            },
        );
        self.unauthenticated += 1;
        Ok(id)
    }

    /// `peer`'s pseudo-session `id` logged in: it lasts from now on, outside the
    /// unauthenticated share. Idempotent.
    pub fn logged_in(&mut self, peer: &SocketAddr, id: PseudoSessionId) {
        if let Some(entry) = self.entries.get_mut(peer)
            && entry.id == id
            && !entry.logged_in
        {
            entry.logged_in = true;
            self.unauthenticated -= 1;
        }
    }

    /// Forgets `peer`'s pseudo-session if it still is `id`, and returns its value.
    pub fn remove(&mut self, peer: &SocketAddr, id: PseudoSessionId) -> Option<T> {
        if self.entries.get(peer).is_none_or(|e| e.id != id) {
            return None;
        }
        let entry = self.entries.remove(peer)?;
        if !entry.logged_in {
            self.unauthenticated -= 1;
        }
        Some(entry.value)
    }

    /// Pseudo-sessions in all.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pseudo-sessions whose address has not logged in.
    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated
    }
}
