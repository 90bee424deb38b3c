"""Server-side printing: the ``meta.k8s.io/v1`` Table that ``kubectl get`` asks for
(``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``).

Columns as the real server defines them: a CRD's ``additionalPrinterColumns`` (a ``Name`` column
first; JSONPath cells; ``date`` cells as the age, e.g. ``13s``, ``4m40s``; no columns given:
``Age``); the built-in printers for Pods, Deployments, Namespaces and Nodes (names, types and
priorities of ``pkg/printers/internalversion``); ``Name`` + ``Created At`` for other types.
The server sends every column; kubectl shows the ``priority > 0`` ones only with ``-o wide``.
"""

from __future__ import annotations

import calendar
import json
import re
import time
from collections.abc import Callable
from typing import Any

from .resources import ResourceType
from .selectors import selector_from_label_selector

Obj = dict[str, Any]
Column = dict[str, Any]

_NAME = {"name": "Name", "type": "string", "format": "name", "priority": 0,
         "description": "Name must be unique within a namespace."}
_AGE_DESC = "CreationTimestamp is a timestamp representing the server time when this object " \
            "was created."


def _col(name: str, type_: str = "string", priority: int = 0, description: str = "",
         format_: str = "") -> Column:
    return {"name": name, "type": type_, "format": format_, "description": description,
            "priority": priority}


