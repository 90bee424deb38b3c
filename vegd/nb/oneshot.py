"""`vegd apply`'s NB path: one read, the engine's diff, one prepared transaction.

`vegd run` keeps a replica current for hours and so lives in python-ovs' IDL. `vegd apply` reads
NB once and writes once, and there the IDL's per-row work was most of its time at 1,000 gateways
(docs/decisions.md "vegd apply reads and writes NB in one request each"). This client does that
same work in one request each way:

- one `transact` of `select`s reads every table vegd replicates (nb/client.py NB_TABLES and
  NB_COLUMNS, the same columns) from the leader (nb/rpc.py) into plain rows: python values as
  the IDL gives them (sets as lists, maps as dicts, references as the rows they point at);
- the same diff as `vegd run` (nb/sync.py ReconcileOwners, nb/index.py OwnerIndex) runs over
  those rows and a `Recorder` that offers what the diff uses of python-ovs' Transaction and Row
  (insert, setting a column, addvalue/delvalue, delete) and renders OVSDB operations;
- ONE transaction carries them, after `wait` operations on every existing row it changes, deletes
  or unlinks (as read) and on every router it mutates: a concurrent writer makes it fail, and it
  is read and diffed again (the TRY_AGAIN retry of the IDL path), at most ATTEMPTS times.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import ovs.db.schema
import ovs.db.types

from vegd.nb.capabilities import Capabilities
from vegd.nb.errors import ConnectionLost, ConstraintViolation, NbTimeout, NbUnavailable
from vegd.nb.index import OwnerIndex
from vegd.nb.remote import SslFiles, configure_ssl, fetch_schema, members
from vegd.nb.rpc import Rpc, RpcError, connect_leader
from vegd.nb.sync import Changes, ReconcileOwners
from vegd.plan.rows import Desired

DB = "OVN_Northbound"
ATTEMPTS = 5  # reads and diffs of one write, when concurrent writers keep changing its rows
_REAL = ovs.db.types.RealType
_UUID = ovs.db.types.UuidType
_OWNER_COLUMN = "external_ids"  # what says whose a row is: a wait on it guards every change


class PlainRow:
    """A row as read: its columns as slots (one class per table, `_row_class`). Writes go to
    the recorder of the transaction being composed, and show in the row at once, as in an IDL
    row (python-ovs merges pending changes into what a read returns)."""

    __slots__ = ("uuid",)
    _table: Any = None  # the schema's table
    _recorder: Recorder | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        recorder = type(self)._recorder
        if recorder is not None and name != "uuid":
            recorder.set(self, name, value)
        object.__setattr__(self, name, value)

    def addvalue(self, column: str, value: Any) -> None:
        type(self)._recorder.mutate(self, column, "insert", value)  # type: ignore[union-attr]

    def delvalue(self, column: str, value: Any) -> None:
        type(self)._recorder.mutate(self, column, "delete", value)  # type: ignore[union-attr]

    def delete(self) -> None:
        type(self)._recorder.delete(self)  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"<{self._table.name} {self.uuid}>"


def _row_class(table: Any) -> type[PlainRow]:
    return type(f"{table.name}Row", (PlainRow,),
                {"__slots__": tuple(table.columns), "_table": table})


class Table:
    """What the diff uses of an IDL table: its schema columns and its rows by uuid."""

    def __init__(self, schema: Any) -> None:
        self.name = schema.name
        self.columns = schema.columns
        self.row_class = _row_class(schema)
        self.rows: dict[str, PlainRow] = {}


# -- reading ---------------------------------------------------------------------------------

def _decoder(column_type: Any, strings: dict[str, str]) -> Callable[[Any], Any]:
    """JSON datum -> the python value python-ovs' `Datum.to_python` gives (references still as
    uuid strings: `_resolve_references` turns them into rows). The strings of maps are shared
    through `strings` (json.loads shares an object's keys, not a map's: every row's
    external_ids would otherwise hold its own "vendor", "vegd", owner name...)."""
    def atom(base: Any) -> Callable[[Any], Any]:
        if base.type == _UUID:
            return lambda j: j[1]
        if base.type == _REAL:
            return float
        return lambda j: j

    key = atom(column_type.key)
    if column_type.is_map():
        if column_type.key.type == ovs.db.types.StringType and \
                column_type.value.type == ovs.db.types.StringType:
            shared = strings.setdefault
            return lambda j: {shared(k, k): shared(v, v) for k, v in j[1]} if j[1] else _NO_MAP
        value = atom(column_type.value)
        return lambda j: {key(k): value(v) for k, v in j[1]} if j[1] else _NO_MAP
    if column_type.is_scalar():
        return key

    def as_list(j: Any) -> list[Any]:  # a set of one element may come as the bare atom
        if isinstance(j, list) and j[0] == "set":
            return [key(a) for a in j[1]] if j[1] else _NO_SET
        return [key(j)]
    return as_list


class _Frozen:
    """An empty set or map shared by every row that has one (four a row, 110,000 rows: 25 MB
    of peak RSS); changing it in place raises, as nothing may."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a column value read from NB is not changed in place")

    append = extend = insert = remove = pop = clear = sort = reverse = _refuse
    update = setdefault = popitem = __setitem__ = __delitem__ = __iadd__ = _refuse


