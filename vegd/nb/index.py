"""The owner index over the IDL replica, kept up to date row by row.

python-ovs calls `Idl.notify` for every row it creates, updates or deletes while it processes the
server's updates (in the connection thread, under the connection lock, like every command's
`run_idl`). The index follows those notices instead of being rebuilt after each commit: a
reconcile of one owner then costs its own rows, not a scan of every table. A reconnect clears the
IDL's tables without notices, so a new connection epoch rebuilds the index once from the tables.

The same notices tell the controller when a row of ours (or a child row of ours: CHILD_TABLES) was
changed by someone else (drift) or when ovn-northd reported a BFD session state:
`on_owner_change(owner)`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vegd.plan.rows import TABLES

# Tables whose rows an owner holds directly; HA_Chassis and Logical_Switch_Port hang off them.
OWNED_TABLES = tuple(TABLES)
ROUTER_CHILDREN = {t.table: t.ROUTER_COLUMN for t in TABLES.values() if t.ROUTER_COLUMN}
# Schema-wide unique indexes another writer may hold: table -> key columns.
UNIQUE_KEYS = {t.table: t.KEY for t in TABLES.values() if t.UNIQUE}
UNIQUE_KEYS["Logical_Switch_Port"] = ("name",)
OWNER_KEYS = ("vpc-egress-gateway", "vpc")
# Rows of ours that hang off a row of ours (HA_Chassis_Group.ha_chassis, Logical_Switch.ports):
# indexed with their parent, but a change to one alone changes no parent, so a notice about one
# goes to the owner its own external_ids name.
CHILD_TABLES = ("HA_Chassis", "Logical_Switch_Port")
# Tables in which another controller's rows for a gateway are counted (nb/foreign.py): Kube-OVN's
# VEG rows always include some of these.
FOREIGN_TABLES = ("Logical_Router_Policy", "Logical_Router_Static_Route", "BFD", "Address_Set")
# Another vendor's rows that send sources somewhere, whatever gateway they name (nb/foreign.py):
# reroute policies at the gateway priorities and src-ip static routes.
REROUTE_PRIORITIES = (29100, 29150)

Owner = tuple[str, str]  # (external_ids key, value): ("vpc-egress-gateway", "ns/name")


def column(row: Any, name: str) -> Any:
    """`getattr(row, name)` of an IDL row. python-ovs' `Row.__getattr__` rebuilds every set and
    map column through `Datum.from_python` on each read (to merge pending mutations); a column
    without pending changes is converted once, straight from the replica's datum. (A plain
    row of `vegd apply`'s one read, nb/oneshot.py, holds python values: read as they are.)"""
    data = getattr(row, "_data", None)
    changes = getattr(row, "_changes", None)
    if data is not None and changes is not None and name not in changes \
            and not row._mutations and name in data:
        return data[name].to_python(row._uuid_to_row)
    return getattr(row, name)


def owner_of(row: Any, vendor: str) -> Owner | None:
    ids = column(row, "external_ids")
    if ids.get("vendor") != vendor:
        return None
    return next(((k, ids[k]) for k in OWNER_KEYS if k in ids), None)


def unique_key(table: str, row: Any) -> tuple[str, ...]:
    return tuple(str(column(row, c)) for c in UNIQUE_KEYS[table])


