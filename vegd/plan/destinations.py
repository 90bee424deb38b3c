"""NB matches of destination-aware egress (docs/nb-contract.md, "Destinations").

A policy or selector with `destinationCIDRs`/`excludedCIDRs` gets its source match extended by
`&& ip4.dst == {<included>}` and/or `&& ip4.dst != {<excluded>}`; the 29100 reroute and, where
there is one, the 29090 drop carry the same match, so only the selected destinations go through
the gateway and only they fail closed. Everything else of the sources follows the VPC's own
routing. Route mode refuses restrictions (model.resolve): src-ip routes cannot match a destination.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TypeVar

from vegd.model.destinations import Destinations
from vegd.model.instances import pods_selected_by, source_pods_of
from vegd.model.objects import EgressPolicy, Family, Pod, PodSelection, Snapshot, VpcEgressGateway
from vegd.model.resolve import ResolvedGateway, gateway_sources
from vegd.plan import names
from vegd.plan.rows import AddressSet, Pairs, Row

T = TypeVar("T")


def has_destinations(gw: VpcEgressGateway) -> bool:
    return any(p.destinations.restricted for p in gw.policies) or \
        any(s.destinations.restricted for s in gw.selectors)


def destination_clause(family: Family, dests: Destinations) -> str | None:
    """What a source match gets appended; None when no destination of the family is selected."""
    chosen = dests.of(family)
    if chosen is None:
        return None
    included, excluded = chosen
    clause = ""
    if included:
        clause += f" && ip{family}.dst == {names.ovn_set([str(n) for n in included])}"
    if excluded:
        clause += f" && ip{family}.dst != {names.ovn_set([str(n) for n in excluded])}"
    return clause


def destination_digest(dests: Destinations) -> str:
    return hashlib.sha256(str(dests).encode()).hexdigest()[:8]


def destination_set(key: str, dests: Destinations, family: Family) -> str:
    """Address set of the pods chosen by the selectors with these destinations."""
    return f"VEG.{names.owner_hash(key)}.d{destination_digest(dests)}_ip{family}"


def local_node_set(key: str, node: str, dests: Destinations, family: Family) -> str:
    """trafficPolicy Local: the source pods on one node of the entries with these destinations
    (`VEG.<h>.n<node>_ip4` for the entries without, `VEG.<h>.n<node>.d<dests>_ip4` else)."""
    base = names.node_set(key, node, family).removesuffix(f"_ip{family}")
    tail = f".d{destination_digest(dests)}" if dests.restricted else ""
    return f"{base}{tail}_ip{family}"


def local_groups(r: ResolvedGateway, snap: Snapshot) -> list[tuple[Destinations, tuple[Pod, ...]]]:
    """trafficPolicy Local: the source pods of the entries (policies and selectors together)
    that share one destination list, per list; the unrestricted entries first."""
    gw = r.gateway
    groups: dict[Destinations, tuple[list[EgressPolicy], list[PodSelection]]] = {}
    for p in gw.policies:
        groups.setdefault(p.destinations, ([], []))[0].append(p)
    for s in gw.selectors:
        groups.setdefault(s.destinations, ([], []))[1].append(s)
    out = []
    for dests in sorted(groups, key=lambda d: (d.restricted, str(d))):
        policies, selections = groups[dests]
        only = dataclasses.replace(gw, policies=tuple(policies))
        prefixes = {f: s.all for f, s in gateway_sources(only, snap).items()}
        out.append((dests, source_pods_of(r, snap, prefixes, tuple(selections))))
    return out


def _grouped(items: list[tuple[Destinations, T]]) -> dict[Destinations, list[T]]:
    groups: dict[Destinations, list[T]] = {}
    for dests, item in items:
        groups.setdefault(dests, []).append(item)
    return groups


def destination_matches(r: ResolvedGateway, snap: Snapshot, family: Family, ids: Pairs
                        ) -> tuple[list[Row], list[str]]:
    """The selector address sets and every source match of one family, with destinations.

    Sources of several entries add up: a source in two entries goes through the gateway to the
    destinations of either (their reroutes are the same, only the matches differ)."""
    gw = r.gateway
    rows: list[Row] = []
    matches: list[str] = []
    for dests, policies in _grouped([(p.destinations, p) for p in gw.policies]).items():
        clause = destination_clause(family, dests)
        if clause is None:
            continue
        only = dataclasses.replace(gw, policies=tuple(policies))
        matches += [names.ip_match(family, str(p)) + clause
                    for p in gateway_sources(only, snap)[family].all]
    for dests, selections in _grouped([(s.destinations, s) for s in gw.selectors]).items():
        clause = destination_clause(family, dests)
        if clause is None:
            continue
        name = destination_set(gw.key, dests, family) if dests.restricted \
            else names.selector_set(gw.key, family)
        chosen: tuple[PodSelection, ...] = tuple(selections)
        pods = pods_selected_by(r, snap, chosen)
        found = {p.ip(family) for p in pods} - {None}
        ips = tuple(str(ip) for ip in sorted(found))  # type: ignore[type-var]
        rows.append(AddressSet(name, ips, ids))
        matches.append(names.ip_match(family, "$" + name) + clause)
    return rows, matches
