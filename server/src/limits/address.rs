//! What "one address" is for the per-address limits ([`AddressKey`]), and ranges of addresses
//! as operators write them ([`AddressRange`], [`AddressRanges`]).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// The unit the per-address limits count by: an IPv4 address, or an IPv6 **/64**. A single
/// IPv6 host is routinely given a whole /64 and can pick any address in it, so counting
/// IPv6 addresses one by one would let one host have 2^64 budgets. An IPv4-mapped IPv6
/// address (`::ffff:a.b.c.d`, what a dual-stack socket reports) is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum AddressKey {
    /// An IPv4 address.
    V4(u32),
    /// The upper 64 bits of an IPv6 address.
    V6(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// An address or a range of them (CIDR): `203.0.113.7`, `10.0.0.0/8`, `2001:db8::/32`. An
/// address without a prefix length is that one address. Host bits are cleared
/// (`10.1.2.3/8` is `10.0.0.0/8`), so equal ranges compare equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressRange(IpNet);

impl AddressRange {
    /// Whether `ip` lies in the range (an IPv4-mapped IPv6 address as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip.to_canonical())
    }
}

/// Why an address range does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither an IP address nor a range like 10.0.0.0/8 or 2001:db8::/32")]
pub struct AddressRangeError(String);

impl FromStr for AddressRange {
    type Err = AddressRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let net = match text.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => IpNet::from(
                text.parse::<IpAddr>()
                    .map_err(|_| AddressRangeError(text.to_owned()))?,
            ),
        };
        // `::ffff:10.0.0.0/104` is written by nobody; an IPv4 one is kept as IPv4, which is
        // what `contains` compares with.
        let net = match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96)
                    .expect("a prefix of at most 128 - 96 bits fits an IPv4 address"),
                None => IpNet::V6(v6),
            },
            net => net,
        };
        Ok(Self(net.trunc()))
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// A comma-separated list of [`AddressRange`]s, as the `limits_exempt` setting is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressRanges(pub(crate) Vec<AddressRange>);

impl AddressRanges {
    /// The ranges of the list.
    pub fn ranges(&self) -> &[AddressRange] {
        &self.0
    }
}

impl From<Vec<AddressRange>> for AddressRanges {
    fn from(ranges: Vec<AddressRange>) -> Self {
        Self(ranges)
    }
}

impl FromStr for AddressRanges {
    type Err = AddressRangeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl fmt::Display for AddressRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, range) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{range}")?;
        }
        Ok(())
    }
}

/// The loopback ranges, `127.0.0.0/8` and `::1`: what a benchmark on one machine exempts.
pub fn loopback() -> AddressRanges {
    AddressRanges(vec![
        "127.0.0.0/8".parse().expect("a valid range"),
        AddressRange(IpNet::from(IpAddr::V6(Ipv6Addr::LOCALHOST))),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_host_is_one_address_per_64_and_a_mapped_ipv4_is_its_ipv4() {
        let key = |text| AddressKey::from(ip(text));
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:203.0.113.7"), key("203.0.113.7"));
        assert_ne!(key("203.0.113.7"), key("203.0.113.8"));
    }

    #[test]
    fn ranges_parse_as_operators_write_them() {
        let range: AddressRange = "10.1.2.3/8".parse().unwrap();
        assert_eq!(range.to_string(), "10.0.0.0/8");
        assert!(range.contains(ip("10.200.0.1")));
        assert!(range.contains(ip("::ffff:10.0.0.1")));
        assert!(!range.contains(ip("11.0.0.1")));
        let one: AddressRange = "203.0.113.7".parse().unwrap();
        assert_eq!(one.to_string(), "203.0.113.7");
        assert!(one.contains(ip("203.0.113.7")) && !one.contains(ip("203.0.113.8")));
        let mapped: AddressRange = "::ffff:192.0.2.0/120".parse().unwrap();
        assert_eq!(mapped.to_string(), "192.0.2.0/24");
        let v6: AddressRange = " 2001:db8::/32 ".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!("10.0.0.0/33".parse::<AddressRange>().is_err());
        assert!("example.com".parse::<AddressRange>().is_err());
    }

    #[test]
    fn a_list_round_trips_and_names_what_is_wrong() {
        let list: AddressRanges = "127.0.0.1, 10.0.0.0/8,,::1".parse().unwrap();
        assert_eq!(list.to_string(), "127.0.0.1,10.0.0.0/8,::1");
        assert_eq!(list.to_string().parse::<AddressRanges>().unwrap(), list);
        assert_eq!(
            "".parse::<AddressRanges>().unwrap(),
            AddressRanges::default()
        );
        let error = "10.0.0.0/8,lb.internal"
            .parse::<AddressRanges>()
            .unwrap_err();
        assert!(error.to_string().contains("\"lb.internal\""), "{error}");
    }
}
