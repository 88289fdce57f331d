//! Hand-written `Debug` for messages that carry passwords or tokens: the
//! secret fields print as `<redacted>` so no log line can contain them.

use std::fmt;

use crate::auth::v1::{
    ChangePasswordRequest, ConfirmEmailRequest, LoginRequest, RefreshRequest, RegisterRequest,
    ResetPasswordRequest, TokenPair,
};
use crate::notifications::v1::{Delivery, RegisterDeviceRequest};

const REDACTED: &str = "<redacted>";

impl fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("login", &self.login)
            .field("email", &self.email)
            .field("password", &REDACTED)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .finish()
    }
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("login_or_email", &self.login_or_email)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &REDACTED)
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token", &REDACTED)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .field("token_type", &self.token_type)
            .field("session_id", &self.session_id)
            .field("user_id", &self.user_id)
            .finish()
    }
}

impl fmt::Debug for ConfirmEmailRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfirmEmailRequest")
            .field("login_or_email", &self.login_or_email)
            .field("code", &REDACTED)
            .field("password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResetPasswordRequest")
            .field("login_or_email", &self.login_or_email)
            .field("code", &REDACTED)
            .field("new_password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .field("current_password", &REDACTED)
            .field("new_password", &REDACTED)
            .finish()
    }
}

impl fmt::Debug for RegisterDeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterDeviceRequest")
            .field("fcm_token", &REDACTED)
            .field("platform", &self.platform)
            .finish()
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("device_id", &self.device_id)
            .field("user_id", &self.user_id)
            .field("fcm_token", &REDACTED)
            .field("platform", &self.platform)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A logged request shows who tried, never a password, token or code.
    #[test]
    fn debug_of_secret_messages_hides_secrets() {
        let login = LoginRequest {
            login_or_email: "alice".into(),
            password: "hunter2-secret".into(),
        };
        let pair = TokenPair {
            access_token: "eyJ.access".into(),
            refresh_token: "refresh-secret".into(),
            ..Default::default()
        };
        let confirm = ConfirmEmailRequest {
            login_or_email: "alice".into(),
            code: "81726354".into(),
            password: "confirm-secret-pw".into(),
        };
        let reset = ResetPasswordRequest {
            login_or_email: "alice".into(),
            code: "18273645".into(),
            new_password: "new-secret-pw".into(),
        };
        let change = ChangePasswordRequest {
            current_password: "old-secret-pw".into(),
            new_password: "next-secret-pw".into(),
        };
        let printed = format!("{login:?} {pair:?} {confirm:?} {reset:?} {change:?}");
        assert!(printed.contains("alice"));
        for secret in [
            "hunter2-secret",
            "eyJ.access",
            "refresh-secret",
            "81726354",
            "confirm-secret-pw",
            "18273645",
            "new-secret-pw",
            "old-secret-pw",
            "next-secret-pw",
        ] {
            assert!(!printed.contains(secret), "{secret} leaked: {printed}");
        }
    }
}
