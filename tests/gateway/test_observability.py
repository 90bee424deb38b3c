"""`vegd gateway run` with spec.observability on: translation records of a client's TCP
connections through the gateway, conntrack NAT metrics on /metrics, the rate limit's drops
counted exactly, and settings reloaded from the file without a restart.

Connections end in conntrack when the kernel removes their entry (TIME_WAIT expiry, reaped by
conntrack's garbage collector up to about a minute later); the tests end them at once by
flushing the gateway namespace's conntrack table, which produces the same DESTROY events.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from nslab import Lab, Topology, in_netns
from ovnstack import wait_for
from pyroute2 import NFCTSocket

from vegd.gateway import ctevents

pytestmark = pytest.mark.netns

SERVER, PORT = "203.0.113.10", 8080
CLIENT, GATEWAY_EXTERNAL = "10.0.1.10", "198.51.100.2"
SERVER6, CLIENT6, GATEWAY_EXTERNAL6 = "2001:db8:203::10", "fd00:1::10", "2001:db8:100::2"
LISTEN = "127.0.0.1:10669"
FLOW = 'family="ipv4",nat_type="snat",protocol="tcp"'


def http_get(ns: str, path: str) -> tuple[int, str]:
    with in_netns(ns):
        try:
            with urllib.request.urlopen(f"http://{LISTEN}{path}", timeout=2) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""


def metric(ns: str, name: str) -> float:
    code, body = http_get(ns, "/metrics")
    assert code == 200, body
    match = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def config(**log: object) -> str:
    return json.dumps({"version": 1, "namespace": "default", "gateway": "gw1", "observability": {
        "conntrack": {"metrics": {"enabled": True}, "log": log}}})


class Agent:
    def __init__(self, lab: Lab, topo: Topology, settings: str, *extra: str) -> None:
        self.lab, self.topo = lab, topo
        self.config = topo.state_dir / "observability.json"
        self.config.write_text(settings)
        self.stream = topo.state_dir / "records.jsonl"
        with open(self.stream, "wb") as out, open(topo.state_dir / "agent.log", "wb") as err:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", topo.gw, sys.executable, "-m", "vegd", "gateway", "run",
                 *topo.flags("--listen", LISTEN, "--check-interval", "1",
                             "--observability-config", str(self.config),
                             "--pod-name", "gw1-abc", "--pod-namespace", "default",
                             "--node-name", "node-1", *extra)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=Path.cwd())
        lab.procs.append(self.proc)
        wait_for(lambda: http_get(topo.gw, "/readyz")[0] == 200, 15, what="agent ready")

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.read_text().splitlines()
                if line.startswith("{")]

    def records(self, event: str | None = None) -> list[dict]:
        return [r for r in self.lines() if r.get("type") == "translation"
                and (event is None or r["event"] == event)]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)


def listener(topo: Topology, family: int = 4) -> socket.socket:
    with in_netns(topo.ext):
        srv = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6,
                            socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((SERVER if family == 4 else SERVER6, PORT))
    srv.listen(128)
    srv.settimeout(5)
    return srv


@pytest.fixture
def server(topo: Topology) -> Iterator[socket.socket]:
    with listener(topo) as srv:
        yield srv


def connections(topo: Topology, srv: socket.socket, n: int, payload: int = 1000) -> list[int]:
    """n TCP connections client -> server (of the server's family), each with a reply; their
    client ports."""
    v6 = srv.family == socket.AF_INET6
    ports = []
    for _ in range(n):
        with in_netns(topo.client):
            conn = socket.socket(srv.family, socket.SOCK_STREAM)
        with conn:
            conn.settimeout(5)
            conn.bind((CLIENT6 if v6 else CLIENT, 0))
            conn.connect((SERVER6 if v6 else SERVER, PORT))
            ports.append(conn.getsockname()[1])
            accepted, _ = srv.accept()
            with accepted:
                accepted.sendall(b"x" * payload)
                got = 0
                while got < payload:
                    got += len(conn.recv(65536))
    return ports


def end_all(topo: Topology) -> None:
    """End every connection of the gateway now (DESTROY events, as on expiry)."""
    with in_netns(topo.gw):  # pyroute2 opens its socket lazily: use it inside too
        ct = NFCTSocket()
        try:
            ct.flush()
        finally:
            ct.close()


def listening(topo: Topology) -> bool:
    return metric(topo.gw, "vegd_gateway_conntrack_events_listening") == 1


def test_records_start_and_end_with_the_pods_tuple_and_the_gateways_address(
        lab: Lab, topo: Topology, server: socket.socket) -> None:
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    agent = Agent(lab, topo, config(enabled=True))
    wait_for(lambda: listening(topo), 10, what="conntrack events")
    started = metric(topo.gw, f"vegd_gateway_conntrack_nat_flows_started_total{{{FLOW}}}")
    ports = connections(topo, server, 5)
    end_all(topo)
    wait_for(lambda: {r["original"]["sourcePort"] for r in agent.records("end")} >= set(ports),
             10, what="end records of the 5 connections")
    for event in ("start", "end"):
        mine = [r for r in agent.records(event) if r["original"]["sourcePort"] in ports]
        assert len(mine) == 5
        for r in mine:
            assert r["schema"] == "vegd.translation/v1"
            assert (r["namespace"], r["gateway"], r["pod"], r["node"]) == \
                ("default", "gw1", "gw1-abc", "node-1")
            assert (r["family"], r["protocol"], r["natType"]) == ("ipv4", "tcp", "snat")
            assert r["original"]["source"] == CLIENT
            assert (r["original"]["destination"], r["original"]["destinationPort"]) == \
                (SERVER, PORT)
            assert r["translated"]["source"] == GATEWAY_EXTERNAL
            assert (r["translated"]["destination"], r["translated"]["destinationPort"]) == \
                (SERVER, PORT)
            assert isinstance(r["conntrackID"], int) and r["conntrackID"] > 0
            if event == "end":  # accounting was switched on by setup
                assert r["counters"]["reply"]["bytes"] >= 1000
                assert r["counters"]["original"]["packets"] >= 3
            else:
                assert "counters" not in r
    assert {r["conntrackID"] for r in agent.records("start") if r["original"]["sourcePort"]
            in ports} == {r["conntrackID"] for r in agent.records("end")
                          if r["original"]["sourcePort"] in ports}
    # the NAT metrics grew with the traffic
    assert metric(topo.gw, f"vegd_gateway_conntrack_nat_flows_started_total{{{FLOW}}}") \
        >= started + 5
    assert metric(topo.gw, f"vegd_gateway_conntrack_nat_flows_ended_total{{{FLOW}}}") >= 5
    assert metric(topo.gw, f'vegd_gateway_conntrack_nat_bytes_total{{direction="reply",{FLOW}}}'
                  ) >= 5000
    assert metric(topo.gw, "vegd_gateway_conntrack_accounting_available") == 1
    assert metric(topo.gw, 'vegd_gateway_translation_records_dropped_total{reason="rate_limit"}'
                  ) == 0
    agent.stop()
    assert agent.proc.returncode == 0


def test_rate_limited_records_are_counted_exactly_and_summarised(
        lab: Lab, topo: Topology, server: socket.socket) -> None:
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    agent = Agent(lab, topo, config(enabled=True, rateLimit={"recordsPerSecond": 1, "burst": 3}))
    wait_for(lambda: listening(topo), 10, what="conntrack events")
    connections(topo, server, 20, payload=10)
    end_all(topo)
    offered = 40  # a start and an end event per connection

    def accounted() -> bool:
        written = metric(topo.gw, "vegd_gateway_translation_records_written_total")
        dropped = metric(topo.gw,
                         'vegd_gateway_translation_records_dropped_total{reason="rate_limit"}')
        return written + dropped >= offered

    wait_for(accounted, 10, what="every event written or counted")
    written = metric(topo.gw, "vegd_gateway_translation_records_written_total")
    dropped = metric(topo.gw, 'vegd_gateway_translation_records_dropped_total{reason="rate_limit"}')
    assert dropped == offered - written
    assert 3 <= written < offered  # the burst, and at most a few more while the test ran
    for reason in ("enobufs", "queue_full", "filter"):
        assert metric(topo.gw, f'vegd_gateway_translation_records_dropped_total{{reason='
                               f'"{reason}"}}') == 0
    agent.stop()
    assert len(agent.records()) == written
    summaries = [line for line in agent.lines() if line.get("type") == "summary"]
    assert summaries, "the stream says what it left out"
    assert sum(s["dropped"]["rate_limit"] for s in summaries) == dropped
    assert sum(s["written"] for s in summaries) == written


def test_settings_reload_in_place_and_filters_count_what_they_leave_out(
        lab: Lab, topo: Topology, server: socket.socket) -> None:
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    agent = Agent(lab, topo, json.dumps({"observability": {}}))  # all off
    assert metric(topo.gw, "vegd_gateway_conntrack_events_listening") == 0
    connections(topo, server, 2)
    assert agent.records() == []

    agent.config.write_text(config(enabled=True, events=["end"], filters={
        "exclude": [{"translated": {"destinationPorts": [{"start": PORT, "end": PORT}]}}]}))
    wait_for(lambda: listening(topo), 10, what="reloaded: conntrack events on")
    pid = agent.proc.pid
    end_all(topo)  # the two earlier connections end now, and are seen ending
    connections(topo, server, 3)
    end_all(topo)
    wait_for(lambda: metric(topo.gw, 'vegd_gateway_translation_records_dropped_total{'
                                     'reason="filter"}') >= 3, 10, what="filtered ends counted")
    assert agent.records() == []  # excluded, and start events were not asked for
    assert agent.proc.poll() is None and agent.proc.pid == pid
    assert metric(topo.gw, 'vegd_gateway_observability_config_reload_total{result="success"}') \
        == 2


def test_the_fast_decoder_agrees_with_pyroute2_on_kernel_messages(
        lab: Lab, topo: Topology, server: socket.socket) -> None:
    """vegd's struct decoder (ten times faster) and pyroute2's parser, on the same datagrams:
    starts and ends (with counters) of IPv4 TCP connections through the gateway."""
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    with in_netns(topo.gw):
        events = ctevents.EventSocket(timeout=0.2)
    try:
        connections(topo, server, 3)
        end_all(topo)
        datagrams = []
        while (data := events.recv()) is not None:
            datagrams.append(data)
    finally:
        events.close()
    fast = [e for d in datagrams for e in ctevents.decode(d)]
    reference = [e for d in datagrams for e in ctevents.decode_pyroute2(d)]
    assert fast == reference
    mine = [e for e in fast if e.original.source == CLIENT]
    assert sorted(e.event for e in mine) == ["end"] * 3 + ["start"] * 3
    assert all(e.counters_reply is not None for e in mine if e.event == "end")


def test_ipv6_connections_are_recorded_too(lab: Lab, topo: Topology) -> None:
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    agent = Agent(lab, topo, config(enabled=True))
    wait_for(lambda: listening(topo), 10, what="conntrack events")
    with listener(topo, 6) as srv:
        ports = connections(topo, srv, 2)
    end_all(topo)
    wait_for(lambda: len([r for r in agent.records() if r["family"] == "ipv6"]) >= 4, 10,
             what="IPv6 start and end records")
    mine = [r for r in agent.records() if r["original"].get("sourcePort") in ports
            and r["family"] == "ipv6"]
    assert sorted(r["event"] for r in mine) == ["end", "end", "start", "start"]
    for r in mine:
        assert (r["original"]["source"], r["translated"]["source"]) == (CLIENT6,
                                                                        GATEWAY_EXTERNAL6)
        assert r["translated"]["destination"] == SERVER6 and r["natType"] == "snat"
    assert metric(topo.gw, 'vegd_gateway_conntrack_nat_flows_started_total{family="ipv6",'
                           'nat_type="snat",protocol="tcp"}') >= 2


FLOODER = """
import socket, sys
for i in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.0.1.10", 10000 + i))
    s.sendto(b"x", ("203.0.113.10", 9))
    s.close()
"""


def test_kernel_buffer_overruns_are_counted_summarised_and_recovered(lab: Lab,
                                                                   topo: Topology) -> None:
    """The agent stopped (SIGSTOP) while 3000 new flows overrun a small event buffer: the overrun
    surfaces as ENOBUFS when it reads again, on /metrics and in the stream's summary, and the
    agent re-reads the conntrack table: every flow still gets its start record."""
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    agent = Agent(lab, topo, config(enabled=True, rateLimit={"recordsPerSecond": 100000,
                                                           "burst": 1000000}),
                  "--conntrack-buffer", "65536")
    wait_for(lambda: listening(topo), 10, what="conntrack events")
    agent.proc.send_signal(signal.SIGSTOP)
    try:
        flood = lab.run(topo.client, sys.executable, "-c", FLOODER, "3000")
        assert flood.returncode == 0, flood.stderr
    finally:
        agent.proc.send_signal(signal.SIGCONT)
    enobufs = 'vegd_gateway_translation_records_dropped_total{reason="enobufs"}'
    wait_for(lambda: metric(topo.gw, enobufs) >= 1, 10, what="the overrun counted")
    recovered = 'vegd_gateway_conntrack_events_recovered_total{event="start"}'
    wait_for(lambda: metric(topo.gw, "vegd_gateway_translation_records_written_total") >= 3000,
             20, what="a start record for every flow")
    found = metric(topo.gw, recovered)
    assert found >= 1  # events were lost, and found again in the table
    overruns = metric(topo.gw, enobufs)
    agent.stop()
    starts = [r for r in agent.records("start") if r["original"]["source"] == CLIENT]
    assert len(starts) == 3000
    assert sorted(r["original"]["sourcePort"] for r in starts) == list(range(10000, 13000))
    assert sum(1 for r in starts if r.get("recovered")) == found
    summaries = [line for line in agent.lines() if line.get("type") == "summary"]
    assert sum(s["dropped"]["enobufs"] for s in summaries) == overruns
