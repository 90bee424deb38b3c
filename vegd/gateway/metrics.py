"""What the agent knows (Status, written by the main loop) and its Prometheus metrics.

Everything is read at scrape time by one collector on the process's registry: the main loop's
state under its lock, the interface counters from netlink, the nftables rule counters and the
conntrack count of the gateway's network namespace. Readiness means "the network setup is in
place"; BFD state is reported, never gating: OVN, not the kubelet, decides from BFD whether this
instance gets traffic, and a pod that is not Ready because its BFD peer is away would only stop
the rollout of the peer's fix.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pyroute2 import IPRoute  # type: ignore[import-untyped]

from vegd.gateway import snat
from vegd.gateway.bfdd import Session

CONNTRACK = Path("/proc/sys/net/netfilter")  # per network namespace, like /proc/net
BFD_STATES = ("up", "down", "init", "adm-down", "unknown", "missing")


@dataclass
class Status:
    """What the main loop knows; the HTTP threads read it under the lock."""

    nft_table: str
    liveness_timeout: float
    interfaces: dict[str, str] = field(default_factory=dict)  # role -> interface name
    expected_peers: list[tuple[str, str]] = field(default_factory=list)
    ready: bool = False
    ready_reason: str = "starting"
    heartbeat: float = field(default_factory=time.monotonic)
    sessions: list[Session] | None = None
    bfd_transitions: dict[tuple[str, str], int] = field(default_factory=dict)
    bfdd_pid: int | None = None
    bfdd_restarts: int = 0
    bfd_config_applies: int = 0
    setup_applies: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def live(self) -> tuple[bool, str]:
        with self.lock:
            ok = time.monotonic() - self.heartbeat < self.liveness_timeout
        return ok, "" if ok else "main loop stalled"

    def readiness(self) -> tuple[bool, str]:
        with self.lock:
            return self.ready, f"not ready: {self.ready_reason}"

    def session_states(self) -> dict[tuple[str, str], str]:
        """(peer, local) -> state of every expected peer; call with the lock held."""
        by_key = {(s.peer, s.local): s.status for s in self.sessions or []}
        missing = "unknown" if self.sessions is None else "missing"
        return {peer: by_key.get(peer, missing) for peer in self.expected_peers}

    def update_sessions(self, sessions: list[Session] | None) -> None:
        """Store bfdd's answer and count state changes; call with the lock held."""
        before = self.session_states() if self.sessions is not None else {}
        self.sessions = sessions
        if sessions is None:
            return  # bfdd could not be asked: not a transition of the session
        for peer, state in self.session_states().items():
            if peer in before and before[peer] != state:
                self.bfd_transitions[peer] = self.bfd_transitions.get(peer, 0) + 1


class GatewayCollector(Collector):
    def __init__(self, status: Status) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s = self.status
        with s.lock:
            ready, setup_applies = s.ready, s.setup_applies
            states = s.session_states()
            transitions = dict(s.bfd_transitions)
            bfdd_pid, restarts, applies = s.bfdd_pid, s.bfdd_restarts, s.bfd_config_applies
            interfaces = dict(s.interfaces)
        yield GaugeMetricFamily("vegd_gateway_ready",
                                "1 when forwarding, routes, rules and SNAT are in place",
                                value=int(ready))
        yield CounterMetricFamily("vegd_gateway_setup_applies_total",
                                  "Network setups applied (the first one, and repairs after "
                                  "drift)", value=setup_applies)
        if states:
            yield from _bfd(states, transitions, bfdd_pid, restarts, applies)
        yield from _interfaces(interfaces)
        yield from _snat(s.nft_table)
        yield from _conntrack()


def _bfd(states: dict[tuple[str, str], str], transitions: dict[tuple[str, str], int],
         bfdd_pid: int | None, restarts: int, applies: int) -> Iterator[Metric]:
    labels = ["peer", "local"]
    up = GaugeMetricFamily("vegd_gateway_bfd_session_up",
                           "1 when the BFD session to the peer is up", labels=labels)
    state = GaugeMetricFamily(
        "vegd_gateway_bfd_session_state",
        "BFD session state as bfdd reports it, 1 for the current one (unknown when bfdd "
        "cannot be asked, missing when bfdd lacks the peer)", labels=[*labels, "state"])
    changes = CounterMetricFamily("vegd_gateway_bfd_session_transitions_total",
                                  "Changes of a BFD session's state seen by the agent",
                                  labels=labels)
    for (peer, local), current in sorted(states.items()):
        up.add_metric([peer, local], int(current == "up"))
        for name in BFD_STATES:
            state.add_metric([peer, local, name], int(current == name))
        changes.add_metric([peer, local], transitions.get((peer, local), 0))
    yield up
    yield state
    yield changes
    yield GaugeMetricFamily("vegd_gateway_bfdd_running", "1 while the supervised bfdd runs",
                            value=int(bool(bfdd_pid)))
    yield CounterMetricFamily("vegd_gateway_bfdd_restarts_total", "Times bfdd was restarted",
                              value=restarts)
    yield CounterMetricFamily("vegd_gateway_bfd_config_applies_total",
                              "BFD peers re-applied because they vanished from bfdd",
                              value=applies)


# metric suffix -> key of IFLA_STATS64
_LINK_COUNTERS = (("receive_bytes", "rx_bytes", "Bytes received"),
                  ("transmit_bytes", "tx_bytes", "Bytes transmitted"),
                  ("receive_packets", "rx_packets", "Packets received"),
                  ("transmit_packets", "tx_packets", "Packets transmitted"))


def _interfaces(interfaces: dict[str, str]) -> Iterator[Metric]:
    families = {suffix: CounterMetricFamily(
        f"vegd_gateway_interface_{suffix}_total",
        f"{text} by the gateway's interface (role: internal toward the VPC, external)",
        labels=["role", "interface"]) for suffix, _, text in _LINK_COUNTERS}
    if interfaces:
        with IPRoute() as ipr:
            for role, name in sorted(interfaces.items()):
                links = []
                with contextlib.suppress(Exception):  # gone: no sample rather than no scrape
                    links = ipr.link("get", ifname=name)
                stats = links[0].get_attr("IFLA_STATS64") if links else None
                if not stats:
                    continue
                for suffix, key, _ in _LINK_COUNTERS:
                    families[suffix].add_metric([role, name], int(stats.get(key, 0)))
    yield from families.values()


def _snat(table: str) -> Iterator[Metric]:
    counters = snat.counters(table) or []
    packets = CounterMetricFamily(
        "vegd_gateway_snat_rule_packets_total",
        "Packets matched by the agent's nftables rules (reset when the rules are re-applied)",
        labels=["kind", "cidr"])
    octets = CounterMetricFamily("vegd_gateway_snat_rule_bytes_total",
                                 "Bytes matched by the agent's nftables rules",
                                 labels=["kind", "cidr"])
    for c in counters:
        packets.add_metric([c.kind, c.cidr], c.packets)
        octets.add_metric([c.kind, c.cidr], c.bytes)
    yield packets
    yield octets


def _conntrack() -> Iterator[Metric]:
    for name, file, text in (("vegd_gateway_conntrack_entries", "nf_conntrack_count",
                              "Conntrack entries in the gateway's network namespace (its SNAT "
                              "and forwarded flows)"),
                             ("vegd_gateway_conntrack_max", "nf_conntrack_max",
                              "Conntrack table size")):
        with contextlib.suppress(OSError, ValueError):
            yield GaugeMetricFamily(name, text, value=int((CONNTRACK / file).read_text()))
