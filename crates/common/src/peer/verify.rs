//! Verifies a forwarded client certificate: it chains to the trust bundle,
//! is inside its validity window, is a leaf, and carries exactly one SPIFFE
//! ID in our trust domain. Results are cached by certificate hash (per
//! bundle), so the signature work happens once per SVID, not per request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

use super::bundle::{Roots, TrustBundle};
use super::xfcc::{self, XfccError};

/// Longest issuer chain we walk from the leaf to a root.
const MAX_CHAIN_DEPTH: usize = 4;
/// Cached verifications kept at most; SVIDs rotate, so old ones age out.
const MAX_CACHE_ENTRIES: usize = 1024;

/// Why a peer could not be identified. All of them mean UNAUTHENTICATED.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// No header: the request did not come through our sidecar.
    #[error("missing x-forwarded-client-cert")]
    Missing,
    /// The header or its certificate cannot be parsed.
    #[error("malformed x-forwarded-client-cert: {0}")]
    Malformed(String),
    /// The certificate does not chain to our trust bundle.
    #[error("untrusted peer certificate: {0}")]
    Untrusted(String),
    /// Outside its validity window (an SVID that was not rotated in time).
    #[error("peer certificate is expired or not yet valid")]
    OutsideValidity,
    /// Not an X509-SVID of our trust domain.
    #[error("peer certificate has no SPIFFE ID of trust domain {0}")]
    NoSpiffeId(String),
    /// The bundle itself is not available yet (Workload API not ready).
    #[error("trust bundle unavailable: {0}")]
    BundleUnavailable(String),
}

impl From<XfccError> for PeerError {
    fn from(e: XfccError) -> Self {
        PeerError::Malformed(e.to_string())
    }
}

struct Cached {
    spiffe_id: String,
    not_after: i64,
    roots: Arc<Roots>,
}

/// Verifies XFCC headers against a trust bundle.
pub struct PeerVerifier {
    bundle: Arc<dyn TrustBundle>,
    trust_domain: String,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
}

impl PeerVerifier {
    pub fn new(bundle: Arc<dyn TrustBundle>, trust_domain: impl Into<String>) -> Self {
        Self {
            bundle,
            trust_domain: trust_domain.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// A verifier of `trust_domain`'s SVIDs against the bundle `[peer]`
    /// names (see [`super::bundle::open`]).
    pub async fn from_settings(
        settings: &crate::settings::PeerSettings,
        trust_domain: &str,
    ) -> Result<Self, String> {
        let bundle = super::bundle::open(settings, trust_domain).await?;
        Ok(Self::new(bundle, trust_domain))
    }

    /// The peer's SPIFFE ID, if the header proves one at time `now`
    /// (seconds since the epoch).
    pub fn verify(&self, header: Option<&str>, now: i64) -> Result<String, PeerError> {
        let header = header.ok_or(PeerError::Missing)?;
        let forwarded = xfcc::parse(header)?;
        let roots = self.bundle.roots().map_err(PeerError::BundleUnavailable)?;
        let key = cache_key(&forwarded.cert_der, &forwarded.chain_der);
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(hit) = cache.get(&key)
                && Arc::ptr_eq(&hit.roots, &roots)
            {
                if now > hit.not_after {
                    return Err(PeerError::OutsideValidity);
                }
                return Ok(hit.spiffe_id.clone());
            }
        }
        let (spiffe_id, not_after) =
            self.verify_uncached(&forwarded.cert_der, &forwarded.chain_der, &roots, now)?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHE_ENTRIES {
            cache.retain(|_, c| c.not_after >= now && Arc::ptr_eq(&c.roots, &roots));
            if cache.len() >= MAX_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                spiffe_id: spiffe_id.clone(),
                not_after,
                roots,
            },
        );
        Ok(spiffe_id)
    }

    fn verify_uncached(
        &self,
        leaf_der: &[u8],
        chain_der: &[Vec<u8>],
        roots: &Roots,
        now: i64,
    ) -> Result<(String, i64), PeerError> {
        let at = ASN1Time::from_timestamp(now).map_err(|e| PeerError::Malformed(e.to_string()))?;
        let leaf = parse_cert(leaf_der)?;
        if leaf.is_ca() {
            return Err(PeerError::Untrusted("peer certificate is a CA".into()));
        }
        let intermediates = chain_der
            .iter()
            .map(|d| parse_cert(d))
            .collect::<Result<Vec<_>, _>>()?;
        let roots = roots
            .ders
            .iter()
            .filter_map(|d| x509_parser::parse_x509_certificate(d).ok().map(|(_, c)| c))
            .collect::<Vec<_>>();

        if !leaf.validity().is_valid_at(at) {
            return Err(PeerError::OutsideValidity);
        }
        let mut not_after = leaf.validity().not_after.timestamp();
        let mut current = &leaf;
        for _ in 0..MAX_CHAIN_DEPTH {
            if let Some(root) = roots.iter().find(|r| signs(r, current)) {
                if !root.validity().is_valid_at(at) {
                    return Err(PeerError::Untrusted("trust bundle root has expired".into()));
                }
                let spiffe_id = self.spiffe_id(&leaf)?;
                return Ok((
                    spiffe_id,
                    not_after.min(root.validity().not_after.timestamp()),
                ));
            }
            match intermediates
                .iter()
                .find(|i| i.is_ca() && signs(i, current))
            {
                Some(next) => {
                    if !next.validity().is_valid_at(at) {
                        return Err(PeerError::OutsideValidity);
                    }
                    not_after = not_after.min(next.validity().not_after.timestamp());
                    current = next;
                }
                None => break,
            }
        }
        Err(PeerError::Untrusted("no chain to the trust bundle".into()))
    }

