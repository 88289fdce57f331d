//! First contact verbatim: the grpcurl session `scripts/mesh.sh up` prints
//! (the file it prints) runs as printed.

use interlock_e2e::target;

/// The session `mesh.sh up` prints (it prints the file this reads) runs
/// verbatim in a fresh shell — no variables, no PATH beyond the default,
/// another working directory — and ends with the new user's profile.
#[test]
fn printed_session_runs_verbatim_in_a_fresh_shell() {
    let target = target();
    let mesh = target.local();
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
