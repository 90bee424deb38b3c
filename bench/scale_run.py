"""`vegd run` at scale (bench/scale.py --scenarios run,churn): first start on an empty NB, restart
with everything converged, pod churn. The test API server runs in its own process, loaded with the
generated cluster before vegd starts, so neither its cost nor its GIL is in vegd's figures.

Floors, in the same run: the input floor is a raw HTTP GET of every list vegd reads, from the same
API server, plus `json.loads` of the bodies; the NB floors are those of bench/scale.py; the
Kubernetes write floor of the first start is bench/scale_kubewrites.py's.
Latency of churn: from the API server's answer to the write (it sends the watch event before it
answers) to the commit of the address-set change seen by the bench's own NB monitor.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from ovsraw import Rpc, timed_monitor  # noqa: E402
from scale import NB_TABLES, new_nb, write_floor  # noqa: E402
from scale_kubewrites import send_raw, vegd_writes  # noqa: E402
from scalegen import Shape, cluster, pod  # noqa: E402

LISTS = ["/apis/kubeovn.io/v1/vpc-egress-gateways", "/apis/kubeovn.io/v1/vpcs",
         "/apis/kubeovn.io/v1/subnets", "/api/v1/pods", "/api/v1/namespaces", "/api/v1/nodes",
         "/apis/apps/v1/deployments?labelSelector=ovn.kubernetes.io%2Fvpc-egress-gateway",
         "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions"]


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


def wait_file(path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text()
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear")


def input_floor(port: int) -> tuple[float, int]:
    """Seconds to GET every list vegd reads and decode it; objects returned."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    count = 0
    for path in LISTS:
        conn.request("GET", path)
        body = conn.getresponse().read()
        count += len(json.loads(body).get("items", []))
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, count


