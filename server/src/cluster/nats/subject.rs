//! NATS subjects: one per user, one for the whole cluster.
//!
//! A user id may hold any character, `.` (a subject's token separator), `*` and `>` (its
//! wildcards) and white space included, so it is never written into a subject as it is: its
//! UTF-8 bytes are written in unpadded URL-safe base64 (`A–Z a–z 0–9 - _`), which needs no
//! escaping and cannot collide (the encoding is one-to-one).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hongyan_shared::UserId;

/// Every subject starts with it.
const PREFIX: &str = "hongyan";

/// Where requests for `user` go: `hongyan.user.<base64url(user id)>`.
pub(super) fn user(user: &UserId) -> String {
    format!(
        "{PREFIX}.user.{}",
        URL_SAFE_NO_PAD.encode(user.as_str().as_bytes())
    )
}

/// Where a request to every node goes (who is online): `hongyan.nodes.users`.
pub(super) const NODES_USERS: &str = "hongyan.nodes.users";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_with_subject_syntax_become_one_plain_token() {
        for id in ["a.b", "*", ">", "a b", "tab\there", "用户", "a.>"] {
            let subject = user(&UserId::from(id));
            let token = subject.strip_prefix("hongyan.user.").unwrap();
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id:?} gave {subject:?}"
            );
            assert!(!token.is_empty());
        }
    }

    #[test]
    fn distinct_user_ids_get_distinct_subjects() {
        assert_ne!(user(&"a.b".into()), user(&"a_b".into()));
        assert_ne!(user(&"ab".into()), user(&"a b".into()));
    }
}
