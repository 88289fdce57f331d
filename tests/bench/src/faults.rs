//! The fault suite: the running local mesh under a steady mixed load
//! (reads: GetMe, ListMine; writes: Register, MarkReceived, notifications
//! Create) while one piece at a time is killed, restarted, stopped or
//! flooded. Every write the load saw acknowledged is recorded and checked
//! afterwards in the owning service's database, and every notification's
//! pushes are counted at the local FCM server: lost and duplicated are
//! counted, never assumed.
//!
//! Per scenario: what the clients saw while the fault lasted (errors by
//! code), how long until calls succeeded again (first error to last), the
//! errors after recovery (must be none), and acknowledged writes lost or
//! pushes lost/duplicated. `scripts/faults.sh` runs it and writes
//! docs/reliability.md and docs/reliability.json.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use interlock_e2e::Target;
use interlock_mesh::Mesh;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::{
    CreateRequest, ListMineRequest, MarkReceivedRequest, Platform, RegisterDeviceRequest,
};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{Caller, Client, register_request};
use serde::Serialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::load::code;
use crate::procs::RssWatch;

/// Users the reads and notifications go to.
const POOL: usize = 8;
/// Longest one call of the load may take before the client gives up.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

/// How long the phases of a scenario last.
#[derive(Clone, Copy)]
struct Timing {
    /// Mixed load, calls per second.
    rate: f64,
    /// Load before the fault.
    before: Duration,
    /// Load after the mesh is whole again; its last `quiet` must be
    /// error-free.
    after: Duration,
    quiet: Duration,
}

/// One row of docs/reliability.md.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub fault: String,
    pub load: String,
    /// Failed calls while the fault lasted, by gRPC code.
    pub errors: BTreeMap<String, u64>,
    pub calls: u64,
    /// From the fault to the last failed call (0: none failed).
    pub recovery_s: f64,
    /// Failed calls in the final quiet window (must be 0).
    pub errors_after_recovery: u64,
    pub acknowledged_writes: u64,
    pub lost_writes: u64,
    pub pushes_expected: u64,
    pub pushes_lost: u64,
    pub pushes_duplicated: u64,
    /// Anything else the scenario measured.
    pub notes: String,
    pub passed: bool,
}

/// What the load saw acknowledged.
#[derive(Default)]
struct Ledger {
    registered: Vec<String>,
    /// Notification id, recipient pool index.
    created: Vec<(String, usize)>,
    /// Created and not yet marked received: what MarkReceived works on.
    unreceived: VecDeque<(String, usize)>,
    received: Vec<(String, usize)>,
    /// Seconds since the scenario started, and the code, of each failure.
    failures: Vec<(f64, String)>,
    calls: u64,
}

struct PoolUser {
    id: String,
    device: String,
    users: UsersServiceClient<Client>,
    notes: NotificationsServiceClient<Client>,
}

struct Ctx {
    target: Target,
    pool: Vec<PoolUser>,
    internal: NotificationsInternalClient<Channel>,
    /// The next client address for a registration (each its own, so no
    /// per-address limit is what fails).
    next_address: Mutex<u32>,
    run: u8,
}

