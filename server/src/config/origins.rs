//! [`AllowedOrigins`]: the `Origin`s a WebSocket upgrade may come from (`ws_allowed_origins`).

use std::fmt;
use std::str::FromStr;

/// The `Origin`s a WebSocket upgrade may come from, written as a comma-separated list of
/// `self` (a page served by this server: the `Origin`'s host and port are the request's
/// `Host`) and origins such as `https://chat.example.com` (scheme, host and port as a browser
/// sends them; a default port may be written or left out).
///
/// Only browsers send an `Origin`, and they always do on an upgrade, so an upgrade without one
/// (a native, mini-program or uni-app client) is accepted: the check keeps other web pages
/// from opening sessions with a visitor's browser, which is what `Origin` can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<AllowedOrigin>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum AllowedOrigin {
    /// Pages served by this server.
    Same,
    /// One origin, normalised (lower case, no default port).
    Exact(String),
}

impl AllowedOrigins {
    /// Whether an upgrade with this `Origin` header, sent to this `Host`, is allowed.
    pub fn allows(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        let Some(origin) = origin else {
            return true;
        };
        let Some(origin) = normalise(origin) else {
            return false;
        };
        self.0.iter().any(|allowed| match allowed {
            AllowedOrigin::Exact(exact) => *exact == origin,
            AllowedOrigin::Same => host.is_some_and(|host| same_host(&origin, host)),
        })
    }
}

/// Whether `origin` (normalised) names the host and port of the `Host` header `host`.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let host = host.trim().to_ascii_lowercase();
    without_default_port(scheme, &host) == authority
}

/// `origin` as a browser serialises it: lower case, without the scheme's default port;
/// `None` if it is not `scheme://host[:port]` (the opaque `null` is kept as it is).
fn normalise(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    if origin == "null" {
        return Some(origin);
    }
    let (scheme, authority) = origin.split_once("://")?;
    let valid = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' ']);
    valid.then(|| format!("{scheme}://{}", without_default_port(scheme, authority)))
}

fn without_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = match scheme {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => return authority,
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// Why an allowed-origins list was refused.
#[derive(Debug, thiserror::Error)]
pub enum OriginsError {
    /// The list has no entry.
    #[error("the list of allowed origins is empty")]
    Empty,
    /// An entry is neither `self` nor an origin.
    #[error("{0:?} is neither `self` nor an origin like https://chat.example.com")]
    NotAnOrigin(String),
}

impl FromStr for AllowedOrigins {
    type Err = OriginsError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entries = text
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| match entry {
                "self" => Ok(AllowedOrigin::Same),
                origin => normalise(origin)
                    .map(AllowedOrigin::Exact)
                    .ok_or_else(|| OriginsError::NotAnOrigin(origin.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if entries.is_empty() {
            return Err(OriginsError::Empty);
        }
        Ok(Self(entries))
    }
}

impl fmt::Display for AllowedOrigins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, entry) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match entry {
                AllowedOrigin::Same => f.write_str("self")?,
                AllowedOrigin::Exact(origin) => f.write_str(origin)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(text: &str) -> AllowedOrigins {
        text.parse().unwrap()
    }

    #[test]
    fn self_allows_a_page_of_this_server_and_nothing_else() {
        let allowed = origins("self");
        assert!(allowed.allows(
            Some("http://chat.example.com:3000"),
            Some("chat.example.com:3000")
        ));
        assert!(allowed.allows(Some("https://Chat.Example.com"), Some("chat.example.com")));
        assert!(allowed.allows(Some("http://chat.example.com"), Some("chat.example.com:80")));
        assert!(!allowed.allows(Some("http://evil.example"), Some("chat.example.com:3000")));
        assert!(!allowed.allows(
            Some("http://chat.example.com:3001"),
            Some("chat.example.com:3000")
        ));
        assert!(!allowed.allows(Some("null"), Some("chat.example.com")));
        assert!(!allowed.allows(Some("http://chat.example.com"), None));
    }

    #[test]
    fn listed_origins_match_as_browsers_write_them() {
        let allowed = origins(" https://chat.example.com:443 , http://127.0.0.1:8080,null");
        assert_eq!(
            allowed.to_string(),
            "https://chat.example.com,http://127.0.0.1:8080,null"
        );
        assert!(allowed.allows(Some("https://chat.example.com"), Some("other")));
        assert!(allowed.allows(Some("http://127.0.0.1:8080"), None));
        assert!(allowed.allows(Some("null"), None));
        assert!(
            !allowed.allows(Some("http://chat.example.com"), None),
            "another scheme"
        );
        assert!(!allowed.allows(Some("garbage"), None));
    }

    #[test]
    fn an_upgrade_without_an_origin_is_no_browser_and_is_allowed() {
        assert!(origins("https://chat.example.com").allows(None, Some("x")));
    }

    #[test]
    fn lists_that_name_no_origin_are_refused() {
        for (text, reason) in [
            ("", "empty"),
            (" , ", "empty"),
            ("chat.example.com", "neither"),
            ("https://chat.example.com/path", "neither"),
        ] {
            let error = text.parse::<AllowedOrigins>().unwrap_err().to_string();
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }
}
