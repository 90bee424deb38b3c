"""What a real cluster does behind the API server for vegd's Deployments, simulated for tests.

The in-process API server (`tests/kubeapi/`) runs no controllers: when vegd creates a Deployment,
nobody creates, schedules, addresses or starts its pods. `FakeCluster` plays, through the official
`kubernetes` client only, the parts vegd depends on:

- Deployment + ReplicaSet controllers: `spec.replicas` pods per Deployment, named
  `<deploy>-<pod-template-hash>-<5 random>`, owned directly by the Deployment (the test server
  has no ReplicaSets); rolling updates within maxSurge/maxUnavailable; status through `/status`.
- Scheduler: node affinity, `nodeSelector`, required pod anti-affinity; a pod that fits nowhere
  stays Pending with `PodScheduled=False` (`kubelet_rules.py`).
- Kube-OVN IPAM/CNI and Multus: addresses from the subnets the annotations name, `ip_pool`s,
  attachments and the network-status annotation (`kubelet_ipam.py`).
- Kubelet: Pending -> Running with IPs, `hostIP`, `startTime`, conditions, through `/status`;
  readiness can be held, pods failed or killed.

One worker thread reconciles from fresh lists whenever one of its watches (Deployments, Pods,
Nodes, Subnets, NADs; `kubelet_api.py`) reports a change; the watches resume from their
resourceVersion after a disconnect and relist after 410 Gone. Only pods controlled by a
Deployment are driven; `add_pod` creates plain running workload pods directly.
`docs/kubeapi-test-server.md` lists the API and where the simulation departs from a cluster.

Use it with `pytest_plugins = ["kubeapi.fixture", "kubelet"]` and the `fake_cluster` fixture.
(PYTEST_DONT_REWRITE: no asserts here; test modules import it before pytest loads it as a plugin.)
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubelet_api import (
    KINDS,
    MAX_BACKOFF,
    MIN_BACKOFF,
    NETWORK_ERRORS,
    Api,
    WatchLoop,
    call,
    json_body,
    resource_path,
)
from kubelet_ipam import IP_POOL, LOGICAL_SWITCH, NETWORK_STATUS, Ipam, NoAddress, ip_list, wire
from kubelet_rules import (
    HASH_LABEL,
    HOSTNAME,
    Obj,
    annotations_of,
    controller_uid,
    deletion_order,
    deployment_status_patch,
    failed_status,
    is_alive,
    is_ready,
    key_of,
    label_selector_matches,
    labels_of,
    meta_of,
    node_ip,
    node_name_of,
    node_ready_condition,
    phase_of,
    readiness_status,
    rolling_limits,
    running_status,
    schedule,
    template_hash,
    unschedulable_status,
)
from kubernetes.client.rest import ApiException

__all__ = ["HASH_LABEL", "IP_POOL", "LOGICAL_SWITCH", "NETWORK_STATUS", "SEED", "FakeCluster",
           "NoAddress", "fake_cluster", "template_hash"]

log = logging.getLogger("kubelet-sim")

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"


@dataclass
class _Pass:
    """What one reconcile pass read, updated with what it wrote."""

    pods: dict[str, Obj]
    nodes: dict[str, Obj]
    nads: dict[str, Obj]
    ipam: Ipam

    @classmethod
    def read(cls, api: Api) -> _Pass:
        pods = api.items("pods")
        nodes = {meta_of(n)["name"]: n for n in api.items("nodes")}
        nads = {key_of(n): n for n in api.items("nads")}
        return cls({key_of(p): p for p in pods}, nodes, nads, Ipam(api.items("subnets"), pods,
                                                                 api.items("ippools")))

    def owned(self, uid: str) -> list[Obj]:
        return [p for p in self.pods.values() if controller_uid(p) == uid and is_alive(p)]


class FakeCluster:
    """ReplicaSet controller + scheduler + kubelet + Kube-OVN IPAM/CNI + Multus for tests.

    `kubeapi` is anything with an `api_client()` method returning a new ApiClient (a
    `kubeapi.fixture.KubeApi`); each thread gets its own client.
    """

    def __init__(self, kubeapi: Any, *, pods_ready: bool = True, pods_running: bool = True,
                 resync_period: float | None = None) -> None:
        self._api = Api(kubeapi.api_client())  # the helpers' (the test's thread)
        self._worker_api = Api(kubeapi.api_client())
        self._pods_ready = pods_ready
        self._pods_running = pods_running
        self._resync = resync_period
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._dirty = True
        self._busy = False
        self._pass_lock = threading.Lock()  # one allocator at a time: worker pass or add_pod
        self._ready_override: dict[str, bool] = {}
        self._created: dict[str, int] = {}  # pod uid -> creation sequence
        self.passes = 0
        self.last_error: BaseException | None = None
        self.crash: BaseException | None = None
        self._loops = [WatchLoop(what, Api(kubeapi.api_client()).lists[what], self.kick,
                                 self._stopping)  # one client (connection) per watch
                       for what in ("deployments", "pods", "nodes", "subnets", "nads")]
        self._worker = threading.Thread(target=self._work, name="kubelet-sim-worker",
                                        daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> FakeCluster:
        """Start the watches and the worker; return once every watch has listed and the worker
        has handled that."""
        for thread in self.threads():
            thread.start()
        deadline = time.monotonic() + timeout
        for loop in self._loops:
            if not loop.synced.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"kubelet-sim: watch of {loop.what} never listed")
        self.wait_idle(max(0.0, deadline - time.monotonic()))
        return self

    def close(self) -> None:
        """Stop the watches and the worker and join them; re-raise a crash of the worker."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for loop in self._loops:
            loop.interrupt()
        for thread in self.threads():
            if thread.is_alive():
                thread.join(10)
        self._raise_crash()

    def threads(self) -> list[threading.Thread]:
        return [*(loop.thread for loop in self._loops), self._worker]

    @property
    def watches(self) -> dict[str, WatchLoop]:
        """The watch loops by resource: `relists`, `reconnects`, `resource_version`."""
        return {loop.what: loop for loop in self._loops}

    def kick(self) -> None:
        """Ask for a reconcile pass."""
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Until the worker has handled every change it has been told about. Events still in
        flight from the server are not covered: wait for an outcome when that matters."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._dirty or self._busy:
                self._raise_crash()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"kubelet-sim busy after {timeout}s "
                                       f"(last error: {self.last_error!r})")
                self._cond.wait(left)

    # ------------------------------------------------------------ knobs

    @property
    def pods_ready(self) -> bool:
        """Whether the kubelet reports started pods Ready (a per-pod `set_ready` wins)."""
        return self._pods_ready

    @pods_ready.setter
    def pods_ready(self, value: bool) -> None:
        self._pods_ready = value
        self.kick()

    @property
    def pods_running(self) -> bool:
        """Whether the kubelet starts pods at all; False holds them Pending (addressed)."""
        return self._pods_running

    @pods_running.setter
    def pods_running(self, value: bool) -> None:
        self._pods_running = value
        self.kick()

    # ------------------------------------------------------------ worker

    def _work(self) -> None:
        backoff = MIN_BACKOFF
        while True:
            with self._cond:
                while not self._dirty and not self._stopping.is_set():
                    if not self._cond.wait(self._resync) and self._resync:
                        break
                if self._stopping.is_set():
                    return
                self._dirty = False
                self._busy = True
            failed = False
            try:
                with self._pass_lock:
                    self._pass(self._worker_api)
                backoff = MIN_BACKOFF
            except (ApiException, NoAddress, *NETWORK_ERRORS) as e:
                # a conflict, a pod deleted under us, a 5xx, the server down: again from
                # fresh lists
                log.debug("kubelet-sim pass: %r", e)
                self.last_error = e
                failed = True
            except Exception as e:  # a bug in the simulator: surface it in wait_*/close
                log.exception("kubelet-sim pass crashed")
                self.crash = e
                failed = True
            finally:
                with self._cond:
                    self._busy = False
                    self._dirty |= failed
                    self.passes += 1
                    self._cond.notify_all()
            if failed:
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _pass(self, api: Api) -> None:
        deployments = api.items("deployments")  # before the pods: no pod is of a newer one
        st = _Pass.read(api)
        live = {meta_of(d)["uid"] for d in deployments}
        for pod in list(st.pods.values()):
            uid = controller_uid(pod)
            if uid and uid not in live and not meta_of(pod).get("deletionTimestamp"):
                self._delete(api, st, pod)  # the server's GC does it too; either way
        active = [d for d in deployments if not meta_of(d).get("deletionTimestamp")]
        for dep in active:
            self._release_unselected(api, st, dep)
            self._sync_deployment(api, st, dep)
        for pod in list(st.pods.values()):
            if controller_uid(pod) in live and is_alive(pod):
                self._run_pod(api, st, pod)
        for dep in active:
            patch = deployment_status_patch(dep, st.owned(meta_of(dep)["uid"]))
            if patch is not None:
                api.patch_deployment_status(meta_of(dep)["namespace"], meta_of(dep)["name"],
                                            patch)

    # ------------------------------------------------------------ Deployment / ReplicaSet

    def _release_unselected(self, api: Api, st: _Pass, dep: Obj) -> None:
        """Pods relabelled out of the selector are orphaned (and replaced), as the ReplicaSet
        controller does."""
        selector = (dep.get("spec") or {}).get("selector")
        uid = meta_of(dep)["uid"]
        for pod in st.owned(uid):
            if not label_selector_matches(selector, labels_of(pod)):
                m = meta_of(pod)
                others = [r for r in m.get("ownerReferences") or [] if r.get("uid") != uid]
                st.pods[key_of(pod)] = api.patch_pod(m["namespace"], m["name"], {
                    "metadata": {"ownerReferences": others or None}}, merge=True)

    def _sync_deployment(self, api: Api, st: _Pass, dep: Obj) -> None:
        """Scale and roll as deployment/rolling.go does: new pods up to replicas + maxSurge,
        old ones down while at least replicas - maxUnavailable stay ready."""
        spec = dep.get("spec") or {}
        want = int(spec.get("replicas", 1))
        current = template_hash(spec.get("template") or {})
        pods = st.owned(meta_of(dep)["uid"])
        new = [p for p in pods if labels_of(p).get(HASH_LABEL) == current]
        old = [p for p in pods if labels_of(p).get(HASH_LABEL) != current]
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            for pod in old:
                self._delete(api, st, pod)
            old = []
        surge, unavailable = rolling_limits(strategy, want)
        if len(new) < want:
            room = want + surge - len(new) - len(old)
            for _ in range(max(0, min(want - len(new), room))):
                new.append(self._create_pod(api, st, dep, current))
        elif len(new) > want:
            for pod in deletion_order(new, self._created)[:len(new) - want]:
                self._delete(api, st, pod)
                new.remove(pod)
        if not old:
            return
        min_available = want - unavailable
        budget = len(new) + len(old) - min_available - sum(1 for p in new if not is_ready(p))
        for pod in [p for p in deletion_order(old, self._created) if not is_ready(p)]:
            if budget <= 0:
                break
            self._delete(api, st, pod)  # unhealthy old pods first
            old.remove(pod)
            budget -= 1
        budget = min(budget, sum(1 for p in new + old if is_ready(p)) - min_available)
        for pod in deletion_order(old, self._created)[:max(0, budget)]:
            self._delete(api, st, pod)

    def _create_pod(self, api: Api, st: _Pass, dep: Obj, pod_hash: str) -> Obj:
        dm = meta_of(dep)
        template = copy.deepcopy((dep.get("spec") or {}).get("template") or {})
        tm = template.get("metadata") or {}
        body: Obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": f"{dm['name']}-{pod_hash}-",
                "namespace": dm["namespace"],
                "labels": {**(tm.get("labels") or {}), HASH_LABEL: pod_hash},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": dm["name"], "uid": dm["uid"], "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": template.get("spec") or {},
        }
        if tm.get("annotations"):
            body["metadata"]["annotations"] = dict(tm["annotations"])
        if not node_name_of(body):
            node, _ = schedule(body, st.nodes, st.pods.values())
            if node:
                body["spec"]["nodeName"] = node
        for _ in range(5):  # a generateName collision answers 409 AlreadyExists
            try:
                pod = api.create_pod(dm["namespace"], body)
                break
            except ApiException as e:
                if e.status != 409:
                    raise
        else:
            raise NoAddress("no free pod name after 5 tries")
        self._created[meta_of(pod)["uid"]] = len(self._created) + 1
        st.pods[key_of(pod)] = pod
        return pod

    def _delete(self, api: Api, st: _Pass, pod: Obj) -> None:
        m = meta_of(pod)
        api.delete_pod(m["namespace"], m["name"])
        st.pods.pop(key_of(pod), None)

    # ------------------------------------------------------------ scheduler, CNI, kubelet

    def _run_pod(self, api: Api, st: _Pass, pod: Obj) -> None:
        m = meta_of(pod)
        ns, name, key = m["namespace"], m["name"], key_of(pod)
        if not node_name_of(pod):
            node, message = schedule(pod, st.nodes, st.pods.values())
            if node is None:
                cond = next((c for c in (pod.get("status") or {}).get("conditions") or []
                             if c.get("type") == "PodScheduled"), {})
                if cond.get("status") != "False" or cond.get("message") != message:
                    st.pods[key] = api.patch_pod_status(ns, name, unschedulable_status(message))
                return
            # the server has no binding subresource: the scheduler's choice as a patch
            pod = st.pods[key] = api.patch_pod(ns, name, {"spec": {"nodeName": node}})
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        if not host_network and annotations_of(pod).get("ovn.kubernetes.io/allocated") != "true":
            try:
                patch = wire(st.ipam, st.nads, pod)
            except NoAddress as e:
                log.debug("kubelet-sim: pod %s: %s", key, e)
                self.last_error = e
                return
            pod = st.pods[key] = api.patch_pod(ns, name, patch)
        want_ready = self._ready_override.get(key, self._pods_ready)
        if phase_of(pod) == "Pending" and self._pods_running:
            st.pods[key] = api.patch_pod_status(ns, name, self._running(st, pod, want_ready))
        elif phase_of(pod) == "Running" and is_ready(pod) != want_ready:
            st.pods[key] = api.patch_pod_status(ns, name, readiness_status(pod, want_ready))

    @staticmethod
    def _running(st: _Pass, pod: Obj, ready: bool) -> Obj:
        node = st.nodes.get(node_name_of(pod)) or {"metadata": {"name": node_name_of(pod)}}
        host_ip = node_ip(node)
        if (pod.get("spec") or {}).get("hostNetwork"):
            ips = [host_ip]
        else:
            ips = [str(i) for i in ip_list(annotations_of(pod).get(
                "ovn.kubernetes.io/ip_address") or "")]
        return running_status(pod, host_ip, ips, ready)

    # ------------------------------------------------------------ cluster objects

    def apply_yaml(self, source: str | Path, *, skip_kinds: Iterable[str] = ("Pod",)
                   ) -> list[Obj]:
        """Create every document of a YAML file or string through the client, skipping
        `skip_kinds` (the seed's gateway pods: the simulator makes pods). An object that exists
        already (the `default` namespace) gets the document's labels and annotations merged in.
        A `status` in the document is then written through `/status`."""
        text = source.read_text() if isinstance(source, Path) else source
        skip = set(skip_kinds)
        return [self._apply_one(doc) for doc in yaml.safe_load_all(text)
                if doc and doc.get("kind") not in skip]

    def _apply_one(self, doc: Obj) -> Obj:
        av, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if (av, kind) not in KINDS:
            raise ValueError(f"apply_yaml: {av} {kind} is not supported")
        plural, namespaced = KINDS[(av, kind)]
        m = meta_of(doc)
        path = resource_path(av, plural, (m.get("namespace") or "default") if namespaced
                             else None)
        merge = "application/merge-patch+json"
        try:
            obj = call(self._api.client, "POST", path,
                       {k: v for k, v in doc.items() if k != "status"})
        except ApiException as e:
            if e.status != 409:
                raise
            obj = call(self._api.client, "PATCH", f"{path}/{m['name']}", {"metadata": {
                k: m[k] for k in ("labels", "annotations") if k in m}}, merge)
        if doc.get("status"):
            obj = call(self._api.client, "PATCH", f"{path}/{m['name']}/status",
                       {"status": doc["status"]}, merge)
        return obj

    def add_node(self, name: str, labels: Mapping[str, str] | None = None, *, ready: bool = True,
                 internal_ip: str | None = None, chassis: str | None = None,
                 annotations: Mapping[str, str] | None = None) -> Obj:
        """A Node as kubeadm and Kube-OVN leave it: hostname/os/arch labels, the OVN chassis
        annotation, an InternalIP address and a Ready condition."""
        chassis = chassis or str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.kubelet-sim"))
        json_body(self._api.core.create_node({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {HOSTNAME: name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", **(labels or {})},
                         "annotations": {"ovn.kubernetes.io/chassis": chassis,
                                         **(annotations or {})}}}, _preload_content=False))
        ip = internal_ip or node_ip({"metadata": {"name": name}})
        return json_body(self._api.core.patch_node_status(name, {"status": {
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "conditions": [node_ready_condition(ready)]}}, _preload_content=False))

    def set_node_ready(self, name: str, ready: bool) -> Obj:
        return json_body(self._api.core.patch_node_status(name, {"status": {
            "conditions": [node_ready_condition(ready)]}}, _preload_content=False))

    def label_node(self, name: str, labels: Mapping[str, str | None]) -> Obj:
        """Merge labels (a None value removes the label; also for namespaces and pods)."""
        return json_body(self._api.core.patch_node(name, {"metadata": {"labels": dict(labels)}},
                                                   _preload_content=False))

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> Obj:
        return json_body(self._api.core.create_namespace(
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": name, "labels": dict(labels or {})}}, _preload_content=False))

    def label_namespace(self, name: str, labels: Mapping[str, str | None]) -> Obj:
        return json_body(self._api.core.patch_namespace(
            name, {"metadata": {"labels": dict(labels)}}, _preload_content=False))

    # ------------------------------------------------------------ pods

    def add_pod(self, name: str, *, namespace: str = "default", subnet: str = "ovn-default",
                ip: str | None = None, labels: Mapping[str, str] | None = None,
                node: str | None = None, annotations: Mapping[str, str] | None = None,
                ready: bool = True) -> Obj:
        """A plain workload pod, Running on `node` (default: the first node by name) with `ip`
        (one address or `v4,v6`; default: the lowest free of `subnet`), annotated as Kube-OVN
        and Multus would. Raises NoAddress when the address is taken. The worker leaves the pod
        alone (it has no owner)."""
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                             "annotations": {LOGICAL_SWITCH: subnet, **(annotations or {})}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}
        api = self._api
        with self._pass_lock:
            st = _Pass.read(api)
            if node is None:
                if not st.nodes:
                    raise ValueError("add_pod: there is no node")
                node = sorted(st.nodes)[0]
            body["spec"]["nodeName"] = node
            pod = api.create_pod(namespace, body)
            try:
                pod = api.patch_pod(namespace, name, wire(st.ipam, st.nads, pod, ip))
            except NoAddress:
                api.delete_pod(namespace, name)
                raise
            return api.patch_pod_status(namespace, name, self._running(st, pod, ready))

    def label_pod(self, namespace: str, name: str, labels: Mapping[str, str | None]) -> Obj:
        return self._api.patch_pod(namespace, name, {"metadata": {"labels": dict(labels)}})

    def get_pod(self, namespace: str, name: str) -> Obj:
        return self._api.read_pod(namespace, name)

    def set_ready(self, namespace: str, name: str, ready: bool) -> Obj:
        """Hold one pod (not) Ready; the kubelet keeps it so until told otherwise."""
        self._ready_override[f"{namespace}/{name}"] = ready
        pod = self.get_pod(namespace, name)
        if phase_of(pod) == "Running" and is_ready(pod) != ready:
            pod = self._api.patch_pod_status(namespace, name, readiness_status(pod, ready))
        self.kick()
        return pod

    def fail_pod(self, namespace: str, name: str, reason: str = "Error") -> Obj:
        """The pod's containers exit for good: phase Failed (its Deployment starts another)."""
        return self._api.patch_pod_status(namespace, name, failed_status(reason))

    def kill_pod(self, namespace: str, name: str) -> None:
        """Delete a pod (node lost, eviction, `kubectl delete pod`)."""
        self._api.delete_pod(namespace, name)
        self._ready_override.pop(f"{namespace}/{name}", None)

    def pods(self, deployment: str, namespace: str = "default") -> list[Obj]:
        """The live pods the Deployment controls (not terminating, not finished), by name."""
        uid = meta_of(self._api.read_deployment(namespace, deployment))["uid"]
        pods = json_body(self._api.core.list_namespaced_pod(namespace, _preload_content=False))
        return sorted((p for p in pods["items"] if controller_uid(p) == uid and is_alive(p)),
                      key=lambda p: meta_of(p)["name"])

    # ------------------------------------------------------------ waiting

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0,
             what: str = "condition") -> Any:
        """Re-evaluate predicate after every pass of the worker (and at least every 50 ms)
        until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        while True:
            self._raise_crash()
            value = predicate()
            if value:
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"kubelet-sim: timed out after {timeout}s waiting for {what} "
                                   f"(last error: {self.last_error!r})")
            with self._cond:
                self._cond.wait(min(left, 0.05))

    def wait_pods(self, deployment: str, n: int, *, namespace: str = "default",
                  running: bool = True, timeout: float = 10.0) -> list[Obj]:
        """Until the Deployment has exactly n live pods, all of its current template, and (when
        running) all Running with their IPs and network-status; returns them by name."""
        last: list[Obj] = []

        def done() -> tuple[list[Obj]] | None:
            nonlocal last
            try:
                dep = self._api.read_deployment(namespace, deployment)
            except ApiException as e:
                if e.status == 404:
                    return None
                raise
            current = template_hash((dep.get("spec") or {}).get("template") or {})
            last = self.pods(deployment, namespace)
            if len(last) != n or any(labels_of(p).get(HASH_LABEL) != current for p in last):
                return None
            if running and not all(phase_of(p) == "Running" and (p.get("status") or {})
                                   .get("podIP") and NETWORK_STATUS in annotations_of(p)
                                   for p in last):
                return None
            return (last,)  # truthy even when n == 0

        try:
            return list(self.wait(done, timeout, f"{n} pods of {namespace}/{deployment}")[0])
        except TimeoutError as e:
            seen = [(meta_of(p)["name"], phase_of(p), node_name_of(p)) for p in last]
            raise TimeoutError(f"{e}; pods: {seen}") from None

    def _raise_crash(self) -> None:
        if self.crash is not None:
            raise RuntimeError("kubelet-sim worker crashed") from self.crash


@pytest.fixture
def fake_cluster(kubeapi: Any) -> Iterator[FakeCluster]:
    """A started FakeCluster on the test's `kubeapi` server, closed at teardown."""
    cluster = FakeCluster(kubeapi).start()
    try:
        yield cluster
    finally:
        cluster.close()
