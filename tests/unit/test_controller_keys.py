"""Which reconcile keys a change concerns (controller/keys.py): the dependents the reference
implementation misses are covered here one by one."""

from __future__ import annotations

import dataclasses
import ipaddress

from vegd.controller.keys import deployment_keys, keys_for
from vegd.model.objects import (
    GATEWAY_LABEL,
    BfdPort,
    EgressPolicy,
    Namespace,
    NetworkAttachmentDefinition,
    Node,
    Pod,
    PodSelection,
    Snapshot,
    Subnet,
    Vpc,
    VpcEgressGateway,
)
from vegd.model.selectors import LabelSelector

net = ipaddress.ip_network
ip = ipaddress.ip_address

SUBNETS = (Subnet("ovn-default", "ovn-cluster", (net("10.16.0.0/16"),)),
           Subnet("subnet1", "vpc1", (net("192.168.0.0/24"),)),
           Subnet("macvlan1", "", (net("172.17.0.0/16"),), provider="eth1.default"))
G1 = VpcEgressGateway("default", "g1", "macvlan1",
                      policies=(EgressPolicy(True, subnets=("ovn-default",)),))
G2 = VpcEgressGateway("default", "g2", "macvlan1", vpc="vpc1", internal_subnet="subnet1",
                      selectors=(PodSelection(),), traffic_policy="Local")
G3 = VpcEgressGateway("ops", "g3", "macvlan1", vpc="vpc1",
                      policies=(EgressPolicy(True, ip_blocks=(net("192.168.0.0/25"),)),))
SNAP = Snapshot(gateways=(G1, G2, G3), subnets=SUBNETS,
                vpcs=(Vpc("vpc1", bfd_port=BfdPort(enabled=True)),))


def test_gateway_change_is_its_own_key():
    assert keys_for(G1, None, SNAP) == {"veg:default/g1"}


def test_gateway_pod_concerns_its_gateway_only():
    pod = Pod("default", "g2-abc", labels=((GATEWAY_LABEL, "g2"),), ips=(ip("192.168.0.9"),))
    assert keys_for(None, pod, SNAP) == {"veg:default/g2"}


def test_workload_pod_concerns_the_gateways_of_its_vpc_that_select_it_or_are_local():
    old = Pod("shop", "web", ips=(ip("10.16.0.5"),))
    new = Pod("shop", "web", ips=(ip("192.168.0.5"),))  # moved to vpc1 (recreated elsewhere)
    # g1 (default VPC) has only CIDR sources: its rows do not depend on pods
    assert keys_for(old, None, SNAP) == set()
    # g2 selects every pod of vpc1 (and is Local); g3's CIDR sources do not depend on pods
    assert keys_for(old, new, SNAP) == {"veg:default/g2"}


def test_pod_leaving_a_selector_is_seen_from_its_old_state():
    g4 = VpcEgressGateway("default", "g4", "macvlan1", selectors=(PodSelection(
        pod_selector=LabelSelector(match_labels=(("app", "web"),))),))
    snap = dataclasses.replace(SNAP, gateways=(*SNAP.gateways, g4))
    old = Pod("shop", "web", labels=(("app", "web"),), ips=(ip("10.16.0.5"),))
    new = Pod("shop", "web", ips=(ip("10.16.0.5"),))
    assert keys_for(old, new, snap) == {"veg:default/g4"}
    assert keys_for(new, new, snap) == set()


def test_pod_outside_every_subnet_concerns_nobody():
    assert keys_for(None, Pod("x", "y", ips=(ip("203.0.113.1"),)), SNAP) == set()


def test_namespace_labels_concern_gateways_with_selectors():
    assert keys_for(Namespace("shop"), Namespace("shop", (("a", "b"),)), SNAP) == \
        {"veg:default/g2"}


def test_subnet_change_concerns_its_vpc_and_gateways_that_name_it():
    assert keys_for(None, SUBNETS[1], SNAP) == {"vpc:vpc1", "veg:default/g2", "veg:ops/g3"}
    assert keys_for(None, SUBNETS[0], SNAP) == {"vpc:ovn-cluster", "veg:default/g1"}
    # the external subnet belongs to no VPC: every gateway that uses it
    assert keys_for(None, SUBNETS[2], SNAP) == {"veg:default/g1", "veg:default/g2",
                                                "veg:ops/g3"}


def test_vpc_change_concerns_the_vpc_and_its_gateways():
    assert keys_for(None, Vpc("vpc1"), SNAP) == {"vpc:vpc1", "veg:default/g2", "veg:ops/g3"}


def test_node_change_concerns_bfd_port_vpcs_and_local_gateways():
    assert keys_for(Node("n1"), Node("n1", (("bfd", "yes"),)), SNAP) == \
        {"vpc:vpc1", "veg:default/g2"}


def test_attachment_change_concerns_every_gateway():
    assert keys_for(None, NetworkAttachmentDefinition("default", "eth1"), SNAP) == \
        {"veg:default/g1", "veg:default/g2", "veg:ops/g3"}


def test_deployment_maps_to_its_gateway_by_owner_or_label():
    dep = {"metadata": {"namespace": "ops", "name": "veg-g3", "labels": {GATEWAY_LABEL: "g3"}}}
    assert deployment_keys(dep, SNAP) == {"veg:ops/g3"}
    owned = {"metadata": {"namespace": "ops", "name": "x", "ownerReferences": [
        {"kind": "VpcEgressGateway", "name": "g9", "uid": "u"}]}}
    assert deployment_keys(owned, SNAP) == {"veg:ops/g9"}
    assert deployment_keys({"metadata": {"name": "other"}}, SNAP) == set()


def test_long_gateway_names_are_found_from_their_shortened_pod_label():
    name = "g" * 70
    long_gw = VpcEgressGateway("default", name, "macvlan1", vpc="vpc1")
    snap = dataclasses.replace(SNAP, gateways=(*SNAP.gateways, long_gw))
    label = long_gw.pod_label
    assert len(label) <= 63 and label != name
    pod = Pod("default", "p", labels=((GATEWAY_LABEL, label),), ips=(ip("192.168.0.7"),))
    assert keys_for(None, pod, snap) == {f"veg:default/{name}"}
