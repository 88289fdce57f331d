//! Configuration: how it loads, and the sections every service shares.
//!
//! Sources, later ones winning: the TOML file named by `INTERLOCK_CONFIG`
//! (optional), then environment variables `INTERLOCK_<SERVICE>__<SECTION>__<KEY>`,
//! e.g. `INTERLOCK_AUTH__DATABASE__URL`.
//!
//! A service's `Settings` flattens [`CommonSettings`] (`[server]`, `[peer]`,
//! `[log]`, `[database]`, `[jwt]`) next to its own sections, and validates
//! the whole at start, reporting every problem at once ([`Check`],
//! [`problems_to_result`]).
//!
//! Everything here is plain data: nothing opens a file, a socket or a
//! connection. The types that use a section build themselves from it:
//! `server::Listener::bind`, `db::connect`, `telemetry::init`,
//! `peer::PeerVerifier::from_settings`, `jwt::JwtVerifier::from_settings`,
//! `guard::Guard::from_settings`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, Visitor};

/// Loads `T` for `service` (e.g. `"auth"`) from the file `INTERLOCK_CONFIG`
/// names, if any, and the process environment.
pub fn load<T: DeserializeOwned>(service: &str) -> anyhow::Result<T> {
    let file = std::env::var("INTERLOCK_CONFIG")
        .ok()
        .map(|path| config::File::with_name(&path).required(true));
    load_from(service, file, None)
}

/// [`load`] with its sources given: a file (or none) and, instead of the
/// process environment, a map of variables (tests).
fn load_from<T: DeserializeOwned>(
    service: &str,
    file: Option<impl config::Source + Send + Sync + 'static>,
    env: Option<config::Map<String, String>>,
) -> anyhow::Result<T> {
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(file);
    }
    let prefix = format!("INTERLOCK_{}", service.to_ascii_uppercase());
    builder = builder.add_source(
        config::Environment::with_prefix(&prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(env),
    );
    let settings = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| anyhow::anyhow!("configuration of {service}: {e}"))?;
    Ok(settings)
}

/// Turns collected problems into one error listing all of them.
pub fn problems_to_result(service: &str, problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "configuration of {service} has {} problem(s):\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        )
    }
}

/// A section that knows its own rules and adds every broken one to
/// `problems` (prefixed with its place, e.g. `database.url: ...`).
pub trait Check {
    fn check(&self, problems: &mut Vec<String>);
}

// === impl CommonSettings ===

/// The sections every service shares, flattened into its `Settings`:
///
/// ```text
/// #[derive(Deserialize)]
/// #[serde(deny_unknown_fields)]
/// pub struct Settings {
///     #[serde(flatten)]
///     pub common: CommonSettings,
///     pub peers: PeersConfig,
/// }
/// ```
///
/// `[database]` and `[jwt]` are typed by the service: a service without a
/// database (the sender) or without a `[jwt]` (auth verifies its own
/// tokens) says [`Absent`], and a file that has the section anyway is
/// refused rather than silently ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct CommonSettings<Db = DatabaseSettings, Jwt = JwtSettings> {
    /// Where the service listens (bound by `main`, not by the build).
    pub server: ServerSettings,
    pub peer: PeerSettings,
    #[serde(default)]
    pub log: LogSettings,
    pub database: Db,
    pub jwt: Jwt,
}

impl<Db: Check, Jwt: Check> Check for CommonSettings<Db, Jwt> {
    fn check(&self, problems: &mut Vec<String>) {
        self.server.check(problems);
        self.peer.check(problems);
        self.log.check(problems);
        self.database.check(problems);
        self.jwt.check(problems);
    }
}

/// A shared section this service does not have. Deserializes only from a
/// missing key, so `[database]` in the sender's file is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Absent;

impl<'de> Deserialize<'de> for Absent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AbsentVisitor;

        impl<'de> Visitor<'de> for AbsentVisitor {
            type Value = Absent;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("no such section (this service does not use it)")
            }

            fn visit_none<E: serde::de::Error>(self) -> Result<Absent, E> {
                Ok(Absent)
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Absent, E> {
                Ok(Absent)
            }
        }

        // A missing key arrives as `None`; anything present is refused
        // through `expecting`.
        deserializer.deserialize_option(AbsentVisitor)
    }
}

impl Check for Absent {
    fn check(&self, _: &mut Vec<String>) {}
}

// === impl ServerSettings ===

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// `127.0.0.1:7000` or `unix:/path/to/grpc.sock`. In the mesh a Unix
    /// socket in a directory only the workload's user can open, so only its
    /// own sidecar can reach the service.
    pub listen: ListenAddr,
    /// On a Unix socket, the Unix users that may connect (SO_PEERCRED).
    /// Default: the socket's owner (the service's user, shared with its
    /// sidecar) and root.
    #[serde(default)]
    pub unix_peer_uids: Option<Vec<u32>>,
}

impl Check for ServerSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if matches!(self.listen, ListenAddr::Tcp(_)) && self.unix_peer_uids.is_some() {
            problems.push("server.unix_peer_uids: only applies to a unix: listen address".into());
        }
    }
}

