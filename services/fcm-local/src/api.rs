//! The FCM-compatible endpoints and the server state.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// What the server accepts.
#[derive(Clone)]
pub struct ServerConfig {
    pub project_id: String,
    /// The service account's `client_email` (the assertion's `iss`).
    pub client_email: String,
    /// PEM of the service account's RSA public key.
    pub public_key_pem: String,
    /// This server's token URI as the sender calls it (the assertion's `aud`).
    pub token_uri: String,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
}

impl ServerConfig {
    /// Accepts the service account in `json` (a standard Google service
    /// account file); the public key is derived from its private key.
    pub fn from_service_account(
        json: &str,
        token_uri: &str,
        token_ttl: Duration,
    ) -> anyhow::Result<Self> {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
        let v: Value = serde_json::from_str(json)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("service account has no {k}"))
        };
        let private = rsa::RsaPrivateKey::from_pkcs8_pem(&field("private_key")?)?;
        Ok(Self {
            project_id: field("project_id")?,
            client_email: field("client_email")?,
            public_key_pem: private.to_public_key().to_public_key_pem(LineEnding::LF)?,
            token_uri: token_uri.to_owned(),
            token_ttl,
        })
    }
}

/// A scripted answer for one send to a device token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// An FCM error by its `errorCode` (UNREGISTERED, INVALID_ARGUMENT,
    /// SENDER_ID_MISMATCH, THIRD_PARTY_AUTH_ERROR, QUOTA_EXCEEDED,
    /// UNAVAILABLE, INTERNAL), with an optional `Retry-After` in seconds.
    Error {
        code: String,
        retry_after: Option<u64>,
    },
    /// Answer normally, after a delay.
    Delay { ms: u64 },
}

/// A project-wide outage, as FCM has them: every send is answered 503
/// UNAVAILABLE until `unavailable_until`, then 429 QUOTA_EXCEEDED with
/// `Retry-After: retry_after_secs` until `throttled_until`.
#[derive(Debug, Clone, Copy)]
pub struct Outage {
    pub unavailable_until: Instant,
    pub throttled_until: Instant,
    pub retry_after_secs: u64,
}

/// Sends refused by an outage, by phase (how hard the sender pushed).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct OutageCounts {
    pub unavailable: u64,
    pub throttled: u64,
}

/// A message FCM accepted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Received {
    pub token: String,
    pub message: Value,
}

pub(crate) struct Inner {
    pub config: ServerConfig,
    pub tokens: Mutex<HashMap<String, Instant>>,
    pub faults: Mutex<HashMap<String, VecDeque<Fault>>>,
    pub received: Mutex<Vec<Received>>,
    pub grants: Mutex<u64>,
    pub outage: Mutex<Option<Outage>>,
    pub refused: Mutex<OutageCounts>,
}

/// The server: build the router, or run it on a listener.
#[derive(Clone)]
pub struct FcmLocal {
    pub(crate) inner: Arc<Inner>,
}

