"""plan/: destination-aware egress (destinationCIDRs / excludedCIDRs), pure, in memory.

The source match of each policy and selector gets `&& ip4.dst == {...}` / `&& ip4.dst != {...}`;
reroute and drop share it, so only the selected destinations go through the gateway and only they
fail closed; trafficPolicy Local's 29150 rows get the same clause. Route mode refuses
destinations (Validated=False).
"""

from __future__ import annotations

import hashlib

import pytest
from test_plan_fail_closed import objects, pod, policies

from vegd.model.errors import ValidationError
from vegd.model.parse import parse_gateway
from vegd.model.resolve import resolve_gateway
from vegd.model.snapshot import snapshot_from_objects
from vegd.plan import names
from vegd.plan.destinations import destination_set, local_node_set
from vegd.plan.gateway import plan_gateway
from vegd.plan.rows import AddressSet, RouterPolicy
from vegd.plan.settings import PlanSettings

SRC = "192.168.0.0/24"


def the_gateway(objs):
    return next(o for o in objs if o["kind"] == "VpcEgressGateway")


def with_dests(objs, policy=None, selector=None, selectors=None):
    gw = next(o for o in objs if o["kind"] == "VpcEgressGateway")
    if policy is not None:
        gw["spec"]["policies"][0].update(policy)
    if selectors is not None:
        gw["spec"]["selectors"] = selectors
    return objs


def plan_of(objs, policy_bfd=False):
    # policy mode with BFD: Kube-OVN's OVN only (stock OVN refuses it, docs/bfd-port.md)
    mode = "kube-ovn" if policy_bfd else "stock"
    settings = PlanSettings(bfd_port_mode=mode, policy_bfd_sessions=policy_bfd)
    snap = snapshot_from_objects(objs)
    gw = next(g for g in snap.gateways if g.name == "g")
    return plan_gateway(resolve_gateway(gw, snap, policy_bfd, mode), snap, settings)


def test_no_destinations_is_unchanged():
    assert policies(plan_of(objects(bfd=False))) == [(29100, f"ip4.src == {SRC}", "reroute")]


def test_included_and_excluded_destinations_extend_reroute_match():
    objs = with_dests(objects(bfd=False), policy={
        "destinationCIDRs": ["203.0.113.0/24", "198.51.100.0/24"],
        "excludedCIDRs": ["203.0.113.128/25"]})
    assert policies(plan_of(objs)) == [(29100, f"ip4.src == {SRC} && ip4.dst == "
                                        "{198.51.100.0/24, 203.0.113.0/24} && ip4.dst != "
                                        "{203.0.113.128/25}", "reroute")]


def test_excluded_only_keeps_every_other_destination():
    objs = with_dests(objects(bfd=False), policy={"excludedCIDRs": ["10.0.0.0/8"]})
    assert policies(plan_of(objs)) == [
        (29100, f"ip4.src == {SRC} && ip4.dst != {{10.0.0.0/8}}", "reroute")]


def test_drop_without_instances_covers_only_selected_destinations():
    objs = with_dests(objects(bfd=False, instances=0),
                      policy={"destinationCIDRs": ["203.0.113.0/24"]})
    assert policies(plan_of(objs)) == [
        (29090, f"ip4.src == {SRC} && ip4.dst == {{203.0.113.0/24}}", "drop")]


def test_policy_mode_bfd_drop_shares_the_destination_match():
    objs = with_dests(objects(bfd=True, mode="policy"),
                      policy={"destinationCIDRs": ["203.0.113.0/24"]})
    match = f"ip4.src == {SRC} && ip4.dst == {{203.0.113.0/24}}"
    assert sorted(policies(plan_of(objs, policy_bfd=True))) == [(29090, match, "drop"),
                                                                (29100, match, "reroute")]


def test_family_without_destinations_does_not_use_the_gateway():
    objs = with_dests(objects(bfd=False, cidr="192.168.0.0/24,fd00:1::/64",
                              blocks=("192.168.0.0/24", "fd00:1::/64")),
                      policy={"destinationCIDRs": ["2001:db8::/32"]})
    assert policies(plan_of(objs)) == [
        (29100, "ip6.src == fd00:1::/64 && ip6.dst == {2001:db8::/32}", "reroute")]


def test_ipv6_excluded():
    objs = with_dests(objects(bfd=False, cidr="fd00:1::/64", blocks=("fd00:1::/64",)),
                      policy={"excludedCIDRs": ["2001:db8:1::/48"]})
    assert policies(plan_of(objs)) == [
        (29100, "ip6.src == fd00:1::/64 && ip6.dst != {2001:db8:1::/48}", "reroute")]


