"""The official Python client (kubernetes==37, strict pydantic models) against gantry server.

Run by tests/http_python.rs with the kubeconfig path as the only argument; prints "ok" at the
end and fails with a traceback on the first surprise.
"""
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
apps = client.AppsV1Api()

# GET /version/ (with the slash), every VersionInfo field required.
v = client.VersionApi().get_code()
assert (v.major, v.minor) == ("1", "33"), v

names = [n.metadata.name for n in core.list_namespace().items]
for ns in ["default", "kube-system", "kube-public", "kube-node-lease"]:
    assert ns in names, names

# Created from a model: no apiVersion/kind in the body, no Content-Type.
cm = core.create_namespaced_config_map(
    "default",
    client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"app": "py"}), data={"a": "1"}),
)
assert cm.metadata.uid and cm.metadata.resource_version, cm.metadata
assert core.read_namespaced_config_map("py", "default").data == {"a": "1"}

# Replace: datetimes come back re-serialised with an offset.
cm.data["a"] = "2"
core.replace_namespaced_config_map("py", "default", cm)
try:
    core.replace_namespaced_config_map("py", "default", cm)  # stale resourceVersion
    raise AssertionError("a stale replace succeeded")
except ApiException as e:
    assert e.status == 409, e

# Patches: a dict is a strategic merge patch, a list a JSON patch.
core.patch_namespaced_config_map("py", "default", {"metadata": {"labels": {"tier": "x"}}})
core.patch_namespaced_config_map("py", "default", [{"op": "replace", "path": "/data/a", "value": "3"}])
cm = core.read_namespaced_config_map("py", "default")
assert cm.metadata.labels == {"app": "py", "tier": "x"} and cm.data == {"a": "3"}, cm

# Selectors.
assert len(core.list_namespaced_config_map("default", label_selector="app=py").items) == 1
# (kube-root-ca.crt, the root CA publisher's, is in every namespace.)
assert [c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="app!=py").items] == ["kube-root-ca.crt"]
assert len(core.list_namespaced_config_map("default", field_selector="metadata.name=py").items) == 1

# Deployments and their scale subresource (Scale.status.replicas is required).
dep = apps.create_namespaced_deployment(
    "default",
    client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx")]),
            ),
        ),
    ),
)
assert dep.spec.template.spec.containers[0].image_pull_policy == "Always", "defaults applied"
scale = apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 4}})
# The deployment controller may have counted pods already (no node runs them here).
assert scale.spec.replicas == 4 and scale.status.replicas in (0, 2, 4), scale
assert apps.read_namespaced_deployment("web", "default").spec.replicas == 4

# A pod, read back through the strict model, and a list by node.
core.create_namespaced_pod(
    "default",
    client.V1Pod(metadata=client.V1ObjectMeta(name="p"), spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])),
)
pods = core.list_namespaced_pod("default", field_selector="spec.nodeName=")
# The deployment's pods are unscheduled too (this server has no node).
assert [p.metadata.name for p in pods.items if not p.metadata.name.startswith("web-")] == ["p"], pods

# A watch that ends at its timeout, from the list's resourceVersion.
rv = core.list_namespaced_config_map("default").metadata.resource_version
core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py2")))
events = [
    (e["type"], e["object"].metadata.name)
    for e in watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=2)
]
assert events == [("ADDED", "py2")], events

# Namespaces and services: create, list, replace, patch, delete.
ns = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-ns")))
assert ns.status.phase == "Active", ns.status
assert "py-ns" in [n.metadata.name for n in core.list_namespace().items]
ns.metadata.labels = {"team": "a"}
ns = core.replace_namespace("py-ns", ns)
core.patch_namespace("py-ns", {"metadata": {"labels": {"tier": "b"}}})
assert core.read_namespace("py-ns").metadata.labels == {"team": "a", "tier": "b"}
svc = core.create_namespaced_service(
    "py-ns",
    client.V1Service(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    ),
)
assert svc.spec.ports[0].protocol == "TCP" and svc.spec.type == "ClusterIP", svc.spec
svc.spec.selector = {"app": "web2"}
core.replace_namespaced_service("web", "py-ns", svc)
core.patch_namespaced_service("web", "py-ns", {"spec": {"ports": [{"port": 80, "target_port": 9090}]}})
svc = core.read_namespaced_service("web", "py-ns")
assert svc.spec.selector == {"app": "web2"}, svc.spec
assert [s.metadata.name for s in core.list_namespaced_service("py-ns").items] == ["web"]
core.delete_namespaced_service("web", "py-ns")
assert core.list_namespaced_service("py-ns").items == []
core.delete_namespace("py-ns")

# Pods: replace and patch through the strict models too. The scheduler inside the server
# writes the pod's status meanwhile (no node fits), so a replace may meet a newer version and
# is retried on 409, as clients do.
for attempt in range(10):
    p = core.read_namespaced_pod("p", "default")
    p.metadata.labels = {"x": "1"}
    try:
        p = core.replace_namespaced_pod("p", "default", p)
        break
    except ApiException as e:
        if e.status != 409 or attempt == 9:
            raise
core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"y": "2"}}})
assert core.read_namespaced_pod("p", "default").metadata.labels == {"x": "1", "y": "2"}

# Errors are Status objects.
try:
    core.read_namespaced_config_map("nope", "default")
    raise AssertionError("read a missing object")
except ApiException as e:
    assert e.status == 404 and '"reason":"NotFound"' in e.body.replace(" ", ""), e.body

# Deletes: a Status for a ConfigMap, the object for a pod.
core.delete_namespaced_config_map("py", "default")
core.delete_namespaced_pod("p", "default")
apps.delete_namespaced_deployment("web", "default")
print("ok")
