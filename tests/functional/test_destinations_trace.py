"""Destination-aware egress on a real NB + northd, shown with ovn-trace (docs/nb-contract.md).

gateway2 (vpc1, source 192.168.0.0/24, instances .2/.3, BFD off) sends only 203.0.113.0/24
through the gateway, except 203.0.113.128/25. vpc1 has a covering default route via
192.168.0.254 ("vnat"): the VPC's normal route. A pod of the source reaches an included
destination through an instance (ECMP), an excluded one and one outside the included list
through the default route. Without instances, only the included destinations are dropped.
With trafficPolicy Local a selected pod on the node of instance gw2 goes to gw2 for an included
destination and to the default route for an excluded one. Route mode refuses destinations; the
control at the end shows why: an `allow` policy for an excluded destination does not undo the
src-ip route, the packet still goes to an instance.
"""

from __future__ import annotations

import re

from scenario import pod
from test_fail_closed_trace import EXTERNAL, Tracer, add_lsp, set_sessions

INCLUDED = "203.0.113.0/24"
EXCLUDED = "203.0.113.128/25"
EXCLUDED_DST = "203.0.113.200"
OTHER_DST = "198.51.100.10"


def _vpc1_lsps(ovn):
    ovn.nbctl("lr-route-add", "vpc1", "0.0.0.0/0", "192.168.0.254")
    add_lsp(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10")
    add_lsp(ovn, "subnet1", "vnat", "0a:58:c0:a8:00:fe", "192.168.0.254")
    add_lsp(ovn, "subnet1", "gw2", "0a:58:c0:a8:00:02", "192.168.0.2")
    add_lsp(ovn, "subnet1", "gw3", "0a:58:c0:a8:00:03", "192.168.0.3")
    return Tracer(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10",
                  "0a:58:c0:a8:00:01")


def _restrict(seed, bfd=False):
    gw = seed.find("VpcEgressGateway", "gateway2")
    gw["spec"]["bfd"]["enabled"] = bfd
    gw["spec"]["policies"][0].update(destinationCIDRs=[INCLUDED], excludedCIDRs=[EXCLUDED])
    return gw


def test_only_included_destinations_go_through_the_gateway(seed, capsys):
    ovn = seed.ovn
    src = _vpc1_lsps(ovn)
    _restrict(seed)
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    assert seed.apply(capsys=capsys)[1]["transactions"] == 0
    pols = ovn.nbctl("lr-policy-list", "vpc1")
    assert re.search(r"29100 ip4.src == 192.168.0.0/24 && ip4.dst == \{203.0.113.0/24\} && "
                     r"ip4.dst != \{203.0.113.128/25\}\s+reroute\s+192.168.0.2, 192.168.0.3",
                     pols), pols
    ovn.sync()
    assert {src.outputs(EXTERNAL, select=i)[0] for i in (1, 2)} == {"gw2", "gw3"}
    assert src.outputs(EXCLUDED_DST) == ["vnat"]
    assert src.outputs(OTHER_DST) == ["vnat"]

    # no instance: fail closed for the included destinations only
    for p in seed.pods_of("gateway2"):
        seed.remove("Pod", p["metadata"]["name"])
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    ovn.sync()
    assert src.outputs(EXTERNAL) == []
    assert src.outputs(EXCLUDED_DST) == ["vnat"]
    assert src.outputs(OTHER_DST) == ["vnat"]


def test_route_mode_refuses_destinations_and_why(seed, capsys):
    ovn = seed.ovn
    src = _vpc1_lsps(ovn)
    _restrict(seed, bfd=True)
    before = ovn.nbctl("lr-policy-list", "vpc1")
    code, err = seed.apply(capsys=capsys)
    assert code == 1 and "spec.policies[0].destinationCIDRs" in err and "src-ip" in err, err
    assert ovn.nbctl("lr-policy-list", "vpc1") == before  # nothing written

    # control: the route-mode rows as they are, plus an `allow` for the excluded destination
    gw = seed.find("VpcEgressGateway", "gateway2")
    for key in ("destinationCIDRs", "excludedCIDRs"):
        del gw["spec"]["policies"][0][key]
    assert seed.apply(capsys=capsys)[0] == 0
    set_sessions(ovn, "bfd@vpc1", {"192.168.0.2": "up", "192.168.0.3": "up"})
    ovn.nbctl("lr-policy-add", "vpc1", "29096",
              f"ip4.src == 192.168.0.0/24 && ip4.dst == {EXCLUDED}", "allow")
    ovn.sync()
    assert src.outputs(EXCLUDED_DST)[0] in ("gw2", "gw3")  # still the instance, not vnat


def test_local_traffic_policy_prefers_the_nodes_instance_for_included_destinations(seed, capsys):
    """trafficPolicy Local: pod1 (on kube-ovn-worker, like instance gw2) is chosen by a selector
    with destinations; its included destination goes to gw2 only, the excluded one and one outside
    the list follow the VPC's default route. pod2, inside the policy's (unrestricted) block on the
    same node, goes to gw2 for every destination: each destination list has its own node set."""
    ovn = seed.ovn
    src = _vpc1_lsps(ovn)
    add_lsp(ovn, "subnet1", "pod2", "0a:58:c0:a8:00:82", "192.168.0.130")
    other = Tracer(ovn, "subnet1", "pod2", "0a:58:c0:a8:00:82", "192.168.0.130",
                   "0a:58:c0:a8:00:01")
    gw = seed.find("VpcEgressGateway", "gateway2")["spec"]
    gw.update(trafficPolicy="Local", bfd={"enabled": False})
    gw["policies"][0]["ipBlocks"] = ["192.168.0.128/25"]
    gw["selectors"] = [{"podSelector": {"matchLabels": {"app": "a"}},
                        "destinationCIDRs": [INCLUDED], "excludedCIDRs": [EXCLUDED]}]
    seed.objects += [pod("pod1", "192.168.0.10", labels={"app": "a"}, switch="subnet1"),
                     pod("pod2", "192.168.0.130", switch="subnet1")]
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    assert seed.apply(capsys=capsys)[1]["transactions"] == 0
    pols = ovn.nbctl("lr-policy-list", "vpc1")
    clause = f" && ip4.dst == {{{INCLUDED}}} && ip4.dst != {{{EXCLUDED}}}"
    local = {}  # clause -> (address set, nexthops)
    for line in pols.splitlines():
        if m := re.match(r"\s*29150\s+ip4.src == \$(\S+)(.*?)\s+reroute\s+(.+?)\s*$", line):
            local[m[2]] = (m[1], m[3])
    assert {c: hop for c, (_, hop) in local.items()} == {"": "192.168.0.2",
                                                       clause: "192.168.0.2"}, pols
    members = {c: ovn.nb_rows("Address_Set", f"name={name}")[0]["addresses"]
               for c, (name, _) in local.items()}
    assert members == {"": "192.168.0.130", clause: "192.168.0.10"}
    ovn.sync()
    assert {src.outputs(EXTERNAL, select=i)[0] for i in (1, 2)} == {"gw2"}
    assert src.outputs(EXCLUDED_DST) == ["vnat"]
    assert src.outputs(OTHER_DST) == ["vnat"]
    assert other.outputs(EXCLUDED_DST) == ["gw2"]

    # the local instance gone: the included destination still goes through the gateway
    seed.remove("Pod", next(p["metadata"]["name"] for p in seed.pods_of("gateway2")
                            if p["spec"]["nodeName"] == "kube-ovn-worker"))
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    ovn.sync()
    assert "29150" not in ovn.nbctl("lr-policy-list", "vpc1")
    assert src.outputs(EXTERNAL) == ["gw3"]
    assert src.outputs(EXCLUDED_DST) == ["vnat"]
