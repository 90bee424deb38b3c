"""The cluster's rules FakeCluster follows (see `kubelet.py`), as pure functions over plain
object dicts: selectors, scheduling, the Deployment controller's arithmetic and the status bodies
the kubelet and the controller write.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
HOSTNAME = "kubernetes.io/hostname"

_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery rand.SafeEncodeString


# ---------------------------------------------------------------- object accessors

def rfc3339_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def meta_of(obj: Mapping[str, Any]) -> Obj:
    return obj.get("metadata") or {}


def key_of(obj: Mapping[str, Any]) -> str:
    m = meta_of(obj)
    return f"{m.get('namespace') or ''}/{m['name']}"


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return meta_of(obj).get("annotations") or {}


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return meta_of(obj).get("labels") or {}


def phase_of(pod: Mapping[str, Any]) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def node_name_of(pod: Mapping[str, Any]) -> str:
    return (pod.get("spec") or {}).get("nodeName") or ""


def is_alive(pod: Mapping[str, Any]) -> bool:
    """Counts for a ReplicaSet and holds its addresses: not terminating, not finished."""
    return not meta_of(pod).get("deletionTimestamp") and phase_of(pod) not in ("Succeeded",
                                                                                "Failed")


def condition_of(obj: Mapping[str, Any], ctype: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == ctype), None)


def is_ready(pod: Mapping[str, Any]) -> bool:
    c = condition_of(pod, "Ready")
    return bool(c and c.get("status") == "True")


def controller_uid(pod: Mapping[str, Any]) -> str:
    """The uid of the Deployment controlling the pod, or ""."""
    for ref in meta_of(pod).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Deployment":
            return str(ref.get("uid"))
    return ""


# ---------------------------------------------------------------- selectors

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


# ---------------------------------------------------------------- scheduling

def _term_matches(term: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """A NodeSelectorTerm; an empty term matches no node (as in Kubernetes)."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = labels_of(node)
    name = meta_of(node)["name"]
    return (all(_expression_matches(e, labels.get(e.get("key", ""))) for e in exprs)
            and all(e.get("key") == "metadata.name" and _expression_matches(e, name)
                    for e in fields))


