"""FakeCluster's access to the API server (see `kubelet.py`): the official client with raw JSON
bodies, and a list+watch loop that survives dropped watches, restarts and 410 Gone.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import urllib3
from kubelet_rules import Obj
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.watch.watch import iter_resp_lines

log = logging.getLogger("kubelet-sim")

WATCH_SECONDS = 60  # server-side watch timeout; the stream is re-opened from its resourceVersion
MIN_BACKOFF, MAX_BACKOFF = 0.02, 0.5
NETWORK_ERRORS = (urllib3.exceptions.HTTPError, OSError)

# (apiVersion, kind) -> (plural, namespaced): what apply_yaml can create
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Node"): ("nodes", False),
    ("v1", "Pod"): ("pods", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("kubeovn.io/v1", "Vpc"): ("vpcs", False),
    ("kubeovn.io/v1", "Subnet"): ("subnets", False),
    ("kubeovn.io/v1", "IPPool"): ("ippools", False),
    ("kubeovn.io/v1", "VpcEgressGateway"): ("vpc-egress-gateways", True),
    ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition"): ("network-attachment-definitions",
                                                            True),
}


def json_body(resp: Any) -> Obj:
    """The JSON body of a `_preload_content=False` answer (reading it frees the connection)."""
    return dict(json.loads(resp.data))


def call(api_client: client.ApiClient, method: str, path: str, body: Obj,
         content_type: str = "application/json") -> Obj:
    """A request through the client's own transport, untyped: the client's models refuse fields
    they do not know, where the server would keep or drop them."""
    resp = api_client.call_api(method, api_client.configuration.host + path,
                               header_params={"Content-Type": content_type,
                                              "Accept": "application/json"},
                               body=body)
    resp.read()
    if not 200 <= resp.status < 300:
        raise ApiException(http_resp=resp)
    return dict(json.loads(resp.data))


def resource_path(api_version: str, plural: str, namespace: str | None) -> str:
    base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
    return base + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"


class Api:
    """Raw-JSON access to what the simulator reads and writes; one per thread."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        custom = client.CustomObjectsApi(api_client)
        self.lists: dict[str, Callable[..., Any]] = {
            "deployments": self.apps.list_deployment_for_all_namespaces,
            "pods": self.core.list_pod_for_all_namespaces,
            "nodes": self.core.list_node,
            "subnets": lambda **kw: custom.list_cluster_custom_object(
                "kubeovn.io", "v1", "subnets", **kw),
            "ippools": lambda **kw: custom.list_cluster_custom_object(
                "kubeovn.io", "v1", "ippools", **kw),
            "nads": lambda **kw: custom.list_cluster_custom_object(
                "k8s.cni.cncf.io", "v1", "network-attachment-definitions", **kw),
        }

    def items(self, what: str) -> list[Obj]:
        return list(json_body(self.lists[what](_preload_content=False))["items"])

    def create_pod(self, ns: str, body: Obj) -> Obj:
        return call(self.client, "POST", f"/api/v1/namespaces/{ns}/pods", body)

    def patch_pod(self, ns: str, name: str, body: Obj, merge: bool = False) -> Obj:
        """A strategic merge patch, or (merge) a JSON merge patch: lists replaced whole."""
        kind = {"_content_type": "application/merge-patch+json"} if merge else {}
        return json_body(self.core.patch_namespaced_pod(name, ns, body, _preload_content=False,
                                                        **kind))

    def patch_pod_status(self, ns: str, name: str, body: Obj) -> Obj:
        return json_body(self.core.patch_namespaced_pod_status(name, ns, body,
                                                               _preload_content=False))

    def read_pod(self, ns: str, name: str) -> Obj:
        return json_body(self.core.read_namespaced_pod(name, ns, _preload_content=False))

    def delete_pod(self, ns: str, name: str) -> None:
        try:
            json_body(self.core.delete_namespaced_pod(name, ns, _preload_content=False))
        except ApiException as e:
            if e.status != 404:
                raise

    def read_deployment(self, ns: str, name: str) -> Obj:
        return json_body(self.apps.read_namespaced_deployment(name, ns, _preload_content=False))

    def patch_deployment_status(self, ns: str, name: str, body: Obj) -> Obj:
        return json_body(self.apps.patch_namespaced_deployment_status(
            name, ns, body, _preload_content=False, _content_type="application/merge-patch+json"))


class _Expired(Exception):
    pass


class WatchLoop:
    """List, then watch from the list's resourceVersion, in a thread. A dropped connection or a
    server restart resumes from the last resourceVersion seen (the server replays what was
    missed); 410 Gone relists. Every event (and every relist) calls on_change: FakeCluster
    reconciles from fresh lists, so a signal is all it needs."""

    def __init__(self, what: str, list_fn: Callable[..., Any], on_change: Callable[[], None],
                 stopping: threading.Event) -> None:
        self.what = what
        self._list = list_fn
        self._on_change = on_change
        self._stopping = stopping
        self._lock = threading.Lock()
        self._resp: Any = None
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0  # the first list included
        self.reconnects = 0
        self.thread = threading.Thread(target=self._run, name=f"kubelet-sim-watch-{what}",
                                       daemon=True)

    def _run(self) -> None:
        backoff = MIN_BACKOFF
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    body = json_body(self._list(_preload_content=False))
                    self.resource_version = body["metadata"]["resourceVersion"]
                    self.relists += 1
                    self.synced.set()
                    self._on_change()
                self._watch()
                backoff = MIN_BACKOFF
                continue
            except _Expired:
                self.resource_version = None
                continue
            except ApiException as e:
                if e.status == 410:
                    self.resource_version = None
                    continue
                log.debug("watch %s: %s", self.what, e)
            except (*NETWORK_ERRORS, ValueError) as e:
                log.debug("watch %s: %s", self.what, e)
                self.reconnects += 1
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    def _watch(self) -> None:
        resp = self._list(watch=True, resource_version=self.resource_version,
                          allow_watch_bookmarks=True, timeout_seconds=WATCH_SECONDS,
                          _preload_content=False, _request_timeout=(5, WATCH_SECONDS + 10))
        with self._lock:
            if self._stopping.is_set():
                resp.release_conn()
                return
            self._resp = resp
        try:
            for line in iter_resp_lines(resp):
                if not line:
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    if obj.get("code") == 410:
                        raise _Expired
                    raise ApiException(status=obj.get("code"), reason=obj.get("message"))
                self.resource_version = obj["metadata"]["resourceVersion"]
                if event.get("type") != "BOOKMARK":
                    self._on_change()
        finally:
            with self._lock:
                self._resp = None
            resp.release_conn()

    def interrupt(self) -> None:
        """Unblock a read in progress (close() of the simulator)."""
        with self._lock:
            if self._resp is not None and hasattr(self._resp, "shutdown"):
                self._resp.shutdown()  # urllib3 >= 2.3; older ones end at the watch timeout
