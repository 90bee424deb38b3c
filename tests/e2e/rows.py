"""The pluggable "egress rows" step: how the NB rows for an egress gateway get written.

Tests describe what they want with an EgressSpec and hand it to a RowsWriter. Today the only
writer is HandWrittenRows (ovn-nbctl, seed-faithful rows as in shared/design.md section 3); once
vegd's NB engine exists, a writer that renders the VpcEgressGateway/Vpc YAML and runs
``vegd apply -f DIR`` implements the same two methods, and the conftest picks it with
``VEGD_E2E_ROWS=vegd``. The tests themselves do not change.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Protocol

from ovnstack import OvnStack

from .topology import mac_for


@dataclass
class BfdSpec:
    min_tx: int = 300
    min_rx: int = 300
    detect_mult: int = 3
    port_ip: str = "10.255.255.255"          # the VPC's dedicated BFD port (bfd@<vpc>)
    ttl_workaround_ip: str = ""               # unused BFD row on the subnet LRP (A3); "" = .254


@dataclass
class EgressSpec:
    name: str
    vpc: str                                  # logical router
    subnet_lrp: str                           # LRP of the gateways' internal subnet
    sources: list[str]                        # source CIDRs
    nexthops: list[str]                       # gateway instances' internal IPs
    bfd: BfdSpec | None = None
    priority: int = 29100
    chassis: list[str] = field(default_factory=lambda: ["chassis-a"])

    def nexthops_for(self, version: int) -> list[str]:
        return [n for n in self.nexthops if ipaddress.ip_address(n).version == version]


class RowsWriter(Protocol):
    name: str

    def apply(self, stack: OvnStack, spec: EgressSpec) -> None: ...

    def remove(self, stack: OvnStack, spec: EgressSpec) -> None: ...


def _uuid(stack: OvnStack, table: str, *conds: str) -> str:
    out = stack.nbctl("--bare", "--columns=_uuid", "find", table, *conds).split()
    if len(out) != 1:
        raise LookupError(f"{table} {conds}: {len(out)} rows")
    return out[0]


class HandWrittenRows:
    """Seed-faithful NB rows written with ovn-nbctl.

    BFD off: one reroute policy per source CIDR (priority 29100, ``ip4.src == <cidr>``,
    nexthops = every instance of that family).

    BFD on ("route" mode) on stock OVN 23.03, the "A3" arrangement of
    shared/reference/ovn-bfd-port.md: LRP ``bfd@<vpc>`` (port_ip/32, no peer,
    options:bfd-only=true) bound to HA_Chassis_Group ``bfd@<vpc>``; a dummy logical switch whose
    router-type LSP points at bfd@<vpc> (gives the port binding a peer, without which
    ovn-controller never runs the sessions); one BFD row per instance on bfd@<vpc>; one unused BFD
    row on the subnet LRP (so northd keeps TTL 255 on BFD packets routed out of it); per source
    and instance an ECMP src-ip static route with bfd=<row> and ecmp_symmetric_reply.
    """

    name = "hand"

    def apply(self, stack: OvnStack, spec: EgressSpec) -> None:
        ext = f"external_ids:vpc-egress-gateway={spec.name}"
        if spec.bfd is None:
            for src in spec.sources:
                v = ipaddress.ip_network(src).version
                hops = spec.nexthops_for(v)
                stack.nbctl("--", "--id=@p", "create", "Logical_Router_Policy",
                            f"priority={spec.priority}", f'match="ip{v}.src == {src}"',
                            "action=reroute", "nexthops=" + ",".join(f'"{h}"' for h in hops), ext,
                            f"external_ids:af={v}",
                            "--", "add", "Logical_Router", spec.vpc, "policies", "@p")
            return
        b = spec.bfd
        port = f"bfd@{spec.vpc}"
        hcg = port
        dummy_ls = f"bfd-dummy-{spec.vpc}"
        stack.nbctl("--may-exist", "lrp-add", spec.vpc, port, mac_for(b.port_ip),
                    f"{b.port_ip}/32", "--", "set", "Logical_Router_Port", port,
                    "options:bfd-only=true", f"external_ids:vpc={spec.vpc}")
        stack.nbctl("ha-chassis-group-add", hcg)
        for i, ch in enumerate(spec.chassis):
            stack.nbctl("ha-chassis-group-add-chassis", hcg, ch, str(100 - i))
        stack.nbctl("set", "Logical_Router_Port", port,
                    f"ha_chassis_group={_uuid(stack, 'HA_Chassis_Group', f'name={hcg}')}")
        lsp = f"{dummy_ls}-{spec.vpc}"
        stack.nbctl("--may-exist", "ls-add", dummy_ls, "--", "--may-exist", "lsp-add", dummy_ls,
                    lsp, "--", "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp,
                    "router", "--", "lsp-set-options", lsp, f"router-port={port}")
        timers = (f"min_tx={b.min_tx}", f"min_rx={b.min_rx}", f"detect_mult={b.detect_mult}")
        ttl_ip = b.ttl_workaround_ip or _last_host(stack, spec.subnet_lrp)
        stack.nbctl("create", "BFD", f"logical_port={spec.subnet_lrp}", f'dst_ip="{ttl_ip}"',
                    *timers, f"external_ids:vpc={spec.vpc}", "external_ids:purpose=ttl")
        for nh in spec.nexthops:
            bfd = stack.nbctl("create", "BFD", f"logical_port={port}", f'dst_ip="{nh}"', *timers,
                              ext).strip()
            for src in spec.sources:
                if ipaddress.ip_network(src).version != ipaddress.ip_address(nh).version:
                    continue
                stack.nbctl("--", "--id=@r", "create", "Logical_Router_Static_Route",
                            f'ip_prefix="{src}"', f'nexthop="{nh}"', "policy=src-ip", f"bfd={bfd}",
                            "options:ecmp_symmetric_reply=true", ext,
                            "--", "add", "Logical_Router", spec.vpc, "static_routes", "@r")

    def remove(self, stack: OvnStack, spec: EgressSpec) -> None:
        """Remove the gateway's own rows (policies, routes, BFD rows). The VPC-level rows of the
        BFD port (bfd@<vpc>, its HA_Chassis_Group, the dummy switch, the TTL row) stay."""
        cond = f"external_ids:vpc-egress-gateway={spec.name}"
        for table, col in (("Logical_Router_Policy", "policies"),
                           ("Logical_Router_Static_Route", "static_routes")):
            for u in stack.nbctl("--bare", "--columns=_uuid", "find", table, cond).split():
                stack.nbctl("remove", "Logical_Router", spec.vpc, col, u)
        for u in stack.nbctl("--bare", "--columns=_uuid", "find", "BFD", cond).split():
            stack.nbctl("destroy", "BFD", u)


def _last_host(stack: OvnStack, lrp: str) -> str:
    """An address of lrp's first network that nothing uses (.254 of a /24): the A3 TTL row."""
    nets = stack.nbctl("get", "Logical_Router_Port", lrp, "networks").split()
    net = ipaddress.ip_interface(nets[0].strip('"[],')).network
    return str(net.broadcast_address - 1)


WRITERS: dict[str, type] = {"hand": HandWrittenRows}
