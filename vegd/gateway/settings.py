"""Settings of the in-pod gateway agent: flags and environment, parsed and validated up front.

Every error names the setting (flag and environment variable) so a bad Deployment is easy to fix.
Nothing here touches the network: checks that need the live namespace (does the interface exist,
is the gateway on its subnet) are done by netsetup.plan() before anything is changed.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vegd.model.limits import BFD_INTERVAL_RANGE, BFD_MULTIPLIER_RANGE

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV_PREFIX = "VEGD_GATEWAY_"
COMMANDS = ("setup", "run", "teardown")

# FRR 8.4 bfdd's ranges, decided once for the controller and the agent (vegd/model/limits.py).
INTERVAL_RANGE = BFD_INTERVAL_RANGE
MULTIPLIER_RANGE = BFD_MULTIPLIER_RANGE
# Kernel reserved tables: 0 unspec, 253 default, 254 main, 255 local.
RESERVED_TABLES = frozenset({0, 253, 254, 255})
RULES_PER_FAMILY = 4


class SettingsError(ValueError):
    """A setting is wrong. Raised before anything is applied."""


@dataclass(frozen=True)
class FamilyGateways:
    version: int  # 4 or 6
    internal_gateway: IPAddress
    external_gateway: IPAddress


@dataclass(frozen=True)
class Settings:
    command: str
    internal_interface: str = "eth0"
    external_interface: str = "net1"
    families: tuple[FamilyGateways, ...] = ()
    snat_sources: tuple[IPNetwork, ...] = ()
    forward_sources: tuple[IPNetwork, ...] = ()
    bfd_peers: tuple[IPAddress, ...] = ()
    bfd_min_tx: int = 1000  # milliseconds
    bfd_min_rx: int = 1000
    bfd_multiplier: int = 3
    vpc_table: int = 1000  # replies and outside traffic go back into the VPC
    egress_table: int = 1001  # traffic from the VPC: sources via internal gw, default via external
    rule_priority: int = 1001  # first of RULES_PER_FAMILY consecutive priorities
    nft_table: str = "vegd"
    state_dir: Path = Path("/run/vegd-gateway")
    listen: tuple[str, int] = ("", 10669)
    bfd_poll_interval: float = 1.0
    check_interval: float = 10.0
    frr_bin_dir: Path = Path("/usr/lib/frr")
    vtysh: str = "vtysh"
    keep_on_exit: bool = False
    log_level: str = "INFO"
    log_format: str = "console"
    bandwidth_egress: int = 0  # Mbps toward the external network (tc on it); 0: unlimited
    bandwidth_ingress: int = 0  # Mbps toward the VPC (tc on the internal interface)
    observability_config: Path | None = None  # JSON the agent reloads (vegd.model.observability)
    pod_name: str = ""
    pod_namespace: str = ""
    node_name: str = ""
    conntrack_buffer: int = 8 << 20  # receive buffer of the conntrack event socket, bytes

    def family(self, version: int) -> FamilyGateways | None:
        return next((f for f in self.families if f.version == version), None)

    @property
    def versions(self) -> tuple[int, ...]:
        return tuple(f.version for f in self.families)


# name, help, default (None = unset). The env variable is ENV_PREFIX + NAME in upper snake case.
_OPTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("internal-interface", "interface toward the VPC", "eth0"),
    ("external-interface", "interface toward the external network", "net1"),
    ("internal-gateway-ipv4", "VPC router address on the internal interface (IPv4)", None),
    ("internal-gateway-ipv6", "VPC router address on the internal interface (IPv6)", None),
    ("external-gateway-ipv4", "next hop on the external network (IPv4)", None),
    ("external-gateway-ipv6", "next hop on the external network (IPv6)", None),
    ("snat-sources", "comma-separated CIDRs masqueraded to the external address", ""),
    ("forward-sources", "comma-separated CIDRs forwarded without SNAT", ""),
    ("bfd-peers", "comma-separated BFD peer addresses (the VPC's BFD port IPs)", ""),
    ("bfd-min-tx", "BFD desired minimum transmit interval, ms", "1000"),
    ("bfd-min-rx", "BFD required minimum receive interval, ms", "1000"),
    ("bfd-multiplier", "BFD detection multiplier", "3"),
    ("vpc-table", "routing table for traffic going back into the VPC", "1000"),
    ("egress-table", "routing table for traffic coming from the VPC", "1001"),
    ("rule-priority", "first of 4 consecutive policy rule priorities", "1001"),
    ("nft-table", "name of the nftables inet table owned by the agent", "vegd"),
    ("state-dir", "directory for the state file and bfdd's files", "/run/vegd-gateway"),
    ("listen", "HTTP address for /livez /readyz /metrics, HOST:PORT ('' = all)", ":10669"),
    ("bfd-poll-interval", "seconds between BFD state reads", "1"),
    ("check-interval", "seconds between checks that the network setup is in place", "10"),
    ("frr-bin-dir", "directory holding FRR's bfdd", "/usr/lib/frr"),
    ("vtysh", "vtysh executable", "vtysh"),
    ("log-level", "DEBUG, INFO, WARNING or ERROR", "INFO"),
    ("log-format", "console (for people) or json (one object a line, for collectors)",
     "console"),
    ("bandwidth-egress", "limit toward the external network, Mbps (0 = none)", "0"),
    ("bandwidth-ingress", "limit toward the VPC, Mbps (0 = none)", "0"),
    ("observability-config", "JSON file of observability settings, reloaded when it changes",
     ""),
    ("pod-name", "this pod's name, for translation records and metrics", ""),
    ("pod-namespace", "this pod's namespace", ""),
    ("node-name", "this pod's node", ""),
    ("conntrack-buffer", "receive buffer of the conntrack event socket, bytes", str(8 << 20)),
)


def env_name(option: str) -> str:
    return ENV_PREFIX + option.upper().replace("-", "_")


def _label(option: str) -> str:
    return f"--{option} ({env_name(option)})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vegd gateway",
        description="In-pod VPC egress gateway agent: forwarding, policy routing, SNAT, FRR bfdd.",
        epilog="Every option can also be set by its environment variable "
        f"({ENV_PREFIX}<OPTION>, e.g. {env_name('snat-sources')}); flags win.",
    )
    parser.add_argument("command", choices=COMMANDS,
                        help="setup: apply once; run: apply, supervise bfdd, serve HTTP, "
                             "remove on exit; teardown: remove what setup added")
    for name, text, default in _OPTIONS:
        parser.add_argument(f"--{name}", default=None,
                            help=f"{text} [env {env_name(name)}; default {default!r}]")
    parser.add_argument("--keep-on-exit", action="store_true", default=None,
                        help=f"run: leave the network setup in place on exit "
                             f"[env {env_name('keep-on-exit')}]")
    return parser


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Parse argv (without the leading 'gateway') and the environment into validated Settings.

    Raises SettingsError; argparse's own usage errors surface as SystemExit.
    """
    environ = os.environ if environ is None else environ
    args = build_parser().parse_args(list(argv))
    raw: dict[str, str | None] = {}
    for name, _, default in _OPTIONS:
        value = getattr(args, name.replace("-", "_"))
        if value is None:
            value = environ.get(env_name(name), default)
        raw[name] = value.strip() if isinstance(value, str) else value
    keep = args.keep_on_exit
    if keep is None:
        keep = _boolean("keep-on-exit", environ.get(env_name("keep-on-exit"), "false"))
    return _validate(args.command, raw, bool(keep))


