"""The data-plane fixture itself: traffic on the default VPC, and complete cleanup."""

from __future__ import annotations

import subprocess

import pytest
from ovnstack import OvnStack, alive

from .dataplane import DataPlane, missing_binaries
from .topology import default_vpc, mac_for

pytestmark = [pytest.mark.netns, pytest.mark.dataplane]


def _our_netns(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def test_default_vpc_traffic_and_cleanup(tmp_path):
    """Two pods on ovn-default talk over the logical switch and through ovn-cluster (ping and
    TCP); the chassis is registered under its hostname; and when the body raises, stop() still
    removes every namespace and daemon it created."""
    if missing_binaries():
        pytest.skip(f"missing {missing_binaries()}")
    stack = OvnStack(tmp_path / "ovn").start()
    dp = DataPlane(stack, chassis="e2e-node-1", hostname="e2e-node-1.example")
    pids: list[int] = []
    try:
        with pytest.raises(RuntimeError, match="boom"), dp:
            hostnames = stack.sbctl("--bare", "--columns=hostname", "list", "Chassis").split()
            assert hostnames == ["e2e-node-1.example"]
            dvpc = default_vpc(stack, dp.chassis)
            a_ip, b_ip = dvpc.ovn_default.host(10), dvpc.ovn_default.host(11)
            gw = dvpc.ovn_default.gateway()
            a = dp.add_pod("a", "ovn-default", mac_for(a_ip.split("/")[0]), [a_ip], [gw])
            b = dp.add_pod("b", "ovn-default", mac_for(b_ip.split("/")[0]), [b_ip], [gw])
            dp.wait_port_up("a", "b")
            dp.wait_hv_sync()
            dp.exec(a, "ping", "-c", "1", "-W", "2", b.addr())
            dp.exec(a, "ping", "-c", "1", "-W", "2", gw)     # the router port answers
            dp.start_echo_server(b, b.addr(), 8080)
            assert dp.tcp_connect(a, b.addr(), 8080, count=3) == [a.addr()] * 3
            # the veths and br-int live in the private ovs namespace, not the host's
            assert "br-int" in subprocess.run(["ip", "-n", dp.ovs_ns, "-br", "link"],
                                              capture_output=True, text=True).stdout
            assert len(_our_netns(dp.prefix)) == 3          # ovs, a, b
            pids = [int((stack.dir / f"{n}.pid").read_text())
                    for n in ("ovs-db", "ovs-vswitchd", "ovn-controller")]
            assert all(alive(p) for p in pids)
            raise RuntimeError("boom")                        # a failing test body
        assert _our_netns(dp.prefix) == []
        assert not any(alive(p) for p in pids)
        assert not dp.scratch.exists()
        dp.stop()                                             # idempotent
    finally:
        dp.stop()
        stack.stop()
