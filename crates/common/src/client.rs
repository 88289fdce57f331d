//! Outbound channels to other modules. In the mesh a service calls its own
//! sidecar's egress listener, which adds mTLS and the SPIFFE identity; the
//! channel here is plain HTTP/2 to that local listener.

use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// Connection and per-call limits for outbound calls.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds fixed metadata to every outbound call.
///
/// Production uses it empty. Tests that run services without sidecars use
/// it to play the sidecar's part of adding `x-forwarded-client-cert`; in the
/// mesh a sidecar replaces that header (`SANITIZE_SET`), so it cannot be
/// used to impersonate anyone.
#[derive(Clone, Default)]
pub struct Outbound {
    headers: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
}

impl Outbound {
    /// An interceptor that adds `name: value` to every call.
    pub fn with_header(name: &str, value: &str) -> Result<Self, String> {
        let key = AsciiMetadataKey::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        let value = AsciiMetadataValue::try_from(value).map_err(|e| e.to_string())?;
        Ok(Self {
            headers: Arc::new(vec![(key, value)]),
        })
    }
}

impl Outbound {
    /// The fixed headers, for non-gRPC clients (the JWKS fetch).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
    }
}

impl Interceptor for Outbound {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        for (k, v) in self.headers.iter() {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }
}

/// Installs rustls' ring provider as the process default (idempotent). Any
/// HTTP client that may speak TLS is built after this.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A JSON document a peer serves over plain HTTP (auth's JWKS and revoked
/// sessions), fetched with `outbound`'s headers, over the egress sidecar's
/// Unix socket when one is given.
pub struct HttpJson {
    client: reqwest::Client,
    url: String,
}

impl HttpJson {
    pub fn new(
        url: impl Into<String>,
        socket: Option<&std::path::Path>,
        timeout: Duration,
        outbound: &Outbound,
    ) -> Result<Self, String> {
        Ok(Self {
            client: http_client(socket, timeout, outbound)?,
            url: url.into(),
        })
    }

    /// GETs and parses the document; the error names the URL and why.
    pub async fn get<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        let resp = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if !resp.status().is_success() {
            return Err(format!("GET {}: HTTP {}", self.url, resp.status()));
        }
        resp.json()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))
    }
}

fn http_client(
    socket: Option<&std::path::Path>,
    timeout: Duration,
    outbound: &Outbound,
) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in outbound.headers() {
        let name =
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
        let value = reqwest::header::HeaderValue::from_str(v).map_err(|e| e.to_string())?;
        headers.insert(name, value);
    }
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .default_headers(headers);
    if let Some(path) = socket {
        builder = builder.unix_socket(path.to_owned());
    }
    builder.build().map_err(|e| e.to_string())
}

/// A channel with a client span per call; what generated clients wrap.
pub type PeerChannel = InterceptedService<TracedChannel, Outbound>;

/// A channel that opens a client span per call and injects its W3C trace
/// context (`traceparent`) into the request.
#[derive(Clone)]
pub struct TracedChannel {
    inner: Channel,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower::Service<http::Request<tonic::body::Body>> for TracedChannel {
    type Response = http::Response<tonic::body::Body>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, mut req: http::Request<tonic::body::Body>) -> Self::Future {
        use tracing::Instrument;
        let path = req.uri().path().to_owned();
        let span = crate::telemetry::client_span(req.headers_mut(), &path);
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        Box::pin(
            async move {
                let resp = tower::Service::call(&mut ready, req).await?;
                crate::telemetry::record_status(
                    &tracing::Span::current(),
                    crate::telemetry::grpc_status(&resp),
                );
                Ok(resp)
            }
            .instrument(span),
        )
    }
}

/// A lazily connecting channel to `url`: `http://127.0.0.1:7001`, or
/// `unix:/path/egress.sock` for the workload's egress sidecar.
pub fn channel(url: &str, outbound: Outbound) -> Result<PeerChannel, String> {
    Ok(InterceptedService::new(
        TracedChannel {
            inner: plain_channel(url)?,
        },
        outbound,
    ))
}

/// The same channel without the per-call span and metadata.
pub fn plain_channel(url: &str) -> Result<Channel, String> {
    let (uri, socket) = match url.strip_prefix("unix:") {
        // The authority is unused: the socket decides where the call goes.
        Some(path) => (
            "http://localhost".to_owned(),
            Some(std::path::PathBuf::from(path)),
        ),
        None => (url.to_owned(), None),
    };
    let endpoint = Endpoint::from_shared(uri)
        .map_err(|e| format!("{url}: {e}"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let channel = match socket {
        None => endpoint.connect_lazy(),
        Some(path) => {
            endpoint.connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(&path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }))
        }
    };
    Ok(channel)
}
