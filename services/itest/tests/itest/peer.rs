//! The peer check, through real RPCs: who may call an internal API is
//! proven only by a forwarded SVID that chains to the bundle and that the
//! policy allows.

use interlock_itest::{Caller, Stack};
use interlock_proto::roles::v1::GetRolesRequest;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use tonic::Code;

use crate::assert_status;

fn get_roles() -> GetRolesRequest {
    GetRolesRequest {
        user_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// An allowed peer with a good SVID gets an answer (NOT_FOUND: nobody has
/// registered this user), proving the checks passed.
#[tokio::test]
async fn allowed_peer_with_a_current_svid_is_served() {
    let s = Stack::with_test_tokens().await;
    let mut c = RolesInternalClient::new(s.as_peer("users").to(s.roles));
    assert_status(c.get_roles(get_roles()).await, Code::NotFound, "not found");
}

/// Missing, malformed, untrusted and expired certificates are
/// UNAUTHENTICATED, each with its reason.
#[tokio::test]
async fn unprovable_peers_are_unauthenticated() {
    let s = Stack::with_test_tokens().await;
    let cases = [
        (Caller::default(), "missing x-forwarded-client-cert"),
        (
            Caller {
                xfcc: Some("By=spiffe://interlock.local/svc/users;Cert=\"garbage\"".into()),
                ..Default::default()
            },
            "malformed",
        ),
        (
            Caller {
                xfcc: Some(s.pki.untrusted_xfcc("users")),
                ..Default::default()
            },
            "untrusted",
        ),
        (
            Caller {
                xfcc: Some(s.pki.expired_xfcc("users")),
                ..Default::default()
            },
            "expired",
        ),
        (
            Caller {
                xfcc: Some(format!("{},{}", s.pki.xfcc("users"), s.pki.xfcc("edge"))),
                ..Default::default()
            },
            "more than one element",
        ),
    ];
    for (caller, reason) in cases {
        let mut c = RolesInternalClient::new(caller.to(s.roles));
        assert_status(
            c.get_roles(get_roles()).await,
            Code::Unauthenticated,
            reason,
        );
    }
}

/// A trusted peer that the policy does not list is PERMISSION_DENIED, and
/// so is the edge on an internal API.
#[tokio::test]
async fn trusted_but_disallowed_peers_are_denied() {
    let s = Stack::with_test_tokens().await;
    for workload in ["sender", "edge", "roles"] {
        let mut c = RolesInternalClient::new(s.as_peer(workload).to(s.roles));
        assert_status(
            c.get_roles(get_roles()).await,
            Code::PermissionDenied,
            &format!(
                "spiffe://interlock.local/{} may not call",
                if workload == "edge" {
                    "edge".to_owned()
                } else {
                    format!("svc/{workload}")
                }
            ),
        );
    }
}

/// Health answers without a peer certificate (probes do not go through the
/// sidecar) and reports the service SERVING.
#[tokio::test]
async fn health_is_served_without_peer_checks() {
    use tonic_health_proto::*;
    let s = Stack::with_test_tokens().await;
    let mut c = HealthClient::new(Caller::default().to(s.roles));
    let resp = c
        .check(HealthCheckRequest {
            service: "interlock.roles.v1.RolesInternal".into(),
        })
        .await
        .expect("health answers");
    assert_eq!(resp.into_inner().status, 1, "SERVING");
}

mod tonic_health_proto {
    pub use tonic_health::pb::HealthCheckRequest;
    pub use tonic_health::pb::health_client::HealthClient;
}
