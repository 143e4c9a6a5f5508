//! ServiceAccount tokens (k8s: pkg/serviceaccount): the JWTs TokenRequest issues and the
//! tokens controller puts into `kubernetes.io/service-account-token` Secrets, and the
//! authenticator that turns such a token back into the ServiceAccount's user.
//!
//! Sans-IO: the signing key is behind [`TokenKeys`], given to the apiserver core with
//! `ApiServer::with_tokens`. The real one (ES256 on a P-256 key kept in the data dir) is
//! [`es256`], built with the `server` feature; the simulator runs without one.

pub mod authenticator;
pub mod claims;
#[cfg(feature = "server")]
pub mod es256;
pub mod jwt;
pub mod oidc;

use std::sync::Arc;

pub use authenticator::TokenVerdict;

/// k8s: the default `--service-account-issuer` of a kubeadm cluster.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// A signing key pair: signs tokens, verifies them, publishes the public half.
pub trait TokenKeys: Send + Sync {
    /// The JWS `alg` of the signatures (`ES256`).
    fn algorithm(&self) -> &'static str;
    /// The `kid` of tokens this key signs (k8s: the base64url SHA-256 of the public key's
    /// PKIX DER).
    fn key_id(&self) -> &str;
    /// The JWS signature of `input`.
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String>;
    /// Whether `signature` over `input` verifies with the public key.
    fn verify(&self, input: &[u8], signature: &[u8]) -> bool;
    /// The public key as a JWK (RFC 7517), `kid`, `use: sig` and `alg` included.
    fn public_jwk(&self) -> serde_json::Value;
}

/// What the apiserver needs to issue and check ServiceAccount tokens.
#[derive(Clone)]
pub struct TokenConfig {
    /// `--service-account-issuer`: the `iss` of bound tokens.
    pub issuer: String,
    /// The API audiences (k8s: `--api-audiences`, defaulting to the issuer): what a token
    /// must be meant for to authenticate to this server.
    pub api_audiences: Vec<String>,
    /// `--service-account-jwks-uri`: where discovery says the keys are (default: the issuer's
    /// `/openid/v1/jwks`).
    pub jwks_uri: Option<String>,
    /// `--service-account-max-token-expiration` in seconds (0: no cap).
    pub max_expiration_seconds: i64,
    /// k8s: --service-account-extend-token-expiration (default true).
    pub extend_expiration: bool,
    pub keys: Arc<dyn TokenKeys>,
    /// The cluster CA bundle (PEM) pods get as `ca.crt` (the `kube-root-ca.crt` ConfigMaps,
    /// legacy token Secrets); empty until the server has a CA.
    pub root_ca_pem: String,
}

impl TokenConfig {
    /// Upstream's defaults for a key: the default issuer, the issuer as API audience.
    pub fn new(keys: Arc<dyn TokenKeys>) -> TokenConfig {
        TokenConfig::with_issuer(DEFAULT_ISSUER, keys)
    }

    pub fn with_issuer(issuer: &str, keys: Arc<dyn TokenKeys>) -> TokenConfig {
        TokenConfig {
            issuer: issuer.to_string(),
            api_audiences: vec![issuer.to_string()],
            jwks_uri: None,
            max_expiration_seconds: 0,
            extend_expiration: true,
            keys,
            root_ca_pem: String::new(),
        }
    }
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("issuer", &self.issuer)
            .field("api_audiences", &self.api_audiences)
            .field("kid", &self.keys.key_id())
            .finish()
    }
}
