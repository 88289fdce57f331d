//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and writes
//! the descriptor set that server reflection serves.

use std::path::PathBuf;

#[path = "src/reflection.rs"]
mod reflection;

use prost::Message;

/// Messages that carry passwords or tokens: their `Debug` is written by hand
/// in `src/redact.rs` so that logging a request can never print a secret.
const SECRET_MESSAGES: &[&str] = &[
    ".interlock.auth.v1.RegisterRequest",
    ".interlock.auth.v1.LoginRequest",
    ".interlock.auth.v1.RefreshRequest",
    ".interlock.auth.v1.TokenPair",
    ".interlock.auth.v1.ConfirmEmailRequest",
    ".interlock.auth.v1.ResetPasswordRequest",
    ".interlock.auth.v1.ChangePasswordRequest",
    ".interlock.notifications.v1.RegisterDeviceRequest",
    ".interlock.notifications.v1.Delivery",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "interlock/auth/v1/auth.proto",
        "interlock/roles/v1/roles.proto",
        "interlock/users/v1/users.proto",
        "interlock/notifications/v1/notifications.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // compile_fds does not write the descriptor set itself.
    std::fs::write(out.join("interlock_descriptor.bin"), fds.encode_to_vec())?;
    // What reflection serves: only the external services and the types their
    // methods reach, so a client of the edge never learns the internal API.
    // A service the policy does not list is nobody's to call, so reflection
    // omits it too.
    let policy = interlock_policy::Policy::parse(interlock_policy::EMBEDDED)?;
    let external: Vec<String> = policy.external_services().map(|s| s.name.clone()).collect();
    let external = reflection::external_only(&fds, &external)?;
    std::fs::write(
        out.join("interlock_external_descriptor.bin"),
        external.encode_to_vec(),
    )?;
    // The policy is embedded in interlock-policy, a build-dependency: when it
    // changes, this script is rebuilt and so runs again.
    tonic_prost_build::configure()
        .skip_debug(SECRET_MESSAGES.iter().copied())
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
