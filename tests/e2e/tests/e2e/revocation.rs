//! Revoked sessions stop working everywhere: after Logout, and after a
//! reused refresh token, the session's access token is refused by the
//! services within the documented window.

use std::time::{Duration, Instant};

use interlock_e2e::{edge, register_and_login, target, unique_login};
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::auth::v1::{LogoutRequest, RefreshRequest};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{Patience, wait_for_refusal};
use tonic::Code;

/// Waits until GetMe with `access` is refused as revoked; fails after
/// the documented window (docs/security.md: 2 s refresh + one fetch) with
/// generous margin for a loaded machine.
async fn assert_revoked_within_window(access: &str) -> Duration {
    let m = target();
    let users = UsersServiceClient::new(edge(&m, Some(access)).await);
    let start = Instant::now();
    let refused = wait_for_refusal(
        "the access token is refused after its session was revoked",
        Patience::secs(10).every(Duration::from_millis(100)),
        Code::Unauthenticated,
        || {
            let mut users = users.clone();
            async move { users.get_me(GetMeRequest {}).await }
        },
    )
    .await;
    assert!(
        refused.message().contains("revoked"),
        "{}",
        refused.message()
    );
    start.elapsed()
}

/// After Logout, the session's access token is refused by the services
/// within the revocation window, although it has not expired.
#[tokio::test]
async fn access_token_is_refused_after_logout() {
    let m = target();
    let pair = register_and_login(&m, &unique_login("logout")).await;
    let mut users = UsersServiceClient::new(edge(&m, Some(&pair.access_token)).await);
    users
        .get_me(GetMeRequest {})
        .await
        .expect("GetMe before logout");
    AuthServiceClient::new(edge(&m, Some(&pair.access_token)).await)
        .logout(LogoutRequest {})
        .await
        .expect("logout");
    let took = assert_revoked_within_window(&pair.access_token).await;
    println!("access token refused {took:?} after Logout");
}

/// Reusing a rotated refresh token revokes the session: the access token
/// minted by the legitimate refresh stops working too.
#[tokio::test]
async fn access_token_is_refused_after_refresh_token_reuse() {
    let m = target();
    let pair = register_and_login(&m, &unique_login("reuse")).await;
    let mut auth = AuthServiceClient::new(edge(&m, None).await);
    let rotated = auth
        .refresh(RefreshRequest {
            refresh_token: pair.refresh_token.clone(),
        })
        .await
        .expect("first refresh")
        .into_inner();
    let reuse = auth
        .refresh(RefreshRequest {
            refresh_token: pair.refresh_token.clone(),
        })
        .await
        .expect_err("reuse is refused");
    assert_eq!(reuse.code(), Code::Unauthenticated, "{}", reuse.message());
    let took = assert_revoked_within_window(&rotated.access_token).await;
    println!("access token refused {took:?} after refresh-token reuse");
}
