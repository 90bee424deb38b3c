"""A thin, dict-only layer over the official client: raw JSON in and out.

vegd never needs the client's model classes or its generated API classes: every request goes
through the client's own connection pool (TLS, client certificates, proxy) with its own
credentials (bearer token, refreshed by its hook), and the JSON is decoded here, so lists of
thousands of pods stay cheap and `model.parse` gets the plain objects it expects whatever the
client version. The generated CoreV1Api/AppsV1Api modules take about a second to import
(docs/decisions.md "Kubernetes requests without the generated API classes").
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines
from urllib3.exceptions import ReadTimeoutError

from vegd import __version__
from vegd.kube.resources import CONFIGMAPS, DEPLOYMENTS, EVENTS, GATEWAYS, VPCS, Resource

Obj = dict[str, Any]

# Errors worth retrying with backoff; anything else from the API is a permanent answer.
TRANSIENT_STATUSES = frozenset({0, 408, 429, 500, 502, 503, 504})


INACTIVE = "WatchInactive"
MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = f"vegd/{__version__}"  # in the API server's audit log
POOL_CONNECTIONS = 32


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


# A list's head as API servers write it: `{"kind":…,"apiVersion":…,"metadata":{…}` before its
# items; ListMeta holds only scalars, so its object is the first `{…}` with no braces inside.
_LIST_HEAD = re.compile(rb'\s*\{(?:\s*"(?:kind|apiVersion)"\s*:\s*"[^"\\]*"\s*,)*'
                        rb'\s*"metadata"\s*:\s*\{([^{}]*)\}\s*,\s*"items"\s*:')
_CONTINUE = re.compile(rb'"continue"\s*:\s*"([^"\\]*)"')


def _head_continue(data: bytes) -> str | None:
    """A list's `metadata.continue` ("" on its last page) read from the text before its items;
    None when the head is not written that way (the caller then decodes the page first)."""
    head = _LIST_HEAD.match(data, 0, 4096)
    if head is None:
        return None
    token = _CONTINUE.search(head.group(1))
    return token.group(1).decode() if token else ""


def _json(data: bytes) -> Obj:
    """An answer's body decoded (an empty body, as some DELETEs give, is an empty object)."""
    return json.loads(data) if data else {}


def _error(status: int, body: bytes, what: str) -> KubeError:
    """The API's answer to a failed request: its Status object's reason and message."""
    reason, message = "", body.decode("utf-8", "replace").strip()
    try:
        status_obj = json.loads(body or b"{}")
        reason = str(status_obj.get("reason") or "")
        message = str(status_obj.get("message") or message)
    except (ValueError, TypeError, AttributeError):
        pass
    return KubeError(f"{what}: {status} {message}", status, reason)


