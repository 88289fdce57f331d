//! Email: the messages auth sends (plain text and HTML, with the product's
//! name, the code and when it expires) and their delivery over SMTP
//! (lettre, STARTTLS or implicit TLS with rustls).
//!
//! Requests hand a message to [`Mailer::send`] and return at once; a
//! background task ([`Mailer::run`]) delivers it, retrying transient
//! failures with exponential backoff, and logs one line per message: its
//! kind, the account's id and the outcome — never the address or the code.
//! A message still queued when auth stops is lost; the user asks again
//! (ResendVerification, RequestPasswordReset).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::{Semaphore, mpsc, watch};
use uuid::Uuid;

use crate::codes::Code;
use crate::config::{EmailConfig, SmtpTls};

/// Messages waiting for delivery; beyond this a message is dropped (and
/// logged) rather than holding the request.
const QUEUE: usize = 1000;
/// Messages delivered at once.
const CONCURRENT_SENDS: usize = 4;
/// The first retry's wait; doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VerifyEmail,
    ResetPassword,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::VerifyEmail => "email verification",
            Kind::ResetPassword => "password reset",
        }
    }
}

/// One message to one account.
pub struct Outgoing {
    pub kind: Kind,
    pub user_id: Uuid,
    /// The account's address (never logged).
    pub to: String,
    pub first_name: String,
    pub code: Code,
    pub expires_at: DateTime<Utc>,
}

/// A message's subject, text and HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The message for `m` from `product`. The text part keeps short ASCII
/// lines (names aside), and its code line is `Code: NNNNNNNN`.
pub fn render(product: &str, m: &Outgoing, now: DateTime<Utc>) -> Rendered {
    // Rounded up: a code made a moment ago for 30 minutes says 30.
    let minutes = ((m.expires_at - now).num_seconds() + 59)
        .div_euclid(60)
        .max(1);
    let until = m.expires_at.format("%Y-%m-%d %H:%M UTC");
    let code = m.code.expose();
    let (subject, intro, rpc, ignore) = match m.kind {
        Kind::VerifyEmail => (
            format!("{product}: confirm your email address"),
            format!("Welcome to {product}. To confirm this email address, enter this code:"),
            "interlock.auth.v1.AuthService/ConfirmEmail",
            format!("If you did not create a {product} account, ignore this email."),
        ),
        Kind::ResetPassword => (
            format!("{product}: reset your password"),
            format!("To choose a new {product} password, enter this code:"),
            "interlock.auth.v1.AuthService/ResetPassword",
            "If you did not ask for this, ignore this email: your password\r\n\
             stays as it is."
                .to_owned(),
        ),
    };
    let text = format!(
        "Hello {name},\r\n\r\n{intro}\r\n\r\nCode: {code}\r\n\r\n\
         It expires in {minutes} minutes ({until}) and works once.\r\n\
         (In the API: {rpc}.)\r\n\r\n{ignore}\r\n\r\n-- {product}\r\n",
        name = m.first_name,
    );
    let e = html_escape;
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{subject}</title></head>\n\
         <body style=\"font-family: sans-serif\">\n\
         <p>Hello {name},</p>\n<p>{intro}</p>\n\
         <p style=\"font-size: 1.6em; letter-spacing: 0.2em\"><strong>{code}</strong></p>\n\
         <p>It expires in {minutes} minutes ({until}) and works once.</p>\n\
         <p>{ignore}</p>\n<p>&mdash; {product}</p>\n</body></html>\n",
        subject = e(&subject),
        name = e(&m.first_name),
        intro = e(&intro),
        ignore = e(&ignore),
        product = e(product),
    );
    Rendered {
        subject,
        text,
        html,
    }
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Hands messages to the delivery task.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Outgoing>,
}

/// The delivery side: the SMTP transport and the queue's other end.
pub struct Delivery {
    queue: mpsc::Receiver<Outgoing>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    product: String,
    max_attempts: u32,
}

impl Mailer {
    /// A mailer and its delivery task's state, from `[email]`.
    pub fn new(config: &EmailConfig) -> anyhow::Result<(Self, Delivery)> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let delivery = Delivery {
            queue: rx,
            transport: transport(config)?,
            from: config.from.parse()?,
            product: config.product_name.clone(),
            max_attempts: config.max_attempts,
        };
        Ok((Self { queue: tx }, delivery))
    }

    /// Queues `m` for delivery; never waits. A full queue drops it (logged).
    pub fn send(&self, m: Outgoing) {
        let (kind, user_id) = (m.kind, m.user_id);
        if self.queue.try_send(m).is_err() {
            tracing::error!(
                kind = kind.name(),
                %user_id,
                "email not queued: the queue is full or closed; the user can ask again"
            );
        }
    }
}

