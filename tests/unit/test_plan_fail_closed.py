"""plan/: route mode fails closed with static policies (docs/fail-closed.md), pure, in memory.

Route mode with BFD on writes, per family and per source match (prefix or selected pod outside
every prefix): a 29095 `allow` for what routing sent to an instance (`reg0`/`xxreg0` == one of
the nexthops) and a 29090 `drop` for the rest of the source's traffic that leaves the VPC's own
subnets.
"""

from __future__ import annotations

import ipaddress
import json
import re

import pytest

from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.plan import names
from vegd.plan.gateway import plan_gateway
from vegd.plan.rows import RouterPolicy, StaticRoute
from vegd.plan.settings import PlanSettings

IDS = (("af", "4"), ("vendor", "vegd"), ("vpc-egress-gateway", "default/g"))


def subnet(name, cidr, vpc="v", provider=None):
    spec = {"cidrBlock": cidr}
    if vpc:
        spec["vpc"] = vpc
    if provider:
        spec["provider"] = provider
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": name},
            "spec": spec}


def pod(name, ips, node="n0", labels=None, namespace="default", instance_of=""):
    meta = {"name": name, "namespace": namespace, "labels": dict(labels or {})}
    if instance_of:
        meta["labels"]["ovn.kubernetes.io/vpc-egress-gateway"] = instance_of
        meta["annotations"] = {"k8s.v1.cni.cncf.io/network-status": json.dumps(
            [{"name": "default/eth1", "ips": ["172.17.0.10"]}])}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIPs": [{"ip": i} for i in ips.split(",")]}}


def objects(*, bfd=True, mode="route", instances=2, cidr="192.168.0.0/24",
            blocks=("192.168.0.0/24",), vpc="v", extra=(), selectors=None, traffic="Cluster"):
    out = [
        {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": vpc},
         "spec": {"bfdPort": {"enabled": True, "ip": "10.255.255.255,fd00:ff::ff"}}},
        subnet("in", cidr, vpc=vpc),
        subnet("ext", "172.17.0.0/16", vpc="", provider="eth1.default"),
        *extra,
    ]
    spec = {"vpc": vpc, "internalSubnet": "in", "externalSubnet": "ext", "replicas": instances,
            "bfd": {"enabled": bfd}, "bfdMode": mode, "trafficPolicy": traffic,
            "policies": [{"snat": True, "ipBlocks": list(blocks)}]}
    if selectors:
        spec["selectors"] = selectors
    out.append({"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
                "metadata": {"name": "g", "namespace": "default"}, "spec": spec})
    nets = [ipaddress.ip_network(c) for c in cidr.split(",")]
    for i in range(instances):
        ips = ",".join(str(n.network_address + 2 + i) for n in nets)
        out.append(pod(f"g-{i}", ips, node=f"n{i}", instance_of="g"))
    return out


def plan(settings=None, **kw):
    settings = settings or PlanSettings()
    snap = snapshot_from_objects(objects(**kw))
    gw = next(g for g in snap.gateways if g.name == "g")
    return plan_gateway(resolve_gateway(gw, snap, settings.policy_bfd_sessions,
                                        settings.bfd_port_mode), snap, settings)


def policies(desired, action=None):
    return [(p.priority, p.match, p.action) for p in desired.of(RouterPolicy)
            if action is None or p.action == action]


def test_route_mode_allow_and_drop_per_source():
    desired = plan()
    assert policies(desired) == [
        (29095, "ip4.src == 192.168.0.0/24 && reg0 == {192.168.0.2, 192.168.0.3}", "allow"),
        (29090, "ip4.src == 192.168.0.0/24 && ip4.dst != {192.168.0.0/24}", "drop")]
    for p in desired.of(RouterPolicy):
        assert p.external_ids == IDS and p.nexthops == () and p.bfd_sessions == ()
    assert (names.DROP_PRIORITY, names.ALLOW_PRIORITY, names.POLICY_PRIORITY) == (
        29090, 29095, 29100)


def test_every_route_nexthop_is_allowed_for_its_source():
    """Whatever subset of sessions is up, routing can only pick a route's nexthop: the allow of
    that route's source must list it, or live traffic would be dropped."""
    pods = [pod(f"p{i}", f"192.168.0.{20 + i}", node=f"n{i % 2}") for i in range(3)]
    outside = pod("o1", "192.168.0.99", labels={"app": "x"})
    desired = plan(traffic="Local", extra=[*pods, outside], blocks=("192.168.0.16/28",),
                   selectors=[{"podSelector": {"matchLabels": {"app": "x"}}}])
    allows = {m.split(" && ")[0]: m for _, m, _ in policies(desired, "allow")}
    routes = desired.of(StaticRoute)
    assert routes
    for r in routes:
        net = ipaddress.ip_network(r.ip_prefix)
        src = next(s for s in allows
                   if net.subnet_of(ipaddress.ip_network(s.removeprefix("ip4.src == "))))
        assert re.search(rf"reg0 == {{[^}}]*\b{re.escape(r.nexthop)}\b", allows[src]), (r, allows)


def test_ipv6_uses_xxreg0_and_ip6_dst():
    desired = plan(cidr="fd00:10::/64", blocks=("fd00:10::/64",))
    assert policies(desired) == [
        (29095, "ip6.src == fd00:10::/64 && xxreg0 == {fd00:10::2, fd00:10::3}", "allow"),
        (29090, "ip6.src == fd00:10::/64 && ip6.dst != {fd00:10::/64}", "drop")]
    assert all(dict(p.external_ids)["af"] == "6" for p in desired.of(RouterPolicy))