/// The suite.
pub async fn run(quick: bool, only: &[String], out: &Path) -> anyhow::Result<()> {
    let mesh = interlock_e2e::mesh();
    let target = Target::Local(mesh.clone());
    fcm(&mesh, "POST", "/control/reset", None).await?;
    let ctx = Arc::new(Ctx::new(target).await?);
    let timing = if quick {
        Timing {
            rate: 20.0,
            before: Duration::from_secs(2),
            after: Duration::from_secs(6),
            quiet: Duration::from_secs(3),
        }
    } else {
        Timing {
            rate: 40.0,
            before: Duration::from_secs(5),
            after: Duration::from_secs(10),
            quiet: Duration::from_secs(5),
        }
    };
    let ttl = Duration::from_secs(u64::from(mesh.svid_ttl_secs()));
    let mut plan: Vec<Scenario> = Vec::new();
    for w in ["auth", "roles", "users", "notifications", "sender"] {
        plan.push(Scenario::Kill(w.to_owned()));
    }
    for w in mesh.workloads() {
        plan.push(Scenario::Kill(format!("sidecar-{w}")));
    }
    plan.push(Scenario::Kill("edge".into()));
    for w in ["auth", "roles", "users", "notifications", "sender"] {
        plan.push(Scenario::Rolling(w.to_owned()));
    }
    plan.push(Scenario::Postgres { kill: false });
    plan.push(Scenario::Postgres { kill: true });
    plan.push(Scenario::SpireServerDown(if quick {
        Duration::from_secs(10)
    } else {
        ttl * 2
    }));
    plan.push(Scenario::AgentRestart);
    plan.push(Scenario::AuthDown(Duration::from_secs(if quick {
        5
    } else {
        10
    })));
    plan.push(Scenario::FcmOutage {
        unavailable: Duration::from_secs(if quick { 4 } else { 10 }),
        throttled: Duration::from_secs(if quick { 4 } else { 10 }),
        retry_after: 2,
    });
    plan.push(Scenario::Overload);
    plan.push(Scenario::Durability);

    let mut rows = Vec::new();
    let mut ctx = ctx;
    for s in plan {
        if !only.is_empty() && !only.iter().any(|o| s.name().contains(o.as_str())) {
            continue;
        }
        println!("faults: {} ...", s.name());
        let row = match &s {
            Scenario::Overload => overload(&ctx, quick).await?,
            _ => scenario(&ctx, &mesh, &s, timing).await?,
        };
        println!(
            "faults: {} -> errors {:?} recovery {:.1} s after {} lost {} pushes lost {} dup {} {}{}",
            row.scenario,
            row.errors,
            row.recovery_s,
            row.errors_after_recovery,
            row.lost_writes,
            row.pushes_lost,
            row.pushes_duplicated,
            if row.passed { "PASS" } else { "FAIL" },
            if row.notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", row.notes)
            }
        );
        rows.push(row);
        if matches!(s, Scenario::Durability) {
            // A fresh mesh: new connections, the pool logged in again.
            ctx = Arc::new(Ctx::new(Target::Local(mesh.clone())).await?);
        }
    }
    std::fs::write(out, serde_json::to_string_pretty(&rows)? + "\n")
        .with_context(|| format!("write {}", out.display()))?;
    let md = out.with_extension("md");
    std::fs::write(&md, markdown(&rows, quick, timing))
        .with_context(|| format!("write {}", md.display()))?;
    let failed: Vec<&str> = rows
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.scenario.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("fault scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}

/// docs/reliability.md: one row per scenario.
fn markdown(rows: &[Row], quick: bool, t: Timing) -> String {
    let mut md = String::from(
        "# Reliability: the mesh under faults\n\n\
         Written by `bash scripts/faults.sh` (tests/bench, `interlock-bench faults`) from one run \
         against the local mesh (release build) on this machine. Do not edit by hand.\n\n",
    );
    md.push_str(&format!(
        "Load during every scenario: {:.0} calls/s offered open-loop, mixed — GetMe 40%, ListMine 20%, \
         Register 10% (each from its own client address), notifications Create 15% (through auth's \
         egress sidecar, one recipient with one device), MarkReceived 15% — {} s before the fault and \
         {} s after the mesh is whole again; the last {} s must be error-free. Every acknowledged \
         write is then looked up in its service's database, and every created notification's pushes \
         are counted at the local FCM server.{}\n\n",
        t.rate,
        t.before.as_secs(),
        t.after.as_secs(),
        t.quiet.as_secs(),
        if quick { " (Quick run: shorter phases.)" } else { "" }
    ));
    md.push_str("| scenario | allowed during the fault | calls | errors during the fault (by code) | recovery (s) | errors after recovery | acknowledged writes | lost | pushes | pushes lost | pushes duplicated | result | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let errors = if r.errors.is_empty() {
            "none".to_owned()
        } else {
            r.errors
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            r.fault,
            r.calls,
            errors,
            r.recovery_s,
            r.errors_after_recovery,
            r.acknowledged_writes,
            r.lost_writes,
            r.pushes_expected,
            r.pushes_lost,
            r.pushes_duplicated,
            if r.passed { "pass" } else { "FAIL" },
            r.notes.replace('|', "/")
        ));
    }
    md.push_str(
        "\nWhat an operator sees and does in each case: [operations.md](operations.md#faults).\n",
    );
    md
}

enum Scenario {
    /// `kill -9` of one process; the supervisor restarts it.
    Kill(String),
    /// The supervisor's restart (SIGTERM, drain, start) of one service.
    Rolling(String),
    /// PostgreSQL restarted (fast shutdown), or its postmaster killed -9.
    Postgres { kill: bool },
    /// The SPIRE server stopped for this long.
    SpireServerDown(Duration),
    /// The SPIRE agent restarted.
    AgentRestart,
    /// auth stopped for this long.
    AuthDown(Duration),
    /// The local FCM server answers 503, then 429 with Retry-After.
    FcmOutage {
        unavailable: Duration,
        throttled: Duration,
        retry_after: u64,
    },
    /// GetMe offered at five times the mesh's capacity.
    Overload,
    /// Every process of the mesh and PostgreSQL killed -9, then
    /// `scripts/mesh.sh up`.
    Durability,
}

impl Scenario {
    fn name(&self) -> String {
        match self {
            Scenario::Kill(p) => format!("kill -9 {p}"),
            Scenario::Rolling(w) => format!("rolling restart {w}"),
            Scenario::Postgres { kill: false } => "PostgreSQL restart".into(),
            Scenario::Postgres { kill: true } => "PostgreSQL postmaster kill -9".into(),
            Scenario::SpireServerDown(d) => format!("SPIRE server down {} s", d.as_secs()),
            Scenario::AgentRestart => "SPIRE agent restart".into(),
            Scenario::AuthDown(d) => format!("auth down {} s", d.as_secs()),
            Scenario::FcmOutage { .. } => "FCM outage (503, then 429 + Retry-After)".into(),
            Scenario::Overload => "overload: GetMe at 5x capacity".into(),
            Scenario::Durability => "kill -9 of everything, then mesh.sh up".into(),
        }
    }

