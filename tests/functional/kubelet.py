"""What a real cluster does behind the API server for vegd's Deployments, simulated for tests.

The in-process API server (`tests/kubeapi/`) runs no controllers: when vegd creates a Deployment,
nobody creates, schedules, addresses or starts its pods. `FakeCluster` plays, through the official
`kubernetes` client only, the parts vegd depends on:

- Deployment + ReplicaSet controllers: keep `spec.replicas` pods per Deployment, named
  `<deploy>-<template hash>-<5 random>` (the server's generateName), labelled with the template's
  labels plus `pod-template-hash`. There is no ReplicaSet resource in the test server, so pods are
  owned directly by the Deployment (ownerReference kind Deployment, controller=true). Rolling
  updates honour maxSurge/maxUnavailable (vegd's 0/1: delete one old pod, create one new, wait until
  it is ready); scale-down deletes unscheduled, then not-running, then not-ready, then newest pods
  first. Deployment status is written through `/status`.
- Scheduler: required node affinity (matchExpressions on labels, matchFields on metadata.name),
  `nodeSelector`, required pod anti-affinity (either side, any topologyKey); unschedulable or
  not-Ready nodes are skipped; taints and tolerations are ignored. A pod that fits nowhere stays
  Pending with `PodScheduled=False`/`Unschedulable` and is retried when nodes or pods change.
- Kube-OVN IPAM + CNI and Multus: addresses from the Subnet named by
  `ovn.kubernetes.io/logical_switch` (else a subnet listing the namespace, else the default
  subnet), the first free entry of `ovn.kubernetes.io/ip_pool` or the lowest free address
  (gateway, `excludeIps` and addresses held by live pods skipped); one more interface per
  `k8s.v1.cni.cncf.io/networks` entry from the subnet of the NAD's provider, honouring
  `<provider>.kubernetes.io/ip_pool`; Kube-OVN's annotations and Multus' network-status annotation
  are written as one metadata patch (Multus really writes through `/status`, which the test server
  limits to `.status`).
- Kubelet: Pending -> Running with `podIP(s)`, `hostIP`, `startTime`, conditions and container
  statuses, through `/status`; readiness can be held (`pods_ready`, `set_ready`), pods can be held
  Pending (`pods_running`), failed (`fail_pod`) or killed (`kill_pod`).

Every change is read back from the API server: one worker thread reconciles from fresh lists
whenever one of its watches (Deployments, Pods, Nodes, Subnets, NADs) reports a change. The watches
resume from their resourceVersion after a disconnect and relist after 410 Gone, so nothing a test
does while they are down is lost. Only pods owned by Deployments are driven; `add_pod` creates
plain running workload pods directly.

Use it with `pytest_plugins = ["kubeapi.fixture", "kubelet"]` and the `fake_cluster` fixture.
(PYTEST_DONT_REWRITE: no asserts here; test modules import it before pytest loads it as a plugin.)
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("kubelet-sim")

Obj = dict[str, Any]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"

HASH_LABEL = "pod-template-hash"
HOSTNAME = "kubernetes.io/hostname"
LOGICAL_SWITCH = "ovn.kubernetes.io/logical_switch"
IP_POOL = "ovn.kubernetes.io/ip_pool"
NETWORKS = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK = "kube-ovn"  # Multus' name for the cluster network in network-status

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString
_WATCH_SECONDS = 60  # server-side watch timeout; the stream is re-opened from its resourceVersion
_MIN_BACKOFF, _MAX_BACKOFF = 0.02, 0.5
_NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _raw(resp: Any) -> Obj:
    """The JSON body of a `_preload_content=False` answer."""
    return json.loads(resp.data)


def _meta(obj: Mapping[str, Any]) -> Obj:
    return obj.get("metadata") or {}


def _key(obj: Mapping[str, Any]) -> str:
    m = _meta(obj)
    return f"{m.get('namespace') or ''}/{m['name']}"


def _annotations(obj: Mapping[str, Any]) -> dict[str, str]:
    return _meta(obj).get("annotations") or {}


def _labels(obj: Mapping[str, Any]) -> dict[str, str]:
    return _meta(obj).get("labels") or {}


def _phase(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def _alive(pod: Mapping[str, Any]) -> bool:
    """Counts for a ReplicaSet and holds its addresses: not terminating, not finished."""
    return not _meta(pod).get("deletionTimestamp") and _phase(pod) not in ("Succeeded", "Failed")


def _condition(obj: Mapping[str, Any], ctype: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == ctype), None)


def _is_ready(pod: Mapping[str, Any]) -> bool:
    c = _condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def _controller_uid(pod: Mapping[str, Any]) -> str:
    for ref in _meta(pod).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Deployment":
            return str(ref.get("uid"))
    return ""


def template_hash(template: Mapping[str, Any]) -> str:
    """Like the Deployment controller's pod-template-hash: FNV-1a 32 of the template, its decimal
    digits spelled with SafeEncodeString's alphabet (hence names such as `b9f8b4448`)."""
    h = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[b % len(_SAFE)] for b in str(h).encode())


# ---------------------------------------------------------------- selectors and scheduling

