//! The packet's JSON form: the members the reference writes, in its order (§1.2), and the
//! lenient reading of what arrives (§1.3). Built on the codec's writer and readers; the
//! envelope converts to and from these.

use serde::Deserialize;

use super::ids::{Fingerprint, UserId};
use super::kind::PacketType;
use super::seq_tag::SeqTag;
use crate::codec::json::{JsonWriter, lenient};

/// A decoded packet body, before the type code becomes a [`PacketType`].
#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct WirePacket {
    #[serde(deserialize_with = "lenient::bool")]
    pub(super) bridge: bool,
    #[serde(rename = "type", deserialize_with = "lenient::i32")]
    pub(super) kind: i32,
    #[serde(rename = "dataContent", deserialize_with = "lenient::opt_string")]
    pub(super) data_content: Option<String>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub(super) from: Option<UserId>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub(super) to: Option<UserId>,
    #[serde(deserialize_with = "lenient::opt_string")]
    pub(super) fp: Option<Fingerprint>,
    #[serde(rename = "QoS", deserialize_with = "lenient::bool")]
    pub(super) qos: bool,
    #[serde(deserialize_with = "lenient::i32")]
    pub(super) typeu: i32,
    #[serde(deserialize_with = "lenient::i64")]
    pub(super) sm: i64,
    #[serde(rename = "hySeq", deserialize_with = "lenient::opt_i64")]
    pub(super) hy_seq: Option<i64>,
    #[serde(rename = "hyEpoch", deserialize_with = "lenient::opt_i64")]
    pub(super) hy_epoch: Option<i64>,
    #[serde(rename = "hyAt", deserialize_with = "lenient::opt_i64")]
    pub(super) hy_at: Option<i64>,
}

/// A packet's members by reference: what is encoded, whether it comes from a whole
/// [`Packet`](super::Packet) or from a message being measured before it is sent.
pub(super) struct WireFields<'a> {
    pub(super) bridge: bool,
    pub(super) kind: PacketType,
    pub(super) data_content: Option<&'a str>,
    pub(super) from: Option<&'a str>,
    pub(super) to: Option<&'a str>,
    pub(super) fp: Option<&'a str>,
    pub(super) qos: bool,
    pub(super) typeu: i32,
    pub(super) sm: i64,
    /// hongyan's history keys (§9.4), written after the reference's members when present.
    pub(super) seq: Option<&'a SeqTag>,
}

impl WireFields<'_> {
    /// Appends the JSON object to `out`: Gson's key order, `None` members left out.
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(112 + self.data_content.map_or(0, |d| d.len() + d.len() / 8));
        let mut w = JsonWriter::begin(out);
        w.bool("bridge", self.bridge);
        w.int("type", i64::from(self.kind.code()));
        w.str("dataContent", self.data_content);
        w.str("from", self.from);
        w.str("to", self.to);
        w.str("fp", self.fp);
        w.bool("QoS", self.qos);
        w.int("typeu", i64::from(self.typeu));
        w.int("sm", self.sm);
        if let Some(tag) = self.seq {
            w.int(SeqTag::SEQ_KEY, i64::try_from(tag.seq).unwrap_or(i64::MAX));
            w.int(
                SeqTag::EPOCH_KEY,
                i64::try_from(tag.epoch).unwrap_or(i64::MAX),
            );
            w.int(SeqTag::AT_KEY, tag.at);
        }
        w.end();
    }

    /// Appends the compact JSON object to `out`: `type`, `dataContent`, `from`, `to` and `fp`,
    /// with `bridge` and `QoS` only when true; `typeu` and `sm` are left out.
    pub(super) fn encode_compact(&self, out: &mut Vec<u8>) {
        let mut w = JsonWriter::begin(out);
        if self.bridge {
            w.bool("bridge", true);
        }
        w.int("type", i64::from(self.kind.code()));
        w.str("dataContent", self.data_content);
        w.str("from", self.from);
        w.str("to", self.to);
        w.str("fp", self.fp);
        if self.qos {
            w.bool("QoS", true);
        }
        w.end();
    }
}
