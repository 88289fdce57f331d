//! roles: default roles at registration, the admin API and its guard rails,
//! and the first-admin bootstrap.

use interlock_itest::Stack;
use interlock_proto::roles::v1::roles_admin_client::RolesAdminClient;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::roles::v1::*;
use sqlx::PgPool;
use tonic::Code;
use uuid::Uuid;

use crate::assert_status;

async fn register(s: &Stack, id: Uuid) {
    RolesInternalClient::new(s.as_peer("auth").to(s.roles))
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: id.to_string(),
        })
        .await
        .expect("default roles");
}

async fn pool(s: &Stack) -> PgPool {
    PgPool::connect(&s.roles_db.url).await.expect("roles db")
}

fn grant(id: Uuid, role: &str) -> GrantRequest {
    GrantRequest {
        user_id: id.to_string(),
        role: role.into(),
    }
}

/// Default roles are idempotent, GetRoles reads them, RemoveUser forgets.
/// Each method is called as the module the policy grants it to: auth
/// registers and removes, users reads; auth may not read.
#[tokio::test]
async fn default_roles_get_roles_and_remove_user() {
    let s = Stack::with_test_tokens().await;
    let id = Uuid::new_v4();
    let mut c = RolesInternalClient::new(s.as_peer("auth").to(s.roles));
    let mut reader = RolesInternalClient::new(s.as_peer("users").to(s.roles));
    let first = c
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: id.to_string(),
        })
        .await
        .expect("assign");
    let again = c
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: id.to_string(),
        })
        .await
        .expect("retry");
    assert_eq!(first.into_inner().roles, again.into_inner().roles);
    let roles = reader
        .get_roles(GetRolesRequest {
            user_id: id.to_string(),
        })
        .await
        .expect("get")
        .into_inner()
        .roles;
    assert_eq!(roles, vec!["user".to_owned()]);
    assert_status(
        c.get_roles(GetRolesRequest {
            user_id: id.to_string(),
        })
        .await,
        Code::PermissionDenied,
        "may not call",
    );
    assert_status(
        reader
            .get_roles(GetRolesRequest {
                user_id: "x".into(),
            })
            .await,
        Code::InvalidArgument,
        "user_id: must be a UUID",
    );
    assert!(
        c.remove_user(RemoveUserRequest {
            user_id: id.to_string()
        })
        .await
        .expect("rm")
        .into_inner()
        .removed
    );
    assert!(
        !c.remove_user(RemoveUserRequest {
            user_id: id.to_string()
        })
        .await
        .expect("rm2")
        .into_inner()
        .removed
    );
    assert_status(
        reader
            .get_roles(GetRolesRequest {
                user_id: id.to_string(),
            })
            .await,
        Code::NotFound,
        "not found",
    );
}

/// Only an admin may use the admin API; the bootstrap makes the first one,
/// once.
#[tokio::test]
async fn admin_api_requires_admin_and_bootstrap_makes_exactly_one() {
    let s = Stack::with_test_tokens().await;
    let (admin, user) = (Uuid::new_v4(), Uuid::new_v4());
    register(&s, admin).await;
    register(&s, user).await;

    let mut as_user = RolesAdminClient::new(s.as_user(user).to(s.roles));
    assert_status(
        as_user.grant(grant(user, "admin")).await,
        Code::PermissionDenied,
        "admin role is required",
    );
    assert_status(
        as_user.list(ListRequest::default()).await,
        Code::PermissionDenied,
        "admin role is required",
    );

    let db = pool(&s).await;
    let unknown = Uuid::new_v4();
    assert!(
        interlock_roles::store::bootstrap_admin(&db, unknown)
            .await
            .unwrap_err()
            .to_string()
            .contains("not registered")
    );
    interlock_roles::store::bootstrap_admin(&db, admin)
        .await
        .expect("first admin");
    let second = interlock_roles::store::bootstrap_admin(&db, user)
        .await
        .unwrap_err();
    assert!(
        second.to_string().contains("an admin already exists"),
        "{second}"
    );

    let mut as_admin = RolesAdminClient::new(s.as_user(admin).to(s.roles));
    assert!(
        as_admin
            .grant(grant(user, "editor"))
            .await
            .expect("grant")
            .into_inner()
            .changed
    );
    assert!(
        !as_admin
            .grant(grant(user, "editor"))
            .await
            .expect("again")
            .into_inner()
            .changed
    );
    let roles = RolesInternalClient::new(s.as_peer("users").to(s.roles))
        .get_roles(GetRolesRequest {
            user_id: user.to_string(),
        })
        .await
        .expect("roles")
        .into_inner()
        .roles;
    assert_eq!(roles, vec!["editor".to_owned(), "user".to_owned()]);
}

