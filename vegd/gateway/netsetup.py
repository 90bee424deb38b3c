"""Forwarding, policy routing and SNAT inside the gateway's network namespace (pyroute2, no `ip`).

Routing lives in two tables the agent owns, selected by four policy rules per family, so setup never
overwrites a route the CNI installed in `main`, and teardown removes exactly what setup added:

    egress table (default 1001): <each source> via <internal gw>; default via <external gw>
    vpc table    (default 1000): default via <internal gw>

    P+0  iif <internal>             lookup egress   from the VPC: out by the external side
    P+1  iif <external>             lookup vpc      replies and outside traffic: back into the VPC
    P+2  iif lo from <internal IP>  lookup vpc      local traffic from the internal IP (bfdd)
    P+3  iif lo from <external IP>  lookup egress   local traffic from the external IP

The original values of the sysctls the agent changes are kept in `<state-dir>/network.json`;
teardown restores them. Order matters for safety: SNAT first, forwarding last on setup; forwarding
off first on teardown, so there is never a moment where un-translated traffic is forwarded.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]

from vegd.gateway import shaping, snat
from vegd.gateway.settings import RULES_PER_FAMILY, IPAddress, IPNetwork, Settings

log = logging.getLogger(__name__)

AF = {4: socket.AF_INET, 6: socket.AF_INET6}
STATE_FILE = "network.json"
SYSCTL_ROOT = Path("/proc/sys")
ACCOUNTING = "net/netfilter/nf_conntrack_acct"
TIMESTAMPS = "net/netfilter/nf_conntrack_timestamp"


class PlanError(ValueError):
    """The live namespace does not fit the settings (unknown interface, gateway off-link...)."""


@dataclass(frozen=True)
class FamilyPlan:
    version: int
    internal_ip: IPAddress
    external_ip: IPAddress
    internal_gateway: IPAddress
    external_gateway: IPAddress
    sources: tuple[IPNetwork, ...]

    @property
    def af(self) -> int:
        return AF[self.version]


@dataclass(frozen=True)
class Route:
    version: int
    table: int
    dst: IPNetwork
    gateway: IPAddress
    oif: int


@dataclass(frozen=True)
class Rule:
    version: int
    priority: int
    table: int
    iifname: str
    src: IPAddress | None = None


@dataclass(frozen=True)
class Plan:
    settings: Settings
    internal_index: int
    external_index: int
    families: tuple[FamilyPlan, ...]

    def family(self, version: int) -> FamilyPlan | None:
        return next((f for f in self.families if f.version == version), None)

    def routes(self) -> set[Route]:
        s = self.settings
        result: set[Route] = set()
        for f in self.families:
            default = ipaddress.ip_network("0.0.0.0/0" if f.version == 4 else "::/0")
            result.add(Route(f.version, s.vpc_table, default, f.internal_gateway,
                             self.internal_index))
            result.add(Route(f.version, s.egress_table, default, f.external_gateway,
                             self.external_index))
            for source in f.sources:
                result.add(Route(f.version, s.egress_table, source, f.internal_gateway,
                                 self.internal_index))
        return result

    def rules(self) -> set[Rule]:
        s, p = self.settings, self.settings.rule_priority
        result: set[Rule] = set()
        for f in self.families:
            result |= {
                Rule(f.version, p, s.egress_table, s.internal_interface),
                Rule(f.version, p + 1, s.vpc_table, s.external_interface),
                Rule(f.version, p + 2, s.vpc_table, "lo", f.internal_ip),
                Rule(f.version, p + 3, s.egress_table, "lo", f.external_ip),
            }
        return result

    def sysctls(self) -> dict[str, str]:
        """Desired values, in the order they are written (forwarding last)."""
        wanted: dict[str, str] = {}
        if self.family(4):
            wanted[f"net/ipv4/conf/{self.settings.internal_interface}/rp_filter"] = "0"
            # The effective rp_filter is max(all, interface): 0 on the interface only counts
            # when `all` is not strict.
            if read_sysctl("net/ipv4/conf/all/rp_filter") == "1":
                wanted["net/ipv4/conf/all/rp_filter"] = "0"
            wanted["net/ipv4/ip_forward"] = "1"
        if self.family(6):
            wanted["net/ipv6/conf/all/forwarding"] = "1"
        # Byte and packet counters in conntrack, for the end records of spec.observability.
        # Only here: the run container cannot write /proc/sys, and observability is switched on
        # and off without a restart. Present once nf_conntrack is loaded (always on a node).
        # Creation times in table dumps: after an overrun the agent re-reads the table and
        # records only the entries created since the events it last saw.
        for name in (ACCOUNTING, TIMESTAMPS):
            if read_sysctl(name) is not None:
                wanted[name] = "1"
        return wanted


@contextlib.contextmanager
def iproute() -> Iterator[IPRoute]:
    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def plan(settings: Settings, ipr: IPRoute) -> Plan:
    """Check the settings against the live namespace. Raises PlanError; changes nothing."""
    internal = _link_index(ipr, settings.internal_interface, "--internal-interface")
    external = _link_index(ipr, settings.external_interface, "--external-interface")
    families = []
    for gw in settings.families:
        v = gw.version
        internal_ip = _address_for(ipr, internal, settings.internal_interface, gw.internal_gateway,
                                   f"--internal-gateway-ipv{v}")
        external_ip = _address_for(ipr, external, settings.external_interface, gw.external_gateway,
                                   f"--external-gateway-ipv{v}")
        sources = tuple(n for n in (*settings.snat_sources, *settings.forward_sources)
                        if n.version == v)
        families.append(FamilyPlan(v, internal_ip, external_ip, gw.internal_gateway,
                                   gw.external_gateway, sources))
    return Plan(settings, internal, external, tuple(families))


def _link_index(ipr: IPRoute, name: str, option: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise PlanError(f"{option}: interface {name!r} does not exist in this network namespace")
    return int(found[0])


def _address_for(ipr: IPRoute, index: int, ifname: str, gateway: IPAddress,
                 option: str) -> IPAddress:
    """The interface address on the gateway's subnet (any global one for a link-local gateway)."""
    candidates = []
    for msg in ipr.get_addr(index=index, family=AF[gateway.version]):
        iface = ipaddress.ip_interface(f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}")
        if iface.ip.is_link_local:
            continue
        if gateway.is_link_local or gateway in iface.network:
            candidates.append(iface.ip)
    if not candidates:
        raise PlanError(f"{option}: {gateway} is not on a subnet of {ifname} "
                        f"(no IPv{gateway.version} address of {ifname} covers it)")
    return candidates[0]


