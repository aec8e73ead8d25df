//! CIDR networks for `[[policy.trusted_network]]`.

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `2001:db8::/32`; a bare
/// address is the network of that one host. Written back in its canonical
/// form (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR`. Host bits must be zero (`10.0.0.1/8`
    /// is refused: it is usually a typo for a host or for a different network).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("invalid network {s:?}: {addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => {
                    return Err(format!(
                        "invalid network {s:?}: prefix length must be 0 to {max}"
                    ))
                }
            },
        };
        let cidr = Cidr { addr, prefix };
        if cidr.masked(addr) != addr {
            return Err(format!(
                "invalid network {s:?}: address has bits set beyond /{prefix} (did you mean {}?)",
                Cidr {
                    addr: cidr.masked(addr),
                    prefix
                }
            ));
        }
        Ok(cidr)
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        }
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`, as dual-stack sshd reports) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && self.masked(ip) == self.addr
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v4_and_v6_membership() {
        let n = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.1.2.3")));
        assert!(!n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.9.9.9")), "v4-mapped v6");
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let host = Cidr::parse("192.0.2.7").unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.1")));
    }

    #[test]
    fn invalid_networks_are_refused_with_the_reason() {
        for (bad, why) in [
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0.0/-1", "prefix length"),
            ("10.0.0.0/+8", "prefix length"),
            ("10.0.0/8", "not an IP address"),
            ("example.com/24", "not an IP address"),
            ("", "not an IP address"),
            ("10.0.0.1/8", "did you mean 10.0.0.0/8"),
            ("2001:db8::1/32", "did you mean 2001:db8::/32"),
            ("::/129", "prefix length"),
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
