//! Email through a real SMTP server process on 127.0.0.1 (aiosmtpd, storing into a maildir),
//! and through the file transport.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Persona, TestApp, assert_problem, spawn_app_with};

/// An SMTP server process that keeps every message it receives in a maildir.
pub struct SmtpServer {
    pub port: u16,
    maildir: tempfile::TempDir,
    child: Child,
}

impl SmtpServer {
    /// Starts `python3 -m aiosmtpd` (Debian's `python3-aiosmtpd`, which `.ci/run` installs).
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts it on `port`.
    pub fn start_on(port: u16) -> Self {
        let importable = Command::new("/usr/bin/python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            importable,
            "email tests need the SMTP server aiosmtpd for /usr/bin/python3, which cannot import it: \
             install it with `apt-get install python3-aiosmtpd`, or run the tests with `./test` \
             (README, \"Test it\"), which installs it"
        );
        let maildir = tempfile::tempdir().expect("maildir");
        let mut child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (install python3-aiosmtpd)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self { port, maildir, child };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the SMTP server did not start on port {port}");
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        files_in(&self.maildir.path().join("mail").join("new"))
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (until something is started on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Files in the order they were written. Maildir names start `<seconds>.M<microseconds>P…`
/// (not zero-padded, so plain name order is not time order); `.eml` names are UUIDv7s.
fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    fn written(p: &Path) -> (u64, u64, u64, String) {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let number = |s: &str| s.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0);
        let after = |marker: &str| name.split_once(marker).map(|(_, rest)| number(rest)).unwrap_or(0);
        (number(&name), after(".M"), after("Q"), name)
    }
    paths.sort_by_key(|p| written(p));
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Waits (up to 15 s) until `read` returns at least `n` messages.
pub async fn wait_for(n: usize, read: impl Fn() -> Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    for _ in 0..150 {
        let got = read();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {n} messages, got {}", read().len());
}

/// A parsed message: headers of interest and both bodies.
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

pub fn parse(raw: &[u8]) -> Mail {
    use mailparse::MailHeaderMap;
    let parsed = mailparse::parse_mail(raw).expect("a mail");
    let header = |name: &str| parsed.headers.get_first_value(name).unwrap_or_default();
    let mut text = String::new();
    let mut html = String::new();
    for part in parsed.subparts.iter().chain(std::iter::once(&parsed)) {
        match part.ctype.mimetype.as_str() {
            "text/plain" => text = part.get_body().unwrap(),
            "text/html" => html = part.get_body().unwrap(),
            _ => {}
        }
    }
    Mail { to: header("To"), subject: header("Subject"), message_id: header("Message-ID"), text, html }
}

/// The token in a reset link.
fn reset_token(mail: &Mail) -> String {
    let at = mail.text.find("/reset-password?token=").expect("a reset link") + "/reset-password?token=".len();
    mail.text[at..].split_whitespace().next().unwrap().to_string()
}

async fn ask_reset(app: &TestApp, email: &str) {
    let res = app
        .request(Method::POST, "/api/v1/auth/password-reset", None)
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("If an account uses this email"));
}

async fn confirm(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.request(Method::POST, "/api/v1/auth/password-reset/confirm", None)
        .json(&json!({"token": token, "new_password": password}))
        .send()
        .await
        .unwrap()
}

async fn member(app: &TestApp) -> (Persona, Persona) {
    let owner = app.new_owner("plus").await;
    let member = app.new_member(&owner, "viewer", &[]).await;
    (owner, member)
}

#[tokio::test]
async fn forgot_password_over_smtp() {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
    let (owner, member) = member(&app).await;
    // Unknown emails get the same answer and no mail.
    ask_reset(&app, "nobody@example.test").await;
    ask_reset(&app, &member.email.to_uppercase()).await;
    let mails = wait_for(1, || smtp.messages()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1, "one message, to the member only");
    let mail = parse(&mails[0]);
    assert!(mail.to.contains(&member.email), "{}", mail.to);
    assert_eq!(mail.subject, "Reset your Roster password");
    assert!(mail.message_id.ends_with("@roster>"), "{}", mail.message_id);
    assert!(mail.text.contains("http://app.roster.test/reset-password?token="), "{}", mail.text);
    let token = reset_token(&mail);
    assert!(mail.html.contains(&format!("reset-password?token={token}")), "{}", mail.html);

    // The policy applies, and a refused password leaves the token usable.
    let weak = confirm(&app, &token, "password1234").await;
    assert_eq!(assert_problem(weak, 422).await["errors"][0]["field"], "new_password");
    // An hour later the link no longer works.
    assert_eq!(app.execute_sql("UPDATE password_resets SET expires_at = created_at"), 1);
    let late = confirm(&app, &token, "a brand new passphrase").await;
    assert_eq!(assert_problem(late, 422).await["errors"][0]["field"], "token");
    assert_eq!(app.execute_sql("UPDATE password_resets SET expires_at = '2999-01-01 00:00:00'"), 1);
    let res = confirm(&app, &token, "a brand new passphrase").await;
    assert_eq!(res.status(), StatusCode::OK);
    // Every token the member held ends; the new password signs in; the old one does not.
    assert_problem(app.get("/api/v1/me", &member.token).await, 401).await;
    app.login_ok(&member.email, "a brand new passphrase", None).await;
    let old = app.login(json!({"email": member.email, "password": member.password})).await;
    assert_problem(old, 401).await;
    // Used once.
    let again = confirm(&app, &token, "yet another passphrase").await;
    assert_eq!(assert_problem(again, 422).await["errors"][0]["field"], "token");
    // Asking again voids the older link.
    ask_reset(&app, &member.email).await;
    ask_reset(&app, &member.email).await;
    let mails = wait_for(3, || smtp.messages()).await;
    let (first, second) = (reset_token(&parse(&mails[1])), reset_token(&parse(&mails[2])));
    assert_ne!(first, second);
    assert_eq!(
        assert_problem(confirm(&app, &first, "yet another passphrase").await, 422).await["errors"][0]["field"],
        "token"
    );
    assert_eq!(confirm(&app, &second, "yet another passphrase").await.status(), StatusCode::OK);
    assert_eq!(
        assert_problem(confirm(&app, "made-up", "yet another passphrase").await, 422).await["errors"][0]["field"],
        "token"
    );
    // Audited, without the token.
    let res = app
        .get(
            &format!("/api/v1/tenants/{}/audit-events?action=user.password_reset_completed", owner.tenant_id),
            &owner.token,
        )
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["total"], 2, "{body}");
    assert!(!body.to_string().contains(&second));
}

#[tokio::test]
async fn without_smtp_email_is_written_to_files() {
    let app = spawn_app_with(|_| {}).await;
    let (_, member) = member(&app).await;
    ask_reset(&app, &member.email).await;
    let outbox = app.data.path().join("outbox");
    let files = wait_for(1, || files_in(&outbox)).await;
    let mail = parse(&files[0]);
    assert!(mail.to.contains(&member.email));
    assert_eq!(confirm(&app, &reset_token(&mail), "a brand new passphrase").await.status(), StatusCode::OK);
}

/// While the mail server is down the message waits in the outbox; it goes out once, when a
/// retry finds the server up.
#[tokio::test]
async fn mail_waits_for_a_server_that_is_down() {
    let port = free_port();
    let app =
        spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(format!("smtp://127.0.0.1:{port}")))).await;
    let (_, member) = member(&app).await;
    ask_reset(&app, &member.email).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let smtp = SmtpServer::start_on(port);
    let mails = wait_for(1, || smtp.messages()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.messages().len(), 1);
    assert!(parse(&mails[0]).to.contains(&member.email));
}

