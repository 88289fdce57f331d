//! The local mesh's own control planes and secrets, checked on the running
//! mesh the way a local attacker would probe them (docs/security.md):
//! nothing listens beyond loopback, the supervisor's and Envoys' admin APIs
//! are closed to other Unix users, the SPIRE join token is gone, and the
//! edge rate-limits the methods anyone may call, per client address.

use std::os::unix::fs::PermissionsExt;

use interlock_e2e::{curl_unix, edge, target};
use interlock_proto::auth::v1::RefreshRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_testkit::{Patience, wait_until};
use tonic::Code;

/// Programs the mesh starts.
const MESH_PROGRAMS: &[&str] = &[
    "envoy",
    "spire-server",
    "spire-agent",
    "jaeger",
    "process-compose",
    "interlock-",
    "postgres",
];

/// Every TCP or UDP socket a mesh program listens on is bound to loopback;
/// process-compose has no TCP server at all.
#[tokio::test]
async fn nothing_of_the_mesh_listens_beyond_loopback() {
    let out = std::process::Command::new("ss")
        .args(["-H", "-l", "-n", "-p", "-t", "-u"])
        .output()
        .expect("run ss");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seen = 0;
    for line in text.lines() {
        let Some(program) = MESH_PROGRAMS
            .iter()
            .find(|p| line.contains(&format!("((\"{p}")))
        else {
            continue;
        };
        seen += 1;
        assert_ne!(
            *program, "process-compose",
            "the supervisor listens on TCP: {line}"
        );
        let local = line
            .split_whitespace()
            .nth(4)
            .expect("local address column");
        let host = local.rsplit_once(':').map_or(local, |(h, _)| h);
        assert!(
            matches!(host, "127.0.0.1" | "[::1]" | "[::ffff:127.0.0.1]"),
            "{program} listens beyond loopback: {line}"
        );
    }
    assert!(
        seen >= 8,
        "expected the mesh's listeners in ss output:\n{text}"
    );
}

/// The supervisor's API (it can replace any process's command, as root)
/// answers root on its Unix socket and refuses every other user.
#[tokio::test]
async fn supervisor_api_is_reachable_by_root_only() {
    let target = target();
    let m = target.local();
    let socket = m.control_socket();
    let dir = socket.parent().expect("control dir");
    let mode = std::fs::metadata(dir)
        .expect("control dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    let (status, body) = curl_unix(None, &socket, "GET", "/processes")
        .await
        .expect("root reaches the supervisor");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("sidecar-users"), "{body}");
    for user in ["sender", "edge", "users"] {
        let refused = curl_unix(Some(user), &socket, "GET", "/processes").await;
        assert!(
            refused.is_err(),
            "interlock-{user} reached the supervisor: {refused:?}"
        );
    }
}

/// The local FCM server's test hooks (every pushed message and device
/// token; scripted failures for any device) are not on its TCP port at all,
/// and their socket refuses every user but root.
#[tokio::test]
async fn fcm_test_hooks_are_reachable_by_root_only() {
    let target = target();
    let m = target.local();
    let port = m.topology.fcm_local.port;
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/control/received"))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "404", "hooks on TCP");
    let socket = m.fcm_control_socket();
    let (status, _) = curl_unix(None, &socket, "GET", "/control/received")
        .await
        .expect("root reaches the hooks");
    assert_eq!(status, 200);
    for user in ["sender", "notifications"] {
        let refused = curl_unix(Some(user), &socket, "POST", "/control/reset").await;
        assert!(
            refused.is_err(),
            "interlock-{user} reached the hooks: {refused:?}"
        );
    }
}

/// No other Unix user can open an Envoy's admin API: the sender's user
/// cannot stop the edge or turn on debug logging (which would log bearer
/// tokens); root can still read it.
#[tokio::test]
async fn envoy_admin_apis_are_closed_to_other_users() {
    let target = target();
    let m = target.local();
    let edge_admin = m.admin_socket("edge");
    for (path, method) in [
        ("/quitquitquit", "POST"),
        ("/logging?level=debug", "POST"),
        ("/certs", "GET"),
    ] {
        let refused = curl_unix(Some("sender"), &edge_admin, method, path).await;
        assert!(
            refused.is_err(),
            "the sender's user reached edge admin {path}: {refused:?}"
        );
    }
    let users_admin = m.admin_socket("users");
    let refused = curl_unix(Some("roles"), &users_admin, "POST", "/quitquitquit").await;
    assert!(
        refused.is_err(),
        "roles' user reached users' sidecar admin: {refused:?}"
    );
    for w in std::iter::once("edge").chain(m.workloads()) {
        let (status, body) = curl_unix(None, &m.admin_socket(w), "GET", "/ready")
            .await
            .unwrap_or_else(|code| panic!("root cannot read {w}'s admin: curl {code}"));
        assert_eq!((status, body.trim()), (200, "LIVE"), "{w}");
    }
}

/// The SPIRE join token is never on a command line, lives root-only, and
/// is deleted once the agent has attested.
#[tokio::test]
async fn join_token_is_root_only_and_gone_after_attestation() {
    let target = target();
    let m = target.local();
    let token = m.join_token_file();
    let dir = token.parent().expect("join dir");
    let mode = std::fs::metadata(dir)
        .expect("join dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
    wait_until("the join token is deleted", Patience::secs(30), || {
        let exists = token.exists();
        async move { if exists { Err("still there") } else { Ok(()) } }
    })
    .await;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        assert!(
            !args.iter().any(|a| *a == b"-joinToken"),
            "a process has the join token on its command line: {}",
            String::from_utf8_lossy(&cmdline)
        );
    }
}

/// One client address cannot monopolise the methods anyone may call: past
/// its bucket the edge answers RESOURCE_EXHAUSTED itself, while a client
/// at another address is still served. (This test calls from its own
/// loopback address, so the other tests' bucket is untouched.)
#[tokio::test]
async fn public_methods_are_rate_limited_per_client_address() {
    let target = target();
    let m = target.local();
    let burst = m.topology.edge.public_burst as usize;
    let channel =
        interlock_e2e::edge_channel_from(&target, "127.0.0.77".parse().expect("ip")).await;
    let calls = (0..burst + 30).map(|_| {
        let mut auth = AuthServiceClient::new(channel.clone());
        async move {
            auth.refresh(RefreshRequest {
                refresh_token: "not-a-token".into(),
            })
            .await
            .expect_err("a garbage refresh token is refused")
        }
    });
    let results = futures_join_all(calls).await;
    let limited = results
        .iter()
        .filter(|s| s.code() == Code::ResourceExhausted)
        .count();
    let reached_auth = results
        .iter()
        .filter(|s| s.code() == Code::Unauthenticated)
        .count();
    println!(
        "{limited} of {} calls rate-limited at the edge, {reached_auth} reached auth",
        results.len()
    );
    assert!(limited >= 20, "the edge limited only {limited} calls");
    assert!(
        reached_auth >= burst / 2,
        "the burst should pass: {reached_auth}"
    );
    // Another address has its own bucket.
    let mut other = AuthServiceClient::new(edge(&target, None).await);
    let err = other
        .refresh(RefreshRequest {
            refresh_token: "not-a-token".into(),
        })
        .await
        .expect_err("refused by auth, not the edge");
    assert_eq!(err.code(), Code::Unauthenticated, "{}", err.message());
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("join"));
    }
    out
}
