//! The baseline of the mesh overhead: GetMe served by the same users and
//! roles code, with no Envoy anywhere. A child process (`serve-direct`)
//! runs users and roles on plain TCP with their own databases, the peer
//! check satisfied the way the integration tests satisfy it (the caller
//! sets the forwarded client certificate the sidecar would), and tokens
//! from the test issuer; this process offers the same load as through the
//! mesh.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::Context;
use interlock_itest::Stack;
use interlock_proto::roles::v1::AssignDefaultRolesRequest;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::CreateUserRequest;
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::Caller;
use serde::{Deserialize, Serialize};
use tonic::transport::Endpoint;

use crate::Plan;
use crate::edge::{P99_TARGET_MS, max_sustained, sweep};
use crate::report::Fragment;

/// What the child tells its parent: where users listens and who to be.
#[derive(Serialize, Deserialize)]
struct Served {
    users: String,
    xfcc: String,
    token: String,
}

/// Connections to users, as many as the mesh run's edge sees.
const CONNECTIONS: usize = 16;

pub async fn run(plan: Plan, out: &Path) -> anyhow::Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve-direct")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("start serve-direct")?;
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("piped"))
        .read_line(&mut line)
        .context("read what serve-direct serves")?;
    let served: Served = serde_json::from_str(&line).context("serve-direct's answer")?;
    let caller = Caller {
        xfcc: Some(served.xfcc),
        bearer: Some(served.token),
        address: None,
    };
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        let ch = Endpoint::from_shared(format!("http://{}", served.users))?
            .connect()
            .await?;
        clients.push(UsersServiceClient::new(caller.over(ch)));
    }
    let mut f = Fragment::new("direct");
    println!("GetMe without Envoy:");
    let series = sweep("direct", &clients, &plan, &mut f).await;
    f.row(
        "GetMe without Envoy (baseline)",
        "max sustained rate (p99 < 50 ms, no errors)",
        max_sustained(&series),
        "req/s",
    )
    .note(format!("p99 target {P99_TARGET_MS} ms"));
    f.series.push(series);
    // Closing stdin stops the child.
    drop(child.stdin.take());
    child.wait()?;
    f.write(out)
}

/// The child: users and roles on plain TCP, a user with a profile and its
/// default roles; prints [`Served`] as one JSON line and serves until its
/// stdin closes.
pub async fn serve() -> anyhow::Result<()> {
    let s = Stack::with_test_tokens().await;
    let user = uuid::Uuid::new_v4();
    UsersInternalClient::new(s.as_peer("auth").to(s.users))
        .create_user(CreateUserRequest {
            id: user.to_string(),
            login: format!("direct{}", &user.simple().to_string()[..8]),
            email: format!("direct-{user}@example.com"),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        })
        .await
        .context("create the profile")?;
    RolesInternalClient::new(s.as_peer("auth").to(s.roles))
        .assign_default_roles(AssignDefaultRolesRequest {
            user_id: user.to_string(),
        })
        .await
        .context("assign default roles")?;
    let served = Served {
        users: s.users.to_string(),
        xfcc: interlock_testkit::PeerIdentity::xfcc(&s.pki, "edge"),
        token: s.issuer.token(user),
    };
    println!("{}", serde_json::to_string(&served)?);
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await?;
    Ok(())
}
