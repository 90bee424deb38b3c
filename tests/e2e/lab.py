"""An egress lab on the data plane: base topology, pods and gateway instances on the custom VPC's
subnet, an external network with an echo server. The egress NB rows are not written here: tests
pass an EgressSpec (``lab.spec()``) to the pluggable rows writer.

Addresses (all inside namespaces this lab creates):
  subnet1 192.168.0.0/24 (+ fd00:10::/64 when dual-stack): router .1, gateways .2, .3, ...,
  pods .10, .11, ...
  external: bridge 198.51.100.1/24 (2001:db8:100::1/64), gateway net1 198.51.100.2, .3, ...
  (2001:db8:100::2, ...), echo server 203.0.113.10 (2001:db8:203::10) on the external lo.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dataplane import DataPlane, ExternalNetwork, Netns
from .gateway import configure_gateway_ns
from .rows import BfdSpec, EgressSpec
from .topology import DefaultVpc, Subnet, base_topology, mac_for

SERVER4 = "203.0.113.10"
SERVER6 = "2001:db8:203::10"
PORT = 8080


@dataclass
class EgressLab:
    dp: DataPlane
    default_vpc: DefaultVpc
    subnet: Subnet
    ext: ExternalNetwork
    pods: list[Netns] = field(default_factory=list)
    gateways: list[Netns] = field(default_factory=list)
    dual_stack: bool = False

    def gateway_by_external_ip(self) -> dict[str, str]:
        """external (SNAT) address -> gateway name."""
        out = {}
        for gw in self.gateways:
            for c in gw.ips:
                ip = c.split("/")[0]
                if ip.startswith(("198.51.100.", "2001:db8:100::")):
                    out[ip] = gw.name
        return out

    def who(self, results: list[str]) -> dict[str, int]:
        """Count echo results per gateway name ("fail:*" and unknown addresses kept as is)."""
        names = self.gateway_by_external_ip()
        counts: dict[str, int] = {}
        for r in results:
            k = names.get(r, r)
            counts[k] = counts.get(k, 0) + 1
        return counts

    def internal_ips(self, version: int = 4) -> list[str]:
        return [gw.addr(version) for gw in self.gateways]

    def spec(self, name: str = "default/egress1", bfd: BfdSpec | None = None,
             sources: list[str] | None = None) -> EgressSpec:
        nexthops = self.internal_ips(4) + (self.internal_ips(6) if self.dual_stack else [])
        return EgressSpec(name=name, vpc=self.subnet.router, subnet_lrp=self.subnet.lrp,
                          sources=sources or list(self.subnet.cidrs), nexthops=nexthops,
                          bfd=bfd, chassis=[self.dp.chassis])


# vpc1's default route (Vpc spec.staticRoutes, e.g. towards a vpc-nat-gateway). Nothing answers
# at these addresses: traffic that no egress row catches goes nowhere. OVN needs *some* covering
# route, because lr_in_policy comes after lr_in_ip_routing, which drops unrouted packets.
VPC_DEFAULT_NEXTHOPS = ("192.168.0.254", "fd00:10::fe")


def build_egress_lab(dp: DataPlane, gateways: int = 2, pods: int = 1, dual_stack: bool = False,
                     bfd_port_ip: str | None = None,
                     vpc_default_route: bool = True) -> EgressLab:
    """Topology + namespaces + gateway configuration + echo server; returns once every port is
    bound and ovn-controller has caught up. bfd_port_ip adds the gateways' route to the VPC's
    dedicated BFD port address."""
    routes = VPC_DEFAULT_NEXTHOPS if dual_stack else VPC_DEFAULT_NEXTHOPS[:1]
    dvpc, sub = base_topology(dp.stack, dp.chassis, cidr6="fd00:10::/64" if dual_stack else None,
                              vpc_default_routes=routes if vpc_default_route else ())
    ext_routers = ["198.51.100.1/24"] + (["2001:db8:100::1/64"] if dual_stack else [])
    servers = [f"{SERVER4}/32"] + ([f"{SERVER6}/128"] if dual_stack else [])
    ext = dp.add_external_network("ext", router_ips=ext_routers, server_ips=servers)
    lab = EgressLab(dp, dvpc, sub, ext, dual_stack=dual_stack)
    for i in range(gateways):
        ips = sub.hosts(2 + i)
        gw = dp.add_pod(f"gw{i + 1}", sub.switch, mac_for(ips[0].split("/")[0]), ips)
        ext_ips = [f"198.51.100.{2 + i}/24"] + ([f"2001:db8:100::{2 + i}/64"] if dual_stack
                                                 else [])
        dp.attach_external(gw, ext, ext_ips)
        routes = [(f"{bfd_port_ip}/32", sub.gateway(4))] if bfd_port_ip else []
        configure_gateway_ns(dp, gw, sources=sub.cidrs,
                             external_gateways=[c.split("/")[0] for c in ext_routers],
                             internal_routes=routes)
        lab.gateways.append(gw)
    for i in range(pods):
        ips = sub.hosts(10 + i)
        pod = dp.add_pod(f"pod{i + 1}", sub.switch, mac_for(ips[0].split("/")[0]), ips,
                         gateway_ips=sub.gateways)
        lab.pods.append(pod)
    for server in servers:
        dp.start_echo_server(ext, server.split("/")[0], PORT)
    dp.wait_port_up(*(n.lsp for n in lab.gateways + lab.pods))
    dp.wait_hv_sync()
    return lab