    /// What may fail while it lasts (the rest must not fail at all).
    fn expected(&self) -> &'static str {
        match self {
            Scenario::Rolling(_) | Scenario::AgentRestart | Scenario::FcmOutage { .. } => {
                "no failed call"
            }
            Scenario::SpireServerDown(_) => {
                "no failed call while the cached SVIDs are valid (see docs/operations.md)"
            }
            Scenario::AuthDown(_) => {
                "only auth's own calls (Register): UNAVAILABLE, or RESOURCE_EXHAUSTED + retry-after as it catches up"
            }
            _ => "failures while the piece is down; none after recovery",
        }
    }
}

impl Ctx {
    async fn new(target: Target) -> anyhow::Result<Self> {
        let run = 2 + uuid::Uuid::new_v4().as_bytes()[0] % 200;
        let mut pool = Vec::new();
        for i in 0..POOL {
            let address = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, run, 250, i as u8 + 1));
            let channel = interlock_e2e::edge_channel_from(&target, address).await;
            let login = crate::edge::unique("fault");
            // Registered, address confirmed with the mailed code, logged in.
            let pair = interlock_e2e::register_and_login_over(
                &target,
                Caller::default().over(channel.clone()),
                &login,
            )
            .await;
            let as_user = Caller::default()
                .with_token(&pair.access_token)
                .over(channel);
            let device = format!("fault-device-{}", uuid::Uuid::new_v4().simple());
            let mut notes = NotificationsServiceClient::new(as_user.clone());
            notes
                .register_device(RegisterDeviceRequest {
                    fcm_token: device.clone(),
                    platform: Platform::Android as i32,
                })
                .await
                .context("register a device")?;
            pool.push(PoolUser {
                id: pair.user_id,
                device,
                users: UsersServiceClient::new(as_user),
                notes,
            });
        }
        let internal = NotificationsInternalClient::new(target.egress("auth"));
        Ok(Self {
            target,
            pool,
            internal,
            next_address: Mutex::new(0),
            run,
        })
    }

    /// Waits until GetMe (edge, users, roles) and GetDeliveryReport (auth's egress,
    /// notifications) succeed three times in a row, at most 180 s; how
    /// long that took.
    async fn wait_serving(&self) -> Duration {
        let started = Instant::now();
        let mut streak = 0;
        while streak < 3 && started.elapsed() < Duration::from_secs(180) {
            let me = self.pool[0].users.clone().get_me(GetMeRequest {}).await;
            let report = self
                .internal
                .clone()
                .get_delivery_report(
                    interlock_proto::notifications::v1::GetDeliveryReportRequest {
                        id: uuid::Uuid::nil().to_string(),
                    },
                )
                .await;
            // Any answer of notifications' own (NOT_FOUND for the nil id)
            // means the path works; these mean it does not.
            let answered = !matches!(
                report.as_ref().map_err(tonic::Status::code),
                Err(tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Internal
                    | tonic::Code::Unauthenticated)
            );
            if me.is_ok() && answered {
                streak += 1;
            } else {
                streak = 0;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        started.elapsed()
    }

    /// The load's `i`th call, recorded in `ledger`.
    async fn call(self: Arc<Self>, i: u64, ledger: Arc<Mutex<Ledger>>, start: Instant) {
        let u = (i as usize / 20) % POOL;
        let kind = i % 20;
        let result = tokio::time::timeout(CALL_DEADLINE, self.op(kind, u, &ledger)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(code)) => Some(format!("{code:?}")),
            Err(_) => Some("client deadline".to_owned()),
        };
        let mut l = ledger.lock().expect("ledger");
        l.calls += 1;
        if let Some(f) = failure {
            l.failures.push((start.elapsed().as_secs_f64(), f));
        }
    }

    async fn op(&self, kind: u64, u: usize, ledger: &Mutex<Ledger>) -> Result<(), tonic::Code> {
        let user = &self.pool[u];
        match kind {
            0..8 => code(user.users.clone().get_me(GetMeRequest {}).await),
            8..12 => code(
                user.notes
                    .clone()
                    .list_mine(ListMineRequest::default())
                    .await,
            ),
            12..14 => {
                let n = {
                    let mut next = self.next_address.lock().expect("address");
                    *next += 1;
                    *next
                };
                let address = std::net::IpAddr::V4(std::net::Ipv4Addr::new(
                    127,
                    self.run,
                    (n / 250) as u8 % 250,
                    (n % 250) as u8 + 1,
                ));
                let channel = tokio::time::timeout(
                    Duration::from_secs(5),
                    try_edge_channel(&self.target, address),
                )
                .await
                .map_err(|_| tonic::Code::DeadlineExceeded)?
                .map_err(|_| tonic::Code::Unavailable)?;
                let login = crate::edge::unique("faultreg");
                AuthServiceClient::new(Caller::default().over(channel))
                    .register(register_request(&login))
                    .await
                    .map_err(|s| s.code())?;
                ledger.lock().expect("ledger").registered.push(login);
                Ok(())
            }
            14..17 => {
                let id = self
                    .internal
                    .clone()
                    .create(CreateRequest {
                        text: "fault suite".into(),
                        recipient_ids: vec![user.id.clone()],
                        request_id: String::new(),
                    })
                    .await
                    .map_err(|s| s.code())?
                    .into_inner()
                    .id;
                let mut l = ledger.lock().expect("ledger");
                l.created.push((id.clone(), u));
                l.unreceived.push_back((id, u));
                Ok(())
            }
            _ => {
                let next = ledger.lock().expect("ledger").unreceived.pop_front();
                let Some((id, owner)) = next else {
                    return code(user.users.clone().get_me(GetMeRequest {}).await);
                };
                let result = self.pool[owner]
                    .notes
                    .clone()
                    .mark_received(MarkReceivedRequest { id: id.clone() })
                    .await;
                let mut l = ledger.lock().expect("ledger");
                match result {
                    Ok(_) => {
                        l.received.push((id, owner));
                        Ok(())
                    }
                    Err(s) => {
                        // Not acknowledged: it may be tried again later.
                        l.unreceived.push_back((id, owner));
                        Err(s.code())
                    }
                }
            }
        }
    }
}

