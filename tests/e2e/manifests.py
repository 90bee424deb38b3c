"""Kubernetes manifests for the lab, as `vegd apply -f DIR` reads them.

The lab's namespaces stand in for what a cluster would report: one Node per chassis (named after
the chassis hostname, so vegd finds the chassis in SB), the Subnets Kube-OVN knows, the external
attachment (NetworkAttachmentDefinition + Subnet with its provider), one Vpc per VPC, the
VpcEgressGateways, and their instance pods as the kubelet and Multus leave them (Running, pod IPs,
network-status with the external attachment's addresses). Workload pods are listed too, so
selectors can match them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

GATEWAY_LABEL = "ovn.kubernetes.io/vpc-egress-gateway"
NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_VPC = "ovn-cluster"


@dataclass
class SubnetSpec:
    name: str
    vpc: str
    cidrs: list[str]                 # "192.168.0.0/24", "fd00:10::/64"
    gateways: list[str]              # router addresses, no prefix length
    provider: str = ""               # "<nad>.<namespace>" for an attachment subnet


@dataclass
class PodSpec:
    """A pod as vegd sees it: a gateway instance (external_ips set) or a workload pod."""

    name: str
    ips: list[str]                   # pod IPs, no prefix length (first of each family counts)
    switch: str                      # ovn.kubernetes.io/logical_switch
    node: str
    namespace: str = "default"
    labels: dict[str, str] = field(default_factory=dict)
    external_ips: list[str] = field(default_factory=list)
    phase: str = "Running"


@dataclass
class ClusterSpec:
    """What the cluster around the gateways looks like (everything but the gateways)."""

    nodes: list[str]                 # node names = chassis hostnames
    subnets: list[SubnetSpec]
    attachment: str = "default/ext"  # the external NetworkAttachmentDefinition
    pods: list[PodSpec] = field(default_factory=list)   # workload pods


def _meta(name: str, namespace: str | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update({k: v for k, v in extra.items() if v})
    return meta


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": _meta(name, labels={"kubernetes.io/hostname": name}),
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": _meta(name, labels={"kubernetes.io/metadata.name": name})}


def subnet(s: SubnetSpec) -> dict[str, Any]:
    families = {ipaddress.ip_network(c).version for c in s.cidrs}
    protocol = "Dual" if families == {4, 6} else f"IPv{families.pop()}"
    spec: dict[str, Any] = {"protocol": protocol, "cidrBlock": ",".join(s.cidrs),
                            "gateway": ",".join(s.gateways)}
    if s.provider:
        spec["provider"] = s.provider
    else:
        spec["vpc"] = s.vpc
    return {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": _meta(s.name),
            "spec": spec}


def attachment(ref: str) -> dict[str, Any]:
    ns, name = ref.split("/")
    config = {"cniVersion": "0.3.0", "type": "macvlan", "master": "eth1", "mode": "bridge",
              "ipam": {"type": "kube-ovn", "provider": f"{name}.{ns}"}}
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": _meta(name, ns), "spec": {"config": json.dumps(config)}}


def vpc(name: str, bfd_port_ip: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if bfd_port_ip:
        spec["bfdPort"] = {"enabled": True, "ip": bfd_port_ip}
    return {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": _meta(name), "spec": spec,
            "status": {"router": name}}


def pod(p: PodSpec, attachment_ref: str) -> dict[str, Any]:
    annotations = {"ovn.kubernetes.io/logical_switch": p.switch}
    if p.external_ips:
        annotations[NETWORK_STATUS] = json.dumps([
            {"name": "kube-ovn", "interface": "eth0", "ips": p.ips, "default": True},
            {"name": attachment_ref, "interface": "net1", "ips": p.external_ips}])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _meta(p.name, p.namespace, labels=p.labels, annotations=annotations),
            "spec": {"nodeName": p.node},
            "status": {"phase": p.phase, "podIPs": [{"ip": ip} for ip in p.ips],
                       "conditions": [{"type": "Ready",
                                       "status": str(p.phase == "Running")}]}}


def gateway(namespace_: str, name: str, *, vpc_name: str, replicas: int, internal_subnet: str,
            external_subnet: str, snat_sources: Iterable[str], forward_sources: Iterable[str],
            bfd: dict[str, int] | None, bfd_mode: str = "route") -> dict[str, Any]:
    policies = []
    snat, fwd = list(snat_sources), list(forward_sources)
    if snat:
        policies.append({"snat": True, "ipBlocks": snat})
    if fwd:
        policies.append({"snat": False, "ipBlocks": fwd})
    spec: dict[str, Any] = {"vpc": vpc_name, "replicas": replicas,
                            "internalSubnet": internal_subnet, "externalSubnet": external_subnet,
                            "policies": policies}
    if bfd is not None:
        spec["bfd"] = {"enabled": True, **bfd}
        if bfd_mode != "route":
            spec["bfdMode"] = bfd_mode
    return {"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
            "metadata": _meta(name, namespace_), "spec": spec}


def write(directory: Path, objects: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "lab.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return directory