/// Two instances on one database drain one outbox: every message goes out exactly once.
#[tokio::test]
async fn two_instances_send_each_message_once() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(url.clone()))).await;
    let other = app.second_instance_with(|c| c.smtp_url = Some(secrecy::SecretString::from(url.clone()))).await;
    let owner = app.new_owner("enterprise").await;
    let mut emails = Vec::new();
    for _ in 0..12 {
        emails.push(app.create_member(&owner, "viewer", &[]).await["email"].as_str().unwrap().to_string());
    }
    let asks = emails.iter().enumerate().map(|(i, e)| {
        let on = if i % 2 == 0 { &app } else { &other };
        ask_reset(on, e)
    });
    futures_util::future::join_all(asks).await;
    wait_for(12, || smtp.messages()).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mails: Vec<Mail> = smtp.messages().iter().map(|m| parse(m)).collect();
    let mut ids: Vec<&str> = mails.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((mails.len(), ids.len()), (12, 12), "each message once");
    let mut to: Vec<&str> = mails.iter().map(|m| m.to.as_str()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 12, "one to each member");
}

/// A message recorded before the process is killed (`kill -9`) is sent after a restart, once.
#[tokio::test]
async fn mail_recorded_before_a_kill_is_sent_after_the_restart() {
    let db = crate::helpers::TestDb::shared();
    let data = tempfile::tempdir().unwrap();
    let (port, dead) = (free_port(), free_port());
    let smtp_url = format!("smtp://127.0.0.1:{dead}");
    let server =
        crate::helpers::ServeProcess::start(&db.url, data.path(), port, &[("SMTP_URL", &smtp_url)], Stdio::null())
            .await;
    crate::helpers::tenant_on(&server.base, "boss@killed.test", "plus").await;
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/password-reset", server.base))
        .json(&json!({"email": "boss@killed.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // Its first attempt fails (nothing listens on `dead`) and is recorded; then the process dies.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.kill();
    let smtp = SmtpServer::start();
    let restarted = crate::helpers::start_on(db, |c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
    let mails = wait_for(1, || smtp.messages()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(smtp.messages().len(), 1, "sent once");
    let mail = parse(&mails[0]);
    assert!(mail.to.contains("boss@killed.test"));
    // And the link in it works.
    assert_eq!(confirm(&restarted, &reset_token(&mail), "a brand new passphrase").await.status(), StatusCode::OK);
}

/// An admin can send the reset link instead of handing out a temporary password.
#[tokio::test]
async fn admin_sends_a_reset_link() {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
    let (owner, member) = member(&app).await;
    let path = format!("/api/v1/tenants/{}/users/{}/password-reset", owner.tenant_id, member.user_id);
    let both =
        app.send_json(Method::POST, &path, &owner.token, json!({"delivery": "email", "temporary_password": "x"})).await;
    assert_eq!(assert_problem(both, 422).await["errors"][0]["field"], "temporary_password");
    let res = app.send_json(Method::POST, &path, &owner.token, json!({"delivery": "email"})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["delivery"], "email");
    assert!(body.get("temporary_password").is_none());
    let mail = parse(&wait_for(1, || smtp.messages()).await[0]);
    assert!(mail.to.contains(&member.email));
    assert!(mail.text.contains("An administrator of Tenant asked"), "{}", mail.text);
    // The member keeps working until they use the link; then their old tokens end.
    assert_eq!(app.get("/api/v1/me", &member.token).await.status(), StatusCode::OK);
    assert_eq!(confirm(&app, &reset_token(&mail), "a brand new passphrase").await.status(), StatusCode::OK);
    assert_problem(app.get("/api/v1/me", &member.token).await, 401).await;
    // Audited with how it was delivered, never with the link.
    let res = app
        .get(&format!("/api/v1/tenants/{}/audit-events?action=member.password_reset", owner.tenant_id), &owner.token)
        .await;
    let events: Value = res.json().await.unwrap();
    assert_eq!(events["items"][0]["after"]["delivery"], "email", "{events}");
    // A viewer cannot.
    let viewer = app.new_member(&owner, "viewer", &[]).await;
    let res = app.send_json(Method::POST, &path, &viewer.token, json!({"delivery": "email"})).await;
    assert!(res.status() == StatusCode::FORBIDDEN || res.status() == StatusCode::NOT_FOUND, "{}", res.status());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 1);
}

/// A person who is also a member of another tenant: no admin here sets their password, but
/// the link to choose one goes to them.
#[tokio::test]
async fn admin_sends_a_reset_link_to_a_person_shared_with_another_tenant() {
    let smtp = SmtpServer::start();
    let app = spawn_app_with(|c| c.smtp_url = Some(secrecy::SecretString::from(smtp.url()))).await;
    let (owner, member) = member(&app).await;
    let elsewhere = app.create_tenant("Elsewhere", &member.email, "plus").await;
    let path = format!("/api/v1/tenants/{}/users/{}/password-reset", owner.tenant_id, member.user_id);
    // Setting or showing their secret stays refused.
    for body in [json!({}), json!({"temporary_password": "a typed temporary password"})] {
        let res = app.send_json(Method::POST, &path, &owner.token, body).await;
        assert_eq!(assert_problem(res, 409).await["type"], "urn:roster:problem:identity-not-managed");
    }
    let res = app.send_json(Method::POST, &path, &owner.token, json!({"delivery": "email"})).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let text = res.text().await.unwrap();
    assert!(!text.contains(elsewhere["tenant_id"].as_str().unwrap()) && !text.contains("Elsewhere"), "{text}");
    let mail = parse(&wait_for(1, || smtp.messages()).await[0]);
    assert!(mail.to.contains(&member.email));
    assert!(mail.text.contains("An administrator of Tenant asked"), "{}", mail.text);
    // Their password works until they choose a new one, which then opens both tenants.
    app.login_ok(&member.email, &member.password, Some(&owner.tenant_id)).await;
    assert_eq!(confirm(&app, &reset_token(&mail), "a passphrase only I know").await.status(), StatusCode::OK);
    let login = app.login_ok(&member.email, "a passphrase only I know", None).await;
    assert_eq!(login["tenants"].as_array().unwrap().len(), 2);
    let events = app.audit_events(&owner, "member.password_reset").await;
    assert_eq!(events[0]["after"]["delivery"], "email", "{events:?}");
}
