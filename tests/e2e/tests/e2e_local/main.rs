//! End-to-end tests only the local mesh can run: its Unix users as
//! workload identities, probes run as those users, the supervisor's API
//! and logs, the short local SVID TTL, auth's key ring on this machine,
//! the edge's TLS judged by sslyze, the discovery documents at the local
//! edge's public URL, the session `mesh.sh up` prints.
//! Run by scripts/test.sh after `scripts/mesh.sh up`, beside the shared
//! suite in `tests/e2e`.

mod discovery;
mod hostile;
mod identity;
mod refusals;
mod rotation;
mod security;
mod session;
mod tls;
mod tracing;