    fn spiffe_id(&self, leaf: &X509Certificate<'_>) -> Result<String, PeerError> {
        let no_id = || PeerError::NoSpiffeId(self.trust_domain.clone());
        let san = leaf
            .subject_alternative_name()
            .map_err(|e| PeerError::Malformed(e.to_string()))?
            .ok_or_else(no_id)?;
        let uris: Vec<&str> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect();
        // An X509-SVID has exactly one URI SAN (SPIFFE X509-SVID spec, 4.1).
        let [uri] = uris.as_slice() else {
            return Err(no_id());
        };
        let prefix = format!("spiffe://{}/", self.trust_domain);
        if !uri.starts_with(&prefix) || uri.len() == prefix.len() {
            return Err(no_id());
        }
        Ok((*uri).to_owned())
    }
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PeerError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, c)| c)
        .map_err(|e| PeerError::Malformed(format!("certificate: {e}")))
}

/// Whether `issuer` issued `cert`: names match and the signature verifies.
fn signs(issuer: &X509Certificate<'_>, cert: &X509Certificate<'_>) -> bool {
    issuer.subject().as_raw() == cert.issuer().as_raw()
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}

fn cache_key(leaf: &[u8], chain: &[Vec<u8>]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(leaf);
    for c in chain {
        h.update((c.len() as u64).to_be_bytes());
        h.update(c);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::super::bundle::PemFileBundle;
    use super::super::xfcc::encode;
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
    }

    fn new_ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        Ca {
            cert: params.self_signed(&key).unwrap(),
            key,
        }
    }

    fn svid(ca: &Ca, uri: &str, valid_secs: (i64, i64)) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
        let now = time_now();
        params.not_before = now + time::Duration::seconds(valid_secs.0);
        params.not_after = now + time::Duration::seconds(valid_secs.1);
        let issuer = rcgen::Issuer::from_ca_cert_der(ca.cert.der(), &ca.key).unwrap();
        params.signed_by(&key, &issuer).unwrap().pem()
    }

    fn time_now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    fn verifier(ca: &Ca) -> PeerVerifier {
        let bundle = PemFileBundle::from_pem(ca.cert.pem().as_bytes()).unwrap();
        PeerVerifier::new(Arc::new(bundle), "interlock.local")
    }

    fn now() -> i64 {
        time_now().unix_timestamp()
    }

    /// A current SVID from our CA yields its SPIFFE ID (twice: cache hit).
    #[test]
    fn trusted_svid_yields_its_spiffe_id() {
        let ca = new_ca("root");
        let v = verifier(&ca);
        let id = "spiffe://interlock.local/svc/users";
        let header = encode(&svid(&ca, id, (-60, 600)), None, id);
        assert_eq!(v.verify(Some(&header), now()).unwrap(), id);
        assert_eq!(v.verify(Some(&header), now()).unwrap(), id);
    }

    /// Each way a peer can fail to prove itself is refused.
    #[test]
    fn unprovable_peers_are_refused() {
        let ca = new_ca("root");
        let other = new_ca("other");
        let v = verifier(&ca);
        let id = "spiffe://interlock.local/svc/users";
        assert_eq!(v.verify(None, now()), Err(PeerError::Missing));
        assert!(matches!(
            v.verify(Some("Cert=\"x\""), now()),
            Err(PeerError::Malformed(_))
        ));

        let untrusted = encode(&svid(&other, id, (-60, 600)), None, id);
        assert!(matches!(
            v.verify(Some(&untrusted), now()),
            Err(PeerError::Untrusted(_))
        ));

        let expired = encode(&svid(&ca, id, (-600, -60)), None, id);
        assert_eq!(
            v.verify(Some(&expired), now()),
            Err(PeerError::OutsideValidity)
        );

        let future = encode(&svid(&ca, id, (600, 1200)), None, id);
        assert_eq!(
            v.verify(Some(&future), now()),
            Err(PeerError::OutsideValidity)
        );

        let foreign = "spiffe://elsewhere.example/svc/users";
        let foreign = encode(&svid(&ca, foreign, (-60, 600)), None, foreign);
        assert!(matches!(
            v.verify(Some(&foreign), now()),
            Err(PeerError::NoSpiffeId(_))
        ));
    }

    /// A cached SVID stops being accepted once it expires.
    #[test]
    fn cached_svid_expires_on_time() {
        let ca = new_ca("root");
        let v = verifier(&ca);
        let id = "spiffe://interlock.local/svc/auth";
        let header = encode(&svid(&ca, id, (-60, 30)), None, id);
        assert!(v.verify(Some(&header), now()).is_ok());
        assert_eq!(
            v.verify(Some(&header), now() + 120),
            Err(PeerError::OutsideValidity)
        );
    }

    /// An SVID issued by an intermediate chains through the forwarded Chain.
    #[test]
    fn svid_from_an_intermediate_chains_to_the_root() {
        let root = new_ca("root");
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "intermediate");
        let issuer = rcgen::Issuer::from_ca_cert_der(root.cert.der(), &root.key).unwrap();
        let inter = Ca {
            cert: params.signed_by(&key, &issuer).unwrap(),
            key,
        };
        let id = "spiffe://interlock.local/edge";
        let leaf = svid(&inter, id, (-60, 600));
        let v = verifier(&root);
        let without_chain = encode(&leaf, None, id);
        assert!(matches!(
            v.verify(Some(&without_chain), now()),
            Err(PeerError::Untrusted(_))
        ));
        let with_chain = encode(&leaf, Some(&format!("{leaf}{}", inter.cert.pem())), id);
        assert_eq!(v.verify(Some(&with_chain), now()).unwrap(), id);
    }
}
