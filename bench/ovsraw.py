"""Raw OVSDB JSON-RPC over a unix socket: the floors of the scale benchmark.

No python-ovs, no IDL: a request is prepared as bytes beforehand, sent in one write, and the reply
read and decoded with `json.loads`. What it costs is what ovsdb-server costs plus one decode.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

Obj = dict[str, Any]

# Columns a client cannot write (or that the server fills in).
_READ_ONLY = {"_uuid", "_version"}


class Rpc:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path.removeprefix("unix:"))
        self._buf = b""
        self._decoder = json.JSONDecoder()
        self._id = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, method: str, params: list[Any]) -> bytes:
        self._id += 1
        return json.dumps({"id": self._id, "method": method, "params": params}).encode()

    def call(self, payload: bytes) -> Any:
        """Send a prepared request, return the decoded `result` of its reply."""
        want = json.loads(payload)["id"]
        self.sock.sendall(payload)
        while True:
            msg = self._read()
            if msg.get("id") == want:
                if msg.get("error"):
                    raise RuntimeError(msg["error"])
                return msg["result"]
            if msg.get("method") == "echo":
                self.sock.sendall(json.dumps({"id": msg["id"], "result": msg["params"],
                                              "error": None}).encode())

    def _read(self) -> Obj:
        """One message; what was received of the next one stays buffered (also when a socket
        timeout interrupts the wait). Decoding is tried only where a message can end: after a
        read that emptied the socket and ended in "}" (so a 100 MB reply is decoded once)."""
        drained = bool(self._buf)
        chunks = [self._buf]
        while True:
            if drained and chunks[-1].rstrip().endswith(b"}"):
                text = b"".join(chunks).decode().lstrip()
                try:
                    msg, end = self._decoder.raw_decode(text)
                    self._buf = text[end:].lstrip().encode()
                    return msg
                except json.JSONDecodeError:
                    chunks = [text.encode()]
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                self._buf = b"".join(chunks)
                raise
            if not chunk:
                raise ConnectionError("ovsdb-server closed the connection")
            chunks.append(chunk)
            drained = len(chunk) < (1 << 20)

    def transact(self, ops: list[Obj]) -> list[Obj]:
        result = self.call(self.request("transact", ["OVN_Northbound", *ops]))
        errors = [r for r in result if r and "error" in r]
        if errors:
            raise RuntimeError(errors[:3])
        return result


def timed_transact(path: str, ops: list[Obj]) -> float:
    """Seconds for ONE prepared transact request, from send to decoded reply."""
    rpc = Rpc(path)
    try:
        payload = rpc.request("transact", ["OVN_Northbound", *ops])
        start = time.perf_counter()
        result = rpc.call(payload)
        elapsed = time.perf_counter() - start
    finally:
        rpc.close()
    errors = [r for r in result if r and "error" in r]
    if errors:
        raise RuntimeError(errors[:3])
    return elapsed


def timed_monitor(path: str, tables: list[str]) -> tuple[float, int]:
    """Seconds for one `monitor` request of every column of `tables`, and the rows it returned."""
    rpc = Rpc(path)
    try:
        payload = rpc.request("monitor", ["OVN_Northbound", None, {t: {} for t in tables}])
        start = time.perf_counter()
        result = rpc.call(payload)
        elapsed = time.perf_counter() - start
    finally:
        rpc.close()
    return elapsed, sum(len(rows) for rows in result.values())


def owned_rows_as_inserts(path: str, vendor: str, tables: list[str]) -> list[Obj]:
    """Every row of `vendor` in `tables`, read back and turned into insert operations (references
    between them as named uuids), plus the mutations that hang router children on their routers
    by name: the same rows, ready to be written into a fresh NB in one transaction."""
    rpc = Rpc(path)
    try:
        where = [["external_ids", "includes", ["map", [["vendor", vendor]]]]]
        rows: dict[str, tuple[str, Obj]] = {}
        for table in tables:
            reply = rpc.transact([{"op": "select", "table": table, "where": where}])
            for row in reply[0]["rows"]:
                rows[row["_uuid"][1]] = (table, row)
        routers = rpc.transact([{"op": "select", "table": "Logical_Router", "where": [],
                                 "columns": ["name", "policies", "static_routes", "ports"]}])
    finally:
        rpc.close()
    names = {uuid: f"r{i}" for i, uuid in enumerate(rows)}

    def named(value: Any) -> Any:
        if isinstance(value, list) and len(value) == 2 and value[0] == "uuid" \
                and value[1] in names:
            return ["named-uuid", names[value[1]]]
        if isinstance(value, list):
            return [named(v) for v in value]
        return value

    ops: list[Obj] = []
    for uuid, (table, row) in rows.items():
        cols = {c: named(v) for c, v in row.items() if c not in _READ_ONLY}
        if table == "BFD":
            cols.pop("status", None)  # northd's column
        ops.append({"op": "insert", "table": table, "uuid-name": names[uuid], "row": cols})
    for router in routers[0]["rows"]:
        mutations = []
        for column in ("policies", "static_routes", "ports"):
            kids = [named(u) for u in _set(router[column]) if u[1] in names]
            if kids:
                mutations.append([column, "insert", ["set", kids]])
        if mutations:
            ops.append({"op": "mutate", "table": "Logical_Router",
                        "where": [["name", "==", router["name"]]], "mutations": mutations})
    return ops


def _set(value: Any) -> list[Any]:
    if isinstance(value, list) and value and value[0] == "set":
        return list(value[1])
    return [value] if value else []
