"""End-to-end: every gateway instance down -> no packet of a source pod reaches the external
network with the pod's own address (docs/fail-closed.md), in the default VPC and in a custom VPC.

Each VPC gets a covering default route that really leads out: a "leak router" namespace bound to
the route's nexthop (vpc1: 192.168.0.254 on subnet1, a vpc-nat-gateway stand-in; ovn-cluster:
the node's join port 100.64.0.2) forwards, without translation, into the external network. A
counter in the external namespace (`iptables -t raw PREROUTING -s <pod>`) counts every packet
that arrives there with the pod's own source address; the pod counts what it sends.

Sequence: BFD up (traffic through the instances, SNATed) -> every instance killed (bfdd and
forwarding) while the pod keeps opening connections -> zero packets with the pod's address;
control: without vegd's 29090 drop the same traffic does leak (so the counter and the path work)
and `vegd apply` puts the drop back; recovery: one instance back -> traffic through it.
"""

from __future__ import annotations

import time

import pytest
from ovnstack import wait_for

from .dataplane import DataPlane, Netns
from .frr import have_frr
from .lab import PORT, SERVER4, EgressLab, build_egress_lab
from .rows import BfdSpec
from .topology import mac_for

pytestmark = [pytest.mark.netns, pytest.mark.dataplane, pytest.mark.frr]

LEAK_EXT_IP = "198.51.100.250"
BFD = BfdSpec(min_tx=500, min_rx=500, detect_mult=3)   # stable timers (test_dataplane_bfd.py)


def count(dp: DataPlane, ns: Netns, chain: str, table: str = "filter") -> int:
    """Packets counted by the target-less rule in chain (there is exactly one)."""
    out = dp.exec(ns, "iptables", "-t", table, "-nvxL", chain)
    rows = [line.split() for line in out.splitlines()[2:] if line.split()]
    assert len(rows) == 1, out
    return int(rows[0][0])


