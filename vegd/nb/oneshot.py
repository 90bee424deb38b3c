"""`vegd apply`'s NB path: one read, the engine's diff, one prepared transaction.

`vegd run` keeps a replica current for hours and so lives in python-ovs' IDL. `vegd apply` reads
NB once and writes once, and there the IDL's per-row work was most of its time at 1,000 gateways
(docs/decisions.md "vegd apply reads and writes NB in one request each"). This client does that
same work in one request each way:

- one `transact` of `select`s reads every table vegd replicates (nb/client.py NB_TABLES and
  NB_COLUMNS, the same columns) from the leader (nb/rpc.py) into plain rows (nb/plainrows.py):
  python values as the IDL gives them (sets as lists, maps as dicts, references as the rows
  they point at);
- the same diff as `vegd run` (nb/sync.py ReconcileOwners, nb/index.py OwnerIndex) runs over
  those rows and a `Recorder` (nb/recorder.py) that offers what the diff uses of python-ovs'
  Transaction and Row (insert, setting a column, addvalue/delvalue, delete) and renders OVSDB
  operations;
- ONE transaction carries them, after `wait` operations on every existing row it changes, deletes
  or unlinks (as read) and on every router it mutates: a concurrent writer makes it fail, and it
  is read and diffed again (the TRY_AGAIN retry of the IDL path), at most ATTEMPTS times.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import ovs.db.schema
import ovs.db.types

from vegd.nb.capabilities import Capabilities
from vegd.nb.client import NB_COLUMNS, NB_TABLES
from vegd.nb.errors import ConnectionLost, ConstraintViolation, NbTimeout, NbUnavailable
from vegd.nb.index import OwnerIndex
from vegd.nb.plainrows import DB, Table, read_tables
from vegd.nb.recorder import Recorder
from vegd.nb.remote import SslFiles, configure_ssl, fetch_schema, members
from vegd.nb.rpc import RpcError, connect_leader
from vegd.nb.sync import Changes, ReconcileOwners
from vegd.plan.rows import Desired

ATTEMPTS = 5  # reads and diffs of one write, when concurrent writers keep changing its rows


class _Conflict(Exception):
    """A `wait` failed: another writer changed a row between the read and the commit."""


class OneShotNbClient:
    """What `vegd apply` uses of NbClient, in one read and one transaction (module doc)."""

    def __init__(self, remote: str, timeout: float = 10.0, ssl: SslFiles | None = None,
                 vendor: str = "vegd",
                 before_commit: Callable[[int], None] | None = None) -> None:
        members(remote)
        configure_ssl(remote, ssl)
        self.remote, self.timeout, self.vendor = remote, timeout, vendor
        schema_json = fetch_schema(remote, DB, timeout)
        self.schema = ovs.db.schema.DbSchema.from_json(schema_json)
        self.capabilities = Capabilities.from_schema(schema_json)
        self.transactions = 0
        self.attempts = 0  # reads of NB (tests count the retries)
        self.before_commit = before_commit  # tests: a concurrent writer, given the attempt
        self._replica: dict[str, Table] | None = None
        self.written_through = ""  # the member the last transaction went to

    def _read(self) -> dict[str, Table]:
        for attempt in range(2):  # the leader may go between the check and the read
            rpc = connect_leader(self.remote, DB, self.timeout)
            try:
                self.attempts += 1
                return read_tables(rpc, self.schema, NB_TABLES, NB_COLUMNS, self.timeout)
            except ConnectionLost:
                if attempt:
                    raise
            except RpcError as exc:
                raise NbUnavailable(f"{rpc.member} refused the read: {exc}") from exc
            finally:
                rpc.close()
        raise AssertionError("unreachable")

    def replica(self) -> dict[str, Table]:
        if self._replica is None:
            self._replica = self._read()
        return self._replica

    def router_names(self) -> set[str]:
        return {row.name for row in self.replica()["Logical_Router"].rows.values()}

    def write(self, plans: list[Desired], keep: set[Any] | None = None,
              dry_run: bool = False) -> dict[str, Changes]:
        """NbClient.write, in one transaction: raises BatchRefused, NbTimeout, ConnectionLost,
        ConstraintViolation, NbUnavailable."""
        for attempt in range(1, ATTEMPTS + 1):
            tables = self.replica()
            index = OwnerIndex(self.vendor)
            index.rebuild(tables, 0)  # type: ignore[arg-type]
            recorder = Recorder(tables)
            cmd = ReconcileOwners(_Api(tables), _returning(index), plans,
                                  self.capabilities.policy_bfd_sessions, keep)
            try:
                cmd.run_idl(recorder)
            finally:
                recorder.close()
            if dry_run or not recorder.writes():
                return cmd.result
            if self.before_commit is not None:
                self.before_commit(attempt)
            try:
                self._commit(recorder)
            except _Conflict:
                self._replica = None  # read again, diff again
                continue
            self._replica = None  # what was read is no longer NB
            if any(c.total for c in cmd.result.values()):
                self.transactions += 1
            return cmd.result
        raise NbTimeout(f"NB transaction did not go through: other writers changed the rows it "
                        f"read {ATTEMPTS} times")

    def _commit(self, recorder: Recorder) -> None:
        waits, writes = recorder.operations()
        # a connection of its own (the read's is closed): the diff between them can outlast
        # the server's inactivity probe, and the leader may have changed
        rpc = connect_leader(self.remote, DB, self.timeout)
        self.written_through = rpc.member
        try:
            try:
                result = rpc.prepared_transact(DB, itertools.chain(waits, writes),
                                               self.timeout, _errors_only)
            except NbTimeout as exc:
                raise NbTimeout(f"NB did not answer within {self.timeout} s") from exc
            except ConnectionLost as exc:
                raise ConnectionLost(f"the connection to {self.remote} was lost during the "
                                     f"transaction ({exc})") from exc
            except RpcError as exc:
                raise ConstraintViolation(f"NB refused the transaction: {exc}") from exc
        finally:
            rpc.close()
        for i, reply in enumerate(result):
            if reply is None or "error" not in reply:
                continue
            if i < len(waits) and reply["error"] == "timed out":
                raise _Conflict()
            raise ConstraintViolation(f"NB refused the transaction: "
                                      f"{json.dumps(reply, sort_keys=True)}")

    def close(self) -> None:
        self._replica = None


def _returning(index: OwnerIndex) -> Callable[[], OwnerIndex]:
    return lambda: index


def _errors_only(pairs: list[tuple[str, Any]]) -> Any:
    """json.loads' hook for a write's reply: the 113,080 `{"uuid": ...}` results of a large
    insert are dropped as they are decoded (only errors are read)."""
    return None if len(pairs) == 1 and pairs[0][0] in ("uuid", "count") else dict(pairs)


class _Api:
    """The `api` the diff reads tables from."""

    def __init__(self, tables: dict[str, Table]) -> None:
        self.tables = tables
