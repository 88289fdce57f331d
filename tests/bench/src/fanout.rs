//! Push fan-out through the running mesh: one notification to many
//! recipients with one device each, from Create (by auth, through its
//! egress sidecar) to the last push accepted by the local FCM server; the
//! real sender in between.
//!
//! The devices are a fixture written straight into notifications'
//! database: registering 10,000 devices through the edge would first take
//! 10,000 logins (bcrypt, about 20 minutes on two cores). What is measured
//! — Create, the sender's claims, pushes and reports — is untouched.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use interlock_common::client::{HttpJson, Outbound};
use interlock_mesh::Mesh;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::{CreateRequest, GetDeliveryReportRequest};
use serde::Deserialize;
use uuid::Uuid;

use crate::Plan;
use crate::report::Fragment;

/// FCM's quota per project: 600,000 messages a minute.
const FCM_QUOTA_PER_SEC: f64 = 10_000.0;

#[derive(Deserialize)]
struct Count {
    received: usize,
}

#[derive(Deserialize)]
struct Received {
    received: Vec<Push>,
}

#[derive(Deserialize)]
struct Push {
    token: String,
    message: serde_json::Value,
}

pub async fn run(
    f: &mut Fragment,
    plan: &Plan,
    mesh: &Mesh,
    internal: &mut NotificationsInternalClient<interlock_common::client::PeerChannel>,
) -> anyhow::Result<()> {
    // The full size in --quick too: it takes about a second.
    let _ = plan;
    let n = 10_000;
    let run = Uuid::new_v4().simple().to_string();
    let prefix = format!("bench-fanout-{}", &run[..8]);
    let users: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let pool = notifications_db().await?;
    let devices: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let tokens: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    sqlx::query(
        "INSERT INTO devices (id, user_id, fcm_token, platform) \
         SELECT d, u, t, 1 FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS x(d, u, t)",
    )
    .bind(&devices)
    .bind(&users)
    .bind(&tokens)
    .execute(&pool)
    .await
    .context("device fixture")?;

    let control = |path: &str| {
        HttpJson::new(
            format!("http://localhost{path}"),
            Some(&mesh.fcm_control_socket()),
            Duration::from_secs(30),
            &Outbound::default(),
        )
        .map_err(anyhow::Error::msg)
    };
    let count = control("/control/count")?;
    let before = count
        .get::<Count>()
        .await
        .map_err(anyhow::Error::msg)?
        .received;
    let start = Instant::now();
    let id = internal
        .create(CreateRequest {
            text: format!("fan-out {prefix}"),
            recipient_ids: users.iter().map(Uuid::to_string).collect(),
            request_id: String::new(),
        })
        .await
        .context("create the notification")?
        .into_inner()
        .id;
    let created = start.elapsed();
    loop {
        let now = count
            .get::<Count>()
            .await
            .map_err(anyhow::Error::msg)?
            .received;
        if now - before >= n {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            bail!("only {} of {n} pushes after 300 s", now - before);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = start.elapsed();
    let pushes: Received = control("/control/received")?
        .get()
        .await
        .map_err(anyhow::Error::msg)?;
    let mut per_device: HashMap<&str, usize> = HashMap::new();
    for p in &pushes.received {
        if p.message["data"]["notification_id"].as_str() == Some(id.as_str()) {
            *per_device.entry(p.token.as_str()).or_default() += 1;
        }
    }
    let twice = per_device.values().filter(|c| **c > 1).count();
    let rate = n as f64 / took.as_secs_f64();
    println!(
        "  fan-out: {n} devices in {:.2} s ({rate:.0}/s; Create {:.0} ms), {} devices reached, {twice} twice",
        took.as_secs_f64(),
        created.as_secs_f64() * 1000.0,
        per_device.len()
    );
    let scenario = format!("Push fan-out (1 notification, {n} recipients)");
    f.row(
        &scenario,
        "deliveries/s, Create to the last push accepted",
        rate,
        "push/s",
    )
    .target(">= 10000")
    .baseline(FCM_QUOTA_PER_SEC, "FCM's quota per project")
    .note(format!(
        "{n} in {:.2} s; Create took {:.0} ms",
        took.as_secs_f64(),
        created.as_secs_f64() * 1000.0
    ));
    f.row(
        &scenario,
        "devices that got the notification twice",
        twice as f64,
        "devices",
    )
    .target("= 0");
    f.row(
        &scenario,
        "devices never reached",
        (n - per_device.len()) as f64,
        "devices",
    )
    .target("= 0");
    // The fixture goes once the sender has reported every outcome: removing
    // devices under a report in flight would race its transaction.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = internal
            .get_delivery_report(GetDeliveryReportRequest { id: id.clone() })
            .await
            .context("delivery report")?
            .into_inner();
        if report.processed_at.is_some() {
            break;
        }
        if Instant::now() > deadline {
            bail!("notification {id} not processed 60 s after its last push");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sqlx::query("DELETE FROM devices WHERE fcm_token LIKE $1")
        .bind(format!("{prefix}-%"))
        .execute(&pool)
        .await?;
    Ok(())
}

/// notifications' database, as the cluster's superuser (set-up only).
async fn notifications_db() -> anyhow::Result<sqlx::PgPool> {
    let admin = std::env::var("INTERLOCK_TEST_PG_URL")
        .context("INTERLOCK_TEST_PG_URL (set by scripts/bench.sh)")?;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b)
        .context("superuser URL")?;
    let url = format!(
        "{base}/{}",
        interlock_mesh::mesh::database_name("notifications")
    );
    Ok(sqlx::PgPool::connect(&url).await?)
}
