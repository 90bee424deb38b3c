"""`vegd gateway run`'s /metrics in its network namespace: the internal and external interface
counters grow with traffic through the gateway, and the SNAT flow shows up as a conntrack entry."""

from __future__ import annotations

import signal
import sys
import urllib.error
import urllib.request

import pytest
from metricsdoc import assert_documented
from nslab import Lab, Topology, in_netns
from ovnstack import wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_traffic import GATEWAY_EXTERNAL, SNAT_CLIENT, tcp_source_seen

pytestmark = pytest.mark.netns

LISTEN = "127.0.0.1:10669"


def scrape(ns: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    with in_netns(ns):
        try:
            with urllib.request.urlopen(f"http://{LISTEN}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, OSError):
            return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def interface(samples: dict, direction: str, unit: str, role: str, name: str) -> float:
    key = (f"vegd_gateway_interface_{direction}_{unit}_total",
           (("interface", name), ("role", role)))
    return samples[key]


def test_interface_counters_and_conntrack_follow_traffic(lab: Lab, topo: Topology) -> None:
    agent = lab.popen(topo.gw, sys.executable, "-m", "vegd", "gateway", "run",
                      *topo.flags("--listen", LISTEN, "--check-interval", "0.5"),
                      log=topo.state_dir / "agent.log")
    try:
        before = wait_for(lambda: scrape(topo.gw), 15, what="the agent's /metrics")
        assert before[("vegd_gateway_ready", ())] == 1
        assert before[("vegd_gateway_setup_applies_total", ())] == 1
        for _ in range(3):
            assert tcp_source_seen(topo, 4, SNAT_CLIENT[4]) == GATEWAY_EXTERNAL[4]
        after = scrape(topo.gw)
        assert after is not None
        for role, name in (("internal", "eth0"), ("external", "net1")):
            for direction in ("receive", "transmit"):
                for unit in ("packets", "bytes"):
                    grew = interface(after, direction, unit, role, name) - \
                        interface(before, direction, unit, role, name)
                    # 3 connections: at least SYN, ACK, data, FIN each way through each side
                    assert grew >= (12 if unit == "packets" else 12 * 40), (role, direction, unit)
        # the closed connections stay in conntrack (TIME_WAIT) for minutes
        assert after[("vegd_gateway_conntrack_entries", ())] >= 3
        assert after[("vegd_gateway_conntrack_max", ())] > 0
        packets = after[("vegd_gateway_snat_rule_packets_total",
                         (("cidr", "10.0.1.0/24"), ("kind", "masquerade")))]
        assert packets >= 3  # one per connection: NAT rules see a flow's first packet only
        assert_documented(after)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
