"""An egress lab on the data plane: base topology, pods and gateway instances on one VPC's
subnet, an external network with an echo server, and the gateways' agents. The egress NB rows
are not written here: tests pass an EgressSpec (``lab.spec()``) to the pluggable rows writer.

Addresses (all inside namespaces this lab creates):
  vpc1 (default): subnet1 192.168.0.0/24 (+ fd00:10::/64 when dual-stack): router .1, gateways
  .2, .3, ..., pods .10, .11, ...
  ovn-cluster (vpc="ovn-cluster"): ovn-default 10.16.0.0/16: router .1, gateways 10.16.0.2, ...,
  pods 10.16.0.10, ...; its default route (via the node, 100.64.0.2) leads nowhere here.
  external: bridge 198.51.100.1/24 (2001:db8:100::1/64), gateway net1 198.51.100.2, .3, ...
  (2001:db8:100::2, ...), echo server 203.0.113.10 (2001:db8:203::10) on the external lo.

Gateways run ``vegd gateway setup`` + ``vegd gateway run`` (VEGD_E2E_GATEWAY=vegd, default) with
the lab's SNAT/forward sources and, when the lab has BFD, FRR bfdd supervised by the agent; or the
old shell sequence with a test-started bfdd (VEGD_E2E_GATEWAY=script).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dataplane import DataPlane, ExternalNetwork, Netns
from .frr import Bfdd
from .gateway import (
    AgentBfd,
    VegdGatewayAgent,
    add_counting_rule,
    agent_config,
    configure_gateway_ns,
    gateway_impl,
    workload_env,
)
from .manifests import ClusterSpec, PodSpec, SubnetSpec
from .rows import BfdSpec, EgressSpec
from .topology import DefaultVpc, Subnet, base_topology, mac_for

SERVER4 = "203.0.113.10"
SERVER6 = "2001:db8:203::10"
PORT = 8080
EXT_ROUTER4, EXT_ROUTER6 = "198.51.100.1", "2001:db8:100::1"
EXTERNAL_SUBNET = "ext"
ATTACHMENT = "default/ext"


@dataclass
class EgressLab:
    dp: DataPlane
    default_vpc: DefaultVpc
    subnet: Subnet
    ext: ExternalNetwork
    pods: list[Netns] = field(default_factory=list)
    gateways: list[Netns] = field(default_factory=list)
    dual_stack: bool = False
    vpc: str = "vpc1"
    snat_sources: list[str] = field(default_factory=list)
    forward_sources: list[str] = field(default_factory=list)
    bfd: BfdSpec | None = None
    gateway_impl: str = "vegd"
    agent_config: str = "workload"        # vegd gateways: "workload" env or "flags"
    agents: dict[str, VegdGatewayAgent] = field(default_factory=dict)   # vegd gateways
    bfdd: dict[str, Bfdd] = field(default_factory=dict)                 # script gateways
    bfd_port_ip: str | None = None        # script gateways: route to the BFD port
    _created: int = 0

    # ------------------------------------------------------------------ reading results
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

    def internal_ips(self, version: int = 4, gateways: list[Netns] | None = None) -> list[str]:
        return [gw.addr(version) for gw in (self.gateways if gateways is None else gateways)]

    def external_ips(self, gw: Netns) -> list[str]:
        return [c.split("/")[0] for c in gw.ips
                if c.startswith(("198.51.100.", "2001:db8:100::"))]

    # ------------------------------------------------------------------ what the rows need
    def cluster(self) -> ClusterSpec:
        """The cluster around the gateways, as manifests describe it (vegd rows writer)."""
        subnets = [_subnet_spec(s, "ovn-cluster")
                   for s in (self.default_vpc.ovn_default, self.default_vpc.join)]
        if self.subnet.switch not in {s.name for s in subnets}:
            subnets.append(_subnet_spec(self.subnet, self.vpc))
        ext_cidrs = ["198.51.100.0/24"] + (["2001:db8:100::/64"] if self.dual_stack else [])
        ext_gws = [EXT_ROUTER4] + ([EXT_ROUTER6] if self.dual_stack else [])
        subnets.append(SubnetSpec(EXTERNAL_SUBNET, "", ext_cidrs, ext_gws,
                                  provider="ext.default"))
        pods = [PodSpec(p.name, p.addrs, p.switch, self.dp.hostname, labels={"app": p.name})
                for p in self.pods]
        return ClusterSpec([self.dp.hostname], subnets, ATTACHMENT, pods)

    def instance(self, gw: Netns, gateway_name: str) -> PodSpec:
        """gw as a gateway pod of gateway_name: Running, pod IPs, network-status with net1."""
        internal = [a for a in gw.addrs if a not in self.external_ips(gw)]
        return PodSpec(f"{gateway_name}-{gw.name}", internal, self.subnet.switch,
                       self.dp.hostname, external_ips=self.external_ips(gw))

    def spec(self, name: str = "default/egress1", bfd: BfdSpec | None = None,
             sources: list[str] | None = None, *, forward_sources: list[str] | None = None,
             gateways: list[Netns] | None = None, replicas: int | None = None) -> EgressSpec:
        """The rows spec for this lab: SNAT sources (default the lab's, i.e. the subnet),
        forward-only sources, the instances (default every gateway), BFD (default the lab's)."""
        gws = self.gateways if gateways is None else gateways
        nexthops = self.internal_ips(4, gws) + (self.internal_ips(6, gws) if self.dual_stack
                                                else [])
        gateway_name = name.rpartition("/")[2]
        return EgressSpec(
            name=name, vpc=self.subnet.router, subnet_lrp=self.subnet.lrp,
            sources=list(sources if sources is not None else self.snat_sources),
            forward_sources=list(forward_sources if forward_sources is not None
                                 else self.forward_sources),
            nexthops=nexthops, bfd=bfd or self.bfd, chassis=[self.dp.chassis],
            internal_subnet=self.subnet.switch, external_subnet=EXTERNAL_SUBNET,
            instances=[self.instance(gw, gateway_name) for gw in gws], replicas=replicas,
            cluster=self.cluster())

    # ------------------------------------------------------------------ gateway lifecycle
    def add_gateway(self, wait: bool = True) -> Netns:
        """One more gateway instance gw<N>: namespace on the subnet, net1 on the external
        network, its agent (or shell setup + bfdd) started; waits until its port is up."""
        i = self._created
        self._created += 1
        dp, sub = self.dp, self.subnet
        ips = sub.hosts(2 + i)
        gw = dp.add_pod(f"gw{i + 1}", sub.switch, mac_for(ips[0].split("/")[0]), ips)
        ext_ips = [f"198.51.100.{2 + i}/24"] + ([f"2001:db8:100::{2 + i}/64"] if self.dual_stack
                                                 else [])
        dp.attach_external(gw, self.ext, ext_ips)
        add_counting_rule(dp, gw)
        ext_routers = [EXT_ROUTER4] + ([EXT_ROUTER6] if self.dual_stack else [])
        if self.gateway_impl == "vegd":
            agent_bfd = None
            if self.bfd is not None:   # the instance's view: it transmits at OVN's min_rx
                agent_bfd = AgentBfd(self.bfd.port_ip.split(","), min_tx=self.bfd.min_rx,
                                     min_rx=self.bfd.min_tx, multiplier=self.bfd.detect_mult)
            # the settings: from vegd's rendering of the gateway Deployment (default), or
            # the same values as flags
            env = workload_env(self.spec()) if self.agent_config == "workload" else None
            self.agents[gw.name] = VegdGatewayAgent(
                dp, gw, snat_sources=self.snat_sources, forward_sources=self.forward_sources,
                internal_gateways=sub.gateways, external_gateways=ext_routers,
                bfd=agent_bfd, env=env).start()
            # registered last, so it runs first at teardown: every agent gets SIGTERM at once
            # (each then removes its setup in parallel), before each one's stop() waits for it
            dp.on_stop(self._terminate_agents)
        else:
            port_ip = self.bfd.port_ip if self.bfd is not None else self.bfd_port_ip
            routes = [(f"{port_ip}/32", sub.gateway(4))] if port_ip else []
            configure_gateway_ns(dp, gw, sources=[*self.snat_sources],
                                 external_gateways=ext_routers, internal_routes=routes)
            if self.bfd is not None:
                self.bfdd[gw.name] = Bfdd(dp, gw, {self.bfd.port_ip: gw.addr(4)},
                                          self.bfd.min_tx, self.bfd.detect_mult).start()
        self.gateways.append(gw)
        if wait:
            dp.wait_port_up(gw.lsp)
        return gw

    def _terminate_agents(self) -> None:
        for agent in self.agents.values():
            agent.terminate()

    def kill_gateway(self, gw: Netns) -> None:
        """gw dies: its BFD daemon is SIGKILLed and it stops forwarding."""
        if gw.name in self.agents:
            self.agents[gw.name].kill()
            return
        if gw.name in self.bfdd:
            self.bfdd[gw.name].kill()
        self.dp.exec(gw, "iptables", "-I", "FORWARD", "1", "-j", "DROP")

    def revive_gateway(self, gw: Netns) -> None:
        """Undo kill_gateway(): forwarding back, BFD daemon (agent) started again."""
        if gw.name in self.agents:
            self.agents[gw.name].revive()
            return
        self.dp.exec(gw, "iptables", "-D", "FORWARD", "-j", "DROP")
        if gw.name in self.bfdd:
            self.bfdd[gw.name].start()

    def stop_gateway(self, gw: Netns) -> None:
        """Graceful end of an instance (pod deleted): the agent removes its setup and exits."""
        if gw.name in self.agents:
            self.agents[gw.name].stop()
            return
        if gw.name in self.bfdd:
            self.bfdd[gw.name].stop()
        self.dp.exec(gw, "sysctl", "-qw", "net.ipv4.ip_forward=0",
                     "net.ipv6.conf.all.forwarding=0")

    def bfd_session(self, gw: Netns, peer: str | None = None) -> str:
        """The gateway's own view of its BFD session with the VPC's port ("up", "down"...)."""
        peer = peer or (self.bfd.port_ip.split(",")[0] if self.bfd else self.bfd_port_ip or "")
        if gw.name in self.agents:
            return self.agents[gw.name].bfd_status(peer)
        return self.bfdd[gw.name].status(peer) if gw.name in self.bfdd else ""


def _subnet_spec(s: Subnet, vpc: str) -> SubnetSpec:
    return SubnetSpec(s.switch, vpc, list(s.cidrs), list(s.gateways))


# vpc1's default route (Vpc spec.staticRoutes, e.g. towards a vpc-nat-gateway). Nothing answers
# at these addresses: traffic that no egress row catches goes nowhere. OVN needs *some* covering
# route, because lr_in_policy comes after lr_in_ip_routing, which drops unrouted packets.
VPC_DEFAULT_NEXTHOPS = ("192.168.0.254", "fd00:10::fe")


def build_egress_lab(dp: DataPlane, gateways: int = 2, pods: int = 1, dual_stack: bool = False,
                     bfd_port_ip: str | None = None, vpc_default_route: bool = True, *,
                     vpc: str = "vpc1", snat_sources: list[str] | None = None,
                     forward_sources: list[str] | None = None, bfd: BfdSpec | None = None,
                     gateway: str | None = None) -> EgressLab:
    """Topology + namespaces + gateway instances + echo server; returns once every port is
    bound and ovn-controller has caught up.

    vpc: "vpc1" (custom VPC, default) or "ovn-cluster" (the default VPC; IPv4 only).
    snat_sources: what the gateways masquerade (default: the subnet's CIDRs);
    forward_sources: what they forward untranslated. bfd: the gateways run BFD against the
    VPC's port with these timers (agents: bfdd supervised by `vegd gateway run`), and
    lab.spec() carries it. bfd_port_ip (old API, script gateways): only the route to the port.
    gateway: "vegd" or "script" (default VEGD_E2E_GATEWAY, else vegd).
    """
    if vpc not in ("vpc1", "ovn-cluster"):
        raise ValueError(f"vpc {vpc}: the lab has vpc1 and ovn-cluster")
    if vpc == "ovn-cluster" and dual_stack:
        raise ValueError("the lab's default VPC is IPv4 only")
    routes = VPC_DEFAULT_NEXTHOPS if dual_stack else VPC_DEFAULT_NEXTHOPS[:1]
    dvpc, sub = base_topology(dp.stack, dp.chassis,
                              cidr6="fd00:10::/64" if dual_stack and vpc == "vpc1" else None,
                              vpc_default_routes=routes if vpc_default_route else ())
    if vpc == "ovn-cluster":
        sub = dvpc.ovn_default
    ext_routers = [f"{EXT_ROUTER4}/24"] + ([f"{EXT_ROUTER6}/64"] if dual_stack else [])
    servers = [f"{SERVER4}/32"] + ([f"{SERVER6}/128"] if dual_stack else [])
    ext = dp.add_external_network("ext", router_ips=ext_routers, server_ips=servers)
    fwd = list(forward_sources or [])
    snat = list(snat_sources) if snat_sources is not None else list(sub.cidrs)
    lab = EgressLab(dp, dvpc, sub, ext, dual_stack=dual_stack, vpc=vpc, snat_sources=snat,
                    forward_sources=fwd, bfd=bfd, gateway_impl=gateway or gateway_impl(),
                    agent_config=agent_config(), bfd_port_ip=bfd_port_ip)
    for _ in range(gateways):
        lab.add_gateway(wait=False)
    if lab.agents:
        print(f"vegd gateway setup + run up in "
              f"{', '.join(f'{a.started_in * 1000:.0f}' for a in lab.agents.values())} ms")
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
