//! Where deliveries may go: the guard against server-side request forgery.
//!
//! A subscription URL is chosen by whoever holds an admin token, and the delivery log
//! reads the receiver's answer back to them, so an unchecked URL would let them probe the
//! engine's own network (loopback services, the cloud metadata endpoint, private hosts).
//! Addresses are checked when the dispatcher connects, not when a subscription is
//! registered: DNS can answer differently later. [`GuardedResolver`] filters what a host
//! name resolves to; [`check_literal`] covers URLs that name an IP address, which the HTTP
//! client connects to without asking the resolver.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`; a bare address is a `/32` or
/// `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` lies in this network. IPv4 networks do not match IPv6 addresses (an
    /// IPv4-mapped address is checked as the IPv4 address it carries, see [`forbidden`]).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}` is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The operator's exceptions: networks deliveries may reach although they are not public.
/// Empty by default, so only public addresses are reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    networks: Vec<Network>,
}

impl AllowList {
    /// The networks of a comma-separated list (`127.0.0.0/8,fd00::/8`); blank = none.
    pub fn parse(list: &str) -> Result<Self, String> {
        let networks = list
            .split(',')
            .filter(|item| !item.trim().is_empty())
            .map(Network::from_str)
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// An allow-list of exactly these networks.
    pub fn new(networks: Vec<Network>) -> Self {
        Self { networks }
    }

    /// The allowed networks.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }

    /// Why `ip` may not be reached, or `None` when it may: public, or allowed here.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        let reason = forbidden(ip)?;
        let canonical = canonical(ip);
        if self
            .networks
            .iter()
            .any(|n| n.contains(ip) || n.contains(canonical))
        {
            None
        } else {
            Some(reason)
        }
    }
}

/// The IPv4 address an IPv6 address stands for, when it carries one (IPv4-mapped,
/// IPv4-compatible or NAT64 well-known prefix); the address itself otherwise.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            let embedded = Ipv4Addr::from(u32::try_from(u128::from(v6) & 0xffff_ffff).unwrap_or(0));
            let mapped = segments[..5] == [0; 5] && segments[5] == 0xffff;
            let compatible = segments[..6] == [0; 6] && u32::from(embedded) > 1;
            let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            if mapped || compatible || nat64 {
                IpAddr::V4(embedded)
            } else {
                ip
            }
        }
        IpAddr::V4(_) => ip,
    }
}

/// The kind of non-public address `ip` is, or `None` for a public one.
///
/// Refused: unspecified, loopback, private (RFC 1918), unique-local (`fc00::/7`),
/// link-local (which holds the cloud metadata endpoint `169.254.169.254`), carrier-grade
/// NAT (`100.64.0.0/10`, Alibaba's metadata endpoint), multicast, broadcast, reserved,
/// documentation and benchmarking ranges, IETF protocol assignments (`192.0.0.0/24`,
/// Oracle's metadata endpoint) and site-local IPv6; IPv6 addresses that carry an IPv4
/// address are judged by it.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local (cloud metadata)",
        (100, 64..=127, _) => "carrier-grade NAT",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() || a >= 240 => "reserved",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match first {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_multicast() => "multicast",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xfc00..=0xfdff => "unique-local (cloud metadata)",
        0x2001 if ip.segments()[1] == 0x0db8 => "documentation",
        _ => return None,
    })
}

/// The error of a refused address: says which address, why, and what would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refused to connect to {host}: {addr} is a {reason} address; \
     the webhook network allow-list (COMMERCE_WEBHOOK_ALLOW_NETWORKS) does not permit it"
)]
pub struct Refused {
    pub host: String,
    pub addr: IpAddr,
    pub reason: &'static str,
}

/// Checks a URL host that is an IP literal (with or without IPv6 brackets); host names
/// pass here and are checked by [`GuardedResolver`] when they are resolved.
pub fn check_literal(allow: &AllowList, host: &str) -> Result<(), Refused> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(addr) => match allow.refusal(addr) {
            Some(reason) => Err(Refused {
                host: host.to_string(),
                addr,
                reason,
            }),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// A DNS resolver for the delivery client that hands out only the addresses the
/// [`AllowList`] permits: public ones and allowed ones. A name that resolves only to
/// refused addresses fails to connect with a [`Refused`] error naming the first of them.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<AllowList>,
}

