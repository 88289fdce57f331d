//! What [`crate::guard`] learns about a request and hands to the handlers
//! through request extensions.

use tonic::{Request, Status};
use uuid::Uuid;

/// The verified calling workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// e.g. `spiffe://interlock.local/svc/auth`
    pub spiffe_id: String,
    /// The policy's name for it, e.g. `auth`.
    pub workload: String,
}

/// The user of an external call, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub token_id: String,
    /// `exp` of the token, seconds since the epoch.
    pub expires_at: i64,
}

/// The end client's address as reported by the edge (only set on calls
/// whose verified peer is the edge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddress(pub String);

/// The authenticated user of a request that the guard let through.
pub fn user<T>(req: &Request<T>) -> Result<&AuthenticatedUser, Status> {
    req.extensions()
        .get::<AuthenticatedUser>()
        .ok_or_else(|| Status::unauthenticated("missing access token"))
}

/// The verified peer of a request that the guard let through.
pub fn peer<T>(req: &Request<T>) -> Result<&Peer, Status> {
    req.extensions()
        .get::<Peer>()
        .ok_or_else(|| Status::unauthenticated("missing x-forwarded-client-cert"))
}

/// The client address for throttling: the edge's report, else "unknown".
pub fn client_address<T>(req: &Request<T>) -> String {
    req.extensions()
        .get::<ClientAddress>()
        .map(|a| a.0.clone())
        .unwrap_or_else(|| "unknown".to_owned())
}
