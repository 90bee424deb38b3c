"""Reconcile one key: a gateway (`veg:<ns>/<name>`) or a VPC (`vpc:<name>`).

Order inside a gateway reconcile: finalizer, validation (an invalid spec writes nothing to NB and
touches no workload), workload, NB rows (one transaction), status. Errors that may go away
(API server, NB, conflicts) raise `Retry` so the queue backs off; an invalid spec does not retry:
the next change of the gateway or of anything it depends on brings it back.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_network
from typing import Any

import structlog

from vegd import engine
from vegd.controller.keys import gateway_key, vpc_key
from vegd.kube.api import KubeApi, KubeError, Obj
from vegd.kube.cache import Cache
from vegd.kube.events import EventRecorder
from vegd.kube.resources import CONFIGMAPS, GATEWAYS, VPCS
from vegd.model.errors import ValidationError
from vegd.model.instances import selected_pods, workload
from vegd.model.objects import FAMILIES, IPNetwork, Snapshot, VpcEgressGateway
from vegd.model.resolve import ResolvedGateway, resolve_gateway
from vegd.nb.client import NbClient, SbClient
from vegd.nb.errors import NbUnavailable
from vegd.nb.foreign import ForeignRows
from vegd.plan.gateway import OWNER_KEY as GATEWAY_OWNER_KEY
from vegd.plan.gateway import gateway_owner, plan_gateway, selector_set_members, selector_sets
from vegd.plan.rows import AddressSet, Desired, Members, Owner
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


@dataclass
class Pending:
    """A key prepared for the NB write of its batch: the rows to write, then what to do with
    the outcome (Kubernetes writes: Deployment, status, finalizer), given the NB error or ""."""

    key: str
    desired: Desired | None
    finish: Callable[[str], None]
    members: tuple[Members, ...] = ()  # address sets written by mutation instead (desired None)

    @property
    def owner(self) -> str:
        if self.desired is not None:
            return str(self.desired.owner)
        return str(self.members[0].owner) if self.members else ""


@dataclass(frozen=True)
class LastWrite:
    """What a gateway's last complete reconcile wrote and read, for a reconcile of its selected
    pods only: valid while the gateway object and every pod-free kind of the snapshot are the
    same objects (the cache keeps the tuples across pod events) and no other event came."""

    resource_version: str
    world: tuple[object, ...]  # the snapshot's pod-free tuples
    chassis: tuple[tuple[str, str], ...]
    resolved: ResolvedGateway
    owner: Owner
    sets: dict[str, tuple[str, ...]]  # selector address set -> its addresses as written

    def current(self, raw: Obj, snap: Snapshot) -> bool:
        return _resource_version(raw) == self.resource_version and \
            snap.chassis_by_hostname == self.chassis and \
            all(a is b for a, b in zip(_pod_free(snap), self.world, strict=True))


class Reconciler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        # what the current batch changed, for its log line: per thread, because the NB writes
        # of one batch and the Kubernetes writes of the one before run at the same time
        self._local = threading.local()
        self._advised: dict[str, int] = {}  # gateway key -> generation whose advice was given
        self._foreign_rows = ForeignRows(ctx.nb)
        self.foreign: dict[str, str] = {}  # gateway key -> why another controller runs it
        self._overlapping: dict[str, str] = {}  # gateway key -> the reroutes last logged
        self._lingering: dict[str, str] = {}  # migrated twins: the old controller's rows left
        # gateway key -> (resolved, subnets, attachments, the Deployment built from them)
        self._built: dict[str, tuple[ResolvedGateway, object, object, Obj]] = {}
        # gateway key -> its last complete reconcile, for one of its selected pods only
        self._written: dict[str, LastWrite] = {}
        self.members_reconciles = 0  # reconciles of selected pods only (tests, bench)

    @property
    def summary(self) -> dict[str, int]:
        if not hasattr(self._local, "summary"):
            self._local.summary = {}
        summary: dict[str, int] = self._local.summary
        return summary

    def take_summary(self) -> dict[str, int]:
        summary = self.summary
        self._local.summary = {}
        return summary

    def snapshot(self) -> Snapshot:
        chassis = self.ctx.sb.chassis_by_hostname() if self.ctx.sb is not None else {}
        return self.ctx.cache.snapshot(chassis)

    def write_batch(self, keys: list[str], members_only: set[str] | frozenset[str] = frozenset()
                    ) -> tuple[dict[str, Exception], list[tuple[str, Callable[[], None]]]]:
        """Prepare every key and write all their NB rows in ONE transaction (refused owners left
        out). Returns the keys that failed, and for the others what remains to be done in
        Kubernetes (Deployment, status, finalizer), which `finish_batch` does, off NB's path.
        A key of `members_only` (queued for selected pods only) is, when its last complete
        reconcile still holds, just the members of its selector address sets."""
        if not self.ctx.nb.has_lock:
            # a deposed replica must not write Kubernetes either (NB fences itself)
            return {k: Retry("this vegd does not hold the NB lock") for k in keys}, []
        failed: dict[str, Exception] = {}
        pending: list[Pending] = []
        # one snapshot for the batch's members-only keys: an event after it marks its key to
        # be worked on again anyway (and with the informers busy, the cache's version moves
        # between any two keys, so a snapshot per key was one per key)
        snap = self.snapshot() if members_only else None
        for key in keys:
            try:
                item = self._members(key, snap) if snap is not None and key in members_only \
                    else None
                if item is None:
                    item = self._prepare(key)
            except Exception as exc:
                failed[key] = _retry(key, exc)
                continue
            if item is not None:
                pending.append(item)
        try:
            nb_errors = self._write_batch([p for p in pending if p.desired is not None or
                                           p.members])
        except NbUnavailable as exc:  # the whole batch waits for NB (or for the lock)
            failed.update({p.key: _retry(p.key, exc) for p in pending})
            for p in pending:
                self._written.pop(p.key.partition(":")[2], None)
            return failed, []
        finishes = []
        for item in pending:
            finishes.append((item.key, functools.partial(item.finish,
                                                         nb_errors.get(item.owner, ""))))
        return failed, finishes

    def finish_batch(self, finishes: list[tuple[str, Callable[[], None]]]
                     ) -> dict[str, Exception]:
        failed: dict[str, Exception] = {}
        for key, finish in finishes:
            try:
                finish()
            except Exception as exc:
                failed[key] = _retry(key, exc)
        return failed

    def _prepare(self, key: str) -> Pending | None:
        kind, _, name = key.partition(":")
        item: Pending | None = None
        if kind == "veg":
            item = self._gateway(name)
        elif kind == "vpc":
            item = self._vpc(name)
        elif kind == "gc":
            self.collect_garbage()
        if item is not None:
            item.key = key  # the queue's key: a failure in finish is retried under it
        return item

    def _write_batch(self, pending: list[Pending]) -> dict[str, str]:
        """owner -> why NB refused it; NB being unavailable fails the whole batch (Retry)."""
        if not pending:
            return {}
        plans = [p.desired for p in pending if p.desired is not None]
        members = tuple(m for p in pending for m in p.members)
        written = engine.write_split(self.ctx.nb, plans, self._plan_owner, members=members)
        for changes in written.changes.values():
            for kind, items in (("created", changes.created), ("updated", changes.updated),
                                ("deleted", changes.deleted)):
                if items:
                    self.summary[f"nb_{kind}"] = self.summary.get(f"nb_{kind}", 0) + len(items)
        return written.refused

    def _plan_owner(self, owner: tuple[str, str]) -> Desired | None:
        """Another owner's plan, for a row that moves to an owner of this batch; that owner's
        own key is reconciled again afterwards for its status."""
        key, value = owner
        snap = self.snapshot()
        if key == VPC_OWNER_KEY:
            vpc = snap.vpc(value)
            return plan_vpc(vpc, snap, self.ctx.plan) if vpc is not None else None
        gw = snap.gateway(value)
        if gw is None:
            return None
        try:
            resolved = resolve_gateway(gw, snap, self.ctx.plan.policy_bfd_sessions,
                                       self.ctx.plan.bfd_port_mode)
        except ValidationError:
            return None
        if self.on_pulled is not None:
            self.on_pulled(gateway_key(value))
        return plan_gateway(resolved, snap, self.ctx.plan)

    on_pulled: Callable[[str], None] | None = None

    # -- gateways ------------------------------------------------------------------------------

    def _members(self, queue_key: str, snap: Snapshot) -> Pending | None:
        """A gateway reconcile for changed selected pods only: the members of its selector
        address sets, diffed against what its last complete reconcile wrote, and nothing else
        (its other rows, its Deployment and status read no such pod). None when that reconcile
        no longer holds (anything else changed, or another controller claims sources on its
        router): the caller reconciles the gateway completely."""
        kind, _, key = queue_key.partition(":")
        last = self._written.pop(key, None) if kind == "veg" else None
        if last is None:
            return None
        raw = self.ctx.cache.raw(GATEWAYS, key)
        if raw is None or not last.current(raw, snap) or \
                self._foreign_rows.any_reroutes(last.resolved.vpc.router_name) or \
                self._foreign_rows.of(self.ctx.vendor, key):
            return None
        wanted = selector_set_members(last.resolved, snap, tuple(last.sets))
        if wanted is None or wanted.keys() != last.sets.keys():
            return None
        members = tuple(Members(last.owner, name, addresses)
                        for name, addresses in wanted.items() if addresses != last.sets[name])
        self.members_reconciles += 1

        def finish(nb_error: str) -> None:
            _raise_on_error(nb_error)  # retried as a complete reconcile (no `_written` left)
            self._written[key] = dataclasses.replace(last, sets=wanted)
        return Pending(queue_key, None, finish, members)

    def _gateway(self, key: str) -> Pending | None:
        ctx = self.ctx
        self._written.pop(key, None)  # until this reconcile is complete
        raw = ctx.cache.raw(GATEWAYS, key)
        if raw is None:  # gone (a finalizer-less delete, or deleted while we were down)
            self.foreign.pop(key, None)
            self._built.pop(key, None)
            self._overlapping.pop(key, None)
            if ctx.cache.served(GATEWAYS):  # absent, not merely unlisted
                return Pending(key, Desired(gateway_owner(key)), _raise_on_error)
            return None
        meta = raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if meta.get("deletionTimestamp"):
            if FINALIZER not in finalizers:
                return None

            def release(nb_error: str) -> None:  # rows first, then the finalizer
                _raise_on_error(nb_error)
                self._set_finalizers(key, raw, [f for f in finalizers if f != FINALIZER])
            return Pending(key, Desired(gateway_owner(key)), release)
        needs_finalizer = FINALIZER not in finalizers  # added after the NB write, in finish

        snap = self.snapshot()
        invalid: ValidationError | None = ctx.cache.parse_error(key)
        gw = snap.gateway(key) if invalid is None else None
        resolved: ResolvedGateway | None = None
        deployment: Obj | None = None
        if gw is not None:
            try:
                resolved = resolve_gateway(gw, snap, ctx.plan.policy_bfd_sessions,
                                           ctx.plan.bfd_port_mode)
                deployment = self._build_deployment(key, resolved, snap)
            except ValidationError as exc:
                invalid = exc
        if gw is None and invalid is None:
            # the informer stored the object and the cache has not parsed it yet: a moment
            raise Retry(f"{key} is not in the cache yet")
        live = ctx.cache.deployment(*_deployment_ref(raw, gw))
        if gw is not None and invalid is None:
            migrated = st.MIGRATED_FROM in (meta.get("annotations") or {})
            held = self._foreign_controller(gw, live, migrated)
            if held:  # report, never fight: no Deployment, NB or other controller's writes
                invalid, live = ValidationError(gw.ref, st.FOREIGN_FIELD, held), None
            elif resolved is not None and (held := self._foreign_sources(resolved, snap)):
                invalid = ValidationError(gw.ref, st.FOREIGN_FIELD, held, st.FOREIGN_SOURCES)
        if resolved is None or deployment is None or gw is None or invalid is not None:
            self._update_status(raw, st.gateway_status(
                gw or st.unparsed_gateway(raw), now=ctx.clock(), previous=raw.get("status"),
                invalid=invalid, deployment=live))
            return None
        rows = plan_gateway(resolved, snap, ctx.plan)
        written = self._what_is_written(raw, snap, resolved, rows)

        def finish(nb_error: str) -> None:
            # rows first, then the finalizer: a gateway deleted in between has no finalizer to
            # wait for and its rows go with its delete event (or the garbage collection)
            current = self._set_finalizers(key, raw, [*finalizers, FINALIZER]) \
                if needs_finalizer else raw
            self._finish_gateway(key, current, gw, resolved, deployment, snap, nb_error)
            if written is not None and current is raw:
                self._written[key] = written  # complete: NB, Deployment and status done
        return Pending(key, rows, finish)

    @staticmethod
    def _what_is_written(raw: Obj, snap: Snapshot, resolved: ResolvedGateway, rows: Desired
                         ) -> LastWrite | None:
        """What a reconcile of selected pods only may start from (None: this gateway's plan has
        other rows that such pods change)."""
        names = selector_sets(resolved)
        if names is None:
            return None
        sets = {r.name: r.addresses for r in rows.rows if isinstance(r, AddressSet)}
        if any(name not in sets for name in names):
            return None
        return LastWrite(_resource_version(raw), _pod_free(snap), snap.chassis_by_hostname,
                       resolved, rows.owner, {name: sets[name] for name in names})

    def _build_deployment(self, key: str, resolved: ResolvedGateway, snap: Snapshot) -> Obj:
        """The Deployment vegd renders reads only the resolved gateway and the snapshot's
        subnets and attachments (whose tuples the cache keeps across pod events), so a pod
        event reuses the last build instead of rendering and hashing it again. Nobody mutates
        it: updates are merged into a deep copy (wl.merge_for_update)."""
        hit = self._built.get(key)
        if hit is not None and hit[1] is snap.subnets and hit[2] is snap.attachments \
                and hit[0] == resolved:
            return hit[3]
        deployment = wl.build_deployment(resolved, snap, self.ctx.workload)
        self._built[key] = (resolved, snap.subnets, snap.attachments, deployment)
        return deployment

    def _finish_gateway(self, key: str, raw: Obj, gw: VpcEgressGateway,
                        resolved: ResolvedGateway, deployment: Obj, snap: Snapshot,
                        nb_error: str) -> None:
        """After the NB write: the workload, then the status (off the NB critical path)."""
        ctx = self.ctx
        self._advise(raw, gw)
        live = ctx.cache.deployment(*_deployment_ref(raw, gw))
        workload_error = ""
        observability_error: str | None = None
        try:
            self._ensure_configmap(wl.build_observability_configmap(resolved, ctx.workload))
            observability_error = ""
        except KubeError as exc:
            if exc.transient or exc.conflict:
                raise
            observability_error = str(exc)  # never gates Ready: the data plane is fine
        try:
            live = self._ensure_deployment(gw.namespace, deployment, live)
        except KubeError as exc:
            if exc.transient or exc.conflict:
                raise
            workload_error = str(exc)  # e.g. refused by admission: say so in the status
        bfd = ctx.nb.bfd_status(GATEWAY_OWNER_KEY, key) if gw.bfd.enabled else {}
        self._update_status(raw, st.gateway_status(
            gw, now=ctx.clock(), previous=raw.get("status"), workload=workload(resolved, snap),
            deployment=live, workload_error=workload_error, nb_written=not nb_error,
            nb_error=nb_error, bfd=bfd, observability_error=observability_error))
        if nb_error or workload_error or observability_error:
            raise Retry(nb_error or workload_error or str(observability_error))

    def _foreign_controller(self, gw: VpcEgressGateway, live: Obj | None,
                            migrated: bool = False) -> str:
        """Why another controller already runs this gateway ('' when none does): a Deployment
        of the name vegd would use that this object does not own, or NB rows of this gateway
        key with another vendor (Kube-OVN's `kube-ovn`), unless the object is the twin of a
        migrated gateway (its old rows go when the operator deletes the old object)."""
        found = []
        if live is not None and not wl.owned_by(live, gw.uid):
            meta = live.get("metadata") or {}
            owners = ", ".join(f"{r.get('kind')}.{r.get('apiVersion')} {r.get('name')}"
                               for r in meta.get("ownerReferences") or []) or "no owner"
            found.append(f"Deployment {gw.namespace}/{meta.get('name')} ({owners})")
        rows = self._foreign_rows.of(self.ctx.vendor, gw.key)
        if rows and migrated:
            if self._lingering.get(gw.key) != rows:
                log.info("migrated gateway: the other controller's rows are still in NB",
                         key=gw.key, rows=rows)
            self._lingering[gw.key] = rows
        elif rows:
            found.append(f"NB rows ({rows})")
        why = ""
        if found:
            why = (f"another controller runs {gw.key}: {'; '.join(found)}; vegd leaves them "
                   "alone (migrate with `vegd migrate`, or use another name)")
        if why and self.foreign.get(gw.key) != why:
            log.warning("another controller runs this gateway", key=gw.key, found=found)
        if why:
            self.foreign[gw.key] = why
        else:
            self.foreign.pop(gw.key, None)
        return why

    def _foreign_sources(self, r: ResolvedGateway, snap: Snapshot) -> str:
        """Why another controller's reroutes claim some of this gateway's sources on its router
        ('' when none do): its prefixes, and its selected pods' addresses. src-ip routes count
        in route mode only; in the policy modes vegd's reroutes come after routing and win."""
        gw, router = r.gateway, r.vpc.router_name
        why = found = ""
        if self._foreign_rows.any_reroutes(router):
            sources: dict[int, list[IPNetwork]] = {f: list(r.sources[f].all) for f in FAMILIES}
            for pod in selected_pods(r, snap):
                for ip in pod.ips:
                    sources[ip.version].append(ip_network(ip))
            route_mode = gw.bfd.enabled and gw.bfd_mode == "route"
            found = self._foreign_rows.reroutes(self.ctx.vendor, gw.key, router, sources,
                                                routes=route_mode)
            why = (f"another controller reroutes sources of {gw.key} on router {router}: "
                   f"{found}; vegd leaves them alone and writes nothing for this gateway "
                   "(give the sources to one controller only)") if found else ""
        if why and self._overlapping.get(gw.key) != why:
            log.warning("another controller reroutes this gateway's sources", key=gw.key,
                        found=found)
        if why:
            self.foreign[gw.key] = self._overlapping[gw.key] = why
        else:  # (_foreign_controller has dropped it from self.foreign)
            self._overlapping.pop(gw.key, None)
        return why

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

    def _ensure_configmap(self, desired: Obj) -> None:
        """The agents' observability settings: kept equal to the spec; the agents reload it."""
        meta = desired["metadata"]
        live = self.ctx.cache.raw(CONFIGMAPS, f"{meta['namespace']}/{meta['name']}")
        if live is None:
            try:
                self.ctx.kube.create_configmap(meta["namespace"], desired)
                self._count("configmap_created")
            except KubeError as exc:
                if exc.status == 409:  # exists: our cache is behind, the watch will catch up
                    raise Retry(str(exc)) from exc
                raise
        elif wl.configmap_needs_update(live, desired):
            body = {**desired, "metadata": {
                **(live.get("metadata") or {}), "labels": {
                    **((live.get("metadata") or {}).get("labels") or {}), **meta["labels"]},
                "ownerReferences": meta["ownerReferences"]}}
            self.ctx.kube.replace_configmap(meta["namespace"], meta["name"], body)
            self._count("configmap_updated")

    def _count(self, what: str) -> None:
        """One more of `what` in the batch's "reconciled" log line."""
        self.summary[what] = self.summary.get(what, 0) + 1

    def _ensure_deployment(self, namespace: str, desired: Obj, live: Obj | None) -> Obj:
        if live is None:
            try:
                created = self.ctx.kube.create_deployment(namespace, desired)
                self._count("deployment_created")
                return created
            except KubeError as exc:
                if exc.status == 409:  # exists: our cache is behind, the watch will catch up
                    raise Retry(str(exc)) from exc
                raise
        if wl.needs_update(live, desired):
            name = desired["metadata"]["name"]
            self._count("deployment_updated")
            log.info("updating deployment", deployment=f"{namespace}/{name}",
                     reason=wl.update_reason(live, desired))
            return self.ctx.kube.replace_deployment(namespace, name,
                                                    wl.merge_for_update(live, desired))
        return live

    def _update_status(self, raw: Obj, new: Obj) -> None:
        old = raw.get("status") or {}
        if not st.status_differs(old, new):
            return
        meta = raw.get("metadata") or {}
        patch: dict[str, Any] = dict(new)
        for field in old:  # merge patch: a field we no longer report must be removed
            patch.setdefault(field, None)
        self.ctx.kube.patch_gateway_status(meta["namespace"], meta["name"], patch)
        self._count("status")
        involved = {**raw, "apiVersion": GATEWAYS.api_version, "kind": GATEWAYS.kind}
        for event in st.events_for(old, new):
            self.ctx.events.emit(involved, event.type, event.reason, event.message,
                                 self.ctx.clock())

    # -- VPCs ----------------------------------------------------------------------------------

    def _vpc(self, name: str) -> Pending | None:
        ctx = self.ctx
        snap = self.snapshot()
        vpc = snap.vpc(name)
        if vpc is None:
            if ctx.cache.served(VPCS) and name not in ctx.cache.unparsed(VPCS):
                return Pending(vpc_key(name), Desired(vpc_owner(name)), _raise_on_error)
            # a Vpc that exists but does not parse keeps its rows (logged by the cache)
            return None
        held = self._foreign_rows.bfd_port(ctx.vendor, name) if vpc.bfd_port.enabled else ""
        if held:  # another controller runs this VPC's BFD port: neither its rows nor its status
            if self.foreign.get(vpc_key(name)) != held:
                log.warning("another controller runs this VPC's BFD port", vpc=name, found=held)
            self.foreign[vpc_key(name)] = held
            return None
        self.foreign.pop(vpc_key(name), None)

        def finish(nb_error: str) -> None:
            _raise_on_error(nb_error)
            raw = ctx.cache.raw(VPCS, name)
            if raw is None:
                return
            old = (raw.get("status") or {}).get("bfdPort")
            new = st.vpc_bfd_port_status(vpc, snap) if vpc.bfd_port.enabled else None
            if (old or None) != (new or None):
                ctx.kube.patch_vpc_status(name, {"bfdPort": new})
        return Pending(vpc_key(name), plan_vpc(vpc, snap, ctx.plan), finish)

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
        changes = self.ctx.nb.collect_garbage(keep)
        if changes.total:
            log.info("garbage collected", deleted=len(changes.deleted),
                     seconds=round(time.monotonic() - start, 4))
        return changes.total



def _raise_on_error(nb_error: str) -> None:
    if nb_error:
        raise Retry(nb_error)


def _retry(key: str, exc: Exception) -> Exception:
    """Transient failures become Retry; anything else is reported as it is (a bug)."""
    if isinstance(exc, (NbUnavailable, KubeError)):
        if isinstance(exc, KubeError) and not (exc.transient or exc.conflict):
            log.warning("kubernetes refused a write", key=key, error=str(exc))
        retry = Retry(str(exc))
        retry.__cause__ = exc
        return retry
    return exc


def _deployment_ref(raw: Obj, gw: VpcEgressGateway | None) -> tuple[str, str]:
    meta = raw.get("metadata") or {}
    gateway = gw or st.unparsed_gateway(raw)
    return str(meta.get("namespace") or "default"), wl.deployment_name(gateway)


def _resource_version(raw: Obj) -> str:
    return str((raw.get("metadata") or {}).get("resourceVersion") or "")


def _pod_free(snap: Snapshot) -> tuple[object, ...]:
    """The snapshot's tuples of every kind but pods."""
    return (snap.gateways, snap.vpcs, snap.subnets, snap.namespaces, snap.nodes,
            snap.attachments, snap.ip_pools)
