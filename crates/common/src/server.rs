//! The one service skeleton. Each service's `build` returns an [`App`]: its
//! routes behind the [`Guard`], plus optional background tasks (auth's key
//! maintenance, the sender's delivery loop). `main` binds the
//! [`Listener`] and calls [`App::run`] with [`shutdown_signal`]; tests bind
//! port 0 and pass their own shutdown future.
//!
//! Every app also serves grpc.health.v1, reporting the services the policy
//! says its module serves, and server reflection of the external services.
//! On shutdown health turns NOT_SERVING first, so load balancers stop
//! sending, then in-flight calls drain while the background tasks are told
//! to stop; `run` returns when all of them are done. An app with a
//! database ([`App::with_database`]) also reports NOT_SERVING while the
//! database does not answer, and SERVING again once it does; the pool
//! reconnects by itself, so no restart is needed. Past
//! [`MAX_CONCURRENT_CALLS`] calls on one connection the service sheds load
//! at once (UNAVAILABLE) instead of queueing it.

mod listener;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;

pub use listener::Listener;

use crate::client::Outbound;
use crate::guard::Guard;
use crate::jwt::JwtVerifier;
use crate::settings::CommonSettings;

/// Longest a single RPC may run before the server cancels it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls served at once per connection (the sidecar holds one or two);
/// beyond it calls are refused with UNAVAILABLE, not queued.
pub const MAX_CONCURRENT_CALLS: usize = 256;

/// How often the database is pinged for health, and how long a ping may
/// take before the database counts as unreachable.
pub const DATABASE_CHECK_EVERY: Duration = Duration::from_secs(1);
pub const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A background task: given a receiver that turns `true` at shutdown, the
/// future to run until then.
type Task = Box<dyn FnOnce(watch::Receiver<bool>) -> BoxFuture + Send>;

// === impl App ===

/// A built service, ready to run on a listener.
pub struct App {
    module: &'static str,
    guard: Guard,
    routes: Routes,
    tasks: Vec<(&'static str, Task)>,
    database: Option<PgPool>,
}

impl App {
    /// `module`'s `routes` behind `guard`. Health reports the services the
    /// guard's policy says `module` serves (none for the sender: it only
    /// answers for the whole server).
    pub fn new(module: &'static str, guard: Guard, routes: Routes) -> Self {
        Self {
            module,
            guard,
            routes,
            tasks: Vec::new(),
            database: None,
        }
    }

    /// Health follows `pool`'s database: NOT_SERVING while it does not
    /// answer, SERVING again when it does.
    pub fn with_database(mut self, pool: PgPool) -> Self {
        self.database = Some(pool);
        self
    }

    /// Also runs `task` while the app serves. It gets a receiver that turns
    /// `true` at shutdown and must return soon after; [`App::run`] waits
    /// for it (so the sender finishes the notification in progress).
    pub fn with_task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.tasks.push((
            name,
            Box::new(move |stop| Box::pin(task(stop)) as BoxFuture),
        ));
        self
    }

    /// The gRPC services health reports as SERVING, besides the server
    /// as a whole (`""`).
    pub fn health_services(&self) -> Vec<String> {
        self.guard
            .policy()
            .services_of(self.module)
            .map(|rule| rule.name.clone())
            .collect()
    }

    /// Serves on `listener` until `shutdown` resolves, running the
    /// background tasks meanwhile; then drains and stops them.
    pub async fn run(
        self,
        listener: Listener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let names: Vec<String> = std::iter::once(String::new())
            .chain(self.health_services())
            .collect();
        let (health, health_service) = tonic_health::server::health_reporter();
        set_health(&health, &names, ServingStatus::Serving).await;
        let (stop, stopping) = watch::channel(false);
        let mut tasks = JoinSet::new();
        if let Some(pool) = self.database {
            let (health, names, stopping) = (health.clone(), names.clone(), stopping.clone());
            tasks.spawn(async move {
                watch_database(pool, health, names, stopping).await;
                "database health"
            });
        }
        for (name, task) in self.tasks {
            let task = task(stopping.clone());
            tasks.spawn(async move {
                task.await;
                name
            });
        }
        let mut drain = stopping;
        let serving = serve(
            listener,
            self.routes,
            self.guard,
            health_service,
            async move {
                let _ = drain.wait_for(|stop| *stop).await;
                set_health(&health, &names, ServingStatus::NotServing).await;
            },
        );
        tokio::pin!(serving);
        let served = tokio::select! {
            // The server ends before the signal only when it failed.
            served = &mut serving => served,
            () = shutdown => {
                tracing::info!("shutting down: health NOT_SERVING, draining calls, stopping tasks");
                let _ = stop.send(true);
                serving.await
            }
        };
        let _ = stop.send(true);
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(name) => tracing::debug!(task = name, "background task stopped"),
                Err(error) => tracing::error!(%error, "background task failed"),
            }
        }
        served.map_err(Into::into)
    }
}

