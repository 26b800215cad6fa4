//! The `Protocal` envelope (§1): one struct for every packet type, with the reference's
//! factories and the entry points to its JSON form.

use super::ids::{Fingerprint, UserId};
use super::kind::PacketType;
use super::payload::{ErrorResponse, Kickout, LoginInfo, LoginResponse};
use super::seq_tag::SeqTag;
use super::wire::{WireFields, WirePacket};
use crate::codec::json::{self, DecodeError};

/// One MobileIMSDK packet: the same JSON object on TCP, UDP and WebSocket.
///
/// Fields follow the reference's `Protocal` class. Keys that are missing on the wire decode to
/// the Java zero values (`typeu` 0, `sm` 0, strings absent), exactly as Gson does (§1.1), so a
/// re-encoded packet matches what the reference server would forward.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// `bridge`: true only on packets relayed through the cross-server bridge (§6.5).
    pub bridge: bool,
    /// `type`: what the packet is.
    pub kind: PacketType,
    /// `dataContent`: the payload; framework payloads are JSON documents inside this string.
    pub data_content: Option<String>,
    /// `from`: the sender's user id (`"0"` = server).
    pub from: Option<UserId>,
    /// `to`: the receiver's user id (`"0"` = server).
    pub to: Option<UserId>,
    /// `fp`: the fingerprint; present on every QoS packet.
    pub fp: Option<Fingerprint>,
    /// `QoS`: the receiver must acknowledge with a type-4 packet.
    pub qos: bool,
    /// `typeu`: application-defined sub-type, never interpreted by the framework.
    pub typeu: i32,
    /// `sm`: server send time in epoch milliseconds, or -1 when not stamped.
    pub sm: i64,
    /// hongyan's history position of a message (`hySeq`, `hyEpoch`, `hyAt`), only on packets
    /// the server sends to a session that opted in to conversation sync (§9.4); `None`
    /// everywhere else, and then nothing of it is written.
    pub seq: Option<SeqTag>,
}

impl Packet {
    /// A packet as the reference's factory builds one: `typeu` and `sm` are -1, no fingerprint,
    /// no QoS.
    pub fn new(kind: PacketType, data_content: Option<String>, from: &str, to: &str) -> Self {
        Self {
            bridge: false,
            kind,
            data_content,
            from: Some(UserId::from(from)),
            to: Some(UserId::from(to)),
            fp: None,
            qos: false,
            typeu: -1,
            sm: -1,
            seq: None,
        }
    }

    /// A hongyan extension packet (§9): `kind` with the JSON document `payload`, from `from`
    /// to `to`.
    pub fn extension(kind: PacketType, payload: String, from: &str, to: &str) -> Self {
        Self::new(kind, Some(payload), from, to)
    }

    /// Type 0: a login carrying `info`, from its user to the server.
    pub fn login(info: &LoginInfo) -> Self {
        let from = info
            .login_user_id
            .as_ref()
            .map_or(UserId::UNSET, UserId::as_str);
        Self::new(
            PacketType::Login,
            Some(info.to_json()),
            from,
            UserId::SERVER,
        )
    }

    /// Type 1: a keepalive from `from`.
    pub fn keep_alive(from: &str) -> Self {
        Self::new(
            PacketType::KeepAlive,
            Some("{}".to_owned()),
            from,
            UserId::SERVER,
        )
    }

    /// Type 2: application data. With `qos` the packet must carry a fingerprint.
    pub fn common_data(
        from: &str,
        to: &str,
        content: impl Into<String>,
        fp: Option<Fingerprint>,
        typeu: i32,
    ) -> Self {
        let mut packet = Self::new(PacketType::CommonData, Some(content.into()), from, to);
        packet.qos = fp.is_some();
        packet.fp = fp;
        packet.typeu = typeu;
        packet
    }

    /// Type 3: a logout from `from`; it has no payload.
    pub fn logout(from: &str) -> Self {
        Self::new(PacketType::Logout, None, from, UserId::SERVER)
    }

