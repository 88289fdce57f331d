//! Accounts like an identity provider's, against the real SMTP server
//! (scripts/smtp.sh's Postfix, read back from its Maildir): email
//! confirmation before the first login, resends, password reset with an
//! emailed code, password change, and what each does to sessions.

use std::time::Duration;

use interlock_itest::services::TestSmtp;
use interlock_itest::{Caller, Stack};
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::auth::v1::*;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{PASSWORD, login_request, register_request};
use tonic::Code;

use super::edge;
use crate::assert_status;

/// A stack whose auth requires confirmed addresses and mails through the
/// test SMTP server.
async fn stack() -> (Stack, TestSmtp) {
    let smtp = TestSmtp::required();
    let s = Stack::start(interlock_itest::services::Tokens::FromAuth, |a| {
        a.accounts.require_email_verification = true;
    })
    .await;
    (s, smtp)
}

/// auth's database, as auth's own role.
async fn auth_db(s: &Stack) -> sqlx::PgPool {
    sqlx::PgPool::connect(&s.auth_db.as_ref().expect("auth runs").url)
        .await
        .expect("connect to auth's database")
}

/// A login no other test (or earlier run: the Maildir is shared) uses.
fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

fn email(login: &str) -> String {
    format!("{login}@example.com")
}

fn confirm(login: &str, code: &str) -> ConfirmEmailRequest {
    ConfirmEmailRequest {
        login_or_email: login.into(),
        code: code.into(),
        password: PASSWORD.into(),
    }
}

/// A wrong code of the right shape.
fn other_than(code: &str) -> String {
    let last = code.as_bytes()[code.len() - 1];
    let flipped = if last == b'9' {
        '0'
    } else {
        char::from(last + 1)
    };
    format!("{}{flipped}", &code[..code.len() - 1])
}

/// Registers `login` and returns its first code, read from the mail.
async fn register_unconfirmed(
    auth: &mut AuthServiceClient<interlock_itest::services::Client>,
    smtp: &TestSmtp,
    login: &str,
) -> String {
    let out = auth
        .register(register_request(login))
        .await
        .expect("register")
        .into_inner();
    assert!(out.email_verification_required);
    smtp.wait_for(&email(login), 1).await[0]
        .code()
        .expect("a code")
}

/// Register sends a code; Login refuses the right password until the
/// address is confirmed (FAILED_PRECONDITION saying so), a wrong code is
/// refused naming the field, the right one confirms, works once, and Login
/// then succeeds. The message is text and HTML with the product's name,
/// the code and its expiry, and the database holds no usable code.
#[tokio::test]
async fn login_waits_for_the_emailed_code_which_works_once() {
    let (s, smtp) = stack().await;
    let mut auth = edge(&s);
    let login = unique("confirm");
    let code = register_unconfirmed(&mut auth, &smtp, &login).await;

    let mail = &smtp.wait_for(&email(&login), 1).await[0];
    assert_eq!(mail.subject, "Interlock: confirm your email address");
    assert!(
        mail.from.contains("no-reply@interlock.local"),
        "{}",
        mail.from
    );
    let html = mail.html.as_deref().expect("an HTML part");
    for part in [mail.text.as_str(), html] {
        assert!(part.contains("Interlock") && part.contains(&code), "{part}");
        assert!(part.contains("It expires in 30 minutes"), "{part}");
    }
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT code_hash FROM email_codes")
        .fetch_all(&auth_db(&s).await)
        .await
        .expect("codes");
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].windows(8).any(|w| w == code.as_bytes()));

    assert_status(
        auth.login(login_request(&login, PASSWORD)).await,
        Code::FailedPrecondition,
        "email address is not confirmed",
    );
    // A wrong password still says only that the credentials are wrong.
    assert_status(
        auth.login(login_request(&login, "wrong horse battery"))
            .await,
        Code::Unauthenticated,
        "invalid login or password",
    );
    assert_status(
        auth.confirm_email(confirm(&login, &other_than(&code)))
            .await,
        Code::InvalidArgument,
        "code: is not valid",
    );
    assert_status(
        auth.confirm_email(confirm(&login, "12ab")).await,
        Code::InvalidArgument,
        "code: must be the 8 digits from the email",
    );
    let confirmed = auth
        .confirm_email(confirm(&email(&login).to_uppercase(), &code))
        .await
        .expect("confirm")
        .into_inner();
    assert_status(
        auth.confirm_email(confirm(&login, &code)).await,
        Code::InvalidArgument,
        "code: is not valid",
    );
    let pair = auth
        .login(login_request(&login, PASSWORD))
        .await
        .expect("login once confirmed")
        .into_inner();
    assert_eq!(pair.user_id, confirmed.user_id);
}

