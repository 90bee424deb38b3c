"""Gateway instances in the lab: vegd's agent, or the old minimal shell sequence.

* ``VegdGatewayAgent`` (default, ``VEGD_E2E_GATEWAY=vegd``): ``vegd gateway setup`` (as an init
  container would run it) and then ``vegd gateway run`` in the gateway namespace; run supervises
  FRR bfdd when BFD peers are given. Stopped by pid (SIGTERM: the agent removes its setup);
  ``kill()`` simulates a dead instance (agent and bfdd SIGKILLed, forwarding blocked).
* ``configure_gateway_ns`` (``VEGD_E2E_GATEWAY=script``): ip_forward, rp_filter, iptables
  MASQUERADE, routes in ``main``; BFD then needs frr.Bfdd started by the test.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ovnstack import alive, wait_for

from .dataplane import NS_PYTHON, DataPlane, Netns
from .rows import EgressSpec, render

AGENT_PORT = 10669
ENV_PREFIX = "VEGD_GATEWAY_"


def agent_config() -> str:
    """How vegd agents get their settings: VEGD_E2E_AGENT_CONFIG=workload (default: the
    environment vegd's controller renders into the Deployment) or flags (the lab's own)."""
    kind = os.environ.get("VEGD_E2E_AGENT_CONFIG", "workload")
    if kind not in ("workload", "flags"):
        raise ValueError(f"VEGD_E2E_AGENT_CONFIG={kind}: expected workload or flags")
    return kind


def gateway_impl() -> str:
    """Which gateway implementation the lab uses: VEGD_E2E_GATEWAY=vegd (default) or script."""
    kind = os.environ.get("VEGD_E2E_GATEWAY", "vegd")
    if kind not in ("vegd", "script"):
        raise ValueError(f"VEGD_E2E_GATEWAY={kind}: expected vegd or script")
    return kind


@dataclass
class AgentBfd:
    peers: list[str]                 # the VPC's BFD port IPs
    min_tx: int = 500                # the instance's view (VEG spec.bfd.minTX)
    min_rx: int = 500
    multiplier: int = 3


class VegdGatewayAgent:
    """``vegd gateway setup`` + ``vegd gateway run`` inside namespace gw.

    internal_gateways/external_gateways: the VPC router's address on eth0 and the upstream
    router's on net1, one per family. The agent's files live in ``<dp.scratch>/agent-<gw>``
    (world-traversable: FRR runs as user frr); its log is ``agent.log`` there.
    """

    def __init__(self, dp: DataPlane, gw: Netns, *, snat_sources: Sequence[str] = (),
                 internal_gateways: Sequence[str] = (), external_gateways: Sequence[str] = (),
                 forward_sources: Sequence[str] = (), bfd: AgentBfd | None = None,
                 check_interval: float = 10.0, env: Mapping[str, str] | None = None):
        self.dp, self.gw = dp, gw
        # env: VEGD_GATEWAY_* settings (e.g. workload_env()); then the other arguments are
        # unused and only the lab's private paths and intervals are given as flags (flags win)
        self.env = dict(env) if env is not None else None
        self.snat_sources, self.forward_sources = list(snat_sources), list(forward_sources)
        self.internal_gateways, self.external_gateways = (list(internal_gateways),
                                                          list(external_gateways))
        self.bfd = bfd
        self.check_interval = check_interval
        self.state_dir = dp.scratch / f"agent-{gw.name}"
        self.log = self.state_dir.parent / f"agent-{gw.name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.started_in: float | None = None       # seconds from setup to run listening
        dp.on_stop(self.stop)

    def flags(self) -> list[str]:
        out = ["--state-dir", str(self.state_dir), "--listen", f":{AGENT_PORT}",
               "--check-interval", str(self.check_interval), "--bfd-poll-interval", "0.2"]
        if self.env is not None:
            return out
        for g in self.internal_gateways:
            out += [f"--internal-gateway-ipv{ipaddress.ip_address(g).version}", g]
        for g in self.external_gateways:
            out += [f"--external-gateway-ipv{ipaddress.ip_address(g).version}", g]
        if self.snat_sources:
            out += ["--snat-sources", ",".join(self.snat_sources)]
        if self.forward_sources:
            out += ["--forward-sources", ",".join(self.forward_sources)]
        if self.bfd is not None:
            out += ["--bfd-peers", ",".join(self.bfd.peers),
                    "--bfd-min-tx", str(self.bfd.min_tx), "--bfd-min-rx", str(self.bfd.min_rx),
                    "--bfd-multiplier", str(self.bfd.multiplier)]
        return out

    def setup(self) -> None:
        """``vegd gateway setup``: applied once, returns when it is in place (exit 0)."""
        self.dp.exec(self.gw, sys.executable, "-m", "vegd", "gateway", "setup", *self.flags(),
                     env=self._environ())

    def _environ(self) -> dict[str, str] | None:
        if self.env is None:
            return None
        base = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        return {**base, **self.env}

    def start(self) -> VegdGatewayAgent:
        """setup, then ``run`` in the background; returns once run listens on its HTTP port
        (it has re-checked the setup, and started bfdd if it has peers)."""
        t0 = time.monotonic()
        self.setup()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = self.log.open("a")
        self.proc = self.dp.spawn(self.gw, sys.executable, "-m", "vegd", "gateway", "run",
                                  *self.flags(), stdout=log, stderr=subprocess.STDOUT,
                                  env=self._environ())
        log.close()
        proc = self.proc

        def listening() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"vegd gateway run in {self.gw.name} exited "
                                   f"{proc.returncode}: {self.log.read_text()[-2000:]}")
            out = self.dp.exec(self.gw, "ss", "-Hltn", f"sport = :{AGENT_PORT}", check=False)
            return bool(out.strip()) and (self.bfd is None or self.bfdd_pid() is not None)

        wait_for(listening, 15, interval=0.02, what=f"vegd gateway run in {self.gw.name}")
        self.started_in = time.monotonic() - t0
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def bfdd_pid(self) -> int | None:
        try:
            pid = int((self.state_dir / "frr" / "bfdd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def kill(self) -> None:
        """The instance dies: agent and bfdd SIGKILLed (by pid), forwarding blocked (an
        iptables DROP at the top of FORWARD; ``revive()`` removes it)."""
        bfdd = self.bfdd_pid()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if bfdd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(bfdd, signal.SIGKILL)
            wait_for(lambda: not alive(bfdd), 10, what=f"bfdd {bfdd} to exit")
        self.dp.exec(self.gw, "iptables", "-I", "FORWARD", "1", "-j", "DROP")
        self.dp.exec(self.gw, "ip6tables", "-I", "FORWARD", "1", "-j", "DROP")

    def revive(self) -> VegdGatewayAgent:
        """Undo kill(): forwarding unblocked, the agent started again."""
        self.dp.exec(self.gw, "iptables", "-D", "FORWARD", "-j", "DROP")
        self.dp.exec(self.gw, "ip6tables", "-D", "FORWARD", "-j", "DROP")
        return self.start()

    def terminate(self) -> None:
        """SIGTERM the agent without waiting (stop() waits); lets a lab end many at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def stop(self) -> None:
        """SIGTERM the agent (it stops bfdd and removes its setup) and wait for it by pid; a
        bfdd orphaned by a SIGKILLed agent is stopped by its pidfile. Never raises."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        bfdd = self.bfdd_pid()
        if bfdd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(bfdd, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: not alive(bfdd), 5, what=f"bfdd {bfdd} to exit")
            with contextlib.suppress(ProcessLookupError):
                os.kill(bfdd, signal.SIGKILL)

    def vtysh(self, *cmds: str) -> str:
        args = []
        for c in cmds:
            args += ["-c", c]
        return self.dp.exec(self.gw, "vtysh", "--vty_socket", str(self.state_dir / "frr"), *args,
                            timeout=10)

    def bfd_status(self, peer: str) -> str:
        """FRR's session state for peer ("up", "down", "init"...), "" if unknown."""
        try:
            data = json.loads(self.vtysh("show bfd peers json"))
        except (RuntimeError, ValueError):
            return ""
        return next((str(p.get("status", "")) for p in data if p.get("peer") == peer), "")

    def metrics(self) -> str:
        """The agent's /metrics text ("" when it does not answer)."""
        code = ("import sys, urllib.request as u; sys.stdout.write(u.urlopen("
                f"'http://127.0.0.1:{AGENT_PORT}/metrics', timeout=3).read().decode())")
        return self.dp.exec(self.gw, NS_PYTHON, "-c", code, check=False, timeout=5)


