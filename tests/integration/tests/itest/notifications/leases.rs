//! The sender's calls after a claim: ReportDeliveries, MarkProcessed and
//! ReleaseClaims act only on notifications the caller holds a live lease
//! on, and outcomes only on the devices of that notification's recipients.
//! A refused call writes nothing. What a report completes is in
//! [`super::completion`].

use interlock_itest::Stack;
use interlock_itest::services::Client;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::*;
use tonic::Code;
use uuid::Uuid;

use super::create;
use crate::assert_status;

pub(super) type Internal = NotificationsInternalClient<Client>;

pub(super) fn sender(s: &Stack) -> Internal {
    NotificationsInternalClient::new(s.as_peer("sender").to(s.notifications))
}

pub(super) async fn notify(s: &Stack, to: &[Uuid]) -> String {
    NotificationsInternalClient::new(s.as_peer("auth").to(s.notifications))
        .create(create("hello", to))
        .await
        .expect("create")
        .into_inner()
        .id
}

/// Claims everything pending for `worker`; returns the claimed ids.
pub(super) async fn claim(c: &mut Internal, worker: &str) -> Vec<String> {
    c.list_pending(ListPendingRequest {
        limit: 100,
        worker_id: worker.into(),
        lease_seconds: 60,
    })
    .await
    .expect("claim")
    .into_inner()
    .notifications
    .into_iter()
    .map(|n| n.id)
    .collect()
}

pub(super) fn outcome(n: &str, d: &str, status: DeliveryStatus) -> DeliveryResult {
    DeliveryResult {
        notification_id: n.into(),
        device_id: d.into(),
        status: status as i32,
        error_code: String::new(),
        attempts: 1,
    }
}

pub(super) fn report(worker: &str, results: Vec<DeliveryResult>) -> ReportDeliveriesRequest {
    ReportDeliveriesRequest {
        worker_id: worker.into(),
        results,
        done_ids: Vec::new(),
    }
}

pub(super) async fn deliveries(c: &mut Internal, id: &str) -> Vec<DeliveryRecord> {
    c.get_delivery_report(GetDeliveryReportRequest { id: id.into() })
        .await
        .expect("report")
        .into_inner()
        .deliveries
}

/// Ends `id`'s lease now, as if its holder had stalled past it.
pub(super) async fn expire_lease(s: &Stack, id: &str) {
    let pool = sqlx::PgPool::connect(&s.notifications_db.url)
        .await
        .expect("db");
    sqlx::query("UPDATE notifications SET lease_until = now() - interval '1 second' WHERE id = $1")
        .bind(Uuid::parse_str(id).expect("uuid"))
        .execute(&pool)
        .await
        .expect("expire");
}

