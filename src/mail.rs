//! Email: the templates that render a queued notice (`store::outbox::Notice`), the transport
//! (SMTP through lettre when `SMTP_URL` is set, otherwise `.eml` files under
//! `<data dir>/outbox/`), and the worker that drains the outbox. The store only queues
//! notices; what they say is decided here.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;

use crate::config::Config;
use crate::db;
use crate::state::AppState;
use crate::store::outbox::{self, Claimed, Notice};

/// What is sent: a subject and the same text as plain text and HTML.
#[derive(Debug, Clone)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The email a notice becomes.
pub fn render(notice: &Notice) -> Email {
    match notice {
        Notice::PasswordReset { full_name, why, link, valid_minutes } => {
            password_reset(full_name, why, link, *valid_minutes)
        }
        Notice::Invitation { tenant, inviter, inviter_email, role, link, valid_days } => {
            invitation(tenant, inviter, inviter_email, role, link, *valid_days)
        }
        Notice::SetPassword { full_name, tenant, creator, link, valid_days } => {
            set_password(full_name, tenant, creator, link, *valid_days)
        }
        Notice::ConfirmEmail { full_name, tenant, link, valid_days } => {
            confirm_email(full_name, tenant, link, *valid_days)
        }
        Notice::AddedToTenant { full_name, tenant, role, link } => added_to_tenant(full_name, tenant, role, link),
        Notice::WebhookDisabled { full_name, url, days, link } => webhook_disabled(full_name, url, *days, link),
        Notice::Rendered { subject, text, html } => {
            Email { subject: subject.clone(), text: text.clone(), html: html.clone() }
        }
    }
}

/// Where messages go, and from whom.
pub struct Transport {
    from: Mailbox,
    to: Destination,
}

enum Destination {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Files(PathBuf),
}

impl Transport {
    /// SMTP when `SMTP_URL` is set (`smtp://`, `smtps://`, `?tls=required`, user and password
    /// in the URL), else files.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let from = config.mail_from.parse().map_err(|e| format!("ROSTER_MAIL_FROM is not an email address: {e}"))?;
        let to = match &config.smtp_url {
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                .map(|b| Destination::Smtp(b.timeout(Some(Duration::from_secs(20))).build()))
                .map_err(|e| format!("SMTP_URL is not usable: {e}"))?,
            None => Destination::Files(config.data_dir.join("outbox")),
        };
        Ok(Self { from, to })
    }

    async fn send(&self, message: &Claimed) -> Result<(), String> {
        let from = &self.from;
        let to: Mailbox = message.recipient.parse().map_err(|e| format!("bad recipient: {e}"))?;
        let email = render(&message.notice);
        let built = Message::builder()
            .from(from.clone())
            .to(to)
            .subject(&email.subject)
            // The outbox id: a receiver can tell a retried message from a new one.
            .message_id(Some(format!("<{}@roster>", message.id)))
            .multipart(
                MultiPart::alternative()
                    .singlepart(readable(ContentType::TEXT_PLAIN, &email.text))
                    .singlepart(readable(ContentType::TEXT_HTML, &email.html)),
            )
            .map_err(|e| format!("cannot build the message: {e}"))?;
        match &self.to {
            Destination::Smtp(smtp) => smtp.send(built).await.map(|_| ()).map_err(|e| e.to_string()),
            Destination::Files(dir) => {
                tokio::fs::create_dir_all(dir).await.map_err(|e| format!("{}: {e}", dir.display()))?;
                let path = dir.join(format!("{}.eml", message.id));
                tokio::fs::write(&path, built.formatted()).await.map_err(|e| format!("{}: {e}", path.display()))?;
                let links: Vec<&str> = email.text.lines().filter(|l| l.trim_start().starts_with("http")).collect();
                log::info!(
                    "email to {} written to {} ({}){}",
                    message.recipient,
                    path.display(),
                    email.subject,
                    links.iter().map(|l| format!("\n  {}", l.trim())).collect::<String>()
                );
                Ok(())
            }
        }
    }
}

