//! What nodes send each other on NATS (docs/PROTOCOL.md, "Cluster"): a request's kind and
//! parameters travel in headers, its body is the packet (or the reason of a kick); answers
//! are one word, or JSON for the online-user listing.

use crate::cluster::seam::{Claim, Remote};
use async_nats::HeaderMap;

/// The header naming what a request asks.
pub(super) const OP: &str = "Hongyan-Op";
/// `deliver`'s: epoch milliseconds after which the asking node stopped waiting (and kept the
/// message itself), so a node that wakes up late does not deliver it a second time.
pub(super) const EXPIRES: &str = "Hongyan-Expires";
/// `claim`'s: the login's raw `firstLoginTime`.
pub(super) const FIRST_LOGIN_TIME: &str = "Hongyan-First-Login-Time";
/// `kick`'s: the kickout code.
pub(super) const CODE: &str = "Hongyan-Code";

/// What a request on a user's subject asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// Deliver the packet in the body to the user's session.
    Deliver,
    /// A login of the user elsewhere: apply the duplicate-login rule.
    Claim,
    /// Kick the user (the body is the reason).
    Kick,
    /// Describe the user's session (a [`NodeUser`](crate::cluster::NodeUser) as JSON).
    User,
    /// A message was stored for the user: replay it (no answer).
    Stored,
}

impl Op {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Op::Deliver => "deliver",
            Op::Claim => "claim",
            Op::Kick => "kick",
            Op::User => "user",
            Op::Stored => "stored",
        }
    }

    pub(super) fn of(headers: Option<&HeaderMap>) -> Option<Self> {
        Some(match headers?.get(OP)?.as_str() {
            "deliver" => Op::Deliver,
            "claim" => Op::Claim,
            "kick" => Op::Kick,
            "user" => Op::User,
            "stored" => Op::Stored,
            _ => return None,
        })
    }

    /// Headers with this op.
    pub(super) fn headers(self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(OP, self.as_str());
        headers
    }
}

/// A header's value as a number.
pub(super) fn number(headers: Option<&HeaderMap>, name: &str) -> Option<i64> {
    headers?.get(name)?.as_str().parse().ok()
}

/// The answer to `deliver`.
pub(super) fn remote_word(remote: Remote) -> &'static str {
    match remote {
        Remote::NotHere => "not-here",
        Remote::Forwarded => "forwarded",
        Remote::Delivered => "delivered",
        Remote::Stored => "stored",
        Remote::Lost => "lost",
    }
}

/// An answer to `deliver` read back; an unknown word counts as no answer.
pub(super) fn remote_of(word: &[u8]) -> Remote {
    match word {
        b"forwarded" => Remote::Forwarded,
        b"delivered" => Remote::Delivered,
        b"stored" => Remote::Stored,
        b"lost" => Remote::Lost,
        _ => Remote::NotHere,
    }
}

/// The answer to `claim`.
pub(super) fn claim_word(claim: Claim) -> &'static str {
    match claim {
        Claim::Granted => "granted",
        Claim::Stale => "stale",
    }
}

/// An answer to `claim` read back: only `stale` refuses the login.
pub(super) fn claim_of(word: &[u8]) -> Claim {
    if word == b"stale" {
        Claim::Stale
    } else {
        Claim::Granted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_reads_back_as_itself() {
        for remote in [
            Remote::NotHere,
            Remote::Forwarded,
            Remote::Delivered,
            Remote::Stored,
            Remote::Lost,
        ] {
            assert_eq!(remote_of(remote_word(remote).as_bytes()), remote);
        }
        for claim in [Claim::Granted, Claim::Stale] {
            assert_eq!(claim_of(claim_word(claim).as_bytes()), claim);
        }
        for op in [Op::Deliver, Op::Claim, Op::Kick, Op::User, Op::Stored] {
            assert_eq!(Op::of(Some(&op.headers())), Some(op));
        }
    }
}