class _FrozenList(_Frozen, list):  # type: ignore[misc]
    __slots__ = ()


class _FrozenDict(_Frozen, dict):  # type: ignore[misc]
    __slots__ = ()


_NO_SET: list[Any] = _FrozenList()
_NO_MAP: dict[Any, Any] = _FrozenDict()


def read_tables(rpc: Rpc, schema: Any, tables: tuple[str, ...],
                columns: dict[str, list[str]], timeout: float) -> dict[str, Table]:
    """Every row of `tables` (and `columns` of other tables), in one request."""
    wanted = [(name, None) for name in tables if name in schema.tables]
    wanted += [(name, cols) for name, cols in columns.items()
               if name in schema.tables and name not in tables]
    ops = []
    out: dict[str, Table] = {}
    for name, cols in wanted:
        table_schema = schema.tables[name]
        if cols is not None:  # a narrowed copy: only these columns are slots
            table_schema = ovs.db.schema.TableSchema(
                name, {c: table_schema.columns[c] for c in cols}, table_schema.mutable,
                table_schema.max_rows, table_schema.is_root, table_schema.indexes)
        out[name] = Table(table_schema)
        ops.append({"op": "select", "table": name, "where": [],
                    "columns": ["_uuid", *out[name].columns]})
    strings: dict[str, str] = {}
    by_columns = {frozenset(["_uuid", *t.columns]): t for t in out.values()}
    by_keys: dict[tuple[str, ...], Table | None] = {}
    decoders = {name: {c: _decoder(col.type, strings) for c, col in t.columns.items()}
                for name, t in out.items()}
    setter = object.__setattr__

    def make_row(pairs: list[tuple[str, Any]]) -> Any:
        """json.loads' hook: a row object becomes a plain row as soon as it is decoded, so the
        JSON of all rows is never in memory at once (at 113,080 rows: ~300 MB)."""
        keys = tuple(k for k, _ in pairs)
        table = by_keys.get(keys, False)
        if table is False:
            table = by_keys[keys] = by_columns.get(frozenset(keys))
        if table is None:
            return dict(pairs)
        row = table.row_class.__new__(table.row_class)
        convert = decoders[table.name]
        for column, value in pairs:
            if column == "_uuid":
                setter(row, "uuid", value[1])
            else:
                setter(row, column, convert[column](value))
        return row

    result = rpc.call("transact", [DB, *ops], timeout, object_pairs_hook=make_row)
    for (name, _), reply in zip(wanted, result, strict=False):
        if "error" in reply:
            raise NbUnavailable(f"NB could not read {name}: {reply}")
        out[name].rows = {row.uuid: row for row in reply["rows"]}
    _resolve_references(out)
    return out


