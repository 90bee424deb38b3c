"""Rows whose identity is an address move between gateways in one transaction; a name another
writer holds refuses the whole apply with nothing written (real NB + northd)."""

from __future__ import annotations

import copy
import re

from scenario import gateway_pod, nb_dump

from vegd.plan.names import owner_hash


def _add_gateway3(seed) -> None:
    """A second BFD gateway in vpc1 with its own source and two instances."""
    gw2 = seed.find("VpcEgressGateway", "gateway2")
    gw3 = copy.deepcopy(gw2)
    gw3["metadata"]["name"] = "gateway3"
    gw3["spec"]["policies"] = [{"snat": True, "ipBlocks": ["192.168.0.128/26"]}]
    gw2["spec"]["policies"] = [{"snat": True, "ipBlocks": ["192.168.0.0/26"]}]
    seed.objects.append(gw3)
    for i, (ip, ext) in enumerate((("192.168.0.20", "172.17.0.30"),
                                   ("192.168.0.21", "172.17.0.31"))):
        seed.objects.append(gateway_pod("gateway3", i, ip, ext, "kube-ovn-worker", "subnet1"))


def _set_ip(seed, gateway: str, index: int, ip: str) -> None:
    pod = seed.pods_of(gateway)[index]
    pod["status"]["podIPs"] = [{"ip": ip}]
    status = pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"]
    old = re.search(r'"ips": \["([^"]+)"\], "default": true', status).group(1)
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = status.replace(
        f'"{old}"', f'"{ip}"', 1)


def _bfd_owners(ovn) -> dict[str, str]:
    return {r["dst_ip"]: re.search(r'vpc-egress-gateway="?([^",}]+)', r["external_ids"]).group(1)
            for r in ovn.nb_rows("BFD") if "vpc-egress-gateway" in r["external_ids"]}


def _route_nexthops(ovn, prefix: str) -> set[str]:
    routes = ovn.nbctl("lr-route-list", "vpc1")
    return {m.group(1) for m in re.finditer(rf"{re.escape(prefix)}\s+(\S+) src-ip", routes)}


def test_swapped_instance_addresses_converge_in_one_apply(seed, capsys):
    _add_gateway3(seed)
    assert seed.apply(capsys=capsys)[0] == 0
    gw2_ips = [p["status"]["podIPs"][0]["ip"] for p in seed.pods_of("gateway2")]
    gw3_ips = [p["status"]["podIPs"][0]["ip"] for p in seed.pods_of("gateway3")]
    assert _bfd_owners(seed.ovn)[gw2_ips[0]] == "default/gateway2"
    # while vegd was not looking, the IPAM gave gateway2's first address to gateway3 and back
    _set_ip(seed, "gateway2", 0, gw3_ips[0])
    _set_ip(seed, "gateway3", 0, gw2_ips[0])
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    assert report["transactions"] == 1
    owners = _bfd_owners(seed.ovn)
    assert owners[gw3_ips[0]] == "default/gateway2" and owners[gw2_ips[0]] == "default/gateway3"
    assert _route_nexthops(seed.ovn, "192.168.0.0/26") == {gw3_ips[0], gw2_ips[1]}
    assert _route_nexthops(seed.ovn, "192.168.0.128/26") == {gw2_ips[0], gw3_ips[1]}
    assert seed.apply(capsys=capsys)[1]["transactions"] == 0  # and that is the fixed point


def test_an_address_moved_to_another_gateway_converges(seed, capsys):
    _add_gateway3(seed)
    assert seed.apply(capsys=capsys)[0] == 0
    moved = seed.pods_of("gateway2")[1]["status"]["podIPs"][0]["ip"]
    seed.objects.remove(seed.pods_of("gateway2")[1])  # rescheduled: a new pod, a new address
    seed.objects.append(gateway_pod("gateway2", 7, "192.168.0.40", "172.17.0.40",
                                    "kube-ovn-worker2", "subnet1"))
    _set_ip(seed, "gateway3", 1, moved)  # and gateway3's rescheduled pod got the old one
    code, report = seed.apply(capsys=capsys)
    assert code == 0, report
    assert _bfd_owners(seed.ovn)[moved] == "default/gateway3"
    assert moved in _route_nexthops(seed.ovn, "192.168.0.128/26")
    assert moved not in _route_nexthops(seed.ovn, "192.168.0.0/26")
    assert seed.apply(capsys=capsys)[1]["transactions"] == 0


def test_a_name_another_writer_holds_refuses_everything(seed, capsys):
    # another writer already has gateway1's selector address set name
    seed.find("VpcEgressGateway", "gateway1")["spec"]["selectors"] = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "default"}}}]
    name = f"VEG.{owner_hash('default/gateway1')}_ip4"
    seed.ovn.nbctl("create", "Address_Set", f"name={name}", "external_ids:vendor=someone")
    before = nb_dump(seed.ovn)
    code, err = seed.apply(capsys=capsys)
    assert code == 1
    assert f"Address_Set[{name}]" in err and "vendor=someone" in err
    assert "nothing was written" in err
    assert nb_dump(seed.ovn) == before  # not even vpc1's or gateway2's rows


def test_a_bfd_port_another_writer_holds_refuses_everything(seed, capsys):
    seed.ovn.nbctl("lrp-add", "vpc1", "bfd@vpc1", "0a:00:00:00:00:01", "10.255.255.254/32")
    seed.ovn.sync()  # northd's own NB writes for the new port are done before the dump
    before = nb_dump(seed.ovn)
    code, err = seed.apply(capsys=capsys)
    assert code == 1
    assert "Logical_Router_Port[bfd@vpc1]" in err and "nothing was written" in err
    assert nb_dump(seed.ovn) == before


def test_dry_run_writes_nothing_and_says_whether_changes_are_pending(seed, capsys):
    before = nb_dump(seed.ovn)
    code, _ = seed.apply("--dry-run", capsys=capsys)
    assert code == 1  # changes pending
    assert nb_dump(seed.ovn) == before
    assert seed.apply(capsys=capsys)[0] == 0
    code, report = seed.apply("--dry-run", capsys=capsys)
    assert code == 0 and report["dry_run"] is True
    assert all(not (o["created"] or o["updated"] or o["deleted"]) for o in report["owners"])
