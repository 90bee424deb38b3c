"""How fast `vegd run` converges from cold and reacts to a pod, against raw NB writes.

A private NB (northd off, so it does not compete for the cores) and the in-process Kubernetes API
server hold N gateways in N namespaces (the objects of bench/apply_bench.py: per gateway two
running instances, ten selected pods, one SNAT prefix). Then:

- cold start: from starting the controller (informers list, first full resync: Deployments,
  finalizers, status, one NB transaction per owner) until every gateway's rows are in NB, against
  the floor of one `ovsdb-client transact` inserting the same rows;
- reaction: a new pod created in a selected namespace, until its IP is in the gateway's address
  set in NB (watch event -> key -> reconcile -> one transaction), median and p95 of K pods,
  against the floor of one `ovsdb-client transact` adding one address to a set.

Printed as ratios against the floors measured in the same run. Usage:
    python bench/controller_bench.py [N ...]     (default 20 100)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "functional"), str(ROOT / "bench")]

import structlog  # noqa: E402
from apply_bench import cluster, raw_ops  # noqa: E402
from kubeapi.fixture import KubeApi  # noqa: E402
from ovnstack import OvnStack, wait_for  # noqa: E402
from vegd_harness import InProcessController  # noqa: E402

from vegd import engine  # noqa: E402
from vegd.model.snapshot import snapshot_from_objects  # noqa: E402
from vegd.plan.names import selector_set  # noqa: E402
from vegd.plan.settings import PlanSettings  # noqa: E402

REACTIONS = 30


def objects(n: int) -> list[dict]:
    objs = cluster(n)
    for o in objs:
        if o["kind"] == "Subnet":
            o["spec"]["gateway"] = "10.16.0.1" if o["metadata"]["name"] == "ovn-default" \
                else "172.17.0.1"
    objs.append({"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                 "metadata": {"name": "eth1", "namespace": "default"}, "spec": {}})
    return objs


def nb_rows(stack: OvnStack) -> tuple[int, int]:
    out = stack.nbctl("--bare", "--columns=external_ids", "find", "Logical_Router_Policy")
    policies = out.count("vpc-egress-gateway=")
    sets = stack.nbctl("--bare", "--columns=name", "find", "Address_Set").split()
    return policies, len(sets)


def floor_one_address(stack: OvnStack, name: str, k: int) -> float:
    times = []
    for i in range(k):
        op = json.dumps(["OVN_Northbound", {
            "op": "mutate", "table": "Address_Set", "where": [["name", "==", name]],
            "mutations": [["addresses", "insert", f"192.0.2.{i + 1}"]]}])
        t = time.perf_counter()
        subprocess.run(["ovsdb-client", "transact", stack.nb_unix, op], check=True,
                       capture_output=True, env=stack.env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run(n: int) -> dict[str, float]:
    objs = objects(n)
    snap = snapshot_from_objects(objs)
    checked = engine.validate(snap)
    plans = [p for p in engine.plan_all(snap, checked.resolved, PlanSettings()) if p.rows]
    want_policies = sum(1 for p in plans for r in p.rows if r.table == "Logical_Router_Policy")
    out: dict[str, float] = {"gateways": n, "rows": sum(len(p.rows) for p in plans)}
    with tempfile.TemporaryDirectory() as d:
        raw = OvnStack(Path(d) / "raw", northd=False).start()
        ours = OvnStack(Path(d) / "ours", northd=False).start()
        api = KubeApi()
        vegd = None
        try:
            for stack in (raw, ours):
                stack.nbctl("lr-add", "ovn-cluster")
            router = raw.nbctl("--bare", "--columns=_uuid", "find", "Logical_Router",
                               "name=ovn-cluster").strip()
            t = time.perf_counter()
            subprocess.run(["ovsdb-client", "transact", raw.nb_unix,
                            json.dumps(raw_ops(plans, router))], check=True,
                           capture_output=True, env=raw.env)
            out["floor_s"] = time.perf_counter() - t
            out["floor_one_s"] = floor_one_address(raw, selector_set("ns0/gw", 4), REACTIONS)

            api.create_all(o for o in objs if o["kind"] != "VpcEgressGateway")
            api.create_all(o for o in objs if o["kind"] == "VpcEgressGateway")
            t = time.perf_counter()
            vegd = InProcessController(api, ours).start()
            wait_for(lambda: nb_rows(ours)[0] >= want_policies, 300, 0.01, "cold convergence")
            out["cold_s"] = time.perf_counter() - t

            latencies = []
            for i in range(REACTIONS):
                ns, ip = f"ns{i % n}", f"10.16.250.{i + 1}"
                pod = {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": f"new-{i}", "namespace": ns,
                                    "annotations": {"ovn.kubernetes.io/logical_switch":
                                                    "ovn-default"}},
                       "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
                       "status": {"phase": "Running", "podIPs": [{"ip": ip}]}}
                set_name = selector_set(f"{ns}/gw", 4)
                t = time.perf_counter()
                api.create(pod)
                wait_for(lambda s=set_name, a=ip: a in ours.nbctl(
                    "--bare", "--columns=addresses", "find", "Address_Set", f"name={s}"),
                    10, 0.002, "the new pod in the address set")
                latencies.append(time.perf_counter() - t)
            out["react_median_s"] = statistics.median(latencies)
            out["react_p95_s"] = sorted(latencies)[int(0.95 * len(latencies)) - 1]
            out["transactions"] = vegd.nb.transactions
        finally:
            if vegd is not None:
                vegd.stop()
            api.close()
            raw.stop()
            ours.stop()
    return out


def main(argv: list[str]) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))  # errors only
    sizes = [int(a) for a in argv] or [20, 100]
    print(f"{'gateways':>8} {'rows':>6} {'floor':>8} {'cold start':>18} {'floor 1 row':>11} "
          f"{'reaction median':>20} {'reaction p95':>18}")
    for n in sizes:
        r = run(n)
        one = r["floor_one_s"]
        print(f"{n:>8} {r['rows']:>6.0f} {r['floor_s'] * 1000:>6.1f}ms "
              f"{r['cold_s'] * 1000:>9.0f}ms {r['cold_s'] / r['floor_s']:>6.0f}x "
              f"{one * 1000:>9.1f}ms "
              f"{r['react_median_s'] * 1000:>10.1f}ms {r['react_median_s'] / one:>7.1f}x"
              f" {r['react_p95_s'] * 1000:>9.1f}ms {r['react_p95_s'] / one:>6.1f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
