//! Outbound HTTP requests to addresses that users choose: webhook deliveries now, OIDC discovery
//! later. One shared client that reaches public addresses only. A target URL is checked when it
//! is saved ([`OutboundPolicy::check_url`]) and again before every request; a host name is
//! resolved when a connection is opened, by a resolver that drops every forbidden address
//! ([`is_forbidden`]), so a name that starts resolving to an internal address (DNS rebinding)
//! is refused instead of reached. Hosts listed in `ROSTER_WEBHOOK_ALLOWED_HOSTS` (tests, a
//! receiver on the same network) may use plain http and private addresses.
//!
//! This module must never follow a redirect, use a proxy (the proxy would resolve the name, not
//! us), read more than [`MAX_BODY`] bytes of an answer, or log what it sends: the headers carry
//! signatures and the bodies carry tenant data.

use std::collections::HashSet;
use std::error::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};

/// The longest target URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// How much of an answer's body is read and kept (4 KiB); the rest is never read.
pub const MAX_BODY: usize = 4096;

/// What every request says it is.
const USER_AGENT: &str = concat!("Roster-Webhooks/", env!("CARGO_PKG_VERSION"));

/// Why an address is refused, for the messages.
const FORBIDDEN_KINDS: &str =
    "private, loopback, link-local, multicast, reserved and cloud metadata addresses are not allowed";

/// Which targets may be reached beyond public https: hosts allowed over plain http and at
/// private addresses. A host is allowed as written in the URL: allowing `127.0.0.1` does not
/// allow a name that resolves to it.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed_hosts: Arc<HashSet<String>>,
}

impl OutboundPolicy {
    /// From `ROSTER_WEBHOOK_ALLOWED_HOSTS`: host names or IP literals (IPv6 with or without
    /// brackets), compared without case and without a trailing dot.
    pub fn new(allowed_hosts: &[String]) -> Self {
        Self { allowed_hosts: Arc::new(allowed_hosts.iter().filter_map(|host| normalize_host(host)).collect()) }
    }

    /// Whether `host` (a name or an IP literal) is on the allow-list.
    pub fn allows(&self, host: &str) -> bool {
        normalize_host(host).is_some_and(|host| self.allowed_hosts.contains(&host))
    }

    /// Parses and checks a target URL, when it is saved and again before each request: absolute,
    /// https (http only for an allowed host), with a host, without a user name, password or
    /// fragment, at most [`MAX_URL_LEN`] characters, and an IP-literal host must be a public
    /// address unless allowed. Host names are checked when they are resolved, by the client.
    /// The error is a message about the URL that follows its field name: "must use https".
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        if url.len() > MAX_URL_LEN {
            return Err(format!("must be at most {MAX_URL_LEN} characters long"));
        }
        let parsed = Url::parse(url).map_err(|e| format!("must be an absolute URL ({e})"))?;
        let https = match parsed.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err("must use https".to_string()),
        };
        let host = parsed.host_str().filter(|host| !host.is_empty()).ok_or("must name a host")?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not contain a user name or password".to_string());
        }
        if parsed.fragment().is_some() {
            return Err("must not contain a fragment (#...)".to_string());
        }
        let allowed = self.allows(host);
        if let Some(ip) = ip_literal(host)
            && is_forbidden(ip)
            && !allowed
        {
            return Err(format!("must not point to {ip}: {FORBIDDEN_KINDS}"));
        }
        if !https && !allowed {
            return Err("must use https".to_string());
        }
        Ok(parsed)
    }
}

/// The form in which hosts are compared: lower case, no brackets, no trailing dot, IP literals
/// in their canonical text.
fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(match host.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.to_ascii_lowercase(),
    })
}

/// The address a URL's host names literally, if it is one (`url` has already turned every
/// IPv4 spelling, such as `0x7f.1`, into dotted decimal, and brackets IPv6).
fn ip_literal(host: &str) -> Option<IpAddr> {
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.parse().ok()
}

/// IPv4 ranges no request may reach: (network, prefix length).
const FORBIDDEN_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // carrier-grade NAT, Alibaba metadata 100.100.100.200
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast 255.255.255.255
];

