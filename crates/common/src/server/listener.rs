//! Where a service listens: a TCP port (tests, containers) or a Unix socket
//! that only its own sidecar's user may connect to (the local mesh).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::settings::{ListenAddr, ServerSettings};

/// A bound listener, handed to [`super::App::run`]. `main` binds it from
/// `[server]`; tests bind `127.0.0.1:0` and read the port before the
/// service starts, so no address is guessed.
pub enum Listener {
    Tcp(TcpListener),
    /// Accepts only peers whose Unix user is in `peer_uids` (SO_PEERCRED).
    Unix {
        listener: UnixListener,
        path: PathBuf,
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
    pub async fn bind(server: &ServerSettings) -> anyhow::Result<Self> {
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
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(l) => l.local_addr().ok(),
            Self::Unix { .. } => None,
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(listener: TcpListener) -> Self {
        Self::Tcp(listener)
    }
}

/// Where it listens, for logs: `127.0.0.1:7000` or `unix:/path`.
impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(l) => match l.local_addr() {
                Ok(a) => a.fmt(f),
                Err(_) => f.write_str("tcp:?"),
            },
            Self::Unix { path, .. } => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Whether a Unix-socket peer may talk to the service; refused connections
/// are closed before a byte is read.
pub(super) fn peer_allowed(stream: &UnixStream, uids: &[u32]) -> bool {
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
