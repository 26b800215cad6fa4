//! Protocol type codes (§2).

/// The `type` of a packet. Unknown codes are kept, so they can be logged and ignored as the
/// reference does, instead of failing the whole packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 0, client → server: login with a [`LoginInfo`](crate::LoginInfo) payload.
    Login,
    /// 1, client → server: keepalive, payload `{}`.
    KeepAlive,
    /// 2, both ways: application data (C2C, C2S, S2C).
    CommonData,
    /// 3, client → server: logout, no payload.
    Logout,
    /// 4, both ways: QoS acknowledgement; the payload is the acknowledged fingerprint.
    Ack,
    /// 5, client → server: echo request.
    Echo,
    /// 50, server → client: login response with a [`LoginResponse`](crate::LoginResponse).
    LoginResponse,
    /// 51, server → client: keepalive response, payload `{}`.
    KeepAliveResponse,
    /// 52, server → client: error with an [`ErrorResponse`](crate::ErrorResponse).
    Error,
    /// 53, server → client: echo response.
    EchoResponse,
    /// 54, server → client: kickout with a [`Kickout`](crate::Kickout).
    Kickout,
    /// 1000, client → server, hongyan (§9.4): "my conversations", a page at a time.
    ConversationsRequest,
    /// 1001, client → server, hongyan (§9.4): "messages of a conversation", a page at a time.
    HistoryRequest,
    /// 1002, client → server, hongyan (§9.4): "I have read a conversation up to a seq".
    ReadRequest,
    /// 1500, server → client, hongyan (§9.4): the answer to 1000.
    ConversationsResponse,
    /// 1501, server → client, hongyan (§9.4): the answer to 1001.
    HistoryResponse,
    /// 1502, server → client, hongyan (§9.4): the answer to 1002.
    ReadResponse,
    /// Any other code: logged and ignored by receivers.
    Other(i32),
}

impl PacketType {
    /// The wire code.
    pub fn code(self) -> i32 {
        match self {
            Self::Login => 0,
            Self::KeepAlive => 1,
            Self::CommonData => 2,
            Self::Logout => 3,
            Self::Ack => 4,
            Self::Echo => 5,
            Self::LoginResponse => 50,
            Self::KeepAliveResponse => 51,
            Self::Error => 52,
            Self::EchoResponse => 53,
            Self::Kickout => 54,
            Self::ConversationsRequest => 1000,
            Self::HistoryRequest => 1001,
            Self::ReadRequest => 1002,
            Self::ConversationsResponse => 1500,
            Self::HistoryResponse => 1501,
            Self::ReadResponse => 1502,
            Self::Other(code) => code,
        }
    }

    /// Whether this is one of hongyan's own types (codes 1000–1999, §9), which MobileIMSDK
    /// clients never send and never receive unasked.
    pub fn is_extension(self) -> bool {
        (1000..2000).contains(&self.code())
    }

    /// The type for a wire code.
    pub fn from_code(code: i32) -> Self {
        match code {
            0 => Self::Login,
            1 => Self::KeepAlive,
            2 => Self::CommonData,
            3 => Self::Logout,
            4 => Self::Ack,
            5 => Self::Echo,
            50 => Self::LoginResponse,
            51 => Self::KeepAliveResponse,
            52 => Self::Error,
            53 => Self::EchoResponse,
            54 => Self::Kickout,
            1000 => Self::ConversationsRequest,
            1001 => Self::HistoryRequest,
            1002 => Self::ReadRequest,
            1500 => Self::ConversationsResponse,
            1501 => Self::HistoryResponse,
            1502 => Self::ReadResponse,
            other => Self::Other(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in (-3..70).chain(995..1005).chain(1495..1505) {
            assert_eq!(PacketType::from_code(code).code(), code);
        }
    }
}
