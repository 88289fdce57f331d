//! End-to-end tests against the running local mesh: real SPIRE, Envoy,
//! PostgreSQL and services, called through the edge with tonic and grpcurl.
//! Run by scripts/test.sh after `scripts/mesh.sh up`.

mod grpcurl;
mod hostile;
mod identity;
mod journey;
mod push;
mod refusals;
mod rotation;
mod security;
mod tracing;

use tonic::{Code, Status};

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "message: {}", s.message());
            s
        }
    }
}
