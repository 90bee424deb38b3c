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
from pathlib import Path
from typing import IO, Any

from prometheus_client import CollectorRegistry

from vegd.gateway import ctevents, records
from vegd.gateway.obs_metrics import ObservabilityMetrics
from vegd.model.errors import ValidationError
from vegd.model.observability import Observability, parse_observability

log = logging.getLogger(__name__)

QUEUE_SIZE = 4096
TRACKED_MAX = 65536
SUMMARY_INTERVAL = 10.0
RECORDS_FILE = "records/translations.jsonl"
ACCOUNTING = Path("/proc/sys/net/netfilter/nf_conntrack_acct")


class Observer:
    def __init__(self, registry: CollectorRegistry, identity: records.Identity,
                 config_path: Path | None, state_dir: Path, *,
                 stream: IO[str] | None = None, reload_interval: float = 2.0,
                 summary_interval: float = SUMMARY_INTERVAL, rcvbuf: int = 8 << 20) -> None:
        self.rcvbuf = rcvbuf
        self.metrics = ObservabilityMetrics(registry)
        self.identity = identity
        self.config_path = config_path
        self.state_dir = state_dir
        self.reload_interval = reload_interval
        self.summary_interval = summary_interval
        self.config = Observability()
        self._config_text: str | None = None
        self._writer = records.RecordWriter(stream)
        self._queue: queue.Queue[ctevents.CtEvent | None] = queue.Queue(QUEUE_SIZE)
        self._bucket = records.TokenBucket(100, 1000)
        self._lock = threading.Lock()
        self._tracked: OrderedDict[int, tuple[str, str, str]] = OrderedDict()
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
                continue
            if data:
                for event in ctevents.decode(data):
                    self._on_event(event)
        if sock is not None:
            sock.close()
        self._listening.clear()

    def _on_event(self, event: ctevents.CtEvent) -> None:
        nat = event.nat_type
        if nat is None:
            return  # not translated (forward-only sources, the agent's own traffic)
        m = self.metrics
        m.events.labels(event.event).inc()
        labels = (event.family, event.protocol, nat)
        if event.event == "start":
            m.flows_started.labels(*labels).inc()
            if event.conntrack_id not in self._tracked:
                m.flows_active.labels(*labels).inc()
            self._tracked[event.conntrack_id] = labels
            if len(self._tracked) > TRACKED_MAX:
                _, old = self._tracked.popitem(last=False)
                m.flows_active.labels(*old).dec()
                m.tracked_evictions.inc()
        else:
            m.flows_ended.labels(*labels).inc()
            if self._tracked.pop(event.conntrack_id, None) is not None:
                m.flows_active.labels(*labels).dec()
            for direction, c in (("original", event.counters_original),
                                 ("reply", event.counters_reply)):
                if c is not None:
                    m.packets.labels(*labels, direction).inc(c.packets)
                    m.bytes.labels(*labels, direction).inc(c.bytes)
        log_config = self.config.log
        if not log_config.enabled or event.event not in log_config.events:
            return
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._drop("queue_full")

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

    def _write_one(self, event: ctevents.CtEvent) -> None:
        with self._lock:
            config = self.config.log
            if not records.selected(config, event):
                reason = "filter"
            elif not self._bucket.allow():
                reason = "rate_limit"
            else:
                self._writer.write(records.record(event, self.identity, time.time()))
                self._written += 1
                reason = ""
        if reason:
            self._drop(reason)
        else:
            self.metrics.records_written.inc()

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