/// Regression (finding 15): ReportDeliveries is refused, writing nothing,
/// to a worker that does not hold the lease: another replica's claim, an
/// unclaimed notification (even in a batch with a held one), a released
/// claim, an expired one. The holder's report is stored.
#[tokio::test]
async fn report_deliveries_is_refused_unless_the_worker_holds_a_live_lease() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let alice = Uuid::new_v4();
    let dev = s.register_device(alice, "tok-alice").await;
    // A second device keeps the notification open after `dev`'s outcome.
    s.register_device(alice, "tok-alice-2").await;
    let n = notify(&s, &[alice]).await;
    assert_eq!(claim(&mut c, "w1").await, std::slice::from_ref(&n));
    let unclaimed = notify(&s, &[alice]).await;

    let delivered = || outcome(&n, &dev, DeliveryStatus::Delivered);
    assert_status(
        c.report_deliveries(report("w2", vec![delivered()])).await,
        Code::FailedPrecondition,
        &format!("worker \"w2\" holds no live lease on notifications: {n}"),
    );
    assert_status(
        c.report_deliveries(report(
            "w1",
            vec![
                delivered(),
                outcome(&unclaimed, &dev, DeliveryStatus::Delivered),
            ],
        ))
        .await,
        Code::FailedPrecondition,
        &unclaimed,
    );
    assert!(deliveries(&mut c, &n).await.is_empty(), "nothing written");
    assert_status(
        c.report_deliveries(report("", vec![delivered()])).await,
        Code::InvalidArgument,
        "worker_id",
    );
    let ghost = Uuid::new_v4().to_string();
    assert_status(
        c.report_deliveries(report(
            "w1",
            vec![outcome(&ghost, &dev, DeliveryStatus::Delivered)],
        ))
        .await,
        Code::NotFound,
        &ghost,
    );

    c.report_deliveries(report("w1", vec![delivered()]))
        .await
        .expect("the holder reports");
    let stored = deliveries(&mut c, &n).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, DeliveryStatus::Delivered as i32);

    c.release_claims(ReleaseClaimsRequest {
        worker_id: "w1".into(),
        ids: vec![n.clone()],
    })
    .await
    .expect("release");
    assert_status(
        c.report_deliveries(report("w1", vec![delivered()])).await,
        Code::FailedPrecondition,
        "holds no live lease",
    );
    assert_eq!(claim(&mut c, "w3").await, [n.clone(), unclaimed]);
    expire_lease(&s, &n).await;
    assert_status(
        c.report_deliveries(report("w3", vec![delivered()])).await,
        Code::FailedPrecondition,
        "holds no live lease",
    );
    assert_eq!(deliveries(&mut c, &n).await[0].attempts, 1, "unchanged");
}

/// Regression (finding 15): an outcome may only name devices of that
/// notification's recipients. UNREGISTERED for another user's device is
/// refused as a whole (the in-scope outcome beside it is not stored either)
/// and that device survives; the recipient's own device is removed.
#[tokio::test]
async fn an_unregistered_report_removes_only_devices_of_the_notifications_recipients() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let alices = s.register_device(alice, "tok-alice").await;
    let bobs = s.register_device(bob, "tok-bob").await;
    let n = notify(&s, &[alice]).await;
    claim(&mut c, "w1").await;

    assert_status(
        c.report_deliveries(report(
            "w1",
            vec![
                outcome(&n, &alices, DeliveryStatus::Delivered),
                outcome(&n, &bobs, DeliveryStatus::Unregistered),
            ],
        ))
        .await,
        Code::FailedPrecondition,
        &format!(
            "not registered to a recipient of the notification: device {bobs} (notification {n})"
        ),
    );
    assert!(deliveries(&mut c, &n).await.is_empty(), "nothing written");
    assert_eq!(
        s.register_device(bob, "tok-bob").await,
        bobs,
        "bob's device survived"
    );

    let done = c
        .report_deliveries(report(
            "w1",
            vec![outcome(&n, &alices, DeliveryStatus::Unregistered)],
        ))
        .await
        .expect("in scope")
        .into_inner();
    assert_eq!(done.devices_removed, 1);
    assert_eq!(
        done.completed_ids,
        [n],
        "with its only device gone, nothing is left to push"
    );
    assert_ne!(
        s.register_device(alice, "tok-alice").await,
        alices,
        "alice's device was removed"
    );
}

/// Outcomes for devices that no longer exist (removed by their owner since
/// the claim, or never existed) touch nothing and do not block the rest of
/// the report: a stale device must not stall its notification.
#[tokio::test]
async fn outcomes_for_devices_removed_since_the_claim_are_skipped_not_refused() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let alice = Uuid::new_v4();
    let kept = s.register_device(alice, "tok-kept").await;
    let removed = s.register_device(alice, "tok-removed").await;
    let n = notify(&s, &[alice]).await;
    claim(&mut c, "w1").await;
    NotificationsServiceClient::new(s.as_user(alice).to(s.notifications))
        .unregister_device(UnregisterDeviceRequest {
            device_id: removed.clone(),
        })
        .await
        .expect("unregister");

    let done = c
        .report_deliveries(report(
            "w1",
            vec![
                outcome(&n, &kept, DeliveryStatus::Delivered),
                outcome(&n, &removed, DeliveryStatus::Unregistered),
                outcome(&n, &Uuid::new_v4().to_string(), DeliveryStatus::Delivered),
            ],
        ))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(done.devices_removed, 0);
    let stored: Vec<String> = deliveries(&mut c, &n)
        .await
        .into_iter()
        .map(|d| d.device_id)
        .collect();
    assert_eq!(stored, [kept]);
}