/// A TLS channel to the edge from `address`, or the connect error (the
/// edge may be down: that is a failure to count, not a panic).
async fn try_edge_channel(
    target: &Target,
    address: std::net::IpAddr,
) -> Result<Channel, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
    let ca = std::fs::read(target.edge_ca()).expect("edge CA");
    Endpoint::from_shared(format!("https://127.0.0.1:{}", target.edge_port()))
        .expect("endpoint")
        .local_address(Some(address))
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(ca))
                .domain_name("localhost"),
        )
        .expect("tls")
        .timeout(CALL_DEADLINE)
        .connect()
        .await
}

/// Runs the mixed load until `stop` resolves; the ledger of what it saw.
async fn with_load<F, Fut>(
    ctx: &Arc<Ctx>,
    rate: f64,
    during: F,
) -> (Arc<Mutex<Ledger>>, Fut::Output, Instant)
where
    F: FnOnce(Instant) -> Fut,
    Fut: std::future::Future,
{
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let start = Instant::now();
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let load = {
        let (ctx, ledger) = (ctx.clone(), ledger.clone());
        tokio::spawn(async move {
            let mut i: u64 = 0;
            let mut calls = tokio::task::JoinSet::new();
            let every = Duration::from_secs_f64(1.0 / rate);
            while !*stop_rx.borrow() {
                calls.spawn(ctx.clone().call(i, ledger.clone(), start));
                i += 1;
                let due = start + every.mul_f64(i as f64);
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    _ = stop_rx.changed() => {}
                }
                while calls.try_join_next().is_some() {}
            }
            while calls.join_next().await.is_some() {}
        })
    };
    let out = during(start).await;
    let _ = stop_tx.send(true);
    let _ = load.await;
    (ledger, out, start)
}

/// One scenario under the mixed load.
async fn scenario(ctx: &Arc<Ctx>, mesh: &Mesh, s: &Scenario, t: Timing) -> anyhow::Result<Row> {
    if let Scenario::Durability = s {
        return durability(ctx, mesh, t).await;
    }
    let (ledger, injected, start) = with_load(ctx, t.rate, |start| async move {
        tokio::time::sleep(t.before).await;
        let fault_at = start.elapsed().as_secs_f64();
        let notes = inject(mesh, s).await;
        let whole_at = start.elapsed().as_secs_f64();
        // Then until calls through the whole chain succeed again (the
        // piece that was away may need a moment, e.g. the SPIRE agent's
        // next sync after the server returned).
        let serving = ctx.wait_serving().await;
        tokio::time::sleep(t.after).await;
        (fault_at, whole_at, serving, notes)
    })
    .await;
    let (fault_at, _whole_at, serving, notes) = injected;
    let mut notes = notes?;
    if serving > Duration::from_millis(500) {
        notes = format!(
            "{notes}{}calls succeeded again {:.1} s after the piece was back",
            if notes.is_empty() { "" } else { "; " },
            serving.as_secs_f64()
        );
    }
    let end = start.elapsed().as_secs_f64();
    let mut row = assess(s, &ledger, fault_at, end, t.quiet).await;
    check_writes(ctx, mesh, &ledger, &mut row, Pushes::AtFcm).await?;
    row.notes = [row.notes.clone(), notes]
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    row.passed = passed(s, &row);
    Ok(row)
}

