//! FCM HTTP v1 client.
//!
//! Auth: the service account signs an RS256 assertion (`iss` = client
//! email, `scope` = firebase.messaging, `aud` = token URI, `iat`, `exp` =
//! `iat` + 1 h) and exchanges it at the token URI (OAuth2 JWT-bearer grant);
//! the access token is cached until shortly before it expires, and dropped
//! at once if FCM answers 401 without an FCM error code. The cache goes by
//! a [`Clock`], so a test can step past a token's lifetime instead of
//! waiting it out.
//!
//! Sends go to `POST {base}/v1/projects/{project}/messages:send` over one
//! reused HTTP/2 connection pool. Answers map to [`SendOutcome`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime asked for in the assertion (the documented maximum).
const ASSERTION_TTL_SECS: i64 = 3600;

/// The fields of a Google service-account file the client uses.
#[derive(Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: SecretString,
    pub client_email: String,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("project_id", &self.project_id)
            .field("client_email", &self.client_email)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// What one send achieved, and what the sender must do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Delivered,
    /// The token is gone: remove the device.
    Unregistered,
    /// INVALID_ARGUMENT, SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR: give
    /// up on this device.
    Permanent(String),
    /// QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL (or a transport failure):
    /// retry later, not before `retry_after` if FCM said so.
    Retry {
        code: String,
        retry_after: Option<Duration>,
    },
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FcmError {
    /// The service account or the token endpoint refused to authenticate.
    #[error("FCM authentication failed: {0}")]
    Auth(String),
    #[error("service account: {0}")]
    Account(String),
}

/// The time the access-token cache goes by: the monotonic clock in the
/// service, a clock the test steps in tests. (The assertion's `iat` and
/// `exp` stay on the wall clock: the token endpoint checks them against
/// its own.)
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

pub struct FcmClient {
    http: reqwest::Client,
    account: ServiceAccount,
    token_uri: String,
    send_url: String,
    key: jsonwebtoken::EncodingKey,
    token: Mutex<Option<CachedToken>>,
    clock: Arc<dyn Clock>,
}

impl FcmClient {
    /// `account_json` is a standard service-account file; `token_uri`
    /// overrides its own.
    pub fn new(
        account_json: &str,
        base_url: &str,
        token_uri: Option<&str>,
    ) -> Result<Self, FcmError> {
        interlock_common::client::install_crypto_provider();
        let account: ServiceAccount =
            serde_json::from_str(account_json).map_err(|e| FcmError::Account(e.to_string()))?;
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(account.private_key.expose_secret().as_bytes())
                .map_err(|e| FcmError::Account(format!("private_key: {e}")))?;
        let mut http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90));
        // Plain-HTTP endpoints (the local server) speak HTTP/2 without TLS.
        if base_url.starts_with("http://") {
            http = http.http2_prior_knowledge();
        }
        let http = http.build().map_err(|e| FcmError::Account(e.to_string()))?;
        Ok(Self {
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                base_url.trim_end_matches('/'),
                account.project_id
            ),
            token_uri: token_uri.unwrap_or(&account.token_uri).to_owned(),
            http,
            account,
            key,
            token: Mutex::new(None),
            clock: Arc::new(SystemClock),
        })
    }

    /// The same client with its token cache going by `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The bearer token, from the cache or a new grant.
    async fn access_token(&self) -> Result<SecretString, FcmError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && self.clock.now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.account.client_email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + ASSERTION_TTL_SECS,
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.account.private_key_id.clone());
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| FcmError::Auth(e.to_string()))?;
        let resp = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| FcmError::Auth(format!("token endpoint: {e}")))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| FcmError::Auth(format!("token endpoint: {e}")))?;
        if !status.is_success() {
            let why = body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("refused");
            return Err(FcmError::Auth(format!(
                "token endpoint answered {status}: {why}"
            )));
        }
        let value = body["access_token"]
            .as_str()
            .ok_or_else(|| FcmError::Auth("no access_token".into()))?;
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        // Refresh a little before expiry: a minute, or a fifth of short lives.
        let margin = Duration::from_secs(60).min(lifetime / 5);
        *cached = Some(CachedToken {
            value: SecretString::from(value.to_owned()),
            refresh_at: self.clock.now() + lifetime - margin,
        });
        tracing::info!(expires_in = lifetime.as_secs(), "FCM access token obtained");
        Ok(SecretString::from(value.to_owned()))
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends one notification to one device token. An expired access token
    /// is refreshed and the send retried once.
    pub async fn send(
        &self,
        device_token: &str,
        title: &str,
        body: &str,
        data: &[(&str, &str)],
    ) -> Result<SendOutcome, FcmError> {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let message = json!({
            "message": {
                "token": device_token,
                "notification": { "title": title, "body": body },
                "data": data
            }
        });
        for _ in 0..2 {
            let token = self.access_token().await?;
            let resp = self
                .http
                .post(&self.send_url)
                .bearer_auth(token.expose_secret())
                .json(&message)
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    return Ok(SendOutcome::Retry {
                        code: format!(
                            "transport: {}",
                            if e.is_timeout() {
                                "timeout"
                            } else {
                                "connection"
                            }
                        ),
                        retry_after: None,
                    });
                }
            };
            let status = resp.status();
            if status.is_success() {
                return Ok(SendOutcome::Delivered);
            }
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body: Value = resp.json().await.unwrap_or_default();
            let code = fcm_error_code(&body);
            if status == reqwest::StatusCode::UNAUTHORIZED && code.is_none() {
                // Our access token expired or was revoked: get a new one.
                self.forget_token().await;
                continue;
            }
            return Ok(classify(status.as_u16(), code.as_deref(), retry_after));
        }
        Err(FcmError::Auth(
            "FCM refused a freshly granted access token".into(),
        ))
    }
}

