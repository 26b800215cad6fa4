//! The JSON documents carried inside `dataContent` by framework packets (§2.1), and the codes
//! they use (§4.6).

use serde::Deserialize;

use super::ids::UserId;
use crate::codec::json::{self, DecodeError};

/// Numeric codes shared by clients and server (§4.6).
pub mod codes {
    /// Success: login accepted, send call succeeded.
    pub const OK: i32 = 0;
    /// The only error code the reference server sends (type 52): the packet needs a login.
    pub const RESPONSE_FOR_UNLOGIN: i32 = 301;
    /// Kickout: the user logged in on another session.
    pub const KICKOUT_DUPLICATE_LOGIN: i32 = 1;
    /// Kickout: an administrator (or the application) ended the session.
    pub const KICKOUT_ADMIN: i32 = 2;
    /// hongyan's "too many, too fast" (§4.6, §9.1): as an error's `errorCode` (type 52), a data
    /// message over its session's rate, not acknowledged; as a login response's `code`, a
    /// login over its address's or the server's login rate, not verified. Outside every range
    /// MobileIMSDK uses (0–4, 201–205, 301), below the applications' login codes.
    pub const RATE_LIMITED: i32 = 1000;
    /// Login codes below this value are reserved for the framework; applications refuse logins
    /// with codes from here up.
    pub const FIRST_APPLICATION_LOGIN_CODE: i32 = 1025;
}

/// `PLoginInfo`, the payload of a login (type 0).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LoginInfo {
    /// `loginUserId`: who is logging in. A login without it is dropped.
    #[serde(rename = "loginUserId", deserialize_with = "json::lenient::opt_string")]
    pub login_user_id: Option<UserId>,
    /// `loginToken`: opaque credential, checked only by the application's verify hook.
    #[serde(rename = "loginToken", deserialize_with = "json::lenient::opt_string")]
    pub login_token: Option<String>,
    /// `extra`: opaque application data.
    #[serde(rename = "extra", deserialize_with = "json::lenient::opt_string")]
    pub extra: Option<String>,
    /// `firstLoginTime`: 0 on a first login, otherwise what the server answered to the first
    /// login of this client instance (§4.3).
    #[serde(rename = "firstLoginTime", deserialize_with = "json::lenient::i64")]
    pub first_login_time: i64,
}

impl LoginInfo {
    /// A first login (no saved `firstLoginTime`).
    pub fn new(user_id: &str, token: Option<&str>, extra: Option<&str>) -> Self {
        Self {
            login_user_id: Some(UserId::from(user_id)),
            login_token: token.map(str::to_owned),
            extra: extra.map(str::to_owned),
            first_login_time: 0,
        }
    }

    /// Decodes a login payload.
    pub fn decode(data_content: &str) -> Result<Self, DecodeError> {
        json::decode_object(data_content.as_bytes())
    }

    /// The payload's JSON, in Gson's key order.
    pub fn to_json(&self) -> String {
        json::object_string(|w| {
            w.str(
                "loginUserId",
                self.login_user_id.as_ref().map(UserId::as_str),
            );
            w.str("loginToken", self.login_token.as_deref());
            w.str("extra", self.extra.as_deref());
            w.int("firstLoginTime", self.first_login_time);
        })
    }
}

/// `PLoginInfoResponse`, the payload of a login response (type 50).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct LoginResponse {
    /// 0 = accepted; anything else is the application's refusal code (≥ 1025 by convention).
    #[serde(deserialize_with = "json::lenient::i32")]
    pub code: i32,
    /// On success the time the server associates with this client instance; -1 on failure.
    #[serde(rename = "firstLoginTime", deserialize_with = "json::lenient::i64")]
    pub first_login_time: i64,
}

impl LoginResponse {
    /// A refusal with `code`; `firstLoginTime` is -1 as the reference sends it.
    pub fn refused(code: i32) -> Self {
        Self {
            code,
            first_login_time: -1,
        }
    }

    /// Decodes a login-response payload.
    pub fn decode(data_content: &str) -> Result<Self, DecodeError> {
        json::decode_object(data_content.as_bytes())
    }

    /// The payload's JSON.
    pub fn to_json(&self) -> String {
        json::object_string(|w| {
            w.int("code", i64::from(self.code));
            w.int("firstLoginTime", self.first_login_time);
        })
    }
}

/// `PKeepAlive` / `PKeepAliveResponse`: always `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeepAlive;

/// `PErrorResponse`, the payload of an error (type 52).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// The error code; the server only ever sends 301.
    #[serde(rename = "errorCode", deserialize_with = "json::lenient::i32")]
    pub error_code: i32,
    /// For 301: the rejected packet as the server re-encoded it.
    #[serde(rename = "errorMsg", deserialize_with = "json::lenient::opt_string")]
    pub error_msg: Option<String>,
}

impl ErrorResponse {
    /// Decodes an error payload.
    pub fn decode(data_content: &str) -> Result<Self, DecodeError> {
        json::decode_object(data_content.as_bytes())
    }

    /// The payload's JSON.
    pub fn to_json(&self) -> String {
        json::object_string(|w| {
            w.int("errorCode", i64::from(self.error_code));
            w.str("errorMsg", self.error_msg.as_deref());
        })
    }
}

/// `PKickoutInfo`, the payload of a kickout (type 54).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Kickout {
    /// 1 = duplicate login, 2 = admin; applications use codes above 100.
    #[serde(deserialize_with = "json::lenient::i32")]
    pub code: i32,
    /// Free text; omitted when absent.
    #[serde(deserialize_with = "json::lenient::opt_string")]
    pub reason: Option<String>,
}

impl Kickout {
    /// Decodes a kickout payload.
    pub fn decode(data_content: &str) -> Result<Self, DecodeError> {
        json::decode_object(data_content.as_bytes())
    }

    /// The payload's JSON.
    pub fn to_json(&self) -> String {
        json::object_string(|w| {
            w.int("code", i64::from(self.code));
            w.str("reason", self.reason.as_deref());
        })
    }
}