def test_dual_stack_one_pair_per_family():
    desired = plan(cidr="192.168.0.0/24,fd00:10::/64", blocks=("192.168.0.0/24", "fd00:10::/64"))
    assert policies(desired) == [
        (29095, "ip4.src == 192.168.0.0/24 && reg0 == {192.168.0.2, 192.168.0.3}", "allow"),
        (29090, "ip4.src == 192.168.0.0/24 && ip4.dst != {192.168.0.0/24}", "drop"),
        (29095, "ip6.src == fd00:10::/64 && xxreg0 == {fd00:10::2, fd00:10::3}", "allow"),
        (29090, "ip6.src == fd00:10::/64 && ip6.dst != {fd00:10::/64}", "drop")]


def test_internal_destinations_are_the_vpcs_router_subnets_only():
    extra = [subnet("other", "10.1.0.0/16"), subnet("inside-other", "10.1.2.0/24"),
             subnet("attach", "10.2.0.0/16", provider="net1.default.ovn"),
             subnet("macvlan", "10.3.0.0/16", provider="net2.default"),
             subnet("elsewhere", "10.4.0.0/16", vpc="w"),
             subnet("v6only", "fd00:99::/64")]
    desired = plan(extra=extra)
    drop = policies(desired, "drop")
    assert drop == [(29090, "ip4.src == 192.168.0.0/24 && ip4.dst != "
                            "{10.1.0.0/16, 10.2.0.0/16, 192.168.0.0/24}", "drop")]


def test_default_vpc_counts_subnets_without_a_vpc():
    extra = [subnet("join", "100.64.0.0/16", vpc="ovn-cluster"), subnet("legacy", "10.9.0.0/16",
                                                                       vpc="")]
    desired = plan(vpc="ovn-cluster", cidr="10.16.0.0/16", blocks=("10.16.0.0/16",), extra=extra)
    assert policies(desired, "drop") == [
        (29090, "ip4.src == 10.16.0.0/16 && ip4.dst != {10.9.0.0/16, 10.16.0.0/16, 100.64.0.0/16}",
         "drop")]
    assert policies(desired, "allow") == [
        (29095, "ip4.src == 10.16.0.0/16 && reg0 == {10.16.0.2, 10.16.0.3}", "allow")]


def test_no_instance_keeps_only_the_drops():
    desired = plan(instances=0, blocks=("192.168.0.0/24", "10.0.0.0/8"))
    assert not desired.of(StaticRoute)
    assert policies(desired) == [
        (29090, "ip4.src == 10.0.0.0/8 && ip4.dst != {192.168.0.0/24}", "drop"),
        (29090, "ip4.src == 192.168.0.0/24 && ip4.dst != {192.168.0.0/24}", "drop")]


def test_drops_do_not_change_with_the_number_of_instances():
    """0 -> 1 -> 3 instances: the drop rows stay (same keys, no window); only allows change."""
    drops = [policies(plan(instances=n), "drop") for n in (0, 1, 3)]
    assert drops[0] == drops[1] == drops[2]
    assert policies(plan(instances=1), "allow") == [
        (29095, "ip4.src == 192.168.0.0/24 && reg0 == {192.168.0.2}", "allow")]


def test_selected_pods_outside_the_sources_get_their_own_pair():
    extra = [pod("a", "192.168.0.40", labels={"app": "x"}),
             pod("b", "192.168.0.5", labels={"app": "x"})]   # inside the source: no own rows
    desired = plan(blocks=("192.168.0.0/29",), extra=extra,
                   selectors=[{"podSelector": {"matchLabels": {"app": "x"}}}])
    matches = [m for _, m, _ in policies(desired)]
    assert matches == [
        "ip4.src == 192.168.0.0/29 && reg0 == {192.168.0.2, 192.168.0.3}",
        "ip4.src == 192.168.0.0/29 && ip4.dst != {192.168.0.0/24}",
        "ip4.src == 192.168.0.40 && reg0 == {192.168.0.2, 192.168.0.3}",
        "ip4.src == 192.168.0.40 && ip4.dst != {192.168.0.0/24}"]
    assert "VEG." not in " ".join(matches)


def test_local_traffic_policy_adds_no_more_policies():
    pods = [pod(f"p{i}", f"192.168.0.{20 + i}", node=f"n{i % 2}") for i in range(4)]
    cluster = policies(plan(extra=pods))
    local = plan(extra=pods, traffic="Local")
    assert policies(local) == cluster
    assert any(r.ip_prefix == "192.168.0.20" for r in local.of(StaticRoute))


@pytest.mark.parametrize("bfd,mode", [(False, "route"), (True, "policy")])
def test_other_modes_are_unchanged(bfd, mode):
    settings = PlanSettings(bfd_port_mode="kube-ovn", policy_bfd_sessions=True)
    desired = plan(settings, bfd=bfd, mode=mode)
    assert not [p for p in desired.of(RouterPolicy) if p.priority == names.ALLOW_PRIORITY]
    assert all("dst" not in p.match and "reg0" not in p.match for p in desired.of(RouterPolicy))
    empty = plan(settings, bfd=bfd, mode=mode, instances=0)
    assert policies(empty) == [(29090, "ip4.src == 192.168.0.0/24", "drop")]


def test_plan_is_deterministic():
    pods = [pod(f"p{i}", f"192.168.0.{20 + i}") for i in range(5)]
    assert plan(extra=pods) == plan(extra=list(reversed(pods)))
