//! The local SMTP server's mail, read back: scripts/smtp.sh runs a Postfix
//! that delivers every message to one Maildir (`[smtp] home` in the
//! topology); the tests and `interlock-mesh mail` find a recipient's
//! messages there and the code in them.
//!
//! Reads what auth sends (lettre: MIME multipart/alternative, parts in
//! 7bit, quoted-printable or base64); not a general MIME parser.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;

/// The Maildir under the SMTP server's home.
pub fn maildir(smtp_home: &Path) -> PathBuf {
    smtp_home.join("mail").join("Maildir")
}

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Mail {
    pub path: PathBuf,
    pub delivered: SystemTime,
    pub to: String,
    pub from: String,
    pub subject: String,
    /// The text/plain part (decoded).
    pub text: String,
    /// The text/html part (decoded), if any.
    pub html: Option<String>,
}

impl Mail {
    /// The `Code: NNNNNNNN` line of the text part.
    pub fn code(&self) -> Option<String> {
        self.text.lines().find_map(|l| {
            let code = l.trim().strip_prefix("Code:")?.trim();
            (!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit())).then(|| code.to_owned())
        })
    }
}

/// Every message in `dir` (`new` and `cur`) addressed to `to`
/// (case-insensitive), oldest first.
pub fn messages_to(dir: &Path, to: &str) -> Vec<Mail> {
    let to = to.to_ascii_lowercase();
    let mut found: Vec<Mail> = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flatten()
        .flatten()
        .filter_map(|entry| parse_file(&entry.path()))
        .filter(|m| {
            m.to.to_ascii_lowercase()
                .split(',')
                .any(|a| address_of(a) == to)
        })
        .collect();
    found.sort_by(|a, b| (a.delivered, &a.path).cmp(&(b.delivered, &b.path)));
    found
}

/// Waits up to `timeout` until `dir` holds at least `n` messages to `to`;
/// returns them all, oldest first.
pub fn wait_for(dir: &Path, to: &str, n: usize, timeout: Duration) -> Result<Vec<Mail>, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let found = messages_to(dir, to);
        if found.len() >= n {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{} message(s) to {to} in {} after {timeout:?}, expected {n}",
                found.len(),
                dir.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `Name <a@b>` or `a@b` -> `a@b`, lowercased.
fn address_of(s: &str) -> String {
    let s = s.trim();
    let inner = match (s.rfind('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close => &s[open + 1..close],
        _ => s,
    };
    inner.trim().to_ascii_lowercase()
}

fn parse_file(path: &Path) -> Option<Mail> {
    let raw = std::fs::read(path).ok()?;
    let delivered = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let text = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
    let (headers, body) = split_headers(&text);
    let header = |name: &str| header_value(&headers, name).unwrap_or_default();
    let mut mail = Mail {
        path: path.to_owned(),
        delivered,
        to: header("to"),
        from: header("from"),
        subject: header("subject"),
        text: String::new(),
        html: None,
    };
    let content_type = header("content-type");
    match boundary(&content_type) {
        Some(boundary) => {
            for part in body.split(&format!("--{boundary}")).skip(1) {
                if part.starts_with("--") {
                    break;
                }
                let (part_headers, part_body) = split_headers(part.trim_start_matches('\n'));
                let kind = header_value(&part_headers, "content-type").unwrap_or_default();
                let encoding =
                    header_value(&part_headers, "content-transfer-encoding").unwrap_or_default();
                let decoded = decode(part_body, &encoding);
                if kind.starts_with("text/plain") {
                    mail.text = decoded;
                } else if kind.starts_with("text/html") {
                    mail.html = Some(decoded);
                }
            }
        }
        None => {
            let encoding = header("content-transfer-encoding");
            mail.text = decode(body, &encoding);
        }
    }
    Some(mail)
}

/// Headers (unfolded, `name: value`) and the body after the blank line.
fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    (headers, body)
}

fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn boundary(content_type: &str) -> Option<String> {
    if !content_type.to_ascii_lowercase().starts_with("multipart/") {
        return None;
    }
    content_type.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary")).then(|| v.trim().trim_matches('"').to_owned())
    })
}

fn decode(body: &str, encoding: &str) -> String {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        }
        "quoted-printable" => quoted_printable(body),
        _ => body.trim_end_matches('\n').to_owned(),
    }
}

fn quoted_printable(body: &str) -> String {
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3).unwrap_or_default())
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out)
        .trim_end_matches('\n')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "Return-Path: <no-reply@interlock.local>\r\n\
        From: Interlock <no-reply@interlock.local>\r\n\
        To: Ada@Example.com\r\n\
        Subject: Interlock: confirm your\r\n email address\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative;\r\n boundary=\"XYZ\"\r\n\
        \r\n\
        --XYZ\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: 7bit\r\n\
        \r\n\
        Hello Ada,\r\n\r\nCode: 01234567\r\n\
        --XYZ\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        <p style=3D\"x\">01234567</p>=\r\n<p>caf=C3=A9</p>\r\n\
        --XYZ--\r\n";

    /// A delivered message is found by its recipient (any case), its
    /// headers unfolded, its parts decoded, its code read.
    #[test]
    fn finds_decodes_and_reads_the_code() {
        let dir = std::env::temp_dir().join(format!("interlock-maildir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("new")).unwrap();
        std::fs::write(dir.join("new").join("1.M1.host"), MESSAGE).unwrap();
        std::fs::write(
            dir.join("new").join("2.M2.host"),
            "To: other@example.com\r\n\r\nhi\r\n",
        )
        .unwrap();
        let found = messages_to(&dir, "ada@example.com");
        assert_eq!(found.len(), 1);
        let m = &found[0];
        assert_eq!(m.subject, "Interlock: confirm your email address");
        assert_eq!(m.code().as_deref(), Some("01234567"));
        assert_eq!(
            m.html.as_deref(),
            Some("<p style=\"x\">01234567</p><p>café</p>")
        );
        assert!(wait_for(&dir, "ada@example.com", 2, Duration::from_millis(200)).is_err());
        assert_eq!(address_of("Ada L <ADA@example.com>"), "ada@example.com");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
