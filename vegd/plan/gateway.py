"""One gateway's desired NB rows, per address family (docs/nb-contract.md is the contract).

- BFD off, or `bfdMode: policy`: 29100 reroute policies, one per source prefix plus one for the
  selector address set; with BFD they carry `bfd_sessions` and 29090 drop policies back them.
- BFD on, `bfdMode: route`: src-ip ECMP static routes per source prefix (and per selected pod)
  and instance, each guarded by a BFD row on `bfd@<vpc>`. Fail closed without reacting to BFD:
  a 29095 `allow` keeps what routing sent to an instance, a 29090 `drop` takes every other
  packet of the sources that leaves the VPC's subnets (docs/fail-closed.md).
- No instance at all: 29090 drop policies, so sources never leave un-SNATed through another path.
- `trafficPolicy: Local`: sources on a node that runs instances prefer those instances.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict

from vegd.model.destinations import Destinations
from vegd.model.instances import Instance, selected_pods, source_pods, workload
from vegd.model.objects import Family, IPAddress, IPNetwork, Pod, Snapshot, collapse
from vegd.model.resolve import ResolvedGateway
from vegd.plan import names
from vegd.plan.destinations import (
    destination_clause,
    destination_matches,
    has_destinations,
    local_groups,
    local_node_set,
)
from vegd.plan.rows import (
    AddressSet,
    Bfd,
    BfdRef,
    Desired,
    Owner,
    RouterPolicy,
    Row,
    StaticRoute,
    pairs,
)
from vegd.plan.settings import PlanSettings

OWNER_KEY = "vpc-egress-gateway"
SYMMETRIC = pairs({"ecmp_symmetric_reply": "true"})


def gateway_owner(key: str, router: str = "") -> Owner:
    return Owner(OWNER_KEY, key, (router,) if router else ())


def plan_gateway(r: ResolvedGateway, snap: Snapshot, settings: PlanSettings) -> Desired:
    gw = r.gateway
    owner = gateway_owner(gw.key, r.vpc.router_name)
    if gw.deleting:
        return Desired(owner)
    instances = workload(r, snap).instances
    selected = selected_pods(r, snap)
    local = _local_sources(r, snap) if gw.traffic_policy == "Local" else ()
    rows: list[Row] = []
    for family in r.families:
        internal = _internal_prefixes(r, snap, family)
        rows.extend(_family_rows(r, snap, family, settings, instances, selected, local, internal))
    return Desired(owner, tuple(rows))


def selector_sets(r: ResolvedGateway) -> tuple[str, ...] | None:
    """The names of the gateway's selector address sets, when those sets are the only rows of
    its plan that pods other than its own instances change (BFD off or policy mode, no
    destinationCIDRs, trafficPolicy Cluster); None when other rows depend on such pods too."""
    gw = r.gateway
    if gw.deleting or gw.traffic_policy == "Local" or has_destinations(gw) or \
            (gw.bfd.enabled and gw.bfd_mode == "route"):
        return None
    return tuple(names.selector_set(gw.key, f) for f in r.families) if gw.selectors else ()


def selector_set_members(r: ResolvedGateway, snap: Snapshot,
                         sets: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]] | None:
    """set name -> the addresses `plan_gateway` gives each of `selector_sets` (None likewise):
    what a change of selected pods alone changes in the plan. `sets`: selector_sets(r), when
    the caller has it already (the names hash the gateway key)."""
    if sets is None:
        sets = selector_sets(r)
    if sets is None:
        return None
    selected = selected_pods(r, snap) if sets else ()
    return {name: _ips_of(selected, family)
            for name, family in zip(sets, r.families, strict=True)}


LocalGroups = tuple[tuple[Destinations, tuple[Pod, ...]], ...]


def _local_sources(r: ResolvedGateway, snap: Snapshot) -> LocalGroups:
    """The source pods per destination list (one group, every destination, without any)."""
    if has_destinations(r.gateway):
        return tuple(local_groups(r, snap))
    return ((Destinations(), source_pods(r, snap)),)


def _ips_of(items: tuple[Pod, ...] | tuple[Instance, ...], family: Family) -> tuple[str, ...]:
    """The addresses of the family of pods (or instances) that have one, as `_ips` orders them."""
    return _ips([ip for p in items if (ip := p.ip(family)) is not None])


def _ips(items: list[IPAddress]) -> tuple[str, ...]:
    """Addresses of one family in address order (by their integers: ipaddress' own comparison
    is pure Python, and this runs for every selected pod of every reconcile)."""
    return tuple(str(ip) for ip in sorted(set(items), key=int))


def _internal_prefixes(r: ResolvedGateway, snap: Snapshot, family: Family) -> tuple[str, ...]:
    """The VPC's own (OVN-provider) subnets of the family: destinations sources may always reach."""
    return tuple(str(n) for n in collapse(c for s in snap.subnets_of(r.vpc.name)
                                          if s.on_router
                                          for c in s.cidrs if c.version == family))