def node_affinity_matches(pod_spec: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """`nodeSelector` and required node affinity (terms ORed)."""
    labels = labels_of(node)
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


def _term_selects(term: Mapping[str, Any], term_ns: str, pod: Mapping[str, Any]) -> bool:
    """Whether an affinity term of a pod in term_ns selects `pod`."""
    namespaces = term.get("namespaces") or []
    ns_selector = term.get("namespaceSelector")
    pod_ns = meta_of(pod).get("namespace")
    if namespaces:
        in_scope = pod_ns in namespaces
    elif ns_selector is not None:  # {} = every namespace; label selectors are not evaluated
        in_scope = not (ns_selector.get("matchLabels") or ns_selector.get("matchExpressions")) \
            or pod_ns == term_ns
    else:
        in_scope = pod_ns == term_ns
    return in_scope and label_selector_matches(term.get("labelSelector"), labels_of(pod))


def node_ready(node: Mapping[str, Any]) -> bool:
    c = condition_of(node, "Ready")
    return c is None or c.get("status") == "True"  # nodes loaded without status count as ready


def _unfit(pod: Obj, node: Obj, nodes: Mapping[str, Obj], placed: list[Obj]) -> str:
    """Why the scheduler would not put pod on node ("" when it fits)."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "node(s) were unschedulable"
    if not node_ready(node):
        return "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    if not node_affinity_matches(pod.get("spec") or {}, node):
        return "node(s) didn't match Pod's node affinity/selector"
    own_ns = meta_of(pod).get("namespace") or "default"
    node_labels = labels_of(node)
    for other in placed:
        other_node = nodes.get(node_name_of(other))
        if other_node is None:
            continue
        other_ns = meta_of(other).get("namespace") or "default"
        # the incoming pod's terms against placed pods, and placed pods' terms against it
        checks = [(term, own_ns, other) for term in _anti_affinity_terms(pod)]
        checks += [(term, other_ns, pod) for term in _anti_affinity_terms(other)]
        for term, term_ns, target in checks:
            key = term.get("topologyKey") or HOSTNAME
            value = node_labels.get(key)
            if value is not None and labels_of(other_node).get(key) == value \
                    and _term_selects(term, term_ns, target):
                return "node(s) didn't match pod anti-affinity rules"
    return ""


def schedule(pod: Obj, nodes: Mapping[str, Obj], pods: Iterable[Obj]) -> tuple[str | None, str]:
    """(node, "") or (None, the scheduler's FailedScheduling message). Among the nodes that fit,
    the one with the fewest pods, then by name."""
    me = (meta_of(pod).get("namespace") or "default", meta_of(pod).get("name"))
    placed = [p for p in pods if is_alive(p) and node_name_of(p)
              and (meta_of(p).get("namespace"), meta_of(p).get("name")) != me]
    reasons: dict[str, int] = {}
    fits: list[tuple[int, str]] = []
    for name, node in sorted(nodes.items()):
        why = _unfit(pod, node, nodes, placed)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
        else:
            fits.append((sum(1 for p in placed if node_name_of(p) == name), name))
    if fits:
        return min(fits)[1], ""
    detail = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()))
    return None, f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")


# ---------------------------------------------------------------- Deployment controller

def template_hash(template: Mapping[str, Any]) -> str:
    """Like the Deployment controller's pod-template-hash: FNV-1a 32 of the template, its decimal
    digits spelled with SafeEncodeString's alphabet (hence names such as `b9f8b4448`)."""
    h = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE[b % len(_SAFE)] for b in str(h).encode())


def rolling_limits(strategy: Mapping[str, Any], replicas: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable): percentages round up for surge, down for unavailable; both
    zero means one unavailable (as the API defaults guarantee)."""
    if strategy.get("type") == "Recreate":
        return 0, replicas
    ru = strategy.get("rollingUpdate") or {}

    def resolve(value: Any, round_up: bool) -> int:
        value = "25%" if value is None else value
        if isinstance(value, str) and value.endswith("%"):
            scaled = int(value[:-1]) * replicas
            return -(-scaled // 100) if round_up else scaled // 100
        return int(value)

    surge = resolve(ru.get("maxSurge"), True)
    unavailable = resolve(ru.get("maxUnavailable"), False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def deletion_order(pods: list[Obj], created: Mapping[str, int]) -> list[Obj]:
    """controller.ActivePods: unscheduled, pending, not ready first, then the newest (by
    creationTimestamp, then by `created`: uid -> creation sequence)."""
    def newest_first(text: str) -> tuple[int, ...]:
        return tuple(-ord(ch) for ch in text)

    def rank(p: Obj) -> tuple[Any, ...]:
        return (bool(node_name_of(p)), phase_of(p) == "Running", is_ready(p),
                newest_first(meta_of(p).get("creationTimestamp") or ""),
                -created.get(meta_of(p).get("uid", ""), 0))
    return sorted(pods, key=rank)


def _without_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v) for k, v in value.items()
                if k not in ("lastUpdateTime", "lastTransitionTime")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


_COUNTS = ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas",
           "unavailableReplicas")


def deployment_status_patch(dep: Obj, pods: list[Obj]) -> Obj | None:
    """The merge patch of the Deployment's status for its live pods, or None when nothing
    changed. Carries the resourceVersion read, so a concurrent write makes it a 409."""
    spec, meta = dep.get("spec") or {}, meta_of(dep)
    want = int(spec.get("replicas", 1))
    current = template_hash(spec.get("template") or {})
    updated = sum(1 for p in pods if labels_of(p).get(HASH_LABEL) == current)
    ready = sum(1 for p in pods if is_ready(p))
    _, unavailable = rolling_limits(spec.get("strategy") or {}, want)
    rs_name = f"{meta['name']}-{current}"
    counts = dict(zip(_COUNTS, (len(pods), updated, ready, ready, max(0, want - ready)),
                      strict=True))
    status: Obj = {"observedGeneration": meta.get("generation", 1),
                   **{k: v for k, v in counts.items() if v}}  # Go's omitempty
    available = ready >= want - unavailable
    complete = updated == want == ready == len(pods)
    status["conditions"] = [
        {"type": "Available", "status": str(available),
         **({"reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."} if available else
            {"reason": "MinimumReplicasUnavailable",
             "message": "Deployment does not have minimum availability."})},
        {"type": "Progressing", "status": "True",
         **({"reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{rs_name}" has successfully progressed.'} if complete else
            {"reason": "ReplicaSetUpdated",
             "message": f'ReplicaSet "{rs_name}" is progressing.'})},
    ]
    old = dep.get("status") or {}
    if _without_times({k: old.get(k) for k in status}) == _without_times(status) \
            and not any(old.get(k) for k in _COUNTS if k not in status):
        return None
    now = rfc3339_now()
    for cond in status["conditions"]:
        before = condition_of(dep, cond["type"]) or {}
        cond["lastUpdateTime"] = now
        cond["lastTransitionTime"] = (before.get("lastTransitionTime", now)
                                      if before.get("status") == cond["status"] else now)
    status.update({k: None for k in _COUNTS if k not in status})  # merge patch: remove
    return {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}


# ---------------------------------------------------------------- kubelet bodies

def host_ip_of(name: str) -> ipaddress.IPv4Address:
    """A stable node address in 172.18.0.0/16 (kind's docker network) for nodes without one."""
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:2], "big")
    return ipaddress.IPv4Address("172.18.0.0") + max(2, h % 65534)


