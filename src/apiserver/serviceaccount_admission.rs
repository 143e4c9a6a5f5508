//! ServiceAccount admission (k8s: plugin/pkg/admission/serviceaccount/admission.go): a new pod
//! runs as a ServiceAccount that exists (`default` unless it names one) and, unless it or its
//! ServiceAccount says `automountServiceAccountToken: false`, gets the projected
//! `kube-api-access-<suffix>` volume (a bound token, the cluster CA, the namespace) mounted
//! read-only at `/var/run/secrets/kubernetes.io/serviceaccount` in each of its containers.
//! On an apiserver with ServiceAccount tokens (`with_tokens`) only.

use serde_json::{json, Value};

use super::{name_suffix, ApiServer, RequestContext};
use crate::api::registry::{self, ResourceInfo};
use crate::api::status::ApiError;
use crate::store::Store;

/// k8s: DefaultServiceAccountName.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// k8s: DefaultAPITokenMountPath.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// k8s: ServiceAccountVolumeName, the prefix of the volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// k8s: MirrorPodAnnotationKey — mirror pods are left as they are.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// k8s: TokenVolumeSource — what the kubelet projects into the volume.
pub fn token_volume(name: &str) -> Value {
    json!({"name": name, "projected": {
    "defaultMode": 0o644,
    "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}})
}

impl<S: Store> ApiServer<S> {
    /// k8s: Plugin.Admit for a pod's create.
    pub(super) async fn admit_service_account(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        pod: &mut Value,
        ctx: &RequestContext,
    ) -> Result<(), ApiError> {
        if self.tokens.is_none() || !pod["spec"].is_object() {
            return Ok(());
        }
        if pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(MIRROR_ANNOTATION))
            .is_some()
        {
            return Ok(());
        }
        let spec = &mut pod["spec"];
        let sa_name = match spec["serviceAccountName"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            Some(n) => n.to_string(),
            None => {
                spec["serviceAccountName"] = json!(DEFAULT_SERVICE_ACCOUNT);
                DEFAULT_SERVICE_ACCOUNT.to_string()
            }
        };
        // k8s: the deprecated serviceAccount field mirrors serviceAccountName.
        if spec["serviceAccount"].as_str().is_none_or(str::is_empty) {
            spec["serviceAccount"] = json!(sa_name);
        }
        let accounts = registry::by_plural("", "serviceaccounts").expect("registered");
        let sa = match self.get(accounts, Some(namespace), &sa_name).await {
            Ok(sa) => sa,
            Err(e) if e.reason == "NotFound" => {
                return Err(ApiError::forbidden(
                    res,
                    name,
                    format!(
                        "error looking up service account {namespace}/{sa_name}: serviceaccount \"{sa_name}\" not found"
                    ),
                ))
            }
            Err(e) => return Err(e),
        };
        // k8s: shouldAutomount — the pod's choice, else its ServiceAccount's, else true.
        let automount = spec["automountServiceAccountToken"]
            .as_bool()
            .or(sa["automountServiceAccountToken"].as_bool())
            .unwrap_or(true);
        if automount {
            mount_token(spec, ctx);
        }
        if spec["imagePullSecrets"]
            .as_array()
            .is_none_or(Vec::is_empty)
        {
            if let Some(secrets) = sa["imagePullSecrets"].as_array().filter(|s| !s.is_empty()) {
                spec["imagePullSecrets"] = json!(secrets
                    .iter()
                    .map(|s| json!({"name": s["name"]}))
                    .collect::<Vec<_>>());
            }
        }
        Ok(())
    }
}

/// k8s: mountServiceAccountToken.
fn mount_token(spec: &mut Value, ctx: &RequestContext) {
    let existing = spec["volumes"].as_array().and_then(|vols| {
        vols.iter()
            .filter_map(|v| v["name"].as_str())
            .find(|n| n.starts_with(VOLUME_PREFIX))
            .map(String::from)
    });
    // A suffix of its own (the request's randomness turned, so that it is not the
    // generateName suffix of the pod).
    let volume = existing.clone().unwrap_or_else(|| {
        format!(
            "{VOLUME_PREFIX}{}",
            name_suffix(ctx.random.rotate_left(29) ^ 0x5a5a_5a5a)
        )
    });
    let mount = json!({"name": volume, "readOnly": true, "mountPath": TOKEN_MOUNT_PATH});
    let mut needed = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec[list].as_array_mut() else {
            continue;
        };
        for c in containers {
            let mounted = c["volumeMounts"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["mountPath"] == TOKEN_MOUNT_PATH));
            if mounted {
                continue;
            }
            if !c["volumeMounts"].is_array() {
                c["volumeMounts"] = json!([]);
            }
            c["volumeMounts"]
                .as_array_mut()
                .expect("array")
                .push(mount.clone());
            needed = true;
        }
    }
    if existing.is_none() && needed {
        if !spec["volumes"].is_array() {
            spec["volumes"] = json!([]);
        }
        spec["volumes"]
            .as_array_mut()
            .expect("array")
            .push(token_volume(&volume));
    }
}
