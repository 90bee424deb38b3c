"""Rows other controllers wrote for a gateway (another `vendor`, e.g. Kube-OVN's `kube-ovn`).

Read only: vegd never writes, updates or deletes them (docs/decisions.md, coexistence). A
gateway that another controller already runs in NB is held off and reported instead of fought
over: by its key (`of`), or because another vendor's reroutes send some of its sources elsewhere
on the same router (`reroutes`). The counts come from the NB client's owner index, which follows
every row as it changes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

Net = ipaddress.IPv4Network | ipaddress.IPv6Network
# `ip4.src == <value>` in a match: a prefix, an address, `$set` or `{...}` of those
_SOURCE = re.compile(r"ip([46])\.src\s*==\s*(\{[^}]*\}|[^\s()&|]+)")
_PORT_GROUP_SET = re.compile(r"^(.+)_ip([46])$")
SHOWN = 3  # rows named in the message


class ForeignRows:
    def __init__(self, nb: Any) -> None:
        self._nb = nb  # an NbClient

    def of(self, vendor: str, key: str) -> str:
        """'' when no other vendor has rows for gateway `key`, else what it has, e.g.
        'vendor kube-ovn: 2 Address_Set, 2 BFD, 6 Logical_Router_Policy'."""
        with self._nb.api.ovsdb_connection.lock:
            found = dict(self._nb.index().foreign.get(key, {}))
        parts: dict[str, list[str]] = {}
        for (theirs, table), n in sorted(found.items()):
            parts.setdefault(theirs, []).append(f"{n} {table}")
        return "; ".join(f"vendor {v}: {', '.join(t)}" for v, t in parts.items())

    def bfd_port(self, vendor: str, vpc: str) -> str:
        """'' unless another vendor holds the VPC's `bfd@<vpc>` port or its HA_Chassis_Group
        (Kube-OVN's reconcileVpcBfdLRP), else who: e.g. 'Logical_Router_Port bfd@vpc1 (vendor
        kube-ovn)'."""
        name = f"bfd@{vpc}"
        with self._nb.api.ovsdb_connection.lock:
            index = self._nb.index()
            for table in ("Logical_Router_Port", "HA_Chassis_Group"):
                row = index.holder(table, (name,))
                theirs = dict(row.external_ids).get("vendor", "") if row is not None else vendor
                if theirs != vendor:
                    return f"{table} {name} (vendor {theirs or '(none)'})"
        return ""

    def any_reroutes(self, router: str) -> bool:
        """Whether another vendor has a reroute or src-ip route on `router` (cheap)."""
        with self._nb.api.ovsdb_connection.lock:
            index = self._nb.index()
            return any(index.router_of(row) == router
                       for _, row in list(index.foreign_reroutes.values()))

    def reroutes(self, vendor: str, key: str, router: str,
                 sources: Mapping[int, Iterable[Net]], routes: bool) -> str:
        """'' unless another vendor's 29100/29150 reroute (or, with `routes`, src-ip static
        route) on `router`, of another gateway key than `key`, has a source that overlaps one
        of `sources`; else which rows, e.g. "vendor kube-ovn: Logical_Router_Policy 29100
        'ip4.src == $VEG.x.ipv4' of default/other overlaps 10.16.0.0/16"."""
        mine = {f: list(nets) for f, nets in sources.items()}
        found: list[str] = []
        with self._nb.api.ovsdb_connection.lock:
            index = self._nb.index()
            for table, row in list(index.foreign_reroutes.values()):
                if table == "Logical_Router_Static_Route" and not routes:
                    continue
                ids = dict(row.external_ids)
                if ids.get("vpc-egress-gateway") == key or index.router_of(row) != router:
                    continue
                hit = self._overlap(index, table, row, mine)
                if hit is not None:
                    found.append(f"vendor {ids.get('vendor') or '(none)'}: {_describe(table, row)}"
                                 f"{_of(ids)} overlaps {hit}")
        found.sort()
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        return "; ".join(found[:SHOWN]) + more

    def _overlap(self, index: Any, table: str, row: Any,
                 mine: Mapping[int, list[Net]]) -> Net | None:
        """One of `mine` that every source clause of the row overlaps (Kube-OVN's 29150 match
        is the conjunction of two), or None."""
        if table == "Logical_Router_Static_Route":
            clauses = [_nets([str(row.ip_prefix)])]
        else:
            clauses = [self._resolve(index, int(f), v) for f, v in _SOURCE.findall(row.match)]
        if not clauses:
            return None
        hits = [{m for c in clause for m in mine.get(c.version, ()) if c.overlaps(m)}
                for clause in clauses]
        common = set.intersection(*hits)
        return min(common, key=lambda n: (n.version, int(n.network_address), n.prefixlen)) \
            if common else None

    def _resolve(self, index: Any, family: int, value: str) -> list[Net]:
        items = value.strip("{}").replace(",", " ").split()
        out: list[Net] = []
        for item in items:
            if not item.startswith("$"):
                out += _nets([item.strip('"')])
                continue
            name = item[1:]
            found = index.holder("Address_Set", (name,))
            if found is not None:
                out += _nets(found.addresses)
            elif (pg := _PORT_GROUP_SET.match(name)) and int(pg[2]) == family:
                out += _nets(self._port_group_ips(pg[1]))
        return [n for n in out if n.version == family]

    def _port_group_ips(self, name: str) -> list[str]:
        """The addresses of a port group's ports (what `$<group>_ip4` holds in the SB)."""
        table = self._nb.api.tables.get("Port_Group")
        group = next((g for g in (table.rows.values() if table is not None else ())
                      if g.name == name), None)
        ips: list[str] = []
        for port in getattr(group, "ports", ()):
            for entry in [*port.addresses, *getattr(port, "dynamic_addresses", [])]:
                ips += str(entry).split()[1:]  # "<mac> <ip> ..."
        return ips


def _nets(values: Iterable[str]) -> list[Net]:
    out: list[Net] = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip('"'), strict=False))
        except ValueError:
            continue  # "router", "dynamic", a MAC: not a source
    return out


def _describe(table: str, row: Any) -> str:
    if table == "Logical_Router_Static_Route":
        return f"{table} src-ip {row.ip_prefix} via {row.nexthop}"
    return f"{table} {row.priority} '{row.match}'"


def _of(ids: Mapping[str, str]) -> str:
    owner = ids.get("vpc-egress-gateway")
    return f" of {owner}" if owner else ""
