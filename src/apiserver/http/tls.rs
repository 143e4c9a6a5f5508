//! The API's TLS (rustls on the ring provider): the serving certificate of the data
//! directory's PKI, and client certificates requested and verified against the client CA but
//! optional, as kube-apiserver's `--client-ca-file` (a client without one is anonymous or
//! brings a token).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::host::pki::Pki;

/// The crypto provider every TLS endpoint of gantry uses: ring (docs/decisions.md "TLS and
/// PKI"; rustls marks it deprecated only for its lack of post-quantum key exchange).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("a certificate does not parse: {e}"))
}

pub fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| format!("a private key does not parse: {e}"))
}

/// The server's TLS configuration from its PKI.
pub fn server_config(pki: &Pki) -> Result<ServerConfig, String> {
    let mut roots = RootCertStore::empty();
    for ca in certificates(&pki.client_ca.cert_pem)? {
        roots
            .add(ca)
            .map_err(|e| format!("the client CA is not usable: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| format!("cannot verify client certificates: {e}"))?;
    // The chain clients see: the serving certificate and the CA that signed it.
    let mut chain = certificates(&pki.serving.cert_pem)?;
    chain.extend(certificates(&pki.server_ca.cert_pem)?);
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, private_key(&pki.serving.key_pem)?)
        .map_err(|e| format!("the serving certificate is not usable: {e}"))
}