def resource_version(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/v1/namespaces?limit=1")
    rv = int(json.loads(conn.getresponse().read())["metadata"]["resourceVersion"])
    conn.close()
    return rv


def owned_rows(nb: str) -> int:
    rpc = Rpc(nb)
    try:
        where = [["external_ids", "includes", ["map", [["vendor", "vegd"]]]]]
        ops = [{"op": "select", "table": t, "where": where, "columns": ["_uuid"]}
               for t in NB_TABLES if t != "Logical_Router"]
        return sum(len(r["rows"]) for r in rpc.transact(ops))
    finally:
        rpc.close()


def expected_rows(objs: list[dict[str, Any]]) -> int:
    """The rows vegd will own, counted from the same plan (HA chassis and switch ports too)."""
    from vegd import engine
    from vegd.model.snapshot import snapshot_from_objects
    from vegd.plan.rows import HaChassisGroup, Switch
    from vegd.plan.settings import PlanSettings

    snap = snapshot_from_objects(objs)
    checked = engine.validate(snap)
    total = 0
    for plan in engine.plan_all(snap, checked.resolved, PlanSettings()):
        for row in plan.rows:
            total += 1 + (len(row.chassis) if isinstance(row, HaChassisGroup) else 0) \
                + (len(row.router_ports) if isinstance(row, Switch) else 0)
    return total


class Converged(threading.Thread):
    """When NB first holds every expected row of vegd's, and vegd's CPU seconds by then."""

    def __init__(self, nb: str, expected: int, pid: int) -> None:
        super().__init__(daemon=True)
        self.nb, self.expected, self.pid = nb, expected, pid
        self.at = self.cpu = float("nan")

    def run(self) -> None:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if owned_rows(self.nb) >= self.expected:
                self.at = time.perf_counter()
                self.cpu = cpu_seconds(self.pid)
                return
            time.sleep(0.05)


class Monitor(threading.Thread):
    """The bench's own NB monitor: counts update notifications (one per committed transaction
    that touches the monitored tables) and timestamps every address-set member as it comes
    and goes."""

    def __init__(self, nb: str) -> None:
        super().__init__(daemon=True)
        self.rpc = Rpc(nb)
        self.rpc_path = nb
        self.updates = 0
        self.last_update = 0.0
        self.added: dict[str, float] = {}
        self.removed: dict[str, float] = {}
        self.ready = threading.Event()
        self._stop = False

    def run(self) -> None:
        tables = {t: {"columns": ["addresses"] if t == "Address_Set" else ["external_ids"]}
                  for t in ("Address_Set", "Logical_Router_Policy", "BFD",
                            "Logical_Router_Static_Route")}
        self.rpc.sock.sendall(self.rpc.request("monitor", ["OVN_Northbound", "bench", tables]))
        self.rpc._read()  # the initial contents
        self.ready.set()
        self.rpc.sock.settimeout(0.5)
        while not self._stop:
            try:
                msg = self.rpc._read()
            except TimeoutError:
                continue
            except (OSError, ConnectionError):
                return
            if msg.get("method") == "echo":
                self.rpc.sock.sendall(json.dumps({"id": msg["id"], "result": msg["params"],
                                                  "error": None}).encode())
                continue
            if msg.get("method") != "update":
                continue
            now = time.perf_counter()
            self.updates += 1
            self.last_update = now
            for row in msg["params"][1].get("Address_Set", {}).values():
                new = _addresses(row.get("new"))
                old = _addresses(row.get("old")) if "old" in row else set()
                if "old" in row and "addresses" not in row["old"]:
                    continue
                for ip in new - old:
                    self.added.setdefault(ip, now)
                for ip in old - new:
                    self.removed.setdefault(ip, now)

    def stop(self) -> None:
        self._stop = True
        self.rpc.close()


def _addresses(row: Any) -> set[str]:
    if not row or "addresses" not in row:
        return set()
    value = row["addresses"]
    if isinstance(value, list) and value and value[0] == "set":
        return set(value[1])
    return {value} if isinstance(value, str) else set()


def start_vegd(procs: Procs, work: Path, port: int, nb: str, tag: str
               ) -> tuple[subprocess.Popen[bytes], Path]:
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "b",
        "clusters": [{"name": "b", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "b", "user": {}}],
        "contexts": [{"name": "b", "context": {"cluster": "b", "user": "b"}}]}))
    log = Path(os.environ.get("SCALE_LOG_DIR") or work) / f"vegd-{tag}.log"
    env = {**os.environ, "VEGD_LOG_FORMAT": "json", "VEGD_RESYNC_PERIOD": "3600",
           "VEGD_HEALTH_PORT": "0", "VEGD_GATEWAY_IMAGE": "vegd:bench",
           "VEGD_NB_CONNECTION": nb, "KUBECONFIG": str(kubeconfig)}
    env.pop("OVN_NB_DB", None)
    proc = procs.start([sys.executable, "-m", "vegd", "run"], env=env,
                       stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    return proc, log


def wait_log(log: Path, event: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """perf_counter time when `event` appeared in vegd's JSON log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vegd exited {proc.returncode}: {log.read_text()[-2000:]}")
        if event in log.read_text():
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"vegd did not log {event!r} in {timeout} s")


def start_profile(pid: int, tag: str) -> subprocess.Popen[bytes] | None:
    """SCALE_PROFILE_DIR=DIR: py-spy --gil (vegd's CPU) on vegd from its start."""
    if not os.environ.get("SCALE_PROFILE_DIR"):
        return None
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--gil", "--format", "raw", "--rate", "200",
         "--output", str(Path(os.environ["SCALE_PROFILE_DIR"]) / f"vegd-{tag}.txt")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profile(profiler: subprocess.Popen[bytes] | None) -> None:
    if profiler is not None:
        profiler.send_signal(signal.SIGINT)
        profiler.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far: on a shared machine a steadier comparison
    between runs than wall time, which grows with the others' load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[int, int, int]:
    """(busy, stolen, all) jiffies of every CPU so far, from /proc/stat: stolen is the time the
    hypervisor gave this VM's CPUs to others (a noisy neighbour), not counted as busy."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle, steal = fields[3] + fields[4], fields[7]  # idle + iowait; steal
    return sum(fields) - idle - steal, steal, sum(fields)


def peak_rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return 0


def scenario_run(shape: Shape, work: Path, scenarios: list[str], rates: list[int],
                 clients: int = 8) -> dict[str, Any]:
    out: dict[str, Any] = {}
    objs = cluster(shape)
    objects = work / "cluster.json"
    objects.write_text(json.dumps(objs))
    procs = Procs()
    stack = new_nb(work / "nb-run", shape)
    try:
        sent_log = work / "watch-events-sent.log"
        _, port = start_kubeapi(procs, work, objects, "main", sent_log)
        out["input_floor_s"], out["listed"] = min(input_floor(port) for _ in range(2))

        # first start on an empty NB: NB converged (every row there), then ready (statuses)
        expected = expected_rows(objs)
        rv_loaded = resource_version(port)
        t0 = time.perf_counter()
        vegd, log = start_vegd(procs, work, port, stack.nb_unix, "first")
        profiler = start_profile(vegd.pid, "first")
        converged = Converged(stack.nb_unix, expected, vegd.pid)
        converged.start()
        converged.join(600)
        stop_profile(profiler)
        ready = wait_log(log, "full resync completed", vegd, 1800)
        out["first_nb_s"] = converged.at - t0
        out["first_nb_cpu_s"] = converged.cpu
        out["first_ready_s"] = ready - t0
        out["first_kube_writes"] = resource_version(port) - rv_loaded
        out["first_rows"] = owned_rows(stack.nb_unix)
        out["first_rss_mb"] = peak_rss_mb(vegd.pid)
        out["write_floor_s"], _ = write_floor(stack, shape, work / "fresh-run")
        out["read_floor_s"], _ = min(timed_monitor(stack.nb_unix, NB_TABLES) for _ in range(3))
        procs.stop(vegd)

        # restart with NB, Deployments and statuses converged
        monitor = Monitor(stack.nb_unix)
        monitor.start()
        monitor.ready.wait(30)
        rv = resource_version(port)
        t0 = time.perf_counter()
        vegd, log = start_vegd(procs, work, port, stack.nb_unix, "restart")
        profiler = start_profile(vegd.pid, "restart")
        ready = wait_log(log, "full resync completed", vegd, 1800)
        stop_profile(profiler)
        out["restart_ready_s"] = ready - t0
        out["restart_cpu_s"] = cpu_seconds(vegd.pid)
        out["restart_nb_writes"] = monitor.updates
        out["restart_kube_writes"] = resource_version(port) - rv
        out["restart_rss_mb"] = peak_rss_mb(vegd.pid)
        if "churn" in scenarios:
            out["churn"] = [churn(shape, port, monitor, rate, vegd.pid, log, sent_log,
                                  clients=clients) for rate in rates]
        out["rss_mb"] = peak_rss_mb(vegd.pid)
        monitor.stop()
        procs.stop(vegd)
        # what the first start made, as requests (vegd wrote nothing to Kubernetes since): read
        # only now, so that the server's garbage from reading it back is not collected during
        # the restart and the churn
        writes = vegd_writes(port)
        out["kube_write_requests"] = len(writes)
        out["kube_write_floor_s"] = raw_writes_floor(procs, work, objects, writes)
    finally:
        procs.stop_all()
        stack.stop()
    out["first_ratio"] = out["first_nb_s"] / (out["input_floor_s"] + out["write_floor_s"])
    out["restart_ratio"] = out["restart_ready_s"] / (out["input_floor_s"] + out["read_floor_s"])
    out["first_ready_ratio"] = out["first_ready_s"] / (
        out["input_floor_s"] + out["write_floor_s"] + out["kube_write_floor_s"])
    return out


def start_kubeapi(procs: Procs, work: Path, objects: Path, tag: str,
                  sent_log: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """The test API server in its own process, loaded with the cluster; it and its port.
    `sent_log`: where it notes when each watch event went out."""
    port_file = work / f"kubeapi-{tag}.port"
    extra = ["--sent-log", str(sent_log)] if sent_log is not None else []
    proc = procs.start([sys.executable, "-m", "kubeapi", "--port-file", str(port_file),
                 "--crd", str(ROOT / "deploy/crds/vpc-egress-gateway.yaml"),
                 "--load", str(objects), *extra],
                env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
                stdout=subprocess.DEVNULL)
    return proc, int(wait_file(port_file, 1200))


def raw_writes_floor(procs: Procs, work: Path, objects: Path, writes: list[Any]) -> float:
    """vegd's first-start Kubernetes writes sent raw to a fresh server with the same cluster."""
    server, port = start_kubeapi(procs, work, objects, "raw-writes")
    try:
        return send_raw(port, writes)
    finally:
        procs.stop(server)


_POD_SERIAL = itertools.count()


class ChurnClient(threading.Thread):
    """One keep-alive connection writing its share of the churn at `rate` events/s: pods
    created (POST, then PUT /status: 2 events), relabelled out of their selector (PATCH) and
    deleted (DELETE). Each client relabels and deletes only pods it made, so the writes to one
    pod stay in order; several clients let the offered rate exceed one connection's round trip."""

    def __init__(self, shape: Shape, port: int, index: int, clients: int, rate: float,
                 events: int, start: float) -> None:
        super().__init__(daemon=True)
        self.shape, self.port, self.index, self.clients = shape, port, index, clients
        self.rate, self.events, self.start_at = rate, events, start
        self.added: dict[str, float] = {}  # ip -> when the API server had the selected, running pod
        self.removed: dict[str, float] = {}  # ip -> when it had it relabelled away or deleted
        self.rv: dict[tuple[str, str], int] = {}  # ("added" | "removed", ip) -> that write's rv
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._churn()
        except BaseException as e:  # reported by churn()
            self.error = e

    def _churn(self) -> None:
        shape = self.shape
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        made: list[tuple[str, str, str]] = []  # (namespace, name, ip), selected
        step = 0
        while self.sent < self.events:
            due = self.start_at + self.sent / self.rate
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            g = (step * self.clients + self.index) % shape.gateways
            v = g % shape.vpcs
            if step % 3 == 0 or len(made) < 2:  # create a selected pod
                i = next(_POD_SERIAL)  # pod names and addresses are never reused across runs
                ip = f"10.{v}.{200 + (i // 250) % 50}.{i % 250 + 1}"
                obj = pod(f"ns{g}", f"churn-{i}", f"node{i % shape.nodes}", [ip], f"sub{v}",
                          {"app": "sel"})
                stored = json.loads(_request(conn, "POST", f"/api/v1/namespaces/ns{g}/pods", {
                    k: obj[k] for k in ("apiVersion", "kind", "metadata", "spec")}))
                answer = _request(conn, "PUT", f"/api/v1/namespaces/ns{g}/pods/churn-{i}/status",
                                  {**stored, "status": obj["status"]})
                self.added[ip] = time.perf_counter()
                self.rv["added", ip] = _rv(answer)
                made.append((f"ns{g}", f"churn-{i}", ip))
                self.sent += 2
            elif step % 3 == 1:  # relabel one from the middle out of its selector
                ns, name, ip = made.pop(len(made) // 2)
                answer = _request(conn, "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}",
                                  {"metadata": {"labels": {"app": "other"}}},
                                  ctype="application/merge-patch+json")
                self.removed[ip] = time.perf_counter()
                self.rv["removed", ip] = _rv(answer)
                self.sent += 1
            else:  # delete the oldest selected one
                ns, name, ip = made.pop(0)
                answer = _request(conn, "DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", None)
                self.removed[ip] = time.perf_counter()
                self.rv["removed", ip] = _rv(answer)  # pods: the deleted object, its last rv
                self.sent += 1
            step += 1
        conn.close()


def churn(shape: Shape, port: int, monitor: Monitor, rate: int, pid: int, log: Path,
          sent_log: Path, seconds: float = 5.0, clients: int = 8) -> dict[str, Any]:
    """Pods created, relabelled out of their gateway's selector, and deleted, at `rate` events
    per second in all, by `clients` connections; latency to the NB commit of the address change,
    seen by the bench's monitor, from when the API server sent the write's watch event on
    vegd's stream (`sent_log`), and from the write's answer (the server queues the event before
    it answers, another of its threads sends it: with its cores busy, after). The rate actually
    offered is measured and reported, and NB
    transactions are counted against vegd's batches that changed something (its "reconciled"
    info lines: one per batch of keys worked on together)."""
    n = int(rate * seconds)
    updates0 = monitor.updates
    log_at = log.stat().st_size
    rv0 = resource_version(port)
    cpu0, busy0 = cpu_seconds(pid), machine_busy()
    start = time.perf_counter() + 0.05
    workers = [ChurnClient(shape, port, k, clients, rate / clients, n // clients, start)
               for k in range(clients)]
    profiler = None
    if os.environ.get("SCALE_PROFILE_DIR"):  # py-spy on vegd while it takes the churn
        profiler = subprocess.Popen(
            ["py-spy", "record", "--pid", str(pid), "--gil", "--format", "raw", "--rate", "100",
             "--duration", str(int(seconds) + 2),
             "--output", str(Path(os.environ["SCALE_PROFILE_DIR"]) / f"vegd-churn-{rate}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if profiler is not None:
        profiler.wait()
    for w in workers:
        if w.error is not None:
            raise w.error
    sent = sum(w.sent for w in workers)
    offered = sent / (time.perf_counter() - start)
    # while the churn was written: vegd's CPU per event, and how busy the whole machine was
    # (the API server, the bench's clients, ovsdb-server and vegd share its cores)
    busy = machine_busy()
    elapsed_jiffies = max(1, busy[2] - busy0[2])
    busy_share = (busy[0] - busy0[0]) / elapsed_jiffies
    steal_share = (busy[1] - busy0[1]) / elapsed_jiffies
    added = {ip: t for w in workers for ip, t in w.added.items()}
    removed = {ip: t for w in workers for ip, t in w.removed.items()}

    def pending() -> int:
        """Changes NB has still to show. A pod deleted or relabelled before vegd committed its
        address never reaches NB (its events coalesced): not waited for."""
        return (sum(ip not in monitor.added for ip in added if ip not in removed)
                + sum(ip not in monitor.removed for ip in removed if ip in monitor.added))

    deadline = time.monotonic() + 30
    while True:
        if not pending() or time.monotonic() > deadline:
            missing, extra = _nb_differs(port, monitor.rpc_path)
            if (missing, extra) == (0, 0) or time.monotonic() > deadline:
                break
        time.sleep(0.05)
    cpu = cpu_seconds(pid) - cpu0  # to the last change: the events' whole cost
    # NB transactions per second over the churn's working time: to the last commit seen
    elapsed = max(monitor.last_update, start + sent / rate) - start
    rvs = {key: rv for w in workers for key, rv in w.rv.items()}
    sent_at = _sent_times(sent_log)
    latencies: list[float] = []  # from the write's answer
    from_event: list[float] = []  # from its watch event sent
    for how, written, seen in (("added", added, monitor.added),
                               ("removed", removed, monitor.removed)):
        for ip, t in written.items():
            if ip in seen:
                latencies.append(seen[ip] - t)
                if (at := sent_at.get(rvs.get((how, ip), -1))) is not None:
                    from_event.append(seen[ip] - at)
    latencies.sort()
    from_event.sort()
    kube_writes = resource_version(port) - rv0 - sent  # each churn write is one resourceVersion
    with log.open("rb") as f:
        f.seek(log_at)
        batches = sum(1 for line in f if b'"event": "reconciled"' in line)
    result = {"rate": rate, "clients": clients, "offered_per_s": round(offered, 1),
              "events": sent, "measured": len(latencies), "changes": len(added) + len(removed),
              "coalesced": sum(ip not in monitor.added for ip in removed),
              "pending": pending(),
              "nb_txn_per_s": round((monitor.updates - updates0) / elapsed, 1),
              "nb_txns": monitor.updates - updates0, "batches": batches,
              "kube_writes": kube_writes,
              "vegd_cpu_ms_per_event": round(1000 * cpu / max(1, sent), 2),
              "machine_busy_pct": round(100 * busy_share),
              "machine_steal_pct": round(100 * steal_share),
              "nb_missing": missing, "nb_extra": extra, "rss_mb": peak_rss_mb(pid)}
    for prefix, values in (("", latencies), ("event_", from_event)):
        if values:
            result[f"{prefix}p50_ms"] = round(statistics.median(values) * 1000, 1)
            result[f"{prefix}p99_ms"] = round(values[min(len(values) - 1,
                                                         int(len(values) * 0.99))] * 1000, 1)
    result["event_measured"] = len(from_event)
    return result


def _nb_differs(port: int, nb: str) -> tuple[int, int]:
    """Selected pod addresses the API server has that NB's address sets lack, and the other way
    round, once churn has settled: did vegd converge?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", "/api/v1/pods?labelSelector=app%3Dsel")
    pods = json.loads(conn.getresponse().read())["items"]
    conn.close()
    want = {p["ip"] for o in pods for p in (o.get("status") or {}).get("podIPs") or []
            if (o.get("status") or {}).get("phase") == "Running"
            and not o["metadata"].get("deletionTimestamp")}
    rpc = Rpc(nb)
    try:
        rows = rpc.transact([{"op": "select", "table": "Address_Set", "where": [],
                              "columns": ["name", "addresses"]}])[0]["rows"]
    finally:
        rpc.close()
    have = {a for r in rows if r["name"].startswith("VEG.") for a in _addresses(r)}
    return len(want - have), len(have - want)


def _rv(answer: bytes) -> int:
    return int(json.loads(answer)["metadata"]["resourceVersion"])


def _sent_times(sent_log: Path) -> dict[int, float]:
    """resourceVersion -> when the API server first sent a Pod watch event of it."""
    out: dict[int, float] = {}
    for line in sent_log.read_text().splitlines():
        at, kind, rv = line.split()
        if kind == "Pod":
            out.setdefault(int(rv), float(at))
    return out


def _request(conn: http.client.HTTPConnection, method: str, path: str, body: Any,
             ctype: str = "application/json") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": ctype})
    resp = conn.getresponse()
    payload = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
    return payload


def report_run(shape: Shape, r: dict[str, Any]) -> None:
    fmt = _fmt
    print(f"vegd run, {shape.label()}: listed {r['listed']} objects, "
          f"{r['first_rows']} rows written")
    print(f"  floors: lists+json {fmt(r['input_floor_s'])}, write {fmt(r['write_floor_s'])}, "
          f"read {fmt(r['read_floor_s'])}")
    print(f"  first start  NB converged {fmt(r['first_nb_s']):>9}  {r['first_ratio']:5.2f}x "
          f"(input+write), vegd CPU {fmt(r['first_nb_cpu_s'])}; ready (statuses, Deployments) "
          f"{fmt(r['first_ready_s'])}  peak RSS {r['first_rss_mb']} MB")
    if "kube_write_floor_s" in r:
        print(f"  first start  Kubernetes writes: {r['first_kube_writes']} by vegd, done at "
              f"ready; the {r['kube_write_requests']} requests that make the same objects, "
              f"sent raw: {fmt(r['kube_write_floor_s'])}; ready {r['first_ready_ratio']:5.2f}x "
              f"(input+write+raw Kubernetes writes)")
    print(f"  restart      {fmt(r['restart_ready_s']):>9}  {r['restart_ratio']:5.2f}x "
          f"(input+read), vegd CPU {fmt(r['restart_cpu_s'])}  NB writes "
          f"{r['restart_nb_writes']}, Kubernetes writes "
          f"{r['restart_kube_writes']}  peak RSS {r['restart_rss_mb']} MB")
    for c in r.get("churn", []):
        print(f"  churn {c['rate']:>5}/s (offered {c['offered_per_s']}/s, {c['events']} events, "
              f"{c['measured']} of {c['changes']} NB changes measured, {c['coalesced']} pods "
              f"gone before their address was committed, {c['pending']} never seen):\n"
              f"    from the watch event sent ({c['event_measured']}): p50 "
              f"{c.get('event_p50_ms', '-')} ms, p99 {c.get('event_p99_ms', '-')} ms; "
              f"from the write's answer: p50 {c.get('p50_ms', '-')} ms, p99 "
              f"{c.get('p99_ms', '-')} ms;\n"
              f"    {c['nb_txn_per_s']} NB txn/s ({c['nb_txns']} txns for "
              f"{c['batches']} batches), {c['kube_writes']} Kubernetes writes by vegd, "
              f"RSS {c['rss_mb']} MB, vegd CPU {c['vegd_cpu_ms_per_event']} ms/event, "
              f"machine {c['machine_busy_pct']}% busy, {c['machine_steal_pct']}% stolen; "
              f"after: NB lacks {c['nb_missing']}, has {c['nb_extra']} extra")


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