# --- sysctls: pyroute2 has no sysctl API; /proc/sys is per network namespace ---------------------

def read_sysctl(name: str) -> str | None:
    try:
        return (SYSCTL_ROOT / name).read_text().strip()
    except FileNotFoundError:
        return None


def write_sysctl(name: str, value: str) -> None:
    (SYSCTL_ROOT / name).write_text(value)


# --- state file -------------------------------------------------------------------------------

def load_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def _save_state(state_dir: Path, data: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, state_dir / STATE_FILE)


# --- apply / teardown / check -----------------------------------------------------------------

def apply(p: Plan, ipr: IPRoute) -> None:
    """Bring the namespace to the plan. Idempotent: a second call changes nothing."""
    s = p.settings
    wanted = p.sysctls()
    state = load_state(s.state_dir) or {}
    originals: dict[str, str] = dict(state.get("sysctls", {}))
    for name in wanted:
        if name not in originals:  # the first setup's view is the one teardown restores
            value = read_sysctl(name)
            if value is None:
                raise PlanError(f"sysctl {name} does not exist in this namespace")
            originals[name] = value
    _save_state(s.state_dir, {"sysctls": originals, **_ownership(s)})

    snat.apply(snat.render(s))
    _sync_routes(ipr, p.routes(), s.vpc_table, s.egress_table)
    _sync_rules(ipr, p.rules(), s)
    for name, value in wanted.items():
        if read_sysctl(name) != value:
            write_sysctl(name, value)
    if shaping.wanted(s):
        shaping.apply(s)
    log.info("network setup applied: families %s, %d routes, %d rules, %d nft rules",
             [f.version for f in p.families], len(p.routes()), len(p.rules()),
             snat.rule_count(s))


def teardown(settings: Settings, ipr: IPRoute) -> None:
    """Remove what apply() added, using the state file's record of what that was."""
    state = load_state(settings.state_dir)
    own = state or _ownership(settings)
    if state is None:
        log.warning("no state file in %s: removing routes, rules and nft table but leaving "
                    "sysctls as they are", settings.state_dir)
    # Forwarding off first (reverse of the write order), so nothing flows un-translated.
    for name, value in reversed(list((state or {}).get("sysctls", {}).items())):
        if read_sysctl(name) not in (None, value):
            write_sysctl(name, value)
    _sync_rules_owned(ipr, set(), int(own["rule_priority"]),
                      {int(own["vpc_table"]), int(own["egress_table"])})
    _sync_routes(ipr, set(), int(own["vpc_table"]), int(own["egress_table"]))
    snat.remove(str(own["nft_table"]))
    if shaping.wanted(settings):
        shaping.remove(settings)
    with contextlib.suppress(FileNotFoundError):
        (settings.state_dir / STATE_FILE).unlink()
    log.info("network setup removed")


