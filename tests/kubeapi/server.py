"""HTTP front end of the test API server (http.server, one thread per connection, HTTP/1.1).

Routes follow the real server: ``/api/v1/...`` for the core group, ``/apis/<group>/<version>/...``
otherwise, ``namespaces/<ns>/`` for namespaced resources, ``/status`` and ``/scale``
subresources, discovery documents, ``/version`` and ``/healthz``. Watches are chunked
responses with one JSON event per line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from . import openapi, printing
from .resources import ResourceType
from .selectors import SelectorError, make_filter
from .store import ApiError, Event, Store, Watcher, bad_request

log = logging.getLogger(__name__)

VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.0-vegd-test",
           "gitCommit": "0" * 40, "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
           "goVersion": "go1.24.0", "compiler": "gc", "platform": "linux/amd64",
           "emulationMajor": "1", "emulationMinor": "34", "minCompatibilityMajor": "1",
           "minCompatibilityMinor": "33"}


def _not_found_path() -> ApiError:
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not "
                                 "found"}]})


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], api: KubeApiServer) -> None:
        self.api = api
        self.conns: set[socket.socket] = set()
        self.conns_lock = threading.Lock()
        super().__init__(addr, _Handler)
        if api.tls is not None:
            # HTTPS as a real API server serves it; the handshake happens in the request's
            # thread (on its first read), so a client that never completes it blocks no one
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*api.tls)
            self.socket = ctx.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            self.conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conns_lock:
            self.conns.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self.conns_lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    # ------------------------------------------------------------ plumbing

    def _send_json(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for w in getattr(self.server.api.store.request, "warnings", None) or []:
            self.send_header("Warning", '299 - "' + w.replace('"', '\\"') + '"')
        self.end_headers()
        self.wfile.write(data)

    def _send_maybe_table(self, rt: ResourceType, body: Any, q: dict[str, str]) -> None:
        """An object or a list, or the Table of it when the client asks for one."""
        table_version = printing.wants_table(self.headers.get("Accept", ""))
        if table_version is None:
            return self._send_json(200, body)
        if body.get("kind") == rt.list_kind:
            objs, meta = body["items"], body["metadata"]
        else:
            objs, meta = [body], {"resourceVersion": body["metadata"]["resourceVersion"]}
        tab = printing.table(rt, objs, meta, api_version=table_version,
                             include_object=q.get("includeObject") or "Metadata")
        g, _, v = table_version.partition("/")
        return self._send_json(200, tab, f"application/json;as=Table;v={v};g={g}")

    def _read_body(self) -> Any:
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            raise bad_request(f"invalid JSON body: {e}") from e

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        api = self.server.api
        api.requests += 1
        try:
            url = urlsplit(self.path)
            q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            with api.log_lock:
                api.request_log.append((method, url.path, q,
                                        self.headers.get("Authorization") or ""))
            body = self._read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else None
            if (api.fail_next and method != "GET") or api.fail_next_all:
                api.fail_next = api.fail_next_all = False
                raise ApiError(500, "InternalError", "injected failure")
            store = api.store
            store.request.field_validation = q.get("fieldValidation")
            store.request.warnings = []
            self._route(method, url.path, q, body)
        except ApiError as e:
            self._send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the test server: say so loudly
            log.exception("kubeapi: internal error on %s %s", method, self.path)
            with contextlib.suppress(OSError):
                self._send_json(500, ApiError(500, "InternalError", repr(e)).status())

    # ------------------------------------------------------------ routing

    def _route(self, method: str, path: str, q: dict[str, str], body: Any) -> None:
        api = self.server.api
        reg = api.store.registry
        parts = [p for p in path.split("/") if p]
        path = "/" + "/".join(parts)
        if method == "GET":
            if path in ("/healthz", "/livez", "/readyz"):
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            if path == "/version":
                return self._send_json(200, VERSION)
            if parts[:2] == ["openapi", "v3"]:
                if len(parts) == 2:
                    return self._send_json(200, openapi.index(reg))
                gv = parts[2:]
                doc = None
                if gv[:1] == ["api"] and len(gv) == 2:
                    doc = openapi.group_version_doc(reg, "", gv[1])
                elif gv[:1] == ["apis"] and len(gv) == 3:
                    doc = openapi.group_version_doc(reg, gv[1], gv[2])
                if doc is None:
                    raise _not_found_path()
                return self._send_json(200, doc)
            if parts == ["api"]:
                return self._send_json(200, reg.api_versions())
            if parts == ["apis"]:
                return self._send_json(200, reg.api_group_list())
            if parts == ["api", "v1"]:
                return self._send_json(200, reg.resource_list("", "v1"))
            if len(parts) == 2 and parts[0] == "apis":
                doc = reg.api_group(parts[1])
                if doc is None:
                    raise _not_found_path()
                return self._send_json(200, doc)
            if len(parts) == 3 and parts[0] == "apis":
                doc = reg.resource_list(parts[1], parts[2])
                if doc is None:
                    raise _not_found_path()
                return self._send_json(200, doc)
        if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 4 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _not_found_path()
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise _not_found_path()
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        rt = reg.get(group, version, plural)
        if rt is None:
            raise _not_found_path()
        if (ns is not None and not rt.namespaced) or (name is not None and rt.namespaced
                                                      and ns is None):
            raise _not_found_path()
        if sub is not None and not ((sub == "status" and rt.status)
                                    or (sub == "scale" and rt.scale)):
            raise _not_found_path()
        if name is None:
            return self._collection(method, rt, ns, q, body)
        return self._item(method, rt, ns, name, sub, q, body)

    def _collection(self, method: str, rt: ResourceType, ns: str | None, q: dict[str, str],
                    body: Any) -> None:
        store = self.server.api.store
        if method == "GET":
            try:
                pred = make_filter(q.get("labelSelector"), q.get("fieldSelector"), rt.fields)
            except SelectorError as e:
                raise bad_request(str(e)) from e
            if q.get("watch") in ("true", "1"):
                return self._watch(rt, ns, pred, q)
            limit = int(q["limit"]) if q.get("limit") else None
            return self._send_maybe_table(rt, store.list(rt, ns, pred, q.get("resourceVersion"),
                                                         q.get("resourceVersionMatch"), limit,
                                                         q.get("continue")), q)
        if method == "POST":
            if ns is None and rt.namespaced:
                raise _not_found_path()
            if not isinstance(body, dict):
                raise bad_request("the request body must be an object")
            return self._send_json(201, store.create(rt, ns, body, dry_run=bool(q.get("dryRun"))))
        if method == "DELETE":
            try:
                pred = make_filter(q.get("labelSelector"), q.get("fieldSelector"), rt.fields)
            except SelectorError as e:
                raise bad_request(str(e)) from e
            listed = store.list(rt, ns, pred)
            deleted = []
            for item in listed["items"]:
                with contextlib.suppress(ApiError):
                    deleted.append(store.delete(rt, item["metadata"].get("namespace"),
                                                item["metadata"]["name"], body)[1])
            return self._send_json(200, {"kind": rt.list_kind, "apiVersion": rt.api_version,
                                         "metadata": {"resourceVersion": str(store.rv)},
                                         "items": deleted})
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")

    def _item(self, method: str, rt: ResourceType, ns: str | None, name: str, sub: str | None,
              q: dict[str, str], body: Any) -> None:
        store = self.server.api.store
        dry = bool(q.get("dryRun"))
        if sub == "scale":
            if method == "GET":
                return self._send_json(200, store.get_scale(rt, ns, name))
            if method == "PUT":
                return self._send_json(200, store.update_scale(rt, ns, name, body or {}, dry))
            if method == "PATCH":
                ct = self.headers.get("Content-Type", "")
                return self._send_json(200, store.patch_scale(rt, ns, name, ct, body, dry))
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on scale")
        if method == "GET":
            return self._send_maybe_table(rt, store.get(rt, ns, name), q)
        if method == "PUT":
            if not isinstance(body, dict):
                raise bad_request("the request body must be an object")
            return self._send_json(200, store.update(rt, ns, name, body, sub, dry))
        if method == "PATCH":
            ct = self.headers.get("Content-Type", "")
            return self._send_json(200, store.patch(rt, ns, name, ct, body, sub, dry))
        if method == "DELETE" and sub is None:
            options = dict(body) if isinstance(body, dict) else {}
            if q.get("propagationPolicy"):
                options["propagationPolicy"] = q["propagationPolicy"]
            code, out = store.delete(rt, ns, name, options, dry or bool(options.get("dryRun")))
            return self._send_json(code, out)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported here")

    # ------------------------------------------------------------ watch

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, rt: ResourceType, ns: str | None, pred: Any, q: dict[str, str]) -> None:
        api = self.server.api
        store = api.store
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else api.watch_timeout
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        try:
            watcher, initial = store.open_watch(rt, ns, pred, q.get("resourceVersion"))
            error = None
        except ApiError as e:
            if e.code != 410:
                raise
            watcher, initial, error = None, [], e
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            if error is not None:
                self._chunk(json.dumps({"type": "ERROR", "object": error.status()}).encode()
                            + b"\n")
                self._chunk(b"")
                return
            assert watcher is not None
            self._stream(watcher, initial, timeout, bookmarks)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            if watcher is not None:
                store.close_watch(watcher)

    def _stream(self, watcher: Watcher, initial: list[tuple[str, dict[str, Any]]],
                timeout: float, bookmarks: bool) -> None:
        api = self.server.api
        store = api.store
        rt = watcher.rt

        def send(etype: str, obj: dict[str, Any]) -> None:
            self._chunk(json.dumps({"type": etype, "object": obj}).encode() + b"\n")

        if api.silence_watches:  # a half-open connection: nothing ever arrives, not even bookmarks
            api.silenced += 1
            self._hold_silently(watcher, timeout)
            return
        for etype, obj in initial:
            send(etype, obj)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + api.bookmark_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            wait = deadline - now
            if bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            try:
                item = watcher.queue.get(timeout=wait)
            except queue.Empty:
                if bookmarks and time.monotonic() >= next_bookmark:
                    with store.lock:  # nothing pending => store.rv is a safe resume point
                        rv = store.rv if watcher.queue.empty() else None
                    if rv is not None:
                        send("BOOKMARK", {"kind": rt.kind, "apiVersion": rt.api_version,
                                          "metadata": {"resourceVersion": str(rv)}})
                    next_bookmark = time.monotonic() + api.bookmark_interval
                continue
            if item == "abort":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            if item == "close":
                break
            assert isinstance(item, Event)
            seen = watcher.translate(item)
            if seen:
                self._chunk(item.line(seen[0]))
                if api.sent_log is not None:
                    with api.log_lock:
                        api.sent_log.write(f"{time.monotonic():.6f} {rt.kind} {item.rv}\n")
        store.close_watch(watcher)  # unregistered before the client can see the end
        self._chunk(b"")  # the terminating chunk: a clean end of the stream


    def _hold_silently(self, watcher: Watcher, timeout: float) -> None:
        """Keep the connection open and say nothing; only "abort" (stop()) ends it early."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = watcher.queue.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if item in ("abort", "close"):
                break
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class KubeApiServer:
    """The server: a Store served over HTTP on 127.0.0.1; stop() and start() keep the state."""

    def __init__(self, store: Store, port: int = 0, bookmark_interval: float = 1.0,
                 watch_timeout: float = 1800.0, tls: tuple[str, str] | None = None) -> None:
        self.store = store
        self.port = port
        self.tls = tls  # (certificate chain file, key file): serve HTTPS
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.requests = 0
        self.fail_next = False  # test hook: the next write answers 500
        self.fail_next_all = False  # test hook: the next request of any kind answers 500
        # test hook: watches opened while set send nothing at all (no events, no bookmarks) until
        # the server's timeout or stop(), like a connection a load balancer left half-open
        self.silence_watches = False
        self.silenced = 0  # watches held silently so far
        # every request as (method, path, query, Authorization header), for tests that check
        # what a client asked (tests/kubeapi/rbac.py turns them into RBAC verbs)
        self.request_log: list[tuple[str, str, dict[str, str], str]] = []
        self.log_lock = threading.Lock()
        # benchmarks: when each watch event went out, as "<CLOCK_MONOTONIC s> <kind> <rv>" lines
        # (a write's answer can reach its client before another thread sends the event)
        self.sent_log: TextIO | None = None
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> KubeApiServer:
        if self._httpd is not None:
            return self
        httpd = _HTTPServer(("127.0.0.1", self.port), self)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"kubeapi-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        self.store.drop_watches("abort")
        httpd.cut_connections()
        httpd.server_close()  # joins the request threads
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