def add_leak_router(lab: EgressLab) -> Netns:
    """A namespace at the VPC's default-route nexthop that forwards into the external
    network untranslated, and the external network's way back to the pods through it."""
    dp = lab.dp
    if lab.vpc == "ovn-cluster":
        join = lab.default_vpc.join
        node_ip = lab.default_vpc.node_ip
        leak = dp.add_pod("leak", join.switch, mac_for(node_ip), [f"{node_ip}/16"],
                          lsp=f"node-{dp.chassis}", create_lsp=False)
        dp.exec(leak, "ip", "route", "add", lab.subnet.cidrs[0], "via", join.gateway(4))
    else:
        nexthop = "192.168.0.254"
        leak = dp.add_pod("leak", lab.subnet.switch, mac_for(nexthop), [f"{nexthop}/24"])
    dp.attach_external(leak, lab.ext, [f"{LEAK_EXT_IP}/24"])
    dp.exec(leak, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0")
    dp.exec(leak, "ip", "route", "add", "default", "via", "198.51.100.1", "dev", "net1")
    dp.exec(lab.ext, "ip", "route", "add", lab.subnet.cidrs[0], "via", LEAK_EXT_IP)
    dp.wait_port_up(leak.lsp)
    return leak


def wake_pinctrl(dp: DataPlane, pod: Netns) -> None:
    """Keep ovn-controller's pinctrl thread awake: TTL-1 pings (to TEST-NET-1, not the server)
    make the router answer "time exceeded" through pinctrl, one packet-in each. Stock 23.03's
    pinctrl only checks BFD timeouts when it wakes, and with every peer dead nothing else wakes
    it in this small lab: the sessions were marked down ~60 s after the kill instead of ~1.5 s
    (docs/fail-closed.md). The pings never pass the router (TTL), so they cannot leak."""
    dp.spawn(pod, "ping", "-q", "-t", "1", "-i", "0.2", "192.0.2.1")


def nb_bfd(dp: DataPlane, vpc: str) -> dict[str, str]:
    rows = dp.stack.nb_rows("BFD", f'logical_port="bfd@{vpc}"')
    return {r["dst_ip"]: r["status"] for r in rows}


def drop_rows(dp: DataPlane) -> list[str]:
    return [r["_uuid"] for r in dp.stack.nb_rows(
        "Logical_Router_Policy", "priority=29090", "action=drop",
        "external_ids:vpc-egress-gateway=default/egress1")]


@pytest.mark.parametrize("vpc", ["vpc1", "ovn-cluster"])
def test_every_instance_down_nothing_leaves_with_the_pod_address(dataplane, vegd_rows, vpc):
    if not have_frr():
        pytest.skip("FRR (bfdd, zebra, vtysh) is not installed")
    dp = dataplane
    lab = build_egress_lab(dp, gateways=2, pods=1, vpc=vpc, bfd=BFD)
    pod, gws = lab.pods[0], lab.gateways
    pod_ip = pod.addr(4)
    add_leak_router(lab)
    dp.exec(lab.ext, "iptables", "-t", "raw", "-A", "PREROUTING", "-s", pod_ip)
    dp.exec(pod, "iptables", "-A", "OUTPUT", "-d", SERVER4)
    leaked = lambda: count(dp, lab.ext, "PREROUTING", "raw")   # noqa: E731
    sent = lambda: count(dp, pod, "OUTPUT")                    # noqa: E731

    vegd_rows.apply(dp.stack, lab.spec())
    pols = dp.stack.nbctl("lr-policy-list", vpc)
    assert "29095" in pols and "29090" in pols, pols
    wait_for(lambda: set(nb_bfd(dp, vpc).values()) == {"up"}, 30, interval=0.05,
             what="both NB BFD rows up")
    dp.wait_hv_sync()
    split = lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=20))
    assert set(split) <= {"gw1", "gw2"} and sum(split.values()) == 20, split
    assert leaked() == 0

    # every instance dies while the pod keeps opening connections
    prober = dp.start_prober(pod, SERVER4, PORT, interval=0.02, timeout=0.2, max_duration=300)
    wake_pinctrl(dp, pod)
    t_kill = time.monotonic()
    for gw in gws:
        lab.kill_gateway(gw)
    wait_for(lambda: set(nb_bfd(dp, vpc).values()) == {"down"}, 15, interval=0.02,
             what="every NB BFD row down")
    down_ms = (time.monotonic() - t_kill) * 1000
    dp.wait_hv_sync()
    base, window = sent(), time.time()
    wait_for(lambda: sent() >= base + 20, 30, interval=0.1, what="the pod to send 20 more")
    after_down = sent() - base
    assert leaked() == 0, "packets with the pod's own address reached the external network"
    tries = [r for t, r in prober.results if t >= window]
    assert tries and all(r.startswith("fail:") for r in tries), tries
    print(f"\n{vpc}: every NB BFD row down {down_ms:.0f} ms after the kill; then the pod made "
          f"{len(tries)} connection attempts ({after_down} packets), all failed, and "
          f"{leaked()} packets reached the external network with {pod_ip}; split before {split}")

    # control: without the drop the same traffic leaks through the covering route ...
    for uuid in drop_rows(dp):
        dp.stack.nbctl("lr-policy-del", vpc, uuid)
    dp.wait_hv_sync()
    wait_for(lambda: leaked() > 0, 20, interval=0.05, what="a leak without the 29090 drop")
    print(f"{vpc}: without the drop: {leaked()} packets with {pod_ip} in the external network")
    # ... and `vegd apply` puts the drop back (one transaction), which stops it again
    run = vegd_rows.run(dp.stack)
    assert run.report["transactions"] == 1, run.report
    dp.wait_hv_sync()
    settle = sent()
    wait_for(lambda: sent() >= settle + 3, 30, interval=0.05, what="the pod to send 3 more")
    floor, base = leaked(), sent()
    wait_for(lambda: sent() >= base + 20, 30, interval=0.1, what="the pod to send 20 more")
    assert leaked() == floor

    # recovery: gw1 comes back, the pod's connections go through it again
    lab.revive_gateway(gws[0])
    wait_for(lambda: nb_bfd(dp, vpc).get(gws[0].addr(4)) == "up", 30, interval=0.05,
             what="NB BFD of gw1 up again")
    gw1_ext = lab.external_ips(gws[0])[0]
    wait_for(lambda: any(r == gw1_ext for _, r in prober.results), 20, interval=0.05,
             what="a probe through gw1")
    prober.stop()
    assert lab.who(dp.tcp_connect(pod, SERVER4, PORT, count=10)) == {"gw1": 10}
    assert leaked() == floor
    print(f"{vpc}: recovered through gw1; packets with {pod_ip} in the external network "
          f"after the drop was restored: {leaked() - floor}")
