//! Refusals only the local mesh can stage: a token auth really signed
//! (from auth's key ring), a sidecar's RBAC against a probe holding a real
//! SVID, a service's own check of a forged XFCC header.

use interlock_e2e::signing::AuthSigner;
use interlock_e2e::{ProbeEnvoy, as_workload, edge, register_and_login, target, unique_login};
use interlock_proto::roles::v1::roles_admin_client::RolesAdminClient;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::{AssignDefaultRolesRequest, GetRolesRequest, ListRequest};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{Caller, Patience, assert_status, wait_until};
use tonic::Code;

/// A token auth really signed is refused once it has expired, and for
/// that reason: the same user's token from the same key and signing code,
/// issued now, is accepted, so only the expiry differs. (It expired five
/// minutes ago: past any clock-skew allowance.)
#[tokio::test]
async fn edge_refuses_a_genuinely_signed_token_once_it_has_expired() {
    let target = target();
    let mesh = target.local();
    let pair = register_and_login(&target, &unique_login("late")).await;
    let user = pair.user_id.parse().expect("user id");
    let signer = AuthSigner::open(mesh).await;
    let now = chrono::Utc::now();

    let fresh = signer.sign(user, now);
    let me = UsersServiceClient::new(edge(&target, Some(&fresh)).await)
        .get_me(GetMeRequest {})
        .await
        .expect("a current token signed with auth's key is accepted")
        .into_inner();
    assert_eq!(me.id, pair.user_id);

    let expired = signer.sign(
        user,
        now - signer.access_ttl() - chrono::Duration::minutes(5),
    );
    let mut users = UsersServiceClient::new(edge(&target, Some(&expired)).await);
    let refused = assert_status(
        users.get_me(GetMeRequest {}).await,
        Code::Unauthenticated,
        "",
    );
    assert!(
        refused.message().to_lowercase().contains("expired"),
        "refused, but not for expiry: {}",
        refused.message()
    );
}

/// users holds a valid SVID, but the policy does not let it call roles'
/// admin API, nor any internal method but GetRoles: the roles sidecar's
/// RBAC refuses. The same SVID may call GetRoles (control).
#[tokio::test]
async fn sidecar_refuses_a_valid_svid_the_policy_does_not_allow() {
    let target = target();
    let mesh = target.local();
    let probe = ProbeEnvoy::start(mesh, "users", &mesh.spiffe_id("users"), "roles");
    let channel = probe.channel();
    // Once the probe has its SVID from SPIRE, the allowed call reaches
    // roles, which answers NOT_FOUND for an unknown user.
    wait_until(
        "the probe's allowed call gets through",
        Patience::secs(30).every(std::time::Duration::from_millis(300)),
        || {
            let mut internal = RolesInternalClient::new(channel.clone());
            async move {
                let r = internal
                    .get_roles(GetRolesRequest {
                        user_id: uuid::Uuid::new_v4().to_string(),
                    })
                    .await;
                match r {
                    Err(s) if s.code() == Code::NotFound => Ok(()),
                    other => Err(other),
                }
            }
        },
    )
    .await;
    assert_status(
        RolesAdminClient::new(channel.clone())
            .list(ListRequest::default())
            .await,
        Code::PermissionDenied,
        "RBAC",
    );
    // Least privilege per method: users may read roles, not assign them.
    assert_status(
        RolesInternalClient::new(channel)
            .assign_default_roles(AssignDefaultRolesRequest {
                user_id: uuid::Uuid::new_v4().to_string(),
            })
            .await,
        Code::PermissionDenied,
        "RBAC",
    );
}

/// A service cannot be reached around its sidecar: another workload's user
/// cannot even open its socket, and a forged XFCC header sent straight to
/// it (by root, who can) is refused.
#[tokio::test]
async fn forged_xfcc_without_the_sidecar_is_refused() {
    let target = target();
    let mesh = target.local();
    let socket = mesh.service_socket("roles");
    let out = as_workload(
        "users",
        &mesh.bin("interlock-mesh"),
        &["health", socket.to_str().expect("utf8")],
    )
    .output()
    .expect("run");
    assert!(!out.status.success(), "users' user reached roles' socket");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A self-made certificate claiming to be users.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![]).expect("params");
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://interlock.local/svc/users"
            .try_into()
            .expect("uri"),
    )];
    let cert = params.self_signed(&key).expect("cert").pem();
    let forged = Caller {
        xfcc: Some(interlock_common::peer::xfcc::encode(
            &cert,
            None,
            "spiffe://interlock.local/svc/users",
        )),
        ..Caller::default()
    };
    assert_status(
        RolesInternalClient::new(forged.to_unix(&socket))
            .get_roles(GetRolesRequest {
                user_id: uuid::Uuid::new_v4().to_string(),
            })
            .await,
        Code::Unauthenticated,
        "untrusted",
    );
}