/// Errors by code during the fault, recovery time, errors in the quiet
/// window at the end.
async fn assess(
    s: &Scenario,
    ledger: &Mutex<Ledger>,
    fault_at: f64,
    end: f64,
    quiet: Duration,
) -> Row {
    let l = ledger.lock().expect("ledger");
    let mut errors = BTreeMap::new();
    let mut last = None;
    let first = l
        .failures
        .iter()
        .map(|(at, _)| *at)
        .filter(|at| *at >= fault_at)
        .reduce(f64::min);
    let mut after = 0;
    for (at, code) in &l.failures {
        if *at >= end - quiet.as_secs_f64() {
            after += 1;
        } else {
            *errors.entry(code.clone()).or_insert(0) += 1;
        }
        last = Some(at.max(fault_at));
    }
    Row {
        scenario: s.name(),
        fault: s.expected().to_owned(),
        load: String::new(),
        errors,
        calls: l.calls,
        recovery_s: last.map_or(0.0, |l| l - fault_at),
        errors_after_recovery: after,
        acknowledged_writes: (l.registered.len() + l.created.len() + l.received.len()) as u64,
        lost_writes: 0,
        pushes_expected: l.created.len() as u64,
        pushes_lost: 0,
        pushes_duplicated: 0,
        notes: first.map_or_else(String::new, |f| {
            format!("first failure {:.1} s after the fault", f - fault_at)
        }),
        passed: false,
    }
}

fn passed(s: &Scenario, row: &Row) -> bool {
    let clean = row.errors_after_recovery == 0
        && row.lost_writes == 0
        && row.pushes_lost == 0
        && row.pushes_duplicated == 0;
    let during = match s {
        Scenario::Rolling(_) | Scenario::AgentRestart | Scenario::FcmOutage { .. } => {
            row.errors.is_empty()
        }
        // Register fails UNAVAILABLE while auth is away; when it is back,
        // the registrations the edge was still retrying arrive at once and
        // auth sheds what exceeds its hashing capacity with
        // RESOURCE_EXHAUSTED + retry-after (its documented back-pressure).
        Scenario::AuthDown(_) => row
            .errors
            .keys()
            .all(|c| c == "Unavailable" || c == "ResourceExhausted"),
        _ => true,
    };
    clean && during
}

/// Applies the fault and returns once the mesh is whole again (what was
/// stopped is back); notes of what it measured.
async fn inject(mesh: &Mesh, s: &Scenario) -> anyhow::Result<String> {
    match s {
        Scenario::Kill(p) => {
            let before = process(mesh, p).await?;
            let pid = before["pid"].as_i64().context("pid")?;
            let started = Instant::now();
            exec(std::process::Command::new("kill").args(["-9", &pid.to_string()]))?;
            let back = wait_running(mesh, p, Some(pid)).await?;
            Ok(format!(
                "{p} back in {:.1} s",
                back.duration_since(started).as_secs_f64()
            ))
        }
        Scenario::Rolling(w) => {
            let before = process(mesh, w).await?;
            let pid = before["pid"].as_i64().context("pid")?;
            let started = Instant::now();
            supervisor(mesh, "POST", &format!("/process/restart/{w}")).await?;
            let back = wait_running(mesh, w, Some(pid)).await?;
            Ok(format!(
                "{w} back in {:.1} s",
                back.duration_since(started).as_secs_f64()
            ))
        }
        Scenario::Postgres { kill } => {
            let started = Instant::now();
            let (done, watching) = tokio::sync::watch::channel(false);
            let health = tokio::spawn(observe_health(mesh.clone(), "users", watching));
            tokio::time::sleep(Duration::from_millis(300)).await;
            if *kill {
                let data = postgres_data_dir()?;
                let pid = std::fs::read_to_string(data.join("postmaster.pid"))?
                    .lines()
                    .next()
                    .context("postmaster.pid")?
                    .trim()
                    .to_owned();
                exec(std::process::Command::new("kill").args(["-9", &pid]))?;
                // As an init system would: start it again until it runs
                // (its orphaned backends must exit first).
                postgres_back().await?;
            } else {
                exec(std::process::Command::new("bash").args(["scripts/postgres.sh", "restart"]))?;
            }
            let back = started.elapsed().as_secs_f64();
            let _ = done.send(true);
            let health = health.await.unwrap_or_default();
            Ok(format!("PostgreSQL back in {back:.1} s; {health}"))
        }
        Scenario::SpireServerDown(d) => {
            supervisor(mesh, "PATCH", "/process/stop/spire-server").await?;
            tokio::time::sleep(*d).await;
            supervisor(mesh, "POST", "/process/start/spire-server").await?;
            wait_running(mesh, "spire-server", None).await?;
            Ok(format!(
                "server down {} s with SVID TTL {} s",
                d.as_secs(),
                mesh.svid_ttl_secs()
            ))
        }
        Scenario::AgentRestart => {
            let pid = process(mesh, "spire-agent").await?["pid"]
                .as_i64()
                .context("pid")?;
            supervisor(mesh, "POST", "/process/restart/spire-agent").await?;
            wait_running(mesh, "spire-agent", Some(pid)).await?;
            Ok(String::new())
        }
        Scenario::AuthDown(d) => {
            supervisor(mesh, "PATCH", "/process/stop/auth").await?;
            tokio::time::sleep(*d).await;
            supervisor(mesh, "POST", "/process/start/auth").await?;
            wait_running(mesh, "auth", None).await?;
            Ok(String::new())
        }
        Scenario::FcmOutage {
            unavailable,
            throttled,
            retry_after,
        } => {
            let plan = json!({
                "unavailable_secs": unavailable.as_secs(),
                "throttled_secs": throttled.as_secs(),
                "retry_after_secs": retry_after
            });
            fcm(mesh, "POST", "/control/outage", Some(plan)).await?;
            tokio::time::sleep(*unavailable + *throttled).await;
            let counts = fcm(mesh, "GET", "/control/outage", None).await?;
            let refused_503 = counts["unavailable"].as_u64().unwrap_or(0);
            let refused_429 = counts["throttled"].as_u64().unwrap_or(0);
            Ok(format!(
                "sends refused: {refused_503} with 503 in {} s ({:.1}/s), {refused_429} with 429 + Retry-After {retry_after} s in {} s ({:.1}/s)",
                unavailable.as_secs(),
                refused_503 as f64 / unavailable.as_secs_f64(),
                throttled.as_secs(),
                refused_429 as f64 / throttled.as_secs_f64()
            ))
        }
        Scenario::Overload | Scenario::Durability => Ok(String::new()),
    }
}

