"""NB side of `vegd migrate`: take a gateway's rows over from another controller (vendor
`kube-ovn`) without a moment in which its sources have no working path, and give them back.

Forward, per gateway (each step one transaction, each state in between a working path):
  1. adopt: the rows vegd would write under the same unique name (BFD rows by logical_port +
     dst_ip; for a BFD gateway the VPC's `bfd@<vpc>` port and its HA_Chassis_Group) are re-tagged
     to vegd, so their UUIDs, the other controller's references to them and OVN's session state
     stay; the other controller's policies keep working through them.
  2. vegd's reconcile of the VPC and of the gateway (nb.client.NbClient.reconcile): vegd's rows
     next to the other controller's; its reroutes win at 29100 while they exist.
  3. remove the other controller's remaining rows of the gateway (unless the operator keeps them).
A gateway with selectors: the other controller's Port_Group `VEG.<h>` makes northd publish the
Southbound address set `VEG.<h>_ip4`, the name of vegd's NB Address_Set of the selected pods, so
the two cannot exist at once. Before step 2 one transaction (`SwapSelectorSets`) deletes the
Port_Group and creates vegd's sets with their addresses: northd sees only the final state, and
the other controller's policies (`ip4.src == $VEG.<h>_ip4`) keep matching the same pods.
Back: the saved rows (`SavedRows`, JSON) are recreated (new UUIDs, same columns, the same
references) and the adopted rows get their saved columns back; then vegd's rows go.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from ovsdbapp.backend.ovs_idl.command import BaseCommand

OWNER_KEY = "vpc-egress-gateway"
GATEWAY_TABLES = ("Logical_Router_Policy", "Logical_Router_Static_Route", "Address_Set", "BFD",
                  "Port_Group")
EXTRA_TABLES = ("Port_Group",)  # read and written only here (vegd itself never writes one)
PG_SET_SUFFIXES = ("_ip4", "_ip6")  # the Southbound address sets northd derives from a Port_Group
ROUTER_CHILDREN = {"Logical_Router_Policy": "policies",
                   "Logical_Router_Static_Route": "static_routes",
                   "Logical_Router_Port": "ports"}
SKIP_COLUMNS = {"status"}  # OVN's, not the writer's


def _json(value: Any) -> Any:
    if isinstance(value, dict):
        return {"map": [[_json(k), _json(v)] for k, v in sorted(value.items())]}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, uuidlib.UUID):
        return {"uuid": str(value)}
    row_uuid = getattr(value, "uuid", None)
    if row_uuid is not None:
        return {"uuid": str(row_uuid)}
    return value


def _value(api: Any, saved: Any, rows: dict[str, Any], lenient: bool = False) -> Any:
    """A saved column value as the IDL takes it; references to saved rows go to `rows`.
    lenient: a reference to a row that is gone is left out (weak references)."""
    if isinstance(saved, dict) and "map" in saved:
        return {_value(api, k, rows, lenient): _value(api, v, rows, lenient)
                for k, v in saved["map"]}
    if isinstance(saved, dict) and "lsp" in saved:  # by name: a recreated pod has a new LSP
        return _lsp(api, saved["lsp"])
    if isinstance(saved, dict) and "uuid" in saved:
        try:
            return rows.get(saved["uuid"]) or _find(api, uuidlib.UUID(saved["uuid"]))
        except LookupError:
            if lenient:
                return None
            raise
    if isinstance(saved, list):  # a port that is gone is left out (as Kube-OVN does)
        return [v for v in (_value(api, x, rows, lenient) for x in saved) if v is not None]
    return saved


def _lsp(api: Any, name: str) -> Any:
    return next((p for p in api.tables["Logical_Switch_Port"].rows.values() if p.name == name),
                None)


def _find(api: Any, uuid: uuidlib.UUID) -> Any:
    for table in api.tables.values():
        row = table.rows.get(uuid)
        if row is not None:
            return row
    raise LookupError(f"row {uuid} referenced by a saved row no longer exists")


def _dump(row: Any) -> dict[str, Any]:
    out = {c: _json(getattr(row, c)) for c in row._table.columns if c not in SKIP_COLUMNS}
    if row._table.name == "Port_Group":  # members by LSP name (`<pod>.<namespace>`)
        out["ports"] = [{"lsp": p.name} for p in row.ports]
    return out


@dataclass
class SavedRow:
    table: str
    uuid: str
    columns: dict[str, Any]
    router: str = ""  # the router whose child it is (policies, routes, ports)
    adopted: bool = False  # kept and re-tagged (not deleted) by the forward migration

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "uuid": self.uuid, "columns": self.columns,
                "router": self.router, "adopted": self.adopted}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SavedRow:
        return cls(d["table"], d["uuid"], d["columns"], d.get("router", ""),
                   bool(d.get("adopted")))


@dataclass
class SavedRows:
    """What the other controller had for one gateway (and its VPC's BFD port), for `--back`."""

    key: str
    vendor: str
    rows: list[SavedRow] = field(default_factory=list)

    def count(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.table] = out.get(r.table, 0) + 1
        return out


def _parents(api: Any) -> dict[Any, str]:
    out = {}
    for router in api.tables["Logical_Router"].rows.values():
        for column in ROUTER_CHILDREN.values():
            for child in getattr(router, column):
                out[child.uuid] = router.name
    return out


def read_foreign(api: Any, vendor: str, key: str, bfd_port: str = "") -> SavedRows:
    """The rows `vendor` wrote for gateway `key`; with bfd_port, also that port and its group."""
    with api.ovsdb_connection.lock:
        parents = _parents(api)
        saved = SavedRows(key, vendor)
        for table in GATEWAY_TABLES:
            for row in api.tables[table].rows.values():
                ids = dict(row.external_ids)
                if ids.get("vendor") == vendor and ids.get(OWNER_KEY) == key:
                    saved.rows.append(SavedRow(table, str(row.uuid), _dump(row),
                                               parents.get(row.uuid, ""), table == "BFD"))
        if bfd_port:
            for row in api.tables["Logical_Router_Port"].rows.values():
                if row.name == bfd_port and dict(row.external_ids).get("vendor") == vendor:
                    saved.rows.append(SavedRow("Logical_Router_Port", str(row.uuid), _dump(row),
                                               parents.get(row.uuid, ""), True))
            for group in api.tables["HA_Chassis_Group"].rows.values():
                if group.name == bfd_port and dict(group.external_ids).get("vendor") == vendor:
                    saved.rows.append(SavedRow("HA_Chassis_Group", str(group.uuid),
                                               _dump(group), "", True))
                    saved.rows += [SavedRow("HA_Chassis", str(c.uuid), _dump(c), "", True)
                                   for c in group.ha_chassis]
    return saved


class Adopt(BaseCommand):  # type: ignore[misc]
    """Step 1: re-tag the adopted rows as vegd's: external_ids = `ids` (+ af where they had it)."""

    def __init__(self, api: Any, saved: SavedRows, gateway_ids: dict[str, str],
                 vpc_ids: dict[str, str]) -> None:
        super().__init__(api)
        self.saved, self.gateway_ids, self.vpc_ids = saved, gateway_ids, vpc_ids

    def run_idl(self, txn: Any) -> None:
        count = 0
        for s in self.saved.rows:
            if not s.adopted:
                continue
            row = self.api.tables[s.table].rows.get(uuidlib.UUID(s.uuid))
            if row is None:
                continue
            ids = dict(self.vpc_ids if s.table != "BFD" else self.gateway_ids)
            af = dict(row.external_ids).get("af")
            if s.table == "BFD" and af:
                ids["af"] = af
            row.external_ids = ids
            count += 1
        self.result = count


class RemoveForeign(BaseCommand):  # type: ignore[misc]
    """Step 3: delete the saved rows that were not adopted (router children by unlinking)."""

    def __init__(self, api: Any, saved: SavedRows) -> None:
        super().__init__(api)
        self.saved = saved

    def run_idl(self, txn: Any) -> None:
        routers = {r.name: r for r in self.api.tables["Logical_Router"].rows.values()}
        count = 0
        for s in self.saved.rows:
            if s.adopted:
                continue
            row = self.api.tables[s.table].rows.get(uuidlib.UUID(s.uuid))
            if row is None:
                continue
            if s.table in ROUTER_CHILDREN and s.router in routers:
                routers[s.router].delvalue(ROUTER_CHILDREN[s.table], row.uuid)
            else:
                row.delete()
            count += 1
        self.result = count


class RestoreBeside(BaseCommand):  # type: ignore[misc]
    """Back, before vegd's twin goes (a running vegd removes its rows then): recreate the removed
    rows that can stand beside vegd's (not the Port_Group, whose Southbound names vegd's sets
    hold, nor a name in use), leaving every row of vegd's as it is, so the other controller's
    reroutes carry the traffic again first. References to vegd's (adopted) BFD rows are weak:
    when vegd deletes those rows the policies lose them and still reroute. The saved rows get
    the new UUIDs (`Restore` then finds them)."""

    def __init__(self, api: Any, saved: SavedRows) -> None:
        super().__init__(api)
        self.saved = saved
        self.inserted: list[tuple[SavedRow, Any]] = []

    def run_idl(self, txn: Any) -> None:
        routers = {r.name: r for r in self.api.tables["Logical_Router"].rows.values()}
        names = {t: {r.name for r in self.api.tables[t].rows.values()}
                 for t in ("Address_Set", "Port_Group")}
        for s in self.saved.rows:
            table = self.api.tables[s.table]
            if s.adopted or s.table == "Port_Group" or uuidlib.UUID(s.uuid) in table.rows \
                    or s.columns.get("name") in names.get(s.table, ()):
                continue
            row = txn.insert(table)
            if s.table in ROUTER_CHILDREN and s.router in routers:
                routers[s.router].addvalue(ROUTER_CHILDREN[s.table], row.uuid)
            for column, saved in s.columns.items():
                if column not in ("_uuid", "_version") and column in table.columns:
                    setattr(row, column, _value(self.api, saved, {}, lenient=True))
            self.inserted.append((s, row))
        self.result = len(self.inserted)

    def post_commit(self, txn: Any) -> None:
        for s, row in self.inserted:
            s.uuid = str(txn.get_insert_uuid(row.uuid) or row.uuid)


class Restore(BaseCommand):  # type: ignore[misc]
    """Back, step 1: recreate the removed rows from their saved columns (also adopted rows that
    vegd has deleted since, e.g. an HA_Chassis of a node it did not choose) and give the
    adopted rows their saved columns (external_ids included) back. References between saved
    rows follow the recreated rows."""

    ORDER = ("BFD", "HA_Chassis", "HA_Chassis_Group", "Address_Set", "Port_Group",
             "Logical_Router_Port", "Logical_Router_Static_Route", "Logical_Router_Policy")

    def __init__(self, api: Any, saved: SavedRows) -> None:
        super().__init__(api)
        self.saved = saved

    def run_idl(self, txn: Any) -> None:
        routers = {r.name: r for r in self.api.tables["Logical_Router"].rows.values()}
        # A Port_Group coming back replaces, in this transaction, the sets of its SB names
        groups = {s.columns.get("name") for s in self.saved.rows if s.table == "Port_Group"}
        taken = {str(g) + suffix for g in groups for suffix in PG_SET_SUFFIXES}
        for row in list(self.api.tables["Address_Set"].rows.values()):
            if row.name in taken and dict(row.external_ids).get("vendor") != self.saved.vendor:
                row.delete()
        rows: dict[str, Any] = {}
        new: set[str] = set()
        todo = sorted(self.saved.rows, key=lambda r: self.ORDER.index(r.table)
                      if r.table in self.ORDER else len(self.ORDER))
        for s in todo:  # first every row exists, so references can be resolved
            table = self.api.tables[s.table]
            row = table.rows.get(uuidlib.UUID(s.uuid))
            if row is None:
                row = txn.insert(table)
                new.add(s.uuid)
                if s.table in ROUTER_CHILDREN and s.router in routers:
                    routers[s.router].addvalue(ROUTER_CHILDREN[s.table], row.uuid)
            rows[s.uuid] = row
        for s in todo:
            row, table = rows[s.uuid], self.api.tables[s.table]
            for column, saved in s.columns.items():
                if column in ("_uuid", "_version") or column not in table.columns:
                    continue
                value = _value(self.api, saved, rows)
                if s.uuid in new or _json(getattr(row, column)) != _json(value):
                    setattr(row, column, value)
        self.result = len(todo)


class SwapSelectorSets(BaseCommand):  # type: ignore[misc]
    """Before step 2, for a gateway with selectors: delete the other controller's Port_Group and
    create vegd's Address_Sets of the same Southbound names (`columns`: as vegd writes them) in
    one transaction, so some row always provides `$VEG.<h>_ip4` with the selected pods."""

    def __init__(self, api: Any, saved: SavedRows, sets: list[dict[str, Any]]) -> None:
        super().__init__(api)
        self.saved, self.sets = saved, sets

    def run_idl(self, txn: Any) -> None:
        for s in self.saved.rows:
            if s.table == "Port_Group":
                row = self.api.tables["Port_Group"].rows.get(uuidlib.UUID(s.uuid))
                if row is not None:
                    row.delete()
        existing = {r.name: r for r in self.api.tables["Address_Set"].rows.values()}
        for columns in self.sets:
            row = existing.get(columns["name"]) or txn.insert(self.api.tables["Address_Set"])
            for column, value in columns.items():
                setattr(row, column, value)
        self.result = len(self.sets)


def selector_set_names(saved: SavedRows) -> set[str]:
    """The Southbound address set names the saved Port_Group(s) produce."""
    return {str(s.columns.get("name")) + suffix for s in saved.rows if s.table == "Port_Group"
            for suffix in PG_SET_SUFFIXES}


def commit(api: Any, cmd: Any) -> Any:
    """One transaction with one command; its result."""
    with api.transaction(check_error=True) as txn:
        txn.add(cmd)
    return cmd.result
