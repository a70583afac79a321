//! A real SAML identity provider for the tests: `tools/saml_idp.py` (pysaml2, signing with
//! Debian's xmlsec1) as a process on 127.0.0.1, killed on drop, and the browser's steps over
//! HTTP: follow Roster's redirect to the IdP, sign in on its form, take the auto-post form's
//! `SAMLResponse` and `RelayState`, post them to Roster's ACS, read Roster's 303.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;

use crate::helpers::TestApp;

/// The tools venv's Python (tests/api/dns_harness.rs finds it), once it is known to import
/// pysaml2 and xmlsec1 is there; fails (never skips) saying how to get them.
fn idp_python() -> PathBuf {
    static CHECKED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let python = crate::dns_harness::tools_python();
    CHECKED.get_or_init(|| {
        let how = "run the tests with ./test, which installs them (tools/deps.sh; see the README, \"Test it\")";
        let imports = Command::new(&python)
            .args(["-c", "import saml2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(imports, "{} cannot import saml2 (pysaml2, tools/requirements.txt): {how}", python.display());
        let xmlsec1 = Command::new("xmlsec1").arg("--version").stdout(Stdio::null()).status();
        assert!(xmlsec1.is_ok_and(|s| s.success()), "the SAML tests need Debian's xmlsec1: {how}");
    });
    python
}

/// `tools/saml_idp.py`, running.
pub struct SamlIdp {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    client: reqwest::Client,
}

/// What the IdP's page posts to the service provider.
#[derive(Debug, Clone)]
pub struct IdpPost {
    /// The form's action: Roster's ACS as the request named it (on `ROSTER_PUBLIC_URL`).
    pub action: String,
    pub saml_response: String,
    pub relay_state: Option<String>,
}

impl IdpPost {
    /// The response's XML.
    pub fn xml(&self) -> String {
        use base64::Engine as _;
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(&self.saml_response).unwrap()).unwrap()
    }

    /// The same post carrying `xml` instead.
    pub fn with_xml(&self, xml: &str) -> Self {
        use base64::Engine as _;
        Self { saml_response: base64::engine::general_purpose::STANDARD.encode(xml), ..self.clone() }
    }
}

/// Roster's answer at the ACS.
#[derive(Debug)]
pub struct AcsAnswer {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl AcsAnswer {
    /// A query parameter of the 303's `Location`.
    pub fn param(&self, name: &str) -> Option<String> {
        let location = self.location.as_deref()?;
        let query = location.split_once('?')?.1;
        form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    /// The `error` Roster sent the browser on with (panics when it signed in).
    pub fn error(&self) -> String {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "ACS answered {}: {}", self.status, self.body);
        self.param("error").unwrap_or_else(|| panic!("no error in {:?}", self.location))
    }

    /// The `code` Roster sent the browser on with (panics when it refused).
    pub fn code(&self) -> String {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "ACS answered {}: {}", self.status, self.body);
        self.param("code").unwrap_or_else(|| {
            panic!("refused: {:?} {:?} ({:?})", self.param("error"), self.param("error_description"), self.location)
        })
    }
}

impl SamlIdp {
    pub fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/saml_idp.py");
        let mut child = Command::new(idp_python())
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tools/saml_idp.py");
        let mut line = String::new();
        let read = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        let port: Option<u16> =
            read.ok().and_then(|_| line.trim().strip_prefix("LISTENING ").and_then(|p| p.parse().ok()));
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tools/saml_idp.py did not print its port (got {line:?})");
        };
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { child, base: format!("http://127.0.0.1:{port}"), client }
    }

    /// The IdP's metadata URL (also its entity id).
    pub fn metadata_url(&self) -> String {
        format!("{}/metadata", self.base)
    }

    pub async fn metadata(&self) -> String {
        let res = self.client.get(self.metadata_url()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.unwrap()
    }

    /// Registers a service provider by its metadata (what the IdP's admin does).
    pub async fn register_sp(&self, sp_metadata: &str) {
        let res = self.client.post(format!("{}/sp", self.base)).body(sp_metadata.to_string()).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "IdP refused the SP metadata: {}", res.text().await.unwrap());
    }

    /// The browser at the IdP: opens `redirect_url` (Roster's HTTP-Redirect AuthnRequest), signs
    /// in as `login` with the IdP misbehaving as `misbehave` says (tools/saml_idp.py's knobs),
    /// and reads the page that would auto-post to the ACS.
    pub async fn sign_in(&self, redirect_url: &str, login: &str, misbehave: &[&str]) -> IdpPost {
        let res = self.client.get(redirect_url).send().await.unwrap();
        let status = res.status();
        let page = res.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "the IdP's sign-in page: {page}");
        let form = Form::parse(&page);
        assert_eq!(form.action, "/login", "the IdP's sign-in form: {page}");
        let mut fields = form.fields.clone();
        fields.push(("login".into(), login.into()));
        fields.push(("given_name".into(), "Ann".into()));
        fields.push(("family_name".into(), "Lee".into()));
        fields.push(("misbehave".into(), misbehave.join(",")));
        let res = self.client.post(format!("{}/login", self.base)).form(&fields).send().await.unwrap();
        let status = res.status();
        let page = res.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "the IdP's answer: {page}");
        let form = Form::parse(&page);
        IdpPost {
            action: form.action.clone(),
            saml_response: form.field("SAMLResponse").expect("SAMLResponse in the IdP's form"),
            relay_state: form.field("RelayState").filter(|v| !v.is_empty()),
        }
    }
}

impl Drop for SamlIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser posting the IdP's form to Roster: the action's path on the test app's address
/// (the action names `ROSTER_PUBLIC_URL`, which the tests do not serve on).
pub async fn post_to_acs(app: &TestApp, post: &IdpPost) -> AcsAnswer {
    let path = post.action.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap();
    let mut fields = vec![("SAMLResponse", post.saml_response.as_str())];
    if let Some(relay) = &post.relay_state {
        fields.push(("RelayState", relay));
    }
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let res = client.post(format!("{}{path}", app.address)).form(&fields).send().await.unwrap();
    let status = res.status();
    let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_string());
    AcsAnswer { status, location, body: res.text().await.unwrap() }
}

/// An HTML form: its action and its inputs' names and values.
struct Form {
    action: String,
    fields: Vec<(String, String)>,
}

impl Form {
    fn parse(page: &str) -> Self {
        let start = page.find("<form").unwrap_or_else(|| panic!("no form in {page}"));
        let end = page[start..].find("</form>").map(|i| start + i).unwrap_or(page.len());
        let form = &page[start..end];
        let tag_end = form.find('>').unwrap();
        let action = attribute(&form[..tag_end], "action").unwrap_or_default();
        let mut fields = Vec::new();
        let mut rest = &form[tag_end..];
        while let Some(i) = rest.find("<input") {
            let tag = &rest[i..i + rest[i..].find('>').unwrap()];
            if let Some(name) = attribute(tag, "name") {
                fields.push((name, attribute(tag, "value").unwrap_or_default()));
            }
            rest = &rest[i + tag.len()..];
        }
        Self { action, fields }
    }

    fn field(&self, name: &str) -> Option<String> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let i = tag.find(&needle)? + needle.len();
    let len = tag[i..].find('"')?;
    Some(unescape(&tag[i..i + len]))
}

fn unescape(raw: &str) -> String {
    raw.replace("&quot;", "\"").replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}
