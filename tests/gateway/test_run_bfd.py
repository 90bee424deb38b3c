"""`vegd gateway run` with a real FRR bfdd peer standing in for OVN's BFD port.

One story, in order: session up -> peer killed -> down within detection time (on /metrics) ->
peer back -> up -> the agent's bfdd killed -> restarted by the agent -> up -> a peer deleted
behind the agent's back -> re-applied -> SIGTERM -> the namespace is back to its initial state.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from nslab import Lab, Topology, dump, in_netns
from ovnstack import alive, wait_for
from prometheus_client.parser import text_string_to_metric_families

from vegd.gateway.bfdd import control_socket_args

pytestmark = [pytest.mark.netns, pytest.mark.frr, pytest.mark.slow]

BFDD = Path("/usr/lib/frr/bfdd")
TX_MS, MULT = 200, 3
PEER, LOCAL = "10.255.255.255", "192.168.0.2"
LISTEN = "127.0.0.1:10669"
SESSION_UP = "vegd_gateway_bfd_session_up"
SESSION = {"peer": PEER, "local": LOCAL}


def http_get(ns: str, path: str) -> tuple[int, str]:
    with in_netns(ns):
        try:
            with urllib.request.urlopen(f"http://{LISTEN}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""


def samples(ns: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, body = http_get(ns, "/metrics")
    if code != 200:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def metric(ns: str, name: str, **labels: str) -> float | None:
    return samples(ns).get((name, tuple(sorted(labels.items()))))


def up(ns: str) -> float | None:
    return metric(ns, SESSION_UP, **SESSION)


def start_peer(lab: Lab, topo: Topology, directory: Path) -> int:
    """FRR bfdd in the vpc namespace, peering from the BFD port IP as OVN does."""
    directory.mkdir(exist_ok=True)
    (directory / "bfdd.conf").write_text(
        f"bfd\n peer {LOCAL} local-address {PEER}\n  receive-interval {TX_MS}\n"
        f"  transmit-interval {TX_MS}\n  detect-multiplier {MULT}\n !\n!\n")
    frr = pwd.getpwnam("frr")  # FRR daemons drop to this user and must own their files
    for item in (directory, *directory.iterdir()):
        os.chown(item, frr.pw_uid, frr.pw_gid)
    proc = lab.popen(topo.vpc, str(BFDD), "-N", "vgwpeer", "-f", str(directory / "bfdd.conf"),
                     "-i", str(directory / "bfdd.pid"), "-z", str(directory / "zserv.api"),
                     "--vty_socket", str(directory), "-P", "0",
                     *control_socket_args(BFDD, directory),
                     "--log", f"file:{directory / 'bfdd.log'}")
    return proc.pid


@pytest.mark.skipif(not BFDD.exists(), reason="FRR bfdd is not installed")
def test_run_supervises_bfdd_and_reports(lab: Lab, topo: Topology) -> None:
    before = dump(lab, topo.gw)
    peer_dir = lab.tempdir() / "peer"
    agent = lab.popen(topo.gw, sys.executable, "-m", "vegd",
                      "gateway", "run", *topo.flags(
                          "--bfd-peers", PEER, "--bfd-min-tx", str(TX_MS),
                          "--bfd-min-rx", str(TX_MS), "--bfd-multiplier", str(MULT),
                          "--bfd-poll-interval", "0.05", "--check-interval", "0.5",
                          "--listen", LISTEN),
                      log=topo.state_dir / "agent.log")
    wait_for(lambda: http_get(topo.gw, "/readyz")[0] == 200, 15, what="agent ready")
    assert http_get(topo.gw, "/livez")[0] == 200
    # Ready with the BFD session down: BFD is reported, it does not gate readiness.
    assert up(topo.gw) == 0

    start_peer(lab, topo, peer_dir)
    wait_for(lambda: up(topo.gw) == 1, 15, what="BFD session up")
    peer_pid = int((peer_dir / "bfdd.pid").read_text())

    os.kill(peer_pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: up(topo.gw) == 0, 10, interval=0.01, what="BFD session down")
    detected = time.monotonic() - t0
    print(f"BFD down on /metrics {detected * 1000:.0f} ms after the peer was killed "
          f"(detection time {TX_MS * MULT} ms)")
    assert detected < TX_MS * MULT / 1000 + 1.0
    assert metric(topo.gw, "vegd_gateway_bfd_session_state", **SESSION, state="down") == 1
    assert metric(topo.gw, "vegd_gateway_bfd_session_transitions_total", **SESSION) >= 2
    assert http_get(topo.gw, "/readyz")[0] == 200

    wait_for(lambda: not alive(peer_pid), 5, what="peer bfdd gone")
    start_peer(lab, topo, peer_dir)
    wait_for(lambda: up(topo.gw) == 1, 15, what="BFD session up again")

    # Kill the agent's own bfdd: it is restarted and the session comes back.
    gw_pidfile = topo.state_dir / "frr" / "bfdd.pid"
    gw_bfdd = int(gw_pidfile.read_text())
    os.kill(gw_bfdd, signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: metric(topo.gw, "vegd_gateway_bfdd_restarts_total") == 1, 10,
             what="bfdd restarted")
    # the restart counter moves when the agent starts the new bfdd; its pidfile follows shortly

    def replaced() -> int:
        text = gw_pidfile.read_text().strip() if gw_pidfile.exists() else ""
        pid = int(text) if text.isdigit() else 0
        return pid if pid and pid != gw_bfdd and alive(pid) else 0

    new_pid = wait_for(replaced, 10, what="the new bfdd's pidfile")
    assert new_pid != gw_bfdd and alive(new_pid)
    wait_for(lambda: up(topo.gw) == 1, 15, what="BFD up after bfdd restart")
    print(f"agent's bfdd killed -> restarted and session up in {time.monotonic() - t0:.2f} s")

    # Delete the peer behind the agent's back: the configuration is re-applied.
    deleted = lab.run(topo.gw, "vtysh", "--vty_socket", str(topo.state_dir / "frr"),
                      "-c", "configure terminal", "-c", "bfd",
                      "-c", f"no peer {PEER} local-address {LOCAL}")
    assert deleted.returncode == 0, deleted.stdout
    wait_for(lambda: (metric(topo.gw, "vegd_gateway_bfd_config_applies_total") or 0) >= 1, 10,
             what="peer re-applied")
    wait_for(lambda: up(topo.gw) == 1, 15, what="BFD up after re-apply")

    # Someone removes the SNAT table: the periodic check notices and puts it back.
    assert lab.run(topo.gw, "nft", "delete", "table", "inet", "vegd").returncode == 0
    wait_for(lambda: metric(topo.gw, "vegd_gateway_setup_applies_total") == 2, 10,
             what="setup repaired")
    assert lab.run(topo.gw, "nft", "list", "table", "inet", "vegd").returncode == 0

    # SNAT counters are exported (the rules exist even if no packet matched yet).
    assert metric(topo.gw, "vegd_gateway_snat_rule_packets_total", kind="masquerade",
                  cidr="10.0.1.0/24") is not None

    agent.send_signal(signal.SIGTERM)
    assert agent.wait(15) == 0
    wait_for(lambda: not alive(new_pid), 5, what="agent's bfdd stopped")
    assert dump(lab, topo.gw) == before


def test_run_with_bad_settings_starts_nothing(lab: Lab, topo: Topology) -> None:
    before = dump(lab, topo.gw)
    result = lab.vegd(topo.gw, "run", *topo.flags("--bfd-peers", PEER,
                                                  "--external-interface", "nope1"))
    assert result.returncode == 1
    assert "--external-interface: interface 'nope1' does not exist" in result.stderr
    assert dump(lab, topo.gw) == before
    assert not (topo.state_dir / "frr").exists()  # bfdd was never started


def test_run_failure_rolls_back(lab: Lab, topo: Topology) -> None:
    """A runtime failure after the setup (the HTTP port is taken) exits 2 and removes it all."""
    before = dump(lab, topo.gw)
    with in_netns(topo.gw):
        squatter = socket.socket()
    with squatter:
        squatter.bind(("127.0.0.1", 10669))
        squatter.listen(1)
        result = lab.vegd(topo.gw, "run", *topo.flags("--listen", LISTEN))
    assert result.returncode == 2, result.stderr
    assert "cannot run" in result.stderr
    assert dump(lab, topo.gw) == before
