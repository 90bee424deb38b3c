"""The lab the failover benchmark runs in, built from tests/e2e (imported, not modified): a fresh
OvnStack + DataPlane, build_egress_lab() with the VPC's BFD port, the egress rows from the
pluggable rows writer (tests/e2e/rows.py WRITERS), FRR bfdd in every gateway, and the watchers
of failover_watch.py running for the lab's whole life.

Gateways are tests/e2e's: `vegd gateway run` supervising bfdd (default), or the shell setup
with bfdd started here (AsymBfdd: tests/e2e's Bfdd with separate transmit and receive
intervals). Killing and reviving a gateway is tests/e2e's lab.kill_gateway/revive_gateway.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

from e2e.dataplane import DataPlane, Netns, Prober
from e2e.frr import Bfdd
from e2e.lab import PORT, SERVER4, EgressLab, build_egress_lab
from e2e.rows import WRITERS, BfdSpec, RowsWriter, VegdApplyRows
from failover_watch import BfdCapture, DbWatch, FlowPoller, status_transitions
from ovnstack import OvnStack, wait_for

BFD_PORT_IP = "10.255.255.255"


@dataclass(frozen=True)
class Timers:
    """BFD timers in VpcEgressGateway terms: the instance transmits every tx ms and asks to
    receive every rx ms; OVN's row is the mirror image (min_rx=tx, min_tx=rx)."""

    tx: int
    rx: int
    mult: int
    ovn_mult: int

    @classmethod
    def parse(cls, text: str, ovn_mult: int = 0) -> Timers:
        m = re.fullmatch(r"(\d+)(?:/(\d+))?x(\d+)", text.strip())
        if not m:
            raise ValueError(f"{text!r}: timers are TXxMULT or TX/RXxMULT (ms)")
        tx, rx, mult = int(m[1]), int(m[2] or m[1]), int(m[3])
        return cls(tx, rx, mult, ovn_mult or mult)

    @property
    def label(self) -> str:
        base = (f"{self.tx}x{self.mult}" if self.tx == self.rx
                else f"{self.tx}/{self.rx}x{self.mult}")
        return base if self.ovn_mult == self.mult else f"{base},ovn-mult{self.ovn_mult}"

    def describe(self) -> str:
        return (f"BFD {self.label}: FRR transmit {self.tx} / receive {self.rx} ms x{self.mult} "
                f"(OVN detects in {self.mult * self.tx} ms); OVN row min_tx {self.rx} "
                f"min_rx {self.tx} detect_mult {self.ovn_mult} (FRR detects in "
                f"{self.ovn_mult * self.rx} ms)")


class AsymBfdd(Bfdd):
    """tests/e2e's Bfdd with distinct transmit and receive intervals."""

    def __init__(self, dp: DataPlane, ns: Netns, peers: dict[str, str], timers: Timers):
        super().__init__(dp, ns, peers, timers.tx, timers.mult)
        self.timers = timers

    def _conf(self) -> str:
        t = self.timers
        lines = [f"hostname {self.ns.name}", "bfd"]
        for peer, local in self.peers.items():
            lines += [f" peer {peer} local-address {local}", f"  receive-interval {t.rx}",
                      f"  transmit-interval {t.tx}", f"  detect-multiplier {t.mult}", " !"]
        return "\n".join([*lines, "!", ""])


@dataclass
class Gateway:
    name: str
    ns: Netns
    ip: str        # internal (the BFD peer and ECMP nexthop)
    ext_ip: str    # SNAT address the echo server reports


class MultiProber:
    """One tests/e2e Prober per pod; results merged and sorted by start time."""

    def __init__(self, probers: list[Prober]):
        self.probers = probers
        self.t0 = time.time()

    @property
    def results(self) -> list[tuple[float, str]]:
        return sorted(r for p in self.probers for r in p.results)

    def stop(self) -> list[tuple[float, str]]:
        for p in self.probers:
            p.stop()
        return self.results


