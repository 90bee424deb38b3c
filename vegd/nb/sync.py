"""The composite commands: diff desired rows against the live replica inside `run_idl`.

Because the diff runs inside `run_idl`, an OVSDB TRY_AGAIN makes ovsdbapp re-run it against the
refreshed replica; one reconcile of one owner is always exactly one transaction. Only rows whose
external_ids carry our vendor and the owner's id are read, updated or deleted. Parents we do not
own (routers) are only ever changed by mutation (`addvalue`/`delvalue`), never read-modify-write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ovsdbapp.backend.ovs_idl.command import BaseCommand

from vegd.nb.errors import ReconcileError
from vegd.plan.rows import (
    AddressSet,
    Bfd,
    BfdRef,
    Desired,
    HaChassisGroup,
    RouterPolicy,
    RouterPort,
    Row,
    StaticRoute,
    Switch,
)

# Tables whose rows an owner holds directly, and the router column of the non-root ones.
OWNED_TABLES = ("BFD", "Address_Set", "HA_Chassis_Group", "Logical_Router_Policy",
                "Logical_Router_Static_Route", "Logical_Router_Port", "Logical_Switch")
ROUTER_CHILDREN = {"Logical_Router_Policy": "policies",
                   "Logical_Router_Static_Route": "static_routes",
                   "Logical_Router_Port": "ports"}
OWNER_KEYS = ("vpc-egress-gateway", "vpc")


@dataclass
class Changes:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.created) + len(self.updated) + len(self.deleted)

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted}


def describe(table: str, key: Iterable[str]) -> str:
    return f"{table}[{' '.join(key)}]"


class Replica:
    """Indexes over the IDL tables, built in one pass and reused until the replica changes
    (`Replica.of`): a resync of N owners then costs one scan, not N."""

    _cache: ClassVar[dict[int, tuple[int, Replica]]] = {}

    @classmethod
    def of(cls, api: Any, vendor: str) -> Replica:
        seqno = api.idl.change_seqno
        hit = cls._cache.get(id(api))
        if hit is not None and hit[0] == seqno and hit[1].vendor == vendor:
            return hit[1]
        replica = cls(api.tables, vendor)
        cls._cache[id(api)] = (seqno, replica)
        return replica

    def __init__(self, tables: dict[str, Any], vendor: str) -> None:
        self.tables = tables
        self.vendor = vendor
        self.routers: dict[str, Any] = {}
        self.parent: dict[Any, Any] = {}  # child uuid -> router row
        for router in tables["Logical_Router"].rows.values():
            self.routers.setdefault(router.name, router)
            for column in ROUTER_CHILDREN.values():
                for child in getattr(router, column):
                    self.parent[child.uuid] = router
        self.by_owner: dict[tuple[str, str], list[tuple[str, Any]]] = defaultdict(list)
        self.unique: dict[str, dict[tuple[str, ...], Any]] = {}
        for table in OWNED_TABLES:
            for row in tables[table].rows.values():
                ids = row.external_ids
                if ids.get("vendor") != vendor:
                    continue
                owner = next(((k, ids[k]) for k in OWNER_KEYS if k in ids), None)
                if owner is not None:
                    self.by_owner[owner].append((table, row))

    def owned(self, table: str, owner_key: str, owner_value: str) -> Iterable[Any]:
        return [row for t, row in self.by_owner.get((owner_key, owner_value), ()) if t == table]

    def all_owned(self) -> Iterable[tuple[tuple[str, str], str, Any]]:
        for owner, rows in self.by_owner.items():
            for table, row in rows:
                yield owner, table, row

    def key(self, table: str, row: Any) -> tuple[str, ...]:
        if table == "BFD":
            return (row.logical_port, row.dst_ip)
        if table == "Logical_Router_Policy":
            return (self._router_name(row), str(row.priority), row.match)
        if table == "Logical_Router_Static_Route":
            return (self._router_name(row), (row.policy or ["dst-ip"])[0], row.ip_prefix,
                    row.nexthop)
        return (row.name,)

    def _router_name(self, row: Any) -> str:
        router = self.parent.get(row.uuid)
        return router.name if router is not None else ""

    def holder(self, table: str, key: tuple[str, ...]) -> Any | None:
        """The row of any writer that holds a unique name (schema index) `key` in `table`."""
        if table not in self.unique:
            index: dict[tuple[str, ...], Any] = {}
            for row in self.tables[table].rows.values():
                index[(row.logical_port, row.dst_ip) if table == "BFD" else (row.name,)] = row
            self.unique[table] = index
        return self.unique[table].get(key)

    def remove(self, table: str, row: Any) -> None:
        """Delete a row: a root row directly, a router's child by unlinking it."""
        if table == "Logical_Router_Port":
            # The port is only garbage-collected at commit; until then its strong reference
            # would keep its HA_Chassis_Group from being deleted in the same transaction.
            row.ha_chassis_group = []
        if table in ROUTER_CHILDREN:
            parent = self.parent.get(row.uuid)
            if parent is not None:
                parent.delvalue(ROUTER_CHILDREN[table], row.uuid)
        else:
            row.delete()