def node_ip(node: Mapping[str, Any]) -> str:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return str(addr["address"])
    return str(host_ip_of(meta_of(node).get("name", "")))


def node_ready_condition(ready: bool) -> Obj:
    now = rfc3339_now()
    return {"type": "Ready", "status": str(ready),
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "kubelet stopped posting",
            "lastHeartbeatTime": now, "lastTransitionTime": now}


def unschedulable_status(message: str) -> Obj:
    return {"status": {"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": message, "lastProbeTime": None, "lastTransitionTime": rfc3339_now()}]}}


def running_status(pod: Obj, host_ip: str, pod_ips: list[str], ready: bool) -> Obj:
    """What the kubelet reports once the containers run."""
    now, flag = rfc3339_now(), str(ready)
    containers = (pod.get("spec") or {}).get("containers") or []
    return {"status": {
        "phase": "Running", "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        **({"podIP": pod_ips[0], "podIPs": [{"ip": i} for i in pod_ips]} if pod_ips else {}),
        "startTime": now, "qosClass": "BestEffort",
        "conditions": [
            {"type": t, "status": s, "lastProbeTime": None, "lastTransitionTime": now}
            for t, s in (("PodReadyToStartContainers", "True"), ("Initialized", "True"),
                         ("Ready", flag), ("ContainersReady", flag), ("PodScheduled", "True"))],
        "containerStatuses": [{
            "name": c.get("name", ""), "image": c.get("image", ""), "imageID": "",
            "containerID": "containerd://" + hashlib.sha256(
                f"{meta_of(pod).get('uid')}/{c.get('name')}".encode()).hexdigest(),
            "ready": ready, "started": True, "restartCount": 0,
            "state": {"running": {"startedAt": now}}} for c in containers],
    }}


def readiness_status(pod: Obj, ready: bool) -> Obj:
    flag, now = str(ready), rfc3339_now()
    containers = (pod.get("status") or {}).get("containerStatuses") or []
    return {"status": {
        "conditions": [{"type": t, "status": flag, "lastProbeTime": None,
                        "lastTransitionTime": now} for t in ("Ready", "ContainersReady")],
        "containerStatuses": [{**c, "ready": ready} for c in containers]}}


def failed_status(reason: str) -> Obj:
    now = rfc3339_now()
    return {"status": {"phase": "Failed", "reason": reason, "conditions": [
        {"type": t, "status": "False", "lastProbeTime": None, "lastTransitionTime": now}
        for t in ("Ready", "ContainersReady")]}}
