"""The Python client's watch meets a resourceVersion older than the server's watch history
(the server runs with --watch-history 3): the watch ends in a 410 ApiException, which is how the
client knows to relist. Run by tests/http_python.rs; prints "ok"."""
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
old = core.list_namespaced_config_map("default").metadata.resource_version
for i in range(6):
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"c{i}")))
try:
    events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=old, timeout_seconds=2))
    raise AssertionError(f"a watch from an expired version returned {events}")
except ApiException as e:
    assert e.status == 410, e
# A relist gives a version the watch accepts.
fresh = core.list_namespaced_config_map("default").metadata.resource_version
events = list(watch.Watch().stream(core.list_namespaced_config_map, "default", resource_version=fresh, timeout_seconds=1))
assert events == [], events
print("ok")
