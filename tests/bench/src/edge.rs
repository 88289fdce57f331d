//! The scenarios through the edge of the running local mesh, as a client
//! would call it: TLS to the edge, the user's token, many client
//! addresses.
//!
//! The edge limits public methods (Register, Login, Refresh) per client
//! address, so the load comes from many loopback addresses (127.B.x.y), as
//! it would from many clients; each connection keeps one address.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use interlock_e2e::{Target, register_and_login_over};
use interlock_mesh::Mesh;
use interlock_proto::auth::v1::RefreshRequest;
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::notifications::v1::notifications_internal_client::NotificationsInternalClient;
use interlock_proto::notifications::v1::notifications_service_client::NotificationsServiceClient;
use interlock_proto::notifications::v1::{CreateRequest, ListMineRequest, MarkReceivedRequest};
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{Caller, Client, PASSWORD, login_request};
use tonic::transport::Channel;

use crate::Plan;
use crate::load::{Outcome, closed_loop, code, open_loop};
use crate::procs::RssWatch;
use crate::report::{Fragment, Series};

/// Connections to the edge, each from its own client address. The public
/// methods (Login, Refresh) spread over all of them; calls with a token
/// (GetMe, ListMine, MarkReceived) over the first [`USER_CONNECTIONS`], as
/// a few busy clients holding HTTP/2 connections would.
const CONNECTIONS: usize = 192;
const USER_CONNECTIONS: usize = 16;

/// GetMe through the edge must hold this rate...
pub const GETME_TARGET_RPS: f64 = 1000.0;
/// ...with this p99.
pub const P99_TARGET_MS: f64 = 50.0;

pub async fn run(plan: Plan, phase: &str, out: &Path) -> anyhow::Result<()> {
    let mesh = interlock_e2e::mesh();
    let phase = if phase.is_empty() { "mesh" } else { phase };
    let mut f = Fragment::new(phase);
    println!("connecting {CONNECTIONS} clients to the edge");
    let channels = channels(&mesh).await?;
    // Over the bench's own client address: auth limits registrations per
    // address, and the e2e suite's users came from 127.0.0.1.
    let user = register_and_login_over(
        &Target::Local(mesh.clone()),
        Caller::default().over(channels[0].clone()),
        &unique("bench"),
    )
    .await;
    let as_user = |ch: &Channel| {
        Caller::default()
            .with_token(&user.access_token)
            .over(ch.clone())
    };
    let users: Vec<_> = channels[..USER_CONNECTIONS]
        .iter()
        .map(|ch| UsersServiceClient::new(as_user(ch)))
        .collect();

    println!("GetMe through the mesh ({phase}):");
    let watch = RssWatch::start();
    let series = sweep("mesh", &users, &plan, &mut f).await;
    let sustained = getme(&users, GETME_TARGET_RPS, plan.sustained).await;
    f.run("getme sustained", &sustained);
    let rss = watch.stop().await;
    getme_rows(&mut f, phase, &series, &sustained, &plan);
    f.series.push(series);
    if phase != "mesh" {
        // A second sampling ratio: only the GetMe figures differ.
        return f.write(out);
    }
    rss_rows(&mut f, &rss);

    crate::batch::run(&mut f, &plan, &mesh, &channels).await?;
    login(&mut f, &plan, &channels).await?;
    refresh(&mut f, &plan, &channels).await;
    notifications(&mut f, &plan, &mesh, &channels, &as_user, &user.user_id).await?;
    f.write(out)
}

