//! IPv4 addresses with prefixes and MAC addresses, parsed without allocation
//! beyond what std does. Small on purpose: only what validation and address
//! assignment need.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 address with a prefix length, e.g. `10.10.0.11/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Cidr {
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The network address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// True when the host bits are zero (a subnet, not an address in it).
    pub fn is_network(&self) -> bool {
        self.addr == self.network()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// Usable host addresses, first to last (none for /31 and /32 here: a lab
    /// network needs a network and a broadcast address).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let net = u32::from(self.network());
        let bc = u32::from(self.broadcast());
        let (first, last) = if self.prefix >= 31 {
            (1, 0)
        } else {
            (net + 1, bc - 1)
        };
        (first..=last).map(Ipv4Addr::from)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why a CIDR or MAC string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("expected an IPv4 address with a prefix, like 10.0.0.1/24")]
    MissingPrefix,
    #[error("{0:?} is not an IPv4 address")]
    BadAddress(String),
    #[error("prefix length {0:?} is not a number from 0 to 32")]
    BadPrefix(String),
    #[error("expected six hex byte pairs separated by ':', like 52:54:00:12:34:56")]
    BadMac,
}

impl FromStr for Ipv4Cidr {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = s.split_once('/').ok_or(ParseError::MissingPrefix)?;
        let addr = parse_ipv4(addr)?;
        let prefix = match prefix.parse::<u8>() {
            Ok(p) if p <= 32 && !prefix.starts_with('+') => p,
            _ => return Err(ParseError::BadPrefix(prefix.to_string())),
        };
        Ok(Ipv4Cidr { addr, prefix })
    }
}

/// Parses a dotted-quad IPv4 address, refusing the forms std also refuses
/// (leading zeros, fewer than four parts).
pub fn parse_ipv4(s: &str) -> Result<Ipv4Addr, ParseError> {
    s.parse::<Ipv4Addr>()
        .map_err(|_| ParseError::BadAddress(s.to_string()))
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Multicast addresses have the low bit of the first octet set.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 1 == 0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
}

impl FromStr for Mac {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or(ParseError::BadMac)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ParseError::BadMac);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseError::BadMac)?;
        }
        if parts.next().is_some() {
            return Err(ParseError::BadMac);
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parts() {
        let c: Ipv4Cidr = "10.10.0.11/24".parse().unwrap();
        assert_eq!(c.network(), Ipv4Addr::new(10, 10, 0, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 10, 0, 255));
        assert!(!c.is_network());
        assert!(c.contains(Ipv4Addr::new(10, 10, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 10, 1, 1)));
        let hosts: Vec<_> = "10.0.0.0/30".parse::<Ipv4Cidr>().unwrap().hosts().collect();
        assert_eq!(
            hosts,
            vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]
        );
        assert_eq!("0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().mask(), 0);
    }

    #[test]
    fn cidr_errors() {
        assert_eq!(
            "10.0.0.1".parse::<Ipv4Cidr>(),
            Err(ParseError::MissingPrefix)
        );
        assert!(matches!(
            "10.0.0/24".parse::<Ipv4Cidr>(),
            Err(ParseError::BadAddress(_))
        ));
        assert!(matches!(
            "10.0.0.1/33".parse::<Ipv4Cidr>(),
            Err(ParseError::BadPrefix(_))
        ));
        assert!(matches!(
            "10.0.0.1/+8".parse::<Ipv4Cidr>(),
            Err(ParseError::BadPrefix(_))
        ));
    }

    #[test]
    fn macs() {
        let m: Mac = "52:54:00:AB:cd:01".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert!(m.is_unicast());
        assert!(!"01:00:5e:00:00:01".parse::<Mac>().unwrap().is_unicast());
        for bad in [
            "52:54:00:00:00",
            "52:54:00:00:00:00:00",
            "52-54-00-00-00-00",
            "5:54:00:00:00:001",
            "zz:54:00:00:00:00",
        ] {
            assert_eq!(bad.parse::<Mac>(), Err(ParseError::BadMac), "{bad}");
        }
    }
}
