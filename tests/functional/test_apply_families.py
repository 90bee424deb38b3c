"""IPv6, dual stack, trafficPolicy Local and the BFD policy mode."""

from __future__ import annotations

import re

import yaml
from scenario import ROOT, Scenario, nb_dump, pod, seed_objects


def variant(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((ROOT / "examples/variants" / name / "all.yaml")
                                          .read_text()) if d]


def test_ipv6_only(seed, capsys):
    v6 = Scenario(seed.ovn, seed.dir, variant("ipv6"))
    code, report = v6.apply(capsys=capsys)
    assert code == 0, report
    routes = seed.ovn.nbctl("lr-route-list", "vpc1")
    for hop in ("fd00:192:168::2", "fd00:192:168::3"):
        assert re.search(rf"fd00:192:168::/64\s+{hop} src-ip ecmp ecmp-symmetric-reply bfd", routes)
    rows = seed.ovn.nb_rows("BFD", "logical_port=bfd@vpc1")
    assert sorted(r["dst_ip"] for r in rows) == ["fd00:192:168::2", "fd00:192:168::3"]
    assert all("af=6" in r["external_ids"] for r in rows)
    assert '"fdff::1"' in seed.ovn.nbctl("show", "vpc1")


def test_dual_stack(seed, capsys):
    ds = Scenario(seed.ovn, seed.dir, variant("dual-stack"))
    assert ds.apply(capsys=capsys)[0] == 0
    routes = seed.ovn.nbctl("lr-route-list", "vpc1")
    assert routes.count("src-ip ecmp ecmp-symmetric-reply bfd") == 4
    assert sorted(r["dst_ip"] for r in seed.ovn.nb_rows("BFD", "logical_port=bfd@vpc1")) == [
        "192.168.0.2", "192.168.0.3", "fd00:192:168::2", "fd00:192:168::3"]
    assert '["10.255.255.255", "fdff::1"]' in seed.ovn.nbctl("show", "vpc1")
    # one TTL helper per family on the subnet port (stock OVN arrangement)
    helpers = seed.ovn.nb_rows("BFD", "logical_port=vpc1-subnet1")
    assert sorted(r["dst_ip"] for r in helpers) == ["192.168.0.1", "fd00:192:168::1"]


def test_dual_stack_default_vpc_policies(seed, capsys):
    seed.find("Subnet", "ovn-default")["spec"].update(
        cidrBlock="10.16.0.0/16,fd00:10:16::/64", gateway="10.16.0.1,fd00:10:16::1")
    for i, p in enumerate(seed.pods_of("gateway1")):
        p["status"]["podIPs"].append({"ip": f"fd00:10:16::{12 + i:x}"})
    assert seed.apply(capsys=capsys)[0] == 0
    out = seed.ovn.nbctl("lr-policy-list", "ovn-cluster")
    assert re.search(r"29100\s+ip6.src == fd00:10:16::/64\s+reroute\s+fd00:10:16::c, fd00:10:16::d",
                     out)
    assert "ip4.src == 10.16.0.0/16" in out


def test_local_traffic_policy_prefers_the_nodes_own_instance(seed, capsys):
    gw = seed.find("VpcEgressGateway", "gateway1")["spec"]
    gw["trafficPolicy"] = "Local"
    seed.objects.append(pod("app-a", "10.16.0.30", node="kube-ovn-worker", switch="ovn-default"))
    seed.objects.append(pod("app-b", "10.16.0.31", node="kube-ovn-worker2", switch="ovn-default"))
    seed.objects.append(pod("app-c", "10.16.0.32", node="kube-ovn-control-plane",
                            switch="ovn-default"))
    assert seed.apply(capsys=capsys)[0] == 0
    out = seed.ovn.nbctl("lr-policy-list", "ovn-cluster")
    local = re.findall(r"29150\s+ip4.src == \$(\S+)\s+reroute\s+(\S+)", out)
    assert sorted(hop for _, hop in local) == ["10.16.0.12", "10.16.0.13"]
    members = {hop: seed.ovn.nb_rows("Address_Set", f"name={name}")[0]["addresses"]
               for name, hop in local}
    assert members == {"10.16.0.12": "10.16.0.30", "10.16.0.13": "10.16.0.31"}
    # the cluster-wide policy still covers everyone (app-c, and fallback)
    assert "10.16.0.12, 10.16.0.13" in out


def test_local_traffic_policy_in_route_mode_uses_host_routes(seed, capsys):
    seed.find("VpcEgressGateway", "gateway2")["spec"]["trafficPolicy"] = "Local"
    seed.objects.append(pod("app", "192.168.0.40", node="kube-ovn-worker", switch="subnet1"))
    assert seed.apply(capsys=capsys)[0] == 0
    routes = seed.ovn.nbctl("lr-route-list", "vpc1")
    assert re.search(r"192.168.0.40\s+192.168.0.2 src-ip ecmp-symmetric-reply bfd", routes), routes
    assert routes.count("192.168.0.0/24") == 2


def test_policy_mode_with_bfd_needs_bfd_sessions_and_kube_ovns_ovn(seed, capsys):
    """Refused (exit 1, nothing written) where the NB schema has no bfd_sessions (23.03) and, on
    a schema that has it, with the stock arrangement (docs/bfd-port.md); written with
    --bfd-port-mode kube-ovn where the schema has it."""
    seed.find("VpcEgressGateway", "gateway2")["spec"]["bfdMode"] = "policy"
    from vegd.nb.client import NbClient
    nb = NbClient(seed.ovn.nb_unix)
    has = nb.capabilities.policy_bfd_sessions
    nb.close()
    before = nb_dump(seed.ovn)
    code, out = seed.apply(capsys=capsys)
    assert code == 1
    assert nb_dump(seed.ovn) == before
    assert "spec.bfdMode: policy mode with BFD needs Kube-OVN's OVN" in out
    code, out = seed.apply("--bfd-port-mode", "kube-ovn", capsys=capsys)
    if not has:
        assert code == 1 and nb_dump(seed.ovn) == before
        assert "policy mode needs Logical_Router_Policy.bfd_sessions" in out
        return
    assert code == 0, out
    pols = seed.ovn.nbctl("lr-policy-list", "vpc1")
    assert re.search(r"29100\s+ip4.src == 192.168.0.0/24\s+reroute\s+192.168.0.2, 192.168.0.3"
                     r"\s+bfd", pols), pols
    assert re.search(r"29090\s+ip4.src == 192.168.0.0/24\s+drop", pols), pols


def test_zero_instances_fail_closed(seed, capsys):
    for p in seed.pods_of("gateway1"):
        p["status"]["phase"] = "Pending"
    assert seed.apply(capsys=capsys)[0] == 0
    out = seed.ovn.nbctl("lr-policy-list", "ovn-cluster")
    assert re.search(r"29090\s+ip4.src == 10.16.0.0/16\s+drop", out)
    assert "29100" not in out


def test_seed_objects_helper_reads_every_example():
    kinds = {o["kind"] for o in seed_objects()}
    assert {"VpcEgressGateway", "Vpc", "Subnet", "Pod", "Node", "Namespace",
            "NetworkAttachmentDefinition"} <= kinds
