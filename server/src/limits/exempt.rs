//! Addresses the limits do not apply to: the `limits_exempt` setting (the operator's load
//! balancer, backend, monitoring) and exemptions added through the admin API, each with an
//! optional expiry. Kept in memory: API exemptions end with the process, the setting is the
//! permanent list.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hongyan_shared::Instant;

use super::address::{AddressRange, AddressRanges};

/// Most exemptions the API may add; more are refused, so the list the hot path may scan stays
/// short.
pub const MAX_EXEMPTIONS: usize = 1024;

/// One exemption, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// The addresses.
    pub range: AddressRange,
    /// When it ends, in epoch milliseconds; `None`: never.
    pub expires_unix_millis: Option<i64>,
    /// Whether it comes from the `limits_exempt` setting (it cannot be removed through the API).
    pub configured: bool,
}

#[derive(Debug)]
struct Added {
    range: AddressRange,
    /// On the core's monotonic clock.
    expires: Option<Instant>,
    expires_unix_millis: Option<i64>,
}

impl Added {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|end| now < end)
    }
}

/// The API's list is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at most {MAX_EXEMPTIONS} exemptions may be added; remove some first")]
pub struct TooManyExemptions;

/// Every exemption, configured and added.
#[derive(Debug)]
pub(crate) struct Exemptions {
    configured: AddressRanges,
    added: RwLock<Vec<Added>>,
    /// Whether there is any exemption at all: the one load the common case costs.
    any: AtomicBool,
}

impl Exemptions {
    pub(crate) fn new(configured: AddressRanges) -> Self {
        let any = AtomicBool::new(!configured.0.is_empty());
        Self {
            configured,
            added: RwLock::new(Vec::new()),
            any,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Vec<Added>> {
        self.added
            .read()
            .expect("the exemptions' lock is never held across a panic-prone section")
    }

    fn write(&self) -> RwLockWriteGuard<'_, Vec<Added>> {
        self.added
            .write()
            .expect("the exemptions' lock is never held across a panic-prone section")
    }

    /// Whether `ip` is exempt from the limits at `now`.
    pub(crate) fn covers(&self, ip: IpAddr, now: Instant) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return false;
        }
        self.configured.0.iter().any(|range| range.contains(ip))
            || self
                .read()
                .iter()
                .any(|added| added.live(now) && added.range.contains(ip))
    }

    /// Exempts `range` for `ttl` (for good without one), replacing an exemption of the same
    /// range added before; `now` and `unix_now` are the same moment on both clocks.
    pub(crate) fn add(
        &self,
        range: AddressRange,
        ttl: Option<Duration>,
        now: Instant,
        unix_now: i64,
    ) -> Result<Exemption, TooManyExemptions> {
        let expires_unix_millis = ttl
            .map(|ttl| unix_now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)));
        let entry = Added {
            range,
            expires: ttl.map(|ttl| now + ttl),
            expires_unix_millis,
        };
        let mut added = self.write();
        added.retain(|a| a.live(now) && a.range != range);
        if added.len() >= MAX_EXEMPTIONS {
            return Err(TooManyExemptions);
        }
        added.push(entry);
        self.any.store(true, Ordering::Relaxed);
        Ok(Exemption {
            range,
            expires_unix_millis,
            configured: false,
        })
    }

    /// Ends the exemption of exactly `range` added through the API; false if there is none.
    pub(crate) fn remove(&self, range: AddressRange, now: Instant) -> bool {
        let mut added = self.write();
        let before = added.len();
        added.retain(|a| a.range != range);
        let removed = added.len() < before;
        added.retain(|a| a.live(now));
        self.any.store(
            !added.is_empty() || !self.configured.0.is_empty(),
            Ordering::Relaxed,
        );
        removed
    }

    /// Every exemption in force at `now`: the configured ones first, then those added, oldest
    /// first.
    pub(crate) fn list(&self, now: Instant) -> Vec<Exemption> {
        let configured = self.configured.0.iter().map(|&range| Exemption {
            range,
            expires_unix_millis: None,
            configured: true,
        });
        let added = self.read();
        let added = added.iter().filter(|a| a.live(now)).map(|a| Exemption {
            range: a.range,
            expires_unix_millis: a.expires_unix_millis,
            configured: false,
        });
        configured.chain(added).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn configured_and_added_exemptions_cover_their_ranges_until_they_expire() {
        let exemptions = Exemptions::new("10.0.0.0/8".parse().unwrap());
        let now = Instant::now();
        assert!(exemptions.covers(ip("10.1.2.3"), now));
        assert!(!exemptions.covers(ip("192.0.2.1"), now));

        let range = "192.0.2.0/24".parse().unwrap();
        let added = exemptions
            .add(range, Some(Duration::from_secs(60)), now, 1_000)
            .unwrap();
        assert_eq!(added.expires_unix_millis, Some(61_000));
        assert!(exemptions.covers(ip("192.0.2.1"), now));
        assert!(!exemptions.covers(ip("192.0.2.1"), now + Duration::from_secs(60)));
        assert_eq!(exemptions.list(now).len(), 2);
        assert_eq!(exemptions.list(now + Duration::from_secs(60)).len(), 1);
    }

    #[test]
    fn adding_a_range_again_replaces_it_and_removing_it_ends_it() {
        let exemptions = Exemptions::new(AddressRanges::default());
        let now = Instant::now();
        assert!(!exemptions.covers(ip("203.0.113.7"), now));
        let range = "203.0.113.7".parse().unwrap();
        exemptions
            .add(range, Some(Duration::from_secs(1)), now, 0)
            .unwrap();
        exemptions.add(range, None, now, 0).unwrap();
        assert_eq!(exemptions.list(now).len(), 1);
        assert!(exemptions.covers(ip("203.0.113.7"), now + Duration::from_secs(3600)));
        assert!(exemptions.remove(range, now));
        assert!(!exemptions.remove(range, now));
        assert!(!exemptions.covers(ip("203.0.113.7"), now));
        assert!(!exemptions.any.load(Ordering::Relaxed));
    }

    #[test]
    fn the_added_list_is_bounded() {
        let exemptions = Exemptions::new(AddressRanges::default());
        let now = Instant::now();
        for i in 0..MAX_EXEMPTIONS {
            let range = format!("10.{}.{}.0/24", i / 256, i % 256).parse().unwrap();
            exemptions.add(range, None, now, 0).unwrap();
        }
        let one_more = "192.0.2.1".parse().unwrap();
        assert_eq!(
            exemptions.add(one_more, None, now, 0),
            Err(TooManyExemptions)
        );
    }
}
