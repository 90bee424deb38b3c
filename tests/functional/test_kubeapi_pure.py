"""The test API server's pure parts: selector parsing/matching and the patch algorithms,
plus the failure-injection hook."""

from __future__ import annotations

import pytest
from kubeapi.patch import PatchError, apply_patch, json_patch, merge_patch, strategic_merge_patch
from kubeapi.selectors import (
    SelectorError,
    make_filter,
    parse_label_selector,
    selector_from_label_selector,
)
from kubernetes import client
from kubernetes.client.rest import ApiException

pytest_plugins = ["kubeapi.fixture"]


def obj(labels=None, **fields):
    return {"metadata": {"name": "n", "namespace": "ns", "labels": labels or {}}, **fields}


@pytest.mark.parametrize("sel,labels,expected", [
    ("", {}, True),
    ("a=b", {"a": "b"}, True),
    ("a==b", {"a": "c"}, False),
    ("a!=b", {}, True),  # != matches a missing key
    ("a in (b, c)", {"a": "c"}, True),
    ("a notin (b,c)", {"a": "b"}, False),
    ("a notin (b)", {}, True),
    ("a", {"a": ""}, True),
    ("!a", {"a": "x"}, False),
    ("app.kubernetes.io/name=vegd,tier in (x)", {"app.kubernetes.io/name": "vegd", "tier": "x"},
     True),
])
def test_label_selector_matching(sel, labels, expected):
    assert make_filter(sel, None, frozenset())(obj(labels)) is expected


@pytest.mark.parametrize("bad", ["a in (b", "a=b=c", "=b", "a,,b", "a in b"])
def test_label_selector_errors(bad):
    with pytest.raises(SelectorError):
        parse_label_selector(bad)


def test_field_selector_needs_supported_paths():
    pred = make_filter(None, "spec.nodeName=n1,metadata.name!=x",
                       frozenset({"spec.nodeName", "metadata.name"}))
    assert pred(obj(spec={"nodeName": "n1"}))
    assert not pred(obj(spec={"nodeName": "n2"}))
    with pytest.raises(SelectorError):
        make_filter(None, "spec.other=1", frozenset({"metadata.name"}))


def test_selector_rendering_for_scale():
    sel = {"matchLabels": {"b": "2", "a": "1"},
           "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x"]},
                                {"key": "d", "operator": "DoesNotExist"}]}
    text = selector_from_label_selector(sel)
    assert text == "a=1,b=2,c in (x,y),!d"
    assert make_filter(text, None, frozenset())(obj({"a": "1", "b": "2", "c": "x"}))


def test_merge_patch_rfc7386():
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    out = merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3]})
    assert out == {"a": "z", "c": {"d": "e"}, "l": [3]}
    assert target["c"] == {"d": "e", "f": "g"}  # input untouched


def test_json_patch_rfc6902():
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3},
                           {"op": "add", "path": "/a/0", "value": 0},
                           {"op": "move", "from": "/b/c", "path": "/d"},
                           {"op": "copy", "from": "/d", "path": "/e"},
                           {"op": "test", "path": "/e", "value": 1}])
    assert out == {"a": [0, 1, 2, 3], "b": {}, "d": 1, "e": 1}
    for bad in ([{"op": "remove", "path": "/zz"}], [{"op": "replace", "path": "/zz", "value": 1}],
                [{"op": "test", "path": "/a/0", "value": 9}], [{"op": "nope", "path": "/a"}],
                {"op": "add"}):
        with pytest.raises(PatchError):
            json_patch(doc, bad)


def test_strategic_merge_patch_lists():
    pod = {"metadata": {"finalizers": ["a"]},
           "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}],
                    "tolerations": [{"key": "x"}]},
           "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    out = strategic_merge_patch(pod, {
        "metadata": {"finalizers": ["b", "a"]},
        "spec": {"containers": [{"name": "c2", "image": "new"}, {"name": "c1", "$patch": "delete"}],
                 "tolerations": [{"key": "y"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"},
                                  {"type": "PodScheduled", "status": "True"}]}})
    assert out["metadata"]["finalizers"] == ["a", "b"]
    assert out["spec"]["containers"] == [{"name": "c2", "image": "new"}]
    assert out["spec"]["tolerations"] == [{"key": "y"}]  # no merge strategy: replaced
    assert out["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                           {"type": "PodScheduled", "status": "True"}]
    out = strategic_merge_patch(pod, {"$deleteFromPrimitiveList/finalizers": ["a"],
                                      "metadata": {"$patch": "replace", "name": "x"}})
    assert out["metadata"] == {"name": "x"}


def test_apply_patch_rejects_unknown_media_types():
    with pytest.raises(ValueError):
        apply_patch("application/apply-patch+yaml", {}, {})


def test_failure_injection(kubeapi):
    core = client.CoreV1Api(kubeapi.api_client())
    kubeapi.fail_next_write()
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    with pytest.raises(ApiException) as e:
        core.create_namespace(body)
    assert e.value.status == 500
    assert core.create_namespace(body).metadata.name == "x"  # only the next one fails
