"""Destination-aware egress: which destinations of a policy's or selector's sources go through the
gateway (`destinationCIDRs`, default every destination) and which of those do not
(`excludedCIDRs`), with Cilium's semantics. Pure; docs/nb-contract.md shows the NB matches.

Per family: when `destinationCIDRs` lists addresses but none of a family, that family's traffic
of those sources does not use the gateway (as in Cilium); list `::/0` to keep it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vegd.model.errors import ValidationError

Net = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Destinations:
    included: tuple[Net, ...] = ()  # empty: every destination
    excluded: tuple[Net, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.included or self.excluded)

    def of(self, family: int) -> tuple[tuple[Net, ...], tuple[Net, ...]] | None:
        """(included, excluded) of one family; None when no destination of it is selected."""
        inc = tuple(n for n in self.included if n.version == family)
        if self.included and not inc:
            return None
        return inc, tuple(n for n in self.excluded if n.version == family)

    def __str__(self) -> str:
        return f"to {','.join(map(str, self.included)) or 'any'} " \
               f"except {','.join(map(str, self.excluded)) or 'none'}"


def _cidrs(raw: Any, obj: str, field: str) -> tuple[Net, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise ValidationError(obj, field, "must be a list of CIDRs")
    nets: list[Net] = []
    for text in raw:
        try:
            net = ipaddress.ip_network(text.strip())
        except ValueError as e:
            why = "has host bits set" if "host bits" in str(e) else "is not a CIDR"
            raise ValidationError(obj, field, f"{text!r} {why}") from None
        for other in nets:
            if net.version == other.version and net.overlaps(other):
                raise ValidationError(obj, field, f"{net} overlaps {other}")
        nets.append(net)
    return tuple(sorted(nets, key=lambda n: (n.version, int(n.network_address), n.prefixlen)))


def parse_destinations(raw: Mapping[str, Any], obj: str, where: str) -> Destinations:
    """`destinationCIDRs` / `excludedCIDRs` of one policy or selector entry."""
    included = _cidrs(raw.get("destinationCIDRs"), obj, f"{where}.destinationCIDRs")
    excluded = _cidrs(raw.get("excludedCIDRs"), obj, f"{where}.excludedCIDRs")
    for ex in excluded:
        same = [n for n in included if n.version == ex.version]
        if included and not any(ex.subnet_of(n) for n in same):  # type: ignore[arg-type]
            raise ValidationError(obj, f"{where}.excludedCIDRs",
                                  f"{ex} is outside every destinationCIDR")
        if ex in same or ex.prefixlen == 0:
            raise ValidationError(obj, f"{where}.excludedCIDRs",
                                  f"{ex} excludes a whole destination; remove both instead")
    return Destinations(included, excluded)