def check(p: Plan, ipr: IPRoute) -> list[str]:
    """What differs from the plan; empty when the setup is fully in place."""
    s = p.settings
    problems = []
    routes = _owned_routes(ipr, s.vpc_table, s.egress_table)
    if set(routes) != p.routes():
        problems.append(f"routes in tables {s.vpc_table}/{s.egress_table} differ from the plan")
    rules = _owned_rules(ipr, s.rule_priority, {s.vpc_table, s.egress_table})
    if set(rules) != p.rules():
        problems.append("policy rules differ from the plan")
    counters = snat.counters(s.nft_table)
    if counters is None:
        problems.append(f"nft table inet {s.nft_table} is missing")
    elif len(counters) != snat.rule_count(s):
        problems.append(f"nft table inet {s.nft_table} has {len(counters)} rules, "
                        f"expected {snat.rule_count(s)}")
    for name, value in p.sysctls().items():
        if read_sysctl(name) != value:
            problems.append(f"sysctl {name} is {read_sysctl(name)}, expected {value}")
    if shaping.wanted(s):
        problems += shaping.check(s)
    return problems


def _ownership(s: Settings) -> dict[str, Any]:
    return {"vpc_table": s.vpc_table, "egress_table": s.egress_table,
            "rule_priority": s.rule_priority, "nft_table": s.nft_table}


def _owned_routes(ipr: IPRoute, *tables: int) -> dict[Route, dict[str, Any]]:
    found: dict[Route, dict[str, Any]] = {}
    for version, af in AF.items():
        for table in tables:
            for msg in ipr.get_routes(family=af, table=table):
                if msg.get("table") != table:
                    continue
                zero = "0.0.0.0" if version == 4 else "::"
                dst = ipaddress.ip_network(f"{msg.get('dst') or zero}/{msg['dst_len']}")
                gw = msg.get("gateway")
                key = Route(version, table, dst,
                            ipaddress.ip_address(gw) if gw else dst.network_address,
                            int(msg.get("oif") or 0))
                found[key] = {"family": af, "table": table, "dst": str(dst)}
    return found


def _sync_routes(ipr: IPRoute, wanted: set[Route], *tables: int) -> None:
    for route, spec in _owned_routes(ipr, *tables).items():
        if route not in wanted:
            ipr.route("del", **spec)
    for route in sorted(wanted, key=lambda r: (r.version, r.table, str(r.dst))):
        ipr.route("replace", family=AF[route.version], table=route.table, dst=str(route.dst),
                  gateway=str(route.gateway), oif=route.oif)


def _owned_rules(ipr: IPRoute, priority: int, tables: set[int]) -> dict[Rule, dict[str, Any]]:
    found: dict[Rule, dict[str, Any]] = {}
    for version, af in AF.items():
        for msg in ipr.get_rules(family=af):
            prio = msg.get("priority") or 0
            table = msg.get("table")
            if not priority <= prio < priority + RULES_PER_FAMILY or table not in tables:
                continue
            src = msg.get("src")
            rule = Rule(version, prio, int(table), msg.get("iifname") or "",
                        ipaddress.ip_address(src) if src else None)
            spec: dict[str, Any] = {"family": af, "priority": prio, "table": table}
            if rule.iifname:
                spec["iifname"] = rule.iifname
            if src:
                spec.update(src=src, src_len=msg["src_len"])
            found[rule] = spec
    return found


def _sync_rules(ipr: IPRoute, wanted: set[Rule], s: Settings) -> None:
    _sync_rules_owned(ipr, wanted, s.rule_priority, {s.vpc_table, s.egress_table})


def _sync_rules_owned(ipr: IPRoute, wanted: set[Rule], priority: int, tables: set[int]) -> None:
    existing = _owned_rules(ipr, priority, tables)
    for rule, spec in existing.items():
        if rule not in wanted:
            ipr.rule("del", **spec)
    for rule in sorted(wanted - set(existing), key=lambda r: (r.version, r.priority)):
        extra: dict[str, Any] = {}
        if rule.src is not None:
            extra = {"src": str(rule.src), "src_len": rule.src.max_prefixlen}
        ipr.rule("add", family=AF[rule.version], priority=rule.priority, table=rule.table,
                 iifname=rule.iifname, **extra)
