//! The client's address, as far as it can be trusted.
//!
//! Login throttling, sessions and the audit log key on it. Behind a reverse proxy every
//! connection comes from the proxy, so one client's failed logins would throttle
//! everybody; but `X-Forwarded-For` is written by whoever sends the request, so it only
//! counts when the connection comes from a proxy the operator named.

use std::net::IpAddr;
use std::str::FromStr;

/// One address or network (CIDR) that forwards requests: `10.0.0.5`, `10.0.0.0/8`,
/// `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet(ipnet::IpNet);

impl ProxyNet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let Some((addr, prefix)) = s.split_once('/') else {
            return s
                .parse::<IpAddr>()
                .map(|ip| Self(ip.into()))
                .map_err(|_| format!("{s:?} is not an IP address or network like 10.0.0.0/8"));
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or network like 10.0.0.0/8"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        prefix
            .parse::<u8>()
            .ok()
            .and_then(|p| ipnet::IpNet::new(network, p).ok())
            .map(Self)
            .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl FromStr for ProxyNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The client's address for this request, set by the server's middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// What per-client limits count: an IPv4 address, or the /64 network of an IPv6
    /// one. A single subscriber is usually given a whole /64, so counting its
    /// addresses apart would hand one client 2^64 fresh allowances.
    pub fn limit_key(self) -> String {
        match self.0 {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => {
                    let [a, b, c, d, ..] = v6.segments();
                    format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
                }
            },
        }
    }
}

/// The client behind `peer`: the peer itself unless it is a trusted proxy; then the
/// nearest address in `X-Forwarded-For` (read right to left, past further trusted
/// proxies) that is not one. Entries left of an unreadable one could be anything the
/// client wrote, so an unreadable entry stops the walk at the proxy that passed it on.
pub fn resolve<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[ProxyNet],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|header| header.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<ProxyNet> {
        list.iter().map(|s| ProxyNet::parse(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn limits_count_an_ipv6_client_by_its_64_network() {
        let key = |s: &str| ClientIp(ip(s)).limit_key();
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:0:0:9"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn networks_parse_and_match() {
        let net = ProxyNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            ProxyNet::parse("127.0.0.1")
                .unwrap()
                .contains(ip("127.0.0.1"))
        );
        assert!(
            !ProxyNet::parse("127.0.0.1")
                .unwrap()
                .contains(ip("127.0.0.2"))
        );
        assert!(
            ProxyNet::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        assert!(ProxyNet::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
        assert!(
            !ProxyNet::parse("fd00::/8")
                .unwrap()
                .contains(ip("10.0.0.1"))
        );
        assert!(
            ProxyNet::parse("10.0.0.0/8")
                .unwrap()
                .contains(ip("::ffff:10.9.8.7")),
            "IPv4-mapped IPv6 peers match IPv4 networks"
        );
        for bad in [
            "",
            "proxy",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "10.0.0.256",
        ] {
            assert!(ProxyNet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        let spoofed = ["203.0.113.9"];
        assert_eq!(
            resolve(ip("198.51.100.1"), spoofed, &trusted),
            ip("198.51.100.1"),
            "a direct client cannot pick its address"
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["203.0.113.9"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["1.1.1.1, 203.0.113.9, 10.0.0.7"], &trusted),
            ip("203.0.113.9"),
            "the nearest untrusted hop, not what the client prepended"
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["1.1.1.1", "203.0.113.9"], &trusted),
            ip("203.0.113.9"),
            "repeated headers read as one list"
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["1.1.1.1, garbage, 10.0.0.7"], &trusted),
            ip("10.0.0.7"),
            "an unreadable hop stops at the proxy that passed it on"
        );
        assert_eq!(resolve(ip("10.0.0.2"), [], &trusted), ip("10.0.0.2"));
        assert_eq!(
            resolve(ip("10.0.0.2"), ["10.0.0.3"], &trusted),
            ip("10.0.0.3"),
            "all hops trusted: the farthest one"
        );
        assert_eq!(
            resolve(ip("10.0.0.2"), ["203.0.113.9"], &[]),
            ip("10.0.0.2"),
            "no trusted proxies: the header is ignored"
        );
    }
}
