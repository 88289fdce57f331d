//! What a resource server needs to verify auth's access tokens on its own:
//! `GET /.well-known/jwks.json` (the signing keys) and
//! `GET /.well-known/openid-configuration` (an OpenID-style discovery
//! document naming the issuer, where the keys are, and the algorithm).
//! Both are public at the edge (`exposure = "external"` in the policy) and
//! fetched by the edge's and the services' verifiers.
//!
//! Both answers carry `Cache-Control` and a strong `ETag`, and a matching
//! `If-None-Match` gets `304 Not Modified`. The JWKS may be cached for at
//! most half the time a new key is published before it signs, so a cached
//! copy always holds the key of any token a verifier can meet.

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use interlock_common::jwt::ALGORITHM;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::keys::KeyRing;

/// Where the JWKS is served (and what `jwks_uri` points at).
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the discovery document is served.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The longest a JWKS may be cached, whatever the publish lead.
const MAX_JWKS_CACHE_SECS: i64 = 300;
/// The discovery document changes only with configuration.
const DISCOVERY_CACHE_SECS: u64 = 3600;

/// The discovery document (the subset of OpenID Connect Discovery 1.0
/// that describes token verification; auth has no authorization
/// endpoint).
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct DiscoveryDocument {
    /// The `iss` claim of every access token.
    pub issuer: String,
    /// The JWKS, at the edge's public address.
    pub jwks_uri: String,
    /// Access tokens are JWTs signed with these algorithms (ES256 only).
    pub id_token_signing_alg_values_supported: Vec<String>,
    pub subject_types_supported: Vec<String>,
    /// The claims every access token carries.
    pub claims_supported: Vec<String>,
}

impl DiscoveryDocument {
    /// The document of `issuer`, whose edge clients reach at `public_url`
    /// (`https://host:port`, no trailing slash).
    pub fn new(issuer: &str, public_url: &str) -> Self {
        let algorithm = format!("{ALGORITHM:?}");
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{}{JWKS_PATH}", public_url.trim_end_matches('/')),
            id_token_signing_alg_values_supported: vec![algorithm],
            subject_types_supported: vec!["public".into()],
            claims_supported: ["iss", "aud", "sub", "iat", "exp", "jti", "sid"]
                .map(String::from)
                .to_vec(),
        }
    }
}

/// How long a JWKS may be cached: half the publish lead, at most
/// [`MAX_JWKS_CACHE_SECS`].
pub fn jwks_max_age(publish_lead: chrono::Duration) -> u64 {
    u64::try_from((publish_lead.num_seconds() / 2).clamp(0, MAX_JWKS_CACHE_SECS)).unwrap_or(0)
}

/// `body` as a cacheable JSON answer, or 304 if the client has it.
fn cached_json(request: &HeaderMap, body: Vec<u8>, max_age: u64) -> Response {
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", hex_prefix(&digest, 16));
    let cache = format!("public, max-age={max_age}");
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        });
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, header_value(&cache));
    headers.insert(header::ETAG, header_value(&etag));
    if fresh {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    (StatusCode::OK, headers, body).into_response()
}

fn header_value(v: &str) -> HeaderValue {
    HeaderValue::from_str(v).expect("ASCII without control characters")
}

fn hex_prefix(bytes: &[u8], chars: usize) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(chars)
        .collect()
}

/// Both documents.
pub fn router(keys: Arc<KeyRing>, document: DiscoveryDocument, jwks_max_age: u64) -> axum::Router {
    let discovery = serde_json::to_vec(&document).expect("the document serialises");
    axum::Router::new()
        .route(
            JWKS_PATH,
            axum::routing::get(move |request: HeaderMap| {
                let keys = keys.clone();
                async move {
                    match serde_json::to_vec(&keys.jwks().await) {
                        Ok(body) => cached_json(&request, body, jwks_max_age),
                        Err(error) => {
                            tracing::error!(%error, "serialising the JWKS failed");
                            StatusCode::INTERNAL_SERVER_ERROR.into_response()
                        }
                    }
                }
            }),
        )
        .route(
            DISCOVERY_PATH,
            axum::routing::get(move |request: HeaderMap| {
                let body = discovery.clone();
                async move { cached_json(&request, body, DISCOVERY_CACHE_SECS) }
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document points at the edge's JWKS and names the one algorithm
    /// tokens are signed with, whatever slashes the URL was given with.
    #[test]
    fn discovery_document_names_issuer_keys_and_algorithm() {
        let doc = DiscoveryDocument::new("interlock-auth", "https://localhost:17443/");
        assert_eq!(doc.issuer, "interlock-auth");
        assert_eq!(
            doc.jwks_uri,
            "https://localhost:17443/.well-known/jwks.json"
        );
        assert_eq!(doc.id_token_signing_alg_values_supported, ["ES256"]);
        assert!(doc.claims_supported.contains(&"sid".to_owned()));
    }

    /// A JWKS is never cached for longer than half the publish lead, nor
    /// longer than five minutes.
    #[test]
    fn jwks_cache_lifetime_stays_within_the_publish_lead() {
        assert_eq!(jwks_max_age(chrono::Duration::seconds(600)), 300);
        assert_eq!(jwks_max_age(chrono::Duration::seconds(120)), 60);
        assert_eq!(jwks_max_age(chrono::Duration::seconds(0)), 0);
        assert_eq!(jwks_max_age(chrono::Duration::days(7)), 300);
    }

    /// The same body has the same ETag; presenting it (alone, in a list or
    /// weak) gets 304 without a body, anything else the full answer.
    #[test]
    fn etag_revalidation_answers_not_modified() {
        let body = br#"{"keys":[]}"#.to_vec();
        let first = cached_json(&HeaderMap::new(), body.clone(), 60);
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "public, max-age=60");
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        for presented in [etag.clone(), format!("\"other\", W/{etag}")] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_NONE_MATCH, header_value(&presented));
            let again = cached_json(&h, body.clone(), 60);
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{presented}");
            assert_eq!(again.headers()[header::ETAG], etag.as_str());
        }
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, header_value("\"stale\""));
        assert_eq!(cached_json(&h, body, 60).status(), StatusCode::OK);
    }
}
