"""Passive watchers for the failover benchmark. Each stamps what it sees with time.time() on
arrival, the same clock as the prober's connection start times, so one timeline holds the kill,
the SB and NB BFD status, the SB logical flows, the OpenFlow changes and the connections.

- DbWatch: `ovsdb-client --format=json monitor` of one table (it flushes every update).
- FlowPoller: `ovs-ofctl dump-flows` of the table holding the route, polled after the kill.
- BfdCapture: tcpdump of UDP 3784 in a gateway namespace (transmit gaps per direction).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import threading
import time
from collections.abc import Sequence


class _Reader:
    """A child process whose stdout lines are read, stamped and parsed in a thread."""

    def __init__(self, cmd: Sequence[str], env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env=env)
        self.lock = threading.Lock()
        self.lines = 0
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            with self.lock:
                self.lines += 1
                self.on_line(now, line.rstrip("\n"))

    def on_line(self, t: float, line: str) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._thread.join(timeout=5)


class DbWatch(_Reader):
    """Changes to `columns` of `table`. Rows are tracked by uuid (an update's "old" half holds only
    the changed columns, its "new" half the whole row); `changes` lists (t, uuid, row)."""

    def __init__(self, remote: str, db: str, table: str, columns: Sequence[str],
                 env: dict[str, str] | None = None, initial: bool = True):
        cols = ",".join([*columns, *([] if initial else ["!initial"])])
        self.rows: dict[str, dict[str, object]] = {}
        self.changes: list[tuple[float, str, dict[str, object]]] = []
        self.ready = threading.Event()
        super().__init__(["ovsdb-client", "--format=json", "monitor", remote, db, table, cols],
                         env=env)

    def on_line(self, t: float, line: str) -> None:
        try:
            update = json.loads(line)
        except ValueError:
            return
        heads = update.get("headings", [])
        uuid = ""
        for values in update.get("data", []):
            rec = dict(zip(heads, values, strict=False))
            uuid = str(rec.pop("row") or uuid)     # the "new" half repeats no uuid
            action = rec.pop("action")
            if action == "old":
                continue
            if action == "delete":
                self.rows.pop(uuid, None)
                row: dict[str, object] = {"_deleted": True}
            else:
                row = {k: _plain(v) for k, v in rec.items()}
                self.rows[uuid] = row
            self.changes.append((t, uuid, row))
        self.ready.set()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """The initial contents (or, with initial=False, nothing) have been seen: give the
        monitor a moment to register by waiting for its first output or a short grace."""
        self.ready.wait(timeout)

    def snapshot(self) -> list[tuple[float, str, dict[str, object]]]:
        with self.lock:
            return list(self.changes)


def _plain(value: object) -> object:
    """OVSDB JSON ["set", []] -> "", ["set", [a]] -> a; everything else as is."""
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        items = value[1]
        return "" if not items else items[0] if len(items) == 1 else items
    return value


def status_transitions(watch: DbWatch, key: str, value: str,
                       ) -> list[tuple[float, str]]:
    """(t, status) each time the status of the row with row[key] == value changed."""
    out: list[tuple[float, str]] = []
    by_uuid: dict[str, str] = {}
    for t, uuid, row in watch.snapshot():
        if row.get(key) != value or "status" not in row:
            continue
        status = str(row["status"])
        if by_uuid.get(uuid) != status:
            by_uuid[uuid] = status
            out.append((t, status))
    return out


class FlowPoller:
    """When ovn-controller changed the OpenFlow table that holds a route: `ovs-ofctl monitor`
    does not report ovn-controller's (bundled) flow changes, so this polls
    `ovs-ofctl dump-flows` of that one table every `interval` from start() until its flows
    differ from what they were at start(). `changed_at` is the end of the first poll that saw
    the change (an upper bound, within one poll of the truth)."""

    def __init__(self, bridge: str, needles: Sequence[str], env: dict[str, str] | None = None,
                 interval: float = 0.01):
        self.bridge, self.needles, self.env, self.interval = bridge, needles, env, interval
        self.table = ""          # found at the first start(), once the route is installed
        self.changed_at: float | None = None
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _dump(self, *match: str) -> str:
        proc = subprocess.run(["ovs-ofctl", "--no-stats", "dump-flows", self.bridge, *match],
                              capture_output=True, text=True, env=self.env, timeout=10)
        return proc.stdout

    def _find_table(self) -> str:
        for line in self._dump().splitlines():
            if all(n in line for n in self.needles) and "table=" in line:
                return line.split("table=", 1)[1].split(",", 1)[0]
        raise LookupError(f"no OpenFlow flow has all of {self.needles!r}")

    def _flows(self) -> list[str]:
        lines = self._dump(f"table={self.table}").splitlines()
        return sorted(" ".join(w for w in line.split() if not w.startswith("cookie="))
                      for line in lines if "table=" in line)

    def start(self) -> None:
        self.changed_at, self.polls = None, 0
        self._thread = None
        try:
            self.table = self.table or self._find_table()
        except LookupError:     # the route is not installed (a session is down): no reading
            return
        self._stop.clear()
        before = self._flows()

        def poll() -> None:
            while not self._stop.is_set():
                now = self._flows()
                self.polls += 1
                if now != before:
                    self.changed_at = time.time()
                    return
                time.sleep(self.interval)

        self._thread = threading.Thread(target=poll, daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        return self.changed_at


class BfdCapture(_Reader):
    """tcpdump of BFD control packets (UDP 3784) on a gateway's internal interface;
    `packets` holds (capture time, source address)."""

    def __init__(self, netns: str, ifname: str = "eth0"):
        self.packets: list[tuple[float, str]] = []
        super().__init__(["ip", "netns", "exec", netns, "tcpdump", "-l", "-n", "-tt", "-q",
                          "-i", ifname, "udp dst port 3784"])

    def on_line(self, t: float, line: str) -> None:
        parts = line.split()
        # "1795697524.618710 IP 10.255.255.255.49152 > 192.168.0.2.3784: UDP, length 24"
        if len(parts) > 3 and parts[1] in ("IP", "IP6"):
            with contextlib.suppress(ValueError):
                self.packets.append((float(parts[0]), parts[2].rsplit(".", 1)[0]))

    def packets_snapshot(self) -> list[tuple[float, str]]:
        with self.lock:
            return list(self.packets)

    def gaps_ms(self, source: str, since: float = 0.0, until: float = float("inf"),
                ) -> list[float]:
        with self.lock:
            times = [t for t, src in self.packets if src == source and since <= t <= until]
        return [(b - a) * 1000 for a, b in itertools.pairwise(times)]
