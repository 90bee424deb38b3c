"""The transaction recorder of `vegd apply`'s NB path (nb/oneshot.py): what the diff
(nb/sync.py) uses of python-ovs' Transaction and Row, rendered as OVSDB operations by the
schema's column types, with `wait`s on every existing row it changes and router it mutates."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import ovs.db.schema
import ovs.db.types

from vegd.nb.plainrows import PlainRow, Table

_REAL = ovs.db.types.RealType
_UUID = ovs.db.types.UuidType
_OWNER_COLUMN = "external_ids"  # what says whose a row is: a wait on it guards every change


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
