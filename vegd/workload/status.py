"""A gateway's `.status`, the Events of its transitions, and a VPC's `status.bfdPort`.

Phases: `Pending` (the spec is invalid, or the Deployment does not exist yet), `Processing`
(rolling out, instances not all ready, NB rows not written or their write failed), `Completed`
(every instance ready and the NB rows written). `ready` is true exactly in `Completed`.

Every key is always present (empty lists included), so a JSON merge patch of `{"status": ...}`
replaces what an earlier status said. BFD state is reported per instance but never gates `ready`:
OVN decides from BFD which instances get traffic (docs/workload.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vegd.model.errors import ValidationError
from vegd.model.instances import Instance, Workload
from vegd.model.objects import Snapshot, Vpc, VpcEgressGateway
from vegd.model.resolve import IP_POOL_NOT_FOUND, IP_POOL_SUBNET_MISMATCH
from vegd.plan.names import bfd_port
from vegd.plan.vpc import bfd_port_nodes
from vegd.workload.deployment import (
    deployment_name,
    label_selector,
    observability_configmap_name,
)

PENDING, PROCESSING, COMPLETED = "Pending", "Processing", "Completed"
READY, VALIDATED = "Ready", "Validated"
OBSERVABILITY = "ObservabilityConfigured"  # Kube-OVN's type; only while observability is on
OBSERVABILITY_OK, OBSERVABILITY_FAILED = "ConfigMapUpToDate", "ConfigMapReconcileFailed"

# Condition reasons. Kube-OVN's names where the meaning is the same.
VALID = "Valid"
INVALID_SPEC = "InvalidSpec"
FOREIGN_CONTROLLER = "ForeignController"  # another controller runs it (nb/foreign.py)
FOREIGN_FIELD = "controller"  # the ValidationError field that says so
FOREIGN_SOURCES = "ForeignSourceOverlap"  # another controller's rows reroute its sources
# On vegd's twin of a migrated gateway (`vegd migrate`): the other controller's NB rows for the
# same key may linger until its object is deleted; they do not hold the twin off.
MIGRATED_FROM = "vegd.io/migrated-from"
BFD_PORT_NOT_ENABLED = "VpcBfdPortNotEnabled"
WORKLOAD_NOT_CREATED = "WorkloadNotCreated"
WORKLOAD_FAILED = "ReconcileWorkloadFailed"
ROLLING_OUT = "Processing"
WORKLOAD_NOT_READY = "WorkloadNetworkNotReady"
NB_FAILED = "ReconcileOVNRoutesFailed"
NB_PENDING = "Processing"
SUCCESS = "ReconcileSuccess"
BFD_UP, BFD_DOWN = "BfdSessionUp", "BfdSessionDown"

IP_POOL_EXHAUSTED = "IPPoolExhausted"

_PENDING_REASONS = {INVALID_SPEC, BFD_PORT_NOT_ENABLED, WORKLOAD_NOT_CREATED,
                    IP_POOL_NOT_FOUND, IP_POOL_SUBNET_MISMATCH}
_NORMAL_REASONS = {VALID, SUCCESS, ROLLING_OUT, WORKLOAD_NOT_CREATED}
_COUNT_LINE = re.compile(r"^\d+ of \d+ instances are ready$")
_TIMES = ("lastTransitionTime", "lastUpdateTime")
EVENT_MESSAGE_MAX = 1024  # events.k8s.io note length limit
CONDITION_MESSAGE_MAX = 32768  # the CRD's maxLength


@dataclass(frozen=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def unparsed_gateway(raw: Mapping[str, Any]) -> VpcEgressGateway:
    """The identity of a VpcEgressGateway object that `model.parse` refused, enough for its
    status (name, namespace, generation, prefix, replicas as far as they can be read)."""
    meta = raw.get("metadata") or {}
    raw_spec = raw.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    replicas = spec.get("replicas", 1)
    prefix = spec.get("prefix", "")
    generation = meta.get("generation", 0)
    return VpcEgressGateway(
        namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
        external_subnet="",
        replicas=replicas if isinstance(replicas, int) and not isinstance(replicas, bool) else 0,
        prefix=prefix if isinstance(prefix, str) else "",
        uid=str(meta.get("uid") or ""),
        generation=generation if isinstance(generation, int) else 0)


def deployment_rollout(deployment: Mapping[str, Any]) -> str | None:
    """None when the Deployment has rolled out completely, else why not (as a sentence)."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    st = deployment.get("status") or {}
    name = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    if int(st.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return f"Deployment {name} has not yet seen its latest spec"
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return f"Deployment {name} exceeded its progress deadline: {cond.get('message', '')}"
    want = int(spec.get("replicas", 1) or 0)
    updated = int(st.get("updatedReplicas") or 0)
    total = int(st.get("replicas") or 0)
    available = int(st.get("availableReplicas") or 0)
    if updated < want:
        return f"Deployment {name} is rolling out: {updated} of {want} pods updated"
    if total > updated:
        return f"Deployment {name} is rolling out: {total - updated} old pod(s) still running"
    if available < updated:
        return f"Deployment {name} is rolling out: {available} of {updated} pods available"
    return None


def _sort_key(inst: Instance) -> tuple[tuple[int, int], ...]:
    return tuple((ip.version, int(ip)) for ip in inst.internal)


def _instances_summary(gw: VpcEgressGateway, wl: Workload | None) -> tuple[bool, str]:
    """(all instances ready, "1 of 2 instances are ready: pod ns/x is Pending")."""
    instances = wl.instances if wl else ()
    details = [p for p in (wl.problems if wl else ()) if not _COUNT_LINE.match(p)]
    if gw.replicas == 0 and not instances and not details:
        return True, "no instances (replicas is 0): the sources' traffic is dropped"
    text = f"{len(instances)} of {gw.replicas} instances are ready"
    if details:
        text += ": " + "; ".join(details)
    return len(instances) == gw.replicas and not details, text


def _bfd_sessions(gw: VpcEgressGateway, instances: Sequence[Instance],
                  bfd: Mapping[str, str] | None) -> list[dict[str, str]]:
    if not gw.bfd.enabled:
        return []
    bfd = bfd or {}
    return [{"instance": inst.pod.split("/", 1)[-1], "node": inst.node, "ip": str(ip),
             "status": bfd.get(str(ip)) or "unknown"}
            for inst in instances for ip in inst.internal]


def _condition(previous: Mapping[str, Any] | None, kind: str, ok: bool, reason: str,
               message: str, generation: int, now: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = next((c for c in (previous or {}).get("conditions") or []
                if isinstance(c, Mapping) and c.get("type") == kind), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == status else None
    if len(message) > CONDITION_MESSAGE_MAX:
        message = message[:CONDITION_MESSAGE_MAX - 3] + "..."
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": since or now}


def _invalid_reason(invalid: ValidationError | str) -> tuple[str, str]:
    if isinstance(invalid, ValidationError):
        if invalid.field == FOREIGN_FIELD:
            return invalid.reason or FOREIGN_CONTROLLER, invalid.message
        reason = BFD_PORT_NOT_ENABLED if invalid.field == "spec.bfd.enabled" else \
            invalid.reason or INVALID_SPEC
        return reason, f"{invalid.field}: {invalid.message}"
    return INVALID_SPEC, str(invalid)


def gateway_status(gw: VpcEgressGateway, *, now: str,
                   previous: Mapping[str, Any] | None = None,
                   invalid: ValidationError | str | None = None,
                   workload: Workload | None = None,
                   deployment: Mapping[str, Any] | None = None,
                   workload_error: str = "",
                   nb_written: bool = False,
                   nb_error: str = "",
                   bfd: Mapping[str, str] | None = None,
                   observability_error: str | None = None) -> dict[str, Any]:
    """The whole `.status` of a gateway.

    gw: the gateway (`unparsed_gateway(raw)` when it does not even parse); now: RFC 3339 time;
    previous: the live `.status` (keeps lastTransitionTime of unchanged conditions);
    invalid: why the spec is invalid (model.resolve / build_deployment), or None;
    workload: `model.instances.workload()`; deployment: the live Deployment with its status, or
    None when it does not exist; workload_error: creating/updating the Deployment failed;
    nb_written / nb_error: the NB transaction of this reconcile succeeded / failed with this text;
    bfd: NB `BFD.status` by `dst_ip` (the instances' internal IPs);
    observability_error: None when the observability ConfigMap was not written in this
    reconcile, "" when it is up to date, else why writing it failed.
    """
    instances = sorted(workload.instances, key=_sort_key) \
        if workload is not None and invalid is None else []
    name = deployment_name(gw)
    ns_name = f"{gw.namespace}/{name}"
    if invalid is not None:
        v_reason, v_message = _invalid_reason(invalid)
        validated = _condition(previous, VALIDATED, False, v_reason, v_message, gw.generation, now)
        ok, reason, message = False, v_reason, f"the spec is invalid: {v_message}"
    else:
        validated = _condition(previous, VALIDATED, True, VALID, "the spec is valid",
                               gw.generation, now)
        ok, reason, message = _readiness(gw, ns_name, workload, deployment, workload_error,
                                         nb_written, nb_error)
    sessions = _bfd_sessions(gw, instances, bfd)
    down = [s for s in sessions if s["status"] != "up"]
    if ok and down:
        message += "; BFD " + ", ".join(f"{s['instance']} ({s['ip']}) {s['status']}"
                                        for s in down)
    ready = _condition(previous, READY, ok, reason, message, gw.generation, now)
    phase = COMPLETED if ok else PENDING if reason in _PENDING_REASONS else PROCESSING
    # The scale subresource's current count: the pods the Deployment runs (0 without one).
    replicas = int(((deployment or {}).get("status") or {}).get("replicas") or 0)
    return {
        "replicas": replicas,
        "labelSelector": label_selector(gw.name),
        "ready": ok,
        "phase": phase,
        "internalIPs": [",".join(map(str, i.internal)) for i in instances],
        "externalIPs": [",".join(map(str, i.external)) for i in instances],
        "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                     "nodes": sorted({i.node for i in instances if i.node})},
        "bfdSessions": sessions,
        "conditions": [ready, validated, *_observability(gw, previous, observability_error,
                                                        invalid is None, now)],
    }


def _observability(gw: VpcEgressGateway, previous: Mapping[str, Any] | None, error: str | None,
                   valid: bool, now: str) -> list[dict[str, Any]]:
    """ObservabilityConfigured, while spec.observability switches something on. It never
    gates Ready (as in Kube-OVN: observability does not affect the data plane)."""
    o = gw.observability
    if not valid or error is None or not (o.conntrack_metrics or o.log.enabled
                                          or o.interface_metrics):
        return []
    if error:
        return [_condition(previous, OBSERVABILITY, False, OBSERVABILITY_FAILED, error,
                           gw.generation, now)]
    parts = [name for name, on in (("conntrack metrics", o.conntrack_metrics),
                                   ("translation records", o.log.enabled)) if on]
    return [_condition(previous, OBSERVABILITY, True, OBSERVABILITY_OK,
                       f"{' and '.join(parts) or 'settings'} in ConfigMap "
                       f"{gw.namespace}/{observability_configmap_name(gw)}; the agents reload "
                       "it without restarting", gw.generation, now)]


def _readiness(gw: VpcEgressGateway, ns_name: str, workload: Workload | None,
               deployment: Mapping[str, Any] | None, workload_error: str,
               nb_written: bool, nb_error: str) -> tuple[bool, str, str]:
    """(ready, Ready reason, Ready message) of a valid gateway."""
    if workload_error:
        return False, WORKLOAD_FAILED, f"Deployment {ns_name}: {workload_error}"
    if deployment is None:
        return False, WORKLOAD_NOT_CREATED, f"Deployment {ns_name} does not exist yet"
    all_ready, summary = _instances_summary(gw, workload)
    if nb_error:
        return False, NB_FAILED, f"writing the OVN Northbound database failed: {nb_error}; " \
            + summary
    if not all_ready and workload is not None and workload.pool_shortage:
        # said before the rollout: a pod without an address never finishes rolling out
        return False, IP_POOL_EXHAUSTED, f"{summary}; " + "; ".join(workload.pool_shortage)
    rollout = deployment_rollout(deployment)
    if rollout is not None:
        return False, ROLLING_OUT, f"{rollout}; {summary}"
    if not all_ready:
        return False, WORKLOAD_NOT_READY, summary
    if not nb_written:
        return False, NB_PENDING, f"{summary}; the OVN Northbound rows are not written yet"
    return True, SUCCESS, summary


# ---------------------------------------------------------------- transitions


def _find(status: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any]:
    for cond in (status or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return {}


def _event(kind: Literal["Normal", "Warning"], reason: str, message: str) -> EventSpec:
    if len(message) > EVENT_MESSAGE_MAX:
        message = message[:EVENT_MESSAGE_MAX - 3] + "..."
    return EventSpec(kind, reason, message)


def events_for(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[EventSpec]:
    """The Events for the change from status `old` to `new`: validation lost or regained (or
    a different error), Ready's status or reason changing (which every phase change does), and
    BFD sessions going down or coming up. Nothing when only counts or times changed."""
    events: list[EventSpec] = []
    was, now = _find(old, VALIDATED), _find(new, VALIDATED)
    invalid_event = False
    if now.get("status") == "False" and (was.get("status") != "False"
                                         or was.get("message") != now.get("message")):
        events.append(_event("Warning", str(now.get("reason")), str(now.get("message"))))
        invalid_event = True
    elif now.get("status") == "True" and was.get("status") == "False":
        events.append(_event("Normal", VALID, "the spec is valid again"))
    was, now = _find(old, READY), _find(new, READY)
    if (was.get("status"), was.get("reason")) != (now.get("status"), now.get("reason")) \
            and now and not invalid_event:
        reason = str(now.get("reason"))
        kind: Literal["Normal", "Warning"] = "Normal" if reason in _NORMAL_REASONS \
            else "Warning"
        events.append(_event(kind, reason, str(now.get("message"))))
    events.extend(_bfd_events(old, new))
    return events


def _bfd_events(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[EventSpec]:
    before = {(s.get("instance"), s.get("ip")): s.get("status")
              for s in (old or {}).get("bfdSessions") or [] if isinstance(s, Mapping)}
    out = []
    for s in new.get("bfdSessions") or []:
        state = s.get("status")
        prior = before.get((s.get("instance"), s.get("ip")))
        where = f"{s.get('instance')} ({s.get('ip')}) on {s.get('node') or 'an unknown node'}"
        if state == "up" and prior != "up":
            out.append(_event("Normal", BFD_UP, f"BFD session with instance {where} is up"))
        elif prior == "up" and state != "up":
            out.append(_event("Warning", BFD_DOWN, f"BFD session with instance {where} is "
                              f"{state}: OVN sends it no traffic"))
    return out


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _normal(v) for k, v in value.items() if k not in _TIMES}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def status_differs(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` changes anything but condition times. A key `old` lacks counts as
    empty (the API server drops nothing, but a first status has none)."""
    old = old or {}
    for key, value in new.items():
        before = old.get(key)
        if before is None and not value:
            continue
        if _normal(before) != _normal(value):
            return True
    return False


# ---------------------------------------------------------------- VPC


def vpc_bfd_port_status(vpc: Vpc, snap: Snapshot) -> dict[str, Any]:
    """`Vpc.status.bfdPort`: the port's name, its addresses, the nodes of its HA chassis group
    (nodes that may host it and have a chassis). Empty when the port is off."""
    port = vpc.bfd_port
    if not port.enabled or not port.ips:
        return {"name": "", "ip": "", "nodes": []}
    nodes = [n.name for n in bfd_port_nodes(vpc, snap) if snap.chassis_of(n)]
    return {"name": bfd_port(vpc.name), "ip": ",".join(str(ip) for ip in port.ips),
            "nodes": nodes}