def test_selectors_with_destinations_get_their_own_address_set():
    sel = {"podSelector": {"matchLabels": {"app": "a"}}}
    objs = objects(bfd=False, blocks=("192.168.5.0/24",), extra=[
        pod("a1", "192.168.0.10", labels={"app": "a"}),
        pod("b1", "192.168.0.11", labels={"app": "b"})])
    with_dests(objs, selectors=[
        dict(sel, destinationCIDRs=["203.0.113.0/24"]),
        {"podSelector": {"matchLabels": {"app": "b"}}}])
    desired = plan_of(objs)
    snap = snapshot_from_objects(objs)
    gw = next(g for g in snap.gateways if g.name == "g")
    restricted = destination_set("default/g", gw.selectors[0].destinations, 4)
    sets = {s.name: s.addresses for s in desired.of(AddressSet)}
    h = restricted.split(".")[1]
    assert sets == {restricted: ("192.168.0.10",), f"VEG.{h}_ip4": ("192.168.0.11",)}
    assert sorted(m for _, m, _ in policies(desired)) == sorted([
        "ip4.src == 192.168.5.0/24", f"ip4.src == ${restricted} && ip4.dst == {{203.0.113.0/24}}",
        f"ip4.src == $VEG.{h}_ip4"])


def test_policies_with_different_destinations_add_up():
    objs = objects(bfd=False, blocks=(SRC,))
    gw = next(o for o in objs if o["kind"] == "VpcEgressGateway")
    gw["spec"]["policies"].append({"snat": True, "ipBlocks": ["192.168.0.0/25"],
                                   "destinationCIDRs": ["203.0.113.0/24"]})
    assert sorted(policies(plan_of(objs))) == [
        (29100, "ip4.src == 192.168.0.0/24", "reroute"),
        (29100, "ip4.src == 192.168.0.0/25 && ip4.dst == {203.0.113.0/24}", "reroute")]


@pytest.mark.parametrize("field,value,why", [
    ("destinationCIDRs", ["203.0.113.0/24", "203.0.113.128/25"], "overlaps"),
    ("destinationCIDRs", ["203.0.113.1/24"], "host bits"),
    ("destinationCIDRs", ["nope"], "is not a CIDR"),
    ("destinationCIDRs", "203.0.113.0/24", "must be a list"),
    ("excludedCIDRs", ["10.0.0.0/8", "10.1.0.0/16"], "overlaps"),
])
def test_invalid_destination_lists(field, value, why):
    raw = objects(bfd=False)[-3]
    raw["spec"]["policies"][0][field] = value
    with pytest.raises(ValidationError, match=why) as e:
        parse_gateway(raw)
    assert e.value.field == f"spec.policies[0].{field}"


@pytest.mark.parametrize("included,excluded,why", [
    (["203.0.113.0/24"], ["198.51.100.0/24"], "outside every destinationCIDR"),
    (["203.0.113.0/24"], ["203.0.113.0/24"], "excludes a whole destination"),
    (["203.0.113.0/24"], ["2001:db8::/32"], "outside every destinationCIDR"),
])
def test_excluded_must_lie_inside_a_destination(included, excluded, why):
    raw = objects(bfd=False)[-3]
    raw["spec"]["policies"][0].update(destinationCIDRs=included, excludedCIDRs=excluded)
    with pytest.raises(ValidationError, match=why):
        parse_gateway(raw)


def test_selector_destinations_are_validated_too():
    raw = objects(bfd=False)[-3]
    raw["spec"]["selectors"] = [{"podSelector": {"matchLabels": {"a": "b"}},
                                 "excludedCIDRs": ["x"]}]
    with pytest.raises(ValidationError) as e:
        parse_gateway(raw)
    assert e.value.field == "spec.selectors[0].excludedCIDRs"


@pytest.mark.parametrize("traffic", ["Cluster", "Local"])
def test_route_mode_refuses_destinations(traffic):
    """Also with trafficPolicy Local: its host routes cannot match a destination either."""
    objs = with_dests(objects(bfd=True, mode="route", traffic=traffic),
                      policy={"destinationCIDRs": ["203.0.113.0/24"]})
    with pytest.raises(ValidationError, match="bfdMode route") as e:
        plan_of(objs)
    assert e.value.field == "spec.policies[0].destinationCIDRs"


# trafficPolicy Local: instance g-0 (192.168.0.2) runs on n0, g-1 (192.168.0.3) on n1.
TO = {"destinationCIDRs": ["203.0.113.0/24"], "excludedCIDRs": ["203.0.113.128/25"]}
CLAUSE = " && ip4.dst == {203.0.113.0/24} && ip4.dst != {203.0.113.128/25}"


