//! OIDC discovery of the service-account issuer (k8s: pkg/serviceaccount/openidmetadata.go):
//! `/.well-known/openid-configuration` and the keys at `/openid/v1/jwks`, so that other
//! parties can verify our tokens.

use serde_json::{json, Value};

use super::TokenConfig;

/// k8s: the path of the key set.
pub const JWKS_PATH: &str = "/openid/v1/jwks";
pub const CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";

/// The discovery document. `jwks_uri` is `--service-account-jwks-uri`, else the issuer's
/// `/openid/v1/jwks` (k8s: the issuer's scheme and host with the JWKS path).
pub fn configuration(cfg: &TokenConfig) -> Value {
    let jwks_uri = cfg.jwks_uri.clone().unwrap_or_else(|| {
        // The issuer's scheme and host, its path replaced.
        let host_end = cfg
            .issuer
            .find("://")
            .map(|i| i + 3)
            .and_then(|i| cfg.issuer[i..].find('/').map(|j| i + j))
            .unwrap_or(cfg.issuer.len());
        format!("{}{JWKS_PATH}", &cfg.issuer[..host_end])
    });
    json!({
        "issuer": cfg.issuer,
        "jwks_uri": jwks_uri,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [cfg.keys.algorithm()],
    })
}

/// The key set (RFC 7517 §5).
pub fn jwks(cfg: &TokenConfig) -> Value {
    json!({ "keys": [cfg.keys.public_jwk()] })
}
