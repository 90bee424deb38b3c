"""End-to-end: `vegd migrate` from Kube-OVN's NB rows to vegd's, and `--back`, under a prober.

The lab's two gateway instances carry vpc1's egress through rows shaped as Kube-OVN writes them
(kubeovn_rows.py: address sets, 29100 reroutes; with BFD also BFD rows, 29090 drops and a
Kube-OVN-style bfd@vpc1 port, whose sessions stock OVN never brings up). A pod opens a TCP
connection every 50 ms to the external server across `vegd migrate --apply` (adopt, vegd's rows,
for BFD: wait for vegd's sessions, remove Kube-OVN's rows) and across `--back`: none finds no
path, every one is SNATed by an instance; only a connection open at the instant the path changes
may be reset (it moved to the other instance), at most one per change.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import pytest
from kubeovn_rows import KubeOvnGateway, kube_ovn_rows, write_bfd_port, write_gateway
from ovnstack import wait_for

from vegd.cli import _parser
from vegd.migrate import run_migrate

from . import manifests
from .frr import have_frr
from .lab import PORT, SERVER4, build_egress_lab
from .rows import BfdSpec, VegdApplyRows

pytestmark = [pytest.mark.netns, pytest.mark.dataplane]

BFD = BfdSpec(min_tx=500, min_rx=500, detect_mult=3)


def _args(dp, directory, state, *extra) -> argparse.Namespace:
    return _parser().parse_args(["migrate", "-f", str(directory), "--nb-connection",
                                 dp.stack.nb_unix, "--sb-connection", dp.stack.sb_unix,
                                 "--state", str(state), *extra])


@pytest.mark.parametrize("bfd,selectors", [(False, False), (True, False), (False, True)],
                         ids=["no-bfd", "bfd", "selectors"])
def test_migration_and_back_without_a_failed_connection(dataplane, tmp_path, bfd, selectors):
    """selectors: the gateway selects the pod by label (no policies); Kube-OVN matches it
    through its Port_Group VEG.<h>, which the migration swaps for vegd's Address_Set
    VEG.<h>_ip4 in one transaction (and --back swaps back)."""
    if bfd and not have_frr():
        pytest.skip("FRR (bfdd, zebra, vtysh) is not installed")
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=1, bfd=BFD if bfd else None)
    pod = lab.pods[0]
    spec = lab.spec()
    # Kube-OVN's rows for the same gateway (timers as Kube-OVN writes them)
    if bfd:
        write_bfd_port(dp.stack, "vpc1", BFD.port_ip, [dp.chassis])
    write_gateway(dp.stack, KubeOvnGateway(
        spec.name, "vpc1", [] if selectors else list(lab.snat_sources), lab.internal_ips(),
        bfd=(BFD.min_tx, BFD.min_rx, BFD.detect_mult) if bfd else None,
        bfd_port="bfd@vpc1" if bfd else "", selected_ports=[pod.lsp] if selectors else []))
    dp.wait_hv_sync()
    assert set(lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=10))) <= {"gw1", "gw2"}

    writer = VegdApplyRows(workdir=tmp_path / "m")
    writer.specs[spec.name] = spec
    if bfd:
        writer.bfd_ports["vpc1"] = BFD.port_ip
    objects = writer.objects()
    if selectors:
        gw_spec = next(o for o in objects if o["kind"] == "VpcEgressGateway")["spec"]
        del gw_spec["policies"]
        gw_spec["selectors"] = [{"podSelector": {"matchLabels": {"app": pod.name}}}]
    directory = manifests.write(tmp_path / "manifests", objects)
    state = tmp_path / "state.json"

    # 3 s per connection: long enough for TCP to retransmit a SYN (after 1 s) that met
    # ovn-controller replacing flows, as any application's connect would; a connection whose
    # packets were split between two gateways, or that found no path, still fails
    prober = dp.start_prober(pod, SERVER4, PORT, interval=0.05, timeout=3.0, max_duration=300)
    wait_for(lambda: len(prober.results) >= 10, 20, interval=0.05, what="10 probes")
    t0 = time.time()
    assert run_migrate(_args(dp, directory, state, "--apply")) == 0
    t1 = time.time()
    dp.wait_hv_sync()
    t1_synced = time.time()
    assert not [r for r in kube_ovn_rows(dp.stack)["Logical_Router_Policy"]
                if "vpc-egress-gateway" in dict(r["external_ids"][1])]
    assert dp.stack.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")
    assert bool(kube_ovn_rows(dp.stack)["Port_Group"]) is False
    if selectors:  # the pod is matched through vegd's set of the Port_Group's SB name
        assert [r["addresses"] for r in dp.stack.nb_rows(
            "Address_Set", "external_ids:vendor=vegd") if r["name"].endswith("_ip4")] == \
            [pod.addr(4)]
    wait_for(lambda: sum(t > t1 for t, _ in prober.results) >= 20, 30, interval=0.05,
             what="20 probes after the migration")
    t2 = time.time()
    assert run_migrate(_args(dp, directory, state, "--back")) == 0
    t3 = time.time()
    dp.wait_hv_sync()
    t3_synced = time.time()
    assert not dp.stack.nb_rows("Logical_Router_Policy", "external_ids:vendor=vegd")
    assert len(kube_ovn_rows(dp.stack)["Port_Group"]) == (1 if selectors else 0)
    wait_for(lambda: sum(t > t3 for t, _ in prober.results) >= 20, 30, interval=0.05,
             what="20 probes after --back")
    prober.stop()
    names = lab.gateway_by_external_ip()
    during = [(t, e, names.get(r, r)) for t, e, r in prober.spans() if t >= t0 - 1]
    # the path can change once in each window: from NB's first write to the chassis' flows
    changes = [(t0, t1_synced), (t2, t3_synced)]
    per_change = prober.resets_in(changes)
    moved = [span for resets in per_change for span in resets]
    failed = [(t, e, r) for t, e, r in during
              if r not in ("gw1", "gw2") and (t, e, r) not in moved]
    print(f"\nbfd={bfd} selectors={selectors}: migrate {1000 * (t1 - t0):.0f} ms, "
          f"--back {1000 * (t3 - t2):.0f} ms; "
          f"{len(during)} connections from 1 s before the migration to the end: "
          f"{dict(Counter(r for _, _, r in during))}, {len(failed)} failed or not SNATed, "
          f"{len(moved)} reset while the path changed")
    when = [f"{r} from {t - t0:+.3f} to {e - t0:+.3f} s" for t, e, r in failed + moved]
    context = (f"the migration took {t1 - t0:.3f} s, its flows were on the chassis at "
               f"{t1_synced - t0:+.3f} s; --back began at {t2 - t0:+.3f} s, took {t3 - t2:.3f} s, "
               f"flows at {t3_synced - t0:+.3f} s: {when}")
    assert not failed, context
    assert max(map(len, per_change)) <= 1, \
        f"more than one reset in a change of path: {context}"