fn transport(c: &EmailConfig) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let server_name = c
        .tls_server_name
        .clone()
        .unwrap_or_else(|| c.smtp_host.clone());
    let mut params = TlsParameters::builder(server_name);
    if let Some(ca) = &c.tls_ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| anyhow::anyhow!("email.tls_ca_file {}: {e}", ca.display()))?;
        params = params.add_root_certificate(Certificate::from_pem(&pem)?);
    }
    let params = params.build_rustls()?;
    let tls = match c.tls {
        SmtpTls::Starttls => Tls::Required(params),
        SmtpTls::Implicit => Tls::Wrapper(params),
        SmtpTls::Opportunistic => Tls::Opportunistic(params),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.smtp_host)
        .port(c.smtp_port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(c.timeout_secs)));
    if let (Some(user), Some(password)) = (&c.username, &c.password) {
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose_secret().to_owned(),
        ));
    }
    Ok(builder.build())
}

impl Delivery {
    /// Delivers queued messages until `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(CONCURRENT_SENDS));
        let shared = Arc::new((self.transport, self.from, self.product, self.max_attempts));
        loop {
            let next = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                m = self.queue.recv() => m,
            };
            let Some(m) = next else { return };
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let (transport, from, product, attempts) = &*shared;
                deliver(transport, from, product, *attempts, m).await;
            });
        }
    }
}

/// Sends `m`, retrying transient failures; logs one line with the outcome.
async fn deliver(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    product: &str,
    max_attempts: u32,
    m: Outgoing,
) {
    let kind = m.kind.name();
    let user_id = m.user_id;
    let message = match build(from, product, &m) {
        Ok(message) => message,
        Err(error) => {
            tracing::error!(kind, %user_id, %error, "email not sent: the message could not be built");
            return;
        }
    };
    let mut wait = FIRST_RETRY;
    for attempt in 1..=max_attempts {
        match transport.send(message.clone()).await {
            Ok(response) => {
                tracing::info!(
                    kind,
                    %user_id,
                    attempt,
                    smtp_code = %response.code(),
                    "email sent"
                );
                return;
            }
            Err(error) if !error.is_permanent() && attempt < max_attempts => {
                tracing::warn!(kind, %user_id, attempt, error = %failure(&error), "email delivery failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(error) => {
                tracing::error!(
                    kind,
                    %user_id,
                    attempt,
                    permanent = error.is_permanent(),
                    error = %failure(&error),
                    "email not sent"
                );
                return;
            }
        }
    }
}

/// What went wrong with a send, without the server's text: an SMTP reply
/// often quotes the recipient's address, which logs never carry.
fn failure(e: &lettre::transport::smtp::Error) -> String {
    if let Some(code) = e.status() {
        return format!("SMTP reply {code}");
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_tls() {
        "TLS handshake or certificate"
    } else if e.is_client() {
        "refused by the client (bad message or address)"
    } else {
        "connection or protocol"
    };
    kind.to_owned()
}

fn build(from: &Mailbox, product: &str, m: &Outgoing) -> anyhow::Result<Message> {
    let r = render(product, m, Utc::now());
    Ok(Message::builder()
        .from(from.clone())
        .to(m.to.parse()?)
        .subject(r.subject)
        .multipart(MultiPart::alternative_plain_html(r.text, r.html))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(kind: Kind, name: &str) -> Outgoing {
        Outgoing {
            kind,
            user_id: Uuid::now_v7(),
            to: "ada@example.com".into(),
            first_name: name.into(),
            code: Code::random(),
            expires_at: DateTime::parse_from_rfc3339("2026-11-22T12:30:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    /// Both parts carry the product's name, the code and its expiry; the
    /// subject says what the message is for.
    #[test]
    fn messages_carry_product_code_and_expiry_in_text_and_html() {
        for (kind, subject) in [
            (Kind::VerifyEmail, "Interlock: confirm your email address"),
            (Kind::ResetPassword, "Interlock: reset your password"),
        ] {
            let m = outgoing(kind, "Ada");
            let r = render("Interlock", &m, now());
            assert_eq!(r.subject, subject);
            let code = m.code.expose();
            assert!(
                r.text.contains(&format!("\r\nCode: {code}\r\n")),
                "{}",
                r.text
            );
            for part in [&r.text, &r.html] {
                assert!(part.contains(code), "{part}");
                assert!(part.contains("Interlock"), "{part}");
                assert!(part.contains("30 minutes (2026-11-22 12:30 UTC)"), "{part}");
            }
            assert!(r.text.is_ascii() && r.text.lines().all(|l| l.len() < 78));
        }
    }

    /// A name cannot inject markup into the HTML part.
    #[test]
    fn names_are_escaped_in_html() {
        let r = render(
            "Interlock",
            &outgoing(Kind::VerifyEmail, "<b>Eve</b>"),
            now(),
        );
        assert!(
            r.html.contains("Hello &lt;b&gt;Eve&lt;/b&gt;,"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<b>Eve"));
    }

    /// The built message is multipart/alternative from the configured
    /// sender to the account's address.
    #[test]
    fn built_message_is_text_and_html_alternatives() {
        let from: Mailbox = "Interlock <no-reply@interlock.local>".parse().unwrap();
        let m = outgoing(Kind::ResetPassword, "Ada");
        let text = String::from_utf8(build(&from, "Interlock", &m).unwrap().formatted()).unwrap();
        assert!(text.contains("To: ada@example.com\r\n"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain") && text.contains("text/html"));
        assert!(text.contains(&format!("Code: {}", m.code.expose())));
    }
}