/// The `errorCode` of the FcmError detail of a Google JSON error.
pub fn fcm_error_code(body: &Value) -> Option<String> {
    body["error"]["details"]
        .as_array()?
        .iter()
        .find(|d| {
            d["@type"]
                .as_str()
                .is_some_and(|t| t.ends_with("google.firebase.fcm.v1.FcmError"))
        })
        .and_then(|d| d["errorCode"].as_str())
        .map(str::to_owned)
}

/// Maps an FCM answer to what to do.
pub fn classify(http: u16, code: Option<&str>, retry_after: Option<Duration>) -> SendOutcome {
    match code {
        Some("UNREGISTERED") => SendOutcome::Unregistered,
        Some(c @ ("INVALID_ARGUMENT" | "SENDER_ID_MISMATCH" | "THIRD_PARTY_AUTH_ERROR")) => {
            SendOutcome::Permanent(c.to_owned())
        }
        Some(c @ ("QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL")) => SendOutcome::Retry {
            code: c.to_owned(),
            retry_after,
        },
        _ => match http {
            429 | 500..=599 => SendOutcome::Retry {
                code: format!("HTTP {http}"),
                retry_after,
            },
            _ => SendOutcome::Permanent(
                code.map(str::to_owned)
                    .unwrap_or_else(|| format!("HTTP {http}")),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each documented error class lands where docs/push.md ("FCM answers") says.
    #[test]
    fn fcm_errors_are_classified_as_documented() {
        assert_eq!(
            classify(404, Some("UNREGISTERED"), None),
            SendOutcome::Unregistered
        );
        for c in [
            "INVALID_ARGUMENT",
            "SENDER_ID_MISMATCH",
            "THIRD_PARTY_AUTH_ERROR",
        ] {
            assert_eq!(
                classify(400, Some(c), None),
                SendOutcome::Permanent(c.into())
            );
        }
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            classify(429, Some("QUOTA_EXCEEDED"), wait),
            SendOutcome::Retry {
                code: "QUOTA_EXCEEDED".into(),
                retry_after: wait
            }
        );
        assert!(matches!(
            classify(503, Some("UNAVAILABLE"), None),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(500, Some("INTERNAL"), None),
            SendOutcome::Retry { .. }
        ));
        assert!(matches!(
            classify(502, None, None),
            SendOutcome::Retry { .. }
        ));
        assert_eq!(
            classify(403, None, None),
            SendOutcome::Permanent("HTTP 403".into())
        );
    }

    /// The error code is read from the FcmError detail, not the status.
    #[test]
    fn error_code_comes_from_the_fcm_error_detail() {
        let body = json!({ "error": { "code": 404, "status": "NOT_FOUND", "details": [
            { "@type": "type.googleapis.com/google.rpc.BadRequest" },
            { "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED" }
        ] } });
        assert_eq!(fcm_error_code(&body).as_deref(), Some("UNREGISTERED"));
        assert_eq!(fcm_error_code(&json!({ "error": { "code": 401 } })), None);
    }
}
