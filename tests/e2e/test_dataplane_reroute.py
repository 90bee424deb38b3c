"""End-to-end: reroute policies (BFD off) on a real data plane, NB rows from the rows writer."""

from __future__ import annotations

import pytest

from .gateway import forwarded_packets
from .lab import PORT, SERVER4, SERVER6, build_egress_lab

pytestmark = [pytest.mark.netns, pytest.mark.dataplane]


def test_one_gateway_snat(dataplane, egress_rows):
    """(a) pod in subnet1 -> 29100 reroute policy -> gw1 MASQUERADE -> external server, which
    sees gw1's external address; without the policy the same connection does not get out."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=1, pods=1)
    pod, gw1 = lab.pods[0], lab.gateways[0]

    # before any egress row: vpc1's default route leads nowhere, nothing gets through
    assert dp.tcp_connect(pod, SERVER4, PORT, count=1, timeout=1.0)[0].startswith("fail:")

    spec = lab.spec()
    egress_rows.apply(dp.stack, spec)
    dp.wait_hv_sync()
    policies = dp.stack.nbctl("lr-policy-list", "vpc1")
    assert "29100" in policies and "192.168.0.2" in policies, policies
    # northd silently drops reroutes it cannot resolve; check it made a flow with our nexthop
    lflows = dp.stack.lflows("vpc1")
    assert any("lr_in_policy" in line and "priority=29100" in line
               for line in lflows.splitlines()), lflows

    before = forwarded_packets(dp, gw1)
    results = dp.tcp_connect(pod, SERVER4, PORT, count=5)
    assert results == ["198.51.100.2"] * 5, results
    assert forwarded_packets(dp, gw1) > before

    # removing the rows takes the path away again
    egress_rows.remove(dp.stack, spec)
    dp.wait_hv_sync()
    assert dp.tcp_connect(pod, SERVER4, PORT, count=1, timeout=1.0)[0].startswith("fail:")


def test_two_gateways_ecmp_spread(dataplane, egress_rows):
    """(b) one reroute policy with both gateways as nexthops: 40 TCP connections (new source
    port each, so a new ECMP hash) all succeed and each gateway SNATs some of them."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=2)
    egress_rows.apply(dp.stack, lab.spec())
    dp.wait_hv_sync()
    policies = dp.stack.nbctl("lr-policy-list", "vpc1")
    assert "192.168.0.2, 192.168.0.3" in policies, policies

    results = []
    for pod in lab.pods:
        results += dp.tcp_connect(pod, SERVER4, PORT, count=20)
    split = lab.who(results)
    print(f"\nECMP split over 40 TCP connections from 2 pods: {split}")
    assert sum(split.get(g, 0) for g in ("gw1", "gw2")) == 40, split
    assert split.get("gw1", 0) > 0 and split.get("gw2", 0) > 0, split


def test_dual_stack_reroute(dataplane, egress_rows):
    """Dual-stack subnet1 (192.168.0.0/24 + fd00:10::/64): one 29100 policy per family, both
    gateways as nexthops; IPv4 and IPv6 connections egress SNATed by the gateways."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=1, dual_stack=True)
    pod = lab.pods[0]
    egress_rows.apply(dp.stack, lab.spec())
    dp.wait_hv_sync()
    policies = dp.stack.nbctl("lr-policy-list", "vpc1")
    assert "ip6.src == fd00:10::/64" in policies, policies

    v4 = lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=20))
    v6 = lab.who(dp.tcp_connect(pod, SERVER6, PORT, count=20))
    print(f"\ndual-stack split: IPv4 {v4}, IPv6 {v6}")
    assert set(v4) <= {"gw1", "gw2"} and sum(v4.values()) == 20, v4
    assert set(v6) <= {"gw1", "gw2"} and sum(v6.values()) == 20, v6
    assert len(v6) == 2, v6          # both gateways carry IPv6 flows too


def test_reroute_needs_a_covering_route(dataplane, egress_rows):
    """A custom VPC without any route to the destination: the 29100 policy is in the flows,
    yet nothing egresses, because lr_in_ip_routing drops unrouted packets before lr_in_policy
    (local-ovn-stack.md pitfall 4). Adding any covering route (here vpc1's default route to an
    address nothing answers) makes the same policy work. vegd's BFD-off mode depends on it."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=1, pods=1, vpc_default_route=False)
    pod = lab.pods[0]
    egress_rows.apply(dp.stack, lab.spec())
    dp.wait_hv_sync()
    lflows = dp.stack.lflows("vpc1").splitlines()
    assert [line for line in lflows if "lr_in_policy " in line and "priority=29100" in line]
    assert dp.tcp_connect(pod, SERVER4, PORT, count=2, timeout=1.0) == ["fail:TimeoutError"] * 2

    dp.stack.nbctl("lr-route-add", "vpc1", "0.0.0.0/0", "192.168.0.254")
    dp.wait_hv_sync()
    assert dp.tcp_connect(pod, SERVER4, PORT, count=2) == ["198.51.100.2"] * 2
