"""One JSON-RPC connection to the NB leader, for `vegd apply`'s one-shot path (nb/oneshot.py).

python-ovs streams, so `unix:`, `tcp:` and `ssl:` (with the files `configure_ssl` set) work as
for the IDL. Requests are sent and replies received in large chunks and decoded once with
`json.loads` (nb/jsonparse.py): python-ovs' `jsonrpc.Connection` reads 4 KB at a time and
re-slices its output buffer on every send, which costs seconds on a 100 MB read or write.
The leader check is python-ovs' own (`Idl.__check_server_db`): a clustered member that has not
joined, is disconnected from its cluster or is not the leader is skipped, and a relay too.
"""

from __future__ import annotations

import codecs
import errno
import itertools
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import ovs.poller
import ovs.stream

from vegd.nb.errors import ConnectionLost, NbTimeout, NbUnavailable
from vegd.nb.jsonparse import StdlibParser
from vegd.nb.remote import members

CHUNK = 1 << 20
RETRY_PAUSE = 0.5  # between two rounds over the members while none of them is the leader
_ids = itertools.count(1)


class RpcError(Exception):
    """A JSON-RPC error reply (the request itself was refused)."""


class Rpc:
    def __init__(self, stream: Any, member: str) -> None:
        self.stream = stream
        self.member = member
        self._pending = b""  # received bytes of the next message

    def close(self) -> None:
        self.stream.close()

    def call(self, method: str, params: list[Any], timeout: float,
             object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
        """The result of one request; NbTimeout after `timeout` s, ConnectionLost when the
        connection drops, RpcError for an error reply. `object_pairs_hook` is json.loads' (it
        builds the reply's objects: rows can be made as they are decoded)."""
        request_id = next(_ids)
        return self.exchange(json.dumps({"id": request_id, "method": method, "params": params},
                                        separators=(",", ":")).encode(), request_id, timeout,
                             object_pairs_hook)

    def prepared_transact(self, database: str, operations: Iterable[Any], timeout: float,
                          object_pairs_hook: Any = None) -> Any:
        """`transact` of operations encoded one by one into one buffer (the operations of a
        113,080-row write are never all in memory as objects)."""
        request_id = next(_ids)
        body = bytearray(b'{"id":%d,"method":"transact","params":%s' % (
            request_id, json.dumps([database]).encode()[:-1]))
        for op in operations:
            body += b","
            body += json.dumps(op, separators=(",", ":")).encode()
        body += b"]}"
        return self.exchange(body, request_id, timeout, object_pairs_hook)

    def exchange(self, request: bytes | bytearray, request_id: int, timeout: float,
                 object_pairs_hook: Any = None) -> Any:
        deadline = time.monotonic() + timeout
        self._send(request, deadline)
        while True:
            msg = self._receive(deadline, object_pairs_hook)
            if not isinstance(msg, dict):
                continue  # (the hook made it something else: not a JSON-RPC message)
            if msg.get("method") == "echo":  # the server's inactivity probe
                self._send(json.dumps({"id": msg.get("id"), "result": msg.get("params"),
                                       "error": None}).encode(), deadline)
            elif msg.get("id") == request_id:
                if msg.get("error") is not None:
                    raise RpcError(msg["error"])
                return msg.get("result")

    def _send(self, data: bytes | bytearray, deadline: float) -> None:
        view = memoryview(data)
        while view:
            sent = self.stream.send(view)
            if sent > 0:
                view = view[sent:]
            elif sent == -errno.EAGAIN or sent == 0:
                self._wait(deadline, send=True)
            else:
                raise ConnectionLost(f"{self.member}: {os.strerror(-sent)}")

    def _receive(self, deadline: float, hook: Any = None) -> Any:
        """One message. The bytes are kept in one buffer and decoded once: a 50 MB reply kept
        as the parser's 1 MB text parts was held twice, and glibc keeps the freed parts in its
        heap, where Python's allocator never reuses them (80 MB more peak RSS)."""
        parser = StdlibParser(keep_text=False)  # finds the end only
        buf = bytearray(self._pending)
        decoder = codecs.getincrementaldecoder("utf-8")()
        text = decoder.decode(self._pending)
        while True:
            if text:
                used = parser.feed(text)
                if parser.is_done():
                    rest = text[used:].encode() + decoder.getstate()[0]
                    end = len(buf) - len(rest)
                    self._pending = bytes(rest)
                    message = str(memoryview(buf)[:end], "utf-8")
                    del buf
                    try:
                        return json.loads(message, object_pairs_hook=hook)
                    except ValueError as exc:
                        raise ConnectionLost(f"{self.member}: bad JSON-RPC message: "
                                             f"{exc}") from None
            error, data = self.stream.recv(CHUNK)
            if error == errno.EAGAIN:
                text = ""
                self._wait(deadline, send=False)
                continue
            if error or not data:
                why = os.strerror(error) if error else "connection closed"
                raise ConnectionLost(f"{self.member}: {why}")
            buf += data
            text = decoder.decode(data)

    def _wait(self, deadline: float, send: bool) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise NbTimeout(f"{self.member} did not answer in time")
        poller = ovs.poller.Poller()
        self.stream.run()
        self.stream.run_wait(poller)
        if send:
            self.stream.send_wait(poller)
        else:
            self.stream.recv_wait(poller)
        poller.timer_wait(int(min(left, 1.0) * 1000) + 1)
        poller.block()


def _not_leader(rpc: Rpc, database: str, timeout: float) -> str:
    """Why this server may not be written through ("" when it may)."""
    try:
        result = rpc.call("transact", ["_Server", {
            "op": "select", "table": "Database", "where": [["name", "==", database]],
            "columns": ["model", "connected", "leader", "schema"]}], timeout)
    except RpcError:
        return ""  # a server without _Server (older than 2.9) is a standalone one
    rows = result[0].get("rows", [])
    if not rows:
        return f"the server does not have the {database} database"
    row = rows[0]
    if row["model"] == "clustered":
        if row["schema"] == ["set", []]:
            return "the clustered server has not joined its cluster yet"
        if not row["connected"]:
            return "the clustered server is disconnected from its cluster"
        if not row["leader"]:
            return "the clustered server is not the cluster leader"
    elif row["model"] == "relay":
        return "a relay server cannot be written through"
    return ""


def connect_leader(remote: str, database: str, timeout: float) -> Rpc:
    """A connection to the first member of `remote` that may be written through (the leader of a
    cluster), trying every member again until `timeout` s have passed."""
    deadline = time.monotonic() + timeout
    failures: dict[str, str] = {}
    while True:
        for member in members(remote):
            left = deadline - time.monotonic()
            error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(member),
                                                         max(1, int(left * 1000)))
            if error or stream is None:
                failures[member] = os.strerror(error) if error else "no connection"
                continue
            rpc = Rpc(stream, member)
            try:
                why = _not_leader(rpc, database, max(left, 0.1))
            except NbUnavailable as exc:
                why = str(exc)
            if not why:
                return rpc
            rpc.close()
            failures[member] = why
        if time.monotonic() + RETRY_PAUSE >= deadline:
            raise NbUnavailable(f"cannot connect to {remote}: "
                                + "; ".join(f"{m}: {w}" for m, w in failures.items()))
        time.sleep(RETRY_PAUSE)  # a retry pause (an election takes ~1 s), not a synchronisation
