//! ReportDeliveries decides what a report leads to: a notification is
//! completed (processed with its outcome, lease ended) once every device of
//! its recipients has a final outcome, and a notification named done with
//! devices still to push is released. The sender decides none of it.

use interlock_itest::{Stack, pg};
use interlock_notifications::delivery::Status;
use interlock_proto::notifications::v1::*;
use tonic::Code;
use uuid::Uuid;

use super::leases::{Internal, claim, deliveries, expire_lease, notify, outcome, report, sender};
use crate::assert_status;

fn done(worker: &str, results: Vec<DeliveryResult>, ids: &[&String]) -> ReportDeliveriesRequest {
    ReportDeliveriesRequest {
        done_ids: ids.iter().map(|id| id.to_string()).collect(),
        ..report(worker, results)
    }
}

async fn delivery_report(c: &mut Internal, id: &str) -> DeliveryReport {
    c.get_delivery_report(GetDeliveryReportRequest { id: id.into() })
        .await
        .expect("report")
        .into_inner()
}

/// The devices a claim by `worker` offers for `id`.
async fn offered(c: &mut Internal, worker: &str, id: &str) -> Vec<String> {
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
    .find(|n| n.id == id)
    .expect("claimed")
    .deliveries
    .into_iter()
    .map(|d| d.device_id)
    .collect()
}

/// A transient failure keeps the notification open: named done, it is
/// released, and the next claim offers only that device. When its outcome
/// turns final the same call completes the notification, with the outcome
/// over every device, and the lease is over.
#[tokio::test]
async fn a_report_completes_a_notification_once_every_device_is_final_and_releases_it_otherwise() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let a1 = s.register_device(alice, "tok-a1").await;
    let a2 = s.register_device(alice, "tok-a2").await;
    let b1 = s.register_device(bob, "tok-b1").await;
    let n = notify(&s, &[alice, bob]).await;
    let mut all = offered(&mut c, "w1", &n).await;
    all.sort();
    let mut expected = vec![a1.clone(), a2.clone(), b1.clone()];
    expected.sort();
    assert_eq!(all, expected);

    let first = c
        .report_deliveries(done(
            "w1",
            vec![
                outcome(&n, &a1, DeliveryStatus::Delivered),
                outcome(&n, &a2, DeliveryStatus::FailedTransient),
                outcome(&n, &b1, DeliveryStatus::Unregistered),
            ],
            &[&n],
        ))
        .await
        .expect("report")
        .into_inner();
    assert!(first.completed_ids.is_empty(), "a2 is still to push");
    assert_eq!(first.released_ids, [n.as_str()]);
    assert_eq!(first.devices_removed, 1);
    assert!(delivery_report(&mut c, &n).await.processed_at.is_none());
    assert_status(
        c.report_deliveries(report(
            "w1",
            vec![outcome(&n, &a2, DeliveryStatus::Delivered)],
        ))
        .await,
        Code::FailedPrecondition,
        "holds no live lease",
    );

    assert_eq!(offered(&mut c, "w2", &n).await, [a2.as_str()]);
    let second = c
        .report_deliveries(done(
            "w2",
            vec![outcome(&n, &a2, DeliveryStatus::Delivered)],
            &[&n],
        ))
        .await
        .expect("report")
        .into_inner();
    assert_eq!(second.completed_ids, [n.as_str()]);
    assert!(second.released_ids.is_empty());

    let r = delivery_report(&mut c, &n).await;
    assert!(r.processed_at.is_some());
    assert_eq!(r.outcome, "delivered to 2 of 3 devices");
    assert_eq!(deliveries(&mut c, &n).await.len(), 3);
    assert!(
        claim(&mut c, "w3").await.is_empty(),
        "processed, not offered"
    );
    assert_status(
        c.report_deliveries(done("w2", vec![], &[&n])).await,
        Code::FailedPrecondition,
        "holds no live lease",
    );
}

