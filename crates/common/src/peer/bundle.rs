//! Where the trust bundle (the CA certificates that peers must chain to)
//! comes from: the SPIFFE Workload API (production: the SPIRE agent's socket,
//! kept current as SPIRE rotates its CA) or a PEM file (tests).

use std::path::Path;
use std::sync::{Arc, Mutex};

use spiffe::{TrustDomain, X509Source};

use crate::settings::PeerSettings;

/// DER-encoded root certificates, shared by all requests until they change.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Roots {
    pub ders: Vec<Vec<u8>>,
}

/// A source of the current trust bundle for our trust domain.
pub trait TrustBundle: Send + Sync + 'static {
    /// The roots right now. The same `Arc` is returned until they change, so
    /// callers can cache results per bundle with `Arc::ptr_eq`.
    fn roots(&self) -> Result<Arc<Roots>, String>;
}

/// Opens the source `[peer]` names: the Workload API (waiting for its first
/// update) or a PEM file.
pub async fn open(
    settings: &PeerSettings,
    trust_domain: &str,
) -> Result<Arc<dyn TrustBundle>, String> {
    match (&settings.workload_api_socket, &settings.bundle_pem_file) {
        (Some(socket), None) => Ok(Arc::new(
            WorkloadApiBundle::connect(socket, trust_domain).await?,
        )),
        (None, Some(path)) => Ok(Arc::new(PemFileBundle::load(path)?)),
        _ => Err("peer: set exactly one of workload_api_socket or bundle_pem_file".into()),
    }
}

/// A fixed bundle read once from a PEM file.
#[derive(Debug)]
pub struct PemFileBundle {
    roots: Arc<Roots>,
}

impl PemFileBundle {
    /// Reads every `CERTIFICATE` block of the file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses every `CERTIFICATE` block of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut ders = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
            let block = block.map_err(|e| format!("bad PEM: {e}"))?;
            if block.label == "CERTIFICATE" {
                ders.push(block.contents);
            }
        }
        if ders.is_empty() {
            return Err("no CERTIFICATE block".into());
        }
        Ok(Self {
            roots: Arc::new(Roots { ders }),
        })
    }
}

impl TrustBundle for PemFileBundle {
    fn roots(&self) -> Result<Arc<Roots>, String> {
        Ok(self.roots.clone())
    }
}

/// The bundle from the SPIFFE Workload API, updated as SPIRE rotates it.
pub struct WorkloadApiBundle {
    source: X509Source,
    trust_domain: TrustDomain,
    // The last bundle seen and its DER copy, rebuilt only when it changes.
    last: Mutex<Option<(Arc<spiffe::X509Bundle>, Arc<Roots>)>>,
}

impl WorkloadApiBundle {
    /// Connects to the agent at `endpoint` (e.g. `unix:///run/spire/agent.sock`)
    /// and waits for the first update.
    pub async fn connect(endpoint: &str, trust_domain: &str) -> Result<Self, String> {
        let trust_domain =
            TrustDomain::new(trust_domain).map_err(|e| format!("trust domain: {e}"))?;
        let source = X509Source::builder()
            .endpoint(endpoint)
            .build()
            .await
            .map_err(|e| format!("workload API at {endpoint}: {e}"))?;
        Ok(Self {
            source,
            trust_domain,
            last: Mutex::new(None),
        })
    }
}

impl TrustBundle for WorkloadApiBundle {
    fn roots(&self) -> Result<Arc<Roots>, String> {
        let bundle = self
            .source
            .try_bundle_for_trust_domain(&self.trust_domain)
            .ok_or_else(|| format!("no bundle for {} yet", self.trust_domain))?;
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, roots)) = last.as_ref()
            && Arc::ptr_eq(seen, &bundle)
        {
            return Ok(roots.clone());
        }
        let roots = Arc::new(Roots {
            ders: bundle
                .authorities()
                .iter()
                .map(|c| c.as_bytes().to_vec())
                .collect(),
        });
        *last = Some((bundle, roots.clone()));
        Ok(roots)
    }
}
