//! User tokens, through a real external RPC (users.GetMe): only an ES256
//! token from a published key, for our issuer and audience, gets through.

use interlock_itest::{Caller, Stack};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{Patience, wait_for_refusal};
use tonic::Code;

use crate::assert_status;

/// Every kind of bad token is UNAUTHENTICATED, and a good one is not.
#[tokio::test]
async fn bad_tokens_are_unauthenticated_and_a_good_one_passes() {
    let s = Stack::with_test_tokens().await;
    let user = uuid::Uuid::new_v4();
    for (what, token) in s.issuer.bad_tokens(user) {
        let mut c = UsersServiceClient::new(Caller::user(&s.pki, &token).to(s.users));
        let err = c.get_me(GetMeRequest {}).await.expect_err(what);
        assert_eq!(
            err.code(),
            Code::Unauthenticated,
            "{what}: {}",
            err.message()
        );
        assert!(
            !err.message().contains(&token),
            "{what}: the token leaked into the error"
        );
    }
    // The good token passes the guard; the user simply has no profile.
    let mut c = UsersServiceClient::new(s.as_user(user).to(s.users));
    assert_status(c.get_me(GetMeRequest {}).await, Code::NotFound, "not found");
}

/// No token at all is refused with a clear reason.
#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let s = Stack::with_test_tokens().await;
    let mut c = UsersServiceClient::new(Caller::peer(&s.pki, "edge").to(s.users));
    assert_status(
        c.get_me(GetMeRequest {}).await,
        Code::Unauthenticated,
        "missing access token",
    );
}

/// A valid token does not help a caller that is not the edge: external APIs
/// are for the edge only.
#[tokio::test]
async fn valid_token_from_a_non_edge_peer_is_denied() {
    let s = Stack::with_test_tokens().await;
    let token = s.issuer.token(uuid::Uuid::new_v4());
    let mut c = UsersServiceClient::new(
        Caller::peer(&s.pki, "notifications")
            .with_token(&token)
            .to(s.users),
    );
    assert_status(
        c.get_me(GetMeRequest {}).await,
        Code::PermissionDenied,
        "may not call",
    );
}

/// A token whose session auth lists as revoked (Logout, refresh-token
/// reuse) is refused by the service on its next refresh of the list,
/// although its signature and expiry are still good; other sessions of the
/// same user keep working.
#[tokio::test]
async fn token_of_a_revoked_session_is_refused_after_the_next_refresh() {
    let s = Stack::with_test_tokens().await;
    let user = uuid::Uuid::new_v4();
    let claims = s.issuer.claims(user, 900);
    let revoked_token = s.issuer.token_with(&claims);
    let other_session = s.issuer.token(user);
    let mut c = UsersServiceClient::new(Caller::user(&s.pki, &revoked_token).to(s.users));
    // Passes the guard (NOT_FOUND: no profile) before the revocation.
    assert_status(c.get_me(GetMeRequest {}).await, Code::NotFound, "not found");

    s.issuer.revoke(claims.sid.parse().expect("sid"));
    let refused = wait_for_refusal(
        "the revoked session is refused",
        Patience::secs(5),
        Code::Unauthenticated,
        || {
            let mut c = c.clone();
            async move { c.get_me(GetMeRequest {}).await }
        },
    )
    .await;
    assert!(
        refused.message().contains("revoked"),
        "{}",
        refused.message()
    );
    let mut other = UsersServiceClient::new(Caller::user(&s.pki, &other_session).to(s.users));
    assert_status(
        other.get_me(GetMeRequest {}).await,
        Code::NotFound,
        "not found",
    );
}
