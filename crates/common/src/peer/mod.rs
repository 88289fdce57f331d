//! The peer check (docs/mesh.md, docs/security.md "Peers"): who is calling, proven by the
//! client certificate that the service's own sidecar verified and forwarded
//! in `x-forwarded-client-cert` (XFCC).
//!
//! - [`xfcc`] parses the header Envoy writes (`SANITIZE_SET`, with `Cert`,
//!   `Chain` and `URI`).
//! - [`bundle`] supplies the trust bundle: the SPIFFE Workload API in
//!   production, a PEM file in tests, whichever `[peer]` names
//!   ([`bundle::open`]).
//! - [`verify`] checks the forwarded certificate against that bundle, its
//!   validity window and its SPIFFE ID, caching results by certificate hash.
//!
//! This module decides *who* the peer is; whether that peer may call the
//! method is [`crate::policy`]'s job, applied by [`crate::guard`].

pub mod bundle;
pub mod verify;
pub mod xfcc;

pub use bundle::{PemFileBundle, TrustBundle, WorkloadApiBundle};
pub use verify::{PeerError, PeerVerifier};

/// The header name Envoy uses.
pub const XFCC_HEADER: &str = "x-forwarded-client-cert";
