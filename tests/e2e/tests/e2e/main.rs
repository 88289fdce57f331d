//! End-to-end tests against the running local mesh: real SPIRE, Envoy,
//! PostgreSQL and services, called through the edge with tonic and grpcurl.
//! Run by scripts/test.sh after `scripts/mesh.sh up` (which also starts the
//! SMTP server whose Maildir the account tests read).

mod accounts;
mod discovery;
mod grpcurl;
mod hostile;
mod identity;
mod journey;
mod push;
mod refusals;
mod rotation;
mod security;
mod tls;
mod tracing;
