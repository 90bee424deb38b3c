"""Translation records (JSON Lines, schema `vegd.translation/v1`): build, filter, rate-limit and
write them. Nothing is dropped silently: every record not written is counted by reason, and the
counts since the last summary are written into the stream itself as a `summary` line.

Record fields (docs/gateway.md has an example):
  schema, type ("translation"), timestamp (RFC 3339, UTC, ms), event (start | end),
  conntrackID, zone, namespace, gateway, pod, node, family (ipv4 | ipv6), protocol,
  natType (snat | dnat | snat_dnat), original and translated tuples {source, sourcePort,
  destination, destinationPort}, and on end records counters {original, reply} of
  {packets, bytes} (when conntrack accounting is on).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from vegd.gateway.ctevents import CtEvent, Endpoint
from vegd.model.observability import ConntrackLog, FilterRule, TupleFilter

SCHEMA = "vegd.translation/v1"
DROP_REASONS = ("enobufs", "queue_full", "rate_limit", "filter")


@dataclass(frozen=True)
class Identity:
    namespace: str = ""
    gateway: str = ""
    pod: str = ""
    node: str = ""


def _timestamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _tuple(e: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {"source": e.source, "destination": e.destination}
    if e.source_port is not None:
        out["sourcePort"] = e.source_port
    if e.destination_port is not None:
        out["destinationPort"] = e.destination_port
    return out


def record(event: CtEvent, who: Identity, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "schema": SCHEMA, "type": "translation", "timestamp": _timestamp(now),
        "event": event.event, "conntrackID": event.conntrack_id, "zone": event.zone,
        "namespace": who.namespace, "gateway": who.gateway, "pod": who.pod, "node": who.node,
        "family": event.family, "protocol": event.protocol, "natType": event.nat_type,
        "original": _tuple(event.original), "translated": _tuple(event.translated),
    }
    if event.event == "end" and event.counters_original and event.counters_reply:
        out["counters"] = {
            "original": {"packets": event.counters_original.packets,
                         "bytes": event.counters_original.bytes},
            "reply": {"packets": event.counters_reply.packets,
                      "bytes": event.counters_reply.bytes}}
    return out


# ------------------------------------------------------------------------------- filters

def _ports_match(ranges: tuple[tuple[int, int], ...], port: int | None) -> bool:
    return not ranges or (port is not None and any(a <= port <= b for a, b in ranges))


def _cidrs_match(nets: tuple[Any, ...], address: str) -> bool:
    if not nets:
        return True
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in nets)


def _tuple_match(f: TupleFilter, e: Endpoint) -> bool:
    return (_cidrs_match(f.source_cidrs, e.source)
            and _cidrs_match(f.destination_cidrs, e.destination)
            and _ports_match(f.source_ports, e.source_port)
            and _ports_match(f.destination_ports, e.destination_port))


def rule_matches(rule: FilterRule, event: CtEvent) -> bool:
    return ((not rule.address_families or event.family in rule.address_families)
            and (not rule.protocols or event.protocol in rule.protocols)
            and (not rule.nat_types or event.nat_type in rule.nat_types)
            and _tuple_match(rule.original, event.original)
            and _tuple_match(rule.translated, event.translated))


def selected(log: ConntrackLog, event: CtEvent) -> bool:
    """Included (by a rule, or there are none) and not excluded: exclude wins."""
    if log.include and not any(rule_matches(r, event) for r in log.include):
        return False
    return not any(rule_matches(r, event) for r in log.exclude)


# ------------------------------------------------------------------------------- rate limit

@dataclass
class TokenBucket:
    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens, self.stamp = float(self.burst), self.clock()

    def configure(self, rate: float, burst: int) -> None:
        self.take_time()
        self.rate, self.burst = rate, burst
        self.tokens = min(self.tokens, float(burst))

    def take_time(self) -> None:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def allow(self) -> bool:
        self.take_time()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


# ------------------------------------------------------------------------------- output

class RecordWriter:
    """Lines to stdout and, when configured, to a size-rotated file (the standard library's
    RotatingFileHandler: `translations.jsonl`, `.1` … `.<maxFiles-1>`)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self._file: logging.handlers.RotatingFileHandler | None = None
        self._file_key: tuple[str, int, int] | None = None

    def configure_file(self, path: Path | None, max_bytes: int, backups: int) -> None:
        key = (str(path), max_bytes, backups) if path is not None else None
        if key == self._file_key:
            return
        self.close_file()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = logging.handlers.RotatingFileHandler(
                path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
            self._file.setFormatter(logging.Formatter("%(message)s"))
        self._file_key = key

    def write(self, line: dict[str, Any]) -> None:
        text = json.dumps(line, separators=(",", ":"))
        self.stream.write(text + "\n")
        if self._file is not None:
            self._file.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))

    def flush(self) -> None:
        self.stream.flush()

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._file_key = None


def summary(written: int, dropped: dict[str, int], since: float, now: float,
            who: Identity) -> dict[str, Any]:
    """What happened since the last summary: records written, and not written by reason."""
    return {"schema": SCHEMA, "type": "summary", "timestamp": _timestamp(now),
            "since": _timestamp(since), "namespace": who.namespace, "gateway": who.gateway,
            "pod": who.pod, "node": who.node, "written": written,
            "dropped": {r: dropped.get(r, 0) for r in DROP_REASONS},
            "note": "enobufs counts receive-buffer overruns of the conntrack event socket; "
                    "each lost one or more events"}
