//! The request guard: a tower layer in front of every service that, before
//! any handler runs,
//! 1. finds the policy route for the path (no route: PERMISSION_DENIED),
//! 2. verifies the peer from `x-forwarded-client-cert` (UNAUTHENTICATED if it
//!    cannot, PERMISSION_DENIED if the policy does not allow that peer),
//! 3. for external methods, verifies the user's access token
//!    (UNAUTHENTICATED),
//!
//! and hands the results on as [`crate::context`] extensions.
//!
//! Health and reflection are exempt: they reveal nothing and must answer
//! probes that do not pass through the sidecar.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use tower::{Layer, Service};

use crate::context::{AuthenticatedUser, ClientAddress, Peer};
use crate::jwt::JwtVerifier;
use crate::peer::{PeerVerifier, XFCC_HEADER};
use crate::policy::Policy;
use crate::settings::PeerSettings;

/// Paths every service serves without checks.
const EXEMPT_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// Header in which the edge reports the end client's address.
const CLIENT_ADDRESS_HEADER: &str = "x-envoy-external-address";

/// The checks, shared by every clone of the layer.
pub struct GuardConfig {
    pub policy: Arc<Policy>,
    pub peers: Arc<PeerVerifier>,
    /// Verifies user tokens; required when the service has external methods.
    pub jwt: Option<Arc<JwtVerifier>>,
}

/// The tower layer.
#[derive(Clone)]
pub struct Guard {
    config: Arc<GuardConfig>,
}

impl Guard {
    pub fn new(config: GuardConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The guard of the embedded policy, checking peers against the trust
    /// bundle `[peer]` names and, when given, user tokens with `jwt`
    /// (required by a service with external methods).
    pub async fn from_settings(
        peer: &PeerSettings,
        jwt: Option<Arc<JwtVerifier>>,
    ) -> anyhow::Result<Self> {
        let policy = Arc::new(Policy::embedded());
        let peers = PeerVerifier::from_settings(peer, policy.trust_domain())
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(Self::new(GuardConfig {
            policy,
            peers: Arc::new(peers),
            jwt,
        }))
    }

    /// The policy it enforces.
    pub fn policy(&self) -> &Policy {
        &self.config.policy
    }

    /// Runs every check; on success the request carries [`Peer`] and, for
    /// external methods, [`AuthenticatedUser`].
    pub async fn check<B>(&self, req: &mut http::Request<B>) -> Result<(), Status> {
        let path = req.uri().path().to_owned();
        if EXEMPT_PREFIXES.iter().any(|p| path.starts_with(p)) {
            return Ok(());
        }
        let cfg = &self.config;
        let route = cfg
            .policy
            .route(&path)
            .ok_or_else(|| Status::permission_denied(format!("no policy allows {path}")))?;

        let header = req.headers().get(XFCC_HEADER).and_then(|v| v.to_str().ok());
        let now = chrono::Utc::now().timestamp();
        let spiffe_id = cfg.peers.verify(header, now).map_err(|e| {
            tracing::info!(path, error = %e, "peer refused");
            Status::unauthenticated(e.to_string())
        })?;
        let workload = cfg.policy.workload_of(&spiffe_id).unwrap_or_default();
        if !route.allows(workload) {
            tracing::info!(path, peer = %spiffe_id, "peer not allowed by policy");
            return Err(Status::permission_denied(format!(
                "{spiffe_id} may not call {path}"
            )));
        }
        if workload == "edge"
            && let Some(addr) = req
                .headers()
                .get(CLIENT_ADDRESS_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        {
            req.extensions_mut().insert(ClientAddress(addr));
        }
        if route.requires_user {
            let jwt = cfg
                .jwt
                .as_ref()
                .ok_or_else(|| Status::internal("token verification is not configured"))?;
            let auth = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            let token = jwt.verify_bearer(auth).await.map_err(|e| {
                tracing::info!(path, error = %e, "access token refused");
                Status::unauthenticated(e.to_string())
            })?;
            tracing::Span::current().record("enduser.id", tracing::field::display(token.user_id));
            req.extensions_mut().insert(AuthenticatedUser {
                user_id: token.user_id,
                session_id: token.session_id,
                token_id: token.token_id,
                expires_at: token.expires_at,
            });
        }
        tracing::Span::current().record("peer.spiffe_id", spiffe_id.as_str());
        req.extensions_mut().insert(Peer {
            spiffe_id,
            workload: workload.to_owned(),
        });
        Ok(())
    }
}

impl<S> Layer<S> for Guard {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            inner,
            guard: self.clone(),
        }
    }
}

/// The service [`Guard`] wraps around the router.
#[derive(Clone)]
pub struct GuardService<S> {
    inner: S,
    guard: Guard,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for GuardService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // The clone is fresh; the ready one is the one we were polled with.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        Box::pin(async move {
            match guard.check(&mut req).await {
                Ok(()) => inner.call(req).await,
                Err(status) if is_grpc(&req) => Ok(status.into_http()),
                Err(status) => Ok(plain_http_refusal(&status)),
            }
        })
    }
}

fn is_grpc<B>(req: &http::Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Plain HTTP callers (the JWKS endpoint) get a status code, not grpc-status.
fn plain_http_refusal<B: Default>(status: &Status) -> http::Response<B> {
    let code = match status.code() {
        tonic::Code::Unauthenticated => http::StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => http::StatusCode::FORBIDDEN,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut resp = http::Response::new(B::default());
    *resp.status_mut() = code;
    resp
}
