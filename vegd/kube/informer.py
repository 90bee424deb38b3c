"""List-then-watch caches of Kubernetes objects, one thread per resource.

The loop is the one client-go's reflector runs: list (in pages) and remember the list's
resourceVersion, watch from it with bookmarks, follow every event's resourceVersion, and when the
server says 410 Gone (our version fell out of its history) list again. A relist compares the new
list with the cache, so deletions missed while disconnected are delivered as deletions. Errors and
disconnects back off exponentially (with jitter, capped) and reset after a healthy watch. A watch
that sends nothing (not even a bookmark) for INACTIVITY_TIMEOUT is replaced at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import structlog

from vegd.backoff import Backoff
from vegd.kube.api import KubeApi, KubeError, Obj
from vegd.kube.resources import Resource, object_key

log = structlog.get_logger("vegd.kube")

# (resource, old object or None, new object or None); called from the informer's thread.
ChangeHandler = Callable[[Resource, Obj | None, Obj | None], None]
RelistHandler = Callable[[Resource], None]


# kopf's WatchingSettings.inactivity_timeout is 70 s for the same reason: the API server sends a
# bookmark about every 60 s, so a watch silent for longer is dead (a half-open connection the
# server-side timeout never ends). Resumed from the last resourceVersion: nothing is lost.
INACTIVITY_TIMEOUT = 80.0


class Informer:
    def __init__(self, api: KubeApi, resource: Resource, on_change: ChangeHandler,
                 on_relist: RelistHandler | None = None, watch_timeout: int = 300,
                 inactivity_timeout: float = INACTIVITY_TIMEOUT,
                 keep: Callable[[Obj], Obj] | None = None) -> None:
        self.api = api
        # what the store keeps of each object (all of it by default; the handler always gets
        # the whole new object, and as `old` what the store kept)
        self.keep: Callable[[Obj], Obj] = keep or _whole
        self.inactivity_timeout = inactivity_timeout
        self.rewatches = 0  # watches replaced because they fell silent
        self.resource = resource
        self.on_change = on_change
        self.on_relist = on_relist
        self.watch_timeout = watch_timeout
        self.synced = threading.Event()
        self.served = True  # False while the API answers 404 for the kind (CRD not installed)
        self.relisting = False  # handlers may skip per-object work: a relist resyncs everything
        self.lock = threading.Lock()
        self.relists = 0  # lists, the first one included
        self.watch_restarts = 0  # watches that ended and were (or will be) started again
        self._store: dict[str, Obj] = {}
        self._rv = ""
        self._stop = threading.Event()
        self._response: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"informer-{resource.plural}")

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self.request_stop()
        resp = self._response
        if resp is not None:  # wake the thread blocked reading the watch stream
            for method in ("shutdown", "close"):
                with contextlib.suppress(Exception):
                    getattr(resp, method)()
        self._thread.join(timeout=5)

    def objects(self) -> list[Obj]:
        with self.lock:
            return list(self._store.values())

    def get(self, key: str) -> Obj | None:
        with self.lock:
            return self._store.get(key)

    # -- the reflector loop --------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            try:
                if not self._rv:
                    self._relist()
                self._watch(backoff)
            except KubeError as exc:
                if self._stop.is_set():
                    return
                if exc.gone:
                    log.info("watch expired, relisting", resource=self.resource.plural)
                    self._rv = ""
                    continue
                if exc.inactive:
                    self.rewatches += 1
                    log.warning("watch silent, watching again from the last resourceVersion",
                                resource=self.resource.plural, seconds=self.inactivity_timeout,
                                resource_version=self._rv)
                    continue
                delay = backoff.next()
                if exc.not_found and not self._rv and not self.synced.is_set():
                    # The API does not serve this kind (its CRD is not installed, or not yet):
                    # an empty cache, so the controller still starts, marked not served so
                    # that nothing is garbage-collected on its account; keep asking.
                    self.served = False
                    self.synced.set()
                    delay = max(delay, 5.0)
                log.warning("kubernetes api error", resource=self.resource.plural,
                            error=str(exc), retry_in=round(delay, 2))
                if not exc.transient and exc.status not in (401, 403, 404):
                    self._rv = ""  # unknown state: start from a fresh list
                self._stop.wait(delay)
            except Exception:  # a bug in a handler: keep the cache alive, start over
                delay = backoff.next()
                log.exception("informer error, relisting", resource=self.resource.plural,
                              retry_in=round(delay, 2))
                self._rv = ""
                self._stop.wait(delay)

    def _relist(self) -> None:
        """Each page is handed to the handler as it arrives, so that only one page of whole
        objects is held at a time (the store may keep less of them, `keep`)."""
        with self.lock:
            old = self._store
        fresh: dict[str, Obj] = {}
        first_rv = last_rv = ""
        self.relisting = True
        try:
            for page in self.api.pages(self.resource):
                for obj in page.get("items") or []:
                    key = object_key(obj)
                    fresh[key] = self.keep(obj)
                    before = old.get(key)
                    if before is None or _rv_of(before) != _rv_of(obj):
                        self.on_change(self.resource, before, obj)
                last_rv = str((page.get("metadata") or {}).get("resourceVersion") or "")
                first_rv = first_rv or last_rv
        except BaseException:
            # the handler saw these: remember them, so that the next list can tell whether
            # they are gone by then
            with self.lock:
                self._store = {**old, **fresh}
            self.relisting = False
            raise
        with self.lock:
            self._store = fresh
        try:
            for key, before in old.items():
                if key not in fresh:
                    self.on_change(self.resource, before, None)
        finally:
            self.relisting = False
        self._rv = last_rv or first_rv  # the last page's, as client-go
        self.served = True
        self.relists += 1
        first = not self.synced.is_set()
        self.synced.set()
        if not first and self.on_relist is not None:
            self.on_relist(self.resource)

    def _watch(self, backoff: Backoff) -> None:
        resp, events = self.api.watch(self.resource, self._rv, self.watch_timeout,
                                      self.inactivity_timeout)
        self._response = resp
        try:
            for event in events:
                if self._stop.is_set():
                    return
                self._handle(event)
                backoff.reset()
        finally:
            self._response = None
            if not self._stop.is_set():
                self.watch_restarts += 1
            with contextlib.suppress(Exception):
                self.api.end_watch(resp)

    def _handle(self, event: Obj) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = int(obj.get("code") or 0)
            raise KubeError(f"watch {self.resource.plural}: {obj.get('message')}", code,
                            str(obj.get("reason") or ""))
        rv = _rv_of(obj)
        if kind == "BOOKMARK":
            self._rv = rv or self._rv
            return
        key = object_key(obj)
        with self.lock:
            before = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = self.keep(obj)
        self._rv = rv or self._rv
        self.on_change(self.resource, before, None if kind == "DELETED" else obj)


def _whole(obj: Obj) -> Obj:
    return obj


def identity_only(obj: Obj) -> Obj:
    """An object's name, namespace and resourceVersion: enough for the store's bookkeeping (keys,
    what a relist must deliver) when nothing reads the object back from the store."""
    meta = obj.get("metadata") or {}
    return {"metadata": {k: meta[k] for k in ("name", "namespace", "resourceVersion")
                         if k in meta}}


def _rv_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
