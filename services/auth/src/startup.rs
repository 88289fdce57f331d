//! Building auth: connect and migrate, load keys, wire the registration
//! peers and auth's own token verifier, and keep keys, throttling records
//! and abandoned registrations maintained in the background.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use interlock_common::client::{self, Outbound};
use interlock_common::db;
use interlock_common::guard::Guard;
use interlock_common::jwt::{JwtVerifier, VerifierOptions};
use interlock_common::revocation::Revocations;
use interlock_common::server::App;
use interlock_proto::auth::v1::auth_service_server::AuthServiceServer;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use tokio::sync::watch;
use tonic::service::Routes;

use crate::codes::{self, CodeHasher};
use crate::config::Settings;
use crate::discovery::{self, DiscoveryDocument};
use crate::keys::{KeyPolicy, KeyRing, KeyRingSource};
use crate::mailer::Mailer;
use crate::password::{HashLimits, PasswordHasher};
use crate::register::{self, Peers};
use crate::revocations::{self, DbRevocations};
use crate::service::{Auth, AuthState};
use crate::throttle::{self, ThrottleLimits};
use crate::tokens::TokenSettings;

/// How often keys, throttling records and abandoned registrations are
/// maintained.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);

/// How often auth's own verifier rereads the revoked sessions.
const REVOCATION_REFRESH_MS: u64 = 1000;

/// auth, ready to run on a listener, with its maintenance as a background
/// task. Outbound calls carry `outbound`'s headers (none in production;
/// tests stand in for the sidecar with it).
pub async fn build(settings: Settings, outbound: Outbound) -> anyhow::Result<App> {
    settings.validate()?;
    let common = &settings.common;
    let pool = db::connect(&common.database, &crate::MIGRATOR).await?;
    let t = &settings.tokens;
    let tokens = TokenSettings {
        issuer: t.issuer.clone(),
        audience: t.audience.clone(),
        access_ttl: chrono::Duration::seconds(t.access_ttl_secs),
        refresh_ttl: chrono::Duration::seconds(t.refresh_ttl_secs),
    };
    let keys = Arc::new(KeyRing::new(
        pool.clone(),
        &settings.keys.seal_secret,
        KeyPolicy {
            rotation_interval: chrono::Duration::seconds(settings.keys.rotation_interval_secs),
            publish_lead: chrono::Duration::seconds(settings.keys.publish_lead_secs),
            retire_after: tokens.access_ttl + chrono::Duration::seconds(60),
        },
    ));
    keys.maintain(Utc::now()).await?;
    let pepper = settings.passwords.pepper.clone();
    let cost = settings.passwords.bcrypt_cost;
    let limits = HashLimits::from_config(&settings.throttle);
    let hasher =
        tokio::task::spawn_blocking(move || PasswordHasher::new(pepper, cost, limits)).await??;
    let peers = Peers {
        users: UsersInternalClient::new(
            client::channel(&settings.peers.users_url, outbound.clone())
                .map_err(anyhow::Error::msg)?,
        ),
        roles: RolesInternalClient::new(
            client::channel(&settings.peers.roles_url, outbound).map_err(anyhow::Error::msg)?,
        ),
    };
    // Every access token that may still be unexpired: lifetime + leeway.
    let revoked = Arc::new(DbRevocations {
        pool: pool.clone(),
        window: tokens.access_ttl + chrono::Duration::seconds(60),
    });
    let verifier = own_verifier(&tokens, &keys, revoked.clone()).await;
    let guard = Guard::from_settings(&common.peer, Some(verifier)).await?;
    let (mailer, delivery) = match &settings.email {
        Some(email) => {
            let (mailer, delivery) = Mailer::new(email)?;
            (Some(mailer), Some(delivery))
        }
        None => (None, None),
    };
    let state = Arc::new(AuthState {
        pool: pool.clone(),
        hasher,
        keys,
        tokens,
        throttle: ThrottleLimits::from_config(&settings.throttle, &settings.accounts),
        peers,
        codes: CodeHasher::new(&settings.passwords.pepper),
        mailer,
        accounts: settings.accounts.clone(),
    });
    let document = DiscoveryDocument::new(&state.tokens.issuer, &settings.tokens.public_url);
    let max_age =
        discovery::jwks_max_age(chrono::Duration::seconds(settings.keys.publish_lead_secs));
    let http = discovery::router(state.keys.clone(), document, max_age)
        .merge(revocations::router(revoked));
    let routes = Routes::from(http).add_service(AuthServiceServer::new(Auth(state.clone())));
    let app = App::new(crate::MODULE, guard, routes)
        .with_database(pool)
        .with_task("maintenance", move |stop| maintain(state, stop));
    Ok(match delivery {
        Some(delivery) => app.with_task("email", move |stop| delivery.run(stop)),
        None => app,
    })
}

/// auth verifies the tokens it issued (Logout, for one) like any service,
/// but from its own key ring and its own revoked sessions, not over HTTP.
async fn own_verifier(
    tokens: &TokenSettings,
    keys: &Arc<KeyRing>,
    revoked: Arc<DbRevocations>,
) -> Arc<JwtVerifier> {
    let revocations =
        Revocations::start(revoked, Duration::from_millis(REVOCATION_REFRESH_MS)).await;
    Arc::new(
        JwtVerifier::new(
            Arc::new(KeyRingSource(keys.clone())),
            VerifierOptions {
                issuer: tokens.issuer.clone(),
                audience: tokens.audience.clone(),
                leeway: Duration::from_secs(30),
                min_refresh_interval: Duration::from_secs(1),
                max_age: Duration::from_secs(30),
            },
        )
        .with_revocations(revocations),
    )
}

/// Every [`MAINTENANCE_EVERY`] until `stop` turns true: rotate keys, prune
/// login failures, compensate abandoned registrations. A round in progress
/// at shutdown is dropped (each step is its own transaction).
async fn maintain(state: Arc<AuthState>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = async {
                tick.tick().await;
                maintain_once(&state).await;
            } => {}
        }
    }
}

async fn maintain_once(state: &AuthState) {
    let now = Utc::now();
    if let Err(error) = state.keys.maintain(now).await {
        tracing::error!(%error, "signing-key maintenance failed");
    }
    if let Err(error) = throttle::prune(&state.pool, &state.throttle, now).await {
        tracing::warn!(%error, "pruning login failures failed");
    }
    if let Err(error) = codes::prune(&state.pool).await {
        tracing::warn!(%error, "pruning expired email codes failed");
    }
    match register::sweep_stale(&state.pool, &state.peers).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(swept = n, "compensated abandoned registrations"),
        Err(error) => tracing::warn!(%error, "sweeping registrations failed"),
    }
}
