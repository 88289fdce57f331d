//! The real grpcurl through the edge: it lists the external services (by
//! server reflection routed at the edge), never an internal one, and runs
//! the session `mesh.sh up` prints, verbatim.

use interlock_e2e::{grpcurl, mesh, unique_login};

/// `grpcurl list` shows exactly the external services.
#[test]
fn grpcurl_lists_only_external_services() {
    let mesh = mesh();
    let out = grpcurl(&mesh, &[], "list");
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
    let mesh = mesh();
    let login = unique_login("curl");
    let register = format!(
        r#"{{"login":"{login}","email":"{login}@example.com","password":"correct horse battery","first_name":"Ada","last_name":"Lovelace"}}"#
    );
    let out = grpcurl(
        &mesh,
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
        &mesh.maildir(),
        &format!("{login}@example.com"),
        1,
        std::time::Duration::from_secs(30),
    )
    .expect("the confirmation mail");
    let code = mails[0].code().expect("a code");
    let confirm = format!(r#"{{"login_or_email":"{login}","code":"{code}"}}"#);
    let out = grpcurl(
        &mesh,
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
        &mesh,
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
        &mesh,
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
    let out = grpcurl(&mesh, &[], "interlock.users.v1.UsersService/GetMe");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The session `mesh.sh up` prints (it prints the file this reads) runs
/// verbatim in a fresh shell — no variables, no PATH beyond the default,
/// another working directory — and ends with the new user's profile.
#[test]
fn printed_session_runs_verbatim_in_a_fresh_shell() {
    let mesh = mesh();
    let session = std::fs::read_to_string(mesh.run_dir.join("session.sh"))
        .expect("session.sh, written by scripts/mesh.sh up");
    let out = std::process::Command::new("env")
        .args(["-i", "/bin/bash", "--noprofile", "--norc", "-c"])
        .arg(&session)
        .current_dir("/")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.trim().is_empty(), "every step succeeded: {stderr}");
    // `list`, then GetMe's profile with the default role.
    assert!(
        stdout.contains("interlock.auth.v1.AuthService\n"),
        "{stdout}"
    );
    // grpcurl prints each answer as JSON whose outermost braces start a line.
    let last = stdout.rfind("\n{\n").expect("GetMe's JSON") + 1;
    let profile = &stdout[last..];
    let me: serde_json::Value = serde_json::from_str(profile).expect("profile json");
    assert!(
        me["login"].as_str().is_some_and(|l| l.starts_with("demo")),
        "{me}"
    );
    assert_eq!(me["roles"], serde_json::json!(["user"]));
}
