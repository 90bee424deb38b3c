"""BFD failover on a real OVN data plane: how long from a gateway's death until every new
connection succeeds through the others, and where that time goes.

For each timer setting a fresh lab is built with tests/e2e (private NB/SB/northd, OVS userspace
datapath + ovn-controller, pods and gateways as namespaces, FRR bfdd in the gateways, the egress
rows written by the pluggable rows writer). Then, N times:

1. wait until every BFD session is up in NB and in FRR and nothing changed for --stable s, and
   a prober (a new TCP connection from each pod every --probe-ms) sees traffic through every
   gateway;
2. a quiet period (--quiet s) with the prober running: FRR session-down events, SB BFD status
   changes and failed connections count as flaps (stability);
3. kill one gateway (rotating; tests/e2e's lab.kill_gateway: agent and bfdd SIGKILLed, its
   forwarding dropped);
4. timestamps, all from this host's wall clock: with --capture the expiry of OVN's detection
   timer (the victim's last BFD packet + mult x TX), SB BFD status down (ovn-controller's
   detection), NB BFD status down (northd), first SB Logical_Flow change (northd), the route's
   OpenFlow table changed (ovn-controller; polled), and the failover: the start of the first
   connection after which all connections succeeded through the survivors (held --settle s);
5. revive the gateway (lab.revive_gateway) for the next run.

Timers are written TXxMULT (symmetric) or TX/RXxMULT in VpcEgressGateway terms: TX is the
instance's (FRR's) transmit-interval = spec.bfd.minTX, RX its receive-interval = spec.bfd.minRX.
OVN's BFD row then gets min_rx=TX, min_tx=RX (as vegd writes it). Prints figures, asserts nothing.

    sudo /work/venv/bin/python bench/failover.py --runs 10 --timers 300x3,100x3
    sudo /work/venv/bin/python bench/failover.py --runs 5 --timers 100/300x3 --capture --json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import ovnbuild
from failover_lab import FailoverLab, Timers
from failover_watch import status_transitions


@dataclass
class Run:
    timers: str
    run: int
    killed: str
    load1: float
    quiet_s: float = 0.0
    quiet_frr_down: int = 0          # FRR session-down events, all gateways, quiet period
    quiet_sb_changes: int = 0        # SB BFD status changes during the quiet period
    quiet_diag: list[str] = field(default_factory=list)  # FRR's diagnostic after a flap
    quiet_first_miss: str = ""       # the first gap on the wire longer than a detection time
    quiet_failed: int = 0            # failed connections during the quiet period
    sb_down_ms: float | None = None  # kill -> SB BFD down (ovn-controller's detection)
    expiry_ms: float | None = None   # kill -> last FRR packet of the victim + mult x tx
    detect_lag_ms: float | None = None  # that expiry -> SB BFD down (pinctrl's check + SB write)
    nb_down_ms: float | None = None  # kill -> NB BFD down (northd)
    lflow_ms: float | None = None    # kill -> first SB Logical_Flow change (northd)
    of_ms: float | None = None       # kill -> route's OpenFlow table changed (ovn-controller)
    failover_ms: float | None = None # kill -> first connection after which all succeed
    last_fail_ms: float | None = None
    after_kill: int = 0
    failed: int = 0
    via_dead: int = 0
    survivor_flap: bool = False      # a survivor's session went down during the measurement
    spoiled: str = ""                # sessions not all up right before the kill (a flap)
    ovn_tx_gaps: dict[str, float] = field(default_factory=dict)
    frr_tx_gaps: dict[str, float] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.failover_ms is not None and not self.survivor_flap and not self.spoiled


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(q / 100 * len(s)) - 1)]


def dist(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"n": len(values), "min": min(values), "median": statistics.median(values),
            "p95": pct(values, 95), "max": max(values)}


def gap_stats(gaps: list[float]) -> dict[str, float]:
    if not gaps:
        return {}
    return {"n": len(gaps), "median": round(statistics.median(gaps), 1),
            "p99": round(pct(gaps, 99), 1), "max": round(max(gaps), 1)}


def failover_point(rows: list[tuple[float, str]], t_kill: float, good: set[str],
                   ) -> tuple[float | None, float | None]:
    """(start of the first connection after which every connection went through `good`,
    start of the last bad one), both relative to t_kill in ms."""
    after = [(t, r) for t, r in rows if t >= t_kill]
    bad = [t for t, r in after if r not in good]
    last_bad = max(bad, default=t_kill)
    clean = [t for t, _ in after if t > last_bad]
    fo = (min(clean) - t_kill) * 1000 if clean else None
    return fo, ((last_bad - t_kill) * 1000 if bad else None)


def ms(t: float | None, t0: float) -> float | None:
    return None if t is None else round((t - t0) * 1000, 1)


def first_after(times: list[float], t0: float) -> float | None:
    later = [t for t in times if t >= t0]
    return min(later) if later else None


def first_miss(lab: FailoverLab, timers: Timers, t0: float, t1: float) -> str:
    """Who missed first in [t0, t1]: the earliest gap (seen on a gateway's wire) longer than
    the detection time of the side that waits for those packets. FRR expects OVN's packets
    within ovn_mult x rx, OVN expects FRR's within mult x tx."""
    misses = []
    for g in lab.gateways:
        pkts = lab.captures[g.name].packets_snapshot()
        for src, side, limit in ((lab.bfd_port_ip, "OVN->FRR", timers.ovn_mult * timers.rx),
                                 (g.ip, "FRR->OVN", timers.mult * timers.tx)):
            times = [t for t, s in pkts if s == src and t0 - 0.5 <= t <= t1]
            for a, b in itertools.pairwise(times):
                if (b - a) * 1000 > limit and b >= t0:
                    misses.append((a, f"{g.name} {side} gap {(b - a) * 1000:.0f} ms > {limit} "
                                      f"at {a - t0:+.1f} s"))
                    break
    if not misses:
        return "no gap over a detection time on the wire (delay inside OVS/pinctrl)"
    return min(misses)[1]


def unready_note(lab: FailoverLab) -> str:
    """What 60 s of sessions that never were all up at once looked like."""
    downs = lab.frr_down_counts()
    sb = {g.name: sum(s == "down" for _, s in status_transitions(lab.sb_bfd, "dst_ip", g.ip))
          for g in lab.gateways}
    return (f"sessions never all up at once in 60 s: FRR session-down {downs}, "
            f"SB BFD turned down {sb} times")


def one_run(lab: FailoverLab, timers: Timers, i: int, args: argparse.Namespace) -> Run:
    victim = lab.gateways[i % len(lab.gateways)]
    survivors = [g for g in lab.gateways if g is not victim]
    lab.wait_stable(args.stable)
    prober = lab.start_probers(interval=args.probe_ms / 1000, timeout=args.probe_timeout)
    try:
        lab.wait_traffic_everywhere(prober, timeout=20)
        run = Run(timers=timers.label, run=i + 1, killed="" if args.no_kill else victim.name,
                  load1=round(os.getloadavg()[0], 2))
        # quiet period: stability at these timers under the prober's load
        frr_before = lab.frr_down_counts()
        q0 = time.time()
        lab.wait_quiet(args.quiet)
        q1 = time.time()
        run.quiet_s = round(q1 - q0, 2)
        frr_after = lab.frr_down_counts()
        run.quiet_frr_down = sum(frr_after.get(k, 0) - v for k, v in frr_before.items())
        # FRR's last diagnostic tells who gave up: "control detection time expired" = FRR
        # missed OVN's packets; "neighbor signaled session down" = OVN missed FRR's
        run.quiet_diag = [f"{g.name}: {lab.frr_diagnostic(g)}" for g in lab.gateways
                          if frr_after.get(g.name, 0) > frr_before.get(g.name, 0)]
        run.quiet_sb_changes = sum(1 for g in lab.gateways
                                   for t, _ in status_transitions(lab.sb_bfd, "dst_ip", g.ip)
                                   if q0 <= t <= q1)
        run.quiet_failed = sum(1 for t, r in prober.results
                               if q0 <= t <= q1 and r.startswith("fail"))
        if lab.captures and run.quiet_frr_down + run.quiet_sb_changes:
            run.quiet_first_miss = first_miss(lab, timers, q0, q1)
        if lab.captures:   # transmit gaps in both directions, every gateway pooled
            run.ovn_tx_gaps = gap_stats([x for g in lab.gateways for x in lab.captures[
                g.name].gaps_ms(lab.bfd_port_ip, q0, q1)])
            run.frr_tx_gaps = gap_stats([x for g in lab.gateways for x in lab.captures[
                g.name].gaps_ms(g.ip, q0, q1)])

        if args.no_kill:
            return run
        run.spoiled = lab.not_up()   # a flap just before the kill: detection not measurable
        lab.flows.start()
        t_kill = lab.kill(victim)
        good = {g.ext_ip for g in survivors}

        def settled() -> bool:
            fo, _ = failover_point(prober.results, t_kill, good)
            rows = prober.results
            return fo is not None and rows[-1][0] - (t_kill + fo / 1000) >= args.settle

        deadline = time.time() + args.give_up
        while not settled() and time.time() < deadline:
            time.sleep(0.1)
        rows = prober.stop()
    finally:
        prober.stop()
        t_of = lab.flows.stop()

    fo, last_bad = failover_point(rows, t_kill, good)
    run.failover_ms = None if fo is None else round(fo, 1)
    run.last_fail_ms = None if last_bad is None else round(last_bad, 1)
    after = [r for t, r in rows if t >= t_kill]
    run.after_kill = len(after)
    run.failed = sum(r.startswith("fail") for r in after)
    run.via_dead = sum(r == victim.ext_ip for r in after)
    sb = [t for t, s in status_transitions(lab.sb_bfd, "dst_ip", victim.ip)
          if t >= t_kill and s != "up"]
    nb = [t for t, s in status_transitions(lab.nb_bfd, "dst_ip", victim.ip)
          if t >= t_kill and s != "up"]
    run.sb_down_ms = ms(min(sb, default=None), t_kill)
    if victim.name in lab.captures and sb:
        # when OVN's detection timer expired: the victim's last BFD packet + mult x its interval
        sent = [t for t, src in lab.captures[victim.name].packets_snapshot()
                if src == victim.ip and t <= t_kill + 0.05]
        if sent:
            expiry = max(sent) + timers.mult * timers.tx / 1000
            run.expiry_ms = ms(expiry, t_kill)
            run.detect_lag_ms = ms(min(sb), expiry)
    run.nb_down_ms = ms(min(nb, default=None), t_kill)
    lflows = [t for t, _, _ in lab.lflows.snapshot()]
    run.lflow_ms = ms(first_after(lflows, t_kill), t_kill)
    run.of_ms = ms(t_of, t_kill)
    t_end = rows[-1][0] if rows else time.time()
    run.survivor_flap = any(t_kill <= t <= t_end and s != "up"
                            for g in survivors
                            for t, s in status_transitions(lab.sb_bfd, "dst_ip", g.ip))
    lab.revive(victim)
    return run


def summarize(runs: list[Run]) -> dict[str, object]:
    clean = [r for r in runs if r.clean]

    def col(name: str) -> dict[str, float]:
        return dist([v for r in clean if (v := getattr(r, name)) is not None])

    return {
        "runs": len(runs), "clean": len(clean),
        "never": sum(r.failover_ms is None for r in runs),
        "survivor_flaps": sum(r.survivor_flap for r in runs),
        "spoiled": sum(bool(r.spoiled) for r in runs),
        "quiet_frr_down": sum(r.quiet_frr_down for r in runs),
        "quiet_sb_changes": sum(r.quiet_sb_changes for r in runs),
        "quiet_failed": sum(r.quiet_failed for r in runs),
        "quiet_s": round(sum(r.quiet_s for r in runs), 1),
        "load1": [r.load1 for r in runs],
        "failover_ms": col("failover_ms"), "sb_down_ms": col("sb_down_ms"),
        "nb_down_ms": col("nb_down_ms"), "lflow_ms": col("lflow_ms"), "of_ms": col("of_ms"),
        "expiry_ms": col("expiry_ms"), "detect_lag_ms": col("detect_lag_ms"),
    }


def fmt(d: dict[str, float]) -> str:
    if not d:
        return "-"
    return (f"{d['min']:.0f} / {d['median']:.0f} / {d['p95']:.0f} / {d['max']:.0f} ms"
            f" (n={d['n']})")


def print_run(r: Run) -> None:
    def v(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f}"

    gaps = ""
    if r.ovn_tx_gaps:
        gaps = (f" | OVN tx gaps med/p99/max {r.ovn_tx_gaps['median']}/{r.ovn_tx_gaps['p99']}/"
                f"{r.ovn_tx_gaps['max']} FRR {r.frr_tx_gaps.get('median')}/"
                f"{r.frr_tx_gaps.get('p99')}/{r.frr_tx_gaps.get('max')}")
    who = f"kill {r.killed}" if r.killed else "no kill"
    print(f"  [{r.timers} #{r.run} {who} load {r.load1}] quiet {r.quiet_s:.0f}s: "
          f"frr-down {r.quiet_frr_down} sb-changes {r.quiet_sb_changes} "
          f"failed {r.quiet_failed}{gaps}"
          + (f" | {'; '.join(r.quiet_diag)}" if r.quiet_diag else "")
          + (f" | first miss: {r.quiet_first_miss}" if r.quiet_first_miss else ""), flush=True)
    if not r.killed:
        return
    print(f"      expiry {v(r.expiry_ms)} (+{v(r.detect_lag_ms)})  SB down {v(r.sb_down_ms)}  "
          f"NB down {v(r.nb_down_ms)}  lflow {v(r.lflow_ms)}  "
          f"OpenFlow {v(r.of_ms)}  failover {v(r.failover_ms)} ms "
          f"(last failure {v(r.last_fail_ms)}; {r.failed}/{r.after_kill} failed, "
          f"{r.via_dead} via the dead gateway)"
          + ("  SURVIVOR FLAPPED" if r.survivor_flap else "")
          + (f"  SPOILED ({r.spoiled})" if r.spoiled else ""), flush=True)


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}" if values else "-"


