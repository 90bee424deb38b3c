"""The test API server's watch, through kubernetes.watch.Watch: replay from a resourceVersion,
selectors, bookmarks, 410 Gone, timeouts, dropped watches and a server restart."""

from __future__ import annotations

import threading

import pytest
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from ovnstack import wait_for

pytest_plugins = ["kubeapi.fixture"]

G, V, VEG = "kubeovn.io", "v1", "vpc-egress-gateways"


def pod(name, labels=None, node=None):
    spec = {"containers": [{"name": "c", "image": "busybox:1"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def take(stream, n):
    """The first n events of a watch stream (then the stream is closed)."""
    out = []
    for ev in stream:
        out.append(ev)
        if len(out) == n:
            break
    stream.close()
    return out


class Collector:
    """A watch running in a thread, collecting (type, name, rv) until it ends."""

    def __init__(self, func, *args, **kwargs):
        self.w = watch.Watch()
        self.events: list[tuple[str, str, str]] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(func, args, kwargs), daemon=True)
        self.thread.start()

    def _run(self, func, args, kwargs):
        try:
            for ev in self.w.stream(func, *args, **kwargs):
                obj = ev["raw_object"]
                self.events.append((ev["type"], obj["metadata"].get("name", ""),
                                    obj["metadata"]["resourceVersion"]))
        except BaseException as e:
            self.error = e
        finally:
            self.done.set()

    def join(self):
        assert self.done.wait(10), "watch did not end"
        self.thread.join(5)


@pytest.fixture
def core(kubeapi):
    return client.CoreV1Api(kubeapi.api_client())


def test_watch_replays_from_resource_version(core):
    start = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a"))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    core.delete_namespaced_pod("a", "default")
    evs = take(watch.Watch().stream(core.list_namespaced_pod, "default",
                                    resource_version=start, timeout_seconds=5), 3)
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"].metadata.resource_version) for e in evs]
    assert rvs == sorted(rvs) and rvs[0] > int(start)
    assert evs[1]["object"].metadata.labels == {"x": "1"}


def test_watch_without_resource_version_starts_with_current_state(core):
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    evs = take(watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=5), 2)
    assert [(e["type"], e["object"].metadata.name) for e in evs] == [("ADDED", "a"),
                                                                       ("ADDED", "b")]


def test_watch_streams_live_events(kubeapi, core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    col = Collector(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=5)
    wait_for(lambda: kubeapi.open_watches() == 1, what="watch registered")
    core.create_namespaced_pod("default", pod("live"))
    wait_for(lambda: len(col.events) == 1, what="live event")
    assert col.events[0][:2] == ("ADDED", "live")
    kubeapi.drop_watches(graceful=True)
    col.join()
    assert col.error is None


def test_watch_selectors_turn_transitions_into_added_and_deleted(core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a", {"app": "gw"}))
    core.create_namespaced_pod("default", pod("b", {"app": "other"}))
    core.patch_namespaced_pod("b", "default", {"metadata": {"labels": {"app": "gw"}}})
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"app": "off"}}})
    evs = take(watch.Watch().stream(core.list_namespaced_pod, "default", label_selector="app=gw",
                                    resource_version=rv, timeout_seconds=5), 3)
    assert [(e["type"], e["object"].metadata.name) for e in evs] == [
        ("ADDED", "a"), ("ADDED", "b"), ("DELETED", "a")]


def test_watch_field_selector_on_node_name(core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a", node="n1"))
    core.create_namespaced_pod("default", pod("b", node="n2"))
    evs = take(watch.Watch().stream(core.list_pod_for_all_namespaces,
                                    field_selector="spec.nodeName=n2", resource_version=rv,
                                    timeout_seconds=5), 1)
    assert evs[0]["object"].metadata.name == "b"


def test_watch_custom_objects(kubeapi):
    custom = client.CustomObjectsApi(kubeapi.api_client())
    rv = custom.list_namespaced_custom_object(G, V, "default", VEG)["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(G, V, "default", VEG, {
        "apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway", "metadata": {"name": "g"},
        "spec": {"externalSubnet": "m", "policies": [{"subnets": ["s"]}]}})
    custom.patch_namespaced_custom_object_status(G, V, "default", VEG, "g", {
        "status": {"phase": "Processing", "conditions": []}})
    evs = take(watch.Watch().stream(custom.list_namespaced_custom_object, G, V, "default", VEG,
                                    resource_version=rv, timeout_seconds=5), 2)
    assert [e["type"] for e in evs] == ["ADDED", "MODIFIED"]
    assert evs[1]["object"]["status"]["phase"] == "Processing"


