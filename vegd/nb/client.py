"""Connections to the Northbound (read-write) and Southbound (read-only) databases."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import ovs.db.data
import ovs.db.idl
from ovsdbapp import api as ovsdbapp_api
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend import ovs_idl
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import vlog

from vegd.nb.capabilities import Capabilities
from vegd.nb.errors import (
    ConnectionLost,
    ConstraintViolation,
    NbTimeout,
    NbUnavailable,
    NotLockHolder,
    ReconcileError,
)
from vegd.nb.index import Owner, OwnerIndex
from vegd.nb.remote import SslFiles, configure_ssl, fetch_schema, members, schema_helper
from vegd.nb.sync import Changes, ReconcileOwners, live_key
from vegd.plan.rows import Desired, Members

# The tables vegd reads or writes.
NB_TABLES = ("Logical_Router", "Logical_Router_Port", "Logical_Router_Policy",
             "Logical_Router_Static_Route", "BFD", "Address_Set", "HA_Chassis_Group",
             "HA_Chassis", "Logical_Switch", "Logical_Switch_Port")
# Read only, for another controller's reroutes of selected pods (`$<port group>_ip4`, nb/foreign.py)
NB_COLUMNS = {"Port_Group": ["name", "ports"]}
SB_TABLES = ("Chassis",)
_serial = itertools.count(1)
# python-ovs' reconnect backoff doubles up to 8 s while every server it tries refuses it; during a
# RAFT election every member answers "not leader" for a second or so, so one failover could leave
# vegd off NB for 8 s and more after the new leader was elected (measured: 13 s to converge after
# five leader kills). One client per vegd process: retrying each second costs the servers nothing.
RECONNECT_BACKOFF_MS = 1000
# python-ovs' own log (reconnects, lock contention) is discarded until routed somewhere: into the
# stdlib loggers, which vegd.logs renders like every other line.
vlog.use_python_logger()


class _Defaults(ovs.db.idl.ColumnDefaultDict):  # type: ignore[misc]
    """A row's columns, with the default of a column it lacks made from a template. python-ovs
    builds each default from scratch (new atoms), and reads one for every column of every new
    row it receives (`__row_update` compares against it): 14% of reading a 34,000-row NB."""

    __slots__ = ()
    _templates: dict[Any, dict[Any, Any]] = {}

    def __missing__(self, name: str) -> Any:
        column = self._table.columns[name]
        values = self._templates.get(column)
        if values is None:
            values = self._templates[column] = ovs.db.data.Datum.default(column.type).values
        # a fresh Datum and dict: python-ovs changes a datum's values in place (Datum.diff)
        return ovs.db.data.Datum(column.type, dict(values))


class _IndexedIdl(ovs_connection.OvsdbIdl):  # type: ignore[misc]
    """An IDL that feeds every row notice to vegd's owner index."""

    owner_index: OwnerIndex | None = None

    def _Idl__create_row(self, table: Any, uuid: Any) -> Any:
        return ovs.db.idl.Row(self, table, uuid, _Defaults(table))

    lock_granted = False  # what the server last said of our lock request

    # python-ovs asks for the lock on every (re)connect together with its check that the server
    # is the cluster leader; a RAFT follower grants it, and vegd would be "active" (and python-ovs
    # would commit through that follower, which forwards to the leader) for the ~100 ms until the
    # check disconnects - while another vegd holds the same lock on the leader. So the lock
    # counts only once this IDL monitors the data of a server that passed the check; commits are
    # refused (NOT_LOCKED) until then.
    @property  # type: ignore[override]
    def has_lock(self) -> bool:
        return self.lock_granted and getattr(self, "state", None) == self.IDL_S_MONITORING

    @has_lock.setter
    def has_lock(self, granted: bool) -> None:
        self.lock_granted = granted

    def cooperative_yield(self) -> None:
        """ovsdbapp sleeps(0) after every row of an update for eventlet's sake; with threads
        that is a system call per row, which on a busy machine gives the CPU away 10,000s of
        times during one large update. vegd has no green threads to yield to."""

    def notify(self, event: str, row: Any, updates: Any = None) -> None:
        index = self.owner_index
        if index is not None and index.epoch == self._vegd_epoch():
            index.notice(event, row._table.name, row, updates)

    def _Idl__clear(self) -> None:
        # A reconnect that cannot resume clears every table without notices: the index must be
        # rebuilt from the tables that the following full update fills.
        super()._Idl__clear()
        if self.owner_index is not None:
            self.owner_index.epoch = -1

    def _vegd_epoch(self) -> int:
        session = getattr(self, "_session", None)
        return int(session.get_seqno()) if session is not None else 0


class _Abandoned(Exception):
    """Raised by a dry run after its diff: ovsdbapp aborts the transaction."""


class _DryRun(ReconcileOwners):
    def run_idl(self, txn: Any) -> None:
        super().run_idl(txn)
        raise _Abandoned()