/// Five wrong tries burn a code (the right one then fails too); a resend
/// mails a new code that works. A resend for an unknown or confirmed
/// account answers the same and mails nothing; a fourth resend for one
/// account within the window is refused with a retry hint.
#[tokio::test]
async fn wrong_tries_burn_the_code_and_resends_are_rate_limited() {
    let (s, smtp) = stack().await;
    let mut auth = edge(&s);
    let login = unique("burn");
    let code = register_unconfirmed(&mut auth, &smtp, &login).await;
    for _ in 0..5 {
        assert_status(
            auth.confirm_email(confirm(&login, &other_than(&code)))
                .await,
            Code::InvalidArgument,
            "code: is not valid",
        );
    }
    assert_status(
        auth.confirm_email(confirm(&login, &code)).await,
        Code::InvalidArgument,
        "code: is not valid",
    );

    let resend = |who: &str| ResendVerificationRequest {
        login_or_email: who.into(),
    };
    auth.resend_verification(resend(&login))
        .await
        .expect("resend");
    let mails = smtp.wait_for(&email(&login), 2).await;
    let second = mails[1].code().expect("a new code");
    auth.confirm_email(confirm(&login, &second))
        .await
        .expect("the new code confirms");

    let nobody = unique("nobody");
    auth.resend_verification(resend(&nobody))
        .await
        .expect("same answer for an unknown account");
    // Already confirmed: same answer, no mail; the third this window.
    auth.resend_verification(resend(&login))
        .await
        .expect("resend");
    auth.resend_verification(resend(&login))
        .await
        .expect("resend");
    let refused = auth.resend_verification(resend(&login)).await;
    assert_status(
        refused,
        Code::ResourceExhausted,
        "too many emails asked for",
    );
    let refused = auth
        .resend_verification(resend(&login))
        .await
        .expect_err("throttled");
    assert!(refused.metadata().get("retry-after").is_some());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(interlock_mesh::mail::messages_to(&smtp.maildir, &email(&nobody)).is_empty());
    assert_eq!(
        interlock_mesh::mail::messages_to(&smtp.maildir, &email(&login)).len(),
        2,
        "no mail for a confirmed account"
    );
}