def workload_env(spec: EgressSpec) -> dict[str, str]:
    """The agent's VEGD_GATEWAY_* environment exactly as vegd's controller renders it into the
    gateway Deployment (vegd.workload.deployment.agent_env) for spec's manifests: the lab's
    gateways are configured by vegd, not by the test."""
    from vegd.model.resolve import resolve_gateway
    from vegd.model.snapshot import snapshot_from_objects
    from vegd.workload.deployment import WorkloadOptions, agent_env

    snap = snapshot_from_objects(render([spec]))
    gateway = snap.gateway(spec.name)
    assert gateway is not None, spec.name
    # policy mode with BFD exists only with Kube-OVN's arrangement (stock OVN refuses it)
    policy = spec.bfd is not None and spec.bfd.mode == "policy"
    resolved = resolve_gateway(gateway, snap, bfd_port_mode="kube-ovn" if policy else "stock")
    return {e["name"]: e["value"] for e in agent_env(resolved, snap, WorkloadOptions())}


def add_counting_rule(dp: DataPlane, gw: Netns, internal_if: str = "eth0",
                      external_if: str = "net1") -> None:
    """A target-less ``FORWARD -i eth0 -o net1`` rule: forwarded_packets() reads its counter.
    Lab instrumentation, not part of the gateway's configuration."""
    for tool in ("iptables", "ip6tables"):
        dp.exec(gw, tool, "-A", "FORWARD", "-i", internal_if, "-o", external_if)