/// IPv6 ranges no request may reach: (network, prefix length). The ranges that embed an IPv4
/// address (mapped, compatible, NAT64, 6to4) are judged by that address instead.
const FORBIDDEN_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),    // IETF protocol assignments, Teredo
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),    // documentation
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local, AWS metadata fd00:ec2::254
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),    // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),     // multicast
];

/// Whether no outbound request may reach `ip` (unless its host is allowed): loopback, private,
/// carrier-grade NAT, link-local, multicast, unspecified, broadcast, reserved, documentation,
/// benchmarking, unique-local, cloud metadata, and IPv6 forms that embed any of these.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => FORBIDDEN_V4.iter().any(|&(net, len)| in_prefix(v4.to_bits(), net.to_bits(), len)),
        IpAddr::V6(v6) => {
            if v6.is_unspecified() || v6.is_loopback() {
                return true;
            }
            if let Some(v4) = embedded_v4(v6) {
                return is_forbidden(IpAddr::V4(v4));
            }
            FORBIDDEN_V6.iter().any(|&(net, len)| in_prefix(v6.to_bits(), net.to_bits(), len))
        }
    }
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
/// `::/96`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = v6.to_bits();
    let low32 = Ipv4Addr::from_bits(bits as u32);
    if in_prefix(bits, 0xffff_0000_0000, 96) || in_prefix(bits, 0, 96) {
        return Some(low32);
    }
    if in_prefix(bits, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0).to_bits(), 96) {
        return Some(low32);
    }
    if in_prefix(bits, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0).to_bits(), 16) {
        return Some(Ipv4Addr::from_bits((bits >> 80) as u32));
    }
    None
}

/// Whether `addr` lies in `net`/`len` (both as integers of the same width).
fn in_prefix<T>(addr: T, net: T, len: u8) -> bool
where
    T: Copy + Eq + std::ops::Shr<u32, Output = T>,
{
    let width = std::mem::size_of::<T>() as u32 * 8;
    let shift = width - u32::from(len);
    if shift >= width {
        return true;
    }
    addr >> shift == net >> shift
}

/// Resolves host names with the system resolver and keeps only the addresses a request may
/// reach: every address of an allowed host, the public ones of any other. Also used by the
/// SSO client (`sso::http`), with its own allow-list.
pub struct GuardedResolver {
    policy: OutboundPolicy,
}

impl GuardedResolver {
    pub fn new(policy: OutboundPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        let allowed = self.policy.allows(&host);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| format!("{host} could not be resolved: {e}"))?
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            let (kept, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|addr| allowed || !is_forbidden(addr.ip()));
            if kept.is_empty() {
                let refused: Vec<String> = refused.iter().map(|addr| addr.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves only to addresses that are not allowed ({}): {FORBIDDEN_KINDS}",
                    refused.join(", ")
                )
                .into());
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// A request the target answered with a 2xx status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub status: u16,
    pub duration: Duration,
    /// The start of the answer's body: at most [`MAX_BODY`] bytes, invalid UTF-8 replaced.
    pub body: String,
}

/// A request that did not get a 2xx answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// What went wrong, for the delivery log: "answered 500 Internal Server Error: ...",
    /// "no answer within 10s", "could not connect: ...".
    pub error: String,
    /// The status the target answered with, if it answered.
    pub status: Option<u16>,
    pub duration: Duration,
}

/// The outbound HTTP client: one per process, shared (it pools connections).
pub struct Outbound {
    client: reqwest::Client,
    policy: OutboundPolicy,
}

