//! What an HTTP session's user receives, as Server-Sent Events: a message (the default event
//! type, `message`) carries its fingerprint as the event id and the message as JSON, in the
//! webhooks' message shape; a `kickout` carries its code and reason; a `logout` says why the
//! session ended otherwise. The stream ends after either of the last two.

use axum::response::sse;
use hongyan_shared::{Fingerprint, Kickout, Packet};
use serde::Serialize;

use crate::webhook::contract::Message;

/// Why an HTTP session ended other than by a kickout: the `reason` of its `logout` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum LogoutReason {
    /// Its logout was requested through the API.
    Logout,
    /// The server is shutting down.
    Shutdown,
    /// The server closed it: idle expiry (no stream and no request for
    /// `http_session_idle_secs`), or a stream that took nothing for too long.
    Closed,
}

#[derive(Debug, Serialize)]
struct LogoutData {
    reason: LogoutReason,
}

#[derive(Debug, Serialize)]
struct KickoutData {
    code: i32,
    reason: Option<String>,
}

/// The three kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Message,
    Kickout,
    Logout,
}

/// One event, ready to stream as often as needed (a stream that drops before it is
/// acknowledged has it sent again to the next).
#[derive(Debug, Clone)]
pub(crate) struct Event {
    kind: Kind,
    /// The message's fingerprint: the event id, and what acknowledges it.
    fp: Option<Fingerprint>,
    /// Whether the user must acknowledge it (a QoS message).
    qos: bool,
    /// The JSON data.
    data: String,
}

impl Event {
    /// A type-2 packet the user receives (forwarded, pushed or replayed).
    pub(crate) fn message(packet: &Packet) -> Self {
        Self {
            kind: Kind::Message,
            fp: packet.fp.clone(),
            qos: packet.qos_fingerprint().is_some(),
            data: json(&Message::from(packet)),
        }
    }

    /// A kickout (type 54): another login replaced the session, or an administrator or the
    /// application kicked it.
    pub(crate) fn kickout(packet: &Packet) -> Self {
        let kickout = packet
            .data_content
            .as_deref()
            .and_then(|data| Kickout::decode(data).ok())
            .unwrap_or_default();
        Self {
            kind: Kind::Kickout,
            fp: None,
            qos: false,
            data: json(&KickoutData {
                code: kickout.code,
                reason: kickout.reason,
            }),
        }
    }

    /// The session ended for `reason`.
    pub(crate) fn logout(reason: LogoutReason) -> Self {
        Self {
            kind: Kind::Logout,
            fp: None,
            qos: false,
            data: json(&LogoutData { reason }),
        }
    }

    /// The fingerprint of a QoS message, which the user acknowledges.
    pub(crate) fn awaits_ack(&self) -> Option<&Fingerprint> {
        self.fp.as_ref().filter(|_| self.qos)
    }

    /// Whether `id` is this event's id (a `Last-Event-ID`).
    pub(crate) fn has_id(&self, id: &str) -> bool {
        self.fp.as_ref().is_some_and(|fp| fp.as_str() == id)
    }

    /// What it weighs in a session's buffers.
    pub(crate) fn len(&self) -> usize {
        self.data.len() + self.fp.as_ref().map_or(0, |fp| fp.as_str().len())
    }

    /// The SSE event. A fingerprint that cannot be an SSE id (it holds a line break or a
    /// NUL, which a client may put in one) is left out of the id; the data still carries it.
    pub(crate) fn to_sse(&self) -> sse::Event {
        let mut event = sse::Event::default();
        match self.kind {
            Kind::Message => {}
            Kind::Kickout => event = event.event("kickout"),
            Kind::Logout => event = event.event("logout"),
        }
        if let Some(fp) = self
            .fp
            .as_ref()
            .filter(|fp| !fp.as_str().contains(['\r', '\n', '\0']))
        {
            event = event.id(fp.as_str());
        }
        event.data(&self.data)
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("plain structs of strings and numbers serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streamed(event: &Event) -> String {
        use axum::response::IntoResponse;
        let stream =
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(event.to_sse())]);
        let body = axum::response::Sse::new(stream).into_response().into_body();
        let bytes = futures_util::FutureExt::now_or_never(axum::body::to_bytes(body, 1 << 16))
            .expect("an in-memory body is ready")
            .expect("the body reads");
        String::from_utf8(bytes.to_vec()).expect("utf-8")
    }

    #[test]
    fn a_message_streams_with_its_fingerprint_as_id_and_the_webhook_message_shape() {
        let mut packet = Packet::common_data(
            "bob",
            "alice",
            "hi \"alice\"\nbye",
            Some(Fingerprint::from("fp-1")),
            7,
        );
        packet.qos = true;
        let event = Event::message(&packet);
        assert_eq!(event.awaits_ack().map(Fingerprint::as_str), Some("fp-1"));
        assert_eq!(
            streamed(&event),
            "id: fp-1\ndata: {\"from\":\"bob\",\"to\":\"alice\",\"fp\":\"fp-1\",\
             \"content\":\"hi \\\"alice\\\"\\nbye\",\"typeu\":7,\"qos\":true}\n\n"
        );
    }

    #[test]
    fn a_fingerprint_with_a_line_break_is_no_event_id_and_streams_safely() {
        let packet = Packet::common_data(
            "bob",
            "alice",
            "x",
            Some(Fingerprint::from("a\nid: forged")),
            -1,
        );
        let text = streamed(&Event::message(&packet));
        assert!(text.starts_with("data: "), "{text}");
        assert_eq!(text.lines().filter(|l| l.starts_with("id:")).count(), 0);
    }

    #[test]
    fn kickouts_and_logouts_are_named_events() {
        let kick = Packet::kickout(
            "alice",
            &Kickout {
                code: 2,
                reason: Some("bye".into()),
            },
        );
        assert_eq!(
            streamed(&Event::kickout(&kick)),
            "event: kickout\ndata: {\"code\":2,\"reason\":\"bye\"}\n\n"
        );
        assert_eq!(
            streamed(&Event::logout(LogoutReason::Logout)),
            "event: logout\ndata: {\"reason\":\"logout\"}\n\n"
        );
        assert!(Event::logout(LogoutReason::Closed).awaits_ack().is_none());
    }
}
