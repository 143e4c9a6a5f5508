//! The objects a pod or a PersistentVolume names, read from its JSON form.
//!
//! k8s: pkg/api/v1/pod/util.go (VisitPodSecretNames, VisitPodConfigmapNames),
//! pkg/api/v1/persistentvolume/util.go (VisitPVSecretNames) and
//! component-helpers/storage/ephemeral (VolumeClaimName).

use std::collections::BTreeSet;

use serde_json::Value;

/// k8s: MirrorPodAnnotationKey.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// Every container of the pod: init, regular and ephemeral (k8s: podutil.AllContainers).
fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(move |k| items(spec, k))
}

fn volumes(pod: &Value) -> impl Iterator<Item = &Value> {
    items(pod.get("spec").unwrap_or(&Value::Null), "volumes")
}

pub fn object_namespace(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or_default()
}

pub fn object_name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or_default()
}

pub fn object_uid(obj: &Value) -> &str {
    str_at(obj, &["metadata", "uid"]).unwrap_or_default()
}

pub fn pod_node_name(pod: &Value) -> &str {
    str_at(pod, &["spec", "nodeName"]).unwrap_or_default()
}

pub fn pod_service_account(pod: &Value) -> &str {
    str_at(pod, &["spec", "serviceAccountName"]).unwrap_or_default()
}

pub fn is_mirror_pod(pod: &Value) -> bool {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR_POD_ANNOTATION))
        .is_some()
}

/// k8s: VisitPodSecretNames: imagePullSecrets, env and envFrom of every container, and the
/// secret-backed volume sources.
pub fn pod_secret_names(pod: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    for s in items(spec, "imagePullSecrets") {
        out.extend(str_at(s, &["name"]).map(str::to_string));
    }
    for c in containers(pod) {
        for e in items(c, "envFrom") {
            out.extend(str_at(e, &["secretRef", "name"]).map(str::to_string));
        }
        for e in items(c, "env") {
            out.extend(str_at(e, &["valueFrom", "secretKeyRef", "name"]).map(str::to_string));
        }
    }
    for v in volumes(pod) {
        let paths: &[&[&str]] = &[
            &["secret", "secretName"],
            &["azureFile", "secretName"],
            &["cephfs", "secretRef", "name"],
            &["cinder", "secretRef", "name"],
            &["flexVolume", "secretRef", "name"],
            &["rbd", "secretRef", "name"],
            &["scaleIO", "secretRef", "name"],
            &["iscsi", "secretRef", "name"],
            &["storageos", "secretRef", "name"],
            &["csi", "nodePublishSecretRef", "name"],
        ];
        for p in paths {
            out.extend(str_at(v, p).map(str::to_string));
        }
        for src in items(v.get("projected").unwrap_or(&Value::Null), "sources") {
            out.extend(str_at(src, &["secret", "name"]).map(str::to_string));
        }
    }
    out
}

/// k8s: VisitPodConfigmapNames: env and envFrom of every container, configMap volumes and
/// projected configMap sources.
pub fn pod_configmap_names(pod: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for c in containers(pod) {
        for e in items(c, "envFrom") {
            out.extend(str_at(e, &["configMapRef", "name"]).map(str::to_string));
        }
        for e in items(c, "env") {
            out.extend(str_at(e, &["valueFrom", "configMapKeyRef", "name"]).map(str::to_string));
        }
    }
    for v in volumes(pod) {
        out.extend(str_at(v, &["configMap", "name"]).map(str::to_string));
        for src in items(v.get("projected").unwrap_or(&Value::Null), "sources") {
            out.extend(str_at(src, &["configMap", "name"]).map(str::to_string));
        }
    }
    out
}

/// The claims of `persistentVolumeClaim` volumes and, for generic ephemeral volumes, the claim
/// the ephemeral volume controller makes: `<pod name>-<volume name>`.
pub fn pod_claim_names(pod: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let pod_name = object_name(pod);
    for v in volumes(pod) {
        if let Some(claim) = str_at(v, &["persistentVolumeClaim", "claimName"]) {
            out.insert(claim.to_string());
        } else if v.get("ephemeral").is_some_and(|e| !e.is_null()) {
            if let Some(vol) = str_at(v, &["name"]) {
                out.insert(format!("{pod_name}-{vol}"));
            }
        }
    }
    out
}

/// Whether the pod names a volume source that is a PersistentVolumeClaim.
pub fn pod_has_claim_volume(pod: &Value) -> bool {
    volumes(pod).any(|v| v.get("persistentVolumeClaim").is_some_and(|c| !c.is_null()))
}

/// Whether a projected volume has a clusterTrustBundle source.
pub fn pod_has_cluster_trust_bundle(pod: &Value) -> bool {
    volumes(pod).any(|v| {
        items(v.get("projected").unwrap_or(&Value::Null), "sources")
            .any(|s| s.get("clusterTrustBundle").is_some_and(|c| !c.is_null()))
    })
}

