"""Check a gateway against the rest of the cluster and resolve what it refers to.

`resolve_gateway` raises `ValidationError` for anything a person must fix in the spec (unknown
VPC or subnet, an address outside its subnet, a family the subnet does not have, BFD without a
VPC BFD port or with a port address an instance has, the internal subnet as the external one, an
address or sources another (older) gateway already has). Runtime state (which pods run) is
not an error: it is read by `model.instances`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from vegd.model.errors import ValidationError
from vegd.model.objects import (
    FAMILIES,
    GATEWAY_LABEL,
    Family,
    IPAddress,
    IPNetwork,
    Snapshot,
    Subnet,
    Vpc,
    VpcEgressGateway,
    collapse,
)


@dataclass(frozen=True)
class Sources:
    """Source prefixes per family, split by whether the gateway masquerades them."""

    snat: tuple[IPNetwork, ...] = ()
    forward: tuple[IPNetwork, ...] = ()

    @property
    def all(self) -> tuple[IPNetwork, ...]:
        return collapse(self.snat + self.forward)


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
    return {f: Sources(collapse(tuple(snat[f])), collapse(tuple(fwd[f]))) for f in FAMILIES}


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
    if external.name == internal.name:
        raise ValidationError(gw.ref, "spec.externalSubnet",
                              f"subnet {external.name} is also the internal subnet; the external "
                              "network must be another subnet (a macvlan attachment)")

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

    _check_pools(gw, snap, internal, external)
    _check_shared_addresses(gw, internal, external, snap)
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
        _check_bfd_peers(gw, port.ips, snap)
        if gw.bfd_mode == "policy" and not policy_bfd:
            raise ValidationError(gw.ref, "spec.bfdMode",
                                  "policy mode needs Logical_Router_Policy.bfd_sessions, which "
                                  "this OVN's Northbound schema lacks; use bfdMode: route")
        if gw.bfd_mode == "policy" and bfd_port_mode == "stock":
            raise ValidationError(gw.ref, "spec.bfdMode",
                                  "policy mode with BFD needs Kube-OVN's OVN (--bfd-port-mode "
                                  "kube-ovn): stock ovn-northd keeps a policy's sessions on "
                                  f"bfd@{vpc.name} admin_down, so they never fail over "
                                  "(docs/bfd-port.md); use bfdMode: route")

    _check_destinations(gw)
    _check_overlap(gw, sources, snap)
    return ResolvedGateway(gw, vpc, internal, external, sources, peers)


IP_POOL_NOT_FOUND = "IPPoolNotFound"
IP_POOL_SUBNET_MISMATCH = "IPPoolSubnetMismatch"


def _check_pools(gw: VpcEgressGateway, snap: Snapshot, internal: Subnet, external: Subnet
                 ) -> None:
    """A named IPPool must exist and belong to the subnet it is used on (Kube-OVN's message)."""
    for side, name, subnet in (("internal", gw.internal_ip_pool, internal),
                               ("external", gw.external_ip_pool, external)):
        if not name:
            continue
        field = f"spec.{side}IPPool"
        pool = snap.ip_pool(name)
        if pool is None:
            raise ValidationError(gw.ref, field, f'IPPool "{name}" does not exist',
                                  IP_POOL_NOT_FOUND)
        if pool.subnet != subnet.name:
            raise ValidationError(gw.ref, field, f'subnet "{pool.subnet}" of {side} IPPool '
                                  f'"{name}" does not match {side} subnet "{subnet.name}"',
                                  IP_POOL_SUBNET_MISMATCH)


AddressClaim = tuple[str, str, IPAddress]  # (field, subnet name, address)


def _check_shared_addresses(gw: VpcEgressGateway, internal: Subnet, external: Subnet,
                            snap: Snapshot) -> None:
    """An address of spec.internalIPs/externalIPs belongs to one gateway of its subnet: the
    older gateway keeps it (the rule of overlapping sources)."""
    claims = snap.memo("address-claims", lambda: _address_claims(snap))
    mine = (gw.created, gw.key)
    for field, entries, subnet in (("spec.internalIPs", gw.internal_ips, internal.name),
                                   ("spec.externalIPs", gw.external_ips, external.name)):
        for i, entry in enumerate(entries):
            for ip in entry:
                older = [c for c in claims.get((field, subnet, ip), ()) if c < mine]
                if older:
                    raise ValidationError(gw.ref, f"{field}[{i}]",
                                          f"{ip} is also in {field} of VpcEgressGateway "
                                          f"{min(older)[1]}; an address belongs to one gateway")


def _address_claims(snap: Snapshot) -> dict[AddressClaim, list[tuple[str, str]]]:
    """(field, subnet, address) -> (created, key) of every gateway listing it: one pass."""
    out: dict[AddressClaim, list[tuple[str, str]]] = {}
    for other in snap.gateways:
        if other.deleting:
            continue
        vpc = snap.vpc(other.vpc)
        internal = internal_subnet_name(other, vpc, snap) if vpc is not None else ""
        for field, entries, subnet in (("spec.internalIPs", other.internal_ips, internal),
                                       ("spec.externalIPs", other.external_ips,
                                        other.external_subnet)):
            for entry in entries:
                for ip in entry:
                    out.setdefault((field, subnet, ip), []).append((other.created, other.key))
    return out


def _check_bfd_peers(gw: VpcEgressGateway, peers: tuple[IPAddress, ...], snap: Snapshot) -> None:
    """The VPC's BFD port address must not be an instance's own address: the instance would
    run BFD against itself and the route through it would never be checked."""
    for i, entry in enumerate(gw.internal_ips):
        for ip in entry:
            if ip in peers:
                raise ValidationError(gw.ref, f"spec.internalIPs[{i}]",
                                      f"{ip} is the bfdPort address of VPC {gw.vpc}")
    for pod in (p for p in snap.pods_in(gw.namespace) if not p.deleting
                and p.label_map.get(GATEWAY_LABEL) == gw.pod_label):
        for ip in pod.ips:
            if ip in peers:
                raise ValidationError(gw.ref, "spec.bfd.enabled",
                                      f"instance pod {pod.key} has {ip}, the bfdPort "
                                      f"address of VPC {gw.vpc}")


def _check_destinations(gw: VpcEgressGateway) -> None:
    """Destination CIDRs are written as policy matches (docs/decisions.md): src-ip routes match
    only the source, so route mode would send every destination to the gateway (also the host
    routes of trafficPolicy Local)."""
    entries = [(f"spec.policies[{i}]", p.destinations) for i, p in enumerate(gw.policies)]
    entries += [(f"spec.selectors[{i}]", s.destinations) for i, s in enumerate(gw.selectors)]
    for where, dests in entries:
        if not dests.restricted:
            continue
        if gw.bfd.enabled and gw.bfd_mode == "route":
            raise ValidationError(gw.ref, f"{where}.destinationCIDRs",
                                  "bfdMode route writes src-ip static routes, which cannot match "
                                  "a destination; use bfdMode: policy (OVN >= 24.03) or BFD off")


def _check_overlap(gw: VpcEgressGateway, sources: dict[Family, Sources], snap: Snapshot) -> None:
    """Two gateways of one VPC must not claim the same sources: the older one keeps them."""
    claims = snap.memo("source-claims", lambda: _source_claims(snap)).get(gw.vpc)
    if claims is None:
        return
    mine = (gw.created, gw.key)
    for net in (n for f in FAMILIES for n in sources[f].all):
        older = [c for c in claims.overlapping(net) if c[0] < mine]
        if older:
            (_, other), theirs = min(older, key=lambda c: (c[0], str(c[1])))
            raise ValidationError(
                gw.ref, "spec.policies",
                f"source {net} overlaps {theirs} of VpcEgressGateway {other} in the same "
                "VPC; a source can egress through one gateway only")


Claim = tuple[tuple[str, str], IPNetwork]  # ((created, gateway key), prefix)


class _Claims:
    """The source prefixes every gateway of one VPC claims, found by overlap in O(log n):
    two prefixes overlap when one contains the other."""

    def __init__(self) -> None:
        self.exact: dict[tuple[int, int, int], list[Claim]] = {}  # (version, start, len)
        self.starts: dict[int, list[tuple[int, int, Claim]]] = {4: [], 6: []}
        self.lengths: dict[int, set[int]] = {4: set(), 6: set()}  # prefix lengths claimed

    def add(self, owner: tuple[str, str], net: IPNetwork) -> None:
        start = int(net.network_address)
        self.exact.setdefault((net.version, start, net.prefixlen), []).append((owner, net))
        self.starts[net.version].append((start, net.prefixlen, (owner, net)))
        self.lengths[net.version].add(net.prefixlen)

    def seal(self) -> None:
        for entries in self.starts.values():
            entries.sort(key=lambda e: (e[0], e[1]))

    def overlapping(self, net: IPNetwork) -> list[Claim]:
        bits = net.max_prefixlen
        start = int(net.network_address)
        out: list[Claim] = []
        # net itself and every prefix containing it, of the lengths some gateway claims
        for length in self.lengths[net.version]:
            if length > net.prefixlen:
                continue
            mask = ((1 << length) - 1) << (bits - length)
            out.extend(self.exact.get((net.version, start & mask, length), ()))
        entries = self.starts[net.version]  # prefixes inside net start within it
        end = int(net.broadcast_address)
        i = bisect.bisect_left(entries, (start, net.prefixlen + 1))
        while i < len(entries) and entries[i][0] <= end:
            out.append(entries[i][2])
            i += 1
        return out


def _source_claims(snap: Snapshot) -> dict[str, _Claims]:
    out: dict[str, _Claims] = {}
    for other in snap.gateways:
        if other.deleting:
            continue
        claims = out.setdefault(other.vpc, _Claims())
        theirs = gateway_sources(other, snap, strict=False)
        for net in {n for f in FAMILIES for n in theirs[f].all}:
            claims.add((other.created, other.key), net)
    for claims in out.values():
        claims.seal()
    return out
