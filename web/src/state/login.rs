//! The login form: its fields, their defaults and their validation.

use hongyan_shared::{LoginInfo, UserId};

/// The WebSocket path of a MobileIMSDK server (docs/PROTOCOL.md §3.3).
pub const WEBSOCKET_PATH: &str = "/websocket";

/// The server URL a page loaded from `protocol//host` uses by default: the same origin at
/// `/websocket`, `wss` when the page came over HTTPS. Under `trunk serve` the dev server
/// proxies that path to the real server.
pub fn default_server_url(protocol: &str, host: &str) -> String {
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}{WEBSOCKET_PATH}")
}

/// The login form as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginForm {
    /// The user id.
    pub user_id: String,
    /// The token, checked by the server application; may be empty.
    pub token: String,
    /// Optional extra data for the server application.
    pub extra: String,
    /// The WebSocket URL of the server.
    pub server: String,
}

/// A validated login form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginRequest {
    /// The login payload (first login: `firstLoginTime` 0).
    pub info: LoginInfo,
    /// The WebSocket URL.
    pub server: String,
}

impl LoginRequest {
    /// The user logging in.
    pub fn user_id(&self) -> UserId {
        self.info
            .login_user_id
            .clone()
            .expect("LoginForm::validate always sets the user id")
    }
}

/// Why the login form cannot be submitted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginFormError {
    /// The user id is empty, `"0"` (the server) or `"-1"` (unset).
    #[error("enter a user id (not 0 or -1)")]
    BadUserId,
    /// The server URL is not a `ws://` or `wss://` URL.
    #[error("the server must be a ws:// or wss:// URL")]
    BadServer,
}

impl LoginForm {
    /// A form with the server field preset to `server`.
    pub fn with_server(server: String) -> Self {
        Self {
            server,
            ..Self::default()
        }
    }

    /// Checks the form. Surrounding white space is trimmed from the id and the URL; the token
    /// and extra are sent as typed, and an empty extra is left out of the login.
    pub fn validate(&self) -> Result<LoginRequest, LoginFormError> {
        let user_id = UserId::from(self.user_id.trim());
        if !user_id.is_valid_login() {
            return Err(LoginFormError::BadUserId);
        }
        let server = self.server.trim();
        let has_host = server
            .strip_prefix("ws://")
            .or_else(|| server.strip_prefix("wss://"))
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !has_host {
            return Err(LoginFormError::BadServer);
        }
        let extra = (!self.extra.is_empty()).then_some(self.extra.as_str());
        Ok(LoginRequest {
            info: LoginInfo::new(user_id.as_str(), Some(&self.token), extra),
            server: server.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(user_id: &str, server: &str) -> LoginForm {
        LoginForm {
            user_id: user_id.to_owned(),
            token: "t".to_owned(),
            extra: String::new(),
            server: server.to_owned(),
        }
    }

    #[test]
    fn default_server_is_the_pages_origin_at_websocket() {
        assert_eq!(
            default_server_url("http:", "127.0.0.1:3000"),
            "ws://127.0.0.1:3000/websocket"
        );
        assert_eq!(
            default_server_url("https:", "im.example"),
            "wss://im.example/websocket"
        );
    }

    #[test]
    fn valid_form_becomes_a_first_login() {
        let request = form(" alice ", "ws://h:3000/websocket").validate().unwrap();
        assert_eq!(request.user_id(), UserId::from("alice"));
        assert_eq!(request.info.login_token.as_deref(), Some("t"));
        assert_eq!(request.info.extra, None);
        assert_eq!(request.info.first_login_time, 0);
    }

    #[test]
    fn reserved_or_empty_ids_are_refused() {
        for id in ["", "  ", "0", "-1"] {
            assert_eq!(
                form(id, "ws://h/websocket").validate(),
                Err(LoginFormError::BadUserId),
                "{id:?}"
            );
        }
    }

    #[test]
    fn server_must_be_a_websocket_url() {
        for url in ["http://h/websocket", "h:3000", "ws://", "ws:///x"] {
            assert_eq!(
                form("alice", url).validate(),
                Err(LoginFormError::BadServer),
                "{url:?}"
            );
        }
    }

    #[test]
    fn extra_is_sent_when_given() {
        let mut f = form("alice", "wss://h/websocket");
        f.extra = "设备=web".to_owned();
        assert_eq!(
            f.validate().unwrap().info.extra.as_deref(),
            Some("设备=web")
        );
    }
}
