"""Connections to the Northbound (read-write) and Southbound (read-only) databases."""

from __future__ import annotations

import itertools
import logging
import re
from collections import Counter
from typing import Any

from ovsdbapp import api as ovsdbapp_api
from ovsdbapp import exceptions as ovsdbapp_exceptions
from ovsdbapp.backend import ovs_idl
from ovsdbapp.backend.ovs_idl import connection as ovs_connection
from ovsdbapp.backend.ovs_idl import vlog

from vegd.nb.capabilities import Capabilities
from vegd.nb.errors import NbUnavailable, NotLockHolder, ReconcileError
from vegd.nb.remote import SslFiles, configure_ssl, fetch_schema, members, schema_helper
from vegd.nb.sync import Changes, CollectGarbage, ReconcileOwner, Replica
from vegd.plan.rows import Desired

# Only what vegd reads or writes is replicated: the replica stays small on big clusters.
NB_TABLES = ("Logical_Router", "Logical_Router_Port", "Logical_Router_Policy",
             "Logical_Router_Static_Route", "BFD", "Address_Set", "HA_Chassis_Group",
             "HA_Chassis", "Logical_Switch", "Logical_Switch_Port")
SB_TABLES = ("Chassis",)
_serial = itertools.count(1)


class _QuietReconcileErrors(logging.Filter):
    """ovsdbapp logs every exception raised in run_idl with a traceback from its own thread;
    a ReconcileError is an expected, explained refusal that the caller reports itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ReconcileError))


logging.getLogger("ovsdbapp.backend.ovs_idl.connection").addFilter(_QuietReconcileErrors())
# python-ovs' own log (reconnects, lock contention) is discarded until routed somewhere: into the
# stdlib loggers, which vegd.logs renders like every other line.
vlog.use_python_logger()


def _open(remote: str, schema: str, tables: tuple[str, ...], timeout: float,
          ssl: SslFiles | None, lock: str = "") -> tuple[Any, Any]:
    """An ovsdbapp API object with its own connection, and the schema JSON."""
    members(remote)
    configure_ssl(remote, ssl)
    schema_json = fetch_schema(remote, schema, timeout)
    helper = schema_helper(schema_json, tables)
    idl = ovs_connection.OvsdbIdl(remote, helper, leader_only=True)
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
                 lock: str = "") -> None:
        self.remote = remote
        self.lock = lock
        self.api, schema = _open(remote, "OVN_Northbound", NB_TABLES, timeout, ssl, lock)
        self.capabilities = Capabilities.from_schema(schema)
        self.transactions = 0  # write transactions committed (tests and metrics count them)
        self.failures: Counter[str] = Counter()  # failed transactions by reason, for /metrics

    def reconcile(self, desired: Desired, vendor: str) -> Changes:
        cmd = ReconcileOwner(self.api, desired, vendor, self.capabilities.policy_bfd_sessions)
        return self._commit(cmd)

    def collect_garbage(self, vendor: str, keep: set[tuple[str, str]]) -> Changes:
        return self._commit(CollectGarbage(self.api, vendor, keep))

    def _commit(self, cmd: Any) -> Changes:
        try:
            return self._commit_once(cmd)
        except Exception as exc:
            self.failures[failure_reason(exc)] += 1
            raise

    def _commit_once(self, cmd: Any) -> Changes:
        try:
            with self.api.transaction(check_error=True) as txn:
                txn.add(cmd)
        except ovsdbapp_exceptions.TimeoutException as exc:
            raise NbUnavailable(f"NB transaction timed out: {exc}") from exc
        except RuntimeError as exc:
            text = str(exc).lower()
            # ovsdbapp words these as "...require a database lock but didn't get it yet or has
            # already lost it" and "OVS transaction timed out"
            if self.lock and ("lock" in text or not self.api.idl.has_lock):
                raise NotLockHolder(f"NB lock {self.lock!r} is held by another vegd") from exc
            if "timed out" in text:
                raise NbUnavailable(f"NB transaction: {exc}") from exc
            raise
        changes: Changes = cmd.result
        if changes.total:
            self.transactions += 1
        return changes

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

    @property
    def change_seqno(self) -> int:
        return int(self.api.idl.change_seqno)

    def bfd_status_by_owner(self, vendor: str, owner_key: str) -> dict[str, dict[str, str]]:
        """owner -> dst_ip -> BFD.status, for every owner at once."""
        out: dict[str, dict[str, str]] = {}
        with self.api.ovsdb_connection.lock:
            # the reconcile's own owner index, rebuilt only when the replica changed
            for (key, owner), table, row in Replica.of(self.api, vendor).all_owned():
                if table == "BFD" and key == owner_key:
                    out.setdefault(owner, {})[row.dst_ip] = row.status[0] if row.status else ""
        return out

    def bfd_status(self, vendor: str, owner_key: str, owner_value: str) -> dict[str, str]:
        """dst_ip -> BFD.status of the owner's sessions, as ovn-northd reports them."""
        with self.api.ovsdb_connection.lock:
            return {row.dst_ip: (row.status[0] if row.status else "")
                    for row in Replica.of(self.api, vendor).owned("BFD", owner_key, owner_value)}

    def owned_row_counts(self, vendor: str) -> dict[tuple[str, str], dict[str, int]]:
        """(owner key, owner) -> table -> rows vegd owns there (metrics, `vegd status`)."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        with self.api.ovsdb_connection.lock:
            for owner, table, _row in Replica.of(self.api, vendor).all_owned():
                tables = out.setdefault(owner, {})
                tables[table] = tables.get(table, 0) + 1
        return out

    def owned_keys(self, vendor: str, owner_key: str
                   ) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
        """owner -> (table, natural key) of its rows, as the plan keys them (`vegd explain`)."""
        out: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
        with self.api.ovsdb_connection.lock:
            replica = Replica.of(self.api, vendor)
            for (key, owner), table, row in replica.all_owned():
                if key == owner_key:
                    out.setdefault(owner, set()).add((table, replica.key(table, row)))
        return out

    def close(self) -> None:
        self.api.ovsdb_connection.stop(timeout=5)


def failure_reason(exc: BaseException) -> str:
    """The `reason` label of a failed NB transaction."""
    if isinstance(exc, NotLockHolder):
        return "not_lock_holder"
    if isinstance(exc, NbUnavailable):
        return "timeout"
    if isinstance(exc, ReconcileError):
        return "refused"
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
