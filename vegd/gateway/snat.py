"""SNAT with nftables: one `inet` table owned by the agent, replaced in a single transaction.

`nft -f` applies a whole script as one netlink batch, so a reader sees either the old table or the
new one, never half a rule set. The script first declares the table (so `delete` cannot fail when it
is absent), deletes it, and re-creates it with its content.

Rules, in order, all in a nat postrouting chain:
- forward-only sources: `saddr <cidr> return` and `daddr <cidr> return`, so they pass unchanged in
  both directions even when they overlap a SNAT source;
- SNAT sources: `oifname <external> saddr <cidr> masquerade fully-random` (the netfilter spelling of
  iptables' `MASQUERADE --random-fully`). Only traffic leaving by the external interface is
  translated, to the address of that interface.
Every rule has a counter and a comment `<kind> <cidr>` that /metrics reports. A filter forward
chain drops SNAT sources' packets that conntrack calls invalid on their way out (masquerade does
not translate those: they would leave with the pod's address).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass

from vegd.gateway.settings import IPNetwork, Settings

NFT = "nft"


class SnatError(RuntimeError):
    pass


@dataclass(frozen=True)
class RuleCounter:
    kind: str  # "masquerade", "forward-source" or "forward-destination"
    cidr: str
    family: int  # 4 or 6
    packets: int
    bytes: int


def _match(network: IPNetwork, field: str) -> str:
    return f"{'ip' if network.version == 4 else 'ip6'} {field} {network}"


def render(settings: Settings) -> str:
    """The nft script that replaces the agent's table with the desired one."""
    table = f"inet {settings.nft_table}"
    lines = [f"table {table} {{}}", f"delete table {table}", f"table {table} {{",
             "  chain postrouting {",
             "    type nat hook postrouting priority srcnat; policy accept;"]
    for network in settings.forward_sources:
        lines.append(f"    {_match(network, 'saddr')} counter return "
                     f'comment "forward-source {network}"')
        lines.append(f"    {_match(network, 'daddr')} counter return "
                     f'comment "forward-destination {network}"')
    for network in settings.snat_sources:
        lines.append(f'    oifname "{settings.external_interface}" {_match(network, "saddr")} '
                     f'counter masquerade fully-random comment "masquerade {network}"')
    # A packet conntrack calls invalid (a mid-stream RST or retransmit of a connection this
    # instance never saw, after a failover) is not translated by masquerade: it would leave with
    # the pod's own address. Never forward SNAT sources that way.
    lines += ["  }", "  chain forward {",
              "    type filter hook forward priority filter; policy accept;"]
    for network in settings.forward_sources:
        lines.append(f"    {_match(network, 'saddr')} return")
    for network in settings.snat_sources:
        lines.append(f'    oifname "{settings.external_interface}" {_match(network, "saddr")} '
                     "ct state invalid drop")
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def render_delete(table: str) -> str:
    return f"table inet {table} {{}}\ndelete table inet {table}\n"


def apply(script: str) -> None:
    _nft(["-f", "-"], script)


def remove(table: str) -> None:
    _nft(["-f", "-"], render_delete(table))


def rule_count(settings: Settings) -> int:
    return 2 * len(settings.forward_sources) + len(settings.snat_sources)


def counters(table: str) -> list[RuleCounter] | None:
    """Counters of the agent's rules, or None when the table does not exist."""
    try:
        output = _nft(["-j", "list", "table", "inet", table])
    except SnatError:
        return None
    result = []
    for item in json.loads(output).get("nftables", []):
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        kind, _, cidr = rule["comment"].partition(" ")
        counter = next((e["counter"] for e in rule.get("expr", []) if "counter" in e), None)
        if counter is None:
            continue
        result.append(RuleCounter(kind, cidr, 6 if ":" in cidr else 4,
                                  int(counter.get("packets", 0)), int(counter.get("bytes", 0))))
    return result


def available() -> bool:
    return shutil.which(NFT) is not None


def _nft(args: list[str], stdin: str | None = None) -> str:
    try:
        proc = subprocess.run([NFT, *args], input=stdin, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SnatError(f"nft {' '.join(args)}: {exc}") from exc
    if proc.returncode != 0:
        raise SnatError(f"nft {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout
