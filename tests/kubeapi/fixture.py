"""The ``kubeapi`` pytest fixture and the KubeApi handle it yields.

Use it from a test module with ``pytest_plugins = ["kubeapi.fixture"]`` (tests/ is on sys.path),
or register it once in tests/conftest.py with the same line.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from .resources import VEG_CRD, Registry, default_registry
from .server import KubeApiServer
from .store import GarbageCollector, Store


class KubeApi:
    """An in-process Kubernetes API server on http://127.0.0.1:<port>, with test hooks."""

    def __init__(self, registry: Registry | None = None, *, history_limit: int = 10_000,
                 bookmark_interval: float = 1.0, watch_timeout: float = 1800.0,
                 crds: Iterable[Path] = (VEG_CRD,), port: int = 0,
                 tls: tuple[str, str] | None = None) -> None:
        """``crds``: CRD files created before serving, as on a cluster where they are
        installed (the VpcEgressGateway CRD by default; ``()`` for a bare server).
        ``tls``: (certificate chain file, key file) to serve HTTPS."""
        self.store = Store(registry or default_registry(), history_limit=history_limit)
        for path in crds:
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    self.store.create(self._type_of(doc), None, doc)
        self.server = KubeApiServer(self.store, port=port, bookmark_interval=bookmark_interval,
                                    watch_timeout=watch_timeout, tls=tls)
        self._gc = GarbageCollector(self.store).start()
        self._clients: list[client.ApiClient] = []
        self.server.start()

    # ------------------------------------------------------------ connection

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def configuration(self) -> client.Configuration:
        cfg = client.Configuration()
        cfg.host = self.url
        return cfg

    def api_client(self) -> client.ApiClient:
        """A new ApiClient for this server; closed automatically by close()."""
        c = client.ApiClient(self.configuration())
        self._clients.append(c)
        return c

    # ------------------------------------------------------------ test hooks

    def stop(self) -> None:
        """Stop serving (connections are cut, open watches end); the state is kept."""
        self.server.stop()

    def start(self) -> None:
        """Serve again on the same port, with the same state."""
        self.server.start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def drop_watches(self, graceful: bool = False) -> int:
        """End every open watch: cut the connection, or (graceful) end the stream cleanly
        as the real server does at a watch timeout. Returns how many watches were open."""
        return self.store.drop_watches("close" if graceful else "abort")

    def silence_watches(self, on: bool = True) -> None:
        """While on, newly opened watches stay open and send nothing (no bookmarks either)."""
        self.server.silence_watches = on

    @property
    def silenced_watches(self) -> int:
        return self.server.silenced

    def requests(self) -> list[tuple[str, str, dict[str, str], str]]:
        """Every request served so far: (method, path, query, Authorization header)."""
        with self.server.log_lock:
            return list(self.server.request_log)

    def open_watches(self) -> int:
        with self.store.lock:
            return len(self.store.watchers)

    def compact(self) -> int:
        """Forget the event history: a watch or exact list from an older resourceVersion
        now gets 410 Gone. Returns the current resourceVersion."""
        return self.store.compact()

    @property
    def resource_version(self) -> int:
        return self.store.rv

    def fail_next_write(self) -> None:
        """The next POST/PUT/PATCH/DELETE answers 500 InternalError."""
        self.server.fail_next = True

    # ------------------------------------------------------------ direct object access

    def _type_of(self, obj: dict[str, Any]) -> Any:
        rt = self.store.registry.by_kind(obj.get("apiVersion", ""), obj.get("kind", ""))
        if rt is None:
            raise KeyError(f"unknown type {obj.get('apiVersion')}/{obj.get('kind')}")
        return rt

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object as a client would; a given .status is then written through the
        status subresource (the real server drops status on create for most types)."""
        rt = self._type_of(obj)
        ns = obj.get("metadata", {}).get("namespace", "default") if rt.namespaced else None
        out = self.store.create(rt, ns, obj)
        if rt.status and "status" in obj and out.get("status") != obj["status"]:
            body = copy.deepcopy(out)
            body["status"] = copy.deepcopy(obj["status"])
            out = self.store.update(rt, ns, out["metadata"]["name"], body, "status")
        return out

    def get(self, api_version: str, kind: str, name: str,
            namespace: str | None = None) -> dict[str, Any]:
        rt = self._type_of({"apiVersion": api_version, "kind": kind})
        return self.store.get(rt, namespace, name)

    def load_yaml(self, source: str | Path) -> list[dict[str, Any]]:
        """Create every document of a YAML file or string; returns the stored objects."""
        text = source.read_text() if isinstance(source, Path) else source
        return self.create_all(d for d in yaml.safe_load_all(text) if d)

    def create_all(self, objs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.create(o) for o in objs]

    # ------------------------------------------------------------ teardown

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()
        self.server.stop()
        self._gc.stop()


@pytest.fixture
def kubeapi() -> Iterator[KubeApi]:
    """A fresh in-process API server per test (starts in a few milliseconds)."""
    api = KubeApi()
    try:
        yield api
    finally:
        api.close()
