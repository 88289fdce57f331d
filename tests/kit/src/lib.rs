//! What Interlock's two test suites share, and nothing else:
//!
//! - [`wait`]: [`wait_until`] — poll for a positive signal up to a
//!   deadline, instead of sleeping and hoping; [`wait_for_refusal`] when
//!   the signal is a call being refused.
//! - [`status`]: [`assert_status`] — a call failed with this code, for
//!   this reason; [`assert_maps_to_status`] — an error enum's mapping table.
//! - [`caller`]: [`Caller`] — who a request claims to be (the peer's SVID
//!   as a sidecar forwards it, the user's bearer token, the client address
//!   the edge reports), as a tonic interceptor.
//! - [`account`]: [`register_and_login`] — a fresh user with a session.
//!
//! What belongs to one suite stays there: the integration kit
//! (`tests/integration/src`: databases, test PKI, test token issuer, the
//! services in-process) and the end-to-end harness (`tests/e2e/src`: the
//! running mesh's paths, the edge, probes).

pub mod account;
pub mod caller;
pub mod status;
pub mod wait;

pub use account::{PASSWORD, login_request, register_and_login, register_request};
pub use caller::{Caller, Client, PeerIdentity};
pub use status::{assert_maps_to_status, assert_status};
pub use wait::{Patience, wait_for_refusal, wait_until};