    /// Type 4: the acknowledgement of `fp`, sent by `from` to the original sender `to`.
    pub fn ack(from: &str, to: &str, fp: &Fingerprint, bridge: bool) -> Self {
        let mut packet = Self::new(PacketType::Ack, Some(fp.as_str().to_owned()), from, to);
        packet.bridge = bridge;
        packet
    }

    /// Type 50: the answer to a login. A refusal goes to `"-1"` with `firstLoginTime` -1.
    pub fn login_response(to: &str, response: LoginResponse) -> Self {
        Self::new(
            PacketType::LoginResponse,
            Some(response.to_json()),
            UserId::SERVER,
            to,
        )
    }

    /// Type 51: the answer to a keepalive.
    pub fn keep_alive_response(to: &str) -> Self {
        Self::new(
            PacketType::KeepAliveResponse,
            Some("{}".to_owned()),
            UserId::SERVER,
            to,
        )
    }

    /// Type 52: an error report, addressed to `"-1"` as the reference does.
    pub fn error(response: &ErrorResponse) -> Self {
        Self::new(
            PacketType::Error,
            Some(response.to_json()),
            UserId::SERVER,
            UserId::UNSET,
        )
    }

    /// Type 54: the server ends `to`'s session.
    pub fn kickout(to: &str, kickout: &Kickout) -> Self {
        Self::new(
            PacketType::Kickout,
            Some(kickout.to_json()),
            UserId::SERVER,
            to,
        )
    }

    /// Decodes one packet body (§1.3: lenient, any key order, unknown keys ignored).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let wire: WirePacket = json::decode_object(body)?;
        Ok(Self {
            bridge: wire.bridge,
            kind: PacketType::from_code(wire.kind),
            data_content: wire.data_content,
            from: wire.from,
            to: wire.to,
            fp: wire.fp,
            qos: wire.qos,
            typeu: wire.typeu,
            sm: wire.sm,
            seq: SeqTag::from_keys(wire.hy_seq, wire.hy_epoch, wire.hy_at),
        })
    }

    /// Appends the packet's JSON (§1.2: Gson's key order and escapes) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.fields().encode(out);
    }

    /// The packet's compact JSON, which the server sends where the full form would be too
    /// large (§4.5, §3.2): the members a client reads — `type`, `dataContent`, `from`, `to`,
    /// `fp`, and `bridge` and `QoS` when true — in the usual order and escapes, without
    /// `typeu` and `sm`. Clients read missing keys as zero values (§1.3), which for a
    /// framework packet (types 50–54) changes nothing they look at.
    pub fn to_compact_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.data_content.as_ref().map_or(0, String::len));
        self.fields().encode_compact(&mut out);
        out
    }

    fn fields(&self) -> WireFields<'_> {
        WireFields {
            bridge: self.bridge,
            kind: self.kind,
            data_content: self.data_content.as_deref(),
            from: self.from.as_ref().map(UserId::as_str),
            to: self.to.as_ref().map(UserId::as_str),
            fp: self.fp.as_ref().map(Fingerprint::as_str),
            qos: self.qos,
            typeu: self.typeu,
            sm: self.sm,
            seq: self.seq.as_ref(),
        }
    }

    /// The packet's JSON as the reference emits it.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(128 + self.data_content.as_ref().map_or(0, String::len));
        self.encode_into(&mut out);
        String::from_utf8(out).expect("the encoder writes only UTF-8")
    }

    /// The sender id, or `""` when absent.
    pub fn from_str(&self) -> &str {
        self.from.as_ref().map_or("", UserId::as_str)
    }

    /// The receiver id, or `""` when absent.
    pub fn to_str(&self) -> &str {
        self.to.as_ref().map_or("", UserId::as_str)
    }

    /// The fingerprint when the packet needs an acknowledgement, i.e. `QoS` is set and `fp` is
    /// present and not empty.
    pub fn qos_fingerprint(&self) -> Option<&Fingerprint> {
        if self.qos {
            self.fp.as_ref().filter(|fp| !fp.is_empty())
        } else {
            None
        }
    }
}
