"""The controller's Prometheus metrics, on one registry per controller (the process's in `vegd
run`, a fresh one per in-process test controller).

What the worker measures as it goes (reconcile durations, resyncs) are client objects; what is a
state of something else (queue, leadership, informers, the NB replica) is read at scrape time by
a collector, so it can never be stale or forgotten on some code path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from vegd.plan.gateway import OWNER_KEY as GATEWAY_OWNER_KEY

# Reconciles take milliseconds when nothing changed and up to seconds on a big NB transaction.
RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0)
# what ovn-northd writes into BFD.status; "unknown" until it has written anything
BFD_STATES = ("admin_down", "down", "init", "up", "unknown")
KINDS = {"veg": "gateway", "vpc": "vpc", "gc": "garbage_collection"}


def key_kind(key: str) -> str:
    return KINDS.get(key.partition(":")[0], "other")


class ControllerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reconcile_duration = Histogram(
            "vegd_reconcile_duration_seconds",
            "Time one reconcile took (a batched key: its batch's time), by kind of key "
            "(gateway, vpc, garbage_collection) and outcome (ok, retry, error)",
            ["kind", "outcome"], buckets=RECONCILE_BUCKETS, registry=self.registry)
        self.full_resyncs = Counter(
            "vegd_full_resyncs_total",
            "Full resync passes started (every owner queued again, then garbage collection)",
            registry=self.registry)
        self.last_full_resync = Gauge(
            "vegd_last_full_resync_timestamp_seconds",
            "Unix time when the last full resync pass was completed (0: none yet)",
            registry=self.registry)

    def observe_reconcile(self, key: str, outcome: str, seconds: float) -> None:
        self.reconcile_duration.labels(key_kind(key), outcome).observe(seconds)

    def resync_completed(self) -> None:
        self.last_full_resync.set(time.time())

    def watch(self, controller: Any) -> None:
        """Register the scrape-time collector of `controller`'s state."""
        self.registry.register(_StateCollector(controller))


class _StateCollector(Collector):
    def __init__(self, controller: Any) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        c = self.controller
        yield _gauge("vegd_leader", "1 while this vegd holds the NB lock and reconciles",
                     int(c.stats.active))
        yield _gauge("vegd_caches_synced", "1 when every informer has listed once",
                     int(c.cache.synced))
        yield _gauge("vegd_workqueue_depth", "Keys waiting in the work queue (delayed retries "
                     "included)", len(c.queue))
        yield _gauge("vegd_workqueue_oldest_item_age_seconds",
                     "How long the oldest key ready for a worker has been waiting",
                     c.queue.oldest_age())
        held = getattr(c.reconciler, "foreign", {})
        yield _gauge("vegd_foreign_gateways", "Gateways held off: another controller runs them "
                     "(docs/decisions.md, coexistence)",
                     sum(1 for k in held if not k.startswith("vpc:")))
        yield _gauge("vegd_foreign_vpcs", "VPC BFD ports held off: another controller's rows",
                     sum(1 for k in held if k.startswith("vpc:")))
        yield from self._informers(c.cache)
        yield from self._nb(c.ctx.nb)

    def _informers(self, cache: Any) -> Iterator[Metric]:
        restarts = CounterMetricFamily(
            "vegd_kube_watch_restarts_total",
            "Watches of a kind that ended and were started again (timeouts, errors, 410 Gone)",
            labels=["kind"])
        relists = CounterMetricFamily(
            "vegd_kube_relists_total", "Full lists of a kind after the first one",
            labels=["kind"])
        for kind, informer in sorted(cache.informers.items()):
            restarts.add_metric([kind], informer.watch_restarts)
            relists.add_metric([kind], max(0, informer.relists - 1))
        yield restarts
        yield relists

    def _nb(self, nb: Any) -> Iterator[Metric]:
        yield CounterMetricFamily("vegd_nb_transactions_total",
                                  "NB write transactions committed", value=nb.transactions)
        failures = CounterMetricFamily(
            "vegd_nb_transaction_failures_total",
            "NB transactions that failed, by reason (not_lock_holder, timeout, connection_lost, "
            "unavailable, constraint, refused, error)",
            labels=["reason"])
        for reason, count in sorted(nb.failures.items()):
            failures.add_metric([reason], count)
        yield failures
        rows = GaugeMetricFamily("vegd_nb_owned_rows", "NB rows vegd owns, by table",
                                 labels=["table"])
        per_table: dict[str, int] = {}
        for tables in nb.owned_row_counts().values():
            for table, count in tables.items():
                per_table[table] = per_table.get(table, 0) + count
        for table, count in sorted(per_table.items()):
            rows.add_metric([table], count)
        yield rows
        up = GaugeMetricFamily(
            "vegd_bfd_session_up",
            "1 when ovn-northd reports the BFD session to a gateway instance up",
            labels=["namespace", "gateway", "nexthop"])
        state = GaugeMetricFamily(
            "vegd_bfd_session_state",
            "BFD session state of a gateway instance as ovn-northd reports it: 1 for the "
            "current state", labels=["namespace", "gateway", "nexthop", "state"])
        for owner, sessions in sorted(nb.bfd_status_by_owner(GATEWAY_OWNER_KEY).items()):
            namespace, _, gateway = owner.partition("/")
            for nexthop, status in sorted(sessions.items()):
                current = status or "unknown"
                up.add_metric([namespace, gateway, nexthop], int(current == "up"))
                for s in BFD_STATES:
                    state.add_metric([namespace, gateway, nexthop, s], int(current == s))
        yield up
        yield state


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)