impl GuardedResolver {
    /// A resolver that applies `allow`.
    pub fn new(allow: AllowList) -> Self {
        Self {
            allow: Arc::new(allow),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            // Port 0: the client puts the URL's port in afterwards.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match allow.refusal(addr.ip()) {
                    Some(reason) => {
                        refused.get_or_insert(Refused {
                            host: host.clone(),
                            addr: addr.ip(),
                            reason,
                        });
                        false
                    }
                    None => true,
                })
                .collect();
            if permitted.is_empty() {
                if let Some(refused) = refused {
                    return Err(refused.into());
                }
            }
            let addrs: Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

/// `url` with any user name and password replaced by `***`, for logs and stored errors.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            // Both setters only fail for URLs that cannot have credentials at all.
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Ok(_) => url.to_string(),
        // Not a URL we could deliver to; keep nothing that might be a secret.
        Err(_) => "<unparseable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn non_public_ranges_are_refused_and_public_ones_pass() {
        for (addr, kind) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.0.1", "loopback"),
            ("127.8.9.10", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.100.100.200", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("240.0.0.1", "reserved"),
            ("192.0.0.192", "IETF protocol assignment"),
            ("198.18.0.1", "benchmarking"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00:ec2::254", "unique-local (cloud metadata)"),
            ("fc00::1", "unique-local (cloud metadata)"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("64:ff9b::a00:1", "private"),
            ("2001:db8::1", "documentation"),
        ] {
            assert_eq!(forbidden(ip(addr)), Some(kind), "{addr}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(forbidden(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn the_allow_list_permits_exactly_its_networks() {
        let allow = AllowList::parse("127.0.0.0/8, 10.0.0.5 ,fd00::/8").unwrap();
        assert_eq!(allow.refusal(ip("127.0.0.1")), None);
        assert_eq!(allow.refusal(ip("::ffff:127.0.0.1")), None, "mapped form");
        assert_eq!(allow.refusal(ip("10.0.0.5")), None);
        assert_eq!(allow.refusal(ip("10.0.0.6")), Some("private"));
        assert_eq!(allow.refusal(ip("fd12::1")), None);
        assert_eq!(allow.refusal(ip("::1")), Some("loopback"));
        assert_eq!(allow.refusal(ip("8.8.8.8")), None, "public needs no entry");
        assert_eq!(AllowList::parse("").unwrap(), AllowList::default());
        assert_eq!(
            AllowList::parse("0.0.0.0/0")
                .unwrap()
                .refusal(ip("169.254.169.254")),
            None
        );
        for bad in ["10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_are_checked_and_names_left_to_the_resolver() {
        let none = AllowList::default();
        let refused = check_literal(&none, "127.0.0.1").unwrap_err();
        assert_eq!(refused.reason, "loopback");
        assert!(refused
            .to_string()
            .contains("COMMERCE_WEBHOOK_ALLOW_NETWORKS"));
        assert!(check_literal(&none, "[::1]").is_err());
        assert!(check_literal(&none, "example.com").is_ok());
        assert!(check_literal(&none, "93.184.216.34").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        let resolver = GuardedResolver::new(AllowList::default());
        let err = resolver
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .expect("localhost resolves to loopback only");
        assert!(err.to_string().contains("loopback"), "{err}");
        let allowed = GuardedResolver::new(AllowList::parse("127.0.0.0/8,::1").unwrap());
        let addrs: Vec<SocketAddr> = allowed
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("https://user:pa55@hooks.example.com/x?y=1"),
            "https://***@hooks.example.com/x?y=1"
        );
        assert_eq!(
            redact_url("https://hooks.example.com/x"),
            "https://hooks.example.com/x"
        );
        assert_eq!(redact_url("not a url"), "<unparseable URL>");
    }
}
