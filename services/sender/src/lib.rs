//! Interlock sender: delivers notifications as push messages.
//!
//! - [`fcm`]: the FCM HTTP v1 client — service-account OAuth2 JWT-bearer
//!   grant with a cached access token, the documented message JSON, error
//!   classes mapped to what the sender must do.
//! - [`worker`]: the loop — claim a batch from notifications (a lease),
//!   push every delivery with bounded concurrency and retries, report each
//!   device's outcome, mark the notification processed (or release it).
//! - [`config`]: settings; [`startup`]: [`build`], the service as an
//!   `interlock_common::server::App` whose background task is the
//!   [`worker`] loop; health is the only API.
//!
//! The sender is stateless: the lease and the per-device outcomes in
//! notifications are what make delivery at-least-once across crashes and
//! keep replicas from pushing the same notification to a device twice.

pub mod config;
pub mod fcm;
pub mod startup;
pub mod worker;

pub use config::Settings;
pub use startup::build;

/// This module's workload name: its settings prefix (`INTERLOCK_SENDER__*`),
/// its `service.name` in traces, and whose services the policy lists for
/// its health.
pub const MODULE: &str = "sender";
