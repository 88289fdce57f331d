//! The real grpcurl through the edge: it lists the external services (by
//! server reflection routed at the edge), never an internal one, and runs
//! the session with grpcurl.

use interlock_e2e::{grpcurl, target, unique_login};

/// `grpcurl list` shows exactly the external services.
#[test]
fn grpcurl_lists_only_external_services() {
    let target = target();
    let out = grpcurl(&target, &[], "list");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<&str> = text.lines().collect();
    assert_eq!(
        listed,
        [
            "interlock.auth.v1.AuthService",
            "interlock.notifications.v1.NotificationsService",
            "interlock.roles.v1.RolesAdmin",
            "interlock.users.v1.UsersService",
        ]
    );
}

/// Register, ConfirmEmail (with the mailed code), Login and GetMe with
/// grpcurl.
#[test]
fn grpcurl_register_login_get_me() {
    let target = target();
    let login = unique_login("curl");
    let register = format!(
        r#"{{"login":"{login}","email":"{login}@example.com","password":"correct horse battery","first_name":"Ada","last_name":"Lovelace"}}"#
    );
    let out = grpcurl(
        &target,
        &["-d", &register],
        "interlock.auth.v1.AuthService/Register",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The mesh requires a confirmed address: the code from the mail.
    let mails = interlock_mesh::mail::wait_for(
        &target.maildir(),
        &format!("{login}@example.com"),
        1,
        std::time::Duration::from_secs(30),
    )
    .expect("the confirmation mail");
    let code = mails[0].code().expect("a code");
    let confirm = format!(
        r#"{{"login_or_email":"{login}","code":"{code}","password":"correct horse battery"}}"#
    );
    let out = grpcurl(
        &target,
        &["-d", &confirm],
        "interlock.auth.v1.AuthService/ConfirmEmail",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let creds = format!(r#"{{"login_or_email":"{login}","password":"correct horse battery"}}"#);
    let out = grpcurl(
        &target,
        &["-d", &creds],
        "interlock.auth.v1.AuthService/Login",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pair: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let token = pair["accessToken"].as_str().expect("accessToken");
    let header = format!("authorization: Bearer {token}");
    let out = grpcurl(
        &target,
        &["-H", &header],
        "interlock.users.v1.UsersService/GetMe",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let me: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(me["login"], login.as_str());
    assert_eq!(me["roles"], serde_json::json!(["user"]));

    // Without the token the edge refuses with UNAUTHENTICATED.
    let out = grpcurl(&target, &[], "interlock.users.v1.UsersService/GetMe");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
