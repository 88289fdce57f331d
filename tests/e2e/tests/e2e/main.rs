//! End-to-end tests against a running deployment, local mesh or compose
//! (`INTERLOCK_E2E_TARGET`, see `interlock_e2e::target`): real SPIRE,
//! Envoy, PostgreSQL and services, called through the edge with tonic and
//! grpcurl. Run by scripts/test.sh against each target in turn; what only
//! one target has is in `tests/e2e_local` and `tests/e2e_compose`.

mod accounts;
mod grpcurl;
mod journey;
mod push;
mod refusals;
mod revocation;
mod tracing;
