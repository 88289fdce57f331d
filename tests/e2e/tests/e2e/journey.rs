//! The user journey through the edge: register, login, GetMe with roles,
//! an admin grants a role, a notification is created by a module and the
//! user lists and receives it; refresh rotation and reuse detection.

use interlock_e2e::{admin_token, edge, register_and_login, target, unique_login};
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::auth::v1::*;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::{CreateRequest, ListMineRequest, MarkReceivedRequest};
use interlock_proto::roles::v1::GrantRequest;
use interlock_proto::roles::v1::roles_admin_client::RolesAdminClient;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::assert_status;
use tonic::Code;

/// register -> login -> GetMe with roles -> admin grants a role -> GetMe
/// shows it -> a notification is created -> ListMine shows it ->
/// MarkReceived.
#[tokio::test]
async fn full_journey_through_the_edge() {
    let target = target();
    let login = unique_login("journey");
    let pair = register_and_login(&target, &login).await;
    let mut users = UsersServiceClient::new(edge(&target, Some(&pair.access_token)).await);
    let me = users
        .get_me(GetMeRequest {})
        .await
        .expect("GetMe")
        .into_inner();
    assert_eq!(
        (me.login.as_str(), me.roles.clone()),
        (login.as_str(), vec!["user".to_owned()])
    );

    let admin = admin_token(&target).await;
    RolesAdminClient::new(edge(&target, Some(&admin)).await)
        .grant(GrantRequest {
            user_id: me.id.clone(),
            role: "editor".into(),
        })
        .await
        .expect("admin grants a role");
    let me = users
        .get_me(GetMeRequest {})
        .await
        .expect("GetMe again")
        .into_inner();
    assert_eq!(me.roles, vec!["editor".to_owned(), "user".to_owned()]);

    // A module creates the notification: the call leaves through auth's
    // egress sidecar, which presents auth's SVID to notifications' sidecar.
    let id = NotificationsInternalClient::new(target.egress("auth"))
        .create(CreateRequest {
            text: "Welcome aboard".into(),
            recipient_ids: vec![me.id.clone()],
            request_id: String::new(),
        })
        .await
        .expect("Create through the mesh")
        .into_inner()
        .id;

    let mut notes = NotificationsServiceClient::new(edge(&target, Some(&pair.access_token)).await);
    let mine = notes
        .list_mine(ListMineRequest::default())
        .await
        .expect("ListMine")
        .into_inner();
    assert_eq!(mine.notifications.len(), 1);
    assert_eq!(
        (
            mine.notifications[0].id.as_str(),
            mine.notifications[0].text.as_str()
        ),
        (id.as_str(), "Welcome aboard")
    );
    let received = notes
        .mark_received(MarkReceivedRequest { id: id.clone() })
        .await
        .expect("MarkReceived")
        .into_inner();
    assert!(received.received_at.is_some());
}

/// Refresh rotates the token; replaying an old one revokes the session.
#[tokio::test]
async fn refresh_rotation_and_reuse_revocation_through_the_edge() {
    let target = target();
    let first = register_and_login(&target, &unique_login("rotor")).await;
    let mut auth = AuthServiceClient::new(edge(&target, None).await);
    let second = auth
        .refresh(RefreshRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .expect("refresh")
        .into_inner();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: first.refresh_token,
        })
        .await,
        Code::Unauthenticated,
        "revoked",
    );
    assert_status(
        auth.refresh(RefreshRequest {
            refresh_token: second.refresh_token,
        })
        .await,
        Code::Unauthenticated,
        "",
    );
}
