"""Settings parsing and rendering: pure, no namespace needed."""

from __future__ import annotations

import ipaddress

import pytest

from vegd.gateway import bfdd, snat
from vegd.gateway.cli import main
from vegd.gateway.settings import SettingsError, parse

V4 = ["--internal-gateway-ipv4", "10.0.0.1", "--external-gateway-ipv4", "192.0.2.1"]


def test_environment_and_flags() -> None:
    env = {"VEGD_GATEWAY_SNAT_SOURCES": "10.1.0.0/16, 10.2.0.5",
           "VEGD_GATEWAY_BFD_MIN_TX": "300", "VEGD_GATEWAY_INTERNAL_INTERFACE": "eth9",
           "VEGD_GATEWAY_INTERNAL_GATEWAY_IPV4": "10.0.0.1",
           "VEGD_GATEWAY_EXTERNAL_GATEWAY_IPV4": "192.0.2.1"}
    s = parse(["setup", "--bfd-min-tx", "500"], env)
    assert s.internal_interface == "eth9"
    assert s.bfd_min_tx == 500  # the flag wins over the environment
    assert s.snat_sources == (ipaddress.ip_network("10.1.0.0/16"),
                              ipaddress.ip_network("10.2.0.5/32"))
    assert s.versions == (4,)
    assert s.listen == ("", 10669)


@pytest.mark.parametrize(("argv", "message"), [
    (["setup"], "no address family configured"),
    (["setup", "--internal-gateway-ipv6", "fd00::1"],
     "missing gateway: --external-gateway-ipv6 (VEGD_GATEWAY_EXTERNAL_GATEWAY_IPV6)"),
    (["setup", *V4, "--forward-sources", "fd00::/64"], "is IPv6 but no IPv6 gateways"),
    (["setup", *V4, "--bfd-peers", "fd00::1"], "no local address to peer from"),
    (["setup", *V4, "--external-gateway-ipv6", "192.0.2.1", "--internal-gateway-ipv6",
      "fd00::1"], "is an IPv4 address, expected IPv6"),
    (["setup", *V4, "--snat-sources", "10.1.0.0/16", "--forward-sources", "10.1.0.0/16"],
     "listed in both"),
    (["setup", *V4, "--bfd-min-rx", "5"], "outside 10..60000"),
    (["setup", *V4, "--vpc-table", "254"], "reserved"),
    (["setup", *V4, "--listen", "nowhere"], "--listen"),
])
def test_errors_name_the_setting(argv: list[str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        parse(argv, {})
    assert message in str(info.value)


def test_teardown_needs_no_gateways() -> None:
    assert parse(["teardown"], {}).families == ()


def test_cli_exit_code_for_invalid_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["setup", "--internal-gateway-ipv4", "10.0.0.1"]) == 1
    assert "--external-gateway-ipv4" in capsys.readouterr().err
    assert main(["bogus"]) == 1
    assert main(["--help"]) == 0


def test_nft_script_replaces_the_table_atomically() -> None:
    s = parse(["setup", *V4, "--snat-sources", "10.1.0.0/16", "--forward-sources",
               "10.1.5.0/24", "--external-interface", "ext0"], {})
    script = snat.render(s)
    lines = script.splitlines()
    # declare, delete, re-create: one nft transaction, valid whether or not the table exists
    assert lines[:3] == ["table inet vegd {}", "delete table inet vegd", "table inet vegd {"]
    rules = [line.strip() for line in lines if "counter" in line]
    assert rules == [
        'ip saddr 10.1.5.0/24 counter return comment "forward-source 10.1.5.0/24"',
        'ip daddr 10.1.5.0/24 counter return comment "forward-destination 10.1.5.0/24"',
        'oifname "ext0" ip saddr 10.1.0.0/16 counter masquerade fully-random '
        'comment "masquerade 10.1.0.0/16"',
    ]


def test_bfdd_config() -> None:
    peer = bfdd.Peer(ipaddress.ip_address("10.255.255.255"), ipaddress.ip_address("10.0.0.5"))
    text = bfdd.render_config([peer], bfdd.Timers(min_tx=300, min_rx=400, multiplier=5))
    assert " peer 10.255.255.255 local-address 10.0.0.5\n" in text
    assert "  receive-interval 400\n  transmit-interval 300\n  detect-multiplier 5\n" in text
    assert "interface" not in text  # see bfdd.py: naming one makes bfdd wait for zebra
