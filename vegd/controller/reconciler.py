"""Reconcile one key: a gateway (`veg:<ns>/<name>`) or a VPC (`vpc:<name>`).

Order inside a gateway reconcile: finalizer, validation (an invalid spec writes nothing to NB and
touches no workload), workload, NB rows (one transaction), status. Errors that may go away
(API server, NB, conflicts) raise `Retry` so the queue backs off; an invalid spec does not retry:
the next change of the gateway or of anything it depends on brings it back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from vegd.controller.keys import gateway_key, vpc_key
from vegd.kube.api import KubeApi, KubeError, Obj
from vegd.kube.cache import Cache
from vegd.kube.events import EventRecorder
from vegd.kube.resources import GATEWAYS, VPCS
from vegd.model.errors import ValidationError
from vegd.model.instances import workload
from vegd.model.objects import Snapshot, VpcEgressGateway
from vegd.model.resolve import ResolvedGateway, resolve_gateway
from vegd.nb.client import NbClient, SbClient
from vegd.nb.errors import NbUnavailable, ReconcileError
from vegd.plan.gateway import OWNER_KEY as GATEWAY_OWNER_KEY
from vegd.plan.gateway import gateway_owner, plan_gateway
from vegd.plan.rows import Desired
from vegd.plan.settings import PlanSettings
from vegd.plan.vpc import OWNER_KEY as VPC_OWNER_KEY
from vegd.plan.vpc import plan_vpc, vpc_owner
from vegd.workload import deployment as wl
from vegd.workload import status as st
from vegd.workload.advice import bfd_timer_advice

log = structlog.get_logger("vegd.controller")

FINALIZER = "vegd.kubeovn.io/nb-rows"
GC_KEY = "gc:"  # garbage collection runs in the worker like any key


class Retry(Exception):
    """A transient failure: requeue the key with backoff."""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Context:
    cache: Cache
    kube: KubeApi
    nb: NbClient
    sb: SbClient | None
    events: EventRecorder
    vendor: str
    plan: PlanSettings
    workload: wl.WorkloadOptions
    clock: Callable[[], str] = now_rfc3339


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.summary: dict[str, int] = {}  # what the current reconcile changed, for its log line
        self._advised: dict[str, int] = {}  # gateway key -> generation whose advice was given

    def take_summary(self) -> dict[str, int]:
        summary, self.summary = self.summary, {}
        return summary

    def snapshot(self) -> Snapshot:
        chassis = self.ctx.sb.chassis_by_hostname() if self.ctx.sb is not None else {}
        return self.ctx.cache.snapshot(chassis)

    def reconcile(self, key: str) -> None:
        kind, _, name = key.partition(":")
        if not self.ctx.nb.has_lock:
            # a deposed replica must not write Kubernetes either (NB fences itself)
            raise Retry("this vegd does not hold the NB lock")
        try:
            if kind == "veg":
                self._gateway(name)
            elif kind == "vpc":
                self._vpc(name)
            elif kind == "gc":
                self.collect_garbage()
        except (NbUnavailable, KubeError) as exc:
            if isinstance(exc, KubeError) and not (exc.transient or exc.conflict):
                log.warning("kubernetes refused a write", key=key, error=str(exc))
            raise Retry(str(exc)) from exc

    # -- gateways ------------------------------------------------------------------------------

    def _gateway(self, key: str) -> None:
        ctx = self.ctx
        raw = ctx.cache.raw(GATEWAYS, key)
        if raw is None:  # gone (a finalizer-less delete, or deleted while we were down)
            if ctx.cache.served(GATEWAYS):  # absent, not merely unlisted
                self._delete_rows(Desired(gateway_owner(key)))
            return
        meta = raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER in finalizers:
                self._delete_rows(Desired(gateway_owner(key)))  # rows first, then the finalizer
                self._set_finalizers(key, raw, [f for f in finalizers if f != FINALIZER])
            return
        if FINALIZER not in finalizers:
            raw = self._set_finalizers(key, raw, [*finalizers, FINALIZER])

        snap = self.snapshot()
        invalid: ValidationError | None = ctx.cache.parse_error(key)
        gw = snap.gateway(key) if invalid is None else None
        resolved: ResolvedGateway | None = None
        desired: Obj | None = None
        if gw is not None:
            try:
                resolved = resolve_gateway(gw, snap, ctx.plan.policy_bfd_sessions,
                                           ctx.plan.bfd_port_mode)
                desired = wl.build_deployment(resolved, snap, ctx.workload)
            except ValidationError as exc:
                invalid = exc
        if gw is None and invalid is None:
            # the informer stored the object and the cache has not parsed it yet: a moment
            raise Retry(f"{key} is not in the cache yet")
        live = ctx.cache.deployment(*_deployment_ref(raw, gw))
        if resolved is None or desired is None or gw is None:
            self._update_status(raw, st.gateway_status(
                gw or st.unparsed_gateway(raw), now=ctx.clock(), previous=raw.get("status"),
                invalid=invalid, deployment=live))
            return

        self._advise(raw, gw)
        workload_error = ""
        try:
            live = self._ensure_deployment(gw.namespace, desired, live)
        except KubeError as exc:
            if exc.transient or exc.conflict:
                raise
            workload_error = str(exc)  # e.g. refused by admission: say so in the status
        nb_error = ""
        try:
            self._write_nb(plan_gateway(resolved, snap, ctx.plan))
        except ReconcileError as exc:
            nb_error = str(exc)
        bfd = ctx.nb.bfd_status(ctx.vendor, GATEWAY_OWNER_KEY, key) if gw.bfd.enabled else {}
        self._update_status(raw, st.gateway_status(
            gw, now=ctx.clock(), previous=raw.get("status"), workload=workload(resolved, snap),
            deployment=live, workload_error=workload_error, nb_written=not nb_error,
            nb_error=nb_error, bfd=bfd))
        if nb_error or workload_error:
            raise Retry(nb_error or workload_error)

    def _advise(self, raw: Obj, gw: VpcEgressGateway) -> None:
        """A Warning Event, once per spec generation, for a valid spec that will work badly."""
        advice = bfd_timer_advice(gw, self.ctx.plan.bfd_port_mode == "stock")
        if not advice or self._advised.get(gw.key) == gw.generation:
            return
        self._advised[gw.key] = gw.generation
        involved = {**raw, "apiVersion": GATEWAYS.api_version, "kind": GATEWAYS.kind}
        self.ctx.events.emit(involved, "Warning", "BfdTimersMayFlap", advice, self.ctx.clock())

    def _set_finalizers(self, key: str, raw: Obj, finalizers: list[str]) -> Obj:
        meta = raw.get("metadata") or {}
        ns, name = key.split("/", 1)
        # resourceVersion makes it a compare-and-swap: a stale cache gives 409 and a retry
        return self.ctx.kube.patch_gateway(ns, name, {"metadata": {
            "finalizers": finalizers, "resourceVersion": meta.get("resourceVersion")}})

    def _ensure_deployment(self, namespace: str, desired: Obj, live: Obj | None) -> Obj:
        if live is None:
            try:
                self.summary["deployment_created"] = 1
                return self.ctx.kube.create_deployment(namespace, desired)
            except KubeError as exc:
                if exc.status == 409:  # exists: our cache is behind, the watch will catch up
                    raise Retry(str(exc)) from exc
                raise
        if wl.needs_update(live, desired):
            name = desired["metadata"]["name"]
            self.summary["deployment_updated"] = 1
            log.info("updating deployment", deployment=f"{namespace}/{name}",
                     reason=wl.update_reason(live, desired))
            return self.ctx.kube.replace_deployment(namespace, name,
                                                    wl.merge_for_update(live, desired))
        return live

    def _delete_rows(self, desired: Desired) -> None:
        try:
            self._write_nb(desired)
        except ReconcileError as exc:
            raise Retry(str(exc)) from exc

    def _write_nb(self, desired: Desired) -> None:
        changes = self.ctx.nb.reconcile(desired, self.ctx.vendor)
        for kind, items in (("created", changes.created), ("updated", changes.updated),
                            ("deleted", changes.deleted)):
            if items:
                self.summary[f"nb_{kind}"] = self.summary.get(f"nb_{kind}", 0) + len(items)

    def _update_status(self, raw: Obj, new: Obj) -> None:
        old = raw.get("status") or {}
        if not st.status_differs(old, new):
            return
        meta = raw.get("metadata") or {}
        patch: dict[str, Any] = dict(new)
        for field in old:  # merge patch: a field we no longer report must be removed
            patch.setdefault(field, None)
        self.ctx.kube.patch_gateway_status(meta["namespace"], meta["name"], patch)
        self.summary["status"] = 1
        involved = {**raw, "apiVersion": GATEWAYS.api_version, "kind": GATEWAYS.kind}
        for event in st.events_for(old, new):
            self.ctx.events.emit(involved, event.type, event.reason, event.message,
                                 self.ctx.clock())

    # -- VPCs ----------------------------------------------------------------------------------

    def _vpc(self, name: str) -> None:
        ctx = self.ctx
        snap = self.snapshot()
        vpc = snap.vpc(name)
        if vpc is None:
            if ctx.cache.served(VPCS) and name not in ctx.cache.unparsed(VPCS):
                self._delete_rows(Desired(vpc_owner(name)))
            # a Vpc that exists but does not parse keeps its rows (logged by the cache)
            return
        desired = plan_vpc(vpc, snap, ctx.plan)
        try:
            self._write_nb(desired)
        except ReconcileError as exc:
            raise Retry(str(exc)) from exc
        raw = ctx.cache.raw(VPCS, name)
        if raw is None:
            return
        old = (raw.get("status") or {}).get("bfdPort")
        new = st.vpc_bfd_port_status(vpc, snap) if vpc.bfd_port.enabled else None
        if (old or None) != (new or None):
            ctx.kube.patch_vpc_status(name, {"bfdPort": new})

    # -- whole-state passes --------------------------------------------------------------------

    def all_keys(self) -> list[str]:
        snap = self.snapshot()
        keys = [vpc_key(v.name) for v in snap.all_vpcs()]
        return keys + [gateway_key(k) for k in self.ctx.cache.gateway_keys()]

    def collect_garbage(self) -> int:
        """Delete rows of owners that no longer exist. Only with synced caches: an empty cache
        would otherwise look like "everything was deleted", and so would a kind the API server
        does not serve (yet)."""
        if not self.ctx.cache.complete:
            return 0
        snap = self.snapshot()
        keep = {(GATEWAY_OWNER_KEY, k) for k in self.ctx.cache.gateway_keys()}
        keep |= {(VPC_OWNER_KEY, v.name) for v in snap.all_vpcs()}
        keep |= {(VPC_OWNER_KEY, name) for name in self.ctx.cache.unparsed(VPCS)}
        start = time.monotonic()
        changes = self.ctx.nb.collect_garbage(self.ctx.vendor, keep)
        if changes.total:
            log.info("garbage collected", deleted=len(changes.deleted),
                     seconds=round(time.monotonic() - start, 4))
        return changes.total



def _deployment_ref(raw: Obj, gw: VpcEgressGateway | None) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    gateway = gw or st.unparsed_gateway(raw)
    return str(meta.get("namespace") or "default"), wl.deployment_name(gateway)
