//! What the edge refuses: missing, forged and unsigned JWTs, and any
//! internal service.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use interlock_e2e::{edge, register_and_login, target, unique_login};
use interlock_proto::auth::v1::GetJwksRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::roles::v1::GetRolesRequest;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::assert_status;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use tonic::Code;

/// A token with auth's real `kid` but signed by a key auth never had.
async fn forged_token() -> String {
    let target = target();
    let jwks = AuthServiceClient::new(edge(&target, None).await)
        .get_jwks(GetJwksRequest {})
        .await
        .expect("jwks")
        .into_inner();
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "iss": "interlock-auth", "aud": "interlock", "sub": uuid::Uuid::new_v4().to_string(),
        "iat": now - 60, "exp": now + 600, "jti": "x", "sid": uuid::Uuid::new_v4().to_string()
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

/// Missing, forged and `alg: none` tokens stop at the edge with
/// UNAUTHENTICATED.
#[tokio::test]
async fn edge_refuses_missing_forged_and_unsigned_jwts() {
    let target = target();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD
            .encode(br#"{"sub":"x","iss":"interlock-auth","aud":"interlock","exp":9999999999}"#)
    );
    let cases = [
        ("missing", None),
        ("forged", Some(forged_token().await)),
        ("alg none", Some(none)),
    ];
    for (what, token) in cases {
        let mut users = UsersServiceClient::new(edge(&target, token.as_deref()).await);
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
    let target = target();
    let pair = register_and_login(&target, &unique_login("nosy")).await;
    let mut internal = RolesInternalClient::new(edge(&target, Some(&pair.access_token)).await);
    assert_status(
        internal
            .get_roles(GetRolesRequest {
                user_id: pair.user_id.clone(),
            })
            .await,
        Code::Unimplemented,
        "not routed by the edge",
    );
}
