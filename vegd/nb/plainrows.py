"""The one read of `vegd apply`'s NB path (nb/oneshot.py): every table vegd replicates, in one
`transact` of selects, into plain rows (python values as the IDL gives them: sets as lists, maps
as dicts, references as the rows they point at), built while `json.loads` decodes the reply."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ovs.db.schema
import ovs.db.types

from vegd.nb.errors import NbUnavailable
from vegd.nb.rpc import Rpc

if TYPE_CHECKING:
    from vegd.nb.recorder import Recorder

_REAL = ovs.db.types.RealType
_UUID = ovs.db.types.UuidType
DB = "OVN_Northbound"


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
