"""End-to-end scenarios of issue 5 with vegd's rows and vegd's gateway agents: ECMP from several
pods, forward-only sources, scaling a gateway 2 -> 3 -> 2 by re-applying its manifests."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from ovnstack import wait_for

from .gateway import forwarded_packets
from .lab import PORT, SERVER4, build_egress_lab

pytestmark = [pytest.mark.netns, pytest.mark.dataplane]


def test_ecmp_spreads_connections_from_several_pods(dataplane, egress_rows):
    """Three gateways, three pods in the SNAT source: 40 TCP connections all succeed, every
    one is SNATed to a gateway's external address, and every gateway carries some."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=3, pods=3)
    egress_rows.apply(dp.stack, lab.spec())
    dp.wait_hv_sync()
    results = []
    for i, pod in enumerate(lab.pods):
        results += dp.tcp_connect(pod, SERVER4, PORT, count=14 if i < 2 else 12)
    split = lab.who(results)
    print(f"\nECMP split of 40 connections from 3 pods over 3 gateways: {split}")
    assert set(split) == {"gw1", "gw2", "gw3"}, split      # no failure, no foreign address
    assert sum(split.values()) == 40


def test_forward_only_sources_keep_their_address(dataplane, egress_rows):
    """A policy with snat: false: pod2 reaches the server through the gateways with its own
    address (the external network routes it back via gw1), while pod1, in the SNAT policy,
    still arrives as a gateway's external address."""
    dp = dataplane
    pod1_ip, pod2_ip = "192.168.0.10", "192.168.0.11"
    lab = build_egress_lab(dp, gateways=2, pods=2, snat_sources=[f"{pod1_ip}/32"],
                           forward_sources=[f"{pod2_ip}/32"])
    pod1, pod2 = lab.pods
    gw1, gw2 = lab.gateways
    # the external router knows the forward-only source is behind the gateways
    dp.exec(lab.ext, "ip", "route", "add", f"{pod2_ip}/32", "via", lab.external_ips(gw1)[0])
    egress_rows.apply(dp.stack, lab.spec())
    dp.wait_hv_sync()

    snat = lab.who(dp.tcp_connect(pod1, SERVER4, PORT, count=10))
    assert set(snat) <= {"gw1", "gw2"} and sum(snat.values()) == 10, snat

    before = {gw.name: forwarded_packets(dp, gw) for gw in (gw1, gw2)}
    forwarded = dp.tcp_connect(pod2, SERVER4, PORT, count=20)
    through = {gw.name: forwarded_packets(dp, gw) - before[gw.name] for gw in (gw1, gw2)}
    print(f"\nSNAT pod1: {snat}; forward-only pod2: {set(forwarded)}, packets forwarded by "
          f"each gateway {through}")
    assert forwarded == [pod2_ip] * 20, forwarded
    # it really went through the gateways, spread over both (vpc1's own default route leads
    # nowhere)
    assert through["gw1"] > 0 and through["gw2"] > 0, through


def test_scale_two_three_two(dataplane, vegd_rows):
    """Scale by re-applying the gateway's manifests, as the controller would after the
    Deployment changed. 2 -> 3: the third instance, running before it is added, carries
    traffic. 3 -> 2: the instance is removed from NB first and stops only once ovn-controller
    has the new flows; a prober opening a connection every 50 ms across the change sees no
    failure from the moment `vegd apply` returns, but at most one reset of a connection open
    while the flows changed (moved to another instance by the smaller group)."""
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=2)
    pod1, pod2 = lab.pods
    vegd_rows.apply(dp.stack, lab.spec())
    assert vegd_rows.run(dp.stack).changed() == 0     # the same manifests again: no change
    dp.wait_hv_sync()
    assert set(lab.who(dp.tcp_connect(pod1, SERVER4, PORT, count=20))) == {"gw1", "gw2"}

    # 2 -> 3
    gw3 = lab.add_gateway()
    vegd_rows.apply(dp.stack, lab.spec())
    assert vegd_rows.runs[-1].changed() == 1       # the policy's nexthops, updated in place
    dp.wait_hv_sync()
    results = dp.tcp_connect(pod1, SERVER4, PORT, count=20)
    results += dp.tcp_connect(pod2, SERVER4, PORT, count=20)
    up = lab.who(results)
    print(f"\nscale 2 -> 3: split of 40 connections {up}")
    assert set(up) == {"gw1", "gw2", "gw3"}, up

    # 3 -> 2 under a prober
    prober = dp.start_prober(pod1, SERVER4, PORT, interval=0.05, timeout=1.0)
    names = lab.gateway_by_external_ip()
    wait_for(lambda: {names.get(r) for _, r in prober.results} >= {"gw1", "gw2", "gw3"}, 20,
             interval=0.05, what="prober connections through all three gateways")
    t_apply = time.time()
    vegd_rows.apply(dp.stack, lab.spec(gateways=lab.gateways[:2]))
    t_applied = time.time()
    dp.wait_hv_sync()
    t_synced = time.time()
    lab.stop_gateway(gw3)                           # the pod terminates
    t_stopped = time.time()
    wait_for(lambda: sum(t > t_stopped for t, _ in prober.results) >= 20, 20, interval=0.05,
             what="20 connections after gw3 stopped")
    rows = prober.stop()
    # the select group loses a bucket: a connection open then may move between instances
    [moved] = prober.resets_in([(t_apply, t_synced)])
    moved_at = {t for t, _, _ in moved}
    after_apply = [(t, names.get(r, r)) for t, r in rows if t >= t_applied]
    after_stop = [who for t, who in after_apply if t >= t_stopped]
    print(f"scale 3 -> 2: apply {1000 * (t_applied - t_apply):.0f} ms, ovn-controller synced "
          f"{1000 * (t_synced - t_applied):.0f} ms later; after apply returned "
          f"{len(after_apply)} connections {dict(Counter(w for _, w in after_apply))}, "
          f"{sum(w.startswith('fail') for _, w in after_apply)} failed, "
          f"{len(moved)} reset while the path changed (from the apply on); "
          f"after gw3 stopped {dict(Counter(after_stop))}")
    assert len(moved) <= 1, moved
    assert not [(t, w) for t, w in after_apply
                if w not in ("gw1", "gw2", "gw3") and t not in moved_at], after_apply
    assert set(after_stop) <= {"gw1", "gw2"}, after_stop
    assert set(lab.who(dp.tcp_connect(pod2, SERVER4, PORT, count=20))) <= {"gw1", "gw2"}
