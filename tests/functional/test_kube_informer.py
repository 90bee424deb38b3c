"""vegd's informers against the in-process API server: list+watch, bookmarks, 410, restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from ovnstack import wait_for

from vegd.kube.api import KubeApi
from vegd.kube.informer import Informer
from vegd.kube.resources import GATEWAYS, PODS

pytest_plugins = ["kubeapi.fixture"]


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.events: list[tuple[str, str]] = []
        self.relists = 0

    def __call__(self, resource, old, new):
        name = (new or old)["metadata"]["name"]
        kind = "deleted" if new is None else "added" if old is None else "modified"
        with self.lock:
            self.events.append((kind, name))

    def relisted(self, resource):
        self.relists += 1

    def seen(self, kind, name):
        with self.lock:
            return (kind, name) in self.events


def pod(name, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


@pytest.fixture
def informer(kubeapi):
    api = KubeApi(kubeapi.configuration())
    rec = Recorder()
    inf = Informer(api, PODS, rec, rec.relisted, watch_timeout=30)
    yield kubeapi, inf, rec
    inf.stop()
    api.close()


def start(kubeapi, inf):
    inf.start()
    assert inf.synced.wait(5)
    wait_for(lambda: kubeapi.open_watches() >= 1, 5, what="the informer's watch")


def test_list_then_watch_delivers_adds_updates_deletes(informer):
    kubeapi, inf, rec = informer
    kubeapi.create(pod("before"))
    start(kubeapi, inf)
    assert rec.seen("added", "before")
    kubeapi.create(pod("after"))
    wait_for(lambda: rec.seen("added", "after"), 5, what="watched add")
    core = __import__("kubernetes").client.CoreV1Api(kubeapi.api_client())
    core.patch_namespaced_pod("after", "default", {"metadata": {"labels": {"x": "1"}}})
    wait_for(lambda: rec.seen("modified", "after"), 5, what="watched update")
    assert inf.get("default/after")["metadata"]["labels"] == {"x": "1"}
    core.delete_namespaced_pod("before", "default")
    wait_for(lambda: rec.seen("deleted", "before"), 5, what="watched delete")
    assert inf.get("default/before") is None


def test_dropped_watch_resumes_without_losing_events(informer):
    kubeapi, inf, rec = informer
    start(kubeapi, inf)
    kubeapi.drop_watches()
    kubeapi.create(pod("while-down"))  # happens before the informer re-watches
    wait_for(lambda: rec.seen("added", "while-down"), 10, what="event across a dropped watch")
    assert inf.relists == 1  # resumed from its resourceVersion, no relist needed


def test_410_gone_relists_and_reports_missed_deletes(informer):
    kubeapi, inf, rec = informer
    kubeapi.create(pod("doomed"))
    start(kubeapi, inf)
    kubeapi.stop()  # vegd cannot watch; meanwhile the pod goes and the history is forgotten
    kubeapi.store.delete(kubeapi._type_of(pod("doomed")), "default", "doomed")
    kubeapi.create(pod("fresh"))
    kubeapi.compact()
    kubeapi.start()
    wait_for(lambda: inf.relists >= 2, 15, what="relist after 410 Gone")
    wait_for(lambda: rec.seen("deleted", "doomed") and rec.seen("added", "fresh"), 10,
             what="missed changes delivered by the relist")
    assert rec.relists >= 1 and inf.get("default/doomed") is None


def test_api_server_restart_is_survived(informer):
    kubeapi, inf, rec = informer
    start(kubeapi, inf)
    kubeapi.restart()
    kubeapi.create(pod("after-restart"))
    wait_for(lambda: rec.seen("added", "after-restart"), 15, what="event after a restart")


def test_custom_resources_are_listed_cluster_wide(kubeapi):
    api = KubeApi(kubeapi.configuration())
    rec = Recorder()
    inf = Informer(api, GATEWAYS, rec)
    kubeapi.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    kubeapi.create({"apiVersion": "kubeovn.io/v1", "kind": "VpcEgressGateway",
                    "metadata": {"name": "g", "namespace": "other"},
                    "spec": {"externalSubnet": "ext", "policies": [{"ipBlocks": ["10.0.0.0/24"]}]}})
    try:
        inf.start()
        assert inf.synced.wait(5)
        assert inf.get("other/g")["spec"]["replicas"] == 1  # defaulted by the CRD schema
    finally:
        inf.stop()
        api.close()


def test_a_kind_the_server_does_not_serve_counts_as_synced_and_empty(kubeapi):
    from vegd.kube.resources import Resource

    api = KubeApi(kubeapi.configuration())
    rec = Recorder()
    missing = Resource("Widget", "example.com", "v1", "widgets", True)
    inf = Informer(api, missing, rec)
    try:
        inf.start()
        assert inf.synced.wait(5)
        assert inf.objects() == []
    finally:
        inf.stop()
        api.close()


def test_a_silent_watch_is_replaced_after_the_inactivity_timeout(kubeapi):
    """A half-open watch (the server says nothing, not even bookmarks) is given up after the
    informer's inactivity timeout and watched again from the last resourceVersion, so an event
    sent while it was silent still arrives, long before the server-side timeout (30 s)."""
    api = KubeApi(kubeapi.configuration())
    rec = Recorder()
    inf = Informer(api, PODS, rec, rec.relisted, watch_timeout=30, inactivity_timeout=1.5)
    try:
        start(kubeapi, inf)
        kubeapi.silence_watches()
        kubeapi.drop_watches()  # the informer's next watch is a silent one
        wait_for(lambda: kubeapi.silenced_watches >= 1, 5, what="a silent watch")
        kubeapi.create(pod("while-silent"))
        # the informer gives the silent watch up by itself (on a busy machine this can take
        # longer than the timeout: wait for it before the server talks again)
        wait_for(lambda: inf.rewatches >= 1, 10, what="the silent watch replaced")
        kubeapi.silence_watches(False)
        wait_for(lambda: rec.seen("added", "while-silent"), 10,
                 what="the event, after the silent watch was replaced")
        assert inf.relists == 1  # resumed from the resourceVersion, not relisted
    finally:
        inf.stop()
        api.close()


def _pod_lists(kubeapi):
    return [q for method, path, q, _ in kubeapi.requests()
            if method == "GET" and path == "/api/v1/pods" and "watch" not in q]


def test_a_list_fetches_its_next_page_while_the_caller_works_on_this_one(kubeapi):
    kubeapi.create_all(pod(f"p{i}") for i in range(5))
    api = KubeApi(kubeapi.configuration())
    try:
        pages = api.pages(PODS, limit=2)
        first = next(pages)
        # the caller still holds page 1: page 2 has been asked for already
        wait_for(lambda: len(_pod_lists(kubeapi)) >= 2, 5, what="the second page's request")
        rest = list(pages)
        names = [p["metadata"]["name"] for page in (first, *rest) for p in page["items"]]
        assert names == [f"p{i}" for i in range(5)]
        assert len(_pod_lists(kubeapi)) == 3  # 2 + 2 + 1: no page fetched twice
    finally:
        api.close()


def test_a_list_the_caller_stops_reading_fetches_no_further(kubeapi):
    kubeapi.create_all(pod(f"p{i}") for i in range(9))
    api = KubeApi(kubeapi.configuration())
    try:
        pages = api.pages(PODS, limit=2)
        next(pages)
        wait_for(lambda: len(_pod_lists(kubeapi)) >= 2, 5, what="the second page's request")
        pages.close()
        wait_for(lambda: not any(t.name == "list-pods" for t in threading.enumerate()), 5,
                 what="the fetcher's end")
        assert len(_pod_lists(kubeapi)) <= 3  # of 5 pages: at most the one it was fetching
    finally:
        api.close()


def test_requests_never_import_the_generated_api_modules(kubeapi):
    """vegd's lists, watches and writes go through the client's pool without its generated API
    classes (CoreV1Api and AppsV1Api alone take about a second to import): none is imported
    beyond what importing the client itself does (nothing since kubernetes 37; all of them
    before, whose package imported every API and model eagerly)."""
    code = (
        "import sys, json\n"
        "from kubernetes import client\n"
        "def generated():\n"
        "    return {m for m in sys.modules if m.startswith(("
        "'kubernetes.client.api.', 'kubernetes.client.models.'))}\n"
        "before = generated()\n"
        "from vegd.kube.api import KubeApi\n"
        "from vegd.kube.resources import WATCHED, PODS\n"
        "cfg = client.Configuration(); cfg.host = sys.argv[1]\n"
        "api = KubeApi(cfg)\n"
        "for res in WATCHED:\n"
        "    list(api.pages(res))\n"
        "pods = [p for page in api.pages(PODS) for p in page['items']]\n"
        "resp, events = api.watch(PODS, pods[0]['metadata']['resourceVersion'], 1)\n"
        "resp.close()\n"
        "api.create_event('default', {'metadata': {'name': 'e'}, 'reason': 'R',"
        " 'involvedObject': {'kind': 'Pod', 'namespace': 'default', 'name': 'p'}})\n"
        "print(json.dumps([sorted(generated() - before), len(pods)]))\n")
    kubeapi.create(pod("p"))
    out = subprocess.run([sys.executable, "-c", code, kubeapi.configuration().host],
                         capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout) == [[], 1], out.stderr


def test_a_watch_left_mid_stream_never_returns_its_connection_to_the_pool(kubeapi):
    """The informer stops reading a watch at an ERROR event (410 Gone), before the stream's
    last chunk: that connection must be dropped, not reused, or the next request reads the
    leftover chunk as its status line (urllib3 then sends it again)."""
    from vegd.kube.resources import NODES

    api = KubeApi(kubeapi.configuration())
    try:
        old = api.list(PODS)["metadata"]["resourceVersion"]
        kubeapi.create(pod("p"))
        kubeapi.compact()
        resp, events = api.watch(PODS, old, 30)
        first = next(events)
        assert (first["type"], first["object"]["code"]) == ("ERROR", 410)
        api.end_watch(resp)  # what the informer does when it stops reading
        for _ in range(3):
            api.list(NODES)
        lists = [r for r in kubeapi.requests() if r[0] == "GET" and r[1] == "/api/v1/nodes"]
        assert len(lists) == 3, lists
    finally:
        api.close()