/// A report whose outcomes leave nothing to push completes the
/// notification even without naming it done (as from a sender that
/// predates `done_ids`); one that leaves a device keeps the lease.
#[tokio::test]
async fn final_outcomes_complete_a_notification_without_done_ids() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let user = Uuid::new_v4();
    let d1 = s.register_device(user, "tok-1").await;
    let d2 = s.register_device(user, "tok-2").await;
    let n = notify(&s, &[user]).await;
    claim(&mut c, "w1").await;

    let partial = c
        .report_deliveries(report(
            "w1",
            vec![outcome(&n, &d1, DeliveryStatus::FailedPermanent)],
        ))
        .await
        .expect("partial")
        .into_inner();
    assert!(partial.completed_ids.is_empty() && partial.released_ids.is_empty());
    let rest = c
        .report_deliveries(report(
            "w1",
            vec![outcome(&n, &d2, DeliveryStatus::Delivered)],
        ))
        .await
        .expect("rest, under the same lease")
        .into_inner();
    assert_eq!(rest.completed_ids, [n.as_str()]);
    assert_eq!(
        delivery_report(&mut c, &n).await.outcome,
        "delivered to 1 of 2 devices"
    );
}

/// A notification with no devices is completed by naming it done with no
/// results; a device registered after the claim is still to push, so it
/// keeps its notification open until the next claim serves it.
#[tokio::test]
async fn naming_a_notification_done_completes_it_when_nothing_is_left_to_push() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let (nobody, late) = (Uuid::new_v4(), Uuid::new_v4());
    let empty = notify(&s, &[nobody]).await;
    let waiting = notify(&s, &[late]).await;
    assert_eq!(claim(&mut c, "w1").await, [empty.clone(), waiting.clone()]);
    let device = s.register_device(late, "tok-late").await;

    let answer = c
        .report_deliveries(done("w1", vec![], &[&empty, &waiting]))
        .await
        .expect("done")
        .into_inner();
    assert_eq!(answer.completed_ids, [empty.as_str()]);
    assert_eq!(answer.released_ids, [waiting.as_str()]);
    assert_eq!(
        delivery_report(&mut c, &empty).await.outcome,
        "no registered devices"
    );
    assert_eq!(offered(&mut c, "w2", &waiting).await, [device]);
}

/// A report is parsed before anything is touched, and a done id the worker
/// does not hold refuses the whole call: nothing recorded, nothing
/// completed or released.
#[tokio::test]
async fn done_ids_are_validated_and_held_like_results() {
    let s = Stack::with_test_tokens().await;
    let mut c = sender(&s);
    let user = Uuid::new_v4();
    let dev = s.register_device(user, "tok-1").await;
    let held = notify(&s, &[user]).await;
    claim(&mut c, "w1").await;
    let other = notify(&s, &[user]).await;

    assert_status(
        c.report_deliveries(done("w1", vec![], &[])).await,
        Code::InvalidArgument,
        "results: must not be empty when done_ids is",
    );
    let bad = "nope".to_owned();
    assert_status(
        c.report_deliveries(done("w1", vec![], &[&held, &bad]))
            .await,
        Code::InvalidArgument,
        "done_ids[1]: must be a UUID",
    );
    let ghost = Uuid::new_v4().to_string();
    assert_status(
        c.report_deliveries(done("w1", vec![], &[&ghost])).await,
        Code::NotFound,
        &ghost,
    );
    assert_status(
        c.report_deliveries(done(
            "w1",
            vec![outcome(&held, &dev, DeliveryStatus::Delivered)],
            &[&held, &other],
        ))
        .await,
        Code::FailedPrecondition,
        &format!("worker \"w1\" holds no live lease on notifications: {other}"),
    );
    assert!(
        deliveries(&mut c, &held).await.is_empty(),
        "nothing written"
    );
    assert!(delivery_report(&mut c, &held).await.processed_at.is_none());
    expire_lease(&s, &held).await;
    assert_eq!(
        claim(&mut c, "w2").await,
        [held, other],
        "both still pending"
    );
}

/// The Rust status type and the database enum name the same statuses in
/// the same order, and each value survives a round trip.
#[tokio::test]
async fn the_delivery_status_type_matches_the_database_enum() {
    let db = pg::create("notifications").await;
    let pool = sqlx::PgPool::connect(&db.url).await.expect("db");
    interlock_notifications::MIGRATOR
        .run(&pool)
        .await
        .expect("migrate");
    let in_db: Vec<String> =
        sqlx::query_scalar("SELECT unnest(enum_range(NULL::delivery_status))::text")
            .fetch_all(&pool)
            .await
            .expect("enum");
    let mut in_rust = Vec::new();
    for status in Status::ALL {
        let (name, back): (String, Status) =
            sqlx::query_as("SELECT $1::delivery_status::text, $1::delivery_status")
                .bind(status)
                .fetch_one(&pool)
                .await
                .expect("round trip");
        assert_eq!(back, status);
        in_rust.push(name);
    }
    assert_eq!(in_rust, in_db);
    pool.close().await;
}
