//! auth's gRPC handlers and the HTTP JWKS endpoint.
//!
//! Each handler parses its request, calls one operation ([`register`],
//! [`login`]) and maps the answer. Operations fail with [`AuthError`]; `?`
//! turns that into a status through its one mapping, so no handler builds a
//! status itself.
//!
//! [`AuthError`]: crate::error::AuthError

use std::sync::Arc;

use interlock_common::{ApiError, context, timestamp};
use interlock_proto::auth::v1::auth_service_server::AuthService;
use interlock_proto::auth::v1::{
    GetJwksRequest, GetJwksResponse, LoginRequest, LogoutRequest, LogoutResponse, RefreshRequest,
    RegisterRequest, RegisterResponse, TokenPair,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::domain::{Credentials, PresentedRefreshToken, Registration};
use crate::keys::KeyRing;
use crate::login::{self, Issued};
use crate::password::PasswordHasher;
use crate::register::{self, Peers};
use crate::throttle::ThrottleLimits;
use crate::tokens::TokenSettings;

/// Everything the handlers need.
pub struct AuthState {
    pub pool: PgPool,
    pub hasher: PasswordHasher,
    pub keys: Arc<KeyRing>,
    pub tokens: TokenSettings,
    pub throttle: ThrottleLimits,
    pub peers: Peers,
}

#[derive(Clone)]
pub struct Auth(pub Arc<AuthState>);

fn token_pair(issued: Issued) -> TokenPair {
    TokenPair {
        access_token: issued.access.token,
        access_token_expires_at: Some(timestamp(issued.access.expires_at)),
        refresh_token: issued.refresh_token,
        refresh_token_expires_at: Some(timestamp(issued.refresh_expires_at)),
        token_type: "Bearer".into(),
        session_id: issued.session_id.to_string(),
        user_id: issued.user_id.to_string(),
    }
}

#[tonic::async_trait]
impl AuthService for Auth {
    async fn register(
        &self,
        req: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let address = context::client_address(&req);
        let reg = Registration::parse(req.get_ref())?;
        let user_id = register::register(&self.0, &address, reg).await?;
        Ok(Response::new(RegisterResponse {
            user_id: user_id.to_string(),
        }))
    }

    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<TokenPair>, Status> {
        let address = context::client_address(&req);
        let credentials = Credentials::parse(req.get_ref())?;
        let issued = login::login(&self.0, credentials, &address).await?;
        Ok(Response::new(token_pair(issued)))
    }

    async fn refresh(&self, req: Request<RefreshRequest>) -> Result<Response<TokenPair>, Status> {
        let token = PresentedRefreshToken::parse("refresh_token", &req.get_ref().refresh_token)?;
        let issued = login::refresh(&self.0, &token).await?;
        Ok(Response::new(token_pair(issued)))
    }

    async fn logout(
        &self,
        req: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let user = context::user(&req)?;
        login::logout(&self.0, user).await?;
        Ok(Response::new(LogoutResponse {
            session_id: user.session_id.to_string(),
        }))
    }

    async fn get_jwks(
        &self,
        _req: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        let set = self.0.keys.jwks().await;
        let key_ids = set
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.clone())
            .collect();
        let jwks_json =
            serde_json::to_string(&set).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Response::new(GetJwksResponse { jwks_json, key_ids }))
    }
}

/// `GET /.well-known/jwks.json` for Envoy's `jwt_authn` and the services.
pub fn jwks_router(keys: Arc<KeyRing>) -> axum::Router {
    axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get(move || {
            let keys = keys.clone();
            async move {
                (
                    [(axum::http::header::CACHE_CONTROL, "public, max-age=60")],
                    axum::Json(keys.jwks().await),
                )
            }
        }),
    )
}
