//! The JSON hongyan sends to the application's backend and the JSON it expects back. This file
//! is the webhook contract; `docs/INTEGRATION.md` describes the same shapes for backend authors.
//! Field names are camelCase, like MobileIMSDK's own (`firstLoginTime`, `typeu`).

use hongyan_shared::{Packet, UserId};
use serde::{Deserialize, Serialize};

use crate::hooks::{LoginRequest, SessionInfo};

/// The session a request or event concerns.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Session {
    /// hongyan's id for the connection, e.g. `"s42"`.
    pub(crate) session_id: String,
    /// `tcp`, `udp`, `ws` or `http` (an HTTP session, or a message the API sent in a user's
    /// name).
    pub(crate) transport: &'static str,
    /// The client's address, `ip:port`.
    pub(crate) peer_addr: String,
}

impl From<SessionInfo> for Session {
    fn from(info: SessionInfo) -> Self {
        Self {
            session_id: info.id.to_string(),
            transport: info.transport.as_str(),
            peer_addr: info.peer.to_string(),
        }
    }
}

/// `POST {base}/verify`: may this login proceed?
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VerifyRequest<'a> {
    /// `loginUserId`.
    pub(crate) user_id: &'a str,
    /// `loginToken`, or null.
    pub(crate) token: Option<&'a str>,
    /// `extra`, or null.
    pub(crate) extra: Option<&'a str>,
    /// Where the login comes from.
    #[serde(flatten)]
    pub(crate) session: Session,
}

impl<'a> From<&LoginRequest<'a>> for VerifyRequest<'a> {
    fn from(login: &LoginRequest<'a>) -> Self {
        Self {
            user_id: login.user_id.as_str(),
            token: login.token,
            extra: login.extra,
            session: login.session.into(),
        }
    }
}

/// The answer to [`VerifyRequest`]: `{"code": 0}` accepts; any other code refuses the login
/// and is sent to the client (applications use codes ≥ 1025).
#[derive(Debug, Deserialize)]
pub(crate) struct VerifyResponse {
    /// 0 or the refusal code.
    pub(crate) code: i32,
}

/// A message as the backend sees it: `POST {base}/offline` bodies and message events.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Message {
    /// The sender (`"0"` for the server).
    pub(crate) from: String,
    /// The receiver (`"0"` for the server).
    pub(crate) to: String,
    /// The fingerprint, null for a message sent without one. The same message can arrive more
    /// than once (retransmissions); deduplicate by `from` and `fp`.
    pub(crate) fp: Option<String>,
    /// `dataContent`, empty when absent.
    pub(crate) content: String,
    /// `typeu`, -1 when unset.
    pub(crate) typeu: i32,
    /// Whether the sender asked for an acknowledgement.
    pub(crate) qos: bool,
}

impl From<&Packet> for Message {
    fn from(packet: &Packet) -> Self {
        let id = |u: &Option<UserId>| u.as_ref().map(|u| u.as_str().to_owned());
        Self {
            from: id(&packet.from).unwrap_or_default(),
            to: id(&packet.to).unwrap_or_default(),
            fp: packet.fp.as_ref().map(|fp| fp.as_str().to_owned()),
            content: packet.data_content.clone().unwrap_or_default(),
            typeu: packet.typeu,
            qos: packet.qos,
        }
    }
}

/// The answer to an offline hand-off: `{"stored": true}` if the backend keeps the message for
/// later (the sender then gets its acknowledgement), false to drop it.
#[derive(Debug, Deserialize)]
pub(crate) struct OfflineResponse {
    /// Whether the backend stored the message.
    pub(crate) stored: bool,
}

/// One notification in a `POST {base}/events` batch.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Envelope {
    /// Increasing per server process; with the batch's `instance`, identifies the event (a
    /// retried batch repeats it).
    pub(crate) id: u64,
    /// When it happened, epoch milliseconds.
    pub(crate) time: i64,
    /// What happened.
    #[serde(flatten)]
    pub(crate) event: Event,
}

/// What happened, tagged by `type`.
#[derive(Debug, Clone, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub(crate) enum Event {
    /// A user logged in.
    Login {
        user_id: String,
        extra: Option<String>,
        #[serde(flatten)]
        session: Session,
    },
    /// A user's online session ended; `kickCode` is 1 (another login), 2 (an administrator)
    /// or an application code, null for a normal close.
    Logout {
        user_id: String,
        kick_code: Option<i32>,
        #[serde(flatten)]
        session: Session,
    },
    /// A client sent the server a message (`to "0"`), once per fingerprint.
    C2s {
        #[serde(flatten)]
        message: Message,
        #[serde(flatten)]
        session: Session,
    },
    /// A client-to-client message was handed to its online receiver (again for a
    /// retransmission).
    C2cDelivered {
        #[serde(flatten)]
        message: Message,
    },
    /// A receiver acknowledged a QoS packet the server sent it (pushed, or a forwarded C2C).
    S2cDelivered { user_id: String, fp: String },
    /// A QoS packet the server sent (pushed, or a forwarded C2C with `from` ≠ `"0"`) was not
    /// acknowledged after the last retransmission.
    S2cLost {
        #[serde(flatten)]
        message: Message,
    },
    /// A stored message outlived `store_ttl_secs` before its receiver took it, and was
    /// removed: it will not be delivered.
    Expired {
        #[serde(flatten)]
        message: Message,
    },
}

/// The body of `POST {base}/events`.
#[derive(Debug, Serialize)]
pub(crate) struct EventBatch<'a> {
    /// Random per server process; tells event ids of different runs apart.
    pub(crate) instance: &'a str,
    /// In the order they happened.
    pub(crate) events: &'a [Envelope],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        Session {
            session_id: "s7".into(),
            transport: "tcp",
            peer_addr: "127.0.0.1:5000".into(),
        }
    }

    #[test]
    fn events_are_flat_camel_case_objects_tagged_by_type() {
        let logout = Envelope {
            id: 3,
            time: 1_700_000_000_000,
            event: Event::Logout {
                user_id: "alice".into(),
                kick_code: Some(2),
                session: session(),
            },
        };
        let json = serde_json::to_value(&logout).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": 3, "time": 1_700_000_000_000_i64, "type": "logout", "userId": "alice",
                "kickCode": 2, "sessionId": "s7", "transport": "tcp", "peerAddr": "127.0.0.1:5000"
            })
        );
    }

    #[test]
    fn message_events_carry_the_message_fields() {
        let packet = Packet::common_data("alice", "bob", "hi", Some("fp-1".into()), 5);
        let lost = Envelope {
            id: 1,
            time: 0,
            event: Event::S2cLost {
                message: (&packet).into(),
            },
        };
        let json = serde_json::to_value(&lost).unwrap();
        assert_eq!(json["type"], "s2cLost");
        assert_eq!(json["from"], "alice");
        assert_eq!(json["to"], "bob");
        assert_eq!(json["fp"], "fp-1");
        assert_eq!(json["content"], "hi");
        assert_eq!(json["typeu"], 5);
    }
}