/// Grant and Revoke validate, know their users, and never drop the last
/// admin.
#[tokio::test]
async fn grant_and_revoke_validate_and_protect_the_last_admin() {
    let s = Stack::with_test_tokens().await;
    let (admin, user) = (Uuid::new_v4(), Uuid::new_v4());
    register(&s, admin).await;
    register(&s, user).await;
    interlock_roles::store::bootstrap_admin(&pool(&s).await, admin)
        .await
        .expect("bootstrap");
    let mut c = RolesAdminClient::new(s.as_user(admin).to(s.roles));

    assert_status(
        c.grant(grant(user, "Bad Role")).await,
        Code::InvalidArgument,
        "role: must be",
    );
    assert_status(
        c.grant(grant(user, "")).await,
        Code::InvalidArgument,
        "role: is required",
    );
    assert_status(
        c.grant(GrantRequest {
            user_id: "nope".into(),
            role: "x1".into(),
        })
        .await,
        Code::InvalidArgument,
        "user_id",
    );
    let ghost = Uuid::new_v4();
    assert_status(
        c.grant(grant(ghost, "editor")).await,
        Code::NotFound,
        &ghost.to_string(),
    );

    let revoke = |id: Uuid, role: &str| RevokeRequest {
        user_id: id.to_string(),
        role: role.into(),
    };
    assert_status(
        c.revoke(revoke(admin, "admin")).await,
        Code::FailedPrecondition,
        "last admin",
    );
    assert!(
        !c.revoke(revoke(user, "editor"))
            .await
            .expect("not held")
            .into_inner()
            .changed
    );
    c.grant(grant(user, "admin")).await.expect("second admin");
    assert!(
        c.revoke(revoke(admin, "admin"))
            .await
            .expect("now allowed")
            .into_inner()
            .changed
    );
    // The former admin has lost the admin API.
    assert_status(
        c.list(ListRequest::default()).await,
        Code::PermissionDenied,
        "admin role is required",
    );
}

