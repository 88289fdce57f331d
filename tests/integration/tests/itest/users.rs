//! users: profiles, GetMe/UpdateMe for the caller, the internal lookups and
//! the idempotent CreateUser used by registration.

use interlock_itest::Stack;
use interlock_proto::roles::v1::AssignDefaultRolesRequest;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_proto::users::v1::*;
use tonic::Code;
use uuid::Uuid;

use crate::assert_status;

fn create(id: Uuid, login: &str) -> CreateUserRequest {
    CreateUserRequest {
        id: id.to_string(),
        login: login.into(),
        email: format!("{login}@example.com"),
        first_name: "Ada".into(),
        last_name: "Lovelace".into(),
    }
}

/// A profile created by auth is what GetMe returns, with roles from roles.
#[tokio::test]
async fn get_me_returns_the_profile_with_current_roles() {
    let s = Stack::with_test_tokens().await;
    let id = Uuid::new_v4();
    let mut internal = UsersInternalClient::new(s.as_peer("auth").to(s.users));
    internal
        .create_user(create(id, "ada"))
        .await
        .expect("create");
    RolesInternalClient::new(s.as_peer("auth").to(s.roles))
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: id.to_string(),
        })
        .await
        .expect("default roles");

    let me = UsersServiceClient::new(s.as_user(id).to(s.users))
        .get_me(GetMeRequest {})
        .await
        .expect("get me")
        .into_inner();
    assert_eq!(
        (me.id.as_str(), me.login.as_str(), me.email.as_str()),
        (id.to_string().as_str(), "ada", "ada@example.com")
    );
    assert_eq!(
        (me.first_name.as_str(), me.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(me.roles, vec!["user".to_owned()]);
    assert!(me.created_at.is_some() && me.updated_at.is_some());
}

/// UpdateMe changes only the fields that are set and validates each.
#[tokio::test]
async fn update_me_changes_only_set_fields() {
    let s = Stack::with_test_tokens().await;
    let id = Uuid::new_v4();
    UsersInternalClient::new(s.as_peer("auth").to(s.users))
        .create_user(create(id, "bob"))
        .await
        .expect("create");
    let mut me = UsersServiceClient::new(s.as_user(id).to(s.users));
    let updated = me
        .update_me(UpdateMeRequest {
            display_name: Some("Bobby".into()),
            time_zone: Some("Europe/Paris".into()),
            ..Default::default()
        })
        .await
        .expect("update")
        .into_inner();
    assert_eq!(
        (updated.display_name.as_str(), updated.time_zone.as_str()),
        ("Bobby", "Europe/Paris")
    );
    assert_eq!(updated.first_name, "Ada", "unset fields keep their value");

    assert_status(
        me.update_me(UpdateMeRequest {
            first_name: Some("  ".into()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "first_name: is required",
    );
    assert_status(
        me.update_me(UpdateMeRequest {
            locale: Some("not a locale".into()),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "locale:",
    );
    assert_status(
        me.update_me(UpdateMeRequest::default()).await,
        Code::InvalidArgument,
        "set at least one field",
    );
    // Nothing half-written: the failed updates left the profile as it was.
    let after = me.get_me(GetMeRequest {}).await.expect("get").into_inner();
    assert_eq!(
        (after.first_name.as_str(), after.locale.as_str()),
        ("Ada", "")
    );
}

/// GetUser and BatchGetUsers: found, missing, and bad ids.
#[tokio::test]
async fn internal_lookups_report_missing_and_bad_ids() {
    let s = Stack::with_test_tokens().await;
    let (a, b, ghost) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut internal = UsersInternalClient::new(s.as_peer("auth").to(s.users));
    internal.create_user(create(a, "anne")).await.expect("a");
    internal.create_user(create(b, "bert")).await.expect("b");

    let mut reader = UsersInternalClient::new(s.as_peer("notifications").to(s.users));
    let got = reader
        .get_user(GetUserRequest { id: a.to_string() })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(got.login, "anne");
    assert_status(
        reader
            .get_user(GetUserRequest {
                id: ghost.to_string(),
            })
            .await,
        Code::NotFound,
        &ghost.to_string(),
    );
    assert_status(
        reader.get_user(GetUserRequest { id: "42".into() }).await,
        Code::InvalidArgument,
        "id: must be a UUID",
    );

    let batch = reader
        .batch_get_users(BatchGetUsersRequest {
            ids: vec![b.to_string(), ghost.to_string(), a.to_string()],
        })
        .await
        .expect("batch")
        .into_inner();
    let logins: Vec<_> = batch.users.iter().map(|u| u.login.as_str()).collect();
    assert_eq!(logins, ["bert", "anne"], "request order kept");
    assert_eq!(batch.missing, vec![ghost.to_string()]);
    assert_status(
        reader
            .batch_get_users(BatchGetUsersRequest { ids: vec![] })
            .await,
        Code::InvalidArgument,
        "ids: must not be empty",
    );
    let too_many = (0..101).map(|_| Uuid::new_v4().to_string()).collect();
    assert_status(
        reader
            .batch_get_users(BatchGetUsersRequest { ids: too_many })
            .await,
        Code::InvalidArgument,
        "at most 100",
    );
}

/// CreateUser is idempotent for the same data and refuses other data for
/// the same id; DeleteUser is idempotent.
#[tokio::test]
async fn create_user_is_idempotent_and_delete_user_too() {
    let s = Stack::with_test_tokens().await;
    let id = Uuid::new_v4();
    let mut internal = UsersInternalClient::new(s.as_peer("auth").to(s.users));
    let first = internal
        .create_user(create(id, "cleo"))
        .await
        .expect("first")
        .into_inner();
    let again = internal
        .create_user(create(id, "cleo"))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(
        first.created_at, again.created_at,
        "the retry returned the same profile"
    );
    assert_status(
        internal.create_user(create(id, "other")).await,
        Code::AlreadyExists,
        "exists with other data",
    );
    assert_status(
        internal
            .create_user(CreateUserRequest {
                email: "".into(),
                ..create(Uuid::new_v4(), "dan")
            })
            .await,
        Code::InvalidArgument,
        "email",
    );
    assert!(
        internal
            .delete_user(DeleteUserRequest { id: id.to_string() })
            .await
            .expect("delete")
            .into_inner()
            .deleted
    );
    assert!(
        !internal
            .delete_user(DeleteUserRequest { id: id.to_string() })
            .await
            .expect("again")
            .into_inner()
            .deleted
    );
}

/// Only auth and notifications may call users internal (the policy).
#[tokio::test]
async fn only_auth_and_notifications_reach_users_internal() {
    let s = Stack::with_test_tokens().await;
    for who in ["roles", "sender", "edge"] {
        let mut c = UsersInternalClient::new(s.as_peer(who).to(s.users));
        assert_status(
            c.create_user(create(Uuid::new_v4(), "eve")).await,
            Code::PermissionDenied,
            "may not call",
        );
    }
}
