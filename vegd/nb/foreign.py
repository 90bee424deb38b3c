"""Rows other controllers wrote for a gateway (another `vendor`, e.g. Kube-OVN's `kube-ovn`).

Read only: vegd never writes, updates or deletes them (docs/decisions.md, coexistence). A
gateway that another controller already runs in NB is held off and reported instead of fought
over. The counts come from the NB client's owner index, which follows every row as it changes.
"""

from __future__ import annotations

from typing import Any


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