def _expression_matches(expr: Mapping[str, Any], value: str | None) -> bool:
    op, values = expr.get("operator"), [str(v) for v in expr.get("values") or []]
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and len(values) == 1:
        try:
            a, b = int(value), int(values[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def label_selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector: null matches nothing, {} matches everything."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_matches(e, labels.get(e.get("key", "")))
               for e in selector.get("matchExpressions") or [])


def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm; an empty term matches no node (as in Kubernetes)."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = _labels(node)
    name = _meta(node)["name"]
    return (all(_expression_matches(e, labels.get(e.get("key", ""))) for e in exprs)
            and all(e.get("key") == "metadata.name" and _expression_matches(e, name)
                    for e in fields))


def node_affinity_matches(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    labels = _labels(node)
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if not required:
        return True
    return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def _anti_affinity_terms(pod: Mapping[str, Any]) -> list[Obj]:
    spec = pod.get("spec") or {}
    anti = (spec.get("affinity") or {}).get("podAntiAffinity") or {}
    return list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _term_selects(term: Mapping[str, Any], owner_ns: str, pod: Mapping[str, Any]) -> bool:
    """Whether an affinity term of a pod in owner_ns selects `pod`."""
    namespaces = term.get("namespaces") or []
    ns_selector = term.get("namespaceSelector")
    pod_ns = _meta(pod).get("namespace")
    if namespaces:
        in_scope = pod_ns in namespaces
    elif ns_selector is not None:  # {} = every namespace; label selectors are not evaluated
        in_scope = not (ns_selector.get("matchLabels") or ns_selector.get("matchExpressions")) \
            or pod_ns == owner_ns
    else:
        in_scope = pod_ns == owner_ns
    return in_scope and label_selector_matches(term.get("labelSelector"), _labels(pod))


def _node_ready(node: Mapping[str, Any]) -> bool:
    c = _condition(node, "Ready")
    return c is None or c.get("status") == "True"  # nodes loaded without status count as ready


# ---------------------------------------------------------------- addresses

class NoAddress(Exception):
    """IPAM or the CNI cannot wire the pod yet; it stays Pending and is retried."""


def _ip_list(text: str) -> list[IP]:
    out = []
    for part in str(text).split(","):
        try:
            out.append(ipaddress.ip_address(part.strip()))
        except ValueError:
            continue
    return out


@dataclass
class _Subnet:
    name: str
    vpc: str
    provider: str
    cidrs: list[Net]
    gateways: list[IP]
    excluded: list[tuple[IP, IP]]
    namespaces: list[str]
    default: bool

    @classmethod
    def parse(cls, obj: Mapping[str, Any]) -> _Subnet:
        spec = obj.get("spec") or {}
        cidrs = [ipaddress.ip_network(c.strip(), strict=False)
                 for c in str(spec.get("cidrBlock") or "").split(",") if c.strip()]
        gateways = _ip_list(spec.get("gateway") or "") or [c.network_address + 1 for c in cidrs]
        excluded = []
        for item in spec.get("excludeIps") or []:
            lo, _, hi = str(item).partition("..")
            bounds = _ip_list(lo) + _ip_list(hi or lo)
            if len(bounds) == 2:
                excluded.append((bounds[0], bounds[1]))
        return cls(_meta(obj)["name"], str(spec.get("vpc") or "ovn-cluster"),
                   str(spec.get("provider") or "ovn"), cidrs, gateways, excluded,
                   list(spec.get("namespaces") or []), bool(spec.get("default")))

    @property
    def cidr_block(self) -> str:
        return ",".join(map(str, self.cidrs))

    def gateway_of(self, family: int) -> IP | None:
        return next((g for g in self.gateways if g.version == family), None)

    def reserved(self, ip: IP) -> bool:
        if ip in self.gateways:
            return True
        return any(lo.version == ip.version and lo <= ip <= hi  # type: ignore[operator]
                   for lo, hi in self.excluded)


def _pod_addresses(pod: Mapping[str, Any]) -> set[IP]:
    """Every address a pod holds: Kube-OVN annotations, status and network-status."""
    out: set[IP] = set()
    for k, v in _annotations(pod).items():
        if k.endswith(".kubernetes.io/ip_address"):
            out.update(_ip_list(v))
    status = pod.get("status") or {}
    for entry in status.get("podIPs") or []:
        out.update(_ip_list(entry.get("ip") or ""))
    try:
        networks = json.loads(_annotations(pod).get(NETWORK_STATUS) or "[]")
    except ValueError:
        networks = []
    for net in networks if isinstance(networks, list) else []:
        if isinstance(net, dict):
            out.update(ip for text in net.get("ips") or [] for ip in _ip_list(text))
    return out


class Ipam:
    """Kube-OVN's allocation rules over the subnets and pods of one reconcile pass."""

    def __init__(self, subnets: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]):
        self.subnets: dict[str, _Subnet] = {}
        for obj in subnets:
            try:
                subnet = _Subnet.parse(obj)
            except ValueError:  # a test's deliberately broken subnet: Kube-OVN would skip it too
                continue
            self.subnets[subnet.name] = subnet
        self.used: set[IP] = set()
        for pod in pods:
            if _alive(pod):
                self.used |= _pod_addresses(pod)

    def by_provider(self, *providers: str) -> _Subnet | None:
        for provider in providers:
            for s in self.subnets.values():
                if s.provider == provider:
                    return s
        return None

    def allocate(self, subnet: _Subnet, pool: str | None) -> list[IP]:
        """The first free entry of pool (`;`-separated, an entry `v4`, `v6` or `v4,v6`), else the
        lowest free address of each family; families the entry lacks get the lowest free."""
        chosen: list[IP] = []
        if pool:
            for entry in (e.strip() for e in pool.split(";") if e.strip()):
                ips = _ip_list(entry)
                if not ips:
                    raise NoAddress(f"ip_pool {entry!r} names an IPPool (not simulated)")
                inside = all(any(ip in c for c in subnet.cidrs) for ip in ips)
                if inside and not any(ip in self.used for ip in ips):
                    chosen = ips
                    break
            else:
                raise NoAddress(f"no free address in ip_pool {pool!r} of subnet {subnet.name}")
        for cidr in subnet.cidrs:
            if not any(ip.version == cidr.version for ip in chosen):
                chosen.append(self._lowest_free(subnet, cidr))
        self.used.update(chosen)
        return sorted(chosen, key=lambda ip: ip.version)

    def _lowest_free(self, subnet: _Subnet, cidr: Net) -> IP:
        last = cidr.broadcast_address - (1 if cidr.version == 4 else 0)
        ip = cidr.network_address + 1
        for _ in range(1 << 16):
            if ip > last:
                break
            if ip not in self.used and not subnet.reserved(ip):
                return ip
            ip += 1
        raise NoAddress(f"subnet {subnet.name} has no free address in {cidr}")


def _mac(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "00:00:00:" + ":".join(f"{b:02x}" for b in digest[:3])


def _attachments(pod: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(namespace, NAD name, interface) of each `k8s.v1.cni.cncf.io/networks` entry."""
    text = (_annotations(pod).get(NETWORKS) or "").strip()
    pod_ns = _meta(pod).get("namespace") or "default"
    out: list[tuple[str, str, str]] = []
    if text.startswith("["):
        try:
            entries = json.loads(text)
            for i, e in enumerate(entries):
                out.append((e.get("namespace") or pod_ns, e["name"], e.get("interface") or
                            f"net{i + 1}"))
        except (ValueError, TypeError, KeyError, AttributeError):
            raise NoAddress(f"{NETWORKS} is not a valid network list: {text!r}") from None
        return out
    for i, item in enumerate(p.strip() for p in text.split(",") if p.strip()):
        ref, _, iface = item.partition("@")
        ns, _, name = ref.rpartition("/")
        out.append((ns or pod_ns, name, iface or f"net{i + 1}"))
    return out


def _nad_provider(nad: Mapping[str, Any]) -> list[str]:
    """The Kube-OVN providers a NAD's config names, most specific first."""
    m = _meta(nad)
    base = f"{m['name']}.{m.get('namespace') or 'default'}"
    try:
        config = json.loads((nad.get("spec") or {}).get("config") or "{}")
    except ValueError:
        config = {}
    named = [p for p in ((config.get("ipam") or {}).get("provider"), config.get("provider")) if p]
    return [*named, base, f"{base}.ovn"]


# ---------------------------------------------------------------- API access

class _Api:
    """Raw-JSON access to the resources the simulator uses (one per thread)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

    def list_fns(self) -> dict[str, Callable[..., Any]]:
        c = self.custom
        return {
            "deployments": self.apps.list_deployment_for_all_namespaces,
            "pods": self.core.list_pod_for_all_namespaces,
            "nodes": self.core.list_node,
            "subnets": lambda **kw: c.list_cluster_custom_object("kubeovn.io", "v1", "subnets",
                                                                 **kw),
            "nads": lambda **kw: c.list_cluster_custom_object(
                "k8s.cni.cncf.io", "v1", "network-attachment-definitions", **kw),
        }

    def items(self, what: str) -> list[Obj]:
        return list(_raw(self.list_fns()[what](_preload_content=False))["items"])

    def create_pod(self, ns: str, body: Obj) -> Obj:
        # untyped: the template is vegd's, and the client's model would refuse fields it does
        # not know where the real server drops them
        return _call(self.core.api_client, "POST", f"/api/v1/namespaces/{ns}/pods", body)

    def patch_pod(self, ns: str, name: str, body: Obj, merge: bool = False) -> Obj:
        """A strategic merge patch, or (merge) a JSON merge patch: lists replaced whole."""
        kind = {"_content_type": "application/merge-patch+json"} if merge else {}
        return _raw(self.core.patch_namespaced_pod(name, ns, body, _preload_content=False,
                                                   **kind))

    def patch_pod_status(self, ns: str, name: str, body: Obj) -> Obj:
        return _raw(self.core.patch_namespaced_pod_status(name, ns, body,
                                                          _preload_content=False))

    def delete_pod(self, ns: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, ns, _preload_content=False).data  # noqa: B018
        except ApiException as e:
            if e.status != 404:
                raise

    def read_deployment(self, ns: str, name: str) -> Obj:
        return _raw(self.apps.read_namespaced_deployment(name, ns, _preload_content=False))


_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    # (apiVersion, kind) -> (plural, namespaced) for apply_yaml
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "Pod"): ("pods", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("kubeovn.io/v1", "Vpc"): ("vpcs", False),
    ("kubeovn.io/v1", "Subnet"): ("subnets", False),
    ("kubeovn.io/v1", "VpcEgressGateway"): ("vpc-egress-gateways", True),
    ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"): ("network-attachment-definitions",
                                                            True),
}


class _Expired(Exception):
    pass


class _WatchLoop:
    """List, then watch from the list's resourceVersion. A dropped connection or a server restart
    resumes from the last resourceVersion seen (the server replays what was missed); 410 Gone
    relists. Every event (and every relist) calls on_change: the worker reconciles from fresh
    lists, so a signal is all it needs."""

    def __init__(self, what: str, list_fn: Callable[..., Any], on_change: Callable[[], None],
                 stopping: threading.Event) -> None:
        self.what = what
        self._list = list_fn
        self._on_change = on_change
        self._stopping = stopping
        self._lock = threading.Lock()
        self._resp: Any = None
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0  # initial list included
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, name=f"kubelet-sim-watch-{what}",
                                       daemon=True)

    def _run(self) -> None:
        backoff = _MIN_BACKOFF
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    body = _raw(self._list(_preload_content=False))
                    self.resource_version = body["metadata"]["resourceVersion"]
                    self.relists += 1
                    self.synced.set()
                    self._on_change()
                self._watch()
                backoff = _MIN_BACKOFF
            except _Expired:
                self.resource_version = None
            except ApiException as e:
                if e.status == 410:
                    self.resource_version = None
                    continue
                log.debug("watch %s: %s", self.what, e)
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            except (*_NETWORK_ERRORS, ValueError) as e:
                log.debug("watch %s: %s", self.what, e)
                self.reconnects += 1
                self._stopping.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _watch(self) -> None:
        resp = self._list(watch=True, resource_version=self.resource_version,
                          allow_watch_bookmarks=True, timeout_seconds=_WATCH_SECONDS,
                          _preload_content=False, _request_timeout=(5, _WATCH_SECONDS + 10))
        with self._lock:
            if self._stopping.is_set():
                resp.release_conn()
                return
            self._resp = resp
        try:
            for line in iter_resp_lines(resp):
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                self.resource_version = obj["metadata"]["resourceVersion"]
                if event.get("type") != "BOOKMARK":
                    self._on_change()
        finally:
            with self._lock:
                self._resp = None
            resp.release_conn()

    def interrupt(self) -> None:
        """Unblock a read in progress (called by close())."""
        with self._lock:
            if self._resp is not None and hasattr(self._resp, "shutdown"):
                self._resp.shutdown()  # urllib3 >= 2.3; older ones end at the watch timeout


# ---------------------------------------------------------------- the cluster

@dataclass
class _Pass:
    """What one reconcile pass read, updated with what it wrote."""

    deployments: list[Obj]
    pods: dict[str, Obj]
    nodes: dict[str, Obj]
    nads: dict[str, Obj]
    ipam: Ipam
    namespaces_by_uid: dict[str, str] = field(default_factory=dict)

    def placed(self) -> Iterator[Obj]:
        return (p for p in self.pods.values()
                if _alive(p) and (p.get("spec") or {}).get("nodeName"))

    def owned(self, uid: str) -> list[Obj]:
        return [p for p in self.pods.values() if _controller_uid(p) == uid and _alive(p)]


class FakeCluster:
    """ReplicaSet controller + scheduler + kubelet + Kube-OVN IPAM/CNI + Multus for tests.

    `kubeapi` is anything with an `api_client()` method returning a new ApiClient (a
    `kubeapi.fixture.KubeApi`); each thread gets its own client.
    """

    def __init__(self, kubeapi: Any, *, pods_ready: bool = True, pods_running: bool = True,
                 resync_period: float | None = None) -> None:
        self._new_client = kubeapi.api_client
        self._api = _Api(kubeapi.api_client())  # for the helpers (the test's thread)
        self._worker_api = _Api(kubeapi.api_client())
        self._pods_ready = pods_ready
        self._pods_running = pods_running
        self._resync = resync_period
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._dirty = True
        self._busy = False
        self._pass_lock = threading.Lock()  # one allocator at a time: worker pass or add_pod
        self._ready_override: dict[str, bool] = {}
        self._created: dict[str, int] = {}  # pod uid -> creation order (newest highest)
        self._seq = 0
        self.passes = 0
        self.last_error: BaseException | None = None
        self.crash: BaseException | None = None
        self._loops = [_WatchLoop(what, _Api(kubeapi.api_client()).list_fns()[what], self.kick,
                                  self._stopping)  # one client (connection) per watch
                       for what in ("deployments", "pods", "nodes", "subnets", "nads")]
        self._worker = threading.Thread(target=self._work, name="kubelet-sim-worker",
                                        daemon=True)

    # ------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> FakeCluster:
        """Start the watches and the worker; return once every watch has listed and a full
        pass has run."""
        for loop in self._loops:
            loop.thread.start()
        self._worker.start()
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
        for t in [*(loop.thread for loop in self._loops), self._worker]:
            if t.is_alive():
                t.join(10)
        if self.crash is not None:
            raise RuntimeError("kubelet-sim worker crashed") from self.crash

    def threads(self) -> list[threading.Thread]:
        return [*(loop.thread for loop in self._loops), self._worker]

    @property
    def watches(self) -> dict[str, _WatchLoop]:
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
        """Whether the kubelet reports started pods Ready (per-pod `set_ready` wins)."""
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
        backoff = _MIN_BACKOFF
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
                backoff = _MIN_BACKOFF
            except (ApiException, NoAddress, *_NETWORK_ERRORS) as e:
                # a conflict, a pod deleted under us, a 5xx, the server down: retry from fresh
                # lists
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
                backoff = min(backoff * 2, _MAX_BACKOFF)

    def _pass(self, api: _Api) -> None:
        deployments = api.items("deployments")
        pods = api.items("pods")
        nodes = api.items("nodes")
        subnets = api.items("subnets")
        nads = api.items("nads")
        st = _Pass(deployments, {_key(p): p for p in pods},
                   {_meta(n)["name"]: n for n in nodes}, {_key(n): n for n in nads},
                   Ipam(subnets, pods))
        live = {_meta(d)["uid"]: d for d in deployments}
        for pod in list(st.pods.values()):
            uid = _controller_uid(pod)
            if uid and uid not in live and not _meta(pod).get("deletionTimestamp"):
                self._delete(api, st, pod)  # the GC does it too; make sure either way
        for dep in deployments:
            if not _meta(dep).get("deletionTimestamp"):
                self._release_unselected(api, st, dep)
                self._sync_deployment(api, st, dep)
        for pod in list(st.pods.values()):
            uid = _controller_uid(pod)
            if uid in live and _alive(pod):
                self._run_pod(api, st, pod)
        for dep in deployments:
            if not _meta(dep).get("deletionTimestamp"):
                self._write_status(api, st, dep)

    # ------------------------------------------------------------ Deployment / ReplicaSet

    def _release_unselected(self, api: _Api, st: _Pass, dep: Obj) -> None:
        """Pods relabelled out of the selector are orphaned (and replaced), as the ReplicaSet
        controller does."""
        selector = (dep.get("spec") or {}).get("selector")
        for pod in st.owned(_meta(dep)["uid"]):
            if not label_selector_matches(selector, _labels(pod)):
                m = _meta(pod)
                others = [r for r in m.get("ownerReferences") or []
                          if r.get("uid") != _meta(dep)["uid"]]
                st.pods[_key(pod)] = api.patch_pod(m["namespace"], m["name"], {
                    "metadata": {"ownerReferences": others or None}}, merge=True)

    def _sync_deployment(self, api: _Api, st: _Pass, dep: Obj) -> None:
        spec = dep.get("spec") or {}
        want = int(spec.get("replicas", 1))
        current = template_hash(spec.get("template") or {})
        pods = st.owned(_meta(dep)["uid"])
        new = [p for p in pods if _labels(p).get(HASH_LABEL) == current]
        old = [p for p in pods if _labels(p).get(HASH_LABEL) != current]
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            for pod in old:
                self._delete(api, st, pod)
            old = []
        surge, unavailable = _rolling_limits(strategy, want)
        if len(new) < want:
            room = want + surge - len(new) - len(old)
            for _ in range(max(0, min(want - len(new), room))):
                new.append(self._create_pod(api, st, dep, current))
        elif len(new) > want:
            for pod in self._deletion_order(new)[:len(new) - want]:
                self._delete(api, st, pod)
                new.remove(pod)
        if not old:
            return
        # the rolling update's scale-down of old pods (deployment/rolling.go)
        min_available = want - unavailable
        new_unavailable = sum(1 for p in new if not _is_ready(p))
        budget = len(new) + len(old) - min_available - new_unavailable
        for pod in [p for p in self._deletion_order(old) if not _is_ready(p)][:max(0, budget)]:
            self._delete(api, st, pod)
            old.remove(pod)
            budget -= 1
        available = sum(1 for p in new + old if _is_ready(p))
        budget = min(budget, available - min_available)
        for pod in self._deletion_order(old)[:max(0, budget)]:
            self._delete(api, st, pod)

    def _deletion_order(self, pods: list[Obj]) -> list[Obj]:
        """controller.ActivePods: unscheduled, pending, not ready first, then the newest."""
        def rank(p: Obj) -> tuple[Any, ...]:
            return (bool((p.get("spec") or {}).get("nodeName")), _phase(p) == "Running",
                    _is_ready(p), _invert(_meta(p).get("creationTimestamp") or ""),
                    -self._created.get(_meta(p).get("uid", ""), 0))
        return sorted(pods, key=rank)

    def _create_pod(self, api: _Api, st: _Pass, dep: Obj, pod_hash: str) -> Obj:
        dm = _meta(dep)
        template = copy.deepcopy((dep.get("spec") or {}).get("template") or {})
        tm = template.get("metadata") or {}
        body: Obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": f"{dm['name']}-{pod_hash}-",
                "namespace": dm["namespace"],
                "labels": {**(tm.get("labels") or {}), HASH_LABEL: pod_hash},
                "annotations": dict(tm.get("annotations") or {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": dm["name"], "uid": dm["uid"], "controller": True,
                                     "blockOwnerDeletion": True}],
            },
            "spec": template.get("spec") or {},
        }
        if not body["metadata"]["annotations"]:
            del body["metadata"]["annotations"]
        if not body["spec"].get("nodeName"):
            node, _ = self._schedule(st, body)
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
            raise NoAddress("could not find a free pod name")
        self._seq += 1
        self._created[_meta(pod)["uid"]] = self._seq
        st.pods[_key(pod)] = pod
        return pod

    def _delete(self, api: _Api, st: _Pass, pod: Obj) -> None:
        m = _meta(pod)
        api.delete_pod(m["namespace"], m["name"])
        st.pods.pop(_key(pod), None)

    def _write_status(self, api: _Api, st: _Pass, dep: Obj) -> None:
        spec, meta = dep.get("spec") or {}, _meta(dep)
        want = int(spec.get("replicas", 1))
        current = template_hash(spec.get("template") or {})
        pods = st.owned(meta["uid"])
        updated = sum(1 for p in pods if _labels(p).get(HASH_LABEL) == current)
        ready = sum(1 for p in pods if _is_ready(p))
        _, unavailable = _rolling_limits(spec.get("strategy") or {}, want)
        rs_name = f"{meta['name']}-{current}"
        complete = updated == want == ready == len(pods)
        counts = {"replicas": len(pods), "updatedReplicas": updated, "readyReplicas": ready,
                  "availableReplicas": ready, "unavailableReplicas": max(0, want - ready)}
        status: Obj = {"observedGeneration": meta.get("generation", 1),
                       **{k: v for k, v in counts.items() if v}}  # Go's omitempty
        status["conditions"] = [
            {"type": "Available", **(
                {"status": "True", "reason": "MinimumReplicasAvailable",
                 "message": "Deployment has minimum availability."}
                if ready >= want - unavailable else
                {"status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."})},
            {"type": "Progressing", "status": "True", **(
                {"reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{rs_name}" has successfully progressed.'}
                if complete else
                {"reason": "ReplicaSetUpdated",
                 "message": f'ReplicaSet "{rs_name}" is progressing.'})},
        ]
        old = dep.get("status") or {}
        if _without_times(old) == _without_times(status):
            return
        now = _now()
        for cond in status["conditions"]:
            before = _condition(dep, cond["type"]) or {}
            cond["lastUpdateTime"] = now
            cond["lastTransitionTime"] = (before.get("lastTransitionTime", now)
                                          if before.get("status") == cond["status"] else now)
        status.update({k: None for k in counts if k not in status})  # merge patch: remove
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        _raw(api.apps.patch_namespaced_deployment_status(
            meta["name"], meta["namespace"], body, _preload_content=False,
            _content_type="application/merge-patch+json"))

    # ------------------------------------------------------------ scheduler

    def _schedule(self, st: _Pass, pod: Obj) -> tuple[str | None, str]:
        """(node, "") or (None, the scheduler's FailedScheduling message)."""
        spec = pod.get("spec") or {}
        own_ns = _meta(pod).get("namespace") or "default"
        own_name = _meta(pod).get("name")
        placed = [p for p in st.placed() if _meta(p).get("name") != own_name
                  or _meta(p).get("namespace") != own_ns]
        reasons: dict[str, int] = {}
        fits: list[tuple[int, str]] = []
        for name, node in sorted(st.nodes.items()):
            why = self._unfit(st, pod, spec, node, placed)
            if why:
                reasons[why] = reasons.get(why, 0) + 1
            else:
                load = sum(1 for p in placed if p["spec"].get("nodeName") == name)
                fits.append((load, name))
        if fits:
            return min(fits)[1], ""
        detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
        return None, f"0/{len(st.nodes)} nodes are available" + (f": {detail}." if detail
                                                                else ".")

    def _unfit(self, st: _Pass, pod: Obj, spec: Obj, node: Obj, placed: list[Obj]) -> str:
        if (node.get("spec") or {}).get("unschedulable"):
            return "node(s) were unschedulable"
        if not _node_ready(node):
            return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        if not node_affinity_matches(spec, node):
            return "node(s) didn't match Pod's node affinity/selector"
        own_ns = _meta(pod).get("namespace") or "default"
        node_labels = _labels(node)
        for other in placed:
            other_node = st.nodes.get(other["spec"]["nodeName"])
            if other_node is None:
                continue
            other_ns = _meta(other).get("namespace") or "default"
            # the incoming pod's terms against placed pods, and placed pods' terms against it
            checks = [(term, own_ns, other) for term in _anti_affinity_terms(pod)]
            checks += [(term, other_ns, pod) for term in _anti_affinity_terms(other)]
            for term, term_ns, target in checks:
                key = term.get("topologyKey") or HOSTNAME
                value = node_labels.get(key)
                if value is not None and _labels(other_node).get(key) == value \
                        and _term_selects(term, term_ns, target):
                    return "node(s) didn't match pod anti-affinity rules"
        return ""

    # ------------------------------------------------------------ CNI + kubelet

    def _run_pod(self, api: _Api, st: _Pass, pod: Obj) -> None:
        m = _meta(pod)
        ns, name = m["namespace"], m["name"]
        if not (pod.get("spec") or {}).get("nodeName"):
            node, message = self._schedule(st, pod)
            if node is None:
                cond = _condition(pod, "PodScheduled") or {}
                if cond.get("status") != "False" or cond.get("message") != message:
                    pod = st.pods[_key(pod)] = api.patch_pod_status(ns, name, {"status": {
                        "phase": "Pending", "conditions": [{
                            "type": "PodScheduled", "status": "False",
                            "reason": "Unschedulable", "message": message,
                            "lastProbeTime": None, "lastTransitionTime": _now()}]}})
                return
            pod = st.pods[_key(pod)] = api.patch_pod(ns, name, {"spec": {"nodeName": node}})
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        if not host_network and _annotations(pod).get("ovn.kubernetes.io/allocated") != "true":
            try:
                patch = self._wire(st, pod)
            except NoAddress as e:
                log.debug("kubelet-sim: pod %s/%s: %s", ns, name, e)
                self.last_error = e
                return
            pod = st.pods[_key(pod)] = api.patch_pod(ns, name, patch)
        if _phase(pod) == "Pending" and self._pods_running:
            pod = st.pods[_key(pod)] = api.patch_pod_status(
                ns, name, self._running_status(st, pod, self._want_ready(pod)))
        elif _phase(pod) == "Running" and _is_ready(pod) != self._want_ready(pod):
            pod = st.pods[_key(pod)] = api.patch_pod_status(
                ns, name, _readiness_status(pod, self._want_ready(pod)))

    def _want_ready(self, pod: Obj) -> bool:
        return self._ready_override.get(_key(pod), self._pods_ready)

    def _wire(self, st: _Pass, pod: Obj, static_ip: str | None = None) -> Obj:
        """Kube-OVN's IPAM annotations plus Multus' network-status, as one metadata patch."""
        m = _meta(pod)
        ns, ann = m.get("namespace") or "default", _annotations(pod)
        subnet_name = ann.get(LOGICAL_SWITCH) or next(
            (s.name for s in st.ipam.subnets.values() if ns in s.namespaces),
            next((s.name for s in st.ipam.subnets.values() if s.default), ""))
        subnet = st.ipam.subnets.get(subnet_name)
        if subnet is None:
            raise NoAddress(f"subnet {subnet_name or '(default)'} does not exist")
        ips = st.ipam.allocate(subnet, static_ip or ann.get(IP_POOL))
        mac = _mac(f"{m.get('uid')}/eth0")
        out = {
            "ovn.kubernetes.io/allocated": "true",
            "ovn.kubernetes.io/cidr": subnet.cidr_block,
            "ovn.kubernetes.io/gateway": ",".join(map(str, subnet.gateways)),
            "ovn.kubernetes.io/ip_address": ",".join(map(str, ips)),
            "ovn.kubernetes.io/logical_router": subnet.vpc,
            "ovn.kubernetes.io/logical_switch": subnet.name,
            "ovn.kubernetes.io/mac_address": mac,
            "ovn.kubernetes.io/pod_nic_type": "veth-pair",
            "ovn.kubernetes.io/routed": "true",
        }
        status = [{"name": DEFAULT_NETWORK, "interface": "eth0", "ips": [str(i) for i in ips],
                   "mac": mac, "default": True, "dns": {},
                   "gateway": [str(g) for g in subnet.gateways]}]
        for nad_ns, nad_name, iface in _attachments(pod):
            nad = st.nads.get(f"{nad_ns}/{nad_name}")
            if nad is None:
                raise NoAddress(f"NetworkAttachmentDefinition {nad_ns}/{nad_name} not found")
            ext = st.ipam.by_provider(*_nad_provider(nad))
            if ext is None:
                raise NoAddress(f"no subnet has a provider of {nad_ns}/{nad_name}")
            p = ext.provider
            eips = st.ipam.allocate(ext, ann.get(f"{p}.kubernetes.io/ip_pool"))
            emac = _mac(f"{m.get('uid')}/{iface}")
            out.update({
                f"{p}.kubernetes.io/allocated": "true",
                f"{p}.kubernetes.io/cidr": ext.cidr_block,
                f"{p}.kubernetes.io/gateway": ",".join(map(str, ext.gateways)),
                f"{p}.kubernetes.io/ip_address": ",".join(map(str, eips)),
                f"{p}.kubernetes.io/logical_switch": ext.name,
                f"{p}.kubernetes.io/mac_address": emac,
            })
            status.append({"name": f"{nad_ns}/{nad_name}", "interface": iface,
                           "ips": [str(i) for i in eips], "mac": emac, "dns": {}})
        out[NETWORK_STATUS] = json.dumps(status)
        return {"metadata": {"annotations": out}}

    def _running_status(self, st: _Pass, pod: Obj, ready: bool) -> Obj:
        now = _now()
        node = st.nodes.get(pod["spec"]["nodeName"]) or {"metadata": {"name": "unknown"}}
        host_ip = _node_ip(node)
        if (pod.get("spec") or {}).get("hostNetwork"):
            ips = [host_ip]
        else:
            ips = _ip_list(_annotations(pod).get("ovn.kubernetes.io/ip_address") or "")
        flag = "True" if ready else "False"
        containers = (pod.get("spec") or {}).get("containers") or []
        return {"status": {
            "phase": "Running", "hostIP": str(host_ip), "hostIPs": [{"ip": str(host_ip)}],
            **({"podIP": str(ips[0]), "podIPs": [{"ip": str(i)} for i in ips]} if ips else {}),
            "startTime": now, "qosClass": "BestEffort",
            "conditions": [
                {"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": now}
                for t, s in (("PodReadyToStartContainers", "True"), ("Initialized", "True"),
                             ("Ready", flag), ("ContainersReady", flag),
                             ("PodScheduled", "True"))],
            "containerStatuses": [{
                "name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
                "containerID": "containerd://" + hashlib.sha256(
                    f"{_meta(pod).get('uid')}/{c.get('name')}".encode()).hexdigest(),
                "ready": ready, "started": True, "restartCount": 0,
                "state": {"running": {"startedAt": now}}} for c in containers],
        }}

    # ------------------------------------------------------------ test helpers

    def apply_yaml(self, source: str | Path, *, skip_kinds: Iterable[str] = ("Pod",)
                   ) -> list[Obj]:
        """Create every document of a YAML file or string through the client, skipping
        `skip_kinds` (the seed's gateway pods: the simulator owns pods). An object that exists
        already (the `default` namespace) gets the document's labels and annotations merged in.
        A `status` in the document is written through `/status` afterwards."""
        text = source.read_text() if isinstance(source, Path) else source
        skip = set(skip_kinds)
        out = []
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") not in skip:
                out.append(self._apply_one(doc))
        return out

    def _apply_one(self, doc: Obj) -> Obj:
        av, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        if (av, kind) not in _KINDS:
            raise ValueError(f"apply_yaml: {av} {kind} is not supported")
        plural, namespaced = _KINDS[(av, kind)]
        group = av.rpartition("/")[0]
        m = _meta(doc)
        ns = (m.get("namespace") or "default") if namespaced else None
        path = f"/apis/{av}" if group else f"/api/{av}"
        path += (f"/namespaces/{ns}" if ns else "") + f"/{plural}"
        body = {k: v for k, v in doc.items() if k != "status"}
        api = self._api.core.api_client
        try:
            obj = _call(api, "POST", path, body)
        except ApiException as e:
            if e.status != 409:
                raise
            merge = {"metadata": {k: m[k] for k in ("labels", "annotations") if k in m}}
            obj = _call(api, "PATCH", f"{path}/{m['name']}", merge,
                        "application/merge-patch+json")
        if doc.get("status"):
            obj = _call(api, "PATCH", f"{path}/{m['name']}/status", {"status": doc["status"]},
                        "application/merge-patch+json")
        return obj

    def add_node(self, name: str, labels: Mapping[str, str] | None = None, *, ready: bool = True,
                 internal_ip: str | None = None, chassis: str | None = None,
                 annotations: Mapping[str, str] | None = None) -> Obj:
        """A Node as kubeadm + Kube-OVN leave it: hostname/os/arch labels, the OVN chassis
        annotation, an InternalIP address and a Ready condition."""
        chassis = chassis or str(_uuid_of(name))
        self._api.core.create_node({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name,
                         "labels": {HOSTNAME: name, "kubernetes.io/os": "linux",
                                    "kubernetes.io/arch": "amd64", **(labels or {})},
                         "annotations": {"ovn.kubernetes.io/chassis": chassis,
                                         **(annotations or {})}},
            "spec": {}}, _preload_content=False)
        ip = internal_ip or str(_host_ip_of(name))
        return _raw(self._api.core.patch_node_status(name, {"status": {
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "conditions": [_node_condition(ready)]}}, _preload_content=False))

    def set_node_ready(self, name: str, ready: bool) -> Obj:
        return _raw(self._api.core.patch_node_status(name, {"status": {
            "conditions": [_node_condition(ready)]}}, _preload_content=False))

    def add_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> Obj:
        return _raw(self._api.core.create_namespace(
            {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": name, "labels": dict(labels or {})}}, _preload_content=False))

    def label_namespace(self, name: str, labels: Mapping[str, str | None]) -> Obj:
        """Merge labels (a None value removes the label)."""
        return _raw(self._api.core.patch_namespace(name, {"metadata": {"labels": dict(labels)}},
                                                   _preload_content=False))

    def label_node(self, name: str, labels: Mapping[str, str | None]) -> Obj:
        return _raw(self._api.core.patch_node(name, {"metadata": {"labels": dict(labels)}},
                                              _preload_content=False))

    def label_pod(self, namespace: str, name: str, labels: Mapping[str, str | None]) -> Obj:
        return self._api.patch_pod(namespace, name, {"metadata": {"labels": dict(labels)}})

    def add_pod(self, name: str, *, namespace: str = "default", subnet: str = "ovn-default",
                ip: str | None = None, labels: Mapping[str, str] | None = None,
                node: str | None = None, annotations: Mapping[str, str] | None = None,
                ready: bool = True) -> Obj:
        """A plain workload pod, Running on `node` (default: the first node) with `ip` (one
        address or `v4,v6`; default: the lowest free of `subnet`), annotated as Kube-OVN
        would. The worker leaves it alone (it has no owner)."""
        ann = {LOGICAL_SWITCH: subnet, **(annotations or {})}
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": dict(labels or {}), "annotations": ann},
                "spec": {"containers": [{"name": "app", "image": "busybox:1"}]}}
        api = self._api
        with self._pass_lock:
            st = self._snapshot(api)
            if node is None:
                if not st.nodes:
                    raise ValueError("add_pod: there is no node")
                node = sorted(st.nodes)[0]
            body["spec"]["nodeName"] = node
            pod = api.create_pod(namespace, body)
            st.pods[_key(pod)] = pod
            try:
                pod = api.patch_pod(namespace, name, self._wire(st, pod, ip))
            except NoAddress:
                api.delete_pod(namespace, name)
                raise
            return api.patch_pod_status(namespace, name, self._running_status(st, pod, ready))

    def _snapshot(self, api: _Api) -> _Pass:
        pods = api.items("pods")
        nodes = api.items("nodes")
        return _Pass([], {_key(p): p for p in pods}, {_meta(n)["name"]: n for n in nodes},
                     {_key(n): n for n in api.items("nads")}, Ipam(api.items("subnets"), pods))

    def set_ready(self, namespace: str, name: str, ready: bool) -> Obj:
        """Hold one pod (not) Ready; the kubelet keeps it so until told otherwise."""
        self._ready_override[f"{namespace}/{name}"] = ready
        pod = self.get_pod(namespace, name)
        if _phase(pod) == "Running" and _is_ready(pod) != ready:
            pod = self._api.patch_pod_status(namespace, name, _readiness_status(pod, ready))
        self.kick()
        return pod

    def fail_pod(self, namespace: str, name: str, reason: str = "Error") -> Obj:
        """The pod's containers exit: phase Failed (a Deployment then starts a replacement)."""
        now = _now()
        return self._api.patch_pod_status(namespace, name, {"status": {
            "phase": "Failed", "reason": reason,
            "conditions": [{"type": t, "status": "False", "lastProbeTime": None,
                            "lastTransitionTime": now} for t in ("Ready", "ContainersReady")]}})

    def kill_pod(self, namespace: str, name: str) -> None:
        """Delete a pod (node lost, eviction, `kubectl delete pod`)."""
        self._api.delete_pod(namespace, name)
        self._ready_override.pop(f"{namespace}/{name}", None)

    def get_pod(self, namespace: str, name: str) -> Obj:
        return _raw(self._api.core.read_namespaced_pod(name, namespace, _preload_content=False))

    def pods(self, deployment: str, namespace: str = "default") -> list[Obj]:
        """The live pods the Deployment owns (not terminating, not finished), by name."""
        uid = _meta(self._api.read_deployment(namespace, deployment))["uid"]
        pods = _raw(self._api.core.list_namespaced_pod(namespace, _preload_content=False))
        return sorted((p for p in pods["items"] if _controller_uid(p) == uid and _alive(p)),
                      key=lambda p: _meta(p)["name"])

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0,
             what: str = "condition") -> Any:
        """Re-evaluate predicate after every pass of the worker (at least every 50 ms) until
        it is truthy; return its value."""
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
            if len(last) != n or any(_labels(p).get(HASH_LABEL) != current for p in last):
                return None
            if running and not all(_phase(p) == "Running" and (p.get("status") or {}).get("podIP")
                                   and NETWORK_STATUS in _annotations(p) for p in last):
                return None
            return (last,)  # truthy even when n == 0

        try:
            return self.wait(done, timeout, f"{n} pods of {namespace}/{deployment}")[0]
        except TimeoutError as e:
            seen = [(_meta(p)["name"], _phase(p), (p.get("spec") or {}).get("nodeName"))
                    for p in last]
            raise TimeoutError(f"{e}; pods: {seen}") from None

    def _raise_crash(self) -> None:
        if self.crash is not None:
            raise RuntimeError("kubelet-sim worker crashed") from self.crash


# ---------------------------------------------------------------- small pieces

def _rolling_limits(strategy: Mapping[str, Any], replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable): percentages round up for surge, down for unavailable; both
    zero means one unavailable (as the API defaults guarantee)."""
    if strategy.get("type") == "Recreate":
        return 0, replicas
    ru = strategy.get("rollingUpdate") or {}

    def resolve(value: Any, default: str, round_up: bool) -> int:
        value = default if value is None else value
        if isinstance(value, str) and value.endswith("%"):
            scaled = int(value[:-1]) * replicas
            return -(-scaled // 100) if round_up else scaled // 100
        return int(value)

    surge = resolve(ru.get("maxSurge"), "25%", True)
    unavailable = resolve(ru.get("maxUnavailable"), "25%", False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _readiness_status(pod: Obj, ready: bool) -> Obj:
    flag, now = ("True" if ready else "False"), _now()
    containers = (pod.get("status") or {}).get("containerStatuses") or []
    return {"status": {
        "conditions": [{"type": t, "status": flag, "lastProbeTime": None,
                        "lastTransitionTime": now} for t in ("Ready", "ContainersReady")],
        "containerStatuses": [{**c, "ready": ready} for c in containers]}}


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items()
                if k not in ("lastUpdateTime", "lastTransitionTime")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


def _invert(text: str) -> tuple[int, ...]:
    """A sort key that orders RFC 3339 timestamps newest first."""
    return tuple(-ord(ch) for ch in text)


def _uuid_of(name: str) -> Any:
    import uuid
    return uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.chassis.kubelet-sim")


def _host_ip_of(name: str) -> IP:
    """A stable node address in 172.18.0.0/16 (kind's docker network) for nodes without one."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big")
    return ipaddress.ip_address("172.18.0.0") + max(2, h % 65534)


def _node_ip(node: Mapping[str, Any]) -> IP:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return ipaddress.ip_address(addr["address"])
    return _host_ip_of(_meta(node).get("name", ""))


def _node_condition(ready: bool) -> Obj:
    now = _now()
    return {"type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "kubelet stopped posting",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def _call(api_client: client.ApiClient, method: str, path: str, body: Obj,
          content_type: str = "application/json") -> Obj:
    """A request through the client's own transport (generic over the kinds apply_yaml knows)."""
    resp = api_client.call_api(method, api_client.configuration.host + path,
                               header_params={"Content-Type": content_type,
                                              "Accept": "application/json"},
                               body=body)
    resp.read()
    if not 200 <= resp.status < 300:
        raise ApiException(http_resp=resp)
    return json.loads(resp.data)


@pytest.fixture
def fake_cluster(kubeapi: Any) -> Iterator[FakeCluster]:
    """A started FakeCluster on the test's `kubeapi` server, closed at teardown."""
    cluster = FakeCluster(kubeapi).start()
    try:
        yield cluster
    finally:
        cluster.close()