def test_too_old_resource_version_is_410(kubeapi, core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("a"))
    kubeapi.compact()
    with pytest.raises(ApiException) as e:  # with timeout_seconds the client does not retry
        take(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv,
                                  timeout_seconds=5), 1)
    assert e.value.status == 410
    # the raw stream carries an ERROR event with a Status
    resp = core.list_namespaced_pod("default", watch=True, resource_version=rv,
                                    _preload_content=False)
    line = resp.data.decode().splitlines()[0]
    assert '"type": "ERROR"' in line and '"code": 410' in line and "Expired" in line
    # the current resourceVersion is still fine
    now = core.list_namespaced_pod("default").metadata.resource_version
    core.create_namespaced_pod("default", pod("b"))
    evs = take(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=now,
                                    timeout_seconds=5), 1)
    assert evs[0]["object"].metadata.name == "b"


def own_server(**kwargs):
    """A server with non-default settings (imported late: pytest_plugins loads the module)."""
    from kubeapi.fixture import KubeApi

    return KubeApi(**kwargs)


def test_history_window_expires_old_versions():
    api = own_server(history_limit=3)
    try:
        core = client.CoreV1Api(api.api_client())
        rv = core.list_namespaced_pod("default").metadata.resource_version
        for i in range(5):
            core.create_namespaced_pod("default", pod(f"p{i}"))
        with pytest.raises(ApiException) as e:
            take(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv,
                                      timeout_seconds=5), 1)
        assert e.value.status == 410
    finally:
        api.close()


def test_bookmarks():
    api = own_server(bookmark_interval=0.05)
    try:
        core = client.CoreV1Api(api.api_client())
        core.create_namespaced_pod("default", pod("a"))
        rv = core.list_namespaced_pod("default").metadata.resource_version
        w = watch.Watch()
        evs = take(w.stream(core.list_namespaced_pod, "default", resource_version=rv,
                            allow_watch_bookmarks=True, timeout_seconds=5), 1)
        assert evs[0]["type"] == "BOOKMARK"
        assert evs[0]["raw_object"]["metadata"]["resourceVersion"] == rv
        assert w.resource_version == rv
        # without allowWatchBookmarks there are none: the stream just times out empty
        assert list(watch.Watch().stream(core.list_namespaced_pod, "default",
                                         resource_version=rv, timeout_seconds=1)) == []
    finally:
        api.close()


def test_timeout_seconds_ends_the_stream(kubeapi, core):
    import time

    t0 = time.monotonic()
    assert list(watch.Watch().stream(core.list_namespaced_pod, "default",
                                     resource_version=str(kubeapi.resource_version),
                                     timeout_seconds=1)) == []
    assert 0.9 <= time.monotonic() - t0 < 5
    assert kubeapi.open_watches() == 0


def test_dropped_watch_cuts_the_connection(kubeapi, core):
    rv = core.list_namespaced_pod("default").metadata.resource_version
    col = Collector(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=30)
    wait_for(lambda: kubeapi.open_watches() == 1, what="watch registered")
    assert kubeapi.drop_watches() == 1
    col.join()
    assert isinstance(col.error, (urllib3.exceptions.HTTPError, OSError))
    wait_for(lambda: kubeapi.open_watches() == 0, what="watch gone")


def test_stop_and_restart_keep_state_and_port(kubeapi, core):
    core.create_namespaced_pod("default", pod("a"))
    port = kubeapi.port
    rv = core.list_namespaced_pod("default").metadata.resource_version
    col = Collector(core.list_namespaced_pod, "default", resource_version=rv, timeout_seconds=30)
    wait_for(lambda: kubeapi.open_watches() == 1, what="watch registered")
    kubeapi.stop()
    col.join()
    assert col.error is not None
    with pytest.raises(urllib3.exceptions.HTTPError):
        core.read_namespaced_pod("a", "default", _request_timeout=2)
    core.api_client.rest_client.pool_manager.clear()  # urllib3 backs off after failures
    kubeapi.start()
    assert kubeapi.port == port
    assert core.read_namespaced_pod("a", "default").metadata.name == "a"
    core.create_namespaced_pod("default", pod("b"))
    evs = take(watch.Watch().stream(core.list_namespaced_pod, "default", resource_version=rv,
                                    timeout_seconds=5), 1)
    assert evs[0]["object"].metadata.name == "b"
