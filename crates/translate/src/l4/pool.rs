//! Address pools for LoadBalancer Services (`--lb-pool CIDR|FIRST-LAST`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An inclusive range of addresses of one family. Every address in it is allocatable,
/// network and broadcast addresses of a CIDR included (as MetalLB does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    first: IpAddr,
    last: IpAddr,
}

impl AddressPool {
    /// True when `ip` is in the pool.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ((family, n), (f1, first), (f2, last)) = (to_int(ip), to_int(self.first), to_int(self.last));
        family == f1 && family == f2 && first <= n && n <= last
    }

    /// True when the two ranges share an address.
    pub fn overlaps(&self, other: &AddressPool) -> bool {
        let ((f1, a1), (_, b1)) = (to_int(self.first), to_int(self.last));
        let ((f2, a2), (_, b2)) = (to_int(other.first), to_int(other.last));
        f1 == f2 && a1 <= b2 && a2 <= b1
    }

    /// The pool's addresses in ascending order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let (family, first) = to_int(self.first);
        let (_, last) = to_int(self.last);
        (first..=last).map(move |n| from_int(family, n))
    }
}

impl fmt::Display for AddressPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl FromStr for AddressPool {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let parse_ip = |s: &str| s.trim().parse::<IpAddr>().map_err(|e| format!("{s:?}: {e}"));
        let (first, last) = if let Some((ip, bits)) = text.split_once('/') {
            let ip = parse_ip(ip)?;
            let (family, n) = to_int(ip);
            let width = if family == 4 { 32 } else { 128 };
            let bits: u32 = bits.parse().map_err(|_| format!("{text:?}: bad prefix length"))?;
            if bits > width {
                return Err(format!("{text:?}: prefix length over {width}"));
            }
            let host_bits = width - bits;
            let mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
            (from_int(family, n & !mask), from_int(family, n | mask))
        } else if let Some((first, last)) = text.split_once('-') {
            (parse_ip(first)?, parse_ip(last)?)
        } else {
            let ip = parse_ip(text)?;
            (ip, ip)
        };
        let ((f1, a), (f2, b)) = (to_int(first), to_int(last));
        if f1 != f2 {
            return Err(format!("{text:?}: mixes IPv4 and IPv6"));
        }
        if a > b {
            return Err(format!("{text:?}: first address is after the last"));
        }
        Ok(Self { first, last })
    }
}

fn to_int(ip: IpAddr) -> (u8, u128) {
    match ip {
        IpAddr::V4(v4) => (4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (6, u128::from(v6)),
    }
}

fn from_int(family: u8, n: u128) -> IpAddr {
    if family == 4 {
        IpAddr::from(u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes())
    } else {
        IpAddr::from(n.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cidrs_and_ranges() {
        let pool: AddressPool = "127.0.10.0/30".parse().unwrap();
        let all: Vec<String> = pool.addresses().map(|a| a.to_string()).collect();
        assert_eq!(all, ["127.0.10.0", "127.0.10.1", "127.0.10.2", "127.0.10.3"]);
        let range: AddressPool = "127.0.0.5-127.0.0.6".parse().unwrap();
        assert!(range.contains("127.0.0.6".parse().unwrap()));
        assert!(!range.contains("127.0.0.7".parse().unwrap()));
        assert!(!range.contains("::1".parse().unwrap()));
        assert!("127.0.0.6-127.0.0.5".parse::<AddressPool>().is_err());
        assert!("127.0.0.1-::1".parse::<AddressPool>().is_err());
        assert!("10.0.0.0/33".parse::<AddressPool>().is_err());
        assert_eq!("fd00::/127".parse::<AddressPool>().unwrap().addresses().count(), 2);
    }
}
