//! Traces the local mesh can stage: a sidecar's refusal of a probe in its
//! trace; no personal data in traces or in the supervisor's logs.

use std::time::Duration;

use interlock_e2e::jaeger::{new_trace_id, trace, traced, traceparent};
use interlock_e2e::{ProbeEnvoy, edge_channel, target, unique_login};
use interlock_proto::roles::v1::ListRequest;
use interlock_proto::roles::v1::roles_admin_client::RolesAdminClient;
use interlock_testkit::{Patience, wait_until};
use tonic::metadata::MetadataValue;

/// A peer the policy does not allow is refused by the receiving sidecar,
/// and that sidecar's span records PERMISSION_DENIED.
#[tokio::test]
async fn a_disallowed_peer_refusal_is_in_its_trace() {
    let target = target();
    let mesh = target.local();
    let probe = ProbeEnvoy::start(mesh, "users", &mesh.spiffe_id("users"), "roles");
    let channel = probe.channel();
    let trace_id = new_trace_id();
    wait_until(
        "the probe reaches roles' sidecar",
        Patience::secs(30).every(Duration::from_millis(300)),
        || {
            let mut admin = RolesAdminClient::new(channel.clone());
            let mut req = tonic::Request::new(ListRequest::default());
            req.metadata_mut().insert(
                "traceparent",
                MetadataValue::try_from(traceparent(&trace_id)).expect("ascii"),
            );
            async move {
                match admin.list(req).await {
                    Err(s) if s.code() == tonic::Code::PermissionDenied => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            }
        },
    )
    .await;
    let spans = trace(&target, &trace_id, |s| {
        s.iter().any(|x| {
            x.service == "sidecar-roles" && x.tags.get("grpc.status_code").is_some_and(|c| c == "7")
        })
    })
    .await;
    assert!(
        !spans.iter().any(|s| s.service == "roles"),
        "the refused call never reached roles"
    );
}

/// Register and Login traces name no login, email or client address: not
/// in the services' spans (no such fields), not in Envoy's (the pipeline
/// drops `peer.address` and `user_agent`); nor do the mesh's logs.
#[tokio::test]
async fn register_and_login_traces_and_logs_carry_no_personal_data() {
    use interlock_proto::auth::v1::{LoginRequest, RegisterRequest};
    let target = target();
    let mesh = target.local();
    let login = unique_login("private");
    let email = format!("{login}@example.com");
    let mut auth = interlock_proto::auth::v1::auth_service_client::AuthServiceClient::new(
        edge_channel(&target).await,
    );
    let register_trace = new_trace_id();
    auth.register(traced(
        &register_trace,
        RegisterRequest {
            login: login.clone(),
            email: email.clone(),
            password: "correct horse battery".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        },
    ))
    .await
    .expect("register");
    let login_trace = new_trace_id();
    let refused = auth
        .login(traced(
            &login_trace,
            LoginRequest {
                login_or_email: email.clone(),
                password: "wrong horse battery".into(),
            },
        ))
        .await
        .expect_err("wrong password");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    let mut spans = trace(&target, &register_trace, |s| {
        s.iter().any(|x| x.service == "edge")
            && s.iter()
                .any(|x| x.service == "users" && x.tags.contains_key("db.system"))
    })
    .await;
    spans.extend(
        trace(&target, &login_trace, |s| {
            s.iter().any(|x| x.service == "edge")
                && s.iter()
                    .any(|x| x.service == "auth" && x.tags.contains_key("db.system"))
        })
        .await,
    );
    for span in &spans {
        for (key, value) in &span.tags {
            assert!(
                !["peer.address", "user_agent", "client.address"].contains(&key.as_str()),
                "{} {}: {key}={value}",
                span.service,
                span.operation
            );
            let lower = value.to_ascii_lowercase();
            assert!(
                !lower.contains(&login) && !lower.contains(&email),
                "{} {}: {key}={value} names the user",
                span.service,
                span.operation
            );
        }
    }
    for entry in std::fs::read_dir(mesh.run_dir.join("logs"))
        .expect("logs")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        assert!(
            !text.contains(&login),
            "{} names the user",
            entry.path().display()
        );
    }
}
