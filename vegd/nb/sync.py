"""The composite command: diff the desired rows of many owners against the live replica inside
`run_idl`, as ONE transaction.

Because the diff runs inside `run_idl`, an OVSDB TRY_AGAIN makes ovsdbapp re-run it against the
refreshed replica. `vegd apply` runs the same command over one read of NB (plain rows) and a
recorder of its changes instead of the IDL (nb/oneshot.py), and re-runs it on a conflict.
Only rows whose external_ids carry our vendor and an owner's id are read,
updated or deleted. Parents we do not own (routers) are only ever changed by mutation
(`addvalue`/`delvalue`), never read-modify-write.

Two phases, so that a row can move between owners of one transaction (an instance address that
another gateway's pod now has, a swap): first every owner's unwanted rows are deleted, then every
owner's desired rows are written. A refusal of any owner (a name another writer holds, a missing
router) aborts the whole transaction; `BatchRefused` names every refused owner, so a caller can
write the others without them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ovsdbapp.backend.ovs_idl.command import BaseCommand

from vegd.nb.errors import BatchRefused, OwnedElsewhere, ReconcileError
from vegd.nb.index import ROUTER_CHILDREN, Owner, OwnerIndex, column
from vegd.plan.rows import (
    OPTIONAL_DEFAULTS,
    ROW_TYPES,
    TABLES,
    Bfd,
    Desired,
    HaChassisGroup,
    Members,
    Ref,
    RouterPolicy,
    RouterPort,
    Row,
    StaticRoute,
    Switch,
)

log = logging.getLogger(__name__)

GARBAGE = "garbage"  # the result entry of rows whose owner is gone


@dataclass
class Changes:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    refused: str = ""  # members not written: the owner's address set is not (or not its) in NB

    @property
    def total(self) -> int:
        return len(self.created) + len(self.updated) + len(self.deleted)

    def as_dict(self) -> dict[str, list[str]]:
        return {"created": self.created, "updated": self.updated, "deleted": self.deleted}


def describe(table: str, key: Iterable[str]) -> str:
    return f"{table}[{' '.join(key)}]"


def live_key(index: OwnerIndex, table: str, row: Any) -> tuple[str, ...]:
    """A live row's key, by the same definition as the desired row's (`plan/rows.py`)."""
    spec = TABLES[table]
    own = []
    for name in spec.KEY:
        value = column(row, name)
        if isinstance(value, list):  # an optional column
            value = value[0] if value else OPTIONAL_DEFAULTS.get(name, "")
        own.append(str(value))
    if spec.ROUTER_COLUMN and not spec.UNIQUE:
        return (index.router_of(row), *own)
    return tuple(own)


def remove(index: OwnerIndex, table: str, row: Any) -> None:
    """Delete a row: a root row directly, a router's child by unlinking it."""
    if table == "Logical_Router_Port":
        # The port is only garbage-collected at commit; until then its strong reference
        # would keep its HA_Chassis_Group from being deleted in the same transaction.
        row.ha_chassis_group = []
    if table in ROUTER_CHILDREN:
        parent = index.parent.get(row.uuid)
        if parent is not None:
            parent.delvalue(ROUTER_CHILDREN[table], row.uuid)
    else:
        row.delete()


