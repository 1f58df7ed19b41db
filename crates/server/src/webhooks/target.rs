//! Where a webhook may be delivered: internal addresses are refused
//! unless `webhook_allow` lists them, judged after DNS resolution (the
//! resolver hands the client only the addresses it vetted), and URLs are
//! shown redacted.

use std::net::{IpAddr, SocketAddr};

/// `webhook_allow`: networks and host names that may be targets although
/// they are internal.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    nets: crate::access::TrustedProxies,
    hosts: Vec<String>,
}

impl std::str::FromStr for AllowList {
    type Err = String;
    fn from_str(s: &str) -> Result<AllowList, String> {
        let (mut nets, mut hosts) = (Vec::new(), Vec::new());
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let ip_like = item.split('/').next().is_some_and(|a| a.parse::<IpAddr>().is_ok());
            if ip_like {
                nets.push(item);
            } else if item.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
                hosts.push(item.to_ascii_lowercase());
            } else {
                return Err(format!("{item:?} is not an address, network or host name"));
            }
        }
        Ok(AllowList {
            nets: nets.join(",").parse()?,
            hosts,
        })
    }
}

/// IPv4 networks a webhook may not reach unless `webhook_allow` lists
/// them: IANA's special-purpose blocks that are not globally reachable,
/// plus the documentation and benchmarking blocks (no receiver lives
/// there, so an address in them is a probe or a mistake).
const INTERNAL_V4: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0a00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 carrier-grade NAT (100.64.0.0–100.127.255.255)
    (0x7f00_0000, 8),  // 127.0.0.0/8 loopback
    (0xa9fe_0000, 16), // 169.254.0.0/16 link-local (cloud metadata)
    (0xac10_0000, 12), // 172.16.0.0/12 private
    (0xc000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xc000_0200, 24), // 192.0.2.0/24 documentation (TEST-NET-1)
    (0xc058_6300, 24), // 192.88.99.0/24 6to4 relay anycast (deprecated)
    (0xc0a8_0000, 16), // 192.168.0.0/16 private
    (0xc612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xc633_6400, 24), // 198.51.100.0/24 documentation (TEST-NET-2)
    (0xcb00_7100, 24), // 203.0.113.0/24 documentation (TEST-NET-3)
    (0xe000_0000, 4),  // 224.0.0.0/4 multicast
    (0xf000_0000, 4),  // 240.0.0.0/4 reserved, 255.255.255.255 broadcast included
];

/// IPv6 networks refused inside global unicast `2000::/3` (everything
/// outside it is refused, apart from the forms that carry an IPv4 address,
/// see [`is_internal`]).
const INTERNAL_V6_GLOBAL: [(u128, u8); 3] = [
    (0x2001_0000 << 96, 23), // 2001::/23 IETF protocol assignments: Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x3fff_0000 << 96, 20), // 3fff::/20 documentation (RFC 9637)
];

fn in_v4(a: u32, (net, prefix): (u32, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    a & mask == net & mask
}

fn in_v6(a: u128, (net, prefix): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    a & mask == net & mask
}

/// Whether a webhook may not reach `ip` unless `webhook_allow` lists it:
/// loopback, private, link-local, unspecified, carrier-grade NAT,
/// multicast, broadcast, reserved, documentation and benchmarking
/// addresses ([`INTERNAL_V4`]); in IPv6, everything outside global unicast
/// `2000::/3` (loopback, unique-local, link-local, site-local `fec0::/10`,
/// multicast, discard-only `100::/64`…) and the blocks of
/// [`INTERNAL_V6_GLOBAL`].
///
/// IPv6 addresses that carry an IPv4 address:
/// - IPv4-mapped `::ffff:a.b.c.d` *is* that IPv4 address on a dual-stack
///   socket: judged by it.
/// - NAT64's well-known prefix `64:ff9b::/96`: judged by the embedded
///   address. The translator forwards to it, so an internal one is
///   refused; but on IPv6-only networks DNS64 answers every IPv4-only host
///   name with such an address, so refusing the whole prefix would refuse
///   every public IPv4 receiver there.
/// - 6to4 `2002::/16`: judged by the IPv4 address in bits 16–47, where a
///   relay forwards it.
/// - Refused whole: IPv4-compatible `::a.b.c.d` (deprecated since RFC
///   4291; no legitimate receiver has one), local-use NAT64
///   `64:ff9b:1::/48` (the operator picks the prefix length, so where the
///   IPv4 address sits is unknown) and Teredo `2001::/32` (the client
///   address is obfuscated and relays pick the path).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => INTERNAL_V4.iter().any(|&n| in_v4(u32::from(a), n)),
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let embedded = |v4: u128| is_internal(IpAddr::V4(std::net::Ipv4Addr::from(v4 as u32)));
            if let Some(mapped) = a.to_ipv4_mapped() {
                is_internal(IpAddr::V4(mapped))
            } else if in_v6(bits, (0x0064_ff9b << 96, 96)) {
                embedded(bits)
            } else if in_v6(bits, (0x2002 << 112, 16)) {
                embedded(bits >> 80)
            } else {
                !in_v6(bits, (0x2 << 124, 3)) || INTERNAL_V6_GLOBAL.iter().any(|&n| in_v6(bits, n))
            }
        }
    }
}