# ---------------------------------------------------------------- ages and JSONPath


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: str | None, now: float | None = None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = calendar.timegm(time.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<invalid>"
    return human_duration((time.time() if now is None else now) - then)


_STEP = re.compile(r"\.([A-Za-z0-9_\-/]+)|\[(\d+)\]|\['([^']+)'\]")


class JsonPathError(ValueError):
    pass


def parse_json_path(path: str) -> list[str | int]:
    """The simple JSONPaths printer columns use: ``.a.b``, ``.a[0]``, ``.a['b.c']``."""
    steps: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise JsonPathError(f"unsupported JSONPath {path!r} at {pos}")
        steps.append(int(m.group(2)) if m.group(2) is not None else (m.group(1) or m.group(3)))
        pos = m.end()
    return steps


def lookup(obj: Any, steps: list[str | int]) -> tuple[bool, Any]:
    cur = obj
    for step in steps:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return False, None
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                return False, None
            cur = cur[step]
    return True, cur


def _go_text(value: Any) -> str:
    """How Go's JSONPath printer renders a value: strings as is, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def custom_cell(column: Column, value: Any) -> Any:
    """apiextensions-apiserver's tableconvertor: string columns print the JSONPath result;
    typed columns pass the value through when it has that type (else no value: <none>)."""
    kind = column.get("type")
    if value is None:
        return None
    if kind == "string":
        return _go_text(value)
    if kind == "integer":
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else None
    if kind == "number":
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "date":
        return age(value) if isinstance(value, str) else None
    return None


# ---------------------------------------------------------------- built-in printers


def _pod_row(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    reason = status.get("reason") or status.get("phase") or ""
    for c in reversed(statuses):  # the printer walks them and keeps the last notable reason
        state = c.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    if gates:
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        true = sum(1 for g in gates if conds.get(g.get("conditionType")) == "True")
        gates_cell = f"{true}/{len(gates)}"
    else:
        gates_cell = "<none>"
    return [pod["metadata"]["name"], f"{ready}/{len(containers)}", reason, str(restarts),
            age(pod["metadata"].get("creationTimestamp")), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>",
            gates_cell]


def _deployment_row(dep: Obj) -> list[Any]:
    spec, status = dep.get("spec") or {}, dep.get("status") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    selector = spec.get("selector")
    return [dep["metadata"]["name"],
            f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            int(status.get("updatedReplicas", 0)), int(status.get("availableReplicas", 0)),
            age(dep["metadata"].get("creationTimestamp")),
            ",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers),
            selector_from_label_selector(selector) if selector else "<none>"]


def _namespace_row(ns: Obj) -> list[Any]:
    return [ns["metadata"]["name"], (ns.get("status") or {}).get("phase", ""),
            age(ns["metadata"].get("creationTimestamp"))]


def _node_row(node: Obj) -> list[Any]:
    status = node.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    state = "Ready" if ready and ready[0].get("status") == "True" else "NotReady" if ready \
        else "Unknown"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix):] for k in node["metadata"].get("labels") or {}
                   if k.startswith(prefix))
    return [node["metadata"]["name"], state, ",".join(roles) or "<none>",
            age(node["metadata"].get("creationTimestamp")),
            (status.get("nodeInfo") or {}).get("kubeletVersion", "")]


_BUILTIN: dict[tuple[str, str], tuple[list[Column], Callable[[Obj], list[Any]]]] = {
    ("", "pods"): ([
        _NAME, _col("Ready", description="The aggregate readiness state of this pod for "
                    "accepting traffic."),
        _col("Status", description="The aggregate status of the containers in this pod."),
        _col("Restarts", description="The number of times the containers in this pod have "
             "been restarted and when the last container in this pod has restarted."),
        _col("Age", description=_AGE_DESC),
        _col("IP", priority=1, description="IP address allocated to the pod."),
        _col("Node", priority=1, description="Name of the node the pod is scheduled on."),
        _col("Nominated Node", priority=1, description="Name of the node where the pod is "
             "nominated to run."),
        _col("Readiness Gates", priority=1, description="Readiness gates of the pod."),
    ], _pod_row),
    ("apps", "deployments"): ([
        _NAME, _col("Ready", description="Number of the pod with ready state"),
        _col("Up-to-date", "integer", description="Total number of non-terminated pods "
             "targeted by this deployment that have the desired template spec."),
        _col("Available", "integer", description="Total number of available pods (ready for "
             "at least minReadySeconds) targeted by this deployment."),
        _col("Age", description=_AGE_DESC),
        _col("Containers", priority=1, description="Names of each container in the template."),
        _col("Images", priority=1, description="Images referenced by each container in the "
             "template."),
        _col("Selector", priority=1, description="Label selector for pods. Existing "
             "ReplicaSets whose pods are selected by this will be the ones affected by this "
             "deployment."),
    ], _deployment_row),
    ("", "namespaces"): ([
        _NAME, _col("Status", description="The status of the namespace"),
        _col("Age", description=_AGE_DESC),
    ], _namespace_row),
    ("", "nodes"): ([
        _NAME, _col("Status", description="The status of the node"),
        _col("Roles", description="The roles of the node"),
        _col("Age", description=_AGE_DESC),
        _col("Version", description="Kubelet Version reported by the node."),
    ], _node_row),
}


# ---------------------------------------------------------------- tables


def columns_and_row(rt: ResourceType) -> tuple[list[Column], Callable[[Obj], list[Any]]]:
    if rt.key in _BUILTIN:
        return _BUILTIN[rt.key]
    if rt.custom:
        specs = rt.printer_columns or [{"name": "Age", "type": "date",
                                         "jsonPath": ".metadata.creationTimestamp"}]
        cols = [_NAME] + [
            _col(c["name"], c.get("type", "string"), int(c.get("priority", 0)),
                 c.get("description") or "Custom resource definition column (in JSONPath "
                 f"format): {c['jsonPath']}", c.get("format", "")) for c in specs]
        paths = [parse_json_path(c["jsonPath"]) for c in specs]

        def row(obj: Obj) -> list[Any]:
            cells: list[Any] = [obj["metadata"]["name"]]
            for col, steps in zip(cols[1:], paths, strict=True):
                found, value = lookup(obj, steps)
                cells.append(custom_cell(col, value) if found else None)
            return cells

        return cols, row
    created = _col("Created At", "date", description=_AGE_DESC)
    return [_NAME, created], lambda o: [o["metadata"]["name"],
                                         o["metadata"].get("creationTimestamp")]


def _row_object(obj: Obj, include: str) -> Obj | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {}}


def table(rt: ResourceType, objs: list[Obj], meta: Obj, *, api_version: str = "meta.k8s.io/v1",
          include_object: str = "Metadata", no_headers: bool = False) -> Obj:
    cols, row = columns_and_row(rt)
    rows = []
    for obj in objs:
        r: Obj = {"cells": row(obj)}
        o = _row_object(obj, include_object)
        if o is not None:
            r["object"] = o
        rows.append(r)
    return {"kind": "Table", "apiVersion": api_version, "metadata": meta,
            "columnDefinitions": [] if no_headers else cols, "rows": rows}


def wants_table(accept: str) -> str | None:
    """The Table apiVersion an Accept header asks for first (None: not a Table)."""
    for media in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in media.split(";")[1:])
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return f"meta.k8s.io/{params.get('v', 'v1')}"
        if media.split(";")[0].strip() in ("application/json", "*/*") and "as" not in params:
            return None
    return None
