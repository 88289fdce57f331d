//! A local server that behaves like Firebase Cloud Messaging's HTTP v1 API
//! where Interlock's sender touches it, checking requests as the documented
//! API does:
//!
//! - `POST /token`: the OAuth2 JWT-bearer grant
//!   (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`). The
//!   assertion must be RS256-signed by the service account's key, with
//!   `iss` = its client email, `scope` including
//!   `https://www.googleapis.com/auth/firebase.messaging`, `aud` = this token
//!   URI, `iat` now and `exp` at most one hour later. Answers
//!   `{access_token, expires_in, token_type}`.
//! - `POST /v1/projects/{project}/messages:send`: needs a current bearer
//!   token of the right project and a documented message (exactly one of
//!   `token`/`topic`/`condition`, string-only `data`, known fields only).
//!   Errors are Google JSON errors with a
//!   `google.firebase.fcm.v1.FcmError` detail carrying `errorCode`.
//! - `/control/*` ([`FcmLocal::control_router`], on its own root-only Unix
//!   socket in the binary): test hooks — script faults per device token (an
//!   FCM error, 429 with Retry-After, 503, a delay), expire issued tokens,
//!   read what was received and how many tokens were granted.

mod api;
mod control;

pub use api::{Fault, FcmLocal, Received, ServerConfig};
