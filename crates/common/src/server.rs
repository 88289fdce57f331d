//! The gRPC server every service runs: its routes behind the [`Guard`], plus
//! grpc.health.v1 and server reflection, on an already bound listener, until
//! `shutdown` resolves. Health turns NOT_SERVING first, so load balancers
//! stop sending before in-flight calls drain.

use std::future::Future;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::guard::Guard;

/// Longest a single RPC may run before the server cancels it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound listener: TCP (tests, containers) or a Unix socket (local mesh).
pub enum Listener {
    Tcp(TcpListener),
    /// Accepts only peers whose Unix user is in `peer_uids` (SO_PEERCRED).
    Unix {
        listener: UnixListener,
        path: std::path::PathBuf,
        peer_uids: Vec<u32>,
    },
}

impl Listener {
    /// Binds `server.listen`; a stale socket file from an earlier run is
    /// replaced.
    ///
    /// On a Unix socket only the users in `server.unix_peer_uids` may
    /// connect; by default the socket's owner (the service's own user, which
    /// its sidecar shares) and root. The `x-forwarded-client-cert` the
    /// service trusts can then only come from its own sidecar: another local
    /// user holding a genuine (public) SVID certificate cannot present it.
    pub async fn bind(server: &crate::settings::ServerSettings) -> anyhow::Result<Self> {
        use crate::settings::ListenAddr;
        match &server.listen {
            ListenAddr::Tcp(a) => Ok(Self::Tcp(
                TcpListener::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding {a}: {e}"))?,
            )),
            ListenAddr::Unix(path) => {
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                let listener = UnixListener::bind(path)
                    .map_err(|e| anyhow::anyhow!("binding {}: {e}", path.display()))?;
                let peer_uids = match &server.unix_peer_uids {
                    Some(uids) => uids.clone(),
                    None => {
                        use std::os::unix::fs::MetadataExt;
                        vec![std::fs::metadata(path)?.uid(), 0]
                    }
                };
                Ok(Self::Unix {
                    listener,
                    path: path.clone(),
                    peer_uids,
                })
            }
        }
    }

    /// The TCP address (the real port when bound to port 0).
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix { .. } => None,
        }
    }

    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            Self::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }
}

/// Runs `routes` on `listener` until `shutdown` completes.
/// `service_names` are the fully qualified gRPC services for health.
pub async fn serve(
    listener: Listener,
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

    // Reflection lists every external service (the edge sends reflection
    // to one service) and never an internal one.
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(interlock_proto::EXTERNAL_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for name in external_services() {
        reflection = reflection.with_service_name(name);
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
    let router = Server::builder()
        .accept_http1(true)
        .timeout(REQUEST_TIMEOUT)
        .layer(TraceLayer)
        .layer(guard)
        .add_routes(routes);
    match listener {
        Listener::Tcp(l) => {
            router
                .serve_with_incoming_shutdown(TcpListenerStream::new(l), drain)
                .await
        }
        Listener::Unix {
            listener,
            peer_uids,
            ..
        } => {
            let allowed = move |conn: &std::io::Result<tokio::net::UnixStream>| match conn {
                Ok(stream) => peer_allowed(stream, &peer_uids),
                Err(_) => true,
            };
            let incoming =
                tokio_stream::StreamExt::filter(UnixListenerStream::new(listener), allowed);
            router.serve_with_incoming_shutdown(incoming, drain).await
        }
    }
}

/// Whether a Unix-socket peer may talk to the service; refused connections
/// are closed before a byte is read.
fn peer_allowed(stream: &tokio::net::UnixStream, uids: &[u32]) -> bool {
    match stream.peer_cred() {
        Ok(cred) if uids.contains(&cred.uid()) => true,
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "connection refused: not this service's sidecar user"
            );
            false
        }
        Err(error) => {
            tracing::warn!(%error, "connection refused: peer credentials unavailable");
            false
        }
    }
}

/// Wraps every request in its server span (see
/// [`crate::telemetry::server_span`]) and records the gRPC status.
#[derive(Clone, Copy)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for TraceService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        use tracing::Instrument;
        let path = req.uri().path().to_owned();
        if path.starts_with("/grpc.health.v1.") {
            // Probes every second: not worth a trace each.
            return Box::pin(self.inner.call(req));
        }
        let span = crate::telemetry::server_span(req.headers(), &path);
        let fut = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        Box::pin(
            async move {
                let resp = fut.await?;
                crate::telemetry::record_status(&tracing::Span::current(), grpc_status(&resp));
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// The status of a unary tonic response: in the headers when the call
/// failed before any message (trailers-only), else OK (sent in trailers).
pub fn grpc_status<B>(resp: &http::Response<B>) -> i32 {
    resp.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Fully qualified names of the external services, from the policy.
pub fn external_services() -> Vec<String> {
    let mut names: Vec<String> = crate::policy::Policy::embedded()
        .services()
        .filter(|s| s.exposure == crate::policy::Exposure::External)
        .map(|s| s.name.clone())
        .collect();
    names.sort();
    names
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
    pub listener: Listener,
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
        let listener = Listener::bind(server).await?;
        Ok(Self {
            pool,
            guard,
            listener,
        })
    }
}

/// A built service, ready to run: its listener, guard and routes.
pub struct App {
    listener: Listener,
    guard: Guard,
    routes: Routes,
    services: &'static [&'static str],
}

impl App {
    /// `services` are the gRPC service names reported by health.
    pub fn new(base: Base, routes: Routes, services: &'static [&'static str]) -> Self {
        Self::from_parts(base.listener, base.guard, routes, services)
    }

    /// For a service that builds its listener and guard itself (auth
    /// verifies its own tokens, so it cannot use [`Base::prepare`]).
    pub fn from_parts(
        listener: Listener,
        guard: Guard,
        routes: Routes,
        services: &'static [&'static str],
    ) -> Self {
        Self {
            listener,
            guard,
            routes,
            services,
        }
    }

    /// The TCP address (the real port when configured with port 0).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.tcp_addr()
    }

    /// Where it listens, for logs.
    pub fn describe_listener(&self) -> String {
        self.listener.describe()
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve(
            self.listener,
            self.routes,
            self.guard,
            self.services,
            shutdown,
        )
        .await
        .map_err(Into::into)
    }
}
