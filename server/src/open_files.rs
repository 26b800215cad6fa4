//! How many connections the process's open-file limit allows, and the connection limit the
//! server runs with.
//!
//! Every TCP, WebSocket and HTTP connection holds a file descriptor. A connection limit above
//! what the open-file limit allows protects nothing: `accept` fails first, for every listener
//! at once (`/healthz` included), and the store or a webhook cannot open a file or socket
//! either. So the default limit is derived from the soft open-file limit (which
//! `hongyan serve` raises to the hard limit at start), keeping descriptors back for everything
//! that is not a connection; an explicit `max_connections` is honoured, with a warning when
//! the file limit cannot back it. UDP pseudo-sessions hold no descriptor (they share the
//! gateway's one socket); their bound is memory, `max_udp_sessions`.

use crate::config::Config;

/// Descriptors kept back from connections: standard streams and the log, the three
/// listeners, the runtime's own (epoll, eventfds, the signal pipe), the HTTP listener's probe
/// reserve (`http::listen::PROBE_RESERVE`, 32 connections beyond the limit that answer
/// probes), the message store (SQLite's database, journal and shared-memory files per pooled
/// connection, or a PostgreSQL pool), certificate and state files, DNS lookups, with room to
/// spare. Webhook connections come on top (see [`reserved`]).
pub(crate) const RESERVED_FILES: usize = 256;

/// The default connection limit when the open-file limit allows more (or is unknown): about
/// 160–280 MB of session memory, which an operator with a larger machine raises explicitly.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// Descriptors `config` keeps back from connections: [`RESERVED_FILES`], and one per webhook
/// request in flight, each of which may hold its own connection to the backend.
pub(crate) fn reserved(config: &Config) -> usize {
    let webhooks = config.webhook().map_or(0, |webhook| webhook.concurrency);
    RESERVED_FILES + webhooks
}

/// The connections an open-file limit of `open_files` allows with `reserved` descriptors kept
/// back (at least one, so a server with a tiny limit still serves somebody).
pub(crate) fn allowed_connections(open_files: u64, reserved: usize) -> usize {
    usize::try_from(open_files)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserved)
        .max(1)
}

/// The connection limit `config` runs with: `max_connections` if set, else the smaller of
/// what the soft open-file limit allows and [`DEFAULT_MAX_CONNECTIONS`]. Logs the effective
/// limits once, with a warning when the file limit cannot back them.
pub(crate) fn connection_limit(config: &Config) -> usize {
    let open_files = soft_limit();
    let reserved = reserved(config);
    let allowed = open_files.map(|n| allowed_connections(n, reserved));
    let max_connections = config.max_connections.unwrap_or_else(|| {
        allowed.map_or(DEFAULT_MAX_CONNECTIONS, |n| n.min(DEFAULT_MAX_CONNECTIONS))
    });
    tracing::info!(
        max_connections,
        derived = config.max_connections.is_none(),
        open_files = %open_files.map_or_else(|| "unlimited".to_owned(), |n| n.to_string()),
        reserved,
        max_udp_sessions = config.max_udp_sessions,
        max_udp_unauthenticated = config.max_udp_unauthenticated,
        "connection limits (TCP, WebSocket and HTTP connections hold a file each; UDP \
         pseudo-sessions only memory)"
    );
    if let Some(allowed) = allowed
        && max_connections > allowed
    {
        tracing::warn!(
            max_connections,
            allowed,
            "max_connections exceeds what the open-file limit allows: accepting will fail \
             before the limit is reached; raise the limit (ulimit -n) or lower max_connections"
        );
    }
    max_connections
}

/// The soft limit on open files, if the platform has one.
fn soft_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _hard)| soft)
            .filter(|&soft| soft != rlimit::INFINITY)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_get_the_open_files_less_the_reserve() {
        assert_eq!(allowed_connections(20_000, 256), 19_744);
        assert_eq!(allowed_connections(1024, 256 + 64), 704);
        assert_eq!(allowed_connections(100, 256), 1, "never none at all");
    }

    #[test]
    fn webhooks_add_their_connections_to_the_reserve() {
        let mut config = Config::default();
        assert_eq!(reserved(&config), RESERVED_FILES);
        config.webhook_url = Some("http://127.0.0.1:9/hooks".parse().unwrap());
        config.webhook_concurrency = 10;
        assert_eq!(reserved(&config), RESERVED_FILES + 10);
    }

    #[test]
    fn an_explicit_limit_is_honoured_even_above_the_file_limit() {
        let config = Config {
            max_connections: Some(usize::MAX / 2),
            ..Config::default()
        };
        assert_eq!(connection_limit(&config), usize::MAX / 2);
    }

    #[cfg(unix)]
    #[test]
    fn the_default_follows_the_soft_file_limit() {
        let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        let expected = allowed_connections(soft, RESERVED_FILES).min(DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connection_limit(&Config::default()), expected);
    }
}