def _open(remote: str, schema: str, tables: tuple[str, ...], timeout: float,
          ssl: SslFiles | None, lock: str = "", index: OwnerIndex | None = None
          ) -> tuple[Any, Any]:
    """An ovsdbapp API object with its own connection, and the schema JSON."""
    members(remote)
    configure_ssl(remote, ssl)
    schema_json = fetch_schema(remote, schema, timeout)
    helper = schema_helper(schema_json, tables, NB_COLUMNS if schema == "OVN_Northbound" else None)
    idl = _IndexedIdl(remote, helper, leader_only=True)
    idl.owner_index = index
    idl._session.reconnect.set_backoff(RECONNECT_BACKOFF_MS, RECONNECT_BACKOFF_MS)
    if lock:
        # Set before the connection thread runs the IDL; python-ovs then asks for the lock on
        # every (re)connect and adds {"op": "assert", "lock": ...} to every transaction, so
        # ovsdb-server itself refuses writes from a process that is not the lock holder.
        idl.set_lock(lock)
    conn = ovs_connection.Connection(idl, timeout=timeout)
    # ovsdbapp keeps the connection on the API *class*: one class per connection keeps two
    # databases (or two test stacks) in one process apart.
    cls = type(f"VegdApi{next(_serial)}", (ovs_idl.Backend, ovsdbapp_api.API), {})
    try:
        api = cls(conn, start=True, auto_index=False)
    except Exception as exc:  # ovsdbapp raises OvsdbConnectionUnavailable or a timeout
        raise NbUnavailable(f"cannot connect to {remote}: {exc}") from exc
    return api, schema_json


def lock_name(vendor: str) -> str:
    """The NB lock of the vegd instances of one vendor tag. OVSDB lock names must be ids
    (`[_a-zA-Z][_a-zA-Z0-9]*`): ovsdb-server refuses `vegd-x` with a syntax error."""
    return "vegd_" + re.sub(r"[^A-Za-z0-9_]", "_", vendor)


