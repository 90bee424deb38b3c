"""The base NB topology Kube-OVN would have created, written with ovn-nbctl.

* default VPC: router ``ovn-cluster``; switch ``ovn-default`` 10.16.0.0/16 (LRP
  ``ovn-cluster-ovn-default`` 10.16.0.1/16); switch ``join`` 100.64.0.0/16 (LRP
  ``ovn-cluster-join`` 100.64.0.1/16) with the node's ovn0 port ``node-<chassis>`` 100.64.0.2;
  default route 0.0.0.0/0 via 100.64.0.2 (the node side of join).
* custom VPC: router ``vpc1``; switch ``subnet1`` 192.168.0.0/24 (LRP ``vpc1-subnet1``
  192.168.0.1/24), optionally dual-stack with fd00:10::/64 (LRP address fd00:10::1/64).

Names, MACs and addresses follow Kube-OVN (router-type LSP ``<switch>-<router>``, MACs
``0a:58:<ip>``). The egress rows (policies, routes, BFD) are not part of the base topology: they
come from a pluggable rows writer (rows.py).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ovnstack import OvnStack


def mac_for(ip: str) -> str:
    """Kube-OVN-style MAC 0a:58:<last 4 bytes of the IPv4 address> (or of the IPv6 address)."""
    packed = ipaddress.ip_address(ip).packed[-4:]
    return "0a:58:" + ":".join(f"{b:02x}" for b in packed)


@dataclass
class Subnet:
    switch: str
    router: str
    cidrs: list[str]                      # "192.168.0.0/24", "fd00:10::/64"
    lrp: str = ""
    gateways: list[str] = field(default_factory=list)   # router addresses, no prefix

    def host(self, n: int, version: int = 4) -> str:
        """The n-th address of this subnet's version-`version` CIDR, with prefix length."""
        for c in self.cidrs:
            net = ipaddress.ip_network(c)
            if net.version == version:
                return f"{net.network_address + n}/{net.prefixlen}"
        raise LookupError(f"{self.switch} has no IPv{version} CIDR")

    def hosts(self, n: int) -> list[str]:
        """The n-th address of every CIDR (dual-stack pods get one of each)."""
        return [self.host(n, ipaddress.ip_network(c).version) for c in self.cidrs]

    def gateway(self, version: int = 4) -> str:
        for g in self.gateways:
            if ipaddress.ip_address(g).version == version:
                return g
        raise LookupError(f"{self.switch} has no IPv{version} gateway")


def add_router_subnet(stack: OvnStack, router: str, switch: str, cidrs: list[str],
                      lrp: str | None = None) -> Subnet:
    """Logical switch + LRP (first address of each CIDR) + router-type LSP, as Kube-OVN does."""
    lrp = lrp or f"{router}-{switch}"
    lsp = f"{switch}-{router}"
    nets, gws = [], []
    for c in cidrs:
        net = ipaddress.ip_network(c)
        gw = net.network_address + 1
        nets.append(f"{gw}/{net.prefixlen}")
        gws.append(str(gw))
    stack.nbctl("--may-exist", "ls-add", switch)
    stack.nbctl("set", "Logical_Switch", switch, "external_ids:vendor=kube-ovn")
    stack.nbctl("--may-exist", "lrp-add", router, lrp, mac_for(gws[0]), *nets)
    stack.nbctl("--may-exist", "lsp-add", switch, lsp, "--", "lsp-set-type", lsp, "router",
                "--", "lsp-set-addresses", lsp, "router", "--",
                "lsp-set-options", lsp, f"router-port={lrp}")
    return Subnet(switch=switch, router=router, cidrs=list(cidrs), lrp=lrp, gateways=gws)


@dataclass
class DefaultVpc:
    router: str
    ovn_default: Subnet
    join: Subnet
    node_ip: str


def default_vpc(stack: OvnStack, chassis: str = "chassis-a") -> DefaultVpc:
    """Kube-OVN's ovn-cluster router with ovn-default and join, default route via the node."""
    stack.nbctl("--may-exist", "lr-add", "ovn-cluster")
    ovn_default = add_router_subnet(stack, "ovn-cluster", "ovn-default", ["10.16.0.0/16"])
    join = add_router_subnet(stack, "ovn-cluster", "join", ["100.64.0.0/16"])
    node_ip = "100.64.0.2"
    node_lsp = f"node-{chassis}"
    stack.nbctl("--may-exist", "lsp-add", "join", node_lsp, "--",
                "lsp-set-addresses", node_lsp, f"{mac_for(node_ip)} {node_ip}")
    stack.nbctl("--may-exist", "lr-route-add", "ovn-cluster", "0.0.0.0/0", node_ip)
    return DefaultVpc("ovn-cluster", ovn_default, join, node_ip)


def custom_vpc(stack: OvnStack, router: str = "vpc1", switch: str = "subnet1",
               cidr4: str | None = "192.168.0.0/24", cidr6: str | None = None,
               default_routes: tuple[str, ...] = ()) -> Subnet:
    """A custom VPC: router vpc1, switch subnet1 192.168.0.0/24 (dual-stack with cidr6, e.g.
    "fd00:10::/64"). Kube-OVN creates no default route in a custom VPC; default_routes adds the
    user's Vpc spec.staticRoutes 0.0.0.0/0 (::/0) via the given nexthops."""
    cidrs = [c for c in (cidr4, cidr6) if c]
    stack.nbctl("--may-exist", "lr-add", router)
    sub = add_router_subnet(stack, router, switch, cidrs)
    for nh in default_routes:
        prefix = "::/0" if ":" in nh else "0.0.0.0/0"
        stack.nbctl("--may-exist", "lr-route-add", router, prefix, nh)
    return sub


def base_topology(stack: OvnStack, chassis: str = "chassis-a", cidr6: str | None = None,
                  vpc_default_routes: tuple[str, ...] = ()) -> tuple[DefaultVpc, Subnet]:
    """Both VPCs, then wait until northd has processed them."""
    dvpc = default_vpc(stack, chassis)
    sub = custom_vpc(stack, cidr6=cidr6, default_routes=vpc_default_routes)
    stack.sync()
    return dvpc, sub
