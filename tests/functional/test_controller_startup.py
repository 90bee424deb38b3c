"""`vegd run`'s first full pass: NB's rows come before the Kubernetes writes."""

from __future__ import annotations

import time

from kubernetes import client
from ovnstack import wait_for
from scenario import SEED, add_base_topology
from vegd_harness import InProcessController

from vegd.controller import manager
from vegd.controller.reconciler import FINALIZER

pytest_plugins = ["kubeapi.fixture", "kubelet"]

G, V, PLURAL = "kubeovn.io", "v1", "vpc-egress-gateways"
KEY_WRITES = 4  # a new gateway's: finalizer, ConfigMap, Deployment, status


def _kube_writes(kubeapi) -> int:
    """vegd's writes of a gateway's finish: finalizer and status patches, Deployment and
    ConfigMap creations (not the stand-in kubelet's ReplicaSets, pods and their statuses)."""
    return sum(1 for method, path, *_ in kubeapi.requests()
               if (method == "PATCH" and "/vpc-egress-gateways/" in path)
               or (method == "POST" and path.endswith(("/deployments", "/configmaps"))))


def _within(predicate, seconds: float) -> bool:
    """Whether `predicate` became true within `seconds` (a bounded look, never an error)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_first_pass_writes_nb_batches_before_the_kubernetes_writes(fresh_ovn, kubeapi,
                                                                  fake_cluster, monkeypatch):
    """Nine gateways in batches of three: while the worker writes a batch, the Kubernetes writes
    of the batches before (finalizers, ConfigMaps, Deployments, statuses) wait; afterwards they
    are all done."""
    add_base_topology(fresh_ovn)
    fake_cluster.apply_yaml(SEED / "cluster.yaml")
    custom = client.CustomObjectsApi(client.ApiClient(kubeapi.configuration()))
    names = [f"gw{i}" for i in range(9)]
    for i, name in enumerate(names):
        custom.create_namespaced_custom_object(G, V, "default", PLURAL, {
            "apiVersion": f"{G}/{V}", "kind": "VpcEgressGateway",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"vpc": "vpc1", "replicas": 1, "internalSubnet": "subnet1",
                     "externalSubnet": "macvlan1",
                     "policies": [{"snat": True, "ipBlocks": [f"192.168.{i}.0/24"]}]}})
    monkeypatch.setattr(manager, "BATCH_KEYS", 3)
    vegd = InProcessController(kubeapi, fresh_ovn)
    reconciler = vegd.controller.reconciler
    real = reconciler.write_batch
    grew: list[int] = []  # per NB batch of the first pass: Kubernetes writes while it ran

    def write_batch(keys, *args):
        if vegd.stats.resyncs_completed:
            return real(keys, *args)
        before = _kube_writes(kubeapi)
        # give a finisher that does not wait its chance to write while this batch is written
        if grew:
            _within(lambda: _kube_writes(kubeapi) >= before + 2 * KEY_WRITES, 0.5)
        out = real(keys, *args)
        grew.append(_kube_writes(kubeapi) - before)
        return out

    reconciler.write_batch = write_batch
    vegd.start()
    try:
        wait_for(lambda: vegd.stats.resyncs_completed >= 1, 30, what="the first full pass")
        assert len(grew) >= 3, grew  # the first pass took several batches
        # at most the rest of the one key the finisher had begun (without waiting, it would
        # go on through the queued batch's keys: 3 keys, 12 writes)
        assert max(grew) <= KEY_WRITES, grew
        for name in names:  # and the Kubernetes writes all came after
            obj = custom.get_namespaced_custom_object(G, V, "default", PLURAL, name)
            assert FINALIZER in obj["metadata"].get("finalizers", []), name
            assert obj.get("status", {}).get("conditions"), name
    finally:
        vegd.stop()