/// Where a service listens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl TryFrom<String> for ListenAddr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        match s.strip_prefix("unix:") {
            Some(path) if path.starts_with('/') => Ok(Self::Unix(PathBuf::from(path))),
            Some(_) => Err(format!("{s}: a unix: address needs an absolute path")),
            None => s
                .parse()
                .map(Self::Tcp)
                .map_err(|_| format!("{s}: expected host:port or unix:/path")),
        }
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(a: SocketAddr) -> Self {
        Self::Tcp(a)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => a.fmt(f),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

// === impl PeerSettings ===

/// `[peer]`: where the trust bundle for peer checks comes from. Exactly one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// SPIFFE Workload API endpoint, e.g. `unix:///run/spire/agent.sock`.
    pub workload_api_socket: Option<String>,
    /// A PEM file of CA certificates (tests, or a static bundle).
    pub bundle_pem_file: Option<PathBuf>,
}

impl Check for PeerSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if self.workload_api_socket.is_some() == self.bundle_pem_file.is_some() {
            problems.push("peer: set exactly one of workload_api_socket or bundle_pem_file".into());
        }
    }
}

// === impl LogSettings ===

/// `[log]`: logging and tracing.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: LogFormat,
    /// e.g. `info,interlock_auth=debug`.
    pub filter: String,
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`; unset: no traces.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0 (a sampled parent is
    /// always followed).
    pub sampling_ratio: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
            otlp_endpoint: None,
            sampling_ratio: 1.0,
        }
    }
}

impl Check for LogSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if let Some(endpoint) = &self.otlp_endpoint
            && !is_http(endpoint)
        {
            problems.push("log.otlp_endpoint: must be an http(s) URL".into());
        }
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            problems.push("log.sampling_ratio: must be 0.0 to 1.0".into());
        }
    }
}

// === impl DatabaseSettings ===

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db`; secret (it holds a password).
    pub url: SecretString,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_acquire_timeout_secs")]
    pub acquire_timeout_secs: u64,
}

fn default_max_connections() -> u32 {
    10
}

fn default_acquire_timeout_secs() -> u64 {
    5
}

impl DatabaseSettings {
    /// Settings for a URL with default pool limits.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: SecretString::from(url.into()),
            max_connections: default_max_connections(),
            acquire_timeout_secs: default_acquire_timeout_secs(),
        }
    }
}

impl Check for DatabaseSettings {
    fn check(&self, problems: &mut Vec<String>) {
        let url = self.url.expose_secret();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            problems.push("database.url: must start with postgres://".into());
        }
        if self.max_connections == 0 {
            problems.push("database.max_connections: must be at least 1".into());
        }
    }
}

// === impl JwtSettings ===

/// `[jwt]`: how a service verifies access tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// auth's JWKS, e.g. `http://127.0.0.1:7000/.well-known/jwks.json`.
    pub jwks_url: String,
    /// Fetch `jwks_url` over this Unix socket (the service's egress sidecar
    /// in the mesh) instead of TCP.
    #[serde(default)]
    pub jwks_socket: Option<PathBuf>,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    #[serde(default = "default_min_refresh")]
    pub min_refresh_secs: u64,
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
    /// auth's revoked sessions (same socket as the JWKS); by default
    /// `/internal/revoked-sessions` on the JWKS URL's origin.
    #[serde(default)]
    pub revoked_sessions_url: Option<String>,
    /// How often the revoked sessions are refetched: the longest a revoked
    /// session's access token is still accepted (plus one fetch).
    #[serde(default = "default_revocation_refresh")]
    pub revocation_refresh_ms: u64,
}

fn default_revocation_refresh() -> u64 {
    2000
}

/// The `iss` auth writes and services expect by default.
pub fn default_issuer() -> String {
    "interlock-auth".into()
}

/// The `aud` auth writes and services expect by default.
pub fn default_audience() -> String {
    "interlock".into()
}

fn default_leeway() -> u64 {
    30
}

fn default_min_refresh() -> u64 {
    10
}

fn default_max_age() -> u64 {
    300
}

impl Check for JwtSettings {
    fn check(&self, problems: &mut Vec<String>) {
        if !is_http(&self.jwks_url) {
            problems.push("jwt.jwks_url: must be an http(s) URL".into());
        }
        if self.issuer.is_empty() {
            problems.push("jwt.issuer: must not be empty".into());
        }
        if self.audience.is_empty() {
            problems.push("jwt.audience: must not be empty".into());
        }
        if let Some(url) = &self.revoked_sessions_url
            && !is_http(url)
        {
            problems.push("jwt.revoked_sessions_url: must be an http(s) URL".into());
        }
        if !(100..=60_000).contains(&self.revocation_refresh_ms) {
            problems.push("jwt.revocation_refresh_ms: must be within 100..=60000".into());
        }
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// An outbound peer: `http(s)://host:port` or `unix:/path` (the egress
/// sidecar's socket in the mesh).
pub fn check_url(field: &str, url: &str, problems: &mut Vec<String>) {
    let ok = is_http(url)
        || url
            .strip_prefix("unix:")
            .is_some_and(|p| p.starts_with('/'));
    if !ok {
        problems.push(format!("{field}: must be an http(s) URL or unix:/path"));
    }
}

#[cfg(test)]
mod tests;
