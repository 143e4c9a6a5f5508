//! The service-account signing key of `gantry server`: ECDSA P-256, ES256 signatures (ring),
//! kept as a PKCS#8 PEM file (`<data-dir>/tls/service-account.key`, mode 0600) made at first
//! start. k8s accepts ES256 for `--service-account-signing-key-file`.

use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};

use super::jwt::b64url;
use super::TokenKeys;

/// The PKIX SubjectPublicKeyInfo prefix of an uncompressed P-256 point (id-ecPublicKey,
/// prime256v1, a 66-byte BIT STRING).
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

pub struct Es256Keys {
    pair: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
}

impl Es256Keys {
    /// A new random key; returns it with its PKCS#8 DER.
    pub fn generate() -> Result<(Es256Keys, Vec<u8>), String> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate a P-256 key".to_string())?;
        let der = doc.as_ref().to_vec();
        Ok((Es256Keys::from_pkcs8(&der)?, der))
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Es256Keys, String> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("not a PKCS#8 ECDSA P-256 key: {e}"))?;
        let kid = key_id(pair.public_key().as_ref());
        Ok(Es256Keys { pair, rng, kid })
    }

    /// Reads the key at `path`, or makes one there (its directory 0700, the file 0600).
    pub fn load_or_create(path: &Path) -> Result<Es256Keys, String> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let der = pem_decode(&pem, "PRIVATE KEY")
                    .ok_or_else(|| format!("{shown}: no PRIVATE KEY PEM block"))?;
                Es256Keys::from_pkcs8(&der).map_err(|e| format!("{shown}: {e}"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| format!("{}: {e}", dir.display()))?;
                }
                let (keys, der) = Es256Keys::generate()?;
                let tmp = path.with_extension("key.tmp");
                {
                    use std::io::Write;
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&tmp)
                        .map_err(|e| format!("{}: {e}", tmp.display()))?;
                    f.write_all(pem_encode(&der, "PRIVATE KEY").as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| format!("{}: {e}", tmp.display()))?;
                }
                std::fs::rename(&tmp, path).map_err(|e| format!("{shown}: {e}"))?;
                tracing::info!(path = %shown, kid = %keys.kid, "made the service-account signing key");
                Ok(keys)
            }
            Err(e) => Err(format!("{shown}: {e}")),
        }
    }
}

/// k8s: keyIDFromPublicKey — the base64url SHA-256 of the PKIX DER of the public key.
fn key_id(point: &[u8]) -> String {
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    b64url(ring::digest::digest(&ring::digest::SHA256, &der).as_ref())
}

impl TokenKeys for Es256Keys {
    fn algorithm(&self) -> &'static str {
        "ES256"
    }

    fn key_id(&self) -> &str {
        &self.kid
    }

    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, String> {
        self.pair
            .sign(&self.rng, input)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "signing failed".to_string())
    }

    fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(input, signature)
            .is_ok()
    }

    fn public_jwk(&self) -> Value {
        // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let p = self.pair.public_key().as_ref();
        json!({"use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
               "x": b64url(&p[1..33]), "y": b64url(&p[33..65])})
    }
}

fn pem_encode(der: &[u8], label: &str) -> String {
    let b64 = crate::apiserver::protobuf::base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem.split(&begin).nth(1)?.split(&end).next()?;
    let std: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    super::jwt::b64std_decode(&std)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_made_once_private_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tls/service-account.key");
        let made = Es256Keys::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let read = Es256Keys::load_or_create(&path).unwrap();
        assert_eq!(made.key_id(), read.key_id());
        let sig = made.sign(b"hello").unwrap();
        assert_eq!(sig.len(), 64, "ES256 signatures are r || s");
        assert!(read.verify(b"hello", &sig));
        assert!(!read.verify(b"hellO", &sig));
        std::fs::write(&path, "garbage").unwrap();
        assert!(Es256Keys::load_or_create(&path).is_err());
    }

    #[test]
    fn the_kid_is_the_hash_of_the_public_keys_der() {
        let (keys, _) = Es256Keys::generate().unwrap();
        let jwk = keys.public_jwk();
        assert_eq!(jwk["kid"], keys.key_id());
        assert_eq!(keys.key_id().len(), 43, "32 bytes of SHA-256, base64url");
        // Rebuilt from the JWK's coordinates, the point hashes to the same id.
        let mut point = vec![4u8];
        point.extend(super::super::jwt::b64url_decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(super::super::jwt::b64url_decode(jwk["y"].as_str().unwrap()).unwrap());
        assert_eq!(key_id(&point), keys.key_id());
    }
}
