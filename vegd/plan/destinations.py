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
from vegd.model.instances import pods_selected_by
from vegd.model.objects import Family, PodSelection, Snapshot, VpcEgressGateway
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


def destination_set(key: str, dests: Destinations, family: Family) -> str:
    """Address set of the pods chosen by the selectors with these destinations."""
    digest = hashlib.sha256(str(dests).encode()).hexdigest()[:8]
    return f"VEG.{names.owner_hash(key)}.d{digest}_ip{family}"


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
