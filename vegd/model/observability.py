"""`spec.observability` of a gateway: what its agent measures and which translation records it
writes. The same parser reads the spec (controller) and the agent's reloadable config file
(the ConfigMap the controller writes), so both sides agree on every default and bound.

Shape and bounds follow Kube-OVN's VpcEgressGateway observability API where it fits
(docs/gateway.md); `conntrack.log.file` is vegd's own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vegd.model.errors import ValidationError

EVENTS = ("start", "end")
ADDRESS_FAMILIES = ("ipv4", "ipv6")
PROTOCOLS = ("tcp", "udp", "sctp", "icmp", "icmpv6", "other")
NAT_TYPES = ("snat", "dnat", "snat_dnat")
MAX_RULES = 64
MAX_LIST = 64
RATE_RANGE = (1, 100_000)
BURST_RANGE = (1, 1_000_000)
FILE_SIZE_MIB = (1, 1024)
FILE_COUNT = (1, 20)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TupleFilter:
    """Conditions on one tuple (original or translated); each non-empty list must match."""

    source_cidrs: tuple[Network, ...] = ()
    destination_cidrs: tuple[Network, ...] = ()
    source_ports: tuple[tuple[int, int], ...] = ()
    destination_ports: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class FilterRule:
    address_families: tuple[str, ...] = ()
    protocols: tuple[str, ...] = ()
    nat_types: tuple[str, ...] = ()
    original: TupleFilter = TupleFilter()
    translated: TupleFilter = TupleFilter()


@dataclass(frozen=True)
class LogFile:
    enabled: bool = False
    max_size_mib: int = 64
    max_files: int = 5


@dataclass(frozen=True)
class ConntrackLog:
    enabled: bool = False
    events: tuple[str, ...] = EVENTS
    records_per_second: int = 100
    burst: int = 1000
    include: tuple[FilterRule, ...] = ()
    exclude: tuple[FilterRule, ...] = ()
    file: LogFile = LogFile()


@dataclass(frozen=True)
class Observability:
    interface_metrics: bool = False
    conntrack_metrics: bool = False
    log: ConntrackLog = ConntrackLog()

    @property
    def conntrack_events(self) -> bool:
        """Whether the agent has to listen to conntrack events at all."""
        return self.conntrack_metrics or self.log.enabled


def _obj(raw: Any, obj: str, field: str) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValidationError(obj, field, "must be an object")
    return raw


def _flag(raw: Mapping[str, Any], obj: str, field: str) -> bool:
    value = raw.get("enabled", False)
    if not isinstance(value, bool):
        raise ValidationError(obj, f"{field}.enabled", f"{value!r} is not true or false")
    return value


def _bounded(raw: Any, default: int, bounds: tuple[int, int], obj: str, field: str) -> int:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValidationError(obj, field, f"{raw!r} is not an integer")
    if not bounds[0] <= raw <= bounds[1]:
        raise ValidationError(obj, field, f"{raw} is out of range {bounds[0]}..{bounds[1]}")
    return raw


def _choices(raw: Any, allowed: tuple[str, ...], obj: str, field: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > len(allowed):
        raise ValidationError(obj, field, f"must be a list of at most {len(allowed)} of "
                              f"{', '.join(allowed)}")
    for item in raw:
        if item not in allowed:
            raise ValidationError(obj, field, f"{item!r} is not one of {', '.join(allowed)}")
    if len(set(raw)) != len(raw):
        raise ValidationError(obj, field, "lists a value twice")
    return tuple(raw)


def _list(raw: Any, obj: str, field: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValidationError(obj, field, "must be a list")
    if len(raw) > MAX_LIST:
        raise ValidationError(obj, field, f"has {len(raw)} items, at most {MAX_LIST}")
    return raw


def _ports(raw: Any, obj: str, field: str) -> tuple[tuple[int, int], ...]:
    out = []
    for i, item in enumerate(_list(raw, obj, field)):
        where = f"{field}[{i}]"
        item = _obj(item, obj, where)
        start = _bounded(item.get("start"), -1, (0, 65535), obj, f"{where}.start")
        end = _bounded(item.get("end"), start, (0, 65535), obj, f"{where}.end")
        if start < 0:
            raise ValidationError(obj, f"{where}.start", "is required")
        if start > end:
            raise ValidationError(obj, where, "start must be less than or equal to end")
        out.append((start, end))
    return tuple(out)


def _cidrs(raw: Any, obj: str, field: str) -> tuple[Network, ...]:
    out = []
    for item in _list(raw, obj, field):
        try:
            out.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ValidationError(obj, field, f"{item!r} is not a CIDR") from None
    return tuple(out)


def _tuple_filter(raw: Any, obj: str, field: str) -> TupleFilter:
    m = _obj(raw, obj, field)
    return TupleFilter(
        _cidrs(m.get("sourceCIDRs"), obj, f"{field}.sourceCIDRs"),
        _cidrs(m.get("destinationCIDRs"), obj, f"{field}.destinationCIDRs"),
        _ports(m.get("sourcePorts"), obj, f"{field}.sourcePorts"),
        _ports(m.get("destinationPorts"), obj, f"{field}.destinationPorts"))


def _rules(raw: Any, obj: str, field: str) -> tuple[FilterRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError(obj, field, "must be a list")
    if len(raw) > MAX_RULES:
        raise ValidationError(obj, field, f"has {len(raw)} rules, at most {MAX_RULES}")
    out = []
    for i, item in enumerate(raw):
        where = f"{field}[{i}]"
        m = _obj(item, obj, where)
        out.append(FilterRule(
            _choices(m.get("addressFamilies"), ADDRESS_FAMILIES, obj, f"{where}.addressFamilies"),
            _choices(m.get("protocols"), PROTOCOLS, obj, f"{where}.protocols"),
            _choices(m.get("natTypes"), NAT_TYPES, obj, f"{where}.natTypes"),
            _tuple_filter(m.get("original"), obj, f"{where}.original"),
            _tuple_filter(m.get("translated"), obj, f"{where}.translated")))
    return tuple(out)


def parse_observability(raw: Any, obj: str, field: str = "spec.observability") -> Observability:
    m = _obj(raw, obj, field)
    conntrack = _obj(m.get("conntrack"), obj, f"{field}.conntrack")
    log_raw = _obj(conntrack.get("log"), obj, f"{field}.conntrack.log")
    where = f"{field}.conntrack.log"
    rate = _obj(log_raw.get("rateLimit"), obj, f"{where}.rateLimit")
    filters = _obj(log_raw.get("filters"), obj, f"{where}.filters")
    file_raw = _obj(log_raw.get("file"), obj, f"{where}.file")
    events = _choices(log_raw.get("events"), EVENTS, obj, f"{where}.events") or EVENTS
    log = ConntrackLog(
        enabled=_flag(log_raw, obj, where),
        events=tuple(e for e in EVENTS if e in events),
        records_per_second=_bounded(rate.get("recordsPerSecond"), 100, RATE_RANGE, obj,
                                    f"{where}.rateLimit.recordsPerSecond"),
        burst=_bounded(rate.get("burst"), 1000, BURST_RANGE, obj, f"{where}.rateLimit.burst"),
        include=_rules(filters.get("include"), obj, f"{where}.filters.include"),
        exclude=_rules(filters.get("exclude"), obj, f"{where}.filters.exclude"),
        file=LogFile(_flag(file_raw, obj, f"{where}.file"),
                     _bounded(file_raw.get("maxSizeMiB"), 64, FILE_SIZE_MIB, obj,
                              f"{where}.file.maxSizeMiB"),
                     _bounded(file_raw.get("maxFiles"), 5, FILE_COUNT, obj,
                              f"{where}.file.maxFiles")))
    return Observability(
        interface_metrics=_flag(_obj(m.get("interfaceMetrics"), obj, f"{field}.interfaceMetrics"),
                                obj, f"{field}.interfaceMetrics"),
        conntrack_metrics=_flag(_obj(conntrack.get("metrics"), obj, f"{field}.conntrack.metrics"),
                                obj, f"{field}.conntrack.metrics"),
        log=log)


def _tuple_spec(t: TupleFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, nets in (("sourceCIDRs", t.source_cidrs), ("destinationCIDRs", t.destination_cidrs)):
        if nets:
            out[key] = [str(n) for n in nets]
    for key, ports in (("sourcePorts", t.source_ports), ("destinationPorts", t.destination_ports)):
        if ports:
            out[key] = [{"start": a, "end": b} for a, b in ports]
    return out


def _rule_spec(rule: FilterRule) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, values in (("addressFamilies", rule.address_families),
                        ("protocols", rule.protocols), ("natTypes", rule.nat_types)):
        if values:
            out[key] = list(values)
    for key, t in (("original", rule.original), ("translated", rule.translated)):
        spec = _tuple_spec(t)
        if spec:
            out[key] = spec
    return out


def observability_spec(o: Observability) -> dict[str, Any]:
    """The normalised spec (every default filled in), as the agent's config file holds it;
    `parse_observability` reads it back to an equal value."""
    log = o.log
    return {
        "interfaceMetrics": {"enabled": o.interface_metrics},
        "conntrack": {
            "metrics": {"enabled": o.conntrack_metrics},
            "log": {
                "enabled": log.enabled,
                "events": list(log.events),
                "rateLimit": {"recordsPerSecond": log.records_per_second, "burst": log.burst},
                "filters": {"include": [_rule_spec(r) for r in log.include],
                            "exclude": [_rule_spec(r) for r in log.exclude]},
                "file": {"enabled": log.file.enabled, "maxSizeMiB": log.file.max_size_mib,
                         "maxFiles": log.file.max_files},
            },
        },
    }
