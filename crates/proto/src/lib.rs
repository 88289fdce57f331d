//! Generated code for every Interlock gRPC package (`proto/` is the only
//! source of truth), plus the encoded descriptor set for server reflection.
//!
//! Messages that carry secrets get a redacting `Debug` (see [`redact`]).

pub mod redact;

// Used by build.rs to write EXTERNAL_FILE_DESCRIPTOR_SET; compiled here only
// for its unit tests.
#[cfg(test)]
mod reflection;

/// `interlock.auth.v1`
pub mod auth {
    pub mod v1 {
        tonic::include_proto!("interlock.auth.v1");
    }
}

/// `interlock.roles.v1`
pub mod roles {
    pub mod v1 {
        tonic::include_proto!("interlock.roles.v1");
    }
}

/// `interlock.users.v1`
pub mod users {
    pub mod v1 {
        tonic::include_proto!("interlock.users.v1");
    }
}

/// `interlock.notifications.v1`
pub mod notifications {
    pub mod v1 {
        tonic::include_proto!("interlock.notifications.v1");
    }
}

/// The encoded `FileDescriptorSet` of all Interlock packages.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("interlock_descriptor");

/// What server reflection serves: the external services and only the
/// messages and enums their methods reach (see `src/reflection.rs`), with
/// their imports. Internal services and the types only they use are absent.
pub const EXTERNAL_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("interlock_external_descriptor");
