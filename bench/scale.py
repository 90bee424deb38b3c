"""vegd at cluster scale, against floors measured in the same run (docs/performance.md "Scale").

A generated cluster (bench/scalegen.py: VPCs, gateways with replicas and SNAT ipBlocks, selected
pods) is written once as a manifest file and, for `vegd run`, loaded into the test Kubernetes API
server running in its own process. Every figure is printed next to its floor:

- input floor: libyaml parsing the same manifest file (`vegd apply`); for `vegd run`, raw HTTP
  GETs of the same list endpoints from the same API server plus `json.loads` of the bodies;
- NB write floor: exactly the rows vegd wrote, read back and inserted into a fresh NB with the
  same base topology as ONE prepared `transact` request over the socket;
- NB read floor: one `monitor` request of every table vegd replicates, all columns;
- Kubernetes write floor (`vegd run`'s first start): the requests that make the objects vegd
  wrote (finalizers, statuses, Deployments, ConfigMaps, Events), sent raw to a fresh API server
  loaded with the same cluster (bench/scale_kubewrites.py).

Scenarios: `apply` (cold, then no-op), `run` (first start on an empty NB; restart with NB,
Deployments and statuses converged), `churn` (pod create/relabel/delete at given rates, latency
from the API server's watch event to the NB commit seen by a separate monitor). Peak RSS of the
vegd process for each.

    python bench/scale.py [--gateways 10,100,1000] [--pods 20000] [--replicas 3]
        [--ip-blocks 2] [--vpcs 10] [--bfd off|on|both] [--dual-stack]
        [--scenarios apply,run,churn] [--rates 200,1000] [--churn-clients 8]
        [--json FILE] [--plot PNG]

SCALE_PROFILE_DIR=DIR records py-spy profiles of vegd (`run`: to NB converged and to ready;
`churn`: while it takes each rate); SCALE_LOG_DIR=DIR keeps vegd's logs there.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "bench")]

import yaml  # noqa: E402
from ovnstack import OvnStack  # noqa: E402
from ovsraw import Rpc, owned_rows_as_inserts, timed_monitor, timed_transact  # noqa: E402
from scalegen import Shape, base_topology, cluster  # noqa: E402

# The tables vegd replicates and owns rows in (vegd/nb/client.py NB_TABLES).
NB_TABLES = ["Logical_Router", "Logical_Router_Port", "Logical_Router_Policy",
             "Logical_Router_Static_Route", "BFD", "Address_Set", "HA_Chassis_Group",
             "HA_Chassis", "Logical_Switch", "Logical_Switch_Port"]
OWNED = [t for t in NB_TABLES if t != "Logical_Router"]
VEGD = [sys.executable, "-m", "vegd"]


def write_manifest(shape: Shape, path: Path) -> int:
    objs = cluster(shape)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    with path.open("w") as f:
        yaml.dump_all(objs, f, Dumper=dumper, sort_keys=False)
    return len(objs)


def new_nb(directory: Path, shape: Shape) -> OvnStack:
    stack = OvnStack(directory, northd=False).start()
    rpc = Rpc(stack.nb_unix)
    try:
        rpc.transact(base_topology(shape))
    finally:
        rpc.close()
    return stack


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stdout) of one process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: "
                               f"{err.read().decode()[-2000:]}")
        return elapsed, usage.ru_maxrss // 1024, out.read().decode()


def libyaml_floor(path: Path) -> float:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    start = time.perf_counter()
    with path.open() as f:
        docs = list(yaml.load_all(f, Loader=loader))
    elapsed = time.perf_counter() - start
    assert docs
    return elapsed


def write_floor(source: OvnStack, shape: Shape, directory: Path) -> tuple[float, int]:
    """The rows vegd wrote, as one prepared transact into a fresh NB with the same base."""
    ops = owned_rows_as_inserts(source.nb_unix, "vegd", OWNED)
    fresh = new_nb(directory, shape)
    try:
        return timed_transact(fresh.nb_unix, ops), sum(1 for o in ops if o["op"] == "insert")
    finally:
        fresh.stop()


def scenario_apply(shape: Shape, work: Path) -> dict[str, Any]:
    manifest = work / "cluster.yaml"
    objects = write_manifest(shape, manifest)
    out: dict[str, Any] = {"objects": objects}
    stack = new_nb(work / "nb", shape)
    try:
        cmd = [*VEGD, "apply", "-f", str(manifest), "--nb-connection", stack.nb_unix,
               "--output", "json", "--timeout", "900"]
        cold, rss_cold, text = run_measured(cmd)
        doc = json.loads(text)
        out.update(cold_s=cold, cold_rss_mb=rss_cold, cold_transactions=doc["transactions"])
        noop, rss_noop, text = run_measured(cmd)
        doc = json.loads(text)
        out.update(noop_s=noop, noop_rss_mb=rss_noop, noop_transactions=doc["transactions"])
        out["input_floor_s"] = min(libyaml_floor(manifest) for _ in range(2))
        out["read_floor_s"], out["nb_rows"] = min(timed_monitor(stack.nb_unix, NB_TABLES)
                                                  for _ in range(3))
        out["write_floor_s"], out["rows_written"] = write_floor(stack, shape, work / "fresh")
    finally:
        stack.stop()
    out["cold_ratio"] = out["cold_s"] / (out["input_floor_s"] + out["write_floor_s"])
    out["noop_ratio"] = out["noop_s"] / (out["input_floor_s"] + out["read_floor_s"])
    return out


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def report_apply(shape: Shape, r: dict[str, Any]) -> None:
    print(f"vegd apply, {shape.label()}: {r['objects']} objects, {r['rows_written']} rows")
    print(f"  floors: libyaml {_fmt(r['input_floor_s'])}, write {_fmt(r['write_floor_s'])} "
          f"(one transact), read {_fmt(r['read_floor_s'])} ({r['nb_rows']} rows, one monitor)")
    print(f"  cold   {_fmt(r['cold_s']):>9}  {r['cold_ratio']:5.2f}x (input+write)  "
          f"{r['cold_transactions']} txn  peak RSS {r['cold_rss_mb']} MB")
    print(f"  no-op  {_fmt(r['noop_s']):>9}  {r['noop_ratio']:5.2f}x (input+read)   "
          f"{r['noop_transactions']} txn  peak RSS {r['noop_rss_mb']} MB")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gateways", default="10,100,1000")
    p.add_argument("--pods", type=int, default=20000)
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--ip-blocks", type=int, default=2)
    p.add_argument("--vpcs", type=int, default=10)
    p.add_argument("--bfd", choices=("off", "on", "both"), default="off")
    p.add_argument("--dual-stack", action="store_true")
    p.add_argument("--scenarios", default="apply")
    p.add_argument("--rates", default="200,1000")
    p.add_argument("--churn-clients", type=int, default=8,
                   help="connections writing the churn in parallel (each paced at rate/N)")
    p.add_argument("--json", default="")
    p.add_argument("--plot", default="")
    args = p.parse_args(argv)
    # vegd's bytecode, as an installed vegd has it (pip, the image and packages compile it):
    # an editable install under PYTHONDONTWRITEBYTECODE would compile every module from source
    # at each start (0.1 s of vegd run's start-up here)
    compileall.compile_dir(str(ROOT / "vegd"), quiet=1)
    results: list[dict[str, Any]] = []
    bfds = {"off": [False], "on": [True], "both": [False, True]}[args.bfd]
    scenarios = args.scenarios.split(",")
    for bfd in bfds:
        for gateways in (int(g) for g in args.gateways.split(",")):
            shape = Shape(gateways=gateways, replicas=args.replicas, ip_blocks=args.ip_blocks,
                          pods=args.pods if gateways >= 1000 else args.pods * gateways // 1000,
                          bfd=bfd, dual_stack=args.dual_stack,
                          vpcs=min(args.vpcs, gateways))
            with tempfile.TemporaryDirectory(prefix="vegd-scale-") as d:
                entry: dict[str, Any] = {"shape": vars(replace(shape))}
                if "apply" in scenarios:
                    entry["apply"] = scenario_apply(shape, Path(d))
                    report_apply(shape, entry["apply"])
                if "run" in scenarios or "churn" in scenarios:
                    from scale_run import report_run, scenario_run

                    entry["run"] = scenario_run(shape, Path(d), scenarios,
                                                [int(x) for x in args.rates.split(",")],
                                                args.churn_clients)
                    report_run(shape, entry["run"])
                results.append(entry)
                sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        from scale_plot import plot

        plot(results, Path(args.plot))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
