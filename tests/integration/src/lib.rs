//! Test kit for Interlock's integration tests: a fresh PostgreSQL database
//! and login role per service per test, a test SPIFFE CA with SVIDs, a test
//! token issuer with its JWKS served over HTTP, the four services started on
//! port 0, the local FCM server and the sender, and clients that present a
//! chosen peer identity and token.
//!
//! Every key and certificate is generated when the test runs.

pub mod pg;
pub mod pki;
pub mod push;
pub mod services;
pub mod tokens;

pub use pki::Pki;
pub use services::{Caller, Stack};
pub use tokens::TokenIssuer;
