//! Discoverable keys: the edge serves the discovery document and the JWKS
//! to anyone, without a token, with cache headers; a resource server
//! written in another language (Python, PyJWT) verifies an access token
//! with keys it found only through the discovery document.

use std::io::Write;
use std::process::{Command, Stdio};

use interlock_e2e::{register_and_login, target, tool, unique_login};

/// `curl` through the edge: (status, lower-cased headers, body).
fn get(path: &str, extra: &[&str]) -> (u16, String, String) {
    let target = target();
    let m = target.local();
    let out = Command::new("curl")
        .args(["-sS", "-D", "/dev/stderr", "--cacert"])
        .arg(m.run_dir.join("edge-ca.pem"))
        .args(extra)
        .arg(format!("https://{}{path}", target.edge_addr()))
        .output()
        .expect("run curl");
    let headers = String::from_utf8_lossy(&out.stderr).to_ascii_lowercase();
    let status = headers
        .lines()
        .find(|l| l.starts_with("http/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {headers}"));
    (
        status,
        headers,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .map(str::trim)
}

/// Both documents answer 200 without a token (the edge used to answer
/// "Jwt is missing"), are cacheable, and revalidate with 304.
#[test]
fn discovery_document_and_jwks_are_public_and_cacheable_at_the_edge() {
    let target = target();
    let m = target.local();
    let (status, headers, body) = get("/.well-known/openid-configuration", &[]);
    assert_eq!(status, 200, "{headers}{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=3600")
    );
    let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["issuer"], "interlock-auth");
    assert_eq!(
        doc["jwks_uri"],
        format!(
            "https://localhost:{}/.well-known/jwks.json",
            m.topology.edge.port
        )
    );
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );

    let (status, headers, body) = get("/.well-known/jwks.json", &[]);
    assert_eq!(status, 200, "{headers}{body}");
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=300")
    );
    let jwks: serde_json::Value = serde_json::from_str(&body).expect("json");
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!((&key["kty"], &key["crv"]), (&"EC".into(), &"P-256".into()));
        assert!(key.get("d").is_none(), "no private key material");
    }
    let etag = header(&headers, "etag").expect("etag").to_owned();
    let (status, _, body) = get(
        "/.well-known/jwks.json",
        &["-H", &format!("if-none-match: {etag}")],
    );
    assert_eq!((status, body.as_str()), (304, ""));

    // Internal HTTP endpoints stay closed to clients of the edge.
    let (status, _, _) = get("/internal/revoked-sessions", &[]);
    assert_ne!(status, 200);
}

/// PyJWT's PyJWKClient, given only the discovery URL and the edge's CA,
/// verifies an access token from Login (signature, ES256, issuer,
/// audience, expiry) and refuses the same token with a forged claim.
#[tokio::test]
async fn python_resource_server_verifies_a_token_with_keys_from_discovery_only() {
    let target = target();
    let m = target.local();
    let pair = register_and_login(&target, &unique_login("pyjwt")).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_token.py");
    let verify = |token: &str| {
        let mut child = Command::new(tool("interlock-python"))
            .arg(&script)
            .arg(format!(
                "https://{}/.well-known/openid-configuration",
                target.edge_addr()
            ))
            .arg(m.run_dir.join("edge-ca.pem"))
            .arg(interlock_common::settings::default_audience())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run interlock-python (scripts/install-tools.sh)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(token.as_bytes())
            .expect("write token");
        child.wait_with_output().expect("python finishes")
    };
    let out = verify(&pair.access_token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let claims: serde_json::Value = serde_json::from_slice(&out.stdout).expect("claims json");
    assert_eq!(claims["sub"], pair.user_id.as_str());
    assert_eq!(claims["sid"], pair.session_id.as_str());

    // The same header and signature over a payload naming someone else.
    let mut parts: Vec<String> = pair.access_token.split('.').map(str::to_owned).collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut payload: serde_json::Value =
        serde_json::from_slice(&b64.decode(&parts[1]).expect("payload")).expect("json");
    payload["sub"] = uuid::Uuid::new_v4().to_string().into();
    parts[1] = b64.encode(payload.to_string());
    let out = verify(&parts.join("."));
    assert!(!out.status.success(), "a forged token verified");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("InvalidSignatureError"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
