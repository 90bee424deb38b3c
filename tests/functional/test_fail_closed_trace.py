"""Route mode fails closed on a real NB + northd, shown with ovn-trace (docs/fail-closed.md).

vegd writes the rows; the test acts as ovn-controller and sets the BFD sessions' state in the
Southbound database (northd copies SB `BFD.status` into NB and gates the routes on it; a status
written into NB directly is overwritten by northd at once). Then ovn-trace shows, for a pod of a
source: ECMP to the instances while sessions are up, the live instance only when one is down, a
drop in `lr_in_policy` when all are down, while destinations inside the VPC are still delivered
and pods outside the sources keep the VPC's own routes.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ovnstack import wait_for
from scenario import ROOT, Scenario, add_base_topology, pod, require_policy_bfd_sessions

VARIANT = ROOT / "examples" / "variants" / "default-vpc-bfd" / "all.yaml"
EXTERNAL = "203.0.113.10"


def set_sessions(ovn, port: str, states: dict[str, str]) -> None:
    """Play ovn-controller: write SB BFD.status, wait until northd mirrored it and synced."""
    for dst, status in states.items():
        uuid = wait_for(lambda dst=dst: ovn.sbctl(  # northd makes the SB row in its own time
            "--bare", "--columns=_uuid", "find", "BFD", f'logical_port="{port}"',
            f'dst_ip="{dst}"').strip(), 10, what=f"SB BFD row {port} {dst}")
        ovn.sbctl("set", "BFD", uuid, f"status={status}")

    def mirrored() -> bool:
        rows = {r["dst_ip"]: r["status"] for r in ovn.nb_rows("BFD", f'logical_port="{port}"')}
        return all(rows.get(d) == s for d, s in states.items())

    wait_for(mirrored, 10, what=f"NB BFD status {states}")
    ovn.sync()


def add_lsp(ovn, switch: str, name: str, mac: str, ip: str) -> None:
    ovn.nbctl("lsp-add", switch, name, "--", "lsp-set-addresses", name, f"{mac} {ip}")


class Tracer:
    def __init__(self, ovn, switch: str, inport: str, mac: str, ip: str, router_mac: str):
        self.ovn, self.switch = ovn, switch
        self.head = (f'inport == "{inport}" && eth.src == {mac} && eth.dst == {router_mac} && '
                     f"ip4.src == {ip} && ip.ttl == 64 && tcp && tcp.src == 40000 && "
                     "tcp.dst == 80")

    def run(self, dst: str, *opts: str) -> str:
        return self.ovn.trace(self.switch, f"{self.head} && ip4.dst == {dst}", *opts)

    def outputs(self, dst: str, select: int | None = None) -> list[str]:
        opts = ("--minimal",) + ((f"--select-id={select}",) if select else ())
        return re.findall(r'output\("([^"]+)"\)', self.run(dst, *opts))

    def dropped_by_policy(self, dst: str) -> bool:
        """The detailed trace ends in lr_in_policy with the 29090 drop."""
        return bool(re.search(r"lr_in_policy \(\S+\): [^\n]*priority 29090[^\n]*\n\s+drop;",
                              self.run(dst, "--detailed")))


def _check_up_partial_down(ovn, port, tracer, gws: dict[str, str], internal: dict[str, str],
                           router: str = ""):
    """gws: instance IP -> its LSP; internal: destination -> LSP that must receive it."""
    (ip_a, lsp_a), (ip_b, lsp_b) = sorted(gws.items())
    set_sessions(ovn, port, {ip_a: "up", ip_b: "up"})
    flows = ovn.lflows(router or ovn_router(ovn, port))
    assert "select(1, 2)" in flows
    assert {tracer.outputs(EXTERNAL, select=i)[0] for i in (1, 2)} == {lsp_a, lsp_b}
    for dst, lsp in internal.items():
        assert tracer.outputs(dst) == [lsp], dst

    set_sessions(ovn, port, {ip_a: "down"})
    assert tracer.outputs(EXTERNAL) == [lsp_b]

    set_sessions(ovn, port, {ip_b: "down"})
    assert tracer.outputs(EXTERNAL) == []
    assert tracer.dropped_by_policy(EXTERNAL)
    for dst, lsp in internal.items():
        assert tracer.outputs(dst) == [lsp], dst


def ovn_router(ovn, port: str) -> str:
    return port.removeprefix("bfd@")


def _vpc1_with_default_route(seed) -> None:
    """vpc1 with a covering default route (Vpc staticRoutes-like 0.0.0.0/0 via 192.168.0.254)
    and a second subnet; LSPs for a pod, the default route's next hop and both instances."""
    ovn = seed.ovn
    seed.objects.append({"apiVersion": "kubeovn.io/v1", "kind": "Subnet",
                         "metadata": {"name": "subnet2"},
                         "spec": {"vpc": "vpc1", "protocol": "IPv4", "cidrBlock": "192.168.1.0/24",
                                  "gateway": "192.168.1.1"}})
    ovn.nbctl("ls-add", "subnet2", "--", "lrp-add", "vpc1", "vpc1-subnet2", "0a:58:c0:a8:01:01",
              "192.168.1.1/24", "--", "lsp-add", "subnet2", "subnet2-vpc1", "--",
              "lsp-set-type", "subnet2-vpc1", "router", "--",
              "lsp-set-addresses", "subnet2-vpc1", "router", "--",
              "lsp-set-options", "subnet2-vpc1", "router-port=vpc1-subnet2")
    ovn.nbctl("lr-route-add", "vpc1", "0.0.0.0/0", "192.168.0.254")
    add_lsp(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10")
    add_lsp(ovn, "subnet1", "vnat", "0a:58:c0:a8:00:fe", "192.168.0.254")
    add_lsp(ovn, "subnet1", "gw2", "0a:58:c0:a8:00:02", "192.168.0.2")
    add_lsp(ovn, "subnet1", "gw3", "0a:58:c0:a8:00:03", "192.168.0.3")
    add_lsp(ovn, "subnet2", "pod2", "0a:58:c0:a8:01:0a", "192.168.1.10")
    seed.objects.append(pod("pod2", "192.168.1.10", switch="subnet2"))


def test_custom_vpc_fails_closed(seed, capsys):
    """vpc1 (gateway2, BFD, source 192.168.0.0/24) with a covering default route
    (Vpc staticRoutes-like 0.0.0.0/0 via 192.168.0.254) and a second subnet."""
    ovn = seed.ovn
    _vpc1_with_default_route(seed)
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    assert seed.apply(capsys=capsys)[1]["transactions"] == 0
    pols = ovn.nbctl("lr-policy-list", "vpc1")
    assert re.search(r"29095 ip4.src == 192.168.0.0/24 && reg0 == \{192.168.0.2, 192.168.0.3\}"
                     r"\s+allow", pols), pols
    assert re.search(r"29090 ip4.src == 192.168.0.0/24 && ip4.dst != "
                     r"\{192.168.0.0/24, 192.168.1.0/24\}\s+drop", pols), pols

    src = Tracer(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10",
                 "0a:58:c0:a8:00:01")
    _check_up_partial_down(ovn, "bfd@vpc1", src, {"192.168.0.2": "gw2", "192.168.0.3": "gw3"},
                           {"192.168.1.10": "pod2"})
    # a pod outside the sources keeps the VPC's default route
    other = Tracer(ovn, "subnet2", "pod2", "0a:58:c0:a8:01:0a", "192.168.1.10",
                   "0a:58:c0:a8:01:01")
    assert other.outputs(EXTERNAL) == ["vnat"]

    # control: without the drop the source's traffic leaks through the default route
    drop = ovn.nb_rows("Logical_Router_Policy", "priority=29090",
                       "external_ids:vpc-egress-gateway=default/gateway2")[0]["_uuid"]
    ovn.nbctl("lr-policy-del", "vpc1", drop)
    ovn.sync()
    assert src.outputs(EXTERNAL) == ["vnat"]
    code, report = seed.apply(capsys=capsys)
    assert code == 0 and report["transactions"] == 1
    ovn.sync()
    assert src.outputs(EXTERNAL) == []


def test_policy_mode_sessions_stay_inactive_on_stock_northd(seed, capsys):
    """Why vegd refuses bfdMode: policy with BFD on stock OVN, shown on a northd whose NB has
    Logical_Router_Policy.bfd_sessions (25.03): with the rows as the seed has them
    (--bfd-port-mode kube-ovn: one 29100 reroute whose bfd_sessions are the instances' rows on
    bfd@vpc1, and the 29090 drop), northd holds those sessions admin_down whatever
    ovn-controller reports (it runs a policy's session only on the port that routes to the next
    hop, vpc1-subnet1), and keeps rerouting to a dead instance: no failover."""
    ovn = seed.ovn
    require_policy_bfd_sessions(ovn)
    _vpc1_with_default_route(seed)
    seed.find("VpcEgressGateway", "gateway2")["spec"]["bfdMode"] = "policy"
    code, report = seed.apply("--bfd-port-mode", "kube-ovn", capsys=capsys)
    assert code == 0, report
    assert seed.apply("--bfd-port-mode", "kube-ovn", capsys=capsys)[1]["transactions"] == 0
    pols = ovn.nbctl("lr-policy-list", "vpc1")
    assert re.search(r"29100\s+ip4.src == 192.168.0.0/24\s+reroute\s+192.168.0.2, 192.168.0.3",
                     pols), pols
    assert re.search(r"29090\s+ip4.src == 192.168.0.0/24\s+drop", pols), pols
    sessions = ovn.nbctl("--bare", "--columns=bfd_sessions", "find", "Logical_Router_Policy",
                         "priority=29100", "external_ids:vpc-egress-gateway=default/gateway2")
    bfd = {r["_uuid"] for r in ovn.nb_rows("BFD", 'logical_port="bfd@vpc1"')}
    assert set(sessions.split()) == bfd and len(bfd) == 2

    # ovn-controller reports gw2's session down and gw3's up ...
    def sb_rows() -> dict[str, str]:
        return {dst: ovn.sbctl("--bare", "--columns=_uuid", "find", "BFD",
                               'logical_port="bfd@vpc1"', f'dst_ip="{dst}"').strip()
                for dst in ("192.168.0.2", "192.168.0.3")}

    sb = wait_for(lambda: (rows := sb_rows()) and all(rows.values()) and rows, 10,
                  what="ovn-northd's SB BFD rows")
    for dst, status in (("192.168.0.2", "down"), ("192.168.0.3", "up")):
        ovn.sbctl("set", "BFD", sb[dst], f"status={status}")
    ovn.sync()

    def sb_status() -> set[str]:
        return {ovn.sbctl("--bare", "--columns=status", "list", "BFD", u).strip()
                for u in sb.values()}

    # ... northd puts both back to admin_down (not sessions it runs) ...
    wait_for(lambda: sb_status() == {"admin_down"}, 10, what="SB BFD back to admin_down")
    ovn.sync()
    # ... and the policy still spreads over both instances, the dead gw2 included
    src = Tracer(ovn, "subnet1", "pod1", "0a:58:c0:a8:00:0a", "192.168.0.10",
                 "0a:58:c0:a8:00:01")
    assert {src.outputs(EXTERNAL, select=i)[0] for i in (1, 2)} == {"gw2", "gw3"}


def test_default_vpc_fails_closed(fresh_ovn, tmp_path, capsys):
    """ovn-cluster (gateway1 with BFD, source 10.16.0.0/16) with Kube-OVN's policies and its
    covering default route, plus a Kube-OVN-style 29000 node gateway policy for the pod."""
    ovn = fresh_ovn
    add_base_topology(ovn)
    objects = [d for d in yaml.safe_load_all(Path(VARIANT).read_text()) if d]
    scenario = Scenario(ovn, tmp_path, objects)
    add_lsp(ovn, "ovn-default", "pod1", "0a:58:0a:10:00:05", "10.16.0.5")
    add_lsp(ovn, "ovn-default", "gw12", "0a:58:0a:10:00:0c", "10.16.0.12")
    add_lsp(ovn, "ovn-default", "gw13", "0a:58:0a:10:00:0d", "10.16.0.13")
    add_lsp(ovn, "join", "node1", "0a:58:64:40:00:02", "100.64.0.2")
    add_lsp(ovn, "join", "node2", "0a:58:64:40:00:03", "100.64.0.3")
    # Kube-OVN's distributed gateway policy for pods on node1 (lower than vegd's rows)
    ovn.nbctl("lr-policy-add", "ovn-cluster", "29000", "ip4.src == 10.16.0.5", "reroute",
              "100.64.0.2")

    code, report = scenario.apply(capsys=capsys)
    assert code == 0, report
    assert scenario.apply(capsys=capsys)[1]["transactions"] == 0
    pols = ovn.nbctl("lr-policy-list", "ovn-cluster")
    assert re.search(r"29090 ip4.src == 10.16.0.0/16 && ip4.dst != "
                     r"\{10.16.0.0/16, 100.64.0.0/16\}\s+drop", pols), pols

    src = Tracer(ovn, "ovn-default", "pod1", "0a:58:0a:10:00:05", "10.16.0.5",
                 "0a:58:0a:10:00:01")
    # join network (node1) and a node IP (Kube-OVN's 30000 reroute to node2) stay reachable
    _check_up_partial_down(ovn, "bfd@ovn-cluster", src,
                           {"10.16.0.12": "gw12", "10.16.0.13": "gw13"},
                           {"100.64.0.2": "node1", "172.18.0.2": "node2"})

    # control: without vegd's drop, the default route / node gateway policy takes it out
    drop = ovn.nb_rows("Logical_Router_Policy", "priority=29090",
                       "external_ids:vpc-egress-gateway=default/gateway1")[0]["_uuid"]
    ovn.nbctl("lr-policy-del", "ovn-cluster", drop)
    ovn.sync()
    assert src.outputs(EXTERNAL) == ["node1"]