def _resolve_references(tables: dict[str, Table]) -> None:
    """References to rows of the tables read become those rows, as in the IDL."""
    setter = object.__setattr__
    for table in tables.values():
        for name, column in table.columns.items():
            targets = {part: tables[base.ref_table_name].rows
                       for part, base in (("key", column.type.key), ("value", column.type.value))
                       if base is not None and base.ref_table_name in tables}
            if not targets:
                continue
            keys, values = targets.get("key"), targets.get("value")
            for row in table.rows.values():
                current = getattr(row, name)
                if not current and isinstance(current, (list, dict)):
                    continue
                if isinstance(current, dict):
                    new: Any = {(keys.get(k, k) if keys else k): (values.get(v, v) if values else v)
                                for k, v in current.items()}
                elif isinstance(current, list):
                    new = [keys.get(u, u) for u in current]  # type: ignore[union-attr]
                else:
                    new = keys.get(current, current)  # type: ignore[union-attr]
                setter(row, name, new)


# -- writing ---------------------------------------------------------------------------------

class Recorder:
    """What the diff uses of python-ovs' Transaction: `insert(table)` and, through the rows,
    every change; `operations()` renders them as OVSDB operations."""

    def __init__(self, tables: dict[str, Table]) -> None:
        self.tables = tables
        self._names = (f"row{n}" for n in itertools.count(1))
        self.new: dict[str, PlainRow] = {}  # uuid-name -> row inserted
        # existing row -> column -> value written (a new row's values are its slots only)
        self.sets: dict[PlainRow, dict[str, Any]] = {}
        self.read: dict[PlainRow, dict[str, Any]] = {}  # existing row -> column -> value as read
        self.mutations: dict[PlainRow, list[tuple[str, str, Any]]] = {}
        self.deleted: dict[PlainRow, None] = {}
        self.unlinked: dict[str, None] = {}  # uuids of existing rows whose reference is removed
        self._encoders: dict[tuple[str, str], Callable[[Any], Any]] = {}
        for table in tables.values():
            table.row_class._recorder = self

    def close(self) -> None:
        for table in self.tables.values():
            table.row_class._recorder = None

    # what the diff calls
    def insert(self, table: Table) -> PlainRow:
        row = table.row_class.__new__(table.row_class)
        name = next(self._names)
        object.__setattr__(row, "uuid", name)
        self.new[name] = row
        return row

    def set(self, row: PlainRow, column: str, value: Any) -> None:
        if row.uuid in self.new:
            return
        read = self.read.setdefault(row, {})
        if column not in read:
            read[column] = getattr(row, column)
        self.sets.setdefault(row, {})[column] = value

    def mutate(self, row: PlainRow, column: str, how: str, value: Any) -> None:
        if row.uuid in self.new:  # folded into the insert
            values = list(getattr(row, column, None) or [])
            if how == "insert":
                values.append(value)
            else:
                values = [v for v in values if _uuid(v) != _uuid(value)]
            object.__setattr__(row, column, values)
            return
        if how == "delete" and isinstance(value, str):
            self.unlinked[value] = None
        self.read.setdefault(row, {})
        self.mutations.setdefault(row, []).append((column, how, value))

    def delete(self, row: PlainRow) -> None:
        if self.new.pop(row.uuid, None) is not None:
            return
        self.read.setdefault(row, {})
        self.deleted[row] = None

    # rendering
    def writes(self) -> bool:
        return bool(self.new or self.sets or self.mutations or self.deleted)

    def operations(self) -> tuple[list[dict[str, Any]], Iterator[dict[str, Any]]]:
        """The `wait`s, and the writes (made one by one, as they are encoded)."""
        waits = [self._wait(row, read) for row, read in self.read.items()]
        by_uuid = {u: t for t in self.tables.values() for u in self.unlinked if u in t.rows}
        for uuid, table in by_uuid.items():
            row = table.rows[uuid]
            if row not in self.read:
                waits.append(self._wait(row, {}))
        return waits, self._writes()

    def _writes(self) -> Iterator[dict[str, Any]]:
        for name, row in self.new.items():
            yield {"op": "insert", "table": row._table.name, "uuid-name": name,
                   "row": self._encode_row(row._table, _slots(row))}
        for row, columns in self.sets.items():
            if row.uuid in self.new or row in self.deleted:
                continue
            yield {"op": "update", "table": row._table.name, "where": _where(row),
                   "row": self._encode_row(row._table, columns)}
        for row, mutations in self.mutations.items():
            if row in self.deleted:
                continue
            merged: dict[tuple[str, str], list[Any]] = {}  # one set per column and kind
            for column, how, value in mutations:
                merged.setdefault((column, how), []).append(value)
            yield {"op": "mutate", "table": row._table.name, "where": _where(row),
                   "mutations": [[column, how, self._encode(row._table, column, values)]
                                 for (column, how), values in merged.items()]}
        for row in self.deleted:
            yield {"op": "delete", "table": row._table.name, "where": _where(row)}

    def _wait(self, row: PlainRow, read: dict[str, Any]) -> dict[str, Any]:
        """The row must still be as read: the columns written, and whose it is."""
        table = row._table
        guard = _OWNER_COLUMN if _OWNER_COLUMN in table.columns and \
            table.name not in ("Logical_Router",) else "name"
        values = dict(read)
        values.setdefault(guard, getattr(row, guard))
        return {"op": "wait", "timeout": 0, "table": table.name, "where": _where(row),
                "until": "==", "columns": list(values),
                "rows": [self._encode_row(table, values)]}

    def _encode_row(self, table: Any, columns: dict[str, Any]) -> dict[str, Any]:
        return {c: self._encoder(table, c)(v) for c, v in columns.items()}

    def _encode(self, table: Any, column: str, value: Any) -> Any:
        return self._encoder(table, column)(value)

    def _encoder(self, table: Any, column: str) -> Callable[[Any], Any]:
        """python value -> JSON datum, by the column's type (made once per column)."""
        encoder = self._encoders.get((table.name, column))
        if encoder is None:
            encoder = self._encoders[(table.name, column)] = self._make_encoder(
                table.columns[column].type)
        return encoder

    def _make_encoder(self, column_type: Any) -> Callable[[Any], Any]:
        key = self._atom_encoder(column_type.key)
        if column_type.is_map():
            value = self._atom_encoder(column_type.value)
            if key is None and value is None:
                return lambda m: ["map", [[k, v] for k, v in m.items()]]
            key, value = key or _same, value or _same
            return lambda m: ["map", [[key(k), value(v)] for k, v in m.items()]]
        if column_type.is_scalar():
            return key or _same
        if key is None:
            return lambda items: ["set", list(items) if isinstance(items, (list, tuple, set,
                                                                           frozenset))
                                  else [items]]
        return lambda items: ["set", [key(v) for v in items] if isinstance(
            items, (list, tuple, set, frozenset)) else [key(items)]]

    def _atom_encoder(self, base: Any) -> Callable[[Any], Any] | None:
        """None: the python value is its JSON."""
        if base.type == _UUID:
            new = self.new

            def uuid(value: Any) -> Any:
                u = value.uuid if isinstance(value, PlainRow) else str(value)
                return ["named-uuid", u] if u in new else ["uuid", u]
            return uuid
        if base.type == _REAL:
            return float
        return None


