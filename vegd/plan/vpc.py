"""A VPC's BFD port: the `bfd@<vpc>` router port, its HA chassis group and, on stock OVN, the
two helpers that make OVN run sessions on it (docs/bfd-port.md)."""

from __future__ import annotations

from vegd.model.limits import HA_CHASSIS_PRIORITY_RANGE
from vegd.model.objects import Node, Snapshot, Vpc
from vegd.plan import names
from vegd.plan.rows import (
    Bfd,
    Desired,
    HaChassis,
    HaChassisGroup,
    Owner,
    RouterPort,
    Row,
    Switch,
    pairs,
)
from vegd.plan.settings import PlanSettings

OWNER_KEY = "vpc"
AUTO_NODES = 3  # without a nodeSelector, the port may live on this many nodes


def vpc_owner(name: str, router: str = "") -> Owner:
    return Owner(OWNER_KEY, name, (router,) if router else ())


def bfd_port_nodes(vpc: Vpc, snap: Snapshot) -> list[Node]:
    """Nodes that may host the port: the selector's, else the first three ready ones by name."""
    port = vpc.bfd_port
    nodes = sorted(snap.nodes, key=lambda n: n.name)
    if port.node_selector is not None:
        return [n for n in nodes if port.node_selector.matches(dict(n.labels))]
    return [n for n in nodes if n.ready][:AUTO_NODES]


def ha_chassis_priorities(count: int) -> list[int]:
    """Distinct priorities, highest first: 100, 99, ... as long as they reach (101 chassis or
    fewer), else count-1 down to 0. HA_Chassis.priority is 0..32767, so a group holds at most
    32768 chassis; more are left out (far beyond Kubernetes' 5000-node limit)."""
    top = min(max(100, count - 1), HA_CHASSIS_PRIORITY_RANGE[1])
    return [top - i for i in range(min(count, top + 1))]


def plan_vpc(vpc: Vpc, snap: Snapshot, settings: PlanSettings) -> Desired:
    router = vpc.router_name
    owner = vpc_owner(vpc.name, router)
    port = vpc.bfd_port
    if not port.enabled or not port.ips:
        return Desired(owner)
    ids = pairs({"vendor": settings.vendor, OWNER_KEY: vpc.name})
    lrp = names.bfd_port(vpc.name)
    chassis = list(dict.fromkeys(c for c in (snap.chassis_of(n) for n in bfd_port_nodes(vpc, snap))
                                 if c))  # once each, in node-name order
    rows: list[Row] = [
        HaChassisGroup(lrp, tuple(HaChassis(c, p) for c, p in zip(
            chassis, ha_chassis_priorities(len(chassis)), strict=False)), ids),
        RouterPort(router, lrp, names.bfd_port_mac(vpc.name), tuple(str(ip) for ip in port.ips),
                   pairs({"bfd-only": "true"}), lrp, ids),
    ]
    if settings.bfd_port_mode == "stock":
        # 1. A peer: ovn-controller runs BFD only on router ports whose binding has one.
        rows.append(Switch(names.bfd_peer_switch(vpc.name),
                           ((names.bfd_peer_switch(vpc.name), lrp),), ids))
        # 2. TTL: northd keeps TTL 255 on BFD packets only towards ports that have a BFD row, so
        #    each subnet port gets one (never used: northd marks it admin_down). Only subnets
        #    with a router port: a BFD row naming a missing port crashes ovn-northd 25.03.
        for subnet in sorted(snap.subnets_of(vpc.name), key=lambda s: s.name):
            if not subnet.on_router:
                continue
            for gateway in subnet.gateways:
                rows.append(Bfd(names.subnet_router_port(router, subnet.name), str(gateway),
                                1000, 1000, 3, pairs({**dict(ids), "af": str(gateway.version)})))
    return Desired(owner, tuple(rows))