/// GetMe through the edge at `rate` for `duration`, printed.
pub async fn probe(rate: f64, duration: Duration) -> anyhow::Result<()> {
    let mesh = interlock_e2e::mesh();
    let channels = channels(&mesh).await?;
    let user = register_and_login_over(
        &Target::Local(mesh.clone()),
        Caller::default().over(channels[0].clone()),
        &unique("probe"),
    )
    .await;
    let users: Vec<_> = channels[..USER_CONNECTIONS]
        .iter()
        .map(|ch| {
            UsersServiceClient::new(
                Caller::default()
                    .with_token(&user.access_token)
                    .over(ch.clone()),
            )
        })
        .collect();
    let _ = getme(&users, 100.0, Duration::from_secs(1)).await;
    let t0 = Instant::now();
    let slow = Arc::new(Mutex::new(Vec::new()));
    let out = open_loop(rate, duration, |i| {
        let mut c = users[i as usize % users.len()].clone();
        let slow = slow.clone();
        async move {
            let sent = Instant::now();
            let r = code(c.get_me(GetMeRequest {}).await);
            if sent.elapsed() > Duration::from_millis(25) {
                slow.lock()
                    .expect("slow")
                    .push(sent.duration_since(t0).as_millis() as u64);
            }
            r
        }
    })
    .await;
    println!("  {}", out.line("getme"));
    let slow = slow.lock().expect("slow").clone();
    let mut phase = [0u32; 10];
    for ms in &slow {
        phase[((ms % 1000) / 100) as usize] += 1;
    }
    println!(
        "  {} calls over 25 ms; by 100 ms slice of each second: {phase:?}",
        slow.len()
    );
    Ok(())
}

/// A unique login (the mesh's databases outlive a run).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// The `i`th client address of a run: 127.B.x.y with B chosen per run, so
/// that auth's per-address registration limit (30 in its window) is not
/// spent by earlier runs.
fn source(run: u8, i: usize) -> IpAddr {
    let n = i + 1;
    IpAddr::V4(Ipv4Addr::new(127, run, (n / 256) as u8, (n % 256) as u8))
}

async fn channels(mesh: &Mesh) -> anyhow::Result<Vec<Channel>> {
    let run = 2 + uuid::Uuid::new_v4().as_bytes()[0] % 250;
    let mut channels = Vec::with_capacity(CONNECTIONS);
    let target = interlock_e2e::Target::Local(mesh.clone());
    for i in 0..CONNECTIONS {
        channels.push(interlock_e2e::edge_channel_from(&target, source(run, i)).await);
    }
    Ok(channels)
}

/// GetMe offered open-loop at `rate` for `duration`, spread over the
/// clients.
pub async fn getme(
    clients: &[UsersServiceClient<Client>],
    rate: f64,
    duration: Duration,
) -> Outcome {
    open_loop(rate, duration, |i| {
        let mut c = clients[i as usize % clients.len()].clone();
        async move { code(c.get_me(GetMeRequest {}).await) }
    })
    .await
}

/// Latency percentiles against offered load: every rate of the plan, and
/// on past the target until a rate is no longer sustained.
pub async fn sweep(
    label: &str,
    clients: &[UsersServiceClient<Client>],
    plan: &Plan,
    f: &mut Fragment,
) -> Series {
    let mut points = Vec::new();
    // A short warm-up: connections, JWKS, database pools.
    let _ = getme(clients, 100.0, Duration::from_secs(1)).await;
    for rate in plan.rates() {
        let out = getme(clients, rate, plan.step).await;
        f.run(&format!("{label} getme @{rate}"), &out);
        let held = out.sustained(P99_TARGET_MS);
        points.push(out);
        if !held && rate >= GETME_TARGET_RPS {
            break;
        }
        // Let queues drain between steps.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Series {
        label: label.into(),
        points,
    }
}

/// The highest offered rate of `series` that was sustained.
pub fn max_sustained(series: &Series) -> f64 {
    series
        .points
        .iter()
        .filter(|p| p.sustained(P99_TARGET_MS))
        .map(|p| p.offered_rps)
        .fold(0.0, f64::max)
}

fn getme_rows(f: &mut Fragment, phase: &str, series: &Series, sustained: &Outcome, plan: &Plan) {
    let scenario = format!("GetMe through the mesh ({phase})");
    let secs = plan.sustained.as_secs();
    f.row(
        &scenario,
        &format!("achieved rate, {secs} s at 1000/s offered"),
        sustained.achieved_rps,
        "req/s",
    )
    .target(">= 1000");
    f.row(
        &scenario,
        &format!("p99, {secs} s at 1000/s"),
        sustained.p99_ms,
        "ms",
    )
    .target("< 50");
    f.row(
        &scenario,
        &format!("p50, {secs} s at 1000/s"),
        sustained.p50_ms,
        "ms",
    );
    f.row(
        &scenario,
        &format!("errors, {secs} s at 1000/s"),
        sustained.error_count() as f64,
        "calls",
    )
    .target("= 0")
    .note(format!("{:?}", sustained.errors));
    f.row(
        &scenario,
        "max sustained rate (p99 < 50 ms, no errors)",
        max_sustained(series),
        "req/s",
    )
    .note("highest offered rate of the sweep that held");
}

