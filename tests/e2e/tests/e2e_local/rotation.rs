//! SVID rotation under load: a steady stream of calls through the edge
//! (edge -> users sidecar -> users -> egress -> roles sidecar -> roles)
//! while SPIRE rotates the certificates, with zero failed calls.

use std::time::{Duration, Instant};

use interlock_e2e::{admin_get, edge, register_and_login, target, unique_login};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;

/// Serial numbers of the certificates an Envoy holds.
fn serials(certs: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(certs).unwrap_or_default();
    let mut out = Vec::new();
    for c in v["certificates"].as_array().into_iter().flatten() {
        for cert in c["cert_chain"].as_array().into_iter().flatten() {
            if let Some(s) = cert["serial_number"].as_str() {
                out.push(s.to_owned());
            }
        }
    }
    out
}

#[tokio::test]
async fn calls_keep_succeeding_across_two_svid_rotations() {
    let target = target();
    let mesh = target.local();
    let pair = register_and_login(&target, &unique_login("steady")).await;
    let mut users = UsersServiceClient::new(edge(&target, Some(&pair.access_token)).await);
    let admin = mesh.admin_socket("users");
    let mut seen: Vec<String> = Vec::new();
    let (mut ok, mut failed) = (0u32, Vec::new());
    let started = Instant::now();
    let limit = Duration::from_secs(u64::from(mesh.svid_ttl_secs()) * 3);
    let mut last_sample = Instant::now() - Duration::from_secs(5);
    // Two rotations = three distinct serials of the users sidecar's SVID.
    while seen.len() < 3 && started.elapsed() < limit {
        if last_sample.elapsed() >= Duration::from_secs(1) {
            for s in serials(&admin_get(&admin, "/certs").await) {
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
            last_sample = Instant::now();
        }
        match users.get_me(GetMeRequest {}).await {
            Ok(_) => ok += 1,
            Err(s) => failed.push(format!("{:?}: {}", s.code(), s.message())),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "rotation: {} distinct users-sidecar SVID serials over {:.0} s, {ok} calls ok, {} failed",
        seen.len(),
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(
        seen.len() >= 3,
        "saw only {} SVIDs in {limit:?}",
        seen.len()
    );
    assert!(failed.is_empty(), "failed calls: {failed:?}");
    assert!(ok > 100, "too few calls to mean anything: {ok}");
}
