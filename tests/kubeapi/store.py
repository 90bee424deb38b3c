"""The object store behind the test API server: the part that must behave like etcd + apiserver.

One lock guards everything. Every write gets the next value of one global resourceVersion and is
appended to an event log, which watches replay from and which lists at an older resourceVersion
(``resourceVersionMatch=Exact``, ``continue`` tokens) are reconstructed from. The log keeps the
last ``history_limit`` events; asking for anything older answers 410 Gone. ``compact()`` drops the
whole log at once.

A background garbage collector (``GarbageCollector``) does what kube-controller-manager's
garbage collector and namespace controller do: cascading deletion through ownerReferences
(background and foreground), and emptying terminating namespaces.
"""

from __future__ import annotations

import base64
import bisect
import copy
import json
import queue
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import cel, crds
from . import schema as schema_mod
from .patch import PatchError, apply_patch
from .resources import CRD_KEY, Registry, ResourceType
from .selectors import selector_from_label_selector

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


class ApiError(Exception):
    """An error answer of the API server, rendered as a metav1.Status."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Obj:
        out: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            out["details"] = self.details
        return out


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": rt.plural}
    if rt.group:
        d["group"] = rt.group
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{rt.qualified} "{name}" not found', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str | None = None) -> ApiError:
    why = why or ("the object has been modified; please apply your changes to the latest "
                  "version and try again")
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {rt.qualified} "{name}": '
                    f"{why}", _details(rt, name))


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    details = _details(rt, name)
    details["kind"] = rt.kind
    details["causes"] = [{"reason": "FieldValueInvalid", "message": m, "field": f}
                         for f, m in causes]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}', details)


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def get_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def set_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    cur = obj
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value


@dataclass
class Event:
    rv: int
    rtype: tuple[str, str]
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    old: Obj | None
    # the watch-stream line per event type as a watcher sees it, encoded by the first watcher
    # that sends it: every other watcher of the type sends the same bytes (stored objects are
    # never mutated, only replaced)
    lines: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)

    def line(self, etype: str) -> bytes:
        data = self.lines.get(etype)
        if data is None:
            data = json.dumps({"type": etype, "object": self.obj}).encode() + b"\n"
            self.lines[etype] = data
        return data


class Watcher:
    """One open watch: the store pushes events (or a control string) into its queue."""

    def __init__(self, rt: ResourceType, namespace: str | None,
                 predicate: Callable[[Obj], bool]) -> None:
        self.rt = rt
        self.namespace = namespace
        self.predicate = predicate
        self.queue: queue.SimpleQueue[Event | str] = queue.SimpleQueue()

    def _in_scope(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.predicate(obj)

    def translate(self, ev: Event) -> tuple[str, Obj] | None:
        """The event this watcher sees, given its selectors (None: not visible)."""
        new_in = ev.type != "DELETED" and self._in_scope(ev.obj)
        old_in = ev.type != "ADDED" and self._in_scope(ev.old if ev.type == "MODIFIED"
                                                        else ev.obj)
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if new_in else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if old_in else None
        if new_in and old_in:
            return ("MODIFIED", ev.obj)
        if new_in:
            return ("ADDED", ev.obj)
        if old_in:
            return ("DELETED", ev.obj)
        return None


class Store:
    def __init__(self, registry: Registry, history_limit: int = 10_000,
                 first_rv: int = 1000) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = first_rv
        self.history_limit = history_limit
        self.log: deque[Event] = deque()
        self.watermark = first_rv  # events with rv > watermark are all in the log
        self.objects: dict[tuple[str, str], dict[Key, Obj]] = {}
        self.uids: dict[str, tuple[ResourceType, Key]] = {}
        self.watchers: set[Watcher] = set()
        # The garbage collector's work, kept as writes happen so that a pass costs what changed,
        # not what is stored: dependents by owner uid, and the uids and terminating namespaces
        # whose GC verdict a write may have changed (see _note_for_gc).
        self.dependents: dict[str, set[str]] = {}
        self.gc_uids: set[str] = set()
        self.gc_namespaces: set[str] = set()
        self._key_order: dict[tuple[str, str], tuple[int, list[Key]]] = {}  # rt -> (rv, keys)
        self.request = threading.local()  # per-request options the HTTP front end sets
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._bootstrap_namespace(name)

    # ------------------------------------------------------------ internals

    def _bootstrap_namespace(self, name: str) -> None:
        rt = self._rt("", "v1", "namespaces")
        self.create(rt, None, {"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": name}})

    def _rt(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        assert rt is not None, (group, version, plural)
        return rt

    def _bucket(self, rt: ResourceType) -> dict[Key, Obj]:
        return self.objects.setdefault(rt.key, {})

    def _next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def _record(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None) -> None:
        if rt.key == CRD_KEY:
            self._crd_stored(etype, obj)
        ev = Event(int(obj["metadata"]["resourceVersion"]), rt.key, etype, obj, old)
        self._note_for_gc(rt, etype, obj, old)
        self.log.append(ev)
        while len(self.log) > self.history_limit:
            self.watermark = self.log.popleft().rv
        for w in self.watchers:
            if w.rt.key == rt.key:
                w.queue.put(ev)
        self.changed.notify_all()

    def _note_for_gc(self, rt: ResourceType, etype: str, obj: Obj, old: Obj | None) -> None:
        """Keep the owner index and mark what the next GC pass must look at: the object itself
        (its owners or its deletion changed), its owners (a dependent came, changed or went:
        foreground deletion may proceed), its dependents (their owner is gone) and its
        namespace when that is terminating."""
        meta = obj["metadata"]
        uid = meta["uid"]
        old_owners = _owner_uids(old)
        new_owners = set() if etype == "DELETED" else _owner_uids(obj)
        for owner in old_owners - new_owners:
            deps = self.dependents.get(owner)
            if deps is not None:
                deps.discard(uid)
                if not deps:
                    del self.dependents[owner]
        for owner in new_owners - old_owners:
            self.dependents.setdefault(owner, set()).add(uid)
        self.gc_uids.update(old_owners | new_owners)
        if etype == "DELETED":
            self.gc_uids.update(self.dependents.get(uid, ()))
        elif new_owners or meta.get("deletionTimestamp"):
            self.gc_uids.add(uid)
        if rt.kind == "Namespace" and rt.group == "":
            if etype != "DELETED" and meta.get("deletionTimestamp"):
                self.gc_namespaces.add(meta["name"])
        elif rt.namespaced:
            nsobj = self.objects.get(("", "namespaces"), {}).get(("", meta.get("namespace")))
            if nsobj is not None and nsobj["metadata"].get("deletionTimestamp"):
                self.gc_namespaces.add(meta["namespace"])

    def _stamp(self, obj: Obj) -> Obj:
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        return obj

    def _check_namespace(self, rt: ResourceType, ns: str | None, creating: bool) -> None:
        if not rt.namespaced:
            return
        nsobj = self.objects.get(("", "namespaces"), {}).get(("", ns or ""))
        if nsobj is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", f'{rt.qualified} is forbidden: unable to create new '
                           f"content in namespace {ns} because it is being terminated",
                           {"name": ns, "kind": "namespaces"})

    def _key(self, rt: ResourceType, ns: str | None, name: str) -> Key:
        return ((ns or "") if rt.namespaced else "", name)

    def _get(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        obj = self._bucket(rt).get(self._key(rt, ns, name))
        if obj is None:
            raise not_found(rt, name)
        return obj

    def _normalise(self, rt: ResourceType, obj: Obj, old: Obj | None) -> Obj:
        """Pruning, defaulting and validation (OpenAPI schema, then CEL rules), as the
        registry strategies do; unknown fields answer 400 under ``fieldValidation=Strict``."""
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        if rt.custom:
            meta = obj.pop("metadata")
            dropped: list[str] = []
            obj = schema_mod.process_custom(obj, rt.schema, dropped)
            obj["metadata"] = meta
            self._unknown_fields(rt, dropped)
        else:
            schema_mod.default_builtin(rt.kind, obj)
        name = obj["metadata"].get("name", "")
        causes: list[tuple[str, str]] = []
        if rt.schema is not None:
            causes += schema_mod.validate(obj, rt.schema)
            causes += cel.validate(obj, rt.schema, old)
        if rt.kind == "Deployment":
            causes += _validate_deployment(obj, old)
        if rt.key == CRD_KEY:
            causes += crds.validate_crd(obj)
            if not causes:
                obj["status"] = crds.established_status(obj, now_rfc3339())
        if causes:
            raise invalid(rt, name, causes)
        return obj

    def _unknown_fields(self, rt: ResourceType, dropped: list[str]) -> None:
        if not dropped:
            return
        mode = getattr(self.request, "field_validation", None) or "Ignore"
        found = ", ".join(f'unknown field "{p}"' for p in dropped)
        if mode == "Strict":
            raise bad_request(f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                              f"{rt.kind}: strict decoding error: {found}")
        if mode == "Warn":
            warnings = getattr(self.request, "warnings", None)
            if warnings is not None:
                warnings.extend(f'unknown field "{p}"' for p in dropped)

    def _crd_stored(self, etype: str, crd: Obj) -> None:
        """Serve what a stored CRD defines; on its deletion delete its objects first."""
        if etype != "DELETED":
            self.registry.add_crd(crd)
            return
        for rt in self.registry.remove_crd(crd)[:1]:
            for obj in list(self._bucket(rt).values()):
                self._remove(rt, obj)
            self.objects.pop(rt.key, None)

    # ------------------------------------------------------------ reads

    def get(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        with self.lock:
            return copy.deepcopy(self._get(rt, ns, name))

    def snapshot(self, rt: ResourceType, rv: int) -> dict[Key, Obj]:
        """The objects of one type as they were at resourceVersion rv (410 if compacted)."""
        current = dict(self._bucket(rt))
        if rv >= self.rv:
            return current
        if rv < self.watermark:
            raise gone(f"too old resource version: {rv} ({self.watermark + 1})")
        for ev in reversed(self.log):
            if ev.rv <= rv:
                break
            if ev.rtype != rt.key:
                continue
            meta = ev.obj["metadata"]
            key = self._key(rt, meta.get("namespace"), meta["name"])
            if ev.type == "ADDED":
                current.pop(key, None)
            elif ev.old is not None:
                current[key] = ev.old
        return current

    def _sorted_keys(self, rt: ResourceType, at: int, objs: dict[Key, Obj]) -> list[Key]:
        hit = self._key_order.get(rt.key)
        if hit is None or hit[0] != at:
            hit = self._key_order[rt.key] = (at, sorted(objs))
        return hit[1]

    def list(self, rt: ResourceType, ns: str | None, predicate: Callable[[Obj], bool],
             resource_version: str | None = None, rv_match: str | None = None,
             limit: int | None = None, continue_token: str | None = None) -> Obj:
        with self.lock:
            start: Key | None = None
            if continue_token:
                try:
                    tok = json.loads(base64.b64decode(continue_token))
                    at, start = int(tok["rv"]), (tok["start"][0], tok["start"][1])
                except (ValueError, KeyError, TypeError, IndexError) as e:
                    raise bad_request(f"continue key is not valid: {e}") from e
                try:
                    objs = self.snapshot(rt, at)
                except ApiError as e:
                    raise gone("The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without the "
                               "continue parameter.") from e
            elif resource_version and resource_version != "0" and rv_match == "Exact":
                at = int(resource_version)
                if at > self.rv:
                    raise ApiError(504, "Timeout",
                                   f"Too large resource version: {at}, current: {self.rv}")
                if at < self.watermark:
                    raise gone("The resourceVersion for the provided list is too old.")
                objs = self.snapshot(rt, at)
            else:
                if resource_version and resource_version != "0" and int(resource_version) > self.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: "
                                   f"{resource_version}, current: {self.rv}")
                at, objs = self.rv, dict(self._bucket(rt))
            # a page costs its own items, as from etcd: the keys are sorted once per list
            # (a list's pages share its resourceVersion) and the page starts by bisection
            keys = self._sorted_keys(rt, at, objs)
            first = bisect.bisect_right(keys, start) if start is not None else 0
            items = []
            for i in range(first, len(keys)):
                k = keys[i]
                if (ns is None or k[0] == ns) and predicate(objs[k]):
                    items.append(objs[k])
                    if limit and len(items) > limit:
                        break
            meta: dict[str, Any] = {"resourceVersion": str(at)}
            if limit and len(items) > limit:
                items = items[:limit]
                last = items[-1]["metadata"]
                token = {"rv": at, "start": [last.get("namespace", ""), last["name"]]}
                meta["continue"] = base64.b64encode(json.dumps(token).encode()).decode()
                if not getattr(predicate, "selects", True):
                    # as the real server: only without selectors (then it is cheap to know)
                    meta["remainingItemCount"] = sum(1 for k in keys[i:]
                                                     if ns is None or k[0] == ns)
            out_items = copy.deepcopy(items)
            if not rt.custom:  # typed lists omit kind/apiVersion on items
                for o in out_items:
                    o.pop("kind", None)
                    o.pop("apiVersion", None)
            return {"kind": rt.list_kind, "apiVersion": rt.api_version, "metadata": meta,
                    "items": out_items}

    # ------------------------------------------------------------ writes

    def create(self, rt: ResourceType, ns: str | None, body: Obj, dry_run: bool = False) -> Obj:
        with self.lock:
            obj = copy.deepcopy(body)
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise bad_request("metadata must be an object")
            if rt.namespaced:
                if meta.get("namespace") not in (None, "", ns):
                    raise bad_request("the namespace of the provided object does not match the "
                                      "namespace sent on the request")
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            if not meta.get("name"):
                if meta.get("generateName"):
                    alphabet = "bcdfghjklmnpqrstvwxz2456789"
                    meta["name"] = meta["generateName"] + "".join(
                        secrets.choice(alphabet) for _ in range(5))
                else:
                    raise invalid(rt, "", [("metadata.name",
                                            "Required value: name or generateName is required")])
            name = meta["name"]
            self._check_namespace(rt, ns, creating=True)
            key = self._key(rt, ns, name)
            if key in self._bucket(rt):
                raise ApiError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                               _details(rt, name))
            for k in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields"):
                meta.pop(k, None)
            if rt.status:
                if rt.custom or rt.kind == "Deployment":
                    obj.pop("status", None)
                if rt.kind == "Deployment":
                    obj["status"] = {}
                elif rt.kind == "Pod":
                    obj["status"] = {"phase": "Pending"}
                elif rt.kind == "Namespace":
                    obj["status"] = {"phase": "Active"}
            obj = self._normalise(rt, obj, None)
            meta = obj["metadata"]
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if rt.generation:
                meta["generation"] = 1
            if dry_run:
                return copy.deepcopy(obj)
            self._stamp(obj)
            self._bucket(rt)[key] = obj
            self.uids[meta["uid"]] = (rt, key)
            self._record(rt, "ADDED", obj, None)
            return copy.deepcopy(obj)

    def update(self, rt: ResourceType, ns: str | None, name: str, body: Obj,
               subresource: str | None = None, dry_run: bool = False) -> Obj:
        with self.lock:
            old = self._get(rt, ns, name)
            meta = body.get("metadata") or {}
            if meta.get("name") not in (None, name):
                raise bad_request(f"the name of the object ({meta.get('name')}) does not match "
                                  f"the name on the URL ({name})")
            if rt.namespaced and meta.get("namespace") not in (None, "", ns):
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            rv = meta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if subresource == "status":
                new = copy.deepcopy(old)
                if "status" in body:
                    new["status"] = copy.deepcopy(body["status"])
                else:
                    new.pop("status", None)
            else:
                new = copy.deepcopy(body)
                new.setdefault("metadata", {})
                nmeta = new["metadata"]
                for k in ("uid", "creationTimestamp", "deletionTimestamp",
                          "deletionGracePeriodSeconds", "generation", "namespace", "name"):
                    if k in old["metadata"]:
                        nmeta[k] = old["metadata"][k]
                    else:
                        nmeta.pop(k, None)
                nmeta.pop("managedFields", None)
                if rt.status:
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                if old["metadata"].get("deletionTimestamp"):
                    added = set(nmeta.get("finalizers") or []) - set(
                        old["metadata"].get("finalizers") or [])
                    if added:
                        raise ApiError(422, "Invalid", f'{rt.kind} "{name}" is invalid: '
                                       f"metadata.finalizers: Forbidden: no new finalizers can "
                                       f"be added if the object is being deleted, found new "
                                       f"finalizers {sorted(added)}", _details(rt, name))
            new = self._normalise(rt, new, old)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return copy.deepcopy(old)  # no-op: no new resourceVersion, no event
            if rt.generation and _spec_of(new, rt) != _spec_of(old, rt):
                new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
            if dry_run:
                return copy.deepcopy(new)
            return self._commit_update(rt, old, new)

    def _commit_update(self, rt: ResourceType, old: Obj, new: Obj) -> Obj:
        meta = new["metadata"]
        key = self._key(rt, meta.get("namespace"), meta["name"])
        self._stamp(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            del self._bucket(rt)[key]
            self.uids.pop(meta["uid"], None)
            self._record(rt, "DELETED", new, old)
        else:
            self._bucket(rt)[key] = new
            self._record(rt, "MODIFIED", new, old)
        return copy.deepcopy(new)

    def patch(self, rt: ResourceType, ns: str | None, name: str, content_type: str, patch: Any,
              subresource: str | None = None, dry_run: bool = False) -> Obj:
        with self.lock:
            ct = content_type.split(";")[0].strip().lower()
            if ct == "application/strategic-merge-patch+json" and rt.custom:
                raise ApiError(415, "UnsupportedMediaType",
                               "the body of the request was in an unknown format - accepted "
                               "media types include: application/json-patch+json, "
                               "application/merge-patch+json, application/apply-patch+yaml")
            old = self._get(rt, ns, name)
            try:
                patched = apply_patch(ct, copy.deepcopy(old), patch)
            except PatchError as e:
                raise ApiError(422, "Invalid", str(e)) from e
            except ValueError as e:
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted "
                               f"media types include: application/json-patch+json, "
                               f"application/merge-patch+json, "
                               f"application/strategic-merge-patch+json; got {ct}") from e
            if not isinstance(patched, dict):
                raise ApiError(422, "Invalid", "the patched object is not an object")
            return self.update(rt, ns, name, patched, subresource, dry_run)

    def delete(self, rt: ResourceType, ns: str | None, name: str,
               options: Obj | None = None, dry_run: bool = False) -> tuple[int, Obj]:
        """Delete; returns (HTTP status, body). Like the real server, 200 also when finalizers
        hold the object (the body is then the object with its deletionTimestamp)."""
        options = options or {}
        with self.lock:
            old = self._get(rt, ns, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(rt, name, f"Precondition failed: UID in precondition: "
                               f"{pre['uid']}, UID in object meta: {old['metadata']['uid']}")
            if pre.get("resourceVersion") and (pre["resourceVersion"]
                                               != old["metadata"]["resourceVersion"]):
                raise conflict(rt, name)
            policy = options.get("propagationPolicy")
            if dry_run:
                return 200, copy.deepcopy(old)
            if policy == "Orphan":
                self._orphan_dependents(old["metadata"]["uid"])
            new = copy.deepcopy(old)
            meta = new["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            if policy == "Foreground" and FOREGROUND not in finalizers:
                finalizers.append(FOREGROUND)
            namespace_pending = rt.kind == "Namespace" and rt.group == ""
            if finalizers or namespace_pending:
                if meta.get("deletionTimestamp"):
                    if finalizers == list(meta.get("finalizers") or []):
                        return 200, copy.deepcopy(old)
                else:
                    meta["deletionTimestamp"] = now_rfc3339()
                    meta["deletionGracePeriodSeconds"] = 0
                    if meta.get("generation"):
                        meta["generation"] += 1
                if finalizers:
                    meta["finalizers"] = finalizers
                if namespace_pending:
                    new.setdefault("status", {})["phase"] = "Terminating"
                    self._stamp(new)
                    self._bucket(rt)[self._key(rt, ns, name)] = new
                    self._record(rt, "MODIFIED", new, old)
                    return 200, copy.deepcopy(new)
                return 200, self._commit_update(rt, old, new)
            return 200, self._remove(rt, old)

    def _remove(self, rt: ResourceType, old: Obj) -> Obj:
        obj = copy.deepcopy(old)
        self._stamp(obj)
        meta = obj["metadata"]
        del self._bucket(rt)[self._key(rt, meta.get("namespace"), meta["name"])]
        self.uids.pop(meta["uid"], None)
        self._record(rt, "DELETED", obj, old)
        if rt.return_deleted_object:
            return copy.deepcopy(obj)
        details = _details(rt, meta["name"])
        details["uid"] = meta["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}

    def _orphan_dependents(self, uid: str) -> None:
        for rt, obj in list(self._dependents(uid)):
            refs = obj["metadata"].get("ownerReferences") or []
            new = copy.deepcopy(obj)
            new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._commit_update(rt, obj, new)

    # ------------------------------------------------------------ scale subresource

    def _scale_selector(self, rt: ResourceType, obj: Obj) -> str:
        assert rt.scale is not None
        if rt.scale.label_selector_path is None:
            return ""
        sel = get_path(obj, rt.scale.label_selector_path)
        if isinstance(sel, dict):
            return selector_from_label_selector(sel)
        return sel or ""

    def _scale_of(self, rt: ResourceType, obj: Obj) -> Obj:
        assert rt.scale is not None
        meta = obj["metadata"]
        spec_r = get_path(obj, rt.scale.spec_replicas_path)
        status_r = get_path(obj, rt.scale.status_replicas_path)
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                  "creationTimestamp") if k in meta},
                "spec": {"replicas": spec_r or 0},
                "status": {"replicas": status_r or 0,
                           "selector": self._scale_selector(rt, obj)}}

    def get_scale(self, rt: ResourceType, ns: str | None, name: str) -> Obj:
        with self.lock:
            return self._scale_of(rt, self._get(rt, ns, name))

    def update_scale(self, rt: ResourceType, ns: str | None, name: str, scale: Obj,
                     dry_run: bool = False) -> Obj:
        assert rt.scale is not None
        with self.lock:
            old = self._get(rt, ns, name)
            rv = (scale.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise ApiError(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: '
                               f"spec.replicas: Invalid value: {replicas!r}: must be greater "
                               f"than or equal to 0")
            new = copy.deepcopy(old)
            set_path(new, rt.scale.spec_replicas_path, replicas)
            new["metadata"].pop("resourceVersion", None)
            result = self.update(rt, ns, name, new, None, dry_run)
            return self._scale_of(rt, result)

    def patch_scale(self, rt: ResourceType, ns: str | None, name: str, content_type: str,
                    patch: Any, dry_run: bool = False) -> Obj:
        with self.lock:
            current = self.get_scale(rt, ns, name)
            try:
                patched = apply_patch(content_type, current, patch)
            except PatchError as e:
                raise ApiError(422, "Invalid", str(e)) from e
            except ValueError as e:
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch type {e}") from e
            return self.update_scale(rt, ns, name, patched, dry_run)

    # ------------------------------------------------------------ watch

    def open_watch(self, rt: ResourceType, ns: str | None, predicate: Callable[[Obj], bool],
                   resource_version: str | None) -> tuple[Watcher, list[tuple[str, Obj]]]:
        """Register a watcher; return it with the events it must send first."""
        with self.lock:
            w = Watcher(rt, ns, predicate)
            initial: list[tuple[str, Obj]] = []
            if not resource_version or resource_version == "0":
                for _, obj in sorted(self._bucket(rt).items()):
                    if w._in_scope(obj):
                        initial.append(("ADDED", obj))
            else:
                try:
                    since = int(resource_version)
                except ValueError as e:
                    raise bad_request(f"invalid resourceVersion {resource_version!r}") from e
                if since < self.watermark:
                    raise gone(f"too old resource version: {since} ({self.watermark + 1})")
                for ev in self.log:
                    if ev.rv > since and ev.rtype == rt.key:
                        seen = w.translate(ev)
                        if seen:
                            initial.append(seen)
            self.watchers.add(w)
            return w, copy.deepcopy(initial)

    def close_watch(self, w: Watcher) -> None:
        with self.lock:
            self.watchers.discard(w)

    def drop_watches(self, how: str = "abort") -> int:
        """End every open watch: "abort" cuts the connection, "close" ends the stream cleanly."""
        with self.lock:
            ws = list(self.watchers)
            for w in ws:
                w.queue.put(how)
            return len(ws)

    def compact(self) -> int:
        """Forget all history: watches and exact lists from any older resourceVersion get 410."""
        with self.lock:
            self.log.clear()
            self.watermark = self.rv
            return self.rv

    # ------------------------------------------------------------ garbage collection

    def gc_pass(self) -> bool:
        """One pass of GC and namespace cleanup; True when it changed something."""
        with self.lock:
            changed = False
            uids, self.gc_uids = self.gc_uids, set()
            for uid in sorted(uids):
                where = self.uids.get(uid)
                obj = self._bucket(where[0]).get(where[1]) if where else None
                if obj is None:
                    continue
                rt = where[0]
                meta = obj["metadata"]
                refs = meta.get("ownerReferences") or []
                if refs and not meta.get("deletionTimestamp"):
                    alive = [r for r in refs if r.get("uid") in self.uids]
                    if not alive:
                        self.delete(rt, meta.get("namespace"), meta["name"],
                                    {"propagationPolicy": "Background"})
                        changed = True
                        continue
                    if len(alive) != len(refs):
                        new = copy.deepcopy(obj)
                        new["metadata"]["ownerReferences"] = alive
                        self._commit_update(rt, obj, new)
                        changed = True
                if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or []):
                    changed |= self._foreground(rt, obj)
            nsrt = self._rt("", "v1", "namespaces")
            names, self.gc_namespaces = self.gc_namespaces, set()
            for name in sorted(names):
                nsobj = self._bucket(nsrt).get(("", name))
                if nsobj is not None and nsobj["metadata"].get("deletionTimestamp"):
                    changed |= self._empty_namespace(nsrt, name, nsobj)
            return changed

    def _dependents(self, uid: str) -> Iterable[tuple[ResourceType, Obj]]:
        for dep in sorted(self.dependents.get(uid, ())):
            if dep not in self.uids:
                continue
            rt, key = self.uids[dep]
            obj = self._bucket(rt).get(key)
            if obj and any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences")
                           or []):
                yield rt, obj

    def _foreground(self, rt: ResourceType, owner: Obj) -> bool:
        uid = owner["metadata"]["uid"]
        deps = list(self._dependents(uid))
        changed = False
        for drt, dep in deps:
            if not dep["metadata"].get("deletionTimestamp"):
                self.delete(drt, dep["metadata"].get("namespace"), dep["metadata"]["name"],
                            {"propagationPolicy": "Foreground"})
                changed = True
        blocking = [d for _, d in self._dependents(uid)
                    if any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                           for r in d["metadata"].get("ownerReferences") or [])]
        if not blocking:
            new = copy.deepcopy(owner)
            new["metadata"]["finalizers"] = [f for f in new["metadata"]["finalizers"]
                                             if f != FOREGROUND]
            self._commit_update(rt, owner, new)
            changed = True
        return changed

    def _empty_namespace(self, nsrt: ResourceType, name: str, nsobj: Obj) -> bool:
        """The namespace controller: delete the content, then the namespace itself."""
        changed = False
        remaining = 0
        for rt in self.registry.all():
            if not rt.namespaced:
                continue
            for key, obj in list(self._bucket(rt).items()):
                if key[0] != name:
                    continue
                if not obj["metadata"].get("deletionTimestamp"):
                    self.delete(rt, name, key[1])
                    changed = True
                if key in self._bucket(rt):
                    remaining += 1
        if remaining == 0 and not nsobj["metadata"].get("finalizers"):
            self._remove(nsrt, nsobj)
            changed = True
        return changed


def _owner_uids(obj: Obj | None) -> set[str]:
    if obj is None:
        return set()
    return {r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid")}


def _spec_of(obj: Obj, rt: ResourceType) -> Obj:
    """What counts for metadata.generation: everything but metadata (and status if separate)."""
    return {k: v for k, v in obj.items()
            if k not in ("metadata", "apiVersion", "kind") and not (k == "status" and rt.status)}


def _validate_deployment(obj: Obj, old: Obj | None) -> list[tuple[str, str]]:
    from .selectors import labels_match, parse_label_selector

    spec = obj.get("spec") or {}
    sel = spec.get("selector")
    if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        return [("spec.selector", "Required value")]
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    reqs = parse_label_selector(selector_from_label_selector(sel))
    out = []
    if not labels_match(reqs, {"metadata": {"labels": labels}}):
        out.append(("spec.template.metadata.labels", f"Invalid value: {labels!r}: `selector` "
                    "does not match template `labels`"))
    if old is not None and (old.get("spec") or {}).get("selector") != sel:
        out.append(("spec.selector", f"Invalid value: {sel!r}: field is immutable"))
    if not spec.get("template", {}).get("spec", {}).get("containers"):
        out.append(("spec.template.spec.containers", "Required value"))
    return out


class GarbageCollector:
    """A thread that runs Store.gc_pass() whenever the store changes, until stopped."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="kubeapi-gc", daemon=True)

    def start(self) -> GarbageCollector:
        self._thread.start()
        return self

    def _run(self) -> None:
        store = self.store
        seen = -1
        while True:
            with store.changed:
                while not self._stop and store.rv == seen:
                    store.changed.wait()
                if self._stop:
                    return
                seen = store.rv
                while store.gc_pass():
                    pass
                seen = store.rv

    def stop(self) -> None:
        with self.store.changed:
            self._stop = True
            self.store.changed.notify_all()
        self._thread.join(timeout=5)
