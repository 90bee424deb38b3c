"""Rows other controllers wrote for a gateway (another `vendor`, e.g. Kube-OVN's `kube-ovn`).

Read only: vegd never writes, updates or deletes them (docs/decisions.md, coexistence). A
gateway that another controller already runs in NB is held off and reported instead of fought
over. The index is rebuilt only when the replica changed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

OWNER_KEY = "vpc-egress-gateway"
# Port_Group is not replicated; Kube-OVN's VEG rows always include policies in these tables.
TABLES = ("Logical_Router_Policy", "Logical_Router_Static_Route", "BFD", "Address_Set")


def _ids(row: Any) -> dict[str, str]:
    return dict(getattr(row, "external_ids", {}) or {})


class ForeignRows:
    def __init__(self, api: Any) -> None:
        self._api = api  # an NbClient's ovsdbapp API (NbClient.api)
        self._index: tuple[tuple[int, str], dict[str, Counter[tuple[str, str]]]] | None = None

    def of(self, vendor: str, key: str) -> str:
        """'' when no other vendor has rows for gateway `key`, else what it has, e.g.
        'vendor kube-ovn: 2 Address_Set, 2 BFD, 6 Logical_Router_Policy'."""
        with self._api.ovsdb_connection.lock:
            stamp = (int(self._api.idl.change_seqno), vendor)
            if self._index is None or self._index[0] != stamp:
                self._index = (stamp, self._build(vendor))
            found = self._index[1].get(key, Counter())
        parts: dict[str, list[str]] = {}
        for (theirs, table), n in sorted(found.items()):
            parts.setdefault(theirs, []).append(f"{n} {table}")
        return "; ".join(f"vendor {v}: {', '.join(t)}" for v, t in parts.items())

    def bfd_port(self, vendor: str, vpc: str) -> str:
        """'' unless another vendor holds the VPC's `bfd@<vpc>` port or its HA_Chassis_Group
        (Kube-OVN's reconcileVpcBfdLRP), else who: e.g. 'Logical_Router_Port bfd@vpc1 (vendor
        kube-ovn)'."""
        name = f"bfd@{vpc}"
        with self._api.ovsdb_connection.lock:
            for table in ("Logical_Router_Port", "HA_Chassis_Group"):
                for row in self._api.tables[table].rows.values():
                    theirs = _ids(row).get("vendor", "")
                    if row.name == name and theirs != vendor:
                        return f"{table} {name} (vendor {theirs or '(none)'})"
        return ""

    def _build(self, vendor: str) -> dict[str, Counter[tuple[str, str]]]:
        index: dict[str, Counter[tuple[str, str]]] = {}
        for table in TABLES:
            if table not in self._api.tables:
                continue
            for row in self._api.tables[table].rows.values():
                ids = _ids(row)
                owner, theirs = ids.get(OWNER_KEY), ids.get("vendor", "")
                if owner and theirs != vendor:
                    index.setdefault(owner, Counter())[(theirs or "(none)", table)] += 1
        return index