// === impl Base ===

/// What every service with a database and user tokens (roles, users,
/// notifications) builds the same way from the shared sections: its
/// migrated pool, and a guard that verifies user tokens as `[jwt]` says.
pub struct Base {
    pub pool: PgPool,
    pub guard: Guard,
}

impl Base {
    /// Connects and migrates, starts the token verifier (with `outbound`'s
    /// headers on its fetches), opens the trust bundle.
    pub async fn prepare(
        common: &CommonSettings,
        migrator: &Migrator,
        outbound: &Outbound,
    ) -> anyhow::Result<Self> {
        let jwt = JwtVerifier::from_settings(&common.jwt, outbound).await?;
        let pool = crate::db::connect(&common.database, migrator).await?;
        let guard = Guard::from_settings(&common.peer, Some(jwt)).await?;
        Ok(Self { pool, guard })
    }
}

// === serving ===

async fn set_health(
    health: &tonic_health::server::HealthReporter,
    names: &[String],
    status: ServingStatus,
) {
    for name in names {
        health.set_service_status(name, status).await;
    }
}

/// Pings the database every [`DATABASE_CHECK_EVERY`] until `stopping`;
/// health turns NOT_SERVING when a ping fails or times out and SERVING
/// when one succeeds again (each change logged once).
async fn watch_database(
    pool: PgPool,
    health: tonic_health::server::HealthReporter,
    names: Vec<String>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut reachable = true;
    loop {
        tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(DATABASE_CHECK_EVERY) => {}
        }
        let ping = tokio::time::timeout(
            DATABASE_CHECK_TIMEOUT,
            sqlx::query("SELECT 1").execute(&pool),
        )
        .await;
        let now = matches!(ping, Ok(Ok(_)));
        if now == reachable || *stopping.borrow() {
            continue;
        }
        reachable = now;
        if now {
            tracing::info!("database reachable again: health SERVING");
            set_health(&health, &names, ServingStatus::Serving).await;
        } else {
            let error = match ping {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {DATABASE_CHECK_TIMEOUT:?}"),
            };
            tracing::warn!(%error, "database unreachable: health NOT_SERVING");
            set_health(&health, &names, ServingStatus::NotServing).await;
        }
    }
}

/// Runs `routes` (plus health and reflection) on `listener` until `drain`
/// completes.
async fn serve(
    listener: Listener,
    routes: Routes,
    guard: Guard,
    health_service: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    drain: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Reflection lists every external service (the edge sends reflection
    // to one service) and never an internal one.
    let mut reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(interlock_proto::EXTERNAL_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
    for rule in guard.policy().external_services() {
        reflection = reflection.with_service_name(rule.name.clone());
    }
    let reflection = reflection
        .build_v1()
        .expect("the embedded descriptor set is valid");

    let routes = routes.add_service(health_service).add_service(reflection);
    let router = Server::builder()
        .accept_http1(true)
        .timeout(REQUEST_TIMEOUT)
        .concurrency_limit_per_connection(MAX_CONCURRENT_CALLS)
        .load_shed(true)
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
                Ok(stream) => listener::peer_allowed(stream, &peer_uids),
                Err(_) => true,
            };
            let incoming =
                tokio_stream::StreamExt::filter(UnixListenerStream::new(listener), allowed);
            router.serve_with_incoming_shutdown(incoming, drain).await
        }
    }
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

// === impl TraceLayer ===

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
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

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
                crate::telemetry::record_status(
                    &tracing::Span::current(),
                    crate::telemetry::grpc_status(&resp),
                );
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests;
