//! SPIRE attestation: a workload gets only its own SVID.

use std::time::{Duration, Instant};

use interlock_e2e::{ProbeEnvoy, as_workload, mesh, tool};

/// users' Unix user running the registered Envoy binary gets users' SVID
/// when it asks for it, and never auth's.
#[tokio::test]
async fn a_workload_cannot_obtain_another_workloads_svid() {
    let mesh = mesh();
    let own = ProbeEnvoy::start(&mesh, "users", &mesh.spiffe_id("users"), "roles");
    let stolen = ProbeEnvoy::start(&mesh, "users", &mesh.spiffe_id("auth"), "roles");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !own
        .certs()
        .await
        .contains("spiffe://interlock.local/svc/users")
    {
        assert!(
            Instant::now() < deadline,
            "users never got its own SVID: {}",
            own.certs().await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // By now the agent has answered both; give the refusal time to be sure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let certs = stolen.certs().await;
    assert!(!certs.is_empty(), "the probe's admin answered");
    assert!(
        !certs.contains("spiffe://interlock.local/svc/auth"),
        "users obtained auth's SVID: {certs}"
    );
}

/// A registered Unix user running a binary that is not one of its
/// workload's gets no identity at all.
#[test]
fn an_unregistered_binary_gets_no_identity() {
    let mesh = mesh();
    let agent = tool("spire-agent");
    // The tool is under root's cache; copy it where the user can run it.
    let copy = std::env::temp_dir().join(format!("spire-agent-{}", uuid::Uuid::new_v4().simple()));
    std::fs::copy(&agent, &copy).expect("copy");
    let out = as_workload(
        "users",
        &copy,
        &[
            "api",
            "fetch",
            "x509",
            "-socketPath",
            mesh.agent_socket().to_str().expect("utf8"),
            "-timeout",
            "5s",
        ],
    )
    .output()
    .expect("run spire-agent api fetch");
    let _ = std::fs::remove_file(&copy);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "got an identity: {text}");
    assert!(!text.contains("spiffe://interlock.local/svc/"), "{text}");
}
