"""A generated Kube-OVN cluster for the scale benchmark: VPCs, gateways, their pods, selected pods.

Shape (all parameters of `Shape`): `vpcs` custom VPCs `vpc<v>` (internal subnet `sub<v>`,
10.<v>.0.0/16, and fd00:<v>::/64 for dual stack; a `bfd@vpc<v>` port when BFD is on), one
macvlan external subnet (172.16.0.0/12), `nodes` nodes with chassis annotations. Gateway `g`
lives in namespace `ns<g>` (labelled `g=<g>`), in VPC `g % vpcs`, with `replicas` running
instances, `ip_blocks` SNAT /29 prefixes of its own and one namespace+pod selector; the
`pods` selected pods are spread evenly over the gateways' namespaces (label `app=sel`).

The objects are plain dicts, as `kubectl get -o json` would give them; the gateway pods are what
the kubelet and Kube-OVN's CNI leave (Running, pod IPs, network-status with the external IP).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    gateways: int = 1000
    replicas: int = 3
    ip_blocks: int = 2
    pods: int = 20000
    bfd: bool = False
    dual_stack: bool = False
    vpcs: int = 10
    nodes: int = 50

    def label(self) -> str:
        return (f"{self.gateways} gw x{self.replicas}, {self.pods} pods, "
                f"bfd {'on' if self.bfd else 'off'}, {'dual' if self.dual_stack else 'ipv4'}")


def _v4(v: int, n: int) -> str:
    return str(ipaddress.IPv4Address(f"10.{v}.0.0") + n)


def _v6(v: int, n: int) -> str:
    return str(ipaddress.IPv6Address(f"fd00:{v}::") + n)


def cluster(shape: Shape) -> list[Obj]:
    """Every object of the cluster, in the order `kubectl apply` would create them."""
    objs: list[Obj] = [
        {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
         "metadata": {"name": "eth1", "namespace": "default"}, "spec": {"config": "{}"}},
        {"apiVersion": "kubeovn.io/v1", "kind": "Subnet", "metadata": {"name": "macvlan1"},
         "spec": {"protocol": "Dual" if shape.dual_stack else "IPv4",
                  "provider": "eth1.default",
                  "cidrBlock": "172.16.0.0/12,fd00:172:16::/64" if shape.dual_stack
                  else "172.16.0.0/12",
                  "gateway": "172.16.0.1,fd00:172:16::1" if shape.dual_stack else "172.16.0.1"}},
    ]
    for n in range(shape.nodes):
        objs.append({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": f"node{n}", "labels": {"kubernetes.io/hostname": f"node{n}"},
            "annotations": {"ovn.kubernetes.io/chassis": f"chassis-{n:04d}"}}})
    for v in range(shape.vpcs):
        vpc: Obj = {"apiVersion": "kubeovn.io/v1", "kind": "Vpc", "metadata": {"name": f"vpc{v}"},
                    "spec": {}}
        if shape.bfd:
            vpc["spec"]["bfdPort"] = {"enabled": True, "ip": f"10.255.{v}.255"}
        objs.append(vpc)
        cidr, gateway = f"10.{v}.0.0/16", f"10.{v}.0.1"
        if shape.dual_stack:
            cidr, gateway = f"{cidr},fd00:{v}::/64", f"{gateway},fd00:{v}::1"
        objs.append({"apiVersion": "kubeovn.io/v1", "kind": "Subnet",
                     "metadata": {"name": f"sub{v}"},
                     "spec": {"vpc": f"vpc{v}", "protocol": "Dual" if shape.dual_stack else "IPv4",
                              "cidrBlock": cidr, "gateway": gateway}})
    per_gw = shape.pods // max(shape.gateways, 1)
    extra = shape.pods - per_gw * shape.gateways
    ext_net = ipaddress.IPv4Address("172.16.1.0")
    for g in range(shape.gateways):
        v, j = g % shape.vpcs, g // shape.vpcs
        ns = f"ns{g}"
        objs.append({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": ns, "labels": {"g": str(g)}}})
        blocks = []
        for b in range(shape.ip_blocks):
            base = ipaddress.IPv4Address(f"10.{v}.128.0") + (j * shape.ip_blocks + b) * 8
            blocks.append(f"{base}/29")
        spec: Obj = {"vpc": f"vpc{v}", "internalSubnet": f"sub{v}", "externalSubnet": "macvlan1",
                     "replicas": shape.replicas,
                     "policies": [{"snat": True, "ipBlocks": blocks}],
                     "selectors": [{"namespaceSelector": {"matchLabels": {"g": str(g)}},
                                    "podSelector": {"matchLabels": {"app": "sel"}}}]}
        if shape.bfd:
            spec["bfd"] = {"enabled": True, "minRX": 300, "minTX": 100, "multiplier": 3}
        objs.append({"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
                     "metadata": {"name": "gw", "namespace": ns,
                                  "creationTimestamp": f"2026-01-01T00:{g // 60 % 60:02d}:"
                                                       f"{g % 60:02d}Z"},
                     "spec": spec})
        for r in range(shape.replicas):
            n = 16 + j * shape.replicas + r
            internal = [_v4(v, n)] + ([_v6(v, n)] if shape.dual_stack else [])
            external = [str(ext_net + g * shape.replicas + r)]
            if shape.dual_stack:
                external.append(str(ipaddress.IPv6Address("fd00:172:16::1:0")
                                    + g * shape.replicas + r))
            objs.append(gateway_pod(ns, f"gw-{r}", f"node{(g + r) % shape.nodes}", internal,
                                    external, f"sub{v}"))
        count = per_gw + (1 if g < extra else 0)
        for i in range(count):
            n = 4096 + j * (per_gw + 1) + i
            ips = [_v4(v, n)] + ([_v6(v, n)] if shape.dual_stack else [])
            objs.append(pod(ns, f"app-{i}", f"node{(g + i) % shape.nodes}", ips, f"sub{v}",
                            {"app": "sel"}))
    return objs


def gateway_pod(ns: str, name: str, node: str, internal: list[str], external: list[str],
                subnet: str) -> Obj:
    status = [{"name": "kube-ovn", "interface": "eth0", "ips": internal, "default": True},
              {"name": "default/eth1", "interface": "net1", "ips": external}]
    obj = pod(ns, name, node, internal, subnet,
              {"app": "vpc-egress-gateway", "ovn.kubernetes.io/vpc-egress-gateway": "gw"})
    obj["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"] = json.dumps(status)
    return obj


def pod(ns: str, name: str, node: str, ips: list[str], subnet: str, labels: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels),
                         "annotations": {"ovn.kubernetes.io/logical_switch": subnet}},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "podIPs": [{"ip": ip} for ip in ips],
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def base_topology(shape: Shape) -> list[Obj]:
    """The routers Kube-OVN would have made: one Logical_Router per VPC with its subnet port,
    as OVSDB operations for one transaction."""
    ops: list[Obj] = []
    for v in range(shape.vpcs):
        nets = [f"10.{v}.0.1/16"] + ([f"fd00:{v}::1/64"] if shape.dual_stack else [])
        ops.append({"op": "insert", "table": "Logical_Router_Port", "uuid-name": f"lrp{v}",
                    "row": {"name": f"vpc{v}-sub{v}", "mac": f"0a:58:0a:{v:02x}:00:01",
                            "networks": ["set", nets]}})
        ops.append({"op": "insert", "table": "Logical_Router", "row": {
            "name": f"vpc{v}", "ports": ["set", [["named-uuid", f"lrp{v}"]]]}})
    return ops
