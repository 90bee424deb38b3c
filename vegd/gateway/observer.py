"""`spec.observability` inside `vegd gateway run`: conntrack NAT metrics and translation records.

Two threads while conntrack events are wanted: the reader takes events off the ctnetlink socket,
updates the metrics (always complete, whatever the log settings) and queues what the log asked
for; the writer filters, rate-limits and writes records. The queue is bounded: when it is full
the record is counted as `queue_full`. Settings come from a JSON file (the ConfigMap the
controller keeps, mounted into the pod) that is re-read every few seconds: a change applies in
place, the pod is not restarted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from vegd.gateway import ctevents, records
from vegd.gateway.obs_metrics import ObservabilityMetrics
from vegd.model.errors import ValidationError
from vegd.model.observability import Observability, parse_observability

log = logging.getLogger(__name__)

QUEUE_SIZE = 16384  # records waiting for the writer (Kube-OVN: 4096); about 10 MB when full
RESYNC_INTERVAL = 10.0  # at most one table re-read per this many seconds: under sustained
# overload a re-read per overrun would spend the reader's time on dumps
TRACKED_MAX = 65536
SUMMARY_INTERVAL = 10.0
RECORDS_FILE = "records/translations.jsonl"
ACCOUNTING = Path("/proc/sys/net/netfilter/nf_conntrack_acct")


Key = tuple[int, ctevents.Endpoint]


def _key(event: ctevents.CtEvent) -> Key:
    return event.conntrack_id, event.original


@dataclasses.dataclass(frozen=True)
class _Recovered:
    """A start or end found by re-reading the table after an overrun: its event was lost
    (an end found this way has the start's tuples and no counters)."""

    event: ctevents.CtEvent


class _Bridge(Collector):
    """The observer's metrics as one collector of another registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()


class Observer:
    def __init__(self, registry: CollectorRegistry | None, identity: records.Identity,
                 config_path: Path | None, state_dir: Path, *,
                 stream: IO[str] | None = None, reload_interval: float = 2.0,
                 summary_interval: float = SUMMARY_INTERVAL, rcvbuf: int = 8 << 20) -> None:
        self.rcvbuf = rcvbuf
        # its own registry unless given one: `collector` serves it through another registry,
        # so the agent can register and unregister it as one collector
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ObservabilityMetrics(self.registry)
        self.collector = _Bridge(self.registry)
        self.identity = identity
        self.config_path = config_path
        self.state_dir = state_dir
        self.reload_interval = reload_interval
        self.summary_interval = summary_interval
        self.config = Observability()
        self._config_text: str | None = None
        self._writer = records.RecordWriter(stream)
        self._queue: queue.Queue[ctevents.CtEvent | _Recovered | None] = queue.Queue(QUEUE_SIZE)
        self._bucket = records.TokenBucket(100, 1000)
        self._lock = threading.Lock()
        # started connections by (conntrack ID, original tuple): the 32-bit ID alone collides
        # among tens of thousands of entries
        self._tracked: OrderedDict[Key, tuple[ctevents.CtEvent, int]] = OrderedDict()  # seen at
        # ended by a resync: their DESTROY event may still come out of the socket's buffer
        self._ended_by_resync: OrderedDict[Key, None] = OrderedDict()
        # a re-read recovers only entries created after this (ns): before the socket opened,
        # or before the newest start the tracked set had to forget, a start was seen or is not
        # the agent's to record
        self._recover_after_ns = time.time_ns()
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._since = time.time()
        self._stop = threading.Event()
        self._listening = threading.Event()  # the event socket is open
        self._threads: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Observer:
        self.reload()
        for name, target in (("ct-reader", self._read), ("ct-writer", self._write_loop)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        for t in self._threads:
            t.join(timeout=5)
        self._summary(force=True)
        self._writer.flush()
        self._writer.close_file()

    def tick(self) -> None:
        """From the agent's main loop: reload the settings when the file changed."""
        self.reload()

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    # -- settings ---------------------------------------------------------------------------

    def reload(self) -> None:
        if self.config_path is None:
            return
        try:
            text = self.config_path.read_text()
        except FileNotFoundError:
            text = ""  # the ConfigMap is optional: no file, everything off
        except OSError as exc:
            log.warning("cannot read %s: %s", self.config_path, exc)
            self.metrics.config_reloads.labels("failure").inc()
            return
        if text == self._config_text:
            return
        try:
            raw = json.loads(text) if text.strip() else {}
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            config = parse_observability(raw.get("observability"), str(self.config_path),
                                         "observability")
        except (ValueError, ValidationError) as exc:
            log.error("observability settings in %s are invalid, keeping the previous ones: %s",
                      self.config_path, exc)
            self.metrics.config_reloads.labels("failure").inc()
            self._config_text = text
            return
        self._apply(config)
        self._config_text = text
        # the controller names the gateway (the pod knows only its own name)
        self.identity = dataclasses.replace(
            self.identity, gateway=str(raw.get("gateway") or self.identity.gateway),
            namespace=self.identity.namespace or str(raw.get("namespace") or ""))
        self.metrics.config_reloads.labels("success").inc()
        log.info("observability settings loaded: conntrack metrics %s, log %s",
                 config.conntrack_metrics, config.log.enabled)

    def _apply(self, config: Observability) -> None:
        with self._lock:
            self.config = config
            self._bucket.configure(config.log.records_per_second, config.log.burst)
            f = config.log.file
            self._writer.configure_file(
                self.state_dir / RECORDS_FILE if config.log.enabled and f.enabled else None,
                f.max_size_mib << 20, f.max_files - 1)
        with contextlib.suppress(OSError, ValueError):
            self.metrics.accounting.set(int(ACCOUNTING.read_text().strip() == "1"))

    # -- reader -----------------------------------------------------------------------------

    def _read(self) -> None:
        sock: ctevents.EventSocket | None = None
        next_resync, resync_pending = 0.0, False
        while not self._stop.is_set():
            wanted = self.config.conntrack_events
            if wanted and sock is None:
                try:
                    sock = ctevents.EventSocket(self.rcvbuf)
                except OSError as exc:
                    log.error("cannot open the conntrack event socket: %s", exc)
                    self._stop.wait(5)
                    continue
                self._listening.set()
                self.metrics.listening.set(1)
                self._recover_after_ns = max(self._recover_after_ns, time.time_ns())
            elif not wanted and sock is not None:
                sock.close()
                sock = None
                self._listening.clear()
                self.metrics.listening.set(0)
            if sock is None:
                self._stop.wait(0.5)
                continue
            try:
                data = sock.recv()
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                # the kernel dropped events: how many is unknown, one or more per overrun
                self._drop("enobufs")
                resync_pending = True
            else:
                if data:
                    for event in ctevents.decode(data):
                        self._on_event(event)
            if resync_pending and time.monotonic() >= next_resync:
                resync_pending = False
                next_resync = time.monotonic() + RESYNC_INTERVAL
                self._resync()
        if sock is not None:
            sock.close()
        self._listening.clear()

    def _resync(self) -> None:
        """After an overrun, compare the conntrack table with what was seen: translated entries
        never seen starting get a `start` record, tracked ones that are gone an `end` record
        (without counters), both marked `recovered`. Only connections that started and ended
        inside the gap stay unrecorded; the `enobufs` count says there was one."""
        try:
            table = {_key(e): e for e in ctevents.dump() if e.nat_type is not None}
        except OSError as exc:
            log.warning("re-reading the conntrack table after an overrun failed: %s", exc)
            return
        # An entry created after the newest start the tracked set forgot, and not tracked, lost
        # its start event (an entry is created before its event is read). Without creation
        # times (nf_conntrack_timestamp off) every untracked entry counts.
        for cid, event in table.items():
            if cid not in self._tracked and (event.started_ns is None
                                             or event.started_ns > self._recover_after_ns):
                self._on_event(event, recovered=True)
        for cid in [c for c in self._tracked if c not in table]:
            start, _ = self._tracked[cid]
            self._on_event(dataclasses.replace(start, event="end"), recovered=True)
            self._ended_by_resync[cid] = None
            while len(self._ended_by_resync) > TRACKED_MAX:
                self._ended_by_resync.popitem(last=False)

    def _seen_by_resync(self, event: ctevents.CtEvent) -> bool:
        """The late event of an entry that a resync found (start) or found gone (end)."""
        if event.event == "start":
            return _key(event) in self._tracked
        return self._ended_by_resync.pop(_key(event), 0) is None

    def _enqueue(self, item: ctevents.CtEvent | _Recovered) -> None:
        try:
            if isinstance(item, _Recovered):
                # a table replay is the record of what was lost: wait for the writer (events
                # piling up meanwhile overrun again at worst, and the next replay dedupes)
                self._queue.put(item, timeout=5)
            else:
                self._queue.put_nowait(item)
        except queue.Full:
            self._drop("queue_full")

    def _on_event(self, event: ctevents.CtEvent, recovered: bool = False) -> None:
        nat = event.nat_type
        if nat is None:
            return  # not translated (forward-only sources, the agent's own traffic)
        if not recovered and self._seen_by_resync(event):
            return  # a resync already counted and recorded it
        m = self.metrics
        if recovered:
            m.recovered.labels(event.event).inc()
        else:
            m.events.labels(event.event).inc()
        labels = (event.family, event.protocol, nat)
        if event.event == "start":
            m.flows_started.labels(*labels).inc()
            if _key(event) not in self._tracked:
                m.flows_active.labels(*labels).inc()
            self._tracked[_key(event)] = (event, time.time_ns())
            if len(self._tracked) > TRACKED_MAX:
                _, (old, seen_at) = self._tracked.popitem(last=False)
                m.flows_active.labels(old.family, old.protocol, old.nat_type or "").dec()
                m.tracked_evictions.inc()
                self._recover_after_ns = max(self._recover_after_ns, seen_at)
        else:
            m.flows_ended.labels(*labels).inc()
            if self._tracked.pop(_key(event), None) is not None:
                m.flows_active.labels(*labels).dec()
            for direction, c in (("original", event.counters_original),
                                 ("reply", event.counters_reply)):
                if c is not None:
                    m.packets.labels(*labels, direction).inc(c.packets)
                    m.bytes.labels(*labels, direction).inc(c.bytes)
        log_config = self.config.log
        if not log_config.enabled or event.event not in log_config.events:
            return
        self._enqueue(_Recovered(event) if recovered else event)

    # -- writer -----------------------------------------------------------------------------

    def _drop(self, reason: str) -> None:
        self.metrics.records_dropped.labels(reason).inc()
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def _write_loop(self) -> None:
        next_summary = time.monotonic() + self.summary_interval
        while True:
            timeout = max(0.0, next_summary - time.monotonic())
            try:
                event = self._queue.get(timeout=min(timeout, 0.5))
            except queue.Empty:
                event = None
            else:
                if event is None:
                    break
            if event is not None:
                self._write_one(event)
                while True:  # drain what is queued before flushing once
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self._writer.flush()
                        return
                    self._write_one(more)
                self._writer.flush()
            if time.monotonic() >= next_summary:
                next_summary = time.monotonic() + self.summary_interval
                self._summary()
            if self._stop.is_set() and self._queue.empty():
                break

    def _write_one(self, item: ctevents.CtEvent | _Recovered) -> None:
        with self._lock:
            event = item.event if isinstance(item, _Recovered) else item
            if not records.selected(self.config.log, event):
                self._drop_locked("filter")
                return
            if not self._bucket.allow():
                self._drop_locked("rate_limit")
                return
            when = time.time()
            if isinstance(item, _Recovered) and event.event == "start" and event.started_ns:
                when = event.started_ns / 1e9  # the kernel's creation time, not the re-read's
            line = records.record(event, self.identity, when)
            if isinstance(item, _Recovered):
                line["recovered"] = True  # its event was lost; found in the table
            self._writer.write(line)
            self._written += 1
        self.metrics.records_written.inc()

    def _drop_locked(self, reason: str) -> None:
        """Count a drop while holding the lock (the writer's path)."""
        self.metrics.records_dropped.labels(reason).inc()
        self._dropped[reason] = self._dropped.get(reason, 0) + 1

    def _summary(self, force: bool = False) -> None:
        """A summary line when something was not written since the last one (or at exit)."""
        with self._lock:
            if not self._dropped and not (force and self._written):
                return
            now = time.time()
            self._writer.write(records.summary(self._written, self._dropped, self._since, now,
                                               self.identity))
            self._writer.flush()
            self._written, self._dropped, self._since = 0, {}, now

    def snapshot(self) -> dict[str, Any]:
        """Counts since the last summary (for tests and debugging)."""
        with self._lock:
            return {"written": self._written, "dropped": dict(self._dropped)}
