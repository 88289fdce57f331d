//! Building and running auth: bind, connect, migrate, load keys, serve.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use interlock_common::client::{self, Outbound};
use interlock_common::db;
use interlock_common::guard;
use interlock_common::jwt::{JwtVerifier, VerifierOptions};
use interlock_common::revocation::Revocations;
use interlock_common::server::{App, Listener};
use interlock_proto::auth::v1::auth_service_server::AuthServiceServer;
use interlock_proto::roles::v1::roles_internal_client::RolesInternalClient;
use interlock_proto::users::v1::users_internal_client::UsersInternalClient;
use tonic::service::Routes;

use crate::config::Settings;
use crate::keys::{KeyPolicy, KeyRing, KeyRingSource};
use crate::password::{HashLimits, PasswordHasher};
use crate::register::{self, Peers};
use crate::revocations::{self, DbRevocations};
use crate::service::{self, Auth, AuthState};
use crate::throttle::{self, ThrottleLimits};
use crate::tokens::TokenSettings;

/// How often keys, throttling records and abandoned registrations are
/// maintained.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);

/// How often auth's own verifier rereads the revoked sessions.
const REVOCATION_REFRESH_MS: u64 = 1000;

/// A built, not yet running, auth server.
pub struct Application {
    app: App,
    state: Arc<AuthState>,
}

impl Application {
    /// Builds from settings; outbound calls carry nothing extra.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Outbound::default()).await
    }

    /// Builds with a given outbound interceptor (tests stand in for the
    /// sidecar with it).
    pub async fn build_with(settings: Settings, outbound: Outbound) -> anyhow::Result<Self> {
        settings.validate()?;
        let pool = db::connect(&settings.database, &crate::MIGRATOR).await?;
        // auth verifies its own tokens from its key ring (below), so it
        // cannot use server::Base, which needs the verifier up front.
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
        let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(pepper, cost, limits))
            .await??;
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
        let revocations = Revocations::start(
            revoked.clone(),
            Duration::from_millis(REVOCATION_REFRESH_MS),
        )
        .await;
        let verifier = Arc::new(
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
        );
        let guard = guard::from_settings(&settings.peer, Some(verifier)).await?;
        let state = Arc::new(AuthState {
            pool,
            hasher,
            keys,
            tokens,
            throttle: ThrottleLimits::from_config(&settings.throttle),
            peers,
        });
        let listener = Listener::bind(&settings.server).await?;
        let http = service::jwks_router(state.keys.clone()).merge(revocations::router(revoked));
        let routes = Routes::from(http).add_service(AuthServiceServer::new(Auth(state.clone())));
        let app = App::from_parts(listener, guard, routes, &["interlock.auth.v1.AuthService"]);
        Ok(Self { app, state })
    }

    /// The TCP address (the real port when configured with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.app.local_addr()
    }

    /// Where it listens, for logs.
    pub fn describe_listener(&self) -> String {
        self.app.describe_listener()
    }

    /// Serves until `shutdown` resolves, maintaining keys meanwhile.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let maintenance = tokio::spawn(maintain(self.state));
        let result = self.app.run(shutdown).await;
        maintenance.abort();
        result
    }
}

async fn maintain(state: Arc<AuthState>) {
    let mut tick = tokio::time::interval(MAINTENANCE_EVERY);
    loop {
        tick.tick().await;
        let now = Utc::now();
        if let Err(error) = state.keys.maintain(now).await {
            tracing::error!(%error, "signing-key maintenance failed");
        }
        if let Err(error) = throttle::prune(&state.pool, &state.throttle, now).await {
            tracing::warn!(%error, "pruning login failures failed");
        }
        match register::sweep_stale(&state.pool, &state.peers).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(swept = n, "compensated abandoned registrations"),
            Err(error) => tracing::warn!(%error, "sweeping registrations failed"),
        }
    }
}
