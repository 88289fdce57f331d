//! Configuration loading and the settings sections every service shares.
//!
//! Sources, later ones winning: the TOML file named by `INTERLOCK_CONFIG`
//! (optional), then environment variables `INTERLOCK_<SERVICE>__<SECTION>__<KEY>`,
//! e.g. `INTERLOCK_AUTH__DATABASE__URL`. Each service validates its whole
//! configuration at start and reports every problem at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::HttpJson;
use crate::jwt::{JwtVerifier, VerifierOptions};
use crate::peer::{PemFileBundle, TrustBundle, WorkloadApiBundle};
use crate::revocation::Revocations;

/// Loads `T` for `service` (e.g. `"auth"`).
pub fn load<T: DeserializeOwned>(service: &str) -> anyhow::Result<T> {
    let mut builder = config::Config::builder();
    if let Ok(path) = std::env::var("INTERLOCK_CONFIG") {
        builder = builder.add_source(config::File::with_name(&path).required(true));
    }
    let prefix = format!("INTERLOCK_{}", service.to_ascii_uppercase());
    builder = builder.add_source(
        config::Environment::with_prefix(&prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
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

/// `[peer]`: where the trust bundle for peer checks comes from. Exactly one.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// SPIFFE Workload API endpoint, e.g. `unix:///run/spire/agent.sock`.
    pub workload_api_socket: Option<String>,
    /// A PEM file of CA certificates (tests, or a static bundle).
    pub bundle_pem_file: Option<PathBuf>,
}

impl PeerSettings {
    pub fn check(&self, problems: &mut Vec<String>) {
        if self.workload_api_socket.is_some() == self.bundle_pem_file.is_some() {
            problems.push("peer: set exactly one of workload_api_socket or bundle_pem_file".into());
        }
    }

    /// Opens the configured bundle source.
    pub async fn bundle(&self, trust_domain: &str) -> anyhow::Result<Arc<dyn TrustBundle>> {
        match (&self.workload_api_socket, &self.bundle_pem_file) {
            (Some(socket), None) => Ok(Arc::new(
                WorkloadApiBundle::connect(socket, trust_domain)
                    .await
                    .map_err(anyhow::Error::msg)?,
            )),
            (None, Some(path)) => Ok(Arc::new(
                PemFileBundle::load(path).map_err(anyhow::Error::msg)?,
            )),
            _ => anyhow::bail!("peer: set exactly one of workload_api_socket or bundle_pem_file"),
        }
    }
}

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
    /// [`crate::revocation::REVOKED_SESSIONS_PATH`] on the JWKS URL's origin.
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

impl JwtSettings {
    pub fn check(&self, problems: &mut Vec<String>) {
        if !(self.jwks_url.starts_with("http://") || self.jwks_url.starts_with("https://")) {
            problems.push("jwt.jwks_url: must be an http(s) URL".into());
        }
        if self.issuer.is_empty() {
            problems.push("jwt.issuer: must not be empty".into());
        }
        if self.audience.is_empty() {
            problems.push("jwt.audience: must not be empty".into());
        }
        if let Some(url) = &self.revoked_sessions_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.push("jwt.revoked_sessions_url: must be an http(s) URL".into());
        }
        if !(100..=60_000).contains(&self.revocation_refresh_ms) {
            problems.push("jwt.revocation_refresh_ms: must be within 100..=60000".into());
        }
    }

    /// Where the revoked sessions are fetched from.
    pub fn revoked_sessions_url(&self) -> String {
        if let Some(url) = &self.revoked_sessions_url {
            return url.clone();
        }
        // scheme://authority of the JWKS URL, checked to be http(s).
        let origin_end = self
            .jwks_url
            .find("://")
            .map(|i| i + 3)
            .and_then(|start| self.jwks_url[start..].find('/').map(|j| start + j))
            .unwrap_or(self.jwks_url.len());
        format!(
            "{}{}",
            &self.jwks_url[..origin_end],
            crate::revocation::REVOKED_SESSIONS_PATH
        )
    }

    pub fn verifier_options(&self) -> VerifierOptions {
        VerifierOptions {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: Duration::from_secs(self.leeway_secs),
            min_refresh_interval: Duration::from_secs(self.min_refresh_secs),
            max_age: Duration::from_secs(self.max_age_secs),
        }
    }

    /// A verifier that fetches the JWKS and the revoked sessions over HTTP
    /// (with `outbound`'s headers); the revoked sessions are refreshed in
    /// the background from now on.
    pub async fn verifier(
        &self,
        outbound: &crate::client::Outbound,
    ) -> anyhow::Result<Arc<JwtVerifier>> {
        let socket = self.jwks_socket.as_deref();
        let timeout = Duration::from_secs(5);
        let source =
            HttpJson::new(&self.jwks_url, socket, timeout, outbound).map_err(anyhow::Error::msg)?;
        let revoked = HttpJson::new(self.revoked_sessions_url(), socket, timeout, outbound)
            .map_err(anyhow::Error::msg)?;
        let revocations = Revocations::start(
            Arc::new(revoked),
            Duration::from_millis(self.revocation_refresh_ms),
        )
        .await;
        Ok(Arc::new(
            JwtVerifier::new(Arc::new(source), self.verifier_options())
                .with_revocations(revocations),
        ))
    }
}

/// An outbound peer: `http(s)://host:port` or `unix:/path` (the egress
/// sidecar's socket in the mesh).
pub fn check_url(field: &str, url: &str, problems: &mut Vec<String>) {
    let ok = url.starts_with("http://")
        || url.starts_with("https://")
        || url
            .strip_prefix("unix:")
            .is_some_and(|p| p.starts_with('/'));
    if !ok {
        problems.push(format!("{field}: must be an http(s) URL or unix:/path"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(url: &str) -> JwtSettings {
        toml::from_str(&format!("jwks_url = \"{url}\"")).expect("jwt settings")
    }

    /// Without an explicit URL the revoked sessions come from the JWKS
    /// URL's origin, so one setting points a service at auth.
    #[test]
    fn revoked_sessions_default_to_the_jwks_origin() {
        assert_eq!(
            jwt("http://auth/.well-known/jwks.json").revoked_sessions_url(),
            "http://auth/internal/revoked-sessions"
        );
        assert_eq!(
            jwt("http://127.0.0.1:7000").revoked_sessions_url(),
            "http://127.0.0.1:7000/internal/revoked-sessions"
        );
        let mut explicit = jwt("http://auth/.well-known/jwks.json");
        explicit.revoked_sessions_url = Some("http://other/x".into());
        assert_eq!(explicit.revoked_sessions_url(), "http://other/x");
    }
}
