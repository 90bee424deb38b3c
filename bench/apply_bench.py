"""How close vegd's reconcile comes to the raw cost of writing the same rows.

Starts a private NB (+ SB, northd off so it does not compete for the 2 cores), creates N gateways
on one router (each: 1 reroute policy with 2 nexthops, 1 selector address set with 10 pods, 1
policy on it), and measures:

- floor: one `ovsdb-client transact` inserting exactly those rows (JSON built beforehand);
- vegd, first apply: plan + diff + one transaction per owner, through the IDL;
- vegd, no-op resync: plan + diff of everything with nothing to write;
- vegd, one gateway changed: the same, one owner writes.

Printed as ratios against the floor measured in the same run. Usage:
    python bench/apply_bench.py [N ...]     (default 50 100)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ovnstack import OvnStack

from vegd import engine
from vegd.model.snapshot import snapshot_from_objects
from vegd.nb.client import NbClient
from vegd.plan.settings import PlanSettings


def cluster(n: int) -> list[dict]:
    objs: list[dict] = [
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "ovn-default"},
         "spec": {"cidrBlock": "10.16.0.0/16", "default": True}},
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "ext"},
         "spec": {"cidrBlock": "172.17.0.0/16", "provider": "eth1.default"}},
    ]
    for g in range(n):
        ns = f"ns{g}"
        objs.append({"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
                     "metadata": {"name": "gw", "namespace": ns, "creationTimestamp": f"{g:08d}"},
                     "spec": {"externalSubnet": "ext", "replicas": 2,
                              "policies": [{"snat": True,
                                            "ipBlocks": [f"10.{100 + g // 250}.{g % 250}.0/24"]}],
                              "selectors": [
                                  {"namespaceSelector": {"matchLabels": {"g": str(g)}}}]}})
        objs.append({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"g": str(g)}}})
        for i in range(2):
            objs.append(_pod(ns, f"gw-{i}", f"10.16.{g // 100}.{(g % 100) * 2 + i + 2}",
                             {"ovn.kubernetes.io/vpc-egress-gateway": "gw"}, gateway=True))
        for i in range(10):
            objs.append(_pod(ns, f"app-{i}", f"10.16.{200 + g // 25}.{(g % 25) * 10 + i}", {}))
    return objs


def _pod(ns, name, ip, labels, gateway=False):
    ann = {"ovn.kubernetes.io/logical_switch": "ovn-default"}
    if gateway:
        ann["k8s.v1.cni.cncf.io/network-status"] = json.dumps(
            [{"name": "default/eth1", "ips": ["172.17.0.9"]}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": ann},
            "spec": {"nodeName": "n1"}, "status": {"phase": "Running", "podIPs": [{"ip": ip}]}}


def raw_ops(plans, router_uuid: str) -> list:
    """The same rows as one OVSDB transact, as ovsdb-client would send them."""
    ops: list = ["OVN_Northbound"]
    names = []
    for p in plans:
        for row in p.rows:
            ids = ["map", [list(kv) for kv in row.external_ids]]
            if row.table == "Address_Set":
                ops.append({"op": "insert", "table": "Address_Set", "row": {
                    "name": row.name, "addresses": ["set", list(row.addresses)],
                    "external_ids": ids}})
            else:
                name = f"p{len(names)}"
                names.append(name)
                ops.append({"op": "insert", "table": "Logical_Router_Policy", "uuid-name": name,
                            "row": {"priority": row.priority, "match": row.match,
                                    "action": row.action, "nexthops": ["set", list(row.nexthops)],
                                    "external_ids": ids}})
    ops.append({"op": "mutate", "table": "Logical_Router",
                "where": [["_uuid", "==", ["uuid", router_uuid]]],
                "mutations": [["policies", "insert", ["set", [["named-uuid", n] for n in names]]]]})
    return ops


def run(n: int) -> dict[str, float]:
    snap = snapshot_from_objects(cluster(n))
    checked = engine.validate(snap)
    assert not checked.errors, checked.errors[:3]
    settings = PlanSettings()
    plans = [p for p in engine.plan_all(snap, checked.resolved, settings) if p.rows]
    rows = sum(len(p.rows) for p in plans)
    out: dict[str, float] = {"gateways": n, "rows": rows}
    with tempfile.TemporaryDirectory() as d:
        raw = OvnStack(Path(d) / "raw", northd=False).start()
        ours = OvnStack(Path(d) / "ours", northd=False).start()
        try:
            for stack in (raw, ours):
                stack.nbctl("lr-add", "ovn-cluster")
            router = raw.nbctl("--bare", "--columns=_uuid", "find", "Logical_Router",
                               "name=ovn-cluster").strip()
            ops = json.dumps(raw_ops(plans, router))
            t = time.perf_counter()
            subprocess.run(["ovsdb-client", "transact", raw.nb_unix, ops], check=True,
                           capture_output=True, env=raw.env)
            out["floor_s"] = time.perf_counter() - t

            nb = NbClient(ours.nb_unix)
            t = time.perf_counter()
            engine.write(nb, engine.plan_all(snap, checked.resolved, settings), "vegd")
            out["first_apply_s"] = time.perf_counter() - t
            t = time.perf_counter()
            results = engine.write(nb, engine.plan_all(snap, checked.resolved, settings), "vegd")
            out["noop_resync_s"] = time.perf_counter() - t
            assert all(r.changes.total == 0 for r in results)
            one = [p for p in engine.plan_all(snap, checked.resolved, settings)
                   if p.owner.id_value == "ns0/gw"]
            t = time.perf_counter()
            engine.write(nb, one, "vegd")
            out["one_owner_s"] = time.perf_counter() - t
            nb.close()
        finally:
            raw.stop()
            ours.stop()
    return out


def main(argv: list[str]) -> None:
    # ovsdb-client takes the transaction as one argument (128 KiB at most): about 150 gateways
    sizes = [int(a) for a in argv] or [50, 100]
    print(f"{'gateways':>8} {'rows':>6} {'floor':>8} {'first apply':>18} {'no-op resync':>18} "
          f"{'one owner':>10}")
    for n in sizes:
        r = run(n)
        f = r["floor_s"]
        print(f"{n:>8} {int(r['rows']):>6} {f * 1000:>6.0f}ms "
              f"{r['first_apply_s'] * 1000:>8.0f}ms ({r['first_apply_s'] / f:>5.1f}x) "
              f"{r['noop_resync_s'] * 1000:>8.0f}ms ({r['noop_resync_s'] / f:>5.1f}x) "
              f"{r['one_owner_s'] * 1000:>8.1f}ms")


if __name__ == "__main__":
    main(sys.argv[1:])
