"""/livez, /readyz and /metrics (Prometheus text format) on the standard library's http.server.

Readiness means "the network setup is in place"; BFD state is reported, never gating: OVN, not
the kubelet, decides from BFD whether this instance gets traffic, and a pod that is not Ready
because its BFD peer is away would only stop the rollout of the peer's fix.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from vegd.gateway import snat
from vegd.gateway.bfdd import Session

log = logging.getLogger(__name__)

CONNTRACK = Path("/proc/sys/net/netfilter")


@dataclass
class Status:
    """What the main loop knows; the HTTP threads read it under the lock."""

    nft_table: str
    liveness_timeout: float
    expected_peers: list[tuple[str, str]] = field(default_factory=list)
    ready: bool = False
    ready_reason: str = "starting"
    heartbeat: float = field(default_factory=time.monotonic)
    sessions: list[Session] | None = None
    bfdd_pid: int | None = None
    bfdd_restarts: int = 0
    bfd_config_applies: int = 0
    setup_applies: int = 0
    registry: CollectorRegistry | None = None  # more metrics (spec.observability), appended
    lock: threading.Lock = field(default_factory=threading.Lock)

    def live(self) -> bool:
        with self.lock:
            return time.monotonic() - self.heartbeat < self.liveness_timeout


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def render_metrics(status: Status) -> str:
    with status.lock:
        ready, sessions = status.ready, status.sessions
        bfdd_pid, restarts = status.bfdd_pid, status.bfdd_restarts
        applies, setup_applies = status.bfd_config_applies, status.setup_applies
        expected = list(status.expected_peers)
    out: list[str] = []

    def metric(name: str, kind: str, text: str, samples: Sequence[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    metric("vegd_gateway_ready", "gauge", "1 when forwarding, routes, rules and SNAT are in place",
           [("", 1 if ready else 0)])
    metric("vegd_gateway_setup_applies_total", "counter",
           "network setups applied (the first one, and repairs after drift)",
           [("", setup_applies)])
    if expected:
        by_key = {(s.peer, s.local): s for s in sessions or []}
        up, state = [], []
        for peer, local in expected:
            s = by_key.get((peer, local))
            current = s.status if s else ("unknown" if sessions is None else "missing")
            up.append((_labels(peer=peer, local=local), 1 if current == "up" else 0))
            state.append((_labels(peer=peer, local=local, state=current), 1))
        metric("vegd_gateway_bfd_session_up", "gauge", "1 when the BFD session to the peer is up",
               up)
        metric("vegd_gateway_bfd_session_state", "gauge",
               "BFD session state as bfdd reports it (up, down, init, adm-down; unknown when "
               "bfdd cannot be asked, missing when bfdd lacks the peer)", state)
        metric("vegd_gateway_bfdd_running", "gauge", "1 while the supervised bfdd runs",
               [("", 1 if bfdd_pid else 0)])
        metric("vegd_gateway_bfdd_restarts_total", "counter", "times bfdd was restarted",
               [("", restarts)])
        metric("vegd_gateway_bfd_config_applies_total", "counter",
               "BFD peers re-applied because they vanished from bfdd", [("", applies)])
    counters = snat.counters(status.nft_table) or []
    metric("vegd_gateway_snat_rule_packets_total", "counter",
           "packets matched by the agent's nftables rules (reset when the rules are re-applied)",
           [(_labels(kind=c.kind, cidr=c.cidr), c.packets) for c in counters])
    metric("vegd_gateway_snat_rule_bytes_total", "counter",
           "bytes matched by the agent's nftables rules",
           [(_labels(kind=c.kind, cidr=c.cidr), c.bytes) for c in counters])
    for name, file, text in (("vegd_gateway_conntrack_entries", "nf_conntrack_count",
                              "conntrack entries in the gateway's network namespace"),
                             ("vegd_gateway_conntrack_max", "nf_conntrack_max",
                              "conntrack table size")):
        with contextlib.suppress(OSError, ValueError):
            metric(name, "gauge", text, [("", int((CONNTRACK / file).read_text()))])
    extra = generate_latest(status.registry).decode() if status.registry is not None else ""
    return "\n".join(out) + "\n" + extra


class _Handler(BaseHTTPRequestHandler):
    status: Status  # set on the subclass made by serve()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/livez":
            ok = self.status.live()
            self._reply(200 if ok else 503, "ok\n" if ok else "main loop stalled\n")
        elif path == "/readyz":
            with self.status.lock:
                ok, reason = self.status.ready, self.status.ready_reason
            self._reply(200 if ok else 503, "ok\n" if ok else f"not ready: {reason}\n")
        elif path == "/metrics":
            try:
                body = render_metrics(self.status)
            except Exception as exc:  # a scrape must not kill the server thread
                log.exception("rendering metrics failed")
                self._reply(500, f"{exc}\n")
                return
            self._reply(200, body, "text/plain; version=0.0.4; charset=utf-8")
        else:
            self._reply(404, "not found\n")

    def _reply(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # probes every few seconds
        log.debug("http: " + format, *args)


class _DualStackServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True

    def server_bind(self) -> None:
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


class _V4Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(status: Status, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving in a daemon thread. An empty host means every address of both families."""
    handler = type("Handler", (_Handler,), {"status": status})
    server: ThreadingHTTPServer
    if not host:
        try:
            server = _DualStackServer(("::", port), handler)
        except OSError:  # IPv6 disabled in this namespace
            server = _V4Server(("0.0.0.0", port), handler)
    elif ":" in host:
        server = _DualStackServer((host, port), handler)
    else:
        server = _V4Server((host, port), handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("serving /livez /readyz /metrics on [%s]:%d", host or "::", server.server_port)
    return server
