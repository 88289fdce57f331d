//! The gRPC server every service runs: its routes behind the [`Guard`], plus
//! grpc.health.v1 and server reflection, on an already bound listener, until
//! `shutdown` resolves. Health turns NOT_SERVING first, so load balancers
//! stop sending before in-flight calls drain.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::guard::Guard;

/// Longest a single RPC may run before the server cancels it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `routes` on `listener` until `shutdown` completes.
/// `service_names` are the fully qualified gRPC services for health.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    guard: Guard,
    service_names: &[&'static str],
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    for name in service_names {
        health_reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    health_reporter
        .set_service_status("", ServingStatus::Serving)
        .await;

    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(interlock_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in service_names {
        reflection = reflection.with_service_name(*name);
    }
    let reflection = reflection
        .build_v1()
        .expect("the embedded descriptor set is valid");

    let routes = routes.add_service(health_service).add_service(reflection);
    let names: Vec<&'static str> = std::iter::once("")
        .chain(service_names.iter().copied())
        .collect();
    let drain = async move {
        shutdown.await;
        tracing::info!("shutting down: health NOT_SERVING, draining calls");
        for name in names {
            health_reporter
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    };
    Server::builder()
        .accept_http1(true)
        .timeout(REQUEST_TIMEOUT)
        .layer(guard)
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), drain)
        .await
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// What every service builds the same way before serving: its database
/// (migrated), its guard and its bound listener.
pub struct Base {
    pub pool: sqlx::PgPool,
    pub guard: Guard,
    pub listener: TcpListener,
}

impl Base {
    /// Connects and migrates, opens the trust bundle, binds the listener.
    pub async fn prepare(
        server: &crate::settings::ServerSettings,
        database: &crate::db::DatabaseSettings,
        migrator: &sqlx::migrate::Migrator,
        peer: &crate::settings::PeerSettings,
        jwt: Option<std::sync::Arc<crate::jwt::JwtVerifier>>,
    ) -> anyhow::Result<Self> {
        let pool = crate::db::connect(database, migrator).await?;
        let guard = crate::guard::from_settings(peer, jwt).await?;
        let listener = TcpListener::bind(server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", server.listen))?;
        Ok(Self {
            pool,
            guard,
            listener,
        })
    }
}
