"""FRR bfdd: render its configuration, run and supervise it, read its session state.

bfdd runs as a child of the agent in the foreground (no -d), so the agent reaps it and notices at
once when it dies; a daemonised bfdd would be re-parented to PID 1 and, where PID 1 is not an init,
linger as a zombie that still looks alive. bfdd works without zebra for single-hop sessions with a
`local-address`, so zebra is not started. No `interface` in the peer stanza: bfdd resolves the
interface itself, and naming one makes it wait for zebra's interface list.

FRR daemons insist on running as user `frr`: the per-instance directory is chowned to frr and its
parents must be traversable. Every path is private (-N, -i, -z, --vty_socket, and FRR 8's
--bfdctl), so several agents (or tests) on one host never share a socket.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vegd.backoff import Backoff
from vegd.gateway.settings import IPAddress

log = logging.getLogger(__name__)

FRR_USER = "frr"
INSTANCE = "vegd"
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0  # a bfdd that lived this long resets the restart backoff


class BfddError(RuntimeError):
    pass


@dataclass(frozen=True)
class Peer:
    peer: IPAddress
    local: IPAddress


@dataclass(frozen=True)
class Timers:
    min_tx: int
    min_rx: int
    multiplier: int


@dataclass(frozen=True)
class Session:
    peer: str
    local: str
    status: str  # FRR's: up, down, init, adm-down (or "unknown" when bfdd cannot be asked)
    diagnostic: str = ""


def render_config(peers: list[Peer], timers: Timers) -> str:
    lines = ["frr defaults traditional", "hostname vegd-gateway", "!", "bfd"]
    for p in peers:
        lines += [f" peer {p.peer} local-address {p.local}",
                  f"  receive-interval {timers.min_rx}",
                  f"  transmit-interval {timers.min_tx}",
                  f"  detect-multiplier {timers.multiplier}",
                  " exit", " !"]
    lines += ["exit", "!", ""]
    return "\n".join(lines)


def _peer_commands(p: Peer, timers: Timers) -> list[str]:
    return ["configure terminal", "bfd", f"peer {p.peer} local-address {p.local}",
            f"receive-interval {timers.min_rx}", f"transmit-interval {timers.min_tx}",
            f"detect-multiplier {timers.multiplier}"]


def control_socket_args(binary: Path, directory: Path) -> list[str]:
    """bfdd's arguments for a control socket of its own in `directory`, where it has one."""
    return ["--bfdctl", str(directory / "bfdd.sock")] if _has_control_socket(str(binary)) else []