/// List pages through assignments without repeats or gaps, filtered.
#[tokio::test]
async fn list_pages_through_assignments() {
    let s = Stack::with_test_tokens().await;
    let admin = Uuid::new_v4();
    register(&s, admin).await;
    interlock_roles::store::bootstrap_admin(&pool(&s).await, admin)
        .await
        .expect("bootstrap");
    let mut c = RolesAdminClient::new(s.as_user(admin).to(s.roles));
    let mut users = Vec::new();
    for _ in 0..4 {
        let u = Uuid::new_v4();
        register(&s, u).await;
        c.grant(grant(u, "editor")).await.expect("grant");
        users.push(u);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = c
            .list(ListRequest {
                role: "editor".into(),
                page_size: 3,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.assignments.iter().map(|a| a.user_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<String> = users.iter().map(ToString::to_string).collect();
    assert_eq!(seen, expected);

    let all_of_admin = c
        .list(ListRequest {
            user_id: admin.to_string(),
            ..Default::default()
        })
        .await
        .expect("by user")
        .into_inner();
    let roles: Vec<_> = all_of_admin
        .assignments
        .iter()
        .map(|a| a.role.as_str())
        .collect();
    assert_eq!(roles.len(), 2);
    assert!(roles.contains(&"admin") && roles.contains(&"user"));
    assert_status(
        c.list(ListRequest {
            page_token: "bogus".into(),
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "page_token",
    );
    assert_status(
        c.list(ListRequest {
            page_size: 501,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "page_size",
    );
}

/// RemoveUser keeps the last-admin rule of Revoke: the only admin cannot be
/// removed, and of two admins removed (or one removed, one revoked) at the
/// same time exactly one change goes through, so an admin always remains.
#[tokio::test]
async fn remove_user_never_removes_the_last_admin_even_when_racing() {
    let s = Stack::with_test_tokens().await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for id in [a, b, c] {
        register(&s, id).await;
    }
    let db = pool(&s).await;
    interlock_roles::store::bootstrap_admin(&db, a)
        .await
        .expect("bootstrap");
    let internal = RolesInternalClient::new(s.as_peer("auth").to(s.roles));
    let remove = |id: Uuid| {
        let mut c = internal.clone();
        async move {
            c.remove_user(RemoveUserRequest {
                user_id: id.to_string(),
            })
            .await
        }
    };
    let admins = || async {
        sqlx::query_scalar::<_, Uuid>("SELECT user_id FROM role_assignments WHERE role = 'admin'")
            .fetch_all(&db)
            .await
            .expect("admins")
    };

    assert_status(remove(a).await, Code::FailedPrecondition, "last admin");
    assert_eq!(admins().await, [a], "still the admin");

    let mut as_admin = RolesAdminClient::new(s.as_user(a).to(s.roles));
    as_admin
        .grant(grant(b, "admin"))
        .await
        .expect("second admin");
    let (ra, rb) = tokio::join!(remove(a), remove(b));
    let removed: Vec<Uuid> = [(a, ra), (b, rb)]
        .into_iter()
        .filter_map(|(id, r)| match r {
            Ok(r) => {
                assert!(r.into_inner().removed);
                Some(id)
            }
            Err(e) => {
                assert_eq!(e.code(), Code::FailedPrecondition, "{}", e.message());
                None
            }
        })
        .collect();
    assert_eq!(removed.len(), 1, "exactly one removal wins");
    let survivor = if removed == [a] { b } else { a };
    assert_eq!(admins().await, [survivor]);

    // A revoke and a removal race the same way.
    let mut as_survivor = RolesAdminClient::new(s.as_user(survivor).to(s.roles));
    as_survivor
        .grant(grant(c, "admin"))
        .await
        .expect("another admin");
    let revoke = RevokeRequest {
        user_id: survivor.to_string(),
        role: "admin".into(),
    };
    let (revoked, rc) = tokio::join!(as_survivor.revoke(revoke), remove(c));
    let changes = usize::from(revoked.is_ok()) + usize::from(rc.is_ok());
    assert_eq!(changes, 1, "exactly one of revoke and remove wins");
    assert_eq!(admins().await.len(), 1);
}

/// BatchGetRoles answers every known user's roles in one call, in the
/// order asked (a duplicate once), lists the unknown ones apart, validates
/// its ids, and serves users alone.
#[tokio::test]
async fn batch_get_roles_answers_known_users_in_order_and_lists_the_unknown() {
    let s = Stack::with_test_tokens().await;
    let (a, b, ghost) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    register(&s, a).await;
    register(&s, b).await;
    sqlx::query(
        "INSERT INTO role_assignments (user_id, role, granted_by) VALUES ($1, 'auditor', 'test')",
    )
    .bind(b)
    .execute(&pool(&s).await)
    .await
    .expect("grant auditor");
    let mut users = RolesInternalClient::new(s.as_peer("users").to(s.roles));
    let ids = [b, ghost, a, b].map(|u| u.to_string()).to_vec();
    let answer = users
        .batch_get_roles(BatchGetRolesRequest {
            user_ids: ids.clone(),
        })
        .await
        .expect("batch")
        .into_inner();
    let got: Vec<(String, Vec<String>)> = answer
        .users
        .into_iter()
        .map(|u| (u.user_id, u.roles))
        .collect();
    assert_eq!(
        got,
        [
            (b.to_string(), vec!["auditor".to_owned(), "user".to_owned()]),
            (a.to_string(), vec!["user".to_owned()]),
        ]
    );
    assert_eq!(answer.unknown, [ghost.to_string()]);
    assert_status(
        users
            .batch_get_roles(BatchGetRolesRequest {
                user_ids: vec!["not-a-uuid".into()],
            })
            .await,
        Code::InvalidArgument,
        "user_ids[0]",
    );
    assert_status(
        users
            .batch_get_roles(BatchGetRolesRequest { user_ids: vec![] })
            .await,
        Code::InvalidArgument,
        "user_ids: must not be empty",
    );
    assert_status(
        RolesInternalClient::new(s.as_peer("auth").to(s.roles))
            .batch_get_roles(BatchGetRolesRequest { user_ids: ids })
            .await,
        Code::PermissionDenied,
        "",
    );
}
