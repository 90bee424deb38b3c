"""plan/: the row shapes of every mode, from snapshots built in memory (pure, no I/O)."""

from __future__ import annotations

import json

import pytest

from vegd.model.errors import ValidationError
from vegd.model.instances import workload
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.plan import names
from vegd.plan.gateway import plan_gateway
from vegd.plan.rows import Bfd, RouterPolicy, StaticRoute
from vegd.plan.settings import PlanSettings
from vegd.plan.vpc import plan_vpc


def objects(bfd=False, mode="route", replicas=2, phases=("Running", "Running")):
    out = [
        {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": "v"},
         "spec": {"bfdPort": {"enabled": True, "ip": "10.255.255.255"}}},
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "in"},
         "spec": {"vpc": "v", "cidrBlock": "192.168.0.0/24"}},
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "ext"},
         "spec": {"cidrBlock": "172.17.0.0/16", "provider": "eth1.default"}},
        {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
         "metadata": {"name": "g", "namespace": "default"},
         "spec": {"vpc": "v", "internalSubnet": "in", "externalSubnet": "ext", "replicas": replicas,
                  "bfd": {"enabled": bfd, "minTX": 300, "minRX": 200}, "bfdMode": mode,
                  "policies": [{"snat": True, "ipBlocks": ["192.168.0.0/24", "10.0.0.0/8"]}]}},
    ]
    for i, phase in enumerate(phases):
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": f"g-{i}", "namespace": "default",
                                 "labels": {"ovn.kubernetes.io/vpc-egress-gateway": "g"},
                                 "annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(
                                     [{"name": "default/eth1", "ips": [f"172.17.0.{10 + i}"]}])}},
                    "spec": {"nodeName": f"n{i}"},
                    "status": {"phase": phase, "podIPs": [{"ip": f"192.168.0.{2 + i}"}]}})
    return out


def plan(settings=None, **kw):
    settings = settings or PlanSettings()
    snap = snapshot_from_objects(objects(**kw))
    resolved = resolve_gateway(snap.gateways[0], snap, settings.policy_bfd_sessions,
                               settings.bfd_port_mode)
    return plan_gateway(resolved, snap, settings), resolved, snap


def test_bfd_off_one_reroute_policy_per_source():
    desired, _, _ = plan()
    pols = desired.of(RouterPolicy)
    assert [(p.priority, p.match, p.nexthops) for p in pols] == [
        (29100, "ip4.src == 10.0.0.0/8", ("192.168.0.2", "192.168.0.3")),
        (29100, "ip4.src == 192.168.0.0/24", ("192.168.0.2", "192.168.0.3"))]
    assert all(dict(p.external_ids) == {"vendor": "vegd", "vpc-egress-gateway": "default/g",
                                        "af": "4"} for p in pols)


def test_route_mode_routes_and_bfd_rows_with_swapped_timers():
    desired, _, _ = plan(bfd=True)
    routes = desired.of(StaticRoute)
    assert len(routes) == 4 and all(r.policy == "src-ip" and r.bfd for r in routes)
    bfds = desired.of(Bfd)
    assert [(b.logical_port, b.dst_ip, b.min_rx, b.min_tx, b.detect_mult) for b in bfds] == [
        ("bfd@v", "192.168.0.2", 300, 200, 3), ("bfd@v", "192.168.0.3", 300, 200, 3)]
    # no reroute policies; the fail-closed allow/drop rows are tests/unit/test_plan_fail_closed.py
    assert {p.action for p in desired.of(RouterPolicy)} == {"allow", "drop"}


def test_policy_mode_has_sessions_and_drops():
    settings = PlanSettings(bfd_port_mode="kube-ovn", policy_bfd_sessions=True)
    desired, _, _ = plan(settings, bfd=True, mode="policy")
    pols = desired.of(RouterPolicy)
    reroutes = [p for p in pols if p.action == "reroute"]
    drops = [p for p in pols if p.action == "drop"]
    assert len(reroutes) == 2 and len(drops) == 2
    assert all(len(p.bfd_sessions) == 2 for p in reroutes)
    assert {p.priority for p in drops} == {names.DROP_PRIORITY}


