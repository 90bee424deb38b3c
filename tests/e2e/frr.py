"""FRR bfdd (with zebra) inside a gateway namespace, without systemd.

Pitfalls (local-ovn-stack.md, 12): the daemons must run as user frr, so their directory is
chowned to frr and lives under a world-traversable path (DataPlane.scratch); each instance has
its own pid, zserv, vty (and on FRR 8 bfdctl) paths; vtysh is called with --vty_socket and
without -N; the peer stanza has no ``interface`` (bfdd may start before zebra knows the netns
interfaces).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from ovnstack import alive, stop_pid, wait_for

from vegd.gateway.bfdd import control_socket_args

from .dataplane import DataPlane, Netns, run

FRR_DIR = Path("/usr/lib/frr")


def have_frr() -> bool:
    return (FRR_DIR / "bfdd").exists() and (FRR_DIR / "zebra").exists() and bool(
        shutil.which("vtysh"))


class Bfdd:
    """zebra + bfdd in namespace ns with single-hop peers {peer_ip: local_ip}."""

    def __init__(self, dp: DataPlane, ns: Netns, peers: dict[str, str], interval_ms: int = 300,
                 detect_mult: int = 3):
        self.dp, self.ns = dp, ns
        self.peers = dict(peers)
        self.interval_ms, self.detect_mult = interval_ms, detect_mult
        self.dir = dp.scratch / f"frr-{ns.name}"
        dp.on_stop(self.stop)

    def _conf(self) -> str:
        lines = [f"hostname {self.ns.name}", "bfd"]
        for peer, local in self.peers.items():
            lines += [f" peer {peer} local-address {local}",
                      f"  receive-interval {self.interval_ms}",
                      f"  transmit-interval {self.interval_ms}",
                      f"  detect-multiplier {self.detect_mult}", " !"]
        return "\n".join([*lines, "!", ""])

    def _pid(self, daemon: str) -> int | None:
        try:
            return int((self.dir / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, daemon: str = "bfdd") -> bool:
        pid = self._pid(daemon)
        return pid is not None and alive(pid)

    def _daemon(self, daemon: str, *extra: str) -> None:
        d = self.dir
        (d / f"{daemon}.pid").unlink(missing_ok=True)
        self.dp.exec(self.ns, str(FRR_DIR / daemon), "-d", "-N", self.ns.name,
                     "-f", str(d / f"{daemon}.conf"), "-i", str(d / f"{daemon}.pid"),
                     "-z", str(d / "zserv.api"), "--vty_socket", str(d), "-P", "0",
                     "--log", f"file:{d}/{daemon}.log", *extra)
        wait_for(lambda: self.running(daemon), 10, what=f"{daemon} in {self.ns.name}")

    def start(self) -> Bfdd:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "zebra.conf").write_text(f"hostname {self.ns.name}\n")
        (self.dir / "bfdd.conf").write_text(self._conf())
        run("chown", "-R", "frr:frr", str(self.dir))
        if not self.running("zebra"):
            self._daemon("zebra")
        self._daemon("bfdd", *control_socket_args(FRR_DIR / "bfdd", self.dir))
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill bfdd only (the gateway's BFD "dies"); wait until it is really gone."""
        pid = self._pid("bfdd")
        if pid is None:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        wait_for(lambda: not alive(pid), 10, what=f"bfdd {pid} to exit")

    def stop(self) -> None:
        for daemon in ("bfdd", "zebra"):
            pid = self._pid(daemon)
            if pid is not None:
                stop_pid(pid)

    def vtysh(self, *cmds: str) -> str:
        args = []
        for c in cmds:
            args += ["-c", c]
        return run("vtysh", "--vty_socket", str(self.dir), *args, timeout=10)

    def status(self, peer: str) -> str:
        """FRR's session state for peer ("up", "down", "init", ...), "" if unknown."""
        try:
            data = json.loads(self.vtysh("show bfd peers json"))
        except (RuntimeError, ValueError):
            return ""
        for p in data:
            if p.get("peer") == peer:
                return str(p.get("status", ""))
        return ""
