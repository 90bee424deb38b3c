"""/livez, /readyz and /metrics of the controller process.

Ready means the caches are synced: a standby is ready too (it must be able to take over), and
`vegd_active` tells which replica holds the NB lock.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(controller: Any, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/livez":
                self._answer(200 if controller.healthy else 503, "ok\n")
            elif self.path == "/readyz":
                ready = controller.cache.synced
                self._answer(200 if ready else 503, "ok\n" if ready else "caches not synced\n")
            elif self.path == "/metrics":
                self._answer(200, render_metrics(controller))
            else:
                self._answer(404, "not found\n")

        def _answer(self, code: int, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="vegd-health").start()
    return server


def render_metrics(controller: Any) -> str:
    s = controller.stats
    lines = [
        "# TYPE vegd_active gauge", f"vegd_active {int(s.active)}",
        "# TYPE vegd_reconciles_total counter", f"vegd_reconciles_total {s.reconciles}",
        "# TYPE vegd_reconcile_failures_total counter",
        f"vegd_reconcile_failures_total {s.failures}",
        "# TYPE vegd_resyncs_total counter", f"vegd_resyncs_total {s.resyncs}",
        "# TYPE vegd_queue_depth gauge", f"vegd_queue_depth {len(controller.queue)}",
        "# TYPE vegd_nb_transactions_total counter",
        f"vegd_nb_transactions_total {controller.ctx.nb.transactions}",
        "# TYPE vegd_caches_synced gauge", f"vegd_caches_synced {int(controller.cache.synced)}",
        # gateways (and VPC BFD ports) held off: another controller (NB vendor) runs them
        "# TYPE vegd_foreign_gateways gauge",
        f"vegd_foreign_gateways {_foreign(controller, gateways=True)}",
        "# TYPE vegd_foreign_vpcs gauge", f"vegd_foreign_vpcs {_foreign(controller, False)}",
    ]
    return "\n".join(lines) + "\n"


def _foreign(controller: Any, gateways: bool) -> int:
    held = getattr(controller.reconciler, "foreign", {})
    return sum(1 for k in held if k.startswith("vpc:") != gateways)