/// A password reset by email: the same answer for an unknown account; the
/// emailed code sets the new password once and ends every session (refresh
/// tokens at once, access tokens everywhere within the revocation
/// refresh); the old password stops working.
#[tokio::test]
async fn password_reset_with_the_emailed_code_ends_every_session() {
    let (s, smtp) = stack().await;
    let mut auth = edge(&s);
    let login = unique("reset");
    let code = register_unconfirmed(&mut auth, &smtp, &login).await;
    auth.confirm_email(confirm(&login, &code))
        .await
        .expect("confirm");
    let first = auth
        .login(login_request(&login, PASSWORD))
        .await
        .expect("login")
        .into_inner();
    let second = auth
        .login(login_request(&email(&login), PASSWORD))
        .await
        .expect("login")
        .into_inner();

    let ask = |who: &str| RequestPasswordResetRequest {
        login_or_email: who.into(),
    };
    auth.request_password_reset(ask(&unique("ghost")))
        .await
        .expect("same answer for an unknown account");
    auth.request_password_reset(ask(&email(&login)))
        .await
        .expect("reset asked");
    let mails = smtp.wait_for(&email(&login), 2).await;
    assert_eq!(mails[1].subject, "Interlock: reset your password");
    let reset_code = mails[1].code().expect("a reset code");
    assert!(mails[1].text.contains("It expires in 15 minutes"));

    let reset = |code: &str, password: &str| ResetPasswordRequest {
        login_or_email: login.clone(),
        code: code.into(),
        new_password: password.into(),
    };
    assert_status(
        auth.reset_password(reset(&reset_code, "short")).await,
        Code::InvalidArgument,
        "new_password: must be at least 8 characters",
    );
    assert_status(
        auth.reset_password(reset(&other_than(&reset_code), "brand new horse"))
            .await,
        Code::InvalidArgument,
        "code: is not valid",
    );
    let done = auth
        .reset_password(reset(&reset_code, "brand new horse"))
        .await
        .expect("reset")
        .into_inner();
    assert_eq!(done.sessions_ended, 2);
    assert_status(
        auth.reset_password(reset(&reset_code, "another new horse"))
            .await,
        Code::InvalidArgument,
        "code: is not valid",
    );
    for pair in [&first, &second] {
        assert_status(
            auth.refresh(RefreshRequest {
                refresh_token: pair.refresh_token.clone(),
            })
            .await,
            Code::Unauthenticated,
            "refresh token is not valid",
        );
    }
    let users = UsersServiceClient::new(Caller::user(&s.pki, &first.access_token).to(s.users));
    let refused = interlock_testkit::wait_for_refusal(
        "the reset session's access token is refused",
        interlock_testkit::Patience::secs(10),
        Code::Unauthenticated,
        || {
            let mut users = users.clone();
            async move { users.get_me(GetMeRequest {}).await }
        },
    )
    .await;
    assert!(refused.message().contains("revoked"), "{refused:?}");
    assert_status(
        auth.login(login_request(&login, PASSWORD)).await,
        Code::Unauthenticated,
        "invalid login or password",
    );
    auth.login(login_request(&login, "brand new horse"))
        .await
        .expect("the new password logs in");
}

/// ChangePassword needs the current password (a wrong one is refused
/// naming the field), refuses the same password, and ends every other
/// session while the caller's own goes on.
#[tokio::test]
async fn change_password_ends_the_other_sessions_only() {
    let (s, smtp) = stack().await;
    let mut auth = edge(&s);
    let login = unique("change");
    let code = register_unconfirmed(&mut auth, &smtp, &login).await;
    auth.confirm_email(confirm(&login, &code))
        .await
        .expect("confirm");
    let mine = auth
        .login(login_request(&login, PASSWORD))
        .await
        .expect("login")
        .into_inner();
    let other = auth
        .login(login_request(&login, PASSWORD))
        .await
        .expect("login")
        .into_inner();
    let mut as_me = AuthServiceClient::new(Caller::user(&s.pki, &mine.access_token).to(s.auth()));
    let change = |current: &str, new: &str| ChangePasswordRequest {
        current_password: current.into(),
        new_password: new.into(),
    };
    assert_status(
        auth.change_password(change(PASSWORD, "brand new horse"))
            .await,
        Code::Unauthenticated,
        "access token",
    );
    assert_status(
        as_me
            .change_password(change("wrong horse battery", "brand new horse"))
            .await,
        Code::InvalidArgument,
        "current_password: is not the account's password",
    );
    assert_status(
        as_me.change_password(change(PASSWORD, PASSWORD)).await,
        Code::InvalidArgument,
        "new_password: must differ from the current password",
    );
    let done = as_me
        .change_password(change(PASSWORD, "brand new horse"))
        .await
        .expect("change")
        .into_inner();
    assert_eq!(done.sessions_ended, 1);
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
    auth.login(login_request(&login, "brand new horse"))
        .await
        .expect("the new password logs in");
}

