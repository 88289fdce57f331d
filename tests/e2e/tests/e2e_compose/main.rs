//! End-to-end tests only the compose deployment has: identity by
//! container label (SPIRE's Docker workload attestor), a service's data
//! kept across container restarts (its database volume), and the SPIRE
//! agent container killed and brought back. Run by scripts/test.sh after
//! `scripts/compose-e2e.sh up`, beside the shared suite in `tests/e2e`.
//!
//! These tests restart containers, so they take turns (one lock), and the
//! shared suite runs before them (cargo runs test binaries one at a time).

use std::process::Output;
use std::time::Duration;

use interlock_e2e::{Compose, Target, edge, register_and_login, target, unique_login};
use interlock_proto::auth::v1::auth_service_client::AuthServiceClient;
use interlock_proto::users::v1::GetMeRequest;
use interlock_proto::users::v1::users_service_client::UsersServiceClient;
use interlock_testkit::{PASSWORD, Patience, login_request, wait_until};
use tokio::sync::Mutex;

/// One container-disrupting test at a time.
static TURN: Mutex<()> = Mutex::const_new(());

/// The SPIRE agent's CLI in a throwaway container of the agent's image,
/// with `flags` (labels, network), asking the agent's Workload API for an
/// X.509-SVID: the identity SPIRE gives such a container.
fn fetch_svid(compose: &Compose, flags: &[&str]) -> Output {
    let image = std::env::var("INTERLOCK_IMAGE_SPIRE_AGENT")
        .expect("INTERLOCK_IMAGE_SPIRE_AGENT (from scripts/compose-e2e.sh env)");
    let mut cmd = compose.docker();
    cmd.args(["run", "--rm"]).args(flags).args([
        "-v",
        "interlock_spire-agent-socket:/run/spire/sockets:ro",
        "--entrypoint",
        "/opt/spire/bin/spire-agent",
        &image,
        "api",
        "fetch",
        "x509",
        "-socketPath",
        "/run/spire/sockets/agent.sock",
        "-timeout",
        "5s",
    ]);
    cmd.output().expect("docker run")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The Docker attestor hands out an SVID by container label only: a
/// container without the workload label gets none, nor does one that
/// shares auth's network namespace (the namespace is not the identity);
/// a container labelled `roles` gets roles' identity and no other.
#[tokio::test]
async fn identity_follows_the_container_label_not_the_network_namespace() {
    let _turn = TURN.lock().await;
    let target = target();
    let compose = target.compose();
    let mesh = target.mesh();

    let unlabelled = fetch_svid(compose, &[]);
    assert!(
        !unlabelled.status.success(),
        "a container without a workload label got an SVID: {}",
        text(&unlabelled)
    );

    let netns = format!("container:{}", Compose::container("auth"));
    let beside_auth = fetch_svid(compose, &["--network", &netns]);
    assert!(
        !beside_auth.status.success(),
        "a container in auth's network namespace got an SVID: {}",
        text(&beside_auth)
    );

    let labelled = fetch_svid(compose, &["--label", "org.interlock.workload=roles"]);
    let got = text(&labelled);
    assert!(labelled.status.success(), "{got}");
    assert!(got.contains(&mesh.spiffe_id("roles")), "{got}");
    for other in ["auth", "users", "notifications", "sender"] {
        assert!(
            !got.contains(&mesh.spiffe_id(other)),
            "roles' label also gave {other}'s identity: {got}"
        );
    }
}

/// Logs `login` in and reads its profile through the edge.
async fn login_and_get_me(target: &Target, login: &str) -> Result<String, String> {
    let pair = AuthServiceClient::new(edge(target, None).await)
        .login(login_request(login, PASSWORD))
        .await
        .map_err(|s| format!("login: {s:?}"))?
        .into_inner();
    let me = UsersServiceClient::new(edge(target, Some(&pair.access_token)).await)
        .get_me(GetMeRequest {})
        .await
        .map_err(|s| format!("GetMe: {s:?}"))?
        .into_inner();
    Ok(me.login)
}

/// `docker compose up --wait` for everything (or `services`): what an
/// operator runs to bring exited containers back.
fn compose_up(compose: &Compose, services: &[&str]) {
    let mut cmd = compose.compose();
    cmd.args([
        "up",
        "-d",
        "--pull",
        "never",
        "--wait",
        "--wait-timeout",
        "180",
    ])
    .args(services);
    compose.run(cmd);
}

/// Restarting auth, users and their databases loses nothing: the account
/// (auth's database volume) and the profile (users') are still there and
/// the user logs in again.
#[tokio::test]
async fn restarted_services_and_databases_keep_their_data() {
    let _turn = TURN.lock().await;
    let target = target();
    let compose = target.compose();
    let login = unique_login("restart");
    register_and_login(&target, &login).await;

    let mut restart = compose.compose();
    restart.args([
        "restart",
        "postgres-users",
        "postgres-auth",
        "users",
        "auth",
    ]);
    compose.run(restart);
    // Sidecars follow their service (depends_on restart: true) but may
    // race its restart; `up --wait` brings anything exited back.
    compose_up(compose, &[]);

    let (target, login) = (&target, &login);
    let seen = wait_until(
        "the user logs in and reads the profile after the restart",
        Patience::secs(90).every(Duration::from_secs(1)),
        || login_and_get_me(target, login),
    )
    .await;
    assert_eq!(&seen, login);
}

/// The SPIRE agent's container killed and brought back: a sidecar
/// started afterwards gets its SVID from the new agent, and calls through
/// it succeed.
#[tokio::test]
async fn sidecars_get_svids_again_after_the_spire_agent_is_killed() {
    let _turn = TURN.lock().await;
    let target = target();
    let compose = target.compose();

    let mut kill = compose.docker();
    kill.args(["kill", &Compose::container("spire-agent")]);
    compose.run(kill);
    compose_up(compose, &["spire-agent"]);
    let mut restart = compose.compose();
    restart.args(["restart", "users-sidecar"]);
    compose.run(restart);

    let login = unique_login("agent");
    let (target, login) = (&target, &login);
    wait_until(
        "a user registers through the mesh after the agent came back",
        Patience::secs(60).every(Duration::from_secs(1)),
        || async move {
            AuthServiceClient::new(edge(target, None).await)
                .register(interlock_testkit::register_request(login))
                .await
                .map_err(|s| format!("{s:?}"))
        },
    )
    .await;
    interlock_e2e::confirm_email(target, login, PASSWORD).await;
    let seen = wait_until(
        "GetMe through users' restarted sidecar",
        Patience::secs(30).every(Duration::from_secs(1)),
        || login_and_get_me(target, login),
    )
    .await;
    assert_eq!(&seen, login);
}