def one_lab(label: str, args: argparse.Namespace, versions: dict[str, str],
            title: str) -> tuple[list[Run], str]:
    """One fresh lab for one timer setting on the OVN build now on PATH; its runs."""
    timers = Timers.parse(label, ovn_mult=args.ovn_mult)
    built = ", ".join(f"{k} {v}" for k, v in versions.items())
    print(f"== {title}: {timers.describe()}; {args.gateways} gateways, {args.pods} pod(s) "
          f"probing every {args.probe_ms:g} ms; load {os.getloadavg()[0]:.2f}; {built}",
          flush=True)
    runs: list[Run] = []
    note = ""
    with tempfile.TemporaryDirectory(prefix="vegd-failover-") as tmp:
        try:
            with FailoverLab(Path(tmp), timers, gateways=args.gateways, pods=args.pods,
                             rows=args.rows, gateway=args.gateway,
                             capture=args.capture) as lab:
                try:
                    lab.ready(timeout=60)
                except TimeoutError:   # flapping from the start: count it, no runs
                    note = unready_note(lab)
                    raise
                print(f"   lab up; all sessions up {lab.first_up_s:.1f} s after bfdd "
                      "start", flush=True)
                for i in range(args.runs):
                    try:
                        r = one_run(lab, timers, i, args)
                    except TimeoutError as e:   # sessions that never settle: unstable
                        note = f"run {i + 1} aborted: {e}"
                        print(f"  [{timers.label} #{i + 1}] aborted: {e}", flush=True)
                        break
                    runs.append(r)
                    print_run(r)
        except TimeoutError as e:
            note = note or f"lab never ready: {e}"
            print(f"   {note}", flush=True)
    return runs, note


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="kills per timer setting")
    ap.add_argument("--timers", default="300x3,100x3",
                    help="comma-separated TXxMULT or TX/RXxMULT (VEG minTX/minRX, ms)")
    ap.add_argument("--gateways", type=int, default=2)
    ap.add_argument("--pods", type=int, default=1, help="pods, one prober each")
    ap.add_argument("--probe-ms", type=float, default=20.0, help="ms between new connections")
    ap.add_argument("--probe-timeout", type=float, default=0.4)
    ap.add_argument("--stable", type=float, default=5.0,
                    help="s without any session change before a run starts (a revived "
                         "instance's flaps on its way up are recovery, not steady state)")
    ap.add_argument("--quiet", type=float, default=10.0, help="s of stability check per run")
    ap.add_argument("--settle", type=float, default=2.0,
                    help="s of all-good connections that end a measurement")
    ap.add_argument("--give-up", type=float, default=15.0, help="s after the kill")
    ap.add_argument("--rows", default=os.environ.get("VEGD_E2E_ROWS", "vegd"),
                    help="rows writer: vegd (`vegd apply`) or hand (default $VEGD_E2E_ROWS "
                         "or vegd)")
    ap.add_argument("--gateway", default=os.environ.get("VEGD_E2E_GATEWAY", "vegd"),
                    choices=("vegd", "script"),
                    help="vegd: `vegd gateway run` supervises bfdd; script: shell setup + "
                         "bfdd (default $VEGD_E2E_GATEWAY or vegd)")
    ap.add_argument("--ovn-mult", type=int, default=0,
                    help="detect_mult of OVN's BFD rows if it should differ from FRR's "
                         "(--rows hand --gateway script only)")
    ap.add_argument("--capture", action="store_true",
                    help="tcpdump BFD in every gateway: transmit gaps in the quiet periods, "
                         "the victim's last packet (detection timer expiry)")
    ap.add_argument("--no-kill", action="store_true",
                    help="stability only: each run is a quiet period, nobody is killed")
    ap.add_argument("--json", action="store_true", help="print one JSON document at the end")
    ap.add_argument("--ovn", default=os.environ.get("VEGD_OVN", "host"),
                    help="comma-separated OVN builds (host, 23.03, 25.03; scripts/ovn-root), "
                         "run interleaved (default $VEGD_OVN or host)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the settings x builds sequence, --runs kills each time")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2

    builds = [b.strip() for b in args.ovn.split(",") if b.strip()]
    base_path = os.environ.get("PATH", "")
    results: dict[str, object] = {"host": os.uname().nodename, "started": time.ctime(),
                                  "args": vars(args), "settings": {}, "versions": {}}
    collected: dict[str, list[Run]] = {}
    notes: dict[str, list[str]] = {}
    # rounds x (timer settings x builds): every build sees the machine's load at about the
    # same time, which matters on a shared machine
    for rnd in range(args.rounds):
        for label in args.timers.split(","):
            for build in builds:
                os.environ["PATH"] = base_path
                ovnbuild.select_build(build)
                versions = ovnbuild.versions()
                results["versions"][build] = versions  # type: ignore[index]
                key = f"{build} {label}" if len(builds) > 1 else label
                runs, note = one_lab(label, args, versions, f"{key} round {rnd + 1}")
                collected.setdefault(key, []).extend(runs)
                if note:
                    notes.setdefault(key, []).append(note)
    os.environ["PATH"] = base_path
    for key, runs in collected.items():
        s = summarize(runs)
        s["note"] = "; ".join(notes.get(key, []))
        print(f"-> {key}: failover min/median/p95/max {fmt(s['failover_ms'])}; "  # type: ignore[arg-type]
              f"clean {s['clean']}/{s['runs']}, never {s['never']}, survivor flaps "
              f"{s['survivor_flaps']}, spoiled {s['spoiled']}; quiet {s['quiet_s']} s: "
              f"FRR session-down {s['quiet_frr_down']}, SB changes {s['quiet_sb_changes']}, "
              f"failed connections {s['quiet_failed']}; load {_span(s['load1'])}", flush=True)  # type: ignore[arg-type]
        for name in ("expiry_ms", "detect_lag_ms", "sb_down_ms", "nb_down_ms", "lflow_ms",
                     "of_ms"):
            print(f"   {name:<11} {fmt(s[name])}", flush=True)  # type: ignore[arg-type]
        if s["note"]:
            print(f"   note: {s['note']}", flush=True)
        results["settings"][key] = {  # type: ignore[index]
            "summary": s, "runs": [asdict(r) for r in runs]}
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
