//! The message an application hands over to be sent (type 2): the one shape the native client,
//! the browser client and the server's send API all take, before the sender adds its own id
//! (and, when the application chose none, a fingerprint).

use super::envelope::Packet;
use super::ids::{Fingerprint, UserId};
use super::kind::PacketType;
use super::wire::WireFields;

/// A fingerprint as long as the ones senders generate (a UUIDv4, 36 characters), to measure a
/// message that has none yet.
const GENERATED_FINGERPRINT: &str = "00000000-0000-4000-8000-000000000000";

/// An application message to send: MobileIMSDK's `sendCommonData(dataContent, toUserId, QoS,
/// fingerPrint, typeu)` as one value.
///
/// Start from [`Outgoing::new`] (QoS on, `typeu` -1, a fresh fingerprint) and change what
/// differs:
///
/// ```
/// use hongyan_shared::{Fingerprint, Outgoing};
///
/// let hello = Outgoing::new("bob", "hello");
/// assert!(hello.qos && hello.typeu == -1 && hello.fp.is_none());
///
/// let order = Outgoing::new("0", r#"{"order":42}"#)
///     .with_typeu(7)
///     .with_fingerprint(Fingerprint::from("order-42"));
/// assert_eq!(order.fp.as_ref().map(Fingerprint::as_str), Some("order-42"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The receiver's user id; `"0"` is the server (C2S).
    pub to: UserId,
    /// The application content (`dataContent`).
    pub content: String,
    /// The application sub-type (`typeu`), never read by the framework; -1 when unset.
    pub typeu: i32,
    /// Whether the receiver acknowledges the message and the sender retransmits it until then,
    /// reporting it delivered or lost. On by default, as in the Java SDK.
    pub qos: bool,
    /// A fingerprint of the application's choosing; `None` lets the sender make a fresh
    /// UUIDv4. Choose one to send a message again under its first fingerprint (a retry after
    /// a loss report, a resend after a restart), so a receiver that already has it drops the
    /// copy, or to key the message by the application's own id.
    pub fp: Option<Fingerprint>,
}

/// Why a message cannot be sent: its packet would exceed the sender's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet of {len} bytes exceeds the {max}-byte limit")]
pub struct PacketTooLarge {
    /// The length of the packet's JSON.
    pub len: usize,
    /// The limit it was checked against.
    pub max: usize,
}

impl Outgoing {
    /// A QoS message with `typeu` -1 and a fingerprint left to the sender, as the Java SDK's
    /// `sendCommonData(dataContent, toUserId)` sends.
    pub fn new(to: impl Into<UserId>, content: impl Into<String>) -> Self {
        Self {
            to: to.into(),
            content: content.into(),
            typeu: -1,
            qos: true,
            fp: None,
        }
    }

    /// With the application sub-type `typeu`.
    pub fn with_typeu(mut self, typeu: i32) -> Self {
        self.typeu = typeu;
        self
    }

    /// With QoS on or off. Without QoS nothing is retransmitted or reported.
    pub fn with_qos(mut self, qos: bool) -> Self {
        self.qos = qos;
        self
    }

    /// Under the fingerprint `fp` instead of a fresh one.
    pub fn with_fingerprint(mut self, fp: Fingerprint) -> Self {
        self.fp = Some(fp);
        self
    }

    /// Whether the message fits: the length of the packet JSON it becomes when `from` sends
    /// it, or [`PacketTooLarge`] when that is over `max_len` bytes.
    ///
    /// This is the check [`ClientSession::send`](crate::client::ClientSession::send) makes
    /// against [`SessionConfig::max_packet_len`](crate::client::SessionConfig::max_packet_len);
    /// a UI calls it to tell the user before sending. A message without a fingerprint is
    /// measured with one of the generated length, which the client session adds to every
    /// message.
    pub fn check_size(&self, from: &UserId, max_len: usize) -> Result<usize, PacketTooLarge> {
        let fp = self
            .fp
            .as_ref()
            .map_or(GENERATED_FINGERPRINT, Fingerprint::as_str);
        let mut json = Vec::new();
        WireFields {
            bridge: false,
            kind: PacketType::CommonData,
            data_content: Some(&self.content),
            from: Some(from.as_str()),
            to: Some(self.to.as_str()),
            fp: Some(fp),
            qos: self.qos,
            typeu: self.typeu,
            sm: -1,
            seq: None,
        }
        .encode(&mut json);
        let len = json.len();
        if len > max_len {
            return Err(PacketTooLarge { len, max: max_len });
        }
        Ok(len)
    }

    /// The packet `from` sends for this message (type 2, `sm` unstamped), carrying the
    /// fingerprint only if the message has one.
    pub fn into_packet(self, from: &UserId) -> Packet {
        Packet {
            bridge: false,
            kind: PacketType::CommonData,
            data_content: Some(self.content),
            from: Some(from.clone()),
            to: Some(self.to),
            fp: self.fp,
            qos: self.qos,
            typeu: self.typeu,
            sm: -1,
            seq: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserId {
        UserId::from("alice")
    }

    #[test]
    fn the_measured_size_is_the_size_of_the_packet_sent() {
        let messages = [
            Outgoing::new("bob", "plain").with_fingerprint(Fingerprint::from_random(1)),
            Outgoing::new("0", "<&'=> 你好 \u{2028}\n")
                .with_typeu(12_345)
                .with_qos(false)
                .with_fingerprint(Fingerprint::from("app-id-7")),
        ];
        for message in messages {
            let measured = message.check_size(&alice(), usize::MAX).unwrap();
            assert_eq!(measured, message.into_packet(&alice()).to_json().len());
        }
    }

    #[test]
    fn a_message_without_fingerprint_is_measured_with_a_generated_one() {
        let message = Outgoing::new("bob", "hi");
        let with_fp = message
            .clone()
            .with_fingerprint(Fingerprint::from_random(u128::MAX));
        assert_eq!(
            message.check_size(&alice(), usize::MAX),
            with_fp.check_size(&alice(), usize::MAX)
        );
    }

    #[test]
    fn a_message_over_the_limit_is_refused_with_its_size() {
        let message = Outgoing::new("bob", "x".repeat(100));
        let len = message.check_size(&alice(), usize::MAX).unwrap();
        assert_eq!(message.check_size(&alice(), len), Ok(len));
        assert_eq!(
            message.check_size(&alice(), len - 1),
            Err(PacketTooLarge { len, max: len - 1 })
        );
    }

    #[test]
    fn the_packet_is_what_the_java_sdk_sends() {
        // wire-samples.md, C2C from tcp6841A at 1032 ms.
        let packet = Outgoing::new("tcp6841B", "hello B, from A #tcp6841")
            .with_typeu(7)
            .with_fingerprint(Fingerprint::from("ed00f8e8-f56f-4dbd-88ff-31c5a7a52b7b"))
            .into_packet(&UserId::from("tcp6841A"));
        assert_eq!(
            packet.to_json(),
            r#"{"bridge":false,"type":2,"dataContent":"hello B, from A #tcp6841","from":"tcp6841A","to":"tcp6841B","fp":"ed00f8e8-f56f-4dbd-88ff-31c5a7a52b7b","QoS":true,"typeu":7,"sm":-1}"#
        );
    }
}
