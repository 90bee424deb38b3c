"""The one HTTP endpoint of both processes (controller and gateway agent): /livez, /readyz and
/metrics.

/metrics is prometheus_client's own handler (content negotiation, OpenMetrics, gzip, `name[]`
filters) on the process's registry; /livez and /readyz answer from a callable, so each process
says what alive and ready mean. Address: an empty host listens on every address of both families
(one dual-stack socket, IPv4-only where IPv6 is disabled), otherwise on exactly that address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from prometheus_client import CollectorRegistry, MetricsHandler

log = logging.getLogger("vegd.probes")

# (ok, reason shown when not ok)
Check = Callable[[], tuple[bool, str]]


class _Handler(MetricsHandler):
    live: Check
    ready: Check

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            try:
                super().do_GET()
            except Exception as exc:  # a failing collector must not kill the server thread
                log.exception("rendering /metrics failed")
                self._reply(500, f"{exc}\n")
        elif path in ("/livez", "/readyz"):
            check = type(self).live if path == "/livez" else type(self).ready
            ok, reason = check()
            self._reply(200 if ok else 503, "ok\n" if ok else f"{reason}\n")
        else:
            self._reply(404, "not found\n")

    def _reply(self, code: int, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _V4Server(ThreadingHTTPServer):
    daemon_threads = True


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def serve(host: str, port: int, registry: CollectorRegistry, live: Check, ready: Check,
          name: str = "vegd-http") -> ThreadingHTTPServer:
    """Serve in a daemon thread until `shutdown()`; raises OSError when the address is taken."""
    handler = type("Handler", (_Handler,), {"registry": registry, "live": staticmethod(live),
                                            "ready": staticmethod(ready)})
    server: ThreadingHTTPServer
    if not host:
        try:
            server = _DualStackServer(("::", port), handler)
        except OSError:  # IPv6 disabled in this namespace
            server = _V4Server(("0.0.0.0", port), handler)
    elif ":" in host:
        server = _V6Server((host, port), handler)
    else:
        server = _V4Server((host, port), handler)
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    log.info("serving /livez /readyz /metrics on [%s]:%d", host or "::", server.server_port)
    return server


def stop(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
