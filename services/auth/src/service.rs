//! auth's gRPC handlers (the HTTP documents are in [`crate::discovery`]).
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
    ChangePasswordRequest, ChangePasswordResponse, ConfirmEmailRequest, ConfirmEmailResponse,
    GetJwksRequest, GetJwksResponse, LoginRequest, LogoutRequest, LogoutResponse, RefreshRequest,
    RegisterRequest, RegisterResponse, RequestPasswordResetRequest, RequestPasswordResetResponse,
    ResendVerificationRequest, ResendVerificationResponse, ResetPasswordRequest,
    ResetPasswordResponse, TokenPair,
};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::accounts;
use crate::codes::CodeHasher;
use crate::config::AccountsConfig;
use crate::domain::{
    AccountRef, Credentials, EmailCode, NewPassword, Password, PresentedRefreshToken, Registration,
};
use crate::keys::KeyRing;
use crate::login::{self, Issued};
use crate::mailer::Mailer;
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
    /// Keys the stored hashes of emailed codes.
    pub codes: CodeHasher,
    /// `None` when the server has no `[email]` (verification then off).
    pub mailer: Option<Mailer>,
    pub accounts: AccountsConfig,
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
        let done = register::register(&self.0, &address, reg).await?;
        Ok(Response::new(RegisterResponse {
            user_id: done.user_id.to_string(),
            email_verification_required: done.verification_required,
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

    async fn confirm_email(
        &self,
        req: Request<ConfirmEmailRequest>,
    ) -> Result<Response<ConfirmEmailResponse>, Status> {
        let address = context::client_address(&req);
        let r = req.get_ref();
        let account = AccountRef::parse("login_or_email", &r.login_or_email)?;
        let code = EmailCode::parse("code", &r.code)?;
        let password = Password::parse("password", &r.password)?;
        let user_id =
            accounts::confirm_email(&self.0, &account, &code, &password, &address).await?;
        Ok(Response::new(ConfirmEmailResponse {
            user_id: user_id.to_string(),
        }))
    }

    async fn resend_verification(
        &self,
        req: Request<ResendVerificationRequest>,
    ) -> Result<Response<ResendVerificationResponse>, Status> {
        let address = context::client_address(&req);
        let account = AccountRef::parse("login_or_email", &req.get_ref().login_or_email)?;
        accounts::resend_verification(&self.0, &account, &address).await?;
        Ok(Response::new(ResendVerificationResponse {}))
    }

    async fn request_password_reset(
        &self,
        req: Request<RequestPasswordResetRequest>,
    ) -> Result<Response<RequestPasswordResetResponse>, Status> {
        let address = context::client_address(&req);
        let account = AccountRef::parse("login_or_email", &req.get_ref().login_or_email)?;
        accounts::request_password_reset(&self.0, &account, &address).await?;
        Ok(Response::new(RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        req: Request<ResetPasswordRequest>,
    ) -> Result<Response<ResetPasswordResponse>, Status> {
        let address = context::client_address(&req);
        let r = req.get_ref();
        let account = AccountRef::parse("login_or_email", &r.login_or_email)?;
        let code = EmailCode::parse("code", &r.code)?;
        let password = NewPassword::parse("new_password", &r.new_password)?;
        let ended = accounts::reset_password(&self.0, &account, &code, &password, &address).await?;
        Ok(Response::new(ResetPasswordResponse {
            sessions_ended: u32::try_from(ended).unwrap_or(u32::MAX),
        }))
    }

    async fn change_password(
        &self,
        req: Request<ChangePasswordRequest>,
    ) -> Result<Response<ChangePasswordResponse>, Status> {
        let address = context::client_address(&req);
        let user = context::user(&req)?;
        let r = req.get_ref();
        let current = Password::parse("current_password", &r.current_password)?;
        let new_password = NewPassword::parse("new_password", &r.new_password)?;
        let ended =
            accounts::change_password(&self.0, user, &current, &new_password, &address).await?;
        Ok(Response::new(ChangePasswordResponse {
            sessions_ended: u32::try_from(ended).unwrap_or(u32::MAX),
        }))
    }
}
