"""The informers' caches seen as vegd's model: parsed objects and a Snapshot.

Objects are parsed once, when their event arrives, so a reconcile only assembles tuples. The
snapshot is rebuilt only after something changed (a version counter), which makes a resync of many
gateways cost one snapshot. Objects that fail to parse are kept aside with their error: a broken
VpcEgressGateway must still get a `Validated=False` condition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from vegd.kube.api import KubeApi, Obj
from vegd.kube.informer import Informer, identity_only
from vegd.kube.resources import (
    ATTACHMENTS,
    DEPLOYMENTS,
    GATEWAYS,
    IP_POOLS,
    NAMESPACES,
    NODES,
    PODS,
    SUBNETS,
    VPCS,
    WATCHED,
    Resource,
    object_key,
)
from vegd.model import parse
from vegd.model.errors import ValidationError
from vegd.model.objects import Snapshot

log = structlog.get_logger("vegd.kube")

PARSERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    GATEWAYS.kind: parse.parse_gateway,
    VPCS.kind: parse.parse_vpc,
    SUBNETS.kind: parse.parse_subnet,
    PODS.kind: parse.parse_pod,
    NAMESPACES.kind: parse.parse_namespace,
    NODES.kind: parse.parse_node,
    ATTACHMENTS.kind: parse.parse_attachment,
    IP_POOLS.kind: parse.parse_ip_pool,
}
# the snapshot's tuples; pods go in by namespace only (Snapshot.pods_by_namespace): a tuple
# of every pod was O(pods) per batch of pod events
SNAPSHOT_FIELDS = {GATEWAYS.kind: "gateways", VPCS.kind: "vpcs", SUBNETS.kind: "subnets",
                   NAMESPACES.kind: "namespaces", NODES.kind: "nodes",
                   ATTACHMENTS.kind: "attachments", IP_POOLS.kind: "ip_pools"}

# (resource, old parsed or None, new parsed or None, old raw, new raw)
ModelHandler = Callable[[Resource, Any, Any, Obj | None, Obj | None], None]


class Cache:
    def __init__(self, api: KubeApi, resources: tuple[Resource, ...] = WATCHED,
                 watch_timeout: int = 300) -> None:
        self._on_change: ModelHandler | None = None
        self._on_relist: Callable[[Resource], None] | None = None
        self._lock = threading.Lock()
        self._started = False
        self._parsed: dict[str, dict[str, Any]] = {r.kind: {} for r in resources}
        # kind -> key -> why the object does not parse: a broken gateway still gets a status,
        # and a broken object of any kind still exists (its NB rows are not garbage)
        self._errors: dict[str, dict[str, ValidationError]] = {r.kind: {} for r in resources}
        self._version = 0
        self._nonpod_version = 0  # changes of anything but pods (what pod-free memos read)
        self._snapshot_nonpod = -1
        self._synced = False  # latched: an informer's `synced` is never cleared
        # pods by namespace, kept as events arrive, so a snapshot regroups only what changed
        self._pods_ns: dict[str, dict[str, Any]] = {}
        self._pods_ns_tuples: dict[str, tuple[Any, ...]] = {}
        self._pods_dirty: set[str] = set()
        self._snapshot: tuple[int, tuple[tuple[str, str], ...], Snapshot] | None = None
        # pods are most of a cluster's objects and only their parsed models are read: their
        # informer keeps no more of the object than its bookkeeping needs
        self.informers = {r.kind: Informer(api, r, self._changed, self._relisted, watch_timeout,
                                           keep=identity_only if r is PODS else None)
                          for r in resources}

    def subscribe(self, on_change: ModelHandler, on_relist: Callable[[Resource], None]) -> None:
        """Set the handlers; before start()."""
        self._on_change, self._on_relist = on_change, on_relist

    def _relisted(self, resource: Resource) -> None:
        if self._on_relist is not None:
            self._on_relist(resource)

    def start(self) -> None:
        """Start the informers (once: a second call does nothing)."""
        if self._started:
            return
        self._started = True
        for informer in self.informers.values():
            informer.start()

    def stop(self) -> None:
        for informer in self.informers.values():
            informer.request_stop()  # all at once, then the joins
        for informer in self.informers.values():
            informer.stop()

    def wait_synced(self, timeout: float) -> bool:
        return all(i.synced.wait(timeout) for i in self.informers.values())

    @property
    def synced(self) -> bool:
        """Every informer has listed once (asked at every event: cheap once true)."""
        if not self._synced:
            self._synced = all(i.synced.is_set() for i in self.informers.values())
        return self._synced

    def raw(self, resource: Resource, key: str) -> Obj | None:
        """The object as the informer keeps it: whole, but for pods (`identity_only`)."""
        return self.informers[resource.kind].get(key)

    def parse_error(self, gateway_key: str) -> ValidationError | None:
        with self._lock:
            return self._errors[GATEWAYS.kind].get(gateway_key)

    def unparsed(self, resource: Resource) -> set[str]:
        """Keys of objects that exist but do not parse."""
        with self._lock:
            return set(self._errors[resource.kind])

    def served(self, resource: Resource) -> bool:
        return self.informers[resource.kind].served

    @property
    def complete(self) -> bool:
        """Synced, and every kind is served: only then may absence mean deletion."""
        return all(i.synced.is_set() and i.served for i in self.informers.values())

    def relisting(self, resource: Resource) -> bool:
        return self.informers[resource.kind].relisting

    def _changed(self, resource: Resource, old: Obj | None, new: Obj | None) -> None:
        parser = PARSERS.get(resource.kind)
        old_model = new_model = None
        if parser is not None:
            key = object_key(new or old or {})
            if resource is GATEWAYS and "/" not in key:
                key = f"default/{key}"
            with self._lock:
                table = self._parsed[resource.kind]
                old_model = table.get(key)
                if new is None:
                    table.pop(key, None)
                    self._errors[resource.kind].pop(key, None)
                else:
                    new_model = self._parse(resource, key, parser, new)
                    if new_model is None:
                        table.pop(key, None)
                    else:
                        table[key] = new_model
                if old_model is None or new_model != old_model:
                    # status writes (ours, mostly) parse to the same model: keep the snapshot
                    self._version += 1
                    if resource is PODS:
                        self._pod_moved(key, old_model, new_model)
                    else:
                        self._nonpod_version += 1
        if self._on_change is not None:
            self._on_change(resource, old_model, new_model, old, new)

    def _pod_moved(self, key: str, old: Any, new: Any) -> None:
        for model in (old, new):
            if model is not None:
                self._pods_dirty.add(model.namespace)
        if old is not None:
            self._pods_ns.get(old.namespace, {}).pop(key, None)
        if new is not None:
            self._pods_ns.setdefault(new.namespace, {})[key] = new

    def _pods_by_namespace(self) -> dict[str, tuple[Any, ...]]:
        """Regroup the namespaces whose pods changed; the others keep their tuples."""
        for ns in self._pods_dirty:
            pods = self._pods_ns.get(ns)
            if pods:
                self._pods_ns_tuples[ns] = tuple(pods.values())
            else:
                self._pods_ns.pop(ns, None)
                self._pods_ns_tuples.pop(ns, None)
        self._pods_dirty.clear()
        return dict(self._pods_ns_tuples)  # the snapshot's own: later events change ours

    def _parse(self, resource: Resource, key: str, parser: Callable[[Mapping[str, Any]], Any],
               raw: Obj) -> Any:
        obj = dict(raw)
        obj.setdefault("apiVersion", resource.api_version)
        obj.setdefault("kind", resource.kind)
        try:
            model = parser(obj)
        except ValidationError as exc:
            self._errors[resource.kind][key] = exc
            if resource is not GATEWAYS:
                log.warning("ignoring invalid object", kind=resource.kind, key=key, error=str(exc))
            return None
        self._errors[resource.kind].pop(key, None)
        return model

    def snapshot(self, chassis_by_hostname: Mapping[str, str] | None = None) -> Snapshot:
        chassis = tuple(sorted((chassis_by_hostname or {}).items()))
        with self._lock:
            hit = self._snapshot
            if hit is not None and hit[0] == self._version and hit[1] == chassis:
                return hit[2]
            pods_only = hit is not None and hit[1] == chassis and \
                self._snapshot_nonpod == self._nonpod_version
            # only pods changed: the other kinds' tuples of the last snapshot are still exact
            fields = {name: getattr(hit[2], name) if pods_only
                      else tuple(self._parsed[kind].values())
                      for kind, name in SNAPSHOT_FIELDS.items() if kind in self._parsed}
            snap = Snapshot(**fields, chassis_by_hostname=chassis,
                            pods_by_namespace=self._pods_by_namespace())
            if pods_only:
                assert hit is not None
                snap.inherit(hit[2])  # only pods changed: gateway-side indexes stay valid
            self._snapshot = (self._version, chassis, snap)
            self._snapshot_nonpod = self._nonpod_version
            return snap

    def pod_free_snapshot(self) -> Snapshot:
        """A snapshot whose every kind but pods is current (its pods may lag behind): for
        questions that read no pod, such as which gateways a pod event concerns. After pod
        events it is the last snapshot taken, so a pod event costs no O(pods) rebuild."""
        with self._lock:
            hit = self._snapshot
            if hit is not None and self._snapshot_nonpod == self._nonpod_version:
                return hit[2]
        return self.snapshot()

    def gateway_keys(self) -> list[str]:
        """Every gateway in the cache, parsed or not."""
        return sorted({object_key(o) for o in self.informers[GATEWAYS.kind].objects()})

    def deployment(self, namespace: str, name: str) -> Obj | None:
        return self.raw(DEPLOYMENTS, f"{namespace}/{name}")