def _family_rows(r: ResolvedGateway, snap: Snapshot, family: Family, settings: PlanSettings,
                 instances: tuple[Instance, ...], selected: tuple[Pod, ...],
                 local: LocalGroups, internal: tuple[str, ...]) -> list[Row]:
    gw = r.gateway
    router = r.vpc.router_name
    ids = pairs({"vendor": settings.vendor, OWNER_KEY: gw.key, "af": str(family)})
    nexthops = _ips_of(instances, family)
    prefixes = r.sources[family].all
    chosen = _ips_of(selected, family)
    bfd_on = gw.bfd.enabled
    route_mode = bfd_on and gw.bfd_mode == "route"
    port = names.bfd_port(r.vpc.name)

    rows: list[Row] = []
    bfd_refs: dict[str, BfdRef] = {}
    if bfd_on:
        for hop in nexthops:
            # Timers are the instance's: it sends at minTX, so OVN must expect minTX (min_rx),
            # and OVN sends at the rate the instance asks to receive (min_tx = minRX).
            row = Bfd(port, hop, gw.bfd.min_tx, gw.bfd.min_rx, gw.bfd.multiplier, ids)
            rows.append(row)
            bfd_refs[hop] = row.ref

    matches = [names.ip_match(family, str(p)) for p in prefixes]
    if has_destinations(gw):  # policy rows only (route mode refuses destinations)
        set_rows, matches = destination_matches(r, snap, family, ids)
        rows.extend(set_rows)
    elif gw.selectors and not route_mode:
        set_name = names.selector_set(gw.key, family)
        rows.append(AddressSet(set_name, chosen, ids))
        matches.append(names.ip_match(family, "$" + set_name))

    # Pods already inside a source prefix are covered by its route.
    extra = [ip for ip in chosen if not _inside(ip, prefixes)] if route_mode else []
    if route_mode:
        for prefix in [names.ovn_prefix(str(p)) for p in prefixes] + extra:
            rows.extend(StaticRoute(router, prefix, hop, "src-ip", SYMMETRIC, bfd_refs[hop], ids)
                        for hop in nexthops)
    elif nexthops:
        sessions = tuple(bfd_refs[h] for h in nexthops) if bfd_on else ()
        rows.extend(RouterPolicy(router, names.POLICY_PRIORITY, m, "reroute", nexthops,
                                 sessions, ids) for m in matches)
    if route_mode:
        rows.extend(_fail_closed_rows(router, family, matches + [names.ip_match(family, ip)
                                                                  for ip in extra],
                                      nexthops, internal, ids))
    elif not nexthops or bfd_on:
        rows.extend(RouterPolicy(router, names.DROP_PRIORITY, m, "drop", external_ids=ids)
                    for m in matches)

    if local and nexthops:
        rows.extend(_local_rows(r, family, ids, instances, local, bfd_refs, route_mode))
    return rows


def _fail_closed_rows(router: str, family: Family, matches: list[str],
                      nexthops: tuple[str, ...], internal: tuple[str, ...],
                      ids: tuple[tuple[str, str], ...]) -> list[Row]:
    """Static, so there is no window while BFD changes: policies run after routing, and routing
    leaves the chosen nexthop in reg0/xxreg0. A packet of a source that routing sent to an
    instance is allowed (29095, also past other writers' lower policies); any other packet of
    a source is dropped (29090) unless it is bound to one of the VPC's subnets. When every
    session is down northd removes the BFD routes and the VPC's other routes (a default route)
    would take the packet out with the pod's own address: the drop catches it."""
    reg = names.nexthop_register(family)
    outside = f" && ip{family}.dst != {names.ovn_set(internal)}" if internal else ""
    rows: list[Row] = []
    for m in matches:
        if nexthops:
            rows.append(RouterPolicy(router, names.ALLOW_PRIORITY,
                                     f"{m} && {reg} == {names.ovn_set(nexthops)}", "allow",
                                     external_ids=ids))
        rows.append(RouterPolicy(router, names.DROP_PRIORITY, m + outside, "drop",
                                 external_ids=ids))
    return rows


def _inside(ip: str, prefixes: tuple[IPNetwork, ...]) -> bool:
    addr = ipaddress.ip_address(ip)
    return any(addr.version == p.version and addr in p for p in prefixes)


def _local_rows(r: ResolvedGateway, family: Family, ids: tuple[tuple[str, str], ...],
                instances: tuple[Instance, ...], local: LocalGroups,
                bfd_refs: dict[str, BfdRef], route_mode: bool) -> list[Row]:
    """Per node with instances: that node's source pods go to that node's instances first, for
    the destinations of their entries (one set and policy per node and destination list; its
    match is inside the entries' 29100 match, so the 29100/29090 rows back it)."""
    gw = r.gateway
    router = r.vpc.router_name
    hops_by_node: dict[str, list[IPAddress]] = defaultdict(list)
    for inst in instances:
        ip = inst.ip(family)
        if ip is not None and inst.node:
            hops_by_node[inst.node].append(ip)
    rows: list[Row] = []
    for dests, pods_of_group in local:
        clause = destination_clause(family, dests)
        if clause is None:
            continue
        pods_by_node: dict[str, list[IPAddress]] = defaultdict(list)
        for pod in pods_of_group:
            ip = pod.ip(family)
            if ip is not None and pod.node_name in hops_by_node:
                pods_by_node[pod.node_name].append(ip)
        for node in sorted(pods_by_node):
            hops = _ips(hops_by_node[node])
            pods = _ips(pods_by_node[node])
            if route_mode:  # never with destinations (model.resolve)
                # Host routes beat the prefix routes; when the local sessions are down they
                # vanish and the prefix routes over every instance take over.
                rows.extend(StaticRoute(router, pod, hop, "src-ip", SYMMETRIC, bfd_refs[hop],
                                        ids) for pod in pods for hop in hops)
                continue
            set_name = local_node_set(gw.key, node, dests, family)
            rows.append(AddressSet(set_name, pods, ids))
            sessions = tuple(bfd_refs[h] for h in hops) if bfd_refs else ()
            rows.append(RouterPolicy(router, names.LOCAL_PRIORITY,
                                     names.ip_match(family, "$" + set_name) + clause, "reroute",
                                     hops, sessions, ids))
    return rows
