"""spec.bandwidth enforced by the agent (tc tbf), measured with real TCP traffic through the
gateway's namespaces: each direction's throughput is within ±15% of its limit, and far above
it without one. Bounded transfers (a few MB), between namespaces this test made only."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from nslab import Lab, Topology, in_netns

pytestmark = pytest.mark.netns

SERVER, PORT = "203.0.113.10", 8081
CLIENT = "10.0.1.10"
EGRESS_MBPS, INGRESS_MBPS = 40, 24
CHUNK = 64 << 10


def receive(sock: socket.socket, out: dict[str, float]) -> None:
    """Read until EOF; the rate over first to last byte, in Mbit/s."""
    total, first, last = 0, 0.0, 0.0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        now = time.monotonic()
        first = first or now
        last = now
        total += len(data)
    out["bytes"] = total
    out["mbps"] = total * 8 / (last - first) / 1e6 if last > first else 0.0


def transfer(topo: Topology, nbytes: int, upload: bool) -> float:
    """Mbit/s of nbytes sent client -> server (upload: VEG egress) or server -> client."""
    with in_netns(topo.ext):
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with in_netns(topo.client):
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    result: dict[str, float] = {}
    with srv, conn:
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((SERVER, PORT))
        srv.listen(1)
        srv.settimeout(10)
        conn.settimeout(30)
        conn.bind((CLIENT, 0))
        conn.connect((SERVER, PORT))
        accepted, _ = srv.accept()
        with accepted:
            accepted.settimeout(30)
            sender, receiver = (conn, accepted) if upload else (accepted, conn)
            reader = threading.Thread(target=receive, args=(receiver, result))
            reader.start()
            payload = b"\0" * CHUNK
            for _ in range(nbytes // CHUNK):
                sender.sendall(payload)
            sender.shutdown(socket.SHUT_WR)
            reader.join(60)
    assert result["bytes"] == nbytes // CHUNK * CHUNK
    return result["mbps"]


def test_bandwidth_limits_hold_in_both_directions(lab: Lab, topo: Topology) -> None:
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    # without limits the path is much faster than either limit (the control)
    assert transfer(topo, 8 << 20, upload=True) > 3 * EGRESS_MBPS
    assert lab.vegd(topo.gw, "teardown", "--state-dir", str(topo.state_dir)).returncode == 0

    flags = topo.flags("--bandwidth-egress", str(EGRESS_MBPS),
                       "--bandwidth-ingress", str(INGRESS_MBPS))
    result = lab.vegd(topo.gw, "setup", *flags)
    assert result.returncode == 0, result.stderr
    up = transfer(topo, 12 << 20, upload=True)  # ~2.5 s at the limit
    print(f"measured: egress {up:.2f} Mbit/s (limit {EGRESS_MBPS}), ", end="")
    down = transfer(topo, 8 << 20, upload=False)
    print(f"ingress {down:.2f} Mbit/s (limit {INGRESS_MBPS})")
    assert abs(up - EGRESS_MBPS) <= 0.15 * EGRESS_MBPS, f"egress {up:.1f} Mbit/s"
    assert abs(down - INGRESS_MBPS) <= 0.15 * INGRESS_MBPS, f"ingress {down:.1f} Mbit/s"

    assert lab.vegd(topo.gw, "teardown", *flags).returncode == 0
    qdiscs = lab.run(topo.gw, "tc", "qdisc", "show").stdout
    assert "tbf" not in qdiscs, qdiscs
