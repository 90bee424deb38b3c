"""The running controller: caches, queue, one worker, leadership and periodic passes.

Leadership is the OVSDB lock on NB (`vegd_<vendor>`), not a Kubernetes Lease: the database vegd
writes is the one that fences it. ovsdb-server grants the lock to one client, drops it the moment
that client's connection closes (a dead process frees it at once, no lease to expire), and every
transaction asserts it, so a deposed vegd cannot write NB even if it has not noticed yet. A
standby keeps its caches warm and takes over with a full resync. See docs/decisions.md.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from vegd.controller.keys import (
    deployment_keys,
    gateway_key,
    keys_for,
    keys_for_vpc_gateways,
    vpc_key,
)
from vegd.controller.metrics import ControllerMetrics
from vegd.controller.queue import WorkQueue
from vegd.controller.reconciler import GC_KEY, Reconciler, Retry
from vegd.kube.api import Obj
from vegd.kube.cache import Cache
from vegd.kube.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    GATEWAYS,
    PODS,
    VPCS,
    Resource,
    object_key,
)
from vegd.model.objects import GATEWAY_LABEL
from vegd.nb.errors import NotLockHolder
from vegd.plan.gateway import OWNER_KEY as GATEWAY_OWNER_KEY

log = structlog.get_logger("vegd.controller")

STUCK_SECONDS = 120.0
BATCH_KEYS = 256  # keys written in one NB transaction at most
SWITCH_INTERVAL = 0.0005  # seconds; sys.setswitchinterval once the first full pass is done


@dataclass
class Stats:
    reconciles: int = 0
    failures: int = 0
    resyncs: int = 0
    resyncs_completed: int = 0  # passes whose every key (and the GC) has been worked on
    active: bool = False
    active_since: float = 0.0
    last_error: dict[str, str] = field(default_factory=dict)


class Controller:
    def __init__(self, reconciler: Reconciler, resync_period: float = 300.0,
                 poll_interval: float = 0.1, metrics: ControllerMetrics | None = None) -> None:
        self.reconciler = reconciler
        self.ctx = reconciler.ctx
        self.cache: Cache = reconciler.ctx.cache
        self.queue = WorkQueue()
        self.resync_period = resync_period
        self.poll_interval = poll_interval
        self.stats = Stats()
        self._stop = threading.Event()
        self._chassis_seen: dict[str, str] = {}
        self._sb_seqno = -1
        self.heartbeat = time.monotonic()  # the main loop's, for /livez
        self.started = time.monotonic()
        self.working_since = 0.0  # when the current batch's NB write started (0: idle)
        self.finishing_since = 0.0  # when the finisher started a batch's Kubernetes writes
        self._worker: threading.Thread | None = None
        # batches whose NB rows are written, waiting for their Kubernetes writes (bounded: the
        # worker waits when the API server falls two batches behind)
        self._finishing: queue.Queue[Any] = queue.Queue(maxsize=2)
        self._finisher = threading.Thread(target=self._finish, daemon=True, name="vegd-finisher")
        self._resync_pending: set[str] = set()  # keys of the current full pass not yet worked
        self._resync_lock = threading.Lock()
        # `vegd run` shortens the GIL switch interval after the first pass (a process of its
        # own; tests run many controllers in one)
        self.tune_runtime = False
        self._tuned = False
        # called on every turn of the main loop (systemd's watchdog and status, in `vegd run`)
        self.on_tick: Callable[[Controller], None] | None = None
        self.metrics = metrics if metrics is not None else ControllerMetrics()
        self.metrics.watch(self)
        self.cache.subscribe(self.on_change, self.on_relist)
        reconciler.on_pulled = self.queue.add
        self.ctx.nb.watch_owners(self.on_nb_owner)

    # -- event handlers (informer threads: enqueue only) ---------------------------------------

    def on_change(self, resource: Resource, old: Any, new: Any, old_raw: Obj | None,
                  new_raw: Obj | None) -> None:
        if not self.cache.synced or self.cache.relisting(resource):
            return  # a full resync follows the first sync and every relist
        if resource is DEPLOYMENTS or resource is CONFIGMAPS:
            snap = self.cache.snapshot()
            keys = deployment_keys(old_raw, snap) | deployment_keys(new_raw, snap)
        elif resource is GATEWAYS:
            keys = {gateway_key(object_key(new_raw or old_raw or {}))}
            # Always this gateway, even for a status-only change: the status a reconcile
            # compares with comes from the cache, which may have lagged behind our own write.
            if old_raw is None or new_raw is None or \
                    _gateway_intent(old_raw) != _gateway_intent(new_raw):
                # overlapping sources are decided between the gateways of a VPC
                keys |= keys_for_vpc_gateways(old, new, self.cache.snapshot())
        elif resource is VPCS and old_raw is not None and new_raw is not None and old == new:
            keys = {vpc_key(object_key(new_raw))}  # status only
        else:
            if old == new:
                return  # nothing vegd reads changed (status heartbeats, other annotations)
            # which gateways a pod concerns reads no other pod: no snapshot rebuilt per event
            snap = self.cache.pod_free_snapshot() if resource is PODS else self.cache.snapshot()
            keys = keys_for(old, new, snap)
            if resource is PODS and not _instance(old) and not _instance(new):
                # a pod that is no gateway's instance can only change selected pods
                for key in keys:
                    self.queue.add(key, full=False)
                return
        for key in keys:
            self.queue.add(key)

    def on_nb_owner(self, owner: tuple[str, str]) -> None:
        """A row of ours changed in NB and not by our own write (drift, a deleted row, an
        orphan), or ovn-northd reported a BFD session's state: reconcile its owner. Called in
        the NB connection thread: enqueue only."""
        if not self.stats.active or not self.cache.synced:
            return  # the takeover's full resync covers it
        key, value = owner
        self.queue.add(gateway_key(value) if key == GATEWAY_OWNER_KEY else vpc_key(value))

    def on_relist(self, resource: Resource) -> None:
        log.info("relisted, resyncing", resource=resource.plural)
        self.enqueue_all()

    # -- passes --------------------------------------------------------------------------------

    def enqueue_all(self) -> None:
        for key in self.reconciler.all_keys():
            self.queue.add(key)

    def _resync(self) -> None:
        self.stats.resyncs += 1
        self.metrics.full_resyncs.inc()
        keys = self.reconciler.all_keys()
        with self._resync_lock:
            self._resync_pending = {*keys, GC_KEY}
        for key in keys:
            self.queue.add(key)
        # in the worker, after the keys: never concurrent with an owner's first write
        self.queue.add(GC_KEY)

    def _worked(self, key: str) -> None:
        """Track the full pass: complete when each of its keys has been worked on once
        (whatever the outcome: a key that keeps failing must not hold readiness back)."""
        with self._resync_lock:
            if key not in self._resync_pending:
                return
            self._resync_pending.discard(key)
            if self._resync_pending:
                return
        self.stats.resyncs_completed += 1
        self.metrics.resync_completed()
        log.info("full resync completed", passes=self.stats.resyncs_completed,
                 seconds_since_start=round(time.monotonic() - self.started, 3))

    def _chassis_changes(self) -> None:
        """A chassis registering (or its hostname changing) in SB changes which nodes can carry
        a VPC's BFD port: the VPCs are reconciled again."""
        sb = self.ctx.sb
        if sb is None or sb.change_seqno == self._sb_seqno:
            return
        self._sb_seqno = sb.change_seqno
        chassis = sb.chassis_by_hostname()
        if chassis != self._chassis_seen:
            self._chassis_seen = chassis
            for vpc in self.reconciler.snapshot().all_vpcs():
                self.queue.add(vpc_key(vpc.name))

    # -- the worker ----------------------------------------------------------------------------

    def _work(self) -> None:
        """Take a batch, write its NB rows, hand its Kubernetes writes to the finisher: the next
        batch's NB write does not wait for the API server."""
        while not self._stop.is_set() and self.stats.active:
            keys = self.queue.get_batch(BATCH_KEYS, timeout=self.poll_interval)
            if not keys:
                continue
            start = self.working_since = time.monotonic()
            members_only = {k for k in keys if self.queue.members_only(k)}
            try:
                failed, finishes = self.reconciler.write_batch(keys, members_only)
            except Exception as exc:  # a bug outside any one key: retry them all
                log.exception("reconcile crashed", keys=len(keys))
                failed, finishes = {k: exc for k in keys}, []
            finally:
                self.working_since = 0.0
            self._finishing.put((keys, start, failed, finishes, self.reconciler.take_summary()))

    def _finish(self) -> None:
        """The finisher: each batch's Kubernetes writes, then its keys are done."""
        while True:
            item = self._finishing.get()
            if item is None:
                return
            keys, start, failed, finishes, summary = item
            self.finishing_since = time.monotonic()
            try:
                failed.update(self.reconciler.finish_batch(finishes))
            except Exception as exc:  # a bug: retry the batch's keys
                log.exception("finishing a batch crashed", keys=len(keys))
                failed.update({k: exc for k, _ in finishes})
            finally:
                self.finishing_since = 0.0
            for key in keys:
                self._settle(key, failed.get(key))
                self.queue.done(key)
                # a batch is one NB transaction: each of its keys took the batch's time
                self.metrics.observe_reconcile(key, _outcome(failed.get(key)),
                                               time.monotonic() - start)
                self._worked(key)
            self.stats.reconciles += len(keys)
            for name, count in self.reconciler.take_summary().items():
                summary[name] = summary.get(name, 0) + count
            # the one log line of a batch: info when it changed something or failed
            emit = log.info if summary or failed else log.debug
            emit("reconciled", keys=keys[0] if len(keys) == 1 else len(keys),
                 failed=len(failed), seconds=round(time.monotonic() - start, 4), **summary)

    def _settle(self, key: str, error: Exception | None) -> None:
        if error is None:
            self.queue.forget(key)
            self.stats.last_error.pop(key, None)
            return
        self.stats.failures += 1
        delay = self.queue.add_rate_limited(key)
        if isinstance(error, Retry):
            self.stats.last_error[key] = str(error)
            if isinstance(error.__cause__, NotLockHolder):
                self.stats.active = False
            log.warning("reconcile will be retried", key=key, error=str(error),
                        retry_in=round(delay, 3))
        else:  # a bug: keep serving the other keys, retry this one
            self.stats.last_error[key] = repr(error)
            log.error("reconcile crashed", key=key, error=repr(error),
                      exc_info=(type(error), error, error.__traceback__))

    # -- the main loop -------------------------------------------------------------------------

    def run(self) -> None:
        """Until stop(): wait for caches, then follow leadership and the timers."""
        self.started = time.monotonic()
        self.cache.start()
        while not self.cache.wait_synced(0.5):
            self._tick()
            if self._stop.is_set():
                return
        log.info("caches synced")
        next_resync = 0.0
        epoch = self.ctx.nb.connection_epoch
        while not self._stop.is_set():
            self._tick()
            leader = self.ctx.nb.has_lock
            if leader and not self.stats.active:
                self._become_active()
                next_resync = 0.0
            elif not leader and self.stats.active:
                log.info("lost the NB lock, standing by")
                self.stats.active = False
            if self.stats.active:
                now = time.monotonic()
                new_epoch = self.ctx.nb.connection_epoch
                if new_epoch != epoch:
                    epoch, next_resync = new_epoch, 0.0  # reconnected: NB may have changed
                if now >= next_resync:
                    self._resync()
                    next_resync = now + self.resync_period
                self._chassis_changes()
                if self._worker is None or not self._worker.is_alive():
                    self._start_worker()
                if self.tune_runtime and self.stats.resyncs_completed and not self._tuned:
                    self._settle_runtime()
            self._stop.wait(self.poll_interval)

    def _settle_runtime(self) -> None:
        """From now on the work is one event at a time across four threads (informer, worker, NB
        connection, finisher): a thread back from a system call waited up to the default 5 ms
        for the interpreter lock while another computed, at each of the event's hops. (The heap
        is frozen at the same moment, by vegd/heap.py.)"""
        self._tuned = True
        sys.setswitchinterval(SWITCH_INTERVAL)
        log.info("first full pass done: GIL switch interval shortened",
                 switch_interval=SWITCH_INTERVAL)

    def _tick(self) -> None:
        self.heartbeat = time.monotonic()
        if self.on_tick is not None:
            self.on_tick(self)

    def _become_active(self) -> None:
        log.info("holding the NB lock: active")
        self.stats.active = True
        self.stats.active_since = time.monotonic()

    def _start_worker(self) -> None:
        if not self._finisher.is_alive():
            self._finisher.start()
        self._worker = threading.Thread(target=self._work, daemon=True, name="vegd-worker")
        self._worker.start()

    def request_stop(self) -> None:
        """Safe from a signal handler: only flags; run() returns and stop() joins."""
        self._stop.set()
        self.queue.shut_down()

    def stop(self) -> None:
        self.request_stop()
        if self._worker is not None:
            self._worker.join(timeout=10)
        if self._finisher.is_alive():
            self._finishing.put(None)  # after the last batch: it is finished first
            self._finisher.join(timeout=10)
        self.cache.stop()

    @property
    def busy(self) -> bool:
        """A batch is being written or finished, or waits to be finished."""
        return bool(self.working_since or self.finishing_since or not self._finishing.empty())

    @property
    def healthy(self) -> bool:
        """Alive: the main loop turns, and no reconcile has been stuck for minutes (a hung
        active replica would keep the NB lock forever; the liveness probe restarts it)."""
        now = time.monotonic()
        if self._stop.is_set() or not self.cache.synced:
            return not self._stop.is_set()
        stuck = any(since and now - since > STUCK_SECONDS
                    for since in (self.working_since, self.finishing_since))
        return now - self.heartbeat < STUCK_SECONDS and not stuck


def _outcome(error: Exception | None) -> str:
    return "ok" if error is None else "retry" if isinstance(error, Retry) else "error"


def _instance(pod: Any) -> bool:
    """A pod (model) of some gateway's Deployment."""
    return pod is not None and GATEWAY_LABEL in pod.label_map


def _gateway_intent(raw: Obj) -> tuple[Any, ...]:
    meta = raw.get("metadata") or {}
    return (raw.get("spec"), meta.get("generation"), meta.get("deletionTimestamp"),
            tuple(meta.get("finalizers") or ()), meta.get("labels"), meta.get("uid"))
