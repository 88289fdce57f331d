//! SPIRE attestation: a workload gets only its own SVID.

use std::time::Duration;

use interlock_e2e::logs::ProcessLog;
use interlock_e2e::{ProbeEnvoy, as_workload, target, tool};
use interlock_testkit::{Patience, wait_until};

/// Whether the SPIRE agent's `log` records refusing process `pid` the
/// identity `id` over SDS.
fn agent_refused(log: &str, pid: u32, id: &str) -> bool {
    let pid = format!("pid={pid}");
    log.lines().any(|line| {
        line.contains("not authorized for the requested identities")
            && line.contains(id)
            && line.split_whitespace().any(|field| field == pid)
    })
}

/// users' Unix user running the registered Envoy binary gets users' SVID
/// when it asks for it, and is refused auth's: two probes, same user and
/// binary (so the same attested selectors), one asking for each. Once the
/// first holds users' SVID, the agent is serving that workload; the
/// agent's own log then shows it refusing auth's identity to the second
/// probe's very process, and that probe holds no such certificate.
#[tokio::test]
async fn a_workload_cannot_obtain_another_workloads_svid() {
    let target = target();
    let mesh = target.local();
    let users_id = mesh.spiffe_id("users");
    let auth_id = mesh.spiffe_id("auth");
    let agent_log = ProcessLog::of(mesh, "spire-agent");
    let own = ProbeEnvoy::start(mesh, "users", &users_id, "roles");
    let stolen = ProbeEnvoy::start(mesh, "users", &auth_id, "roles");
    let looking = Patience::secs(30).every(Duration::from_millis(300));
    let (own, users_id) = (&own, &users_id);
    wait_until("users gets its own SVID", looking, || async move {
        let certs = own.certs().await;
        if certs.contains(users_id) {
            Ok(())
        } else {
            Err(certs)
        }
    })
    .await;

    // Envoy retries a refused SDS stream with backoff (at most 30 s apart),
    // so a refusal logged from here on was decided while the agent was
    // serving users' identity.
    let mark = agent_log.mark();
    let (agent_log, stolen_pid, auth_id) = (&agent_log, stolen.pid(), &auth_id);
    wait_until(
        "the agent refuses auth's SVID to the users probe",
        Patience::secs(60).every(Duration::from_millis(300)),
        || async move {
            let since = agent_log.since(mark);
            if agent_refused(&since, stolen_pid, auth_id) {
                Ok(())
            } else {
                Err(format!(
                    "not in the agent's log yet; it added {} bytes",
                    since.len()
                ))
            }
        },
    )
    .await;
    let certs = stolen.certs().await;
    assert!(!certs.is_empty(), "the probe's admin answers");
    assert!(
        !certs.contains(auth_id),
        "users obtained auth's SVID: {certs}"
    );
}

/// A registered Unix user running a binary that is not one of its
/// workload's gets no identity at all.
#[test]
fn an_unregistered_binary_gets_no_identity() {
    let target = target();
    let mesh = target.local();
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
