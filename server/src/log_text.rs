//! Client-chosen text in log lines. A user id or fingerprint is whatever a client sent: a
//! newline in it would forge a whole log line, an ESC would drive the operator's terminal,
//! and a long one would fill the log. [`Untrusted`] writes such text quoted, with every
//! control character escaped, and cut after [`MAX_CHARS`] characters.

use std::fmt;

/// Characters of client text written to a log line; the rest is replaced by its length.
pub(crate) const MAX_CHARS: usize = 64;

/// Client-chosen text, safe to log: use as `user = %Untrusted(user.as_str())`.
#[derive(Clone, Copy)]
pub(crate) struct Untrusted<'a>(pub(crate) &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        f.write_char('"')?;
        let mut chars = self.0.char_indices();
        for (_, c) in chars.by_ref().take(MAX_CHARS) {
            // As `{:?}` escapes a `str`: quotes, backslashes, `\n`, `\0`, `\u{1b}`, and every
            // other non-printable character.
            for escaped in c.escape_debug() {
                f.write_char(escaped)?;
            }
        }
        f.write_char('"')?;
        if let Some((cut, _)) = chars.next() {
            write!(f, "…(+{} bytes)", self.0.len() - cut)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_break_the_line() {
        let forged = "mallory\n2026-01-01T00:00:00Z  INFO login user=admin\u{1b}[2J\0";
        let logged = Untrusted(forged).to_string();
        assert!(!logged.chars().any(char::is_control), "{logged}");
        assert_eq!(
            logged,
            r#""mallory\n2026-01-01T00:00:00Z  INFO login user=admin\u{1b}[2J\0""#
        );
    }

    #[test]
    fn long_text_is_cut_and_its_length_told() {
        let long = "é".repeat(1000);
        let logged = Untrusted(&long).to_string();
        assert!(logged.starts_with(&format!("\"{}\"", "é".repeat(MAX_CHARS))));
        assert!(logged.ends_with(&format!("…(+{} bytes)", 2 * (1000 - MAX_CHARS))));
        assert_eq!(Untrusted("alice").to_string(), "\"alice\"");
    }
}