/// Checks every acknowledged write in its service's database and every
/// created notification's pushes at the local FCM server.
#[derive(PartialEq)]
enum Pushes {
    /// Counted at the local FCM server (lost and duplicated).
    AtFcm,
    /// Its memory was lost: each recipient's device must have a
    /// `delivered` record.
    FromDeliveryRecords,
}

async fn check_writes(
    ctx: &Ctx,
    mesh: &Mesh,
    ledger: &Mutex<Ledger>,
    row: &mut Row,
    pushes_at: Pushes,
) -> anyhow::Result<()> {
    let (registered, created, received) = {
        let l = ledger.lock().expect("ledger");
        (l.registered.clone(), l.created.clone(), l.received.clone())
    };
    let auth = database(mesh, "auth").await?;
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM credentials WHERE login = ANY($1) AND status = 'active'",
    )
    .bind(&registered)
    .fetch_one(&auth)
    .await?;
    let notifications = database(mesh, "notifications").await?;
    let ids: Vec<uuid::Uuid> = created
        .iter()
        .map(|(id, _)| id.parse())
        .collect::<Result<_, _>>()?;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM notifications WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&notifications)
        .await?;
    let receipt_ids: Vec<uuid::Uuid> = received
        .iter()
        .map(|(id, _)| id.parse())
        .collect::<Result<_, _>>()?;
    let receipt_users: Vec<uuid::Uuid> = received
        .iter()
        .map(|(_, u)| ctx.pool[*u].id.parse())
        .collect::<Result<_, _>>()?;
    let marked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recipients r JOIN unnest($1::uuid[], $2::uuid[]) AS w(n, u)
         ON r.notification_id = w.n AND r.user_id = w.u WHERE r.received_at IS NOT NULL",
    )
    .bind(&receipt_ids)
    .bind(&receipt_users)
    .fetch_one(&notifications)
    .await?;
    row.lost_writes = (registered.len() as i64 - active) as u64
        + (ids.len() as i64 - stored) as u64
        + (received.len() as i64 - marked) as u64;

    // Every created notification processed (the sender may still be at
    // it after a fault), then its pushes counted.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notifications WHERE id = ANY($1) AND processed_at IS NULL",
        )
        .bind(&ids)
        .fetch_one(&notifications)
        .await?;
        if pending == 0 || Instant::now() > deadline {
            if pending > 0 {
                row.notes = format!("{pending} notifications still unprocessed after 60 s");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if pushes_at == Pushes::FromDeliveryRecords {
        let delivered: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE notification_id = ANY($1) AND status = 'delivered'",
        )
        .bind(&ids)
        .fetch_one(&notifications)
        .await?;
        row.pushes_lost = (ids.len() as i64 - delivered).max(0) as u64;
        auth.close().await;
        notifications.close().await;
        return Ok(());
    }
    let received_at_fcm = fcm(mesh, "GET", "/control/received", None).await?;
    let mut pushes: HashMap<(String, String), u64> = HashMap::new();
    for r in received_at_fcm["received"].as_array().into_iter().flatten() {
        let key = (
            r["token"].as_str().unwrap_or_default().to_owned(),
            r["message"]["data"]["notification_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        *pushes.entry(key).or_default() += 1;
    }
    for (id, u) in &created {
        match pushes.get(&(ctx.pool[*u].device.clone(), id.clone())) {
            None => row.pushes_lost += 1,
            Some(1) => {}
            Some(n) => row.pushes_duplicated += n - 1,
        }
    }
    auth.close().await;
    notifications.close().await;
    Ok(())
}

/// GetMe at five times what the mesh sustains: refused quickly and
/// cleanly, memory bounded, normal service right after.
async fn overload(ctx: &Arc<Ctx>, quick: bool) -> anyhow::Result<Row> {
    let clients: Vec<UsersServiceClient<Client>> =
        ctx.pool.iter().map(|u| u.users.clone()).collect();
    let seconds = Duration::from_secs(if quick { 3 } else { 10 });
    // Capacity: the highest rate sustained in the last full bench run
    // (docs/benchmarks.json), else the target.
    let capacity = capacity().unwrap_or(1000.0);
    let rss = RssWatch::start();
    let flood = crate::edge::getme(&clients, capacity * 5.0, seconds).await;
    let peak = rss.stop().await;
    let calm = crate::edge::getme(&clients, 100.0, Duration::from_secs(3)).await;
    let clean = flood
        .errors
        .keys()
        .all(|c| c == "ResourceExhausted" || c == "Unavailable" || c == "dropped");
    let max_envoy = peak
        .iter()
        .filter(|(n, _)| n.starts_with("envoy"))
        .map(|(_, k)| *k)
        .max()
        .unwrap_or(0);
    let max_service = peak
        .iter()
        .filter(|(n, _)| n.starts_with("interlock-"))
        .map(|(_, k)| *k)
        .max()
        .unwrap_or(0);
    let row = Row {
        scenario: "overload: GetMe at 5x capacity".into(),
        fault: "excess refused quickly (RESOURCE_EXHAUSTED / UNAVAILABLE), no timeouts".into(),
        load: format!(
            "GetMe open-loop {:.0}/s for {} s",
            capacity * 5.0,
            seconds.as_secs()
        ),
        errors: flood.errors.clone(),
        calls: flood.calls,
        recovery_s: 0.0,
        errors_after_recovery: calm.error_count(),
        acknowledged_writes: 0,
        lost_writes: 0,
        pushes_expected: 0,
        pushes_lost: 0,
        pushes_duplicated: 0,
        notes: format!(
            "served {:.0}/s, p50 {:.1} ms p99 {:.1} ms max {:.0} ms; peak RSS Envoy {} MiB, service {} MiB; after: {}",
            flood.achieved_rps,
            flood.p50_ms,
            flood.p99_ms,
            flood.max_ms,
            max_envoy / 1024,
            max_service / 1024,
            calm.line("100/s")
        ),
        passed: clean && flood.max_ms < CALL_DEADLINE.as_millis() as f64 && calm.error_count() == 0,
    };
    Ok(row)
}

fn capacity() -> Option<f64> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/benchmarks.json");
    let rows: Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    rows.as_array()?
        .iter()
        .find(|r| {
            r["metric"]
                .as_str()
                .is_some_and(|m| m.contains("max sustained"))
        })
        .and_then(|r| r["measured"].as_f64())
}

/// Everything killed -9 (PostgreSQL included) with the load running, then
/// a fresh `mesh.sh up`; every acknowledged write must be there. The local
/// FCM server's memory dies with it, so pushes are checked in
/// notifications' delivery records instead.
async fn durability(ctx: &Arc<Ctx>, mesh: &Mesh, t: Timing) -> anyhow::Result<Row> {
    let s = Scenario::Durability;
    let (ledger, fault_at, start) = with_load(ctx, t.rate, |start| async move {
        tokio::time::sleep(t.before * 2).await;
        let at = start.elapsed().as_secs_f64();
        kill_everything(mesh).await;
        at
    })
    .await;
    let started = Instant::now();
    postgres_back().await?;
    let _ = std::fs::remove_file(mesh.control_socket());
    exec(std::process::Command::new("bash").args(["scripts/mesh.sh", "up"]))?;
    let up = started.elapsed();
    let end = start.elapsed().as_secs_f64();
    let mut row = assess(&s, &ledger, fault_at, end, Duration::ZERO).await;
    // The load stopped at the kill: what failed then is the fault itself.
    row.errors_after_recovery = 0;
    row.recovery_s = up.as_secs_f64();
    check_writes(ctx, mesh, &ledger, &mut row, Pushes::FromDeliveryRecords).await?;
    row.notes = format!("mesh.sh up after the kill: {:.1} s", up.as_secs_f64());
    row.passed = passed(&s, &row);
    Ok(row)
}

/// kill -9 of the supervisor, every process it runs, and PostgreSQL's
/// postmaster and backends.
async fn kill_everything(mesh: &Mesh) {
    let mut pids: Vec<String> = Vec::new();
    if let Ok(list) = supervisor(mesh, "GET", "/processes").await {
        for p in list["data"].as_array().into_iter().flatten() {
            if let Some(pid) = p["pid"].as_i64().filter(|p| *p > 0) {
                pids.push(pid.to_string());
            }
        }
    }
    if let Ok(out) = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!(
                "process-compose --unix-socket {}",
                mesh.control_socket().display()
            ),
        ])
        .output()
    {
        pids.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
    }
    if let Ok(data) = postgres_data_dir()
        && let Ok(pidfile) = std::fs::read_to_string(data.join("postmaster.pid"))
        && let Some(pid) = pidfile.lines().next()
    {
        pids.push(pid.trim().to_owned());
        // Its backends too, as a machine crash would take them.
        if let Ok(out) = std::process::Command::new("pgrep")
            .args(["-P", pid.trim()])
            .output()
        {
            pids.extend(
                String::from_utf8_lossy(&out.stdout)
                    .split_whitespace()
                    .map(str::to_owned),
            );
        }
    }
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .args(&pids)
        .status();
    tokio::time::sleep(Duration::from_secs(1)).await;
}

