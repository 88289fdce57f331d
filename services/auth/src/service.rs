//! auth's gRPC handlers and the HTTP JWKS endpoint. Thin: parse, call the
//! domain modules, map the result.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use interlock_common::{ApiError, context, timestamp};
use interlock_proto::auth::v1::auth_service_server::AuthService;
use interlock_proto::auth::v1::{
    GetJwksRequest, GetJwksResponse, LoginRequest, LogoutRequest, LogoutResponse, RefreshRequest,
    RegisterRequest, RegisterResponse, TokenPair,
};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{Password, Registration};
use crate::error::AuthError;
use crate::keys::KeyRing;
use crate::password::{Lane, PasswordHasher};
use crate::register::{self, Peers};
use crate::store::{self, RefreshOutcome};
use crate::throttle::{self, AccountKey, ThrottleLimits};
use crate::tokens::{self, TokenSettings};

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

impl Auth {
    async fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        refresh: String,
        refresh_expires: DateTime<Utc>,
    ) -> Result<TokenPair, AuthError> {
        let now = Utc::now();
        let key = self
            .0
            .keys
            .signing_key(now)
            .await
            .ok_or_else(|| ApiError::Unavailable("no signing key yet, retry later".into()))?;
        let (access, access_expires) =
            tokens::sign_access(&key, &self.0.tokens, user_id, session_id, now)
                .map_err(|e| ApiError::Internal(format!("signing: {e}")))?;
        Ok(TokenPair {
            access_token: access,
            access_token_expires_at: Some(timestamp(access_expires)),
            refresh_token: refresh,
            refresh_token_expires_at: Some(timestamp(refresh_expires)),
            token_type: "Bearer".into(),
            session_id: session_id.to_string(),
            user_id: user_id.to_string(),
        })
    }
}

fn bounded(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.is_empty() {
        Err(ApiError::invalid(field, "is required"))
    } else if value.len() > max {
        Err(ApiError::invalid(
            field,
            format!("must be at most {max} characters"),
        ))
    } else {
        Ok(())
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
        let s = &self.0;
        let reservation =
            match throttle::reserve_registration(&s.pool, &s.throttle, &address, Utc::now())
                .await
                .map_err(AuthError::from)?
            {
                Ok(r) => r,
                Err(retry_after) => {
                    tracing::warn!("registration throttled (client address limit)");
                    return Err(AuthError::TooManyRegistrations { retry_after }.into());
                }
            };
        // Every registration that got this far counts against the address,
        // except one turned away before any work ran.
        let user_id = match register::register(&s.pool, &s.hasher, &s.peers, reg).await {
            Err(AuthError::Busy) => {
                throttle::release(&s.pool, reservation)
                    .await
                    .map_err(AuthError::from)?;
                return Err(AuthError::Busy.into());
            }
            other => other?,
        };
        Ok(Response::new(RegisterResponse {
            user_id: user_id.to_string(),
        }))
    }

    async fn login(&self, req: Request<LoginRequest>) -> Result<Response<TokenPair>, Status> {
        let address = context::client_address(&req);
        let body = req.into_inner();
        bounded("login_or_email", body.login_or_email.trim(), 254)?;
        let password = Password::parse("password", &body.password)?;
        let typed = body.login_or_email.trim().to_ascii_lowercase();
        let s = &self.0;
        let now = Utc::now();
        let found = store::find_by_login_or_email(&s.pool, &typed)
            .await
            .map_err(AuthError::from)?
            .filter(|c| c.is_active());
        let account = found.as_ref().map_or_else(
            || AccountKey::unknown(&typed),
            |c| AccountKey::User(c.user_id),
        );
        // Reserved before bcrypt runs, so concurrent guesses cannot all get
        // past the limit; a failure keeps the reservation as its record.
        let reservation =
            match throttle::reserve_login(&s.pool, &s.throttle, &account, &address, now)
                .await
                .map_err(AuthError::from)?
            {
                Ok(r) => r,
                Err(retry_after) => {
                    tracing::warn!("login throttled");
                    return Err(AuthError::Throttled { retry_after }.into());
                }
            };
        let hash = found.as_ref().map(|c| c.password_hash.as_str());
        let verified = match s
            .hasher
            .verify(Lane::Login, password.0.expose_secret(), hash)
            .await
        {
            Ok(v) => v,
            Err(busy) => {
                // No guess was checked: the attempt does not count.
                throttle::release(&s.pool, reservation)
                    .await
                    .map_err(AuthError::from)?;
                return Err(AuthError::from(busy).into());
            }
        };
        let Some(user) = found.filter(|_| verified) else {
            tracing::info!("login failed");
            return Err(AuthError::InvalidCredentials.into());
        };
        throttle::login_succeeded(&s.pool, reservation, &account)
            .await
            .map_err(AuthError::from)?;
        let (refresh, refresh_hash) = tokens::new_refresh_token();
        let expires = now + s.tokens.refresh_ttl;
        let session_id = store::create_session(&s.pool, user.user_id, &refresh_hash, expires)
            .await
            .map_err(AuthError::from)?;
        tracing::info!(user_id = %user.user_id, %session_id, "logged in");
        Ok(Response::new(
            self.issue(user.user_id, session_id, refresh, expires)
                .await?,
        ))
    }

    async fn refresh(&self, req: Request<RefreshRequest>) -> Result<Response<TokenPair>, Status> {
        let token = req.into_inner().refresh_token;
        bounded("refresh_token", &token, 128)?;
        let (new_token, new_hash) = tokens::new_refresh_token();
        let outcome = store::rotate_refresh(
            &self.0.pool,
            &tokens::hash_refresh_token(&token),
            &new_hash,
            Utc::now(),
        )
        .await
        .map_err(AuthError::from)?;
        match outcome {
            RefreshOutcome::Rotated {
                user_id,
                session_id,
                expires_at,
            } => Ok(Response::new(
                self.issue(user_id, session_id, new_token, expires_at)
                    .await?,
            )),
            RefreshOutcome::Reused { session_id } => {
                tracing::warn!(%session_id, "refresh token reuse: session revoked");
                Err(AuthError::RefreshTokenReuse.into())
            }
            RefreshOutcome::Invalid => Err(AuthError::InvalidRefreshToken.into()),
        }
    }

    async fn logout(
        &self,
        req: Request<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, Status> {
        let user = context::user(&req)?;
        let session_id = user.session_id;
        store::revoke_session(&self.0.pool, session_id, "logout")
            .await
            .map_err(AuthError::from)?;
        tracing::info!(user_id = %user.user_id, %session_id, "logged out");
        Ok(Response::new(LogoutResponse {
            session_id: session_id.to_string(),
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
