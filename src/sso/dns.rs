//! Domain verification's DNS lookup: the TXT records of `_roster-challenge.<domain>`, and what
//! a lookup found in words an owner can act on. It only reads DNS; deciding what the answer
//! means for a domain is `api::domains`.
//!
//! One resolver per process, built on first use (it needs the Tokio runtime) and kept in
//! `AppState::dns`: the system's (`/etc/resolv.conf`), or only the server of
//! `ROSTER_DNS_RESOLVER` (`host:port`, UDP then TCP) when that is set. Nothing is cached, so
//! a record published a second ago is seen by the next check; each query waits at most
//! [`QUERY_TIMEOUT`] and is tried twice, and the whole lookup gives up after
//! [`LOOKUP_DEADLINE`].

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{Name, RData};

/// How long one query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a whole lookup (both tries, both transports) may take.
pub const LOOKUP_DEADLINE: Duration = Duration::from_secs(8);

/// The label the challenge record lives under.
pub const CHALLENGE_LABEL: &str = "_roster-challenge";
/// The start of the challenge record's value.
pub const CHALLENGE_PREFIX: &str = "roster-verification=";

/// The name of `domain`'s challenge record.
pub fn challenge_name(domain: &str) -> String {
    format!("{CHALLENGE_LABEL}.{domain}")
}

/// The value of a challenge record for `token`.
pub fn challenge_value(token: &str) -> String {
    format!("{CHALLENGE_PREFIX}{token}")
}

/// What a TXT lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxtAnswer {
    /// The name has TXT records: each record's strings joined, as published.
    Records(Vec<String>),
    /// NXDOMAIN: the name does not exist.
    NoSuchName,
    /// The name exists but has no TXT record.
    NoRecords,
    /// No server answered in time.
    TimedOut,
    /// The resolver failed otherwise (refused, SERVFAIL, unreachable, misconfigured).
    Failed(String),
}

/// The process's resolver for domain verification (see the module header).
pub struct TxtResolver {
    server: Option<SocketAddr>,
    resolver: OnceLock<Result<TokioResolver, String>>,
}

impl TxtResolver {
    /// A resolver asking `server` only (`ROSTER_DNS_RESOLVER`), or the system's when `None`.
    /// Nothing is read or opened until the first lookup.
    pub fn new(server: Option<&str>) -> Result<Self, String> {
        let server = match server {
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|_| format!("DNS resolver {s:?}: give address:port"))?),
            None => None,
        };
        Ok(Self { server, resolver: OnceLock::new() })
    }

    fn options() -> ResolverOpts {
        let mut opts = ResolverOpts::default();
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = 1;
        // A check must see the record as published now, and a failed check must not stick.
        opts.cache_size = 0;
        opts.ndots = 0;
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
        opts.try_tcp_on_error = true;
        opts
    }

    fn build(&self) -> Result<TokioResolver, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match self.server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
                TokioResolver::builder_with_config(config, provider)
            }
            None => TokioResolver::builder(provider).map_err(|e| format!("reading the system's DNS settings: {e}"))?,
        };
        *builder.options_mut() = Self::options();
        builder.build().map_err(|e| format!("setting up the DNS resolver: {e}"))
    }

    /// Who is asked, for messages: `the DNS server 127.0.0.1:5353` or `the system's resolver`.
    pub fn describe(&self) -> String {
        match self.server {
            Some(addr) => format!("the DNS server {addr}"),
            None => "the system's DNS resolver".into(),
        }
    }

    /// The TXT records of `name` (a fully qualified name without the trailing dot).
    pub async fn txt(&self, name: &str) -> TxtAnswer {
        let resolver = match self.resolver.get_or_init(|| self.build()) {
            Ok(r) => r,
            Err(e) => return TxtAnswer::Failed(e.clone()),
        };
        let fqdn = match Name::from_ascii(format!("{name}.")) {
            Ok(n) => n,
            Err(e) => return TxtAnswer::Failed(format!("{name} is not a DNS name: {e}")),
        };
        let lookup = match tokio::time::timeout(LOOKUP_DEADLINE, resolver.txt_lookup(fqdn)).await {
            Err(_) => return TxtAnswer::TimedOut,
            Ok(result) => result,
        };
        match lookup {
            Ok(found) => {
                let records: Vec<String> = found
                    .answers()
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TXT(txt) => {
                            Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect::<String>())
                        }
                        _ => None,
                    })
                    .collect();
                if records.is_empty() { TxtAnswer::NoRecords } else { TxtAnswer::Records(records) }
            }
            Err(e) if e.is_nx_domain() => TxtAnswer::NoSuchName,
            Err(e) if e.is_no_records_found() => TxtAnswer::NoRecords,
            Err(hickory_resolver::net::NetError::Timeout) => TxtAnswer::TimedOut,
            Err(e) => TxtAnswer::Failed(e.to_string()),
        }
    }
}

/// What `answer` means for a challenge record expecting `expected`: `Ok` when one record is
/// exactly it (surrounding blanks and quotes forgiven), else what was found, in words.
pub fn judge(name: &str, expected: &str, answer: &TxtAnswer, asked: &str) -> Result<(), String> {
    match answer {
        TxtAnswer::Records(records) => {
            let clean = |r: &str| r.trim().trim_matches('"').trim().to_string();
            if records.iter().any(|r| clean(r) == expected) {
                return Ok(());
            }
            let shown: Vec<String> = records.iter().take(10).map(|r| format!("{:?}", truncate(r, 200))).collect();
            let more = if records.len() > 10 { format!(" and {} more", records.len() - 10) } else { String::new() };
            Err(format!(
                "{name} has {} TXT record{} ({}{more}), but none is {expected:?}; publish that value exactly",
                records.len(),
                if records.len() == 1 { "" } else { "s" },
                shown.join(", ")
            ))
        }
        TxtAnswer::NoSuchName => Err(format!(
            "{name} does not exist (NXDOMAIN from {asked}); publish a TXT record there with the value {expected:?}"
        )),
        TxtAnswer::NoRecords => {
            Err(format!("{name} exists but has no TXT record ({asked}); publish one with the value {expected:?}"))
        }
        TxtAnswer::TimedOut => Err(format!(
            "no answer for {name} from {asked} within {} seconds; try again later",
            LOOKUP_DEADLINE.as_secs()
        )),
        TxtAnswer::Failed(why) => Err(format!("looking up {name} with {asked} failed: {why}; try again later")),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}...", s.chars().take(max).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_says_what_it_found() {
        let want = "roster-verification=abc";
        let name = "_roster-challenge.acme.example";
        assert!(judge(name, want, &TxtAnswer::Records(vec!["v=spf1 -all".into(), want.into()]), "x").is_ok());
        assert!(judge(name, want, &TxtAnswer::Records(vec![format!("\"{want}\" ")]), "x").is_ok());
        let wrong = judge(name, want, &TxtAnswer::Records(vec!["roster-verification=old".into()]), "x").unwrap_err();
        assert!(wrong.contains("\"roster-verification=old\"") && wrong.contains(want), "{wrong}");
        assert!(judge(name, want, &TxtAnswer::NoSuchName, "x").unwrap_err().contains("does not exist"));
        assert!(judge(name, want, &TxtAnswer::NoRecords, "x").unwrap_err().contains("no TXT record"));
        assert!(judge(name, want, &TxtAnswer::TimedOut, "x").unwrap_err().contains("no answer"));
        assert!(judge(name, want, &TxtAnswer::Failed("refused".into()), "x").unwrap_err().contains("refused"));
    }
}