// === the supervisor, PostgreSQL, the local FCM server ===

/// A call to the supervisor's API (restart waits for the stop, so it may
/// take as long as a drain).
async fn supervisor(mesh: &Mesh, method: &str, path: &str) -> anyhow::Result<Value> {
    unix_http(&mesh.control_socket(), method, path, None)
        .await
        .with_context(|| format!("supervisor {method} {path}"))
}

/// HTTP over a root-only Unix socket with curl (60 s at most): the JSON
/// answer, or an error naming the status.
async fn unix_http(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        "--max-time",
        "60",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--unix-socket",
    ])
    .arg(socket)
    .arg(format!("http://localhost{path}"));
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "-d", &b.to_string()]);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    if !out.status.success() || !status.trim().starts_with('2') {
        bail!("curl exit {:?}, HTTP {status}: {body}", out.status.code());
    }
    Ok(serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn process(mesh: &Mesh, name: &str) -> anyhow::Result<Value> {
    supervisor(mesh, "GET", &format!("/process/{name}")).await
}

/// Waits until `name` runs (with another pid than `old`, if given) and is
/// ready; when that happened.
async fn wait_running(mesh: &Mesh, name: &str, old: Option<i64>) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(p) = process(mesh, name).await {
            let pid = p["pid"].as_i64().unwrap_or(0);
            let running = p["status"] == "Running";
            let ready = p["is_ready"]
                .as_str()
                .is_none_or(|r| r == "Ready" || r == "-");
            if running && ready && pid > 0 && Some(pid) != old {
                return Ok(Instant::now());
            }
        }
        if Instant::now() > deadline {
            bail!("{name} did not come back within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `workload`'s health every 200 ms until `done` turns true, then
/// until it is SERVING (at most 30 s more); says what it saw.
async fn observe_health(
    mesh: Mesh,
    workload: &'static str,
    mut done: tokio::sync::watch::Receiver<bool>,
) -> String {
    let socket = mesh.service_socket(workload);
    let probe = mesh.bin("interlock-mesh");
    let check = move || {
        std::process::Command::new(&probe)
            .arg("health")
            .arg(&socket)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let mut dipped = false;
    let mut deadline = None;
    loop {
        let ok = tokio::task::spawn_blocking(check.clone())
            .await
            .unwrap_or(false);
        dipped |= !ok;
        if *done.borrow_and_update() {
            let d = *deadline.get_or_insert(Instant::now() + Duration::from_secs(30));
            if ok || Instant::now() > d {
                return match (dipped, ok) {
                    (true, true) => {
                        format!("health of {workload} went NOT_SERVING and back to SERVING")
                    }
                    (false, true) => format!("health of {workload} stayed SERVING"),
                    (_, false) => {
                        format!("health of {workload} still NOT_SERVING 30 s after the fault")
                    }
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts PostgreSQL until it accepts connections (at most 60 s).
async fn postgres_back() -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started =
            exec(std::process::Command::new("bash").args(["scripts/postgres.sh", "start"]));
        if started.is_ok() {
            let url = String::from_utf8(
                std::process::Command::new("bash")
                    .args(["scripts/postgres.sh", "url"])
                    .output()?
                    .stdout,
            )?;
            if sqlx::PgPool::connect(url.trim()).await.is_ok() {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("PostgreSQL did not come back within 60 s");
        }
    }
}

fn postgres_data_dir() -> anyhow::Result<std::path::PathBuf> {
    let out = std::process::Command::new("bash")
        .args(["scripts/postgres.sh", "data-dir"])
        .output()?;
    if !out.status.success() {
        bail!("scripts/postgres.sh data-dir failed");
    }
    Ok(String::from_utf8(out.stdout)?.trim().into())
}

async fn fcm(mesh: &Mesh, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
    unix_http(&mesh.fcm_control_socket(), method, path, body)
        .await
        .with_context(|| format!("fcm-local {method} {path}"))
}

async fn database(mesh: &Mesh, workload: &str) -> anyhow::Result<sqlx::PgPool> {
    #[derive(serde::Deserialize)]
    struct File {
        database: interlock_common::db::DatabaseSettings,
    }
    let path = mesh.workload_dir(workload).join("config.toml");
    let file: File = toml::from_str(&std::fs::read_to_string(&path)?)?;
    use secrecy::ExposeSecret;
    Ok(sqlx::PgPool::connect(file.database.url.expose_secret()).await?)
}

fn exec(cmd: &mut std::process::Command) -> anyhow::Result<()> {
    let status = cmd.status().with_context(|| format!("{cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}
