//! [`SeqTag`]: where a message sits in its conversation's history, for the sessions that asked
//! to know (§9.4). Three keys after the reference's nine, never sent to a session that did not
//! opt in, so no MobileIMSDK client ever reads them.

use std::io::Write as _;

/// The history position of a message, carried by a type-2 message (and by the pseudo-ACK of
/// one a session sent) to a session that opted in to conversation sync (§9.4), as the envelope
/// keys `hySeq`, `hyEpoch` and `hyAt`, written after `sm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SeqTag {
    /// `hySeq`: the message's sequence number in its conversation, from 1, gapless.
    pub seq: u64,
    /// `hyEpoch`: the server's history epoch; when it changes, what a client learned of seqs
    /// in an older epoch may be wrong (§9.4).
    pub epoch: u64,
    /// `hyAt`: when the server accepted the message, in epoch milliseconds.
    pub at: i64,
}

impl SeqTag {
    /// The envelope key of [`seq`](Self::seq).
    pub const SEQ_KEY: &'static str = "hySeq";
    /// The envelope key of [`epoch`](Self::epoch).
    pub const EPOCH_KEY: &'static str = "hyEpoch";
    /// The envelope key of [`at`](Self::at).
    pub const AT_KEY: &'static str = "hyAt";

    /// A tag from the decoded keys: none without a positive `hySeq`.
    pub(super) fn from_keys(seq: Option<i64>, epoch: Option<i64>, at: Option<i64>) -> Option<Self> {
        let seq = u64::try_from(seq?).ok().filter(|&s| s > 0)?;
        Some(Self {
            seq,
            epoch: epoch.and_then(|e| u64::try_from(e).ok()).unwrap_or(0),
            at: at.unwrap_or(0),
        })
    }

    /// `body`, an encoded packet without a tag, with this tag's keys added: what encoding the
    /// packet with the tag writes, without decoding it again. `None` if `body` is not a JSON
    /// object.
    pub fn tag_body(&self, body: &[u8]) -> Option<Vec<u8>> {
        let (&b'}', head) = body.split_last()? else {
            return None;
        };
        let mut out = Vec::with_capacity(body.len() + 64);
        out.extend_from_slice(head);
        // Writing into a vector cannot fail.
        let _ = write!(
            out,
            ",\"{}\":{},\"{}\":{},\"{}\":{}}}",
            Self::SEQ_KEY,
            self.seq,
            Self::EPOCH_KEY,
            self.epoch,
            Self::AT_KEY,
            self.at
        );
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Fingerprint, Packet};

    fn tagged_message() -> (Packet, SeqTag) {
        let packet = Packet::common_data("alice", "bob", "hi", Some(Fingerprint::from("f1")), 7);
        let tag = SeqTag {
            seq: 42,
            epoch: 3,
            at: 1_700_000_000_123,
        };
        (packet, tag)
    }

    #[test]
    fn the_tag_follows_the_references_members_and_reads_back() {
        let (mut packet, tag) = tagged_message();
        let plain = packet.to_json();
        packet.seq = Some(tag);
        let json = packet.to_json();
        assert_eq!(
            json,
            format!(
                "{},\"hySeq\":42,\"hyEpoch\":3,\"hyAt\":1700000000123}}",
                &plain[..plain.len() - 1]
            )
        );
        assert_eq!(Packet::decode(json.as_bytes()).unwrap(), packet);
        assert_eq!(Packet::decode(plain.as_bytes()).unwrap().seq, None);
    }

    #[test]
    fn tagging_an_encoded_body_writes_what_encoding_the_tagged_packet_writes() {
        let (mut packet, tag) = tagged_message();
        let plain = packet.to_json();
        packet.seq = Some(tag);
        assert_eq!(
            tag.tag_body(plain.as_bytes()).unwrap(),
            packet.to_json().into_bytes()
        );
        assert_eq!(tag.tag_body(b"[1]"), None);
    }

    #[test]
    fn a_tag_needs_a_positive_seq() {
        let decode = |json: &str| Packet::decode(json.as_bytes()).unwrap().seq;
        assert_eq!(decode(r#"{"type":2,"hySeq":0,"hyEpoch":1}"#), None);
        assert_eq!(decode(r#"{"type":2,"hySeq":null}"#), None);
        assert_eq!(
            decode(r#"{"type":2,"hySeq":"5"}"#),
            Some(SeqTag {
                seq: 5,
                epoch: 0,
                at: 0
            })
        );
    }
}
