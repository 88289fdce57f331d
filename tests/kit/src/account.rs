//! A user as the tests make one: registered and logged in through auth's
//! external API, with the one password both suites use.

use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::auth::v1::{LoginRequest, RegisterRequest, TokenPair};

use crate::caller::Client;

/// The password of every test user (it passes auth's password rule).
pub const PASSWORD: &str = "correct horse battery";

/// Registration of `login` with `<login>@example.com` and [`PASSWORD`].
pub fn register_request(login: &str) -> RegisterRequest {
    RegisterRequest {
        login: login.into(),
        email: format!("{login}@example.com"),
        password: PASSWORD.into(),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    }
}

/// Login as `who` (login or email) with `password`.
pub fn login_request(who: &str, password: &str) -> LoginRequest {
    LoginRequest {
        login_or_email: who.into(),
        password: password.into(),
    }
}

/// Registers `login` through `auth` (a client that reaches auth's external
/// API as the edge does) and logs it in: the new user's first session.
pub async fn register_and_login(auth: Client, login: &str) -> TokenPair {
    let mut auth = AuthServiceClient::new(auth);
    auth.register(register_request(login))
        .await
        .unwrap_or_else(|s| panic!("register {login}: {s:?}"));
    auth.login(login_request(login, PASSWORD))
        .await
        .unwrap_or_else(|s| panic!("log {login} in: {s:?}"))
        .into_inner()
}