impl Outbound {
    pub fn new(policy: OutboundPolicy) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver { policy: policy.clone() }))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("could not build the outbound HTTP client: {}", describe(&e)))?;
        Ok(Self { client, policy })
    }

    /// POSTs `body` to `url` with `headers` (each replacing one of the same name), as
    /// `application/json` with the user agent `Roster-Webhooks/<version>`. The URL is checked
    /// again (the allow-list may have changed since it was saved), host names are resolved to
    /// allowed addresses only, redirects are not followed (a 3xx is a failure), and the whole
    /// exchange ends within `timeout`. A 2xx answer is delivered even when its body is cut
    /// short by the deadline or the connection: the target has accepted the request.
    pub async fn post(
        &self,
        url: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Delivered, Failed> {
        let started = Instant::now();
        let fail = |error: String, status: Option<u16>| Failed { error, status, duration: started.elapsed() };
        let url = self.policy.check_url(url).map_err(|e| fail(format!("the URL {e}"), None))?;
        let headers = header_map(headers).map_err(|e| fail(e, None))?;
        let deadline = tokio::time::Instant::now() + timeout;

        let sent = tokio::time::timeout_at(deadline, self.client.post(url).headers(headers).body(body).send()).await;
        let mut response = match sent {
            Err(_) => return Err(fail(format!("no answer within {timeout:?}"), None)),
            Ok(Err(e)) => return Err(fail(describe(&e), None)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers().get(LOCATION).and_then(|value| value.to_str().ok());
            let to = location.map(|l| format!(" to {}", cut(l, 256))).unwrap_or_default();
            return Err(fail(
                format!("answered {status}, a redirect{to}; redirects are not followed"),
                Some(status.as_u16()),
            ));
        }

        let mut read = Vec::new();
        while read.len() < MAX_BODY {
            match tokio::time::timeout_at(deadline, response.chunk()).await {
                Ok(Ok(Some(chunk))) => read.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - read.len())]),
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
            }
        }
        let text = String::from_utf8_lossy(&read);
        if !status.is_success() {
            let start = cut(text.trim(), 256);
            let detail = if start.is_empty() { String::new() } else { format!(": {start}") };
            return Err(fail(format!("answered {status}{detail}"), Some(status.as_u16())));
        }
        Ok(Delivered { status: status.as_u16(), duration: started.elapsed(), body: cut(&text, MAX_BODY).to_string() })
    }
}

