"""The `continue` token of a list page, read from the page's head before its items are decoded
(vegd/kube/api.py: the next page is asked for while this one is decoded)."""

from __future__ import annotations

import json

import pytest

from vegd.kube.api import _head_continue


@pytest.mark.parametrize("page, token", [
    # as kube-apiserver (Go) and the test API server write lists: kind, apiVersion, metadata
    ({"kind": "PodList", "apiVersion": "v1",
      "metadata": {"resourceVersion": "5", "continue": "eyJydiI6NX0=", "remainingItemCount": 3},
      "items": [{"metadata": {"name": "a", "annotations": {"continue": "not this"}}}]},
     "eyJydiI6NX0="),
    ({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "5"},
      "items": [{"metadata": {"continue": "x"}}]}, ""),  # the last page
    ({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []}, ""),
    # written otherwise: not told by the head (the page is then decoded before the next request)
    ({"items": [], "metadata": {"continue": "x"}}, None),
    ({"kind": "PodList", "items": [], "metadata": {"continue": "x"}}, None),
    ({"kind": "PodList", "metadata": {"continue": "x", "extra": {"nested": 1}}, "items": []}, None),
])
def test_head_continue(page, token):
    for separators in ((",", ":"), (", ", ": ")):
        assert _head_continue(json.dumps(page, separators=separators).encode()) == token


def test_head_continue_of_something_not_a_list():
    assert _head_continue(b"") is None
    assert _head_continue(b'{"kind":"Status","status":"Failure"}') is None
