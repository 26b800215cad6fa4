//! How setting values are written in TOML, environment variables and flags, for the fields of
//! [`Config`](super::Config) whose Rust type is not written as is: addresses that may be
//! `off`, sense modes by name, durations in whole seconds or milliseconds, counts that must be
//! positive. Each module here is a `#[serde(with = …)]` adapter; a bad value becomes a serde
//! error that names what is wrong, so the loader can say where it came from.

use std::fmt::Display;
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// A count that must be positive.
pub(super) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match usize::deserialize(d)? {
        0 => Err(D::Error::custom("must be positive")),
        n => Ok(n),
    }
}

/// A positive count of a 32-bit setting (a burst).
pub(super) fn positive_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    match u32::deserialize(d)? {
        0 => Err(D::Error::custom("must be positive")),
        n => Ok(n),
    }
}

/// A count that must be positive, or none.
pub(super) fn optional_positive<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<usize>, D::Error> {
    match Option::<usize>::deserialize(d)? {
        Some(0) => Err(D::Error::custom("must be positive")),
        n => Ok(n),
    }
}

/// A listen address, or `off` (also `none`, `disabled` or empty) for no listener.
pub(super) mod listen {
    use std::net::SocketAddr;

    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        addr: &Option<SocketAddr>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match addr {
            Some(addr) => s.collect_str(addr),
            None => s.serialize_str("off"),
        }
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "off" | "none" | "disabled" | "" => Ok(None),
            addr => addr.parse().map(Some).map_err(|e| {
                D::Error::custom(format!(
                    "{addr:?} is not an address like 127.0.0.1:8901 or \"off\": {e}"
                ))
            }),
        }
    }
}

/// A sense mode by name (`MODE_5S`, `5s`, …), or none.
pub(super) mod sense_mode {
    use hongyan_shared::SenseMode;

    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        mode: &Option<SenseMode>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match mode {
            Some(mode) => s.collect_str(mode),
            None => s.serialize_none(),
        }
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SenseMode>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|name| name.parse().map_err(D::Error::custom))
            .transpose()
    }
}

/// A sense mode UDP has (`MODE_5S` and `MODE_15S` exist only for TCP and WebSocket).
pub(super) mod udp_sense_mode {
    use hongyan_shared::{SenseMode, Transport};

    use super::*;

    pub(in super::super) use super::sense_mode::serialize;

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SenseMode>, D::Error> {
        match super::sense_mode::deserialize(d)? {
            Some(mode) if !mode.supports(Transport::Udp) => Err(D::Error::custom(format!(
                "{mode} does not exist for UDP (use MODE_3S, MODE_10S, MODE_30S, MODE_60S or \
                 MODE_120S)"
            ))),
            mode => Ok(mode),
        }
    }
}

/// A duration in whole seconds.
pub(super) mod secs {
    use std::time::Duration;

    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        duration: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(duration.as_secs())
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// A positive duration in whole seconds.
pub(super) mod positive_secs {
    use std::time::Duration;

    use super::*;

    pub(in super::super) use super::secs::serialize;

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(D::Error::custom("must be positive")),
            secs => Ok(Duration::from_secs(secs)),
        }
    }
}

/// A positive duration in whole milliseconds.
pub(super) mod positive_millis {
    use std::time::Duration;

    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        duration: &Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Duration, D::Error> {
        match u64::deserialize(d)? {
            0 => Err(D::Error::custom("must be positive")),
            ms => Ok(Duration::from_millis(ms)),
        }
    }
}

/// The de-duplication window, written as its capacity; its byte bound follows from it
/// (`DedupConfig::with_capacity`), its lifetimes are not user settings and keep their defaults.
pub(super) mod dedup_capacity {
    use hongyan_shared::DedupConfig;

    use super::*;

    pub(in super::super) fn serialize<S: Serializer>(
        dedup: &DedupConfig,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(dedup.capacity as u64)
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<DedupConfig, D::Error> {
        Ok(DedupConfig::with_capacity(positive(d)?))
    }
}

/// The webhook base URL, which must be `http` or `https`.
pub(super) mod webhook_url {
    use reqwest::Url;

    use super::*;
    use crate::webhook::WebhookConfig;

    pub(in super::super) fn serialize<S: Serializer>(
        url: &Option<Url>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match url {
            Some(url) => s.serialize_str(url.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(in super::super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Url>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|url| WebhookConfig::parse_url(&url).map_err(D::Error::custom))
            .transpose()
    }
}

/// An optional value written as its `Display` and read with its `FromStr`; empty is none.
pub(super) mod optional_display {
    use super::*;

    pub(in super::super) fn serialize<T: Display, S: Serializer>(
        value: &Option<T>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => s.collect_str(value),
            None => s.serialize_none(),
        }
    }

    pub(in super::super) fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        match Option::<String>::deserialize(d)? {
            Some(text) if !text.trim().is_empty() => {
                text.parse().map(Some).map_err(D::Error::custom)
            }
            _ => Ok(None),
        }
    }
}

/// A value written as its `Display` and read with its `FromStr`.
pub(super) mod display {
    use super::*;

    pub(in super::super) fn serialize<T: Display, S: Serializer>(
        value: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub(in super::super) fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}
