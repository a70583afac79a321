//! The outbound HTTP client of single sign-on: OIDC discovery, token and key requests (and the
//! SAML metadata URLs). The identity provider's URLs are chosen by tenant owners, so this client
//! reaches public addresses over https only, the way webhooks do (`crate::outbound`): a URL's
//! IP literal is checked before each request, and host names are resolved by the guarded
//! resolver, which drops private, loopback, link-local and metadata addresses (so a name that
//! starts resolving to one is refused, not reached). Hosts listed in
//! `ROSTER_SSO_INSECURE_HOSTS` (tests, an IdP on the same network) may use plain http and
//! private addresses; nothing is implied (`localhost` is allowed only when it is listed).
//!
//! This module must never follow a redirect (a 3xx is an error), use a proxy, wait longer than
//! [`CONNECT_TIMEOUT`] to connect or [`TOTAL_TIMEOUT`] for a whole exchange, or read more than
//! [`MAX_BODY`] bytes of an answer (a larger one is refused, not cut). It never logs what it
//! sends: token requests carry client secrets and codes.

use std::sync::Arc;
use std::time::Duration;

use openidconnect::http;
use reqwest::header::LOCATION;

use crate::outbound::{GuardedResolver, OutboundPolicy};

/// The largest answer read (1 MiB); a longer one is an error.
pub const MAX_BODY: usize = 1 << 20;
/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole exchange may take, the body included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

const USER_AGENT: &str = concat!("Roster-SSO/", env!("CARGO_PKG_VERSION"));

/// Why an outbound SSO request failed, in one line that names the URL's host and the cause
/// ("http://idp.test/...: must use https"). Never contains the request's body or headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SsoHttpError(pub String);

/// One per process (in `AppState::sso_http`), shared: it pools connections.
pub struct SsoHttp {
    client: reqwest::Client,
    policy: OutboundPolicy,
    total: Duration,
}

impl SsoHttp {
    /// `insecure_hosts`: `ROSTER_SSO_INSECURE_HOSTS`, host names or IP literals as written in
    /// URLs.
    pub fn new(insecure_hosts: &[String]) -> Result<Self, String> {
        Self::with_timeouts(insecure_hosts, CONNECT_TIMEOUT, TOTAL_TIMEOUT)
    }

    /// [`SsoHttp::new`] with other time limits (tests).
    pub fn with_timeouts(insecure_hosts: &[String], connect: Duration, total: Duration) -> Result<Self, String> {
        let policy = OutboundPolicy::new(insecure_hosts);
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .connect_timeout(connect)
            .timeout(total)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("could not build the SSO HTTP client: {}", root_cause(&e)))?;
        Ok(Self { client, policy, total })
    }

    /// Checks a URL the way every request's URL is checked (https unless its host is listed, no
    /// forbidden IP literal, no credentials or fragment); the message follows the word "URL".
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        self.policy.check_url(url)
    }

    /// Sends `request` and answers whatever status came back but a redirect, with the whole
    /// body (at most [`MAX_BODY`] bytes). The `openidconnect` crate calls this for discovery,
    /// keys, tokens and user info.
    pub async fn execute(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, SsoHttpError> {
        let url = request.uri().to_string();
        let checked = self.check_url(&url).map_err(|e| SsoHttpError(format!("{}: the URL {e}", shown(&url))))?;
        let mut outgoing = reqwest::Request::try_from(request)
            .map_err(|e| SsoHttpError(format!("{}: {}", shown(&url), root_cause(&e))))?;
        *outgoing.url_mut() = checked;
        let exchange = async {
            let mut response = self.client.execute(outgoing).await.map_err(|e| describe(&e))?;
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("nowhere");
                return Err(format!(
                    "answered {status}, a redirect to {}; redirects are not followed",
                    shown(location)
                ));
            }
            if response.content_length().is_some_and(|length| length > MAX_BODY as u64) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let mut answer = http::Response::new(body);
            *answer.status_mut() = status;
            *answer.headers_mut() = response.headers().clone();
            Ok(answer)
        };
        match tokio::time::timeout(self.total, exchange).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(SsoHttpError(format!("{}: {e}", shown(&url)))),
            Err(_) => Err(SsoHttpError(format!("{}: no answer within {:?}", shown(&url), self.total))),
        }
    }

    /// GETs `url` and answers its body when the status is 2xx (a metadata document).
    pub async fn get(&self, url: &str) -> Result<Vec<u8>, SsoHttpError> {
        let request = http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| SsoHttpError(format!("{}: the URL is not valid ({e})", shown(url))))?;
        let answer = self.execute(request).await?;
        if !answer.status().is_success() {
            return Err(SsoHttpError(format!("{}: answered {}", shown(url), answer.status())));
        }
        Ok(answer.into_body())
    }
}

