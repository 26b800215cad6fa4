//! The connection status shown in the header: what the session is doing right now.

use hongyan_shared::codes;

/// Where the client stands with the server, as the user sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ConnectionStatus {
    /// No session: the login screen is showing.
    #[default]
    LoggedOut,
    /// The first login is in flight (socket opening or login sent).
    Connecting,
    /// Logged in; messages flow.
    Online,
    /// The link was lost after a successful login; the session logs in again by itself.
    Reconnecting,
    /// The server ended the session (type 54); the client will not log in again by itself.
    KickedOut {
        /// The kickout code: 1 = logged in elsewhere, 2 = ended by an administrator.
        code: i32,
        /// The server's free-text reason, when it sent one.
        reason: Option<String>,
    },
    /// The server refused the login (type 50 with a non-zero code).
    LoginRefused {
        /// The refusal code the server sent.
        code: i32,
    },
}

impl ConnectionStatus {
    /// A short machine-readable name, used as the `data-state` attribute the stylesheet and the
    /// browser tests select on.
    pub fn key(&self) -> &'static str {
        match self {
            Self::LoggedOut => "logged-out",
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Reconnecting => "reconnecting",
            Self::KickedOut { .. } => "kicked-out",
            Self::LoginRefused { .. } => "refused",
        }
    }

    /// The sentence shown to the user.
    pub fn describe(&self) -> String {
        match self {
            Self::LoggedOut => "Logged out".to_owned(),
            Self::Connecting => "Connecting…".to_owned(),
            Self::Online => "Online".to_owned(),
            Self::Reconnecting => "Connection lost, reconnecting…".to_owned(),
            Self::KickedOut { code, reason } => {
                let why = if *code == codes::KICKOUT_DUPLICATE_LOGIN {
                    "You logged in elsewhere".to_owned()
                } else if *code == codes::KICKOUT_ADMIN {
                    "The server ended your session".to_owned()
                } else {
                    format!("Kicked out (code {code})")
                };
                match reason {
                    Some(reason) if !reason.is_empty() => format!("{why}: {reason}"),
                    _ => why,
                }
            }
            Self::LoginRefused { code } => format!("Login refused (code {code})"),
        }
    }

    /// True when the session is over and only a new login can bring it back.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::LoggedOut | Self::KickedOut { .. } | Self::LoginRefused { .. }
        )
    }

    /// True when the chat screen shows (everything but the login screen's two states).
    pub fn shows_chat(&self) -> bool {
        !matches!(self, Self::LoggedOut | Self::LoginRefused { .. })
    }

    /// True while messages can be sent and expected to arrive soon. Messages composed while
    /// reconnecting are still accepted: the session retries them and reports them lost if the
    /// link does not come back in time.
    pub fn can_compose(&self) -> bool {
        matches!(self, Self::Online | Self::Reconnecting | Self::Connecting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_login_kickout_says_you_logged_in_elsewhere() {
        let status = ConnectionStatus::KickedOut {
            code: codes::KICKOUT_DUPLICATE_LOGIN,
            reason: None,
        };
        assert_eq!(status.describe(), "You logged in elsewhere");
        assert_eq!(status.key(), "kicked-out");
        assert!(status.is_final());
    }

    #[test]
    fn kickout_reason_is_appended_when_present() {
        let status = ConnectionStatus::KickedOut {
            code: 7,
            reason: Some("maintenance".to_owned()),
        };
        assert_eq!(status.describe(), "Kicked out (code 7): maintenance");
    }

    #[test]
    fn refused_login_shows_the_code() {
        let status = ConnectionStatus::LoginRefused { code: 1025 };
        assert_eq!(status.describe(), "Login refused (code 1025)");
        assert!(!status.can_compose());
    }

    #[test]
    fn reconnecting_still_accepts_messages() {
        assert!(ConnectionStatus::Reconnecting.can_compose());
        assert!(!ConnectionStatus::Reconnecting.is_final());
    }
}