def _validate(command: str, raw: Mapping[str, str | None], keep: bool) -> Settings:
    internal_if = _ifname("internal-interface", raw["internal-interface"])
    external_if = _ifname("external-interface", raw["external-interface"])
    if internal_if == external_if:
        raise SettingsError(
            f"{_label('internal-interface')} and {_label('external-interface')} "
            f"are both {internal_if!r}; they must differ")

    families: list[FamilyGateways] = []
    for version in (4, 6):
        internal = _address(f"internal-gateway-ipv{version}", raw[f"internal-gateway-ipv{version}"],
                            version)
        external = _address(f"external-gateway-ipv{version}", raw[f"external-gateway-ipv{version}"],
                            version)
        if (internal is None) != (external is None):
            missing = f"internal-gateway-ipv{version}" if internal is None \
                else f"external-gateway-ipv{version}"
            present = f"external-gateway-ipv{version}" if internal is None \
                else f"internal-gateway-ipv{version}"
            raise SettingsError(f"missing gateway: {_label(missing)} is required when "
                                f"{_label(present)} is set")
        if internal is not None and external is not None:
            families.append(FamilyGateways(version, internal, external))
    versions = {f.version for f in families}

    snat = _networks("snat-sources", raw["snat-sources"], versions)
    forward = _networks("forward-sources", raw["forward-sources"], versions)
    both = sorted(set(snat) & set(forward), key=str)
    if both:
        raise SettingsError(f"{', '.join(map(str, both))} listed in both {_label('snat-sources')} "
                            f"and {_label('forward-sources')}")
    peers = _peers(raw["bfd-peers"], versions)

    min_tx = _integer("bfd-min-tx", raw["bfd-min-tx"], *INTERVAL_RANGE)
    min_rx = _integer("bfd-min-rx", raw["bfd-min-rx"], *INTERVAL_RANGE)
    multiplier = _integer("bfd-multiplier", raw["bfd-multiplier"], *MULTIPLIER_RANGE)
    vpc_table = _table("vpc-table", raw["vpc-table"])
    egress_table = _table("egress-table", raw["egress-table"])
    if vpc_table == egress_table:
        raise SettingsError(f"{_label('vpc-table')} and {_label('egress-table')} must differ")
    priority = _integer("rule-priority", raw["rule-priority"], 1, 32765 - RULES_PER_FAMILY)
    nft_table = raw["nft-table"] or ""
    if not nft_table.replace("_", "").replace("-", "").isalnum() or not nft_table[0].isalpha():
        raise SettingsError(f"{_label('nft-table')}: {nft_table!r} is not a valid table name")
    state_dir = Path(raw["state-dir"] or "")
    if not state_dir.is_absolute():
        raise SettingsError(f"{_label('state-dir')}: {state_dir} must be an absolute path")
    log_level = (raw["log-level"] or "").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{_label('log-level')}: {raw['log-level']!r} is not a log level")
    log_format = (raw["log-format"] or "").lower()
    if log_format not in ("console", "json"):
        raise SettingsError(f"{_label('log-format')}: {raw['log-format']!r} is not console or "
                            "json")

    if command in ("setup", "run") and not families:
        raise SettingsError(
            "no address family configured: set --internal-gateway-ipv4 and "
            "--external-gateway-ipv4, and/or the -ipv6 pair (or their environment variables)")

    return Settings(
        command=command, internal_interface=internal_if, external_interface=external_if,
        families=tuple(families), snat_sources=snat, forward_sources=forward, bfd_peers=peers,
        bfd_min_tx=min_tx, bfd_min_rx=min_rx, bfd_multiplier=multiplier,
        vpc_table=vpc_table, egress_table=egress_table, rule_priority=priority,
        nft_table=nft_table, state_dir=state_dir, listen=_listen(raw["listen"]),
        bfd_poll_interval=_seconds("bfd-poll-interval", raw["bfd-poll-interval"]),
        check_interval=_seconds("check-interval", raw["check-interval"]),
        frr_bin_dir=Path(raw["frr-bin-dir"] or "/usr/lib/frr"), vtysh=raw["vtysh"] or "vtysh",
        keep_on_exit=keep, log_level=log_level, log_format=log_format,
        bandwidth_egress=_integer("bandwidth-egress", raw["bandwidth-egress"] or "0", 0,
                                  10**7),
        bandwidth_ingress=_integer("bandwidth-ingress", raw["bandwidth-ingress"] or "0", 0,
                                   10**7),
        observability_config=Path(raw["observability-config"])
        if raw["observability-config"] else None,
        pod_name=raw["pod-name"] or "", pod_namespace=raw["pod-namespace"] or "",
        node_name=raw["node-name"] or "",
        conntrack_buffer=_integer("conntrack-buffer", raw["conntrack-buffer"], 4096, 1 << 30),
    )


