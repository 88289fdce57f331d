//! What the mesh refuses, and where: the edge (JWT, internal routes), a
//! sidecar (RBAC by SPIFFE ID), a service (forged XFCC).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use interlock_e2e::{ProbeEnvoy, as_workload, edge, eventually, mesh, unique_login};
use interlock_proto::auth::v1::GetJwksRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::roles::v1::roles_admin_client::RolesAdminClient;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::{AssignDefaultRolesRequest, GetRolesRequest, ListRequest};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use tonic::Code;

use crate::assert_code;
use crate::journey::register_and_login;

/// A token with auth's real `kid` but signed by a key auth never had.
async fn forged_token(exp_offset: i64) -> String {
    let mesh = mesh();
    let jwks = AuthServiceClient::new(edge(&mesh, None).await)
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "interlock-auth", "aud": "interlock", "sub": uuid::Uuid::new_v4().to_string(),
        "iat": now - 60, "exp": now + exp_offset, "jti": "x", "sid": uuid::Uuid::new_v4().to_string()
    });
    let key = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(jwks.key_ids[0].clone());
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ec_der(key.to_pkcs8_der().expect("der").as_bytes()),
    )
    .expect("sign")
}

/// Missing, expired, forged and `alg: none` tokens stop at the edge with
/// UNAUTHENTICATED.
#[tokio::test]
async fn edge_refuses_missing_expired_and_forged_jwts() {
    let mesh = mesh();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD
            .encode(br#"{"sub":"x","iss":"interlock-auth","aud":"interlock","exp":9999999999}"#)
    );
    let cases = [
        ("missing", None),
        ("expired", Some(forged_token(-120).await)),
        ("forged", Some(forged_token(600).await)),
        ("alg none", Some(none)),
    ];
    for (what, token) in cases {
        let mut users = UsersServiceClient::new(edge(&mesh, token.as_deref()).await);
        let status = users.get_me(GetMeRequest {}).await.expect_err(what);
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{what}: {}",
            status.message()
        );
    }
}

/// An internal service is not reachable through the edge, token or not.
#[tokio::test]
async fn edge_does_not_route_internal_services() {
    let mesh = mesh();
    let pair = register_and_login(&unique_login("nosy")).await;
    let mut internal = RolesInternalClient::new(edge(&mesh, Some(&pair.access_token)).await);
    let status = assert_code(
        internal
            .get_roles(GetRolesRequest {
                user_id: pair.user_id.clone(),
            })
            .await,
        Code::Unimplemented,
    );
    assert!(
        status.message().contains("not routed by the edge"),
        "{}",
        status.message()
    );
}

/// users holds a valid SVID, but the policy does not let it call roles'
/// admin API, nor any internal method but GetRoles: the roles sidecar's
/// RBAC refuses. The same SVID may call GetRoles (control).
#[tokio::test]
async fn sidecar_refuses_a_valid_svid_the_policy_does_not_allow() {
    let mesh = mesh();
    let probe = ProbeEnvoy::start(&mesh, "users", &mesh.spiffe_id("users"), "roles");
    let channel = probe.channel();
    // Once the probe has its SVID from SPIRE, the allowed call reaches
    // roles, which answers NOT_FOUND for an unknown user.
    eventually("the probe's allowed call never got through", || {
        let mut internal = RolesInternalClient::new(channel.clone());
        async move {
            let r = internal
                .get_roles(GetRolesRequest {
                    user_id: uuid::Uuid::new_v4().to_string(),
                })
                .await;
            match r {
                Err(s) if s.code() == Code::NotFound => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    let status = assert_code(
        RolesAdminClient::new(channel.clone())
            .list(ListRequest::default())
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("RBAC"), "{}", status.message());
    // Least privilege per method: users may read roles, not assign them.
    let status = assert_code(
        RolesInternalClient::new(channel)
            .assign_default_roles(AssignDefaultRolesRequest {
                user_id: uuid::Uuid::new_v4().to_string(),
            })
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("RBAC"), "{}", status.message());
}

/// A service cannot be reached around its sidecar: another workload's user
/// cannot even open its socket, and a forged XFCC header sent straight to
/// it (by root, who can) is refused.
#[tokio::test]
async fn forged_xfcc_without_the_sidecar_is_refused() {
    let mesh = mesh();
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
    let xfcc =
        interlock_common::peer::xfcc::encode(&cert, None, "spiffe://interlock.local/svc/users");
    let forged = interlock_common::client::Outbound::with_header("x-forwarded-client-cert", &xfcc)
        .expect("header");
    let channel = interlock_common::client::channel(&format!("unix:{}", socket.display()), forged)
        .expect("channel");
    let status = assert_code(
        RolesInternalClient::new(channel)
            .get_roles(GetRolesRequest {
                user_id: uuid::Uuid::new_v4().to_string(),
            })
            .await,
        Code::Unauthenticated,
    );
    assert!(
        status.message().contains("untrusted"),
        "{}",
        status.message()
    );
}
