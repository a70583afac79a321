//! The client's address, for per-client limits and for the `ip` kept with audit events and
//! sessions: the connection's peer, unless the peer is a trusted proxy
//! (`ROSTER_TRUSTED_PROXIES`); then the nearest untrusted hop that the proxies recorded in
//! `Forwarded` (RFC 7239) or `X-Forwarded-For`. A header from an untrusted peer is never read
//! (any client can write one), and a malformed one falls back to the peer.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, web};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed; none by default. Registered as app data
/// (`startup`), so that anything holding the request can find the client.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `10.0.0.0/8, 192.0.2.7, fd00::/8`: CIDRs or single addresses, IPv4 or IPv6.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .or_else(|_| item.parse::<IpAddr>().map(|a| IpNet::from(a.to_canonical())))
                .map_err(|_| {
                    format!(
                        "ROSTER_TRUSTED_PROXIES: {item:?} is neither an address nor a CIDR; \
                         list them comma-separated, like 10.0.0.0/8, 192.0.2.7, fd00::/8"
                    )
                })?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is trusted; then, walking the
    /// forwarding chain from the right, the first hop that is not trusted (the leftmost when
    /// all are). A malformed or missing chain gives `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let Some(chain) = forwarded_chain(headers) else { return peer };
        chain.iter().rev().find(|ip| !self.trusts(**ip)).or(chain.first()).copied().unwrap_or(peer)
    }
}

/// The client address of `req` (see the module header); `None` without a peer (a test
/// request).
pub fn client_addr(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    Some(match req.app_data::<web::Data<TrustedProxies>>() {
        Some(trusted) => trusted.client(peer, req.headers()),
        None => peer.to_canonical(),
    })
}

/// The hops the proxies recorded, client first: from `Forwarded` when present, else from
/// `X-Forwarded-For` (every line of the header, in order). `None` when there is none or any
/// entry is not an address.
fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let lines = |name: &str| -> Option<Vec<&str>> {
        headers.get_all(name).map(|v| v.to_str().ok()).collect::<Option<Vec<_>>>().filter(|l| !l.is_empty())
    };
    let chain: Option<Vec<IpAddr>> = if let Some(lines) = lines("forwarded") {
        lines.iter().flat_map(|l| split_outside_quotes(l, ',')).map(forwarded_for).collect()
    } else {
        lines("x-forwarded-for")?.iter().flat_map(|l| l.split(',')).map(|hop| hop_addr(hop.trim())).collect()
    };
    chain.filter(|c| !c.is_empty())
}

/// The `for=` of one `Forwarded` element (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8:cafe::17]:4711"`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = split_outside_quotes(element, ';').into_iter().find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim().eq_ignore_ascii_case("for").then_some(value.trim())
    })?;
    let value = match value.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => value,
    };
    hop_addr(value)
}

/// One hop: an address, with or without a port (`192.0.2.60:8080`, `[2001:db8::1]:4711`,
/// `[2001:db8::1]`, `2001:db8::1`).
fn hop_addr(hop: &str) -> Option<IpAddr> {
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<IpAddr>().ok())?;
    Some(ip.to_canonical())
}

/// `s` split at `sep`, except inside double quotes (RFC 7239 values may be quoted strings).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(s[start..i].trim());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let trusted = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(trusted.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
    }

    #[test]
    fn the_chain_is_walked_from_the_right_past_trusted_hops() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").unwrap();
        let peer = ip("10.0.0.1");
        let xff = |v| headers(&[("x-forwarded-for", v)]);
        assert_eq!(trusted.client(peer, &xff("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(trusted.client(peer, &xff("6.6.6.6, 203.0.113.9, 192.0.2.7, 10.1.1.1")), ip("203.0.113.9"));
        assert_eq!(trusted.client(peer, &xff("10.2.2.2, 192.0.2.7")), ip("10.2.2.2"), "all trusted: the leftmost");
        let two_lines = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.9, 10.1.1.1")]);
        assert_eq!(trusted.client(peer, &two_lines), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_takes_quoted_ipv6_and_ports() {
        let trusted = TrustedProxies::parse("10.0.0.0/8,::1").unwrap();
        let fwd = |v| headers(&[("forwarded", v)]);
        let peer = ip("::1");
        assert_eq!(
            trusted.client(peer, &fwd(r#"for="[2001:db8:cafe::17]:4711";proto=https, For=10.0.0.5"#)),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(trusted.client(peer, &fwd(r#"for="[2001:db8::1]""#)), ip("2001:db8::1"));
        assert_eq!(trusted.client(peer, &fwd("proto=http;for=192.0.2.60:8080;by=10.0.0.1")), ip("192.0.2.60"));
        assert_eq!(trusted.client(peer, &fwd(r#"for="a;b,c" , for=192.0.2.60"#)), peer, "not an address");
        // Forwarded wins over X-Forwarded-For when both are sent.
        let both = headers(&[("forwarded", "for=192.0.2.60"), ("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(trusted.client(peer, &both), ip("192.0.2.60"));
    }

    #[test]
    fn malformed_chains_fall_back_to_the_peer() {
        let trusted = TrustedProxies::parse("127.0.0.1").unwrap();
        let peer = ip("127.0.0.1");
        for bad in ["", "unknown", "1.2.3.4, nonsense", "1.2.3.4,,5.6.7.8", "999.1.1.1"] {
            assert_eq!(trusted.client(peer, &headers(&[("x-forwarded-for", bad)])), peer, "{bad:?}");
        }
        for bad in ["for=unknown", "for=_hidden", "proto=https", r#"for="[::1"#] {
            assert_eq!(trusted.client(peer, &headers(&[("forwarded", bad)])), peer, "{bad:?}");
        }
    }

    #[test]
    fn bad_entries_are_refused_by_name() {
        assert!(TrustedProxies::parse("10.0.0.0/33").unwrap_err().contains("ROSTER_TRUSTED_PROXIES"));
        assert!(TrustedProxies::parse("proxy.internal").is_err());
        assert_eq!(TrustedProxies::parse(" ").unwrap().0.len(), 0);
        assert!(TrustedProxies::parse("::ffff:10.0.0.1").unwrap().trusts(ip("10.0.0.1")));
    }
}
