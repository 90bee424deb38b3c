"""Check a gateway against the rest of the cluster and resolve what it refers to.

`resolve_gateway` raises `ValidationError` for anything a person must fix in the spec (unknown
VPC or subnet, an address outside its subnet, a family the subnet does not have, BFD without a
VPC BFD port, sources overlapping another gateway of the VPC). Runtime state (which pods run) is
not an error: it is read by `model.instances`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from vegd.model.errors import ValidationError
from vegd.model.objects import (
    FAMILIES,
    Family,
    IPAddress,
    IPNetwork,
    Snapshot,
    Subnet,
    Vpc,
    VpcEgressGateway,
)


@dataclass(frozen=True)
class Sources:
    """Source prefixes per family, split by whether the gateway masquerades them."""

    snat: tuple[IPNetwork, ...] = ()
    forward: tuple[IPNetwork, ...] = ()

    @property
    def all(self) -> tuple[IPNetwork, ...]:
        return _collapse(self.snat + self.forward)


@dataclass(frozen=True)
class ResolvedGateway:
    gateway: VpcEgressGateway
    vpc: Vpc
    internal_subnet: Subnet
    external_subnet: Subnet
    sources: dict[Family, Sources]
    bfd_peers: dict[Family, IPAddress]  # the VPC BFD port's address per family (BFD on only)

    @property
    def families(self) -> tuple[Family, ...]:
        return self.internal_subnet.families


def _collapse(nets: tuple[IPNetwork, ...]) -> tuple[IPNetwork, ...]:
    """Sorted, without duplicates and without prefixes inside another listed prefix."""
    out: list[IPNetwork] = []
    for net in sorted(set(nets), key=lambda n: (n.version, n.prefixlen, n.network_address)):
        if not any(net.version == o.version and net.subnet_of(o) for o in out):  # type: ignore[arg-type]
            out.append(net)
    return tuple(sorted(out, key=lambda n: (n.version, int(n.network_address), n.prefixlen)))


def internal_subnet_name(gw: VpcEgressGateway, vpc: Vpc, snap: Snapshot) -> str:
    if gw.internal_subnet:
        return gw.internal_subnet
    if vpc.default_subnet:
        return vpc.default_subnet
    own = snap.subnets_of(vpc.name)
    marked = [s for s in own if s.default]
    if len(marked) == 1:
        return marked[0].name
    if len(own) == 1:
        return own[0].name
    return ""


def gateway_sources(gw: VpcEgressGateway, snap: Snapshot, strict: bool = True
                    ) -> dict[Family, Sources]:
    """Source prefixes of the policies, per family. Unknown subnets raise when strict."""
    snat: dict[Family, list[IPNetwork]] = {4: [], 6: []}
    fwd: dict[Family, list[IPNetwork]] = {4: [], 6: []}
    for i, policy in enumerate(gw.policies):
        nets = list(policy.ip_blocks)
        for name in policy.subnets:
            subnet = snap.subnet(name)
            if subnet is None or subnet.vpc != gw.vpc:
                if not strict:
                    continue
                why = "does not exist" if subnet is None else f"belongs to VPC {subnet.vpc}"
                raise ValidationError(gw.ref, f"spec.policies[{i}].subnets",
                                      f"subnet {name} {why}, not to VPC {gw.vpc}")
            nets.extend(subnet.cidrs)
        target = snat if policy.snat else fwd
        for net in nets:
            target[net.version].append(net)
    return {f: Sources(_collapse(tuple(snat[f])), _collapse(tuple(fwd[f]))) for f in FAMILIES}


def resolve_gateway(gw: VpcEgressGateway, snap: Snapshot, policy_bfd: bool = True,
                    bfd_port_mode: str = "stock") -> ResolvedGateway:
    """Validate gw against snap.

    policy_bfd: whether the NB schema has Logical_Router_Policy.bfd_sessions.
    bfd_port_mode: "stock" or "kube-ovn" (docs/bfd-port.md). Stock OVN cannot run a policy's
    BFD sessions on bfd@<vpc>, so policy mode with BFD is refused there.
    """
    vpc = snap.vpc(gw.vpc)
    if vpc is None:
        raise ValidationError(gw.ref, "spec.vpc", f"VPC {gw.vpc} does not exist")

    internal_name = internal_subnet_name(gw, vpc, snap)
    if not internal_name:
        raise ValidationError(gw.ref, "spec.internalSubnet",
                              f"is not set and VPC {vpc.name} has no default subnet")
    internal = snap.subnet(internal_name)
    if internal is None:
        raise ValidationError(gw.ref, "spec.internalSubnet",
                              f"subnet {internal_name} does not exist")
    if internal.vpc != vpc.name:
        raise ValidationError(gw.ref, "spec.internalSubnet",
                              f"subnet {internal_name} belongs to VPC {internal.vpc}, "
                              f"not {vpc.name}")
    external = snap.subnet(gw.external_subnet)
    if external is None:
        raise ValidationError(gw.ref, "spec.externalSubnet",
                              f"subnet {gw.external_subnet} does not exist")

    for field, entries, subnet in (("spec.internalIPs", gw.internal_ips, internal),
                                   ("spec.externalIPs", gw.external_ips, external)):
        if entries and len(entries) < gw.replicas:
            raise ValidationError(gw.ref, field, f"{len(entries)} address(es) for "
                                  f"{gw.replicas} replicas: give at least one per replica")
        for i, entry in enumerate(entries):
            for ip in entry:
                cidr = subnet.cidr(ip.version)
                if cidr is None:
                    raise ValidationError(gw.ref, f"{field}[{i}]", f"{ip} is IPv{ip.version} but "
                                          f"subnet {subnet.name} has no IPv{ip.version} CIDR")
                if ip not in cidr:
                    raise ValidationError(gw.ref, f"{field}[{i}]",
                                          f"{ip} is outside subnet {subnet.name} ({cidr})")

    sources = gateway_sources(gw, snap)
    for family in FAMILIES:
        if sources[family].all and family not in internal.families:
            raise ValidationError(gw.ref, "spec.policies",
                                  f"IPv{family} sources {', '.join(map(str, sources[family].all))} "
                                  f"but internal subnet {internal.name} has no IPv{family} CIDR")

    peers: dict[Family, IPAddress] = {}
    if gw.bfd.enabled:
        port = vpc.bfd_port
        if not port.enabled or not port.ips:
            raise ValidationError(gw.ref, "spec.bfd.enabled",
                                  f"BFD is on but VPC {vpc.name} has no enabled bfdPort "
                                  "(set spec.bfdPort on the Vpc first)")
        peers = {ip.version: ip for ip in port.ips}
        for family in internal.families:
            if family not in peers:
                raise ValidationError(gw.ref, "spec.bfd.enabled",
                                      f"internal subnet {internal.name} has IPv{family} but the "
                                      f"bfdPort of VPC {vpc.name} has no IPv{family} address")
        if gw.bfd_mode == "policy" and not policy_bfd:
            raise ValidationError(gw.ref, "spec.bfdMode",
                                  "policy mode needs Logical_Router_Policy.bfd_sessions, which "
                                  "this OVN's Northbound schema lacks; use bfdMode: route")
        if gw.bfd_mode == "policy" and bfd_port_mode == "stock":
            raise ValidationError(gw.ref, "spec.bfdMode",
                                  "policy mode with BFD needs Kube-OVN's OVN (--bfd-port-mode "
                                  "kube-ovn): stock ovn-northd keeps a policy's sessions on "
                                  f"{'bfd@' + vpc.name} admin_down, so they never fail over "
                                  "(docs/bfd-port.md); use bfdMode: route")

    _check_overlap(gw, sources, snap)
    return ResolvedGateway(gw, vpc, internal, external, sources, peers)


def _check_overlap(gw: VpcEgressGateway, sources: dict[Family, Sources], snap: Snapshot) -> None:
    """Two gateways of one VPC must not claim the same sources: the older one keeps them."""
    mine = [n for f in FAMILIES for n in sources[f].all]
    for other in snap.gateways:
        if other.key == gw.key or other.vpc != gw.vpc or other.deleting:
            continue
        if (other.created, other.key) > (gw.created, gw.key):
            continue
        theirs = snap.memo(f"lenient-sources:{other.key}",
                           functools.partial(gateway_sources, other, snap, strict=False))
        for net in mine:
            for o in theirs[net.version].all:
                if net.overlaps(o):
                    raise ValidationError(
                        gw.ref, "spec.policies",
                        f"source {net} overlaps {o} of VpcEgressGateway {other.key} in the same "
                        "VPC; a source can egress through one gateway only")