def test_policy_mode_with_bfd_is_refused_on_stock_ovn():
    """Stock ovn-northd (24.03+) runs a policy's session only on the port that routes to the
    next hop, and ovn-controller only on gateway ports: bfd@<vpc> sessions never come up."""
    with pytest.raises(ValidationError, match=r"spec\.bfdMode: policy mode with BFD needs "
                                              r"Kube-OVN's OVN"):
        plan(PlanSettings(policy_bfd_sessions=True), bfd=True, mode="policy")
    desired, _, _ = plan(PlanSettings(policy_bfd_sessions=True), mode="policy")  # BFD off: fine
    assert {p.action for p in desired.of(RouterPolicy)} == {"reroute"}


def test_pods_not_running_are_not_nexthops():
    desired, resolved, snap = plan(phases=("Running", "Pending"))
    assert desired.of(RouterPolicy)[0].nexthops == ("192.168.0.2",)
    problems = workload(resolved, snap).problems
    assert "pod default/g-1 is Pending" in problems
    assert "1 of 2 instances are ready" in problems


def test_vpc_stock_mode_adds_peer_switch_and_ttl_helper():
    snap = snapshot_from_objects(objects())
    desired = plan_vpc(snap.vpc("v"), snap, PlanSettings())
    kinds = sorted(type(r).__name__ for r in desired.rows)
    assert kinds == ["Bfd", "HaChassisGroup", "RouterPort", "Switch"]
    patched = plan_vpc(snap.vpc("v"), snap, PlanSettings(bfd_port_mode="kube-ovn"))
    assert sorted(type(r).__name__ for r in patched.rows) == ["HaChassisGroup", "RouterPort"]


def test_ttl_helpers_only_on_subnets_on_the_router():
    """A BFD row naming a router port that does not exist kills ovn-northd 25.03.0: subnets
    that are not on the router (macvlan, `<nad>.<ns>` providers) get none."""
    objs = [
        *objects(),
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "mv"},
         "spec": {"vpc": "v", "cidrBlock": "172.18.0.0/16", "provider": "eth1.default"}},
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "att"},
         "spec": {"vpc": "v", "cidrBlock": "192.168.9.0/24", "provider": "net2.default.ovn"}}]
    snap = snapshot_from_objects(objs)
    bfds = plan_vpc(snap.vpc("v"), snap, PlanSettings()).of(Bfd)
    assert sorted(b.logical_port for b in bfds) == ["v-att", "v-in"]


def test_names_are_deterministic():
    assert names.owner_hash("default/gateway1") == names.owner_hash("default/gateway1")
    assert names.selector_set("default/g", 6).endswith("_ip6")
    mac = names.bfd_port_mac("vpc1")
    assert mac.startswith("0a:") and mac == names.bfd_port_mac("vpc1")
    assert names.ovn_prefix("10.0.0.5/32") == "10.0.0.5"
    assert names.ovn_prefix("fd00::5/128") == "fd00::5"


@pytest.mark.parametrize(("bfd", "mode", "policy", "whole"), [
    (False, "route", "Cluster", False), (True, "policy", "Cluster", False),
    (True, "route", "Cluster", True), (False, "route", "Local", True)])
def test_selector_set_members_are_the_plans_sets_where_only_they_read_pods(bfd, mode, policy,
                                                                          whole):
    from vegd.plan.gateway import selector_set_members
    from vegd.plan.rows import AddressSet
    objs = objects(bfd=bfd, mode=mode)
    spec = objs[3]["spec"]
    spec["trafficPolicy"] = policy
    spec["selectors"] = [{"namespaceSelector": {"matchLabels": {"egress": "on"}},
                          "podSelector": {"matchLabels": {"app": "web"}}}]
    objs.append({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": "shop", "labels": {"egress": "on"}}})
    for i, app in enumerate(("web", "web", "db")):
        objs.append({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": f"p{i}", "namespace": "shop", "labels": {"app": app}},
                     "spec": {"nodeName": "n0"},
                     "status": {"phase": "Running", "podIPs": [{"ip": f"192.168.0.{50 + i}"}]}})
    settings = PlanSettings(bfd_port_mode="vegd")
    snap = snapshot_from_objects(objs)
    resolved = resolve_gateway(snap.gateways[0], snap, True, settings.bfd_port_mode)
    members = selector_set_members(resolved, snap)
    if whole:  # other rows read selected pods too
        assert members is None
        return
    sets = {r.name: r.addresses for r in plan_gateway(resolved, snap, settings).of(AddressSet)}
    assert members == sets == {names.selector_set("default/g", 4): ("192.168.0.50",
                                                                    "192.168.0.51")}
