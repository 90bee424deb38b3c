"""Start and stop a private OVN control plane (NB + SB ovsdb-server, ovn-northd) in a directory.

Everything lives under one directory: databases, sockets, logs, pidfiles. Daemons are stopped by
the pid they wrote, never by name. The recipe and its pitfalls are in
shared/reference/local-ovn-stack.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

NB_SCHEMA = os.environ.get("VEGD_NB_SCHEMA", "/usr/share/ovn/ovn-nb.ovsschema")
SB_SCHEMA = os.environ.get("VEGD_SB_SCHEMA", "/usr/share/ovn/ovn-sb.ovsschema")


def have_ovn() -> bool:
    return all(shutil.which(b) for b in ("ovsdb-server", "ovsdb-tool", "ovn-northd", "ovn-nbctl"))


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02,
             what: str = "condition") -> object:
    """Poll until predicate() is truthy; return its value or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def alive(pid: int) -> bool:
    """True while any thread of pid runs. A reaped-late zombie (PID 1 here is not init) counts
    as dead; a zombie leader whose other threads are still exiting does not (a multi-threaded
    daemon after SIGKILL: its files, the pidfile's lock among them, go with its last thread)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except (FileNotFoundError, ProcessLookupError):
        return False
    for task in tasks:
        try:
            stat = Path(f"/proc/{pid}/task/{task}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X"):
            return True
    return False


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_for(lambda: not alive(pid), timeout, what=f"pid {pid} to exit")
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class OvnStack:
    """NB and SB ovsdb-servers (unix socket + an ephemeral loopback TCP port) and ovn-northd."""

    def __init__(self, directory: Path, nb_schema: str = NB_SCHEMA, northd: bool = True):
        self.dir = Path(directory)
        self.nb_schema = nb_schema
        self.with_northd = northd
        self.env = dict(os.environ)
        for var in ("OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVS_SYSCONFDIR",
                    "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR", "OVN_SYSCONFDIR"):
            self.env[var] = str(self.dir)
        self.nb_tcp = self.sb_tcp = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> OvnStack:
        self.dir.mkdir(parents=True, exist_ok=True)
        for name, schema in (("nb", self.nb_schema), ("sb", SB_SCHEMA)):
            self._run("ovsdb-tool", "create", str(self.dir / f"{name}.db"), schema)
            self._run("ovsdb-server", str(self.dir / f"{name}.db"), "--detach", "--no-chdir",
                      "-vconsole:off", f"--pidfile={self.dir}/{name}.pid",
                      f"--log-file={self.dir}/{name}.log", f"--unixctl={self.dir}/{name}.ctl",
                      f"--remote=punix:{self.dir}/{name}.sock", "--remote=ptcp:0:127.0.0.1")
        self.nb_tcp = self._listen_port("nb")
        self.sb_tcp = self._listen_port("sb")
        if self.with_northd:
            self.start_northd()
        return self

    def start_northd(self) -> None:
        self._run("ovn-northd", "--detach", "--no-chdir", "-vconsole:off",
                  f"--pidfile={self.dir}/northd.pid", f"--log-file={self.dir}/northd.log",
                  f"--unixctl={self.dir}/northd.ctl", f"--ovnnb-db={self.nb_unix}",
                  f"--ovnsb-db={self.sb_unix}")

    def stop(self) -> None:
        for pidfile in sorted(self.dir.glob("*.pid")):
            try:
                pid = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
            stop_pid(pid)

    def pid(self, name: str) -> int:
        return int((self.dir / f"{name}.pid").read_text().strip())

    # -- addresses ---------------------------------------------------------------------------
    @property
    def nb_unix(self) -> str:
        return f"unix:{self.dir}/nb.sock"

    @property
    def sb_unix(self) -> str:
        return f"unix:{self.dir}/sb.sock"

    @property
    def nb_tcp_remote(self) -> str:
        return f"tcp:127.0.0.1:{self.nb_tcp}"

    @property
    def sb_tcp_remote(self) -> str:
        return f"tcp:127.0.0.1:{self.sb_tcp}"

    # -- tools -------------------------------------------------------------------------------
    def nbctl(self, *args: str, check: bool = True) -> str:
        return self._run("ovn-nbctl", f"--db={self.nb_unix}", *args, check=check)

    def sbctl(self, *args: str, check: bool = True) -> str:
        return self._run("ovn-sbctl", f"--db={self.sb_unix}", *args, check=check)

    def sync(self) -> None:
        """Return once northd has turned the current NB contents into SB flows."""
        self.nbctl("--timeout=10", "--wait=sb", "sync")

    def trace(self, datapath: str, microflow: str, *opts: str) -> str:
        return self._run("ovn-trace", f"--db={self.sb_unix}", *opts, datapath, microflow)

    def lflows(self, datapath: str) -> str:
        return self.sbctl("lflow-list", datapath)

    def appctl(self, target: str, *args: str) -> str:
        return self._run("ovs-appctl", "-t", str(self.dir / f"{target}.ctl"), *args)

    def nb_rows(self, table: str, *conditions: str) -> list[dict[str, str]]:
        """Rows of table as {column: ovn-nbctl text value}."""
        out = self.nbctl("--format=list", "--data=bare", "find", table, *conditions)
        return _parse_list(out)

    # -- internals ---------------------------------------------------------------------------
    def _run(self, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def _listen_port(self, name: str) -> int:
        log = self.dir / f"{name}.log"

        def port() -> int:
            text = log.read_text() if log.exists() else ""
            match = re.findall(r": listening on port (\d+)", text)
            return int(match[-1]) if match else 0

        return int(wait_for(port, 5.0, what=f"{name} TCP listener"))  # type: ignore[arg-type]


def _parse_list(text: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                rows.append(current)
                current = {}
            continue
        key, _, value = line.partition(":")
        current[key.strip()] = value.strip()
    if current:
        rows.append(current)
    return rows
