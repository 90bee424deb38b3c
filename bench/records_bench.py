"""How many new SNAT connections per second one `vegd gateway run` records without loss.

Builds the gateway test lab (tests/gateway/nslab.py: client -> vpc -> gateway -> external, all in
network namespaces made here), runs the agent with conntrack logging on (rate limit at its
maximum, records to a file), and offers new UDP flows (a distinct 4-tuple each: one datagram,
one conntrack entry, one SNAT) from a separate generator process at increasing rates. For each
step it prints the rate the generator achieved (the floor: what could be offered in this run),
the start records written, the losses counted by the agent (ENOBUFS overruns, queue full) and
the starts it found again by re-reading the conntrack table after an overrun.

Usage (root):  python bench/records_bench.py [RATE ...]   (default 1000 2000 4000 8000 16000)
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "gateway"))

from nslab import Lab, Topology, in_netns  # noqa: E402
from ovnstack import wait_for  # noqa: E402

LISTEN = "127.0.0.1:10669"
MASQUERADE = 'vegd_gateway_snat_rule_packets_total{kind="masquerade",cidr="10.0.1.0/24"}'
SECONDS = 3.0
GENERATOR = textwrap.dedent("""
    import socket, sys, time
    rate, seconds, base = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    sent, start = 0, time.monotonic()
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        due = int((now - start) * rate)
        while sent < due:
            i = base + sent
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("10.0.1.10", 10000 + i % 50000))
            s.sendto(b"x", ("203.0.113.10", 20000 + i // 50000))
            s.close()
            sent += 1
        time.sleep(0.001)
    print(sent, time.monotonic() - start)
""")


def metrics(ns: str) -> dict[str, float]:
    with in_netns(ns), urllib.request.urlopen(f"http://{LISTEN}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    out = {}
    for line in body.splitlines():
        m = re.match(r"^(vegd_gateway_[a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def key(name: str, reason: str = "") -> str:
    return f'{name}{{reason="{reason}"}}' if reason else name


ENOBUFS = key("vegd_gateway_translation_records_dropped_total", "enobufs")
QUEUE_FULL = key("vegd_gateway_translation_records_dropped_total", "queue_full")


def main(rates: list[float]) -> int:
    lab = Lab()
    try:
        topo = Topology(lab)
        # the external side drops the datagrams: no ICMP errors competing for the CPU
        lab.run(topo.ext, "nft", "-f", "-", stdin="table inet bench { chain input { "
                "type filter hook input priority 0; udp dport >= 20000 drop; } }\n")
        config = topo.state_dir / "observability.json"
        config.write_text('{"gateway": "bench", "observability": {"conntrack": {"log": {'
                          '"enabled": true, "events": ["start"], "rateLimit": {'
                          '"recordsPerSecond": 100000, "burst": 1000000}}}}}')
        records = topo.state_dir / "records.jsonl"
        with open(records, "wb") as out, open(topo.state_dir / "agent.log", "wb") as err:
            agent = subprocess.Popen(
                ["ip", "netns", "exec", topo.gw, sys.executable, "-m", "vegd", "gateway", "run",
                 *topo.flags("--listen", LISTEN, "--observability-config", str(config))],
                stdout=out, stderr=err, cwd=ROOT)
        lab.procs.append(agent)
        def listening() -> bool:
            try:
                return metrics(topo.gw).get("vegd_gateway_conntrack_events_listening") == 1
            except OSError:
                return False

        wait_for(listening, 20, what="agent listening")
        print(f"{'offered/s':>10} {'achieved/s':>10} {'sent':>8} {'arrived':>8} {'written':>8} "
              f"{'enobufs':>8} {'recovered':>9} {'queue':>6}  ratio written/arrived")
        base = 0
        first = metrics(topo.gw)
        for rate in rates:
            before = metrics(topo.gw)
            gen = lab.run(topo.client, sys.executable, "-c", GENERATOR, str(rate), str(SECONDS),
                          str(base), timeout=60)
            sent, elapsed = gen.stdout.split()
            offered = int(sent)
            base += offered

            # wait until the agent has caught up: every record written, or no progress
            last, still_since = -1.0, time.monotonic()
            while time.monotonic() - still_since < 5:
                now = metrics(topo.gw)["vegd_gateway_translation_records_written_total"]
                if now - before["vegd_gateway_translation_records_written_total"] >= \
                        metrics(topo.gw)[MASQUERADE] - before[MASQUERADE]:
                    break
                if now != last:
                    last, still_since = now, time.monotonic()
                time.sleep(0.2)
            after = metrics(topo.gw)
            d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
            written = int(d["vegd_gateway_translation_records_written_total"])
            enobufs = int(d[key("vegd_gateway_translation_records_dropped_total", "enobufs")])
            queue = int(d[key("vegd_gateway_translation_records_dropped_total", "queue_full")])
            found = int(d.get('vegd_gateway_conntrack_events_recovered_total{event="start"}', 0))
            # new SNAT connections at the gateway: the masquerade rule sees each one's first
            # packet only (the nat chain runs for new conntrack entries), so its packet counter
            # is exact; `sent` may be more when a veth backlog dropped a datagram on the way
            arrived = int(d[MASQUERADE])
            print(f"{rate:>10.0f} {offered / float(elapsed):>10.0f} {offered:>8} {arrived:>8} "
                  f"{written:>8} {enobufs:>8} {found:>9} {queue:>6}  {written / arrived:.3f}")
        # the whole run, once the agent is idle: re-reads after overruns land late, so the
        # steps above attribute them to later steps
        last, still_since = -1.0, time.monotonic()
        while time.monotonic() - still_since < 12:
            now = metrics(topo.gw)["vegd_gateway_translation_records_written_total"]
            if now != last:
                last, still_since = now, time.monotonic()
            time.sleep(0.5)
        total = metrics(topo.gw)
        arrived = int(total[MASQUERADE] - first[MASQUERADE])
        written = int(total["vegd_gateway_translation_records_written_total"])
        recovered = int(total.get('vegd_gateway_conntrack_events_recovered_total{event="start"}',
                                  0))
        print(f"total: {arrived} new SNAT flows arrived, {written} start records written "
              f"({recovered} of them recovered by re-reading the table), "
              f"{arrived - written} without a record; overruns {int(total[ENOBUFS])}, "
              f"queue full {int(total[QUEUE_FULL])}")
        return 0
    finally:
        lab.close()


if __name__ == "__main__":
    sys.exit(main([float(a) for a in sys.argv[1:]] or [1000, 2000, 4000, 8000, 16000]))