/// With verification on, a registration that fails in users leaves no
/// account, no code and sends no mail: the code is stored only with the
/// activation.
#[tokio::test]
async fn a_failed_registration_stores_no_code_and_sends_no_mail() {
    let smtp = TestSmtp::required();
    let s = Stack::start(interlock_itest::services::Tokens::FromAuth, |a| {
        a.accounts.require_email_verification = true;
        a.peers.users_url = format!(
            "http://127.0.0.1:{}",
            interlock_itest::services::free_port()
        );
    })
    .await;
    let mut auth = edge(&s);
    let login = unique("failed");
    let refused = auth.register(register_request(&login)).await;
    assert!(refused.is_err(), "users is unreachable: {refused:?}");
    let pool = auth_db(&s).await;
    let codes: i64 = sqlx::query_scalar("SELECT count(*) FROM email_codes")
        .fetch_one(&pool)
        .await
        .expect("count");
    let active: i64 =
        sqlx::query_scalar("SELECT count(*) FROM credentials WHERE status = 'active'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!((codes, active), (0, 0));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(interlock_mesh::mail::messages_to(&smtp.maildir, &email(&login)).is_empty());
}

/// A login checks the password with bcrypt before it starts the session; a
/// reset or change committed in between must not leave that login a
/// session the new password never authorised. The session starts only
/// while the account still has the hash the login verified.
#[tokio::test]
async fn a_login_verified_against_a_replaced_password_starts_no_session() {
    let (s, smtp) = stack().await;
    let mut auth = edge(&s);
    let login = unique("raced");
    let code = register_unconfirmed(&mut auth, &smtp, &login).await;
    auth.confirm_email(confirm(&login, &code))
        .await
        .expect("confirm");
    let db = auth_db(&s).await;
    let (user_id, verified): (uuid::Uuid, String) =
        sqlx::query_as("SELECT user_id, password_hash FROM credentials WHERE login = $1")
            .bind(&login)
            .fetch_one(&db)
            .await
            .expect("the account");
    let expires = chrono::Utc::now() + chrono::Duration::days(1);

    // The password is replaced after the (simulated) bcrypt check.
    sqlx::query("UPDATE credentials SET password_hash = $2 WHERE user_id = $1")
        .bind(user_id)
        .bind(format!("{verified}-replaced"))
        .execute(&db)
        .await
        .expect("replace the hash");
    let started =
        interlock_auth::store::create_session(&db, user_id, &verified, &[1u8; 32], expires)
            .await
            .expect("query");
    assert_eq!(started, None, "a session from the replaced password");
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(sessions, 0);

    // With the account's current hash the session starts.
    let current = format!("{verified}-replaced");
    let started =
        interlock_auth::store::create_session(&db, user_id, &current, &[2u8; 32], expires)
            .await
            .expect("query");
    assert!(started.is_some());
}

/// Someone registers an account in another person's address; its mail
/// reaches that person, who enters the code with a password of their
/// own. The confirmation is refused like a wrong login, so the account
/// its maker controls never becomes a confirmed one.
#[tokio::test]
async fn the_mails_recipient_cannot_confirm_an_account_someone_else_made() {
    let (s, smtp) = stack().await;
    let mut auth = edge(&s);
    let login = unique("squat");
    let code = register_unconfirmed(&mut auth, &smtp, &login).await;
    let victims = ConfirmEmailRequest {
        password: "the recipient's own password".into(),
        ..confirm(&email(&login), &code)
    };
    assert_status(
        auth.confirm_email(victims).await,
        Code::Unauthenticated,
        "invalid login or password",
    );
    assert_status(
        auth.login(login_request(&login, PASSWORD)).await,
        Code::FailedPrecondition,
        "email address is not confirmed",
    );
    // The code was not used up by the refused attempt: the maker, who
    // knows the password, can still confirm.
    auth.confirm_email(confirm(&login, &code))
        .await
        .expect("the password's owner confirms");
}