def _ifname(option: str, value: str | None) -> str:
    # IFNAMSIZ is 16 including the NUL; '/' and whitespace are refused by the kernel.
    if not value or len(value) > 15 or "/" in value or any(c.isspace() for c in value):
        raise SettingsError(f"{_label(option)}: {value!r} is not a valid interface name")
    return value


def _address(option: str, value: str | None, version: int) -> IPAddress | None:
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise SettingsError(f"{_label(option)}: {value!r} is not an IP address") from None
    if address.version != version:
        raise SettingsError(f"{_label(option)}: {value} is an IPv{address.version} address, "
                            f"expected IPv{version}")
    return address


def _split(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").replace(";", ",").split(",") if item.strip()]


def _networks(option: str, value: str | None, versions: set[int]) -> tuple[IPNetwork, ...]:
    result: list[IPNetwork] = []
    for item in _split(value):
        try:
            network = ipaddress.ip_network(item, strict=False)  # a bare IP means a host route
        except ValueError:
            raise SettingsError(f"{_label(option)}: {item!r} is not a CIDR") from None
        if network.version not in versions:
            raise SettingsError(
                f"{_label(option)}: {item} is IPv{network.version} but no IPv{network.version} "
                f"gateways are set (--internal-gateway-ipv{network.version} and "
                f"--external-gateway-ipv{network.version})")
        if network not in result:
            result.append(network)
    return tuple(result)


def _peers(value: str | None, versions: set[int]) -> tuple[IPAddress, ...]:
    result: list[IPAddress] = []
    for item in _split(value):
        try:
            address = ipaddress.ip_address(item)
        except ValueError:
            raise SettingsError(f"{_label('bfd-peers')}: {item!r} is not an IP address") from None
        if address.version not in versions:
            raise SettingsError(
                f"{_label('bfd-peers')}: {item} is IPv{address.version} but no "
                f"IPv{address.version} gateways are set, so there is no local address to peer from")
        if address not in result:
            result.append(address)
    return tuple(result)


def _integer(option: str, value: str | None, low: int, high: int) -> int:
    try:
        number = int(value or "")
    except ValueError:
        raise SettingsError(f"{_label(option)}: {value!r} is not an integer") from None
    if not low <= number <= high:
        raise SettingsError(f"{_label(option)}: {number} is outside {low}..{high}")
    return number


def _table(option: str, value: str | None) -> int:
    number = _integer(option, value, 1, 2**32 - 1)
    if number in RESERVED_TABLES:
        raise SettingsError(f"{_label(option)}: table {number} is reserved by the kernel")
    return number


def _seconds(option: str, value: str | None) -> float:
    try:
        number = float(value or "")
    except ValueError:
        raise SettingsError(f"{_label(option)}: {value!r} is not a number of seconds") from None
    if not 0.01 <= number <= 3600:
        raise SettingsError(f"{_label(option)}: {number} is outside 0.01..3600 seconds")
    return number


def _boolean(option: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise SettingsError(f"{_label(option)}: {value!r} is not a boolean")


def _listen(value: str | None) -> tuple[str, int]:
    text = value or ""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise SettingsError(f"{_label('listen')}: {text!r} is not HOST:PORT")
    host = host.strip("[]")
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise SettingsError(f"{_label('listen')}: {host!r} is not an IP address") from None
    return host, _integer("listen", port, 0, 65535)