/// The request's headers: JSON content, then the caller's (which replace any of the same name).
fn header_map(headers: Vec<(String, String)>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| format!("invalid value for the header {name}"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    &text[..text.floor_char_boundary(max)]
}

/// A transport error as one line: what failed and its root cause ("could not connect:
/// Connection refused"), without the URL (the delivery log shows it) or the client's wrappers.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_connect() {
        "could not connect"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "the request failed"
    };
    let mut root: &dyn Error = error;
    while let Some(cause) = root.source() {
        root = cause;
    }
    format!("{what}: {root}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    fn policy(allowed: &[&str]) -> OutboundPolicy {
        OutboundPolicy::new(&allowed.iter().map(|h| h.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forbidden_addresses() {
        let forbidden = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.100.100.200",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::",
            "2002:c0a8:101::1",
            "2001::1",
            "2001:db8::1",
            "100::1",
            "fc00::1",
            "fd00:ec2::254",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::2",
        ];
        for ip in forbidden {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} should be forbidden");
        }
        let public = [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.1.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2001:4860:4860::8888",
        ];
        for ip in public {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked_when_saved() {
        let strict = policy(&[]);
        let local = policy(&["127.0.0.1", "Receiver.Test", "[::1]"]);
        let ok = [
            "https://example.com/hooks",
            "https://example.com:8443/hooks?tenant=1",
            "https://8.8.8.8/x",
            "https://[2606:4700:4700::1111]/x",
            "HTTPS://EXAMPLE.COM/",
        ];
        for url in ok {
            assert!(strict.check_url(url).is_ok(), "{url} should be accepted");
        }
        let refused = [
            ("http://example.com/hooks", "must use https"),
            ("ftp://example.com/hooks", "must use https"),
            ("/hooks", "absolute URL"),
            ("example.com/hooks", "absolute URL"),
            ("https://user:pass@example.com/", "user name or password"),
            ("https://user@example.com/", "user name or password"),
            ("https://example.com/#frag", "fragment"),
            ("https://127.0.0.1/", "127.0.0.1"),
            ("https://0x7f.1/", "127.0.0.1"),
            ("https://2130706433/", "127.0.0.1"),
            ("https://10.0.0.1/", "not allowed"),
            ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
            ("https://[::1]/", "not allowed"),
            ("https://[::ffff:192.168.0.1]/", "not allowed"),
            ("https://[fd00:ec2::254]/", "not allowed"),
            ("http://127.0.0.1:8080/", "not allowed"),
        ];
        for (url, message) in refused {
            let error = strict.check_url(url).unwrap_err();
            assert!(error.contains(message), "{url}: {error}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(strict.check_url(&long).unwrap_err().contains("2048"));
        assert!(strict.check_url(&long[..MAX_URL_LEN]).is_ok());

        assert!(local.check_url("http://127.0.0.1:8080/hooks").is_ok());
        assert!(local.check_url("http://receiver.test/hooks").is_ok());
        assert!(local.check_url("http://RECEIVER.TEST./hooks").is_ok());
        assert!(local.check_url("http://[::1]:9000/").is_ok());
        assert_eq!(local.check_url("http://other.test/").unwrap_err(), "must use https");
        assert!(local.check_url("http://127.0.0.2/").unwrap_err().contains("not allowed"));
        assert!(local.check_url("http://user:pw@127.0.0.1/").unwrap_err().contains("password"));
    }

    /// One request as the test server saw it.
    struct Seen {
        head: String,
        body: String,
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1: for each request, reports it, waits `delay`,
    /// answers `answer` as it is and closes the connection.
    async fn serve(answer: Vec<u8>, delay: Duration) -> (u16, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen, receiver) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answer, seen) = (answer.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut read = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let head_end = loop {
                        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read.extend_from_slice(&buffer[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&read[..head_end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length:"))
                        .map_or(0, |value| value.trim().parse::<usize>().unwrap());
                    while read.len() < head_end + length {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read.extend_from_slice(&buffer[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&read[head_end..]).into_owned();
                    let _ = seen.send(Seen { head, body });
                    tokio::time::sleep(delay).await;
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (port, receiver)
    }

    fn answer(status: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
        let mut answer =
            format!("HTTP/1.1 {status}\r\n{extra_headers}content-length: {}\r\nconnection: close\r\n\r\n", body.len())
                .into_bytes();
        answer.extend_from_slice(body);
        answer
    }

    const TIMEOUT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn posts_json_with_the_given_headers_to_an_allowed_host() {
        let (port, mut seen) = serve(answer("200 OK", "", b"thanks"), Duration::ZERO).await;
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let headers = vec![("webhook-id".to_string(), "msg_1".to_string())];
        let delivered = outbound
            .post(&format!("http://127.0.0.1:{port}/hooks"), headers, br#"{"a":1}"#.to_vec(), TIMEOUT)
            .await
            .unwrap();
        assert_eq!(delivered.status, 200);
        assert_eq!(delivered.body, "thanks");
        let request = seen.recv().await.unwrap();
        assert!(request.head.starts_with("post /hooks http/1.1\r\n"), "{}", request.head);
        assert!(request.head.contains("content-type: application/json\r\n"));
        assert!(request.head.contains(&format!("user-agent: roster-webhooks/{}\r\n", env!("CARGO_PKG_VERSION"))));
        assert!(request.head.contains("webhook-id: msg_1\r\n"));
        assert_eq!(request.body, r#"{"a":1}"#);
    }

    #[tokio::test]
    async fn a_private_address_is_refused_unless_allowed() {
        let (port, mut seen) = serve(answer("200 OK", "", b""), Duration::ZERO).await;
        let outbound = Outbound::new(policy(&[])).unwrap();
        for url in [format!("http://127.0.0.1:{port}/"), format!("https://127.0.0.1:{port}/")] {
            let failed = outbound.post(&url, vec![], b"{}".to_vec(), TIMEOUT).await.unwrap_err();
            assert!(failed.error.contains("127.0.0.1: private, loopback"), "{}", failed.error);
            assert!(failed.error.contains("not allowed"), "{}", failed.error);
            assert_eq!(failed.status, None);
        }
        assert!(seen.try_recv().is_err(), "nothing reached the server");
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_allowed() {
        let (port, mut seen) = serve(answer("204 No Content", "", b""), Duration::ZERO).await;
        // Allowing the address does not allow a name that resolves to it.
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let failed = outbound.post(&format!("https://localhost:{port}/"), vec![], vec![], TIMEOUT).await.unwrap_err();
        assert!(failed.error.contains("localhost resolves only to addresses that are not allowed"), "{}", failed.error);
        assert!(failed.error.starts_with("could not connect: localhost resolves"), "{}", failed.error);
        assert_eq!(failed.status, None);
        assert!(seen.try_recv().is_err(), "nothing reached the server");

        let outbound = Outbound::new(policy(&["localhost"])).unwrap();
        let delivered = outbound.post(&format!("http://localhost:{port}/"), vec![], vec![], TIMEOUT).await.unwrap();
        assert_eq!(delivered.status, 204);
        assert!(seen.recv().await.is_some());
    }

    #[tokio::test]
    async fn redirects_are_failures_and_not_followed() {
        let (elsewhere, mut followed) = serve(answer("200 OK", "", b""), Duration::ZERO).await;
        let location = format!("location: http://127.0.0.1:{elsewhere}/elsewhere\r\n");
        let (port, mut seen) = serve(answer("302 Found", &location, b""), Duration::ZERO).await;
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let failed = outbound.post(&format!("http://127.0.0.1:{port}/"), vec![], vec![], TIMEOUT).await.unwrap_err();
        assert_eq!(failed.status, Some(302));
        assert!(failed.error.contains("302 Found"), "{}", failed.error);
        assert!(failed.error.contains("not followed"), "{}", failed.error);
        assert!(failed.error.contains("/elsewhere"), "{}", failed.error);
        assert!(seen.recv().await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(followed.try_recv().is_err(), "the redirect was followed");
    }

    #[tokio::test]
    async fn an_error_status_is_a_failure_with_the_start_of_the_body() {
        let (port, _seen) = serve(answer("500 Internal Server Error", "", b"  database down\n"), Duration::ZERO).await;
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let failed = outbound.post(&format!("http://127.0.0.1:{port}/"), vec![], vec![], TIMEOUT).await.unwrap_err();
        assert_eq!(failed.status, Some(500));
        assert_eq!(failed.error, "answered 500 Internal Server Error: database down");
    }

    #[tokio::test]
    async fn a_slow_server_hits_the_timeout() {
        let (port, _seen) = serve(answer("200 OK", "", b""), Duration::from_secs(30)).await;
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let timeout = Duration::from_millis(300);
        let failed = outbound.post(&format!("http://127.0.0.1:{port}/"), vec![], vec![], timeout).await.unwrap_err();
        assert_eq!(failed.error, "no answer within 300ms");
        assert_eq!(failed.status, None);
        assert!(failed.duration >= timeout && failed.duration < Duration::from_secs(5), "{:?}", failed.duration);
    }

    #[tokio::test]
    async fn a_huge_body_is_cut_at_4_kib() {
        let (port, _seen) = serve(answer("200 OK", "", &vec![b'x'; 8 << 20]), Duration::ZERO).await;
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let delivered = outbound.post(&format!("http://127.0.0.1:{port}/"), vec![], vec![], TIMEOUT).await.unwrap();
        assert_eq!(delivered.body.len(), MAX_BODY);
        assert!(delivered.body.bytes().all(|b| b == b'x'));

        // Invalid UTF-8 is replaced, and the result still fits.
        let (port, _seen) = serve(answer("200 OK", "", &vec![0xff; 8 << 10]), Duration::ZERO).await;
        let delivered = outbound.post(&format!("http://127.0.0.1:{port}/"), vec![], vec![], TIMEOUT).await.unwrap();
        assert!(delivered.body.len() <= MAX_BODY && delivered.body.starts_with('\u{fffd}'));
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_failure() {
        let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let outbound = Outbound::new(policy(&["127.0.0.1"])).unwrap();
        let failed = outbound.post(&format!("http://127.0.0.1:{port}/"), vec![], vec![], TIMEOUT).await.unwrap_err();
        assert!(failed.error.starts_with("could not connect: "), "{}", failed.error);
        assert!(failed.error.to_lowercase().contains("refused"), "{}", failed.error);
        assert_eq!(failed.status, None);
    }

    #[tokio::test]
    async fn bad_headers_and_urls_fail_before_sending() {
        let outbound = Outbound::new(policy(&[])).unwrap();
        let failed = outbound.post("http://example.com/", vec![], vec![], TIMEOUT).await.unwrap_err();
        assert_eq!(failed.error, "the URL must use https");
        let headers = vec![("bad header".to_string(), "x".to_string())];
        let failed = outbound.post("https://example.com/", headers, vec![], TIMEOUT).await.unwrap_err();
        assert!(failed.error.contains("invalid header name"), "{}", failed.error);
    }
}
