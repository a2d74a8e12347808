//! The SSRF guard: outbound requests may not reach private, loopback, link-local or other
//! internal addresses unless the bot is explicitly allowed to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// True for addresses that belong to this host or an internal network, or that a request
/// cannot be trusted to reach only the outside through: an IPv6 address that carries an IPv4
/// one (IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) is judged by the IPv4 address it carries; the local-use NAT64 prefix
/// `64:ff9b:1::/48`, Teredo `2001::/32` (whose IPv4 end is hidden), discard-only `100::/64`
/// and the documentation ranges are refused whole.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = carried_v4(v6) {
                return is_internal_v4(v4);
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated, still routed by some)
                || (s[0], s[1], s[2]) == (0x64, 0xff9b, 1) // local-use NAT64 64:ff9b:1::/48
                || (s[0], s[1]) == (0x2001, 0) // Teredo 2001::/32
                || (s[0], s[1]) == (0x2001, 0xdb8) // documentation 2001:db8::/32
                || (s[0], s[1], s[2], s[3]) == (0x100, 0, 0, 0) // discard-only 100::/64
        }
    }
}

/// The IPv4 address an IPv6 address stands for, where it carries one in a known place.
fn carried_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // IPv4-compatible ::a.b.c.d (also `::1` and `::`, which read as 0.0.0.x: internal).
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // NAT64 well-known prefix (RFC 6052): the gateway connects to the address carried.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        // 6to4 (RFC 3056): the relay sends to the address in bits 16..48.
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // includes cloud metadata 169.254.169.254
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || o[0] == 0
        || o[0] >= 240 // reserved 240/4
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // carrier-grade NAT 100.64/10
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || (o[0], o[1], o[2]) == (192, 0, 0) // IETF protocol assignments 192.0.0/24
        || (o[0], o[1], o[2]) == (192, 0, 2) // documentation TEST-NET-1
        || (o[0], o[1], o[2]) == (198, 51, 100) // TEST-NET-2
        || (o[0], o[1], o[2]) == (203, 0, 113) // TEST-NET-3
}

/// A resolver that drops internal addresses, so a name that resolves (or re-resolves) to an
/// internal address cannot be reached.
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                addrs.into_iter().filter(|a| !is_internal(a.ip())).collect();
            if allowed.is_empty() {
                return Err(format!(
                    "ssrf-guard: {host} resolves only to private or loopback addresses"
                )
                .into());
            }
            let it: Addrs = Box::new(allowed.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "172.32.0.1"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    /// A name is resolved once, by the guard, and the connection goes to the addresses it let
    /// through: a name that resolves only to internal addresses gives the client nothing to
    /// connect to.
    #[tokio::test]
    async fn names_that_resolve_inside_give_nothing_to_connect_to() {
        use std::str::FromStr;
        let refused = GuardedResolver
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .expect("localhost is refused");
        assert!(refused.to_string().contains("ssrf-guard"), "{refused}");
        let open = GuardedResolver
            .resolve(Name::from_str("127.0.0.1").unwrap())
            .await;
        assert!(open.is_err(), "an address given as a name is checked too");
    }

    /// Each way of writing an internal IPv4 address as IPv6 is refused, while the same forms
    /// carrying a public address pass.
    #[test]
    fn ipv4_carried_in_ipv6_is_judged_by_the_ipv4_address() {
        let bypasses = [
            ("IPv4-mapped loopback", "::ffff:127.0.0.1", "::ffff:8.8.8.8"),
            (
                "IPv4-mapped metadata",
                "::ffff:a9fe:a9fe",
                "::ffff:5db8:d822",
            ),
            ("IPv4-compatible loopback", "::127.0.0.1", "::8.8.8.8"),
            ("IPv4-compatible private", "::10.0.0.1", "::93.184.216.34"),
            ("NAT64 loopback", "64:ff9b::7f00:1", "64:ff9b::808:808"),
            (
                "NAT64 metadata",
                "64:ff9b::169.254.169.254",
                "64:ff9b::93.184.216.34",
            ),
            ("NAT64 private", "64:ff9b::c0a8:101", "64:ff9b::1.1.1.1"),
            ("NAT64 prefix itself", "64:ff9b::", "64:ff9b::9.9.9.9"),
            ("6to4 loopback", "2002:7f00:1::1", "2002:808:808::1"),
            ("6to4 private", "2002:a00:1::", "2002:5db8:d822::"),
        ];
        for (what, internal, public) in bypasses {
            assert!(is_internal(internal.parse().unwrap()), "{what}: {internal}");
            assert!(
                !is_internal(public.parse().unwrap()),
                "{what} (public): {public}"
            );
        }
        // Refused whole: their IPv4 end is hidden or they are not for the outside.
        for whole in ["64:ff9b:1::8.8.8.8", "2001:0:4136:e378:8000:63bf:3fff:fdd2"] {
            assert!(is_internal(whole.parse().unwrap()), "{whole}");
        }
    }
}
