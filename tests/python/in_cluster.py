"""Run inside a pod: the official Python client's in-cluster configuration (the projected
ServiceAccount token, ca.crt, KUBERNETES_SERVICE_HOST/PORT) against gantry server. Prints one
line per check, then "ok" when every check held."""

import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_incluster_config()
v1 = client.CoreV1Api()
# The pod's Role lets it list pods in its namespace.
names = [p.metadata.name for p in v1.list_namespaced_pod("team").items]
print("team pods:", ",".join(sorted(names)))
if "in-cluster" not in names:
    sys.exit("the pod does not see itself")
# Nothing elsewhere: 403 with upstream's message.
try:
    v1.list_namespaced_pod("default")
    sys.exit("listed pods in default")
except ApiException as e:
    print("default:", e.status)
    if e.status != 403 or "system:serviceaccount:team:reader" not in e.body:
        sys.exit("expected 403 for the ServiceAccount, got %s %s" % (e.status, e.body))
try:
    v1.list_namespaced_secret("team")
    sys.exit("listed secrets")
except ApiException as e:
    print("secrets:", e.status)
    if e.status != 403:
        sys.exit("expected 403 for secrets, got %s" % e.status)
print("ok")