class FailoverLab:
    """gateway: "vegd" (`vegd gateway run` supervises bfdd) or "script" (shell setup, bfdd
    started here); rows: a tests/e2e/rows.py writer ("vegd" = `vegd apply`, "hand")."""

    def __init__(self, directory: Path, timers: Timers, gateways: int = 2, pods: int = 1,
                 rows: str = "vegd", gateway: str = "vegd", capture: bool = False):
        if timers.ovn_mult != timers.mult and (rows != "hand" or gateway != "script"):
            raise ValueError("a separate OVN detect_mult needs --rows hand --gateway script "
                             "(vegd writes one multiplier to both sides)")
        self.dir = directory
        self.timers = timers
        self.n_gateways, self.n_pods = gateways, pods
        self.rows_kind, self.gateway_kind = rows, gateway
        self.want_capture = capture
        self.bfd_port_ip = BFD_PORT_IP
        self.stack = OvnStack(directory / "ovn")
        self.dp: DataPlane | None = None
        self.lab: EgressLab | None = None
        self.gateways: list[Gateway] = []
        self.pods: list[Netns] = []
        self.captures: dict[str, BfdCapture] = {}     # gateway name -> its tcpdump
        self._watches: list[DbWatch | BfdCapture] = []
        self.first_up_s = 0.0
        self.t_bfdd = 0.0

    def __enter__(self) -> FailoverLab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _writer(self) -> RowsWriter:
        if self.rows_kind == "vegd":
            return VegdApplyRows(workdir=self.dir / "manifests")
        return WRITERS[self.rows_kind]()  # type: ignore[no-any-return]

    def _build(self) -> None:
        t = self.timers
        frr_side = BfdSpec(min_tx=t.rx, min_rx=t.tx, detect_mult=t.mult, port_ip=BFD_PORT_IP)
        ovn_side = BfdSpec(min_tx=t.rx, min_rx=t.tx, detect_mult=t.ovn_mult, port_ip=BFD_PORT_IP)
        self.stack.start()
        self.dp = dp = DataPlane(self.stack)
        dp.start()
        env = self.stack.env
        self.sb_bfd = DbWatch(self.stack.sb_unix, "OVN_Southbound", "BFD", ["dst_ip", "status"],
                              env=env)
        self.nb_bfd = DbWatch(self.stack.nb_unix, "OVN_Northbound", "BFD", ["dst_ip", "status"],
                              env=env)
        self._watches = [self.sb_bfd, self.nb_bfd]
        t0 = time.monotonic()
        if self.gateway_kind == "vegd":   # the agents start bfdd (asymmetric timers as given)
            lab = build_egress_lab(dp, gateways=self.n_gateways, pods=self.n_pods,
                                   bfd=frr_side, gateway="vegd")
        else:                             # the route to the BFD port only; bfdd started here
            lab = build_egress_lab(dp, gateways=self.n_gateways, pods=self.n_pods,
                                   bfd_port_ip=BFD_PORT_IP, gateway="script")
            for gw in lab.gateways:
                lab.bfdd[gw.name] = AsymBfdd(dp, gw, {BFD_PORT_IP: gw.addr(4)}, t).start()
        self.lab = lab
        self.pods = lab.pods
        self._writer().apply(self.stack, lab.spec(bfd=ovn_side))
        dp.wait_hv_sync()
        self.lflows = DbWatch(self.stack.sb_unix, "OVN_Southbound", "Logical_Flow",
                              ["match", "actions"], env=env, initial=False)
        # the table of the first source prefix's ECMP route (a select group while all are up)
        self.flows = FlowPoller("br-int", (f"nw_src={lab.spec().sources[0]}", "group:"),
                                env=env)
        self._watches.append(self.lflows)
        ext_of = {name: ip for ip, name in lab.gateway_by_external_ip().items() if "." in ip}
        self.gateways = [Gateway(gw.name, gw, gw.addr(4), ext_of[gw.name])
                         for gw in lab.gateways]
        if self.want_capture:
            for g in self.gateways:
                self.captures[g.name] = BfdCapture(g.ns.ns)
                self._watches.append(self.captures[g.name])
        self.t_bfdd = t0

    def ready(self, timeout: float = 60.0) -> float:
        """Wait until every session is up; the seconds since the gateways started bfdd."""
        self.wait_all_up(timeout)
        self.first_up_s = time.monotonic() - self.t_bfdd
        return self.first_up_s

    def close(self) -> None:
        for w in self._watches:
            w.stop()
        self._watches = []
        if self.dp is not None:
            self.dp.stop()
        self.stack.stop()

    # ------------------------------------------------------------------ state
    def nb_status(self) -> dict[str, str]:
        out = self.stack.nbctl("--format=csv", "--data=bare", "--no-headings",
                               "--columns=dst_ip,status", "find", "BFD",
                               f"logical_port=bfd@{self.lab.vpc if self.lab else 'vpc1'}")
        return dict(line.split(",", 1) for line in out.splitlines() if "," in line)

    def wait_all_up(self, timeout: float = 60.0) -> None:
        assert self.dp is not None and self.lab is not None
        lab, want = self.lab, {g.ip for g in self.gateways}

        def up() -> bool:
            st = self.nb_status()
            return all(st.get(ip) == "up" for ip in want) and all(
                lab.bfd_session(g.ns, BFD_PORT_IP) == "up" for g in self.gateways)

        wait_for(up, timeout, interval=0.1, what="every BFD session up (NB and FRR)")
        self.dp.wait_hv_sync()

    def wait_stable(self, seconds: float = 5.0, timeout: float = 90.0) -> None:
        """Every session up, and no FRR session-down and no SB BFD change for `seconds`: a
        revived instance often flaps once on its way up, which is recovery, not the steady
        state the quiet period measures."""
        deadline = time.monotonic() + timeout
        while True:
            self.wait_all_up(timeout=max(1.0, deadline - time.monotonic()))
            downs, changes = self.frr_down_counts(), len(self.sb_bfd.snapshot())
            since = time.monotonic()
            while time.monotonic() - since < seconds:
                time.sleep(0.25)
                if len(self.sb_bfd.snapshot()) != changes or self.not_up():
                    break
            else:
                if self.frr_down_counts() == downs:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"sessions not stable for {seconds} s within {timeout} s")

    def not_up(self) -> str:
        """"" when every session is up in SB (the watcher's view) and in FRR, else who is not."""
        assert self.lab is not None
        bad = []
        for g in self.gateways:
            sb = status_transitions(self.sb_bfd, "dst_ip", g.ip)
            if not sb or sb[-1][1] != "up":
                bad.append(f"{g.name} SB {sb[-1][1] if sb else '?'}")
            frr = self.lab.bfd_session(g.ns, BFD_PORT_IP)
            if frr != "up":
                bad.append(f"{g.name} FRR {frr or '?'}")
        return ", ".join(bad)

    def vtysh(self, gw: Gateway, *cmds: str) -> str:
        assert self.lab is not None
        if gw.name in self.lab.agents:
            return self.lab.agents[gw.name].vtysh(*cmds)
        return self.lab.bfdd[gw.name].vtysh(*cmds)

    def frr_diagnostic(self, gw: Gateway) -> str:
        """FRR's local diagnostic of its session (why it last went down)."""
        try:
            data = json.loads(self.vtysh(gw, "show bfd peers json"))
        except (RuntimeError, ValueError):
            return "?"
        return ", ".join(str(p.get("diagnostic", "?")) for p in data if isinstance(p, dict))

    def frr_down_counts(self) -> dict[str, int]:
        """FRR's session-down counter per gateway (missing when bfdd does not answer)."""
        out = {}
        for g in self.gateways:
            try:
                data = json.loads(self.vtysh(g, "show bfd peers counters json"))
            except (RuntimeError, ValueError):
                continue
            out[g.name] = sum(int(p.get("session-down", 0)) for p in data
                              if isinstance(p, dict))
        return out

    # ------------------------------------------------------------------ traffic
    def start_probers(self, interval: float, timeout: float) -> MultiProber:
        assert self.dp is not None
        return MultiProber([self.dp.start_prober(p, SERVER4, PORT, interval=interval,
                                                 timeout=timeout, max_duration=300)
                            for p in self.pods])

    def wait_traffic_everywhere(self, prober: MultiProber, timeout: float = 20.0,
                                each: int = 3) -> None:
        def seen() -> bool:
            rows = prober.results
            return all(sum(r == g.ext_ip for _, r in rows) >= each for g in self.gateways)

        wait_for(seen, timeout, interval=0.05, what="prober traffic through every gateway")

    def wait_quiet(self, seconds: float) -> None:
        """The stability window: the prober runs and the watchers record, nothing else."""
        time.sleep(seconds)

    # ------------------------------------------------------------------ failure
    def kill(self, gw: Gateway) -> float:
        """The gateway dies (tests/e2e: bfdd and agent SIGKILLed, forwarding dropped);
        returns the time just before."""
        assert self.lab is not None
        t = time.time()
        self.lab.kill_gateway(gw.ns)
        return t

    def revive(self, gw: Gateway) -> None:
        assert self.lab is not None
        self.lab.revive_gateway(gw.ns)