/// Regression (finding 15): MarkProcessed is refused, changing nothing,
/// for a notification the calling worker holds no live lease on (never
/// claimed, the lease expired, or another replica holds it); under its own
/// live lease it is processed, and processed ids are left as they are.
#[tokio::test]
async fn mark_processed_is_refused_unless_the_worker_holds_a_live_lease() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let n = notify(&s, &[Uuid::new_v4()]).await;
    let mark = |worker: &str, ids: &[&String]| MarkProcessedRequest {
        ids: ids.iter().map(|id| id.to_string()).collect(),
        worker_id: worker.into(),
    };
    assert_status(
        c.mark_processed(mark("w1", &[&n])).await,
        Code::FailedPrecondition,
        &format!("worker \"w1\" holds no live lease on notifications: {n}"),
    );
    assert_eq!(
        claim(&mut c, "w1").await,
        std::slice::from_ref(&n),
        "still pending"
    );
    expire_lease(&s, &n).await;
    assert_status(
        c.mark_processed(mark("w1", &[&n])).await,
        Code::FailedPrecondition,
        "no live lease",
    );

    assert_eq!(claim(&mut c, "w2").await, std::slice::from_ref(&n));
    // Another replica cannot mark what w2 holds.
    assert_status(
        c.mark_processed(mark("w1", &[&n])).await,
        Code::FailedPrecondition,
        "worker \"w1\" holds no live lease",
    );
    let other = notify(&s, &[Uuid::new_v4()]).await;
    assert_status(
        c.mark_processed(mark("w2", &[&n, &other])).await,
        Code::FailedPrecondition,
        &other,
    );
    let done = c.mark_processed(mark("w2", &[&n])).await.expect("held");
    assert_eq!(done.into_inner().processed, 1);
    let again = c
        .mark_processed(mark("w2", &[&n]))
        .await
        .expect("processed");
    assert_eq!(again.into_inner().processed, 0, "left as it is");
    assert_status(
        c.mark_processed(mark("w2", &[])).await,
        Code::InvalidArgument,
        "ids: must not be empty",
    );
}

/// Regression (finding 15): ReleaseClaims frees only leases the worker
/// holds, all or none: another replica's lease, or an unknown id, refuses
/// the whole call and every lease stays where it was.
#[tokio::test]
async fn release_claims_is_refused_for_leases_the_worker_does_not_hold() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let u = Uuid::new_v4();
    let (a, b) = (notify(&s, &[u]).await, notify(&s, &[u]).await);
    assert_eq!(claim(&mut c, "w1").await, [a.clone(), b.clone()]);

    let release = |worker: &str, ids: &[&String]| ReleaseClaimsRequest {
        worker_id: worker.into(),
        ids: ids.iter().map(|id| id.to_string()).collect(),
    };
    assert_status(
        c.release_claims(release("w2", &[&a])).await,
        Code::FailedPrecondition,
        &format!("worker \"w2\" holds no live lease on notifications: {a}"),
    );
    let ghost = Uuid::new_v4().to_string();
    assert_status(
        c.release_claims(release("w1", &[&a, &ghost])).await,
        Code::NotFound,
        &ghost,
    );
    assert_status(
        c.release_claims(release("", &[&a])).await,
        Code::InvalidArgument,
        "worker_id",
    );
    assert!(claim(&mut c, "w2").await.is_empty(), "both still w1's");

    let freed = c
        .release_claims(release("w1", &[&a, &b]))
        .await
        .expect("holder releases");
    assert_eq!(freed.into_inner().released, 2);
    assert_status(
        c.release_claims(release("w1", &[&a])).await,
        Code::FailedPrecondition,
        "holds no live lease",
    );
    assert_eq!(claim(&mut c, "w2").await, [a, b]);
}
