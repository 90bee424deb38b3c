"""Gateway namespace configuration: the minimal shell sequence a gateway instance needs.

This is the one place to swap for ``vegd gateway setup`` once it exists: keep the signature.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from .dataplane import DataPlane, Netns


def configure_gateway_ns(dp: DataPlane, gw: Netns, *, sources: Sequence[str],
                         external_gateways: Sequence[str],
                         internal_routes: Sequence[tuple[str, str]] = (),
                         internal_if: str = "eth0", external_if: str = "net1") -> None:
    """Turn namespace gw into an egress gateway instance.

    - forwarding on (IPv4 and IPv6), rp_filter off (replies and BFD come back asymmetrically);
    - SNAT: ``iptables -t nat -A POSTROUTING -s <src> -o net1 -j MASQUERADE --random-fully`` for
      every source CIDR (ip6tables for IPv6 sources);
    - default route(s) via external_gateways on net1;
    - internal_routes (prefix, nexthop) on eth0: the way back to VPC prefixes that are not
      connected, and to a dedicated BFD port address;
    - a counting rule ``FORWARD -i eth0 -o net1`` (no target) so tests can read per-gateway
      forwarded packet counts.
    """
    sysctls = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
               "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
               f"net.ipv4.conf.{internal_if}.rp_filter=0",
               f"net.ipv4.conf.{external_if}.rp_filter=0"]
    dp.exec(gw, "sysctl", "-qw", *sysctls)
    for src in sources:
        tool = "ip6tables" if ipaddress.ip_network(src).version == 6 else "iptables"
        dp.exec(gw, tool, "-t", "nat", "-A", "POSTROUTING", "-s", src, "-o", external_if,
                "-j", "MASQUERADE", "--random-fully")
    for tool in ("iptables", "ip6tables"):
        dp.exec(gw, tool, "-A", "FORWARD", "-i", internal_if, "-o", external_if)
    for nh in external_gateways:
        fam = "-6" if ipaddress.ip_address(nh).version == 6 else "-4"
        dp.exec(gw, "ip", fam, "route", "replace", "default", "via", nh, "dev", external_if)
    for prefix, nh in internal_routes:
        fam = "-6" if ipaddress.ip_address(nh).version == 6 else "-4"
        dp.exec(gw, "ip", fam, "route", "replace", prefix, "via", nh, "dev", internal_if)


def forwarded_packets(dp: DataPlane, gw: Netns, version: int = 4,
                      internal_if: str = "eth0", external_if: str = "net1") -> int:
    """Packets gw forwarded from the VPC side to the external side (the counting rule)."""
    tool = "ip6tables" if version == 6 else "iptables"
    out = dp.exec(gw, tool, "-nvxL", "FORWARD")
    for line in out.splitlines():
        f = line.split()
        if (f and f[0].isdigit() and internal_if in f[:-1]
                and f[f.index(internal_if) + 1] == external_if):
            return int(f[0])
    raise LookupError(f"no counting rule in {gw.name}: {out}")