def _same(value: Any) -> Any:
    return value


def _slots(row: PlainRow) -> dict[str, Any]:
    """The columns set on a new row."""
    return {c: v for c in row._table.columns if (v := getattr(row, c, _UNSET)) is not _UNSET}


_UNSET = object()


def _uuid(value: Any) -> str:
    return value.uuid if isinstance(value, PlainRow) else str(value)


def _where(row: PlainRow) -> list[Any]:
    return [["_uuid", "==", ["uuid", row.uuid]]]


# -- the client ------------------------------------------------------------------------------

class _Conflict(Exception):
    """A `wait` failed: another writer changed a row between the read and the commit."""


class OneShotNbClient:
    """What `vegd apply` uses of NbClient, in one read and one transaction (module doc)."""

    def __init__(self, remote: str, timeout: float = 10.0, ssl: SslFiles | None = None,
                 vendor: str = "vegd",
                 before_commit: Callable[[int], None] | None = None) -> None:
        from vegd.nb.client import NB_COLUMNS, NB_TABLES  # (client imports this module's peers)
        members(remote)
        configure_ssl(remote, ssl)
        self.remote, self.timeout, self.vendor = remote, timeout, vendor
        self._tables, self._columns = NB_TABLES, NB_COLUMNS
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
                return read_tables(rpc, self.schema, self._tables, self._columns, self.timeout)
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

