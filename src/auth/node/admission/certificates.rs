//! NodeRestriction for CertificateSigningRequests (k8s: admitCSR).

use serde_json::Value;

use super::{NodeAdmission, Operation};
use crate::api::status::ApiError;
use crate::auth::node::csr;

/// k8s: the signers whose certificates name a node (certapi.KubeletServingSignerName and
/// KubeAPIServerClientKubeletSignerName).
const NODE_SIGNERS: &[&str] = &[
    "kubernetes.io/kubelet-serving",
    "kubernetes.io/kube-apiserver-client-kubelet",
];

/// k8s: admitCSR (v1.31+, AllowInsecureKubeletCertificateSigningRequests off): a node asks
/// for a kubelet client or serving certificate only in its own name.
pub(super) fn admit_csr(node: &str, req: &NodeAdmission) -> Result<(), ApiError> {
    if req.operation != Operation::Create {
        return Ok(());
    }
    let Some(csr) = req.new.filter(|c| c.is_object()) else {
        return Err(req.forbidden("unexpected type <nil>"));
    };
    let signer = csr
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !NODE_SIGNERS.contains(&signer) {
        return Ok(());
    }
    // `spec.request` is the PEM, base64-encoded in JSON as every []byte field.
    let pem = csr
        .pointer("/spec/request")
        .and_then(Value::as_str)
        .map(|b| csr::base64_decode(b).unwrap_or_default())
        .unwrap_or_default();
    let cn = csr::csr_common_name(&pem)
        .map_err(|e| req.forbidden(format!("unable to parse csr: {e}")))?;
    if cn != format!("system:node:{node}") {
        return Err(req.forbidden(format!(
            "can only create a node CSR with CN=system:node:{node}"
        )));
    }
    Ok(())
}