class ReconcileOwners(BaseCommand):  # type: ignore[misc]
    """Make the NB rows of every owner in `plans` exactly its desired rows; with `keep`, also
    delete every row of ours whose owner is neither planned nor in `keep`.
    With `members`, also make those address sets hold exactly their addresses, by mutation.
    Result: owner (str) -> Changes, the rows of gone owners under GARBAGE."""

    def __init__(self, api: Any, index: Callable[[], OwnerIndex], plans: list[Desired],
                 policy_bfd_sessions: bool, keep: set[Owner] | None = None,
                 members: tuple[Members, ...] = ()) -> None:
        super().__init__(api)
        self.members = members
        self.index = index
        self.plans = plans
        self.policy_bfd_sessions = policy_bfd_sessions
        self.keep = keep

    def run_idl(self, txn: Any) -> None:
        self.txn = txn
        self.ix = self.index()
        self.result: dict[str, Changes] = {}
        self.rows: dict[tuple[str, tuple[str, ...]], Any] = {}  # desired key -> row, batch-wide
        self.deleted: set[Any] = set()  # uuids deleted in this transaction
        self.planned_ports = {r.name for d in self.plans for r in d.rows
                              if isinstance(r, RouterPort)}
        self._bfd_refs: set[tuple[str, ...]] | None = None  # BFD keys routes/policies refer to
        lives = []
        for desired in self.plans:
            owner = (desired.owner.id_key, desired.owner.id_value)
            changes = self.result.setdefault(str(desired.owner), Changes())
            live = {(t, live_key(self.ix, t, r)): r for t, r in self.ix.owned(owner)}
            wanted = {(r.table, r.key) for r in desired.rows}
            for (table, key), row in live.items():
                if (table, key) not in wanted:
                    self._delete(table, row, changes, describe(table, key))
            lives.append(live)
        if self.keep is not None:
            self._collect_garbage()
        refused: dict[str, str] = {}
        moves: dict[str, Owner] = {}
        for desired, live in zip(self.plans, lives, strict=True):
            try:
                self._write_owner(desired, live)
            except OwnedElsewhere as exc:
                refused[str(desired.owner)] = str(exc)
                moves[str(desired.owner)] = exc.holder
            except ReconcileError as exc:
                refused[str(desired.owner)] = str(exc)
        if refused:
            raise BatchRefused(refused, moves)
        self._write_members()

    def _collect_garbage(self) -> None:
        planned = {(d.owner.id_key, d.owner.id_value) for d in self.plans}
        gone = [o for o in self.ix.owners() if o not in planned and o not in self.keep]  # type: ignore[operator]
        changes = self.result.setdefault(GARBAGE, Changes()) if gone else Changes()
        for owner in gone:
            for table, row in self.ix.owned(owner):
                name = f"{describe(table, live_key(self.ix, table, row))} ({owner[0]}={owner[1]})"
                self._delete(table, row, changes, name)

    def _delete(self, table: str, row: Any, changes: Changes, name: str) -> None:
        remove(self.ix, table, row)
        self.deleted.add(row.uuid)
        changes.deleted.append(name)

    def _write_members(self) -> None:
        """Each Members' address set: the addresses it lacks inserted, the extra ones deleted
        (one `mutate`), its other columns left as they are. Skipped for an owner whose whole
        plan is in this transaction; refused (in its Changes) when the set is not the owner's."""
        planned = {(d.owner.id_key, d.owner.id_value) for d in self.plans}
        for want in self.members:
            owner = (want.owner.id_key, want.owner.id_value)
            if owner in planned:
                continue
            changes = self.result.setdefault(str(want.owner), Changes())
            name = describe("Address_Set", (want.name,))
            row = self.ix.holder("Address_Set", (want.name,))
            if row is None or row.uuid in self.deleted or self.ix.owner_of_row(row) != owner:
                changes.refused = f"{name} is not {want.owner}'s in the Northbound database"
                continue
            live = set(column(row, "addresses"))
            wanted = set(want.addresses)
            for address in sorted(wanted - live):
                row.addvalue("addresses", address)
            for address in sorted(live - wanted):
                row.delvalue("addresses", address)
            if live != wanted:
                changes.updated.append(name)

    # -- writing one owner --------------------------------------------------------------------

    def _write_owner(self, desired: Desired, live: dict[tuple[str, tuple[str, ...]], Any]
                     ) -> None:
        self.desired = desired
        self.live = live
        self.changes = self.result[str(desired.owner)]
        by_kind: dict[type, list[Row]] = {}
        for row in desired.rows:
            by_kind.setdefault(type(row), []).append(row)
        for kind in ROW_TYPES:  # referenced rows first, so referrers can point at them
            for want in by_kind.get(kind, ()):
                self._upsert(want)

    def _upsert(self, want: Row) -> None:
        table, key = want.table, want.key
        row = self.live.get((table, key))
        created = row is None
        if isinstance(want, Bfd) and not self._port_exists(want, row):
            return
        if created:
            self._check_free(want)
            row = self.txn.insert(self.api.tables[table])
            if want.ROUTER_COLUMN:
                self._router(want).addvalue(want.ROUTER_COLUMN, row.uuid)
        changed = False
        columns = self.api.tables[table].columns
        for name, value in self._columns(want).items():
            if created and (value == [] or value == {}) and columns[name].type.n_min == 0:
                continue  # an empty set or map is the column's default: nothing to send
            if created or _normal(column(row, name)) != _normal(value):
                setattr(row, name, value)
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

    def _router(self, want: Row) -> Any:
        name = want.router  # type: ignore[union-attr]
        router = self.ix.routers.get(name)
        if router is None:
            raise ReconcileError(f"logical router {name} does not exist in the Northbound "
                                 f"database (needed by {self.desired.owner})")
        return router

    def _check_free(self, want: Row) -> None:
        """A new row must not collide with a unique name held by another writer, or by another
        owner of ours that is not giving it up in this transaction."""
        if want.UNIQUE:
            self._check_holder(want.table, want.key)
        if isinstance(want, Switch):
            for port, _ in want.router_ports:
                self._check_holder("Logical_Switch_Port", (port,))

    def _check_holder(self, table: str, key: tuple[str, ...]) -> None:
        other = self.ix.holder(table, key)
        if other is None or other.uuid in self.deleted:
            return
        mine = self.ix.owner_of_row(other)
        if mine is not None:
            raise OwnedElsewhere(f"{describe(table, key)} belongs to {mine[0]}={mine[1]}, "
                                 f"which still has it", mine)
        holder = other.external_ids.get("vendor", "nobody")
        raise ReconcileError(f"{describe(table, key)} already exists and is not "
                             f"{self.desired.owner}'s (vendor={holder}); vegd leaves it alone")

    def _port_exists(self, want: Bfd, live: Any) -> bool:
        """Whether want's router port exists (and is not deleted now) or is written in this
        batch. ovn-northd 25.03.0 dies (SIGSEGV) on a BFD row for a missing port, where 23.03
        made an admin_down SB row (docs/bfd-port.md): such a row is not written (a live one is
        deleted) when nothing refers to it, i.e. a stock-mode TTL helper whose subnet port is
        not there (yet); a session a route or policy needs is refused."""
        port = want.logical_port
        holder = self.ix.holder("Logical_Router_Port", (port,))
        if (holder is not None and holder.uuid not in self.deleted) or port in self.planned_ports:
            return True
        if self._bfd_refs is None:   # once per batch, and only when a port is missing
            self._bfd_refs = {(b.logical_port, b.dst_ip) for d in self.plans for r in d.rows
                              for b in ((r.bfd,) if isinstance(r, StaticRoute) and r.bfd else
                                        r.bfd_sessions if isinstance(r, RouterPolicy) else ())}
        if want.key in self._bfd_refs:
            raise ReconcileError(f"{describe(want.table, want.key)}: logical router port {port} "
                                 "does not exist in the Northbound database; a BFD row for a "
                                 "missing port stops ovn-northd 25.03, so vegd writes none")
        log.info("not writing %s: router port %s does not exist", describe(want.table, want.key),
                 port)
        if live is not None:
            self._delete(want.table, live, self.changes, describe(want.table, want.key))
        return False

    def _columns(self, want: Row) -> dict[str, Any]:
        cols = {c: self._resolve(v) for c, v in want.columns().items()}
        if not self.policy_bfd_sessions and cols.pop("bfd_sessions", None):
            raise ReconcileError("this Northbound schema has no Logical_Router_Policy."
                                     "bfd_sessions; use bfdMode: route")
        return cols

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            row = self.rows.get((value.table, value.key))
            if row is None:
                raise ReconcileError(f"plan error: {describe(value.table, value.key)} is "
                                     "referenced but not desired")
            return row
        if isinstance(value, list):
            return [self._resolve(v) for v in value]
        return value

    def _sync_chassis(self, group: Any, want: HaChassisGroup, created: bool) -> bool:
        existing = {} if created else {c.chassis_name: c for c in group.ha_chassis}
        changed = False
        wanted = {c.chassis_name: c.priority for c in want.chassis}
        for name, row in existing.items():
            if name not in wanted:
                group.delvalue("ha_chassis", row.uuid)
                changed = True
                continue
            if row.priority != wanted[name]:
                row.priority = wanted[name]
                changed = True
            if column(row, "external_ids") != dict(want.external_ids):  # marks the row as ours
                row.external_ids = dict(want.external_ids)
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
            if new:
                row = self.txn.insert(self.api.tables["Logical_Switch_Port"])
                switch.addvalue("ports", row.uuid)
            for col, value in want.port_columns(name, router_port).items():
                if new or _normal(column(row, col)) != _normal(value):
                    setattr(row, col, value)
                    changed = True
        return changed


def _normal(value: Any) -> Any:
    """Comparable form of an IDL value: rows by uuid, sets sorted."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return sorted((_normal(v) for v in value), key=repr)
    uuid = getattr(value, "uuid", None)
    return uuid if uuid is not None else value
