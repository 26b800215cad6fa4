//! Identifier newtypes: who a packet is from or to, and which message it is.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A user id as MobileIMSDK carries it: any string. `"0"` is the server, `"-1"` is "unset".
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// The id MobileIMSDK uses for the server itself.
    pub const SERVER: &'static str = "0";
    /// The id MobileIMSDK uses for "nobody" (failed logins, errors).
    pub const UNSET: &'static str = "-1";

    /// Wraps a user id.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The server's id, `"0"`.
    pub fn server() -> Self {
        Self(Self::SERVER.to_owned())
    }

    /// The "unset" id, `"-1"`.
    pub fn unset() -> Self {
        Self(Self::UNSET.to_owned())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `"0"`, the server.
    pub fn is_server(&self) -> bool {
        self.0 == Self::SERVER
    }

    /// True for ids a real user may log in with: not empty, not `"0"` (the server) and not
    /// `"-1"` (unset). MobileIMSDK accepts those too; hongyan refuses them because a user
    /// named `"0"` could pose as the server.
    pub fn is_valid_login(&self) -> bool {
        !self.0.is_empty() && self.0 != Self::SERVER && self.0 != Self::UNSET
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for UserId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for UserId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A message fingerprint (`fp`): the unique id that QoS acknowledgements refer to.
/// Java clients use lowercase UUIDv4 strings, but any string is accepted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Wraps a fingerprint.
    pub fn new(fp: impl Into<String>) -> Self {
        Self(fp.into())
    }

    /// Formats 128 random bits as a lowercase UUIDv4 string, as the Java SDK does.
    /// The caller supplies the randomness, so the protocol core never reads an entropy source.
    pub fn from_random(bits: u128) -> Self {
        let b = (bits & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
        let h = format!("{b:032x}");
        Self(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when the fingerprint is empty, which hongyan treats as missing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Fingerprint {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for Fingerprint {
    fn from(s: String) -> Self {
        Self(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_fingerprint_looks_like_a_java_uuid_v4() {
        let fp = Fingerprint::from_random(u128::MAX);
        assert_eq!(fp.as_str().len(), 36);
        assert_eq!(&fp.as_str()[14..15], "4");
        assert!(matches!(&fp.as_str()[19..20], "8" | "9" | "a" | "b"));
        assert_eq!(fp.as_str(), fp.as_str().to_lowercase());
    }

    #[test]
    fn reserved_ids_cannot_log_in() {
        assert!(!UserId::from("0").is_valid_login());
        assert!(!UserId::from("-1").is_valid_login());
        assert!(!UserId::from("").is_valid_login());
        assert!(UserId::from("alice").is_valid_login());
    }
}
