//! Push devices: RegisterDevice and UnregisterDevice, and what a token
//! registered by another user does to its previous owner's device.

use interlock_itest::Stack;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::*;
use tonic::Code;
use uuid::Uuid;

use super::create;
use crate::assert_status;

fn reg(token: &str, platform: Platform) -> RegisterDeviceRequest {
    RegisterDeviceRequest {
        fcm_token: token.into(),
        platform: platform as i32,
    }
}

async fn register(s: &Stack, user: Uuid, token: &str) -> String {
    NotificationsServiceClient::new(s.as_user(user).to(s.notifications))
        .register_device(reg(token, Platform::Android))
        .await
        .expect("register")
        .into_inner()
        .id
}

/// Devices: registered idempotently, validated, removable only by their
/// owner.
#[tokio::test]
async fn devices_register_idempotently_and_only_their_owner_removes_them() {
    let s = Stack::with_test_tokens().await;
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let mut a = NotificationsServiceClient::new(s.as_user(alice).to(s.notifications));
    let mut b = NotificationsServiceClient::new(s.as_user(bob).to(s.notifications));

    let d1 = a
        .register_device(reg("tok-1:abc", Platform::Android))
        .await
        .expect("reg")
        .into_inner();
    let d1_again = a
        .register_device(reg("tok-1:abc", Platform::Ios))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(d1.id, d1_again.id, "re-registering one's own token");
    assert_eq!(
        d1_again.platform,
        Platform::Ios as i32,
        "platform refreshed"
    );

    assert_status(
        a.register_device(reg("", Platform::Ios)).await,
        Code::InvalidArgument,
        "fcm_token: is required",
    );
    assert_status(
        a.register_device(reg("has space", Platform::Ios)).await,
        Code::InvalidArgument,
        "fcm_token",
    );
    assert_status(
        a.register_device(reg(&"t".repeat(4097), Platform::Ios))
            .await,
        Code::InvalidArgument,
        "fcm_token: must be at most 4096",
    );
    assert_status(
        a.register_device(reg("tok", Platform::Unspecified)).await,
        Code::InvalidArgument,
        "platform",
    );

    assert_status(
        b.unregister_device(UnregisterDeviceRequest {
            device_id: d1.id.clone(),
        })
        .await,
        Code::NotFound,
        "not found",
    );
    assert_status(
        b.unregister_device(UnregisterDeviceRequest {
            device_id: "x".into(),
        })
        .await,
        Code::InvalidArgument,
        "device_id",
    );
    a.unregister_device(UnregisterDeviceRequest {
        device_id: d1.id.clone(),
    })
    .await
    .expect("owner removes");
}

/// Regression (finding 14): registering a token another user holds re-binds
/// it under a NEW device id. The caller never receives the previous owner's
/// device id, that id stops existing (neither user can act on it), the
/// caller's own re-registration stays idempotent, and pushes for the
/// token now go to the caller's device only.
#[tokio::test]
async fn registering_another_users_token_gives_a_new_device_id_never_the_previous_owners() {
    let s = Stack::with_test_tokens().await;
    let (victim, taker) = (Uuid::new_v4(), Uuid::new_v4());
    let victims = register(&s, victim, "tok-shared:1").await;
    let takers = register(&s, taker, "tok-shared:1").await;
    assert_ne!(takers, victims, "the victim's device id was handed out");
    assert_eq!(
        register(&s, taker, "tok-shared:1").await,
        takers,
        "re-registering one's own token is idempotent"
    );

    let mut v = NotificationsServiceClient::new(s.as_user(victim).to(s.notifications));
    let mut t = NotificationsServiceClient::new(s.as_user(taker).to(s.notifications));
    for (who, c) in [("victim", &mut v), ("taker", &mut t)] {
        let gone = c
            .unregister_device(UnregisterDeviceRequest {
                device_id: victims.clone(),
            })
            .await;
        assert_eq!(
            gone.expect_err("the old binding is over").code(),
            Code::NotFound,
            "{who}"
        );
    }

    // The token's pushes: none for the victim, one to the taker's new id.
    let id = NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications))
        .create(create("hi", &[victim, taker]))
        .await
        .expect("create")
        .into_inner()
        .id;
    let pending = NotificationsInternalClient::new(s.as_peer("sender").to(s.notifications))
        .list_pending(ListPendingRequest {
            limit: 10,
            worker_id: "w1".into(),
            lease_seconds: 30,
        })
        .await
        .expect("claim")
        .into_inner()
        .notifications;
    let n = pending.iter().find(|n| n.id == id).expect("claimed");
    let to: Vec<(&str, &str)> = n
        .deliveries
        .iter()
        .map(|d| (d.device_id.as_str(), d.user_id.as_str()))
        .collect();
    assert_eq!(to, [(takers.as_str(), taker.to_string().as_str())]);

    t.unregister_device(UnregisterDeviceRequest { device_id: takers })
        .await
        .expect("the taker removes its own device");
}

/// Regression (finding 14): two users registering one token at the same
/// time both succeed (no unique violation), leave exactly one device for the
/// token, owned by whoever registered last, and never share a device id; one
/// user registering twice at once gets one id.
#[tokio::test]
async fn concurrent_registrations_of_one_token_leave_one_device_and_never_share_an_id() {
    let s = Stack::with_test_tokens().await;
    let pool = sqlx::PgPool::connect(&s.notifications_db.url)
        .await
        .expect("db");
    for round in 0..8 {
        let token = format!("tok-race:{round}");
        let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
        let (d1, d2) = tokio::join!(register(&s, u1, &token), register(&s, u2, &token));
        assert_ne!(d1, d2, "round {round}: two users got one device id");
        let rows: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT id, user_id FROM devices WHERE fcm_token = $1")
                .bind(&token)
                .fetch_all(&pool)
                .await
                .expect("rows");
        assert_eq!(rows.len(), 1, "round {round}: one device per token");
        let (id, owner) = rows[0];
        let expected = if owner == u1 { &d1 } else { &d2 };
        assert!(owner == u1 || owner == u2, "round {round}");
        assert_eq!(&id.to_string(), expected, "round {round}: owner's own id");

        let same = Uuid::new_v4();
        let token = format!("tok-twice:{round}");
        let (a, b) = tokio::join!(register(&s, same, &token), register(&s, same, &token));
        assert_eq!(a, b, "round {round}: one user, one token, one id");
    }
}
