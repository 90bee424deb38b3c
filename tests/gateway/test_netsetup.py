"""setup / teardown in a real namespace: idempotence, exact removal, refusal of bad settings."""

from __future__ import annotations

import pytest
from nslab import Lab, Topology, dump

pytestmark = pytest.mark.netns


def test_setup_twice_is_identical_and_teardown_restores(lab: Lab, topo: Topology) -> None:
    before = dump(lab, topo.gw)

    first = lab.vegd(topo.gw, "setup", *topo.flags())
    assert first.returncode == 0, first.stderr
    after_first = dump(lab, topo.gw)
    second = lab.vegd(topo.gw, "setup", *topo.flags())
    assert second.returncode == 0, second.stderr
    after_second = dump(lab, topo.gw)

    assert after_first == after_second
    assert after_first != before
    # What setup is meant to add, read back from the kernel.
    for expected in ("1001:\tfrom all iif eth0 lookup 1001",
                     "1002:\tfrom all iif net1 lookup 1000",
                     "1003:\tfrom 192.168.0.2 iif lo lookup 1000",
                     "1004:\tfrom 198.51.100.2 iif lo lookup 1001",
                     "1003:\tfrom fd00:ff::2 iif lo lookup 1000",
                     "default via 192.168.0.1 dev eth0 table 1000",
                     "default via 198.51.100.1 dev net1 table 1001",
                     "10.0.1.0/24 via 192.168.0.1 dev eth0 table 1001",
                     "10.0.2.0/24 via 192.168.0.1 dev eth0 table 1001",
                     "fd00:2::/64 via fd00:ff::1 dev eth0 table 1001",
                     "default via 2001:db8:100::1 dev net1 table 1001",
                     'oifname "net1" ip saddr 10.0.1.0/24 counter packets 0 bytes 0 '
                     "masquerade fully-random",
                     "ip6 saddr fd00:2::/64 counter packets 0 bytes 0 return",
                     "ip daddr 10.0.2.0/24 counter packets 0 bytes 0 return",
                     "net/ipv4/ip_forward = 1", "net/ipv6/conf/all/forwarding = 1",
                     "net/ipv4/conf/eth0/rp_filter = 0"):
        assert expected in after_first, expected
    # Forward-only sources are never masqueraded.
    assert "10.0.2.0/24 counter packets 0 bytes 0 masquerade" not in after_first

    down = lab.vegd(topo.gw, "teardown", "--state-dir", str(topo.state_dir))
    assert down.returncode == 0, down.stderr
    assert dump(lab, topo.gw) == before
    assert not (topo.state_dir / "network.json").exists()
    again = lab.vegd(topo.gw, "teardown", "--state-dir", str(topo.state_dir))
    assert again.returncode == 0, again.stderr
    assert dump(lab, topo.gw) == before


def test_changed_settings_converge(lab: Lab, topo: Topology) -> None:
    """A second setup with fewer sources removes what the first one added and no longer wants."""
    assert lab.vegd(topo.gw, "setup", *topo.flags()).returncode == 0
    narrower = [a if a != "10.0.2.0/24,fd00:2::/64" else "10.0.2.0/24" for a in topo.flags()]
    result = lab.vegd(topo.gw, "setup", *narrower)
    assert result.returncode == 0, result.stderr
    state = dump(lab, topo.gw)
    assert "fd00:2::/64" not in state
    assert "10.0.2.0/24 via 192.168.0.1 dev eth0 table 1001" in state
    assert lab.vegd(topo.gw, "teardown", "--state-dir", str(topo.state_dir)).returncode == 0


@pytest.mark.parametrize(("change", "message"), [
    ({"--internal-interface": "nope0"}, "--internal-interface"),
    ({"--external-interface": "eth0"}, "must differ"),
    ({"--snat-sources": "10.0.1.0/24,2001:db8:5::/64",
      "--internal-gateway-ipv6": "", "--external-gateway-ipv6": ""}, "is IPv6 but no IPv6"),
    ({"--internal-gateway-ipv4": "fd00:ff::1"}, "expected IPv4"),
    ({"--external-gateway-ipv4": ""}, "missing gateway: --external-gateway-ipv4"),
    ({"--external-gateway-ipv4": "203.0.113.1"}, "not on a subnet of net1"),
    ({"--bfd-multiplier": "1"}, "--bfd-multiplier"),
    ({"--snat-sources": "10.0.1.0/33"}, "is not a CIDR"),
])
def test_bad_settings_apply_nothing(lab: Lab, topo: Topology, change: dict[str, str],
                                    message: str) -> None:
    before = dump(lab, topo.gw)
    flags = topo.flags()
    for option, value in change.items():
        if option in flags:
            flags[flags.index(option) + 1] = value
        else:
            flags += [option, value]
    result = lab.vegd(topo.gw, "setup", *flags)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert dump(lab, topo.gw) == before
    assert not (topo.state_dir / "network.json").exists()