impl AllowList {
    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        !is_internal(ip) || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) || self.nets.contains_ip(ip)
    }

    /// The addresses `url` may be delivered to, or why it may not be.
    pub async fn vet(&self, url: &reqwest::Url) -> Result<Vec<SocketAddr>, String> {
        if !["http", "https"].contains(&url.scheme()) {
            return Err(format!("{}: only http and https URLs", url.scheme()));
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let host = url.host_str().ok_or("the URL has no host")?.trim_matches(['[', ']']);
        match host.parse::<IpAddr>() {
            // An address is judged as it is, without connecting anywhere.
            Ok(ip) => self.vet_addrs(host, vec![SocketAddr::new(ip, port)]),
            Err(_) => self.vet_host(host, port).await,
        }
    }

    /// The addresses `host` resolves to, refused if any is internal and
    /// not allowed.
    async fn vet_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("{host} does not resolve: {e}"))?
            .collect();
        self.vet_addrs(host, addrs)
    }

    /// `addrs` (what `host` names), refused if any is internal and not
    /// allowed.
    fn vet_addrs(&self, host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
        if addrs.is_empty() {
            return Err(format!("{host} does not resolve"));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.allows(host, a.ip())) {
            return Err(format!(
                "{host} resolves to {}, an internal address (list it in webhook_allow to allow it)",
                bad.ip()
            ));
        }
        Ok(addrs)
    }
}

/// `url` as it may be shown: in API responses, audit records, log lines
/// and the UI. The query string and userinfo carry credentials (GitLab's
/// `?token=glptt-…`, `https://user:password@…`), so they are write-only
/// like the hook's secret: scheme, host and port are kept, and the path's
/// word-like segments; any other path segment (Slack's and Discord's
/// tokens live there) becomes `…`, userinfo `…@`, each query value `…` (an
/// item without `=` wholly, since it may be a bare token) and a fragment
/// `#…`.
pub fn redact_url(url: &str) -> String {
    let Ok(u) = reqwest::Url::parse(url) else {
        // Stored URLs parse (they were vetted); never echo one that doesn't.
        return "(not a URL)".into();
    };
    let mut out = format!("{}://", u.scheme());
    if !u.username().is_empty() || u.password().is_some() {
        out.push_str("…@");
    }
    out.push_str(u.host_str().unwrap_or_default());
    if let Some(port) = u.port() {
        out.push_str(&format!(":{port}"));
    }
    // Slack, Discord and Teams put the secret in the path: only word-like
    // segments (`services`, `webhooks`, `trigger`) are shown.
    let segments: Vec<&str> = u
        .path()
        .split('/')
        .map(|seg| {
            let word = seg.len() <= 24
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || matches!(c, '-' | '_' | '.'));
            if seg.is_empty() || word {
                seg
            } else {
                "…"
            }
        })
        .collect();
    out.push_str(&segments.join("/"));
    if let Some(query) = u.query() {
        let items: Vec<String> = query
            .split('&')
            .map(|item| match item.split_once('=') {
                Some((key, _)) => format!("{key}=…"),
                None if item.is_empty() => String::new(),
                None => "…".into(),
            })
            .collect();
        out.push('?');
        out.push_str(&items.join("&"));
    }
    if u.fragment().is_some() {
        out.push_str("#…");
    }
    out
}