class KubeApi:
    def __init__(self, configuration: client.Configuration, request_timeout: float = 30.0
                 ) -> None:
        # the client's pool: TLS, client certificates and proxy as its configuration says; room
        # for every informer's watch, the lists' pages ahead and the writes at once (the
        # client's default, 5 per CPU, made and dropped connections on a 2-CPU machine)
        configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0,
                                                     POOL_CONNECTIONS)
        self.api_client = client.ApiClient(configuration)
        self.configuration = configuration
        self.timeout = request_timeout

    def close(self) -> None:
        self.api_client.close()

    # -- one request ---------------------------------------------------------------------------

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if content_type:
            headers["Content-Type"] = content_type
        # the bearer token, read again through the client's refresh hook (in-cluster tokens
        # rotate, exec plugins expire)
        for auth in self.configuration.auth_settings().values():
            if auth.get("in") == "header" and auth.get("value"):
                headers[str(auth["key"])] = str(auth["value"])
        return headers

    def _send(self, what: str, method: str, path: str, query: dict[str, Any] | None = None,
              body: Obj | None = None, content_type: str = "",
              timeout: urllib3.Timeout | None = None) -> Any:
        """The open response of a request that succeeded (2xx); KubeError otherwise."""
        url = self.configuration.host + path
        if query:
            url += "?" + urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        if data is not None and not content_type:
            content_type = "application/json"
        try:
            resp = self.api_client.rest_client.pool_manager.request(
                method, url, body=data, headers=self._headers(content_type),
                timeout=timeout or urllib3.Timeout(total=self.timeout), preload_content=False)
        except Exception as exc:  # refused, reset, timed out: no answer from the API
            raise KubeError(f"{what}: {exc}", 0) from exc
        if not 200 <= resp.status <= 299:
            try:
                answer = resp.read()
            except Exception:
                answer = b""
            resp.release_conn()
            raise _error(resp.status, answer, what)
        return resp

    def _call(self, what: str, method: str, path: str, query: dict[str, Any] | None = None,
              body: Obj | None = None, content_type: str = "") -> Obj:
        return _json(self._body(what, method, path, query, body, content_type))

    def _body(self, what: str, method: str, path: str, query: dict[str, Any] | None = None,
              body: Obj | None = None, content_type: str = "") -> bytes:
        resp = self._send(what, method, path, query, body, content_type)
        try:
            return bytes(resp.read())
        except Exception as exc:
            raise KubeError(f"{what}: {exc}", 0) from exc
        finally:
            resp.release_conn()

    # -- list and watch ------------------------------------------------------------------------

    def list(self, res: Resource, limit: int = 500, cont: str = "") -> Obj:
        return _json(self._list_body(res, limit, cont))

    def _list_body(self, res: Resource, limit: int, cont: str) -> bytes:
        query: dict[str, Any] = {"limit": limit}
        if cont:
            query["continue"] = cont
        if res.label_selector:
            query["labelSelector"] = res.label_selector
        return self._body(f"list {res.plural}", "GET", res.collection_path, query)

    def watch(self, res: Resource, resource_version: str, timeout_seconds: int,
              inactivity_timeout: float | None = None) -> tuple[Any, Iterator[Obj]]:
        """The open response (close it to stop) and an iterator of decoded watch events.

        inactivity_timeout: the socket read timeout. The API server sends a bookmark about every
        minute, so a longer silence means the connection is dead (half-open behind a load
        balancer): the iterator raises KubeError with `inactive` set. Default: the server-side
        timeout plus 15 s."""
        read_timeout = inactivity_timeout or timeout_seconds + 15
        query: dict[str, Any] = {"watch": "true", "allowWatchBookmarks": "true",
                                 "resourceVersion": resource_version,
                                 "timeoutSeconds": timeout_seconds}
        if res.label_selector:
            query["labelSelector"] = res.label_selector
        resp = self._send(f"watch {res.plural}", "GET", res.collection_path, query,
                          timeout=urllib3.Timeout(connect=self.timeout, read=read_timeout))

        def events() -> Iterator[Obj]:
            try:
                for line in iter_resp_lines(resp):
                    if line:
                        yield json.loads(line)
            except ReadTimeoutError as exc:
                raise KubeError(f"watch {res.plural}: nothing received for {read_timeout:g} s",
                                0, INACTIVE) from exc
            except Exception as exc:
                raise KubeError(f"watch {res.plural}: {exc}", 0) from exc
        return resp, events()

    @staticmethod
    def end_watch(resp: Any) -> None:
        """Done with a watch's response: its connection back to the pool only when the stream
        was read to its end; left mid-stream (an ERROR event, a stop), the unread rest would be
        the next request's answer, so the connection is dropped."""
        if resp.isclosed():
            resp.release_conn()
        else:
            resp.close()

    # -- writes --------------------------------------------------------------------------------

    def patch_gateway(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._call(f"patch VpcEgressGateway {namespace}/{name}", "PATCH",
                          GATEWAYS.path(namespace, name), body=body, content_type=MERGE_PATCH)

    def patch_gateway_status(self, namespace: str, name: str, status: Obj) -> Obj:
        return self._call(f"patch VpcEgressGateway {namespace}/{name} status", "PATCH",
                          GATEWAYS.path(namespace, name, "status"), body={"status": status},
                          content_type=MERGE_PATCH)

    def patch_vpc_status(self, name: str, status: Obj) -> Obj:
        return self._call(f"patch Vpc {name} status", "PATCH", VPCS.path("", name, "status"),
                          body={"status": status}, content_type=MERGE_PATCH)

    def create_deployment(self, namespace: str, body: Obj) -> Obj:
        return self._call(f"create Deployment {namespace}/{body['metadata']['name']}", "POST",
                          DEPLOYMENTS.path(namespace), body=body)

    def replace_deployment(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._call(f"update Deployment {namespace}/{name}", "PUT",
                          DEPLOYMENTS.path(namespace, name), body=body)

    def create_configmap(self, namespace: str, body: Obj) -> Obj:
        return self._call(f"create ConfigMap {namespace}/{body['metadata']['name']}", "POST",
                          CONFIGMAPS.path(namespace), body=body)

    def replace_configmap(self, namespace: str, name: str, body: Obj) -> Obj:
        return self._call(f"update ConfigMap {namespace}/{name}", "PUT",
                          CONFIGMAPS.path(namespace, name), body=body)

    # -- whole collections and custom objects of a given resource (`vegd migrate`) -----------

    def pages(self, res: Resource, limit: int = 500) -> Iterator[Obj]:
        """A whole list, one page (a List object) at a time, following `continue`.

        A helper thread fetches the pages: it asks for the next one as soon as it has this
        one's bytes (the `continue` token is read from the list's head, `_head_continue`), and
        the caller decodes and handles this one meanwhile, so the server's time for a page and
        vegd's decoding and parsing of the one before overlap instead of adding up. At most
        three pages are alive: the caller's, one waiting, one being fetched."""
        ahead: queue.Queue[tuple[bytes | Obj | None, BaseException | None]] = \
            queue.Queue(maxsize=1)
        stop = threading.Event()

        def put(item: tuple[bytes | Obj | None, BaseException | None]) -> bool:
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
                    data = self._list_body(res, limit, cont)
                    token = _head_continue(data)
                    page: bytes | Obj = data
                    if token is None:  # not told by the head: decode here to know what is next
                        page = _json(data)
                        token = str((page.get("metadata") or {}).get("continue") or "")
                    if not put((page, None)):
                        return
                    cont = token
                    if not cont:
                        put((None, None))
                        return
            except BaseException as exc:  # handed to the caller, raised there
                put((None, exc))

        threading.Thread(target=fetch, daemon=True, name=f"list-{res.plural}").start()
        try:
            while True:
                item, error = ahead.get()
                if error is not None:
                    raise error
                if item is None:
                    return
                if isinstance(item, bytes):
                    yield _json(item)
                else:
                    yield item
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
        return self._call(f"get {res.kind} {namespace}/{name} ({res.group})", "GET",
                          res.path(namespace, name))

    def create_custom(self, res: Resource, namespace: str, body: Obj) -> Obj:
        return self._call(f"create {res.kind} {namespace}/{body['metadata']['name']} "
                          f"({res.group})", "POST", res.path(namespace), body=body)

    def delete_custom(self, res: Resource, namespace: str, name: str, uid: str = "") -> Obj:
        """Delete; with uid only that incarnation (a precondition: 409 for a newer object)."""
        body = {"preconditions": {"uid": uid}} if uid else None
        return self._call(f"delete {res.kind} {namespace}/{name} ({res.group})", "DELETE",
                          res.path(namespace, name), body=body)

    def create_event(self, namespace: str, body: Obj) -> Obj:
        return self._call(f"create Event in {namespace}", "POST", EVENTS.path(namespace),
                          body=body)