fn too_large() -> String {
    format!("the answer is larger than {} KiB", MAX_BODY / 1024)
}

/// A URL as shown in messages: without its query (codes, states) and cut short.
fn shown(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len()).min(200);
    &url[..url.floor_char_boundary(end)]
}

/// A transport error as what failed and its root cause.
fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_connect() {
        "could not connect"
    } else if error.is_timeout() {
        "timed out"
    } else {
        "the request failed"
    };
    format!("{what}: {}", root_cause(error))
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut root = error;
    while let Some(cause) = root.source() {
        root = cause;
    }
    root.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// Answers every GET with `answer` and reports each request's first line.
    async fn server(answer: Vec<u8>) -> (u16, mpsc::UnboundedReceiver<String>) {
        slow_server(answer, Duration::ZERO).await
    }

    /// [`server`], answering after `delay`.
    async fn slow_server(answer: Vec<u8>, delay: Duration) -> (u16, mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (report, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answer, report) = (answer.clone(), report.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).await.is_ok_and(|n| n == 1) {
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head);
                    let _ = report.send(text.lines().next().unwrap_or_default().to_string());
                    tokio::time::sleep(delay).await;
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (port, requests)
    }

    fn answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut bytes =
            format!("HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n", body.len())
                .into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    fn client(hosts: &[&str]) -> SsoHttp {
        SsoHttp::new(&hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[tokio::test]
    async fn a_listed_host_is_reached_over_http() {
        let (port, mut seen) = server(answer("200 OK", "", b"{\"issuer\":1}")).await;
        let body = client(&["127.0.0.1"]).get(&format!("http://127.0.0.1:{port}/doc?x=1")).await.unwrap();
        assert_eq!(body, b"{\"issuer\":1}");
        assert_eq!(seen.recv().await.unwrap(), "GET /doc?x=1 HTTP/1.1");
    }

    #[tokio::test]
    async fn http_to_an_unlisted_host_is_refused() {
        let sso = client(&["idp.test"]);
        let error = sso.get("http://other.test/.well-known/openid-configuration").await.unwrap_err();
        assert_eq!(error.0, "http://other.test/.well-known/openid-configuration: the URL must use https");
        // `localhost` is never implied by listing an address.
        let error = client(&["127.0.0.1"]).get("http://localhost:9/").await.unwrap_err();
        assert!(error.0.ends_with("the URL must use https"), "{error}");
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_listed() {
        let (port, mut seen) = server(answer("200 OK", "", b"{}")).await;
        let unlisted = client(&[]);
        for url in [format!("https://127.0.0.1:{port}/"), format!("http://127.0.0.1:{port}/")] {
            let error = unlisted.get(&url).await.unwrap_err();
            assert!(error.0.contains("not allowed") || error.0.contains("must use https"), "{error}");
        }
        let error = unlisted.get(&format!("https://127.0.0.1:{port}/")).await.unwrap_err();
        assert!(error.0.contains("must not point to 127.0.0.1"), "{error}");
        // A name resolving to loopback: refused by the resolver, nothing is sent.
        let error = client(&["127.0.0.1"]).get(&format!("https://localhost:{port}/")).await.unwrap_err();
        assert!(error.0.contains("resolves only to addresses that are not allowed"), "{error}");
        let error = unlisted.get("https://169.254.169.254/latest/meta-data").await.unwrap_err();
        assert!(error.0.contains("must not point to 169.254.169.254"), "{error}");
        assert!(seen.try_recv().is_err(), "nothing reached the server");

        assert!(client(&["localhost"]).get(&format!("http://localhost:{port}/")).await.is_ok());
        assert!(seen.recv().await.is_some());
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_and_not_followed() {
        let (elsewhere, mut followed) = server(answer("200 OK", "", b"{}")).await;
        let location = format!("location: http://127.0.0.1:{elsewhere}/jwks\r\n");
        let (port, mut seen) = server(answer("302 Found", &location, b"")).await;
        let error = client(&["127.0.0.1"]).get(&format!("http://127.0.0.1:{port}/")).await.unwrap_err();
        assert!(error.0.contains("answered 302 Found, a redirect to http://127.0.0.1:"), "{error}");
        assert!(error.0.ends_with("redirects are not followed"), "{error}");
        assert!(seen.recv().await.is_some());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(followed.try_recv().is_err(), "the redirect was followed");
    }

    #[tokio::test]
    async fn an_oversize_body_is_refused() {
        let sso = client(&["127.0.0.1"]);
        let (port, _seen) = server(answer("200 OK", "", &vec![b' '; MAX_BODY + 1])).await;
        let error = sso.get(&format!("http://127.0.0.1:{port}/")).await.unwrap_err();
        assert!(error.0.ends_with("the answer is larger than 1024 KiB"), "{error}");
        // Without a length announced: counted while read.
        let mut chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
        for _ in 0..=MAX_BODY / 4096 {
            chunked.extend_from_slice(format!("1000\r\n{}\r\n", " ".repeat(4096)).as_bytes());
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        let (port, _seen) = server(chunked).await;
        let error = sso.get(&format!("http://127.0.0.1:{port}/")).await.unwrap_err();
        assert!(error.0.ends_with("the answer is larger than 1024 KiB"), "{error}");
        // Exactly the bound is fine.
        let (port, _seen) = server(answer("200 OK", "", &vec![b' '; MAX_BODY])).await;
        assert_eq!(sso.get(&format!("http://127.0.0.1:{port}/")).await.unwrap().len(), MAX_BODY);
    }

    #[tokio::test]
    async fn a_slow_answer_hits_the_time_limit() {
        let (port, _seen) = slow_server(answer("200 OK", "", b"{}"), Duration::from_secs(30)).await;
        let hosts = vec!["127.0.0.1".to_string()];
        let sso = SsoHttp::with_timeouts(&hosts, Duration::from_secs(5), Duration::from_millis(300)).unwrap();
        let started = std::time::Instant::now();
        let error = sso.get(&format!("http://127.0.0.1:{port}/jwks")).await.unwrap_err();
        assert!(error.0.contains("timed out") || error.0.contains("no answer within 300ms"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(SsoHttp::new(&hosts).unwrap().total, TOTAL_TIMEOUT);
    }

    #[tokio::test]
    async fn an_error_status_is_answered_to_execute_and_refused_by_get() {
        let (port, _seen) = server(answer("400 Bad Request", "", b"{\"error\":\"invalid_grant\"}")).await;
        let sso = client(&["127.0.0.1"]);
        let url = format!("http://127.0.0.1:{port}/token");
        let request = http::Request::post(url.as_str()).body(b"code=x".to_vec()).unwrap();
        let answer = sso.execute(request).await.unwrap();
        assert_eq!(answer.status(), 400);
        assert_eq!(answer.body(), b"{\"error\":\"invalid_grant\"}");
        let error = sso.get(&format!("{url}?code=secret")).await.unwrap_err();
        assert_eq!(error.0, format!("{url}: answered 400 Bad Request"));
    }
}