/// `text` with `url` redacted wherever it appears, as given or as the URL
/// parser writes it (how reqwest's errors quoted it before they were
/// stripped of it): for delivery-log texts recorded by older versions.
pub fn scrub_url(text: &str, url: &str) -> String {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return text.to_string();
    };
    let redacted = redact_url(url);
    text.replace(url, &redacted).replace(parsed.as_str(), &redacted)
}

/// The dispatcher's resolver: every connection to a host name goes to
/// addresses vetted in the same resolution (no second look-up to rebind).
pub(super) struct VettingResolver(pub(super) AllowList);

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow = self.0.clone();
        Box::pin(async move {
            let addrs = allow.vet_host(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::signature;

    #[test]
    fn internal_addresses_table() {
        let table = [
            // IPv4: the edges of every refused block, and their neighbours.
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.1", false),
            ("9.255.255.255", false),
            ("10.1.2.3", true),
            ("11.0.0.0", false),
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            ("127.0.0.1", true),
            ("127.255.255.254", true),
            ("169.254.169.254", true),
            ("169.255.0.1", false),
            ("172.15.255.255", false),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("192.0.0.1", true),
            ("192.0.0.255", true),
            ("192.0.1.1", false),
            ("192.0.2.1", true),
            ("192.88.99.1", true),
            ("192.168.1.1", true),
            ("192.169.0.1", false),
            ("198.17.255.255", false),
            ("198.18.0.1", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            ("198.51.100.7", true),
            ("203.0.113.7", true),
            ("203.0.114.1", false),
            ("223.255.255.255", false),
            ("224.0.0.1", true),
            ("239.255.255.250", true),
            ("240.0.0.1", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("140.82.112.3", false),
            // IPv6 outside global unicast 2000::/3.
            ("::", true),
            ("::1", true),
            ("::127.0.0.1", true),
            ("::8.8.8.8", true),
            ("::ffff:0:808:808", true),
            ("64:ff9b:1::808:808", true),
            ("100::1", true),
            ("fc00::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("feff::1", true),
            ("ff02::1", true),
            ("ff0e::1", true),
            ("4000::1", true),
            ("1fff:ffff::1", true),
            // Inside it.
            ("2001:4860:4860::8888", false),
            ("2606:4700::1111", false),
            ("2001::1", true),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true),
            ("2001:2::1", true),
            ("2001:1ff::1", true),
            ("2001:200::1", false),
            ("2001:db8::1", true),
            ("2001:db9::1", false),
            ("3fff::1", true),
            ("3fff:1000::1", false),
            ("3ffe::1", false),
            // IPv4 in IPv6: mapped, NAT64 and 6to4 by the embedded address.
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::127.0.0.1", true),
            ("64:ff9b::169.254.169.254", true),
            ("64:ff9b::8.8.8.8", false),
            ("64:ff9b:0:0:1::808:808", true),
            ("2002:7f00:1::", true),
            ("2002:a00:1::1", true),
            ("2002:c612:1::", true),
            ("2002:808:808::1", false),
        ];
        for (ip, internal) in table {
            assert_eq!(is_internal(ip.parse().unwrap()), internal, "{ip}");
        }
    }

    /// Every refused IPv4 block is refused in each IPv6 form that carries
    /// an IPv4 address, and every public address is judged public in the
    /// forms judged by it (IPv4-compatible ones are refused whole).
    #[test]
    fn ipv4_in_ipv6_is_judged_by_the_ipv4_address() {
        use std::net::{Ipv4Addr, Ipv6Addr};
        let public = [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(140, 82, 112, 3)];
        let blocks = INTERNAL_V4.iter().flat_map(|&(net, bits)| {
            let last = net | u32::MAX.checked_shr(u32::from(bits)).unwrap_or(0);
            [Ipv4Addr::from(net), Ipv4Addr::from(last)]
        });
        let v4s = blocks.map(|a| (a, true)).chain(public.map(|a| (a, false)));
        for (v4, internal) in v4s {
            assert_eq!(is_internal(v4.into()), internal, "{v4}");
            let n = u128::from(u32::from(v4));
            let forms = [
                ("mapped", IpAddr::V6(v4.to_ipv6_mapped()), internal),
                ("NAT64", IpAddr::V6(Ipv6Addr::from((0x0064_ff9b << 96) | n)), internal),
                (
                    "6to4",
                    IpAddr::V6(Ipv6Addr::from((0x2002 << 112) | (n << 80) | 1)),
                    internal,
                ),
                ("compatible", IpAddr::V6(Ipv6Addr::from(n)), true),
            ];
            for (form, ip, expected) in forms {
                assert_eq!(is_internal(ip), expected, "{v4} {form}: {ip}");
            }
        }
    }

    #[test]
    fn redacted_urls_table() {
        let table = [
            (
                "https://gitlab.example/api/v4/projects/1/trigger/pipeline?token=glptt-s3cr3t&ref=main",
                "https://gitlab.example/api/…/projects/…/trigger/pipeline?token=…&ref=…",
            ),
            (
                "https://hooks.slack.com/services/T0ABC123/B0DEF456/XyZsecret123",
                "https://hooks.slack.com/services/…/…/…",
            ),
            (
                "https://discord.example/api/webhooks/1234/abcdEFGHijklMNOPqrstUVWXyz",
                "https://discord.example/api/webhooks/…/…",
            ),
            (
                "https://user:pa55@ci.example:8443/hook",
                "https://…@ci.example:8443/hook",
            ),
            ("https://user@ci.example/hook", "https://…@ci.example/hook"),
            ("https://:pa55@ci.example/hook", "https://…@ci.example/hook"),
            ("https://ci.example/hook?s3cr3t", "https://ci.example/hook?…"),
            ("https://ci.example/hook?a=1&&b", "https://ci.example/hook?a=…&&…"),
            ("https://ci.example/hook?a=", "https://ci.example/hook?a=…"),
            ("https://ci.example/hook#s3cr3t", "https://ci.example/hook#…"),
            ("http://[::1]:8080/x?k=v", "http://[::1]:8080/x?k=…"),
            ("https://ci.example:443/hook", "https://ci.example/hook"),
            ("https://ci.example/a/b", "https://ci.example/a/b"),
            ("https://ci.example", "https://ci.example/"),
            ("not a url?token=s3cr3t", "(not a URL)"),
        ];
        for (url, shown) in table {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let error = "error sending request for url (https://ci.example/h?token=s3cr3t): refused";
        assert_eq!(
            scrub_url(error, "https://ci.example/h?token=s3cr3t"),
            "error sending request for url (https://ci.example/h?token=…): refused"
        );
        // As written by the parser: the default port dropped.
        let error = "for url (https://ci.example/h?token=s3cr3t)";
        assert_eq!(
            scrub_url(error, "https://ci.example:443/h?token=s3cr3t"),
            "for url (https://ci.example/h?token=…)"
        );
    }

    #[test]
    fn allow_list_and_signatures() {
        let allow: AllowList = "127.0.0.1, 10.0.0.0/8, hooks.internal".parse().unwrap();
        assert!(allow.allows("x", "127.0.0.1".parse().unwrap()));
        assert!(allow.allows("x", "10.9.9.9".parse().unwrap()));
        assert!(!allow.allows("x", "192.168.0.1".parse().unwrap()));
        assert!(allow.allows("hooks.internal", "192.168.0.1".parse().unwrap()));
        assert!("bad host!".parse::<AllowList>().is_err());
        // HMAC-SHA256("key", "1.d.E.body"), as Python's hmac module computes it.
        assert_eq!(
            signature("key", 1, "d", "E", b"body"),
            "sha256=6375a7213a55c2d4e6bab1e178070f5e426b2aa11029b9ab1b1204819379d07c"
        );
    }
}
