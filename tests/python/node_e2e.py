"""The official Python client against gantry server with its own node agent: the node with its
real nodeInfo (strict models refuse missing required fields), a pod that runs, its log, and a
log streamed with follow."""
import sys
import time

from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()

nodes = v1.list_node().items
assert len(nodes) == 1, nodes
info = nodes[0].status.node_info
assert info.kernel_version and info.kernel_version != "gantry", info
assert info.container_runtime_version.startswith("process://"), info
assert info.kubelet_version == "v1.33.0", info
assert int(nodes[0].status.capacity["cpu"]) >= 1
assert any(c.type == "Ready" and c.status == "True" for c in nodes[0].status.conditions)

pod = client.V1Pod(
    metadata=client.V1ObjectMeta(name="talker"),
    spec=client.V1PodSpec(
        containers=[
            client.V1Container(
                name="c",
                image="busybox",
                command=["sh", "-c", "echo one; echo two; sleep 1000"],
            )
        ]
    ),
)
v1.create_namespaced_pod("default", pod)
deadline = time.time() + 30
while True:
    p = v1.read_namespaced_pod("talker", "default")
    if p.status.phase == "Running" and p.status.pod_ip:
        break
    assert time.time() < deadline, p.status
    time.sleep(0.2)
assert p.status.container_statuses[0].ready, p.status
deadline = time.time() + 10
while v1.read_namespaced_pod_log("talker", "default") != "one\ntwo\n":
    assert time.time() < deadline, v1.read_namespaced_pod_log("talker", "default")
    time.sleep(0.2)
assert v1.read_namespaced_pod_log("talker", "default", tail_lines=1) == "two\n"
stream = v1.read_namespaced_pod_log(
    "talker", "default", follow=True, _preload_content=False
)
first = stream.readline()
assert first == b"one\n", first
stream.release_conn()
v1.delete_namespaced_pod("talker", "default", grace_period_seconds=1)
print("ok")
