//! Who a request claims to be, attached to every call of a client.
//!
//! In the integration suite the test stands in for the sidecar and the
//! edge, so it sets all three: the peer's SVID as the forwarded
//! certificate header, the user's token, the client address. End to end,
//! requests go through the real edge and only the token is the test's to
//! choose; a forged header is how the suite proves a service cannot be
//! reached around its sidecar.

use std::net::SocketAddr;
use std::path::Path;

use interlock_common::peer::XFCC_HEADER;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// A client channel that sends every request as a [`Caller`].
pub type Client = InterceptedService<Channel, Caller>;

/// Issues the `x-forwarded-client-cert` value a sidecar would forward for
/// a workload's current SVID (the integration suite's test PKI).
pub trait PeerIdentity {
    fn xfcc(&self, workload: &str) -> String;
}

/// What a request carries about its sender. Unset fields are not sent.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The forwarded client certificate (as the receiving sidecar sets it).
    pub xfcc: Option<String>,
    /// The user's access token, sent as `authorization: Bearer <token>`.
    pub bearer: Option<String>,
    /// The client address the edge reports (`x-envoy-external-address`).
    pub address: Option<String>,
}

impl Caller {
    /// A call arriving from `workload` through its sidecar.
    pub fn peer(ids: &impl PeerIdentity, workload: &str) -> Self {
        Self {
            xfcc: Some(ids.xfcc(workload)),
            ..Self::default()
        }
    }

    /// A call from the edge carrying the user's `token`.
    pub fn user(ids: &impl PeerIdentity, token: &str) -> Self {
        Self::peer(ids, "edge").with_token(token)
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    pub fn with_address(mut self, address: &str) -> Self {
        self.address = Some(address.to_owned());
        self
    }

    /// This caller over an existing channel (e.g. TLS to the edge).
    pub fn over(&self, channel: Channel) -> Client {
        InterceptedService::new(channel, self.clone())
    }

    /// A client to plain-HTTP/2 `addr` for this caller (connects lazily).
    pub fn to(&self, addr: SocketAddr) -> Client {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_lazy();
        self.over(channel)
    }

    /// A client to a gRPC server's Unix socket for this caller (connects
    /// lazily).
    pub fn to_unix(&self, path: &Path) -> Client {
        let path = path.to_owned();
        let channel = Endpoint::from_static("http://localhost").connect_with_connector_lazy(
            tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }),
        );
        self.over(channel)
    }
}

impl Interceptor for Caller {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let md = req.metadata_mut();
        if let Some(x) = &self.xfcc {
            md.insert(XFCC_HEADER, ascii(x.clone()));
        }
        if let Some(t) = &self.bearer {
            md.insert("authorization", ascii(format!("Bearer {t}")));
        }
        if let Some(a) = &self.address {
            md.insert("x-envoy-external-address", ascii(a.clone()));
        }
        Ok(req)
    }
}

fn ascii(value: String) -> tonic::metadata::AsciiMetadataValue {
    MetadataValue::try_from(value).expect("metadata values are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl PeerIdentity for Fixed {
        fn xfcc(&self, workload: &str) -> String {
            format!("URI=spiffe://test/{workload}")
        }
    }

    /// A user call from the edge carries the edge's certificate header and
    /// the bearer token; nothing unset is sent.
    #[test]
    fn a_user_call_carries_the_edge_identity_and_the_token() {
        let req = Caller::user(&Fixed, "t0k3n")
            .call(tonic::Request::new(()))
            .expect("intercepted");
        let md = req.metadata();
        assert_eq!(md.get(XFCC_HEADER).expect("xfcc"), "URI=spiffe://test/edge");
        assert_eq!(md.get("authorization").expect("bearer"), "Bearer t0k3n");
        assert!(md.get("x-envoy-external-address").is_none());
    }

    /// The default caller sends nothing at all.
    #[test]
    fn the_default_caller_is_anonymous() {
        let req = Caller::default()
            .call(tonic::Request::new(()))
            .expect("intercepted");
        assert!(req.metadata().is_empty());
    }
}
