"""End-to-end: destination-aware egress. Only the included destinations are SNATed by the
gateway; an excluded one follows vpc1's own default route and arrives with the pod's address.

vpc1's default route (192.168.0.254) leads, through a "leak router" namespace, untranslated into
the external network (as in test_fail_closed.py), which holds two echo servers: 203.0.113.10
(inside destinationCIDRs 203.0.113.0/24) and 203.0.113.200 (inside excludedCIDRs
203.0.113.128/25). Each server answers with the client address it saw.
"""

from __future__ import annotations

import pytest

from .lab import PORT, SERVER4, build_egress_lab
from .rows import VegdApplyRows
from .test_fail_closed import add_leak_router

pytestmark = [pytest.mark.netns, pytest.mark.dataplane]

EXCLUDED_SERVER = "203.0.113.200"


class DestinationRows(VegdApplyRows):
    """vegd's rows with destinationCIDRs/excludedCIDRs on the gateway's SNAT policy."""

    def objects(self):
        objs = super().objects()
        for o in objs:
            if o["kind"] == "VpcEgressGateway":
                o["spec"]["policies"][0].update(destinationCIDRs=["203.0.113.0/24"],
                                                excludedCIDRs=["203.0.113.128/25"])
        return objs


def test_snat_only_for_included_destinations(dataplane, tmp_path):
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=1)
    pod = lab.pods[0]
    pod_ip = pod.addr(4)
    add_leak_router(lab)
    dp.exec(lab.ext, "ip", "addr", "add", f"{EXCLUDED_SERVER}/32", "dev", "lo")
    dp.start_echo_server(lab.ext, EXCLUDED_SERVER, PORT)

    rows = DestinationRows(workdir=tmp_path / "manifests")
    rows.apply(dp.stack, lab.spec())
    pols = dp.stack.nbctl("lr-policy-list", "vpc1")
    assert "ip4.dst == {203.0.113.0/24} && ip4.dst != {203.0.113.128/25}" in pols, pols
    dp.wait_hv_sync()

    included = lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=20))
    excluded = lab.who(dp.tcp_connect(pod, EXCLUDED_SERVER, PORT, count=20))
    print(f"\nto {SERVER4} (included): {included}; to {EXCLUDED_SERVER} (excluded): {excluded}")
    assert set(included) <= {"gw1", "gw2"} and sum(included.values()) == 20, included
    assert excluded == {pod_ip: 20}, excluded

    # control: the same gateway without destinations SNATs the excluded server's traffic too
    VegdApplyRows(workdir=tmp_path / "plain").apply(dp.stack, lab.spec())
    dp.wait_hv_sync()
    plain = lab.who(dp.tcp_connect(pod, EXCLUDED_SERVER, PORT, count=10))
    print(f"without destinations, to {EXCLUDED_SERVER}: {plain}")
    assert set(plain) <= {"gw1", "gw2"} and sum(plain.values()) == 10, plain


class LocalDestinationRows(DestinationRows):
    """The same with trafficPolicy Local, gw2 moved (in the manifests) to another node: the
    pod's node runs gw1 only."""

    def objects(self):
        objs = super().objects()
        for o in objs:
            if o["kind"] == "VpcEgressGateway":
                o["spec"]["trafficPolicy"] = "Local"
            if o["kind"] == "Pod" and o["metadata"]["name"].endswith("-gw2"):
                o["spec"]["nodeName"] = "another-node"
        return objs


def test_local_traffic_policy_only_for_included_destinations(dataplane, tmp_path):
    """trafficPolicy Local with destinations: the included destination leaves through the
    pod's node's instance only (gw1), the excluded one untranslated via vpc1's route."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=1)
    pod = lab.pods[0]
    add_leak_router(lab)
    dp.exec(lab.ext, "ip", "addr", "add", f"{EXCLUDED_SERVER}/32", "dev", "lo")
    dp.start_echo_server(lab.ext, EXCLUDED_SERVER, PORT)

    LocalDestinationRows(workdir=tmp_path / "manifests").apply(dp.stack, lab.spec())
    pols = dp.stack.nbctl("lr-policy-list", "vpc1")
    assert "29150" in pols and pols.count(
        "ip4.dst == {203.0.113.0/24} && ip4.dst != {203.0.113.128/25}") == 2, pols
    dp.wait_hv_sync()

    included = lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=20))
    excluded = lab.who(dp.tcp_connect(pod, EXCLUDED_SERVER, PORT, count=20))
    print(f"\nLocal: to {SERVER4} (included): {included}; to {EXCLUDED_SERVER}: {excluded}")
    assert included == {"gw1": 20}, included
    assert excluded == {pod.addr(4): 20}, excluded