def configure_gateway_ns(dp: DataPlane, gw: Netns, *, sources: Sequence[str],
                         external_gateways: Sequence[str],
                         internal_routes: Sequence[tuple[str, str]] = (),
                         internal_if: str = "eth0", external_if: str = "net1") -> None:
    """Turn namespace gw into an egress gateway instance.

    - forwarding on (IPv4 and IPv6), rp_filter off (replies and BFD come back asymmetrically);
    - SNAT: ``iptables -t nat -A POSTROUTING -s <src> -o net1 -j MASQUERADE --random-fully`` for
      every source CIDR (ip6tables for IPv6 sources);
    - default route(s) via external_gateways on net1;
    - internal_routes (prefix, nexthop) on eth0: the way back to VPC prefixes that are not
      connected, and to a dedicated BFD port address;
    - a counting rule ``FORWARD -i eth0 -o net1`` (no target) so tests can read per-gateway
      forwarded packet counts.
    """
    sysctls = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
               "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
               f"net.ipv4.conf.{internal_if}.rp_filter=0",
               f"net.ipv4.conf.{external_if}.rp_filter=0"]
    dp.exec(gw, "sysctl", "-qw", *sysctls)
    for src in sources:
        tool = "ip6tables" if ipaddress.ip_network(src).version == 6 else "iptables"
        dp.exec(gw, tool, "-t", "nat", "-A", "POSTROUTING", "-s", src, "-o", external_if,
                "-j", "MASQUERADE", "--random-fully")
    add_counting_rule(dp, gw, internal_if, external_if)
    for nh in external_gateways:
        fam = "-6" if ipaddress.ip_address(nh).version == 6 else "-4"
        dp.exec(gw, "ip", fam, "route", "replace", "default", "via", nh, "dev", external_if)
    for prefix, nh in internal_routes:
        fam = "-6" if ipaddress.ip_address(nh).version == 6 else "-4"
        dp.exec(gw, "ip", fam, "route", "replace", prefix, "via", nh, "dev", internal_if)


def forwarded_packets(dp: DataPlane, gw: Netns, version: int = 4,
                      internal_if: str = "eth0", external_if: str = "net1") -> int:
    """Packets gw forwarded from the VPC side to the external side (the counting rule)."""
    tool = "ip6tables" if version == 6 else "iptables"
    out = dp.exec(gw, tool, "-nvxL", "FORWARD")
    for line in out.splitlines():
        f = line.split()
        if (f and f[0].isdigit() and internal_if in f[:-1]
                and f[f.index(internal_if) + 1] == external_if):
            return int(f[0])
    raise LookupError(f"no counting rule in {gw.name}: {out}")