def local_rows(desired):
    sets = {s.name: s.addresses for s in desired.of(AddressSet)}
    pols = {p.match: p for p in desired.of(RouterPolicy) if p.priority == 29150}
    return sets, pols


def test_local_policies_carry_the_entrys_destinations():
    objs = with_dests(objects(bfd=False, traffic="Local",
                              extra=[pod("p0", "192.168.0.10", node="n0")]), policy=TO)
    desired = plan_of(objs)
    dests = parse_gateway(the_gateway(objs)).policies[0].destinations
    name = local_node_set("default/g", "n0", dests, 4)
    digest = hashlib.sha256
    assert name == (f"VEG.{digest(b'default/g').hexdigest()[:12]}.n"
                    f"{digest(b'n0').hexdigest()[:8]}.d{digest(str(dests).encode()).hexdigest()[:8]}"
                    "_ip4")
    sets, pols = local_rows(desired)
    assert sets == {name: ("192.168.0.10",)}
    assert list(pols) == [f"ip4.src == ${name}{CLAUSE}"]
    assert pols[f"ip4.src == ${name}{CLAUSE}"].nexthops == ("192.168.0.2",)
    assert (29100, f"ip4.src == {SRC}{CLAUSE}", "reroute") in policies(desired)


def test_local_node_set_per_destination_list():
    """Entries with different destination lists get a node set each: a pod goes to its node's
    instance for the destinations of its own entries only. A pod in two entries is in both sets
    (entries add up, as the 29100 rows do)."""
    sel = {"podSelector": {"matchLabels": {"app": "a"}}, **TO}
    objs = objects(bfd=False, traffic="Local", blocks=("192.168.0.0/25",), extra=[
        pod("low", "192.168.0.10", node="n0"),
        pod("both", "192.168.0.11", node="n0", labels={"app": "a"}),
        pod("high", "192.168.0.200", node="n0", labels={"app": "a"}),
        pod("far", "192.168.0.201", node="n1", labels={"app": "a"}),
        pod("none", "192.168.0.202", node="n0")])
    with_dests(objs, selectors=[sel])
    desired = plan_of(objs)
    dests = parse_gateway(the_gateway(objs)).selectors[0].destinations
    plain = names.node_set("default/g", "n0", 4)
    restricted = {n: local_node_set("default/g", n, dests, 4) for n in ("n0", "n1")}
    sets, pols = local_rows(desired)
    assert {k: v for k, v in sets.items() if ".n" in k} == {
        plain: ("192.168.0.10", "192.168.0.11"),
        restricted["n0"]: ("192.168.0.11", "192.168.0.200"),
        restricted["n1"]: ("192.168.0.201",)}
    assert {m: p.nexthops for m, p in pols.items()} == {
        f"ip4.src == ${plain}": ("192.168.0.2",),
        f"ip4.src == ${restricted['n0']}{CLAUSE}": ("192.168.0.2",),
        f"ip4.src == ${restricted['n1']}{CLAUSE}": ("192.168.0.3",)}


def test_local_in_policy_mode_is_backed_by_reroute_and_drop_of_the_same_destinations():
    objs = with_dests(objects(bfd=True, mode="policy", traffic="Local",
                              extra=[pod("p0", "192.168.0.10", node="n0")]), policy=TO)
    desired = plan_of(objs, policy_bfd=True)
    _, pols = local_rows(desired)
    (local,) = pols.values()
    assert local.match.endswith(CLAUSE) and local.nexthops == ("192.168.0.2",)
    assert [b.dst_ip for b in local.bfd_sessions] == ["192.168.0.2"]
    assert sorted(p for p in policies(desired) if p[0] != 29150) == [
        (29090, f"ip4.src == {SRC}{CLAUSE}", "drop"),
        (29100, f"ip4.src == {SRC}{CLAUSE}", "reroute")]


def test_local_family_without_destinations_has_no_local_policy():
    objs = with_dests(objects(bfd=False, traffic="Local", cidr="192.168.0.0/24,fd00:1::/64",
                              blocks=("192.168.0.0/24", "fd00:1::/64"),
                              extra=[pod("p0", "192.168.0.10,fd00:1::10", node="n0")]),
                      policy={"destinationCIDRs": ["2001:db8::/32"]})
    sets, pols = local_rows(plan_of(objs))
    assert [s for s in sets if ".n" in s] == [s for s in sets if s.endswith("_ip6")]
    assert [m.split(" && ", 1)[1] for m in pols] == ["ip6.dst == {2001:db8::/32}"]
