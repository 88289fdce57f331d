//! A test SPIFFE CA for trust domain `interlock.local`, and X509-SVIDs
//! rendered as the `x-forwarded-client-cert` header a sidecar would send.

use std::path::PathBuf;

use interlock_common::peer::xfcc;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use time::{Duration, OffsetDateTime};

pub const TRUST_DOMAIN: &str = "interlock.local";

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![]).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self {
            cert: params.self_signed(&key).expect("self-signed CA"),
            key,
        }
    }

    fn sign(&self, uri: &str, from: Duration, to: Duration) -> String {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec![]).expect("params");
        params.subject_alt_names = vec![SanType::URI(uri.try_into().expect("uri"))];
        let now = OffsetDateTime::now_utc();
        params.not_before = now + from;
        params.not_after = now + to;
        let issuer = Issuer::from_ca_cert_der(self.cert.der(), &self.key).expect("issuer");
        params.signed_by(&key, &issuer).expect("sign").pem()
    }
}

/// The test PKI: a trusted CA (whose bundle the services load from a PEM
/// file) and an untrusted one.
pub struct Pki {
    trusted: Ca,
    untrusted: Ca,
    bundle: PathBuf,
}

impl Pki {
    pub fn new() -> Self {
        let trusted = Ca::new("interlock test CA");
        let untrusted = Ca::new("someone else's CA");
        let bundle =
            std::env::temp_dir().join(format!("interlock-bundle-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&bundle, trusted.cert.pem()).expect("write bundle");
        Self {
            trusted,
            untrusted,
            bundle,
        }
    }

    /// The PEM file services load as their trust bundle.
    pub fn bundle_path(&self) -> PathBuf {
        self.bundle.clone()
    }

    /// `spiffe://interlock.local/<path>` for a workload name.
    pub fn spiffe_id(workload: &str) -> String {
        if workload == "edge" {
            format!("spiffe://{TRUST_DOMAIN}/edge")
        } else {
            format!("spiffe://{TRUST_DOMAIN}/svc/{workload}")
        }
    }

    /// The XFCC header for a current SVID of `workload`.
    pub fn xfcc(&self, workload: &str) -> String {
        let id = Self::spiffe_id(workload);
        xfcc::encode(
            &self
                .trusted
                .sign(&id, Duration::minutes(-1), Duration::minutes(10)),
            None,
            &id,
        )
    }

    /// An SVID of `workload` that expired a minute ago.
    pub fn expired_xfcc(&self, workload: &str) -> String {
        let id = Self::spiffe_id(workload);
        xfcc::encode(
            &self
                .trusted
                .sign(&id, Duration::minutes(-10), Duration::minutes(-1)),
            None,
            &id,
        )
    }

    /// An SVID of `workload` from a CA the services do not trust.
    pub fn untrusted_xfcc(&self, workload: &str) -> String {
        let id = Self::spiffe_id(workload);
        xfcc::encode(
            &self
                .untrusted
                .sign(&id, Duration::minutes(-1), Duration::minutes(10)),
            None,
            &id,
        )
    }
}

/// The kit's [`interlock_testkit::Caller`] presents this PKI's SVIDs.
impl interlock_testkit::PeerIdentity for Pki {
    fn xfcc(&self, workload: &str) -> String {
        Pki::xfcc(self, workload)
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.bundle);
    }
}