class ReconcileOwner(BaseCommand):  # type: ignore[misc]
    """Make the NB rows of one owner exactly `desired`. Result: a `Changes`."""

    def __init__(self, api: Any, desired: Desired, vendor: str, policy_bfd_sessions: bool) -> None:
        super().__init__(api)
        self.desired = desired
        self.vendor = vendor
        self.policy_bfd_sessions = policy_bfd_sessions

    def run_idl(self, txn: Any) -> None:
        self.txn = txn
        self.changes = Changes()
        self.replica = Replica.of(self.api, self.vendor)
        owner = self.desired.owner
        live: dict[tuple[str, tuple[str, ...]], Any] = {}
        for table in OWNED_TABLES:
            for row in self.replica.owned(table, owner.id_key, owner.id_value):
                live[(table, self.replica.key(table, row))] = row
        self.live = live
        self.rows: dict[tuple[str, tuple[str, ...]], Any] = {}  # desired key -> row (kept or new)

        # Referenced rows first, so referrers can point at them (even when inserted just now).
        order = (Bfd, HaChassisGroup, AddressSet, RouterPort, Switch, RouterPolicy, StaticRoute)
        for kind in order:
            for desired in self.desired.of(kind):
                self._upsert(desired)
        for (table, key), row in live.items():
            if (table, key) not in self.rows:
                self._delete(table, key, row)
        self.result = self.changes

    # -- writing -----------------------------------------------------------------------------
    def _upsert(self, want: Row) -> None:
        table, key = want.table, want.key
        row = self.live.get((table, key))
        created = row is None
        if isinstance(want, Bfd):
            self._check_port(want)
        if created:
            self._check_free(want)
            row = self.txn.insert(self.api.tables[table])
            if table in ROUTER_CHILDREN:
                self._router(want).addvalue(ROUTER_CHILDREN[table], row.uuid)
        changed = False
        for column, value in self._columns(want).items():
            if created or _normal(getattr(row, column)) != _normal(value):
                setattr(row, column, value)
                changed = True
        if isinstance(want, HaChassisGroup):
            changed |= self._sync_chassis(row, want, created)
        if isinstance(want, Switch):
            changed |= self._sync_switch_ports(row, want, created)
        self.rows[(table, key)] = row
        if created:
            self.changes.created.append(describe(table, key))
        elif changed:
            self.changes.updated.append(describe(table, key))

    def _delete(self, table: str, key: tuple[str, ...], row: Any) -> None:
        self.replica.remove(table, row)
        self.changes.deleted.append(describe(table, key))

    def _router(self, want: Row) -> Any:
        name = want.router  # type: ignore[union-attr]
        router = self.replica.routers.get(name)
        if router is None:
            raise ReconcileError(f"logical router {name} does not exist in the Northbound "
                                 f"database (needed by {self.desired.owner})")
        return router

    def _check_free(self, want: Row) -> None:
        """A new row must not collide with a unique name another writer already holds."""
        if want.table in ("BFD", "Address_Set", "HA_Chassis_Group", "Logical_Router_Port"):
            other = self.replica.holder(want.table, want.key)
            if other is not None:
                holder = other.external_ids.get("vendor", "nobody")
                raise ReconcileError(f"{describe(want.table, want.key)} already exists and is not "
                                     f"{self.desired.owner}'s (vendor={holder}); vegd leaves it "
                                     "alone")
        if isinstance(want, Switch):
            for port, _ in want.router_ports:
                if self.replica.holder("Logical_Switch_Port", (port,)) is not None:
                    raise ReconcileError(f"Logical_Switch_Port {port} already exists")

    def _check_port(self, want: Bfd) -> None:
        """A BFD row must name a router port that exists (or that this owner writes now):
        ovn-northd 25.03.0 dies (SIGSEGV) on a BFD row for a missing port; 23.03 ignores it."""
        port = want.logical_port
        if self.replica.holder("Logical_Router_Port", (port,)) is not None:
            return
        if any(p.name == port for p in self.desired.of(RouterPort)):
            return
        raise ReconcileError(f"{describe(want.table, want.key)}: logical router port {port} "
                             "does not exist in the Northbound database; a BFD row for a "
                             "missing port stops ovn-northd 25.03, so vegd writes none")

    def _bfd(self, ref: BfdRef) -> Any:
        row = self.rows.get(("BFD", (ref.logical_port, ref.dst_ip)))
        if row is None:
            raise ReconcileError(f"plan error: BFD {ref} is referenced but not desired")
        return row

    def _columns(self, want: Row) -> dict[str, Any]:
        ids = dict(want.external_ids)
        if isinstance(want, AddressSet):
            return {"name": want.name, "addresses": list(want.addresses), "external_ids": ids}
        if isinstance(want, Bfd):
            return {"logical_port": want.logical_port, "dst_ip": want.dst_ip,
                    "min_rx": [want.min_rx], "min_tx": [want.min_tx],
                    "detect_mult": [want.detect_mult], "external_ids": ids}
        if isinstance(want, RouterPolicy):
            cols = {"priority": want.priority, "match": want.match, "action": want.action,
                    "nexthops": list(want.nexthops), "external_ids": ids}
            if self.policy_bfd_sessions:
                cols["bfd_sessions"] = [self._bfd(r) for r in want.bfd_sessions]
            elif want.bfd_sessions:
                raise ReconcileError("this Northbound schema has no Logical_Router_Policy."
                                     "bfd_sessions; use bfdMode: route")
            return cols
        if isinstance(want, StaticRoute):
            return {"ip_prefix": want.ip_prefix, "nexthop": want.nexthop, "policy": [want.policy],
                    "options": dict(want.options),
                    "bfd": [self._bfd(want.bfd)] if want.bfd else [], "external_ids": ids}
        if isinstance(want, HaChassisGroup):
            return {"name": want.name, "external_ids": ids}
        if isinstance(want, RouterPort):
            group = self.rows.get(("HA_Chassis_Group", (want.ha_chassis_group,)))
            return {"name": want.name, "mac": want.mac, "networks": list(want.networks),
                    "options": dict(want.options), "external_ids": ids,
                    "ha_chassis_group": [group] if group is not None else []}
        if isinstance(want, Switch):
            return {"name": want.name, "external_ids": ids}
        raise TypeError(want)

    def _sync_chassis(self, group: Any, want: HaChassisGroup, created: bool) -> bool:
        existing = {} if created else {c.chassis_name: c for c in group.ha_chassis}
        changed = False
        wanted = {c.chassis_name: c.priority for c in want.chassis}
        for name, row in existing.items():
            if name not in wanted:
                group.delvalue("ha_chassis", row.uuid)
                changed = True
            elif row.priority != wanted[name]:
                row.priority = wanted[name]
                changed = True
        for name, priority in wanted.items():
            if name not in existing:
                row = self.txn.insert(self.api.tables["HA_Chassis"])
                row.chassis_name, row.priority = name, priority
                row.external_ids = dict(want.external_ids)
                group.addvalue("ha_chassis", row.uuid)
                changed = True
        return changed

    def _sync_switch_ports(self, switch: Any, want: Switch, created: bool) -> bool:
        existing = {} if created else {p.name: p for p in switch.ports}
        changed = False
        wanted = dict(want.router_ports)
        for name, row in existing.items():
            if name not in wanted:
                switch.delvalue("ports", row.uuid)
                changed = True
        for name, router_port in wanted.items():
            row = existing.get(name)
            new = row is None
            cols = {"name": name, "type": "router", "addresses": ["router"],
                    "options": {"router-port": router_port},
                    "external_ids": dict(want.external_ids)}
            if new:
                row = self.txn.insert(self.api.tables["Logical_Switch_Port"])
                switch.addvalue("ports", row.uuid)
            for column, value in cols.items():
                if new or _normal(getattr(row, column)) != _normal(value):
                    setattr(row, column, value)
                    changed = True
        return changed


class CollectGarbage(BaseCommand):  # type: ignore[misc]
    """Delete every row of ours whose owner is not in `keep` (a set of (id_key, id_value))."""

    def __init__(self, api: Any, vendor: str, keep: set[tuple[str, str]]) -> None:
        super().__init__(api)
        self.vendor = vendor
        self.keep = keep

    def run_idl(self, txn: Any) -> None:
        changes = Changes()
        replica = Replica.of(self.api, self.vendor)
        for owner, table, row in list(replica.all_owned()):
            if owner in self.keep:
                continue
            name = describe(table, replica.key(table, row))
            replica.remove(table, row)
            changes.deleted.append(f"{name} ({owner[0]}={owner[1]})")
        self.result = changes


def _normal(value: Any) -> Any:
    """Comparable form of an IDL value: rows by uuid, sets sorted."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return sorted((_normal(v) for v in value), key=repr)
    uuid = getattr(value, "uuid", None)
    return uuid if uuid is not None else value