/// The PV's bound claim, `(namespace, name)`.
pub fn pv_claim(pv: &Value) -> Option<(&str, &str)> {
    let claim = pv.pointer("/spec/claimRef")?;
    Some((
        str_at(claim, &["namespace"]).unwrap_or_default(),
        str_at(claim, &["name"]).unwrap_or_default(),
    ))
}

/// k8s: VisitPVSecretNames, only the secrets the kubelet sees (`kubeletVisible`): the
/// `(namespace, name)` of each; a reference without a namespace is in the claim's namespace.
pub fn pv_kubelet_secrets(pv: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let spec = pv.get("spec").unwrap_or(&Value::Null);
    let claim_ns = pv_claim(pv).map(|(ns, _)| ns).unwrap_or_default();
    let mut add = |ns: Option<&str>, name: Option<&str>| {
        if let Some(name) = name {
            out.insert((ns.unwrap_or(claim_ns).to_string(), name.to_string()));
        }
    };
    if let Some(az) = spec.get("azureFile") {
        add(
            str_at(az, &["secretNamespace"]),
            str_at(az, &["secretName"]),
        );
    }
    for source in [
        "cephfs",
        "cinder",
        "flexVolume",
        "rbd",
        "scaleIO",
        "iscsi",
        "storageos",
    ] {
        if let Some(r) = spec.get(source).and_then(|s| s.get("secretRef")) {
            add(str_at(r, &["namespace"]), str_at(r, &["name"]));
        }
    }
    if let Some(csi) = spec.get("csi") {
        // k8s: controllerPublishSecretRef and controllerExpandSecretRef are not kubelet-visible.
        for r in [
            "nodePublishSecretRef",
            "nodeStageSecretRef",
            "nodeExpandSecretRef",
        ] {
            if let Some(r) = csi.get(r) {
                add(str_at(r, &["namespace"]), str_at(r, &["name"]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pods_references_are_found_everywhere_upstream_looks() {
        let pod = json!({
            "metadata": {"name": "p", "namespace": "ns"},
            "spec": {
                "nodeName": "n1",
                "serviceAccountName": "sa",
                "imagePullSecrets": [{"name": "pull"}],
                "initContainers": [{"name": "i", "env": [
                    {"name": "A", "valueFrom": {"secretKeyRef": {"name": "init-env", "key": "k"}}}]}],
                "containers": [{"name": "c",
                    "envFrom": [{"secretRef": {"name": "envfrom-s"}}, {"configMapRef": {"name": "envfrom-cm"}}],
                    "env": [{"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                            {"name": "C", "value": "plain"}]}],
                "ephemeralContainers": [{"name": "e", "envFrom": [{"secretRef": {"name": "eph-s"}}]}],
                "volumes": [
                    {"name": "v1", "secret": {"secretName": "vol-s"}},
                    {"name": "v2", "configMap": {"name": "vol-cm"}},
                    {"name": "v3", "projected": {"sources": [
                        {"secret": {"name": "proj-s"}}, {"configMap": {"name": "proj-cm"}},
                        {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "v4", "persistentVolumeClaim": {"claimName": "claim"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "v6", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-s"}}},
                    {"name": "v7", "emptyDir": {}}
                ]
            }
        });
        let secrets: Vec<String> = pod_secret_names(&pod).into_iter().collect();
        assert_eq!(
            secrets,
            [
                "csi-s",
                "envfrom-s",
                "eph-s",
                "init-env",
                "proj-s",
                "pull",
                "vol-s"
            ]
        );
        let cms: Vec<String> = pod_configmap_names(&pod).into_iter().collect();
        assert_eq!(cms, ["env-cm", "envfrom-cm", "proj-cm", "vol-cm"]);
        let claims: Vec<String> = pod_claim_names(&pod).into_iter().collect();
        assert_eq!(claims, ["claim", "p-scratch"]);
        assert!(pod_has_claim_volume(&pod));
        assert_eq!(pod_service_account(&pod), "sa");
        assert_eq!(pod_node_name(&pod), "n1");
        assert!(!is_mirror_pod(&pod));
    }

    #[test]
    fn a_pvs_kubelet_visible_secrets_default_to_the_claims_namespace() {
        let pv = json!({
            "metadata": {"name": "pv1"},
            "spec": {
                "claimRef": {"namespace": "ns", "name": "claim"},
                "csi": {"driver": "d",
                    "nodePublishSecretRef": {"name": "pub"},
                    "nodeStageSecretRef": {"name": "stage", "namespace": "other"},
                    "controllerPublishSecretRef": {"name": "ctrl", "namespace": "ns"}}
            }
        });
        let got: Vec<(String, String)> = pv_kubelet_secrets(&pv).into_iter().collect();
        assert_eq!(
            got,
            [
                ("ns".to_string(), "pub".to_string()),
                ("other".to_string(), "stage".to_string())
            ]
        );
        assert_eq!(pv_claim(&pv), Some(("ns", "claim")));
    }
}