class NbClient:
    def __init__(self, remote: str, timeout: float = 10.0, ssl: SslFiles | None = None,
                 lock: str = "", vendor: str = "vegd",
                 on_owner_change: Callable[[Owner], None] | None = None,
                 extra_tables: tuple[str, ...] = ()) -> None:
        self.remote = remote
        self.lock = lock
        self.vendor = vendor
        self.timeout = timeout
        self._index = OwnerIndex(vendor)
        self._index.on_owner_change = on_owner_change
        self.api, schema = _open(remote, "OVN_Northbound", NB_TABLES + extra_tables, timeout,
                                 ssl, lock, self._index)
        self.capabilities = Capabilities.from_schema(schema)
        self.transactions = 0  # write transactions committed (tests and metrics count them)
        self.failures: Counter[str] = Counter()  # failed transactions by reason, for /metrics

    def watch_owners(self, callback: Callable[[Owner], None] | None) -> None:
        """Call back (in the connection thread) with the owner of every row of ours that
        changes other than by our own write, and of every BFD status change."""
        self._index.on_owner_change = callback

    def index(self) -> OwnerIndex:
        """The owner index, current with the replica. Call with the connection lock held (the
        connection thread holds it while it runs commands)."""
        epoch = self.api.idl._vegd_epoch()
        if self._index.epoch != epoch:
            self._index.rebuild(self.api.tables, epoch)
        return self._index

    def write(self, plans: list[Desired], keep: set[Owner] | None = None,
              dry_run: bool = False, members: tuple[Members, ...] = ()) -> dict[str, Changes]:
        """Every owner of `plans` made exactly its desired rows (and with `keep`, the rows of
        owners neither planned nor kept deleted), in ONE transaction. Raises BatchRefused (the
        refused owners; nothing written), NotLockHolder, NbTimeout, ConnectionLost,
        ConstraintViolation. A dry run computes the same changes and aborts the transaction.
        `members`: address sets written by mutation in the same transaction (ReconcileOwners)."""
        kind = _DryRun if dry_run else ReconcileOwners
        cmd = kind(self.api, self.index, plans, self.capabilities.policy_bfd_sessions, keep,
                   members=members)
        try:
            result: dict[str, Changes] = self._commit(cmd, [*plans, *members])
        except _Abandoned:
            return cmd.result
        except Exception as exc:
            self.failures[failure_reason(exc)] += 1
            raise
        if any(c.total for c in result.values()):
            self.transactions += 1
        return result

    def reconcile(self, desired: Desired) -> Changes:
        return self.write([desired])[str(desired.owner)]

    def collect_garbage(self, keep: set[Owner]) -> Changes:
        return self.write([], keep).get("garbage", Changes())

    def _commit(self, cmd: ReconcileOwners, plans: list[Desired | Members]) -> Any:
        owners = {(d.owner.id_key, d.owner.id_value) for d in plans}
        try:
            self._index.quiet = owners  # our own write is not drift
            with self.api.transaction(check_error=True, log_errors=False) as txn:
                txn.add(cmd)
        except ovsdbapp_exceptions.TimeoutException as exc:
            # (its text lists every command of the batch: not for a log line)
            raise NbTimeout(f"NB did not answer within {self.timeout} s") from exc
        except RuntimeError as exc:
            raise self._classify(cmd, exc) from exc
        finally:
            self._index.quiet = set()
        return cmd.result

    def _classify(self, cmd: ReconcileOwners, exc: RuntimeError) -> Exception:
        """ovsdbapp reports every failed commit as a RuntimeError; the python-ovs transaction's
        final status and the IDL's state say which failure it was."""
        if isinstance(exc, (NbUnavailable, ReconcileError)) or not hasattr(cmd, "txn"):
            return exc
        status = getattr(cmd.txn, "_status", None)
        idl = self.api.idl
        if status == ovs.db.idl.Transaction.NOT_LOCKED or (self.lock and not idl.has_lock):
            return NotLockHolder(f"NB lock {self.lock!r} is held by another vegd")
        if not idl._session.is_connected():
            return ConnectionLost(f"the connection to {self.remote} was lost during the "
                                  "transaction")
        if status == ovs.db.idl.Transaction.ERROR:
            return ConstraintViolation(f"NB refused the transaction: {cmd.txn.get_error()}")
        if status == ovs.db.idl.Transaction.TRY_AGAIN:
            return NbTimeout(f"NB transaction did not go through in time ({exc})")
        return exc

    def router_names(self) -> set[str]:
        with self.api.ovsdb_connection.lock:
            return {row.name for row in self.api.tables["Logical_Router"].rows.values()}

    @property
    def has_lock(self) -> bool:
        """True when no lock is configured, or ovsdb-server granted it to us."""
        return not self.lock or bool(self.api.idl.has_lock)

    @property
    def lock_contended(self) -> bool:
        """True when another client holds the lock this one waits for (a standby)."""
        return bool(self.lock) and bool(self.api.idl.is_lock_contended)

    @property
    def connection_epoch(self) -> int:
        """Changes on every (re)connection: the replica was re-read from the server."""
        session = getattr(self.api.idl, "_session", None)
        return int(session.get_seqno()) if session is not None else 0

    def bfd_status_by_owner(self, owner_key: str) -> dict[str, dict[str, str]]:
        """owner -> dst_ip -> BFD.status, for every owner at once."""
        out: dict[str, dict[str, str]] = {}
        with self.api.ovsdb_connection.lock:
            for (key, owner), table, row in self.index().all_owned():
                if table == "BFD" and key == owner_key:
                    out.setdefault(owner, {})[row.dst_ip] = row.status[0] if row.status else ""
        return out

    def bfd_status(self, owner_key: str, owner_value: str) -> dict[str, str]:
        """dst_ip -> BFD.status of the owner's sessions, as ovn-northd reports them."""
        with self.api.ovsdb_connection.lock:
            return {row.dst_ip: (row.status[0] if row.status else "")
                    for table, row in self.index().owned((owner_key, owner_value))
                    if table == "BFD"}

    def owned_row_counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """(owner key, owner) -> table -> rows of ours (metrics, `vegd status`)."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        with self.api.ovsdb_connection.lock:
            for owner, table, _ in self.index().all_owned():
                tables = out.setdefault(owner, {})
                tables[table] = tables.get(table, 0) + 1
        return out

    def owned_keys(self, owner_key: str) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
        """owner -> (table, key) of its rows, keyed as the plan keys them (`vegd explain`)."""
        out: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
        with self.api.ovsdb_connection.lock:
            index = self.index()
            for (key, owner), table, row in index.all_owned():
                if key == owner_key:
                    out.setdefault(owner, set()).add((table, live_key(index, table, row)))
        return out

    def close(self) -> None:
        self.api.ovsdb_connection.stop(timeout=5)


def failure_reason(exc: BaseException) -> str:
    """The `reason` label of a failed NB transaction."""
    for kind, reason in ((NotLockHolder, "not_lock_holder"), (NbTimeout, "timeout"),
                         (ConnectionLost, "connection_lost"), (NbUnavailable, "unavailable"),
                         (ConstraintViolation, "constraint"), (ReconcileError, "refused")):
        if isinstance(exc, kind):
            return reason
    return "error"


class SbClient:
    """Read-only view of the Southbound Chassis table (chassis name by hostname)."""

    def __init__(self, remote: str, timeout: float = 10.0, ssl: SslFiles | None = None) -> None:
        self.api, _ = _open(remote, "OVN_Southbound", SB_TABLES, timeout, ssl)
        self._chassis: tuple[int, dict[str, str]] | None = None

    @property
    def change_seqno(self) -> int:
        return int(self.api.idl.change_seqno)

    def chassis_by_hostname(self) -> dict[str, str]:
        """Read on every reconcile: scanned again only when the replica changed."""
        with self.api.ovsdb_connection.lock:
            seqno = self.api.idl.change_seqno
            if self._chassis is None or self._chassis[0] != seqno:
                self._chassis = (seqno, {row.hostname: row.name
                                         for row in self.api.tables["Chassis"].rows.values()
                                         if row.hostname})
            return dict(self._chassis[1])

    def close(self) -> None:
        self.api.ovsdb_connection.stop(timeout=5)
