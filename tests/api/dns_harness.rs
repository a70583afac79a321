//! A real DNS server for tests: `tools/dns_server.py` (dnslib, from the tools venv) on
//! 127.0.0.1, answering the TXT records a test publishes with [`DnsServer::set_txt`] and
//! NXDOMAIN for every other name. Start it before the app and point the app at it:
//!
//! ```ignore
//! let dns = DnsServer::start();
//! let app = spawn_app_with(|c| dns.configure(c)).await;
//! let owner = app.new_owner("plus").await;
//! let domain_id = verify_domain(&app, &dns, &owner, "acme-1.test").await;
//! ```
//!
//! The server stops when the `DnsServer` is dropped (and on its own when the test process
//! dies: it exits when its stdin closes).

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp};

/// The venv's Python, once it is known to import `dnslib`; fails (never skips) saying how to
/// get it.
pub fn tools_python() -> PathBuf {
    static PYTHON: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let venv = std::env::var_os("ROSTER_TOOLS_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/tools-venv"));
            let python = venv.join("bin/python");
            let how = "run the tests with ./test, which makes it (tools/deps.sh; see the README, \"Test it\")";
            assert!(
                python.exists(),
                "the DNS tests need the venv {} with the PyPI package dnslib (tools/requirements.txt), \
                 and it is missing: {how}",
                venv.display()
            );
            let imports = Command::new(&python)
                .args(["-c", "import dnslib"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                imports,
                "{} cannot import dnslib (tools/requirements.txt changed since the venv was made?): {how}",
                python.display()
            );
            python
        })
        .clone()
}

#[derive(Default)]
struct Zone {
    txt: BTreeMap<String, Vec<String>>,
    servfail: Vec<String>,
    slow: Vec<String>,
}

/// `tools/dns_server.py`, started for one test.
pub struct DnsServer {
    /// `127.0.0.1:<port>`, for `ROSTER_DNS_RESOLVER`.
    pub addr: String,
    child: Child,
    _stdin: ChildStdin,
    dir: tempfile::TempDir,
    zone: Mutex<Zone>,
}

impl DnsServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("zone dir");
        let zone_path = dir.path().join("zone.json");
        std::fs::write(&zone_path, "{}").expect("write zone");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/dns_server.py");
        let mut child = Command::new(tools_python())
            .arg(script)
            .arg("--zone")
            .arg(&zone_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tools/dns_server.py");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("dns_server.py printed {line:?}, not a port"));
        DnsServer { addr: format!("127.0.0.1:{port}"), child, _stdin: stdin, dir, zone: Mutex::new(Zone::default()) }
    }

    /// Points an app's configuration at this server.
    pub fn configure(&self, config: &mut roster::config::Config) {
        config.dns_resolver = Some(self.addr.clone());
    }

    fn write(&self, zone: &Zone) {
        let body = json!({"txt": zone.txt, "servfail": zone.servfail, "slow": zone.slow});
        let tmp = self.dir.path().join("zone.json.tmp");
        let mut f = std::fs::File::create(&tmp).expect("zone tmp");
        f.write_all(body.to_string().as_bytes()).expect("write zone");
        f.sync_all().expect("sync zone");
        std::fs::rename(&tmp, self.dir.path().join("zone.json")).expect("rename zone");
    }

    /// Publishes TXT records at `name` (replacing what was there); an empty list makes the
    /// name exist without a TXT record.
    pub fn set_txt(&self, name: &str, values: &[&str]) {
        let mut zone = self.zone.lock().unwrap();
        zone.txt.insert(name.to_ascii_lowercase(), values.iter().map(|v| v.to_string()).collect());
        self.write(&zone);
    }

    /// Removes `name`: it answers NXDOMAIN again.
    pub fn remove(&self, name: &str) {
        let mut zone = self.zone.lock().unwrap();
        zone.txt.remove(&name.to_ascii_lowercase());
        self.write(&zone);
    }

    /// `name` answers SERVFAIL.
    pub fn set_servfail(&self, name: &str) {
        let mut zone = self.zone.lock().unwrap();
        zone.servfail.push(name.to_ascii_lowercase());
        self.write(&zone);
    }

    /// `name` is answered too late for any resolver.
    pub fn set_slow(&self, name: &str) {
        let mut zone = self.zone.lock().unwrap();
        zone.slow.push(name.to_ascii_lowercase());
        self.write(&zone);
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST .../domains` as `owner`; the answer.
pub async fn add_domain(app: &TestApp, owner: &Persona, domain: &str) -> reqwest::Response {
    app.send_json(
        Method::POST,
        &format!("/api/v1/tenants/{}/domains", owner.tenant_id),
        &owner.token,
        json!({"domain": domain}),
    )
    .await
}

/// `POST .../domains/{id}/verify` as `owner`; the answer.
pub async fn check_domain(app: &TestApp, owner: &Persona, domain_id: &str) -> reqwest::Response {
    app.request(
        Method::POST,
        &format!("/api/v1/tenants/{}/domains/{domain_id}/verify", owner.tenant_id),
        Some(&owner.token),
    )
    .send()
    .await
    .expect("request")
}

/// Adds `domain` to `owner`'s tenant, publishes its record on `dns` and verifies it; the
/// domain's id.
pub async fn verify_domain(app: &TestApp, dns: &DnsServer, owner: &Persona, domain: &str) -> String {
    let res = add_domain(app, owner, domain).await;
    assert_eq!(res.status(), StatusCode::CREATED, "add {domain}");
    let added: Value = res.json().await.expect("json");
    let record = &added["verification"];
    dns.set_txt(record["name"].as_str().expect("name"), &[record["value"].as_str().expect("value")]);
    let id = added["id"].as_str().expect("id").to_string();
    let res = check_domain(app, owner, &id).await;
    let status = res.status();
    let body: Value = res.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "verify {domain}: {body}");
    assert_eq!(body["status"], "verified");
    id
}