impl FcmLocal {
    pub fn new(config: ServerConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                tokens: Mutex::new(HashMap::new()),
                faults: Mutex::new(HashMap::new()),
                received: Mutex::new(Vec::new()),
                grants: Mutex::new(0),
                outage: Mutex::new(None),
                refused: Mutex::new(OutageCounts::default()),
            }),
        }
    }

    /// The FCM API: what the sender talks to.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(send))
            .with_state(self.clone())
    }

    /// The test hooks (`/control/*`), served apart from the API so that
    /// only their owner can reach them (a 0600 Unix socket in the binary):
    /// they reveal every pushed message and device token, and can script
    /// failures for any device.
    pub fn control_router(&self) -> Router {
        crate::control::router().with_state(self.clone())
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Starts an outage now: `unavailable` of 503s, then `throttled` of
    /// 429s with `Retry-After: retry_after_secs`; the refusal counts
    /// start again from zero.
    pub fn start_outage(&self, unavailable: Duration, throttled: Duration, retry_after_secs: u64) {
        let now = Instant::now();
        *lock(&self.inner.refused) = OutageCounts::default();
        *lock(&self.inner.outage) = Some(Outage {
            unavailable_until: now + unavailable,
            throttled_until: now + unavailable + throttled,
            retry_after_secs,
        });
    }

    /// Sends refused by the current or last outage.
    pub fn outage_counts(&self) -> OutageCounts {
        *lock(&self.inner.refused)
    }

    /// The outage's answer to a send now, if one is under way.
    fn outage_answer(&self) -> Option<Response> {
        let outage = (*lock(&self.inner.outage))?;
        let now = Instant::now();
        if now < outage.unavailable_until {
            lock(&self.inner.refused).unavailable += 1;
            let (http, status) = fcm_error("UNAVAILABLE");
            return Some(google_error(
                http,
                status,
                "The service is currently unavailable.",
                Some("UNAVAILABLE"),
            ));
        }
        if now < outage.throttled_until {
            lock(&self.inner.refused).throttled += 1;
            let (http, status) = fcm_error("QUOTA_EXCEEDED");
            let mut resp = google_error(http, status, "Quota exceeded.", Some("QUOTA_EXCEEDED"));
            if let Ok(v) = outage.retry_after_secs.to_string().parse() {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return Some(resp);
        }
        None
    }

    /// Scripts the next answers for sends to `token`.
    pub fn script(&self, token: &str, faults: Vec<Fault>) {
        lock(&self.inner.faults)
            .entry(token.to_owned())
            .or_default()
            .extend(faults);
    }

    /// Every accepted message so far.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.inner.received).clone()
    }

    /// How many access tokens were granted.
    pub fn grants(&self) -> u64 {
        *lock(&self.inner.grants)
    }

    /// Makes every issued access token expired.
    pub fn expire_tokens(&self) {
        lock(&self.inner.tokens).clear();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A Google JSON error, with an FCM error code detail when given.
pub(crate) fn google_error(
    http: StatusCode,
    status: &str,
    message: &str,
    fcm_code: Option<&str>,
) -> Response {
    let mut error = json!({ "code": http.as_u16(), "message": message, "status": status });
    if let Some(code) = fcm_code {
        error["details"] = json!([{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code }]);
    }
    (http, Json(json!({ "error": error }))).into_response()
}

/// The HTTP status and Google status of an FCM error code.
pub(crate) fn fcm_error(code: &str) -> (StatusCode, &'static str) {
    match code {
        "UNREGISTERED" => (StatusCode::NOT_FOUND, "NOT_FOUND"),
        "SENDER_ID_MISMATCH" => (StatusCode::FORBIDDEN, "PERMISSION_DENIED"),
        "THIRD_PARTY_AUTH_ERROR" => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
        "QUOTA_EXCEEDED" => (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED"),
        "UNAVAILABLE" => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        "INTERNAL" => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        _ => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

#[derive(Deserialize)]
struct Assertion {
    scope: String,
    iat: i64,
    exp: i64,
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn token(State(s): State<FcmLocal>, Form(form): Form<TokenForm>) -> Response {
    let cfg = &s.inner.config;
    if form.grant_type.as_deref() != Some(GRANT_TYPE) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.assertion else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let Ok(key) = DecodingKey::from_rsa_pem(cfg.public_key_pem.as_bytes()) else {
        return oauth_error("invalid_grant", "server key misconfigured");
    };
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[&cfg.token_uri]);
    v.set_issuer(&[&cfg.client_email]);
    v.set_required_spec_claims(&["iss", "aud", "exp", "iat"]);
    v.leeway = 0;
    let claims = match jsonwebtoken::decode::<Assertion>(&assertion, &key, &v) {
        Ok(d) => d.claims,
        Err(e) => return oauth_error("invalid_grant", &format!("Invalid JWT: {e}")),
    };
    let now = chrono_now();
    if claims.exp - claims.iat > 3600 || claims.iat > now + 60 {
        return oauth_error(
            "invalid_grant",
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe",
        );
    }
    if !claims.scope.split(' ').any(|s| s == SCOPE) {
        return oauth_error("invalid_scope", "The firebase.messaging scope is required");
    }
    let access = format!("ya29.local-{}", uuid::Uuid::new_v4().simple());
    lock(&s.inner.tokens).insert(access.clone(), Instant::now() + cfg.token_ttl);
    *lock(&s.inner.grants) += 1;
    Json(json!({ "access_token": access, "expires_in": cfg.token_ttl.as_secs(), "token_type": "Bearer" })).into_response()
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];

/// Checks a send body as FCM does; `Err(message)` is INVALID_ARGUMENT.
fn check_message(body: &Value) -> Result<(String, Value), String> {
    let obj = body.as_object().ok_or("Invalid JSON payload received.")?;
    for k in obj.keys() {
        if k != "message" && k != "validate_only" {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
            ));
        }
    }
    let message = obj
        .get("message")
        .and_then(Value::as_object)
        .ok_or("message is required")?;
    for k in message.keys() {
        if !MESSAGE_FIELDS.contains(&k.as_str()) {
            return Err(format!(
                "Invalid JSON payload received. Unknown name \"{k}\" at 'message': Cannot find field."
            ));
        }
    }
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|t| message.contains_key(**t))
        .count();
    if targets != 1 {
        return Err("Exactly one of token, topic or condition must be specified.".into());
    }
    let token = message
        .get("token")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if message.contains_key("token") && token.is_empty() {
        return Err("The registration token is not a valid FCM registration token".into());
    }
    if let Some(data) = message.get("data") {
        let ok = data
            .as_object()
            .is_some_and(|d| d.values().all(Value::is_string));
        if !ok {
            return Err("Invalid value at 'message.data': values must be strings".into());
        }
    }
    if let Some(n) = message.get("notification") {
        let ok = n.as_object().is_some_and(|n| {
            n.iter()
                .all(|(k, v)| ["title", "body", "image"].contains(&k.as_str()) && v.is_string())
        });
        if !ok {
            return Err("Invalid value at 'message.notification'".into());
        }
    }
    Ok((token.to_owned(), Value::Object(message.clone())))
}

async fn send(
    State(s): State<FcmLocal>,
    Path(project): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let valid = bearer.is_some_and(|t| {
        lock(&s.inner.tokens)
            .get(t)
            .is_some_and(|exp| *exp > Instant::now())
    });
    if !valid {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            None,
        );
    }
    if project != s.inner.config.project_id {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "Permission denied on the project.",
            None,
        );
    }
    let parsed: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "Invalid JSON payload received.",
                None,
            );
        }
    };
    let (token, message) = match check_message(&parsed) {
        Ok(v) => v,
        Err(m) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &m,
                Some("INVALID_ARGUMENT"),
            );
        }
    };
    if let Some(resp) = s.outage_answer() {
        return resp;
    }
    let fault = lock(&s.inner.faults)
        .get_mut(&token)
        .and_then(VecDeque::pop_front);
    match fault {
        Some(Fault::Delay { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
        Some(Fault::Error { code, retry_after }) => {
            let (http, status) = fcm_error(&code);
            let mut resp = google_error(http, status, &format!("{code} (scripted)"), Some(&code));
            if let Some(secs) = retry_after
                && let Ok(v) = secs.to_string().parse()
            {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
        None => {}
    }
    if parsed.get("validate_only").and_then(Value::as_bool) != Some(true) {
        lock(&s.inner.received).push(Received { token, message });
    }
    let name = format!("projects/{project}/messages/{}", rand::random::<u64>());
    Json(json!({ "name": name })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented message shape passes; deviations are INVALID_ARGUMENT.
    #[test]
    fn message_checks_follow_the_documented_format() {
        let ok = json!({ "message": { "token": "t1", "notification": { "title": "a", "body": "b" }, "data": { "k": "v" } } });
        assert_eq!(check_message(&ok).unwrap().0, "t1");
        for bad in [
            json!({ "message": { "notification": { "body": "no target" } } }),
            json!({ "message": { "token": "t", "topic": "x" } }),
            json!({ "message": { "token": "t", "data": { "n": 1 } } }),
            json!({ "message": { "token": "t", "bogus": 1 } }),
            json!({ "msg": {} }),
            json!({ "message": { "token": "" } }),
        ] {
            assert!(check_message(&bad).is_err(), "{bad}");
        }
    }
}