@functools.cache
def _has_control_socket(binary: str) -> bool:
    """FRR 8 (Debian 12) has a control socket with a fixed default path, which two agents on
    one host would share, so it is made private; FRR 10 (Debian 13) has none, and refuses the
    option: bfdd exits at once."""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return True  # bfdd is missing or hangs: start() reports it
    return "--bfdctl" in out.stdout + out.stderr


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Bfdd:
    """One supervised bfdd instance with its own directory."""

    def __init__(self, directory: Path, peers: list[Peer], timers: Timers,
                 frr_bin_dir: Path = Path("/usr/lib/frr"), vtysh: str = "vtysh") -> None:
        self.directory = directory
        self.peers = peers
        self.timers = timers
        self.binary = frr_bin_dir / "bfdd"
        self.vtysh = vtysh
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.config_applies = 0
        self._backoff = Backoff(BACKOFF_INITIAL, BACKOFF_MAX, jitter=0)
        self._next_start = 0.0
        self._last_raw: list[dict[str, object]] = []

    @property
    def config_path(self) -> Path:
        return self.directory / "bfdd.conf"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def prepare(self) -> None:
        """Write the configuration and make the directory usable by the frr user."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for parent in self.directory.parents:
            if parent.stat().st_mode & 0o001 == 0:
                raise BfddError(f"{parent} is not traversable by others; bfdd runs as user "
                                f"{FRR_USER} and needs to reach {self.directory}")
        self.config_path.write_text(render_config(self.peers, self.timers))
        user = pwd.getpwnam(FRR_USER)
        for path in [self.directory, *self.directory.iterdir()]:
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chmod(self.directory, 0o755)

    def command(self) -> list[str]:
        d = self.directory
        argv = [str(self.binary), "-N", INSTANCE, "-f", str(self.config_path),
                "-i", str(d / "bfdd.pid"), "-z", str(d / "zserv.api"), "--vty_socket", str(d),
                "-P", "0", "--log", "stdout"]
        argv[-2:-2] = control_socket_args(self.binary, d)
        return argv

    def start(self) -> None:
        self.stop_stale()
        self.prepare()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL)
        self.started_at = time.monotonic()
        log.info("bfdd started, pid %d, %d peer(s)", self.proc.pid, len(self.peers))

    def supervise(self) -> None:
        """Restart bfdd with exponential backoff when it has died."""
        if self.proc is None:
            return
        code = self.proc.poll()
        if code is None:
            if time.monotonic() - self.started_at > STABLE_AFTER:
                self._backoff.reset()
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            delay = self._backoff.next()
            self._next_start = now + delay
            log.warning("bfdd (pid %d) exited with %s; restarting in %.1fs",
                        self.proc.pid, code, delay)
            return
        if now >= self._next_start:
            self._next_start = 0.0
            self.restarts += 1
            try:
                self.start()
            except (OSError, BfddError) as exc:
                log.error("bfdd restart failed: %s", exc)

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def stop_stale(self) -> None:
        """Stop a bfdd left behind by an earlier agent with this directory (crash, SIGKILL)."""
        pidfile = self.directory / "bfdd.pid"
        try:
            pid = int(pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return
        if self.proc is not None and pid == self.proc.pid:
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if str(self.config_path).encode() not in cmdline or not _alive(pid):
            return
        log.warning("stopping stale bfdd pid %d", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _vtysh(self, *commands: str) -> subprocess.CompletedProcess[str]:
        args = [self.vtysh, "--vty_socket", str(self.directory)]
        for c in commands:
            args += ["-c", c]
        return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)

    def sessions(self) -> list[Session] | None:
        """bfdd's view of its sessions, or None when bfdd cannot be asked."""
        if self.pid is None:
            return None
        try:
            proc = self._vtysh("show bfd peers json")
            data = json.loads(proc.stdout) if proc.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
            return None
        if not isinstance(data, list):
            return None
        self._last_raw = [d for d in data if isinstance(d, dict)]
        return [Session(str(d.get("peer")), str(d.get("local")), str(d.get("status", "unknown")),
                        str(d.get("diagnostic", ""))) for d in data]

    def ensure_config(self, sessions: list[Session]) -> list[Peer]:
        """Re-apply peers that vanished from bfdd or whose timers drifted; return them."""
        by_key = {(d.get("peer"), d.get("local")): d for d in self._last_raw}
        present = {(s.peer, s.local) for s in sessions}
        missing = []
        for p in self.peers:
            key = (str(p.peer), str(p.local))
            raw = by_key.get(key)
            drifted = raw is not None and (
                raw.get("receive-interval") != self.timers.min_rx
                or raw.get("transmit-interval") != self.timers.min_tx
                or raw.get("detect-multiplier") != self.timers.multiplier)
            if key not in present or drifted:
                missing.append(p)
        for p in missing:
            try:
                proc = self._vtysh(*_peer_commands(p, self.timers))
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("re-applying BFD peer %s failed: %s", p.peer, exc)
                continue
            if proc.returncode == 0:
                self.config_applies += 1
                log.warning("BFD peer %s (local %s) was missing or changed; re-applied",
                            p.peer, p.local)
            else:
                log.error("re-applying BFD peer %s failed: %s", p.peer,
                          (proc.stdout + proc.stderr).strip())
        return missing
