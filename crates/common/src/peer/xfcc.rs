//! Parser for Envoy's `x-forwarded-client-cert` header:
//! `By=<uri>;Hash=<hex>;Cert="<url-encoded PEM>";Chain="<url-encoded PEMs>";URI=<uri>`.
//!
//! Only one element is accepted: the sidecar is configured with
//! `SANITIZE_SET`, so a second element means the header did not come from it.

use percent_encoding::percent_decode_str;

/// Why a header could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum XfccError {
    /// Several comma-separated elements: a proxy appended instead of
    /// replacing, or someone forged the header.
    #[error("more than one element")]
    SeveralElements,
    /// A quoted value is not closed, or a pair has no `=`.
    #[error("bad syntax: {0}")]
    Syntax(&'static str),
    /// The `Cert` field is missing: the sidecar is not set to forward it.
    #[error("no Cert field")]
    NoCert,
    /// `Cert` or `Chain` is not URL-encoded PEM of certificates.
    #[error("bad {0} field")]
    BadPem(&'static str),
}

/// The certificate material forwarded by the sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedCert {
    /// DER of the peer's leaf certificate.
    pub cert_der: Vec<u8>,
    /// DER of the rest of the peer's chain (may be empty).
    pub chain_der: Vec<Vec<u8>>,
    /// The `URI` field, as the sidecar saw it (informational).
    pub uri: Option<String>,
}

/// Parses one XFCC header value.
pub fn parse(header: &str) -> Result<ForwardedCert, XfccError> {
    let elements = split_unquoted(header, ',')?;
    if elements.len() != 1 {
        return Err(XfccError::SeveralElements);
    }
    let mut cert = None;
    let mut chain = Vec::new();
    let mut uri = None;
    for pair in split_unquoted(elements[0], ';')? {
        let (key, value) = pair
            .split_once('=')
            .ok_or(XfccError::Syntax("pair without '='"))?;
        let value = unquote(value.trim())?;
        match key.trim().to_ascii_lowercase().as_str() {
            "cert" => cert = Some(pem_blocks(&value, "Cert")?),
            "chain" => chain = pem_blocks(&value, "Chain")?,
            "uri" => uri = Some(value),
            _ => {}
        }
    }
    let mut cert = cert.ok_or(XfccError::NoCert)?;
    if cert.len() != 1 {
        return Err(XfccError::BadPem("Cert"));
    }
    // Envoy's Chain starts with the leaf itself; keep only the issuers.
    let cert_der = cert.remove(0);
    chain.retain(|c| *c != cert_der);
    Ok(ForwardedCert {
        cert_der,
        chain_der: chain,
        uri,
    })
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> Result<Vec<&str>, XfccError> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return Err(XfccError::Syntax("unterminated quote"));
    }
    parts.push(&s[start..]);
    Ok(parts.into_iter().filter(|p| !p.trim().is_empty()).collect())
}

fn unquote(v: &str) -> Result<String, XfccError> {
    match v.strip_prefix('"') {
        None => Ok(v.to_owned()),
        Some(rest) => {
            let inner = rest
                .strip_suffix('"')
                .ok_or(XfccError::Syntax("unterminated quote"))?;
            Ok(inner.replace("\\\"", "\""))
        }
    }
}

fn pem_blocks(value: &str, field: &'static str) -> Result<Vec<Vec<u8>>, XfccError> {
    let decoded = percent_decode_str(value)
        .decode_utf8()
        .map_err(|_| XfccError::BadPem(field))?;
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(decoded.as_bytes()) {
        let pem = pem.map_err(|_| XfccError::BadPem(field))?;
        if pem.label != "CERTIFICATE" {
            return Err(XfccError::BadPem(field));
        }
        out.push(pem.contents);
    }
    if out.is_empty() {
        return Err(XfccError::BadPem(field));
    }
    Ok(out)
}

/// Builds a header value the way Envoy does (used by tests and tools).
pub fn encode(cert_pem: &str, chain_pem: Option<&str>, uri: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let mut out = format!(
        "By={uri};Cert=\"{}\"",
        utf8_percent_encode(cert_pem, NON_ALPHANUMERIC)
    );
    if let Some(chain) = chain_pem {
        out.push_str(&format!(
            ";Chain=\"{}\"",
            utf8_percent_encode(chain, NON_ALPHANUMERIC)
        ));
    }
    out.push_str(&format!(";URI={uri}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    /// A header as Envoy writes it yields the DER of the forwarded cert.
    #[test]
    fn parses_an_envoy_style_header() {
        let pem = cert_pem();
        let header = encode(&pem, None, "spiffe://t/svc/a");
        let parsed = parse(&format!("Hash=abc;{header}")).unwrap();
        let expected = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents;
        assert_eq!(parsed.cert_der, expected);
        assert_eq!(parsed.uri.as_deref(), Some("spiffe://t/svc/a"));
        assert!(parsed.chain_der.is_empty());
    }

    /// Malformed headers are refused with a reason, never half-parsed.
    #[test]
    fn malformed_headers_are_refused() {
        let good = encode(&cert_pem(), None, "spiffe://t/a");
        assert_eq!(
            parse(&format!("{good},{good}")),
            Err(XfccError::SeveralElements)
        );
        assert_eq!(
            parse("By=spiffe://t/a;URI=spiffe://t/a"),
            Err(XfccError::NoCert)
        );
        assert_eq!(
            parse("Cert=\"abc"),
            Err(XfccError::Syntax("unterminated quote"))
        );
        assert_eq!(parse("Cert=\"not-a-pem\""), Err(XfccError::BadPem("Cert")));
        assert_eq!(parse("garbage"), Err(XfccError::Syntax("pair without '='")));
    }
}
