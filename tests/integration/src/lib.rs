//! Test kit for Interlock's integration tests: a fresh PostgreSQL database
//! and login role per service per test (dropped when the test ends), a test
//! SPIFFE CA with SVIDs, a test token issuer with its JWKS served over
//! HTTP, the four services started on port 0, the local FCM server and the
//! sender.
//!
//! What the end-to-end suite needs too — waiting on a signal, the status
//! assertion, the [`Caller`] a request claims to be, a registered user —
//! is in the shared kit, `interlock_testkit`; this kit's [`Pki`] is what
//! gives a caller its SVID here.
//!
//! Every key and certificate is generated when the test runs.

pub mod pg;
pub mod pki;
pub mod push;
pub mod services;
pub mod tokens;

pub use interlock_testkit::Caller;
pub use pki::Pki;
pub use services::Stack;
pub use tokens::TokenIssuer;