class OwnerIndex:
    """Rows of one vendor by owner; every writer's unique names; each router child's router."""

    def __init__(self, vendor: str) -> None:
        self.vendor = vendor
        self.epoch = -1
        self.on_owner_change: Callable[[Owner], None] | None = None
        self.quiet: set[Owner] = set()  # owners our own transaction in flight is writing
        self._reset()

    def _reset(self) -> None:
        self.by_owner: dict[Owner, dict[Any, tuple[str, Any]]] = {}  # owner -> uuid -> row
        self._owner_of: dict[Any, Owner] = {}  # uuid -> owner
        self.holders: dict[str, dict[tuple[str, ...], Any]] = {t: {} for t in UNIQUE_KEYS}
        self._held: dict[Any, tuple[str, tuple[str, ...]]] = {}  # uuid -> (table, key)
        self.routers: dict[str, Any] = {}
        self.parent: dict[Any, Any] = {}  # child uuid -> router row
        self._children: dict[Any, set[Any]] = {}  # router uuid -> child uuids
        # gateway key -> (other vendor, table) -> rows: what other controllers run
        self.foreign: dict[str, dict[tuple[str, str], int]] = {}
        self._foreign_of: dict[Any, tuple[str, tuple[str, str]]] = {}
        self.foreign_reroutes: dict[Any, tuple[str, Any]] = {}  # uuid -> (table, row)

    # -- keeping it current ----------------------------------------------------------------

    def rebuild(self, tables: dict[str, Any], epoch: int) -> None:
        self._reset()
        self.epoch = epoch
        for table in (*OWNED_TABLES, "Logical_Switch_Port", "Logical_Router"):
            if table in tables:
                for row in tables[table].rows.values():
                    self._add(table, row)

    def notice(self, event: str, table: str, row: Any, updates: Any = None) -> None:
        """One IDL notice: `create`, `update` or `delete` of `row` in `table`."""
        if table == "Logical_Router":
            self._drop_router(row)
            if event != "delete":
                self._add(table, row)
            return
        if table not in UNIQUE_KEYS and table not in TABLES and table not in FOREIGN_TABLES \
                and table not in CHILD_TABLES:
            return
        before = self._owner_of.get(row.uuid)
        self._drop(row.uuid)
        if event != "delete":
            self._add(table, row)
        after = self._owner_of.get(row.uuid)
        if table in CHILD_TABLES:
            before, after = _old_owner(row, updates, self.vendor), owner_of(row, self.vendor)
        if self.on_owner_change is None:
            return
        for owner in {before, after} - {None}:
            if owner not in self.quiet or _status_only(table, updates):
                self.on_owner_change(owner)  # type: ignore[arg-type]

    def _add(self, table: str, row: Any) -> None:
        if table == "Logical_Router":
            self.routers.setdefault(row.name, row)
            kids = set()
            for name in ROUTER_CHILDREN.values():
                for child in column(row, name):
                    self.parent[child.uuid] = row
                    kids.add(child.uuid)
            self._children[row.uuid] = kids
            return
        if table in UNIQUE_KEYS:
            key = unique_key(table, row)
            self.holders[table][key] = row
            self._held[row.uuid] = (table, key)
        if table in FOREIGN_TABLES:
            ids = column(row, "external_ids")
            gateway, theirs = ids.get("vpc-egress-gateway"), ids.get("vendor", "")
            if gateway and theirs != self.vendor:
                what = (theirs or "(none)", table)
                counts = self.foreign.setdefault(gateway, {})
                counts[what] = counts.get(what, 0) + 1
                self._foreign_of[row.uuid] = (gateway, what)
            if _reroutes(table, row) and ids.get("vendor", self.vendor) != self.vendor:
                self.foreign_reroutes[row.uuid] = (table, row)
        if table in TABLES:
            owner = owner_of(row, self.vendor)
            if owner is not None:
                self.by_owner.setdefault(owner, {})[row.uuid] = (table, row)
                self._owner_of[row.uuid] = owner

    def _drop(self, uuid: Any) -> None:
        self.foreign_reroutes.pop(uuid, None)
        foreign = self._foreign_of.pop(uuid, None)
        if foreign is not None:
            gateway, what = foreign
            counts = self.foreign.get(gateway, {})
            counts[what] = counts.get(what, 1) - 1
            if counts[what] <= 0:
                counts.pop(what, None)
            if not counts:
                self.foreign.pop(gateway, None)
        held = self._held.pop(uuid, None)
        if held is not None:
            table, key = held
            if getattr(self.holders[table].get(key), "uuid", None) == uuid:
                del self.holders[table][key]
        owner = self._owner_of.pop(uuid, None)
        if owner is not None:
            rows = self.by_owner.get(owner, {})
            rows.pop(uuid, None)
            if not rows:
                self.by_owner.pop(owner, None)

    def _drop_router(self, row: Any) -> None:
        if self.routers.get(row.name) is row or getattr(self.routers.get(row.name), "uuid",
                                                        None) == row.uuid:
            del self.routers[row.name]
        for kid in self._children.pop(row.uuid, ()):
            if getattr(self.parent.get(kid), "uuid", None) == row.uuid:
                del self.parent[kid]

    # -- reading -----------------------------------------------------------------------------

    def owned(self, owner: Owner) -> Iterable[tuple[str, Any]]:
        return list(self.by_owner.get(owner, {}).values())

    def owners(self) -> list[Owner]:
        return list(self.by_owner)

    def all_owned(self) -> Iterator[tuple[Owner, str, Any]]:
        for owner, rows in list(self.by_owner.items()):
            for table, row in list(rows.values()):
                yield owner, table, row

    def router_of(self, row: Any) -> str:
        router = self.parent.get(row.uuid)
        return router.name if router is not None else ""

    def holder(self, table: str, key: tuple[str, ...]) -> Any | None:
        return self.holders.get(table, {}).get(key)

    def owner_of_row(self, row: Any) -> Owner | None:
        return self._owner_of.get(row.uuid)


def _reroutes(table: str, row: Any) -> bool:
    if table == "Logical_Router_Policy":
        return row.action == "reroute" and row.priority in REROUTE_PRIORITIES
    return table == "Logical_Router_Static_Route" and list(row.policy) == ["src-ip"]


def _status_only(table: str, updates: Any) -> bool:
    """A BFD row whose only change is ovn-northd's `status`: never our own write."""
    if table != "BFD" or updates is None:
        return False
    changed = set(getattr(updates, "_data", {}) or {})
    return bool(changed) and changed <= {"status"}


def _old_owner(row: Any, updates: Any, vendor: str) -> Owner | None:
    """The owner a row had before an update that changed its external_ids (python-ovs gives the
    old values of the changed columns only); else its current owner."""
    if updates is not None and "external_ids" in (getattr(updates, "_data", None) or {}):
        return owner_of(updates, vendor)
    return owner_of(row, vendor)