fn rss_rows(f: &mut Fragment, rss: &[(String, u64)]) {
    for (name, kib) in rss {
        let mb = *kib as f64 / 1024.0;
        if name.starts_with("envoy ") {
            f.row(
                "Memory under the GetMe load",
                &format!("{name} RSS (max)"),
                mb,
                "MB",
            )
            .baseline(60.0, "Istio sidecar per 1000 rps");
        } else {
            f.row(
                "Memory under the GetMe load",
                &format!("{name} RSS (max)"),
                mb,
                "MB",
            )
            .target("< 30");
        }
    }
}

/// Logins through the edge against the raw bcrypt verify rate of this
/// machine at the same cost, measured just before.
async fn login(f: &mut Fragment, plan: &Plan, channels: &[Channel]) -> anyhow::Result<()> {
    let cost = auth_bcrypt_cost()?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let raw = raw_bcrypt_rate(cost, cores, plan.scenario).await;
    println!("  raw bcrypt verify at cost {cost} on {cores} threads: {raw:.1}/s");
    let logins: Vec<String> = (0..cores * 2).map(|_| unique("blogin")).collect();
    let mesh = interlock_e2e::mesh();
    for (i, l) in logins.iter().enumerate() {
        register_and_login_over(
            &Target::Local(mesh.clone()),
            Caller::default().over(channels[1 + i].clone()),
            l,
        )
        .await;
    }
    let channels = channels.to_vec();
    let logins = Arc::new(logins);
    let callers = cores * 2;
    let out = closed_loop(callers, plan.scenario, move |c, n| {
        let ch = channels[(n as usize * callers + c) % channels.len()].clone();
        let who = logins[c].clone();
        async move {
            let mut auth = AuthServiceClient::new(Caller::default().over(ch));
            code(auth.login(login_request(&who, PASSWORD)).await)
        }
    })
    .await;
    f.run("login", &out);
    f.row(
        "Login",
        "logins/s through the edge",
        out.achieved_rps,
        "req/s",
    )
    .target(&format!(">= {:.1} (90% of raw)", 0.9 * raw))
    .baseline(
        raw,
        &format!("raw bcrypt verify, cost {cost}, {cores} threads"),
    )
    .note(format!(
        "{callers} callers, p99 {:.0} ms, errors {:?}",
        out.p99_ms, out.errors
    ));
    Ok(())
}

