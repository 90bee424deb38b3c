"""model/: parsing defaults, selector semantics, resolution errors (pure, no I/O)."""

from __future__ import annotations

import ipaddress

import pytest

from vegd.model.errors import ValidationError
from vegd.model.parse import parse_gateway, parse_subnet, parse_vpc
from vegd.model.selectors import parse_label_selector, parse_node_selector_term


def gw(**spec):
    base = {"externalSubnet": "ext", "policies": [{"snat": True, "subnets": ["ovn-default"]}]}
    base.update(spec)
    return {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
            "metadata": {"name": "g", "namespace": "ns"}, "spec": base}


def test_defaults_follow_the_seed_tables():
    g = parse_gateway(gw())
    assert (g.vpc, g.replicas, g.traffic_policy, g.bfd_mode) == (
        "ovn-cluster", 1, "Cluster", "route")
    assert (g.bfd.enabled, g.bfd.min_rx, g.bfd.min_tx, g.bfd.multiplier) == (False, 1000, 1000, 3)
    assert g.key == "ns/g"


def test_instance_ips_accept_dual_stack_entries():
    g = parse_gateway(gw(internalIPs=["10.16.0.101,fd00::11", "10.16.0.102"]))
    assert g.internal_ips[0] == (ipaddress.ip_address("10.16.0.101"),
                                 ipaddress.ip_address("fd00::11"))


@pytest.mark.parametrize("spec, field", [
    ({"internalIPs": ["10.0.0.1,10.0.0.2"]}, "spec.internalIPs[0]"),
    ({"internalIPs": ["10.0.0.1", "10.0.0.1"]}, "spec.internalIPs"),
    ({"prefix": "Bad_Prefix"}, "spec.prefix"),
    ({"externalSubnet": ""}, "spec.externalSubnet"),
    ({"bfd": {"multiplier": "3"}}, "spec.bfd.multiplier"),
    ({"bfdMode": "magic"}, "spec.bfdMode"),
    ({"selectors": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]},
     "spec.selectors[0].podSelector.matchExpressions[0].values"),
])
def test_field_errors_name_the_field(spec, field):
    with pytest.raises(ValidationError) as err:
        parse_gateway(gw(**spec))
    assert err.value.field == field
    assert str(err.value).startswith("VpcEgressGateway ns/g: ")


def test_label_selector_semantics():
    sel = parse_label_selector({"matchLabels": {"a": "1"}, "matchExpressions": [
        {"key": "b", "operator": "In", "values": ["x", "y"]},
        {"key": "c", "operator": "DoesNotExist"},
        {"key": "d", "operator": "NotIn", "values": ["no"]}]}, "o", "f")
    assert sel.matches({"a": "1", "b": "x"})
    assert not sel.matches({"a": "1", "b": "z"})
    assert not sel.matches({"a": "1", "b": "x", "c": ""})
    assert not sel.matches({"a": "1", "b": "x", "d": "no"})
    assert parse_label_selector({}, "o", "f").matches({"anything": "at all"})


def test_node_selector_fields_and_gt():
    term = parse_node_selector_term({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}],
        "matchExpressions": [{"key": "rank", "operator": "Gt", "values": ["2"]}]}, "o", "f")
    assert term.matches("n1", {"rank": "3"})
    assert not term.matches("n2", {"rank": "3"})
    assert not term.matches("n1", {"rank": "x"})


def test_subnet_defaults_gateway_and_dual_stack():
    s = parse_subnet({"metadata": {"name": "s"}, "spec": {"cidrBlock": "10.0.0.0/24,fd00::/64"}})
    assert [str(g) for g in s.gateways] == ["10.0.0.1", "fd00::1"]
    assert s.families == (4, 6)


def test_vpc_bfd_port_needs_an_ip_when_enabled():
    with pytest.raises(ValidationError, match=r"spec\.bfdPort\.ip: is required"):
        parse_vpc({"metadata": {"name": "v"}, "spec": {"bfdPort": {"enabled": True}}})
    vpc = parse_vpc({"metadata": {"name": "v"},
                     "spec": {"bfdPort": {"enabled": True, "ip": "10.255.255.255,fdff::1"}}})
    assert [str(i) for i in vpc.bfd_port.ips] == ["10.255.255.255", "fdff::1"]


def test_source_claims_overlap_by_containment_either_way():
    from ipaddress import ip_network

    from vegd.model.resolve import _Claims
    claims = _Claims()
    for owner, net in (("a", "10.0.0.0/16"), ("b", "10.0.1.0/24"), ("c", "10.1.0.0/24"),
                       ("d", "fd00::/48"), ("e", "fd00:0:0:1::/64")):
        claims.add(("t", owner), ip_network(net))
    claims.seal()

    def owners(net: str) -> list[str]:
        return sorted(c[0][1] for c in claims.overlapping(ip_network(net)))
    assert owners("10.0.1.0/24") == ["a", "b"]
    assert owners("10.0.1.128/25") == ["a", "b"]  # inside both
    assert owners("10.0.0.0/8") == ["a", "b", "c"]  # contains all three
    assert owners("10.0.2.0/24") == ["a"]
    assert owners("10.2.0.0/16") == []
    assert owners("fd00:0:0:1::80/124") == ["d", "e"]
    assert owners("fd00:0:0:2::/64") == ["d"]
    assert owners("fd01::/64") == []


def test_a_snapshot_gives_every_pod_whether_it_has_them_as_a_tuple_or_by_namespace():
    from vegd.model.objects import Pod, Snapshot

    a, b, c = Pod("ns1", "a"), Pod("ns1", "b"), Pod("ns2", "c")
    flat = Snapshot(pods=(a, b, c))
    grouped = Snapshot(pods_by_namespace={"ns1": (a, b), "ns2": (c,)})  # the informer cache's
    for snap in (flat, grouped):
        assert sorted(p.key for p in snap.all_pods()) == [a.key, b.key, c.key]
        assert snap.pods_in("ns1") == (a, b) and snap.pods_in("ns3") == ()
        assert sorted(snap.pod_namespaces()) == ["ns1", "ns2"]
