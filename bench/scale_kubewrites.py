"""The floor of `vegd run`'s Kubernetes writes at its first start (bench/scale_run.py).

What vegd wrote is read back from the API server once it is ready: every gateway's finalizer and
status, the Deployments and observability ConfigMaps it made (by its label), its Events, the
VPCs' statuses. The same writes — one request per object, as few as give that state — are then
sent raw, one after another on one keep-alive connection, to a fresh API server loaded with the
same cluster, and timed. vegd's own count of writes (resourceVersions it used) is printed beside
it: statuses written twice or retried writes show there.
"""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import quote

LABEL = "ovn.kubernetes.io/vpc-egress-gateway"
MERGE = "application/merge-patch+json"
GATEWAYS = "/apis/kubeovn.io/v1/vpc-egress-gateways"
# what the server sets on create: not part of a request
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields",
                 "selfLink", "deletionTimestamp")

Write = tuple[str, str, Any, str]  # method, path, body, content type


def _get(conn: http.client.HTTPConnection, path: str) -> list[dict[str, Any]]:
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
    return list(json.loads(body).get("items") or [])


def _created(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_FIELDS}
    return {**{k: v for k, v in obj.items() if k != "status"}, "apiVersion": api_version,
            "kind": kind, "metadata": meta}


def _ns_path(base: str, ns: str, plural: str, name: str = "") -> str:
    path = f"{base}/namespaces/{quote(ns, safe='')}/{plural}"
    return f"{path}/{quote(name, safe='')}" if name else path


def vegd_writes(port: int) -> list[Write]:
    """The requests that make, on the cluster as loaded, the state vegd left on `port`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    selector = f"?labelSelector={quote(LABEL, safe='')}"
    writes: list[Write] = []
    try:
        for gw in _get(conn, GATEWAYS):
            meta = gw["metadata"]
            path = _ns_path("/apis/kubeovn.io/v1", meta["namespace"], "vpc-egress-gateways",
                            meta["name"])
            if meta.get("finalizers"):
                writes.append(("PATCH", path, {"metadata": {"finalizers": meta["finalizers"]}},
                               MERGE))
            if gw.get("status"):
                writes.append(("PATCH", f"{path}/status", {"status": gw["status"]}, MERGE))
        for cm in _get(conn, f"/api/v1/configmaps{selector}"):
            writes.append(("POST", _ns_path("/api/v1", cm["metadata"]["namespace"], "configmaps"),
                           _created(cm, "v1", "ConfigMap"), "application/json"))
        for dep in _get(conn, f"/apis/apps/v1/deployments{selector}"):
            writes.append(("POST", _ns_path("/apis/apps/v1", dep["metadata"]["namespace"],
                                            "deployments"),
                           _created(dep, "apps/v1", "Deployment"), "application/json"))
        for ev in _get(conn, "/api/v1/events"):
            if (ev.get("source") or {}).get("component") == "vegd":
                writes.append(("POST", _ns_path("/api/v1", ev["metadata"]["namespace"], "events"),
                               _created(ev, "v1", "Event"), "application/json"))
        for vpc in _get(conn, "/apis/kubeovn.io/v1/vpcs"):
            if vpc.get("status"):
                writes.append(("PATCH", f"/apis/kubeovn.io/v1/vpcs/"
                               f"{quote(vpc['metadata']['name'], safe='')}/status",
                               {"status": vpc["status"]}, MERGE))
    finally:
        conn.close()
    return writes


def _owner_uids(conn: http.client.HTTPConnection) -> dict[tuple[str, str], str]:
    return {(g["metadata"]["namespace"], g["metadata"]["name"]): g["metadata"]["uid"]
            for g in _get(conn, GATEWAYS)}


def _rebind(body: Any, uids: dict[tuple[str, str], str]) -> Any:
    """Owner references name the fresh server's gateways (its own uids), as vegd's would: the
    server's garbage collector must not take the Deployments for orphans."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    if not meta or not meta.get("ownerReferences"):
        return body
    refs = [{**r, "uid": uids.get((meta.get("namespace", ""), r.get("name", "")), r.get("uid"))}
            for r in meta["ownerReferences"]]
    return {**body, "metadata": {**meta, "ownerReferences": refs}}


def send_raw(port: int, writes: list[Write]) -> float:
    """Seconds to send `writes` one after another on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        uids = _owner_uids(conn)
        bodies = [(m, p, json.dumps(_rebind(b, uids)).encode(), c) for m, p, b, c in writes]
        start = time.perf_counter()
        for method, path, data, ctype in bodies:
            conn.request(method, path, body=data, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {answer[:300]!r}")
        return time.perf_counter() - start
    finally:
        conn.close()