/// The cost auth hashes with, from its generated configuration.
fn auth_bcrypt_cost() -> anyhow::Result<u32> {
    let mesh = interlock_e2e::mesh();
    let path = mesh.run_dir.join("workloads/auth/config.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let config: toml::Table = toml::from_str(&text)?;
    Ok(config
        .get("passwords")
        .and_then(|p| p.get("bcrypt_cost"))
        .and_then(|c| c.as_integer())
        .map_or(interlock_auth::config::DEFAULT_BCRYPT_COST, |c| c as u32))
}

/// bcrypt verifications per second on `threads` threads for `duration`.
async fn raw_bcrypt_rate(cost: u32, threads: usize, duration: Duration) -> f64 {
    let hash = bcrypt::hash("a password of the usual length", cost).expect("hash");
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..threads {
        let hash = hash.clone();
        workers.push(tokio::task::spawn_blocking(move || {
            let mut n = 0u64;
            while start.elapsed() < duration {
                assert!(bcrypt::verify("a password of the usual length", &hash).expect("verify"));
                n += 1;
            }
            n
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.expect("bcrypt worker");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

/// Refreshes through the edge: each session's refresh token is single-use,
/// so each caller refreshes its own session with the token it got last.
async fn refresh(f: &mut Fragment, plan: &Plan, channels: &[Channel]) {
    let sessions = plan.refresh_sessions;
    let mesh = interlock_e2e::mesh();
    let mut tokens = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let ch = channels[i % channels.len()].clone();
        tokens.push(
            register_and_login_over(
                &Target::Local(mesh.clone()),
                Caller::default().over(ch),
                &unique("brefresh"),
            )
            .await
            .refresh_token,
        );
    }
    let tokens = Arc::new(tokens.into_iter().map(Mutex::new).collect::<Vec<_>>());
    let channels = channels.to_vec();
    let out = closed_loop(sessions, plan.scenario, move |c, n| {
        let ch = channels[(n as usize * sessions + c) % channels.len()].clone();
        let tokens = tokens.clone();
        async move {
            let current = tokens[c].lock().expect("token").clone();
            let mut auth = AuthServiceClient::new(Caller::default().over(ch));
            let pair = auth
                .refresh(RefreshRequest {
                    refresh_token: current,
                })
                .await;
            if let Ok(p) = &pair {
                *tokens[c].lock().expect("token") = p.get_ref().refresh_token.clone();
            }
            code(pair)
        }
    })
    .await;
    f.run("refresh", &out);
    f.row(
        "Refresh",
        "refreshes/s through the edge",
        out.achieved_rps,
        "req/s",
    )
    .target(">= 1200")
    .baseline(240.0, "Keycloak 26, 120/s per vCPU x 2")
    .note(format!(
        "{sessions} sessions, each token single-use; p99 {:.1} ms, errors {:?}",
        out.p99_ms, out.errors
    ));
}

/// ListMine and MarkReceived open-loop at the target rate, for a user with
/// a few hundred notifications (created by auth through its egress sidecar,
/// as a module would).
async fn notifications(
    f: &mut Fragment,
    plan: &Plan,
    mesh: &Mesh,
    channels: &[Channel],
    as_user: &impl Fn(&Channel) -> Client,
    user_id: &str,
) -> anyhow::Result<()> {
    let egress = interlock_common::client::channel(
        &format!("unix:{}", mesh.egress_socket("auth").display()),
        interlock_common::client::Outbound::default(),
    )
    .map_err(anyhow::Error::msg)
    .context("auth's egress socket")?;
    let mut internal = NotificationsInternalClient::new(egress);
    let mut ids = Vec::new();
    for i in 0..300 {
        let id = internal
            .create(CreateRequest {
                text: format!("bench notification {i}"),
                recipient_ids: vec![user_id.to_owned()],
                request_id: String::new(),
            })
            .await
            .context("create a notification")?
            .into_inner()
            .id;
        ids.push(id);
    }
    let clients: Vec<_> = channels[..USER_CONNECTIONS]
        .iter()
        .map(|ch| NotificationsServiceClient::new(as_user(ch)))
        .collect();
    let list = open_loop(GETME_TARGET_RPS, plan.scenario, |i| {
        let mut c = clients[i as usize % clients.len()].clone();
        async move {
            code(
                c.list_mine(ListMineRequest {
                    page_size: 20,
                    page_token: String::new(),
                    unreceived_only: false,
                })
                .await,
            )
        }
    })
    .await;
    f.run("listmine", &list);
    let mark = open_loop(GETME_TARGET_RPS, plan.scenario, |i| {
        let mut c = clients[i as usize % clients.len()].clone();
        let id = ids[i as usize % ids.len()].clone();
        async move { code(c.mark_received(MarkReceivedRequest { id }).await) }
    })
    .await;
    f.run("markreceived", &mark);
    for (name, out) in [("ListMine", &list), ("MarkReceived", &mark)] {
        f.row(
            name,
            "achieved rate at 1000/s offered",
            out.achieved_rps,
            "req/s",
        )
        .target(">= 1000");
        f.row(name, "p99 at 1000/s", out.p99_ms, "ms")
            .target("< 50")
            .note(format!("errors {:?}", out.errors));
    }
    crate::fanout::run(f, plan, mesh, &mut internal).await
}
