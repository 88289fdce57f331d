//! Accounts through the edge, with the real SMTP server (Postfix) and its
//! Maildir: a new account logs in only after confirming its address with
//! the mailed code; a password reset by email ends the old sessions
//! everywhere; ChangePassword keeps only the caller's session.

use interlock_e2e::{edge, register_and_login, target, unique_login, wait_for_mail};
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::auth::v1::*;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{
    PASSWORD, Patience, assert_status, login_request, register_request, wait_for_refusal,
};
use tonic::Code;

/// Register answers that confirmation is required, Login is refused with
/// FAILED_PRECONDITION until ConfirmEmail (public at the edge) takes the
/// code from the email, which carries the product's name and the code in
/// text and HTML.
#[tokio::test]
async fn login_through_the_edge_waits_for_the_mailed_code() {
    let target = target();
    let login = unique_login("verify");
    let mut auth = AuthServiceClient::new(edge(&target, None).await);
    let out = auth
        .register(register_request(&login))
        .await
        .expect("register")
        .into_inner();
    assert!(out.email_verification_required, "the mesh requires it");
    assert_status(
        auth.login(login_request(&login, PASSWORD)).await,
        Code::FailedPrecondition,
        "email address is not confirmed",
    );
    let mail = wait_for_mail(&target, &format!("{login}@example.com"), 1).await;
    let mail = &mail[0];
    assert_eq!(mail.subject, "Interlock: confirm your email address");
    let code = mail.code().expect("a code");
    assert!(mail.html.as_deref().is_some_and(|h| h.contains(&code)));
    let confirmed = auth
        .confirm_email(ConfirmEmailRequest {
            login_or_email: login.clone(),
            code,
            password: PASSWORD.into(),
        })
        .await
        .expect("confirm through the edge")
        .into_inner();
    assert_eq!(confirmed.user_id, out.user_id);
    auth.login(login_request(&login, PASSWORD))
        .await
        .expect("login once confirmed");
}

/// A reset code from the email sets a new password and ends the old
/// session: its refresh token at once, its access token at the services
/// within seconds. ChangePassword then ends the other session only.
#[tokio::test]
async fn reset_by_email_and_change_end_sessions_through_the_edge() {
    let target = target();
    let login = unique_login("forgot");
    let old = register_and_login(&target, &login).await;
    let mut auth = AuthServiceClient::new(edge(&target, None).await);
    auth.request_password_reset(RequestPasswordResetRequest {
        login_or_email: format!("{login}@example.com"),
    })
    .await
    .expect("ask for a reset");
    let mails = wait_for_mail(&target, &format!("{login}@example.com"), 2).await;
    assert_eq!(mails[1].subject, "Interlock: reset your password");
    let done = auth
        .reset_password(ResetPasswordRequest {
            login_or_email: login.clone(),
            code: mails[1].code().expect("a reset code"),
            new_password: "a new horse battery".into(),
        })
        .await
        .expect("reset")
        .into_inner();
    assert_eq!(done.sessions_ended, 1);
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: old.refresh_token.clone(),
        })
        .await,
        Code::Unauthenticated,
        "refresh token is not valid",
    );
    let users = UsersServiceClient::new(edge(&target, Some(&old.access_token)).await);
    wait_for_refusal(
        "the old session's access token is refused",
        Patience::secs(10),
        Code::Unauthenticated,
        || {
            let mut users = users.clone();
            async move { users.get_me(GetMeRequest {}).await }
        },
    )
    .await;

    let mine = auth
        .login(login_request(&login, "a new horse battery"))
        .await
        .expect("the new password logs in")
        .into_inner();
    let other = auth
        .login(login_request(&login, "a new horse battery"))
        .await
        .expect("a second session")
        .into_inner();
    let changed = AuthServiceClient::new(edge(&target, Some(&mine.access_token)).await)
        .change_password(ChangePasswordRequest {
            current_password: "a new horse battery".into(),
            new_password: "a third horse battery".into(),
        })
        .await
        .expect("change")
        .into_inner();
    assert_eq!(changed.sessions_ended, 1);
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: other.refresh_token,
        })
        .await,
        Code::Unauthenticated,
        "refresh token is not valid",
    );
    auth.refresh(RefreshRequest {
        refresh_token: mine.refresh_token,
    })
    .await
    .expect("the caller's session goes on");
}
