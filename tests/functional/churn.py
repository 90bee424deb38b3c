"""Controller churn for the fault tests: a seeded stream of pod and gateway changes through the
test API server, the final state exported as manifests, and NB checks against it.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from kubelet import FakeCluster
from kubelet_api import call
from kubernetes import client
from kubernetes.client.rest import ApiException

from vegd.plan.rows import OPTIONAL_DEFAULTS, TABLES

G, V, PLURAL = "kubeovn.io", "v1", "vpc-egress-gateways"
NAMESPACE = "shop"  # the workload pods' namespace, selected by the "web" gateway
MAX_PODS = 30

WEB = {"vpc": "ovn-cluster", "replicas": 1, "externalSubnet": "macvlan1",
       "selectors": [{"namespaceSelector": {"matchLabels": {"egress": "on"}},
                      "podSelector": {"matchLabels": {"app": "web"}}}]}
BFD = {"vpc": "vpc1", "replicas": 2, "internalSubnet": "subnet1", "externalSubnet": "macvlan1",
       "bfd": {"enabled": True}, "policies": [{"snat": True, "ipBlocks": ["192.168.0.0/24"]}]}
EXTRA = {"vpc": "ovn-cluster", "replicas": 1, "externalSubnet": "macvlan1",
         "policies": [{"snat": False, "ipBlocks": ["10.16.200.0/24"]}]}

# The manifests `vegd apply` reads, as (API path, apiVersion, kind).
EXPORTED = (("/api/v1/namespaces", "v1", "Namespace"), ("/api/v1/nodes", "v1", "Node"),
            ("/api/v1/pods", "v1", "Pod"),
            ("/apis/kubeovn.io/v1/subnets", "kubeovn.io/v1", "Subnet"),
            ("/apis/kubeovn.io/v1/vpcs", "kubeovn.io/v1", "Vpc"),
            ("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions", "k8s.cni.cncf.io/v1",
             "NetworkAttachmentDefinition"),
            (f"/apis/{G}/{V}/{PLURAL}", f"{G}/{V}", "VpcEgressGateway"))


class Churn:
    """Seeded random changes, one every few ms, in a thread of its own: workload pods created,
    relabelled into and out of the "web" gateway's selector and deleted; gateways scaled, a
    policy's ipBlocks changed, a third gateway created and deleted."""

    def __init__(self, kubeapi: Any, cluster: FakeCluster, seed: int) -> None:
        self.rng = random.Random(seed)
        self.cluster = cluster
        self.custom = client.CustomObjectsApi(kubeapi.api_client())
        self.pods: dict[str, str] = {}  # name -> app label
        self.serial = 0
        self.ops: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="churn")
        self.error: BaseException | None = None

    def setup(self) -> None:
        self.cluster.add_namespace(NAMESPACE, {"egress": "on"})
        self.create_gateway("web", WEB)
        self.create_gateway("bfd", BFD)
        for _ in range(10):
            self._add_pod()

    def create_gateway(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(G, V, "default", PLURAL, {
            "apiVersion": f"{G}/{V}", "kind": "VpcEgressGateway",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec})

    def start(self) -> Churn:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the churn; re-raise what went wrong in its thread."""
        self._stop.set()
        self._thread.join(timeout=30)
        if self.error is not None:
            raise RuntimeError("the churn thread failed") from self.error

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.rng.uniform(0.005, 0.03)):  # the churn's pace
                self.step()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def step(self) -> None:
        op = self.rng.choices(("add", "relabel", "delete", "scale", "blocks", "extra"),
                              (30, 30, 15, 10, 8, 7))[0]
        if (op == "add" and len(self.pods) >= MAX_PODS) or \
                (op in ("relabel", "delete") and not self.pods):
            op = "delete" if op == "add" else "add"
        self.ops[op] += 1
        if op == "add":
            self._add_pod()
        elif op == "relabel":
            name = self.rng.choice(sorted(self.pods))
            app = "db" if self.pods[name] == "web" else "web"
            self.cluster.label_pod(NAMESPACE, name, {"app": app})
            self.pods[name] = app
        elif op == "delete":
            name = self.rng.choice(sorted(self.pods))
            self.cluster.kill_pod(NAMESPACE, name)
            del self.pods[name]
        elif op == "scale":
            name = self.rng.choice(("web", "bfd"))
            self._patch(name, {"spec": {"replicas": self.rng.choice((1, 2))}})
        elif op == "blocks":
            blocks = self.rng.choice((["192.168.0.0/24"], ["192.168.0.0/25"],
                                      ["192.168.0.0/25", "192.168.0.128/26"]))
            self._patch("bfd", {"spec": {"policies": [{"snat": True, "ipBlocks": blocks}]}})
        else:
            try:
                self.custom.get_namespaced_custom_object(G, V, "default", PLURAL, "extra")
                self.custom.delete_namespaced_custom_object(G, V, "default", PLURAL, "extra")
            except ApiException as exc:
                if exc.status != 404:
                    raise
                try:
                    self.create_gateway("extra", EXTRA)
                except ApiException as again:
                    if again.status != 409:  # still terminating (vegd holds its finalizer)
                        raise

    def _add_pod(self) -> None:
        self.serial += 1
        name, app = f"w{self.serial}", self.rng.choice(("web", "db"))
        self.cluster.add_pod(name, namespace=NAMESPACE, labels={"app": app})
        self.pods[name] = app

    def _patch(self, name: str, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(G, V, "default", PLURAL, name, body)


def export_manifests(api_client: client.ApiClient, directory: Path) -> Path:
    """The API server's objects of the kinds `vegd apply` reads, as one manifest file."""
    directory.mkdir(parents=True, exist_ok=True)
    docs = []
    for path, api_version, kind in EXPORTED:
        for item in call(api_client, "GET", path, None)["items"]:
            item["metadata"].pop("managedFields", None)
            docs.append({"apiVersion": api_version, "kind": kind, **item})
    (directory / "all.yaml").write_text(yaml.safe_dump_all(docs))
    return directory


def gateways_converged(custom: client.CustomObjectsApi, cluster: FakeCluster) -> list[str]:
    """What is not yet converged in the gateways' statuses ([] when all are): each gateway
    Completed and Ready for its current generation, its instances exactly its pods."""
    pending = []
    for gw in custom.list_namespaced_custom_object(G, V, "default", PLURAL)["items"]:
        name, status = gw["metadata"]["name"], gw.get("status") or {}
        if gw["metadata"].get("deletionTimestamp"):
            pending.append(f"{name} still terminating")
            continue
        try:
            pods = cluster.pods(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            pending.append(f"{name} has no Deployment")
            continue
        ips = sorted((p.get("status") or {}).get("podIP", "") for p in pods)
        generation = gw["metadata"].get("generation")
        stale = [c["type"] for c in status.get("conditions") or []
                 if c.get("observedGeneration") != generation]
        if status.get("phase") != "Completed" or not status.get("ready") or stale \
                or sorted(status.get("internalIPs") or []) != ips \
                or len(ips) != gw["spec"]["replicas"]:
            pending.append(f"{name}: phase {status.get('phase')}, stale {stale}, "
                           f"instances {status.get('internalIPs')} vs pods {ips}")
    return pending


def nb_tables(remote: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables vegd writes, read from `remote` (a leader's socket), with the
    OVSDB JSON notation turned into Python (sets to lists, maps to dicts, uuids to strings)."""
    tables = sorted({*TABLES, "Logical_Router", "HA_Chassis", "Logical_Switch_Port"})
    ops = ["OVN_Northbound", *({"op": "select", "table": t, "where": []} for t in tables)]
    out = subprocess.run(["ovsdb-client", "transact", remote, json.dumps(ops)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    return {t: [{k: _value(v) for k, v in row.items()} for row in res["rows"]]
            for t, res in zip(tables, json.loads(out), strict=True)}


def _value(v: Any) -> Any:
    if isinstance(v, list) and len(v) == 2 and v[0] == "set":
        return sorted(_value(x) for x in v[1])
    if isinstance(v, list) and len(v) == 2 and v[0] == "map":
        return {k: _value(x) for k, x in v[1]}
    if isinstance(v, list) and len(v) == 2 and v[0] in ("uuid", "named-uuid"):
        return v[1]
    return v


def _ours(row: dict[str, Any], vendor: str = "vegd") -> bool:
    return (row.get("external_ids") or {}).get("vendor") == vendor


def duplicated_rows(rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Rows of ours that share their key (as vegd's plan keys them) with another of ours."""
    router_of = {uuid: r["name"] for r in rows["Logical_Router"]
                 for column in ("policies", "static_routes", "ports")
                 for uuid in _members(r[column])}
    dups = []
    for table, spec in TABLES.items():
        keys: Counter[tuple[str, ...]] = Counter()
        for row in rows.get(table, []):
            if not _ours(row):
                continue
            own = tuple(str(_scalar(row[c], OPTIONAL_DEFAULTS.get(c, ""))) for c in spec.KEY)
            keys[(router_of.get(row["_uuid"], ""), *own) if spec.ROUTER_COLUMN else own] += 1
        dups += [f"{table}{list(k)} x{n}" for k, n in keys.items() if n > 1]
    return dups


def foreign_rows(rows: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every row that is not vegd's, with references to vegd's rows left out (vegd adds and
    removes its own children in the routers' columns, by mutation)."""
    ours = {r["_uuid"] for table in rows.values() for r in table if _ours(r)}
    out: dict[str, list[dict[str, Any]]] = {}
    for table, table_rows in rows.items():
        kept = []
        for row in table_rows:
            if _ours(row):
                continue
            kept.append({k: _without(v, ours) for k, v in row.items() if k != "_version"})
        out[table] = sorted(kept, key=lambda r: r["_uuid"])
    return out


def _without(v: Any, ours: set[str]) -> Any:
    """A column's value without references to our rows, in OVSDB's own form (a set of one is
    its element)."""
    if isinstance(v, str) and v in ours:
        return []
    if not isinstance(v, list):
        return v
    kept = [x for x in v if not (isinstance(x, str) and x in ours)]
    return kept[0] if len(kept) == 1 else kept


def _members(v: Any) -> list[str]:
    return v if isinstance(v, list) else [v]


def _scalar(v: Any, default: str) -> Any:
    """An optional column's value (a set of at most one)."""
    if isinstance(v, list):
        return v[0] if v else default
    return v
