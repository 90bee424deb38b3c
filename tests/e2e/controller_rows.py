"""A rows writer that is the whole controller: the lab's objects go into the in-process Kubernetes
API server and `vegd run`'s controller (in this process) writes NB from its watches.

apply() makes the API server hold exactly the objects `rows.render` gives for the current specs
(created, replaced or deleted like a user and a kubelet would), then waits until vegd reports the
gateways' instances in their status: that status is written after the NB transaction of the same
reconcile, so when it shows, NB has the rows. The gateway pods are the lab's namespaces: their
objects carry the addresses the lab gave them (no FakeCluster here), so the Deployments vegd
creates stay unserved and the phase stays Processing; the instances are what matter.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from ovnstack import OvnStack, wait_for
from vegd_harness import InProcessController

from .rows import EgressSpec, render


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace") or "", meta["name"]


class ControllerRows:
    name = "controller"

    def __init__(self, bfd_port_mode: str = "stock", workdir: Path | None = None):
        # imported here: kubeapi.fixture is also a pytest plugin, which must be loaded first
        from kubeapi.fixture import KubeApi

        self.bfd_port_mode = bfd_port_mode
        self.api = KubeApi()
        self.raw = client.ApiClient(self.api.configuration())
        self.specs: dict[str, EgressSpec] = {}
        self.bfd_ports: dict[str, str] = {}
        self.applied: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.vegd: InProcessController | None = None
        self.converged_in: list[float] = []

    def apply(self, stack: OvnStack, spec: EgressSpec) -> None:
        self.specs[spec.name] = spec
        if spec.bfd is not None:
            self.bfd_ports[spec.vpc] = spec.bfd.port_ip
        self.sync(stack)

    def remove(self, stack: OvnStack, spec: EgressSpec) -> None:
        self.specs.pop(spec.name, None)
        self.sync(stack)

    def sync(self, stack: OvnStack) -> None:
        if self.vegd is None:
            self.vegd = InProcessController(self.api, stack, bfd_port_mode=self.bfd_port_mode)
            self.vegd.start()
        desired = {_key(o): o for o in render(list(self.specs.values()), self.bfd_ports)}
        start = time.monotonic()
        # gateways last on the way in, first on the way out: like a user applying manifests
        for key in sorted(set(self.applied) - set(desired), key=lambda k: k[0] != "Pod"):
            self._delete(key)
        for key, obj in sorted(desired.items(), key=lambda kv: kv[0][0] == "VpcEgressGateway"):
            if self.applied.get(key) != obj:
                self._put(key, obj)
        for spec in self.specs.values():
            self._wait_instances(spec)
        self.converged_in.append(time.monotonic() - start)
        print(f"vegd controller converged in {self.converged_in[-1] * 1000:.0f} ms")

    def _put(self, key: tuple[str, str, str], obj: dict[str, Any]) -> None:
        """Server-side, as `KubeApi.create` does: the watches see ordinary events."""
        body = copy.deepcopy(obj)
        if key[0] == "Pod":
            body["spec"].setdefault("containers", [{"name": "gateway", "image": "vegd"}])
        store, rt = self.api.store, self.api._type_of(body)
        ns = key[1] or None
        from kubeapi.store import ApiError

        try:
            existing = store.get(rt, ns, key[2])
        except ApiError as exc:
            if exc.code != 404:
                raise
            existing = None
        if existing is None:
            self.api.create(body)
        else:
            status = body.pop("status", None)
            body["metadata"] = {**existing["metadata"], **body["metadata"]}
            body["metadata"].pop("resourceVersion", None)
            updated = store.update(rt, ns, key[2], {**existing, **body})
            if status is not None and rt.status:
                store.update(rt, ns, key[2], {**updated, "status": status}, "status")
        self.applied[key] = obj

    def _delete(self, key: tuple[str, str, str]) -> None:
        obj = self.applied.pop(key)
        self.api.store.delete(self.api._type_of(obj), key[1] or None, key[2])

    def _wait_instances(self, spec: EgressSpec) -> None:
        ns, name = spec.namespace_name
        want = sorted(",".join(p.ips) for p in spec.instances if p.phase == "Running")
        custom = client.CustomObjectsApi(self.raw)

        def converged() -> bool:
            status = custom.get_namespaced_custom_object(
                "kubeovn.io", "v1", ns, "vpc-egress-gateways", name).get("status") or {}
            return sorted(status.get("internalIPs") or []) == want

        wait_for(converged, 20, what=f"vegd's status of {spec.name} lists {want}")

    def close(self) -> None:
        if self.vegd is not None:
            self.vegd.stop()
        self.raw.close()
        self.api.close()
