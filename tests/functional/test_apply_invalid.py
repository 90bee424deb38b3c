"""Invalid input: exit 1, a message that names the object and field, and NB left untouched."""

from __future__ import annotations

import pytest
from scenario import gateway_pod, nb_dump


def _gateway(seed, name="gateway1"):
    return seed.find("VpcEgressGateway", name)["spec"]


CASES = {
    "bad CIDR": (lambda s: _gateway(s, "gateway2")["policies"][0].update(ipBlocks=["192.168.0/33"]),
                 "spec.policies[0].ipBlocks: '192.168.0/33' is not a CIDR"),
    "bad IP": (lambda s: _gateway(s).update(internalIPs=["10.16.0.300", "10.16.0.13"]),
               "spec.internalIPs[0]: '10.16.0.300' is not an IP address"),
    "IP outside subnet": (lambda s: _gateway(s).update(internalIPs=["10.17.0.1", "10.16.0.13"]),
                          "10.17.0.1 is outside subnet ovn-default"),
    "family mismatch": (lambda s: _gateway(s).update(externalIPs=["fd00::1", "172.17.0.12"]),
                        "fd00::1 is IPv6 but subnet macvlan1 has no IPv6 CIDR"),
    "IPv6 source, IPv4 subnet": (
        lambda s: _gateway(s, "gateway2")["policies"][0].update(ipBlocks=["fd00:1::/64"]),
        "IPv6 sources fd00:1::/64 but internal subnet subnet1 has no IPv6 CIDR"),
    "too few internal IPs": (lambda s: _gateway(s).update(internalIPs=["10.16.0.12"]),
                             "spec.internalIPs: 1 address(es) for 2 replicas"),
    "too few external IPs": (lambda s: _gateway(s).update(externalIPs=["172.17.0.11"]),
                             "spec.externalIPs: 1 address(es) for 2 replicas"),
    "unknown VPC": (lambda s: _gateway(s).update(vpc="nope"), "spec.vpc: VPC nope does not exist"),
    "unknown internal subnet": (lambda s: _gateway(s).update(internalSubnet="nope"),
                                "spec.internalSubnet: subnet nope does not exist"),
    "unknown external subnet": (lambda s: _gateway(s).update(externalSubnet="nope"),
                                "spec.externalSubnet: subnet nope does not exist"),
    "unknown policy subnet": (lambda s: _gateway(s)["policies"][0].update(subnets=["nope"]),
                              "subnet nope does not exist"),
    "subnet of another VPC": (lambda s: _gateway(s)["policies"][0].update(subnets=["subnet1"]),
                              "subnet subnet1 belongs to VPC vpc1"),
    "BFD without bfdPort": (lambda s: s.find("Vpc", "vpc1")["spec"].pop("bfdPort"),
                            "BFD is on but VPC vpc1 has no enabled bfdPort"),
    "no policies and no selectors": (lambda s: _gateway(s).pop("policies"),
                                     "needs at least one policy or selector"),
    "policy without sources": (lambda s: _gateway(s)["policies"][0].pop("subnets"),
                               "spec.policies[0]: needs ipBlocks or subnets"),
    "replicas out of range": (lambda s: _gateway(s).update(replicas=11),
                              "spec.replicas: 11 is out of range 0..10"),
    "unknown trafficPolicy": (lambda s: _gateway(s).update(trafficPolicy="Nearest"),
                              "spec.trafficPolicy: 'Nearest' is not one of Cluster, Local"),
    "BFD timer zero": (lambda s: _gateway(s, "gateway2")["bfd"].update(minRX=0),
                       "spec.bfd.minRX: 0 is out of range"),
    "overlapping sources": (
        lambda s: _gateway(s, "gateway2")["policies"].append({"snat": True,
                                                              "ipBlocks": ["192.168.0.128/25"]})
        or s.objects.append(_overlapping(s)),
        "overlaps 192.168.0.0/24 of VpcEgressGateway default/gateway2"),
    "bad bfdPort IP": (lambda s: s.find("Vpc", "vpc1")["spec"]["bfdPort"].update(ip="10.255.x"),
                       "Vpc vpc1: spec.bfdPort.ip: '10.255.x' is not an IP address"),
}


def _overlapping(seed):
    gw = {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
          "metadata": {"name": "gateway3", "namespace": "default"},
          "spec": {"vpc": "vpc1", "internalSubnet": "subnet1", "externalSubnet": "macvlan1",
                   "policies": [{"snat": True, "ipBlocks": ["192.168.0.64/26"]}]}}
    seed.objects.append(gateway_pod("gateway3", 1, "192.168.0.9", "172.17.0.20",
                                    "kube-ovn-worker", "subnet1"))
    return gw


@pytest.mark.parametrize("case", sorted(CASES))
def test_invalid_input_is_refused_without_writing(seed, capsys, case):
    mutate, message = CASES[case]
    assert seed.apply(capsys=capsys)[0] == 0
    before = nb_dump(seed.ovn)
    mutate(seed)
    code, stderr = seed.apply(capsys=capsys)
    assert code == 1
    assert message in stderr
    assert nb_dump(seed.ovn) == before


def test_missing_router_is_refused_before_any_write(seed, capsys):
    seed.ovn.nbctl("lr-del", "vpc1")
    before = nb_dump(seed.ovn)
    code, stderr = seed.apply(capsys=capsys)
    assert code == 1
    assert "logical router vpc1 does not exist" in stderr
    assert nb_dump(seed.ovn) == before


def test_broken_yaml_is_refused(seed, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    from vegd.cli import main
    assert main(["apply", "-f", str(bad), "--nb-connection", seed.ovn.nb_unix]) == 1
    assert "bad.yaml" in capsys.readouterr().err
