"""A thin, dict-only layer over the official client: raw JSON in and out.

vegd never needs the client's model classes; asking for `_preload_content=False` and decoding the
JSON ourselves keeps lists of thousands of pods cheap and gives `model.parse` the plain objects it
expects, whatever the client version.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import ReadTimeoutError

from vegd.kube.resources import GATEWAYS, Resource

Obj = dict[str, Any]

# Errors worth retrying with backoff; anything else from the API is a permanent answer.
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})


INACTIVE = "WatchInactive"


class KubeError(RuntimeError):
    """The API refused or failed a request."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        return self.status == 410

    @property
    def inactive(self) -> bool:
        """A watch that sent nothing, not even a bookmark, for its inactivity timeout."""
        return self.reason == INACTIVE


def load_configuration(kubeconfig: str = "") -> client.Configuration:
    """kubeconfig file when given (or $KUBECONFIG), else in-cluster service account."""
    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG", "")
    try:
        if path:
            config.load_kube_config(config_file=path, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
    except (config.ConfigException, OSError) as exc:
        where = path or "in-cluster service account"
        raise KubeError(f"cannot load Kubernetes credentials from {where}: {exc}") from exc
    return cfg


def _error(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiException):
        reason = ""
        message = str(exc.reason or "")
        try:
            body = json.loads(exc.body or "{}")
            reason = str(body.get("reason") or "")
            message = str(body.get("message") or message)
        except (ValueError, TypeError):
            pass
        return KubeError(f"{what}: {exc.status} {message}", int(exc.status or 0), reason)
    return KubeError(f"{what}: {exc}", 0)


def _decode(resp: Any) -> Obj:
    data = resp.data if hasattr(resp, "data") else resp.read()
    return json.loads(data) if data else {}


class KubeApi:
    def __init__(self, configuration: client.Configuration, request_timeout: float = 30.0
                 ) -> None:
        self.api_client = client.ApiClient(configuration)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.timeout = request_timeout

    # The generated CoreV1Api and AppsV1Api modules take a second or more to import (pydantic
    # models for every method's signature): imported when first used, in the informer thread
    # that lists pods or Deployments, while the custom resources' lists are already under way.
    @functools.cached_property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    @functools.cached_property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    def close(self) -> None:
        self.api_client.close()

    # -- list and watch ------------------------------------------------------------------------

    def _lister(self, res: Resource) -> Callable[..., Any]:
        if res.group in ("", "apps") and res.plural in _BUILTIN_LISTERS:
            api = self.apps if res.group == "apps" else self.core
            return getattr(api, _BUILTIN_LISTERS[res.plural])

        def custom(**kw: Any) -> Any:
            return self.custom.list_cluster_custom_object(res.group, res.version, res.plural, **kw)
        return custom

    def list(self, res: Resource, limit: int = 500, cont: str = "") -> Obj:
        kw: dict[str, Any] = {"limit": limit}
        if cont:
            kw["_continue"] = cont
        if res.label_selector:
            kw["label_selector"] = res.label_selector
        try:
            resp = self._lister(res)(_preload_content=False, _request_timeout=self.timeout, **kw)
            return _decode(resp)
        except Exception as exc:
            raise _error(exc, f"list {res.plural}") from exc

    def watch(self, res: Resource, resource_version: str, timeout_seconds: int,
              inactivity_timeout: float | None = None) -> tuple[Any, Iterator[Obj]]:
        """The open response (close it to stop) and an iterator of decoded watch events.

        inactivity_timeout: the socket read timeout. The API server sends a bookmark about every
        minute, so a longer silence means the connection is dead (half-open behind a load
        balancer): the iterator raises KubeError with `inactive` set. Default: the server-side
        timeout plus 15 s."""
        read_timeout = inactivity_timeout or timeout_seconds + 15
        kw: dict[str, Any] = {"watch": True, "allow_watch_bookmarks": True,
                              "resource_version": resource_version,
                              "timeout_seconds": timeout_seconds}
        if res.label_selector:
            kw["label_selector"] = res.label_selector
        try:
            resp = self._lister(res)(_preload_content=False,
                                     _request_timeout=(self.timeout, read_timeout), **kw)
        except Exception as exc:
            raise _error(exc, f"watch {res.plural}") from exc

        def events() -> Iterator[Obj]:
            try:
                for line in iter_resp_lines(resp):
                    if line:
                        yield json.loads(line)
            except ReadTimeoutError as exc:
                raise KubeError(f"watch {res.plural}: nothing received for {read_timeout:g} s",
                                0, INACTIVE) from exc
            except Exception as exc:
                raise _error(exc, f"watch {res.plural}") from exc
        return resp, events()

    # -- writes --------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Obj:
        try:
            return _decode(fn(*args, _preload_content=False, _request_timeout=self.timeout, **kw))
        except Exception as exc:
            raise _error(exc, what) from exc

    def patch_gateway(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._call(f"patch VpcEgressGateway {namespace}/{name}",
                          self.custom.patch_namespaced_custom_object, GATEWAYS.group,
                          GATEWAYS.version, namespace, GATEWAYS.plural, name, body)

    def patch_gateway_status(self, namespace: str, name: str, status: Obj) -> Obj:
        return self._call(f"patch VpcEgressGateway {namespace}/{name} status",
                          self.custom.patch_namespaced_custom_object_status, GATEWAYS.group,
                          GATEWAYS.version, namespace, GATEWAYS.plural, name,
                          {"status": status})

    def patch_vpc_status(self, name: str, status: Obj) -> Obj:
        return self._call(f"patch Vpc {name} status",
                          self.custom.patch_cluster_custom_object_status, "kubeovn.io", "v1",
                          "vpcs", name, {"status": status})

    def create_deployment(self, namespace: str, body: Obj) -> Obj:
        return self._call(f"create Deployment {namespace}/{body['metadata']['name']}",
                          self.apps.create_namespaced_deployment, namespace, body)

    def replace_deployment(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._call(f"update Deployment {namespace}/{name}",
                          self.apps.replace_namespaced_deployment, name, namespace, body)

    def create_configmap(self, namespace: str, body: Obj) -> Obj:
        return self._call(f"create ConfigMap {namespace}/{body['metadata']['name']}",
                          self.core.create_namespaced_config_map, namespace, body)

    def replace_configmap(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._call(f"update ConfigMap {namespace}/{name}",
                          self.core.replace_namespaced_config_map, name, namespace, body)

    # -- whole collections and custom objects of a given resource (`vegd migrate`) -----------

    def pages(self, res: Resource, limit: int = 500) -> Iterator[Obj]:
        """A whole list, one page (a List object) at a time, following `continue`.

        The next page is fetched (and decoded) in a helper thread while the caller works on
        this one: a page's server time and the caller's parsing overlap instead of adding up.
        At most three pages are alive: the caller's, one waiting, one being fetched."""
        ahead: queue.Queue[tuple[Obj | None, BaseException | None]] = queue.Queue(maxsize=1)
        stop = threading.Event()

        def put(item: tuple[Obj | None, BaseException | None]) -> bool:
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def fetch() -> None:
            cont = ""
            try:
                while True:
                    page = self.list(res, limit=limit, cont=cont)
                    if not put((page, None)):
                        return
                    cont = str((page.get("metadata") or {}).get("continue") or "")
                    if not cont:
                        put((None, None))
                        return
            except BaseException as exc:  # handed to the caller, raised there
                put((None, exc))

        threading.Thread(target=fetch, daemon=True, name=f"list-{res.plural}").start()
        try:
            while True:
                page, error = ahead.get()
                if error is not None:
                    raise error
                if page is None:
                    return
                yield page
        finally:
            stop.set()  # the caller stopped early (or failed): the fetcher ends too

    def list_all(self, resources: Iterable[Resource]) -> Iterator[Obj]:
        """Every object of the resources, page by page, with apiVersion and kind set (list
        items carry neither); a kind the server does not serve (a CRD not installed) is
        skipped."""
        for res in resources:
            try:
                for page in self.pages(res):
                    for item in page.get("items") or []:
                        yield {**item, "apiVersion": res.api_version, "kind": res.kind}
            except KubeError as exc:
                if not exc.not_found:
                    raise

    def get_custom(self, res: Resource, namespace: str, name: str) -> Obj:
        return self._call(f"get {res.kind} {namespace}/{name} ({res.group})",
                          self.custom.get_namespaced_custom_object, res.group, res.version,
                          namespace, res.plural, name)

    def create_custom(self, res: Resource, namespace: str, body: Obj) -> Obj:
        return self._call(f"create {res.kind} {namespace}/{body['metadata']['name']} "
                          f"({res.group})", self.custom.create_namespaced_custom_object,
                          res.group, res.version, namespace, res.plural, body)

    def delete_custom(self, res: Resource, namespace: str, name: str, uid: str = "") -> Obj:
        """Delete; with uid only that incarnation (a precondition: 409 for a newer object)."""
        body = {"preconditions": {"uid": uid}} if uid else None
        return self._call(f"delete {res.kind} {namespace}/{name} ({res.group})",
                          self.custom.delete_namespaced_custom_object, res.group, res.version,
                          namespace, res.plural, name, body=body)

    def create_event(self, namespace: str, body: Obj) -> Obj:
        return self._call(f"create Event in {namespace}",
                          self.core.create_namespaced_event, namespace, body)


_BUILTIN_LISTERS = {
    "pods": "list_pod_for_all_namespaces",
    "namespaces": "list_namespace",
    "nodes": "list_node",
    "deployments": "list_deployment_for_all_namespaces",
    "configmaps": "list_config_map_for_all_namespaces",
}