/// A part sent as it reads (7bit, else 8bit) when its lines allow, so links in a stored `.eml`
/// can be copied as they are; quoted-printable or base64 otherwise.
fn readable(kind: ContentType, content: &str) -> SinglePart {
    let body = Body::new_with_encoding(content.to_string(), ContentTransferEncoding::SevenBit)
        .or_else(|b| Body::new_with_encoding(b, ContentTransferEncoding::EightBit))
        .unwrap_or_else(Body::new);
    SinglePart::builder().header(kind).body(body)
}

/// Drains the outbox while the server runs: due messages now, then whenever a request queues
/// one (`AppState::mail_queued`) or a second has passed.
pub async fn run_worker(state: actix_web::web::Data<AppState>, transport: Transport) {
    loop {
        let master = state.master.clone();
        let claimed = match db::run(&state.pool, outbox::any_due).await {
            Ok(true) => db::run_write(&state.pool, move |conn| outbox::claim(conn, &master)).await,
            Ok(false) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        match claimed {
            Ok(batch) => {
                for message in batch {
                    let result = transport.send(&message).await;
                    let (id, attempts) = (message.id.clone(), message.attempts);
                    let recorded = db::run_write(&state.pool, move |conn| match &result {
                        Ok(()) => outbox::sent(conn, &id),
                        Err(e) => {
                            log::warn!("email {id} not delivered (attempt {}): {e}", attempts + 1);
                            outbox::failed(conn, &id, attempts, e)
                        }
                    })
                    .await;
                    if let Err(e) = recorded {
                        log::warn!("cannot record the delivery of email {}: {e}", message.id);
                    }
                }
            }
            Err(e) => log::warn!("cannot read the email outbox: {e}"),
        }
        tokio::select! {
            _ = state.mail_queued.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Lines of at most 72 characters (words longer than that stay whole), so plain text goes out
/// as it reads (see [`readable`]).
fn wrap(paragraph: &str) -> String {
    let mut out = String::new();
    let mut line = 0;
    for word in paragraph.split_whitespace() {
        let n = word.chars().count();
        if line > 0 && line + 1 + n > 72 {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += n;
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Text and HTML from paragraphs and one call to action.
fn compose(subject: String, greeting: &str, paragraphs: &[String], action: &str, link: &str, footer: &str) -> Email {
    let wrapped: Vec<String> = paragraphs.iter().map(|p| wrap(p)).collect();
    let text = format!("{greeting}\n\n{}\n\n{action}:\n{link}\n\n{}\n", wrapped.join("\n\n"), wrap(footer));
    let html = format!(
        "<!doctype html><html><body style=\"font-family: sans-serif\"><p>{}</p>{}<p><a href=\"{}\">{}</a></p><p style=\"color: #666\">{}</p></body></html>",
        escape(greeting),
        paragraphs.iter().map(|p| format!("<p>{}</p>", escape(p))).collect::<String>(),
        escape(link),
        escape(action),
        escape(footer)
    );
    Email { subject, text, html }
}

/// "Reset your password", with a link that works once within `valid_minutes`.
fn password_reset(full_name: &str, why: &str, link: &str, valid_minutes: i64) -> Email {
    compose(
        "Reset your Roster password".into(),
        &format!("Hello {full_name},"),
        &[why.to_string(), format!("The link below works once, for {valid_minutes} minutes.")],
        "Choose a new password",
        link,
        "If you did not ask for this, ignore this email: your password stays as it is.",
    )
}

/// "Join {tenant}": an invitation with a link that works once within `valid_days`.
fn invitation(tenant: &str, inviter: &str, inviter_email: &str, role: &str, link: &str, valid_days: i64) -> Email {
    compose(
        format!("{inviter} invited you to {tenant} on Roster"),
        "Hello,",
        &[
            format!("{inviter} ({inviter_email}) invited you to join {tenant} on Roster as {role}."),
            format!(
                "The link below works once, for {valid_days} days. If you already have a Roster account, accept with its password; otherwise choose your name and a password."
            ),
        ],
        "Accept the invitation",
        link,
        "If you did not expect this invitation, ignore this email.",
    )
}

/// "Welcome to {tenant}": an account made for the person, with a link to choose its password.
fn set_password(full_name: &str, tenant: &str, creator: &str, link: &str, valid_days: i64) -> Email {
    compose(
        format!("Your {tenant} account on Roster: choose a password"),
        &format!("Hello {full_name},"),
        &[
            format!("{creator} made you a Roster account as a member of {tenant}."),
            format!("Choose your password with the link below; it works once, for {valid_days} days."),
        ],
        "Choose your password",
        link,
        "If you did not expect this, ignore this email: nobody can sign in to the account until a password is chosen.",
    )
}

/// "You were added": a directory (SCIM) gave an existing account a membership; they sign in as
/// they always do.
fn added_to_tenant(full_name: &str, tenant: &str, role: &str, link: &str) -> Email {
    compose(
        format!("You now have access to {tenant} on Roster"),
        &format!("Hello {full_name},"),
        &[
            format!("{tenant}'s directory added you to {tenant} as {role}."),
            "Sign in with your existing Roster account; nothing about it has changed.".to_string(),
        ],
        "Sign in",
        link,
        "If you did not expect this, tell the administrators of that organisation.",
    )
}

/// "Confirm your email": the address a person gave when completing the profile a device agent
/// started; following the link makes it their sign-in address.
fn confirm_email(full_name: &str, tenant: &str, link: &str, valid_days: i64) -> Email {
    compose(
        format!("Confirm your email for {tenant} on Roster"),
        &format!("Hello {full_name},"),
        &[
            format!("You completed your Roster profile as a member of {tenant} and gave this address."),
            format!(
                "Confirm it with the link below; it works once, for {valid_days} days. You sign in with it once an admin has approved your device."
            ),
        ],
        "Confirm your email",
        link,
        "If this was not you, ignore this email: the address is not used until it is confirmed.",
    )
}

/// "A webhook endpoint was turned off": every delivery to it failed for days.
fn webhook_disabled(full_name: &str, url: &str, days: i64, link: &str) -> Email {
    compose(
        "A Roster webhook endpoint was turned off".to_string(),
        &format!("Hello {full_name},"),
        &[
            format!("Every delivery to {url} failed for {days} days, so Roster turned the endpoint off."),
            "Events go on being kept in the feed; once the endpoint answers again, turn it back on (PATCH with enabled: true) and retry what failed.".to_string(),
        ],
        "See the endpoint",
        link,
        "You receive this as an owner of the tenant.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_renders_its_template() {
        let notice = Notice::PasswordReset {
            full_name: "Ada".into(),
            why: "Someone asked.".into(),
            link: "https://app.example/reset-password?token=t".into(),
            valid_minutes: 60,
        };
        let stored = serde_json::to_vec(&notice).unwrap();
        let email = render(&serde_json::from_slice(&stored).unwrap());
        assert_eq!(email.subject, "Reset your Roster password");
        assert!(email.text.starts_with("Hello Ada,\n\nSomeone asked."), "{}", email.text);
        assert!(email.text.contains("\nhttps://app.example/reset-password?token=t\n"), "{}", email.text);
    }

    #[test]
    fn a_message_queued_already_rendered_is_sent_as_it_is() {
        let stored = r#"{"subject":"S","text":"T","html":"<p>H</p>"}"#;
        let email = render(&serde_json::from_str(stored).unwrap());
        assert_eq!((email.subject.as_str(), email.text.as_str(), email.html.as_str()), ("S", "T", "<p>H</p>"));
    }
}
